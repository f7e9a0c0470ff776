//! The lowered `stack:` section, and the names drills use to act on a running stack's parts
//! ([`Component`], [`StackOp`]; the handle that carries them out is `crate::stack::control`).
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The plan's `stack:` section, lowered: which reference stack to start before the run.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSpec {
    pub backend: StackBackend,
    /// Number of gateway instances (>= 1).
    pub gateways: u32,
    /// Put an edge balancer in front of the gateways (TARGET_URL then points at the edge).
    pub edge: Option<EdgeStrategy>,
    /// Container image for Redis (containers backend); None: the backend's default.
    pub redis_image: Option<String>,
    /// Container image for PostgreSQL (containers backend); None: the backend's default.
    pub postgres_image: Option<String>,
    /// Extra environment for the gateways (e.g. GATEWAY_PROFILE=staging).
    pub gateway_env: BTreeMap<String, String>,
}

impl Default for StackSpec {
    fn default() -> Self {
        StackSpec {
            backend: StackBackend::Auto,
            gateways: 1,
            edge: None,
            redis_image: None,
            postgres_image: None,
            gateway_env: BTreeMap::new(),
        }
    }
}

/// How Redis and PostgreSQL are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackBackend {
    /// Containers when a Docker engine answers and the images are there, else processes.
    Auto,
    /// testcontainers.
    Containers,
    /// Local child processes (redis-server; initdb + postgres).
    Process,
    /// Someone else's environment: URLs come from the environment (TARGET_URL, ...).
    External,
}

/// Load-balancing strategy of the edge role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeStrategy {
    RoundRobin,
    LeastConnections,
}

/// A component of the reference stack that drills act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Redis,
    Postgres,
    /// Gateway instance N (1-based), `gateway[1]`.
    Gateway(u32),
    Edge,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Redis => f.write_str("redis"),
            Component::Postgres => f.write_str("postgres"),
            Component::Gateway(n) => write!(f, "gateway[{n}]"),
            Component::Edge => f.write_str("edge"),
        }
    }
}

/// A component name that is not one of the reference stack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown component `{0}`: expected redis, postgres, gateway[N] (N from 1), gw-N or edge")]
pub struct ComponentError(pub String);

impl FromStr for Component {
    type Err = ComponentError;
    fn from_str(s: &str) -> Result<Component, ComponentError> {
        let t = s.trim();
        let err = || ComponentError(s.to_string());
        match t {
            "redis" => return Ok(Component::Redis),
            "postgres" => return Ok(Component::Postgres),
            "edge" => return Ok(Component::Edge),
            _ => {}
        }
        let n = if let Some(rest) = t.strip_prefix("gateway[") {
            rest.strip_suffix(']').ok_or_else(err)?
        } else if let Some(rest) = t.strip_prefix("gw-") {
            rest
        } else {
            return Err(err());
        };
        match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Component::Gateway(n)),
            _ => Err(err()),
        }
    }
}

/// What a drill does to a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackOp {
    /// SIGKILL / `docker kill`: down at once, nothing flushed.
    Kill,
    /// Graceful stop (the component's stop signal, then SIGKILL after a grace period).
    Stop,
    /// Start a stopped or killed component on the same port and data.
    Start,
    /// Stop, then start.
    Restart,
    /// SIGSTOP / `docker pause`: the process stays, answers nothing.
    Pause,
    /// SIGCONT / `docker unpause`.
    Resume,
}

impl StackOp {
    pub const ALL: [StackOp; 6] = [
        StackOp::Kill,
        StackOp::Stop,
        StackOp::Start,
        StackOp::Restart,
        StackOp::Pause,
        StackOp::Resume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StackOp::Kill => "kill",
            StackOp::Stop => "stop",
            StackOp::Start => "start",
            StackOp::Restart => "restart",
            StackOp::Pause => "pause",
            StackOp::Resume => "resume",
        }
    }
}

impl fmt::Display for StackOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation name that is not one of [`StackOp`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stack operation `{0}`: expected kill, stop, start, restart, pause or resume")]
pub struct StackOpError(pub String);

impl FromStr for StackOp {
    type Err = StackOpError;
    fn from_str(s: &str) -> Result<StackOp, StackOpError> {
        StackOp::ALL
            .into_iter()
            .find(|o| o.as_str() == s.trim())
            .ok_or_else(|| StackOpError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_ops_round_trip() {
        for c in [
            Component::Redis,
            Component::Postgres,
            Component::Gateway(2),
            Component::Edge,
        ] {
            assert_eq!(c.to_string().parse::<Component>(), Ok(c));
        }
        assert_eq!("gw-3".parse::<Component>(), Ok(Component::Gateway(3)));
        assert!("gateway[0]".parse::<Component>().is_err());
        assert!("mysql".parse::<Component>().is_err());
        for o in StackOp::ALL {
            assert_eq!(o.to_string().parse::<StackOp>(), Ok(o));
        }
    }
}

//! The lowered `stack:` section, and the names drills use to act on a running stack's parts
//! ([`Component`], [`StackOp`]; the handle that carries them out is `crate::stack::control`).
//! They live here because plans name them (a fault's `component:` and `action:`) and the
//! lowered spec must not import the stack module.
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
    /// Put a fault proxy (toxiproxy's toxics) between the gateways and redis / postgres, so
    /// network faults can act on them; set when the plan has a `toxic` fault, or by
    /// `stack.reference.fault_proxy: true`.
    pub fault_proxy: bool,
    /// Regions (1 or 2): with 2, `gateways` instances run in each region (gw-1..gw-N
    /// primary, gw-N+1..gw-2N secondary) and the edge prefers the primary's.
    pub regions: u32,
    /// A streaming replica of PostgreSQL beside the primary (`stack.reference.postgres:
    /// { replica: async | sync }`); None: the primary alone.
    pub postgres_replica: Option<Replication>,
}

/// How the PostgreSQL replica follows its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// Asynchronous streaming: the primary acknowledges a commit before the replica has it,
    /// so a failover can lose the last acknowledged writes.
    Async,
    /// Synchronous (`synchronous_standby_names = '*'`, `synchronous_commit = remote_apply`):
    /// a commit is acknowledged once the replica applied it; a failover loses none.
    Sync,
}

impl Replication {
    pub fn as_str(&self) -> &'static str {
        match self {
            Replication::Async => "async",
            Replication::Sync => "sync",
        }
    }
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
            fault_proxy: false,
            regions: 1,
            postgres_replica: None,
        }
    }
}

/// How Redis and PostgreSQL are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackBackend {
    /// Containers when a Docker engine answers and the images are there, else processes.
    Auto,
    /// Docker containers (bollard, API version negotiated).
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

/// A region of a stack started with `regions: 2`: a set of gateway instances behind the
/// edge, which prefers the primary's and fails over to the secondary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    Primary,
    Secondary,
}

impl Region {
    pub const ALL: [Region; 2] = [Region::Primary, Region::Secondary];

    pub fn as_str(&self) -> &'static str {
        match self {
            Region::Primary => "primary",
            Region::Secondary => "secondary",
        }
    }

    /// 0 for the primary, 1 for the secondary.
    pub fn index(&self) -> usize {
        match self {
            Region::Primary => 0,
            Region::Secondary => 1,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component of the reference stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Redis,
    Postgres,
    /// The streaming replica of PostgreSQL (`stack.reference.postgres.replica`).
    PostgresReplica,
    /// Gateway instance N, 1-based (`gateway[1]` is the first, `gw-1` in the registry).
    Gateway(u32),
    Edge,
    /// Every gateway instance of a region (`region[primary]`), acted on together.
    Region(Region),
}

impl Component {
    /// The name the stack module uses for it in the registry, logs and `stack status`
    /// (`redis`, `postgres`, `postgres-replica`, `gw-N`, `edge`).
    pub fn registry_name(&self) -> String {
        match self {
            Component::Redis => "redis".into(),
            Component::Postgres => "postgres".into(),
            Component::PostgresReplica => "postgres-replica".into(),
            Component::Gateway(n) => format!("gw-{n}"),
            Component::Edge => "edge".into(),
            Component::Region(r) => format!("region-{r}"),
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Redis => f.write_str("redis"),
            Component::Postgres => f.write_str("postgres"),
            Component::PostgresReplica => f.write_str("postgres-replica"),
            Component::Gateway(n) => write!(f, "gateway[{n}]"),
            Component::Edge => f.write_str("edge"),
            Component::Region(r) => write!(f, "region[{r}]"),
        }
    }
}

/// Why a component name did not parse; the message lists the valid forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseComponentError {
    #[error("unknown component `{0}`; valid components: redis, postgres, postgres-replica, gateway[N] or gw-N (N = 1 for the first gateway), edge, region[primary], region[secondary]")]
    Unknown(String),
    #[error("bad gateway number in `{0}`: write gateway[N] or gw-N with N = 1, 2, ... (gateway[1] is the first gateway)")]
    BadIndex(String),
}

impl FromStr for Component {
    type Err = ParseComponentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let index = |n: &str| match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Component::Gateway(n)),
            _ => Err(ParseComponentError::BadIndex(s.to_string())),
        };
        match s {
            "redis" => Ok(Component::Redis),
            "postgres" => Ok(Component::Postgres),
            "postgres-replica" => Ok(Component::PostgresReplica),
            "edge" => Ok(Component::Edge),
            _ => {
                if let Some(r) = s.strip_prefix("region[").and_then(|r| r.strip_suffix(']')) {
                    Region::ALL
                        .into_iter()
                        .find(|x| x.as_str() == r)
                        .map(Component::Region)
                        .ok_or_else(|| ParseComponentError::Unknown(s.to_string()))
                } else if let Some(n) = s.strip_prefix("gateway[").and_then(|r| r.strip_suffix(']'))
                {
                    index(n)
                } else if let Some(n) = s.strip_prefix("gw-") {
                    index(n)
                } else {
                    Err(ParseComponentError::Unknown(s.to_string()))
                }
            }
        }
    }
}

impl serde::Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Component {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An action on one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackOp {
    Kill,
    Stop,
    Start,
    Restart,
    Pause,
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

    pub fn as_str(&self) -> &'static str {
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

/// Why an operation name did not parse; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown stack operation `{0}`; valid operations: kill, stop, start, restart, pause, resume"
)]
pub struct ParseStackOpError(pub String);

impl FromStr for StackOp {
    type Err = ParseStackOpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StackOp::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| ParseStackOpError(s.to_string()))
    }
}

impl serde::Serialize for StackOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for StackOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
            Component::PostgresReplica,
            Component::Gateway(2),
            Component::Edge,
            Component::Region(Region::Primary),
            Component::Region(Region::Secondary),
        ] {
            assert_eq!(c.to_string().parse::<Component>(), Ok(c));
        }
        assert_eq!("gw-3".parse::<Component>(), Ok(Component::Gateway(3)));
        assert!("gateway[0]".parse::<Component>().is_err());
        assert!("mysql".parse::<Component>().is_err());
        assert!("region[tertiary]".parse::<Component>().is_err());
        for o in StackOp::ALL {
            assert_eq!(o.to_string().parse::<StackOp>(), Ok(o));
        }
    }
}

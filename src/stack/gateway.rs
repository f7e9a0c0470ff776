//! Gateway and edge instances: `loadgate-gateway` as local child processes.
//!
//! Each instance is started with `--listen 127.0.0.1:PORT --addr-file FILE` (a free port
//! below the ephemeral range, see [`health::free_port_on`]) and reports the address it
//! bound in FILE; it is ready when `GET /ready` answers 200. Gateways get REDIS_URL, DATABASE_URL, GATEWAY_PROFILE, GATEWAY_ADMIN_KEY,
//! GATEWAY_USER_KEY, GATEWAY_INSTANCE (gw-1, gw-2, ...) and the plan's `gateway_env`; the
//! edge gets EDGE_UPSTREAMS (the gateways' base URLs; with two regions the primary's, and
//! EDGE_SECONDARY_UPSTREAMS the secondary's) and EDGE_STRATEGY.
//!
//! A restart by the stack control handle reuses the bound address (`--listen 127.0.0.1:PORT`,
//! see [`Instance::launch`]) so the edge's upstream list and TARGET_URL stay valid.
//!
//! The binary: `$LOADGATE_GATEWAY_BIN`, else next to the current executable, else in its
//! parent directory (integration tests run from `target/debug/deps/`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::child::{ChildProc, Launch};
use super::registry::SharedEntry;
use super::{health, wait_until, StackError};
use crate::spec::EdgeStrategy;
use nix::sys::signal::Signal;

/// Name of the gateway binary.
pub const GATEWAY_BIN: &str = "loadgate-gateway";

/// Finds the gateway binary (see the module doc for the search order).
pub fn find_binary() -> Result<PathBuf, StackError> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("LOADGATE_GATEWAY_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let mut candidates = vec![dir.join(GATEWAY_BIN)];
            if let Some(parent) = dir.parent() {
                candidates.push(parent.join(GATEWAY_BIN));
            }
            for c in candidates {
                if c.is_file() {
                    return Ok(c);
                }
                tried.push(c);
            }
        }
    }
    Err(StackError::GatewayBinary {
        tried: tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The settings every instance shares.
pub struct GatewayConfig<'a> {
    pub binary: &'a Path,
    pub redis_url: &'a str,
    pub database_url: &'a str,
    pub admin_key: &'a str,
    pub user_key: &'a str,
    pub extra_env: &'a BTreeMap<String, String>,
}

/// A started instance.
#[derive(Debug)]
pub struct Instance {
    pub proc: ChildProc,
    pub url: String,
    /// The address it bound.
    pub addr: SocketAddr,
    /// How to start it again: the original launch with `--listen` set to [`Instance::addr`].
    pub launch: Launch,
    /// Where it writes its bound address once serving.
    pub addr_file: PathBuf,
}

fn base_launch(
    cfg: &GatewayConfig<'_>,
    name: &str,
    role: &str,
    log: &Path,
    addr_file: &Path,
    port: u16,
) -> Launch {
    let mut launch = Launch::new(name, cfg.binary, log, Signal::SIGTERM)
        .args(["--role", role, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--addr-file")
        .arg(addr_file)
        .env("REDIS_URL", cfg.redis_url)
        .env("DATABASE_URL", cfg.database_url)
        .env("GATEWAY_ADMIN_KEY", cfg.admin_key)
        .env("GATEWAY_USER_KEY", cfg.user_key);
    if !cfg.extra_env.contains_key("GATEWAY_PROFILE") {
        launch = launch.env("GATEWAY_PROFILE", "dev");
    }
    for (k, v) in cfg.extra_env {
        launch = launch.env(k, v);
    }
    launch
}

/// A spawned instance that has not been checked for readiness yet.
#[derive(Debug)]
pub struct Pending {
    proc: ChildProc,
    addr_file: PathBuf,
    launch: Launch,
}

/// Spawns gateway instance `n` (1-based); [`Pending::ready`] waits for it.
pub fn spawn_gateway(
    entry: &SharedEntry,
    cfg: &GatewayConfig<'_>,
    n: u32,
) -> Result<Pending, StackError> {
    let name = format!("gw-{n}");
    let work = entry.work_dir();
    let addr_file = work.join(format!("{name}.addr"));
    let log = work.join(format!("{name}.log"));
    let port = listen_port(&name)?;
    let launch =
        base_launch(cfg, &name, "gateway", &log, &addr_file, port).env("GATEWAY_INSTANCE", &name);
    spawn(entry, launch, addr_file)
}

/// Spawns the edge over `upstreams`; [`Pending::ready`] waits for it.
pub fn spawn_edge(
    entry: &SharedEntry,
    cfg: &GatewayConfig<'_>,
    strategy: EdgeStrategy,
    upstreams: &[String],
) -> Result<Pending, StackError> {
    spawn_edge_regions(entry, cfg, strategy, upstreams, &[])
}

/// Spawns the edge over the primary region's `upstreams`, failing over to `secondary`
/// (EDGE_SECONDARY_UPSTREAMS; none: one region) when none of the primary's is healthy.
pub fn spawn_edge_regions(
    entry: &SharedEntry,
    cfg: &GatewayConfig<'_>,
    strategy: EdgeStrategy,
    upstreams: &[String],
    secondary: &[String],
) -> Result<Pending, StackError> {
    let work = entry.work_dir();
    let addr_file = work.join("edge.addr");
    let log = work.join("edge.log");
    let port = listen_port("edge")?;
    let launch = base_launch(cfg, "edge", "edge", &log, &addr_file, port)
        .env("GATEWAY_INSTANCE", "edge")
        .env("EDGE_UPSTREAMS", upstreams.join(","))
        .env(
            "EDGE_STRATEGY",
            match strategy {
                EdgeStrategy::RoundRobin => "round-robin",
                EdgeStrategy::LeastConnections => "least-connections",
            },
        );
    let launch = if secondary.is_empty() {
        launch
    } else {
        launch.env("EDGE_SECONDARY_UPSTREAMS", secondary.join(","))
    };
    spawn(entry, launch, addr_file)
}

/// The port an instance listens on: picked below the ephemeral range
/// ([`health::free_port_on`]) so a restart on the same port does not find it taken by some
/// client's connection.
fn listen_port(name: &str) -> Result<u16, StackError> {
    health::free_port().map_err(|source| StackError::Io {
        what: format!("pick a port for {name}"),
        source,
    })
}

fn spawn(entry: &SharedEntry, launch: Launch, addr_file: PathBuf) -> Result<Pending, StackError> {
    let proc = launch.spawn().map_err(|e| StackError::Spawn {
        component: launch.name.clone(),
        program: launch.program.display().to_string(),
        source: e,
    })?;
    entry.add_child(&launch.name, proc.pid())?;
    Ok(Pending {
        proc,
        addr_file,
        launch,
    })
}

impl Pending {
    /// Waits for the address file, then for `GET /ready` == 200.
    pub async fn ready(self, deadline: Instant) -> Result<Instance, StackError> {
        let Pending {
            mut proc,
            addr_file,
            mut launch,
        } = self;
        let name = proc.name.clone();
        let addr: SocketAddr = loop {
            if let Some(addr) = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break addr;
            }
            if let Some(status) = proc.exited() {
                return Err(StackError::NotReady {
                    component: name,
                    reason: format!("exited with {status} before writing its address file"),
                    log: proc.last_log_lines(20),
                });
            }
            if Instant::now() >= deadline {
                return Err(StackError::NotReady {
                    component: name,
                    reason: format!(
                        "wrote no address to {} before the ready timeout",
                        addr_file.display()
                    ),
                    log: proc.last_log_lines(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let url = format!("http://{addr}");
        let client =
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| StackError::NotReady {
                    component: name.clone(),
                    reason: format!("building an HTTP client: {e}"),
                    log: String::new(),
                })?;
        wait_until(&mut proc, deadline, || health::http_ready(&client, &url)).await?;
        // A restart binds the same address (the edge and TARGET_URL point at it).
        launch.replace_arg_value("--listen", addr.to_string());
        Ok(Instance {
            proc,
            url,
            addr,
            launch,
            addr_file,
        })
    }
}

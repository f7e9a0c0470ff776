//! The reference stack: Redis + PostgreSQL + N gateway processes (+ an optional edge),
//! started for a run and torn down after it, whatever the backend.
//!
//! Backends (one file each): [`process`] (local child processes), [`containers`]
//! (Docker through bollard, [`docker`]), [`external`] (URLs someone else
//! runs). `auto` picks containers when a Docker engine answers and the images are there
//! locally, else processes, else fails saying what to install.
//!
//! [`RunningStack::handle`] gives a [`StackHandle`] ([`control`]): kill, stop / start,
//! restart, pause / resume per component, and exec hooks, for the drills that inject faults
//! while load runs. The stack and its handles share the component slots, so shutdown stops
//! whatever the handle left running, paused or dead.
//!
//! Nothing outlives a run:
//! - children run in their own process group with a parent-death SIGKILL ([`child`]);
//! - [`RunningStack::shutdown`] and `Drop` (also on panic unwind) stop gateways, then the
//!   services (stop signal, grace, SIGKILL; paused ones are continued first), remove
//!   containers and delete the work dir;
//! - every stack is recorded under the state root ([`registry`]) and containers are
//!   labelled, so the next [`start`] (or [`reap_leftovers`]) cleans up after a run that was
//!   SIGKILLed.
//!
//! The environment a stack exports ([`RunningStack::env`]): `TARGET_URL` (the edge when
//! there is one, else gw-1), `GATEWAY_URLS` (comma list) and `GATEWAY_N_URL` (gw-N alone,
//! N from 1), `REDIS_URL`, `DATABASE_URL`,
//! `ADMIN_KEY`, `USER_KEY`, `BACKEND`, `STACK_ID`, and `EDGE_URL` with an edge.
//! With `regions: 2` the stack runs `gateways` instances per region (gw-1..gw-N primary,
//! gw-N+1..gw-2N secondary), the edge prefers the primary's (EDGE_SECONDARY_UPSTREAMS holds
//! the secondary's), and `PRIMARY_GATEWAY_URLS` / `SECONDARY_GATEWAY_URLS` are exported.
//! `gateways: 0` starts only Redis and PostgreSQL (no TARGET_URL then). With
//! `fault_proxy` the gateways reach Redis and PostgreSQL through fault proxies
//! ([`crate::fault::proxy`]); `REDIS_URL` / `DATABASE_URL` still name the servers themselves
//! and `REDIS_PROXY_URL` / `DATABASE_PROXY_URL` the proxies.
//!
//! With `postgres_replica` (`stack.reference.postgres.replica: async | sync`) both backends
//! start a streaming replica of PostgreSQL beside it (component `postgres-replica`; see
//! [`process`] and `containers/replica.rs`), which [`StackHandle::failover`] promotes.

pub mod child;
pub mod cli;
pub mod containers;
pub mod control;
pub mod docker;
pub mod external;
pub mod gateway;
pub mod health;
pub mod process;
pub mod registry;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fault::proxy::Proxy;
use crate::spec::{StackBackend, StackSpec};

use child::ChildProc;
pub use control::{
    exec_hook, Component, ComponentState, ControlError, DataOpReport, ExecHook, ExecOutput,
    OpReport, StackHandle, StackOp,
};
use registry::{Entry, SharedEntry};

/// The PostgreSQL primary's commit settings (`postgres -c ...` arguments) for a replica mode,
/// the same in every backend: `sync` waits for the replica to apply each commit; otherwise
/// (async or no replica) a commit is acknowledged before its WAL is flushed
/// (`synchronous_commit = off`; see `process.rs` for why async keeps it).
pub(crate) fn primary_commit_args(
    replica: Option<crate::spec::Replication>,
) -> &'static [&'static str] {
    match replica {
        Some(crate::spec::Replication::Sync) => &[
            "-c",
            "synchronous_commit=remote_apply",
            "-c",
            "synchronous_standby_names=*",
        ],
        _ => &["-c", "synchronous_commit=off"],
    }
}

/// The replica's own commit setting: after a promotion it is the primary, with the same
/// setting as the primary it replaces (and no standby of its own).
pub(crate) fn replica_commit_setting(mode: crate::spec::Replication) -> &'static str {
    match mode {
        crate::spec::Replication::Sync => "synchronous_commit=remote_apply",
        crate::spec::Replication::Async => "synchronous_commit=off",
    }
}

/// Errors of the stack module; each names the component and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("stack backend `{backend}` cannot run here: missing {what}")]
    Missing { backend: &'static str, what: String },
    #[error("no stack backend can run here: containers: {containers}; process: missing {process}. Install redis-server and postgresql (apt-get install redis-server postgresql), or start a Docker engine and run reference-stack/images/build.sh")]
    NoBackend { containers: String, process: String },
    #[error("{component} did not become ready: {reason}{}", fmt_log(.log))]
    NotReady {
        component: String,
        reason: String,
        log: String,
    },
    #[error("starting {component} ({program}) failed: {source}")]
    Spawn {
        component: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loadgate-gateway binary not found (tried {tried}); build it with `cargo build -p loadgate-gateway` or set LOADGATE_GATEWAY_BIN")]
    GatewayBinary { tried: String },
    #[error("external stack: {0}")]
    External(String),
    #[error("docker: {0}")]
    Docker(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn fmt_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- last log lines ---\n{log}")
    }
}

impl StackError {
    pub(crate) fn io(what: &str, path: &Path, source: std::io::Error) -> StackError {
        StackError::Io {
            what: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// State root (registry entries and work dirs). None: `$LOADGATE_STATE_DIR`, else
    /// `<system temp>/loadgate-stacks`.
    pub state_dir: Option<PathBuf>,
    /// How long each start phase (services, then each gateway) may take to become ready.
    pub ready_timeout: Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            state_dir: None,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

impl StackOptions {
    pub fn root(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(registry::default_root)
    }
}

/// A started stack. Dropping it stops everything (synchronously, best effort).
///
/// Its components live in slots shared with every [`StackHandle`] it hands out (one `Arc`):
/// a handle may kill, restart or pause them while the stack is up, and `shutdown` / `Drop`
/// stop whatever the slots hold at that moment.
#[derive(Debug)]
pub struct RunningStack {
    shared: Arc<control::Shared>,
}

/// One line of `loadgate stack status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatusLine {
    pub id: String,
    pub backend: String,
    pub owner_pid: u32,
    /// false: the owner died; the next start reaps this entry.
    pub owner_alive: bool,
    pub created_unix: u64,
    pub target_url: Option<String>,
    /// (name, pid, alive)
    pub children: Vec<(String, u32, bool)>,
    pub containers: usize,
    pub dir: PathBuf,
}

impl std::fmt::Display for StackStatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.owner_alive { "running" } else { "stale" };
        write!(
            f,
            "{} {state} backend={} owner={}",
            self.id, self.backend, self.owner_pid
        )?;
        if let Some(url) = &self.target_url {
            write!(f, " target={url}")?;
        }
        let alive = self.children.iter().filter(|c| c.2).count();
        write!(f, " processes={alive}/{}", self.children.len())?;
        if self.containers > 0 {
            write!(f, " containers={}", self.containers)?;
        }
        Ok(())
    }
}

fn backend_name(b: StackBackend) -> &'static str {
    match b {
        StackBackend::Auto => "auto",
        StackBackend::Containers => "containers",
        StackBackend::Process => "process",
        StackBackend::External => "external",
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `probe` every 100 ms until it succeeds, the process exits, or `deadline` passes.
pub(crate) async fn wait_until<F, Fut>(
    proc: &mut ChildProc,
    deadline: Instant,
    mut probe: F,
) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), health::HealthError>>,
{
    loop {
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(status) = proc.exited() {
            return Err(StackError::NotReady {
                component: proc.name.clone(),
                reason: format!("exited with {status} (last probe: {last})"),
                log: proc.last_log_lines(20),
            });
        }
        if Instant::now() >= deadline {
            return Err(StackError::NotReady {
                component: proc.name.clone(),
                reason: format!("not ready before the timeout (last probe: {last})"),
                log: proc.last_log_lines(20),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resolves `auto` to the backend that can run here.
pub async fn resolve_backend(spec: &StackSpec) -> Result<StackBackend, StackError> {
    match spec.backend {
        StackBackend::Auto => {}
        other => return Ok(other),
    }
    let containers = match containers::available(spec).await {
        Ok(()) => return Ok(StackBackend::Containers),
        Err(why) => why.to_string(),
    };
    match process::available() {
        Ok(_) => Ok(StackBackend::Process),
        Err(process) => Err(StackError::NoBackend {
            containers,
            process: process.to_string(),
        }),
    }
}

/// Starts the stack described by `spec`: reaps leftovers of dead runs, starts Redis and
/// PostgreSQL with the resolved backend, then the gateways and the edge, each waited for.
pub async fn start(spec: &StackSpec, opts: &StackOptions) -> Result<RunningStack, StackError> {
    let root = opts.root();
    // Best effort: a failure to reap must not stop a new run. Blocking (signals, waits,
    // Docker calls on a helper thread), so off the async workers.
    let reap_root = root.clone();
    let _ = tokio::task::spawn_blocking(move || reap_in(&reap_root)).await;
    let backend = resolve_backend(spec).await?;
    let id = format!("lg-{}", random_hex(6));
    let entry = SharedEntry::new(Entry::create(&root, &id, backend_name(backend))?);
    let stack = RunningStack {
        shared: Arc::new(control::Shared::new(id, backend, entry, opts.ready_timeout)),
    };
    // On any error below, dropping `stack` tears down what was started.
    stack.start_all(spec, opts).await?;
    Ok(stack)
}

impl RunningStack {
    async fn start_all(&self, spec: &StackSpec, opts: &StackOptions) -> Result<(), StackError> {
        let admin_key = format!("lg_admin_{}", random_hex(16));
        let user_key = format!("lg_user_{}", random_hex(16));
        let redis_password = random_hex(12);
        let pg_password = random_hex(12);
        let shared = &self.shared;
        let entry = &shared.entry;
        // Redis and PostgreSQL as local processes, installed in the shared slots: the process
        // backend, and `auto`'s fallback when containers did not come up.
        let start_processes = || async {
            let s = process::start(
                entry,
                &redis_password,
                &pg_password,
                spec.postgres_replica,
                opts.ready_timeout,
            )
            .await?;
            let urls = (s.redis_url.clone(), s.database_url.clone());
            shared.install_process(s, &redis_password);
            Ok::<_, StackError>(urls)
        };
        let id = shared.id.clone();

        // Each part goes into the shared slots as soon as it runs, so an error (or the
        // future being dropped) below leaves it to `Drop` to stop.
        let (redis_url, database_url) = match shared.backend() {
            StackBackend::External => {
                let ext = external::from_env()?;
                let mut env = ext.env();
                env.push(("BACKEND".into(), "external".into()));
                env.push(("STACK_ID".into(), id.clone()));
                entry.set_env(&env)?;
                shared.set_env(env);
                return Ok(());
            }
            StackBackend::Process => start_processes().await?,
            StackBackend::Containers => {
                let s = containers::start(
                    spec,
                    entry,
                    &id,
                    &redis_password,
                    &pg_password,
                    opts.ready_timeout,
                )
                .await;
                match s {
                    Ok(s) => {
                        let urls = (s.redis_url.clone(), s.database_url.clone());
                        shared.install_containers(s, &redis_password);
                        urls
                    }
                    // `auto` chose containers but they did not come up: local processes
                    // instead, when they can run here.
                    Err(e)
                        if spec.backend == StackBackend::Auto && process::available().is_ok() =>
                    {
                        tracing::warn!(error = %e, "containers backend failed; falling back to local processes");
                        shared.set_backend(StackBackend::Process);
                        entry.with(|en| {
                            en.record.backend = backend_name(StackBackend::Process).into();
                            en.save()
                        })?;
                        start_processes().await?
                    }
                    Err(e) => return Err(e),
                }
            }
            StackBackend::Auto => unreachable!("resolved above"),
        };

        let mut env: Vec<(String, String)> = Vec::new();
        // The gateways reach redis / postgres through fault proxies when asked for.
        let (gw_redis_url, gw_database_url) = if spec.fault_proxy {
            let r = self.start_proxy(Component::Redis, &redis_url)?;
            let d = self.start_proxy(Component::Postgres, &database_url)?;
            env.push(("REDIS_PROXY_URL".into(), r.clone()));
            env.push(("DATABASE_PROXY_URL".into(), d.clone()));
            (r, d)
        } else {
            (redis_url.clone(), database_url.clone())
        };
        if spec.gateways > 0 {
            let binary = gateway::find_binary()?;
            let cfg = gateway::GatewayConfig {
                binary: &binary,
                redis_url: &gw_redis_url,
                database_url: &gw_database_url,
                admin_key: &admin_key,
                user_key: &user_key,
                extra_env: &spec.gateway_env,
            };
            // gw-1 first (it migrates the schema and stores the keys, so later instances
            // find them in place), then the others in parallel, each waited for.
            let deadline = Instant::now() + opts.ready_timeout;
            let first = gateway::spawn_gateway(entry, &cfg, 1)?
                .ready(deadline)
                .await?;
            let mut urls = vec![first.url.clone()];
            shared.push_gateway(1, first);
            // With two regions, `gateways` instances per region: gw-1..gw-N are the
            // primary's, gw-N+1..gw-2N the secondary's.
            let instances = spec.gateways * spec.regions.max(1);
            shared.set_regions(spec.regions.max(1));
            let mut pending = Vec::new();
            for n in 2..=instances {
                pending.push((n, gateway::spawn_gateway(entry, &cfg, n)?));
            }
            let deadline = Instant::now() + opts.ready_timeout;
            let mut failure = None;
            for (n, p) in pending {
                // After a failure the rest are dropped, which stops them.
                if failure.is_some() {
                    drop(p);
                    continue;
                }
                match p.ready(deadline).await {
                    Ok(inst) => {
                        urls.push(inst.url.clone());
                        shared.push_gateway(n, inst);
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            let mut target = urls[0].clone();
            if let Some(strategy) = spec.edge {
                let deadline = Instant::now() + opts.ready_timeout;
                let per_region = (spec.gateways as usize).min(urls.len());
                let (primary, secondary) = if spec.regions > 1 {
                    urls.split_at(per_region)
                } else {
                    (&urls[..], &[][..])
                };
                let edge = gateway::spawn_edge_regions(entry, &cfg, strategy, primary, secondary)?
                    .ready(deadline)
                    .await?;
                if spec.regions > 1 {
                    env.push(("PRIMARY_GATEWAY_URLS".into(), primary.join(",")));
                    env.push(("SECONDARY_GATEWAY_URLS".into(), secondary.join(",")));
                }
                target = edge.url.clone();
                env.push(("EDGE_URL".into(), edge.url.clone()));
                shared.set_edge(edge);
            }
            env.push(("TARGET_URL".into(), target));
            env.push(("GATEWAY_URLS".into(), urls.join(",")));
            // Each instance on its own (a scraper of one gateway's /metrics, say).
            for (i, u) in urls.iter().enumerate() {
                env.push((format!("GATEWAY_{}_URL", i + 1), u.clone()));
            }
        }
        env.push(("REDIS_URL".into(), redis_url));
        env.push(("DATABASE_URL".into(), database_url));
        env.push(("ADMIN_KEY".into(), admin_key));
        env.push(("USER_KEY".into(), user_key));
        env.push(("BACKEND".into(), backend_name(shared.backend()).into()));
        env.push(("STACK_ID".into(), id));
        entry.set_env(&env)?;
        shared.set_env(env);
        Ok(())
    }

    /// Starts a fault proxy in front of `c`, whose URL is `url`; returns the URL through the
    /// proxy (same credentials and path, the proxy's port).
    fn start_proxy(&self, c: Component, url: &str) -> Result<String, StackError> {
        let bad = |why: String| StackError::Io {
            what: format!("starting the fault proxy for {c}"),
            source: std::io::Error::other(why),
        };
        let mut parsed = url::Url::parse(url).map_err(|e| bad(format!("bad URL: {e}")))?;
        let upstream = self
            .shared
            .addr_of(c)
            .ok_or_else(|| bad(format!("{c} is not running")))?;
        let proxy = Proxy::start(&c.to_string(), ([127, 0, 0, 1], 0).into(), upstream)
            .map_err(|e| bad(e.to_string()))?;
        parsed
            .set_port(Some(proxy.listen_addr().port()))
            .map_err(|_| bad(format!("cannot set a port in {url}")))?;
        tracing::info!(component = %c, proxy = %proxy.listen_addr(), %upstream, "fault proxy in front of the dependency");
        self.shared.add_proxy(c, proxy);
        Ok(parsed.to_string())
    }

    /// A handle that acts on this stack's components (kill, stop / start, restart, pause /
    /// resume, exec hooks) while it runs; see [`control`]. Clones share the same stack; after
    /// shutdown its operations answer [`ControlError::ShutDown`].
    pub fn handle(&self) -> StackHandle {
        StackHandle::new(self.shared.clone())
    }

    /// `TARGET_URL`, `GATEWAY_URLS`, `REDIS_URL`, `DATABASE_URL`, `ADMIN_KEY`, `USER_KEY`,
    /// `BACKEND`, `STACK_ID` (and `EDGE_URL` with an edge), in a stable order.
    pub fn env(&self) -> Vec<(String, String)> {
        self.shared.env()
    }

    /// The backend that was used (never `Auto`).
    pub fn backend(&self) -> StackBackend {
        self.shared.backend()
    }

    /// The stack id (also the `loadgate.stack` container label).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Pids of the gateway instances that run now, in order gw-1, gw-2, ... (one killed or
    /// stopped through the handle is left out).
    pub fn gateway_pids(&self) -> Vec<u32> {
        self.shared.gateway_pids()
    }

    /// Pid of the edge, if there is one and it runs.
    pub fn edge_pid(&self) -> Option<u32> {
        self.shared.edge_pid()
    }

    /// Pids of every process this stack runs now (gateways, edge, redis, postgres, the
    /// replica).
    pub fn pids(&self) -> Vec<u32> {
        self.shared.pids()
    }

    /// Pids of redis-server and postgres (process backend only, while both run).
    pub fn service_pids(&self) -> Option<(u32, u32)> {
        self.shared.service_pids()
    }

    /// Container ids (redis, postgres, the replica) with the containers backend.
    pub fn container_ids(&self) -> Vec<String> {
        self.shared.container_ids()
    }

    /// The stack's working directory (logs, data); deleted on shutdown.
    pub fn work_dir(&self) -> Option<PathBuf> {
        (!self.shared.entry.is_removed()).then(|| self.shared.entry.work_dir())
    }

    /// The stack's registry directory; deleted on shutdown.
    pub fn state_dir(&self) -> Option<PathBuf> {
        (!self.shared.entry.is_removed()).then(|| self.shared.entry.dir())
    }

    /// Orderly stop: in-flight control operations end, then edge and gateways, then the
    /// services (paused ones continued first), then the work dir.
    pub async fn shutdown(self) -> Result<(), StackError> {
        // Drop runs afterwards and finds nothing left to stop.
        self.shared.shutdown().await
    }
}

impl Drop for RunningStack {
    fn drop(&mut self) {
        self.shared.cleanup_sync();
    }
}

/// Reaps leftovers of dead runs in `root`: processes, containers (by record and by label),
/// directories. Returns how many stacks (entries or labelled container groups) were reaped.
pub fn reap_in(root: &Path) -> Result<usize, StackError> {
    let (entries, containers) = registry::reap_dead(root);
    // The default state root, when nothing is left in it.
    let _ = std::fs::remove_dir(registry::default_root());
    let labelled = docker::reap_containers(containers)?;
    Ok(entries.max(labelled))
}

/// [`reap_in`] on the default state root.
pub fn reap_leftovers() -> Result<usize, StackError> {
    reap_in(&registry::default_root())
}

/// Stacks recorded under `root`.
pub fn status_in(root: &Path) -> Vec<StackStatusLine> {
    registry::list(root)
        .into_iter()
        .map(|(dir, r)| StackStatusLine {
            owner_alive: r.owner_alive(),
            target_url: r
                .env
                .iter()
                .find(|(k, _)| k == "TARGET_URL")
                .map(|(_, v)| v.clone()),
            children: r
                .children
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.pid,
                        child::pid_alive(c.pid) && child::proc_start(c.pid) == Some(c.start),
                    )
                })
                .collect(),
            containers: r.containers.len(),
            id: r.id,
            backend: r.backend,
            owner_pid: r.owner_pid,
            created_unix: r.created_unix,
            dir,
        })
        .collect()
}

/// Stacks recorded under the default state root.
pub fn status() -> Vec<StackStatusLine> {
    status_in(&registry::default_root())
}

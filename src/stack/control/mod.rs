//! The stack control handle: actions on the components of a running reference stack while
//! load runs (the failover and fault drills call it; so do tests).
//!
//! Why a separate handle: a drill runs beside the engine for the whole run and must act on
//! one component (kill Redis, pause a gateway, restart PostgreSQL) without owning the
//! [`RunningStack`](super::RunningStack), which the session keeps to shut the stack down.
//! [`StackHandle`] is cheap to clone, `Send + Sync`, and shares the component slots with the
//! stack (an `Arc`): whatever the handle leaves running, paused or dead, the stack's
//! `shutdown` / `Drop` finds in the slots and stops, so "nothing outlives the run" holds
//! whatever the drill did.
//!
//! Components: `redis`, `postgres`, `postgres-replica` (with a replica), `gateway[N]`
//! (1-based; also written `gw-N`), `edge`, and with two regions `region[primary]` /
//! `region[secondary]` (every gateway of the region at once, `region.rs`).
//! [`StackHandle::backup`] / [`StackHandle::restore`] dump and restore postgres (`backup.rs`).
//!
//! Failover (`failover.rs`, [`StackHandle::failover`]): kill -9 the PostgreSQL primary,
//! promote the replica, and switch the postgres fault proxy's upstream to it.
//!
//! Operations, per backend:
//!
//! | op | process backend (redis, postgres) and gateways / edge (every backend) | containers backend (redis, postgres) |
//! |---|---|---|
//! | `kill` | SIGKILL to the process group; returns once the leader is reaped and no member of the group is left (postgres backends included) | `docker kill` (SIGKILL); returns once the engine reports it not running |
//! | `stop` | the component's stop signal (redis/gateways SIGTERM, postgres SIGINT), a grace period (3-5 s), then SIGKILL to the group ([`ChildProc::stop`](super::child::ChildProc::stop)) | `docker stop -t 3` (unpaused first) |
//! | `start` | from down: the same command again ([`Launch`](super::child::Launch)): same port, data dir, log and config; then the readiness probe used at stack start. From up: a no-op. From paused: an error ("use resume") | `docker start`: the host port is fixed in the container's port bindings, so it is the same; then the same probe |
//! | `restart` | stop, then start | stop, then start |
//! | `pause` | SIGSTOP to the process group; returns once the leader shows as stopped | `docker pause` (cgroup freezer) |
//! | `resume` | SIGCONT to the process group, then the readiness probe (bounded) | `docker unpause`, then the probe |
//!
//! Network faults: with [`StackSpec::fault_proxy`](crate::spec::StackSpec::fault_proxy) the
//! stack starts a fault proxy ([`crate::fault::proxy`]) in front of redis and postgres and
//! points the gateways at it; [`StackHandle::network_fault`] puts toxics on it (or takes it
//! down) and [`StackHandle::heal`] undoes that. A kill / restart of the dependency behind a
//! proxy keeps its address, so the proxy keeps forwarding to it.
//!
//! Readiness probes ([`super::health`]): Redis `AUTH` + `PING`, PostgreSQL accepting a
//! startup message, gateways and the edge `GET /ready` == 200 (and, after a start, the
//! address file written by the new process naming the same address, so a foreign server on
//! the port cannot pass for ours). A gateway is restarted with `--listen 127.0.0.1:PORT`
//! (the port it bound at stack start), so the edge's upstream list and TARGET_URL stay valid.
//! Kill and stop of a component that is already down are no-ops; so are start and resume of
//! one that is up and pause of one that is paused. Pause of a down component and resume of a
//! down one are errors that say which operation to use.
//!
//! The external backend runs nothing of ours: [`StackHandle::components`] is empty and
//! [`StackHandle::act`] returns [`ControlError::Unsupported`], whose hint points to exec
//! hooks. [`StackHandle::exec`] works with every backend: `sh -c COMMAND` in its own process
//! group with the stack's environment plus the hook's, stdout/stderr captured (the last
//! 4 KiB of each), killed (the whole group) at its timeout. Background processes a hook
//! leaves behind in its group are killed when it exits: they are not recorded anywhere and
//! would outlive the run.
//!
//! Bookkeeping: every process the handle starts is recorded in the stack's registry entry
//! (pid + start time, [`super::registry`]) before anything else can fail, so a later start
//! reaps it if loadgate is SIGKILLed. Operations on one component are serialized (an async
//! lock per component); operations on different components run concurrently. Nothing here
//! blocks the runtime: signals are sent inline (they do not block), waits for a process to
//! die run on blocking threads, probes and polls are async.
//!
//! Shutdown ([`RunningStack::shutdown`](super::RunningStack::shutdown) and `Drop`, in
//! `shutdown.rs`) marks the stack closed and
//! cancels in-flight operations (their readiness waits end at once), waits (bounded) for
//! them to let go of their component, then stops whatever each slot holds: running, paused
//! (SIGCONT / unpause first, or the stop signal would wait) or nothing (already killed).
//! After that every operation answers [`ControlError::ShutDown`].
//!
//! Where the code is (one responsibility per file):
//! - `mod.rs` (this file): the public types ([`StackHandle`] and its methods,
//!   [`ComponentState`], [`OpReport`], [`ExecHook`], [`ExecOutput`], [`ControlError`]), the
//!   readiness probes, and `Shared`: the component slots a stack and its handles share, how
//!   the stack fills them at start, and how an operation finds its component's slot;
//! - `proc_slot.rs`: process-backed components (redis / postgres of the process backend,
//!   gateways and the edge in every backend): kill, stop, start, pause, resume on the
//!   process group, readiness after a start or resume;
//! - `container_slot.rs`: redis / postgres of the containers backend: docker kill, stop,
//!   start, pause, unpause, the host-port check after a start, readiness;
//! - `network.rs`: network faults on the fault proxies (`network_fault`, `heal`, `proxy`);
//! - `exec.rs`: exec hooks (`sh -c` in its own process group, timeout, output tails);
//! - `region.rs`: regions (which gateways are whose, an operation on all of a region's);
//! - `backup.rs`: pg_dump / pg_restore of postgres (`backup`, `restore`);
//! - `shutdown.rs`: shutdown and cleanup of the slots (`Shared::shutdown` for
//!   [`RunningStack::shutdown`](super::RunningStack::shutdown), `Shared::cleanup_sync` for
//!   `Drop`).

mod backup;
mod container_slot;
mod error;
mod exec;
mod failover;
mod network;
mod proc_slot;
mod region;
mod shutdown;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::containers::ContainerServices;
use super::process::ProcessServices;
use super::registry::SharedEntry;
use super::{backend_name, gateway, health};
use crate::fault::proxy::{Proxy, ProxyHandle};
use crate::spec::StackBackend;
pub use backup::{DataOpReport, DATA_OP_TIMEOUT};
use container_slot::ContainerSlot;
use exec::run_exec;
use proc_slot::ProcSlot;

pub use crate::spec::stack::{Component, ParseComponentError, ParseStackOpError, StackOp};
pub use error::ControlError;
pub use failover::Promotion;

/// What a component is doing, as far as the handle knows (a process that exited on its own
/// counts as down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentState {
    Up,
    Down,
    Paused,
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentState::Up => "up",
            ComponentState::Down => "down",
            ComponentState::Paused => "paused",
        })
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReport {
    pub component: Component,
    pub op: StackOp,
    /// From the call to its return (waits for death / readiness included).
    pub elapsed: Duration,
    /// e.g. `pid 123 -> 456 ready on 127.0.0.1:41234`, or the container id.
    pub detail: String,
}

/// A command run with `sh -c` in the stack's environment (faults the handle has no op for,
/// and stacks it does not run: the external backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecHook {
    /// Run with `sh -c`.
    pub command: String,
    /// The whole process group is killed (SIGKILL) when it runs longer.
    pub timeout: Duration,
    /// Added to the stack's environment (and overriding it).
    pub env: Vec<(String, String)>,
}

impl ExecHook {
    pub fn new(command: impl Into<String>, timeout: Duration) -> ExecHook {
        ExecHook {
            command: command.into(),
            timeout,
            env: Vec::new(),
        }
    }
}

/// How an exec hook ended. A non-zero exit is not an error: the caller judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; None when a signal ended it.
    pub status: Option<i32>,
    /// The last [`EXEC_TAIL_BYTES`] of stdout (lossy UTF-8).
    pub stdout_tail: String,
    /// The last [`EXEC_TAIL_BYTES`] of stderr (lossy UTF-8).
    pub stderr_tail: String,
    pub elapsed: Duration,
}

impl ExecOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// How much of an exec hook's stdout and stderr is kept (the end of each).
pub const EXEC_TAIL_BYTES: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a slot was locked leaves it as the last completed step left it; cleanup
    // must still work after a panic, so a poisoned lock is used as is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How readiness is checked.
#[derive(Debug, Clone)]
enum Probe {
    /// `AUTH` + `PING`.
    Redis { password: String },
    /// Accepts a startup message.
    Postgres,
    /// `GET /ready` == 200.
    Http,
}

impl Probe {
    async fn check(
        &self,
        addr: SocketAddr,
        http: Option<&reqwest::Client>,
    ) -> Result<(), health::HealthError> {
        match self {
            Probe::Redis { password } => health::redis_ping(addr, Some(password)).await,
            Probe::Postgres => health::postgres_accepting(addr, "loadgate", "loadgate").await,
            Probe::Http => match http {
                Some(client) => health::http_ready(client, &format!("http://{addr}")).await,
                None => Err(health::HealthError::NoHttpClient),
            },
        }
    }

    /// A client for HTTP probes, made per wait: a reqwest client keeps connections on the
    /// runtime that opened them, and a stack (and its handles) may outlive a runtime.
    fn client(&self) -> Result<Option<reqwest::Client>, health::HealthError> {
        match self {
            Probe::Http => reqwest::Client::builder()
                .no_proxy()
                .build()
                .map(Some)
                .map_err(health::HealthError::HttpClient),
            _ => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The state shared by a RunningStack and its handles
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum ServiceSlot {
    Proc(Arc<ProcSlot>),
    Container(Arc<ContainerSlot>),
}

#[derive(Debug, Clone)]
enum Target {
    Proc(Arc<ProcSlot>),
    Container(Arc<ContainerSlot>),
}

impl Target {
    fn op_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        match self {
            Target::Proc(s) => s.op.clone(),
            Target::Container(s) => s.op.clone(),
        }
    }
}

impl From<ServiceSlot> for Target {
    fn from(s: ServiceSlot) -> Target {
        match s {
            ServiceSlot::Proc(p) => Target::Proc(p),
            ServiceSlot::Container(c) => Target::Container(c),
        }
    }
}

/// The mutable part of a stack: what runs in each slot.
struct StackState {
    backend: StackBackend,
    env: Vec<(String, String)>,
    redis: Option<ServiceSlot>,
    postgres: Option<ServiceSlot>,
    /// PostgreSQL's streaming replica (`stack.reference.postgres.replica`).
    postgres_replica: Option<ServiceSlot>,
    /// Set once a failover promoted the replica (the gateways' proxy points at it).
    failed_over: bool,
    gateways: Vec<Arc<ProcSlot>>,
    edge: Option<Arc<ProcSlot>>,
    /// Owns the containers (removing them on shutdown / drop).
    containers: Option<ContainerServices>,
    /// Fault proxies between the gateways and a dependency (redis, postgres).
    proxies: Vec<(Component, Proxy)>,
    /// 1, or 2: the gateways split in a primary and a secondary region (see `region.rs`).
    regions: u32,
    /// How many backups (`backup.rs`) were taken; the latest is the one a restore uses.
    backups: u32,
}

/// Everything a [`RunningStack`](super::RunningStack) and its [`StackHandle`]s share.
pub(super) struct Shared {
    pub(super) id: String,
    pub(super) entry: SharedEntry,
    ready_timeout: Duration,
    state: Mutex<StackState>,
    /// Set (before the slots are emptied) by shutdown / drop; checked under each slot's lock.
    closed: AtomicBool,
    /// Ends in-flight readiness waits at shutdown.
    cancel: CancellationToken,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("backend", &st.backend)
            .field("redis", &st.redis)
            .field("postgres", &st.postgres)
            .field("postgres_replica", &st.postgres_replica)
            .field("gateways", &st.gateways)
            .field("edge", &st.edge)
            .field("containers", &st.containers)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

impl Shared {
    pub(super) fn new(
        id: String,
        backend: StackBackend,
        entry: SharedEntry,
        ready_timeout: Duration,
    ) -> Shared {
        Shared {
            id,
            entry,
            ready_timeout,
            state: Mutex::new(StackState {
                backend,
                env: Vec::new(),
                redis: None,
                postgres: None,
                postgres_replica: None,
                failed_over: false,
                gateways: Vec::new(),
                edge: None,
                containers: None,
                proxies: Vec::new(),
                regions: 1,
                backups: 0,
            }),
            closed: AtomicBool::new(false),
            cancel: CancellationToken::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, StackState> {
        lock(&self.state)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn check_open(&self, component: Component, op: StackOp) -> Result<(), ControlError> {
        if self.is_closed() {
            Err(ControlError::ShutDown { component, op })
        } else {
            Ok(())
        }
    }

    pub(super) fn backend(&self) -> StackBackend {
        self.state().backend
    }

    pub(super) fn set_backend(&self, backend: StackBackend) {
        self.state().backend = backend;
    }

    pub(super) fn env(&self) -> Vec<(String, String)> {
        self.state().env.clone()
    }

    /// One variable of the stack's environment (e.g. `DATABASE_URL`, which a failover moves).
    pub(super) fn env_var(&self, name: &str) -> Option<String> {
        self.state()
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub(super) fn set_env(&self, env: Vec<(String, String)>) {
        self.state().env = env;
    }

    /// Puts the process backend's redis and postgres into their slots.
    pub(super) fn install_process(&self, s: ProcessServices, redis_password: &str) {
        let redis = ProcSlot::new(
            Component::Redis,
            s.redis,
            s.redis_launch,
            ([127, 0, 0, 1], s.redis_port).into(),
            Probe::Redis {
                password: redis_password.to_string(),
            },
            Duration::from_secs(3),
            None,
        );
        let postgres = ProcSlot::new(
            Component::Postgres,
            s.postgres,
            s.postgres_launch,
            ([127, 0, 0, 1], s.postgres_port).into(),
            Probe::Postgres,
            Duration::from_secs(5),
            None,
        );
        let replica = s.replica.map(|r| {
            ServiceSlot::Proc(ProcSlot::new(
                Component::PostgresReplica,
                r.proc,
                r.launch,
                ([127, 0, 0, 1], r.port).into(),
                Probe::Postgres,
                Duration::from_secs(5),
                None,
            ))
        });
        let mut st = self.state();
        st.redis = Some(ServiceSlot::Proc(redis));
        st.postgres = Some(ServiceSlot::Proc(postgres));
        st.postgres_replica = replica;
    }

    /// Puts the containers backend's redis and postgres into their slots.
    pub(super) fn install_containers(&self, c: ContainerServices, redis_password: &str) {
        let slot = |component, id: Option<String>, container_port, host_port, probe| {
            id.map(|id| {
                ServiceSlot::Container(Arc::new(ContainerSlot {
                    component,
                    id,
                    container_port,
                    host_port,
                    probe,
                    state: Mutex::new(ComponentState::Up),
                    op: Arc::default(),
                }))
            })
        };
        let redis = slot(
            Component::Redis,
            c.redis_id(),
            6379,
            c.redis_port,
            Probe::Redis {
                password: redis_password.to_string(),
            },
        );
        let postgres = slot(
            Component::Postgres,
            c.postgres_id(),
            5432,
            c.postgres_port,
            Probe::Postgres,
        );
        let replica = slot(
            Component::PostgresReplica,
            c.postgres_replica_id(),
            5432,
            c.postgres_replica_port,
            Probe::Postgres,
        );
        let mut st = self.state();
        st.redis = redis;
        st.postgres = postgres;
        st.postgres_replica = replica;
        st.containers = Some(c);
    }

    /// Adds gateway instance `n` (1-based, in order).
    pub(super) fn push_gateway(&self, n: u32, inst: gateway::Instance) {
        let slot = ProcSlot::new(
            Component::Gateway(n),
            inst.proc,
            inst.launch,
            inst.addr,
            Probe::Http,
            Duration::from_secs(5),
            Some(inst.addr_file),
        );
        self.state().gateways.push(slot);
    }

    pub(super) fn set_edge(&self, inst: gateway::Instance) {
        let slot = ProcSlot::new(
            Component::Edge,
            inst.proc,
            inst.launch,
            inst.addr,
            Probe::Http,
            Duration::from_secs(3),
            Some(inst.addr_file),
        );
        self.state().edge = Some(slot);
    }

    /// Puts a fault proxy in front of `c` (the gateways connect to it).
    pub(super) fn add_proxy(&self, c: Component, p: Proxy) {
        self.state().proxies.push((c, p));
    }

    pub(super) fn proxy(&self, c: Component) -> Option<ProxyHandle> {
        self.state()
            .proxies
            .iter()
            .find(|(pc, _)| *pc == c)
            .map(|(_, p)| p.handle())
    }

    /// Where `c` listens, as reached from this host.
    pub(super) fn addr_of(&self, c: Component) -> Option<SocketAddr> {
        match self.target(c)? {
            Target::Proc(p) => Some(p.addr),
            Target::Container(k) => Some(k.addr()),
        }
    }

    pub(super) fn proxied(&self) -> Vec<Component> {
        self.state().proxies.iter().map(|(c, _)| *c).collect()
    }

    pub(super) fn gateway_pids(&self) -> Vec<u32> {
        let gateways = self.state().gateways.clone();
        gateways.iter().filter_map(|g| g.pid()).collect()
    }

    pub(super) fn edge_pid(&self) -> Option<u32> {
        let edge = self.state().edge.clone();
        edge.and_then(|e| e.pid())
    }

    /// (redis, postgres) pids of the process backend, when both run.
    pub(super) fn service_pids(&self) -> Option<(u32, u32)> {
        let (redis, postgres) = {
            let st = self.state();
            (st.redis.clone(), st.postgres.clone())
        };
        match (redis, postgres) {
            (Some(ServiceSlot::Proc(r)), Some(ServiceSlot::Proc(p))) => Some((r.pid()?, p.pid()?)),
            _ => None,
        }
    }

    /// Pids of every process that runs now (gateways, edge, process-backend services).
    pub(super) fn pids(&self) -> Vec<u32> {
        let mut pids = self.gateway_pids();
        pids.extend(self.edge_pid());
        let services = {
            let st = self.state();
            [
                st.redis.clone(),
                st.postgres.clone(),
                st.postgres_replica.clone(),
            ]
        };
        for s in services.into_iter().flatten() {
            if let ServiceSlot::Proc(p) = s {
                pids.extend(p.pid());
            }
        }
        pids
    }

    pub(super) fn container_ids(&self) -> Vec<String> {
        self.state()
            .containers
            .as_ref()
            .map(ContainerServices::ids)
            .unwrap_or_default()
    }

    fn components(&self) -> Vec<Component> {
        let st = self.state();
        let mut out = Vec::new();
        if st.redis.is_some() {
            out.push(Component::Redis);
        }
        if st.postgres.is_some() {
            out.push(Component::Postgres);
        }
        if st.postgres_replica.is_some() {
            out.push(Component::PostgresReplica);
        }
        out.extend((1..=st.gateways.len() as u32).map(Component::Gateway));
        if st.edge.is_some() {
            out.push(Component::Edge);
        }
        if st.regions > 1 {
            out.extend(crate::spec::Region::ALL.map(Component::Region));
        }
        out
    }

    fn target(&self, c: Component) -> Option<Target> {
        let st = self.state();
        match c {
            Component::Redis => st.redis.clone().map(Target::from),
            Component::Postgres => st.postgres.clone().map(Target::from),
            Component::PostgresReplica => st.postgres_replica.clone().map(Target::from),
            Component::Gateway(n) => n
                .checked_sub(1)
                .and_then(|i| st.gateways.get(i as usize))
                .cloned()
                .map(Target::Proc),
            Component::Edge => st.edge.clone().map(Target::Proc),
            // A set of gateways: `region.rs` acts on each.
            Component::Region(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The public handle
// ---------------------------------------------------------------------------------------

/// Acts on the components of a running stack; see the module doc. Cheap to clone.
#[derive(Clone)]
pub struct StackHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for StackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackHandle")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl StackHandle {
    pub(super) fn new(shared: Arc<Shared>) -> StackHandle {
        StackHandle { shared }
    }

    /// The stack id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The backend the stack runs on (never `Auto`).
    pub fn backend(&self) -> StackBackend {
        self.shared.backend()
    }

    /// The components this handle can act on, in order: redis, postgres, postgres-replica,
    /// gateway[1..], edge.
    /// Empty with the external backend.
    pub fn components(&self) -> Vec<Component> {
        self.shared.components()
    }

    /// The component's state; None when the stack has no such component.
    pub fn state(&self, c: Component) -> Option<ComponentState> {
        if let Component::Region(r) = c {
            return self.region_state(r);
        }
        match self.shared.target(c)? {
            Target::Proc(p) => Some(p.state()),
            Target::Container(k) => Some(k.state()),
        }
    }

    /// The pid of the component's process while it runs (process-backed components only).
    pub fn pid(&self, c: Component) -> Option<u32> {
        match self.shared.target(c)? {
            Target::Proc(p) => p.pid(),
            Target::Container(_) => None,
        }
    }

    /// Where the component listens, as reached from this host (a container's host port):
    /// the same before and after any operation.
    pub fn addr(&self, c: Component) -> Option<SocketAddr> {
        match self.shared.target(c)? {
            Target::Proc(p) => Some(p.addr),
            Target::Container(k) => Some(k.addr()),
        }
    }

    /// Performs `op` on `c` (see the module doc for what each does per backend) and returns
    /// once it took effect: dead and reaped, stopped, or answering its readiness probe.
    pub async fn act(&self, c: Component, op: StackOp) -> Result<OpReport, ControlError> {
        let started = Instant::now();
        let backend = self.shared.backend();
        if backend == StackBackend::External {
            return Err(ControlError::Unsupported {
                component: c,
                op,
                backend: backend_name(backend),
                hint: format!(
                    "use an exec hook instead (a command that does the {op} in the environment you run, e.g. `kubectl delete pod ...` or `docker {op} ...`)"
                ),
            });
        }
        self.shared.check_open(c, op)?;
        if let Component::Region(r) = c {
            return self.act_region(r, op, started).await;
        }
        let target = self
            .shared
            .target(c)
            .ok_or_else(|| ControlError::NoSuchComponent {
                component: c,
                available: {
                    let all: Vec<String> =
                        self.components().iter().map(ToString::to_string).collect();
                    if all.is_empty() {
                        "none".into()
                    } else {
                        all.join(", ")
                    }
                },
            })?;
        // One operation at a time per component (e.g. a kill while a start waits).
        let _serial = target.op_lock().lock_owned().await;
        let detail = match &target {
            Target::Proc(p) => p.act(&self.shared, op).await,
            Target::Container(k) => k.act(&self.shared, op).await,
        };
        let elapsed = started.elapsed();
        match &detail {
            Ok(d) => {
                tracing::info!(component = %c, %op, elapsed_ms = elapsed.as_millis() as u64, detail = %d, "stack control")
            }
            Err(e) => {
                tracing::warn!(component = %c, %op, elapsed_ms = elapsed.as_millis() as u64, error = %e, "stack control failed")
            }
        }
        Ok(OpReport {
            component: c,
            op,
            elapsed,
            detail: detail?,
        })
    }

    /// Runs `hook.command` with `sh -c` in its own process group, with the stack's
    /// environment plus `hook.env`; see the module doc. A non-zero exit is Ok (check
    /// [`ExecOutput::status`]); running past `hook.timeout` kills the group and is
    /// [`ControlError::ExecTimeout`].
    pub async fn exec(&self, hook: &ExecHook) -> Result<ExecOutput, ControlError> {
        run_exec(&self.shared.env(), hook).await
    }

    /// `TARGET_URL` etc., as [`RunningStack::env`](super::RunningStack::env).
    pub fn env(&self) -> Vec<(String, String)> {
        self.shared.env()
    }
}

/// Runs an exec hook without a stack (a run against an environment loadgate did not
/// start): as [`StackHandle::exec`] with only the hook's own environment added to loadgate's.
pub async fn exec_hook(hook: &ExecHook) -> Result<ExecOutput, ControlError> {
    run_exec(&[], hook).await
}

/// Drills spawn operations as tasks and share handles across threads.
#[allow(dead_code)]
fn _handle_and_its_futures_are_send(h: StackHandle, hook: ExecHook) {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<StackHandle>();
    send(async move {
        let _ = h.act(Component::Redis, StackOp::Kill).await;
        let _ = h.exec(&hook).await;
    });
}

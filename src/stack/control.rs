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
//! Components: `redis`, `postgres`, `gateway[N]` (1-based; also written `gw-N`), `edge`.
//!
//! Operations, per backend:
//!
//! | op | process backend (redis, postgres) and gateways / edge (every backend) | containers backend (redis, postgres) |
//! |---|---|---|
//! | `kill` | SIGKILL to the process group; returns once the leader is reaped and no member of the group is left (postgres backends included) | `docker kill` (SIGKILL); returns once the engine reports it not running |
//! | `stop` | the component's stop signal (redis/gateways SIGTERM, postgres SIGINT), a grace period (3-5 s), then SIGKILL to the group ([`ChildProc::stop`]) | `docker stop -t 3` (unpaused first) |
//! | `start` | from down: the same command again ([`Launch`]): same port, data dir, log and config; then the readiness probe used at stack start. From up: a no-op. From paused: an error ("use resume") | `docker start`: the host port is fixed in the container's port bindings, so it is the same; then the same probe |
//! | `restart` | stop, then start | stop, then start |
//! | `pause` | SIGSTOP to the process group; returns once the leader shows as stopped | `docker pause` (cgroup freezer) |
//! | `resume` | SIGCONT to the process group, then the readiness probe (bounded) | `docker unpause`, then the probe |
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
//! Shutdown ([`RunningStack::shutdown`](super::RunningStack::shutdown) and `Drop`) marks the
//! stack closed and
//! cancels in-flight operations (their readiness waits end at once), waits (bounded) for
//! them to let go of their component, then stops whatever each slot holds: running, paused
//! (SIGCONT / unpause first, or the stop signal would wait) or nothing (already killed).
//! After that every operation answers [`ControlError::ShutDown`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::child::{self, ChildProc, Launch};
use super::containers::ContainerServices;
use super::docker::{self, ContainerOp};
use super::process::ProcessServices;
use super::registry::SharedEntry;
use super::{backend_name, gateway, health, StackError};
use crate::spec::StackBackend;

pub use crate::spec::stack::{Component, ParseComponentError, ParseStackOpError, StackOp};

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

/// Errors of the control handle; each names the component and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot {op} {component}: the {backend} backend runs no component loadgate controls; {hint}")]
    Unsupported {
        component: Component,
        op: StackOp,
        backend: &'static str,
        hint: String,
    },
    #[error("cannot act on {component}: this stack has no such component (it has: {available}); check the component name and the stack's `gateways` / `edge` settings")]
    NoSuchComponent {
        component: Component,
        available: String,
    },
    #[error("cannot {op} {component}: it is {state}; {hint}")]
    WrongState {
        component: Component,
        op: StackOp,
        state: ComponentState,
        hint: &'static str,
    },
    #[error("{op} {component} failed: {reason}")]
    Failed {
        component: Component,
        op: StackOp,
        reason: String,
    },
    #[error("{component} did not become ready: {reason}")]
    NotReady {
        component: Component,
        reason: String,
    },
    #[error("cannot {op} {component}: the stack was shut down (use a handle of a running stack)")]
    ShutDown { component: Component, op: StackOp },
    #[error("exec hook `{command}`: cannot start `sh -c`: {source} (check that /bin/sh exists and is executable)")]
    ExecSpawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec hook `{command}` did not finish within {timeout:?}; its process group was killed (SIGKILL). Raise the hook's timeout or make the command finish sooner")]
    ExecTimeout { command: String, timeout: Duration },
}

/// How long a killed or stopped process group may take to be gone (postgres backends).
const GROUP_GONE: Duration = Duration::from_secs(5);
/// `docker stop` timeout (then the engine sends SIGKILL).
const CONTAINER_STOP_TIMEOUT_S: i32 = 3;
/// How long a killed / stopped container may take to be reported not running.
const CONTAINER_DOWN: Duration = Duration::from_secs(15);
/// How long shutdown waits for in-flight operations to let go of their component.
const SHUTDOWN_OP_WAIT: Duration = Duration::from_secs(15);

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
    async fn check(&self, addr: SocketAddr, http: Option<&reqwest::Client>) -> Result<(), String> {
        match self {
            Probe::Redis { password } => health::redis_ping(addr, Some(password)).await,
            Probe::Postgres => health::postgres_accepting(addr, "loadgate", "loadgate").await,
            Probe::Http => match http {
                Some(client) => health::http_ready(client, &format!("http://{addr}")).await,
                None => Err("no HTTP client".into()),
            },
        }
    }

    /// A client for HTTP probes, made per wait: a reqwest client keeps connections on the
    /// runtime that opened them, and a stack (and its handles) may outlive a runtime.
    fn client(&self) -> Result<Option<reqwest::Client>, String> {
        match self {
            Probe::Http => reqwest::Client::builder()
                .no_proxy()
                .build()
                .map(Some)
                .map_err(|e| format!("building an HTTP client: {e}")),
            _ => Ok(None),
        }
    }
}

/// The last `n` lines of a log, prefixed for an error message (empty when there is none).
fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = child::last_lines(path, n);
    if text.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- last log lines ({}) ---\n{text}", path.display())
    }
}

fn join_error(component: Component, op: StackOp, e: tokio::task::JoinError) -> ControlError {
    ControlError::Failed {
        component,
        op,
        reason: format!("the blocking task waiting for the process failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// Process-backed components (redis/postgres of the process backend, gateways, edge)
// ---------------------------------------------------------------------------------------

struct ProcInner {
    /// None: down (killed or stopped, and reaped).
    proc: Option<ChildProc>,
    state: ComponentState,
}

/// One process-backed component: what runs now, and how to start it again.
pub(super) struct ProcSlot {
    component: Component,
    /// The command that started it, its port fixed (restarts listen where it listened).
    launch: Launch,
    addr: SocketAddr,
    probe: Probe,
    /// Stop grace (stop signal, then SIGKILL).
    grace: Duration,
    /// Gateways and the edge write their bound address here once serving.
    addr_file: Option<PathBuf>,
    /// Held only for short steps (a signal, a spawn, a record update), never across an
    /// `.await`.
    inner: Mutex<ProcInner>,
    /// Serializes operations on this component (held across awaits).
    op: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for ProcSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcSlot")
            .field("component", &self.component)
            .field("addr", &self.addr)
            .field("pid", &self.pid())
            .finish()
    }
}

impl ProcSlot {
    fn new(
        component: Component,
        proc: ChildProc,
        launch: Launch,
        addr: SocketAddr,
        probe: Probe,
        grace: Duration,
        addr_file: Option<PathBuf>,
    ) -> Arc<ProcSlot> {
        Arc::new(ProcSlot {
            component,
            launch,
            addr,
            probe,
            grace,
            addr_file,
            inner: Mutex::new(ProcInner {
                proc: Some(proc),
                state: ComponentState::Up,
            }),
            op: Arc::default(),
        })
    }

    fn inner(&self) -> MutexGuard<'_, ProcInner> {
        lock(&self.inner)
    }

    /// A process that exited on its own is down: reap it (it has exited, so this does not
    /// block) and SIGKILL what is left of its group.
    fn refresh(g: &mut ProcInner) {
        if let Some(p) = g.proc.as_mut() {
            if p.exited().is_some() {
                if let Some(mut p) = g.proc.take() {
                    p.kill();
                }
                g.state = ComponentState::Down;
            }
        }
    }

    fn state(&self) -> ComponentState {
        let mut g = self.inner();
        Self::refresh(&mut g);
        g.state
    }

    fn pid(&self) -> Option<u32> {
        self.inner().proc.as_ref().map(ChildProc::pid)
    }

    /// Takes the process out (shutdown): the slot is down afterwards.
    fn take(&self) -> Option<ChildProc> {
        let mut g = self.inner();
        g.state = ComponentState::Down;
        g.proc.take()
    }

    fn failed(&self, op: StackOp, reason: String) -> ControlError {
        ControlError::Failed {
            component: self.component,
            op,
            reason,
        }
    }

    async fn act(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
        match op {
            StackOp::Kill => self.kill(sh).await,
            StackOp::Stop => self.stop(sh, op).await,
            StackOp::Start => self.start(sh, op).await,
            StackOp::Restart => {
                let before = self.pid();
                self.stop(sh, op).await?;
                let after = self.start(sh, op).await?;
                Ok(match before {
                    Some(pid) => format!("pid {pid} -> {after}"),
                    None => format!("was down; {after}"),
                })
            }
            StackOp::Pause => self.pause(sh).await,
            StackOp::Resume => self.resume(sh).await,
        }
    }

    async fn kill(&self, sh: &Shared) -> Result<String, ControlError> {
        let op = StackOp::Kill;
        let taken = {
            let mut g = self.inner();
            sh.check_open(self.component, op)?;
            Self::refresh(&mut g);
            g.state = ComponentState::Down;
            g.proc.take()
        };
        let Some(mut p) = taken else {
            return Ok("already down".into());
        };
        let (pid, start) = (p.pid(), p.start_time());
        // Signals do not block; the wait for the group to be gone does: off the runtime.
        let gone = tokio::task::spawn_blocking(move || {
            p.kill();
            child::wait_group_gone(pid, start, GROUP_GONE)
        })
        .await
        .map_err(|e| join_error(self.component, op, e))?;
        if !gone {
            return Err(self.failed(
                op,
                format!("pid {pid} was killed but members of its process group still run after {GROUP_GONE:?}; look for processes in group {pid} (ps -g {pid})"),
            ));
        }
        Ok(format!(
            "pid {pid} killed (SIGKILL to its process group) and reaped"
        ))
    }

    async fn stop(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
        let taken = {
            let mut g = self.inner();
            sh.check_open(self.component, op)?;
            Self::refresh(&mut g);
            g.state = ComponentState::Down;
            g.proc.take()
        };
        let Some(mut p) = taken else {
            return Ok("already down".into());
        };
        let (pid, start, grace) = (p.pid(), p.start_time(), self.grace);
        // ChildProc::stop also sends SIGCONT, so a paused component stops gracefully too.
        let gone = tokio::task::spawn_blocking(move || {
            p.stop(grace);
            child::wait_group_gone(pid, start, GROUP_GONE)
        })
        .await
        .map_err(|e| join_error(self.component, op, e))?;
        if !gone {
            return Err(self.failed(
                op,
                format!("pid {pid} was stopped but members of its process group still run after {GROUP_GONE:?}; look for processes in group {pid} (ps -g {pid})"),
            ));
        }
        Ok(format!("pid {pid} stopped (grace {grace:?}) and reaped"))
    }

    async fn start(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
        let pid = {
            let mut g = self.inner();
            sh.check_open(self.component, op)?;
            Self::refresh(&mut g);
            match (g.state, g.proc.as_ref().map(ChildProc::pid)) {
                (ComponentState::Up, Some(pid)) => {
                    return Ok(format!("already up (pid {pid})"));
                }
                (ComponentState::Paused, _) => {
                    return Err(ControlError::WrongState {
                        component: self.component,
                        op,
                        state: ComponentState::Paused,
                        hint: "a paused component is continued with `resume`, not started",
                    });
                }
                // A start whose caller went away (its future was dropped while waiting)
                // left its process here, still starting: wait for that one rather than
                // start a second one on the same port.
                (_, Some(pid)) => Some(pid),
                (_, None) => None,
            }
        };
        let pid = match pid {
            Some(pid) => pid,
            None => self.spawn(sh, op)?,
        };
        match self.wait_ready(sh, op, pid, sh.ready_timeout, true).await {
            Ok(()) => {
                let mut g = self.inner();
                if g.proc.as_ref().map(ChildProc::pid) == Some(pid) {
                    g.state = ComponentState::Up;
                }
                Ok(format!("pid {pid} ready on {}", self.addr))
            }
            Err(e) => {
                // Half-started is worse than down: stop what we started.
                let taken = {
                    let mut g = self.inner();
                    g.state = ComponentState::Down;
                    g.proc.take()
                };
                if let Some(mut p) = taken {
                    let _ = tokio::task::spawn_blocking(move || p.kill()).await;
                }
                Err(e)
            }
        }
    }

    /// Starts the process again from its [`Launch`] and puts it in the slot (still down
    /// until it answers). Returns its pid.
    fn spawn(&self, sh: &Shared, op: StackOp) -> Result<u32, ControlError> {
        let mut g = self.inner();
        // Checked under the slot lock: shutdown marks the stack closed before it empties the
        // slots, so either it finds this process in the slot or no process is started.
        sh.check_open(self.component, op)?;
        if g.proc.is_some() {
            return Err(self.failed(op, "another process is in its slot".into()));
        }
        // The next process must write a fresh address file: a stale one would let the
        // readiness wait accept an address the new process never bound.
        if let Some(f) = &self.addr_file {
            let _ = std::fs::remove_file(f);
        }
        let mut p = self.launch.spawn().map_err(|e| {
            self.failed(
                op,
                format!("starting {} failed: {e}", self.launch.program.display()),
            )
        })?;
        let pid = p.pid();
        // Recorded before anything else can fail: if loadgate is SIGKILLed from here on, the
        // next start reaps this process.
        if let Err(e) = sh.entry.add_respawned_child(&self.launch.name, pid) {
            p.kill();
            return Err(self.failed(op, format!("recording pid {pid}: {e}")));
        }
        g.proc = Some(p);
        g.state = ComponentState::Down; // until it answers
        Ok(pid)
    }

    async fn pause(&self, sh: &Shared) -> Result<String, ControlError> {
        let op = StackOp::Pause;
        let pid = {
            let mut g = self.inner();
            sh.check_open(self.component, op)?;
            Self::refresh(&mut g);
            let pid = g.proc.as_ref().map(ChildProc::pid);
            match (g.state, pid) {
                (ComponentState::Paused, Some(pid)) => {
                    return Ok(format!("already paused (pid {pid})"))
                }
                (ComponentState::Up, Some(pid)) => {
                    child::signal_group(pid as i32, libc::SIGSTOP);
                    g.state = ComponentState::Paused;
                    pid
                }
                (state, _) => {
                    return Err(ControlError::WrongState {
                        component: self.component,
                        op,
                        state,
                        hint: "only a running component can be paused; `start` it first",
                    })
                }
            }
        };
        // Return once it is actually stopped, so the caller can rely on it not answering.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match child::proc_stat(pid) {
                Some(s) if s.state == 'T' => break,
                None => break, // died meanwhile; the next state() says down
                _ if Instant::now() >= deadline => {
                    return Err(self.failed(
                        op,
                        format!("pid {pid} was sent SIGSTOP but does not show as stopped after 2s"),
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        Ok(format!("pid {pid} paused (SIGSTOP to its process group)"))
    }

    async fn resume(&self, sh: &Shared) -> Result<String, ControlError> {
        let op = StackOp::Resume;
        let pid = {
            let mut g = self.inner();
            sh.check_open(self.component, op)?;
            Self::refresh(&mut g);
            let pid = g.proc.as_ref().map(ChildProc::pid);
            match (g.state, pid) {
                (ComponentState::Up, Some(pid)) => return Ok(format!("already up (pid {pid})")),
                (ComponentState::Paused, Some(pid)) => {
                    child::signal_group(pid as i32, libc::SIGCONT);
                    g.state = ComponentState::Up;
                    pid
                }
                (state, _) => return Err(ControlError::WrongState {
                    component: self.component,
                    op,
                    state,
                    hint: "a killed or stopped component is brought back with `start`, not resumed",
                }),
            }
        };
        self.wait_ready(sh, op, pid, sh.ready_timeout, false)
            .await?;
        Ok(format!("pid {pid} resumed and ready on {}", self.addr))
    }

    /// Polls the readiness probe every 100 ms until it answers, the process `pid` exits, the
    /// stack is shut down, or `within` passes. `fresh`: a just-started gateway/edge must
    /// first have written its address file naming [`ProcSlot::addr`].
    async fn wait_ready(
        &self,
        sh: &Shared,
        op: StackOp,
        pid: u32,
        within: Duration,
        fresh: bool,
    ) -> Result<(), ControlError> {
        let not_ready = |reason: String| ControlError::NotReady {
            component: self.component,
            reason,
        };
        let deadline = Instant::now() + within;
        let client = self.probe.client().map_err(not_ready)?;
        loop {
            let bound = match (&self.addr_file, fresh) {
                (Some(f), true) => {
                    std::fs::read_to_string(f)
                        .ok()
                        .and_then(|s| s.trim().parse::<SocketAddr>().ok())
                        == Some(self.addr)
                }
                _ => true,
            };
            let last = if bound {
                match self.probe.check(self.addr, client.as_ref()).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                }
            } else {
                format!(
                    "it has not written {} into {} yet",
                    self.addr,
                    self.addr_file
                        .as_deref()
                        .unwrap_or(std::path::Path::new("its address file"))
                        .display()
                )
            };
            {
                let mut g = self.inner();
                sh.check_open(self.component, op)?;
                match g.proc.as_mut() {
                    Some(p) if p.pid() == pid => {
                        if let Some(status) = p.exited() {
                            let log = log_tail(&self.launch.log_path, 20);
                            let hint = if log.contains("already in use") {
                                format!(" (port {} is taken by another process: free it, or restart the whole stack to get new ports)", self.addr.port())
                            } else {
                                String::new()
                            };
                            return Err(not_ready(format!(
                                "pid {pid} exited with {status}{hint} (last probe: {last}){log}"
                            )));
                        }
                    }
                    _ => {
                        return Err(not_ready(format!(
                            "pid {pid} was taken out of its slot while starting (stack shut down?)"
                        )))
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(not_ready(format!(
                    "no answer on {} within {within:?} (last probe: {last}){}",
                    self.addr,
                    log_tail(&self.launch.log_path, 20)
                )));
            }
            tokio::select! {
                _ = sh.cancel.cancelled() => {
                    return Err(ControlError::ShutDown { component: self.component, op });
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Containers (redis/postgres of the containers backend)
// ---------------------------------------------------------------------------------------

/// One container: its id, the host port fixed in its port bindings, and the state the
/// handle left it in.
pub(super) struct ContainerSlot {
    component: Component,
    id: String,
    container_port: u16,
    host_port: u16,
    probe: Probe,
    state: Mutex<ComponentState>,
    op: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for ContainerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerSlot")
            .field("component", &self.component)
            .field("id", &self.short_id())
            .field("host_port", &self.host_port)
            .finish()
    }
}

impl ContainerSlot {
    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.host_port).into()
    }

    fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    fn state(&self) -> ComponentState {
        *lock(&self.state)
    }

    fn set_state(&self, s: ComponentState) {
        *lock(&self.state) = s;
    }

    fn failed(&self, op: StackOp, e: impl fmt::Display) -> ControlError {
        ControlError::Failed {
            component: self.component,
            op,
            reason: format!(
                "container {}: {e} (check the engine with `docker inspect {}`)",
                self.short_id(),
                self.short_id()
            ),
        }
    }

    async fn docker(&self, op: StackOp, what: ContainerOp) -> Result<(), ControlError> {
        docker::container_op(&self.id, what)
            .await
            .map_err(|e| self.failed(op, e))
    }

    async fn act(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
        sh.check_open(self.component, op)?;
        match op {
            StackOp::Kill => self.down(op, ContainerOp::Kill).await,
            StackOp::Stop => {
                self.down(
                    op,
                    ContainerOp::Stop {
                        timeout_s: CONTAINER_STOP_TIMEOUT_S,
                    },
                )
                .await
            }
            StackOp::Start => self.start(sh, op).await,
            StackOp::Restart => {
                self.down(
                    op,
                    ContainerOp::Stop {
                        timeout_s: CONTAINER_STOP_TIMEOUT_S,
                    },
                )
                .await?;
                self.start(sh, op).await
            }
            StackOp::Pause => match self.state() {
                ComponentState::Paused => {
                    Ok(format!("container {} already paused", self.short_id()))
                }
                ComponentState::Up => {
                    self.docker(op, ContainerOp::Pause).await?;
                    self.set_state(ComponentState::Paused);
                    Ok(format!("container {} paused", self.short_id()))
                }
                ComponentState::Down => Err(ControlError::WrongState {
                    component: self.component,
                    op,
                    state: ComponentState::Down,
                    hint: "only a running component can be paused; `start` it first",
                }),
            },
            StackOp::Resume => match self.state() {
                ComponentState::Up => Ok(format!("container {} already up", self.short_id())),
                ComponentState::Paused => {
                    self.docker(op, ContainerOp::Unpause).await?;
                    self.set_state(ComponentState::Up);
                    self.wait_ready(sh, op).await?;
                    Ok(format!(
                        "container {} resumed and ready on {}",
                        self.short_id(),
                        self.addr()
                    ))
                }
                ComponentState::Down => Err(ControlError::WrongState {
                    component: self.component,
                    op,
                    state: ComponentState::Down,
                    hint: "a killed or stopped component is brought back with `start`, not resumed",
                }),
            },
        }
    }

    /// Kill or stop, then wait until the engine reports it not running.
    async fn down(&self, op: StackOp, how: ContainerOp) -> Result<String, ControlError> {
        match self.state() {
            ComponentState::Down => {
                return Ok(format!("container {} already down", self.short_id()))
            }
            // A frozen container cannot act on the stop signal: thaw it first.
            ComponentState::Paused if how != ContainerOp::Kill => {
                self.docker(op, ContainerOp::Unpause).await?;
            }
            _ => {}
        }
        self.docker(op, how).await?;
        self.set_state(ComponentState::Down);
        let deadline = Instant::now() + CONTAINER_DOWN;
        loop {
            let (run, _) = docker::inspect_run_state(&self.id, self.container_port)
                .await
                .map_err(|e| self.failed(op, e))?;
            if !run.running {
                break;
            }
            if Instant::now() >= deadline {
                return Err(self.failed(
                    op,
                    format!("still running {CONTAINER_DOWN:?} after docker {op}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let verb = if how == ContainerOp::Kill {
            "killed (SIGKILL)"
        } else {
            "stopped"
        };
        Ok(format!(
            "container {} {verb}; host port {} kept in its port bindings",
            self.short_id(),
            self.host_port
        ))
    }

    async fn start(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
        match self.state() {
            ComponentState::Up => return Ok(format!("container {} already up", self.short_id())),
            ComponentState::Paused => {
                return Err(ControlError::WrongState {
                    component: self.component,
                    op,
                    state: ComponentState::Paused,
                    hint: "a paused component is continued with `resume`, not started",
                })
            }
            ComponentState::Down => {}
        }
        if let Err(e) = docker::container_op(&self.id, ContainerOp::Start).await {
            let text = e.to_string().to_ascii_lowercase();
            let hint = if text.contains("already allocated") || text.contains("already in use") {
                format!("; host port {} is taken by another process: free it, or restart the whole stack to get new ports", self.host_port)
            } else {
                String::new()
            };
            return Err(self.failed(op, format!("{e}{hint}")));
        }
        // The state stays down until the probe answers; a failed start is killed again.
        let result = async {
            let (_, port) = docker::inspect_run_state(&self.id, self.container_port)
                .await
                .map_err(|e| self.failed(op, e))?;
            if port != Some(self.host_port) {
                return Err(self.failed(
                    op,
                    format!(
                        "published on host port {port:?} instead of {}; the URLs the stack exported are stale",
                        self.host_port
                    ),
                ));
            }
            self.wait_ready(sh, op).await
        }
        .await;
        match result {
            Ok(()) => {
                self.set_state(ComponentState::Up);
                Ok(format!(
                    "container {} started and ready on {}",
                    self.short_id(),
                    self.addr()
                ))
            }
            Err(e) => {
                let _ = docker::container_op(&self.id, ContainerOp::Kill).await;
                Err(e)
            }
        }
    }

    async fn wait_ready(&self, sh: &Shared, op: StackOp) -> Result<(), ControlError> {
        let deadline = Instant::now() + sh.ready_timeout;
        loop {
            let last = match self.probe.check(self.addr(), None).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            sh.check_open(self.component, op)?;
            if Instant::now() >= deadline {
                return Err(ControlError::NotReady {
                    component: self.component,
                    reason: format!(
                        "container {} did not answer on {} within {:?} (last probe: {last}); see `docker logs {}`",
                        self.short_id(),
                        self.addr(),
                        sh.ready_timeout,
                        self.short_id()
                    ),
                });
            }
            tokio::select! {
                _ = sh.cancel.cancelled() => {
                    return Err(ControlError::ShutDown { component: self.component, op });
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
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
    gateways: Vec<Arc<ProcSlot>>,
    edge: Option<Arc<ProcSlot>>,
    /// Owns the containers (removing them on shutdown / drop).
    containers: Option<ContainerServices>,
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
            .field("gateways", &st.gateways)
            .field("edge", &st.edge)
            .field("containers", &st.containers)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish()
    }
}

/// What shutdown takes out of the slots.
struct Taken {
    edge: Option<ChildProc>,
    gateways: Vec<ChildProc>,
    redis: Option<ChildProc>,
    postgres: Option<ChildProc>,
    containers: Option<ContainerServices>,
    paused_containers: Vec<String>,
}

impl Taken {
    /// Continues every paused process first: a gateway draining on SIGTERM waits for its
    /// in-flight Redis / PostgreSQL calls, which a paused service would hold for the whole
    /// grace period. Then the edge and gateways, then the services (blocking: stop signal,
    /// grace, SIGKILL; ChildProc::stop also sends SIGCONT).
    fn stop_processes(&mut self) {
        let all = self
            .edge
            .iter()
            .chain(self.gateways.iter())
            .chain(self.redis.iter())
            .chain(self.postgres.iter());
        for p in all {
            // SIGCONT to a running process does nothing.
            child::signal_group(p.pid() as i32, libc::SIGCONT);
        }
        if let Some(mut e) = self.edge.take() {
            e.stop(Duration::from_secs(3));
        }
        // Signal all first so they drain in parallel, then wait for each.
        for g in &self.gateways {
            child::signal_group(g.pid() as i32, libc::SIGTERM);
            child::signal_group(g.pid() as i32, libc::SIGCONT);
        }
        for mut g in std::mem::take(&mut self.gateways) {
            g.stop(Duration::from_secs(5));
        }
        if let Some(mut r) = self.redis.take() {
            r.stop(Duration::from_secs(3));
        }
        if let Some(mut p) = self.postgres.take() {
            p.stop(Duration::from_secs(5));
        }
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
                gateways: Vec::new(),
                edge: None,
                containers: None,
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
        let mut st = self.state();
        st.redis = Some(ServiceSlot::Proc(redis));
        st.postgres = Some(ServiceSlot::Proc(postgres));
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
        let mut st = self.state();
        st.redis = redis;
        st.postgres = postgres;
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
            [st.redis.clone(), st.postgres.clone()]
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
        out.extend((1..=st.gateways.len() as u32).map(Component::Gateway));
        if st.edge.is_some() {
            out.push(Component::Edge);
        }
        out
    }

    fn target(&self, c: Component) -> Option<Target> {
        let st = self.state();
        match c {
            Component::Redis => st.redis.clone().map(Target::from),
            Component::Postgres => st.postgres.clone().map(Target::from),
            Component::Gateway(n) => n
                .checked_sub(1)
                .and_then(|i| st.gateways.get(i as usize))
                .cloned()
                .map(Target::Proc),
            Component::Edge => st.edge.clone().map(Target::Proc),
        }
    }

    /// Marks the stack closed and ends in-flight readiness waits.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Every component's operation lock.
    fn op_locks(&self) -> Vec<Arc<tokio::sync::Mutex<()>>> {
        let st = self.state();
        let mut locks: Vec<_> = st.edge.iter().map(|e| e.op.clone()).collect();
        locks.extend(st.gateways.iter().map(|g| g.op.clone()));
        for s in [&st.redis, &st.postgres].into_iter().flatten() {
            locks.push(Target::from(s.clone()).op_lock());
        }
        locks
    }

    /// Empties every slot (after [`Shared::close`]).
    fn take_all(&self) -> Taken {
        let mut st = self.state();
        let proc_of = |s: &Option<ServiceSlot>| match s {
            Some(ServiceSlot::Proc(p)) => p.take(),
            _ => None,
        };
        let paused_containers = [&st.redis, &st.postgres]
            .into_iter()
            .flatten()
            .filter_map(|s| match s {
                ServiceSlot::Container(c) if c.state() == ComponentState::Paused => {
                    c.set_state(ComponentState::Down);
                    Some(c.id.clone())
                }
                _ => None,
            })
            .collect();
        Taken {
            edge: st.edge.as_ref().and_then(|e| e.take()),
            gateways: st.gateways.iter().filter_map(|g| g.take()).collect(),
            redis: proc_of(&st.redis),
            postgres: proc_of(&st.postgres),
            containers: st.containers.take(),
            paused_containers,
        }
    }

    /// Orderly async stop: close, wait (bounded) for in-flight operations, stop processes
    /// on a blocking thread, unpause and remove containers, delete the entry.
    pub(super) async fn shutdown(&self) -> Result<(), StackError> {
        self.close();
        let mut guards = Vec::new();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_OP_WAIT;
        for l in self.op_locks() {
            match tokio::time::timeout_at(deadline, l.lock_owned()).await {
                Ok(g) => guards.push(g),
                Err(_) => {
                    tracing::warn!(
                        "a stack control operation did not end within {SHUTDOWN_OP_WAIT:?} of shutdown; stopping the stack anyway"
                    );
                    break;
                }
            }
        }
        let mut taken = self.take_all();
        // Thawed before the gateways stop, for the same reason as in stop_processes.
        for id in std::mem::take(&mut taken.paused_containers) {
            let _ = docker::container_op(&id, ContainerOp::Unpause).await;
        }
        let containers = tokio::task::spawn_blocking(move || {
            taken.stop_processes();
            taken.containers.take()
        })
        .await
        .map_err(|e| StackError::Io {
            what: "stopping the stack".into(),
            source: std::io::Error::other(e),
        })?;
        let mut result = Ok(());
        if let Some(c) = containers {
            result = c.remove().await;
        }
        self.entry.remove();
        drop(guards);
        result
    }

    /// Synchronous best-effort stop (Drop, also on panic unwind). In-flight operations are
    /// not waited for: their readiness waits end at their next poll, and a process they hold
    /// outside a slot is being killed or stopped by them (and is stopped by ChildProc's Drop
    /// in any case).
    pub(super) fn cleanup_sync(&self) {
        self.close();
        let mut taken = self.take_all();
        docker::unpause_blocking(std::mem::take(&mut taken.paused_containers));
        taken.stop_processes();
        if let Some(c) = taken.containers.take() {
            c.remove_blocking();
        }
        self.entry.remove();
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

    /// The components this handle can act on, in order: redis, postgres, gateway[1..], edge.
    /// Empty with the external backend.
    pub fn components(&self) -> Vec<Component> {
        self.shared.components()
    }

    /// The component's state; None when the stack has no such component.
    pub fn state(&self, c: Component) -> Option<ComponentState> {
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

/// Kills the hook's process group unless disarmed (the exec future was dropped mid-way).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            child::signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Reads a pipe to its end, keeping the last [`EXEC_TAIL_BYTES`].
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut t = lock(&tail);
                t.extend_from_slice(&buf[..n]);
                if t.len() > EXEC_TAIL_BYTES {
                    let cut = t.len() - EXEC_TAIL_BYTES;
                    t.drain(..cut);
                }
            }
        }
    }
}

/// The tail as text; a character cut at the start of the tail is dropped, not garbled.
fn tail_text(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .take(3)
        .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
        .count();
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

async fn run_exec(
    stack_env: &[(String, String)],
    hook: &ExecHook,
) -> Result<ExecOutput, ControlError> {
    use std::process::Stdio;
    let started = Instant::now();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&hook.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(stack_env.iter().map(|(k, v)| (k, v)))
        .envs(hook.env.iter().map(|(k, v)| (k, v)));
    let spawn_err = |source| ControlError::ExecSpawn {
        command: hook.command.clone(),
        source,
    };
    // Own process group and parent-death signal, like every server of the stack.
    let mut child = child::spawn_guarded(cmd, None).map_err(spawn_err)?;
    let pgid = child.id() as i32;
    let mut guard = GroupGuard { pgid, armed: true };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // std's wait blocks: on a blocking thread, started first so the child is reaped on
    // every path below (the guard kills the group when this function returns early or its
    // future is dropped, which ends the wait).
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    let out_tail = Arc::new(Mutex::new(Vec::new()));
    let err_tail = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(p) = stdout {
        let p = tokio::process::ChildStdout::from_std(p).map_err(spawn_err)?;
        readers.push(tokio::spawn(read_tail(p, out_tail.clone())));
    }
    if let Some(p) = stderr {
        let p = tokio::process::ChildStderr::from_std(p).map_err(spawn_err)?;
        readers.push(tokio::spawn(read_tail(p, err_tail.clone())));
    }
    let waited = tokio::time::timeout(hook.timeout, &mut wait).await;
    // Whatever happened, nothing of the hook's group outlives it (background jobs included).
    child::signal_group(pgid, libc::SIGKILL);
    let status = match waited {
        Ok(joined) => joined
            .map_err(|e| spawn_err(std::io::Error::other(e)))?
            .map_err(spawn_err)?,
        Err(_) => {
            let _ = wait.await;
            guard.armed = false;
            for r in readers {
                r.abort();
            }
            return Err(ControlError::ExecTimeout {
                command: hook.command.clone(),
                timeout: hook.timeout,
            });
        }
    };
    guard.armed = false;
    // The pipes close once every holder is gone; one that escaped the group (setsid) could
    // keep them open, so the readers get a short grace and then whatever they have.
    for mut r in readers {
        if tokio::time::timeout(Duration::from_secs(1), &mut r)
            .await
            .is_err()
        {
            r.abort();
        }
    }
    let stdout_tail = tail_text(&lock(&out_tail));
    let stderr_tail = tail_text(&lock(&err_tail));
    Ok(ExecOutput {
        status: status.code(),
        stdout_tail,
        stderr_tail,
        elapsed: started.elapsed(),
    })
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

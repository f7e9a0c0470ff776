//! Process-backed components: redis / postgres of the process backend, gateways and the
//! edge in every backend. Kill, stop, start, pause and resume act on the component's process
//! group; a start or resume returns once the readiness probe answers.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{lock, Component, ComponentState, ControlError, Probe, Shared, StackOp};
use crate::stack::child::{self, ChildProc, Launch};
use nix::sys::signal::Signal;

/// How long a killed or stopped process group may take to be gone (postgres backends).
const GROUP_GONE: Duration = Duration::from_secs(5);

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
    pub(super) addr: SocketAddr,
    probe: Probe,
    /// Stop grace (stop signal, then SIGKILL).
    grace: Duration,
    /// Gateways and the edge write their bound address here once serving.
    addr_file: Option<PathBuf>,
    /// Held only for short steps (a signal, a spawn, a record update), never across an
    /// `.await`.
    inner: Mutex<ProcInner>,
    /// Serializes operations on this component (held across awaits).
    pub(super) op: Arc<tokio::sync::Mutex<()>>,
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
    pub(super) fn new(
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

    pub(super) fn state(&self) -> ComponentState {
        let mut g = self.inner();
        Self::refresh(&mut g);
        g.state
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.inner().proc.as_ref().map(ChildProc::pid)
    }

    /// Takes the process out (shutdown): the slot is down afterwards.
    pub(super) fn take(&self) -> Option<ChildProc> {
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

    pub(super) async fn act(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
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
                    child::signal_group(pid as i32, Signal::SIGSTOP);
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
                    child::signal_group(pid as i32, Signal::SIGCONT);
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
        let client = self.probe.client().map_err(|e| not_ready(e.to_string()))?;
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
                    Err(e) => e.to_string(),
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

//! Redis / PostgreSQL of the containers backend: docker kill, stop, start, pause and
//! unpause; after a start the host port is checked against the one the stack exported, then
//! the readiness probe must answer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, Component, ComponentState, ControlError, Probe, Shared, StackOp};
use crate::stack::docker::{self, ContainerOp};

/// `docker stop` timeout (then the engine sends SIGKILL).
const CONTAINER_STOP_TIMEOUT_S: i32 = 3;
/// How long a killed / stopped container may take to be reported not running.
const CONTAINER_DOWN: Duration = Duration::from_secs(15);

/// One container: its id, the host port fixed in its port bindings, and the state the
/// handle left it in.
pub(super) struct ContainerSlot {
    pub(super) component: Component,
    pub(super) id: String,
    pub(super) container_port: u16,
    pub(super) host_port: u16,
    pub(super) probe: Probe,
    pub(super) state: Mutex<ComponentState>,
    pub(super) op: Arc<tokio::sync::Mutex<()>>,
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
    pub(super) fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.host_port).into()
    }

    fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    pub(super) fn state(&self) -> ComponentState {
        *lock(&self.state)
    }

    pub(super) fn set_state(&self, s: ComponentState) {
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

    pub(super) async fn act(&self, sh: &Shared, op: StackOp) -> Result<String, ControlError> {
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

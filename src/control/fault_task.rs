//! One fault's schedule, run in its own task by the `faults` controller ([`super::faults`]):
//! waits for its time (or its condition), injects it through the stack handle or an exec
//! hook, holds it, undoes it, reads back the writes it answers for, and records every step
//! as an event and an [`Outcome`] the controller judges when the load has ended.
//!
//! Kept apart from the controller: the controller is the run-clock side (ticks, conditions,
//! judgement), this is the side that waits on the stack.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::fault_ledger::LostIds;
use super::faults::{lock, Outcome, Outcomes};
use crate::fault::proxy::Applied;
use crate::metrics::recorder::Aggregator;
use crate::metrics::{round3, EventKind};
use crate::spec::fault::{ExecFault, FaultAction, FaultSpec};
use crate::spec::RunSpec;
use crate::stack::{ControlError, ExecHook, ExecOutput, StackHandle};

/// How often an exec fault's check is retried until its `check_within` has passed.
const CHECK_RETRY: Duration = Duration::from_millis(500);

/// One fault's schedule, run in its own task.
pub(super) struct FaultTask {
    pub(super) index: usize,
    /// Bumped while the fault's `when:` condition holds (None: a timed fault).
    pub(super) trigger: Option<watch::Receiver<u64>>,
    pub(super) spec: FaultSpec,
    pub(super) stack: Option<StackHandle>,
    pub(super) agg: Arc<Aggregator>,
    pub(super) origin: Instant,
    pub(super) stop: CancellationToken,
    pub(super) outcomes: Outcomes,
    pub(super) run: Arc<RunSpec>,
    pub(super) lost: LostIds,
}

/// Why an injection or its undoing failed; the message goes into the fault's events and its
/// injection check.
#[derive(Debug, thiserror::Error)]
pub enum FaultOpError {
    #[error("cannot {what}: this run started no reference stack (use `action: exec` with a command for an environment loadgate does not run)")]
    NoStack { what: String },
    #[error(transparent)]
    Stack(#[from] ControlError),
    #[error("`{command}` {exit}")]
    Command { command: String, exit: String },
    #[error("{done}, but not confirmed: check `{check}` {last} for {within_s} s")]
    Unconfirmed {
        done: String,
        check: String,
        last: String,
        within_s: f64,
    },
}

fn no_stack(what: impl std::fmt::Display) -> FaultOpError {
    FaultOpError::NoStack {
        what: what.to_string(),
    }
}

/// What an injection left to undo.
enum Undo {
    Stack,
    Network(Applied),
    Exec,
    Nothing,
}

impl FaultTask {
    pub(super) async fn run(mut self) {
        let mut last: Option<Duration> = None;
        for rep in 0..self.spec.times {
            // Timed: at `at_of(rep)`. Conditional: from `at` (and `every` after the last
            // injection) on, at the next tick the condition holds.
            let earliest = match (&self.trigger, last) {
                (Some(_), Some(l)) => l + self.spec.every.unwrap_or_default(),
                (Some(_), None) => self.spec.at,
                (None, _) => self.spec.at_of(rep),
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until((self.origin + earliest).into()) => {}
            }
            if let Some(rx) = &mut self.trigger {
                rx.borrow_and_update();
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
            }
            let injected_at = self.origin.elapsed();
            last = Some(injected_at);
            let t0 = Instant::now();
            let (result, confirmed) = self.inject().await;
            let (ok, detail, undo) = match result {
                Ok((detail, undo)) => (true, detail, undo),
                Err(e) => (false, e.to_string(), Undo::Nothing),
            };
            let ok = ok && confirmed != Some(false);
            // The writes this fault answers for: those answered before its injection had
            // taken effect (a write answered while the kill was on its way is at risk too).
            let acked_by = injected_at + t0.elapsed();
            self.agg.push_event_at(
                injected_at,
                EventKind::FaultInjected {
                    fault: self.spec.name.clone(),
                    repetition: rep + 1,
                    action: self.spec.action.name().to_string(),
                    component: self.spec.action.component().map(|c| c.to_string()),
                    ok,
                    confirmed,
                    elapsed_ms: round3(t0.elapsed().as_secs_f64() * 1000.0),
                    detail: detail.clone(),
                },
            );
            lock(&self.outcomes).push(Outcome {
                fault: self.index,
                rep,
                injected_at,
                ok,
                detail,
                recovered_at: None,
                ledger: None,
            });
            if matches!(self.spec.action, FaultAction::Failover { .. }) {
                // Promoted and repointed: the injection was the recovery.
                if ok {
                    self.record_recovery(
                        rep,
                        t0,
                        true,
                        "replica promoted, gateways repointed".into(),
                    );
                    self.ledger_after(rep, acked_by).await;
                }
                continue;
            }
            // Hold the fault, then undo it (at once when the load ends first). A backup or
            // a restore is done when it returns: nothing to hold or undo.
            let instant = matches!(
                self.spec.action,
                FaultAction::Backup { .. } | FaultAction::Restore { .. }
            );
            let stopped = match self.spec.hold {
                _ if instant => self.stop.is_cancelled(),
                Some(hold) => tokio::select! {
                    _ = self.stop.cancelled() => true,
                    _ = tokio::time::sleep_until((self.origin + injected_at + hold).into()) => false,
                },
                None => {
                    self.stop.cancelled().await;
                    true
                }
            };
            self.recover(rep, undo, stopped).await;
            if ok {
                self.ledger_after(rep, acked_by).await;
            }
            if stopped {
                return;
            }
        }
    }

    /// Injects the fault: Ok(detail, what to undo) or Err(why); and whether a check
    /// confirmed it (exec faults with a check).
    async fn inject(&self) -> (Result<(String, Undo), FaultOpError>, Option<bool>) {
        match &self.spec.action {
            FaultAction::Stack { component, op } => {
                let Some(stack) = &self.stack else {
                    return (Err(no_stack(*op)), None);
                };
                match stack.act(*component, *op).await {
                    Ok(r) => (Ok((r.detail, Undo::Stack)), None),
                    Err(e) => (Err(e.into()), None),
                }
            }
            FaultAction::Network { component, fault } => {
                let Some(stack) = &self.stack else {
                    return (Err(no_stack("put toxics on")), None);
                };
                match stack.network_fault(*component, fault).await {
                    Ok(applied) => {
                        let detail = match fault {
                            crate::spec::fault::NetworkFault::Down => "proxy down".to_string(),
                            crate::spec::fault::NetworkFault::Toxics(t) => t
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                        };
                        (Ok((detail, Undo::Network(applied))), None)
                    }
                    Err(e) => (Err(e.into()), None),
                }
            }
            FaultAction::Exec(x) => self.inject_exec(x).await,
            // The event's elapsed_ms is the backup time / the restore duration.
            FaultAction::Backup { component } | FaultAction::Restore { component } => {
                let Some(stack) = &self.stack else {
                    return (Err(no_stack(self.spec.action.name())), None);
                };
                let done = if matches!(self.spec.action, FaultAction::Backup { .. }) {
                    stack.backup(*component).await
                } else {
                    stack.restore(*component).await
                };
                match done {
                    Ok(r) => (Ok((r.detail, Undo::Nothing)), None),
                    Err(e) => (Err(e.into()), None),
                }
            }
            FaultAction::Failover { component } => {
                let Some(stack) = &self.stack else {
                    return (Err(no_stack("fail over")), None);
                };
                match stack.failover(*component).await {
                    Ok(p) => (Ok((p.detail, Undo::Nothing)), None),
                    Err(e) => (Err(e.into()), None),
                }
            }
        }
    }

    /// Records repetition `rep`'s recovery attempt as an event; a successful one also gives
    /// the repetition its recovery time for the report.
    fn record_recovery(&self, rep: u32, t0: Instant, ok: bool, detail: String) {
        let at = self.origin.elapsed();
        self.agg.push_event(EventKind::FaultRecovered {
            fault: self.spec.name.clone(),
            repetition: rep + 1,
            ok,
            elapsed_ms: round3(t0.elapsed().as_secs_f64() * 1000.0),
            detail,
        });
        if ok {
            if let Some(o) = lock(&self.outcomes)
                .iter_mut()
                .find(|o| o.fault == self.index && o.rep == rep)
            {
                o.recovered_at = Some(at);
            }
        }
    }

    /// With `expect.lost_writes` / `rpo`: the per-fault read-back
    /// ([`super::fault_ledger::read_back_before`]), kept with the repetition.
    async fn ledger_after(&self, rep: u32, acked_by: Duration) {
        let Some(report) = super::fault_ledger::read_back_before(
            &self.spec, &self.run, &self.agg, &self.lost, &self.stop, acked_by,
        )
        .await
        else {
            return;
        };
        tracing::info!(
            fault = %self.spec.name,
            repetition = rep + 1,
            acknowledged = report.acknowledged,
            lost = report.lost,
            unreadable = report.unreadable,
            "writes acknowledged before the fault read back"
        );
        if let Some(o) = lock(&self.outcomes)
            .iter_mut()
            .find(|o| o.fault == self.index && o.rep == rep)
        {
            o.ledger = Some(report);
        }
    }

    async fn inject_exec(
        &self,
        x: &ExecFault,
    ) -> (Result<(String, Undo), FaultOpError>, Option<bool>) {
        let out = match self.exec(&x.command, x.timeout).await {
            Ok(o) if o.success() => o,
            Ok(o) => {
                let exit = exit_text(&o);
                return (
                    Err(FaultOpError::Command {
                        command: x.command.clone(),
                        exit,
                    }),
                    None,
                );
            }
            Err(e) => return (Err(e.into()), None),
        };
        let done = format!("`{}` exited 0 in {} ms", x.command, out.elapsed.as_millis());
        let Some(check) = &x.check else {
            return (Ok((done, Undo::Exec)), None);
        };
        // The check confirms the fault took effect; retried until check_within.
        let deadline = Instant::now() + x.check_within;
        let mut last;
        loop {
            last = match self.exec(check, x.timeout).await {
                Ok(o) if o.success() => {
                    return (
                        Ok((format!("{done}; check `{check}` passed"), Undo::Exec)),
                        Some(true),
                    )
                }
                Ok(o) => exit_text(&o),
                Err(e) => e.to_string(),
            };
            if Instant::now() + CHECK_RETRY > deadline || self.stop.is_cancelled() {
                break;
            }
            tokio::time::sleep(CHECK_RETRY).await;
        }
        // Not confirmed: the fault counts as not injected, and its recovery still runs.
        if let Some(r) = &x.recover {
            if let Err(e) = self.exec(r, x.timeout).await {
                tracing::warn!(fault = %self.spec.name, error = %e, "recover command of an unconfirmed fault failed");
            }
        }
        (
            Err(FaultOpError::Unconfirmed {
                done,
                check: check.clone(),
                last,
                within_s: x.check_within.as_secs_f64(),
            }),
            Some(false),
        )
    }

    async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, ControlError> {
        let hook = ExecHook::new(command, timeout);
        match &self.stack {
            Some(s) => s.exec(&hook).await,
            None => crate::stack::exec_hook(&hook).await,
        }
    }

    async fn recover(&self, rep: u32, undo: Undo, stopped: bool) {
        let t0 = Instant::now();
        let result: Option<Result<String, FaultOpError>> = match (undo, &self.spec.action) {
            (Undo::Nothing, _) => None,
            // A component killed or stopped stays down when the load has ended: the
            // stack's shutdown is next. A paused one is resumed (shutdown would too).
            (Undo::Stack, FaultAction::Stack { component, .. }) => {
                match (self.spec.action.recovery_op(), &self.stack) {
                    (Some(op), Some(stack)) if !stopped || op == crate::spec::StackOp::Resume => {
                        Some(
                            stack
                                .act(*component, op)
                                .await
                                .map(|r| format!("{op}: {}", r.detail))
                                .map_err(FaultOpError::from),
                        )
                    }
                    _ => None,
                }
            }
            (Undo::Network(applied), FaultAction::Network { component, .. }) => match &self.stack {
                Some(stack) => Some(
                    stack
                        .heal(*component, &applied)
                        .await
                        .map(|_| "healed".to_string())
                        .map_err(FaultOpError::from),
                ),
                None => None,
            },
            (Undo::Exec, FaultAction::Exec(x)) => match &x.recover {
                Some(cmd) => Some(match self.exec(cmd, x.timeout).await {
                    Ok(o) if o.success() => Ok(format!("`{cmd}` exited 0")),
                    Ok(o) => Err(FaultOpError::Command {
                        command: cmd.clone(),
                        exit: exit_text(&o),
                    }),
                    Err(e) => Err(e.into()),
                }),
                None => None,
            },
            _ => None,
        };
        let Some(result) = result else { return };
        match result {
            Ok(d) => self.record_recovery(rep, t0, true, d),
            Err(e) => self.record_recovery(rep, t0, false, e.to_string()),
        }
    }
}

fn exit_text(o: &ExecOutput) -> String {
    let code = match o.status {
        Some(c) => format!("exited {c}"),
        None => "was killed by a signal".to_string(),
    };
    let err = o.stderr_tail.trim();
    if err.is_empty() {
        code
    } else {
        let tail: String = err
            .chars()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{code}: {tail}")
    }
}

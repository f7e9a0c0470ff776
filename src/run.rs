//! The run clock: drives the engine and a list of controllers from the first request to the
//! last judgement.
//!
//! Once a second (just after each second of the run clock, when the workers have flushed it)
//! the clock takes the seconds the aggregator finalized, the events recorded since the last
//! tick and a cumulative snapshot, hands them to every controller ([`crate::control`]) and
//! carries out the actions they return: stop the load, change a scenario's rate or request
//! weights, record an event, act on a component of the reference stack (through its
//! [`StackHandle`], in a task of its own: the outcome lands on the timeline as a
//! `stack_action` event when it is done, without holding up the ticks). It draws the
//! progress line from the same snapshot. The caller's interrupt future (the first Ctrl-C)
//! stops the load gracefully.
//!
//! When the load has ended, controller tasks (probes) are stopped and waited for, the
//! aggregator is finished (the exact final metrics), controllers get a last tick with the
//! remaining seconds, and each one's [`Controller::finish`] gives its checks and report
//! section. Writing reports is the session's job ([`crate::session`]).
use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::CheckResult;
use crate::control::{Action, Controller, End, Section, StartCtx, Stopped, Tick};
use crate::engine::control::EngineControl;
use crate::engine::{self, EngineOptions};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{EventKind, RunMetrics};
use crate::spec::RunSpec;
use crate::stack::StackHandle;

/// How the engine runs and whether a progress line is drawn.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Engine threads (None: the CPUs this process may use).
    pub threads: Option<usize>,
    /// This process's segment `(index, count)` of a distributed run, 0-based.
    pub segment: Option<(u32, u32)>,
    /// Draw the live progress line (only ever drawn when stdout and stderr are terminals).
    pub progress: bool,
}

/// What a run produced: the final metrics (events included) and every controller's
/// judgement.
#[derive(Debug)]
pub struct RunOutcome {
    pub metrics: RunMetrics,
    /// Every check, in controller order (thresholds, probes, SLOs, ...).
    pub checks: Vec<CheckResult>,
    pub sections: Vec<Section>,
    /// Why the load stopped early, if it did.
    pub stopped: Option<Stopped>,
    /// Wall-clock start.
    pub started_wall: SystemTime,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
}

/// How long controller tasks (probes) get to flush after the load ended.
const TASKS_GRACE: Duration = Duration::from_secs(10);
/// How long stack actions still under way when the load ended get to finish.
const STACK_GRACE: Duration = Duration::from_secs(60);

/// Run `spec` with `controllers` until its plan ends (or a controller stops it, or
/// `interrupt` resolves), then judge it. `stack`: the reference stack's control handle, when
/// the session started one (stack actions fail, as events, without it).
pub async fn execute(
    spec: Arc<RunSpec>,
    mut controllers: Vec<Box<dyn Controller>>,
    stack: Option<StackHandle>,
    opts: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, RunError> {
    let started_wall = SystemTime::now();
    let stop = CancellationToken::new();
    let handle = engine::start(
        spec.clone(),
        EngineOptions {
            threads: opts.threads.unwrap_or_else(default_threads).max(1),
            segment: opts.segment,
            slices: true,
        },
        stop.clone(),
    )?;
    let agg = handle.aggregator();
    // The stored results keep each second's latency histogram (results/histograms.hlog).
    agg.keep_second_latency();
    let steer = handle.control();
    let origin = handle.started_at();
    let infos = crate::metrics::scenario_infos(&spec);
    let tasks = TaskTracker::new();
    let tasks_stop = CancellationToken::new();

    let stack_for_start = stack.clone();
    let mut clock = Clock {
        agg: agg.clone(),
        steer,
        stack,
        stack_tasks: TaskTracker::new(),
        stop: stop.clone(),
        stopped: None,
        event_cursor: 0,
    };
    let ctx = StartCtx {
        spec: &spec,
        origin,
        aggregator: &agg,
        engine_threads: handle.threads(),
        infos: &infos,
        tasks: &tasks,
        stop: &tasks_stop,
        stack: stack_for_start.as_ref(),
    };
    for c in controllers.iter_mut() {
        let actions = c.on_start(&ctx);
        clock.apply(c.name(), actions, false);
    }

    let progress = progress_bar(opts.progress);
    let join = handle.join();
    tokio::pin!(join);
    tokio::pin!(interrupt);
    let mut tick = tokio::time::interval_at(
        (origin + Duration::from_millis(1050)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted_once = false;
    loop {
        tokio::select! {
            res = &mut join => { res?; break }
            _ = &mut interrupt, if !interrupted_once => {
                interrupted_once = true;
                if clock.stopped.is_none() {
                    clock.stopped = Some(Stopped::Interrupted);
                    agg.push_event(EventKind::Interrupt);
                }
                let msg = "interrupted: draining in-flight requests, then writing reports (Ctrl-C again to exit now)";
                // A hidden bar (no terminal: CI logs) drops println; the line must still show.
                if progress.is_hidden() {
                    eprintln!("loadgate: {msg}");
                } else {
                    progress.println(msg);
                }
                stop.cancel();
            }
            _ = tick.tick() => {
                let snapshot = agg.snapshot();
                progress.set_message(progress_message(&snapshot, origin.elapsed()));
                clock.tick(&mut controllers, &snapshot, false);
            }
        }
    }
    progress.finish_and_clear();

    // The load has ended: stop the controllers' tasks and let them flush.
    tasks_stop.cancel();
    tasks.close();
    if tokio::time::timeout(TASKS_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("controller tasks did not finish within {TASKS_GRACE:?}");
    }
    clock.stack_tasks.close();
    if tokio::time::timeout(STACK_GRACE, clock.stack_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("stack actions did not finish within {STACK_GRACE:?}");
    }
    let metrics = agg.finish();
    clock.tick(&mut controllers, &metrics, true);
    let mut metrics = metrics;
    metrics.events = agg.events_since(0).0;
    metrics.events.sort_by_key(|e| e.at);

    let mut checks = Vec::new();
    let mut sections = Vec::new();
    for c in controllers.iter_mut() {
        let done = c.finish(&End {
            metrics: &metrics,
            stopped: clock.stopped.as_ref(),
        });
        checks.extend(done.checks);
        sections.extend(done.sections);
    }
    // The write ledger: read every recorded write back, now that the load has ended.
    if let Some(ledger) = crate::control::ledger::read_back(&spec, agg.take_ledger()).await {
        // The bounds of the first ledger scenario (the run keeps one ledger).
        let (max_lost, max_rpo_ms) = spec
            .scenarios
            .iter()
            .find_map(|s| s.ledger.as_ref())
            .map_or((0, 0.0), |l| (l.max_lost, l.max_rpo.as_secs_f64() * 1000.0));
        checks.extend(crate::checks::ledger::checks(
            "ledger", &ledger, max_lost, max_rpo_ms,
        ));
        for s in sections.iter_mut() {
            if let Section::Failover(reports) = s {
                // Faults with their own ledger expectations keep their per-fault figures.
                reports
                    .iter_mut()
                    .filter(|r| r.ledger_scope.is_none())
                    .for_each(|r| r.set_ledger(&ledger));
            }
        }
        tracing::info!(
            acknowledged = ledger.acknowledged,
            lost = ledger.lost,
            "write ledger read back"
        );
    }
    Ok(RunOutcome {
        metrics,
        checks,
        sections,
        stopped: clock.stopped,
        started_wall,
    })
}

/// The run clock's state between ticks.
struct Clock {
    agg: Arc<Aggregator>,
    steer: Arc<EngineControl>,
    stack: Option<StackHandle>,
    /// Stack actions under way.
    stack_tasks: TaskTracker,
    stop: CancellationToken,
    stopped: Option<Stopped>,
    event_cursor: usize,
}

impl Clock {
    fn tick(&mut self, controllers: &mut [Box<dyn Controller>], snapshot: &RunMetrics, last: bool) {
        let seconds = self.agg.take_seconds();
        let (events, cursor) = self.agg.events_since(self.event_cursor);
        self.event_cursor = cursor;
        let t = Tick {
            at: self.agg.origin().elapsed(),
            snapshot,
            seconds: &seconds,
            events: &events,
            last,
        };
        for c in controllers.iter_mut() {
            let actions = c.on_tick(&t);
            self.apply(c.name(), actions, last);
        }
    }

    /// Carry out a controller's actions (after the load has ended only events are recorded).
    fn apply(&mut self, controller: &'static str, actions: Vec<Action>, ended: bool) {
        let now = self.agg.origin().elapsed();
        for a in actions {
            let failed = |reason: String| EventKind::ActionFailed {
                controller: controller.to_string(),
                reason,
            };
            match a {
                Action::Record(kind) => self.agg.push_event(kind),
                Action::RecordAt { at, kind } => self.agg.push_event_at(at, kind),
                _ if ended => {}
                Action::Stop(why) => {
                    if self.stopped.is_none() {
                        if let Stopped::Aborted { check, observed } = &why {
                            self.agg.push_event(EventKind::Abort {
                                check: check.clone(),
                                observed: observed.clone(),
                            });
                        }
                        self.stopped = Some(why);
                        self.stop.cancel();
                    }
                }
                Action::SetRate { scenario, rate } => {
                    match self.steer.set_rate(&scenario, now, rate) {
                        Ok(()) => self
                            .agg
                            .push_event(EventKind::RateChange { scenario, rate }),
                        Err(e) => self.agg.push_event(failed(e.to_string())),
                    }
                }
                Action::SetWeights { scenario, weights } => {
                    match self.steer.set_weights(&scenario, weights.clone()) {
                        Ok(()) => self
                            .agg
                            .push_event(EventKind::WeightsChange { scenario, weights }),
                        Err(e) => self.agg.push_event(failed(e.to_string())),
                    }
                }
                Action::SetCanaryWeight { scenarios, weight } => {
                    let t0 = std::time::Instant::now();
                    let failures: Vec<String> = scenarios
                        .iter()
                        .filter_map(|sc| self.steer.set_canary_weight(sc, weight).err())
                        .map(|e| e.to_string())
                        .collect();
                    self.agg.push_event(EventKind::CanaryWeight {
                        weight,
                        ok: failures.is_empty(),
                        elapsed_ms: crate::metrics::round3(t0.elapsed().as_secs_f64() * 1000.0),
                        detail: if failures.is_empty() {
                            format!("split by loadgate over {}", scenarios.join(", "))
                        } else {
                            failures.join("; ")
                        },
                    });
                }
                Action::Stack { component, op } => match &self.stack {
                    None => self.agg.push_event(failed(format!(
                        "cannot {op} {component}: this run started no reference stack"
                    ))),
                    Some(handle) => {
                        let (handle, agg) = (handle.clone(), self.agg.clone());
                        self.stack_tasks.spawn(async move {
                            let t0 = std::time::Instant::now();
                            let (ok, detail) = match handle.act(component, op).await {
                                Ok(r) => (true, r.detail),
                                Err(e) => (false, e.to_string()),
                            };
                            agg.push_event(EventKind::StackAction {
                                component: component.to_string(),
                                op: op.to_string(),
                                ok,
                                elapsed_ms: t0.elapsed().as_secs_f64() * 1000.0,
                                detail,
                            });
                        });
                    }
                },
            }
        }
    }
}

/// The CPUs this process may run on (respects taskset / cgroup limits).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(250));
    pb
}

/// Seconds the progress line's rate is averaged over (a steady 1000/s reads 1000, not the
/// 749 / 833 / 999 of whatever part of a second the tick fell into).
const RATE_WINDOW: u64 = 3;

fn progress_message(snap: &RunMetrics, elapsed: Duration) -> String {
    let all = snap.scenario_totals();
    // Requests per second over the last complete seconds (scenario rows, not probes).
    let last = snap.timeline.last().map(|r| r.second);
    let rate = match last {
        Some(last) => {
            let from = last.saturating_sub(RATE_WINDOW - 1);
            let n: u64 = snap
                .timeline
                .iter()
                .filter(|r| {
                    r.second >= from && r.step.is_empty() && !r.scenario.starts_with("probe:")
                })
                .map(|r| r.requests)
                .sum();
            n as f64 / (last - from + 1) as f64
        }
        None => 0.0,
    };
    let p95 = if all.duration.is_empty() {
        0.0
    } else {
        all.duration.value_at_quantile(0.95) as f64 / 1000.0
    };
    format!(
        "{:>6.1}s  {} requests  {:.0} req/s  {} failed  {} dropped  p95 {:.1} ms",
        elapsed.as_secs_f64(),
        all.requests,
        rate,
        all.failed,
        snap.total_dropped(),
        p95
    )
}

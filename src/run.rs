//! The run orchestrator: one run clock from the first request to the last report.
//!
//! It starts the engine, ticks once per second to draw the progress line and evaluate
//! `abort_on_fail` thresholds on a live snapshot, stops the load on abort or on the caller's
//! interrupt future (first Ctrl-C), then judges the final metrics and writes the reports.
//! Interrupted and aborted runs still write the reports of what ran.
//!
//! Later drills (probes, faults, canary, autoscaling) hang off the same tick and push their
//! events and check results into the same outcome.
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::checks::{self, threshold};
use crate::engine::{self, EngineOptions};
use crate::metrics::{Event, RunMetrics};
use crate::report::{self, Interruption, Summary};
use crate::spec::RunSpec;

/// How a run is carried out and where its reports go.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write reports here (None: write none).
    pub out_dir: Option<PathBuf>,
    /// Engine threads and segment.
    pub threads: Option<usize>,
    pub segment: Option<(u32, u32)>,
    /// Draw the live progress line (only ever drawn when stdout is a terminal).
    pub progress: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub metrics: RunMetrics,
    /// Report files written.
    pub written: Vec<PathBuf>,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("writing reports: {0}")]
    Report(#[from] report::ReportError),
}

/// Why the load stopped before its plan's end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// The caller's interrupt (Ctrl-C) fired.
    Interrupted,
    /// An `abort_on_fail` threshold failed.
    Aborted { threshold: String, observed: String },
}

/// Run `spec` to completion (or until `interrupt` resolves), judge it and write reports.
pub async fn execute(
    spec: Arc<RunSpec>,
    opts: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<RunOutcome, RunError> {
    let started_wall = SystemTime::now();
    let stop = CancellationToken::new();
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    let handle = engine::start(
        spec.clone(),
        EngineOptions {
            threads,
            segment: opts.segment,
        },
        stop.clone(),
    )?;
    let aggregator = handle.aggregator();
    let clock = handle.started_at();

    let progress = progress_bar(opts.progress);
    let abort_specs: Vec<_> = spec.thresholds.iter().filter(|t| t.abort_on_fail).collect();
    let mut stopped: Option<Stopped> = None;
    let mut extra_events: Vec<Event> = Vec::new();

    let finish = handle.finish();
    tokio::pin!(finish);
    tokio::pin!(interrupt);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted_once = false;

    let metrics = loop {
        tokio::select! {
            res = &mut finish => break res?,
            _ = &mut interrupt, if !interrupted_once => {
                interrupted_once = true;
                if stopped.is_none() {
                    stopped = Some(Stopped::Interrupted);
                    extra_events.push(Event {
                        at: clock.elapsed(),
                        kind: "interrupt".into(),
                        detail: "interrupted: stopping the load and writing the reports of what ran".into(),
                    });
                }
                progress.println("interrupted: draining in-flight requests, then writing reports (Ctrl-C again to exit now)");
                stop.cancel();
            }
            _ = tick.tick() => {
                let snap = aggregator.snapshot();
                progress.set_message(progress_message(&snap, clock.elapsed()));
                if stopped.is_none() {
                    let elapsed = clock.elapsed();
                    for t in &abort_specs {
                        if elapsed < t.delay {
                            continue;
                        }
                        let outcome = threshold::evaluate(t, &snap);
                        if !outcome.passed && !outcome.no_data {
                            let name = format!("{} {}", t.key, t.expr);
                            extra_events.push(Event {
                                at: elapsed,
                                kind: "abort".into(),
                                detail: format!("abort_on_fail threshold failed: {name} ({})", outcome.observed),
                            });
                            stopped = Some(Stopped::Aborted { threshold: name, observed: outcome.observed });
                            stop.cancel();
                            break;
                        }
                    }
                }
            }
        }
    };
    progress.finish_and_clear();

    let mut metrics = metrics;
    metrics.events.extend(extra_events);
    metrics.events.sort_by_key(|e| e.at);

    let mut checks = checks::evaluate_thresholds(&spec, &metrics);
    if let Some(Stopped::Aborted {
        threshold,
        observed,
    }) = &stopped
    {
        // The run was judged failing when it was stopped; the shorter final data must not
        // turn that into a pass.
        for c in checks
            .iter_mut()
            .filter(|c| &c.name == threshold && c.passed)
        {
            c.passed = false;
            c.observed = format!("{observed} (when aborted)");
        }
    }
    let interruption = stopped.as_ref().map(|s| match s {
        Stopped::Interrupted => Interruption::Interrupted("interrupted (Ctrl-C / SIGTERM)".into()),
        Stopped::Aborted {
            threshold,
            observed,
        } => Interruption::Aborted(format!(
            "abort_on_fail threshold failed: {threshold} ({observed})"
        )),
    });
    let summary = Summary::build(&spec.name, &metrics, checks, started_wall, interruption);
    let written = match &opts.out_dir {
        Some(dir) => report::write_reports(dir, &summary, &metrics, &spec.report_formats)?,
        None => Vec::new(),
    };
    Ok(RunOutcome {
        summary,
        metrics,
        written,
    })
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

fn progress_message(snap: &RunMetrics, elapsed: Duration) -> String {
    let all = snap.aggregate(|_| true);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let p95 = if all.duration.is_empty() {
        0.0
    } else {
        all.duration.value_at_quantile(0.95) as f64 / 1000.0
    };
    format!(
        "{:>6.1}s  {} requests  {:.0} req/s  {} failed  {} dropped  p95 {:.1} ms",
        elapsed.as_secs_f64(),
        all.requests,
        all.requests as f64 / secs,
        all.failed,
        snap.total_dropped(),
        p95
    )
}

//! The loop that runs a capacity search: ask [`next_rate`] for a rate, run that step as a
//! fresh open-model run on the run clock ([`crate::run::execute`] with the step's one
//! controller, [`StepJudge`]), judge and classify it, and go on until the search concludes
//! (or `max_steps`, or Ctrl-C). The reference stack, when the session started one, stays up
//! across the steps; each step gets fresh connections, VUs and histograms.
//!
//! Every step's metrics are appended to one [`RunMetrics`] on the search's clock (a step's
//! seconds shifted by when it started), so the timeline, timeseries.csv and report.html show
//! the whole search as a staircase, with a `capacity_step` event per step.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::search::{self, next_rate, Next, Outcome, SearchConfig, Trial};
use super::step::{classify, process_cpu, step_spec, vu_budget, StepJudge};
use super::{CapacityError, CapacityReport, StepReport};
use crate::control::{Controller, Stopped};
use crate::metrics::{format_number, round3, Event, EventKind, RunMetrics};
use crate::run::{self, RunOptions};
use crate::spec::{CapacitySpec, RunSpec};
use crate::stack::StackHandle;

/// What a search produced.
#[derive(Debug)]
pub struct SearchRun {
    pub report: CapacityReport,
    /// Every step's metrics on the search's clock (events included).
    pub metrics: RunMetrics,
    pub started_wall: SystemTime,
    /// Ctrl-C / SIGTERM stopped the search.
    pub interrupted: bool,
}

/// Run the search of `cap` over `base` (the plan's lowered run). `announce`: a line per
/// step on stderr.
pub async fn search(
    base: &RunSpec,
    cap: &CapacitySpec,
    stack: Option<StackHandle>,
    opts: &RunOptions,
    interrupt: &CancellationToken,
    announce: bool,
) -> Result<SearchRun, CapacityError> {
    // Every problem of the step's run (the scenario, the thresholds) before any load.
    step_spec(base, cap, cap.min)?;
    let cfg = SearchConfig {
        min: cap.min,
        max: cap.max,
        precision: cap.precision,
        repeats: cap.repeats,
        max_steps: cap.max_steps,
    };
    let threads = opts.threads.unwrap_or_else(run::default_threads).max(1);
    let step_opts = RunOptions {
        progress: false,
        ..opts.clone()
    };
    let started_wall = SystemTime::now();
    let t0 = Instant::now();
    let mut history: Vec<Trial> = Vec::new();
    let mut steps: Vec<StepReport> = Vec::new();
    let mut total = RunMetrics::default();
    let mut next_second = 0u64;
    let mut interrupted = false;
    let conclusion = loop {
        if interrupt.is_cancelled() {
            interrupted = true;
            break search::conclude(&history, &cfg, Outcome::Interrupted);
        }
        let (rate, phase) = match next_rate(&history, &cfg) {
            Next::Done(c) => break c,
            Next::Run { rate, phase } => (rate, phase),
        };
        let spec = step_spec(base, cap, rate)?;
        let max_vus = vu_budget(&spec);
        let measured = Arc::new(Mutex::new(None));
        let judge = StepJudge::new(&spec, cap.warmup, cap.step, measured.clone());
        // Where the step's seconds go on the search's clock (whole seconds, after the last
        // step's): its start as every report shows it.
        let offset = next_second.max(t0.elapsed().as_secs_f64().ceil() as u64);
        let cpu0 = process_cpu();
        let w0 = Instant::now();
        let controllers: Vec<Box<dyn Controller>> = vec![Box::new(judge)];
        let outcome = run::execute(
            Arc::new(spec),
            controllers,
            stack.clone(),
            &step_opts,
            interrupt.clone().cancelled_owned(),
        )
        .await?;
        let wall = w0.elapsed();
        let cpu = (process_cpu().saturating_sub(cpu0)).as_secs_f64()
            / (wall.as_secs_f64() * threads as f64).max(1e-9);
        let step_no = steps.len() as u32 + 1;
        let cut = matches!(outcome.stopped, Some(Stopped::Interrupted));
        let m = match measured.lock() {
            Ok(mut g) => g.take(),
            Err(e) => {
                tracing::warn!(error = %e, "capacity step measurement lock poisoned");
                None
            }
        };
        let Some(m) = m else {
            tracing::warn!(step = step_no, "capacity step produced no measurement");
            interrupted = cut;
            break search::conclude(&history, &cfg, Outcome::Interrupted);
        };
        let (verdict, detail) = classify(&m.checks, m.dropped, m.vus_peak, max_vus, cpu, threads);
        let lat = |q: f64| {
            if m.stats.duration.is_empty() {
                0.0
            } else {
                round3(m.stats.duration.value_at_quantile(q) as f64 / 1000.0)
            }
        };
        let report = StepReport {
            step: step_no,
            phase,
            rate,
            achieved_rps: round3(m.achieved),
            requests: m.stats.requests,
            errors: m.stats.failed,
            dropped: m.dropped,
            mean_ms: if m.stats.duration.is_empty() {
                0.0
            } else {
                round3(m.stats.duration.mean() / 1000.0)
            },
            p50_ms: lat(0.5),
            p95_ms: lat(0.95),
            p99_ms: lat(0.99),
            vus_peak: m.vus_peak,
            max_vus,
            generator_cpu: round3(cpu),
            verdict,
            detail,
            at_s: offset as f64,
            duration_s: round3(wall.as_secs_f64()),
        };
        let mut step_metrics = outcome.metrics;
        step_metrics.events.push(Event::new(
            step_metrics.elapsed,
            EventKind::CapacityStep {
                step: step_no,
                phase: phase.as_str().to_string(),
                rate,
                achieved_rps: report.achieved_rps,
                p95_ms: report.p95_ms,
                verdict: verdict.as_str().to_string(),
                detail: report.detail.clone(),
            },
        ));
        next_second = append_shifted(&mut total, step_metrics, offset);
        if announce {
            eprintln!(
                "loadgate: capacity step {step_no} ({}) {}/s: achieved {}/s, p95 {} ms, {} errors, {} dropped: {}{}",
                phase.as_str(),
                format_number(rate),
                format_number(report.achieved_rps),
                format_number(report.p95_ms),
                report.errors,
                report.dropped,
                verdict.as_str(),
                if report.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", report.detail)
                }
            );
        }
        steps.push(report);
        if cut {
            // A step cut short judges nothing.
            interrupted = true;
            break search::conclude(&history, &cfg, Outcome::Interrupted);
        }
        history.push(Trial { rate, verdict });
        tokio::select! {
            _ = tokio::time::sleep(cap.cooldown) => {}
            _ = interrupt.cancelled() => {}
        }
    };
    let duration = t0.elapsed();
    total.elapsed = total.elapsed.max(duration);
    let report = CapacityReport::new(cap, &conclusion, steps, duration.as_secs_f64());
    Ok(SearchRun {
        report,
        metrics: total,
        started_wall,
        interrupted,
    })
}

/// Append a step's metrics to the search's, `offset` whole seconds into the search; returns
/// the first second after the step.
fn append_shifted(total: &mut RunMetrics, mut step: RunMetrics, offset: u64) -> u64 {
    let shift = Duration::from_secs(offset);
    if total.scenarios.is_empty() {
        total.scenarios = step.scenarios.clone();
        for s in &mut total.scenarios {
            s.dropped = 0;
            s.active = Duration::ZERO;
        }
    }
    for (i, s) in step.scenarios.iter().enumerate() {
        if let Some(t) = total.scenarios.get_mut(i) {
            t.dropped += s.dropped;
            t.active += s.active;
        }
    }
    for (k, s) in std::mem::take(&mut step.series) {
        total.series.entry(k).or_default().merge(&s);
    }
    let mut last = offset;
    for mut r in std::mem::take(&mut step.timeline) {
        r.second += offset;
        last = last.max(r.second + 1);
        total.timeline.push(r);
    }
    for mut e in std::mem::take(&mut step.events) {
        e.at += shift;
        total.events.push(e);
    }
    for mut h in std::mem::take(&mut step.second_latency) {
        h.second += offset;
        total.second_latency.push(h);
    }
    total.check_counts.merge(&step.check_counts);
    for (i, h) in step.iterations.iter().enumerate() {
        if total.iterations.len() <= i {
            total.iterations.push(h.clone());
        } else if let Err(e) = total.iterations[i].add(h) {
            tracing::warn!(error = %e, "merging a capacity step's iteration histogram");
        }
    }
    for (k, v) in std::mem::take(&mut step.first_errors) {
        total.first_errors.entry(k).or_insert(v);
    }
    let end = shift + step.elapsed;
    total.elapsed = total.elapsed.max(end);
    last.max(end.as_secs() + u64::from(end.subsec_nanos() > 0))
}

//! One step of the capacity search: the run it is (the searched scenario alone, open model,
//! at one rate), how it is judged (the plan's thresholds over its own samples, the warm-up
//! left out) and whether it says anything about the target at all (generator honesty).
//!
//! Judging: the step's controller ([`StepJudge`]) keeps the per-second slices from the
//! first whole second after the warm-up on, and the plan's thresholds (the standard
//! thresholds controller, windows included) are judged on exactly those: a fresh histogram
//! per step. Samples belong to the second their response completed in, so requests sent in
//! the judged part that complete during the drain count (an overloaded target's late
//! answers are its worst ones). The achieved rate counts responses completed while the load
//! was offered.
//!
//! Honesty ([`classify`]): a step is *invalid*, not passed, when loadgate rather than the
//! target was the limit: its own CPU was saturated (process CPU time over the step, from
//! `getrusage(RUSAGE_SELF)`, against the engine threads' share of the wall time), or
//! arrivals were dropped (every VU busy) while the target met the thresholds, so the rate
//! was never offered. Drops while the thresholds broke are the target's pile-up (a VU
//! budget of rate x timeout only runs out when latency is near the timeout), so such a
//! step fails.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::checks::CheckResult;
use crate::control::threshold::Thresholds;
use crate::control::{Action, Conclusion, Controller, End, StartCtx, Tick};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{RunMetrics, SecondSlice, SeriesKey, SeriesStats};
use crate::spec::{CapacitySpec, ExecutorSpec, RunSpec};

use super::search::StepVerdict;
use super::CapacityError;

/// A step's VU budget when the plan sets none is the rate times the request timeout (a
/// target answering within the timeout never runs it out), bounded like `attack`'s.
const MIN_VUS: u32 = 50;
const MAX_DEFAULT_VUS: u32 = 20_000;
/// The generator's CPU counts as saturated from this share of its engine threads.
pub const CPU_SATURATED: f64 = 0.9;

/// The run of one step at `rate`: the searched scenario alone, constant arrival rate for
/// warm-up plus step, with the thresholds that apply to it (never aborting).
pub fn step_spec(base: &RunSpec, cap: &CapacitySpec, rate: f64) -> Result<RunSpec, CapacityError> {
    let mut sc = base
        .scenarios
        .iter()
        .find(|s| s.name == cap.scenario)
        .cloned()
        .ok_or_else(|| CapacityError::UnknownScenario {
            name: cap.scenario.clone(),
            known: base.scenarios.iter().map(|s| s.name.clone()).collect(),
        })?;
    let timeout = base.http.timeout;
    let max_vus = cap.max_vus.unwrap_or_else(|| {
        ((rate * timeout.as_secs_f64()).ceil() as u32).clamp(MIN_VUS, MAX_DEFAULT_VUS)
    });
    let pre = ((rate / 50.0).ceil() as u32).clamp(10, 1000).min(max_vus);
    sc.executor = ExecutorSpec::ConstantArrivalRate {
        rate,
        duration: cap.warmup + cap.step,
        pre_allocated_vus: pre,
        max_vus,
    };
    sc.start_after = Duration::ZERO;
    sc.graceful_stop = sc.graceful_stop.min(timeout);
    let thresholds = applicable_thresholds(base, &cap.scenario);
    if thresholds.is_empty() {
        return Err(CapacityError::NoThresholds {
            scenario: cap.scenario.clone(),
        });
    }
    let mut spec = base.clone();
    spec.scenarios = vec![sc];
    spec.thresholds = thresholds;
    spec.probes.clear();
    spec.slos.clear();
    spec.canary = None;
    spec.blue_green = None;
    Ok(spec)
}

/// The plan's thresholds that judge `scenario` alone: those without a `scenario` tag or
/// naming it, and no probe's. They never abort a step (a step is judged whole).
pub fn applicable_thresholds(base: &RunSpec, scenario: &str) -> Vec<crate::spec::ThresholdSpec> {
    base.thresholds
        .iter()
        .filter(|t| {
            t.tags
                .iter()
                .all(|(k, v)| k != "probe" && (k != "scenario" || v == scenario))
        })
        .cloned()
        .map(|mut t| {
            t.abort_on_fail = false;
            t
        })
        .collect()
}

/// The VU budget a step at `rate` runs with.
pub fn vu_budget(spec: &RunSpec) -> u32 {
    spec.scenarios
        .first()
        .map(|s| s.executor.peak_vus())
        .unwrap_or(0)
}

/// What a step measured over its judged part.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The plan's thresholds judged on the step's own samples.
    pub checks: Vec<CheckResult>,
    /// Every sample of the scenario from the first judged second on.
    pub stats: SeriesStats,
    /// Arrivals dropped over the whole step (warm-up drops count too: a warm-up that could
    /// not be offered is no warm-up).
    pub dropped: u64,
    /// Responses per second completed while the load was offered (judged part).
    pub achieved: f64,
    /// Most VUs busy at once (sampled once a second).
    pub vus_peak: u64,
}

/// The step's one controller: keeps the judged seconds, judges the thresholds on them.
pub struct StepJudge {
    /// The first judged second.
    warm: u64,
    /// The first second after the offered load.
    end: u64,
    inner: Thresholds,
    agg: Option<Arc<Aggregator>>,
    series: BTreeMap<SeriesKey, SeriesStats>,
    offered_requests: u64,
    vus_peak: u64,
    out: Arc<Mutex<Option<Measured>>>,
}

impl StepJudge {
    /// A judge for `spec` (a [`step_spec`]) with `warmup` excluded; the measurement lands in
    /// `out` when the step is over.
    pub fn new(
        spec: &RunSpec,
        warmup: Duration,
        step: Duration,
        out: Arc<Mutex<Option<Measured>>>,
    ) -> StepJudge {
        let warm = warmup.as_secs() + u64::from(warmup.subsec_nanos() > 0);
        StepJudge {
            warm,
            end: (warmup + step).as_secs().max(warm + 1),
            inner: Thresholds::new(spec),
            agg: None,
            series: BTreeMap::new(),
            offered_requests: 0,
            vus_peak: 0,
            out,
        }
    }

    fn keep(&mut self, slice: &SecondSlice) {
        if slice.second < self.warm {
            return;
        }
        let in_offered = slice.second < self.end;
        for (k, s) in &slice.series {
            self.series.entry(*k).or_default().merge(s);
            if in_offered {
                self.offered_requests += s.requests;
            }
        }
    }
}

impl Controller for StepJudge {
    fn name(&self) -> &'static str {
        "capacity"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        self.agg = Some(ctx.aggregator.clone());
        self.inner.on_start(ctx)
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        if let Some(agg) = &self.agg {
            let busy = agg.active_vus().first().copied().unwrap_or(0);
            self.vus_peak = self.vus_peak.max(busy);
        }
        let judged: Vec<SecondSlice> = tick
            .seconds
            .iter()
            .filter(|s| s.second >= self.warm)
            .cloned()
            .collect();
        for s in &judged {
            self.keep(s);
        }
        self.inner.on_tick(&Tick {
            at: tick.at,
            snapshot: tick.snapshot,
            seconds: &judged,
            events: tick.events,
            last: tick.last,
        })
    }

    fn finish(&mut self, end: &End<'_>) -> Conclusion {
        let mut m: RunMetrics = end.metrics.clone();
        m.series = std::mem::take(&mut self.series);
        let mut stats = SeriesStats::default();
        for s in m.series.values() {
            stats.merge(s);
        }
        let dropped = m.total_dropped();
        let conclusion = self.inner.finish(&End {
            metrics: &m,
            stopped: end.stopped,
        });
        let seconds = (self.end - self.warm).max(1) as f64;
        let measured = Measured {
            checks: conclusion.checks.clone(),
            stats,
            dropped,
            achieved: self.offered_requests as f64 / seconds,
            vus_peak: self.vus_peak,
        };
        match self.out.lock() {
            Ok(mut g) => *g = Some(measured),
            Err(e) => tracing::warn!(error = %e, "capacity step measurement lock poisoned"),
        }
        conclusion
    }
}

/// The process's CPU time so far (user + system, all threads).
pub fn process_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(
                    tv.tv_sec().max(0) as u64,
                    (tv.tv_usec().max(0) as u32) * 1000,
                )
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(e) => {
            tracing::warn!(error = %e, "getrusage: the generator's CPU is not measured");
            Duration::ZERO
        }
    }
}

/// A step's verdict and, unless it passed, why.
pub fn classify(
    checks: &[CheckResult],
    dropped: u64,
    vus_peak: u64,
    max_vus: u32,
    cpu_share: f64,
    threads: usize,
) -> (StepVerdict, String) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.observed))
        .collect();
    if cpu_share >= CPU_SATURATED {
        return (
            StepVerdict::Invalid,
            format!(
                "the generator ran out: its CPU was saturated ({:.0}% of {threads} engine thread(s)); give it more threads or cores",
                cpu_share * 100.0
            ),
        );
    }
    if dropped > 0 && failed.is_empty() {
        return (
            StepVerdict::Invalid,
            format!(
                "the generator ran out: {dropped} arrivals dropped with {vus_peak} of {max_vus} VUs busy while the target met the thresholds; raise max_vus"
            ),
        );
    }
    if failed.is_empty() {
        (StepVerdict::Pass, String::new())
    } else {
        let mut d = failed.join("; ");
        if dropped > 0 {
            d.push_str(&format!(
                " ({dropped} arrivals dropped: requests piled up at the target)"
            ));
        }
        (StepVerdict::Fail, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckKind;

    fn check(passed: bool) -> CheckResult {
        CheckResult {
            name: "http_req_duration p(95)<100".into(),
            kind: CheckKind::Threshold,
            passed,
            expected: "p(95)<100".into(),
            observed: "p(95)=42".into(),
            runbook: None,
        }
    }

    #[test]
    fn drops_while_the_target_keeps_up_are_the_generators() {
        let (v, why) = classify(&[check(true)], 120, 2, 2, 0.3, 1);
        assert_eq!(v, StepVerdict::Invalid);
        assert!(
            why.contains("generator ran out") && why.contains("120 arrivals"),
            "{why}"
        );
    }

    #[test]
    fn drops_while_the_thresholds_break_are_the_targets() {
        let (v, why) = classify(&[check(false)], 120, 500, 500, 0.3, 1);
        assert_eq!(v, StepVerdict::Fail);
        assert!(why.contains("piled up"), "{why}");
    }

    #[test]
    fn a_saturated_generator_makes_any_step_invalid() {
        assert_eq!(
            classify(&[check(true)], 0, 1, 50, 0.95, 2).0,
            StepVerdict::Invalid
        );
        assert_eq!(
            classify(&[check(false)], 0, 1, 50, 0.95, 2).0,
            StepVerdict::Invalid
        );
        assert_eq!(
            classify(&[check(true)], 0, 1, 50, 0.5, 2).0,
            StepVerdict::Pass
        );
        assert_eq!(
            classify(&[check(false)], 0, 1, 50, 0.5, 2).0,
            StepVerdict::Fail
        );
    }
}

//! The capacity search (`loadgate capacity`): the highest arrival rate at which the plan's
//! thresholds still hold, as a rate with an interval, with the evidence of every step.
//!
//! - [`search`]: the pure search, `next_rate(history)` (bracket, bisect, confirm) and its
//!   conclusion;
//! - [`step`]: one step's run, its judgement on its own samples, and whether the generator
//!   rather than the target was the limit;
//! - [`runner`]: the loop that runs the steps on the run clock, one fresh run each.
//!
//! This module turns the search into what the reports show ([`CapacityReport`], the
//! `capacity` section of summary.json) and the checks that decide the verdict: the search
//! itself (`capacity search`: it found the knee or showed the target holds `max`) and, when
//! the plan gives an expected rate, the headroom (`capacity headroom`: the capacity, or the
//! rate the target was proven to hold, reaches `headroom` x expected; the seeds' pre-deploy
//! rule is 2x).
pub mod runner;
pub mod search;
pub mod step;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checks::{CheckKind, CheckResult};
use crate::metrics::{format_number, round3};
use crate::run::RunError;
use crate::spec::CapacitySpec;

pub use search::{Conclusion, Next, Outcome, Phase, SearchConfig, StepVerdict, Trial};

/// Why a capacity search could not run.
#[derive(Debug, Error)]
pub enum CapacityError {
    #[error("capacity: no scenario named {name:?}; the plan's scenarios: {}", known.join(", "))]
    UnknownScenario { name: String, known: Vec<String> },
    #[error("capacity: the plan has several scenarios ({}): name the one to search with --scenario NAME or `capacity: {{ scenario: NAME }}`", known.join(", "))]
    WhichScenario { known: Vec<String> },
    #[error("capacity: no threshold judges scenario `{scenario}`, so no step could fail: add one, e.g. `thresholds: {{ \"http_req_duration{{scenario:{scenario}}}\": [\"p(95)<250\"] }}` (or --slo 'p(95)<250' on the command line)")]
    NoThresholds { scenario: String },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One step of the search, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    /// 1-based.
    pub step: u32,
    pub phase: Phase,
    /// The arrival rate offered, per second.
    pub rate: f64,
    /// Responses per second completed while the load was offered (judged part).
    pub achieved_rps: f64,
    /// Requests of the judged part (completed from the first second after the warm-up).
    pub requests: u64,
    pub errors: u64,
    /// Arrivals that could not start (every VU busy) over the whole step.
    pub dropped: u64,
    /// Latency of the judged part, intended send to last byte, milliseconds.
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Most VUs busy at once, and the step's VU budget.
    pub vus_peak: u64,
    pub max_vus: u32,
    /// The generator's process CPU over the step, as a share of its engine threads.
    pub generator_cpu: f64,
    pub verdict: StepVerdict,
    /// Why it failed (the broken thresholds) or is invalid (how the generator ran out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// When the step started on the search's clock (whole seconds; its seconds in the
    /// timeline start here).
    pub at_s: f64,
    pub duration_s: f64,
}

/// The knee: the last passing step at the capacity found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KneeReport {
    pub rate: f64,
    pub achieved_rps: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Little's law: requests in flight at the knee = throughput x mean latency.
    pub concurrency: f64,
}

/// summary.json's `capacity` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityReport {
    /// The scenario whose rate was searched.
    pub scenario: String,
    /// found | at_least_max | below_min | generator_limited | step_limit | interrupted.
    pub outcome: Outcome,
    /// The highest arrival rate (per second) at which the thresholds held: `null` unless
    /// the knee was found (never a rate the generator could not offer).
    pub max_rate: Option<f64>,
    /// The interval: the highest rate whose every trial passed (what the target was seen
    /// to hold)...
    pub low: Option<f64>,
    /// ...and the lowest rate above it whose every trial failed.
    pub high: Option<f64>,
    /// The bisection's precision, as a fraction.
    pub precision: f64,
    /// The plan's expected rate, and the factor over it the capacity must reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    pub headroom_factor: f64,
    /// Capacity (or the rate proven held) over the expected rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee: Option<KneeReport>,
    /// When the generator ran out: at which rate, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_limit: Option<String>,
    /// One line for people.
    pub conclusion: String,
    /// How long the search took, seconds.
    pub duration_s: f64,
    pub steps: Vec<StepReport>,
}

fn rate(v: f64) -> String {
    format!("{}/s", format_number(v))
}

impl CapacityReport {
    /// The report of a search that ended with `c` after `steps`.
    pub fn new(
        cap: &CapacitySpec,
        c: &Conclusion,
        steps: Vec<StepReport>,
        duration_s: f64,
    ) -> CapacityReport {
        let knee = c.max_rate.and_then(|m| {
            steps
                .iter()
                .rev()
                .find(|s| search::round_rate(s.rate) == m && s.verdict == StepVerdict::Pass)
                .map(|s| KneeReport {
                    rate: s.rate,
                    achieved_rps: s.achieved_rps,
                    mean_ms: s.mean_ms,
                    p95_ms: s.p95_ms,
                    p99_ms: s.p99_ms,
                    concurrency: round3(s.achieved_rps * s.mean_ms / 1000.0),
                })
        });
        let generator_limit = c.generator_ceiling.and_then(|g| {
            steps
                .iter()
                .rev()
                .find(|s| search::round_rate(s.rate) == g && s.verdict == StepVerdict::Invalid)
                .map(|s| format!("at {}: {}", rate(g), s.detail))
        });
        let proven = proven_rate(c);
        let headroom = cap.expected.zip(proven).map(|(e, p)| round3(p / e));
        let conclusion = conclusion_line(c, cap, &steps, knee.as_ref(), generator_limit.as_deref());
        CapacityReport {
            scenario: cap.scenario.clone(),
            outcome: c.outcome,
            max_rate: c.max_rate,
            low: c.low,
            high: c.high,
            precision: cap.precision,
            expected: cap.expected,
            headroom_factor: cap.headroom,
            headroom,
            knee,
            generator_limit,
            conclusion,
            duration_s: round3(duration_s),
            steps,
        }
    }

    /// The checks this search decides: the search itself, and the headroom when the plan
    /// has an expected rate.
    pub fn checks(&self, cap: &CapacitySpec) -> Vec<CheckResult> {
        let mut out = vec![CheckResult {
            name: format!("capacity search {}", self.scenario),
            kind: CheckKind::Capacity,
            passed: matches!(self.outcome, Outcome::Found | Outcome::AtLeastMax),
            expected: format!(
                "the highest rate meeting the thresholds, to {}%",
                format_number(self.precision * 100.0)
            ),
            observed: self.conclusion.clone(),
            runbook: cap.runbook.clone(),
        }];
        if let Some(e) = self.expected {
            let need = e * self.headroom_factor;
            let proven = match self.outcome {
                Outcome::Found => self.max_rate,
                Outcome::AtLeastMax | Outcome::GeneratorLimited => self.low,
                _ => None,
            };
            let observed = match (proven, self.outcome) {
                (Some(p), Outcome::Found) => {
                    format!("{} ({}x expected)", rate(p), format_number(round3(p / e)))
                }
                (Some(p), _) => format!(
                    "at least {} ({}x expected)",
                    rate(p),
                    format_number(round3(p / e))
                ),
                (None, _) => format!("no capacity: {}", self.conclusion),
            };
            out.push(CheckResult {
                name: format!("capacity headroom {}", self.scenario),
                kind: CheckKind::Capacity,
                passed: proven.is_some_and(|p| p >= need),
                expected: format!(
                    ">= {} ({}x expected {})",
                    rate(need),
                    format_number(self.headroom_factor),
                    rate(e)
                ),
                observed,
                runbook: cap.runbook.clone(),
            });
        }
        out
    }
}

/// The rate the target was shown to hold: the capacity found, or the lower bound when the
/// search stopped at `max` or at the generator's limit.
fn proven_rate(c: &Conclusion) -> Option<f64> {
    match c.outcome {
        Outcome::Found => c.max_rate,
        Outcome::AtLeastMax | Outcome::GeneratorLimited => c.low,
        _ => None,
    }
}

fn conclusion_line(
    c: &Conclusion,
    cap: &CapacitySpec,
    steps: &[StepReport],
    knee: Option<&KneeReport>,
    generator: Option<&str>,
) -> String {
    let opt = |v: Option<f64>| v.map(rate).unwrap_or_else(|| "-".into());
    match c.outcome {
        Outcome::Found => {
            let mut s = format!(
                "max sustainable {}, between {} and {}",
                opt(c.max_rate),
                opt(c.low),
                opt(c.high)
            );
            if let Some(k) = knee {
                s.push_str(&format!(
                    " (at the knee: p95 {} ms, {} requests in flight)",
                    format_number(k.p95_ms),
                    format_number(k.concurrency)
                ));
            }
            s
        }
        Outcome::AtLeastMax => format!(
            "the target held every rate up to max {}: its capacity is at least that (raise `max` to find the knee)",
            rate(cap.max)
        ),
        Outcome::BelowMin => format!(
            "the thresholds broke at every rate down to {}: the capacity is below that",
            opt(steps.iter().map(|s| s.rate).reduce(f64::min))
        ),
        Outcome::GeneratorLimited => format!(
            "the generator ran out before the target did ({}); the target held {}, no capacity above that can be claimed",
            generator.unwrap_or("-"),
            opt(c.low)
        ),
        Outcome::StepLimit => format!(
            "max_steps ({}) ran out before the search converged: the knee is between {} and {}",
            cap.max_steps,
            opt(c.low),
            opt(c.high)
        ),
        Outcome::Interrupted => format!(
            "interrupted after {} step(s): the target held {}, broke at {}",
            steps.len(),
            opt(c.low),
            opt(c.high)
        ),
    }
}

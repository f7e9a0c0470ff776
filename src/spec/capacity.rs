//! The lowered `capacity:` section: how `loadgate capacity` searches the highest arrival rate
//! at which the plan's thresholds still hold.
//!
//! The search ([`crate::drills::capacity`]) brackets by doubling from `min`, bisects to
//! `precision`, then repeats the two rates around the knee `repeats` times so the result is
//! a rate with an interval. Every step is a fresh open-model run of `scenario` at one rate:
//! `warmup` of load that is not judged, then `step` that is, judged on its own histogram.
use std::time::Duration;

/// Defaults, chosen so a plan states only what differs (FORMAT.md documents them).
pub const DEFAULT_PRECISION: f64 = 0.05;
pub const DEFAULT_MIN_RATE: f64 = 10.0;
pub const DEFAULT_MAX_RATE: f64 = 100_000.0;
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
pub const DEFAULT_STEP: Duration = Duration::from_secs(10);
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(2);
pub const DEFAULT_REPEATS: u32 = 3;
pub const DEFAULT_MAX_STEPS: u32 = 40;
/// The seeds' pre-deploy rule: hold 2x the expected traffic.
pub const DEFAULT_HEADROOM: f64 = 2.0;

/// A capacity search, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySpec {
    /// The scenario whose arrival rate is searched; the others do not run.
    pub scenario: String,
    /// The traffic the service is expected to get, per second: the headroom check passes
    /// when the capacity is at least `headroom` times this.
    pub expected: Option<f64>,
    /// The headroom factor over `expected` (default 2).
    pub headroom: f64,
    /// Bisection stops when the bracket is narrower than this fraction of its low end.
    pub precision: f64,
    /// The first rate tried, per second; the bracket doubles from here.
    pub min: f64,
    /// The highest rate tried, per second.
    pub max: f64,
    /// Load at the step's rate before the judged part (not judged).
    pub warmup: Duration,
    /// The judged part of every step.
    pub step: Duration,
    /// Pause between steps, so a step does not start on the last one's backlog.
    pub cooldown: Duration,
    /// Trials of each of the two rates around the knee.
    pub repeats: u32,
    /// Upper bound of the search's steps (every loop bounded).
    pub max_steps: u32,
    /// The VU (in-flight request) budget of a step; default: the rate times the request
    /// timeout, at least 50 and at most 20,000.
    pub max_vus: Option<u32>,
    /// What to do when a capacity check fails.
    pub runbook: Option<String>,
}

impl CapacitySpec {
    /// A search of `scenario` with every default.
    pub fn new(scenario: &str) -> CapacitySpec {
        CapacitySpec {
            scenario: scenario.to_string(),
            expected: None,
            headroom: DEFAULT_HEADROOM,
            precision: DEFAULT_PRECISION,
            min: DEFAULT_MIN_RATE,
            max: DEFAULT_MAX_RATE,
            warmup: DEFAULT_WARMUP,
            step: DEFAULT_STEP,
            cooldown: DEFAULT_COOLDOWN,
            repeats: DEFAULT_REPEATS,
            max_steps: DEFAULT_MAX_STEPS,
            max_vus: None,
            runbook: None,
        }
    }
}

//! The plan's `capacity:` section (read by `loadgate capacity PLAN`), field for field; see
//! the parent module for the conventions.

use super::*;

/// `capacity:` — search the highest arrival rate of one scenario at which the plan's
/// thresholds still hold: bracket by doubling from `min`, bisect to `precision`, repeat the
/// rates around the knee. Every step is a fresh open-model run with its warm-up excluded.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// The scenario whose rate is searched (default: the plan's only scenario); the other
    /// scenarios do not run. `--scenario NAME` overrides it.
    pub scenario: Option<String>,
    /// The traffic expected in production, e.g. `150/s`: the capacity must reach `headroom`
    /// times this (2x by default) or the headroom check fails.
    pub expected: Option<Rate>,
    /// The factor over `expected` the capacity must reach (default 2).
    #[schemars(range(min = 1.0))]
    pub headroom: Option<f64>,
    /// Bisect until the bracket is narrower than this share of the rate (default 5%).
    pub precision: Option<Objective>,
    /// The first rate tried (default 10/s); the bracket doubles from here.
    pub min: Option<Rate>,
    /// The highest rate tried (default 100000/s).
    pub max: Option<Rate>,
    /// Load before each step's judged part, not judged (default 5s).
    pub warmup: Option<Duration>,
    /// The judged part of each step (default 10s).
    pub step: Option<Duration>,
    /// Pause between steps (default 2s).
    pub cooldown: Option<Duration>,
    /// Trials of each of the two rates around the knee (default 3).
    #[schemars(range(min = 1))]
    pub repeats: Option<u32>,
    /// Most steps the search may run (default 40).
    #[schemars(range(min = 2))]
    pub max_steps: Option<u32>,
    /// In-flight requests (VUs) a step may have (default: the rate times the request
    /// timeout, between 50 and 20000).
    #[schemars(range(min = 1))]
    pub max_vus: Option<u32>,
    /// What to do when a capacity check fails: text or a link.
    pub runbook: Option<String>,
}

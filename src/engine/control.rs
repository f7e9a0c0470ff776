//! Steering a running load: controllers change a scenario's arrival rate or its request
//! weights (a traffic split) while the workers run.
//!
//! The hot path pays one relaxed atomic load per iteration: each scenario has a version
//! counter; a worker that sees a new version copies the scenario's [`Steering`] under its
//! mutex (rarely: once per change) and rebuilds its local schedule and weights.
//!
//! Rate changes keep every worker thread and segment on the same arrival sequence: a change
//! takes effect at a run-clock instant, and each worker computes the first affected arrival
//! index from that instant and the schedule so far, deterministically (see
//! [`crate::engine::pacer::Steered`]). Arrivals a VU had already claimed before it saw the
//! change keep their old intended time (at most one per VU).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

use crate::spec::RunSpec;

/// A rate override: from `at` (since the scenario's start) on, `rate` arrivals per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateOverride {
    pub at: Duration,
    pub rate: f64,
}

/// What controllers changed in one scenario, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steering {
    pub rates: Vec<RateOverride>,
    /// Request weights replacing the plan's (same length as the scenario's requests).
    pub weights: Option<Vec<u32>>,
    /// The canary's share of iterations, percent, when loadgate splits the scenario between
    /// two targets itself.
    pub canary_weight: Option<u32>,
}

/// Why a steering request was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SteerError {
    #[error("no scenario `{0}` in this run")]
    NoScenario(String),
    #[error(
        "scenario `{scenario}` uses {executor}: only arrival-rate executors have a rate to change"
    )]
    NotOpenModel { scenario: String, executor: String },
    #[error(
        "rate {rate} for scenario `{scenario}` must be a positive number of arrivals per second"
    )]
    BadRate { scenario: String, rate: f64 },
    #[error("canary weight {weight} for scenario `{scenario}` must be 0-100 (percent)")]
    BadCanaryWeight { scenario: String, weight: u32 },
    #[error("scenario `{scenario}` has {expected} request(s), got {got} weight(s); give one weight per request, at least one above 0")]
    BadWeights {
        scenario: String,
        expected: usize,
        got: usize,
    },
}

/// One scenario's steering state.
#[derive(Debug, Default)]
pub struct ScenarioSteer {
    version: AtomicU64,
    state: Mutex<Steering>,
}

impl ScenarioSteer {
    /// The version workers compare with the one they applied (0: nothing changed yet).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The steering as of now, and its version.
    pub fn read(&self) -> (u64, Steering) {
        let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (self.version.load(Ordering::Acquire), g.clone())
    }

    fn update(&self, f: impl FnOnce(&mut Steering)) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The steering of every scenario of a run (shared by the run clock and the workers).
#[derive(Debug)]
pub struct EngineControl {
    names: Vec<String>,
    executors: Vec<&'static str>,
    open_model: Vec<bool>,
    starts: Vec<Duration>,
    requests: Vec<usize>,
    scenarios: Vec<Arc<ScenarioSteer>>,
}

impl EngineControl {
    pub fn new(spec: &RunSpec) -> EngineControl {
        EngineControl {
            names: spec.scenarios.iter().map(|s| s.name.clone()).collect(),
            executors: spec.scenarios.iter().map(|s| s.executor.kind()).collect(),
            open_model: spec
                .scenarios
                .iter()
                .map(|s| s.executor.is_open_model())
                .collect(),
            starts: spec.scenarios.iter().map(|s| s.start_after).collect(),
            requests: spec.scenarios.iter().map(|s| s.requests.len()).collect(),
            scenarios: spec
                .scenarios
                .iter()
                .map(|_| Arc::new(ScenarioSteer::default()))
                .collect(),
        }
    }

    fn index(&self, scenario: &str) -> Result<usize, SteerError> {
        self.names
            .iter()
            .position(|n| n == scenario)
            .ok_or_else(|| SteerError::NoScenario(scenario.to_string()))
    }

    /// The steering state workers of scenario `idx` read.
    pub fn scenario(&self, idx: usize) -> Arc<ScenarioSteer> {
        self.scenarios[idx].clone()
    }

    /// From run-clock time `at` on, run scenario `scenario` at `rate` arrivals per second
    /// (until its planned end). Only for arrival-rate executors.
    pub fn set_rate(&self, scenario: &str, at: Duration, rate: f64) -> Result<(), SteerError> {
        let idx = self.index(scenario)?;
        if !self.open_model[idx] {
            return Err(SteerError::NotOpenModel {
                scenario: scenario.to_string(),
                executor: self.executors[idx].to_string(),
            });
        }
        if !(rate.is_finite() && rate > 0.0) {
            return Err(SteerError::BadRate {
                scenario: scenario.to_string(),
                rate,
            });
        }
        let at = at.saturating_sub(self.starts[idx]);
        self.scenarios[idx].update(|s| s.rates.push(RateOverride { at, rate }));
        Ok(())
    }

    /// Send `weight` percent of scenario `scenario`'s iterations to the canary's target (a
    /// scenario loadgate splits between two targets; elsewhere the weight is unused).
    pub fn set_canary_weight(&self, scenario: &str, weight: u32) -> Result<(), SteerError> {
        let idx = self.index(scenario)?;
        if weight > 100 {
            return Err(SteerError::BadCanaryWeight {
                scenario: scenario.to_string(),
                weight,
            });
        }
        self.scenarios[idx].update(|s| s.canary_weight = Some(weight));
        Ok(())
    }

    /// Replace scenario `scenario`'s request weights (one per request, at least one > 0).
    pub fn set_weights(&self, scenario: &str, weights: Vec<u32>) -> Result<(), SteerError> {
        let idx = self.index(scenario)?;
        if weights.len() != self.requests[idx] || weights.iter().all(|w| *w == 0) {
            return Err(SteerError::BadWeights {
                scenario: scenario.to_string(),
                expected: self.requests[idx],
                got: weights.len(),
            });
        }
        self.scenarios[idx].update(|s| s.weights = Some(weights));
        Ok(())
    }
}

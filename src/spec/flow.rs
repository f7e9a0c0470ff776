//! The lowered `steps:` of a scenario (a user flow) and the step pieces probe chains share:
//! what a step extracts from its response into variables, how long the VU thinks after it,
//! and the condition it repeats until (poll a job until it is done).
//!
//! A flow scenario's steps are its [`super::ScenarioSpec::requests`], in order; the
//! [`FlowSpec`] beside them holds, per step, what a plain request does not have. Each
//! arrival (open model) or VU iteration (closed model) runs every step once, in order.
use std::time::Duration;

use crate::grammar::extract::Extractor;
use crate::grammar::response::ResponseCheck;

/// A scenario's flow: one [`StepSpec`] per request of the scenario, in order.
#[derive(Debug, Clone, Default)]
pub struct FlowSpec {
    pub steps: Vec<StepSpec>,
    /// Every variable the steps extract, in first-extraction order; templates address them
    /// by index into this list.
    pub vars: Vec<String>,
}

/// What a step does besides sending its request.
#[derive(Debug, Clone, Default)]
pub struct StepSpec {
    /// Values taken from the step's response, read by later steps as `{{NAME}}`.
    pub extract: Vec<Extraction>,
    /// Pause after the step (before the next one).
    pub think: Option<ThinkTime>,
    /// Repeat the step until this holds on a response.
    pub until: Option<Until>,
}

/// `NAME: extraction` of a step's `extract:` (or a probe chain's `capture:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub var: String,
    pub from: Extractor,
}

/// A pause: `500ms` (fixed) or `200ms..800ms` (uniform in the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkTime {
    pub min: Duration,
    pub max: Duration,
}

/// Repeat a step until `check` holds on its response, `every` apart, giving up after
/// `deadline` (from the step's first send): the iteration then stops, and the `until` check
/// counts as failed.
#[derive(Debug, Clone)]
pub struct Until {
    pub check: ResponseCheck,
    pub every: Duration,
    pub deadline: Duration,
}

//! Checks: k6-style thresholds over metrics, per-response checks, and the [`CheckResult`]s
//! every judgement (threshold, probe, canary, autoscale, failover, capacity) reports.
//!
//! The verdict of a run is the conjunction of its `CheckResult`s: reports and the exit code
//! are computed from them and nothing else, so each drill only has to push its own results.
pub mod response;
pub mod threshold;
pub mod threshold_eval;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::RunMetrics;
use crate::spec::RunSpec;

/// Which kind of judgement produced a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Threshold,
    Probe,
    Canary,
    Autoscale,
    Failover,
    Capacity,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Threshold => "threshold",
            CheckKind::Probe => "probe",
            CheckKind::Canary => "canary",
            CheckKind::Autoscale => "autoscale",
            CheckKind::Failover => "failover",
            CheckKind::Capacity => "capacity",
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One judged expectation, as it appears in summary.json, junit.xml and the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// Unique, human-readable name, e.g. `http_req_duration{scenario:chat} p(95)<250`.
    pub name: String,
    pub kind: CheckKind,
    pub passed: bool,
    /// What was required, e.g. `p(95)<250`.
    pub expected: String,
    /// What was measured, e.g. `p(95)=41.2`, or `no data`.
    pub observed: String,
}

/// Judge every threshold of the plan against the merged metrics, in plan order.
pub fn evaluate_thresholds(spec: &RunSpec, metrics: &RunMetrics) -> Vec<CheckResult> {
    spec.thresholds
        .iter()
        .map(|t| {
            let outcome = threshold::evaluate(t, metrics);
            let expected = t.expr.to_string();
            CheckResult {
                name: format!("{} {}", t.key, expected),
                kind: CheckKind::Threshold,
                passed: outcome.passed,
                expected,
                observed: outcome.observed,
            }
        })
        .collect()
}

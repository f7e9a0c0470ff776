//! Checks: judgements over measurements, and the [`CheckResult`]s every judgement
//! (threshold, probe, SLO, canary, autoscale, failover, capacity, dependency) reports.
//!
//! - [`threshold_eval`]: k6's threshold expressions over the whole run's merged metrics;
//! - [`window`]: the same expressions over every sliding window of a run (`over 30s`);
//! - [`slo`]: error budgets and multi-window burn rates over per-second good / total counts;
//! - [`failover`]: RTO as users saw it, per fault and repetition, and its distribution over
//!   repetitions, from the per-second series (the faults controller feeds it).
//! - [`autoscale`]: the HPA recommendation recomputed from scraped series, and how the
//!   system's replicas followed it (decision and ready latency, overshoot, flaps).
//! - [`ledger`]: the write ledger (lost, changed, recovered writes and RPO) from every
//!   recorded write and what reading it back found.
//!
//! Everything here is a pure function of measurements (or a fold over per-second slices),
//! so a run, a merge of segments and a re-judged report reach the same verdict. The
//! controllers in [`crate::control`] feed them while the run goes.
//!
//! The verdict of a run is the conjunction of its `CheckResult`s: reports and the exit code
//! are computed from them and nothing else, so each drill only has to push its own results.
pub mod autoscale;
pub mod canary;
pub mod failover;
pub mod ledger;
pub mod mannwhitney;
pub mod slo;
pub mod threshold_eval;
pub mod window;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::RunMetrics;
use crate::spec::ThresholdSpec;

/// Which kind of judgement produced a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Threshold,
    Probe,
    Slo,
    Canary,
    Autoscale,
    Failover,
    Capacity,
    Dependency,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Threshold => "threshold",
            CheckKind::Probe => "probe",
            CheckKind::Slo => "slo",
            CheckKind::Dependency => "dependency",
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
    /// What to do when it fails: the plan's `runbook:` text or link for this check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// The name of a threshold's check: its key and canonical expression, e.g.
/// `http_req_duration{scenario:chat} p(95)<250 over 30s`.
pub fn threshold_check_name(t: &ThresholdSpec) -> String {
    format!("{} {}", t.key, t.expr)
}

/// Judge a whole-run threshold against the merged metrics.
pub fn judge_threshold(t: &ThresholdSpec, metrics: &RunMetrics) -> CheckResult {
    let outcome = threshold_eval::evaluate(t, metrics);
    CheckResult {
        name: threshold_check_name(t),
        kind: CheckKind::Threshold,
        passed: outcome.passed,
        expected: t.expr.to_string(),
        observed: outcome.observed,
        runbook: t.runbook.clone(),
    }
}

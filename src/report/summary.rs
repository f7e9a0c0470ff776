//! `summary.json`: the machine-readable result of a run, and what `--json` prints.
//!
//! This is API (see the contract in design.md): `verdict`, `checks` and `scenarios` with
//! `requests`, `errors`, `dropped`, `rps` and `latency_ms {mean,p50,p90,p95,p99,p999,max}` are
//! required and keep their meaning. Everything else is additive. The JSON Schema generated
//! from these types is committed at `testdata/summary.schema.json`; a test fails when the
//! two drift apart.
//!
//! Extending: a drill that reports a section adds an `Option<T>` field with
//! `#[serde(default, skip_serializing_if = "Option::is_none")]` (typed, so it appears in the
//! schema). Until it has a type, a drill may put a JSON value into [`Summary::sections`],
//! which is flattened into the top-level object.
//!
//! Units: latencies are milliseconds rounded to 3 decimals (HDR histograms keep 3 significant
//! digits); `latency_ms` is intended send → last byte (coordinated-omission corrected in the
//! open model), `service_time_ms` actual send → last byte; `rps` is requests per second of the
//! scenario's own active time.
use std::collections::BTreeMap;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;
use crate::metrics::{RunMetrics, SeriesStats};

/// Overall outcome: `fail` iff any check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// Why a run stopped before its plan's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interruption {
    /// Stopped from outside (Ctrl-C, SIGTERM); the report covers what ran.
    Interrupted(String),
    /// Stopped by an `abort_on_fail` threshold (or another abort rule).
    Aborted(String),
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "loadgate summary.json")]
pub struct Summary {
    /// `pass` when every check passed (a run without checks passes), else `fail`.
    pub verdict: Verdict,
    /// Every judged expectation: thresholds, probes, drills.
    pub checks: Vec<CheckResult>,
    /// Per scenario, by name.
    pub scenarios: BTreeMap<String, ScenarioSummary>,
    /// Plan name (`attack` for ad-hoc runs).
    pub plan: String,
    /// Wall-clock start of the run, RFC 3339 (UTC).
    pub started_at: String,
    /// Run duration in seconds (start to end, including graceful stops).
    pub duration_s: f64,
    /// Number of entries of `checks` that passed.
    pub checks_passed: u64,
    /// Number of entries of `checks` that failed.
    pub checks_failed: u64,
    /// True when the run was stopped from outside (Ctrl-C).
    pub interrupted: bool,
    /// True when the run was stopped early by an `abort_on_fail` threshold.
    pub aborted: bool,
    /// Why the run stopped early, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Things that happened on the run clock (scenario start/end, aborts, faults, ...).
    pub events: Vec<EventSummary>,
    /// Sections added by drills that have no typed field yet, flattened into the top level.
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

/// One scenario's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioSummary {
    /// Requests completed (succeeded or failed).
    pub requests: u64,
    /// Requests counted as failed (transport error or status >= 400).
    pub errors: u64,
    /// Iterations that could not start on time and were not sent.
    pub dropped: u64,
    /// Requests per second over the scenario's active time.
    pub rps: f64,
    /// Latency, intended send → last byte, milliseconds.
    pub latency_ms: LatencySummary,
    /// Executor name, e.g. `constant-arrival-rate`.
    pub executor: String,
    /// How long the scenario was active, seconds.
    pub active_s: f64,
    /// Service time, actual send → last byte, milliseconds.
    pub service_time_ms: LatencySummary,
    /// Failed requests by error kind (`timeout`, `status_5xx`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Responses by HTTP status code (requests without a response are not counted here).
    pub status_codes: BTreeMap<String, u64>,
    /// Per-response checks (`status == 200`, ...) of this scenario.
    pub response_checks: ResponseChecks,
}

/// Latency distribution in milliseconds. All zero when there were no samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Counts of per-response check evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ResponseChecks {
    pub passed: u64,
    pub failed: u64,
}

/// An event of the run timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventSummary {
    /// Seconds since the run started.
    pub at_s: f64,
    pub kind: String,
    pub detail: String,
}

/// Round to 3 decimals (what a 3-significant-digit histogram supports in ms).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl LatencySummary {
    /// From a histogram in microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: f64| round3(us / 1000.0);
        let q = |p: f64| ms(h.value_at_quantile(p) as f64);
        LatencySummary {
            mean: ms(h.mean()),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(h.max() as f64),
        }
    }
}

/// RFC 3339 (UTC, second precision) for a wall-clock time.
pub fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let dt = dt.replace_nanosecond(0).unwrap_or(dt);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

impl Summary {
    /// Build the summary of a run from its merged metrics and its judged checks.
    pub fn build(
        plan_name: &str,
        metrics: &RunMetrics,
        checks: Vec<CheckResult>,
        started_at_wall: SystemTime,
        interruption: Option<Interruption>,
    ) -> Summary {
        let mut scenarios = BTreeMap::new();
        for (idx, info) in metrics.scenarios.iter().enumerate() {
            let mut merged = SeriesStats::default();
            let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
            let mut status_codes: BTreeMap<String, u64> = BTreeMap::new();
            for (k, s) in metrics
                .series
                .iter()
                .filter(|(k, _)| k.scenario as usize == idx)
            {
                merged.merge(s);
                if let Some(e) = k.error {
                    *errors_by_kind.entry(e.as_str().to_string()).or_default() += s.failed;
                }
                if k.status != 0 {
                    *status_codes.entry(k.status.to_string()).or_default() += s.requests;
                }
            }
            errors_by_kind.retain(|_, n| *n > 0);
            status_codes.retain(|_, n| *n > 0);
            let active = info.active.as_secs_f64();
            let rps = if active > 0.0 {
                round3(merged.requests as f64 / active)
            } else {
                0.0
            };
            scenarios.insert(
                info.name.clone(),
                ScenarioSummary {
                    requests: merged.requests,
                    errors: merged.failed,
                    dropped: info.dropped,
                    rps,
                    latency_ms: LatencySummary::from_micros(&merged.duration),
                    executor: info.executor.clone(),
                    active_s: round3(active),
                    service_time_ms: LatencySummary::from_micros(&merged.service),
                    errors_by_kind,
                    status_codes,
                    response_checks: ResponseChecks {
                        passed: merged.checks_passed,
                        failed: merged.checks_failed,
                    },
                },
            );
        }
        let checks_failed = checks.iter().filter(|c| !c.passed).count() as u64;
        let checks_passed = checks.len() as u64 - checks_failed;
        let (interrupted, aborted, stop_reason) = match interruption {
            None => (false, false, None),
            Some(Interruption::Interrupted(r)) => (true, false, Some(r)),
            Some(Interruption::Aborted(r)) => (false, true, Some(r)),
        };
        Summary {
            verdict: if checks_failed == 0 {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            checks,
            scenarios,
            plan: plan_name.to_string(),
            started_at: rfc3339(started_at_wall),
            duration_s: round3(metrics.elapsed.as_secs_f64()),
            checks_passed,
            checks_failed,
            interrupted,
            aborted,
            stop_reason,
            events: metrics
                .events
                .iter()
                .map(|e| EventSummary {
                    at_s: round3(e.at.as_secs_f64()),
                    kind: e.kind.clone(),
                    detail: e.detail.clone(),
                })
                .collect(),
            sections: BTreeMap::new(),
        }
    }

    /// Add more checks (e.g. from drills judged after the summary was built) and recompute
    /// the verdict and counts.
    pub fn push_checks(&mut self, more: impl IntoIterator<Item = CheckResult>) {
        self.checks.extend(more);
        self.checks_failed = self.checks.iter().filter(|c| !c.passed).count() as u64;
        self.checks_passed = self.checks.len() as u64 - self.checks_failed;
        self.verdict = if self.checks_failed == 0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
    }

    /// True when the verdict is `pass`.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Pretty JSON, as written to summary.json.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes")
    }
}

/// The JSON Schema of summary.json (committed at `testdata/summary.schema.json`).
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(Summary).to_value()
}

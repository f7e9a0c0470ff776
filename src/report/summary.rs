//! `summary.json`: the machine-readable result of a run, and what `--json` prints.
//!
//! This is API (see the contract in design.md): `verdict`, `checks` and `scenarios` with
//! `requests`, `errors`, `dropped`, `rps` and `latency_ms {mean,p50,p90,p95,p99,p999,max}` are
//! required and keep their meaning. Everything else is additive. The JSON Schema generated
//! from these types is committed at `testdata/summary.schema.json`; a test fails when the
//! two drift apart.
//!
//! Extending: a drill that reports a section adds a variant to
//! [`crate::control::Section`] and an `Option<T>` field here with
//! `#[serde(default, skip_serializing_if = "Option::is_none")]` (typed, so it appears in the
//! schema), filled in [`Summary::build`]. Events carry their typed fields flattened beside
//! `at_s`, `kind` and `detail`.
//!
//! An interrupted run (Ctrl-C, SIGTERM) never reads as a pass: its verdict is `fail` with
//! `interrupted: true`, whatever the checks over what ran said (the CLI exits 105).
//!
//! Units: latencies are milliseconds rounded to 3 decimals (HDR histograms keep 3 significant
//! digits); `latency_ms` is intended send → last byte (coordinated-omission corrected in the
//! open model), `service_time_ms` actual send → last byte; `rps` is requests per second of the
//! scenario's own active time.
use std::collections::BTreeMap;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::warnings::{warnings, Warning};
use crate::checks::autoscale::AutoscaleReport;
use crate::checks::slo::SloReport;
use crate::checks::CheckResult;
use crate::control::blue_green::BlueGreenReport;
use crate::control::canary::CanaryReport;
use crate::control::faults::FailoverReport;
use crate::control::scrape::ScrapeReport;
use crate::control::{ProbeReport, Section, Stopped};
use crate::drills::capacity::CapacityReport;
pub use crate::metrics::{round3, LatencySummary};
use crate::metrics::{EventKind, RunMetrics, SeriesStats, SourceKind};

/// Overall outcome: `fail` when any check failed or the run was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// The whole `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "loadgate summary.json")]
pub struct Summary {
    /// `pass` when every check passed (a run without checks passes) and the run was not
    /// interrupted, else `fail`.
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
    /// Things that happened on the run clock (scenario start/end, aborts, probe failures,
    /// burn alerts, ...), in time order.
    pub events: Vec<EventSummary>,
    /// One entry per probe: samples, failures, latency, the slowest samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Vec<ProbeReport>>,
    /// One entry per SLO: error budget, burn-rate windows, verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slos: Option<Vec<SloReport>>,
    /// The canary gate: its `decision` (promote | rollback | nodata | inconclusive), whether
    /// it is what the plan expected, and every judged step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryReport>,
    /// The blue/green drill: per switch (cutover, switch back) its window, failed requests,
    /// the worst second and the cutover time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenReport>,
    /// One entry per fault of the plan: RTO as users saw it (worst repetition, and min /
    /// median / max), every repetition's injection and window, and the write ledger's
    /// `acknowledged_writes` / `lost_writes` (null: the run kept no ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Vec<FailoverReport>>,
    /// The capacity search (`loadgate capacity`): `max_rate` with its interval, the knee,
    /// the headroom over the expected rate, and every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
    /// One entry per scraper (`scrapes:`): its source, scrapes and errors, and every
    /// scraped point (`at_s`, `series`, `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrapes: Option<Vec<ScrapeReport>>,
    /// One entry per autoscaling rule (`autoscaling:`): every episode (trigger, recommended
    /// replicas, decision and ready latency, overshoot), the flaps, the peaks and the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Vec<AutoscaleReport>>,
    /// What the reader should know whatever the verdict: dropped arrivals, mostly failed
    /// scenarios, nothing sent, nothing judged (see `report::warnings`).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// What ran: loadgate's version, the plan and its digest, the environment profile, every
    /// override, the target (filled by the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
}

/// What ran, so a report says which plan, which overrides and which target it judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    pub loadgate_version: String,
    /// The plan file as given (absent for `attack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_path: Option<String>,
    /// SHA-256 of the plan's text, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    /// The `--env` profile, if one was selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Every `--set KEY=VALUE`, in order.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The base URL the load went to.
    pub target: String,
    /// The reference stack's backend, when the run started one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
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
    /// The first message seen per error kind, e.g. `POST /v1/chat: connection refused
    /// (127.0.0.1:1)` or `GET /x: HTTP 503: {"error":"overloaded"}`.
    #[serde(default)]
    pub first_errors: BTreeMap<String, String>,
    /// Responses by HTTP status code (requests without a response are not counted here).
    pub status_codes: BTreeMap<String, u64>,
    /// Per-response checks (`status == 200`, ...) of this scenario, all together.
    pub response_checks: ResponseChecks,
    /// Each response check by name (per request or flow step): passes, fails and pass rate.
    /// These describe responses; they fail the run only through a `checks` threshold (e.g.
    /// `checks{check:status == 200}: ["rate>0.99"]`).
    #[serde(default)]
    pub checks_by_name: Vec<NamedCheck>,
    /// A flow's steps, in order (absent for a scenario without `steps:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSummary>,
    /// Iterations completed (flows: every step ran or the flow stopped early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Metric `iteration_duration`: one iteration, from its intended start to the end of its
    /// last step (think time included), milliseconds. Flows only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration_duration_ms: Option<LatencySummary>,
}

/// One response check of a request or flow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamedCheck {
    /// The check as written (what `checks{check:NAME}` names); a flow step's repeat
    /// condition reads `until: CHECK`, its extractions `extract NAME: SOURCE`.
    pub name: String,
    /// The request's name (a flow step's name).
    pub request: String,
    /// The flow step, when the scenario is a flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub passes: u64,
    pub fails: u64,
    /// passes / (passes + fails); 0 when never evaluated.
    pub rate: f64,
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepSummary {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    /// Latency of the step's requests (the first step's from the intended start).
    pub latency_ms: LatencySummary,
    pub status_codes: BTreeMap<String, u64>,
}

/// Counts of per-response check evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ResponseChecks {
    pub passed: u64,
    pub failed: u64,
}

/// An event of the run timeline: its time, a line for people, and its typed fields
/// (`kind` and the kind's own fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventSummary {
    /// Seconds since the run started.
    pub at_s: f64,
    /// One line for people.
    pub detail: String,
    #[serde(flatten)]
    pub event: EventKind,
}

impl EventSummary {
    /// The `kind` tag, e.g. `scenario_start`.
    pub fn kind(&self) -> &'static str {
        self.event.name()
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
    /// Build the summary of a run from its merged metrics, its judged checks and the
    /// controllers' report sections.
    pub fn build(
        plan_name: &str,
        metrics: &RunMetrics,
        checks: Vec<CheckResult>,
        sections: Vec<Section>,
        started_at_wall: SystemTime,
        stopped: Option<&Stopped>,
    ) -> Summary {
        let mut scenarios = BTreeMap::new();
        for (idx, info) in metrics.scenarios.iter().enumerate() {
            if info.kind != SourceKind::Scenario {
                continue;
            }
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
            let mut checks_by_name = Vec::new();
            for (ri, names) in info.checks.iter().enumerate() {
                let request = info.requests.get(ri).cloned().unwrap_or_default();
                for (ci, name) in names.iter().enumerate() {
                    let [passes, fails] = metrics.check_counts.get(idx, ri, ci);
                    checks_by_name.push(NamedCheck {
                        name: name.clone(),
                        step: info.flow.then(|| request.clone()),
                        request: request.clone(),
                        passes,
                        fails,
                        rate: if passes + fails > 0 {
                            passes as f64 / (passes + fails) as f64
                        } else {
                            0.0
                        },
                    });
                }
            }
            let mut steps = Vec::new();
            if info.flow {
                for (ri, name) in info.requests.iter().enumerate() {
                    let mut st = SeriesStats::default();
                    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
                    for (k, s) in metrics
                        .series
                        .iter()
                        .filter(|(k, _)| k.scenario as usize == idx && k.request as usize == ri)
                    {
                        st.merge(s);
                        if k.status != 0 {
                            *codes.entry(k.status.to_string()).or_default() += s.requests;
                        }
                    }
                    steps.push(StepSummary {
                        name: name.clone(),
                        requests: st.requests,
                        errors: st.failed,
                        latency_ms: LatencySummary::from_micros(&st.duration),
                        status_codes: codes,
                    });
                }
            }
            let iteration_hist = metrics.iterations.get(idx).filter(|_| info.flow);
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
                    first_errors: metrics
                        .first_errors
                        .iter()
                        .filter(|((sc, _), _)| *sc as usize == idx)
                        .map(|((_, k), m)| (k.as_str().to_string(), m.clone()))
                        .collect(),
                    errors_by_kind,
                    status_codes,
                    response_checks: ResponseChecks {
                        passed: merged.checks_passed,
                        failed: merged.checks_failed,
                    },
                    checks_by_name,
                    steps,
                    iterations: iteration_hist.map(|h| h.len()),
                    iteration_duration_ms: iteration_hist.map(LatencySummary::from_micros),
                },
            );
        }
        let checks_failed = checks.iter().filter(|c| !c.passed).count() as u64;
        let checks_passed = checks.len() as u64 - checks_failed;
        let (interrupted, aborted, stop_reason) = match stopped {
            None => (false, false, None),
            Some(Stopped::Interrupted) => (
                true,
                false,
                Some("interrupted (Ctrl-C / SIGTERM)".to_string()),
            ),
            Some(Stopped::Aborted { check, observed }) => (
                false,
                true,
                Some(format!("abort_on_fail check failed: {check} ({observed})")),
            ),
        };
        let warnings = warnings(&scenarios, &checks);
        let (mut probes, mut slos, mut canary, mut blue_green) = (None, None, None, None);
        let (mut failover, mut scrapes, mut autoscale) = (None, None, None);
        for s in sections {
            match s {
                Section::Probes(p) => probes = Some(p),
                Section::Slos(s) => slos = Some(s),
                Section::Canary(c) => canary = Some(*c),
                Section::BlueGreen(b) => blue_green = Some(*b),
                Section::Failover(f) => failover = Some(f),
                Section::Scrapes(s) => scrapes = Some(s),
                Section::Autoscale(a) => autoscale = Some(a),
            }
        }
        Summary {
            verdict: if checks_failed == 0 && !interrupted {
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
                    detail: e.kind.detail(),
                    event: e.kind.clone(),
                })
                .collect(),
            probes,
            slos,
            canary,
            blue_green,
            failover,
            capacity: None,
            scrapes,
            autoscale,
            warnings,
            run: None,
        }
    }

    /// Add more checks (e.g. from drills judged after the summary was built) and recompute
    /// the verdict and counts.
    pub fn push_checks(&mut self, more: impl IntoIterator<Item = CheckResult>) {
        self.checks.extend(more);
        if !self.checks.is_empty() {
            self.warnings.retain(|w| *w != Warning::NothingJudged);
        }
        self.checks_failed = self.checks.iter().filter(|c| !c.passed).count() as u64;
        self.checks_passed = self.checks.len() as u64 - self.checks_failed;
        self.verdict = if self.checks_failed == 0 && !self.interrupted {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
    }

    /// Attach a capacity search's section. The scenario row of a search is every step's
    /// traffic together, overloaded steps included, so the warnings about its drops and
    /// failures say nothing the step table does not (each step reports its own): they go.
    pub fn set_capacity(&mut self, c: CapacityReport) {
        self.warnings
            .retain(|w| !matches!(w, Warning::Dropped { .. } | Warning::MostlyFailed { .. }));
        self.capacity = Some(c);
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

/// summary.json.
pub struct JsonExporter;

impl crate::report::Exporter for JsonExporter {
    fn file_name(&self) -> &'static str {
        crate::report::SUMMARY_FILE
    }

    fn render(
        &self,
        run: &crate::report::RunReport<'_>,
    ) -> Result<Vec<u8>, crate::report::ReportError> {
        let mut json = run.summary.to_json_pretty();
        json.push('\n');
        Ok(json.into_bytes())
    }
}

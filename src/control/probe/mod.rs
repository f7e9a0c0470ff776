//! Probes: synthetic requests on a fixed cadence, each judged against its own SLO, running
//! beside the load for the whole test or a phase of it (`GET /auth/me` every second,
//! p95 < 250 ms), and chains: submit, then poll until a JSON condition holds, within a
//! deadline ("enqueue a job; it is done within 60 s").
//!
//! Probe traffic is kept apart from the scenarios': each probe records into its own series
//! source (tag `probe:NAME`, no `scenario` tag) through its own recorder, so a scenario's
//! thresholds and SLOs never see it, while `http_req_duration{probe:login}` still works in a
//! threshold and the probe shows in timeseries.csv as `probe:NAME`.
//!
//! What a sample is:
//! - a request probe: one request; latency from send to the end of the body; it fails on a
//!   transport error, a status >= 400 (error `status_4xx` / `status_5xx`) or a failed check
//!   (error `check_failed`);
//! - a chain: the submit request (failing as above), then a poll every `poll.every` until
//!   `until` holds; latency from the submit to the poll that saw the condition. `until` (and
//!   `fail_if`, which fails the chain at once) is judged on every response, whatever its
//!   status; polls that get no answer are retried. A chain still not done at its deadline
//!   fails with error `deadline` and latency = the deadline. A poll template naming a value
//!   the submit's response did not have fails the chain at once (error `check_failed`)
//!   instead of polling a wrong URL until the deadline.
//!
//! Samples start on the cadence whether or not the previous one finished (a slow probe must
//! not thin out its own samples), up to a bound of in-flight samples; a start that would
//! exceed it is counted as `skipped`. When the load ends, samples still in flight get a
//! short grace, then are abandoned and counted as `incomplete` (never as failures).
//!
//! HTTP goes through reqwest: probes are a few requests a second, off the hot path.
//!
//! Evidence per probe (summary.json `probes`): samples, failures, latency percentiles, the
//! slowest samples and the failures with their run-clock times; one `probe` check per probe
//! with every SLO expression (default `rate==0`: no sample may fail).
//!
//! Files: this one holds the controller, the evidence and the report; [`task`] a probe's
//! cadence loop and its recorder; [`http`] one sample (a request or a chain) over reqwest.
mod http;
mod task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::threshold_eval::evaluate_expr;
use crate::checks::{CheckKind, CheckResult};
use crate::grammar::threshold::Aggregation;
use crate::metrics::{format_number, round3, EventKind, LatencySummary, RunMetrics};
use crate::spec::{ProbeKind, ProbeSpec, RunSpec};

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};
use task::{ProbeTask, Shared};

/// How many of the slowest samples a report keeps.
const WORST_KEPT: usize = 5;
/// How many failures a report lists (the rest are counted).
const FAILURES_KEPT: usize = 50;
/// Response bodies are read up to this size for checks and captures.
pub(super) const BODY_CAP: usize = 1 << 20;
/// In-flight samples when the load ends get this long to finish.
pub(super) const END_GRACE: Duration = Duration::from_secs(2);

/// One sample in a probe's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeSample {
    /// Run-clock start of the sample, seconds.
    pub at_s: f64,
    pub latency_ms: f64,
    /// HTTP status of the last response (0: none).
    pub status: u16,
    /// Error kind when the sample failed (`timeout`, `status_5xx`, `check_failed`,
    /// `deadline`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One SLO expression of a probe, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeSloResult {
    pub expected: String,
    pub observed: String,
    pub passed: bool,
}

/// One probe in summary.json's `probes` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeReport {
    pub name: String,
    /// `request` or `chain`.
    pub kind: String,
    /// What it sends, e.g. `GET /auth/me`, or `POST /v1/jobs, then GET /v1/jobs/{{id}}
    /// until json /status == done`.
    pub target: String,
    /// Cadence, seconds.
    pub every_s: f64,
    pub samples: u64,
    pub failed: u64,
    /// Samples still in flight when the load ended (not judged).
    pub incomplete: u64,
    /// Starts skipped because too many samples were in flight.
    pub skipped: u64,
    /// Latency of the samples (failed ones included), milliseconds.
    pub latency_ms: LatencySummary,
    pub slo: Vec<ProbeSloResult>,
    /// The slowest samples, slowest first.
    pub worst: Vec<ProbeSample>,
    /// Failed samples in time order (the first 50).
    pub failures: Vec<ProbeSample>,
    /// Failures not listed in `failures`.
    pub failures_omitted: u64,
    pub passed: bool,
}

/// What a probe's task saw (shared with the controller; touched once per sample).
#[derive(Debug, Default)]
pub(super) struct Evidence {
    samples: u64,
    failed: u64,
    incomplete: u64,
    skipped: u64,
    worst: Vec<ProbeSample>,
    failures: Vec<ProbeSample>,
    failures_omitted: u64,
    failing: bool,
    failing_count: u64,
}

impl Evidence {
    pub(super) fn add(&mut self, s: &ProbeSample) {
        self.samples += 1;
        let pos = self
            .worst
            .iter()
            .position(|w| w.latency_ms < s.latency_ms)
            .unwrap_or(self.worst.len());
        if pos < WORST_KEPT {
            self.worst.insert(pos, s.clone());
            self.worst.truncate(WORST_KEPT);
        }
        if s.error.is_some() {
            self.failed += 1;
            if self.failures.len() < FAILURES_KEPT {
                self.failures.push(s.clone());
            } else {
                self.failures_omitted += 1;
            }
        }
    }
}

/// The probes controller.
pub struct Probes {
    specs: Vec<Arc<ProbeSpec>>,
    evidence: Vec<Arc<Mutex<Evidence>>>,
}

impl Probes {
    pub fn new(spec: &RunSpec) -> Probes {
        Probes {
            specs: spec.probes.iter().cloned().map(Arc::new).collect(),
            evidence: spec
                .probes
                .iter()
                .map(|_| Arc::new(Mutex::new(Evidence::default())))
                .collect(),
        }
    }
}

pub(super) fn lock(e: &Mutex<Evidence>) -> std::sync::MutexGuard<'_, Evidence> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller for Probes {
    fn name(&self) -> &'static str {
        "probes"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        let client = match build_client(ctx.spec) {
            Ok(c) => c,
            Err(e) => {
                out.push(Action::Record(EventKind::ActionFailed {
                    controller: "probes".into(),
                    reason: format!("cannot build the probes' HTTP client: {e}"),
                }));
                return out;
            }
        };
        let shared = Arc::new(Shared {
            client,
            base: ctx.spec.target.trim_end_matches('/').to_string(),
            default_headers: ctx.spec.http.headers.clone(),
            feeders: ctx.spec.feeders.clone(),
            aggregator: ctx.aggregator.clone(),
            origin: ctx.origin,
            sources: ctx.infos.len(),
        });
        let first_probe_source = ctx.spec.scenarios.len();
        for (i, p) in self.specs.iter().enumerate() {
            let task = ProbeTask {
                spec: p.clone(),
                shared: shared.clone(),
                evidence: self.evidence[i].clone(),
                worker: ctx.engine_threads + i,
                source: first_probe_source + i,
                stop: ctx.stop.clone(),
            };
            ctx.tasks.spawn(task.run());
        }
        out
    }

    fn on_tick(&mut self, _tick: &Tick<'_>) -> Vec<Action> {
        Vec::new()
    }

    fn finish(&mut self, end: &End<'_>) -> Conclusion {
        let mut checks = Vec::new();
        let mut reports = Vec::new();
        for (p, ev) in self.specs.iter().zip(&self.evidence) {
            let r = report(p, &lock(ev), end.metrics);
            let expected = p
                .slo
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let mut observed = r
                .slo
                .iter()
                .map(|s| s.observed.clone())
                .collect::<Vec<_>>()
                .join(", ");
            observed.push_str(&format!("; {} samples, {} failed", r.samples, r.failed));
            if let Some(f) = r.failures.first() {
                observed.push_str(&format!(
                    ", first at {}s ({})",
                    format_number(f.at_s),
                    f.reason
                        .as_deref()
                        .or(f.error.as_deref())
                        .unwrap_or("failed")
                ));
            }
            checks.push(CheckResult {
                name: format!("probe {}", p.name),
                kind: CheckKind::Probe,
                passed: r.passed,
                expected: if p.min_samples > 1 {
                    format!("{expected} (at least {} samples)", p.min_samples)
                } else {
                    expected
                },
                observed,
                runbook: p.runbook.clone(),
            });
            reports.push(r);
        }
        Conclusion {
            checks,
            sections: vec![Section::Probes(reports)],
        }
    }
}

/// The metric a probe SLO expression judges: latency for trend aggregations, failures for
/// `rate`, samples for `count`.
fn probe_metric(agg: Aggregation) -> &'static str {
    match agg {
        Aggregation::Rate => "http_req_failed",
        Aggregation::Count => "http_reqs",
        _ => "http_req_duration",
    }
}

fn report(p: &ProbeSpec, ev: &Evidence, metrics: &RunMetrics) -> ProbeReport {
    let tags = vec![("probe".to_string(), p.name.clone())];
    let stats =
        metrics.aggregate(|k| crate::checks::threshold_eval::series_matches(metrics, k, &tags));
    let mut slo = Vec::new();
    for e in &p.slo {
        let o = evaluate_expr(
            probe_metric(e.aggregation),
            &tags,
            e,
            metrics,
            p.min_samples,
        );
        slo.push(ProbeSloResult {
            expected: e.to_string(),
            observed: o.observed,
            passed: o.passed,
        });
    }
    let enough = stats.requests >= p.min_samples.max(1);
    let (kind, target) = match &p.kind {
        ProbeKind::Request(r) => ("request", r.label()),
        ProbeKind::Chain(c) => (
            "chain",
            format!(
                "{}, then {} until {}",
                c.submit.label(),
                c.poll.label(),
                c.until
            ),
        ),
    };
    ProbeReport {
        name: p.name.clone(),
        kind: kind.into(),
        target,
        every_s: round3(p.every.as_secs_f64()),
        samples: stats.requests,
        failed: stats.failed,
        incomplete: ev.incomplete,
        skipped: ev.skipped,
        latency_ms: LatencySummary::from_micros(&stats.duration),
        passed: enough && slo.iter().all(|s| s.passed),
        slo,
        worst: ev.worst.clone(),
        failures: ev.failures.clone(),
        failures_omitted: ev.failures_omitted,
    }
}

fn build_client(spec: &RunSpec) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(spec.http.insecure)
        .user_agent(concat!("loadgate/", env!("CARGO_PKG_VERSION"), " probe"))
        .build()
}

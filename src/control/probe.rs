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
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checks::threshold_eval::evaluate_expr;
use crate::checks::{CheckKind, CheckResult};
use crate::grammar::template::{write_json_str_content, Ref, RenderVars, Template};
use crate::grammar::threshold::Aggregation;
use crate::metrics::recorder::{Aggregator, Recorder};
use crate::metrics::{
    format_number, round3, ErrorKind, EventKind, LatencySummary, RunMetrics, SeriesKey,
};
use crate::spec::{Feeder, FeederOrder, ProbeKind, ProbeRequest, ProbeSpec, RunSpec};

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};

/// How many of the slowest samples a report keeps.
const WORST_KEPT: usize = 5;
/// How many failures a report lists (the rest are counted).
const FAILURES_KEPT: usize = 50;
/// Response bodies are read up to this size for checks and captures.
const BODY_CAP: usize = 1 << 20;
/// In-flight samples when the load ends get this long to finish.
const END_GRACE: Duration = Duration::from_secs(2);

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
struct Evidence {
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
    fn add(&mut self, s: &ProbeSample) {
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

fn lock(e: &Mutex<Evidence>) -> std::sync::MutexGuard<'_, Evidence> {
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

/// What every probe task of a run shares.
struct Shared {
    client: reqwest::Client,
    base: String,
    default_headers: Vec<(String, Template)>,
    feeders: BTreeMap<String, Arc<Feeder>>,
    aggregator: Arc<Aggregator>,
    origin: Instant,
    sources: usize,
}

/// One probe's task: starts samples on the cadence, records them, ticks its recorder.
struct ProbeTask {
    spec: Arc<ProbeSpec>,
    shared: Arc<Shared>,
    evidence: Arc<Mutex<Evidence>>,
    worker: usize,
    source: usize,
    stop: CancellationToken,
}

/// A finished sample.
struct Done {
    started: Instant,
    end: Instant,
    latency: Duration,
    status: u16,
    error: Option<ErrorKind>,
    reason: Option<String>,
    checks_passed: u64,
    checks_failed: u64,
}

impl ProbeTask {
    async fn run(self) {
        let sh = self.shared.clone();
        let agg = &sh.aggregator;
        let mut recorder = Recorder::new(self.worker, sh.origin, sh.sources);
        let start = sh.origin + self.spec.from;
        let until = self.spec.until.map(|u| sh.origin + u);
        let every = self.spec.every.max(Duration::from_millis(1));
        let bound = in_flight_bound(&self.spec);
        let mut next = start;
        let mut seq = 0u64;
        let mut started = false;
        let mut sampling = true;
        let mut inflight: JoinSet<Done> = JoinSet::new();
        let mut second = tokio::time::interval_at(
            (sh.origin + Duration::from_millis(1020)).into(),
            Duration::from_secs(1),
        );
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if sampling && until.is_some_and(|u| next >= u) {
                sampling = false;
            }
            if !sampling && inflight.is_empty() {
                break;
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(next.into()), if sampling => {
                    if !started {
                        started = true;
                        agg.scenario_started(self.source);
                    }
                    if inflight.len() >= bound {
                        lock(&self.evidence).skipped += 1;
                    } else {
                        let fut = sample(self.spec.clone(), sh.clone(), seq);
                        inflight.spawn(fut);
                    }
                    seq += 1;
                    // Keep the cadence; after a stall, skip to the next due start.
                    next += every;
                    let now = Instant::now();
                    if next < now {
                        let behind = (now - next).as_nanos() / every.as_nanos().max(1) + 1;
                        next += every * behind as u32;
                    }
                }
                Some(res) = inflight.join_next(), if !inflight.is_empty() => {
                    if let Ok(done) = res {
                        self.record(&mut recorder, done);
                    }
                }
                _ = second.tick() => recorder.tick(agg, Instant::now()),
            }
        }
        // The load ended: give in-flight samples a short grace, abandon the rest.
        let grace = tokio::time::sleep(END_GRACE);
        tokio::pin!(grace);
        while !inflight.is_empty() {
            tokio::select! {
                Some(res) = inflight.join_next() => {
                    if let Ok(done) = res {
                        self.record(&mut recorder, done);
                    }
                }
                _ = &mut grace => {
                    lock(&self.evidence).incomplete += inflight.len() as u64;
                    inflight.abort_all();
                    break;
                }
            }
        }
        recorder.finish(agg);
        if started {
            agg.scenario_finished(self.source);
        }
    }

    fn record(&self, recorder: &mut Recorder, d: Done) {
        let sh = &self.shared;
        let key = SeriesKey {
            scenario: self.source as u16,
            request: 0,
            status: d.status,
            error: d.error,
        };
        let us = d.latency.as_micros() as u64;
        recorder.record(
            &sh.aggregator,
            key,
            d.end,
            us,
            us,
            d.error.is_some(),
            d.checks_passed,
            d.checks_failed,
        );
        let at = d.started.saturating_duration_since(sh.origin);
        let sample = ProbeSample {
            at_s: round3(at.as_secs_f64()),
            latency_ms: round3(d.latency.as_secs_f64() * 1000.0),
            status: d.status,
            error: d.error.map(|e| e.as_str().to_string()),
            reason: d.reason.clone(),
        };
        let mut ev = lock(&self.evidence);
        ev.add(&sample);
        let name = self.spec.name.clone();
        let at_end = d.end.saturating_duration_since(sh.origin);
        if d.error.is_some() {
            ev.failing_count += 1;
            if !ev.failing {
                ev.failing = true;
                let reason = d
                    .reason
                    .clone()
                    .or(sample.error.clone())
                    .unwrap_or_else(|| "failed".into());
                sh.aggregator.push_event_at(
                    at_end,
                    EventKind::ProbeFailure {
                        probe: name,
                        reason,
                    },
                );
            }
        } else if ev.failing {
            ev.failing = false;
            let failed_samples = std::mem::take(&mut ev.failing_count);
            sh.aggregator.push_event_at(
                at_end,
                EventKind::ProbeRecovered {
                    probe: name,
                    failed_samples,
                },
            );
        }
    }
}

/// Samples allowed in flight at once: enough to keep the cadence through one slow sample.
fn in_flight_bound(p: &ProbeSpec) -> usize {
    let longest = match &p.kind {
        ProbeKind::Request(_) => p.timeout,
        ProbeKind::Chain(c) => c.deadline + p.timeout,
    };
    let n = longest.as_secs_f64() / p.every.as_secs_f64().max(1e-3);
    (n.ceil() as usize + 1).clamp(1, 1000)
}

/// One HTTP exchange of a probe.
struct Exchange {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    error: Option<(ErrorKind, String)>,
}

/// One sample (a request, or a whole chain).
async fn sample(spec: Arc<ProbeSpec>, sh: Arc<Shared>, seq: u64) -> Done {
    let started = Instant::now();
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let vars = RenderVars {
        seq,
        vu: 0,
        iter: seq,
    };
    let captured: BTreeMap<String, String> = BTreeMap::new();
    match &spec.kind {
        ProbeKind::Request(req) => {
            let x = exchange(&sh, req, vars, &captured, &mut rng, spec.timeout).await;
            let end = Instant::now();
            let (passed, failed, first_failed) = run_checks(req, &x);
            let (error, reason) = match (&x.error, first_failed) {
                (Some((k, r)), _) => (Some(*k), Some(r.clone())),
                (None, Some(c)) => (
                    Some(ErrorKind::CheckFailed),
                    Some(format!("check failed: {c} (status {})", x.status)),
                ),
                (None, None) => (None, None),
            };
            Done {
                started,
                end,
                latency: end - started,
                status: x.status,
                error,
                reason,
                checks_passed: passed,
                checks_failed: failed,
            }
        }
        ProbeKind::Chain(c) => {
            let deadline = started + c.deadline;
            let fail = |x: &Exchange, kind: ErrorKind, reason: String| {
                let end = Instant::now();
                Done {
                    started,
                    end,
                    latency: end - started,
                    status: x.status,
                    error: Some(kind),
                    reason: Some(reason),
                    checks_passed: 0,
                    checks_failed: 0,
                }
            };
            let x = exchange(&sh, &c.submit, vars, &captured, &mut rng, spec.timeout).await;
            if let Some((k, r)) = &x.error {
                return fail(&x, *k, format!("submit: {r}"));
            }
            let (_, _, first_failed) = run_checks(&c.submit, &x);
            if let Some(check) = first_failed {
                return fail(
                    &x,
                    ErrorKind::CheckFailed,
                    format!("submit: check failed: {check} (status {})", x.status),
                );
            }
            let captured = capture(c, &x.body);
            if let Some(missing) = poll_vars(&c.poll).find(|v| !captured.contains_key(*v)) {
                let have: Vec<&str> = captured.keys().map(String::as_str).collect();
                return fail(
                    &x,
                    ErrorKind::CheckFailed,
                    format!(
                        "submit: the response has no `{missing}` for {{{{{missing}}}}} (captured: {})",
                        if have.is_empty() { "nothing".to_string() } else { have.join(", ") }
                    ),
                );
            }
            let mut last = String::from("no poll answered yet");
            let mut last_status = x.status;
            loop {
                let wake = Instant::now() + c.poll_every;
                if wake >= deadline {
                    tokio::time::sleep_until(deadline.into()).await;
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: c.deadline,
                        status: last_status,
                        error: Some(ErrorKind::Deadline),
                        reason: Some(format!(
                            "not done within {} ({last})",
                            crate::grammar::units::Duration(c.deadline)
                        )),
                        checks_passed: 0,
                        checks_failed: 0,
                    };
                }
                tokio::time::sleep_until(wake.into()).await;
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = spec.timeout.min(left.max(Duration::from_millis(1)));
                let x = exchange(&sh, &c.poll, vars, &captured, &mut rng, timeout).await;
                last_status = x.status;
                if x.status == 0 {
                    // No answer (transport error): try again.
                    let r = x
                        .error
                        .as_ref()
                        .map(|e| e.1.as_str())
                        .unwrap_or("no answer");
                    last = format!("last poll: {r}");
                    continue;
                }
                if let Some(f) = c
                    .fail_if
                    .as_ref()
                    .filter(|f| f.evaluate(x.status, &x.headers, &x.body))
                {
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: end - started,
                        status: x.status,
                        error: Some(ErrorKind::CheckFailed),
                        reason: Some(format!("poll: `{f}` held (status {})", x.status)),
                        checks_passed: 0,
                        checks_failed: 1,
                    };
                }
                if c.until.evaluate(x.status, &x.headers, &x.body) {
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: end - started,
                        status: x.status,
                        error: None,
                        reason: None,
                        checks_passed: 0,
                        checks_failed: 0,
                    };
                }
                last = format!("last poll: status {}, `{}` did not hold", x.status, c.until);
            }
        }
    }
}

/// Every `{{NAME}}` the poll's templates read.
fn poll_vars(poll: &ProbeRequest) -> impl Iterator<Item = &str> {
    poll.path
        .vars_used()
        .chain(poll.headers.iter().flat_map(|(_, t)| t.vars_used()))
        .chain(poll.body.iter().flat_map(|b| b.vars_used()))
}

/// Values for the poll's templates: the chain's `capture:` pointers, or every top-level
/// scalar field of the submit's JSON response.
fn capture(c: &crate::spec::ChainSpec, body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return out;
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if c.capture.is_empty() {
        if let Some(map) = doc.as_object() {
            for (k, v) in map {
                if let Some(t) = text(v) {
                    out.insert(k.clone(), t);
                }
            }
        }
    } else {
        for cap in &c.capture {
            if let Some(t) = doc.pointer(&cap.pointer).and_then(text) {
                out.insert(cap.var.clone(), t);
            }
        }
    }
    out
}

/// (passed, failed, the first failed check).
fn run_checks(req: &ProbeRequest, x: &Exchange) -> (u64, u64, Option<String>) {
    let (mut passed, mut failed, mut first) = (0, 0, None);
    for c in &req.checks {
        if x.error.is_none() && c.evaluate(x.status, &x.headers, &x.body) {
            passed += 1;
        } else {
            failed += 1;
            first.get_or_insert_with(|| c.to_string());
        }
    }
    (passed, failed, first)
}

/// Render a probe template. `json`: the template is a JSON body whose placeholders sit
/// inside JSON strings, so feeder and captured values are written as JSON string content
/// (as the engine does, see `RequestSpec::body_json`).
fn render(
    t: &Template,
    vars: RenderVars,
    sh: &Shared,
    captured: &BTreeMap<String, String>,
    rng: &mut impl Rng,
    json: bool,
) -> String {
    let put = |v: &str, out: &mut Vec<u8>| {
        if json {
            write_json_str_content(v, out);
        } else {
            out.extend_from_slice(v.as_bytes());
        }
    };
    let mut out = Vec::new();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut pick = rand::rngs::SmallRng::from_rng(&mut *rng);
    t.render_with(
        vars,
        rng,
        &mut |r, out| match r {
            Ref::Var(name) => {
                if let Some(v) = captured.get(name) {
                    put(v, out);
                }
            }
            Ref::Feeder { feeder, column } => {
                let Some(f) = sh.feeders.get(feeder) else {
                    return;
                };
                let Some(col) = f.columns.iter().position(|c| c == column) else {
                    return;
                };
                if f.rows.is_empty() {
                    return;
                }
                let row = *rows
                    .entry(feeder.to_string())
                    .or_insert_with(|| match f.order {
                        FeederOrder::Sequential => (vars.seq % f.rows.len() as u64) as usize,
                        FeederOrder::Random => pick.random_range(0..f.rows.len()),
                    });
                if let Some(v) = f.rows[row].get(col) {
                    put(v, out);
                }
            }
        },
        &mut out,
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Send one probe request and read the response (body up to [`BODY_CAP`]).
async fn exchange(
    sh: &Shared,
    req: &ProbeRequest,
    vars: RenderVars,
    captured: &BTreeMap<String, String>,
    rng: &mut impl Rng,
    timeout: Duration,
) -> Exchange {
    let fail = |kind: ErrorKind, reason: String| Exchange {
        status: 0,
        headers: http::HeaderMap::new(),
        body: Vec::new(),
        error: Some((kind, reason)),
    };
    let url = format!(
        "{}{}",
        sh.base,
        render(&req.path, vars, sh, captured, rng, false)
    );
    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(e) => return fail(ErrorKind::Protocol, format!("method {}: {e}", req.method)),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, t) in sh.default_headers.iter().chain(req.headers.iter()) {
        let value = render(t, vars, sh, captured, rng, false);
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => headers.push((name.clone(), value)),
        }
    }
    let mut rb = sh.client.request(method, &url).timeout(timeout);
    for (n, v) in &headers {
        rb = rb.header(n.as_str(), v.as_str());
    }
    if let Some(body) = &req.body {
        rb = rb.body(render(body, vars, sh, captured, rng, req.body_json));
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return fail(classify(&e), e.to_string()),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                let mut x = fail(classify(&e), format!("reading the body: {e}"));
                x.status = status;
                return x;
            }
        }
    }
    let error = ErrorKind::from_status(status).map(|k| (k, format!("status {status}")));
    Exchange {
        status,
        headers,
        body,
        error,
    }
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ErrorKind::from_io(io);
        }
        src = s.source();
    }
    if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    }
}

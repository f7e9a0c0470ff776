//! Measurements: per-worker recorders, their exact merge, the per-second timeline and the
//! run's event timeline.
//!
//! No per-request storage: every sample goes into HDR histograms (3 significant digits,
//! microseconds) and counters keyed by a small [`SeriesKey`] (scenario, request, status, error
//! kind), so memory stays flat however long the run. Histograms merge exactly, which is what
//! lets results from several workers (and later several machines) be judged as one run.
//!
//! What a latency measures:
//! - `duration` (metric `http_req_duration`): from the **intended** send time to the last byte
//!   of the response. In the open model the intended time comes from the schedule, so time a
//!   request spent waiting for a free VU/connection or a late generator is included
//!   (coordinated-omission correction, as wrk2). In the closed model the intended time is the
//!   actual send time.
//! - `service` (metric `http_req_service_time`): from the actual send (first byte written) to
//!   the last byte of the response.
pub mod error;
pub mod ledger;
pub mod recorder;
pub mod slices;
pub mod store;
pub mod timeline;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use error::ErrorKind;
pub use timeline::{Event, EventKind, SecondRow, SecondSlice};

use crate::spec::{RunSpec, Variant};

/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;

/// A new empty latency histogram (microseconds, auto-resizing).
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(SIGFIG).expect("valid sigfig");
    h.auto(true);
    h
}

/// Identifies one series of samples. Indices point into [`RunMetrics::scenarios`] and
/// [`ScenarioInfo::requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub scenario: u16,
    pub request: u16,
    /// HTTP status, or 0 when no response was received.
    pub status: u16,
    /// Why the request failed (transport error or status class), if it did.
    pub error: Option<ErrorKind>,
    /// The side of a canary split the response came from (`None` when not split).
    pub variant: Variant,
}

impl SeriesKey {
    /// The smallest key of source `scenario` (for range scans; saturates past `u16::MAX`).
    pub fn first_of(scenario: u32) -> SeriesKey {
        match u16::try_from(scenario) {
            Ok(s) => SeriesKey {
                scenario: s,
                request: 0,
                status: 0,
                error: None,
                variant: Variant::None,
            },
            Err(_) => SeriesKey {
                scenario: u16::MAX,
                request: u16::MAX,
                status: u16::MAX,
                error: Some(ErrorKind::ALL[ErrorKind::ALL.len() - 1]),
                variant: Variant::Other,
            },
        }
    }
}

/// The sum and count of a number taken from responses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueSum {
    pub sum: f64,
    pub n: u64,
}

impl ValueSum {
    pub fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
    }

    pub fn merge(&mut self, o: &ValueSum) {
        self.sum += o.sum;
        self.n += o.n;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Samples of one series.
#[derive(Debug, Clone)]
pub struct SeriesStats {
    /// Intended send → last byte, microseconds.
    pub duration: Histogram<u64>,
    /// Actual send → last byte, microseconds.
    pub service: Histogram<u64>,
    pub requests: u64,
    /// Requests counted as failed (transport error, or status >= 400).
    pub failed: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// Numbers taken from the responses (a canary's `compare.values`, in its order); empty
    /// when none are taken.
    pub values: Vec<ValueSum>,
}

impl Default for SeriesStats {
    fn default() -> Self {
        SeriesStats {
            duration: new_histogram(),
            service: new_histogram(),
            requests: 0,
            failed: 0,
            checks_passed: 0,
            checks_failed: 0,
            values: Vec::new(),
        }
    }
}

impl SeriesStats {
    /// Exact merge.
    pub fn merge(&mut self, other: &SeriesStats) {
        self.duration
            .add(&other.duration)
            .expect("auto-resizing histograms merge");
        self.service
            .add(&other.service)
            .expect("auto-resizing histograms merge");
        self.requests += other.requests;
        self.failed += other.failed;
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        if self.values.len() < other.values.len() {
            self.values.resize(other.values.len(), ValueSum::default());
        }
        for (into, v) in self.values.iter_mut().zip(&other.values) {
            into.merge(v);
        }
    }
}

/// Who sends a series' requests (`scenario` / `probe` in stored results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A scenario of the plan (tag `scenario:NAME`).
    #[default]
    Scenario,
    /// A probe (tag `probe:NAME`): kept apart, a tag filter only matches it when it names the
    /// probe.
    Probe,
}

/// Names and tags of a scenario (or probe), so a [`SeriesKey`] can be turned back into tags.
#[derive(Debug, Clone, Default)]
pub struct ScenarioInfo {
    pub name: String,
    pub kind: SourceKind,
    pub executor: String,
    /// Request names, indexed by `SeriesKey::request`.
    pub requests: Vec<String>,
    /// Request methods, indexed like `requests`.
    pub methods: Vec<String>,
    /// The scenario's extra tags.
    pub tags: BTreeMap<String, String>,
    /// True when the scenario is a user flow: its requests are steps, and their samples
    /// carry the tag `step:NAME` (the request name).
    pub flow: bool,
    /// Names of each request's response checks (indexed like `requests`), in the order the
    /// engine counts them ([`RunMetrics::check_counts`]).
    pub checks: Vec<Vec<String>>,
    /// Iterations that could not start on time (no free VU) and were not sent.
    pub dropped: u64,
    /// How long the scenario actually ran (its own start to its last response).
    pub active: Duration,
}

/// Everything measured in a run, merged over workers. Merging two `RunMetrics` of the same
/// plan (e.g. two segments) is exact.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    pub scenarios: Vec<ScenarioInfo>,
    pub series: BTreeMap<SeriesKey, SeriesStats>,
    /// Per second and scenario, in order.
    pub timeline: Vec<SecondRow>,
    /// Things that happened on the run clock (start/stop of scenarios, aborts, faults, ...).
    pub events: Vec<Event>,
    /// Wall time from the run's start to its end.
    pub elapsed: Duration,
    /// Passes and fails of each response check: `[source][request][check] = [passed, failed]`
    /// (names in [`ScenarioInfo::checks`]); what `checks{check:NAME}` reads.
    pub check_counts: CheckCounts,
    /// Per source: how long its iterations took, microseconds (metric `iteration_duration`:
    /// the first step's intended start to the last step's end, think time included).
    pub iterations: Vec<Histogram<u64>>,
    /// The first message seen per source and error kind (bounded: one per pair).
    pub first_errors: BTreeMap<(u16, ErrorKind), String>,
    /// Per second and source: that second's latency histogram (`duration`), V2 + DEFLATE
    /// encoded (a few hundred bytes each), for the stored results. Only in the final metrics
    /// of a run whose aggregator keeps them (live snapshots leave them out).
    pub second_latency: Vec<SecondHistogram>,
}

/// One second of one source's latency, as the HdrHistogram V2 DEFLATE encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondHistogram {
    pub second: u64,
    /// Index into [`RunMetrics::scenarios`].
    pub source: u16,
    pub v2_deflate: Vec<u8>,
}

/// Passes and fails per source, request and check: `[source][request][check] = [passed,
/// failed]`. Grows on first use; merges exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounts(pub Vec<Vec<Vec<[u64; 2]>>>);

impl CheckCounts {
    /// Count one result of check `check` of request `request` of source `source`.
    #[inline]
    pub fn add(&mut self, source: usize, request: usize, check: usize, passed: bool, n: u64) {
        if self.0.len() <= source {
            self.0.resize_with(source + 1, Vec::new);
        }
        let s = &mut self.0[source];
        if s.len() <= request {
            s.resize_with(request + 1, Vec::new);
        }
        let r = &mut s[request];
        if r.len() <= check {
            r.resize(check + 1, [0, 0]);
        }
        r[check][if passed { 0 } else { 1 }] += n;
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &CheckCounts) {
        for (s, reqs) in other.0.iter().enumerate() {
            for (r, checks) in reqs.iter().enumerate() {
                for (c, [p, f]) in checks.iter().enumerate() {
                    if *p > 0 {
                        self.add(s, r, c, true, *p);
                    }
                    if *f > 0 {
                        self.add(s, r, c, false, *f);
                    }
                }
            }
        }
    }

    /// Set every count to zero (keeps the shape: no allocation on the next use).
    pub fn reset(&mut self) {
        for reqs in &mut self.0 {
            for checks in reqs {
                checks.iter_mut().for_each(|c| *c = [0, 0]);
            }
        }
    }

    /// `[passed, failed]` of one check (zero when never counted).
    pub fn get(&self, source: usize, request: usize, check: usize) -> [u64; 2] {
        self.0
            .get(source)
            .and_then(|s| s.get(request))
            .and_then(|r| r.get(check))
            .copied()
            .unwrap_or([0, 0])
    }
}

/// The series sources of a run, indexed like `SeriesKey::scenario`: its scenarios in plan
/// order, then its probes.
pub fn scenario_infos(spec: &RunSpec) -> Vec<ScenarioInfo> {
    let mut out: Vec<ScenarioInfo> = spec
        .scenarios
        .iter()
        .map(|s| ScenarioInfo {
            name: s.name.clone(),
            kind: SourceKind::Scenario,
            executor: s.executor.kind().to_string(),
            requests: s.requests.iter().map(|r| r.name.clone()).collect(),
            methods: s
                .requests
                .iter()
                .map(|r| r.method.to_ascii_uppercase())
                .collect(),
            tags: s.tags.clone(),
            flow: s.flow.is_some(),
            checks: (0..s.requests.len())
                .map(|i| request_check_names(s, i))
                .collect(),
            dropped: 0,
            active: Duration::ZERO,
        })
        .collect();
    out.extend(spec.probes.iter().map(|p| {
        let (requests, methods) = match &p.kind {
            crate::spec::ProbeKind::Request(r) => (vec![r.label()], vec![r.method.clone()]),
            crate::spec::ProbeKind::Chain(c) => {
                (vec!["chain".to_string()], vec![c.submit.method.clone()])
            }
        };
        ScenarioInfo {
            name: p.name.clone(),
            kind: SourceKind::Probe,
            executor: "probe".into(),
            requests,
            methods,
            tags: BTreeMap::new(),
            flow: false,
            checks: Vec::new(),
            dropped: 0,
            active: Duration::ZERO,
        }
    }));
    out
}

/// The names a request's checks are counted under: its checks as written, then, for a flow
/// step, its `until` condition as `until: CHECK` (passed when it held before the deadline)
/// and each extraction as `extract NAME: SOURCE` (passed when it found a value).
pub fn request_check_names(s: &crate::spec::ScenarioSpec, i: usize) -> Vec<String> {
    let mut out: Vec<String> = s.requests[i]
        .checks
        .iter()
        .map(|c| c.source.clone())
        .collect();
    if let Some(step) = s.flow.as_ref().and_then(|f| f.steps.get(i)) {
        if let Some(u) = &step.until {
            out.push(format!("until: {}", u.check.source));
        }
        for e in &step.extract {
            out.push(format!("extract {}: {}", e.var, e.from.source));
        }
    }
    out
}

/// Latency distribution in milliseconds. All zero when there were no samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    /// (Additive: absent in summaries written before it.)
    #[serde(default)]
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
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
            p75: q(0.75),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(h.max() as f64),
        }
    }
}

/// A number for humans and reports: about 4 significant digits, at least 3 decimals
/// (`41.2`, `0.0004`, `1234.5`), trailing zeros trimmed.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(3, 12) as usize;
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl RunMetrics {
    /// Index of a scenario by name.
    pub fn scenario_index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.name == name)
    }

    /// Merged stats of all series matching `filter`.
    pub fn aggregate(&self, mut filter: impl FnMut(&SeriesKey) -> bool) -> SeriesStats {
        let mut out = SeriesStats::default();
        for (k, v) in &self.series {
            if filter(k) {
                out.merge(v);
            }
        }
        out
    }

    /// Total requests across all series.
    pub fn total_requests(&self) -> u64 {
        self.series.values().map(|s| s.requests).sum()
    }

    /// Total dropped iterations across scenarios.
    pub fn total_dropped(&self) -> u64 {
        self.scenarios.iter().map(|s| s.dropped).sum()
    }

    /// Per scenario (probes excluded), by name: the latency histogram of the whole run
    /// (`duration`, µs), every series merged.
    pub fn scenario_latency(&self) -> BTreeMap<String, Histogram<u64>> {
        let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        for info in &self.scenarios {
            if info.kind == SourceKind::Scenario {
                out.insert(info.name.clone(), new_histogram());
            }
        }
        for (k, s) in &self.series {
            let Some(info) = self.scenarios.get(k.scenario as usize) else {
                continue;
            };
            if let Some(h) = out
                .get_mut(&info.name)
                .filter(|_| info.kind == SourceKind::Scenario)
            {
                h.add(&s.duration).expect("auto-resizing histograms merge");
            }
        }
        out
    }

    /// Per scenario (probes excluded), by name: each stored second's latency histogram (µs),
    /// in order (from [`RunMetrics::second_latency`]; empty when none were kept).
    pub fn scenario_seconds(&self) -> BTreeMap<String, Vec<Histogram<u64>>> {
        let mut out: BTreeMap<String, Vec<Histogram<u64>>> = BTreeMap::new();
        let mut de = hdrhistogram::serialization::Deserializer::new();
        for s in &self.second_latency {
            let Some(info) = self
                .scenarios
                .get(s.source as usize)
                .filter(|i| i.kind == SourceKind::Scenario)
            else {
                continue;
            };
            match de.deserialize::<u64, _>(&mut &s.v2_deflate[..]) {
                Ok(mut h) => {
                    h.auto(true);
                    out.entry(info.name.clone()).or_default().push(h);
                }
                Err(e) => tracing::warn!(error = ?e, second = s.second, "decoding a stored second"),
            }
        }
        out
    }

    /// Merged stats of every scenario's series (probes excluded).
    pub fn scenario_totals(&self) -> SeriesStats {
        self.aggregate(|k| {
            self.scenarios
                .get(k.scenario as usize)
                .is_some_and(|s| s.kind == SourceKind::Scenario)
        })
    }
}

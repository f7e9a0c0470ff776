//! The lowered, validated description of a run: what the engine executes and the checks judge.
//!
//! A plan file (see [`crate::plan`]) and the ad-hoc `attack` command both lower into a
//! [`RunSpec`]. Everything here is already checked: durations are positive, rates are finite,
//! templates and check expressions are parsed, so the engine never has to report a plan error.
//!
//! Units: durations are [`std::time::Duration`]; rates are requests (iterations) per second as
//! `f64`.
//!
//! This module is a leaf: it imports nothing of the crate but the parsed grammars
//! ([`crate::grammar`]). Drills add their lowered sections as submodules ([`canary`],
//! [`capacity`], [`flow`], [`probe`], [`slo`], [`stack`]).
pub mod autoscale;
pub mod canary;
pub mod capacity;
pub mod dependency;
pub mod fault;
pub mod flow;
pub mod ledger;
pub mod probe;
pub mod scrape;
pub mod slo;
pub mod stack;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::grammar::response::ResponseCheck;
use crate::grammar::template::Template;
use crate::grammar::threshold::ThresholdExpr;

pub use autoscale::{AutoscaleExpect, AutoscaleSpec, ScaleDirection};
pub use canary::{
    ApplyWeight, BlueGreenSpec, CanarySpec, Expect, HeaderSplit, LatencyCompare, OnInconclusive,
    OnNoData, Split, TargetSplit, ValueCompare, Variant,
};
pub use capacity::CapacitySpec;
pub use dependency::{DependencySpec, PostgresHealth, RedisHealth};
pub use fault::{
    ExecFault, FaultAction, FaultCondition, FaultSpec, NetworkFault, RecoveryRule, Toxic,
    ToxicKind, ToxicStream,
};
pub use flow::{Extraction, FlowSpec, StepSpec, ThinkTime, Until};
pub use probe::{ChainSpec, ProbeKind, ProbeRequest, ProbeSpec};
pub use scrape::{ScrapeExpr, ScrapeFn, ScrapeSource, ScrapeSpec, Selector};
pub use slo::{BurnWindow, Severity, Sli, SloSpec};
pub use stack::{Component, EdgeStrategy, Region, Replication, StackBackend, StackOp, StackSpec};

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Plan name (used for the default report directory and junit suite name).
    pub name: String,
    /// Base URL every request path is joined to, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Client options shared by all scenarios.
    pub http: HttpOptions,
    /// CSV feeders by name, loaded into memory at lowering time.
    pub feeders: BTreeMap<String, Arc<Feeder>>,
    /// Scenarios run concurrently, each from its own `start_after`.
    pub scenarios: Vec<ScenarioSpec>,
    /// Thresholds judged at the end (and live, for `abort_on_fail` and windows).
    pub thresholds: Vec<ThresholdSpec>,
    /// Synthetic requests on a cadence, each with its own SLO (kept apart from scenarios).
    pub probes: Vec<ProbeSpec>,
    /// Service level objectives with error budgets and burn-rate alerts.
    pub slos: Vec<SloSpec>,
    /// A progressive rollout driven and judged on this run's traffic.
    pub canary: Option<Box<CanarySpec>>,
    /// A blue/green cutover (and switch back) verified under load.
    pub blue_green: Option<Box<BlueGreenSpec>>,
    /// Report formats to write into the output directory (summary.json is always written).
    pub report_formats: Vec<ReportFormat>,
    /// Hosts besides loopback the run may send load to (the plan's `allow_hosts`, plus
    /// `--allow-host`); see [`RunSpec::hosts`] and the session's safety check.
    pub allow_hosts: Vec<String>,
    /// Faults injected while the load runs (`faults:`), each measured for its failover.
    pub faults: Vec<FaultSpec>,
    /// Endpoints and commands read on an interval during the run (`scrapes:`).
    pub scrapes: Vec<ScrapeSpec>,
    /// Redis / PostgreSQL health read during the run (`dependencies:`).
    pub dependencies: Option<DependencySpec>,
    /// Autoscaling rules judged from scraped series (`autoscaling:`).
    pub autoscaling: Vec<AutoscaleSpec>,
}

impl RunSpec {
    /// Every host this run sends requests to (the target, and a canary's split targets).
    pub fn hosts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = host_of(&self.target) {
            out.push(h);
        }
        if let Some(t) = self.canary.as_ref().and_then(|c| c.split.targets()) {
            out.extend(host_of(&t.baseline));
            out.extend(host_of(&t.canary));
        }
        for s in &self.scrapes {
            if let ScrapeSource::Url(u) = &s.source {
                out.extend(host_of(u));
            }
        }
        out
    }

    /// The header split that tags scenario `name`'s responses (canary or blue/green), if any.
    pub fn split_for(&self, name: &str) -> Option<HeaderSplit> {
        if let Some(c) = self.canary.as_ref().filter(|c| c.covers(name)) {
            if let Some(h) = c.split.header() {
                return Some(h.clone());
            }
        }
        self.blue_green
            .as_ref()
            .filter(|b| b.covers(name))
            .map(|b| b.split.clone())
    }

    /// The two targets loadgate splits scenario `name`'s load between, if it does.
    pub fn target_split_for(&self, name: &str) -> Option<&TargetSplit> {
        self.canary
            .as_ref()
            .filter(|c| c.covers(name))
            .and_then(|c| c.split.targets())
    }

    /// The numbers a canary takes from scenario `name`'s responses (empty: none).
    pub fn values_for(&self, name: &str) -> Vec<crate::grammar::extract::Extractor> {
        self.canary
            .as_ref()
            .filter(|c| c.covers(name))
            .map(|c| c.values.iter().map(|v| v.from.clone()).collect())
            .unwrap_or_default()
    }

    /// The highest arrival rate any scenario reaches (requests per second; the closed model
    /// has none).
    pub fn peak_rate(&self) -> f64 {
        self.scenarios
            .iter()
            .map(|s| match &s.executor {
                ExecutorSpec::ConstantArrivalRate { rate, .. } => *rate,
                ExecutorSpec::RampingArrivalRate {
                    start_rate, stages, ..
                } => stages
                    .iter()
                    .map(|st| st.target)
                    .fold(*start_rate, f64::max),
                _ => 0.0,
            })
            .sum()
    }
    /// A run with these scenarios and nothing else (no thresholds, probes or SLOs): the shape
    /// `attack` and tests start from.
    pub fn new(name: &str, target: &str, http: HttpOptions, scenarios: Vec<ScenarioSpec>) -> Self {
        RunSpec {
            name: name.to_string(),
            target: target.to_string(),
            http,
            feeders: BTreeMap::new(),
            scenarios,
            thresholds: Vec::new(),
            probes: Vec::new(),
            slos: Vec::new(),
            canary: None,
            blue_green: None,
            report_formats: ReportFormat::ALL.to_vec(),
            allow_hosts: Vec::new(),
            faults: Vec::new(),
            scrapes: Vec::new(),
            dependencies: None,
            autoscaling: Vec::new(),
        }
    }

    /// How long the plan runs when nothing stops it early; see [`planned_duration`].
    pub fn planned_duration(&self) -> Duration {
        planned_duration(&self.scenarios)
    }

    /// Index of a scenario by name.
    pub fn scenario_index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.name == name)
    }
}

/// HTTP client options.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Per-request timeout: from the actual send to the last byte of the response.
    pub timeout: Duration,
    /// Headers sent with every request (a request's own headers override by name).
    pub headers: Vec<(String, Template)>,
    /// Protocol selection.
    pub version: HttpVersion,
    /// Accept any TLS certificate (self-signed staging certs, tests).
    pub insecure: bool,
    /// Upper bound of open connections per scenario (None: one per VU).
    pub max_connections: Option<usize>,
    /// Most bytes of a response body kept for checks; past it the body is read to its end and
    /// discarded, so a huge or endless body costs time, never memory.
    pub max_body: usize,
    /// How HTTP/2 connections are shared between VUs.
    pub h2: H2Options,
}

/// HTTP/2 multiplexing, with h2load's meaning of `-c` (connections) and `-m` (streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Options {
    /// Most HTTP/2 connections open at once in this process (split over the worker threads,
    /// at least one each). None: as many as the VUs need at `streams` VUs per connection.
    pub connections: Option<u32>,
    /// VUs per connection: a connection carries up to this many concurrent streams before
    /// the next one opens (more only when `connections` caps the count).
    pub streams: u32,
}

/// Default of [`H2Options::streams`]: 8 (h2load's `-m 8`, nginx's sweet spot).
pub const DEFAULT_H2_STREAMS: u32 = 8;

impl Default for H2Options {
    fn default() -> Self {
        H2Options {
            connections: None,
            streams: DEFAULT_H2_STREAMS,
        }
    }
}

/// Default of [`HttpOptions::max_body`]: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            version: HttpVersion::Auto,
            insecure: false,
            max_connections: None,
            max_body: DEFAULT_MAX_BODY,
            h2: H2Options::default(),
        }
    }
}

/// Which HTTP protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// http:// → HTTP/1.1 (lean path); https:// → ALPN (h2 preferred, else HTTP/1.1).
    Auto,
    /// Always HTTP/1.1.
    Http1,
    /// HTTP/2: prior knowledge (h2c) on http://, ALPN h2 on https://.
    Http2,
}

/// A CSV data source: the header row names the columns.
#[derive(Debug, Clone)]
pub struct Feeder {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub order: FeederOrder,
}

/// How rows are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeederOrder {
    /// Row i for the i-th use, wrapping around.
    Sequential,
    /// A uniformly random row for each use.
    Random,
}

/// The host of a URL (lower-cased, IPv6 without brackets), if it has one.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// How long scenarios run when nothing stops them early: the latest end of a time-driven
/// scenario (its `start_after` plus its duration or stages, without `graceful_stop`). An
/// iteration-driven one (per-vu / shared iterations) counts by its start only: its
/// `max_duration` is a cap, not a plan (10 minutes by default). With only iteration-driven
/// scenarios, the caps are all there is.
pub fn planned_duration(scenarios: &[ScenarioSpec]) -> Duration {
    let timed = scenarios
        .iter()
        .map(|s| s.start_after + s.executor.scheduled_duration().unwrap_or_default())
        .max();
    if scenarios
        .iter()
        .any(|s| s.executor.scheduled_duration().is_some())
    {
        timed.unwrap_or_default()
    } else {
        scenarios
            .iter()
            .map(|s| s.start_after + s.executor.max_duration())
            .max()
            .unwrap_or_default()
    }
}

/// One scenario: an executor driving a weighted mix of requests.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub name: String,
    pub executor: ExecutorSpec,
    /// Offset from the start of the run.
    pub start_after: Duration,
    /// After the executor's own end, in-flight iterations get this long to finish.
    pub graceful_stop: Duration,
    /// Requests with weights; each iteration sends one request picked by weight. In a flow
    /// (`flow` is set) these are the steps, and each iteration sends all of them in order.
    pub requests: Vec<RequestSpec>,
    /// The scenario's steps, when it is a user flow (`steps:` in the plan).
    pub flow: Option<FlowSpec>,
    /// Extra tags attached to every sample (the `scenario` tag is implicit).
    pub tags: BTreeMap<String, String>,
    /// The scenario's request is a ledger write (`ledger:`).
    pub ledger: Option<ledger::LedgerSpec>,
}

/// The executors, as in k6. Arrival-rate executors are the open model (latency measured from
/// the intended send time); the VU executors are the closed model.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorSpec {
    ConstantArrivalRate {
        /// Iterations per second.
        rate: f64,
        duration: Duration,
        pre_allocated_vus: u32,
        max_vus: u32,
    },
    RampingArrivalRate {
        /// Rate at the start of the first stage, iterations per second.
        start_rate: f64,
        stages: Vec<RateStage>,
        pre_allocated_vus: u32,
        max_vus: u32,
    },
    ConstantVus {
        vus: u32,
        duration: Duration,
    },
    RampingVus {
        start_vus: u32,
        stages: Vec<VuStage>,
    },
    PerVuIterations {
        vus: u32,
        iterations: u64,
        max_duration: Duration,
    },
    SharedIterations {
        vus: u32,
        iterations: u64,
        max_duration: Duration,
    },
}

/// Linear ramp of the arrival rate to `target` (per second) over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStage {
    pub target: f64,
    pub duration: Duration,
}

/// Linear ramp of the number of VUs to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VuStage {
    pub target: u32,
    pub duration: Duration,
}

impl ExecutorSpec {
    /// The k6 name of this executor.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorSpec::ConstantArrivalRate { .. } => "constant-arrival-rate",
            ExecutorSpec::RampingArrivalRate { .. } => "ramping-arrival-rate",
            ExecutorSpec::ConstantVus { .. } => "constant-vus",
            ExecutorSpec::RampingVus { .. } => "ramping-vus",
            ExecutorSpec::PerVuIterations { .. } => "per-vu-iterations",
            ExecutorSpec::SharedIterations { .. } => "shared-iterations",
        }
    }

    /// True for the open-model (arrival-rate) executors.
    pub fn is_open_model(&self) -> bool {
        matches!(
            self,
            ExecutorSpec::ConstantArrivalRate { .. } | ExecutorSpec::RampingArrivalRate { .. }
        )
    }

    /// How long a time-driven executor is scheduled to run (None for the iteration-driven
    /// ones, whose `max_duration` is only a cap).
    pub fn scheduled_duration(&self) -> Option<Duration> {
        match self {
            ExecutorSpec::PerVuIterations { .. } | ExecutorSpec::SharedIterations { .. } => None,
            other => Some(other.max_duration()),
        }
    }

    /// The most VUs the executor runs at once (arrival-rate executors: `max_vus`).
    pub fn peak_vus(&self) -> u32 {
        match self {
            ExecutorSpec::ConstantArrivalRate { max_vus, .. }
            | ExecutorSpec::RampingArrivalRate { max_vus, .. } => *max_vus,
            ExecutorSpec::ConstantVus { vus, .. }
            | ExecutorSpec::PerVuIterations { vus, .. }
            | ExecutorSpec::SharedIterations { vus, .. } => *vus,
            ExecutorSpec::RampingVus { start_vus, stages } => {
                stages.iter().map(|s| s.target).fold(*start_vus, u32::max)
            }
        }
    }

    /// The longest the executor itself runs (before `graceful_stop`).
    pub fn max_duration(&self) -> Duration {
        match self {
            ExecutorSpec::ConstantArrivalRate { duration, .. } => *duration,
            ExecutorSpec::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
            ExecutorSpec::ConstantVus { duration, .. } => *duration,
            ExecutorSpec::RampingVus { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            ExecutorSpec::PerVuIterations { max_duration, .. } => *max_duration,
            ExecutorSpec::SharedIterations { max_duration, .. } => *max_duration,
        }
    }
}

/// One request of a scenario's mix.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Tag `name` of the samples (defaults to `METHOD path-template`).
    pub name: String,
    /// Relative weight in the scenario's mix (>= 1).
    pub weight: u32,
    pub method: String,
    /// Path (and query) joined to the target, templated.
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
    /// The body is JSON text whose placeholders all sit inside JSON strings (the plan's `body:`
    /// was a YAML mapping or sequence, serialized to JSON). When set, the engine writes each
    /// feeder value in the body as JSON string content: `"`, `\` and control characters are
    /// escaped, so the body stays valid JSON and decodes to the exact value. A string `body:`
    /// (and `attack --body`) is sent as written: `false`.
    pub body_json: bool,
    /// Response checks; they feed the `checks` rate metric.
    pub checks: Vec<ResponseCheck>,
}

/// A threshold: an expression over a (tag-filtered) metric.
#[derive(Debug, Clone)]
pub struct ThresholdSpec {
    /// Metric name, e.g. `http_req_duration`.
    pub metric: String,
    /// Tag filter, e.g. `[("scenario", "chat")]`; all must match.
    pub tags: Vec<(String, String)>,
    /// The full key as written, e.g. `http_req_duration{scenario:chat}`.
    pub key: String,
    /// Parsed expression, e.g. `p(95)<250`.
    pub expr: ThresholdExpr,
    /// Stop the run as soon as this threshold fails (evaluated once per second).
    pub abort_on_fail: bool,
    /// Do not evaluate for abort before this much of the run has passed.
    pub delay: Duration,
    /// Fewer samples than this (under the filter; per window for a windowed expression) is
    /// "too few samples", never a pass. At least 1.
    pub min_samples: u64,
    /// What to do when this check fails (`runbook:` in the plan): text or a link, shown
    /// beside a failed check in the terminal, junit.xml and report.html.
    pub runbook: Option<String>,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
    Csv,
    Html,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 5] = [
        ReportFormat::Table,
        ReportFormat::Json,
        ReportFormat::Junit,
        ReportFormat::Csv,
        ReportFormat::Html,
    ];
}

//! The plan file's serde model: what a user writes, field for field.
//!
//! Every field is optional at this level so that a missing one is reported by
//! the `validate` module with the location of its parent, together with every other problem;
//! what is actually required is stated in the JSON Schema (`#[schemars(required)]`) and
//! checked in validation. Unknown fields are errors (`deny_unknown_fields`) everywhere.
//!
//! New sections (probes, canary, autoscaling, faults, slos, capacity) are added as new
//! `Option<...>` fields of [`PlanFile`] with their own types; nothing else changes.
use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::grammar::units::{Duration, Rate, Size};

/// A loadgate load plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "loadgate plan")]
pub struct PlanFile {
    /// Plan name (report directory, junit suite). Defaults to the file name without extension.
    pub name: Option<String>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Base URL of the system under test, e.g. `http://127.0.0.1:8080` or `${TARGET_URL}`.
    /// Required unless `stack` is given (then it defaults to `${TARGET_URL}`).
    pub target: Option<String>,
    /// Start the reference stack before the run (omit to test a system you already run).
    pub stack: Option<StackSection>,
    /// HTTP client defaults for every request.
    pub defaults: Option<Defaults>,
    /// Named profiles selected with `--env NAME`.
    pub environments: Option<BTreeMap<String, Environment>>,
    /// CSV data sources, referenced from templates as `{{feeder.column}}`.
    pub feeders: Option<BTreeMap<String, FeederDef>>,
    /// Scenarios by name; they run concurrently. At least one is required.
    #[schemars(required)]
    pub scenarios: Option<BTreeMap<String, Scenario>>,
    /// Pass/fail criteria: metric key → expressions.
    pub thresholds: Option<BTreeMap<String, Vec<ThresholdEntry>>>,
    /// Synthetic requests (or submit-then-poll chains) on a cadence, each with its own SLO.
    pub probes: Option<BTreeMap<String, Probe>>,
    /// Service level objectives with error budgets and burn-rate alerts.
    pub slos: Option<BTreeMap<String, Slo>>,
    /// A progressive rollout (canary) driven and judged on this run's traffic.
    pub canary: Option<Canary>,
    /// A blue/green cutover (and switch back) verified under load.
    pub blue_green: Option<BlueGreen>,
    /// Report output.
    pub report: Option<ReportSection>,
    /// Hosts besides loopback this plan may send load to (`staging.example.internal`,
    /// `*.staging.internal`, an IP); any other target is refused before anything is sent.
    pub allow_hosts: Option<Vec<String>>,
}

/// `stack:` — which stack loadgate starts before the run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    /// The reference GenAI gateway with Redis and PostgreSQL.
    #[schemars(required)]
    pub reference: Option<ReferenceStack>,
}

/// `stack.reference:` options.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceStack {
    /// How Redis and PostgreSQL are started (default `auto`).
    pub backend: Option<Backend>,
    /// Number of gateway instances (default 1).
    #[schemars(range(min = 1))]
    pub gateways: Option<u32>,
    /// Edge balancer in front of the gateways (default `none`).
    pub edge: Option<Edge>,
    /// Redis container image (containers backend).
    pub redis_image: Option<String>,
    /// PostgreSQL container image (containers backend).
    pub postgres_image: Option<String>,
    /// Extra environment for the gateways.
    pub env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Auto,
    Containers,
    Process,
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Edge {
    RoundRobin,
    LeastConnections,
    None,
}

/// `defaults:` — client options shared by all scenarios.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Headers sent with every request (templates allowed).
    pub headers: Option<BTreeMap<String, String>>,
    /// Per-request timeout (default 10s).
    pub timeout: Option<Duration>,
    /// Protocol: `auto` (default), `1.1` or `2`.
    pub http: Option<HttpVersion>,
    /// Accept any TLS certificate.
    pub insecure: Option<bool>,
    /// Upper bound of open connections per scenario (default: one per VU).
    #[schemars(range(min = 1))]
    pub max_connections: Option<usize>,
    /// Most bytes of a response body kept for the checks (default 1MiB); the rest is read and
    /// discarded.
    pub max_body: Option<Size>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum HttpVersion {
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "1.1")]
    Http1,
    #[serde(rename = "2")]
    Http2,
}

/// `environments.NAME:` — a profile selected with `--env NAME`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Replaces `target`.
    pub target: Option<String>,
    /// Merged over `defaults.headers`.
    pub headers: Option<BTreeMap<String, String>>,
    /// Multiplies every rate and VU count (e.g. 0.5 for a smaller staging run).
    #[schemars(range(min = 0.0))]
    pub scale: Option<f64>,
}

/// `feeders.NAME:` — a CSV file whose header row names the columns.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeederDef {
    /// Path of the CSV file, relative to the plan file.
    #[schemars(required)]
    pub csv: Option<String>,
    /// `sequential` (default) or `random`.
    pub order: Option<FeederOrder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FeederOrder {
    Sequential,
    Random,
}

/// The k6 executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    ConstantArrivalRate,
    RampingArrivalRate,
    ConstantVus,
    RampingVus,
    PerVuIterations,
    SharedIterations,
}

impl Executor {
    pub fn name(self) -> &'static str {
        match self {
            Executor::ConstantArrivalRate => "constant-arrival-rate",
            Executor::RampingArrivalRate => "ramping-arrival-rate",
            Executor::ConstantVus => "constant-vus",
            Executor::RampingVus => "ramping-vus",
            Executor::PerVuIterations => "per-vu-iterations",
            Executor::SharedIterations => "shared-iterations",
        }
    }
}

/// `scenarios.NAME:` — an executor and the requests it sends.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Which executor drives the scenario.
    #[schemars(required)]
    pub executor: Option<Executor>,
    /// constant-arrival-rate: iterations started per second/minute.
    pub rate: Option<Rate>,
    /// constant-arrival-rate, constant-vus: how long the executor runs.
    pub duration: Option<Duration>,
    /// ramping-arrival-rate: rate at the start (default 0/s).
    pub start_rate: Option<Rate>,
    /// ramping-vus: VUs at the start (default 1).
    pub start_vus: Option<u32>,
    /// ramping-arrival-rate (`to: 100/s`) and ramping-vus (`to: 10`): linear ramps.
    pub stages: Option<Vec<Stage>>,
    /// Arrival-rate executors: VUs started up front (default 10).
    pub pre_allocated_vus: Option<u32>,
    /// Arrival-rate executors: VU ceiling (default max(pre_allocated_vus, 100)).
    pub max_vus: Option<u32>,
    /// constant-vus, per-vu-iterations, shared-iterations: number of VUs (default 1).
    pub vus: Option<u32>,
    /// per-vu-iterations (per VU) and shared-iterations (total): default 1.
    pub iterations: Option<u64>,
    /// per-vu-iterations, shared-iterations: give up after this long (default 10m).
    pub max_duration: Option<Duration>,
    /// Start this long after the run starts (default 0s).
    pub start_after: Option<Duration>,
    /// In-flight iterations get this long to finish after the executor ends (default 30s).
    pub graceful_stop: Option<Duration>,
    /// Tags added to every sample of the scenario.
    pub tags: Option<BTreeMap<String, String>>,
    /// The one request of the scenario (or use `requests`).
    pub request: Option<Request>,
    /// A weighted mix of requests; each iteration sends one, picked by weight.
    pub requests: Option<Vec<Request>>,
    /// A user flow: each iteration sends every step in order (instead of `request` /
    /// `requests`); values extracted from one step's response fill later steps' `{{NAME}}`.
    pub steps: Option<Vec<Step>>,
}

/// One step of a flow: a request, what to take from its response, and a pause after it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's name: its samples carry `step:NAME` and `name:NAME` (default `METHOD path`).
    pub name: Option<String>,
    /// HTTP method (default GET, or POST when a body is given).
    pub method: Option<String>,
    /// Path and query joined to the target; must start with `/`. Templates allowed, including
    /// `{{NAME}}` for a value an earlier step extracted.
    #[schemars(required)]
    pub path: Option<String>,
    /// Request headers (override `defaults.headers` by name). Templates allowed.
    pub headers: Option<BTreeMap<String, String>>,
    /// As a request's `body`.
    pub body: Option<serde_json::Value>,
    /// Response checks, e.g. `status == 200`.
    pub checks: Option<Vec<String>>,
    /// Values for later steps: `NAME: json /pointer`, `NAME: header x-name` or
    /// `NAME: regex PATTERN` (first capture group).
    pub extract: Option<BTreeMap<String, String>>,
    /// Pause after the step: `500ms`, or a random pause in a range, `200ms..800ms`.
    pub think: Option<String>,
    /// Repeat the step until this response check holds (poll a job until it is done).
    pub until: Option<String>,
    /// With `until`: the pause between attempts (default 500ms).
    pub every: Option<Duration>,
    /// With `until`: give up this long after the first attempt (default 30s); the iteration
    /// stops there.
    pub deadline: Option<Duration>,
}

/// One ramp stage: `{to: 100/s, over: 20s}` or `{to: 10, over: 5s}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Target rate (arrival-rate) or VU count (ramping-vus) at the end of the stage.
    #[schemars(required)]
    pub to: Option<StageTarget>,
    /// Length of the stage.
    #[schemars(required)]
    pub over: Option<Duration>,
}

/// A stage target: a rate (`100/s`) or a VU count (`10`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StageTarget {
    Vus(u32),
    Rate(Rate),
}

impl<'de> Deserialize<'de> for StageTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StageTarget, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StageTarget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a rate like 100/s (arrival-rate stages) or a VU count like 10 (ramping-vus)",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StageTarget, E> {
                u32::try_from(v)
                    .map(StageTarget::Vus)
                    .map_err(|_| E::custom(format!("VU count {v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StageTarget, E> {
                Err(E::custom(format!(
                    "expected a rate like 100/s or a VU count like 10, got {v}"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StageTarget, E> {
                if let Ok(n) = v.trim().parse::<u32>() {
                    return Ok(StageTarget::Vus(n));
                }
                v.parse::<Rate>().map(StageTarget::Rate).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One request of a scenario.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Name tag of its samples (default `METHOD path`).
    pub name: Option<String>,
    /// Relative weight in the mix (default 1).
    #[schemars(range(min = 1))]
    pub weight: Option<u32>,
    /// HTTP method (default GET, or POST when a body is given).
    pub method: Option<String>,
    /// Path and query joined to the target; must start with `/`. Templates allowed.
    #[schemars(required)]
    pub path: Option<String>,
    /// Request headers (override `defaults.headers` by name). Templates allowed.
    pub headers: Option<BTreeMap<String, String>>,
    /// A string is sent as is; any other YAML value is sent as JSON (Content-Type defaults to
    /// application/json). Strings inside may contain templates.
    pub body: Option<serde_json::Value>,
    /// Response checks, e.g. `status == 200`.
    pub checks: Option<Vec<String>>,
}

/// A threshold: `"p(95)<250"` or `{threshold: "p(95)<250", abort_on_fail: true, delay: 10s}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ThresholdEntry {
    Expr(String),
    Full(ThresholdFull),
}

/// The long form of a threshold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdFull {
    /// The expression, e.g. `rate<0.01`.
    #[schemars(required)]
    pub threshold: Option<String>,
    /// Stop the run as soon as the threshold fails.
    pub abort_on_fail: Option<bool>,
    /// Do not abort before this much of the run has passed.
    pub delay: Option<Duration>,
    /// Fewer samples than this (per window, for `over`) fails with "too few samples"
    /// (default 1).
    #[schemars(range(min = 1))]
    pub min_samples: Option<u64>,
    /// What to do when this check fails: text or a link (`docs/runbooks/errors.md: check
    /// /ready first`), printed beside the failed check in the terminal, junit.xml and
    /// report.html.
    pub runbook: Option<String>,
}

impl<'de> Deserialize<'de> for ThresholdEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ThresholdEntry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThresholdEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a threshold like \"p(95)<250\" or {threshold: ..., abort_on_fail: true}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThresholdEntry, E> {
                Ok(ThresholdEntry::Expr(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ThresholdEntry, A::Error> {
                ThresholdFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ThresholdEntry::Full)
            }
        }
        d.deserialize_any(V)
    }
}

impl ThresholdEntry {
    pub fn expr(&self) -> Option<&str> {
        match self {
            ThresholdEntry::Expr(s) => Some(s),
            ThresholdEntry::Full(f) => f.threshold.as_deref(),
        }
    }
}

/// `probes.NAME:` — a request (`request:`) or a chain (`submit:` + `poll:`) on a cadence.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The request: `GET /auth/me`, or a map (method, path, headers, body, checks).
    pub request: Option<ProbeRequestDef>,
    /// A chain's first request (its JSON response provides `{{NAME}}` values).
    pub submit: Option<ProbeRequestDef>,
    /// Values for the poll's templates: NAME → JSON pointer into the submit's response
    /// (default: every top-level string, number or boolean field of the response, by its
    /// name).
    pub capture: Option<BTreeMap<String, String>>,
    /// A chain's poll: a request plus `until` and `every`.
    pub poll: Option<PollDef>,
    /// A chain fails when its condition did not hold this long after the submit (default
    /// 60s).
    pub deadline: Option<Duration>,
    /// A new sample starts this often (default 1s for a request, 10s for a chain).
    pub every: Option<Duration>,
    /// Start this long after the run starts (default 0s).
    pub start_after: Option<Duration>,
    /// Run this long (default: until the load ends).
    pub duration: Option<Duration>,
    /// Per-request timeout (default: `defaults.timeout`).
    pub timeout: Option<Duration>,
    /// The probe's SLO: one expression or a list; trend aggregations judge its latency (ms),
    /// `rate` its failure rate, `count` its samples. `rate==0` is added unless a `rate`
    /// expression is given (default: just `rate==0`).
    pub slo: Option<OneOrMany>,
    /// Fewer samples than this fails the probe (default 1).
    #[schemars(range(min = 1))]
    pub min_samples: Option<u64>,
    /// What to do when this check fails: text or a link (`docs/runbooks/errors.md: check
    /// /ready first`), printed beside the failed check in the terminal, junit.xml and
    /// report.html.
    pub runbook: Option<String>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OneOrMany, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an expression like \"p(95)<250\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<OneOrMany, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// A probe's request: `"GET /auth/me"` or the long form.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ProbeRequestDef {
    /// `METHOD /path`, e.g. `GET /auth/me`.
    Line(String),
    Full(ProbeRequestFull),
}

/// The long form of a probe's request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequestFull {
    /// HTTP method (default GET, or POST when a body is given).
    pub method: Option<String>,
    /// Path and query; must start with `/`. Templates allowed.
    #[schemars(required)]
    pub path: Option<String>,
    /// Headers (override `defaults.headers` by name).
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (a string as is, any other YAML value as JSON).
    pub body: Option<serde_json::Value>,
    /// Response checks; all must pass for the sample to succeed.
    pub checks: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for ProbeRequestDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ProbeRequestDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProbeRequestDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a request like \"GET /auth/me\" or {method: ..., path: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProbeRequestDef, E> {
                Ok(ProbeRequestDef::Line(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ProbeRequestDef, A::Error> {
                ProbeRequestFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ProbeRequestDef::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// A chain's poll: a request, the condition that ends the chain, and the poll interval.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollDef {
    /// HTTP method (default GET).
    pub method: Option<String>,
    /// Path; `{{NAME}}` reads a captured value, e.g. `/v1/jobs/{{id}}`.
    #[schemars(required)]
    pub path: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<serde_json::Value>,
    /// The condition, in the response-check grammar (`json /status == done`,
    /// `status == 200`); a leading `/` means a JSON pointer: `/status == done`.
    #[schemars(required)]
    pub until: Option<String>,
    /// A condition that fails the chain at once (same grammar), e.g. `/status == failed`.
    pub fail_if: Option<String>,
    /// Poll this often (default 1s).
    pub every: Option<Duration>,
}

/// `slos.NAME:` — an objective over good / total events.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Free text shown in reports.
    pub description: Option<String>,
    /// The good share required: `99.9%` or `0.999`.
    #[schemars(required)]
    pub objective: Option<Objective>,
    /// `http_req_failed` (availability) or a latency metric with `good:`, with an optional
    /// tag filter, e.g. `http_req_duration{scenario:chat}`.
    #[schemars(required)]
    pub metric: Option<String>,
    /// Latency SLOs: what a good request's latency is, in ms: `<300` or `<=300`.
    pub good: Option<String>,
    /// Burn-rate window pairs (default: the SRE workbook's, scaled to the run's length).
    pub burn: Option<Vec<BurnDef>>,
    /// Fewer events than this over the run fails the SLO (default 1).
    #[schemars(range(min = 1))]
    pub min_samples: Option<u64>,
    /// What to do when this check fails: text or a link (`docs/runbooks/errors.md: check
    /// /ready first`), printed beside the failed check in the terminal, junit.xml and
    /// report.html.
    pub runbook: Option<String>,
}

/// An objective: `99.9%` (a string) or a fraction such as `0.999`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Objective {
    Fraction(f64),
    #[schemars(with = "String")]
    Percent(Percent),
}

/// A percentage written `99.9%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0))
    }
}

impl Objective {
    /// As a fraction (`99.9%` → 0.999).
    pub fn fraction(self) -> f64 {
        match self {
            Objective::Fraction(f) => f,
            Objective::Percent(p) => p.0 / 100.0,
        }
    }
}

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Objective, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Objective;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an objective like 99.9% or 0.999")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Objective, E> {
                Ok(Objective::Fraction(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Objective, E> {
                Ok(Objective::Fraction(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Objective, E> {
                Ok(Objective::Fraction(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Objective, E> {
                let t = v.trim();
                if let Some(num) = t.strip_suffix('%') {
                    return num
                        .trim()
                        .parse::<f64>()
                        .map(|p| Objective::Percent(Percent(p)))
                        .map_err(|_| {
                            E::custom(format!("expected an objective like 99.9%, got {v:?}"))
                        });
                }
                t.parse::<f64>().map(Objective::Fraction).map_err(|_| {
                    E::custom(format!(
                        "expected an objective like 99.9% or 0.999, got {v:?}"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A burn-rate window pair.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurnDef {
    /// The long window, e.g. 60s (whole seconds).
    #[schemars(required)]
    pub long: Option<Duration>,
    /// The short window (at most `long`), e.g. 5s.
    #[schemars(required)]
    pub short: Option<Duration>,
    /// Both windows must burn faster than this many times the budget rate.
    #[schemars(required)]
    pub factor: Option<f64>,
    /// `page` (default) or `ticket`.
    pub severity: Option<crate::spec::Severity>,
}

/// `canary:` — step the canary's weight up under load and judge every step on its own
/// samples (Mann-Whitney U on latency, an error-rate ceiling); roll back at once on a bad
/// step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// How baseline and canary responses are told apart.
    #[schemars(required)]
    pub split: Option<CanarySplit>,
    /// Scenarios whose responses are judged (default: every scenario).
    pub scenarios: Option<Vec<String>>,
    /// Canary weights in percent, ascending (default [5, 25, 50, 100]); 100 is the promotion.
    pub steps: Option<Vec<u32>>,
    /// How long each step runs (default 15s).
    pub step_duration: Option<Duration>,
    /// When the first step starts (default 0s): leave room for a warm-up.
    pub start_after: Option<Duration>,
    /// Samples per side and step below which the step is NoData (default 200).
    #[schemars(range(min = 1))]
    pub min_samples: Option<u64>,
    /// What is compared (default: latency with mann-whitney at 0.98 and 10%, errors at 1%).
    pub compare: Option<CanaryCompare>,
    /// `wait` (default): a step short of samples runs on, up to `max_wait`; `fail`: NoData
    /// at once. NoData fails the gate either way.
    pub on_no_data: Option<OnNoDataDef>,
    /// How much longer a step may wait for samples (default 2 step durations).
    pub max_wait: Option<Duration>,
    /// `extend` (default): an inconclusive step runs once more; `rollback`.
    pub on_inconclusive: Option<OnInconclusiveDef>,
    /// What the drill must see: `promote` or `rollback`. Without it a rollback fails the run.
    pub expect: Option<ExpectDef>,
    /// How a weight is applied (not with `split.targets`: loadgate splits the load itself).
    pub apply: Option<CanaryApply>,
    /// What to do when this check fails: text or a link (`docs/runbooks/errors.md: check
    /// /ready first`), printed beside the failed check in the terminal, junit.xml and
    /// report.html.
    pub runbook: Option<String>,
}

/// `blue_green:` — switch all traffic from blue to green under load (and back), and verify
/// each cutover window.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueGreen {
    /// The response header naming the version, and the blue and green values.
    #[schemars(required)]
    pub split: Option<BlueGreenSplit>,
    /// Scenarios whose responses are judged (default: every scenario).
    pub scenarios: Option<Vec<String>>,
    /// When all traffic is switched to green (run clock).
    #[schemars(required)]
    pub cutover_at: Option<Duration>,
    /// When traffic is switched back to blue (the rollback drill), if it is.
    pub switch_back_at: Option<Duration>,
    /// How long after each switch is judged (default 5s).
    pub window: Option<Duration>,
    /// Failed requests allowed in a window (default 0).
    pub max_failed: Option<u64>,
    /// No second of a window may have a p99 above this: `250ms`.
    pub max_p99: Option<Duration>,
    /// How the switch is made: `reference`, `http` or `command` as in `canary.apply`, with
    /// `{{version}}` for the value switched to.
    #[schemars(required)]
    pub apply: Option<CanaryApply>,
    /// What to do when this check fails: text or a link (`docs/runbooks/errors.md: check
    /// /ready first`), printed beside the failed check in the terminal, junit.xml and
    /// report.html.
    pub runbook: Option<String>,
}

/// `blue_green.split:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueGreenSplit {
    /// Response header naming the version, e.g. `x-model-version`.
    #[schemars(required)]
    pub header: Option<String>,
    /// The live version before the cutover, e.g. `v1`.
    #[schemars(required)]
    pub blue: Option<String>,
    /// The version switched to, e.g. `v2`.
    #[schemars(required)]
    pub green: Option<String>,
}

/// `canary.split:` — a response header and its two values, or two targets that loadgate
/// splits the load between itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySplit {
    /// Response header naming the version, e.g. `x-model-version`.
    pub header: Option<String>,
    /// The baseline's value, e.g. `v1`.
    pub baseline: Option<String>,
    /// The canary's value, e.g. `v2`.
    pub canary: Option<String>,
    /// Two base URLs instead of a header: loadgate sends each iteration to one of them by the
    /// step's weight (no `apply`).
    pub targets: Option<CanaryTargets>,
}

/// `canary.split.targets:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryTargets {
    /// The baseline's base URL, e.g. `http://127.0.0.1:8081`.
    #[schemars(required)]
    pub baseline: Option<String>,
    /// The canary's base URL, e.g. `http://127.0.0.1:8082`.
    #[schemars(required)]
    pub canary: Option<String>,
}

/// `canary.compare:` — the metrics judged per step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryCompare {
    /// Latency of successful responses, canary against baseline.
    pub latency: Option<LatencyCompareDef>,
    /// The canary's error-rate ceiling.
    pub error_rate: Option<ErrorRateDef>,
    /// Numbers taken from responses (a cost per request, a quality score), by name.
    pub values: Option<BTreeMap<String, ValueCompareDef>>,
}

/// `canary.compare.values.NAME:` — a number from each response and its bounds per step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueCompareDef {
    /// Where the number is: `json /cost_usd` (an RFC 6901 pointer into the JSON body) or
    /// `header x-quality-score`.
    #[schemars(required)]
    pub from: Option<String>,
    /// The canary's mean per step must not exceed this (a ceiling: cost per request).
    pub max: Option<f64>,
    /// The canary's mean per step must not fall below this (a floor: a quality score).
    pub min: Option<f64>,
    /// The canary's mean may exceed the baseline's by at most this: `10%` or 0.1.
    pub max_increase: Option<Objective>,
    /// The canary's mean may fall below the baseline's by at most this: `5%` or 0.05.
    pub max_decrease: Option<Objective>,
}

/// `canary.compare.latency:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyCompareDef {
    /// `mann-whitney` (the only test, the default).
    pub test: Option<CanaryTest>,
    /// Confidence of the one-sided test, 0.5-0.9999 (default 0.98).
    pub confidence: Option<f64>,
    /// Allowed increase of the canary over the baseline median: `10%` or 0.1 (default 10%).
    pub max_increase: Option<Objective>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryTest {
    MannWhitney,
}

/// `canary.compare.error_rate:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRateDef {
    /// The highest error rate a canary step may show: `1%` or 0.01.
    #[schemars(required)]
    pub max: Option<Objective>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnNoDataDef {
    Fail,
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnInconclusiveDef {
    Extend,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectDef {
    Promote,
    Rollback,
}

/// `canary.apply:` — exactly one of `reference`, `http`, `command`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryApply {
    /// The reference gateway's `PUT /admin/routing {"canary_weight": W}`.
    pub reference: Option<ReferenceApply>,
    /// An HTTP call; `{{weight}}` in `url` and `body` is the weight.
    pub http: Option<HttpApply>,
    /// A command (argv); `{{weight}}` in an argument is the weight; env `CANARY_WEIGHT`.
    pub command: Option<Vec<String>>,
}

/// `canary.apply.reference:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceApply {
    /// The gateway's admin key, e.g. `${ADMIN_KEY}`.
    #[schemars(required)]
    pub admin_key: Option<String>,
}

/// `canary.apply.http:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpApply {
    /// Default PUT.
    pub method: Option<String>,
    /// Absolute URL, e.g. `${TARGET_URL}/admin/routing`.
    #[schemars(required)]
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body text, e.g. `{"canary_weight": {{weight}}}`.
    pub body: Option<String>,
}

/// `report:` — which report files to write.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Any of table, json, junit, csv, html (default: all). summary.json is always written.
    pub formats: Option<Vec<ReportFormat>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
    Csv,
    Html,
}

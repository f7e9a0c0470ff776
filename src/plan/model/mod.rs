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

mod autoscaling;
mod canary;
mod capacity;
mod dependencies;
mod faults;
mod probes;
mod scrapes;

pub use autoscaling::*;
pub use canary::*;
pub use capacity::*;
pub use dependencies::*;
pub use faults::*;
pub use probes::*;
pub use scrapes::*;

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
    /// Faults injected while the load runs, each judged on the failover users saw.
    pub faults: Option<BTreeMap<String, Fault>>,
    /// The capacity search of `loadgate capacity PLAN`: which scenario, the expected rate
    /// and the precision (ignored by `loadgate run`).
    pub capacity: Option<Capacity>,
    /// Endpoints (Prometheus text) or commands (a number) read on an interval during the
    /// run; every series goes on the timeline and into timeseries.csv.
    pub scrapes: Option<BTreeMap<String, Scrape>>,
    /// Health of Redis and PostgreSQL during the run (evictions, memory, clients,
    /// connections, deadlocks), judged as `dependency` checks.
    pub dependencies: Option<Dependencies>,
    /// Autoscaling rules: the HPA recommendation recomputed from a scraped metric, and the
    /// system's replicas checked against it (decision and ready latency, flapping).
    pub autoscaling: Option<BTreeMap<String, AutoscaleRule>>,
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
    /// Edge balancer in front of the gateways (default `none`; `round-robin` with `regions: 2`).
    pub edge: Option<Edge>,
    /// Redis container image (containers backend).
    pub redis_image: Option<String>,
    /// PostgreSQL container image (containers backend).
    pub postgres_image: Option<String>,
    /// Extra environment for the gateways.
    pub env: Option<BTreeMap<String, String>>,
    /// Put a fault proxy between the gateways and Redis / PostgreSQL (default: only when a
    /// fault has `action: toxic` or `action: failover`).
    pub fault_proxy: Option<bool>,
    /// Regions, 1 or 2 (default 1). With 2, `gateways` instances run in each region
    /// (gw-1..gw-N primary, gw-N+1..gw-2N secondary); the edge (round-robin unless given)
    /// prefers the primary region and fails over to the secondary when none of the
    /// primary's instances passes its health check. Faults name a region as
    /// `region[primary]` / `region[secondary]`.
    #[schemars(range(min = 1, max = 2))]
    pub regions: Option<u32>,
    /// PostgreSQL options: `{ replica: async | sync }` starts a streaming replica.
    pub postgres: Option<PostgresDef>,
}

/// `stack.reference.postgres:` options.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresDef {
    /// A streaming replica beside the primary (component `postgres-replica`; the target of
    /// `action: failover`): `async` (acknowledged before the replica has it: a failover can
    /// lose writes) or `sync` (`synchronous_commit = remote_apply`: none lost).
    pub replica: Option<ReplicaDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaDef {
    Async,
    Sync,
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
    /// How HTTP/2 connections are shared between VUs (h2load's `-c` and `-m`).
    pub http2: Option<Http2Sharing>,
}

/// `defaults.http2:` — HTTP/2 multiplexing.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http2Sharing {
    /// Most HTTP/2 connections open at once per scenario and target (default: as many as the
    /// VUs need at `streams` each).
    #[schemars(range(min = 1))]
    pub connections: Option<u32>,
    /// VUs per connection, i.e. concurrent streams on each (default 8).
    #[schemars(range(min = 1))]
    pub streams: Option<u32>,
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
    /// The request is a write to account for: every acknowledged write is recorded (id and
    /// digest) and read back after the load (lost, changed, recovered writes; RPO).
    pub ledger: Option<Ledger>,
}

/// `ledger: { id: "{{uuid}}", read_back: "GET /v1/notes/{{id}}" }` of a scenario.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// The template of the write's id, exactly as the request body's id field writes it.
    #[schemars(required)]
    pub id: Option<String>,
    /// `METHOD /path/{{id}}`: how to read one write back (404: missing).
    #[schemars(required)]
    pub read_back: Option<String>,
    /// The body fields compared between the write and its read-back (default: all the
    /// written body's fields).
    pub compare: Option<Vec<String>>,
    /// What the checks allow (default: nothing lost, `rpo: 0s`).
    pub expect: Option<LedgerExpect>,
}

/// `expect: { lost_writes: 0, rpo: 0s }` of a `ledger:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerExpect {
    /// Lost acknowledged writes allowed (default 0).
    pub lost_writes: Option<u64>,
    /// The longest time span of lost writes allowed (default 0s).
    pub rpo: Option<Duration>,
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

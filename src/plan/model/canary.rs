//! The plan's canary and blue/green sections (`canary:`, `blue_green:`), field for field; see
//! the parent module for the conventions.

use super::*;

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

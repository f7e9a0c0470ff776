//! The lowered `canary:` section: a progressive rollout that loadgate drives and judges
//! itself, on traffic it sends (so a canary is never judged on no traffic, the standing
//! complaint against Argo Rollouts (#2071) and Flagger (#931)).
//!
//! Baseline and canary responses are told apart ([`Split`]) by a response header (the
//! reference gateway's `x-model-version: v1 | v2`), or by where loadgate sent the request
//! (two target URLs: the workers pick the side of each iteration by the step's weight, so no
//! admin call applies a weight). Every response of the split's scenarios is tagged with its
//! side ([`Variant`]) by the worker that received it, and the side is part of the series key,
//! so the per-side samples of a step come out of the per-second slices the run clock already
//! has (no per-request lock or channel). Numbers taken from the responses
//! ([`ValueCompare`]: a cost per request, a quality score) are summed per series the same way.
//!
//! Each step sets the canary weight, runs `step_duration` (longer when `on_no_data: wait`
//! and a side is short of `min_samples`, or once more when `on_inconclusive: extend`), and is
//! judged over its own samples only ([`crate::checks::canary`]). A weight of 100 is the
//! promotion itself (the baseline gets no traffic to compare with), so it is applied, not
//! judged.
use std::time::Duration;

/// Which side of the split a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Variant {
    /// Not tagged (no split on this scenario).
    #[default]
    None,
    Baseline,
    Canary,
    /// Tagged, but the header was missing or had another value.
    Other,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::None => "",
            Variant::Baseline => "baseline",
            Variant::Canary => "canary",
            Variant::Other => "other",
        }
    }
}

/// A split by response header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSplit {
    /// Header name, lower case.
    pub header: String,
    pub baseline: String,
    pub canary: String,
}

impl HeaderSplit {
    /// The side a response with this header value (None: header absent) belongs to.
    #[inline]
    pub fn side(&self, value: Option<&[u8]>) -> Variant {
        match value.map(trim_ascii) {
            Some(v) if v == self.baseline.as_bytes() => Variant::Baseline,
            Some(v) if v == self.canary.as_bytes() => Variant::Canary,
            _ => Variant::Other,
        }
    }
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Two targets that loadgate splits the split's scenarios between itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSplit {
    /// Base URLs, e.g. `http://127.0.0.1:8081`.
    pub baseline: String,
    pub canary: String,
}

/// How baseline and canary responses are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// By a response header's value; the system under test routes by the applied weight.
    Header(HeaderSplit),
    /// By where the request went; loadgate applies each step's weight itself.
    Targets(TargetSplit),
}

impl Split {
    /// The header split, if responses are told apart by a header.
    pub fn header(&self) -> Option<&HeaderSplit> {
        match self {
            Split::Header(h) => Some(h),
            Split::Targets(_) => None,
        }
    }

    /// The target split, if loadgate splits the load itself.
    pub fn targets(&self) -> Option<&TargetSplit> {
        match self {
            Split::Targets(t) => Some(t),
            Split::Header(_) => None,
        }
    }

    /// What names the baseline (a header value or a URL).
    pub fn baseline(&self) -> &str {
        match self {
            Split::Header(h) => &h.baseline,
            Split::Targets(t) => &t.baseline,
        }
    }

    /// What names the canary (a header value or a URL).
    pub fn canary(&self) -> &str {
        match self {
            Split::Header(h) => &h.canary,
            Split::Targets(t) => &t.canary,
        }
    }
}

/// A number taken from every response of the split's scenarios (a cost per request, a
/// quality score), compared per step: the canary's mean against absolute bounds and against
/// the baseline's mean. Responses without the value (or not a number) do not count.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCompare {
    /// The name in reports (`cost`, `quality`).
    pub name: String,
    /// Where the number is: `json /cost_usd`, `header x-quality-score`.
    pub from: crate::grammar::extract::Extractor,
    /// The canary's mean must not exceed this (a ceiling, e.g. a cost per request).
    pub max: Option<f64>,
    /// The canary's mean must not fall below this (a floor, e.g. a quality score).
    pub min: Option<f64>,
    /// The canary's mean must not exceed the baseline's by more than this fraction.
    pub max_increase: Option<f64>,
    /// The canary's mean must not fall below the baseline's by more than this fraction.
    pub max_decrease: Option<f64>,
}

impl ValueCompare {
    /// Whether the baseline's mean is needed (a relative bound).
    pub fn relative(&self) -> bool {
        self.max_increase.is_some() || self.max_decrease.is_some()
    }
}

/// How a weight is applied to the system under test.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyWeight {
    /// An HTTP call; `{{weight}}` in the URL and the body is replaced by the weight (0-100).
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A command (argv); `{{weight}}` in an argument is replaced by the weight, and the
    /// environment has `CANARY_WEIGHT`.
    Command { argv: Vec<String> },
}

impl ApplyWeight {
    /// The reference gateway's routing call: `PUT <target>/admin/routing
    /// {"canary_weight": W}` with the admin key.
    pub fn reference(target: &str, admin_key: &str) -> ApplyWeight {
        ApplyWeight::Http {
            method: "PUT".into(),
            url: format!("{}/admin/routing", target.trim_end_matches('/')),
            headers: vec![("authorization".into(), format!("Bearer {admin_key}"))],
            body: r#"{"canary_weight": {{weight}}}"#.into(),
        }
    }
}

/// What to do when a side of a step has fewer than `min_samples` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNoData {
    /// The step ends NoData: the gate rolls back and the canary check fails.
    Fail,
    /// Keep the step going (up to `max_wait` more) until both sides have enough samples;
    /// then NoData as with `Fail`.
    Wait,
}

/// What to do when a step's latency comparison is inconclusive (a significant increase whose
/// estimate exceeds the allowed one, while its confidence interval still reaches below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInconclusive {
    /// Run the step again once with fresh samples; inconclusive twice rolls back.
    Extend,
    Rollback,
}

/// What the drill must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Promote,
    Rollback,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Promote => "promote",
            Expect::Rollback => "rollback",
        }
    }
}

/// The latency comparison (Mann-Whitney U, Hodges-Lehmann effect size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyCompare {
    /// e.g. 0.98 (Kayenta's judge): significant when the one-sided p-value < 1 - confidence.
    pub confidence: f64,
    /// Allowed increase as a fraction of the baseline median, e.g. 0.10 for 10%.
    pub max_increase: f64,
}

/// The lowered `canary:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    pub split: Split,
    /// Scenarios whose responses are tagged and judged (all scenarios when the plan names
    /// none).
    pub scenarios: Vec<String>,
    /// Canary weights in percent, ascending, each 1-100.
    pub steps: Vec<u32>,
    pub step_duration: Duration,
    /// When the first step starts (run clock).
    pub start_after: Duration,
    /// Per side and step; fewer is NoData. At least 1.
    pub min_samples: u64,
    /// None: latency is not compared.
    pub latency: Option<LatencyCompare>,
    /// The canary's error-rate ceiling per step (fraction); None: not judged.
    pub max_error_rate: Option<f64>,
    /// Numbers taken from responses, compared per step (in the plan's order).
    pub values: Vec<ValueCompare>,
    pub on_no_data: OnNoData,
    /// How much longer a step may wait for samples under `on_no_data: wait`.
    pub max_wait: Duration,
    pub on_inconclusive: OnInconclusive,
    pub expect: Option<Expect>,
    /// How a weight is applied; None with a [`Split::Targets`] split (loadgate splits the
    /// load itself).
    pub apply: Option<ApplyWeight>,
    /// What to do when this check fails (`runbook:` in the plan): text or a link, shown
    /// beside a failed check in the terminal, junit.xml and report.html.
    pub runbook: Option<String>,
}

impl CanarySpec {
    /// Whether scenario `name`'s responses are tagged.
    pub fn covers(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }
}

/// The lowered `blue_green:` section: switch all traffic from blue to green under load (and
/// back), and judge each cutover window: no failed request, no second slower than the bound,
/// and the traffic really moved.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenSpec {
    /// `baseline` is blue, `canary` is green.
    pub split: HeaderSplit,
    /// Scenarios whose responses are tagged and judged (all when empty).
    pub scenarios: Vec<String>,
    /// When traffic is switched to green (run clock).
    pub cutover_at: Duration,
    /// When traffic is switched back to blue (the rollback), if it is.
    pub switch_back_at: Option<Duration>,
    /// How long after each switch is judged.
    pub window: Duration,
    /// Failed requests allowed in a window (default 0).
    pub max_failed: u64,
    /// No second of a window may have a p99 above this, ms.
    pub max_p99_ms: Option<f64>,
    /// How the switch is made; `{{version}}` is the value switched to.
    pub apply: ApplyWeight,
    /// What to do when this check fails (`runbook:` in the plan): text or a link, shown
    /// beside a failed check in the terminal, junit.xml and report.html.
    pub runbook: Option<String>,
}

impl BlueGreenSpec {
    /// Whether scenario `name`'s responses are tagged.
    pub fn covers(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }
}

impl ApplyWeight {
    /// The reference gateway's blue/green switch: `PUT <target>/admin/routing {"active":
    /// VERSION, "canary_weight": 0}` with the admin key.
    pub fn reference_switch(target: &str, admin_key: &str) -> ApplyWeight {
        ApplyWeight::Http {
            method: "PUT".into(),
            url: format!("{}/admin/routing", target.trim_end_matches('/')),
            headers: vec![("authorization".into(), format!("Bearer {admin_key}"))],
            body: r#"{"active": "{{version}}", "canary_weight": 0}"#.into(),
        }
    }
}

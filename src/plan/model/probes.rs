//! The plan's probe and SLO sections (`probes:`, `slos:`), field for field; see the parent
//! module for the conventions (every field optional here, required ones checked in validation).

use super::*;

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

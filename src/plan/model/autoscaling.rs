//! The plan's `autoscaling:` section, field for field; see the parent module for the
//! conventions.

use super::*;

/// `autoscaling.NAME:` — a rule: loadgate recomputes the Kubernetes HPA recommendation from a
/// scraped metric and checks how the system's replicas followed it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleRule {
    /// The scraper to read: the name of a `scrapes:` entry, or an inline
    /// `{ url: ${TARGET_URL}/metrics, every: 1s }`.
    #[schemars(required)]
    pub scrape: Option<ScrapeRef>,
    /// The load metric, e.g. `gateway_queue_depth` (every series of that name summed: a
    /// total over the replicas) or one series `name{label="v"}`.
    #[schemars(required)]
    pub metric: Option<String>,
    /// The metric's target per replica (the HPA's `averageValue`, KEDA's `listLength`).
    #[schemars(required)]
    pub target_per_replica: Option<f64>,
    /// The replica series: `gateway_workers_current`, or `{ current: ..., desired: ... }` when
    /// the system also exposes what its autoscaler wants.
    #[schemars(required)]
    pub replicas: Option<ReplicasDef>,
    /// Fewest replicas (default 1).
    pub min: Option<u64>,
    /// Most replicas.
    #[schemars(required)]
    pub max: Option<u64>,
    /// No change while |ratio - 1| is within this (default 0.1, as the HPA).
    pub tolerance: Option<f64>,
    /// Scale-down stabilization window (default 300s, as the HPA): a scale-down applies the
    /// highest recommendation of the window; a reversal inside it is a flap.
    pub stabilization: Option<Duration>,
    /// What the system must do.
    #[schemars(required)]
    pub expect: Option<AutoscaleExpectDef>,
}

/// A rule's scraper: a `scrapes:` entry's name, or an inline one.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScrapeRef {
    Named(String),
    Inline(Scrape),
}

impl<'de> Deserialize<'de> for ScrapeRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ScrapeRef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScrapeRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a `scrapes:` entry's name or {url: ..., every: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScrapeRef, E> {
                Ok(ScrapeRef::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScrapeRef, A::Error> {
                Scrape::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ScrapeRef::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

/// The replica series: one name (the current replicas) or both.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ReplicasDef {
    Current(String),
    Both(ReplicaSeries),
}

/// `replicas: { current, desired }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSeries {
    /// Replicas running now, e.g. `gateway_workers_current`.
    #[schemars(required)]
    pub current: Option<String>,
    /// Replicas the system's autoscaler wants, e.g. `gateway_workers_desired` (needed for
    /// `decision_within`).
    pub desired: Option<String>,
}

impl<'de> Deserialize<'de> for ReplicasDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReplicasDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReplicasDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a series name or {current: ..., desired: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReplicasDef, E> {
                Ok(ReplicasDef::Current(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ReplicasDef, A::Error> {
                ReplicaSeries::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ReplicasDef::Both)
            }
        }
        d.deserialize_any(V)
    }
}

/// `autoscaling.NAME.expect:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleExpectDef {
    /// From a change of the recommendation to the desired replicas reaching it.
    pub decision_within: Option<Duration>,
    /// From a change of the recommendation to the current replicas reaching it.
    pub ready_within: Option<Duration>,
    /// Fail on a reversal of direction inside the stabilization window (default false).
    pub no_flapping: Option<bool>,
    /// Directions the run must show, each triggered and followed: `[out, in]` (default: at
    /// least one trigger, either way).
    pub directions: Option<Vec<ScaleDirectionDef>>,
}

/// `out` (more replicas) or `in` (fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDirectionDef {
    Out,
    In,
}

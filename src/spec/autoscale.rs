//! The lowered `autoscaling:` section: rules that recompute the Kubernetes HPA recommendation
//! from what a scraper read and judge how the system's replicas followed it.
use std::time::Duration;

/// One autoscaling rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleSpec {
    pub name: String,
    /// The scraper (an entry of [`super::RunSpec::scrapes`]) whose points the rule reads.
    pub scrape: String,
    /// The load metric: a series name (every series of that name, summed: a total over the
    /// replicas) or a full series `name{label="v"}`.
    pub metric: String,
    /// The metric's target per replica (HPA `averageValue`).
    pub target_per_replica: f64,
    /// The series of the replicas running now.
    pub current: String,
    /// The series of the replicas the system's autoscaler wants, if it exposes one.
    pub desired: Option<String>,
    pub min: u64,
    pub max: u64,
    /// No change while |ratio − 1| is within this (HPA: 0.1).
    pub tolerance: f64,
    /// Scale-down stabilization window: a scale-down applies the highest recommendation of
    /// this window (HPA `scaleDown.stabilizationWindowSeconds`); also the window inside which
    /// a reversal of direction is a flap.
    pub stabilization: Duration,
    pub expect: AutoscaleExpect,
}

/// What a rule requires.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleExpect {
    /// From a change of the recommendation to the desired replicas reaching it.
    pub decision_within: Option<Duration>,
    /// From a change of the recommendation to the current replicas reaching it.
    pub ready_within: Option<Duration>,
    /// No reversal of direction inside the stabilization window.
    pub no_flapping: bool,
    /// Directions that must have been triggered and judged (empty: at least one of either).
    pub directions: Vec<ScaleDirection>,
}

/// Scale out (more replicas) or in (fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleDirection {
    Out,
    In,
}

impl ScaleDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDirection::Out => "out",
            ScaleDirection::In => "in",
        }
    }
}

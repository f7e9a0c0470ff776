//! The canary judge: one step's baseline and canary samples in, a classification per metric
//! and the step's decision out. A pure function of the samples (the canary controller in
//! [`crate::control::canary`] collects them and acts on the decision).
//!
//! Per metric, Kayenta-style (NetflixACAJudge / MannWhitneyClassifier):
//! ```text
//! NoData  either side has fewer than min_samples samples (never a pass)
//! latency (successful responses, ms; higher is worse):
//!   p      = Mann-Whitney U, one-sided "canary > baseline", tie + continuity corrected
//!   shift  = Hodges-Lehmann estimate of canary - baseline with its `confidence` interval
//!   ratio  = 1 + shift / median(baseline)          (and the interval's bounds likewise)
//!   High          p < 1 - confidence and ratio_lower > 1 + max_increase
//!   (marginal)    p < 1 - confidence and ratio > 1 + max_increase >= ratio_lower
//!   Low           the mirror test "canary < baseline" significant (an improvement: passes)
//!   Pass          otherwise
//! error rate: High when the canary's failed / requests > max_error_rate, else Pass
//! values (numbers from responses: cost per request, a quality score), means per side:
//!   NoData        fewer than min_samples canary values (or baseline values, with a
//!                 relative bound)
//!   High          canary mean > max, or > baseline mean + |baseline mean| x max_increase
//!   Low           canary mean < min, or < baseline mean - |baseline mean| x max_decrease
//!   Pass          otherwise                  (for a value, High and Low both fail)
//! ```
//! Decision: any High (or a value's Low) -> `Rollback` (conclusive even when another metric
//! lacks data); else
//! any NoData -> `NoData` (the controller fails or waits per `on_no_data`); a marginal latency -> `Inconclusive`; else `Continue`. Where Kayenta
//! uses a score over many metrics, a step here has at most two, and either failing fails it
//! (both are what Kayenta would mark critical).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mannwhitney::{hodges_lehmann, mann_whitney_u, Alternative, Method, Weighted};
pub use crate::metrics::ValueSum;
use crate::spec::{LatencyCompare, ValueCompare};

/// Kayenta's per-metric classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    High,
    Low,
    Pass,
    NoData,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::High => "High",
            Class::Low => "Low",
            Class::Pass => "Pass",
            Class::NoData => "NoData",
        }
    }
}

/// What a step (or the whole gate) concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The step passed: go to the next weight.
    Continue,
    /// Every step passed: the canary takes all traffic.
    Promote,
    /// A step failed: traffic goes back to the baseline.
    Rollback,
    /// The latency comparison could not tell (see the module doc).
    Inconclusive,
    /// A side had too few samples.
    NoData,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Continue => "continue",
            Decision::Promote => "promote",
            Decision::Rollback => "rollback",
            Decision::Inconclusive => "inconclusive",
            Decision::NoData => "nodata",
        }
    }
}

/// One side's samples of one step.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Latencies of successful responses, milliseconds, with counts.
    pub latency: Weighted,
    pub requests: u64,
    pub failed: u64,
    /// The numbers taken from responses, indexed like the spec's `values`.
    pub values: Vec<ValueSum>,
}

impl Side {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

/// The latency comparison of a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyJudgement {
    pub class: Class,
    /// U of the canary sample (scipy's statistic for `mannwhitneyu(canary, baseline)`).
    pub u: Option<f64>,
    /// One-sided p-value of "canary slower than baseline".
    pub p_value: Option<f64>,
    /// Hodges-Lehmann shift of canary over baseline, ms, with its interval.
    pub shift_ms: Option<f64>,
    pub shift_lower_ms: Option<f64>,
    pub shift_upper_ms: Option<f64>,
    /// The effect size: 1 + shift / baseline median, with its interval.
    pub ratio: Option<f64>,
    pub ratio_lower: Option<f64>,
    pub ratio_upper: Option<f64>,
    /// A significant increase over the allowed one whose interval still reaches below it.
    pub marginal: bool,
}

/// The error-rate ceiling of a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorJudgement {
    pub class: Class,
    pub canary_rate: f64,
    pub baseline_rate: f64,
    pub max: f64,
}

/// A number taken from responses, compared for a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValueJudgement {
    pub name: String,
    /// High: above `max` or `max_increase`; Low: below `min` or `max_decrease` (both fail).
    pub class: Class,
    /// Means per side over the responses that carried the value.
    pub baseline_mean: Option<f64>,
    pub canary_mean: Option<f64>,
    /// How many responses carried the value.
    pub baseline_n: u64,
    pub canary_n: u64,
    /// canary mean / baseline mean.
    pub ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decrease: Option<f64>,
    /// Which bound failed (`max`, `min`, `max_increase`, `max_decrease`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_bound: Option<String>,
}

/// Everything a step concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct StepJudgement {
    pub latency: Option<LatencyJudgement>,
    pub errors: Option<ErrorJudgement>,
    pub values: Vec<ValueJudgement>,
    pub decision: Decision,
}

/// Judge one step on latency and errors: `baseline` and `canary` are the step's samples only.
pub fn judge_step(
    baseline: &Side,
    canary: &Side,
    min_samples: u64,
    latency: Option<&LatencyCompare>,
    max_error_rate: Option<f64>,
) -> StepJudgement {
    judge_step_with(baseline, canary, min_samples, latency, max_error_rate, &[])
}

/// Judge one step on latency, errors and the numbers taken from responses (`values`, whose
/// sums are `Side::values` at the same index).
pub fn judge_step_with(
    baseline: &Side,
    canary: &Side,
    min_samples: u64,
    latency: Option<&LatencyCompare>,
    max_error_rate: Option<f64>,
    values: &[ValueCompare],
) -> StepJudgement {
    let enough = baseline.requests >= min_samples && canary.requests >= min_samples;
    let latency = latency.map(|cfg| judge_latency(baseline, canary, min_samples, cfg));
    let errors = max_error_rate.map(|max| ErrorJudgement {
        class: if canary.requests < min_samples {
            Class::NoData
        } else if canary.error_rate() > max {
            Class::High
        } else {
            Class::Pass
        },
        canary_rate: canary.error_rate(),
        baseline_rate: baseline.error_rate(),
        max,
    });
    let values: Vec<ValueJudgement> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let none = ValueSum::default();
            judge_value(
                v,
                baseline.values.get(i).unwrap_or(&none),
                canary.values.get(i).unwrap_or(&none),
                min_samples,
            )
        })
        .collect();
    // A value's Low (below its floor) fails like a High; latency's Low is an improvement.
    let classes = latency
        .iter()
        .map(|l| l.class)
        .chain(errors.iter().map(|e| e.class))
        .chain(values.iter().map(|v| match v.class {
            Class::Low => Class::High,
            c => c,
        }));
    let mut decision = Decision::Continue;
    let mut no_data = !enough;
    for c in classes {
        match c {
            Class::High => decision = Decision::Rollback,
            Class::NoData => no_data = true,
            Class::Low | Class::Pass => {}
        }
    }
    // A metric that is High on enough samples is conclusive even when another lacks data
    // (e.g. a failing canary's successful latencies fall short of min_samples).
    if no_data {
        if decision != Decision::Rollback {
            decision = Decision::NoData;
        }
    } else if decision == Decision::Continue && latency.is_some_and(|l| l.marginal) {
        decision = Decision::Inconclusive;
    }
    StepJudgement {
        latency,
        errors,
        values,
        decision,
    }
}

fn judge_value(
    cfg: &ValueCompare,
    baseline: &ValueSum,
    canary: &ValueSum,
    min_samples: u64,
) -> ValueJudgement {
    let (bm, cm) = (baseline.mean(), canary.mean());
    let mut out = ValueJudgement {
        name: cfg.name.clone(),
        class: Class::NoData,
        baseline_mean: bm,
        canary_mean: cm,
        baseline_n: baseline.n,
        canary_n: canary.n,
        ratio: match (bm, cm) {
            (Some(b), Some(c)) if b != 0.0 => Some(c / b),
            _ => None,
        },
        max: cfg.max,
        min: cfg.min,
        max_increase: cfg.max_increase,
        max_decrease: cfg.max_decrease,
        failed_bound: None,
    };
    let enough = canary.n >= min_samples && (!cfg.relative() || baseline.n >= min_samples);
    let (Some(c), true) = (cm, enough) else {
        return out;
    };
    let b = bm.unwrap_or(0.0);
    let checks: [(&str, Class, bool); 4] = [
        ("max", Class::High, cfg.max.is_some_and(|m| c > m)),
        (
            "max_increase",
            Class::High,
            cfg.max_increase.is_some_and(|x| c > b + b.abs() * x),
        ),
        ("min", Class::Low, cfg.min.is_some_and(|m| c < m)),
        (
            "max_decrease",
            Class::Low,
            cfg.max_decrease.is_some_and(|x| c < b - b.abs() * x),
        ),
    ];
    out.class = Class::Pass;
    if let Some((bound, class, _)) = checks.iter().find(|(_, _, failed)| *failed) {
        out.class = *class;
        out.failed_bound = Some(bound.to_string());
    }
    out
}

fn judge_latency(
    baseline: &Side,
    canary: &Side,
    min_samples: u64,
    cfg: &LatencyCompare,
) -> LatencyJudgement {
    let mut out = LatencyJudgement {
        class: Class::NoData,
        u: None,
        p_value: None,
        shift_ms: None,
        shift_lower_ms: None,
        shift_upper_ms: None,
        ratio: None,
        ratio_lower: None,
        ratio_upper: None,
        marginal: false,
    };
    let (b, c) = (&baseline.latency, &canary.latency);
    if b.len() < min_samples || c.len() < min_samples {
        return out;
    }
    let alpha = 1.0 - cfg.confidence;
    let greater = mann_whitney_u(c, b, Alternative::Greater, Method::Auto, true);
    let less = mann_whitney_u(c, b, Alternative::Less, Method::Auto, true);
    let shift = hodges_lehmann(c, b, cfg.confidence);
    let median = b.median().filter(|m| *m > 0.0);
    out.u = greater.map(|g| g.u);
    out.p_value = greater.map(|g| g.p_value);
    if let Some(s) = shift {
        out.shift_ms = Some(s.estimate);
        out.shift_lower_ms = Some(s.lower);
        out.shift_upper_ms = Some(s.upper);
        if let Some(m) = median {
            out.ratio = Some(1.0 + s.estimate / m);
            out.ratio_lower = Some(1.0 + s.lower / m);
            out.ratio_upper = Some(1.0 + s.upper / m);
        }
    }
    let allowed = 1.0 + cfg.max_increase;
    let slower = out.p_value.is_some_and(|p| p < alpha);
    let faster = less.is_some_and(|l| l.p_value < alpha);
    let ratio = out.ratio.unwrap_or(1.0);
    let ratio_lower = out.ratio_lower.unwrap_or(1.0);
    out.class = if slower && ratio_lower > allowed {
        Class::High
    } else if faster {
        Class::Low
    } else {
        Class::Pass
    };
    out.marginal = slower && out.class == Class::Pass && ratio > allowed;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(values: impl Iterator<Item = f64>, failed: u64) -> Side {
        let v: Vec<f64> = values.collect();
        Side {
            requests: v.len() as u64 + failed,
            failed,
            latency: Weighted::from_values(&v),
            values: Vec::new(),
        }
    }

    const CMP: LatencyCompare = LatencyCompare {
        confidence: 0.98,
        max_increase: 0.10,
    };

    #[test]
    fn same_distribution_continues_shifted_rolls_back() {
        let base = side((0..400).map(|i| 20.0 + (i % 40) as f64 * 0.5), 0);
        let same = side((0..300).map(|i| 20.0 + ((i * 7) % 40) as f64 * 0.5), 0);
        let j = judge_step(&base, &same, 200, Some(&CMP), Some(0.01));
        assert_eq!(j.decision, Decision::Continue, "{j:?}");
        let slow = side((0..300).map(|i| 30.0 + ((i * 7) % 40) as f64 * 0.5), 0);
        let j = judge_step(&base, &slow, 200, Some(&CMP), Some(0.01));
        assert_eq!(j.decision, Decision::Rollback, "{j:?}");
        assert_eq!(j.latency.unwrap().class, Class::High);
        let erring = side((0..300).map(|i| 20.0 + ((i * 7) % 40) as f64 * 0.5), 9);
        let j = judge_step(&base, &erring, 200, Some(&CMP), Some(0.01));
        assert_eq!(j.errors.unwrap().class, Class::High);
        assert_eq!(j.decision, Decision::Rollback);
        // 9 of 200 failed: too few successful latencies, but the error rate is conclusive.
        let short = side((0..191).map(|i| 20.0 + i as f64 * 0.1), 9);
        let j = judge_step(&base, &short, 200, Some(&CMP), Some(0.01));
        assert_eq!(j.latency.unwrap().class, Class::NoData);
        assert_eq!(j.decision, Decision::Rollback, "{j:?}");
    }

    #[test]
    fn too_few_samples_is_nodata_never_a_pass() {
        let base = side((0..400).map(|i| 20.0 + (i % 40) as f64), 0);
        let none = Side::default();
        let j = judge_step(&base, &none, 200, Some(&CMP), Some(0.01));
        assert_eq!(j.decision, Decision::NoData);
        assert_eq!(j.latency.unwrap().class, Class::NoData);
        assert_eq!(j.errors.unwrap().class, Class::NoData);
        // Without any metric configured, missing samples are still NoData.
        assert_eq!(
            judge_step(&base, &none, 200, None, None).decision,
            Decision::NoData
        );
    }
}

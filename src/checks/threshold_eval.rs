//! Evaluation of thresholds against a run's merged metrics.
//!
//! The metrics a threshold sees are views over [`RunMetrics`]: every [`SeriesKey`] is turned
//! back into tags (`scenario`, `name`, `method`, `status`, `error`, `expected_response` and the
//! scenario's custom tags), the key's tag filter selects series (all tags must match), and the
//! selected series are merged exactly before aggregating.
//!
//! - `http_req_duration` (trend, ms): intended send → last byte (coordinated-omission
//!   corrected in the open model).
//! - `http_req_service_time` (trend, ms): actual send → last byte.
//! - `http_req_failed` (rate): failed / requests.
//! - `checks` (rate): response checks passed / (passed + failed).
//! - `http_reqs` (counter): `count` = requests; `rate` = requests per second of
//!   [`RunMetrics::elapsed`].
//! - `dropped_iterations` (counter): from [`crate::metrics::ScenarioInfo::dropped`]; only
//!   scenario-level tags (`scenario` and custom tags) can match it.
//!
//! **No data fails.** A trend or rate with no samples under the filter fails with observed
//! `no data` (k6 passes it silently, which hides typos in tag filters and scenarios that never
//! ran). Counters have data when the filter's scenario-level part selects at least one
//! scenario that sent requests (`http_reqs`) or existed (`dropped_iterations`), so
//! `http_reqs{status:500}: count<1` passes on a healthy run instead of failing for lack of
//! 500s; a filter naming no scenario of the run (`{scenario:typo}`) is still "no data".
use std::borrow::Cow;

use crate::checks::threshold::{metric_type, Aggregation, MetricType, ThresholdExpr};
use crate::metrics::{RunMetrics, ScenarioInfo, SeriesKey};
use crate::spec::ThresholdSpec;

/// The result of judging one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdOutcome {
    pub passed: bool,
    /// What was measured, e.g. `p(95)=41.2`, or `no data`.
    pub observed: String,
    /// True when the filtered metric had no samples (the threshold then fails).
    pub no_data: bool,
    /// The aggregated value, when there was data.
    pub value: Option<f64>,
}

impl ThresholdOutcome {
    fn no_data() -> ThresholdOutcome {
        ThresholdOutcome {
            passed: false,
            observed: "no data".into(),
            no_data: true,
            value: None,
        }
    }
    fn invalid(msg: String) -> ThresholdOutcome {
        ThresholdOutcome {
            passed: false,
            observed: msg,
            no_data: false,
            value: None,
        }
    }
}

/// Judge `spec` against the run's metrics.
pub fn evaluate(spec: &ThresholdSpec, metrics: &RunMetrics) -> ThresholdOutcome {
    evaluate_expr(&spec.metric, &spec.tags, &spec.expr, metrics)
}

/// Judge an expression over `metric` filtered by `tags` (used by [`evaluate`], and by drills
/// that judge ad-hoc SLOs such as the capacity search).
pub fn evaluate_expr(
    metric: &str,
    tags: &[(String, String)],
    expr: &ThresholdExpr,
    metrics: &RunMetrics,
) -> ThresholdOutcome {
    let Some(ty) = metric_type(metric) else {
        return ThresholdOutcome::invalid(format!("unknown metric `{metric}`"));
    };
    if !ty.accepts(expr.aggregation) {
        return ThresholdOutcome::invalid(format!(
            "`{}` does not apply to {metric} (a {} metric)",
            expr.aggregation,
            ty.as_str()
        ));
    }
    let value = match ty {
        MetricType::Trend => trend_value(metric, tags, expr.aggregation, metrics),
        MetricType::Rate => rate_value(metric, tags, metrics),
        MetricType::Counter => counter_value(metric, tags, expr.aggregation, metrics),
        MetricType::Gauge => None,
    };
    match value {
        None => ThresholdOutcome::no_data(),
        Some(v) => ThresholdOutcome {
            passed: expr.op.holds(v, expr.value),
            observed: format!("{}={}", expr.aggregation, format_number(v)),
            no_data: false,
            value: Some(v),
        },
    }
}

/// The value of `tag` for a series, if the series has that tag.
pub fn series_tag<'m>(metrics: &'m RunMetrics, key: &SeriesKey, tag: &str) -> Option<Cow<'m, str>> {
    let sc = metrics.scenarios.get(key.scenario as usize)?;
    match tag {
        "scenario" => Some(Cow::Borrowed(sc.name.as_str())),
        "name" => sc
            .requests
            .get(key.request as usize)
            .map(|s| Cow::Borrowed(s.as_str())),
        "method" => sc
            .methods
            .get(key.request as usize)
            .map(|s| Cow::Borrowed(s.as_str())),
        "status" => Some(Cow::Owned(key.status.to_string())),
        "error" => key.error.map(|e| Cow::Borrowed(e.as_str())),
        "expected_response" => Some(Cow::Borrowed(if key.error.is_none() {
            "true"
        } else {
            "false"
        })),
        other => sc.tags.get(other).map(|s| Cow::Borrowed(s.as_str())),
    }
}

/// Whether a series matches every tag of the filter.
pub fn series_matches(metrics: &RunMetrics, key: &SeriesKey, tags: &[(String, String)]) -> bool {
    tags.iter()
        .all(|(t, v)| series_tag(metrics, key, t).as_deref() == Some(v.as_str()))
}

/// Whether a scenario matches the filter using only scenario-level tags (`scenario` and its
/// custom tags); a filter on a per-request tag does not match.
fn scenario_matches(sc: &ScenarioInfo, tags: &[(String, String)]) -> bool {
    tags.iter().all(|(t, v)| match t.as_str() {
        "scenario" => &sc.name == v,
        "name" | "method" | "status" | "error" | "expected_response" => false,
        other => sc.tags.get(other) == Some(v),
    })
}

/// Tags that only exist per request; counters over scenarios ignore them when deciding
/// whether there is data at all.
fn scenario_level(tags: &[(String, String)]) -> Vec<(String, String)> {
    tags.iter()
        .filter(|(t, _)| {
            !matches!(
                t.as_str(),
                "name" | "method" | "status" | "error" | "expected_response"
            )
        })
        .cloned()
        .collect()
}

fn trend_value(
    metric: &str,
    tags: &[(String, String)],
    agg: Aggregation,
    metrics: &RunMetrics,
) -> Option<f64> {
    let stats = metrics.aggregate(|k| series_matches(metrics, k, tags));
    let h = if metric == "http_req_service_time" {
        &stats.service
    } else {
        &stats.duration
    };
    if h.is_empty() {
        return None;
    }
    let us = match agg {
        Aggregation::Avg => h.mean(),
        Aggregation::Min => h.min() as f64,
        Aggregation::Max => h.max() as f64,
        Aggregation::Med => h.value_at_quantile(0.5) as f64,
        Aggregation::Percentile(p) => h.value_at_percentile(p) as f64,
        _ => return None,
    };
    Some(us / 1000.0)
}

fn rate_value(metric: &str, tags: &[(String, String)], metrics: &RunMetrics) -> Option<f64> {
    let stats = metrics.aggregate(|k| series_matches(metrics, k, tags));
    let (num, den) = if metric == "checks" {
        (
            stats.checks_passed,
            stats.checks_passed + stats.checks_failed,
        )
    } else {
        (stats.failed, stats.requests)
    };
    (den > 0).then(|| num as f64 / den as f64)
}

fn counter_value(
    metric: &str,
    tags: &[(String, String)],
    agg: Aggregation,
    metrics: &RunMetrics,
) -> Option<f64> {
    let count = if metric == "dropped_iterations" {
        let matched: Vec<&ScenarioInfo> = metrics
            .scenarios
            .iter()
            .filter(|s| scenario_matches(s, tags))
            .collect();
        if matched.is_empty() {
            return None;
        }
        matched.iter().map(|s| s.dropped).sum::<u64>()
    } else {
        // Data exists when the scenario-level part of the filter selects requests at all.
        let population = scenario_level(tags);
        let sent: u64 = metrics
            .series
            .iter()
            .filter(|(k, _)| series_matches(metrics, k, &population))
            .map(|(_, s)| s.requests)
            .sum();
        if sent == 0 {
            return None;
        }
        metrics
            .series
            .iter()
            .filter(|(k, _)| series_matches(metrics, k, tags))
            .map(|(_, s)| s.requests)
            .sum::<u64>()
    };
    match agg {
        Aggregation::Count => Some(count as f64),
        Aggregation::Rate => {
            let secs = metrics.elapsed.as_secs_f64();
            (secs > 0.0).then(|| count as f64 / secs)
        }
        _ => None,
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

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
//! - `checks` (rate): response checks passed / (passed + failed). With a `check:NAME` tag
//!   (the check as written, e.g. `checks{check:status == 201}`) only that check counts, from
//!   the per-check counts; a flow step's `until: ...` and `extract NAME: ...` results are
//!   counted there too (and only there).
//! - `iteration_duration` (trend, ms): one iteration, from its intended start to the end
//!   of its last step (think time included); recorded for flows. Only source-level tags
//!   (`scenario`, custom tags) filter it.
//! - `step:NAME`: the tag of a flow step's samples (its name, as `name:` also is).
//! - `http_reqs` (counter): `count` = requests; `rate` = requests per second of
//!   [`RunMetrics::elapsed`].
//! - `dropped_iterations` (counter): from [`crate::metrics::ScenarioInfo::dropped`]; only
//!   scenario-level tags (`scenario` and custom tags) can match it.
//!
//! Probes' series are kept apart: a filter matches them only when it names the probe
//! (`http_req_duration{probe:login}`); without a `probe` tag only scenarios' series match.
//!
//! **Too few samples fails.** Under its `min_samples` (default 1) a threshold fails with
//! `too few samples (N < M)`; with no sample at all, `no data`.
//!
//! **No data fails.** A trend or rate with no samples under the filter fails with observed
//! `no data` (k6 passes it silently, which hides typos in tag filters and scenarios that never
//! ran). Counters have data when the filter's scenario-level part selects at least one
//! scenario that sent requests (`http_reqs`) or existed (`dropped_iterations`), so
//! `http_reqs{status:500}: count<1` passes on a healthy run instead of failing for lack of
//! 500s; a filter naming no scenario of the run (`{scenario:typo}`) is still "no data".
use std::borrow::Cow;

use crate::grammar::threshold::{metric_type, Aggregation, MetricType, ThresholdExpr};
use crate::metrics::{format_number, RunMetrics, ScenarioInfo, SeriesKey, SourceKind};
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
    /// Samples behind the value (trend: values; rate: its denominator; counter: requests of
    /// the filter's scenarios).
    pub samples: u64,
}

impl ThresholdOutcome {
    pub(crate) fn no_data() -> ThresholdOutcome {
        ThresholdOutcome {
            passed: false,
            observed: "no data".into(),
            no_data: true,
            value: None,
            samples: 0,
        }
    }
    fn invalid(msg: String) -> ThresholdOutcome {
        ThresholdOutcome {
            passed: false,
            observed: msg,
            no_data: false,
            value: None,
            samples: 0,
        }
    }

    /// Judge an aggregated `value` from `samples` samples against `expr`, failing when there
    /// are fewer samples than `min_samples` ("no data" when there are none).
    pub fn judge(expr: &ThresholdExpr, value: Option<f64>, samples: u64, min_samples: u64) -> Self {
        let Some(v) = value.filter(|_| samples > 0) else {
            return ThresholdOutcome::no_data();
        };
        let observed = format!("{}={}", expr.aggregation, format_number(v));
        if samples < min_samples.max(1) {
            return ThresholdOutcome {
                passed: false,
                observed: format!("{observed}, too few samples ({samples} < {min_samples})"),
                no_data: true,
                value: Some(v),
                samples,
            };
        }
        ThresholdOutcome {
            passed: expr.op.holds(v, expr.value),
            observed,
            no_data: false,
            value: Some(v),
            samples,
        }
    }
}

/// Judge `spec` against the run's metrics (its whole-run value; a windowed spec is judged by
/// [`crate::checks::window`]).
pub fn evaluate(spec: &ThresholdSpec, metrics: &RunMetrics) -> ThresholdOutcome {
    evaluate_expr(
        &spec.metric,
        &spec.tags,
        &spec.expr,
        metrics,
        spec.min_samples,
    )
}

/// Judge an expression over `metric` filtered by `tags` over the whole run (used by
/// [`evaluate`], by probes' SLOs, and by drills that judge ad-hoc expressions such as the
/// capacity search).
pub fn evaluate_expr(
    metric: &str,
    tags: &[(String, String)],
    expr: &ThresholdExpr,
    metrics: &RunMetrics,
    min_samples: u64,
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
        Some((v, samples)) => ThresholdOutcome::judge(expr, Some(v), samples, min_samples),
    }
}

/// The value of `tag` for a series, if the series has that tag.
pub fn series_tag<'m>(metrics: &'m RunMetrics, key: &SeriesKey, tag: &str) -> Option<Cow<'m, str>> {
    source_tag(&metrics.scenarios, key, tag)
}

/// The value of `tag` for a series of the sources `infos` (indexed like
/// `SeriesKey::scenario`), if the series has that tag.
pub fn source_tag<'m>(
    infos: &'m [ScenarioInfo],
    key: &SeriesKey,
    tag: &str,
) -> Option<Cow<'m, str>> {
    let sc = infos.get(key.scenario as usize)?;
    match tag {
        "scenario" => (sc.kind == SourceKind::Scenario).then_some(Cow::Borrowed(sc.name.as_str())),
        "probe" => (sc.kind == SourceKind::Probe).then_some(Cow::Borrowed(sc.name.as_str())),
        "name" => sc
            .requests
            .get(key.request as usize)
            .map(|s| Cow::Borrowed(s.as_str())),
        "step" if sc.flow => sc
            .requests
            .get(key.request as usize)
            .map(|s| Cow::Borrowed(s.as_str())),
        "step" | "check" => None,
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

/// Whether a series matches every tag of the filter (a probe's series only when the filter
/// names the probe).
pub fn series_matches(metrics: &RunMetrics, key: &SeriesKey, tags: &[(String, String)]) -> bool {
    source_matches(&metrics.scenarios, key, tags)
}

/// [`series_matches`] over the sources `infos`.
pub fn source_matches(infos: &[ScenarioInfo], key: &SeriesKey, tags: &[(String, String)]) -> bool {
    let Some(info) = infos.get(key.scenario as usize) else {
        return false;
    };
    if info.kind == SourceKind::Probe && !tags.iter().any(|(t, _)| t == "probe") {
        return false;
    }
    tags.iter()
        .all(|(t, v)| source_tag(infos, key, t).as_deref() == Some(v.as_str()))
}

/// Whether a source matches the filter using only source-level tags (`scenario`, `probe`
/// and custom tags); a filter on a per-request tag does not match.
pub fn scenario_matches(sc: &ScenarioInfo, tags: &[(String, String)]) -> bool {
    if sc.kind == SourceKind::Probe && !tags.iter().any(|(t, _)| t == "probe") {
        return false;
    }
    tags.iter().all(|(t, v)| match t.as_str() {
        "scenario" => sc.kind == SourceKind::Scenario && &sc.name == v,
        "probe" => sc.kind == SourceKind::Probe && &sc.name == v,
        "name" | "step" | "check" | "method" | "status" | "error" | "expected_response" => false,
        other => sc.tags.get(other) == Some(v),
    })
}

/// Tags that only exist per request; counters over scenarios ignore them when deciding
/// whether there is data at all.
pub fn scenario_level(tags: &[(String, String)]) -> Vec<(String, String)> {
    tags.iter()
        .filter(|(t, _)| {
            !matches!(
                t.as_str(),
                "name" | "step" | "check" | "method" | "status" | "error" | "expected_response"
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
) -> Option<(f64, u64)> {
    if metric == "iteration_duration" {
        let mut stats = crate::metrics::SeriesStats::default();
        for (i, info) in metrics.scenarios.iter().enumerate() {
            if scenario_matches(info, tags) {
                if let Some(h) = metrics.iterations.get(i) {
                    stats
                        .duration
                        .add(h)
                        .expect("auto-resizing histograms merge");
                }
            }
        }
        return trend_of(metric, agg, &stats);
    }
    let stats = metrics.aggregate(|k| series_matches(metrics, k, tags));
    trend_of(metric, agg, &stats)
}

/// `checks` under a filter with a `check:` tag: the passes and fails of the checks of that
/// name, from [`RunMetrics::check_counts`], under the rest of the filter (the source's tags,
/// and the request's `name`, `step` and `method`; a per-response tag such as `status`
/// matches nothing). Returns (passed, passed + failed).
pub fn check_counts_under(tags: &[(String, String)], metrics: &RunMetrics) -> (u64, u64) {
    let source_tags = scenario_level(tags);
    let (mut passed, mut total) = (0u64, 0u64);
    for (si, info) in metrics.scenarios.iter().enumerate() {
        if !scenario_matches(info, &source_tags) {
            continue;
        }
        for (ri, names) in info.checks.iter().enumerate() {
            for (ci, name) in names.iter().enumerate() {
                let matches = tags.iter().all(|(t, v)| match t.as_str() {
                    "check" => name == v,
                    "name" => info.requests.get(ri) == Some(v),
                    "step" => info.flow && info.requests.get(ri) == Some(v),
                    "method" => info
                        .methods
                        .get(ri)
                        .is_some_and(|m| m.eq_ignore_ascii_case(v)),
                    "status" | "error" | "expected_response" => false,
                    _ => true, // source-level: matched above
                });
                if matches {
                    let [p, f] = metrics.check_counts.get(si, ri, ci);
                    passed += p;
                    total += p + f;
                }
            }
        }
    }
    (passed, total)
}

/// A trend aggregation of merged stats (ms), with its sample count.
pub fn trend_of(
    metric: &str,
    agg: Aggregation,
    stats: &crate::metrics::SeriesStats,
) -> Option<(f64, u64)> {
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
    Some((us / 1000.0, h.len()))
}

fn rate_value(metric: &str, tags: &[(String, String)], metrics: &RunMetrics) -> Option<(f64, u64)> {
    if metric == "checks" && tags.iter().any(|(t, _)| t == "check") {
        let (passed, total) = check_counts_under(tags, metrics);
        return (total > 0).then(|| (passed as f64 / total as f64, total));
    }
    let stats = metrics.aggregate(|k| series_matches(metrics, k, tags));
    rate_of(metric, &stats)
}

/// A rate metric's value of merged stats, with its denominator.
pub fn rate_of(metric: &str, stats: &crate::metrics::SeriesStats) -> Option<(f64, u64)> {
    let (num, den) = if metric == "checks" {
        (
            stats.checks_passed,
            stats.checks_passed + stats.checks_failed,
        )
    } else {
        (stats.failed, stats.requests)
    };
    (den > 0).then(|| (num as f64 / den as f64, den))
}

fn counter_value(
    metric: &str,
    tags: &[(String, String)],
    agg: Aggregation,
    metrics: &RunMetrics,
) -> Option<(f64, u64)> {
    let (count, samples) = if metric == "dropped_iterations" {
        let matched: Vec<&ScenarioInfo> = metrics
            .scenarios
            .iter()
            .filter(|s| scenario_matches(s, tags))
            .collect();
        if matched.is_empty() {
            return None;
        }
        // No per-sample population: any matching scenario is data enough.
        (matched.iter().map(|s| s.dropped).sum::<u64>(), u64::MAX)
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
        let count = metrics
            .series
            .iter()
            .filter(|(k, _)| series_matches(metrics, k, tags))
            .map(|(_, s)| s.requests)
            .sum::<u64>();
        (count, sent)
    };
    match agg {
        Aggregation::Count => Some((count as f64, samples)),
        Aggregation::Rate => {
            let secs = metrics.elapsed.as_secs_f64();
            (secs > 0.0).then(|| (count as f64 / secs, samples))
        }
        _ => None,
    }
}

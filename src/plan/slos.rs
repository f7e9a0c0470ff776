//! Checks and lowering of `slos:`: the objective, the metric (availability from
//! `http_req_failed`, latency from a trend metric with `good:`), and the burn-rate window
//! pairs (the SRE workbook's scaled to the run when none are given; see
//! [`crate::spec::slo`]).
use std::time::Duration;

use crate::grammar::threshold;
use crate::spec::{BurnWindow, Severity, Sli, SloSpec};

use super::common::Names;
use super::model::Slo;
use super::problem::Issues;
use super::tree::PathSeg;

fn at(base: &[PathSeg], field: &str) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.push(PathSeg::Key(field.to_string()));
    p
}

pub(crate) fn slo(
    name: &str,
    s: &Slo,
    names: &Names<'_>,
    planned: Duration,
    issues: &mut Issues,
) -> Option<SloSpec> {
    let base = path!["slos", name];
    let before = issues.0.len();
    let objective = match s.objective {
        None => {
            issues.at(
                at(&base, "objective"),
                "required: the good share, e.g. `objective: 99.9%`",
            );
            None
        }
        Some(o) => {
            let f = o.fraction();
            if f.is_finite() && f > 0.0 && f < 1.0 {
                Some(f)
            } else {
                issues.at(
                    at(&base, "objective"),
                    format!(
                        "must be between 0% and 100% (exclusive), e.g. 99.9% or 0.999; got {}",
                        match o {
                            super::model::Objective::Fraction(v) => v.to_string(),
                            super::model::Objective::Percent(p) => format!("{}%", p.0),
                        }
                    ),
                );
                None
            }
        }
    };
    let metric_at = at(&base, "metric");
    let parsed = match &s.metric {
        None => {
            issues.at(&metric_at, "required: `http_req_failed` (availability) or a latency metric such as `http_req_duration{scenario:chat}` with `good: \"<300\"`");
            None
        }
        Some(key) => match threshold::metric_key(key) {
            Ok((metric, tags)) => {
                names.check_tags(&tags, &metric_at, issues);
                Some((key.clone(), metric, tags))
            }
            Err(e) => {
                issues.at(&metric_at, e.to_string());
                None
            }
        },
    };
    let sli = parsed.as_ref().and_then(|(_, metric, _)| match (metric.as_str(), &s.good) {
        ("http_req_failed", None) => Some(Sli::Availability),
        ("http_req_failed", Some(_)) => {
            issues.at(at(&base, "good"), "an availability SLO counts requests that did not fail: drop `good:` (it is for latency SLOs)");
            None
        }
        ("http_req_duration" | "http_req_service_time", Some(g)) => latency(g, &at(&base, "good"), issues),
        ("http_req_duration" | "http_req_service_time", None) => {
            issues.at(at(&base, "good"), "required for a latency SLO: the latency of a good request in ms, e.g. `good: \"<300\"`");
            None
        }
        (other, _) => {
            issues.at(&metric_at, format!("an SLO counts good and bad requests: use http_req_failed or http_req_duration / http_req_service_time, not {other}"));
            None
        }
    });
    let burn = match &s.burn {
        None => BurnWindow::workbook_scaled(planned),
        Some(list) => {
            if list.is_empty() {
                issues.at(at(&base, "burn"), "needs at least one window pair, or leave `burn:` out for the workbook's pairs scaled to the run");
            }
            let mut out = Vec::new();
            for (i, b) in list.iter().enumerate() {
                let p = [at(&base, "burn"), vec![PathSeg::Index(i)]].concat();
                let whole = |d: Option<crate::grammar::units::Duration>,
                             field: &str,
                             issues: &mut Issues| match d {
                    None => {
                        issues.at(
                            at(&p, field),
                            format!(
                                "required: the {field} window, e.g. `{field}: {}`",
                                if field == "long" { "60s" } else { "5s" }
                            ),
                        );
                        None
                    }
                    Some(d) if d.0 < Duration::from_secs(1) || d.0.subsec_nanos() != 0 => {
                        issues.at(
                            at(&p, field),
                            format!("must be a whole number of seconds, at least 1s (got {d})"),
                        );
                        None
                    }
                    Some(d) => Some(d.0),
                };
                let long = whole(b.long, "long", issues);
                let short = whole(b.short, "short", issues);
                if let (Some(l), Some(sh)) = (long, short) {
                    if sh > l {
                        issues.at(
                            at(&p, "short"),
                            "the short window must not be longer than the long one",
                        );
                    }
                }
                let factor = match b.factor {
                    Some(f) if f.is_finite() && f > 0.0 => Some(f),
                    Some(f) => {
                        issues.at(
                            at(&p, "factor"),
                            format!("must be a positive burn rate, e.g. 14.4 (got {f})"),
                        );
                        None
                    }
                    None => {
                        issues.at(
                            at(&p, "factor"),
                            "required: the burn rate both windows must exceed, e.g. `factor: 14.4`",
                        );
                        None
                    }
                };
                if let (Some(long), Some(short), Some(factor)) = (long, short, factor) {
                    out.push(BurnWindow {
                        long,
                        short,
                        factor,
                        severity: b.severity.unwrap_or(Severity::Page),
                        scaled_from: None,
                    });
                }
            }
            out
        }
    };
    let min_samples = s.min_samples.unwrap_or(1);
    if min_samples == 0 {
        issues.at(
            at(&base, "min_samples"),
            "must be at least 1 (no data is never a pass)",
        );
    }
    let runbook = super::common::runbook(s.runbook.as_ref(), at(&base, "runbook"), issues);
    if issues.0.len() != before {
        return None;
    }
    let (key, metric, tags) = parsed?;
    Some(SloSpec {
        name: name.to_string(),
        description: s.description.clone(),
        objective: objective?,
        metric,
        tags,
        key,
        sli: sli?,
        burn,
        min_samples,
        runbook,
    })
}

/// `<300`, `<=300`, `<300ms`, `<0.3s`.
fn latency(text: &str, path: &[PathSeg], issues: &mut Issues) -> Option<Sli> {
    let t = text.trim();
    let (inclusive, rest) = if let Some(r) = t.strip_prefix("<=") {
        (true, r)
    } else if let Some(r) = t.strip_prefix('<') {
        (false, r)
    } else {
        issues.at(
            path,
            format!("expected `<MS` or `<=MS`, e.g. \"<300\", got {text:?}"),
        );
        return None;
    };
    let rest = rest.trim();
    let ms = if let Ok(v) = rest.parse::<f64>() {
        Some(v)
    } else {
        crate::grammar::units::parse_duration(rest)
            .ok()
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    match ms {
        Some(v) if v.is_finite() && v > 0.0 => Some(Sli::Latency {
            threshold_ms: v,
            inclusive,
        }),
        _ => {
            issues.at(path, format!("expected a positive latency in ms after `<`, e.g. \"<300\" or \"<300ms\", got {text:?}"));
            None
        }
    }
}

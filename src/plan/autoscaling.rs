//! Checks and lowering of `autoscaling:` (see [`crate::spec::autoscale`]). A rule's inline
//! `scrape:` becomes a scraper of its own, named `autoscaling.NAME`, keeping only the series
//! the rule reads.
use std::time::Duration;

use crate::spec::{AutoscaleExpect, AutoscaleSpec, ScaleDirection, ScrapeSpec};

use super::model::{AutoscaleRule, ReplicasDef, ScaleDirectionDef, ScrapeRef};
use super::problem::Issues;
use super::scrapes;
use super::tree::PathSeg;

/// The HPA's tolerance.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// The HPA's scale-down stabilization window.
pub const DEFAULT_STABILIZATION: Duration = Duration::from_secs(300);

fn at(base: &[PathSeg], field: &str) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.push(PathSeg::Key(field.to_string()));
    p
}

/// The bare metric name of a series selector (`name{...}` → `name`).
fn metric_name(series: &str) -> &str {
    series.split('{').next().unwrap_or(series).trim()
}

/// Lower rule `name`; an inline scraper is appended to `scrapes`.
pub(crate) fn rule(
    name: &str,
    r: &AutoscaleRule,
    target: &str,
    scrapes: &mut Vec<ScrapeSpec>,
    issues: &mut Issues,
) -> Option<AutoscaleSpec> {
    let base = path!["autoscaling", name];
    let before = issues.0.len();
    let mut series_name = |field: &str, v: Option<&String>, example: &str| -> Option<String> {
        match v.map(|s| s.trim()) {
            Some(s) if !s.is_empty() && !metric_name(s).is_empty() => Some(s.to_string()),
            Some(_) => {
                issues.at(at(&base, field), format!("a series name, e.g. `{example}`"));
                None
            }
            None => {
                issues.at_key(
                    &base,
                    format!("`{field}:` is required, e.g. `{field}: {example}`"),
                );
                None
            }
        }
    };
    let metric = series_name("metric", r.metric.as_ref(), "gateway_queue_depth");
    let (current, desired) = match &r.replicas {
        None => {
            issues.at_key(
                &base,
                "`replicas:` is required, e.g. `replicas: { current: gateway_workers_current, desired: gateway_workers_desired }`",
            );
            (None, None)
        }
        Some(ReplicasDef::Current(c)) => (
            series_name("replicas", Some(c), "gateway_workers_current"),
            None,
        ),
        Some(ReplicasDef::Both(b)) => {
            let rb = at(&base, "replicas");
            let cur = match b.current.as_deref().map(str::trim) {
                Some(c) if !c.is_empty() => Some(c.to_string()),
                _ => {
                    issues.at_key(
                        &rb,
                        "`current:` is required: the series of the replicas running now, e.g. `gateway_workers_current`",
                    );
                    None
                }
            };
            let des = match b.desired.as_deref().map(str::trim) {
                Some("") => {
                    issues.at(
                        at(&rb, "desired"),
                        "a series name, e.g. `gateway_workers_desired`",
                    );
                    None
                }
                d => d.map(str::to_string),
            };
            (cur, des)
        }
    };
    let target_per_replica = match r.target_per_replica {
        Some(t) if t.is_finite() && t > 0.0 => Some(t),
        Some(_) => {
            issues.at(
                at(&base, "target_per_replica"),
                "must be a positive number: the metric's value per replica the autoscaler aims at, e.g. 5",
            );
            None
        }
        None => {
            issues.at_key(
                &base,
                "`target_per_replica:` is required, e.g. `target_per_replica: 5`",
            );
            None
        }
    };
    let min = r.min.unwrap_or(1);
    let max = match r.max {
        Some(m) if m >= min && m > 0 => Some(m),
        Some(_) => {
            issues.at(
                at(&base, "max"),
                format!("must be at least `min` ({min}) and 1"),
            );
            None
        }
        None => {
            issues.at_key(
                &base,
                "`max:` is required: the most replicas the system may run",
            );
            None
        }
    };
    let tolerance = match r.tolerance {
        Some(t) if (0.0..1.0).contains(&t) => t,
        Some(_) => {
            issues.at(
                at(&base, "tolerance"),
                "must be a fraction in [0, 1), e.g. 0.1 (the HPA's default)",
            );
            DEFAULT_TOLERANCE
        }
        None => DEFAULT_TOLERANCE,
    };
    let stabilization = r.stabilization.map_or(DEFAULT_STABILIZATION, |d| d.0);
    let expect = match &r.expect {
        None => {
            issues.at_key(
                &base,
                "`expect:` is required, e.g. `expect: { decision_within: 10s, ready_within: 30s }`",
            );
            None
        }
        Some(e) => {
            let eb = at(&base, "expect");
            if e.decision_within.is_none() && e.ready_within.is_none() {
                issues.at_key(
                    &eb,
                    "give `decision_within:` and/or `ready_within:` (how fast the replicas must follow the recommendation)",
                );
            }
            if e.decision_within.is_some() && r.replicas.is_some() && desired.is_none() {
                issues.at(
                    at(&eb, "decision_within"),
                    "needs the desired replicas' series: `replicas: { current: ..., desired: ... }`",
                );
            }
            for (field, d) in [
                ("decision_within", e.decision_within),
                ("ready_within", e.ready_within),
            ] {
                if d.is_some_and(|d| d.0.is_zero()) {
                    issues.at(at(&eb, field), "must be longer than 0s");
                }
            }
            let mut directions = Vec::new();
            for d in e.directions.iter().flatten() {
                let d = match d {
                    ScaleDirectionDef::Out => ScaleDirection::Out,
                    ScaleDirectionDef::In => ScaleDirection::In,
                };
                if !directions.contains(&d) {
                    directions.push(d);
                }
            }
            Some(AutoscaleExpect {
                decision_within: e.decision_within.map(|d| d.0),
                ready_within: e.ready_within.map(|d| d.0),
                no_flapping: e.no_flapping.unwrap_or(false),
                directions,
            })
        }
    };
    let scrape = match &r.scrape {
        None => {
            issues.at_key(
                &base,
                "`scrape:` is required: a `scrapes:` entry's name or `{ url: ${TARGET_URL}/metrics }`",
            );
            None
        }
        Some(ScrapeRef::Named(n)) => {
            if let Some(sc) = scrapes.iter().find(|s| s.name == *n) {
                // The scraper must keep the series the rule reads.
                let dropped: Vec<&str> = [&metric, &current, &desired]
                    .into_iter()
                    .flatten()
                    .map(|x| metric_name(x))
                    .filter(|m| !sc.series.is_empty() && !sc.series.iter().any(|k| k == m))
                    .collect();
                if !dropped.is_empty() {
                    issues.at(
                        at(&base, "scrape"),
                        format!(
                            "scraper `{n}` keeps only {:?}: add {} to its `series:`",
                            sc.series,
                            dropped.join(", ")
                        ),
                    );
                }
                Some(n.clone())
            } else {
                let known: Vec<&str> = scrapes.iter().map(|s| s.name.as_str()).collect();
                issues.at(
                    at(&base, "scrape"),
                    if known.is_empty() {
                        format!("no scraper `{n}`: add it under `scrapes:` or write `scrape: {{ url: ${{TARGET_URL}}/metrics }}`")
                    } else {
                        format!("no scraper `{n}` (known: {})", known.join(", "))
                    },
                );
                None
            }
        }
        Some(ScrapeRef::Inline(s)) => {
            let sname = format!("autoscaling.{name}");
            let mut inline = s.clone();
            if inline.series.is_none() {
                let mut keep: Vec<String> = [&metric, &current, &desired]
                    .into_iter()
                    .flatten()
                    .map(|x| metric_name(x).to_string())
                    .collect();
                keep.dedup();
                inline.series = Some(keep);
            }
            scrapes::scrape_at(at(&base, "scrape"), &sname, &inline, target, issues).map(|spec| {
                scrapes.push(spec);
                sname
            })
        }
    };
    if issues.0.len() > before {
        return None;
    }
    Some(AutoscaleSpec {
        name: name.to_string(),
        scrape: scrape?,
        metric: metric?,
        target_per_replica: target_per_replica?,
        current: current?,
        desired,
        min,
        max: max?,
        tolerance,
        stabilization,
        expect: expect?,
    })
}

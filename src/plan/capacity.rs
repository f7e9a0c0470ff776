//! Checks and lowering of `capacity:` (see [`crate::spec::capacity`] for what it means and
//! [`crate::drills::capacity`] for the search). `loadgate run` ignores the section; it is
//! validated all the same, so `loadgate validate` reports its problems.
use crate::spec::capacity::CapacitySpec;

use super::model::Capacity;
use super::problem::Issues;
use super::tree::PathSeg;

fn at(field: &str) -> Vec<PathSeg> {
    vec![
        PathSeg::Key("capacity".into()),
        PathSeg::Key(field.to_string()),
    ]
}

/// The section, lowered: `None` when it is absent or has a problem (then reported).
/// `scenarios`: the plan's scenario names.
pub(crate) fn capacity(
    c: &Capacity,
    scenarios: &[String],
    issues: &mut Issues,
) -> Option<CapacitySpec> {
    let before = issues.0.len();
    let scenario = match &c.scenario {
        Some(s) if scenarios.contains(s) => s.clone(),
        Some(s) => {
            let near = scenarios
                .iter()
                .map(|k| (strsim::levenshtein(s, k), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            issues.at(
                at("scenario"),
                format!(
                    "no scenario named {s:?}{near}; the plan's scenarios: {}",
                    scenarios.join(", ")
                ),
            );
            String::new()
        }
        None if scenarios.len() == 1 => scenarios[0].clone(),
        None => {
            if !scenarios.is_empty() {
                issues.at(
                    at("scenario"),
                    format!(
                        "required when the plan has several scenarios: the one whose rate is searched, one of {} (or pass --scenario NAME)",
                        scenarios.join(", ")
                    ),
                );
            }
            String::new()
        }
    };
    let mut spec = CapacitySpec::new(&scenario);
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if let Some(e) = c.expected {
        if positive(e.per_second) {
            spec.expected = Some(e.per_second);
        } else {
            issues.at(at("expected"), "must be a positive rate, e.g. 150/s");
        }
    }
    if let Some(h) = c.headroom {
        if h.is_finite() && h >= 1.0 {
            spec.headroom = h;
        } else {
            issues.at(
                at("headroom"),
                format!("must be a factor of at least 1 (2 for the 2x-expected rule), got {h}"),
            );
        }
    }
    if let Some(p) = c.precision {
        let f = p.fraction();
        if f.is_finite() && f > 0.0 && f <= 0.5 {
            spec.precision = f;
        } else {
            issues.at(
                at("precision"),
                "must be a share above 0% and at most 50%, e.g. `precision: 5%`",
            );
        }
    }
    if let Some(m) = c.min {
        if positive(m.per_second) {
            spec.min = m.per_second;
        } else {
            issues.at(at("min"), "must be a positive rate, e.g. 10/s");
        }
    }
    if let Some(m) = c.max {
        if positive(m.per_second) {
            spec.max = m.per_second;
        } else {
            issues.at(at("max"), "must be a positive rate, e.g. 5000/s");
        }
    }
    if spec.max <= spec.min {
        issues.at(
            at("max"),
            format!(
                "must be above `min` ({}/s): the search doubles from min up to max",
                crate::metrics::format_number(spec.min)
            ),
        );
    }
    if let Some(w) = c.warmup {
        spec.warmup = w.0;
    }
    if let Some(s) = c.step {
        if s.0.as_secs_f64() >= 1.0 {
            spec.step = s.0;
        } else {
            issues.at(
                at("step"),
                "must be at least 1s: a step is judged on whole seconds of the run clock",
            );
        }
    }
    if let Some(d) = c.cooldown {
        spec.cooldown = d.0;
    }
    match c.repeats {
        Some(0) => issues.at(at("repeats"), "must be at least 1"),
        Some(n) => spec.repeats = n,
        None => {}
    }
    match c.max_steps {
        Some(n) if n < 2 => issues.at(at("max_steps"), "must be at least 2"),
        Some(n) => spec.max_steps = n,
        None => {}
    }
    match c.max_vus {
        Some(0) => issues.at(
            at("max_vus"),
            "must be at least 1 (omit it for the default)",
        ),
        Some(n) => spec.max_vus = Some(n),
        None => {}
    }
    spec.runbook = super::common::runbook(c.runbook.as_ref(), at("runbook"), issues);
    (issues.0.len() == before && !scenario.is_empty()).then_some(spec)
}

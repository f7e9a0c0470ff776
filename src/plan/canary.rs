//! Checks and lowering of `canary:` and `blue_green:` (see [`crate::spec::canary`] for what it means and
//! [`crate::checks::canary`] for the judgement).
//!
//! Defaults, chosen so that a step holds enough samples for the judgement and a plan states
//! only what differs: steps `[5, 25, 50, 100]`, `step_duration: 15s`, `min_samples: 200`,
//! latency compared with Mann-Whitney at confidence 0.98 (Kayenta's judge) and an allowed
//! increase of 10%, an error-rate ceiling of 1%, `on_no_data: wait` up to two step durations,
//! `on_inconclusive: extend`.
use std::collections::BTreeSet;
use std::time::Duration;

use crate::grammar::extract::Extractor;
use crate::spec::{
    ApplyWeight, BlueGreenSpec, CanarySpec, Expect, HeaderSplit, LatencyCompare, OnInconclusive,
    OnNoData, Split, TargetSplit, ValueCompare,
};

use super::model::{self, BlueGreen, Canary, Objective};
use super::problem::Issues;
use super::tree::PathSeg;

pub const DEFAULT_STEPS: [u32; 4] = [5, 25, 50, 100];
pub const DEFAULT_STEP: Duration = Duration::from_secs(15);
pub const DEFAULT_MIN_SAMPLES: u64 = 200;
pub const DEFAULT_CONFIDENCE: f64 = 0.98;
pub const DEFAULT_MAX_INCREASE: f64 = 0.10;
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;

fn at(fields: &[&str]) -> Vec<PathSeg> {
    at_in("canary", fields)
}

fn at_in(section: &str, fields: &[&str]) -> Vec<PathSeg> {
    let mut p = vec![PathSeg::Key(section.into())];
    p.extend(fields.iter().map(|f| PathSeg::Key(f.to_string())));
    p
}

fn fraction(o: Objective) -> f64 {
    o.fraction()
}

pub(crate) fn canary(
    c: &Canary,
    target: &str,
    scenario_names: &BTreeSet<String>,
    issues: &mut Issues,
) -> Option<CanarySpec> {
    let before = issues.0.len();
    let split = match &c.split {
        None => {
            issues.at(at(&["split"]), "required: how baseline and canary responses are told apart, e.g. `split: { header: x-model-version, baseline: v1, canary: v2 }` or `split: { targets: { baseline: URL, canary: URL } }`");
            None
        }
        Some(s) if s.targets.is_some() => {
            let t = s.targets.as_ref().expect("checked");
            if s.header.is_some() || s.baseline.is_some() || s.canary.is_some() {
                issues.at(
                    at(&["split", "targets"]),
                    "give either `targets` or `header` with `baseline` and `canary`, not both",
                );
            }
            let mut url = |v: &Option<String>, name: &str, example: &str| match v {
                Some(u)
                    if u.starts_with("http://")
                        || u.starts_with("https://")
                        || u.starts_with("${") =>
                {
                    Some(u.trim().trim_end_matches('/').to_string())
                }
                _ => {
                    issues.at(
                        at(&["split", "targets", name]),
                        format!("required: an absolute http(s) base URL, e.g. `{name}: {example}` (got {v:?})"),
                    );
                    None
                }
            };
            let baseline = url(&t.baseline, "baseline", "http://127.0.0.1:8081");
            let canary = url(&t.canary, "canary", "http://127.0.0.1:8082");
            if baseline.is_some() && baseline == canary {
                issues.at(
                    at(&["split", "targets", "canary"]),
                    "must differ from `baseline` (each request goes to one or the other)",
                );
            }
            if c.apply.is_some() {
                issues.at(
                    at(&["apply"]),
                    "not with `split.targets`: loadgate applies each step's weight itself; leave `apply` out",
                );
            }
            match (baseline, canary) {
                (Some(baseline), Some(canary)) => {
                    Some(Split::Targets(TargetSplit { baseline, canary }))
                }
                _ => None,
            }
        }
        Some(s) => {
            let mut field = |v: &Option<String>, name: &str, example: &str| match v {
                Some(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                _ => {
                    issues.at(
                        at(&["split", name]),
                        format!("required: a non-empty value, e.g. `{name}: {example}` (or `targets: {{ baseline: URL, canary: URL }}`)"),
                    );
                    None
                }
            };
            let header = field(&s.header, "header", "x-model-version");
            let baseline = field(&s.baseline, "baseline", "v1");
            let canary = field(&s.canary, "canary", "v2");
            if let Some(h) = &header {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    issues.at(
                        at(&["split", "header"]),
                        format!("{h:?} is not a header name (letters, digits and `-`)"),
                    );
                }
            }
            if let (Some(b), Some(cn)) = (&baseline, &canary) {
                if b == cn {
                    issues.at(
                        at(&["split", "canary"]),
                        "must differ from `baseline` (a response is one or the other)",
                    );
                }
            }
            match (header, baseline, canary) {
                (Some(header), Some(baseline), Some(canary)) => Some(Split::Header(HeaderSplit {
                    header: header.to_ascii_lowercase(),
                    baseline,
                    canary,
                })),
                _ => None,
            }
        }
    };
    let by_targets = matches!(split, Some(Split::Targets(_)));
    let scenarios = c.scenarios.clone().unwrap_or_default();
    check_scenarios(&scenarios, "canary", scenario_names, issues);
    let steps = c.steps.clone().unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    if steps.is_empty() {
        issues.at(
            at(&["steps"]),
            "needs at least one weight, e.g. `steps: [5, 25, 50, 100]`",
        );
    }
    for (i, w) in steps.iter().enumerate() {
        let p = [at(&["steps"]), vec![PathSeg::Index(i)]].concat();
        if !(1..=100).contains(w) {
            issues.at(
                p,
                format!("a weight is a percentage of traffic, 1-100 (got {w})"),
            );
        } else if i > 0 && *w <= steps[i - 1] {
            issues.at(
                p,
                format!(
                    "weights must rise step by step ({w} follows {})",
                    steps[i - 1]
                ),
            );
        } else if *w == 100 && i + 1 != steps.len() {
            issues.at(p, "100 is the promotion: it must be the last step");
        }
    }
    let positive = |d: Option<crate::grammar::units::Duration>,
                    field: &str,
                    default: Duration,
                    issues: &mut Issues| match d {
        None => default,
        Some(d) if d.0 < Duration::from_secs(1) => {
            issues.at(at(&[field]), format!("must be at least 1s (got {d})"));
            default
        }
        Some(d) => d.0,
    };
    let step_duration = positive(c.step_duration, "step_duration", DEFAULT_STEP, issues);
    let max_wait = match c.max_wait {
        None => step_duration * 2,
        Some(d) => d.0,
    };
    let start_after = c.start_after.map(|d| d.0).unwrap_or_default();
    let min_samples = c.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES);
    if min_samples == 0 {
        issues.at(
            at(&["min_samples"]),
            "must be at least 1 (a step with no samples is never a pass)",
        );
    }

    let values = c
        .compare
        .as_ref()
        .and_then(|cmp| cmp.values.as_ref())
        .map(|v| values(v, issues))
        .unwrap_or_default();
    let (latency, max_error_rate) = match &c.compare {
        None => (
            Some(LatencyCompare {
                confidence: DEFAULT_CONFIDENCE,
                max_increase: DEFAULT_MAX_INCREASE,
            }),
            Some(DEFAULT_MAX_ERROR_RATE),
        ),
        Some(cmp) => {
            if cmp.latency.is_none() && cmp.error_rate.is_none() && cmp.values.is_none() {
                issues.at(
                    at(&["compare"]),
                    "compares nothing: give `latency:`, `error_rate:`, `values:` or several (or leave `compare:` out for latency and errors with their defaults)",
                );
            }
            let latency = cmp.latency.as_ref().map(|l| {
                let confidence = l.confidence.unwrap_or(DEFAULT_CONFIDENCE);
                if !(0.5..=0.9999).contains(&confidence) {
                    issues.at(
                        at(&["compare", "latency", "confidence"]),
                        format!("must be between 0.5 and 0.9999, e.g. 0.98 (got {confidence})"),
                    );
                }
                let max_increase = l.max_increase.map(fraction).unwrap_or(DEFAULT_MAX_INCREASE);
                if !(max_increase.is_finite() && max_increase >= 0.0) {
                    issues.at(
                        at(&["compare", "latency", "max_increase"]),
                        format!("must be a non-negative share of the baseline median, e.g. 10% (got {max_increase})"),
                    );
                }
                LatencyCompare {
                    confidence,
                    max_increase,
                }
            });
            let errors = cmp
                .error_rate
                .as_ref()
                .and_then(|e| match e.max.map(fraction) {
                    None => {
                        issues.at(
                            at(&["compare", "error_rate", "max"]),
                            "required: the canary's error-rate ceiling, e.g. `max: 1%`",
                        );
                        None
                    }
                    Some(m) if !(0.0..1.0).contains(&m) => {
                        issues.at(
                            at(&["compare", "error_rate", "max"]),
                            format!("must be a share from 0% to below 100%, e.g. 1% (got {m})"),
                        );
                        None
                    }
                    Some(m) => Some(m),
                });
            (latency, errors)
        }
    };

    let apply = if by_targets {
        None
    } else {
        lower_apply(
            c.apply.as_ref(),
            "canary",
            target,
            ApplyWeight::reference,
            "weight",
            issues,
        )
    };
    let runbook = super::common::runbook(c.runbook.as_ref(), at(&["runbook"]), issues);

    if issues.0.len() != before {
        return None;
    }
    Some(CanarySpec {
        runbook,
        split: split?,
        scenarios,
        steps,
        step_duration,
        start_after,
        min_samples,
        latency,
        max_error_rate,
        values,
        on_no_data: match c.on_no_data {
            Some(model::OnNoDataDef::Fail) => OnNoData::Fail,
            Some(model::OnNoDataDef::Wait) | None => OnNoData::Wait,
        },
        max_wait,
        on_inconclusive: match c.on_inconclusive {
            Some(model::OnInconclusiveDef::Rollback) => OnInconclusive::Rollback,
            Some(model::OnInconclusiveDef::Extend) | None => OnInconclusive::Extend,
        },
        expect: c.expect.map(|e| match e {
            model::ExpectDef::Promote => Expect::Promote,
            model::ExpectDef::Rollback => Expect::Rollback,
        }),
        apply: if by_targets { None } else { Some(apply?) },
    })
}

/// `compare.values:`: each needs `from` and at least one bound.
fn values(
    defs: &std::collections::BTreeMap<String, model::ValueCompareDef>,
    issues: &mut Issues,
) -> Vec<ValueCompare> {
    let mut out = Vec::new();
    for (name, d) in defs {
        let here = |f: &str| {
            let mut p = at(&["compare", "values", name.as_str()]);
            if !f.is_empty() {
                p.push(PathSeg::Key(f.into()));
            }
            p
        };
        let from = match d.from.as_deref().map(Extractor::parse) {
            None => {
                issues.at(
                    here("from"),
                    "required: where the number is, e.g. `from: json /cost_usd` or `from: header x-quality-score`",
                );
                None
            }
            Some(Err(e)) => {
                issues.at(here("from"), e.to_string());
                None
            }
            Some(Ok(x)) => Some(x),
        };
        if d.max.is_none()
            && d.min.is_none()
            && d.max_increase.is_none()
            && d.max_decrease.is_none()
        {
            issues.at(
                here(""),
                "compares nothing: give `max`, `min`, `max_increase` or `max_decrease`",
            );
        }
        for (f, v) in [("max", d.max), ("min", d.min)] {
            if v.is_some_and(|v| !v.is_finite()) {
                issues.at(here(f), "must be a finite number");
            }
        }
        let share = |o: Option<Objective>, f: &str, issues: &mut Issues| {
            let v = o.map(fraction);
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                issues.at(
                    here(f),
                    format!(
                        "must be a non-negative share of the baseline's mean, e.g. 10% (got {})",
                        v.unwrap_or_default()
                    ),
                );
            }
            v
        };
        let max_increase = share(d.max_increase, "max_increase", issues);
        let max_decrease = share(d.max_decrease, "max_decrease", issues);
        if let (Some(lo), Some(hi)) = (d.min, d.max) {
            if lo > hi {
                issues.at(here("min"), format!("{lo} is above `max` {hi}"));
            }
        }
        if let Some(from) = from {
            out.push(ValueCompare {
                name: name.clone(),
                from,
                max: d.max,
                min: d.min,
                max_increase,
                max_decrease,
            });
        }
    }
    out
}

/// `apply:` (canary) or `blue_green.apply:`: exactly one of `reference`, `http`, `command`.
fn lower_apply(
    a: Option<&model::CanaryApply>,
    section: &str,
    target: &str,
    reference: fn(&str, &str) -> ApplyWeight,
    placeholder: &str,
    issues: &mut Issues,
) -> Option<ApplyWeight> {
    match a {
        None => {
            issues.at(at_in(section, &["apply"]), format!("required: how the {placeholder} is applied: `reference: {{ admin_key: \"${{ADMIN_KEY}}\" }}` (the reference gateway), `http: {{...}}` or `command: [...]`"));
            None
        }
        Some(a) => {
            let given = [a.reference.is_some(), a.http.is_some(), a.command.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if given != 1 {
                issues.at(
                    at_in(section, &["apply"]),
                    format!("give exactly one of `reference`, `http`, `command` (got {given})"),
                );
                None
            } else if let Some(r) = &a.reference {
                match &r.admin_key {
                    Some(k) if !k.is_empty() => Some(reference(target, k)),
                    _ => {
                        issues.at(
                            at_in(section, &["apply", "reference", "admin_key"]),
                            "required: the gateway's admin key, e.g. `admin_key: \"${ADMIN_KEY}\"`",
                        );
                        None
                    }
                }
            } else if let Some(h) = &a.http {
                let url = h.url.clone().unwrap_or_default();
                // `${TARGET_URL}/...` is still unresolved when a plan with a stack is validated.
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("${"))
                {
                    issues.at(
                        at_in(section, &["apply", "http", "url"]),
                        format!("required: an absolute http(s) URL, e.g. `${{TARGET_URL}}/admin/routing` (got {url:?})"),
                    );
                }
                let method = h.method.clone().unwrap_or_else(|| "PUT".into());
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    issues.at(
                        at_in(section, &["apply", "http", "method"]),
                        format!("{method:?} is not an HTTP method"),
                    );
                }
                Some(ApplyWeight::Http {
                    method: method.to_ascii_uppercase(),
                    url,
                    headers: h
                        .headers
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: h.body.clone().unwrap_or_default(),
                })
            } else {
                let argv = a.command.clone().unwrap_or_default();
                if argv.is_empty() || argv[0].trim().is_empty() {
                    issues.at(
                        at_in(section, &["apply", "command"]),
                        format!("needs a program, e.g. `command: [./set-{placeholder}.sh, \"{{{{{placeholder}}}}}\"]`"),
                    );
                }
                Some(ApplyWeight::Command { argv })
            }
        }
    }
}

fn check_scenarios(
    list: &[String],
    section: &str,
    scenario_names: &BTreeSet<String>,
    issues: &mut Issues,
) {
    for (i, s) in list.iter().enumerate() {
        if !scenario_names.contains(s) {
            let near = scenario_names
                .iter()
                .min_by_key(|n| strsim::levenshtein(s, n))
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            issues.at(
                [at_in(section, &["scenarios"]), vec![PathSeg::Index(i)]].concat(),
                format!("no scenario `{s}`{near}"),
            );
        }
    }
}

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);

pub(crate) fn blue_green(
    b: &BlueGreen,
    target: &str,
    scenario_names: &BTreeSet<String>,
    issues: &mut Issues,
) -> Option<BlueGreenSpec> {
    let before = issues.0.len();
    let at = |f: &[&str]| at_in("blue_green", f);
    let split = match &b.split {
        None => {
            issues.at(
                at(&["split"]),
                "required: e.g. `split: { header: x-model-version, blue: v1, green: v2 }`",
            );
            None
        }
        Some(s) => {
            let mut field = |v: &Option<String>, name: &str, example: &str| match v {
                Some(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                _ => {
                    issues.at(
                        at(&["split", name]),
                        format!("required: a non-empty value, e.g. `{name}: {example}`"),
                    );
                    None
                }
            };
            let header = field(&s.header, "header", "x-model-version");
            let blue = field(&s.blue, "blue", "v1");
            let green = field(&s.green, "green", "v2");
            if let Some(h) = &header {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    issues.at(
                        at(&["split", "header"]),
                        format!("{h:?} is not a header name (letters, digits and `-`)"),
                    );
                }
            }
            if blue.is_some() && blue == green {
                issues.at(at(&["split", "green"]), "must differ from `blue`");
            }
            match (header, blue, green) {
                (Some(header), Some(baseline), Some(canary)) => Some(HeaderSplit {
                    header: header.to_ascii_lowercase(),
                    baseline,
                    canary,
                }),
                _ => None,
            }
        }
    };
    let scenarios = b.scenarios.clone().unwrap_or_default();
    check_scenarios(&scenarios, "blue_green", scenario_names, issues);
    let cutover_at = match b.cutover_at {
        None => {
            issues.at(
                at(&["cutover_at"]),
                "required: when traffic is switched to green, e.g. `cutover_at: 10s`",
            );
            None
        }
        Some(d) => Some(d.0),
    };
    let window = b.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
    if window < Duration::from_secs(1) {
        issues.at(at(&["window"]), "must be at least 1s");
    }
    let switch_back_at = b.switch_back_at.map(|d| d.0);
    if let (Some(c), Some(back)) = (cutover_at, switch_back_at) {
        if back < c + window {
            issues.at(
                at(&["switch_back_at"]),
                format!(
                    "must come at least one window ({}s) after `cutover_at`, so the cutover is judged first",
                    window.as_secs()
                ),
            );
        }
    }
    let max_p99_ms = b.max_p99.map(|d| d.0.as_secs_f64() * 1000.0);
    if max_p99_ms == Some(0.0) {
        issues.at(at(&["max_p99"]), "must be above 0, e.g. `max_p99: 250ms`");
    }
    let apply = lower_apply(
        b.apply.as_ref(),
        "blue_green",
        target,
        ApplyWeight::reference_switch,
        "version",
        issues,
    );
    let runbook = super::common::runbook(b.runbook.as_ref(), at(&["runbook"]), issues);
    if issues.0.len() != before {
        return None;
    }
    Some(BlueGreenSpec {
        runbook,
        split: split?,
        scenarios,
        cutover_at: cutover_at?,
        switch_back_at,
        window,
        max_failed: b.max_failed.unwrap_or(0),
        max_p99_ms,
        apply: apply?,
    })
}

//! Checks and lowering of a scenario's `steps:` (a user flow) into requests and a
//! [`FlowSpec`]: every step's `{{NAME}}` must be extracted by an earlier step, extraction
//! and `until` expressions parse, think times are durations or ranges.
//!
//! # Think time grammar
//!
//! ```text
//! think := DURATION                  a fixed pause, e.g. 500ms
//!        | DURATION ".." DURATION    a uniform random pause in the range, e.g. 200ms..800ms
//! ```
use std::collections::BTreeMap;
use std::time::Duration;

use crate::grammar::extract::Extractor;
use crate::grammar::response::ResponseCheck;
use crate::grammar::units::parse_duration;
use crate::spec::{Extraction, Feeder, FlowSpec, RequestSpec, StepSpec, ThinkTime, Until};

use super::model::{self, Step};
use super::problem::Issues;
use super::tree::PathSeg;

/// Default pause between attempts of a step with `until`.
pub const DEFAULT_UNTIL_EVERY: Duration = Duration::from_millis(500);
/// Default deadline of a step with `until`.
pub const DEFAULT_UNTIL_DEADLINE: Duration = Duration::from_secs(30);

/// Placeholders a variable may not shadow.
const BUILTINS: [&str; 4] = ["uuid", "seq", "vu", "iter"];

/// Lower a flow's steps: one request per step (in order) and the flow beside them.
pub(super) fn steps(
    scenario: &str,
    steps: &[Step],
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> (Vec<RequestSpec>, FlowSpec) {
    let mut requests = Vec::new();
    let mut flow = FlowSpec::default();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, st) in steps.iter().enumerate() {
        let base = path!["scenarios", scenario, "steps", i];
        let at = |field: &str| {
            let mut p = base.clone();
            p.push(PathSeg::Key(field.to_string()));
            p
        };
        let req = model::Request {
            name: st.name.clone(),
            weight: None,
            method: st.method.clone(),
            path: st.path.clone(),
            headers: st.headers.clone(),
            body: st.body.clone(),
            checks: st.checks.clone(),
        };
        let lowered = super::common::request(&base, &req, feeders, default_headers, true, issues);
        if let Some(r) = &lowered {
            if let Some(j) = names.insert(r.name.clone(), i) {
                issues.at(
                    at("name"),
                    format!(
                        "step {i} has the same name as step {j} ({:?}): give each step its own `name:`, its samples are tagged step:NAME",
                        r.name
                    ),
                );
            }
            // Every variable read must come from an earlier step.
            let mut used: Vec<(Vec<PathSeg>, &str)> = Vec::new();
            used.extend(r.path.vars_used().map(|v| (at("path"), v)));
            for (h, t) in &r.headers {
                let p = [at("headers"), vec![PathSeg::Key(h.clone())]].concat();
                used.extend(t.vars_used().map(|v| (p.clone(), v)));
            }
            if let Some(b) = &r.body {
                used.extend(b.vars_used().map(|v| (at("body"), v)));
            }
            for (p, v) in used {
                if !flow.vars.iter().any(|k| k == v) {
                    let before = if flow.vars.is_empty() {
                        "no earlier step extracts anything".to_string()
                    } else {
                        format!("extracted before this step: {}", flow.vars.join(", "))
                    };
                    issues.at(
                        &p,
                        format!(
                            "{{{{{v}}}}} is not extracted by an earlier step ({before}); add `extract: {{ {v}: json /{v} }}` to the step that receives it"
                        ),
                    );
                }
            }
        }
        let mut step = StepSpec::default();
        for (var, text) in st.extract.iter().flatten() {
            let p = [at("extract"), vec![PathSeg::Key(var.clone())]].concat();
            let usable = var
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !usable {
                issues.at_key(
                    &p,
                    format!("{var:?} is not a usable name: letters, digits, `_`, `-`"),
                );
                continue;
            }
            if BUILTINS.contains(&var.as_str()) {
                issues.at_key(
                    &p,
                    format!(
                        "`{var}` is a built-in placeholder ({{{{{var}}}}}): choose another name"
                    ),
                );
                continue;
            }
            match Extractor::parse(text) {
                Ok(from) => {
                    if !flow.vars.contains(var) {
                        flow.vars.push(var.clone());
                    }
                    step.extract.push(Extraction {
                        var: var.clone(),
                        from,
                    });
                }
                Err(e) => issues.at(&p, format!("bad extraction: {e}")),
            }
        }
        if let Some(t) = &st.think {
            match parse_think(t) {
                Ok(think) => step.think = Some(think),
                Err(e) => issues.at(at("think"), e.to_string()),
            }
        }
        match &st.until {
            Some(u) => match ResponseCheck::parse(u) {
                Ok(check) => {
                    let every = st.every.map(|d| d.0).unwrap_or(DEFAULT_UNTIL_EVERY);
                    let deadline = st.deadline.map(|d| d.0).unwrap_or(DEFAULT_UNTIL_DEADLINE);
                    if every.is_zero() {
                        issues.at(at("every"), "must be longer than 0s");
                    }
                    if deadline < every {
                        issues.at(
                            at("deadline"),
                            format!(
                                "the deadline ({deadline:?}) is shorter than `every` ({every:?}): the step could not repeat"
                            ),
                        );
                    }
                    step.until = Some(Until {
                        check,
                        every,
                        deadline,
                    });
                }
                Err(e) => issues.at(at("until"), format!("bad until: {e}")),
            },
            None => {
                for (field, present) in [
                    ("every", st.every.is_some()),
                    ("deadline", st.deadline.is_some()),
                ] {
                    if present {
                        issues.at_key(
                            at(field),
                            format!("`{field}` applies to a step with `until:` (e.g. `until: \"json /status == done\"`)"),
                        );
                    }
                }
            }
        }
        if let Some(r) = lowered {
            requests.push(r);
            flow.steps.push(step);
        }
    }
    (requests, flow)
}

/// Why a think time does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThinkError {
    #[error("bad think time {text:?}: {reason} (expected a pause like `500ms` or a range like `200ms..800ms`)")]
    Duration { text: String, reason: String },
    #[error("bad think time {text:?}: the range ends before it starts (expected a pause like `500ms` or a range like `200ms..800ms`)")]
    Reversed { text: String },
}

/// A think time (see the module doc).
pub fn parse_think(text: &str) -> Result<ThinkTime, ThinkError> {
    let (lo, hi) = match text.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let dur = |t: &str| {
        parse_duration(t).map_err(|e| ThinkError::Duration {
            text: text.to_string(),
            reason: e.to_string(),
        })
    };
    let (min, max) = (dur(lo)?, dur(hi)?);
    if max < min {
        return Err(ThinkError::Reversed {
            text: text.to_string(),
        });
    }
    Ok(ThinkTime { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_times_are_fixed_or_ranges() {
        let ms = Duration::from_millis;
        assert_eq!(
            parse_think("500ms").unwrap(),
            ThinkTime {
                min: ms(500),
                max: ms(500)
            }
        );
        assert_eq!(
            parse_think("200ms..1s").unwrap(),
            ThinkTime {
                min: ms(200),
                max: ms(1000)
            }
        );
        assert!(parse_think("1s..200ms").is_err());
        assert!(parse_think("500").is_err());
    }
}

//! Checks and lowering of one scenario: its executor's parameters and its requests.
//!
//! Split from `validate` (which handles the plan as a whole) because each executor has its own
//! required and forbidden parameters and defaults; see [`params_of`] and the plan format
//! reference for the table.
use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::ledger::LedgerSpec;
use crate::spec::{ExecutorSpec, Feeder, RateStage, RequestSpec, ScenarioSpec, VuStage};

use super::common::{
    DEFAULT_GRACEFUL_STOP, DEFAULT_MAX_DURATION, DEFAULT_MAX_VUS, DEFAULT_PRE_ALLOCATED_VUS,
};
use super::model::{self, Executor, Scenario, StageTarget};
use super::problem::Issues;
use super::tree::PathSeg;

/// The `--env` profile's `scale`, and where it does not apply: a value set with `--set` is
/// the value (defaults < file < profile with its scale < `--set`).
pub(super) struct Scale<'a> {
    pub factor: f64,
    /// The layered tree (a node's location tells whether `--set` wrote it).
    pub tree: &'a super::tree::Node,
}

impl Scale<'_> {
    /// The factor for the field at `path` (1 when `--set` wrote it).
    fn at(&self, path: &[PathSeg]) -> f64 {
        match self.tree.at(path) {
            Some(n) if matches!(n.loc, super::tree::Loc::Set(_)) => 1.0,
            _ => self.factor,
        }
    }
}

fn scaled_vus(v: u32, scale: f64) -> u32 {
    if scale == 1.0 || v == 0 {
        v
    } else {
        ((v as f64 * scale).ceil() as u32).max(1)
    }
}

/// Which parameters each executor takes (besides the common ones).
fn params_of(e: Executor) -> &'static [&'static str] {
    match e {
        Executor::ConstantArrivalRate => &["rate", "duration", "pre_allocated_vus", "max_vus"],
        Executor::RampingArrivalRate => &["start_rate", "stages", "pre_allocated_vus", "max_vus"],
        Executor::ConstantVus => &["vus", "duration"],
        Executor::RampingVus => &["start_vus", "stages"],
        Executor::PerVuIterations | Executor::SharedIterations => {
            &["vus", "iterations", "max_duration"]
        }
    }
}

fn present_params(s: &Scenario) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |present: bool, name: &'static str| {
        if present {
            out.push(name)
        }
    };
    add(s.rate.is_some(), "rate");
    add(s.duration.is_some(), "duration");
    add(s.start_rate.is_some(), "start_rate");
    add(s.start_vus.is_some(), "start_vus");
    add(s.stages.is_some(), "stages");
    add(s.pre_allocated_vus.is_some(), "pre_allocated_vus");
    add(s.max_vus.is_some(), "max_vus");
    add(s.vus.is_some(), "vus");
    add(s.iterations.is_some(), "iterations");
    add(s.max_duration.is_some(), "max_duration");
    out
}

fn positive_duration(
    d: Option<crate::grammar::units::Duration>,
    p: Vec<PathSeg>,
    issues: &mut Issues,
) -> Duration {
    match d {
        Some(d) if d.0.is_zero() => {
            issues.at(&p, "must be longer than 0s");
            d.0
        }
        Some(d) => d.0,
        None => Duration::ZERO,
    }
}

fn executor(
    name: &str,
    e: Executor,
    s: &Scenario,
    scale: &Scale<'_>,
    issues: &mut Issues,
) -> Option<ExecutorSpec> {
    let base = path!["scenarios", name];
    let at = |field: &str| {
        let mut p = base.clone();
        p.push(PathSeg::Key(field.to_string()));
        p
    };
    let allowed = params_of(e);
    for param in present_params(s) {
        if !allowed.contains(&param) {
            issues.at_key(
                at(param),
                format!(
                    "`{param}` is not a parameter of {} (it takes: {})",
                    e.name(),
                    allowed.join(", ")
                ),
            );
        }
    }
    let before = issues.0.len();
    let mut require = |present: bool, field: &str, example: &str| {
        if !present {
            issues.at(
                at(field),
                format!(
                    "{} requires `{field}` (e.g. `{field}: {example}`)",
                    e.name()
                ),
            );
        }
    };
    match e {
        Executor::ConstantArrivalRate => {
            require(s.rate.is_some(), "rate", "100/s");
            require(s.duration.is_some(), "duration", "1m");
        }
        Executor::RampingArrivalRate | Executor::RampingVus => {
            require(s.stages.is_some(), "stages", "[{to: 10, over: 30s}]");
        }
        Executor::ConstantVus => require(s.duration.is_some(), "duration", "1m"),
        _ => {}
    }
    let pools = |issues: &mut Issues| {
        let pre = s.pre_allocated_vus.unwrap_or(DEFAULT_PRE_ALLOCATED_VUS);
        if pre == 0 {
            issues.at(at("pre_allocated_vus"), "must be at least 1");
        }
        let max = s.max_vus.unwrap_or(pre.max(DEFAULT_MAX_VUS));
        if max < pre {
            issues.at(
                at("max_vus"),
                format!("max_vus ({max}) must be >= pre_allocated_vus ({pre})"),
            );
        }
        (
            scaled_vus(pre, scale.at(&at("pre_allocated_vus"))),
            scaled_vus(max, scale.at(&at("max_vus"))),
        )
    };
    let rate_stages = |issues: &mut Issues| -> Vec<RateStage> {
        let mut out = Vec::new();
        for (i, st) in s.stages.iter().flatten().enumerate() {
            let p = path!["scenarios", name, "stages", i];
            let duration = st.over.map(|d| d.0);
            if st.over.is_none() {
                issues.at(
                    [p.clone(), path!["over"]].concat(),
                    "a stage needs `over:` (e.g. `over: 30s`)",
                );
            }
            let target = match st.to {
                Some(StageTarget::Rate(r)) => Some(r.per_second),
                Some(StageTarget::Vus(n)) => {
                    issues.at(
                        path!["scenarios", name, "stages", i, "to"],
                        format!("expected a rate like {n}/s for {}, got {n}", e.name()),
                    );
                    None
                }
                None => {
                    issues.at(
                        [p.clone(), path!["to"]].concat(),
                        "a stage needs `to:` (e.g. `to: 100/s`)",
                    );
                    None
                }
            };
            if let (Some(t), Some(d)) = (target, duration) {
                out.push(RateStage {
                    target: t * scale.at(&[p.clone(), path!["to"]].concat()),
                    duration: d,
                });
            }
        }
        out
    };
    let vu_stages = |issues: &mut Issues| -> Vec<VuStage> {
        let mut out = Vec::new();
        for (i, st) in s.stages.iter().flatten().enumerate() {
            let p = path!["scenarios", name, "stages", i];
            if st.over.is_none() {
                issues.at(
                    [p.clone(), path!["over"]].concat(),
                    "a stage needs `over:` (e.g. `over: 30s`)",
                );
            }
            let target = match st.to {
                Some(StageTarget::Vus(n)) => Some(n),
                Some(StageTarget::Rate(r)) => {
                    issues.at(
                        path!["scenarios", name, "stages", i, "to"],
                        format!("expected a VU count for ramping-vus, got the rate {r}"),
                    );
                    None
                }
                None => {
                    issues.at(
                        [p.clone(), path!["to"]].concat(),
                        "a stage needs `to:` (e.g. `to: 10`)",
                    );
                    None
                }
            };
            if let (Some(t), Some(d)) = (target, st.over) {
                out.push(VuStage {
                    target: scaled_vus(t, scale.at(&[p.clone(), path!["to"]].concat())),
                    duration: d.0,
                });
            }
        }
        out
    };
    let check_stages_total = |total: Duration, issues: &mut Issues| {
        if s.stages.as_ref().is_some_and(|v| v.is_empty()) {
            issues.at(at("stages"), "needs at least one stage");
        } else if s.stages.is_some() && total.is_zero() {
            issues.at(at("stages"), "the stages must last longer than 0s in total");
        }
    };
    let spec = match e {
        Executor::ConstantArrivalRate => {
            let rate = s.rate.map(|r| r.per_second).unwrap_or(0.0);
            if s.rate.is_some() && rate <= 0.0 {
                issues.at(at("rate"), "must be positive, e.g. 100/s");
            }
            let duration = positive_duration(s.duration, at("duration"), issues);
            let (pre_allocated_vus, max_vus) = pools(issues);
            ExecutorSpec::ConstantArrivalRate {
                rate: rate * scale.at(&at("rate")),
                duration,
                pre_allocated_vus,
                max_vus,
            }
        }
        Executor::RampingArrivalRate => {
            let start_rate = s.start_rate.map(|r| r.per_second).unwrap_or(0.0);
            let stages = rate_stages(issues);
            check_stages_total(stages.iter().map(|s| s.duration).sum(), issues);
            let (pre_allocated_vus, max_vus) = pools(issues);
            ExecutorSpec::RampingArrivalRate {
                start_rate: start_rate * scale.at(&at("start_rate")),
                stages,
                pre_allocated_vus,
                max_vus,
            }
        }
        Executor::ConstantVus => {
            let vus = s.vus.unwrap_or(1);
            if vus == 0 {
                issues.at(at("vus"), "must be at least 1");
            }
            let duration = positive_duration(s.duration, at("duration"), issues);
            ExecutorSpec::ConstantVus {
                vus: scaled_vus(vus, scale.at(&at("vus"))),
                duration,
            }
        }
        Executor::RampingVus => {
            let stages = vu_stages(issues);
            check_stages_total(stages.iter().map(|s| s.duration).sum(), issues);
            ExecutorSpec::RampingVus {
                start_vus: scaled_vus(s.start_vus.unwrap_or(1), scale.at(&at("start_vus"))),
                stages,
            }
        }
        Executor::PerVuIterations | Executor::SharedIterations => {
            let vus = s.vus.unwrap_or(1);
            if vus == 0 {
                issues.at(at("vus"), "must be at least 1");
            }
            let iterations = s.iterations.unwrap_or(1);
            if iterations == 0 {
                issues.at(at("iterations"), "must be at least 1");
            }
            let max_duration = match s.max_duration {
                None => DEFAULT_MAX_DURATION,
                d => positive_duration(d, at("max_duration"), issues),
            };
            let vus = scaled_vus(vus, scale.at(&at("vus")));
            if e == Executor::SharedIterations {
                if iterations < vus as u64 && s.iterations.is_some() {
                    issues.at(
                        at("iterations"),
                        format!("shared-iterations needs iterations ({iterations}) >= vus ({vus})"),
                    );
                }
                ExecutorSpec::SharedIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            } else {
                ExecutorSpec::PerVuIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            }
        }
    };
    (issues.0.len() == before).then_some(spec)
}

pub(super) fn scenario(
    name: &str,
    s: &Scenario,
    scale: &Scale<'_>,
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> Option<ScenarioSpec> {
    let exec = match s.executor {
        Some(e) => executor(name, e, s, scale, issues),
        None => {
            issues.at(path!["scenarios", name, "executor"], "required: the executor, one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus, per-vu-iterations, shared-iterations");
            None
        }
    };
    let mut flow = None;
    let built: Vec<RequestSpec> = if let Some(steps) = &s.steps {
        if s.request.is_some() || s.requests.is_some() {
            issues.at_key(
                path!["scenarios", name, "steps"],
                "give either `steps` (a flow) or `request` / `requests`, not both",
            );
        }
        if steps.is_empty() {
            issues.at(path!["scenarios", name, "steps"], "needs at least one step");
        }
        let (reqs, f) = super::flow::steps(name, steps, feeders, default_headers, issues);
        flow = Some(f);
        reqs
    } else {
        let requests: Vec<(Vec<PathSeg>, &model::Request)> = match (&s.request, &s.requests) {
            (Some(r), None) => vec![(path!["scenarios", name, "request"], r)],
            (None, Some(list)) => {
                if list.is_empty() {
                    issues.at(
                        path!["scenarios", name, "requests"],
                        "needs at least one request",
                    );
                }
                list.iter()
                    .enumerate()
                    .map(|(i, r)| (path!["scenarios", name, "requests", i], r))
                    .collect()
            }
            (Some(_), Some(_)) => {
                issues.at_key(
                    path!["scenarios", name, "requests"],
                    "give either `request` or `requests`, not both",
                );
                Vec::new()
            }
            (None, None) => {
                issues.at(
                    path!["scenarios", name, "request"],
                    "required: `request:` (one request), `requests:` (a weighted list) or `steps:` (a flow)",
                );
                Vec::new()
            }
        };
        requests
            .into_iter()
            .filter_map(|(p, r)| {
                super::common::request(&p, r, feeders, default_headers, false, issues)
            })
            .collect()
    };
    let graceful_stop = s
        .graceful_stop
        .map(|d| d.0)
        .unwrap_or(DEFAULT_GRACEFUL_STOP);
    let start_after = s.start_after.map(|d| d.0).unwrap_or_default();
    let tags = s.tags.clone().unwrap_or_default();
    if tags.contains_key("scenario") {
        issues.at_key(
            path!["scenarios", name, "tags", "scenario"],
            "the `scenario` tag is set by loadgate (it is the scenario's name)",
        );
    }
    let ledger = s.ledger.as_ref().and_then(|l| ledger(name, l, s, issues));
    Some(ScenarioSpec {
        name: name.to_string(),
        executor: exec?,
        start_after,
        graceful_stop,
        requests: built,
        tags,
        flow,
        ledger,
    })
}

/// Lower a scenario's `ledger:`: the write is its one `request:`, whose JSON body has a
/// top-level field written with the ledger's `id` template.
fn ledger(name: &str, l: &model::Ledger, s: &Scenario, issues: &mut Issues) -> Option<LedgerSpec> {
    let at = |f: &str| path!["scenarios", name, "ledger", f];
    let before = issues.0.len();
    let Some(req) = s.request.as_ref() else {
        issues.at_key(
            path!["scenarios", name, "ledger"],
            "a ledger scenario sends one write: give `request:` (not `requests:` or `steps:`)",
        );
        return None;
    };
    let body = req.body.as_ref().and_then(|b| b.as_object());
    let id_field = match (&l.id, body) {
        (None, _) => {
            issues.at(
                path!["scenarios", name, "ledger"],
                "required: `id`, the template of the body's id field, e.g. \"{{uuid}}\"",
            );
            None
        }
        (Some(_), None) => {
            issues.at(
                at("id"),
                "the ledger's request needs a JSON object `body:` holding the id field",
            );
            None
        }
        (Some(id), Some(b)) => {
            let found = b
                .iter()
                .find(|(_, v)| v.as_str() == Some(id.as_str()))
                .map(|(k, _)| k.clone());
            if found.is_none() {
                issues.at(
                    at("id"),
                    format!("no top-level field of the request's body is written as {id:?}: use the same template as the body's id field"),
                );
            }
            found
        }
    };
    let read = match l.read_back.as_deref().map(str::trim) {
        None => {
            issues.at(
                path!["scenarios", name, "ledger"],
                "required: `read_back`, e.g. \"GET /v1/notes/{{id}}\"",
            );
            None
        }
        Some(rb) => match rb.split_once(' ') {
            Some((m, p)) if p.trim().starts_with('/') && p.contains("{{id}}") => {
                Some((m.to_ascii_uppercase(), p.trim().to_string()))
            }
            _ => {
                issues.at(
                    at("read_back"),
                    format!("{rb:?}: write `METHOD /path/{{{{id}}}}`, e.g. \"GET /v1/notes/{{{{id}}}}\""),
                );
                None
            }
        },
    };
    if issues.0.len() != before {
        return None;
    }
    let (read_method, read_path) = read?;
    Some(LedgerSpec {
        id_field: id_field?,
        read_method,
        read_path,
        compare: l.compare.clone().unwrap_or_else(|| {
            body.map(|b| b.keys().cloned().collect())
                .unwrap_or_default()
        }),
        max_lost: l.expect.as_ref().and_then(|e| e.lost_writes).unwrap_or(0),
        max_rpo: l
            .expect
            .as_ref()
            .and_then(|e| e.rpo)
            .map(|d| d.0)
            .unwrap_or_default(),
    })
}

//! Checks and lowering of `faults:`: when (`at`, `every` + `times`), what (a stack operation
//! on a component, a toxic on a dependency's fault proxy, an exec command with its check),
//! how long it is held (`restart_after`, `resume_after`, `duration`), and how its failover is
//! judged (`expect.rto`, `recovery`). Every problem is reported at its field.
//!
//! `backup` / `restore` (of `postgres`) are instantaneous: nothing holds them, so
//! `restart_after`, `resume_after` and `duration` are refused; a restore goes back to the
//! latest backup taken before it (a `backup` fault earlier on the run clock).
use std::collections::BTreeSet;
use std::time::Duration;

use crate::spec::fault::{
    ExecFault, FaultAction, FaultCondition, FaultLedgerExpect, FaultSpec, NetworkFault,
    RecoveryRule, Toxic, ToxicKind, ToxicStream,
};
use crate::spec::{Component, Region, StackOp};

use super::model::{
    ExecDef, Fault, FaultActionDef, Objective, RegionDef, ToxicDef, ToxicKindDef, ToxicStreamDef,
    WhenDef,
};
use super::problem::Issues;
use super::tree::PathSeg;

/// The RTO bound when a fault gives none.
pub const DEFAULT_MAX_RTO: Duration = Duration::from_secs(15);
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CHECK_WITHIN: Duration = Duration::from_secs(10);

fn at(base: &[PathSeg], fields: &[&str]) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.extend(fields.iter().map(|f| PathSeg::Key(f.to_string())));
    p
}

/// Lowers `faults.NAME`; None (with problems) when it is broken. `has_stack`: the plan
/// starts the reference stack (stack actions and toxics need it); `has_replica`: with a
/// PostgreSQL replica (a failover needs one).
pub(crate) fn fault(
    name: &str,
    f: &Fault,
    has_stack: bool,
    has_replica: bool,
    scenario_names: &BTreeSet<String>,
    probe_names: &BTreeSet<String>,
    issues: &mut Issues,
) -> Option<FaultSpec> {
    let base = path!["faults", name];
    let before = issues.0.len();
    let first = match (f.at, &f.when) {
        (Some(d), _) => d.as_std(),
        (None, Some(_)) => Duration::ZERO,
        (None, None) => {
            issues.at(
                at(&base, &["at"]),
                "required: when the fault is injected on the run clock, e.g. `at: 20s` (or a condition: `when: { probe_failing: NAME }` / `when: { error_rate_above: 5% }`)",
            );
            Duration::ZERO
        }
    };
    let when = f
        .when
        .as_ref()
        .and_then(|w| condition(&at(&base, &["when"]), w, probe_names, issues));
    let times = f.times.unwrap_or(1);
    if times == 0 {
        issues.at(at(&base, &["times"]), "must be at least 1");
    }
    let every = f.every.map(|d| d.as_std());
    if times > 1 && every.is_none_or(|e| e.is_zero()) {
        issues.at(
            at(&base, &["every"]),
            format!(
                "required with `times: {times}`: the time between injections, e.g. `every: 30s`"
            ),
        );
    }

    let component = f
        .component
        .as_ref()
        .and_then(|c| match c.parse::<Component>() {
            Ok(c) => Some(c),
            Err(e) => {
                issues.at(at(&base, &["component"]), e.to_string());
                None
            }
        });
    // `region: primary` is `component: region[primary]`.
    let component = match (f.region, component) {
        (None, c) => c,
        (Some(_), _) if f.component.is_some() => {
            issues.at(
                at(&base, &["region"]),
                "give `region:` or `component:`, not both (`region: primary` is `component: region[primary]`)",
            );
            None
        }
        (Some(RegionDef::Primary), _) => Some(Component::Region(Region::Primary)),
        (Some(RegionDef::Secondary), _) => Some(Component::Region(Region::Secondary)),
    };
    let need_component = |issues: &mut Issues, what: &str| {
        if f.component.is_none() && f.region.is_none() {
            issues.at(
                at(&base, &["component"]),
                format!("required with `action: {what}`: which part of the reference stack, e.g. `component: redis` (redis, postgres, postgres-replica, gateway[N], edge, region[primary])"),
            );
        }
    };
    let need_stack = |issues: &mut Issues, what: &str| {
        if !has_stack {
            issues.at(
                at(&base, &["action"]),
                format!("`action: {what}` acts on the reference stack, and this plan starts none: add `stack: {{ reference: {{}} }}`, or use `action: exec` with a command for an environment loadgate does not run"),
            );
        }
    };
    let not_with = |issues: &mut Issues, field: &str, present: bool, action: &str, hint: &str| {
        if present {
            issues.at(
                at(&base, &[field]),
                format!("not used with `action: {action}`; {hint}"),
            );
        }
    };
    // An action that runs to its end (backup, restore, failover): nothing holds or undoes
    // it, and it takes no toxic or command.
    let unheld = |issues: &mut Issues, action: &str, hint: &str| {
        for (field, present) in [
            ("restart_after", f.restart_after.is_some()),
            ("resume_after", f.resume_after.is_some()),
            ("duration", f.duration.is_some()),
        ] {
            not_with(issues, field, present, action, hint);
        }
        not_with(
            issues,
            "toxic",
            f.toxic.is_some(),
            action,
            "`toxic:` goes with `action: toxic`",
        );
        not_with(
            issues,
            "exec",
            f.exec.is_some(),
            action,
            "`exec:` goes with `action: exec`",
        );
    };

    let (action, hold) = match f.action {
        None => {
            issues.at(
                at(&base, &["action"]),
                "required: `kill`, `stop`, `pause`, `toxic`, `exec`, `backup`, `restore` or `failover`",
            );
            (None, None)
        }
        Some(a @ (FaultActionDef::Kill | FaultActionDef::Stop | FaultActionDef::Pause)) => {
            let (op, word) = match a {
                FaultActionDef::Kill => (StackOp::Kill, "kill"),
                FaultActionDef::Stop => (StackOp::Stop, "stop"),
                _ => (StackOp::Pause, "pause"),
            };
            need_stack(issues, word);
            need_component(issues, word);
            not_with(
                issues,
                "toxic",
                f.toxic.is_some(),
                word,
                "`toxic:` goes with `action: toxic`",
            );
            not_with(
                issues,
                "exec",
                f.exec.is_some(),
                word,
                "`exec:` goes with `action: exec`",
            );
            not_with(
                issues,
                "duration",
                f.duration.is_some(),
                word,
                if op == StackOp::Pause {
                    "write `resume_after:` for how long it stays paused"
                } else {
                    "write `restart_after:` for when it is started again"
                },
            );
            let hold = if op == StackOp::Pause {
                not_with(
                    issues,
                    "restart_after",
                    f.restart_after.is_some(),
                    word,
                    "write `resume_after:` for how long it stays paused",
                );
                f.resume_after
            } else {
                not_with(
                    issues,
                    "resume_after",
                    f.resume_after.is_some(),
                    word,
                    "write `restart_after:` for when it is started again",
                );
                f.restart_after
            };
            (
                component.map(|c| FaultAction::Stack { component: c, op }),
                hold.map(|d| d.as_std()),
            )
        }
        Some(FaultActionDef::Toxic) => {
            need_stack(issues, "toxic");
            need_component(issues, "toxic");
            not_with(
                issues,
                "restart_after",
                f.restart_after.is_some(),
                "toxic",
                "write `duration:` for how long the toxic stays",
            );
            not_with(
                issues,
                "resume_after",
                f.resume_after.is_some(),
                "toxic",
                "write `duration:` for how long the toxic stays",
            );
            not_with(
                issues,
                "exec",
                f.exec.is_some(),
                "toxic",
                "`exec:` goes with `action: exec`",
            );
            if let Some(c) = component {
                if !matches!(c, Component::Redis | Component::Postgres) {
                    // (A region is a set of gateways: no dependency connection to act on.)
                    issues.at(
                        at(&base, &["component"]),
                        format!("toxics act on the connections to a dependency: `redis` or `postgres`, not {c} (kill, stop or pause it instead)"),
                    );
                }
            }
            let fault = match &f.toxic {
                None => {
                    issues.at(at(&base, &["toxic"]), "required with `action: toxic`, e.g. `toxic: { kind: latency, latency: 200ms }` (kinds: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down)");
                    None
                }
                Some(t) => toxic(&at(&base, &["toxic"]), t, issues),
            };
            let action = match (component, fault) {
                (Some(c), Some(fault)) => Some(FaultAction::Network {
                    component: c,
                    fault,
                }),
                _ => None,
            };
            (action, f.duration.map(|d| d.as_std()))
        }
        Some(FaultActionDef::Exec) => {
            not_with(
                issues,
                "restart_after",
                f.restart_after.is_some(),
                "exec",
                "write `duration:` for how long before `recover` runs",
            );
            not_with(
                issues,
                "resume_after",
                f.resume_after.is_some(),
                "exec",
                "write `duration:` for how long before `recover` runs",
            );
            not_with(
                issues,
                "toxic",
                f.toxic.is_some(),
                "exec",
                "`toxic:` goes with `action: toxic`",
            );
            not_with(
                issues,
                "component",
                f.component.is_some() || f.region.is_some(),
                "exec",
                "an exec fault runs a command; name what it acts on in the command",
            );
            let x = match &f.exec {
                None => {
                    issues.at(at(&base, &["exec"]), "required with `action: exec`: `exec: { command: \"...\", check: \"...\" }`");
                    None
                }
                Some(x) => exec(&at(&base, &["exec"]), x, issues),
            };
            (x.map(FaultAction::Exec), f.duration.map(|d| d.as_std()))
        }
        Some(a @ (FaultActionDef::Backup | FaultActionDef::Restore)) => {
            let word = if a == FaultActionDef::Backup {
                "backup"
            } else {
                "restore"
            };
            need_stack(issues, word);
            need_component(issues, word);
            unheld(
                issues,
                word,
                "a backup or restore runs to its end; nothing holds it",
            );
            if let Some(c) = component {
                if c != Component::Postgres {
                    issues.at(
                        at(&base, &["component"]),
                        format!(
                            "`action: {word}` backs up / restores a database: `postgres`, not {c}"
                        ),
                    );
                }
            }
            let action = component.map(|component| {
                if a == FaultActionDef::Backup {
                    FaultAction::Backup { component }
                } else {
                    FaultAction::Restore { component }
                }
            });
            (action, None)
        }
        Some(FaultActionDef::Failover) => {
            need_stack(issues, "failover");
            need_component(issues, "failover");
            unheld(
                issues,
                "failover",
                "a failover is its own recovery (the replica is promoted and the gateways repointed at once)",
            );
            if let Some(c) = component {
                if c != Component::Postgres {
                    issues.at(
                        at(&base, &["component"]),
                        format!("`action: failover` promotes PostgreSQL's replica: write `component: postgres`, not {c} (kill, stop or pause {c} instead)"),
                    );
                }
            }
            if has_stack && !has_replica {
                issues.at(
                    at(&base, &["action"]),
                    "`action: failover` needs a replica to promote: add `postgres: { replica: async }` (or `sync`) under `stack.reference`",
                );
            }
            if f.times.is_some_and(|t| t > 1) {
                issues.at(
                    at(&base, &["times"]),
                    "a failover can run once per run: the promoted replica has no replica of its own to fail over to (run the plan again for more samples)",
                );
            }
            (
                component.map(|component| FaultAction::Failover { component }),
                None,
            )
        }
    };
    if let Some(h) = hold {
        if h.is_zero() {
            let field = match f.action {
                Some(FaultActionDef::Kill | FaultActionDef::Stop) => "restart_after",
                Some(FaultActionDef::Pause) => "resume_after",
                _ => "duration",
            };
            issues.at(at(&base, &[field]), "must be more than 0s");
        }
        if let (Some(e), true) = (every, times > 1) {
            if h >= e {
                issues.at(
                    at(&base, &["every"]),
                    format!("the fault is held {} s, longer than `every` ({} s): each repetition must be undone before the next", h.as_secs_f64(), e.as_secs_f64()),
                );
            }
        }
    }

    let max_rto = match f.expect.as_ref().and_then(|e| e.rto.as_deref()) {
        None => DEFAULT_MAX_RTO,
        Some(text) => match parse_rto(text) {
            Ok(d) => d,
            Err(e) => {
                issues.at(at(&base, &["expect", "rto"]), e.to_string());
                DEFAULT_MAX_RTO
            }
        },
    };
    let ledger = f.expect.as_ref().and_then(|e| {
        (e.lost_writes.is_some() || e.rpo.is_some()).then(|| FaultLedgerExpect {
            max_lost: e.lost_writes.unwrap_or(0),
            max_rpo: e.rpo.map_or(Duration::ZERO, |d| d.as_std()),
        })
    });
    let mut recovery = RecoveryRule::default();
    if let Some(r) = &f.recovery {
        if let Some(s) = r.sustain {
            let s = s.as_std();
            if s < Duration::from_secs(1) {
                issues.at(
                    at(&base, &["recovery", "sustain"]),
                    "must be at least 1s (the series has one value per second)",
                );
            }
            recovery.sustain = s;
        }
        if let Some(o) = r.max_error_rate {
            let v = o.fraction();
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                issues.at(
                    at(&base, &["recovery", "max_error_rate"]),
                    format!(
                        "must be from 0% up to (not including) 100%, e.g. 1% or 0.01; got {}",
                        match o {
                            Objective::Fraction(v) => v.to_string(),
                            Objective::Percent(p) => format!("{}%", p.0),
                        }
                    ),
                );
            }
            recovery.max_error_rate = v;
        }
    }
    let mut scenarios = Vec::new();
    for (i, s) in f.scenarios.iter().flatten().enumerate() {
        if scenario_names.contains(s) {
            scenarios.push(s.clone());
        } else {
            issues.at(
                path!["faults", name, "scenarios", i],
                format!(
                    "no scenario named `{s}`; scenarios: {}",
                    scenario_names
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if issues.0.len() > before {
        return None;
    }
    Some(FaultSpec {
        name: name.to_string(),
        at: first,
        when,
        every: every.filter(|_| times > 1),
        times: times.max(1),
        action: action?,
        hold,
        max_rto,
        recovery,
        scenarios,
        ledger,
    })
}

fn condition(
    base: &[PathSeg],
    w: &WhenDef,
    probe_names: &BTreeSet<String>,
    issues: &mut Issues,
) -> Option<FaultCondition> {
    match (&w.probe_failing, w.error_rate_above) {
        (Some(_), Some(_)) | (None, None) => {
            issues.at(
                base,
                "give exactly one condition: `probe_failing: NAME` or `error_rate_above: 5%`",
            );
            None
        }
        (Some(p), None) => {
            if probe_names.contains(p) {
                Some(FaultCondition::ProbeFailing(p.clone()))
            } else {
                issues.at(
                    at(base, &["probe_failing"]),
                    format!(
                        "no probe named `{p}`; probes: {}",
                        if probe_names.is_empty() {
                            "none (add one under `probes:`)".to_string()
                        } else {
                            probe_names.iter().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                );
                None
            }
        }
        (None, Some(o)) => {
            let v = o.fraction();
            if v.is_finite() && (0.0..1.0).contains(&v) {
                Some(FaultCondition::ErrorRateAbove(v))
            } else {
                issues.at(
                    at(base, &["error_rate_above"]),
                    "must be from 0% up to (not including) 100%, e.g. 5% or 0.05",
                );
                None
            }
        }
    }
}

/// Why an `expect.rto` bound did not parse (a validation message at its line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtoBoundError {
    #[error("write the bound as `<DURATION`, e.g. `\"<15s\"`; got {0:?}")]
    NoBound(String),
    #[error("{source} in {text:?}; write e.g. `\"<15s\"`")]
    Duration {
        text: String,
        #[source]
        source: crate::grammar::units::UnitError,
    },
    #[error("the RTO bound must be more than 0s")]
    Zero,
}

/// `<15s` (or `<=15s`, treated alike at millisecond resolution) -> 15 s.
fn parse_rto(text: &str) -> Result<Duration, RtoBoundError> {
    let t = text.trim();
    let rest = t
        .strip_prefix("<=")
        .or_else(|| t.strip_prefix('<'))
        .ok_or_else(|| RtoBoundError::NoBound(text.to_string()))?;
    let d = crate::grammar::units::parse_duration(rest.trim()).map_err(|source| {
        RtoBoundError::Duration {
            text: text.to_string(),
            source,
        }
    })?;
    if d.is_zero() {
        return Err(RtoBoundError::Zero);
    }
    Ok(d)
}

fn toxic(base: &[PathSeg], t: &ToxicDef, issues: &mut Issues) -> Option<NetworkFault> {
    let Some(kind) = t.kind else {
        issues.at(at(base, &["kind"]), "required: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data or down");
        return None;
    };
    let d = |v: Option<crate::grammar::units::Duration>| v.map(|d| d.as_std());
    // Which parameters each kind takes; any other given one is a problem.
    let allowed: &[&str] = match kind {
        ToxicKindDef::Latency => &["latency", "jitter"],
        ToxicKindDef::Bandwidth => &["rate_kbps"],
        ToxicKindDef::SlowClose => &["delay"],
        ToxicKindDef::Timeout | ToxicKindDef::ResetPeer => &["timeout"],
        ToxicKindDef::Slicer => &["average_size", "size_variation", "delay"],
        ToxicKindDef::LimitData => &["bytes"],
        ToxicKindDef::Down => &[],
    };
    let given = [
        ("latency", t.latency.is_some()),
        ("jitter", t.jitter.is_some()),
        ("rate_kbps", t.rate_kbps.is_some()),
        ("delay", t.delay.is_some()),
        ("timeout", t.timeout.is_some()),
        ("average_size", t.average_size.is_some()),
        ("size_variation", t.size_variation.is_some()),
        ("bytes", t.bytes.is_some()),
    ];
    let kind_name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let before = issues.0.len();
    for (field, present) in given {
        if present && !allowed.contains(&field) {
            issues.at(
                at(base, &[field]),
                format!(
                    "not a parameter of `{kind_name}`{}",
                    if allowed.is_empty() {
                        " (it takes none)".to_string()
                    } else {
                        format!(" (it takes: {})", allowed.join(", "))
                    }
                ),
            );
        }
    }
    let mut require = |field: &str, present: bool, example: &str| {
        if !present {
            issues.at(
                at(base, &[field]),
                format!("required with `kind: {kind_name}`, e.g. `{field}: {example}`"),
            );
        }
    };
    let k = match kind {
        ToxicKindDef::Latency => {
            require("latency", t.latency.is_some(), "200ms");
            Some(ToxicKind::Latency {
                latency: d(t.latency).unwrap_or_default(),
                jitter: d(t.jitter).unwrap_or_default(),
            })
        }
        ToxicKindDef::Bandwidth => {
            require("rate_kbps", t.rate_kbps.is_some(), "100");
            if t.rate_kbps == Some(0) {
                issues.at(at(base, &["rate_kbps"]), "must be at least 1 (KB/s)");
            }
            Some(ToxicKind::Bandwidth {
                rate_kbps: t.rate_kbps.unwrap_or(1),
            })
        }
        ToxicKindDef::SlowClose => {
            require("delay", t.delay.is_some(), "1s");
            Some(ToxicKind::SlowClose {
                delay: d(t.delay).unwrap_or_default(),
            })
        }
        ToxicKindDef::Timeout => {
            require(
                "timeout",
                t.timeout.is_some(),
                "0s (hold silent) or 5s (close after)",
            );
            Some(ToxicKind::Timeout {
                timeout: d(t.timeout).unwrap_or_default(),
            })
        }
        ToxicKindDef::ResetPeer => Some(ToxicKind::ResetPeer {
            timeout: d(t.timeout).unwrap_or_default(),
        }),
        ToxicKindDef::Slicer => {
            require("average_size", t.average_size.is_some(), "64B");
            let avg = t.average_size.map_or(0, |s| s.0);
            let var = t.size_variation.map_or(0, |s| s.0);
            if t.average_size.is_some() && avg == 0 {
                issues.at(at(base, &["average_size"]), "must be at least 1B");
            }
            if var >= avg.max(1) && t.size_variation.is_some() {
                issues.at(
                    at(base, &["size_variation"]),
                    format!("must be less than `average_size` ({avg}B)"),
                );
            }
            Some(ToxicKind::Slicer {
                average_size: avg as usize,
                size_variation: var as usize,
                delay: d(t.delay).unwrap_or_default(),
            })
        }
        ToxicKindDef::LimitData => {
            require("bytes", t.bytes.is_some(), "10KiB");
            Some(ToxicKind::LimitData {
                bytes: t.bytes.map_or(0, |s| s.0),
            })
        }
        ToxicKindDef::Down => {
            for (field, present) in [
                ("stream", t.stream.is_some()),
                ("toxicity", t.toxicity.is_some()),
            ] {
                if present {
                    issues.at(
                        at(base, &[field]),
                        "not used with `kind: down` (the whole proxy goes down)",
                    );
                }
            }
            None
        }
    };
    let toxicity = t.toxicity.unwrap_or(1.0);
    if !(toxicity.is_finite() && (0.0..=1.0).contains(&toxicity)) {
        issues.at(
            at(base, &["toxicity"]),
            format!("must be between 0 and 1; got {toxicity}"),
        );
    }
    if issues.0.len() > before {
        return None;
    }
    Some(match k {
        None => NetworkFault::Down,
        Some(kind) => NetworkFault::Toxics(vec![Toxic {
            kind,
            stream: match t.stream {
                Some(ToxicStreamDef::Upstream) => ToxicStream::Upstream,
                _ => ToxicStream::Downstream,
            },
            toxicity,
        }]),
    })
}

fn exec(base: &[PathSeg], x: &ExecDef, issues: &mut Issues) -> Option<ExecFault> {
    let command = match x.command.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => {
            issues.at(
                at(base, &["command"]),
                "required: the command that injects the fault, run with `sh -c`",
            );
            return None;
        }
    };
    let timeout = x.timeout.map_or(DEFAULT_EXEC_TIMEOUT, |d| d.as_std());
    if timeout.is_zero() {
        issues.at(at(base, &["timeout"]), "must be more than 0s");
    }
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(ExecFault {
        command,
        timeout,
        check: nonempty(&x.check),
        check_within: x.check_within.map_or(DEFAULT_CHECK_WITHIN, |d| d.as_std()),
        recover: nonempty(&x.recover),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_bounds() {
        assert_eq!(parse_rto("<15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_rto(" <= 500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_rto("15s").is_err());
        assert!(parse_rto("<0s").is_err());
        assert!(parse_rto("<soon").is_err());
    }
}

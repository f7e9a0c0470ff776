//! The `faults` controller: injects the plan's faults on the run clock, through the stack
//! control handle (kill / stop / pause a component or a whole region, network toxics on a
//! dependency's fault proxy, a backup or restore of postgres) or exec hooks (any command,
//! confirmed by a check), holds each for its time, undoes it, and records every step as an
//! event (a backup's or restore's `fault_injected` event carries how long it took). When the load has ended it measures each
//! repetition's failover as users saw it ([`crate::checks::failover`], a pure function of the
//! per-second series) and judges it: one `failover` check per fault on the RTO, and one on
//! the injections themselves (a failed or unconfirmed injection fails the drill instead of
//! passing for a quick recovery).
//!
//! A `failover` (postgres) is its own recovery: the task kills the primary, promotes the
//! replica and repoints the gateways through the stack handle, and the repoint is the
//! fault's recovery time.
//!
//! Per-fault write ledger (`expect: { lost_writes, rpo }`): once a repetition's fault has
//! recovered, its task reads back the writes acknowledged before that injection (the
//! workers hand their writes to the aggregator every second) that no earlier fault already
//! lost, retrying reads that fail (the service may still be recovering) up to the fault's
//! RTO bound. So a lost write counts against the fault that lost it, while the run-wide
//! ledger check (every write, read back at the end) still runs.
//!
//! Each fault runs in its own task (spawned on the run's task tracker): injections and
//! recoveries wait for the component (a restart waits for readiness) without holding up the
//! ticks. When the load ends first, the task undoes what it can still undo at once (toxics,
//! a pause, an exec fault's `recover`) and returns; the stack's shutdown stops the rest.
//! Outcomes are shared with the controller through a mutex taken once per injection and
//! once when judging: nothing per request.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};
use crate::checks::failover::{self, Repetition, RtoDistribution};
use crate::checks::ledger::LedgerReport;

pub use super::fault_ledger::LedgerScope;
use super::fault_ledger::{ledger_checks, sum_ledgers, LostIds};
use super::fault_task::FaultTask;
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{round3, EventKind, RunMetrics, SourceKind};
use crate::spec::fault::{FaultCondition, FaultSpec};
use crate::spec::RunSpec;

/// One fault's report: summary.json's `failover` entry (the contract's `fault`, `rto_ms`,
/// `acknowledged_writes`, `lost_writes`, and the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailoverReport {
    /// The fault's name in the plan.
    pub fault: String,
    /// The fault's `action` as the plan writes it (kill, stop, pause, toxic, exec, backup,
    /// restore, ...).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The worst repetition's RTO as users saw it (ms); null when a repetition never
    /// recovered (or was never injected).
    pub rto_ms: Option<f64>,
    /// The RTO bound each repetition must stay under (ms).
    pub max_rto_ms: f64,
    /// Writes the service acknowledged during the drill. Null: this run kept no write
    /// ledger (a plan's `ledger:` requests fill it; none here).
    pub acknowledged_writes: Option<u64>,
    /// Acknowledged writes missing when read back. Null: no write ledger in this run.
    pub lost_writes: Option<u64>,
    /// Acknowledged writes read back different from what was written (null: no ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_writes: Option<u64>,
    /// Writes not acknowledged (timed out, failed) yet present (null: no ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_writes: Option<u64>,
    /// The time span of the lost writes, ms (null: no ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<f64>,
    /// The first lost ids, in time order (null: no ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_ids: Option<Vec<String>>,
    /// Which writes the ledger figures judge: `fault` (the writes acknowledged before each
    /// repetition, read back after it recovered: the fault's `expect.lost_writes`), or
    /// `run` (the whole run's ledger, read back at the end). Absent: no ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_scope: Option<LedgerScope>,
    /// RTO over the repetitions that recovered.
    pub rto: RtoDistribution,
    /// Every planned repetition, in order.
    pub repetitions: Vec<RepetitionReport>,
    pub passed: bool,
}

/// One repetition: how the injection went and what the users saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RepetitionReport {
    /// 1-based.
    pub repetition: u32,
    /// Planned injection time (run clock, s).
    pub planned_s: f64,
    /// Whether the fault was injected (and, with a check, confirmed).
    pub injected: bool,
    /// Why not, or what the injection reported.
    pub detail: String,
    /// When the fault's own recovery (restart, resume, heal) finished (run clock, s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_recovered_s: Option<f64>,
    /// What users saw (absent when the fault was not injected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Repetition>,
    /// The writes acknowledged before this injection, read back after it recovered (only
    /// with the fault's `expect.lost_writes` / `expect.rpo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerReport>,
}

/// What a fault task recorded for one repetition.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) fault: usize,
    /// 0-based.
    pub(super) rep: u32,
    pub(super) injected_at: Duration,
    pub(super) ok: bool,
    pub(super) detail: String,
    pub(super) recovered_at: Option<Duration>,
    /// The per-fault ledger read-back (with `expect.lost_writes` / `rpo`).
    pub(super) ledger: Option<LedgerReport>,
}

pub(super) type Outcomes = Arc<Mutex<Vec<Outcome>>>;

pub(super) fn lock(o: &Outcomes) -> std::sync::MutexGuard<'_, Vec<Outcome>> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `faults` controller; see the module doc.
pub struct Faults {
    specs: Vec<FaultSpec>,
    outcomes: Outcomes,
    agg: Option<Arc<Aggregator>>,
    reports: Option<Vec<FailoverReport>>,
    /// Per fault with a `when:` condition: bumped at every tick the condition holds.
    triggers: Vec<Option<watch::Sender<u64>>>,
    /// The run's series sources: (name, is a scenario), indexed like `SeriesKey::scenario`.
    sources: Vec<(String, bool)>,
    /// Probes whose latest sample failed.
    failing_probes: BTreeSet<String>,
    /// Ids a fault's read-back found lost: a later fault does not count them again.
    lost: LostIds,
}

impl Faults {
    pub fn new(spec: &RunSpec) -> Option<Faults> {
        if spec.faults.is_empty() {
            return None;
        }
        Some(Faults {
            triggers: spec
                .faults
                .iter()
                .map(|f| f.when.as_ref().map(|_| watch::Sender::new(0)))
                .collect(),
            specs: spec.faults.clone(),
            outcomes: Arc::default(),
            agg: None,
            reports: None,
            sources: Vec::new(),
            failing_probes: BTreeSet::new(),
            lost: Arc::default(),
        })
    }

    /// Whether fault `i`'s condition holds at this tick.
    fn holds(&self, spec: &FaultSpec, tick: &Tick<'_>) -> bool {
        match &spec.when {
            None => false,
            Some(FaultCondition::ProbeFailing(p)) => self.failing_probes.contains(p),
            Some(FaultCondition::ErrorRateAbove(bound)) => {
                let Some(last) = tick.seconds.last() else {
                    return false;
                };
                let (mut requests, mut failed) = (0u64, 0u64);
                for (key, stats) in &last.series {
                    let Some((name, scenario)) = self.sources.get(key.scenario as usize) else {
                        continue;
                    };
                    if *scenario && (spec.scenarios.is_empty() || spec.scenarios.contains(name)) {
                        requests += stats.requests;
                        failed += stats.failed;
                    }
                }
                requests > 0 && failed as f64 > bound * requests as f64
            }
        }
    }

    /// Measures every repetition over the final metrics.
    fn judge(&self, metrics: &RunMetrics) -> Vec<FailoverReport> {
        let outcomes = lock(&self.outcomes).clone();
        let mut reports = Vec::new();
        for (fi, spec) in self.specs.iter().enumerate() {
            let seconds = failover::seconds_of(&metrics.timeline, &spec.scenarios);
            let mut reps = Vec::new();
            for rep in 0..spec.times {
                let planned = spec.at_of(rep);
                let outcome = outcomes.iter().find(|o| o.fault == fi && o.rep == rep);
                let Some(o) = outcome else {
                    reps.push(RepetitionReport {
                        repetition: rep + 1,
                        planned_s: round3(planned.as_secs_f64()),
                        injected: false,
                        detail: match &spec.when {
                            Some(c) => format!(
                                "never injected: its condition ({c}) did not hold before the load ended at {} s",
                                round3(metrics.elapsed.as_secs_f64())
                            ),
                            None => format!(
                                "never injected: the load ended at {} s, before its time",
                                round3(metrics.elapsed.as_secs_f64())
                            ),
                        },
                        fault_recovered_s: None,
                        measured: None,
                        ledger: None,
                    });
                    continue;
                };
                // The window ends where the next injection (of this fault or any other)
                // starts, or with the run: what follows belongs to that fault.
                // Faults injected in the same second share it; failed injections are
                // no fault.
                let next = outcomes
                    .iter()
                    .filter(|n| n.ok && n.injected_at.as_secs() > o.injected_at.as_secs())
                    .map(|n| n.injected_at)
                    .min();
                let window_end = next.unwrap_or(metrics.elapsed).max(o.injected_at);
                let measured = o.ok.then(|| {
                    failover::measure(
                        &seconds,
                        rep + 1,
                        o.injected_at,
                        o.recovered_at,
                        window_end,
                        spec.recovery,
                    )
                });
                reps.push(RepetitionReport {
                    repetition: rep + 1,
                    planned_s: round3(planned.as_secs_f64()),
                    injected: o.ok,
                    detail: o.detail.clone(),
                    fault_recovered_s: o.recovered_at.map(|d| round3(d.as_secs_f64())),
                    measured,
                    ledger: o.ledger.clone(),
                });
            }
            let measured: Vec<Repetition> =
                reps.iter().filter_map(|r| r.measured.clone()).collect();
            let rto = failover::distribution(&measured);
            let max_rto_ms = spec.max_rto.as_secs_f64() * 1000.0;
            let all_recovered = reps
                .iter()
                .all(|r| r.measured.as_ref().is_some_and(|m| m.rto_ms.is_some()));
            let worst = if all_recovered { rto.max_ms } else { None };
            let ledger = sum_ledgers(reps.iter().filter_map(|r| r.ledger.as_ref()));
            let mut report = FailoverReport {
                fault: spec.name.clone(),
                action: spec.action.name().to_string(),
                component: spec.action.component().map(|c| c.to_string()),
                rto_ms: worst,
                max_rto_ms,
                acknowledged_writes: None,
                lost_writes: None,
                changed_writes: None,
                recovered_writes: None,
                rpo_ms: None,
                lost_ids: None,
                ledger_scope: None,
                passed: worst.is_some_and(|w| w < max_rto_ms),
                rto,
                repetitions: reps,
            };
            if let Some(l) = &ledger {
                report.set_ledger(l);
                report.ledger_scope = Some(LedgerScope::Fault);
            }
            reports.push(report);
        }
        reports
    }
}

impl Controller for Faults {
    fn name(&self) -> &'static str {
        "faults"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        let agg = ctx.aggregator.clone();
        self.agg = Some(agg.clone());
        self.sources = ctx
            .infos
            .iter()
            .map(|i| (i.name.clone(), i.kind == SourceKind::Scenario))
            .collect();
        for (i, spec) in self.specs.iter().enumerate() {
            let task = FaultTask {
                index: i,
                trigger: self.triggers[i].as_ref().map(|t| t.subscribe()),
                spec: spec.clone(),
                stack: ctx.stack.cloned(),
                agg: agg.clone(),
                origin: ctx.origin,
                stop: ctx.stop.clone(),
                outcomes: self.outcomes.clone(),
                run: ctx.spec.clone(),
                lost: self.lost.clone(),
            };
            ctx.tasks.spawn(task.run());
        }
        Vec::new()
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        for e in tick.events {
            match &e.kind {
                EventKind::ProbeFailure { probe, .. } => {
                    self.failing_probes.insert(probe.clone());
                }
                EventKind::ProbeRecovered { probe, .. } => {
                    self.failing_probes.remove(probe);
                }
                _ => {}
            }
        }
        if !tick.last {
            for (spec, trigger) in self.specs.iter().zip(&self.triggers) {
                if let Some(t) = trigger {
                    if tick.at >= spec.at && self.holds(spec, tick) {
                        t.send_modify(|n| *n += 1);
                    }
                }
            }
            return Vec::new();
        }
        if self.reports.is_some() {
            return Vec::new();
        }
        // The final metrics: measure now, so the users' recoveries land on the timeline
        // (at their own time) before the reports are written.
        let reports = self.judge(tick.snapshot);
        if let Some(agg) = &self.agg {
            for r in &reports {
                for rep in &r.repetitions {
                    let Some(m) = &rep.measured else { continue };
                    if let (Some(at), Some(rto_ms)) = (m.recovered_s, m.rto_ms) {
                        agg.push_event_at(
                            Duration::from_secs_f64(at),
                            EventKind::UsersRecovered {
                                fault: r.fault.clone(),
                                repetition: rep.repetition,
                                rto_ms,
                            },
                        );
                    }
                }
            }
        }
        self.reports = Some(reports);
        Vec::new()
    }

    fn finish(&mut self, end: &End<'_>) -> Conclusion {
        let reports = match self.reports.take() {
            Some(r) => r,
            None => self.judge(end.metrics),
        };
        let mut checks = Vec::new();
        for (r, spec) in reports.iter().zip(&self.specs) {
            checks.push(injection_check(r));
            checks.push(rto_check(r, spec));
            if let Some(expect) = &spec.ledger {
                checks.extend(ledger_checks(r, expect));
            }
        }
        Conclusion {
            checks,
            sections: vec![Section::Failover(reports)],
        }
    }
}

fn secs(ms: f64) -> String {
    format!("{}s", crate::metrics::format_number(ms / 1000.0))
}

fn rto_check(r: &FailoverReport, spec: &FaultSpec) -> CheckResult {
    let n = r.repetitions.len();
    let observed = match r.rto_ms {
        Some(worst) if n == 1 => format!("rto={}", secs(worst)),
        Some(worst) => format!(
            "rto={} (worst of {n}; min {}, median {})",
            secs(worst),
            secs(r.rto.min_ms.unwrap_or(worst)),
            secs(r.rto.median_ms.unwrap_or(worst))
        ),
        None => {
            let why: Vec<String> = r
                .repetitions
                .iter()
                .filter_map(|rep| match &rep.measured {
                    None => Some(format!("#{} not injected", rep.repetition)),
                    Some(m) if m.rto_ms.is_none() => Some(format!(
                        "#{} not recovered by {} s ({} of {} requests failed from {} s)",
                        rep.repetition, m.window_end_s, m.errors, m.requests, m.injected_s
                    )),
                    _ => None,
                })
                .collect();
            format!("no rto: {}", why.join("; "))
        }
    };
    CheckResult {
        name: format!("fault {}: rto < {}", r.fault, secs(r.max_rto_ms)),
        kind: CheckKind::Failover,
        passed: r.passed,
        expected: format!("rto<{}", secs(spec.max_rto.as_secs_f64() * 1000.0)),
        observed,
        runbook: None,
    }
}

fn injection_check(r: &FailoverReport) -> CheckResult {
    let failed: Vec<String> = r
        .repetitions
        .iter()
        .filter(|rep| !rep.injected)
        .map(|rep| format!("#{}: {}", rep.repetition, rep.detail))
        .collect();
    let n = r.repetitions.len();
    CheckResult {
        name: format!("fault {}: injected and confirmed", r.fault),
        kind: CheckKind::Failover,
        passed: failed.is_empty(),
        expected: format!("{n} of {n} injected"),
        observed: if failed.is_empty() {
            format!("{n} of {n} injected")
        } else {
            format!(
                "{} of {n} injected; {}",
                n - failed.len(),
                failed.join("; ")
            )
        },
        runbook: None,
    }
}

//! The run clock's timelines: one row per second and scenario (timeseries.csv, live
//! progress), one [`SecondSlice`] per second with every series' samples of that second (what
//! windowed thresholds and SLO burn rates are computed from), and the typed [`Event`]s that
//! happened on the same clock (scenario start / end, interrupt, abort, probe failures, burn
//! alerts, actions on the stack, and later faults, canary steps and scale decisions), so every
//! report can draw them together.
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ErrorKind, SeriesKey, SeriesStats};
use crate::spec::Severity;

/// One second of one scenario (or probe).
#[derive(Debug, Clone, PartialEq)]
pub struct SecondRow {
    /// Whole seconds since the run started (the row covers `[second, second+1)`).
    pub second: u64,
    /// The scenario's name, or `probe:NAME` for a probe.
    pub scenario: String,
    /// Empty for the whole scenario; a flow's step name for that step's own row (a flow has
    /// one row per second for the scenario and one for each step that completed a response
    /// in that second).
    pub step: String,
    pub requests: u64,
    pub errors: u64,
    /// `errors` by kind, ascending by kind (kinds with no error in that second left out).
    pub errors_by_kind: Vec<(ErrorKind, u64)>,
    /// Latency percentiles of that second, milliseconds (intended send → last byte).
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Every series' samples of one second of the run clock (samples belong to the second in
/// which their response completed). Slices are produced in order, one for every second of
/// the run (empty ones included, so windows advance with time).
#[derive(Debug, Clone, Default)]
pub struct SecondSlice {
    pub second: u64,
    pub series: Vec<(SeriesKey, SeriesStats)>,
    /// Iterations dropped in that second, indexed like `RunMetrics::scenarios`.
    pub dropped: Vec<u64>,
}

/// Something that happened during the run, on the run clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Since the run started.
    pub at: Duration,
    pub kind: EventKind,
}

impl Event {
    pub fn new(at: Duration, kind: EventKind) -> Event {
        Event { at, kind }
    }
}

/// What happened. Serialized with its `kind` tag and fields flattened into the event object
/// of summary.json (`{"at_s": 12.0, "kind": "probe_failure", "probe": "login", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The first worker started a scenario.
    ScenarioStart { scenario: String, executor: String },
    /// The last worker finished a scenario.
    ScenarioEnd { scenario: String },
    /// A worker thread failed; its share of the load did not run.
    WorkerError { reason: String },
    /// Ctrl-C / SIGTERM: the load was stopped, reports cover what ran.
    Interrupt,
    /// A check stopped the run (`abort_on_fail`).
    Abort { check: String, observed: String },
    /// A windowed threshold's first failing window.
    ThresholdBreach {
        check: String,
        window_start_s: f64,
        window_end_s: f64,
        observed: String,
    },
    /// A probe sample failed after a success (or as its first sample).
    ProbeFailure { probe: String, reason: String },
    /// A probe succeeded again after failures.
    ProbeRecovered { probe: String, failed_samples: u64 },
    /// Both windows of an SLO's burn-rate pair burn faster than its factor.
    BurnAlert {
        slo: String,
        severity: Severity,
        long_s: u64,
        short_s: u64,
        factor: f64,
        burn_long: f64,
        burn_short: f64,
    },
    /// The burn-rate pair stopped alerting.
    BurnResolved {
        slo: String,
        severity: Severity,
        long_s: u64,
        short_s: u64,
    },
    /// A controller changed a scenario's arrival rate.
    RateChange { scenario: String, rate: f64 },
    /// A controller changed a scenario's request weights (a traffic split).
    WeightsChange { scenario: String, weights: Vec<u32> },
    /// An operation on a stack component finished (or failed).
    StackAction {
        component: String,
        op: String,
        ok: bool,
        elapsed_ms: f64,
        detail: String,
    },
    /// A controller's action could not be carried out.
    ActionFailed { controller: String, reason: String },
    /// The canary gate applied a weight (percent of traffic to the canary).
    CanaryWeight {
        weight: u32,
        ok: bool,
        elapsed_ms: f64,
        detail: String,
    },
    /// A canary step was judged over its own samples.
    CanaryStep {
        step: u32,
        weight: u32,
        baseline_samples: u64,
        canary_samples: u64,
        /// continue | rollback | inconclusive | nodata
        decision: String,
        detail: String,
    },
    /// A blue/green switch finished (or failed).
    Cutover {
        to: String,
        ok: bool,
        elapsed_ms: f64,
        detail: String,
    },
    /// A blue/green switch's window was judged.
    CutoverJudged {
        to: String,
        passed: bool,
        detail: String,
    },
    /// A step of the capacity search was judged (on the search's clock).
    CapacityStep {
        step: u32,
        /// bracket | bisect | confirm | retry
        phase: String,
        rate: f64,
        achieved_rps: f64,
        p95_ms: f64,
        /// pass | fail | invalid
        verdict: String,
        detail: String,
    },
    /// The canary gate's final decision (promote | rollback | nodata | inconclusive).
    CanaryDecision {
        decision: String,
        expected: Option<String>,
        passed: bool,
        reason: String,
    },
    /// A fault was injected (`ok`), or its injection failed or was not confirmed by its
    /// check. At the time the injection was started.
    FaultInjected {
        fault: String,
        /// 1-based.
        repetition: u32,
        /// kill | stop | pause | toxic | exec
        action: String,
        /// The component acted on (none for exec faults).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<String>,
        ok: bool,
        /// Whether a check confirmed the fault took effect (exec faults with a `check`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirmed: Option<bool>,
        elapsed_ms: f64,
        detail: String,
    },
    /// A fault's own recovery (restart, resume, toxics removed, `recover` command) finished.
    FaultRecovered {
        fault: String,
        repetition: u32,
        ok: bool,
        elapsed_ms: f64,
        detail: String,
    },
    /// The users were served again after a fault (the first second of sustained success),
    /// with the RTO as they saw it. At the recovery's time.
    UsersRecovered {
        fault: String,
        repetition: u32,
        rto_ms: f64,
    },
    /// An autoscaling rule's recommendation (the HPA rule over the scraped metric) changed.
    /// At the scrape's time.
    ScaleRecommended {
        rule: String,
        from: u64,
        to: u64,
        /// The metric's total that produced it.
        metric: f64,
    },
    /// The system's replicas (`desired` or `current`) changed, as scraped. At the scrape's
    /// time.
    ScaleObserved {
        rule: String,
        /// desired | current
        replicas: String,
        from: u64,
        to: u64,
    },
}

impl EventKind {
    /// The `kind` tag, e.g. `scenario_start`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ScenarioStart { .. } => "scenario_start",
            EventKind::ScenarioEnd { .. } => "scenario_end",
            EventKind::WorkerError { .. } => "worker_error",
            EventKind::Interrupt => "interrupt",
            EventKind::Abort { .. } => "abort",
            EventKind::ThresholdBreach { .. } => "threshold_breach",
            EventKind::ProbeFailure { .. } => "probe_failure",
            EventKind::ProbeRecovered { .. } => "probe_recovered",
            EventKind::BurnAlert { .. } => "burn_alert",
            EventKind::BurnResolved { .. } => "burn_resolved",
            EventKind::RateChange { .. } => "rate_change",
            EventKind::WeightsChange { .. } => "weights_change",
            EventKind::StackAction { .. } => "stack_action",
            EventKind::ActionFailed { .. } => "action_failed",
            EventKind::CanaryWeight { .. } => "canary_weight",
            EventKind::CanaryStep { .. } => "canary_step",
            EventKind::CanaryDecision { .. } => "canary_decision",
            EventKind::CapacityStep { .. } => "capacity_step",
            EventKind::Cutover { .. } => "cutover",
            EventKind::CutoverJudged { .. } => "cutover_judged",
            EventKind::FaultInjected { .. } => "fault_injected",
            EventKind::FaultRecovered { .. } => "fault_recovered",
            EventKind::UsersRecovered { .. } => "users_recovered",
            EventKind::ScaleRecommended { .. } => "scale_recommended",
            EventKind::ScaleObserved { .. } => "scale_observed",
        }
    }

    /// One line for people (the table, junit, the HTML report).
    pub fn detail(&self) -> String {
        use super::format_number as n;
        match self {
            EventKind::ScenarioStart { scenario, executor } => format!("{scenario} ({executor})"),
            EventKind::ScenarioEnd { scenario } => scenario.clone(),
            EventKind::WorkerError { reason } => reason.clone(),
            EventKind::Interrupt => {
                "interrupted: stopping the load and writing the reports of what ran".into()
            }
            EventKind::Abort { check, observed } => {
                format!("abort_on_fail check failed: {check} ({observed})")
            }
            EventKind::ThresholdBreach {
                check,
                window_start_s,
                window_end_s,
                observed,
            } => format!(
                "{check}: {observed} in window {}s-{}s",
                n(*window_start_s),
                n(*window_end_s)
            ),
            EventKind::ProbeFailure { probe, reason } => format!("probe {probe} failed: {reason}"),
            EventKind::ProbeRecovered {
                probe,
                failed_samples,
            } => format!("probe {probe} recovered after {failed_samples} failed sample(s)"),
            EventKind::BurnAlert {
                slo,
                severity,
                long_s,
                short_s,
                factor,
                burn_long,
                burn_short,
            } => format!(
                "SLO {slo}: burn {}x over {long_s}s and {}x over {short_s}s exceed {}x ({})",
                n(*burn_long),
                n(*burn_short),
                n(*factor),
                severity.as_str()
            ),
            EventKind::BurnResolved {
                slo,
                severity,
                long_s,
                short_s,
            } => format!(
                "SLO {slo}: {long_s}s/{short_s}s {} alert resolved",
                severity.as_str()
            ),
            EventKind::RateChange { scenario, rate } => {
                format!("{scenario}: arrival rate set to {}/s", n(*rate))
            }
            EventKind::WeightsChange { scenario, weights } => {
                format!("{scenario}: request weights set to {weights:?}")
            }
            EventKind::StackAction {
                component,
                op,
                ok,
                elapsed_ms,
                detail,
            } => format!(
                "{op} {component}: {} in {} ms{}",
                if *ok { "done" } else { "failed" },
                n(*elapsed_ms),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            EventKind::ActionFailed { controller, reason } => format!("{controller}: {reason}"),
            EventKind::CanaryWeight {
                weight,
                ok,
                elapsed_ms,
                detail,
            } => format!(
                "canary weight {weight}%: {} in {} ms{}",
                if *ok { "applied" } else { "failed" },
                n(*elapsed_ms),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            EventKind::CanaryStep {
                step,
                weight,
                baseline_samples,
                canary_samples,
                decision,
                detail,
            } => format!(
                "canary step {step} ({weight}%): {decision} on {baseline_samples} baseline / {canary_samples} canary samples: {detail}"
            ),
            EventKind::Cutover {
                to,
                ok,
                elapsed_ms,
                detail,
            } => format!(
                "switch to {to}: {} in {} ms ({detail})",
                if *ok { "done" } else { "failed" },
                n(*elapsed_ms)
            ),
            EventKind::CutoverJudged { to, passed, detail } => format!(
                "cutover window to {to}: {} ({detail})",
                if *passed { "pass" } else { "fail" }
            ),
            EventKind::CapacityStep {
                step,
                phase,
                rate,
                achieved_rps,
                p95_ms,
                verdict,
                detail,
            } => format!(
                "capacity step {step} ({phase}) at {}/s: achieved {}/s, p95 {} ms: {verdict}{}",
                n(*rate),
                n(*achieved_rps),
                n(*p95_ms),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            EventKind::CanaryDecision {
                decision,
                expected,
                passed,
                reason,
            } => format!(
                "canary gate: {decision}{} ({}): {reason}",
                expected
                    .as_ref()
                    .map(|e| format!(", expected {e}"))
                    .unwrap_or_default(),
                if *passed { "pass" } else { "fail" }
            ),
            EventKind::FaultInjected {
                fault,
                repetition,
                action,
                component,
                ok,
                confirmed,
                elapsed_ms,
                detail,
            } => format!(
                "fault {fault} #{repetition}: {action}{} {} in {} ms{}{}",
                component
                    .as_ref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                if *ok { "injected" } else { "FAILED" },
                n(*elapsed_ms),
                match confirmed {
                    Some(true) => ", confirmed",
                    Some(false) => ", NOT confirmed",
                    None => "",
                },
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            EventKind::FaultRecovered {
                fault,
                repetition,
                ok,
                elapsed_ms,
                detail,
            } => format!(
                "fault {fault} #{repetition}: recovery {} in {} ms{}",
                if *ok { "done" } else { "FAILED" },
                n(*elapsed_ms),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            EventKind::UsersRecovered {
                fault,
                repetition,
                rto_ms,
            } => format!(
                "fault {fault} #{repetition}: users served again, RTO {} s",
                n(*rto_ms / 1000.0)
            ),
            EventKind::ScaleRecommended {
                rule,
                from,
                to,
                metric,
            } => format!(
                "autoscale {rule}: recommendation {from} -> {to} replicas (metric {})",
                n(*metric)
            ),
            EventKind::ScaleObserved {
                rule,
                replicas,
                from,
                to,
            } => format!("autoscale {rule}: {replicas} replicas {from} -> {to}"),
        }
    }
}

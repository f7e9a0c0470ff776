//! The canary gate on the run clock: applies each step's weight, collects the step's samples
//! per side from the per-second slices (responses are tagged baseline / canary by the worker
//! that received them, see [`crate::spec::canary`]; nothing here runs per request), judges the
//! step with [`crate::checks::canary::judge_step`] and acts: next weight, promotion (weight
//! 100), or rollback (weight 0, applied at once; the run goes on and the report shows what
//! the traffic did after it).
//!
//! ```text
//! before --start_after--> applying(step 1) --weight applied--> observing(step 1)
//! observing --judged: continue--> applying(step k+1) | promoting (weight 100)
//!           --judged: rollback / nodata--> rolling back (weight 0)
//!           --judged: inconclusive--> observing(step k, attempt 2) once (on_inconclusive: extend)
//!           --nodata, on_no_data: wait--> the same step, one more second (up to max_wait)
//! ```
//! A step's window starts at the first whole second after its weight was applied and holds
//! `step_duration` seconds; it is judged when the run clock has finalized its last second.
//! Weights are applied by a task (an HTTP call or a command) that puts a `canary_weight`
//! event on the timeline when it is done; the gate waits for that event, so a slow admin API
//! delays the step rather than mixing weights in one window. With a split between two
//! targets loadgate applies the weight itself ([`Action::SetCanaryWeight`]: the workers send
//! that share of iterations to the canary's target), and the run clock records the event.
//!
//! The gate passes when its decision is what `expect` asks (`promote` when not given). NoData
//! (a side that never reached `min_samples`, e.g. a canary that got no traffic) always fails,
//! whatever `expect` says: loadgate owns the traffic, so an empty canary is a broken drill.
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};
use crate::checks::canary::{
    judge_step_with, Decision, ErrorJudgement, LatencyJudgement, Side, ValueJudgement, ValueSum,
};
use crate::checks::mannwhitney::Weighted;
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{format_number, new_histogram, round3, EventKind, SecondSlice, SourceKind};
use crate::spec::{ApplyWeight, CanarySpec, Expect, OnInconclusive, OnNoData, RunSpec, Variant};

/// How long a weight's HTTP call or command may take.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One side of one step, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SideReport {
    pub requests: u64,
    pub failed: u64,
    pub error_rate: f64,
    /// Latency of successful responses, ms.
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// One judged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    /// 1-based step number.
    pub step: u32,
    /// 2 when an inconclusive step was run again.
    pub attempt: u32,
    /// Canary weight, percent.
    pub weight: u32,
    /// The step's window on the run clock, seconds `[from_s, to_s)`.
    pub from_s: u64,
    pub to_s: u64,
    pub baseline: SideReport,
    pub canary: SideReport,
    /// Mann-Whitney U, p-value and Hodges-Lehmann effect size (when latency is compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyJudgement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorJudgement>,
    /// The numbers taken from responses (`compare.values`), per name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueJudgement>,
    pub decision: Decision,
}

/// What the traffic did after a rollback (the errors should stop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AfterRollback {
    /// Run-clock second the rollback's first whole second starts at.
    pub from_s: u64,
    pub seconds: u64,
    pub requests: u64,
    pub failed: u64,
    /// Responses still served by the canary.
    pub canary_requests: u64,
}

/// summary.json's `canary` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryReport {
    /// promote | rollback | nodata | inconclusive (the run ended before the gate decided).
    pub decision: Decision,
    /// What the drill had to see (`promote` when the plan did not say).
    pub expected: String,
    pub passed: bool,
    pub reason: String,
    /// How the sides are told apart: `header` (a response header's value) or `targets`
    /// (loadgate split the load between two URLs itself).
    pub split: String,
    /// The split's header (with `split: header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The baseline and canary: header values, or base URLs.
    pub baseline: String,
    pub canary: String,
    pub min_samples: u64,
    pub steps: Vec<StepReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_rollback: Option<AfterRollback>,
}

/// Samples of one side being collected.
struct Acc {
    latency: Histogram<u64>,
    requests: u64,
    failed: u64,
    values: Vec<ValueSum>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            latency: new_histogram(),
            requests: 0,
            failed: 0,
            values: Vec::new(),
        }
    }

    fn side(&self) -> Side {
        Side {
            latency: Weighted::from_counts(
                self.latency
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to() as f64 / 1000.0, v.count_at_value()))
                    .collect(),
            ),
            requests: self.requests,
            failed: self.failed,
            values: self.values.clone(),
        }
    }

    fn report(&self) -> SideReport {
        let q = |p: f64| {
            if self.latency.is_empty() {
                0.0
            } else {
                round3(self.latency.value_at_quantile(p) as f64 / 1000.0)
            }
        };
        SideReport {
            requests: self.requests,
            failed: self.failed,
            error_rate: if self.requests == 0 {
                0.0
            } else {
                self.failed as f64 / self.requests as f64
            },
            p50_ms: q(0.5),
            p95_ms: q(0.95),
        }
    }
}

enum Phase {
    Before,
    /// A step's weight is being applied.
    Applying {
        step: usize,
    },
    Observing {
        step: usize,
        attempt: u32,
        from: u64,
        /// Exclusive end of the window (grows while waiting for samples).
        end: u64,
        /// The window may grow up to here (`on_no_data: wait`).
        wait_until: u64,
        baseline: Box<Acc>,
        canary: Box<Acc>,
    },
    /// Promotion or rollback applied (or being applied); nothing more to judge.
    Done,
}

/// The gate's conclusion.
struct Final {
    decision: Decision,
    reason: String,
}

pub struct CanaryGate {
    spec: CanarySpec,
    covered: Vec<bool>,
    agg: Option<Arc<Aggregator>>,
    tasks: Option<TaskTracker>,
    client: reqwest::Client,
    phase: Phase,
    /// The weight being applied, if a task is under way.
    applying: Option<u32>,
    steps: Vec<StepReport>,
    fin: Option<Final>,
    /// Rollback evidence: from this second on, count what the traffic did.
    after: Option<AfterRollback>,
    rolled_back_weight_pending: bool,
    /// The scenarios a split between two targets steers.
    split_scenarios: Vec<String>,
    /// Weights to hand to the engine at the end of this tick (split between two targets).
    split_actions: Vec<u32>,
}

impl CanaryGate {
    pub fn new(spec: &RunSpec) -> Option<CanaryGate> {
        let c = spec.canary.clone()?;
        let split_scenarios = spec
            .scenarios
            .iter()
            .filter(|s| c.covers(&s.name))
            .map(|s| s.name.clone())
            .collect();
        Some(CanaryGate {
            spec: *c,
            covered: Vec::new(),
            agg: None,
            tasks: None,
            client: reqwest::Client::builder()
                .timeout(APPLY_TIMEOUT)
                .build()
                .unwrap_or_default(),
            phase: Phase::Before,
            applying: None,
            steps: Vec::new(),
            fin: None,
            after: None,
            rolled_back_weight_pending: false,
            split_scenarios,
            split_actions: Vec::new(),
        })
    }

    fn expected(&self) -> Expect {
        self.spec.expect.unwrap_or(Expect::Promote)
    }

    /// Start applying `weight` (a task; its `canary_weight` event comes back in a tick).
    fn apply(&mut self, weight: u32) {
        self.applying = Some(weight);
        let Some(apply) = self.spec.apply.clone() else {
            // Split between two targets: the engine applies it (end of this tick).
            self.split_actions.push(weight);
            return;
        };
        let (Some(agg), Some(tasks)) = (self.agg.clone(), self.tasks.as_ref()) else {
            return;
        };
        let client = self.client.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let (ok, detail) = apply_weight(&apply, weight, &client).await;
            agg.push_event(EventKind::CanaryWeight {
                weight,
                ok,
                elapsed_ms: round3(t0.elapsed().as_secs_f64() * 1000.0),
                detail,
            });
        });
    }

    fn conclude(&mut self, decision: Decision, reason: String, out: &mut Vec<Action>) {
        if self.fin.is_some() {
            return;
        }
        let expected = self.expected();
        let passed = passes(decision, expected);
        out.push(Action::Record(EventKind::CanaryDecision {
            decision: decision.as_str().into(),
            expected: self.spec.expect.map(|e| e.as_str().to_string()),
            passed,
            reason: reason.clone(),
        }));
        self.fin = Some(Final { decision, reason });
    }

    /// Add a slice's covered, tagged samples to the two sides.
    fn accumulate(&self, slice: &SecondSlice, baseline: &mut Acc, canary: &mut Acc) {
        for (k, s) in &slice.series {
            if !self
                .covered
                .get(k.scenario as usize)
                .copied()
                .unwrap_or(false)
            {
                continue;
            }
            let acc = match k.variant {
                Variant::Baseline => &mut *baseline,
                Variant::Canary => &mut *canary,
                _ => continue,
            };
            acc.requests += s.requests;
            acc.failed += s.failed;
            if k.error.is_none() {
                let _ = acc.latency.add(&s.duration);
            }
            if acc.values.len() < s.values.len() {
                acc.values.resize(s.values.len(), ValueSum::default());
            }
            for (into, v) in acc.values.iter_mut().zip(&s.values) {
                into.merge(v);
            }
        }
    }

    fn weight_applied(
        &mut self,
        weight: u32,
        ok: bool,
        at: Duration,
        detail: &str,
        out: &mut Vec<Action>,
    ) {
        if self.applying != Some(weight) {
            return;
        }
        self.applying = None;
        let next_second = at.as_secs() + 1;
        if !ok {
            let reason = format!("applying weight {weight}% failed: {detail}");
            if weight != 0 {
                self.conclude(Decision::Rollback, reason, out);
                self.start_rollback();
            } else {
                self.conclude(Decision::Rollback, reason, out);
            }
            self.phase = Phase::Done;
            return;
        }
        if self.rolled_back_weight_pending && weight == 0 {
            self.rolled_back_weight_pending = false;
            self.after = Some(AfterRollback {
                from_s: next_second,
                seconds: 0,
                requests: 0,
                failed: 0,
                canary_requests: 0,
            });
            return;
        }
        if let Phase::Applying { step } = self.phase {
            let d = self.spec.step_duration.as_secs().max(1);
            self.phase = Phase::Observing {
                step,
                attempt: 1,
                from: next_second,
                end: next_second + d,
                wait_until: next_second + d + self.spec.max_wait.as_secs(),
                baseline: Box::new(Acc::new()),
                canary: Box::new(Acc::new()),
            };
        }
    }

    fn start_rollback(&mut self) {
        self.rolled_back_weight_pending = true;
        self.apply(0);
    }

    /// Judge the observed step if its window is complete (`last_second`: the latest
    /// finalized second).
    fn maybe_judge(&mut self, last_second: Option<u64>, out: &mut Vec<Action>) {
        let Phase::Observing {
            step,
            attempt,
            from,
            end,
            wait_until,
            ref baseline,
            ref canary,
        } = self.phase
        else {
            return;
        };
        if last_second.is_none_or(|s| s + 1 < end) {
            return;
        }
        let weight = self.spec.steps[step];
        let j = judge_step_with(
            &baseline.side(),
            &canary.side(),
            self.spec.min_samples,
            self.spec.latency.as_ref(),
            self.spec.max_error_rate,
            &self.spec.values,
        );
        if j.decision == Decision::NoData
            && self.spec.on_no_data == OnNoData::Wait
            && end < wait_until
        {
            if let Phase::Observing { end, .. } = &mut self.phase {
                *end += 1;
            }
            return;
        }
        let report = StepReport {
            step: step as u32 + 1,
            attempt,
            weight,
            from_s: from,
            to_s: end,
            baseline: baseline.report(),
            canary: canary.report(),
            latency: j.latency,
            errors: j.errors,
            values: j.values,
            decision: j.decision,
        };
        let detail = step_detail(&report);
        out.push(Action::Record(EventKind::CanaryStep {
            step: report.step,
            weight,
            baseline_samples: report.baseline.requests,
            canary_samples: report.canary.requests,
            decision: j.decision.as_str().into(),
            detail: detail.clone(),
        }));
        self.steps.push(report);
        match j.decision {
            Decision::Continue | Decision::Promote => {
                let next = step + 1;
                if next < self.spec.steps.len() && self.spec.steps[next] < 100 {
                    self.phase = Phase::Applying { step: next };
                    self.apply(self.spec.steps[next]);
                } else {
                    self.phase = Phase::Done;
                    self.conclude(
                        Decision::Promote,
                        format!(
                            "every step passed ({} judged); canary promoted to 100%",
                            self.steps.len()
                        ),
                        out,
                    );
                    self.apply(100);
                }
            }
            Decision::Inconclusive
                if attempt == 1 && self.spec.on_inconclusive == OnInconclusive::Extend =>
            {
                let d = self.spec.step_duration.as_secs().max(1);
                self.phase = Phase::Observing {
                    step,
                    attempt: 2,
                    from: end,
                    end: end + d,
                    wait_until: end + d + self.spec.max_wait.as_secs(),
                    baseline: Box::new(Acc::new()),
                    canary: Box::new(Acc::new()),
                };
            }
            Decision::Inconclusive | Decision::Rollback => {
                self.phase = Phase::Done;
                self.conclude(
                    Decision::Rollback,
                    format!("step {} ({weight}%): {detail}", step + 1),
                    out,
                );
                self.start_rollback();
            }
            Decision::NoData => {
                self.phase = Phase::Done;
                self.conclude(
                    Decision::NoData,
                    format!("step {} ({weight}%): {detail}", step + 1),
                    out,
                );
                self.start_rollback();
            }
        }
    }

    fn report(&self) -> CanaryReport {
        let (decision, reason) = match &self.fin {
            Some(f) => (f.decision, f.reason.clone()),
            None => (
                Decision::Inconclusive,
                "the run ended before the gate decided".into(),
            ),
        };
        CanaryReport {
            decision,
            expected: self.expected().as_str().into(),
            passed: passes(decision, self.expected()),
            reason,
            split: match self.spec.split.header() {
                Some(_) => "header".into(),
                None => "targets".into(),
            },
            header: self.spec.split.header().map(|h| h.header.clone()),
            baseline: self.spec.split.baseline().to_string(),
            canary: self.spec.split.canary().to_string(),
            min_samples: self.spec.min_samples,
            steps: self.steps.clone(),
            after_rollback: self.after.clone(),
        }
    }
}

fn passes(decision: Decision, expected: Expect) -> bool {
    matches!(
        (decision, expected),
        (Decision::Promote, Expect::Promote) | (Decision::Rollback, Expect::Rollback)
    )
}

/// One line about a judged step: the metrics that decided it.
pub fn step_detail(r: &StepReport) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &r.latency {
        let mut s = format!("latency {}", l.class.as_str());
        if let (Some(p), Some(ratio)) = (l.p_value, l.ratio) {
            s.push_str(&format!(
                " (p={}, effect x{} [{}, {}])",
                format_number(p),
                format_number(ratio),
                format_number(l.ratio_lower.unwrap_or(ratio)),
                format_number(l.ratio_upper.unwrap_or(ratio)),
            ));
        }
        parts.push(s);
    }
    if let Some(e) = &r.errors {
        parts.push(format!(
            "errors {} ({}% vs max {}%)",
            e.class.as_str(),
            format_number(e.canary_rate * 100.0),
            format_number(e.max * 100.0)
        ));
    }
    for v in &r.values {
        let mut s = format!("{} {}", v.name, v.class.as_str());
        if let Some(c) = v.canary_mean {
            s.push_str(&format!(" (mean {}", format_number(c)));
            if let Some(b) = v.baseline_mean {
                s.push_str(&format!(" vs {}", format_number(b)));
            }
            if let Some(bound) = &v.failed_bound {
                s.push_str(&format!(", over {bound}"));
            }
            s.push(')');
        }
        parts.push(s);
    }
    if r.decision == Decision::NoData {
        parts.push(format!(
            "{} baseline / {} canary samples",
            r.baseline.requests, r.canary.requests
        ));
    }
    parts.join(", ")
}

/// Apply `weight` with `apply`: `(ok, detail)`.
async fn apply_weight(
    apply: &ApplyWeight,
    weight: u32,
    client: &reqwest::Client,
) -> (bool, String) {
    apply_value(
        apply,
        "weight",
        "CANARY_WEIGHT",
        &weight.to_string(),
        client,
    )
    .await
}

/// Run `apply` with `{{NAME}}` replaced by `w` (and `env_name=w` in a command's
/// environment): `(ok, detail)`.
pub(super) async fn apply_value(
    apply: &ApplyWeight,
    name: &str,
    env_name: &str,
    w: &str,
    client: &reqwest::Client,
) -> (bool, String) {
    let placeholder = format!("{{{{{name}}}}}");
    match apply {
        ApplyWeight::Http {
            method,
            url,
            headers,
            body,
        } => {
            let method =
                reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::PUT);
            let mut req = client
                .request(method.clone(), url.replace(&placeholder, w))
                .body(body.replace(&placeholder, w));
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => (true, format!("{method} {}", r.status())),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    (
                        false,
                        format!("{method} answered {status}: {}", text.trim()),
                    )
                }
                Err(e) => (false, format!("{method} failed: {e}")),
            }
        }
        ApplyWeight::Command { argv } => {
            let args: Vec<String> = argv.iter().map(|a| a.replace(&placeholder, w)).collect();
            let Some((prog, rest)) = args.split_first() else {
                return (false, "empty command".into());
            };
            let mut cmd = tokio::process::Command::new(prog);
            cmd.args(rest)
                .env(env_name, w)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            match tokio::time::timeout(APPLY_TIMEOUT, cmd.output()).await {
                Ok(Ok(o)) if o.status.success() => (true, format!("{prog} exited 0")),
                Ok(Ok(o)) => (
                    false,
                    format!(
                        "{prog} exited {}: {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                ),
                Ok(Err(e)) => (false, format!("cannot run {prog}: {e}")),
                Err(_) => (
                    false,
                    format!("{prog} did not finish within {APPLY_TIMEOUT:?}"),
                ),
            }
        }
    }
}

impl Controller for CanaryGate {
    fn name(&self) -> &'static str {
        "canary"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        self.covered = ctx
            .infos
            .iter()
            .map(|i| i.kind == SourceKind::Scenario && self.spec.covers(&i.name))
            .collect();
        self.agg = Some(ctx.aggregator.clone());
        self.tasks = Some(ctx.tasks.clone());
        Vec::new()
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        for e in tick.events {
            if let EventKind::CanaryWeight {
                weight, ok, detail, ..
            } = &e.kind
            {
                self.weight_applied(*weight, *ok, e.at, detail, &mut out);
            }
        }
        for slice in tick.seconds {
            if let Some(a) = &mut self.after {
                if slice.second >= a.from_s {
                    a.seconds += 1;
                    for (k, s) in &slice.series {
                        if self
                            .covered
                            .get(k.scenario as usize)
                            .copied()
                            .unwrap_or(false)
                        {
                            a.requests += s.requests;
                            a.failed += s.failed;
                            if k.variant == Variant::Canary {
                                a.canary_requests += s.requests;
                            }
                        }
                    }
                }
            }
            let mut phase = std::mem::replace(&mut self.phase, Phase::Done);
            if let Phase::Observing {
                from,
                end,
                baseline,
                canary,
                ..
            } = &mut phase
            {
                if slice.second >= *from && slice.second < *end {
                    self.accumulate(slice, baseline, canary);
                }
            }
            self.phase = phase;
            // Judge as soon as a window is complete (a step may end mid-batch).
            self.maybe_judge(Some(slice.second), &mut out);
        }
        if matches!(self.phase, Phase::Before) && tick.at >= self.spec.start_after && !tick.last {
            self.phase = Phase::Applying { step: 0 };
            self.apply(self.spec.steps[0]);
        }
        if tick.last && self.fin.is_none() {
            let reason = match &self.phase {
                Phase::Before => "the load ended before the first step".to_string(),
                Phase::Applying { step } => format!(
                    "the load ended while step {} ({}%) was being applied",
                    step + 1,
                    self.spec.steps[*step]
                ),
                Phase::Observing { step, .. } => format!(
                    "the load ended during step {} ({}%) before it was judged",
                    step + 1,
                    self.spec.steps[*step]
                ),
                Phase::Done => "the load ended".to_string(),
            };
            self.conclude(Decision::Inconclusive, reason, &mut out);
        }
        for weight in self.split_actions.drain(..) {
            out.push(Action::SetCanaryWeight {
                scenarios: self.split_scenarios.clone(),
                weight,
            });
        }
        out
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        let r = self.report();
        let check = CheckResult {
            name: "canary gate".into(),
            kind: CheckKind::Canary,
            passed: r.passed,
            expected: r.expected.clone(),
            observed: format!("{}: {}", r.decision.as_str(), r.reason),
            runbook: self.spec.runbook.clone(),
        };
        Conclusion {
            checks: vec![check],
            sections: vec![Section::Canary(Box::new(r))],
        }
    }
}

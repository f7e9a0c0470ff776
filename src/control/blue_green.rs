//! The blue/green cutover drill on the run clock: at `cutover_at` switch all traffic to green
//! (an HTTP call or a command, as the canary's weights), at `switch_back_at` back to blue
//! (the rollback), and judge each switch over the `window` seconds that follow it, from the
//! per-second slices of the tagged scenarios:
//!
//! ```text
//! failed      failed requests in the window            <= max_failed (default 0)
//! worst       the window's second with the highest p99  <= max_p99 (when given)
//! switched    from some second of the window on, every tagged response came from the new
//!             version; cutover_s = that second's start - the switch's request time
//! ```
//! A switch passes when all three hold (and its call succeeded). One `canary` check per switch
//! (`blue-green cutover to v2`, `blue-green switch back to v1`).
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;

use super::canary::apply_value;
use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{format_number, new_histogram, round3, EventKind, SourceKind};
use crate::spec::{BlueGreenSpec, RunSpec, Variant};

/// The worst second of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorstSecond {
    /// Run-clock second `[at_s, at_s + 1)`.
    pub at_s: u64,
    pub p99_ms: f64,
    pub requests: u64,
    pub failed: u64,
}

/// Which way a switch goes: blue to green, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwitchKind {
    Cutover,
    SwitchBack,
}

impl std::fmt::Display for SwitchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwitchKind::Cutover => "cutover",
            SwitchKind::SwitchBack => "switch_back",
        })
    }
}

/// One switch and its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CutoverReport {
    /// `cutover` or `switch_back`.
    pub kind: SwitchKind,
    /// The version switched to.
    pub to: String,
    /// When the switch was requested (run clock, s).
    pub requested_at_s: f64,
    /// How long the switch's call took, ms (None: it never finished).
    pub switch_ms: Option<f64>,
    pub switch_ok: bool,
    /// The judged window `[from_s, to_s)`.
    pub from_s: u64,
    pub to_s: u64,
    pub requests: u64,
    pub failed: u64,
    /// Responses from the old version inside the window.
    pub old_version_requests: u64,
    /// From the switch's request to the start of the first second from which every tagged
    /// response came from the new version (None: the traffic never fully moved).
    pub cutover_s: Option<f64>,
    pub worst_second: Option<WorstSecond>,
    pub passed: bool,
    pub reason: String,
}

/// summary.json's `blue_green` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlueGreenReport {
    pub header: String,
    pub blue: String,
    pub green: String,
    pub max_failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    pub switches: Vec<CutoverReport>,
}

/// A switch under way or judged.
struct Switch {
    kind: SwitchKind,
    to: String,
    requested: Duration,
    switch_ms: Option<f64>,
    switch_ok: bool,
    from: u64,
    to_s: u64,
    requests: u64,
    failed: u64,
    old: u64,
    /// Per second of the window: did an old-version response appear?
    old_seconds: Vec<(u64, bool)>,
    worst: Option<WorstSecond>,
    judged: bool,
}

pub struct BlueGreen {
    spec: BlueGreenSpec,
    covered: Vec<bool>,
    agg: Option<Arc<Aggregator>>,
    tasks: Option<TaskTracker>,
    client: reqwest::Client,
    switches: Vec<Switch>,
    /// Planned switches not yet requested: (at, kind, to-version).
    plan: Vec<(Duration, SwitchKind, String)>,
}

impl BlueGreen {
    pub fn new(spec: &RunSpec) -> Option<BlueGreen> {
        let b = spec.blue_green.clone()?;
        let mut plan = vec![(b.cutover_at, SwitchKind::Cutover, b.split.canary.clone())];
        if let Some(back) = b.switch_back_at {
            plan.push((back, SwitchKind::SwitchBack, b.split.baseline.clone()));
        }
        Some(BlueGreen {
            spec: *b,
            covered: Vec::new(),
            agg: None,
            tasks: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            switches: Vec::new(),
            plan,
        })
    }

    fn request(&mut self, at: Duration, kind: SwitchKind, to: String) {
        let window = self.spec.window.as_secs().max(1);
        // The window starts with the second the switch is requested in.
        let from = at.as_secs();
        self.switches.push(Switch {
            kind,
            to: to.clone(),
            requested: at,
            switch_ms: None,
            switch_ok: false,
            from,
            to_s: from + window + 1,
            requests: 0,
            failed: 0,
            old: 0,
            old_seconds: Vec::new(),
            worst: None,
            judged: false,
        });
        let (Some(agg), Some(tasks)) = (self.agg.clone(), self.tasks.as_ref()) else {
            return;
        };
        let apply = self.spec.apply.clone();
        let client = self.client.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let (ok, detail) = apply_value(&apply, "version", "VERSION", &to, &client).await;
            agg.push_event(EventKind::Cutover {
                to,
                ok,
                elapsed_ms: round3(t0.elapsed().as_secs_f64() * 1000.0),
                detail,
            });
        });
    }

    fn report_of(&self, s: &Switch) -> CutoverReport {
        // The first second from which no old-version response appeared until the window's end.
        let mut moved_from = None;
        for (sec, old) in s.old_seconds.iter().rev() {
            if *old {
                break;
            }
            moved_from = Some(*sec);
        }
        let cutover_s =
            moved_from.map(|sec| round3((sec as f64 - s.requested.as_secs_f64()).max(0.0)));
        let mut reasons = Vec::new();
        if !s.switch_ok {
            reasons.push("the switch call failed or never finished".to_string());
        }
        if s.failed > self.spec.max_failed {
            reasons.push(format!(
                "{} failed requests (at most {} allowed)",
                s.failed, self.spec.max_failed
            ));
        }
        if let (Some(max), Some(w)) = (self.spec.max_p99_ms, &s.worst) {
            if w.p99_ms > max {
                reasons.push(format!(
                    "second {} had p99 {} ms (bound {} ms)",
                    w.at_s,
                    format_number(w.p99_ms),
                    format_number(max)
                ));
            }
        }
        if cutover_s.is_none() {
            reasons.push(format!(
                "traffic never fully moved to {} within the window",
                s.to
            ));
        }
        if s.requests == 0 {
            reasons.push("no requests in the window (nothing judged)".into());
        }
        let passed = reasons.is_empty() && s.judged;
        if !s.judged {
            reasons.push("the run ended before the window did".into());
        }
        CutoverReport {
            kind: s.kind,
            to: s.to.clone(),
            requested_at_s: round3(s.requested.as_secs_f64()),
            switch_ms: s.switch_ms,
            switch_ok: s.switch_ok,
            from_s: s.from,
            to_s: s.to_s,
            requests: s.requests,
            failed: s.failed,
            old_version_requests: s.old,
            cutover_s,
            worst_second: s.worst.clone(),
            passed,
            reason: if reasons.is_empty() {
                format!(
                    "{} requests, {} failed, all on {} from {} s after the switch",
                    s.requests,
                    s.failed,
                    s.to,
                    cutover_s.map(format_number).unwrap_or_default()
                )
            } else {
                reasons.join("; ")
            },
        }
    }
}

impl Controller for BlueGreen {
    fn name(&self) -> &'static str {
        "blue_green"
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
            if let EventKind::Cutover {
                to, ok, elapsed_ms, ..
            } = &e.kind
            {
                if let Some(s) = self
                    .switches
                    .iter_mut()
                    .find(|s| &s.to == to && s.switch_ms.is_none())
                {
                    s.switch_ms = Some(*elapsed_ms);
                    s.switch_ok = *ok;
                }
            }
        }
        for slice in tick.seconds {
            for i in 0..self.switches.len() {
                let (from, to_s, judged) = {
                    let s = &self.switches[i];
                    (s.from, s.to_s, s.judged)
                };
                if judged || slice.second < from || slice.second >= to_s {
                    continue;
                }
                let old_variant = if self.switches[i].to == self.spec.split.canary {
                    Variant::Baseline
                } else {
                    Variant::Canary
                };
                let mut hist: Histogram<u64> = new_histogram();
                let (mut req, mut failed, mut old) = (0, 0, 0);
                for (k, st) in &slice.series {
                    if !self
                        .covered
                        .get(k.scenario as usize)
                        .copied()
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    req += st.requests;
                    failed += st.failed;
                    if k.variant == old_variant {
                        old += st.requests;
                    }
                    let _ = hist.add(&st.duration);
                }
                let s = &mut self.switches[i];
                s.requests += req;
                s.failed += failed;
                s.old += old;
                s.old_seconds.push((slice.second, old > 0));
                let p99 = if hist.is_empty() {
                    0.0
                } else {
                    round3(hist.value_at_quantile(0.99) as f64 / 1000.0)
                };
                if req > 0 && s.worst.as_ref().is_none_or(|w| p99 > w.p99_ms) {
                    s.worst = Some(WorstSecond {
                        at_s: slice.second,
                        p99_ms: p99,
                        requests: req,
                        failed,
                    });
                }
                if slice.second + 1 >= s.to_s {
                    s.judged = true;
                }
            }
            for i in 0..self.switches.len() {
                let s = &self.switches[i];
                if s.judged && !s.old_seconds.is_empty() && s.to_s == slice.second + 1 {
                    let r = self.report_of(s);
                    out.push(Action::Record(EventKind::CutoverJudged {
                        to: r.to.clone(),
                        passed: r.passed,
                        detail: r.reason.clone(),
                    }));
                }
            }
        }
        if !tick.last {
            while let Some((at, _, _)) = self.plan.first() {
                if tick.at < *at {
                    break;
                }
                let (_, kind, to) = self.plan.remove(0);
                self.request(tick.at, kind, to);
            }
        }
        out
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        let mut checks = Vec::new();
        let mut reports = Vec::new();
        for s in &self.switches {
            let r = self.report_of(s);
            checks.push(CheckResult {
                name: match s.kind {
                    SwitchKind::Cutover => format!("blue-green cutover to {}", s.to),
                    SwitchKind::SwitchBack => format!("blue-green switch back to {}", s.to),
                },
                kind: CheckKind::Canary,
                passed: r.passed,
                expected: format!(
                    "at most {} failed{}, all traffic on {}",
                    self.spec.max_failed,
                    self.spec
                        .max_p99_ms
                        .map(|m| format!(", every second's p99 <= {} ms", format_number(m)))
                        .unwrap_or_default(),
                    s.to
                ),
                observed: r.reason.clone(),
                runbook: self.spec.runbook.clone(),
            });
            reports.push(r);
        }
        for (_, kind, to) in &self.plan {
            checks.push(CheckResult {
                name: format!("blue-green {kind} to {to}"),
                kind: CheckKind::Canary,
                passed: false,
                expected: "the switch happens during the load".into(),
                observed: "the load ended before it was due".into(),
                runbook: self.spec.runbook.clone(),
            });
        }
        Conclusion {
            checks,
            sections: vec![Section::BlueGreen(Box::new(BlueGreenReport {
                header: self.spec.split.header.clone(),
                blue: self.spec.split.baseline.clone(),
                green: self.spec.split.canary.clone(),
                max_failed: self.spec.max_failed,
                max_p99_ms: self.spec.max_p99_ms,
                switches: reports,
            }))],
        }
    }
}

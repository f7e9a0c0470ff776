//! The thresholds controller: judges the plan's thresholds. Whole-run expressions are judged
//! on the final metrics; windowed ones (`over 30s`) on every window as the seconds arrive,
//! recording a `threshold_breach` event at the first failing window. `abort_on_fail` is
//! checked every tick once its `delay` has passed: on the live cumulative metrics for a
//! whole-run expression (failing for lack of data does not abort), on each new window for a
//! windowed one. An aborted run's threshold stays failed even when the shorter final data
//! would pass it.
use crate::checks::threshold_eval;
use crate::checks::window::WindowJudge;
use crate::checks::{threshold_check_name, CheckKind, CheckResult};
use crate::metrics::{EventKind, ScenarioInfo};
use crate::spec::{RunSpec, ThresholdSpec};

use super::{Action, Conclusion, Controller, End, StartCtx, Stopped, Tick};

pub struct Thresholds {
    specs: Vec<ThresholdSpec>,
    windows: Vec<Option<WindowJudge>>,
    infos: Vec<ScenarioInfo>,
    /// The threshold (index) that aborted the run, with what it saw then.
    aborted: Option<(usize, String)>,
}

impl Thresholds {
    pub fn new(spec: &RunSpec) -> Thresholds {
        Thresholds {
            windows: spec
                .thresholds
                .iter()
                .map(|t| t.expr.window.map(|_| WindowJudge::new(t)))
                .collect(),
            specs: spec.thresholds.clone(),
            infos: Vec::new(),
            aborted: None,
        }
    }
}

impl Controller for Thresholds {
    fn name(&self) -> &'static str {
        "thresholds"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        self.infos = ctx.infos.to_vec();
        Vec::new()
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        for slice in tick.seconds {
            for (i, judge) in self.windows.iter_mut().enumerate() {
                let Some(judge) = judge else { continue };
                let Some(w) = judge.push(slice, &self.infos) else {
                    continue;
                };
                let t = &self.specs[i];
                let observed = format!(
                    "{}={}",
                    t.expr.aggregation,
                    crate::metrics::format_number(w.value)
                );
                actions.push(Action::Record(EventKind::ThresholdBreach {
                    check: threshold_check_name(t),
                    window_start_s: w.start as f64,
                    window_end_s: w.end as f64,
                    observed: observed.clone(),
                }));
                if t.abort_on_fail
                    && self.aborted.is_none()
                    && std::time::Duration::from_secs(w.end) >= t.delay
                    && !tick.last
                {
                    let observed = format!("{observed} in {}s-{}s", w.start, w.end);
                    self.aborted = Some((i, observed.clone()));
                    actions.push(Action::Stop(Stopped::Aborted {
                        check: threshold_check_name(t),
                        observed,
                    }));
                }
            }
        }
        if self.aborted.is_none() && !tick.last {
            for (i, t) in self.specs.iter().enumerate() {
                if !t.abort_on_fail || t.expr.window.is_some() || tick.at < t.delay {
                    continue;
                }
                let outcome = threshold_eval::evaluate(t, tick.snapshot);
                if !outcome.passed && !outcome.no_data {
                    // Said with its time: the final table covers the whole run and may show
                    // a different figure.
                    let observed = format!(
                        "{} over the first {}s",
                        outcome.observed,
                        tick.snapshot.elapsed.as_secs()
                    );
                    self.aborted = Some((i, observed.clone()));
                    actions.push(Action::Stop(Stopped::Aborted {
                        check: threshold_check_name(t),
                        observed,
                    }));
                    break;
                }
            }
        }
        actions
    }

    fn finish(&mut self, end: &End<'_>) -> Conclusion {
        let mut checks = Vec::new();
        for (i, t) in self.specs.iter().enumerate() {
            let outcome = match &mut self.windows[i] {
                Some(judge) => judge.outcome(),
                None => threshold_eval::evaluate(t, end.metrics),
            };
            let mut check = CheckResult {
                name: threshold_check_name(t),
                kind: CheckKind::Threshold,
                passed: outcome.passed,
                expected: t.expr.to_string(),
                observed: outcome.observed,
                runbook: t.runbook.clone(),
            };
            if let Some((idx, seen)) = &self.aborted {
                // The run was judged failing when it was stopped; the shorter final data must
                // not turn that into a pass.
                if *idx == i && check.passed {
                    check.passed = false;
                    check.observed = format!("{seen} (when aborted)");
                }
            }
            checks.push(check);
        }
        Conclusion {
            checks,
            sections: Vec::new(),
        }
    }
}

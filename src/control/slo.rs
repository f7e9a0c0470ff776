//! The SLO controller: feeds each second's good / total counts into one
//! [`SloTracker`] per SLO as the seconds arrive, puts burn-rate alerts (and their
//! resolution) on the run's timeline when they happen, and at the end reports each SLO's
//! error budget, burn rates and verdict (one `slo` check and one `slos` entry per SLO). The
//! arithmetic is in [`crate::checks::slo`].
use crate::checks::slo::{check_texts, SloTracker, Transition};
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::{EventKind, ScenarioInfo};
use crate::spec::RunSpec;

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};

pub struct Slos {
    trackers: Vec<SloTracker>,
    infos: Vec<ScenarioInfo>,
    finished: bool,
}

impl Slos {
    pub fn new(spec: &RunSpec) -> Slos {
        Slos {
            trackers: spec.slos.iter().map(SloTracker::new).collect(),
            infos: Vec::new(),
            finished: false,
        }
    }

    fn events(name: &str, transitions: Vec<Transition>, out: &mut Vec<Action>) {
        for t in transitions {
            let kind = match t {
                Transition::Fired {
                    window,
                    burn_long,
                    burn_short,
                    ..
                } => EventKind::BurnAlert {
                    slo: name.to_string(),
                    severity: window.severity,
                    long_s: window.long.as_secs(),
                    short_s: window.short.as_secs(),
                    factor: window.factor,
                    burn_long,
                    burn_short,
                },
                Transition::Resolved { window, .. } => EventKind::BurnResolved {
                    slo: name.to_string(),
                    severity: window.severity,
                    long_s: window.long.as_secs(),
                    short_s: window.short.as_secs(),
                },
            };
            out.push(Action::Record(kind));
        }
    }
}

impl Controller for Slos {
    fn name(&self) -> &'static str {
        "slos"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        self.infos = ctx.infos.to_vec();
        Vec::new()
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        for t in &mut self.trackers {
            let name = t.spec().name.clone();
            for slice in tick.seconds {
                let tr = t.push(slice, &self.infos);
                Slos::events(&name, tr, &mut out);
            }
            if tick.last && !self.finished {
                let tr = t.finish();
                Slos::events(&name, tr, &mut out);
            }
        }
        if tick.last {
            self.finished = true;
        }
        out
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        if !self.finished {
            for t in &mut self.trackers {
                t.finish();
            }
            self.finished = true;
        }
        let mut checks = Vec::new();
        let mut reports = Vec::new();
        for t in &self.trackers {
            let r = t.report();
            let (expected, observed) = check_texts(&r, t.spec().min_samples);
            checks.push(CheckResult {
                name: format!("slo {}", r.name),
                kind: CheckKind::Slo,
                passed: r.passed,
                expected,
                observed,
                runbook: t.spec().runbook.clone(),
            });
            reports.push(r);
        }
        Conclusion {
            checks,
            sections: vec![Section::Slos(reports)],
        }
    }
}

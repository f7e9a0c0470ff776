//! Judging the union: the run's own threshold and SLO controllers, replayed over the merged
//! slices, so a merge reaches the verdict one machine would.
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::CheckResult;
use crate::control::slo::Slos;
use crate::control::threshold::Thresholds;
use crate::control::{Action, Controller, End, Section, StartCtx, Stopped, Tick};
use crate::metrics::recorder::Aggregator;
use crate::metrics::{Event, EventKind, RunMetrics, SecondSlice};
use crate::spec::RunSpec;

/// Judge the union: the run's threshold and SLO controllers, fed the merged slices second by
/// second (their events land at the end of the second that caused them), then the final
/// metrics. A windowed `abort_on_fail` that fires marks its check as a run would; the load
/// has already ended, so nothing is stopped.
pub(super) fn replay(
    spec: &RunSpec,
    merged: &RunMetrics,
    slices: &[SecondSlice],
    stopped: Option<&Stopped>,
) -> (Vec<CheckResult>, Vec<Section>, Vec<Event>) {
    let spec = Arc::new(spec.clone());
    let mut controllers: Vec<Box<dyn Controller>> = vec![Box::new(Thresholds::new(&spec))];
    if !spec.slos.is_empty() {
        controllers.push(Box::new(Slos::new(&spec)));
    }
    let infos = merged.scenarios.clone();
    let aggregator = Arc::new(Aggregator::new(
        Instant::now(),
        infos.clone(),
        vec![Duration::ZERO; infos.len()],
        0,
    ));
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    let ctx = StartCtx {
        spec: &spec,
        origin: Instant::now(),
        aggregator: &aggregator,
        engine_threads: 0,
        infos: &infos,
        tasks: &tasks,
        stop: &stop,
    };
    for c in controllers.iter_mut() {
        let _ = c.on_start(&ctx);
    }
    // Between seconds the judges see no cumulative data: whole-run thresholds are judged once,
    // on the final metrics (a merge cannot abort a load that has already ended).
    let empty = RunMetrics {
        scenarios: infos.clone(),
        ..RunMetrics::default()
    };
    let mut events = Vec::new();
    let record = |at: Duration, actions: Vec<Action>, events: &mut Vec<Event>| {
        for a in actions {
            if let Action::Record(kind) = a {
                let at = match &kind {
                    EventKind::ThresholdBreach { window_end_s, .. } => {
                        Duration::from_secs_f64(*window_end_s)
                    }
                    _ => at,
                };
                events.push(Event::new(at, kind));
            }
        }
    };
    for slice in slices {
        let at = Duration::from_secs(slice.second + 1);
        let tick = Tick {
            at,
            snapshot: &empty,
            seconds: std::slice::from_ref(slice),
            events: &[],
            last: false,
        };
        for c in controllers.iter_mut() {
            let actions = c.on_tick(&tick);
            record(at, actions, &mut events);
        }
    }
    let last = Tick {
        at: merged.elapsed,
        snapshot: merged,
        seconds: &[],
        events: &[],
        last: true,
    };
    for c in controllers.iter_mut() {
        let actions = c.on_tick(&last);
        record(merged.elapsed, actions, &mut events);
    }
    let mut checks = Vec::new();
    let mut sections = Vec::new();
    for c in controllers.iter_mut() {
        let done = c.finish(&End {
            metrics: merged,
            stopped,
        });
        checks.extend(done.checks);
        sections.extend(done.sections);
    }
    (checks, sections, events)
}

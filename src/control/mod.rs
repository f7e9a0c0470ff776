//! Controllers: everything that watches or changes a running test, on the run clock.
//!
//! The run clock ([`crate::run`]) drives the engine and a list of controllers. Once a second
//! each controller gets a [`Tick`]: the live cumulative metrics, the seconds finalized since
//! the last tick (per-series [`SecondSlice`]s) and the events recorded since then. It answers
//! with [`Action`]s (stop the load, change a scenario's rate or request weights, act on a
//! stack component, record an event); it never reaches into the engine. When the load has
//! ended it gets a last tick with the remaining seconds, then [`Controller::finish`] returns
//! its checks and its report section.
//!
//! One file per controller: [`threshold`] (whole-run and windowed thresholds,
//! `abort_on_fail`), [`probe`] (synthetic requests and chains with their SLO), [`slo`]
//! (error budgets and burn-rate alerts), [`canary`] (the canary gate's steps), [`blue_green`]
//! (cutover windows), [`faults`] (faults injected on the run clock, failover judged),
//! [`prometheus`] (`--metrics-addr`: the run's metrics for scrapers), [`scrape`] (the
//! target's own series, read on an interval), [`dependency`] (Redis / PostgreSQL health
//! during the load), [`autoscale`] (the HPA recommendation recomputed from scraped series,
//! the system's replicas judged against it). Later drills add files here and a line to
//! [`standard`]; the loop does not change. [`ledger`] is no controller: the run reads the
//! write ledger back once the load has ended.
//!
//! Controllers read snapshots once per tick, never per request. Ones that must act between
//! ticks (a probe's requests) run their own task, spawned in [`Controller::on_start`] on the
//! [`StartCtx::tasks`] tracker and stopped with [`StartCtx::stop`] when the load ends.
//!
//! A segment of a distributed run adds [`segment`]: it keeps every second's slice for
//! `loadgate merge`, which replays the union through the same threshold and SLO controllers.
pub mod autoscale;
pub mod blue_green;
pub mod canary;
pub mod dependency;
mod fault_ledger;
mod fault_task;
pub mod faults;
pub mod ledger;
pub mod probe;
pub mod prometheus;
pub mod scrape;
pub mod segment;
pub mod slo;
pub mod threshold;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::slo::SloReport;
use crate::checks::CheckResult;
use crate::metrics::recorder::Aggregator;
use crate::metrics::{Event, EventKind, RunMetrics, ScenarioInfo, SecondSlice};
use crate::spec::{Component, RunSpec, StackOp};
use crate::stack::StackHandle;

pub use probe::ProbeReport;

/// What a controller gets when the load starts.
pub struct StartCtx<'a> {
    pub spec: &'a Arc<RunSpec>,
    /// The run clock's origin.
    pub origin: Instant,
    /// Where samples go (probes record their own series into it).
    pub aggregator: &'a Arc<Aggregator>,
    /// The engine's worker threads: probe `i`'s recorder is worker `engine_threads + i`.
    pub engine_threads: usize,
    /// The run's series sources (scenarios, then probes), indexed like `SeriesKey::scenario`.
    pub infos: &'a [ScenarioInfo],
    /// Spawn the controller's own tasks here; the run waits for them before judging.
    pub tasks: &'a TaskTracker,
    /// Cancelled when the load ends: tasks stop, flush and return.
    pub stop: &'a CancellationToken,
    /// The reference stack's control handle, when the session started one (faults act
    /// through it).
    pub stack: Option<&'a StackHandle>,
}

/// One tick of the run clock.
pub struct Tick<'a> {
    /// Run-clock time of the tick.
    pub at: Duration,
    /// Cumulative metrics so far (a second or two behind the clock).
    pub snapshot: &'a RunMetrics,
    /// Seconds finalized since the last tick, in order.
    pub seconds: &'a [SecondSlice],
    /// Events recorded since the last tick (including the outcomes of earlier actions).
    pub events: &'a [Event],
    /// The load has ended: this is the last tick, with every remaining second.
    pub last: bool,
}

/// Why the load stopped before its plan's end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// The caller's interrupt (Ctrl-C, SIGTERM) fired.
    Interrupted,
    /// A check failed that stops the run (`abort_on_fail`).
    Aborted { check: String, observed: String },
}

/// What a controller asks the run clock to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop the load now; reports are written for what ran.
    Stop(Stopped),
    /// From now on, run `scenario` at `rate` arrivals per second (arrival-rate executors).
    SetRate { scenario: String, rate: f64 },
    /// Replace `scenario`'s request weights (one per request): a traffic split.
    SetWeights { scenario: String, weights: Vec<u32> },
    /// Send `weight` percent of each of `scenarios`' iterations to the canary's target (a
    /// canary split between two targets); a `canary_weight` event records the outcome.
    SetCanaryWeight { scenarios: Vec<String>, weight: u32 },
    /// Act on a component of the reference stack; the outcome comes back as a
    /// [`EventKind::StackAction`] event in a later tick.
    Stack { component: Component, op: StackOp },
    /// Put an event on the run's timeline now.
    Record(EventKind),
    /// Put an event on the run's timeline at a run-clock time already past (what a scrape
    /// showed, recorded at the scrape's time).
    RecordAt { at: Duration, kind: EventKind },
}

/// A report section a controller contributes to summary.json (one typed field each).
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    Probes(Vec<ProbeReport>),
    Slos(Vec<SloReport>),
    Canary(Box<canary::CanaryReport>),
    BlueGreen(Box<blue_green::BlueGreenReport>),
    Failover(Vec<faults::FailoverReport>),
    Scrapes(Vec<scrape::ScrapeReport>),
    Autoscale(Vec<crate::checks::autoscale::AutoscaleReport>),
}

/// What a controller concludes when the run is over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conclusion {
    pub checks: Vec<CheckResult>,
    pub sections: Vec<Section>,
}

/// The final state a controller judges.
pub struct End<'a> {
    /// The exact final metrics.
    pub metrics: &'a RunMetrics,
    /// Why the load stopped early, if it did.
    pub stopped: Option<&'a Stopped>,
}

/// Everything that watches or changes a running test.
pub trait Controller: Send {
    /// Short name for events and errors (`thresholds`, `probes`, `slos`).
    fn name(&self) -> &'static str;
    /// The load has started (run clock at ~0).
    fn on_start(&mut self, _ctx: &StartCtx<'_>) -> Vec<Action> {
        Vec::new()
    }
    /// Once a second, and once more when the load has ended (`tick.last`).
    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action>;
    /// The run is over: checks and report sections.
    fn finish(&mut self, end: &End<'_>) -> Conclusion;
}

/// The controllers a run of `spec` needs, in report order: thresholds, probes, SLOs, canary.
pub fn standard(spec: &RunSpec) -> Vec<Box<dyn Controller>> {
    let mut out: Vec<Box<dyn Controller>> = vec![Box::new(threshold::Thresholds::new(spec))];
    if !spec.probes.is_empty() {
        out.push(Box::new(probe::Probes::new(spec)));
    }
    if !spec.slos.is_empty() {
        out.push(Box::new(slo::Slos::new(spec)));
    }
    if let Some(c) = canary::CanaryGate::new(spec) {
        out.push(Box::new(c));
    }
    if let Some(b) = blue_green::BlueGreen::new(spec) {
        out.push(Box::new(b));
    }
    if let Some(f) = faults::Faults::new(spec) {
        out.push(Box::new(f));
    }
    let scrapers = scrape::Scrapers::new(spec);
    let autoscale = autoscale::Autoscale::new(spec, scrapers.as_ref());
    if let Some(s) = scrapers {
        out.push(Box::new(s));
    }
    if let Some(a) = autoscale {
        out.push(Box::new(a));
    }
    if let Some(d) = dependency::DependencyHealth::new(spec) {
        out.push(Box::new(d));
    }
    out
}

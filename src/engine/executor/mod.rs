//! Executors: who sends the next iteration, and when. One file per executor; they all plug
//! into the same VU loop here, so pacing, stop conditions and latency correction are written
//! once:
//!
//! - a [`Schedule`] (one per executor) answers, for a VU between iterations, "go now (with
//!   this sequence number and intended time)", "wait", or "done"; the open-model executors
//!   also grow their VU pool ([`open`]) and use a [`crate::engine::pacer::Pacer`];
//! - the [`RequestSource`] picks the weighted request and renders it;
//! - the VU's [`Client`] sends it on the VU's own connection (HTTP/2: on the connection its
//!   worker's VUs share, see [`crate::engine::http::pool`]);
//! - the worker's [`Recorder`] is the sink.
//!
//! Work is split over *lanes*: worker thread k of N in segment s of S owns lane
//! `offset = s + S*k` with `stride = S*N`, i.e. the arrival / VU / iteration indices
//! `offset, offset + stride, ...` ([`Lane`]). Segments across machines and threads inside one
//! process are the same mechanism, so N processes with `--segment i/N` together send exactly
//! what one process would.
//!
//! Latency: `duration` runs from the intended time (open model: the schedule's; closed model:
//! when the iteration began, i.e. the send time on a kept-alive connection) to the last byte;
//! `service` from the first byte written to the last byte.
//!
//! Timer resolution: tokio's timer rounds a deadline up to the next millisecond tick and the
//! poller's timeout rounds up again, so a VU sleeping until its arrival wakes 0-2 ms late.
//! VUs therefore aim [`ON_TIME_TOLERANCE`] (one tick) early, which centres the actual start
//! on the intended time (±1 ms), and an iteration that starts no later than
//! `intended + ON_TIME_TOLERANCE` counts as on time: its `duration` runs from its actual
//! start. Anything later counts in full from the intended time.
pub mod constant_arrival_rate;
pub mod constant_vus;
pub mod open;
pub mod per_vu_iterations;
pub mod ramping_arrival_rate;
pub mod ramping_vus;
pub mod shared_iterations;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Lateness up to this much (the timer's resolution) is the generator's granularity, not a
/// missed schedule: such an iteration's `duration` starts at its actual start.
pub const ON_TIME_TOLERANCE: Duration = Duration::from_millis(1);

use super::http::pool::H2Pool;
use super::http::{Capture, Client, Outgoing, ResponseData, Target};
use super::request::{IterVars, RequestSource, Scratch};
use crate::engine::control::ScenarioSteer;
use crate::grammar::extract::Extractor;
use crate::metrics::recorder::{Aggregator, Recorder};
use crate::metrics::{ErrorKind, SeriesKey};
use crate::spec::{ExecutorSpec, HeaderSplit, ScenarioSpec, Variant};

/// The slice of an index space one worker owns: `offset, offset + stride, offset + 2*stride...`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    pub offset: u64,
    pub stride: u64,
}

impl Lane {
    /// Worker `thread` of `threads`, inside segment `(index, count)` (None: the whole run).
    pub fn new(thread: usize, threads: usize, segment: Option<(u32, u32)>) -> Lane {
        let (si, sc) = segment
            .map(|(i, c)| (i as u64, c.max(1) as u64))
            .unwrap_or((0, 1));
        Lane {
            offset: si + sc * thread as u64,
            stride: sc * threads.max(1) as u64,
        }
    }

    /// The whole index space.
    pub fn single() -> Lane {
        Lane {
            offset: 0,
            stride: 1,
        }
    }

    /// The j-th index of this lane.
    pub fn nth(&self, j: u64) -> u64 {
        self.offset + self.stride * j
    }

    /// How many of the indices `0..n` belong to this lane.
    pub fn share(&self, n: u64) -> u64 {
        if n > self.offset {
            (n - self.offset - 1) / self.stride + 1
        } else {
            0
        }
    }

    /// Take the next index of this lane from a per-thread counter.
    pub fn next_seq(&self, counter: &Cell<u64>) -> u64 {
        let j = counter.get();
        counter.set(j + 1);
        self.nth(j)
    }
}

/// What a VU does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run an iteration with this sequence number, at `intended` (open model) or now.
    /// `grow`: the iteration is late and the pool may grow: start one more VU.
    Go {
        seq: u64,
        intended: Option<Instant>,
        grow: bool,
    },
    /// Not now; ask again at this instant.
    Wait(Instant),
    /// This VU is finished.
    Done,
}

/// A VU as its schedule sees it.
#[derive(Debug, Clone, Copy)]
pub struct VuState {
    /// VU id, unique within the scenario (0-based).
    pub id: u64,
    /// Iterations this VU has run.
    pub iter: u64,
}

/// One executor's decisions on one worker thread (single-threaded: `Cell`s, no atomics).
pub trait Schedule {
    /// Ids of the VUs this worker starts with.
    fn initial_vus(&self) -> Vec<u64>;
    /// The next step of `vu`, asked between iterations.
    fn next(&self, vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step;
    /// Start one more VU if the pool may grow; returns its id.
    fn grow(&self) -> Option<u64> {
        None
    }
    /// A VU ended.
    fn vu_exited(&self) {}
    /// A VU starts sending an iteration.
    fn iteration_started(&self) {}
    /// A VU finished an iteration.
    fn iteration_finished(&self) {}
    /// A VU's new connection was turned away by the target ([`Outcome::turned_away`]) at
    /// `now`; returns whether that VU leaves the pool. Only the open model's pool adapts (a
    /// closed model's VU count is the plan's).
    ///
    /// [`Outcome::turned_away`]: crate::engine::http::Outcome::turned_away
    fn turned_away(&self, _now: Instant) -> bool {
        false
    }
    /// Controllers changed the scenario's steering (arrival-rate executors follow its rate
    /// overrides; the closed model has no rate and ignores it).
    fn steer(&self, _steering: &crate::engine::control::Steering) {}
}

/// Build the schedule of a scenario for one lane. `max_connections` caps the VUs.
pub fn schedule_for(
    spec: &ExecutorSpec,
    lane: Lane,
    max_connections: Option<usize>,
) -> Box<dyn Schedule> {
    let cap = |v: u32| match max_connections {
        Some(m) => v.min(m.min(u32::MAX as usize) as u32),
        None => v,
    };
    match spec {
        ExecutorSpec::ConstantArrivalRate {
            rate,
            duration,
            pre_allocated_vus,
            max_vus,
        } => Box::new(constant_arrival_rate::schedule(
            *rate,
            *duration,
            cap(*pre_allocated_vus),
            cap(*max_vus),
            lane,
        )),
        ExecutorSpec::RampingArrivalRate {
            start_rate,
            stages,
            pre_allocated_vus,
            max_vus,
        } => Box::new(ramping_arrival_rate::schedule(
            *start_rate,
            stages,
            cap(*pre_allocated_vus),
            cap(*max_vus),
            lane,
        )),
        ExecutorSpec::ConstantVus { vus, .. } => {
            Box::new(constant_vus::ConstantVus::new(cap(*vus), lane))
        }
        ExecutorSpec::RampingVus { start_vus, stages } => {
            let stages: Vec<_> = stages
                .iter()
                .map(|s| crate::spec::VuStage {
                    target: cap(s.target),
                    duration: s.duration,
                })
                .collect();
            Box::new(ramping_vus::RampingVus::new(cap(*start_vus), &stages, lane))
        }
        ExecutorSpec::PerVuIterations {
            vus, iterations, ..
        } => Box::new(per_vu_iterations::PerVuIterations::new(
            cap(*vus),
            *iterations,
            lane,
        )),
        ExecutorSpec::SharedIterations {
            vus, iterations, ..
        } => Box::new(shared_iterations::SharedIterations::new(
            cap(*vus),
            *iterations,
            lane,
        )),
    }
}

/// Everything the VUs of one scenario on one worker thread share.
pub struct ScenarioCtx {
    /// Index of the scenario (`SeriesKey::scenario`).
    pub index: usize,
    /// The scenario's start on the run clock.
    pub start: Instant,
    /// The executor's own end (before `graceful_stop`).
    pub end: Instant,
    pub graceful_stop: Duration,
    pub timeout: Duration,
    pub schedule: Box<dyn Schedule>,
    pub source: RequestSource,
    /// The scenario's steps when it is a user flow (each iteration sends every request in
    /// order); None: each iteration sends one request picked by weight.
    pub flow: Option<crate::spec::FlowSpec>,
    /// The scenario's request is a ledger write: its id and digest are recorded per send.
    pub ledger: Option<crate::spec::ledger::LedgerSpec>,
    pub target: Arc<Target>,
    pub recorder: Rc<RefCell<Recorder>>,
    pub agg: Arc<Aggregator>,
    /// The run's stop token (a per-thread child): no new iterations once cancelled. Sleeps
    /// select on it; between iterations VUs read `stopped` (a plain `Cell`, no lock).
    pub stop: CancellationToken,
    /// Set by the worker's watcher task when `stop` is cancelled.
    pub stopped: Rc<Cell<bool>>,
    /// Rate and weight changes from controllers; `steer_seen` is the version applied here.
    steer: Arc<ScenarioSteer>,
    steer_seen: Cell<u64>,
    tracker: TaskTracker,
    vus: RefCell<Vec<AbortHandle>>,
    /// The canary split's header, when this scenario's responses are tagged.
    pub split: Option<Arc<HeaderSplit>>,
    /// The canary's target when loadgate splits this scenario between two targets itself
    /// (`target` and `source` are then the baseline's): each iteration goes to the canary
    /// with probability `canary_weight` / 100 and is tagged by where it went.
    pub alt: Option<AltTarget>,
    /// The canary's share of iterations in percent (steered by the canary gate).
    canary_weight: Cell<u32>,
    /// Numbers taken from every response (a canary's `compare.values`), and what they read.
    pub values: Vec<Extractor>,
    pub value_capture: Capture,
    /// The target's HTTP/2 connections, shared by this worker's VUs (None: it never speaks h2).
    pub h2: Option<H2Pool>,
}

/// The second target of a split scenario.
pub struct AltTarget {
    pub target: Arc<Target>,
    pub source: RequestSource,
    /// Its HTTP/2 connections, shared by this worker's VUs.
    pub h2: Option<H2Pool>,
}

impl ScenarioCtx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        spec: &ScenarioSpec,
        origin: Instant,
        timeout: Duration,
        schedule: Box<dyn Schedule>,
        source: RequestSource,
        target: Arc<Target>,
        recorder: Rc<RefCell<Recorder>>,
        agg: Arc<Aggregator>,
        stop: CancellationToken,
        stopped: Rc<Cell<bool>>,
        steer: Arc<ScenarioSteer>,
    ) -> ScenarioCtx {
        let start = origin + spec.start_after;
        ScenarioCtx {
            index,
            start,
            end: start + spec.executor.max_duration(),
            graceful_stop: spec.graceful_stop,
            timeout,
            schedule,
            source,
            flow: spec.flow.clone(),
            ledger: spec.ledger.clone(),
            target,
            recorder,
            agg,
            stop,
            stopped,
            steer,
            steer_seen: Cell::new(0),
            tracker: TaskTracker::new(),
            vus: RefCell::new(Vec::new()),
            split: None,
            alt: None,
            canary_weight: Cell::new(0),
            values: Vec::new(),
            value_capture: Capture::default(),
            h2: None,
        }
    }

    /// Take `values` from every response of this scenario.
    pub fn take_values(&mut self, values: Vec<Extractor>) {
        self.value_capture = Capture {
            headers: values.iter().any(|v| v.needs_headers()),
            body: values.iter().any(|v| v.needs_body()),
        };
        self.values = values;
    }

    /// Apply steering changes made since the last call (one relaxed load when none).
    #[inline]
    fn refresh_steering(&self) {
        if self.steer.version() == self.steer_seen.get() {
            return;
        }
        let (version, steering) = self.steer.read();
        self.steer_seen.set(version);
        self.schedule.steer(&steering);
        if let Some(w) = &steering.weights {
            self.source.set_weights(w);
            if let Some(alt) = &self.alt {
                alt.source.set_weights(w);
            }
        }
        if let Some(w) = steering.canary_weight {
            self.canary_weight.set(w.min(100));
        }
    }
}

fn spawn_vu(ctx: &Rc<ScenarioCtx>, id: u64) {
    let h = ctx.tracker.spawn_local(vu_main(ctx.clone(), id));
    ctx.vus.borrow_mut().push(h.abort_handle());
}

/// Run one scenario on this worker thread: wait for its start, start its VUs, wait for them
/// (the executor's end + `graceful_stop`, or the stop token + the request timeout), then
/// abort whatever is still in flight.
pub async fn run_scenario(ctx: Rc<ScenarioCtx>) {
    tokio::select! {
        _ = tokio::time::sleep_until(ctx.start.into()) => {}
        _ = ctx.stop.cancelled() => return,
    }
    ctx.agg.scenario_started(ctx.index);
    for id in ctx.schedule.initial_vus() {
        spawn_vu(&ctx, id);
    }
    ctx.tracker.close();
    let deadline = async {
        tokio::select! {
            _ = tokio::time::sleep_until(ctx.end.into()) => tokio::time::sleep(ctx.graceful_stop).await,
            _ = ctx.stop.cancelled() => tokio::time::sleep(ctx.timeout + Duration::from_millis(100)).await,
        }
    };
    tokio::select! {
        _ = ctx.tracker.wait() => {}
        _ = deadline => {
            for h in ctx.vus.borrow().iter() {
                h.abort();
            }
            ctx.tracker.wait().await;
        }
    }
    ctx.agg.scenario_finished(ctx.index);
}

/// A VU: its own connection (or its share of an HTTP/2 one), buffers and random generator.
struct Vu {
    state: VuState,
    client: Client,
    /// The connection to the canary's target (a split between two targets).
    alt_client: Option<Client>,
    /// Where this iteration's requests go (a split between two targets), else `None`.
    side: Variant,
    scratch: Scratch,
    resp: ResponseData,
    /// Reused buffer for the numbers taken from responses.
    value_buf: Vec<u8>,
    rng: SmallRng,
    /// A new connection of this iteration was turned away by the target.
    turned_away: bool,
}

/// Lives as long as the VU task; tells the schedule when the VU ends (also when aborted).
struct ExitGuard(Rc<ScenarioCtx>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.schedule.vu_exited();
        self.0.agg.vu_ended(self.0.index);
    }
}

async fn vu_main(ctx: Rc<ScenarioCtx>, id: u64) {
    ctx.agg.vu_started(ctx.index);
    let _guard = ExitGuard(ctx.clone());
    let mut vu = Vu {
        state: VuState { id, iter: 0 },
        client: Client::new(ctx.target.clone(), ctx.h2.as_ref().map(H2Pool::assign)),
        alt_client: ctx
            .alt
            .as_ref()
            .map(|a| Client::new(a.target.clone(), a.h2.as_ref().map(H2Pool::assign))),
        side: Variant::None,
        scratch: Scratch::default(),
        resp: ResponseData {
            split: ctx.split.clone(),
            ..ResponseData::default()
        },
        value_buf: Vec::new(),
        rng: SmallRng::from_rng(&mut rand::rng()),
        turned_away: false,
    };
    loop {
        if ctx.stopped.get() {
            break;
        }
        ctx.refresh_steering();
        let now = Instant::now();
        match ctx.schedule.next(&vu.state, now, &ctx) {
            Step::Done => break,
            Step::Wait(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t.into()) => {}
                    _ = ctx.stop.cancelled() => break,
                }
            }
            Step::Go {
                seq,
                intended,
                grow,
            } => {
                if grow {
                    if let Some(id) = ctx.schedule.grow() {
                        spawn_vu(&ctx, id);
                    }
                }
                if let Some(t) = intended {
                    // Aim one timer tick early: the timer fires up to ~2 ticks late.
                    let wake = t.checked_sub(ON_TIME_TOLERANCE).unwrap_or(t);
                    if wake > now {
                        tokio::select! {
                            _ = tokio::time::sleep_until(wake.into()) => {}
                            _ = ctx.stop.cancelled() => break,
                        }
                    }
                }
                ctx.schedule.iteration_started();
                iteration(&ctx, &mut vu, seq, intended).await;
                ctx.schedule.iteration_finished();
                vu.state.iter += 1;
                if std::mem::take(&mut vu.turned_away) && ctx.schedule.turned_away(Instant::now()) {
                    break;
                }
            }
        }
    }
}

/// One iteration: a request picked by weight, or (a flow) every step in order.
async fn iteration(ctx: &ScenarioCtx, vu: &mut Vu, seq: u64, intended: Option<Instant>) {
    let vars = IterVars {
        seq,
        vu: vu.state.id,
        iter: vu.state.iter,
    };
    if ctx.alt.is_some() {
        // A whole iteration (every step of a flow) goes to one side.
        use rand::Rng;
        vu.side = if vu.rng.random_range(0..100u32) < ctx.canary_weight.get() {
            Variant::Canary
        } else {
            Variant::Baseline
        };
    }
    let Some(flow) = &ctx.flow else {
        vu.scratch.begin_iteration(0);
        let idx = ctx.source.pick(&mut vu.rng);
        send(ctx, vu, idx, vars, intended).await;
        return;
    };
    vu.scratch.begin_iteration(flow.vars.len());
    let started = Instant::now();
    let begin = match intended {
        Some(t) if started.saturating_duration_since(t) > ON_TIME_TOLERANCE => t,
        _ => started,
    };
    if run_flow(ctx, vu, flow, vars, intended).await == FlowEnd::Interrupted {
        return;
    }
    let end = Instant::now();
    ctx.recorder.borrow_mut().iteration(
        &ctx.agg,
        ctx.index,
        end,
        end.saturating_duration_since(begin).as_micros() as u64,
    );
}

/// How a flow's iteration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowEnd {
    /// Every step ran, or one failed for good (no response, an `until` past its deadline,
    /// an extraction that found nothing): the iteration counts.
    Ran,
    /// The run stopped during a pause: the iteration is not counted.
    Interrupted,
}

/// Sleep until `t`, or until the run stops (false).
async fn pause_until(ctx: &ScenarioCtx, t: Instant) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(t.into()) => true,
        _ = ctx.stop.cancelled() => false,
    }
}

/// The steps of one flow iteration. The first step's latency runs from the intended time
/// (open model); later steps' from their own send.
async fn run_flow(
    ctx: &ScenarioCtx,
    vu: &mut Vu,
    flow: &crate::spec::FlowSpec,
    vars: IterVars,
    mut intended: Option<Instant>,
) -> FlowEnd {
    for (i, step) in flow.steps.iter().enumerate() {
        let checks = ctx.source.requests()[i].checks.len();
        let first_send = Instant::now();
        loop {
            let status = send(ctx, vu, i, vars, intended.take()).await;
            if status == 0 {
                return FlowEnd::Ran;
            }
            let Some(until) = &step.until else { break };
            if until
                .check
                .evaluate_body(status, &vu.resp.headers, vu.resp.body())
            {
                ctx.recorder.borrow_mut().check(ctx.index, i, checks, true);
                break;
            }
            let next = Instant::now() + until.every;
            if next > first_send + until.deadline {
                ctx.recorder.borrow_mut().check(ctx.index, i, checks, false);
                return FlowEnd::Ran;
            }
            if ctx.stopped.get() || !pause_until(ctx, next).await {
                return FlowEnd::Interrupted;
            }
        }
        let first_extract = checks + step.until.is_some() as usize;
        for (k, e) in step.extract.iter().enumerate() {
            let slot = flow.vars.iter().position(|v| *v == e.var).unwrap_or(0);
            let Some(buf) = vu.scratch.vars.get_mut(slot) else {
                continue;
            };
            let found = e.from.extract_body(&vu.resp.headers, vu.resp.body(), buf);
            ctx.recorder
                .borrow_mut()
                .check(ctx.index, i, first_extract + k, found);
            if !found {
                return FlowEnd::Ran;
            }
        }
        if let Some(think) = step.think {
            let d = if think.max > think.min {
                use rand::Rng;
                vu.rng.random_range(think.min..=think.max)
            } else {
                think.min
            };
            if !d.is_zero() && (ctx.stopped.get() || !pause_until(ctx, Instant::now() + d).await) {
                return FlowEnd::Interrupted;
            }
        }
    }
    FlowEnd::Ran
}

/// The message kept for the first error of a kind: which request, what happened, where
/// (and, for a status, the start of the body when the checks kept it).
fn first_error_message(
    kind: ErrorKind,
    status: u16,
    request: &str,
    target: &Target,
    body: &[u8],
) -> String {
    if status != 0 {
        let mut m = format!("{request}: HTTP {status}");
        if !body.is_empty() {
            let text = String::from_utf8_lossy(&body[..body.len().min(160)]);
            m.push_str(&format!(": {}", text.trim()));
        }
        return m;
    }
    match kind {
        ErrorKind::Timeout => format!(
            "{request}: {} ({:?} at {})",
            kind.describe(),
            target.timeout,
            target.authority
        ),
        _ => format!("{request}: {} ({})", kind.describe(), target.authority),
    }
}

/// Render, send, check and record request `idx`; returns its status (0: no response).
async fn send(
    ctx: &ScenarioCtx,
    vu: &mut Vu,
    idx: usize,
    vars: IterVars,
    intended: Option<Instant>,
) -> u16 {
    let req = &ctx.source.requests()[idx];
    let (source, client, target) = match (&ctx.alt, vu.side, vu.alt_client.as_mut()) {
        (Some(alt), Variant::Canary, Some(c)) => (&alt.source, c, &alt.target),
        _ => (&ctx.source, &mut vu.client, &ctx.target),
    };
    // In the form of the protocol the VU's connection speaks (h2: built once per template).
    let outgoing =
        match client.speaks_h2() && source.render_h2(idx, vars, &mut vu.rng, &mut vu.scratch) {
            true => source.h2(idx, &vu.scratch).map(Outgoing::H2),
            false => None,
        };
    let outgoing = match outgoing {
        Some(o) => o,
        None => Outgoing::H1(source.render(idx, vars, &mut vu.rng, &mut vu.scratch)),
    };
    // A ledger write: its id and digest (one JSON parse per write, only in ledger scenarios).
    let write = ctx.ledger.as_ref().and_then(|l| {
        let body = match outgoing {
            Outgoing::H1(bytes) => crate::metrics::ledger::body_of(bytes),
            Outgoing::H2(r) => Some(&r.body[..]),
        };
        body.and_then(|b| crate::metrics::ledger::entry_of(b, &l.id_field, &l.compare))
    });
    let capture = Capture {
        headers: req.capture.headers || ctx.value_capture.headers,
        body: req.capture.body || ctx.value_capture.body,
    };
    let started = Instant::now();
    let begin = match intended {
        Some(t) if started.saturating_duration_since(t) > ON_TIME_TOLERANCE => t,
        _ => started,
    };
    let out = client.send(outgoing, req.meta, capture, &mut vu.resp).await;
    let end = Instant::now();
    vu.turned_away |= out.turned_away;
    if ctx.alt.is_some() {
        vu.resp.variant = vu.side;
    }
    let duration = end.saturating_duration_since(begin);
    let service = out
        .sent_at
        .map(|s| end.saturating_duration_since(s))
        .unwrap_or_default();
    let error = out.error.or_else(|| ErrorKind::from_status(out.status));
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut rec = ctx.recorder.borrow_mut();
    for (ci, c) in req.checks.iter().enumerate() {
        let ok = out.status != 0 && c.evaluate_body(out.status, &vu.resp.headers, vu.resp.body());
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        rec.check(ctx.index, idx, ci, ok);
    }
    if let Some(kind) = error {
        if !rec.has_first_error(ctx.index, kind) {
            rec.first_error(
                ctx.index,
                kind,
                first_error_message(kind, out.status, &req.name, target, &vu.resp.body),
            );
        }
    }
    let key = SeriesKey {
        scenario: ctx.index as u16,
        request: idx as u16,
        status: out.status,
        error,
        variant: vu.resp.variant,
    };
    if let Some((id, digest)) = write {
        use crate::metrics::ledger::{LedgerWrite, WriteOutcome};
        let outcome = match out.status {
            0 => WriteOutcome::Unknown,
            200..=299 => WriteOutcome::Acknowledged,
            _ => WriteOutcome::Refused,
        };
        rec.ledger_write(LedgerWrite {
            scenario: ctx.index as u16,
            id,
            digest,
            at_ms: end.saturating_duration_since(ctx.agg.origin()).as_millis() as u64,
            outcome,
        });
    }
    rec.record(
        &ctx.agg,
        key,
        end,
        duration.as_micros() as u64,
        service.as_micros() as u64,
        error.is_some(),
        passed,
        failed,
    );
    if error.is_none() {
        for (slot, x) in ctx.values.iter().enumerate() {
            if x.extract_body(&vu.resp.headers, vu.resp.body(), &mut vu.value_buf) {
                let v = std::str::from_utf8(&vu.value_buf)
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite());
                if let Some(v) = v {
                    rec.value(slot, v);
                }
            }
        }
    }
    out.status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_partition_the_index_space() {
        // 2 segments x 3 threads: every index 0..60 owned exactly once.
        let mut owned = vec![0; 60];
        for s in 0..2 {
            for t in 0..3 {
                let lane = Lane::new(t, 3, Some((s, 2)));
                let n = lane.share(60);
                for j in 0..n {
                    owned[lane.nth(j) as usize] += 1;
                }
                assert_eq!(n, 10);
            }
        }
        assert!(owned.iter().all(|&c| c == 1));
        assert_eq!(Lane::new(1, 4, None).share(2), 1);
        assert_eq!(Lane::new(3, 4, None).share(2), 0);
    }
}

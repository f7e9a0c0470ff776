//! Per-worker recorder (owned by one worker thread, no locks on the hot path) and the run-wide
//! [`Aggregator`] it flushes into once per second.
//!
//! A worker records every sample into its [`Recorder`]: per [`SeriesKey`] stats of the
//! *current second* of the run clock (seconds are assigned by the completion time of the
//! request). When the worker sees a later second, or its once-a-second tick fires, it flushes
//! the finished second into the shared [`Aggregator`] (one mutex acquisition per worker and
//! second, never per request). The aggregator merges it into cumulative per-series totals and
//! into the pending per-second, per-scenario histogram; once every worker has reported past a
//! second, that second becomes a [`SecondRow`] (p50/p95/p99 of `duration`) and its histogram is
//! dropped, so memory stays flat however long the run.
//!
//! [`Aggregator::snapshot`] is the cumulative state so far (at most ~1-2 s behind: live
//! progress and `abort_on_fail` thresholds); [`Aggregator::finish`] is the exact final result
//! once every worker has flushed.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::{
    new_histogram, CheckCounts, ErrorKind, Event, EventKind, RunMetrics, ScenarioInfo,
    SecondHistogram, SecondRow, SecondSlice, SeriesKey, SeriesStats, SourceKind,
};

/// Ledger writes one worker keeps (about 80 bytes each: 20 MB at most per worker).
const WRITES_PER_WORKER: usize = 250_000;

/// One worker's recorder. Not shared between threads.
pub struct Recorder {
    worker: usize,
    origin: Instant,
    second: u64,
    /// Stats of the current second, by series; `index` finds an entry, `last` short-cuts
    /// the common case of the same series as the previous sample.
    current: Vec<(SeriesKey, SeriesStats)>,
    index: HashMap<SeriesKey, usize>,
    last: usize,
    /// Dropped iterations per scenario since the last flush.
    dropped: Vec<u64>,
    /// Run-clock offset of the last response per scenario.
    last_end: Vec<Option<Duration>>,
    /// Per-check results since the last flush.
    checks: CheckCounts,
    /// Iteration durations per scenario since the last flush (µs); created on first use.
    iterations: Vec<Option<Histogram<u64>>>,
    /// Per scenario and error kind: a first message was kept on this worker (bounded: the
    /// message is formatted once per pair, never on the success path).
    first_seen: Vec<[bool; ErrorKind::ALL.len()]>,
    /// First messages not yet handed to the aggregator.
    first_pending: Vec<(u16, ErrorKind, String)>,
    /// Ledger writes of this worker since its last flush: handed to the aggregator with each
    /// second (one lock per second with writes, none per write), so a fault can read back
    /// the writes acknowledged before it while the load still runs.
    writes: super::ledger::WriteLog,
    dirty: bool,
}

impl Recorder {
    /// A recorder for worker `worker` (0-based) of a run whose clock starts at `origin`.
    pub fn new(worker: usize, origin: Instant, scenarios: usize) -> Recorder {
        Recorder {
            worker,
            origin,
            second: 0,
            current: Vec::new(),
            index: HashMap::new(),
            last: usize::MAX,
            dropped: vec![0; scenarios],
            last_end: vec![None; scenarios],
            checks: CheckCounts::default(),
            iterations: vec![None; scenarios],
            first_seen: vec![[false; ErrorKind::ALL.len()]; scenarios],
            first_pending: Vec::new(),
            writes: super::ledger::WriteLog::with_cap(WRITES_PER_WORKER),
            dirty: false,
        }
    }

    /// Whether a first message of `kind` was kept for `scenario` on this worker.
    #[inline]
    pub fn has_first_error(&self, scenario: usize, kind: ErrorKind) -> bool {
        self.first_seen
            .get(scenario)
            .is_none_or(|s| s[kind.index()])
    }

    /// Keep the first message of `kind` for `scenario` (later ones are ignored).
    pub fn first_error(&mut self, scenario: usize, kind: ErrorKind, message: String) {
        if let Some(s) = self.first_seen.get_mut(scenario) {
            if !s[kind.index()] {
                s[kind.index()] = true;
                self.first_pending.push((scenario as u16, kind, message));
                self.dirty = true;
            }
        }
    }

    /// Count one result of check `check` of request `request` of scenario `scenario` (the
    /// request's own sample, with its `passed` / `failed` totals, goes through
    /// [`Recorder::record`]).
    #[inline]
    pub fn check(&mut self, scenario: usize, request: usize, check: usize, passed: bool) {
        self.checks.add(scenario, request, check, passed, 1);
        self.dirty = true;
    }

    /// Record one finished iteration of scenario `scenario` (metric `iteration_duration`).
    pub fn iteration(&mut self, agg: &Aggregator, scenario: usize, end: Instant, duration_us: u64) {
        let sec = end.saturating_duration_since(self.origin).as_secs();
        if sec > self.second {
            self.flush(agg, sec);
        }
        if let Some(h) = self.iterations.get_mut(scenario) {
            let _ = h.get_or_insert_with(new_histogram).record(duration_us);
            self.dirty = true;
        }
    }

    /// Record one finished request. `duration_us`: intended send → last byte; `service_us`:
    /// actual send → last byte (microseconds). `end` is when the response completed.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        agg: &Aggregator,
        key: SeriesKey,
        end: Instant,
        duration_us: u64,
        service_us: u64,
        failed: bool,
        checks_passed: u64,
        checks_failed: u64,
    ) {
        let at = end.saturating_duration_since(self.origin);
        let sec = at.as_secs();
        if sec > self.second {
            self.flush(agg, sec);
        }
        let i = match self.current.get(self.last) {
            Some((k, _)) if *k == key => self.last,
            _ => match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.current.push((key, SeriesStats::default()));
                    self.index.insert(key, self.current.len() - 1);
                    self.current.len() - 1
                }
            },
        };
        self.last = i;
        let s = &mut self.current[i].1;
        // Histograms auto-resize: recording cannot fail; clamp 0 to 1 µs is not needed.
        let _ = s.duration.record(duration_us);
        let _ = s.service.record(service_us);
        s.requests += 1;
        s.failed += failed as u64;
        s.checks_passed += checks_passed;
        s.checks_failed += checks_failed;
        let le = &mut self.last_end[key.scenario as usize];
        if le.is_none_or(|l| l < at) {
            *le = Some(at);
        }
        self.dirty = true;
    }

    /// Add number `slot` taken from the response just recorded with [`Recorder::record`] (a
    /// canary's `compare.values`) to that response's series.
    #[inline]
    pub fn value(&mut self, slot: usize, v: f64) {
        if let Some((_, s)) = self.current.get_mut(self.last) {
            if s.values.len() <= slot {
                s.values.resize(slot + 1, super::ValueSum::default());
            }
            s.values[slot].add(v);
        }
    }

    /// Count one dropped iteration of scenario `scenario`.
    pub fn dropped(&mut self, scenario: usize) {
        self.dropped[scenario] += 1;
        self.dirty = true;
    }

    /// Flush the current second if the clock has moved past it (called by the worker's tick).
    pub fn tick(&mut self, agg: &Aggregator, now: Instant) {
        let sec = now.saturating_duration_since(self.origin).as_secs();
        if sec > self.second {
            self.flush(agg, sec);
        } else {
            agg.watermark(self.worker, sec);
        }
    }

    /// Flush everything (end of the worker). After this the worker reports no more samples.
    pub fn finish(&mut self, agg: &Aggregator) {
        self.flush(agg, u64::MAX);
    }

    /// Record one ledger write (kept in this worker until its next flush).
    pub fn ledger_write(&mut self, w: super::ledger::LedgerWrite) {
        self.writes.push(w);
    }

    /// Hand the current second to the aggregator and start second `next`.
    fn flush(&mut self, agg: &Aggregator, next: u64) {
        if self.dirty {
            agg.merge_second(self.second, &self.current, &self.dropped, &self.last_end);
            agg.merge_extra(&self.checks, &self.iterations, &mut self.first_pending);
            self.checks.reset();
            self.iterations.iter_mut().flatten().for_each(|h| h.reset());
            for (_, s) in self.current.iter_mut() {
                s.duration.reset();
                s.service.reset();
                s.requests = 0;
                s.failed = 0;
                s.checks_passed = 0;
                s.checks_failed = 0;
                s.values
                    .iter_mut()
                    .for_each(|v| *v = super::ValueSum::default());
            }
            self.dropped.iter_mut().for_each(|d| *d = 0);
            self.dirty = false;
        }
        if let Some(log) = self.writes.take_new() {
            agg.lock().ledger.merge(log);
        }
        agg.watermark(self.worker, next);
        if next != u64::MAX {
            self.second = next;
        }
    }
}

/// A second that some worker has not finished yet.
#[derive(Default)]
struct PendingSecond {
    series: BTreeMap<SeriesKey, SeriesStats>,
    dropped: Vec<u64>,
}

struct Inner {
    scenarios: Vec<ScenarioInfo>,
    starts: Vec<Duration>,
    ends: Vec<Option<Duration>>,
    series: BTreeMap<SeriesKey, SeriesStats>,
    pending: BTreeMap<u64, PendingSecond>,
    check_counts: CheckCounts,
    iterations: Vec<Histogram<u64>>,
    first_errors: BTreeMap<(u16, ErrorKind), String>,
    /// Every worker's ledger writes, merged as each worker finishes.
    ledger: super::ledger::WriteLog,
    timeline: Vec<SecondRow>,
    /// Finalized seconds not yet taken by [`Aggregator::take_seconds`] (when kept).
    slices: Vec<SecondSlice>,
    keep_slices: bool,
    /// Encoded per-second latency histograms (when kept).
    second_latency: Vec<SecondHistogram>,
    keep_second_latency: bool,
    events: Vec<Event>,
    /// Per worker: every second below this is flushed.
    watermarks: Vec<u64>,
    /// Seconds below this are final rows in `timeline`.
    finalized: u64,
    last_end: Vec<Option<Duration>>,
    started: Vec<usize>,
    finished: Vec<usize>,
    /// How many workers finish each source (engine threads for a scenario, 1 for a probe).
    finishers: Vec<usize>,
}

/// The run-wide merge point (one mutex, touched once per worker and second).
pub struct Aggregator {
    origin: Instant,
    inner: Mutex<Inner>,
    /// VUs running per source (touched when a VU starts or ends, never per request).
    vus: Vec<AtomicI64>,
}

impl Aggregator {
    /// `scenarios`: the series sources (scenarios, then probes), indexed like
    /// `SeriesKey::scenario`; `starts`: when each starts on the run clock; `engine_workers`:
    /// how many engine recorders flush into it (each runs every scenario). Every
    /// [`SourceKind::Probe`] source has one more recorder of its own, worker index
    /// `engine_workers + i` for the i-th probe.
    pub fn new(
        origin: Instant,
        scenarios: Vec<ScenarioInfo>,
        starts: Vec<Duration>,
        engine_workers: usize,
    ) -> Aggregator {
        let n = scenarios.len();
        let finishers: Vec<usize> = scenarios
            .iter()
            .map(|s| match s.kind {
                SourceKind::Scenario => engine_workers,
                SourceKind::Probe => 1,
            })
            .collect();
        let probes = scenarios
            .iter()
            .filter(|s| s.kind == SourceKind::Probe)
            .count();
        Aggregator {
            origin,
            vus: (0..n).map(|_| AtomicI64::new(0)).collect(),
            inner: Mutex::new(Inner {
                scenarios,
                starts,
                ends: vec![None; n],
                series: BTreeMap::new(),
                pending: BTreeMap::new(),
                check_counts: CheckCounts::default(),
                iterations: (0..n).map(|_| new_histogram()).collect(),
                first_errors: BTreeMap::new(),
                ledger: super::ledger::WriteLog::default(),
                timeline: Vec::new(),
                slices: Vec::new(),
                keep_slices: false,
                second_latency: Vec::new(),
                keep_second_latency: false,
                events: Vec::new(),
                watermarks: vec![0; engine_workers + probes],
                finalized: 0,
                last_end: vec![None; n],
                started: vec![0; n],
                finished: vec![0; n],
                finishers,
            }),
        }
    }

    /// Keep every finalized second as a [`SecondSlice`] until [`Aggregator::take_seconds`]
    /// takes it (the run clock does, once per tick). Off by default: nobody would take them.
    pub fn keep_slices(&self) {
        self.lock().keep_slices = true;
    }

    /// Keep each second's latency histogram per source, encoded, for the stored results
    /// ([`RunMetrics::second_latency`] of [`Aggregator::finish`]).
    pub fn keep_second_latency(&self) {
        self.lock().keep_second_latency = true;
    }

    /// The run clock's origin.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// A VU of source `idx` started.
    pub fn vu_started(&self, idx: usize) {
        if let Some(v) = self.vus.get(idx) {
            v.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A VU of source `idx` ended.
    pub fn vu_ended(&self, idx: usize) {
        if let Some(v) = self.vus.get(idx) {
            v.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// VUs running now, per source.
    pub fn active_vus(&self) -> Vec<u64> {
        self.vus
            .iter()
            .map(|v| v.load(Ordering::Relaxed).max(0) as u64)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add an event at the current run-clock time.
    pub fn push_event(&self, kind: EventKind) {
        let at = self.origin.elapsed();
        self.push_event_at(at, kind);
    }

    /// Add an event at a given run-clock time (events are kept in insertion order; reports
    /// sort them by time).
    pub fn push_event_at(&self, at: Duration, kind: EventKind) {
        self.lock().events.push(Event { at, kind });
    }

    /// Events recorded from index `from` on, and the index to ask from next time.
    pub fn events_since(&self, from: usize) -> (Vec<Event>, usize) {
        let g = self.lock();
        let from = from.min(g.events.len());
        (g.events[from..].to_vec(), g.events.len())
    }

    /// Take the finalized seconds kept since the last call (see [`Aggregator::keep_slices`]).
    pub fn take_seconds(&self) -> Vec<SecondSlice> {
        std::mem::take(&mut self.lock().slices)
    }

    /// A worker started source `idx`; the first one records the `scenario_start` event
    /// (scenarios only).
    pub fn scenario_started(&self, idx: usize) {
        let at = self.origin.elapsed();
        let mut g = self.lock();
        g.started[idx] += 1;
        if g.started[idx] == 1 && g.scenarios[idx].kind == SourceKind::Scenario {
            let kind = EventKind::ScenarioStart {
                scenario: g.scenarios[idx].name.clone(),
                executor: g.scenarios[idx].executor.clone(),
            };
            g.events.push(Event { at, kind });
        }
    }

    /// A worker finished source `idx`; the last one records the `scenario_end` event.
    pub fn scenario_finished(&self, idx: usize) {
        let at = self.origin.elapsed();
        let mut g = self.lock();
        g.finished[idx] += 1;
        if g.finished[idx] == g.finishers[idx] {
            g.ends[idx] = Some(at);
            if g.scenarios[idx].kind == SourceKind::Scenario {
                let kind = EventKind::ScenarioEnd {
                    scenario: g.scenarios[idx].name.clone(),
                };
                g.events.push(Event { at, kind });
            }
        }
    }

    fn merge_second(
        &self,
        second: u64,
        stats: &[(SeriesKey, SeriesStats)],
        dropped: &[u64],
        last_end: &[Option<Duration>],
    ) {
        let mut g = self.lock();
        let g = &mut *g;
        let n = g.scenarios.len();
        let pending = g.pending.entry(second).or_default();
        for (key, s) in stats {
            if s.requests == 0 {
                continue;
            }
            g.series.entry(*key).or_default().merge(s);
            pending.series.entry(*key).or_default().merge(s);
        }
        if dropped.iter().any(|d| *d > 0) {
            pending.dropped.resize(n, 0);
            for (i, d) in dropped.iter().enumerate() {
                g.scenarios[i].dropped += d;
                pending.dropped[i] += d;
            }
        }
        for (i, e) in last_end.iter().enumerate() {
            if let Some(e) = e {
                if g.last_end[i].is_none_or(|l| l < *e) {
                    g.last_end[i] = Some(*e);
                }
            }
        }
    }

    /// Merge a worker's per-check counts and iteration durations (cumulative only: they have
    /// no per-second rows).
    fn merge_extra(
        &self,
        checks: &CheckCounts,
        iterations: &[Option<Histogram<u64>>],
        first: &mut Vec<(u16, ErrorKind, String)>,
    ) {
        let mut g = self.lock();
        g.check_counts.merge(checks);
        for (sc, kind, msg) in first.drain(..) {
            g.first_errors.entry((sc, kind)).or_insert(msg);
        }
        for (i, h) in iterations.iter().enumerate() {
            if let (Some(h), Some(into)) = (h, g.iterations.get_mut(i)) {
                if !h.is_empty() {
                    into.add(h).expect("auto-resizing histograms merge");
                }
            }
        }
    }

    /// Merge per-check counts from outside the engine (probes).
    pub fn add_checks(&self, checks: &CheckCounts) {
        self.lock().check_counts.merge(checks);
    }

    fn watermark(&self, worker: usize, below: u64) {
        let mut g = self.lock();
        if g.watermarks[worker] < below {
            g.watermarks[worker] = below;
        }
        let done = g.watermarks.iter().copied().min().unwrap_or(u64::MAX);
        finalize(&mut g, done);
    }

    /// Cumulative metrics so far (live view).
    /// Every worker has handed over the seconds below this one (samples and ledger writes).
    pub fn flushed_below(&self) -> u64 {
        let g = self.lock();
        g.watermarks.iter().copied().min().unwrap_or(u64::MAX)
    }

    /// The ledger writes handed over so far (each worker's up to its last flushed second)
    /// that were answered at or before `at_ms` on the run clock, in time order; copies.
    pub fn ledger_until(&self, at_ms: u64) -> Vec<super::ledger::LedgerWrite> {
        let g = self.lock();
        g.ledger
            .writes
            .iter()
            .filter(|w| w.at_ms <= at_ms)
            .cloned()
            .collect()
    }

    /// The run's ledger writes (in time order), taken: call after every worker finished.
    pub fn take_ledger(&self) -> super::ledger::WriteLog {
        std::mem::take(&mut self.lock().ledger)
    }

    pub fn snapshot(&self) -> RunMetrics {
        let g = self.lock();
        build(&g, self.origin.elapsed())
    }

    /// Final metrics: call after every worker has finished (flushed).
    pub fn finish(&self) -> RunMetrics {
        let mut g = self.lock();
        finalize(&mut g, u64::MAX);
        let mut m = build(&g, self.origin.elapsed());
        m.second_latency = g.second_latency.clone();
        m
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A source's (or step's) samples of one second: latency, requests, errors, errors by kind.
type SecondAcc = (Histogram<u64>, u64, u64, Vec<(ErrorKind, u64)>);

/// Add `failed` errors of `kind` to a second's per-kind counts (kept ascending by kind).
fn count_kind(into: &mut Vec<(ErrorKind, u64)>, kind: Option<ErrorKind>, failed: u64) {
    let Some(kind) = kind.filter(|_| failed > 0) else {
        return;
    };
    match into.binary_search_by_key(&kind, |(k, _)| *k) {
        Ok(i) => into[i].1 += failed,
        Err(i) => into.insert(i, (kind, failed)),
    }
}

/// The timeline name of a source: its name, or `probe:NAME`.
pub fn row_name(info: &ScenarioInfo) -> String {
    match info.kind {
        SourceKind::Scenario => info.name.clone(),
        SourceKind::Probe => format!("probe:{}", info.name),
    }
}

/// A flow's per-step rows of one second: one for each step that completed a response in it.
fn step_rows(g: &mut Inner, p: &PendingSecond, sc: usize, second: u64) {
    let mut steps: BTreeMap<u16, SecondAcc> = BTreeMap::new();
    let end = SeriesKey::first_of(sc as u32 + 1);
    for (k, s) in p.series.range(SeriesKey::first_of(sc as u32)..end) {
        let m = steps
            .entry(k.request)
            .or_insert_with(|| (new_histogram(), 0, 0, Vec::new()));
        m.0.add(&s.duration)
            .expect("auto-resizing histograms merge");
        m.1 += s.requests;
        m.2 += s.failed;
        count_kind(&mut m.3, k.error, s.failed);
    }
    for (request, (h, requests, errors, errors_by_kind)) in steps {
        let info = &g.scenarios[sc];
        let row = SecondRow {
            second,
            scenario: row_name(info),
            step: info
                .requests
                .get(request as usize)
                .cloned()
                .unwrap_or_default(),
            requests,
            errors,
            errors_by_kind,
            p50_ms: ms(&h, 0.50),
            p95_ms: ms(&h, 0.95),
            p99_ms: ms(&h, 0.99),
        };
        g.timeline.push(row);
    }
}

/// Turn every pending second below `done` into timeline rows (zero rows for sources that
/// were running but completed nothing in that second) and, when kept, slices.
fn finalize(g: &mut Inner, done: u64) {
    let last_pending = g.pending.keys().next_back().copied();
    let upto = match (done, last_pending) {
        (u64::MAX, Some(l)) => (l + 1).max(g.finalized),
        (u64::MAX, None) => g.finalized,
        (d, _) => d,
    };
    let now = g.finalized;
    let n = g.scenarios.len();
    for second in now..upto {
        let p = g.pending.remove(&second).unwrap_or_default();
        for sc in 0..n {
            let mut merged: Option<SecondAcc> = None;
            let end = SeriesKey::first_of(sc as u32 + 1);
            for (k, s) in p.series.range(SeriesKey::first_of(sc as u32)..end) {
                debug_assert_eq!(k.scenario as usize, sc);
                let m = merged.get_or_insert_with(|| (new_histogram(), 0, 0, Vec::new()));
                m.0.add(&s.duration)
                    .expect("auto-resizing histograms merge");
                m.1 += s.requests;
                m.2 += s.failed;
                count_kind(&mut m.3, k.error, s.failed);
            }
            if let (true, Some((h, ..))) = (g.keep_second_latency, &merged) {
                let mut v2_deflate = Vec::new();
                match V2DeflateSerializer::new().serialize(h, &mut v2_deflate) {
                    Ok(_) => g.second_latency.push(SecondHistogram {
                        second,
                        source: sc as u16,
                        v2_deflate,
                    }),
                    Err(e) => tracing::warn!(error = ?e, second, "encoding a second's histogram"),
                }
            }
            let row = match merged {
                Some((h, requests, errors, errors_by_kind)) => SecondRow {
                    second,
                    scenario: row_name(&g.scenarios[sc]),
                    step: String::new(),
                    requests,
                    errors,
                    errors_by_kind,
                    p50_ms: ms(&h, 0.50),
                    p95_ms: ms(&h, 0.95),
                    p99_ms: ms(&h, 0.99),
                },
                None => {
                    let start = g.starts[sc].as_secs();
                    let running = g.started[sc] > 0
                        && second >= start
                        && g.ends[sc].is_none_or(|e| second <= e.as_secs());
                    if !running {
                        continue;
                    }
                    SecondRow {
                        second,
                        scenario: row_name(&g.scenarios[sc]),
                        step: String::new(),
                        requests: 0,
                        errors: 0,
                        errors_by_kind: Vec::new(),
                        p50_ms: 0.0,
                        p95_ms: 0.0,
                        p99_ms: 0.0,
                    }
                }
            };
            g.timeline.push(row);
            if g.scenarios[sc].flow {
                step_rows(g, &p, sc, second);
            }
        }
        if g.keep_slices {
            let mut dropped = p.dropped;
            dropped.resize(n, 0);
            g.slices.push(SecondSlice {
                second,
                series: p.series.into_iter().collect(),
                dropped,
            });
        }
    }
    g.finalized = g.finalized.max(upto);
}

fn build(g: &Inner, elapsed: Duration) -> RunMetrics {
    let mut scenarios = g.scenarios.clone();
    for (i, s) in scenarios.iter_mut().enumerate() {
        s.active = g.last_end[i]
            .map(|e| e.saturating_sub(g.starts[i]))
            .unwrap_or_default();
    }
    RunMetrics {
        scenarios,
        series: g.series.clone(),
        timeline: g.timeline.clone(),
        events: g.events.clone(),
        elapsed,
        check_counts: g.check_counts.clone(),
        iterations: g.iterations.clone(),
        first_errors: g.first_errors.clone(),
        second_latency: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(status: u16) -> SeriesKey {
        SeriesKey {
            scenario: 0,
            request: 0,
            status,
            error: None,
            variant: Default::default(),
        }
    }

    #[test]
    fn flushes_per_second_and_merges_exactly() {
        let origin = Instant::now() - Duration::from_secs(10);
        let info = ScenarioInfo {
            name: "s".into(),
            ..Default::default()
        };
        let agg = Aggregator::new(origin, vec![info], vec![Duration::ZERO], 2);
        agg.scenario_started(0);
        agg.scenario_started(0);
        let mut a = Recorder::new(0, origin, 1);
        let mut b = Recorder::new(1, origin, 1);
        let at = |s: f64| origin + Duration::from_secs_f64(s);
        for i in 0..100 {
            a.record(&agg, key(200), at(0.5), 1000 + i, 500, false, 1, 0);
        }
        b.record(&agg, key(500), at(0.7), 9000, 9000, true, 0, 1);
        a.record(&agg, key(200), at(1.2), 2000, 2000, false, 1, 0);
        // Worker b has not reported past second 0 yet: no row.
        assert!(agg.snapshot().timeline.is_empty());
        b.tick(&agg, at(2.1));
        let snap = agg.snapshot();
        assert_eq!(snap.timeline.len(), 1);
        assert_eq!(snap.timeline[0].requests, 101);
        assert_eq!(snap.timeline[0].errors, 1);
        a.dropped(0);
        a.finish(&agg);
        b.finish(&agg);
        agg.scenario_finished(0);
        agg.scenario_finished(0);
        let m = agg.finish();
        assert_eq!(m.total_requests(), 102);
        assert_eq!(m.series[&key(200)].requests, 101);
        assert_eq!(m.series[&key(200)].checks_passed, 101);
        assert_eq!(m.series[&key(500)].failed, 1);
        assert_eq!(m.scenarios[0].dropped, 1);
        assert_eq!(m.timeline.iter().map(|r| r.requests).sum::<u64>(), 102);
        assert!(m
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ScenarioEnd { .. })));
        assert_eq!(m.scenarios[0].active, Duration::from_secs_f64(1.2));
    }
}

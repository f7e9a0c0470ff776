//! `loadgate merge DIR... --out DIR`: the segments of a distributed run, merged exactly and
//! judged as one run.
//!
//! k6-operator judges thresholds per instance; a p95 that holds on each of ten machines can
//! fail over their union (and a count that no single machine reaches can pass), so loadgate
//! merges first and judges after:
//!
//! 1. every directory must hold a segment's results (`results/segment.json`, see
//!    [`super::segment`]) of the same plan (digest, `--env`, `--set`) and the same count N,
//!    with each index 1..=N exactly once; anything else is an error naming the directory;
//! 2. the measurements add up exactly: histograms (HdrHistograms add without loss), counters,
//!    response checks, dropped iterations, and second by second the series' slices; the
//!    per-second rows are rebuilt from the merged slices (percentiles of the union, not an
//!    average of percentiles); a scenario's active time and the run's length are the longest
//!    segment's;
//! 3. the judges stored with the segments run over the union: whole-run thresholds on the
//!    merged metrics, windowed thresholds and SLO burn rates by replaying the merged slices
//!    second by second through the same controllers a run uses ([`crate::control`]), so the
//!    merged verdict is the one a single machine sending the same requests would reach;
//!    probes ran in segment 1 only, and their judgement is taken from it;
//! 4. the reports are written as a run writes them (summary.json, junit.xml, timeseries.csv,
//!    report.html, results/), so `loadgate report OUT` and `--compare` work on a merged run.
//!
//! Seconds align across segments when they shared a start (`--start-at`); the spread of the
//! segments' actual starts is reported ([`Merged::start_spread`]).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::results::{self, Judgement, StoppedRecord, Stored};
use super::segment::{self, JudgeError, SegmentManifest};
use super::summary::Summary;
use super::{write_reports, ReportError, RunReport};
use crate::checks::{CheckKind, CheckResult};
use crate::control::slo::Slos;
use crate::control::threshold::Thresholds;
use crate::control::{Action, Controller, End, Section, StartCtx, Stopped, Tick};
use crate::metrics::recorder::{row_name, Aggregator};
use crate::metrics::slices::EncodedSlice;
use crate::metrics::{
    new_histogram, Event, EventKind, RunMetrics, SecondHistogram, SecondRow, SecondSlice,
    SeriesKey, SeriesStats,
};
use crate::spec::{HttpOptions, RunSpec};

/// Why segments cannot be merged. Every one names the directory (or the index) at fault.
#[derive(Debug, Error)]
pub enum MergeError {
    #[error("no segment directories given: pass each segment's output directory, e.g. `loadgate merge out/seg-1 out/seg-2 --out out/merged`")]
    NoInputs,
    #[error("{}: {reason}", dir.display())]
    Unreadable { dir: PathBuf, reason: String },
    #[error("{}: not a segment's results (no results/segment.json): run each share with `loadgate run PLAN --segment I/N --out DIR` and merge those directories", dir.display())]
    NotASegment { dir: PathBuf },
    #[error("{}: segment {index}/{count} ran {what} {theirs}, but {} ran {ours}: every segment must run the same plan with the same --env and --set", dir.display(), first.display())]
    Mismatch {
        dir: PathBuf,
        index: u32,
        count: u32,
        what: &'static str,
        theirs: String,
        ours: String,
        first: PathBuf,
    },
    #[error("{}: segment {index} of {count}, but {} is a segment of {expected}: every segment of one run has the same N", dir.display(), first.display())]
    WrongCount {
        dir: PathBuf,
        index: u32,
        count: u32,
        expected: u32,
        first: PathBuf,
    },
    #[error("segment {index}/{count} given twice: {} and {}", a.display(), b.display())]
    Duplicate {
        index: u32,
        count: u32,
        a: PathBuf,
        b: PathBuf,
    },
    #[error("missing segment(s) {} of {count}: the union would not be the plan; pass every segment's output directory", list(.missing))]
    Missing { missing: Vec<u32>, count: u32 },
    #[error("{}: {source}", dir.display())]
    Judge { dir: PathBuf, source: JudgeError },
    #[error("{}: its scenarios differ from {}'s ({reason}): the segments are not of one plan", dir.display(), first.display())]
    Sources {
        dir: PathBuf,
        first: PathBuf,
        reason: String,
    },
}

fn list(v: &[u32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One segment's stored results.
pub struct Segment {
    pub dir: PathBuf,
    pub manifest: SegmentManifest,
    pub stored: Stored,
    pub slices: Vec<EncodedSlice>,
}

/// Read the segment stored in `dir` (its output directory).
pub fn load(dir: &Path) -> Result<Segment, MergeError> {
    let unreadable = |e: ReportError| MergeError::Unreadable {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let manifest = segment::load_manifest(dir)
        .map_err(unreadable)?
        .ok_or_else(|| MergeError::NotASegment {
            dir: dir.to_path_buf(),
        })?;
    let stored = results::load(dir).map_err(unreadable)?;
    let slices = segment::load_slices(dir).map_err(unreadable)?;
    Ok(Segment {
        dir: dir.to_path_buf(),
        manifest,
        stored,
        slices,
    })
}

/// Check that `segs` are the N segments of one run, each once; sorts them by index.
pub fn check(segs: &mut [Segment]) -> Result<(), MergeError> {
    let Some(first) = segs.first() else {
        return Err(MergeError::NoInputs);
    };
    let (f, fdir) = (&first.manifest, first.dir.clone());
    let identity = |m: &SegmentManifest| -> [(&'static str, String); 4] {
        [
            ("the plan", format!("{:?}", m.plan)),
            (
                "the plan text with SHA-256",
                m.plan_sha256.clone().unwrap_or_else(|| "(none)".into()),
            ),
            ("--env", format!("{:?}", m.environment)),
            ("--set", format!("{:?}", m.overrides)),
        ]
    };
    let ours = identity(f);
    let expected = f.count;
    for s in segs.iter() {
        let m = &s.manifest;
        for ((what, theirs), (_, ours)) in identity(m).into_iter().zip(ours.iter()) {
            if theirs != *ours {
                return Err(MergeError::Mismatch {
                    dir: s.dir.clone(),
                    index: m.index,
                    count: m.count,
                    what,
                    theirs,
                    ours: ours.clone(),
                    first: fdir.clone(),
                });
            }
        }
        if m.count != expected {
            return Err(MergeError::WrongCount {
                dir: s.dir.clone(),
                index: m.index,
                count: m.count,
                expected,
                first: fdir.clone(),
            });
        }
        if m.thresholds != f.thresholds || m.slos != f.slos {
            return Err(MergeError::Mismatch {
                dir: s.dir.clone(),
                index: m.index,
                count: m.count,
                what: "thresholds / SLOs",
                theirs: format!("{} / {}", m.thresholds.len(), m.slos.len()),
                ours: format!(
                    "{} / {} (not the same ones)",
                    f.thresholds.len(),
                    f.slos.len()
                ),
                first: fdir.clone(),
            });
        }
    }
    segs.sort_by_key(|s| s.manifest.index);
    for w in segs.windows(2) {
        if w[0].manifest.index == w[1].manifest.index {
            return Err(MergeError::Duplicate {
                index: w[0].manifest.index,
                count: expected,
                a: w[0].dir.clone(),
                b: w[1].dir.clone(),
            });
        }
    }
    let missing: Vec<u32> = (1..=expected)
        .filter(|i| !segs.iter().any(|s| s.manifest.index == *i))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing,
            count: expected,
        });
    }
    Ok(())
}

/// The union of the segments, judged.
pub struct Merged {
    pub metrics: RunMetrics,
    pub summary: Summary,
    pub judgement: Judgement,
    /// How far apart the segments' run clocks started (0 with a shared `--start-at`, give or
    /// take the machines' clock sync).
    pub start_spread: Duration,
    /// The segments merged.
    pub segments: u32,
}

/// Merge checked segments (see [`check`]) and judge the union.
pub fn merge(segs: &[Segment]) -> Result<Merged, MergeError> {
    let Some(first) = segs.first() else {
        return Err(MergeError::NoInputs);
    };
    let (mut metrics, slices) = merge_metrics(segs)?;
    let thresholds = first
        .manifest
        .threshold_specs()
        .map_err(|source| MergeError::Judge {
            dir: first.dir.clone(),
            source,
        })?;
    let mut spec = RunSpec::new(
        &first.manifest.plan,
        first
            .stored
            .judgement
            .run
            .as_ref()
            .map(|r| r.target.as_str())
            .unwrap_or_default(),
        HttpOptions::default(),
        Vec::new(),
    );
    spec.thresholds = thresholds;
    spec.slos = first.manifest.slo_specs();
    let stopped = stopped_of(segs);
    let (mut checks, mut sections, events) = replay(&spec, &metrics, &slices, stopped.as_ref());
    metrics.events.extend(events);
    metrics.events.sort_by_key(|e| e.at);
    // Probes ran in one segment only: its judgement of them is the union's. In report order:
    // thresholds, probes, SLOs.
    if let Some(p) = segs.iter().find(|s| s.manifest.probes) {
        let probe_checks = p
            .stored
            .judgement
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::Probe)
            .cloned();
        let at = checks
            .iter()
            .position(|c| c.kind != CheckKind::Threshold)
            .unwrap_or(checks.len());
        checks.splice(at..at, probe_checks);
        if let Some(r) = &p.stored.judgement.probes {
            sections.insert(0, Section::Probes(r.clone()));
        }
    }
    if let Some(Stopped::Aborted { check, observed }) = &stopped {
        // A segment stopped on this check: the union ran short too, and never reads as a pass.
        for c in checks.iter_mut().filter(|c| c.name == *check && c.passed) {
            c.passed = false;
            c.observed = format!("{} (a segment aborted on it: {observed})", c.observed);
        }
    }
    let started = segs
        .iter()
        .map(|s| s.manifest.started_at_unix_ns)
        .min()
        .unwrap_or_default();
    let latest = segs
        .iter()
        .map(|s| s.manifest.started_at_unix_ns)
        .max()
        .unwrap_or_default();
    let started_wall = SystemTime::UNIX_EPOCH + Duration::from_nanos(started);
    let mut summary = Summary::build(
        &first.manifest.plan,
        &metrics,
        checks,
        sections,
        started_wall,
        stopped.as_ref(),
    );
    summary.run = first.stored.judgement.run.clone();
    let judgement = Judgement::of(
        &summary,
        started_wall,
        stopped.as_ref(),
        &first.stored.judgement.report_formats(),
    );
    Ok(Merged {
        metrics,
        summary,
        judgement,
        start_spread: Duration::from_nanos(latest - started),
        segments: first.manifest.count,
    })
}

/// Write the merged run's reports and results into `out`. Returns the paths written.
pub fn write(out: &Path, merged: &Merged) -> Result<Vec<PathBuf>, ReportError> {
    let latency = merged.metrics.scenario_latency();
    let mut written = write_reports(
        out,
        &RunReport {
            summary: &merged.summary,
            timeline: &merged.metrics.timeline,
            latency: &latency,
            baseline: None,
        },
        &merged.judgement.report_formats(),
    )?;
    written.extend(results::store(out, &merged.metrics, &merged.judgement)?);
    Ok(written)
}

/// Interrupted when any segment was; else the first segment's abort, if one aborted.
fn stopped_of(segs: &[Segment]) -> Option<Stopped> {
    let records = segs
        .iter()
        .filter_map(|s| s.stored.judgement.stopped.as_ref());
    let mut out = None;
    for r in records {
        match r {
            StoppedRecord::Interrupted => return Some(Stopped::Interrupted),
            StoppedRecord::Aborted { check, observed } => {
                out.get_or_insert(Stopped::Aborted {
                    check: check.clone(),
                    observed: observed.clone(),
                });
            }
        }
    }
    out
}

fn histogram_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The exact union of the segments' measurements, and the union's slices second by second.
fn merge_metrics(segs: &[Segment]) -> Result<(RunMetrics, Vec<SecondSlice>), MergeError> {
    // The segment that ran the probes has the most sources; the others' are a prefix of it.
    let base = segs
        .iter()
        .max_by_key(|s| s.stored.metrics.scenarios.len())
        .ok_or(MergeError::NoInputs)?;
    let mut m = RunMetrics {
        scenarios: base.stored.metrics.scenarios.clone(),
        ..RunMetrics::default()
    };
    for s in &mut m.scenarios {
        s.dropped = 0;
        s.active = Duration::ZERO;
    }
    let decode_err = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |reason: String| MergeError::Unreadable {
            dir: dir.clone(),
            reason: format!("results/slices.hlog: {reason}"),
        }
    };
    let mut by_second: BTreeMap<u64, (BTreeMap<SeriesKey, SeriesStats>, Vec<u64>)> =
        BTreeMap::new();
    for seg in segs {
        let sm = &seg.stored.metrics;
        for (i, info) in sm.scenarios.iter().enumerate() {
            let Some(ours) = m
                .scenarios
                .get_mut(i)
                .filter(|o| o.name == info.name && o.kind == info.kind)
            else {
                return Err(MergeError::Sources {
                    dir: seg.dir.clone(),
                    first: base.dir.clone(),
                    reason: format!("source {i} is {:?}", info.name),
                });
            };
            ours.dropped += info.dropped;
            ours.active = ours.active.max(info.active);
        }
        for (k, s) in &sm.series {
            m.series.entry(*k).or_default().merge(s);
        }
        m.check_counts.merge(&sm.check_counts);
        if m.iterations.len() < sm.iterations.len() {
            m.iterations.resize_with(sm.iterations.len(), new_histogram);
        }
        for (into, h) in m.iterations.iter_mut().zip(&sm.iterations) {
            into.add(h).expect("auto-resizing histograms merge");
        }
        for (k, msg) in &sm.first_errors {
            m.first_errors.entry(*k).or_insert_with(|| msg.clone());
        }
        m.elapsed = m.elapsed.max(sm.elapsed);
        for e in &sm.events {
            if keep_event(&e.kind) {
                m.events.push(e.clone());
            }
        }
        for enc in &seg.slices {
            let slice = enc.decode().map_err(decode_err(&seg.dir))?;
            let (series, dropped) = by_second.entry(slice.second).or_default();
            for (k, s) in slice.series {
                series.entry(k).or_default().merge(&s);
            }
            if dropped.len() < slice.dropped.len() {
                dropped.resize(slice.dropped.len(), 0);
            }
            for (into, d) in dropped.iter_mut().zip(&slice.dropped) {
                *into += d;
            }
        }
    }
    m.events = dedupe_lifecycle(std::mem::take(&mut m.events));
    let n = m.scenarios.len();
    let slices: Vec<SecondSlice> = by_second
        .into_iter()
        .map(|(second, (series, mut dropped))| {
            dropped.resize(n.max(dropped.len()), 0);
            SecondSlice {
                second,
                series: series.into_iter().collect(),
                dropped,
            }
        })
        .collect();
    m.timeline = merge_rows(segs, &m, &slices);
    m.second_latency = second_latency(&slices, n);
    Ok((m, slices))
}

/// Events a merge keeps from the segments: not the judges' (the union is judged again).
fn keep_event(k: &EventKind) -> bool {
    !matches!(
        k,
        EventKind::ThresholdBreach { .. }
            | EventKind::BurnAlert { .. }
            | EventKind::BurnResolved { .. }
    )
}

/// One start per scenario (the earliest) and one end (the latest), as one run records them.
fn dedupe_lifecycle(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|e| e.at);
    let mut started = std::collections::BTreeSet::new();
    let mut last_end: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Option<Event>> = Vec::with_capacity(events.len());
    for e in events {
        match &e.kind {
            EventKind::ScenarioStart { scenario, .. } => {
                if started.insert(scenario.clone()) {
                    out.push(Some(e));
                }
            }
            EventKind::ScenarioEnd { scenario } => {
                if let Some(i) = last_end.insert(scenario.clone(), out.len()) {
                    out[i] = None;
                }
                out.push(Some(e));
            }
            _ => out.push(Some(e)),
        }
    }
    out.into_iter().flatten().collect()
}

/// The per-second rows of the union: a row wherever a segment had one, counts added, the
/// percentiles those of the merged slice (the union's samples of that second).
fn merge_rows(segs: &[Segment], m: &RunMetrics, slices: &[SecondSlice]) -> Vec<SecondRow> {
    let names: BTreeMap<String, usize> = m
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, info)| (row_name(info), i))
        .collect();
    // (second, source, 0 for the source's row or 1 + request for a flow step's row)
    let mut rows: BTreeMap<(u64, usize, usize), SecondRow> = BTreeMap::new();
    for seg in segs {
        for r in &seg.stored.metrics.timeline {
            let Some(&src) = names.get(&r.scenario) else {
                tracing::warn!(row = %r.scenario, "a segment's row names no source; left out");
                continue;
            };
            let sub = if r.step.is_empty() {
                0
            } else {
                match m.scenarios[src].requests.iter().position(|q| *q == r.step) {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            match rows.entry((r.second, src, sub)) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(r.clone());
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let into = o.get_mut();
                    into.requests += r.requests;
                    into.errors += r.errors;
                    for (k, n) in &r.errors_by_kind {
                        match into.errors_by_kind.binary_search_by_key(k, |(k, _)| *k) {
                            Ok(i) => into.errors_by_kind[i].1 += n,
                            Err(i) => into.errors_by_kind.insert(i, (*k, *n)),
                        }
                    }
                }
            }
        }
    }
    let by_second: BTreeMap<u64, &SecondSlice> = slices.iter().map(|s| (s.second, s)).collect();
    rows.into_iter()
        .map(|((second, src, sub), mut row)| {
            let mut h = new_histogram();
            if let Some(slice) = by_second.get(&second) {
                for (k, s) in &slice.series {
                    if k.scenario as usize == src && (sub == 0 || k.request as usize + 1 == sub) {
                        h.add(&s.duration).expect("auto-resizing histograms merge");
                    }
                }
            }
            row.p50_ms = histogram_ms(&h, 0.50);
            row.p95_ms = histogram_ms(&h, 0.95);
            row.p99_ms = histogram_ms(&h, 0.99);
            row
        })
        .collect()
}

/// Each second's latency per source, encoded, as a run's aggregator keeps it.
fn second_latency(slices: &[SecondSlice], sources: usize) -> Vec<SecondHistogram> {
    let mut out = Vec::new();
    for slice in slices {
        for src in 0..sources {
            let mut h: Option<Histogram<u64>> = None;
            for (_, s) in slice
                .series
                .iter()
                .filter(|(k, _)| k.scenario as usize == src)
            {
                h.get_or_insert_with(new_histogram)
                    .add(&s.duration)
                    .expect("auto-resizing histograms merge");
            }
            let Some(h) = h else { continue };
            let mut v2_deflate = Vec::new();
            match V2DeflateSerializer::new().serialize(&h, &mut v2_deflate) {
                Ok(_) => out.push(SecondHistogram {
                    second: slice.second,
                    source: src as u16,
                    v2_deflate,
                }),
                Err(e) => tracing::warn!(error = ?e, second = slice.second, "encoding a second"),
            }
        }
    }
    out
}

/// Judge the union: the run's threshold and SLO controllers, fed the merged slices second by
/// second (their events land at the end of the second that caused them), then the final
/// metrics. A windowed `abort_on_fail` that fires marks its check as a run would; the load
/// has already ended, so nothing is stopped.
fn replay(
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

//! The exact union of segments' measurements: histograms, counters, checks and dropped
//! iterations added, second by second slices added, per-second rows rebuilt from the merged
//! slices (the union's percentiles, never an average of the segments'), lifecycle events once.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::{MergeError, Segment};
use crate::metrics::recorder::row_name;
use crate::metrics::slices::SliceCodecError;
use crate::metrics::{
    new_histogram, Event, EventKind, RunMetrics, SecondHistogram, SecondRow, SecondSlice,
    SeriesKey, SeriesStats,
};

fn histogram_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The exact union of the segments' measurements, and the union's slices second by second.
pub(super) fn merge_metrics(
    segs: &[Segment],
) -> Result<(RunMetrics, Vec<SecondSlice>), MergeError> {
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
        move |reason: SliceCodecError| MergeError::Unreadable {
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

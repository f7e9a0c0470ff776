//! A run's measurements on disk, exactly: what `loadgate report DIR` regenerates every report
//! from, and what a later merge of segments reads.
//!
//! Two files in the results directory (`DIR/results/`):
//!
//! - `histograms.hlog`: every latency histogram of the run as a standard HdrHistogram
//!   interval log (the format of the Java `HistogramLogWriter` / `HistogramLogProcessor`,
//!   written with the hdrhistogram crate): each entry a V2 histogram, DEFLATE-compressed and
//!   base64-encoded ("HISTFAAA..."), values in microseconds (`MaxValueDivisor` 1000, so the
//!   log's max column reads in ms), start timestamp 0 and the run's length as its interval,
//!   and a tag naming what it holds:
//!
//!   ```text
//!   Tag=duration.N    series N's `http_req_duration` (intended send → last byte)
//!   Tag=service.N     series N's `http_req_service_time` (actual send → last byte)
//!   Tag=iteration.S   source S's `iteration_duration` (flows)
//!   Tag=second.S      source S's `http_req_duration` of one second: the interval's start
//!                     timestamp is that second of the run clock, its length 1 s
//!   ```
//!
//!   `#[BaseTime]` and `#[StartTime]` are the run's wall-clock start, so every timestamp is
//!   seconds since the run started (the HdrHistogram convention).
//!
//!   Series N is entry N of `measurements.json`'s `series` (its scenario index, request
//!   index, status, error kind and canary variant). Histograms merge exactly (add them), so
//!   segments of one plan merge into one run.
//! - `measurements.json`: everything else that was counted, exactly: the sources (scenarios,
//!   then probes), the series keys and counters, the response checks' counts, the first error
//!   messages, the per-second rows (timeseries.csv's numbers and errors by kind), the typed
//!   events with their run-clock time in nanoseconds, and the run's length in nanoseconds.
//!   `format` is 1.
//!
//! [`write`] and [`read`] round-trip a [`RunMetrics`] exactly (the test in this file says so).
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    CheckCounts, ErrorKind, Event, EventKind, RunMetrics, ScenarioInfo, SecondHistogram, SecondRow,
    SeriesKey, SeriesStats, SourceKind,
};
use crate::spec::Variant;

/// The histogram log's file name in the results directory.
pub const HISTOGRAMS_FILE: &str = "histograms.hlog";
/// The counters' file name in the results directory.
pub const MEASUREMENTS_FILE: &str = "measurements.json";
/// `format` of measurements.json.
pub const FORMAT: u32 = 1;

/// The stored measurements could not be written or read.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not loadgate measurements: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct Measurements {
    format: u32,
    elapsed_ns: u64,
    sources: Vec<Source>,
    series: Vec<Series>,
    check_counts: Vec<Vec<Vec<[u64; 2]>>>,
    first_errors: Vec<FirstError>,
    timeline: Vec<Row>,
    events: Vec<StoredEvent>,
}

#[derive(Serialize, Deserialize)]
struct Source {
    name: String,
    kind: SourceKind,
    executor: String,
    requests: Vec<String>,
    methods: Vec<String>,
    tags: BTreeMap<String, String>,
    flow: bool,
    checks: Vec<Vec<String>>,
    dropped: u64,
    active_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct Series {
    scenario: u16,
    request: u16,
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// none | baseline | canary | other
    variant: String,
    requests: u64,
    failed: u64,
    checks_passed: u64,
    checks_failed: u64,
    /// Numbers taken from responses (a canary's `compare.values`), in order: `[sum, count]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<(f64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct FirstError {
    scenario: u16,
    kind: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct Row {
    second: u64,
    scenario: String,
    step: String,
    requests: u64,
    errors: u64,
    #[serde(default)]
    errors_by_kind: BTreeMap<String, u64>,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize, Deserialize)]
struct StoredEvent {
    at_ns: u64,
    #[serde(flatten)]
    kind: EventKind,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn variant_name(v: Variant) -> &'static str {
    match v {
        Variant::None => "none",
        Variant::Baseline => "baseline",
        Variant::Canary => "canary",
        Variant::Other => "other",
    }
}

pub(super) fn variant_of(s: &str) -> Option<Variant> {
    Some(match s {
        "none" => Variant::None,
        "baseline" => Variant::Baseline,
        "canary" => Variant::Canary,
        "other" => Variant::Other,
        _ => return None,
    })
}

/// Write `m` into `dir` (created if needed): [`HISTOGRAMS_FILE`] and [`MEASUREMENTS_FILE`].
/// Returns the paths written.
pub fn write(dir: &Path, m: &RunMetrics, started: SystemTime) -> Result<Vec<PathBuf>, StoreError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let hlog = dir.join(HISTOGRAMS_FILE);
    let mut log = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("loadgate latency histograms, microseconds; see measurements.json")
            .with_max_value_divisor(1000.0)
            .with_start_time(started)
            .with_base_time(started)
            .begin_log_with(&mut log, &mut ser)
            .map_err(io_err(&hlog))?;
        let len = m.elapsed;
        let mut put = |h: &Histogram<u64>, tag: &str| {
            w.write_histogram(h, Duration::ZERO, len, Tag::new(tag))
                .map_err(|e| StoreError::Format {
                    path: hlog.clone(),
                    reason: format!("encoding {tag}: {e:?}"),
                })
        };
        for (i, s) in m.series.values().enumerate() {
            put(&s.duration, &format!("duration.{i}"))?;
            put(&s.service, &format!("service.{i}"))?;
        }
        for (i, h) in m.iterations.iter().enumerate() {
            if !h.is_empty() {
                put(h, &format!("iteration.{i}"))?;
            }
        }
        let mut de = Deserializer::new();
        for s in &m.second_latency {
            let tag = format!("second.{}", s.source);
            let h: Histogram<u64> =
                de.deserialize(&mut &s.v2_deflate[..])
                    .map_err(|e| StoreError::Format {
                        path: hlog.clone(),
                        reason: format!("decoding {tag} at {} s: {e:?}", s.second),
                    })?;
            w.write_histogram(
                &h,
                Duration::from_secs(s.second),
                Duration::from_secs(1),
                Tag::new(&tag),
            )
            .map_err(|e| StoreError::Format {
                path: hlog.clone(),
                reason: format!("encoding {tag}: {e:?}"),
            })?;
        }
    }
    let doc = Measurements {
        format: FORMAT,
        elapsed_ns: nanos(m.elapsed),
        sources: m
            .scenarios
            .iter()
            .map(|s| Source {
                name: s.name.clone(),
                kind: s.kind,
                executor: s.executor.clone(),
                requests: s.requests.clone(),
                methods: s.methods.clone(),
                tags: s.tags.clone(),
                flow: s.flow,
                checks: s.checks.clone(),
                dropped: s.dropped,
                active_ns: nanos(s.active),
            })
            .collect(),
        series: m
            .series
            .iter()
            .map(|(k, s)| Series {
                scenario: k.scenario,
                request: k.request,
                status: k.status,
                error: k.error.map(|e| e.as_str().to_string()),
                variant: variant_name(k.variant).into(),
                requests: s.requests,
                failed: s.failed,
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                values: s.values.iter().map(|v| (v.sum, v.n)).collect(),
            })
            .collect(),
        check_counts: m.check_counts.0.clone(),
        first_errors: m
            .first_errors
            .iter()
            .map(|((sc, k), msg)| FirstError {
                scenario: *sc,
                kind: k.as_str().into(),
                message: msg.clone(),
            })
            .collect(),
        timeline: m
            .timeline
            .iter()
            .map(|r| Row {
                second: r.second,
                scenario: r.scenario.clone(),
                step: r.step.clone(),
                requests: r.requests,
                errors: r.errors,
                errors_by_kind: r
                    .errors_by_kind
                    .iter()
                    .map(|(k, n)| (k.as_str().to_string(), *n))
                    .collect(),
                p50_ms: r.p50_ms,
                p95_ms: r.p95_ms,
                p99_ms: r.p99_ms,
            })
            .collect(),
        events: m
            .events
            .iter()
            .map(|e| StoredEvent {
                at_ns: nanos(e.at),
                kind: e.kind.clone(),
            })
            .collect(),
    };
    let json_path = dir.join(MEASUREMENTS_FILE);
    let json = serde_json::to_vec(&doc).map_err(|e| StoreError::Format {
        path: json_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&hlog, &log).map_err(io_err(&hlog))?;
    std::fs::write(&json_path, json).map_err(io_err(&json_path))?;
    Ok(vec![hlog, json_path])
}

/// Read the measurements [`write`] stored in `dir`.
pub fn read(dir: &Path) -> Result<RunMetrics, StoreError> {
    let json_path = dir.join(MEASUREMENTS_FILE);
    let bad = |path: &Path, reason: String| StoreError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(&json_path).map_err(|source| StoreError::Io {
        path: json_path.clone(),
        source,
    })?;
    let doc: Measurements =
        serde_json::from_slice(&text).map_err(|e| bad(&json_path, e.to_string()))?;
    if doc.format != FORMAT {
        return Err(bad(
            &json_path,
            format!("format {} (this loadgate reads {FORMAT})", doc.format),
        ));
    }
    let hlog = dir.join(HISTOGRAMS_FILE);
    let log = std::fs::read(&hlog).map_err(|source| StoreError::Io {
        path: hlog.clone(),
        source,
    })?;
    let mut hists: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut second_latency = Vec::new();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&log) {
        let entry = entry.map_err(|e| bad(&hlog, format!("{e:?}")))?;
        if let LogEntry::Interval(i) = entry {
            let tag = i.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(i.encoded_histogram())
                .map_err(|e| bad(&hlog, format!("{tag}: {e}")))?;
            if let Some(source) = tag.strip_prefix("second.") {
                let source = source
                    .parse::<u16>()
                    .map_err(|_| bad(&hlog, format!("bad tag {tag:?}")))?;
                second_latency.push(SecondHistogram {
                    second: i.start_timestamp().as_secs(),
                    source,
                    v2_deflate: raw,
                });
                continue;
            }
            let mut h: Histogram<u64> = de
                .deserialize(&mut &raw[..])
                .map_err(|e| bad(&hlog, format!("{tag}: {e:?}")))?;
            h.auto(true);
            hists.insert(tag, h);
        }
    }
    let mut take = |tag: String| hists.remove(&tag).unwrap_or_else(super::new_histogram);
    let kind_of = |s: &str| {
        ErrorKind::parse(s).ok_or_else(|| bad(&json_path, format!("unknown error kind {s:?}")))
    };
    let mut series = BTreeMap::new();
    for (i, s) in doc.series.iter().enumerate() {
        let key = SeriesKey {
            scenario: s.scenario,
            request: s.request,
            status: s.status,
            error: s.error.as_deref().map(kind_of).transpose()?,
            variant: variant_of(&s.variant)
                .ok_or_else(|| bad(&json_path, format!("unknown variant {:?}", s.variant)))?,
        };
        series.insert(
            key,
            SeriesStats {
                duration: take(format!("duration.{i}")),
                service: take(format!("service.{i}")),
                requests: s.requests,
                failed: s.failed,
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                values: s
                    .values
                    .iter()
                    .map(|&(sum, n)| super::ValueSum { sum, n })
                    .collect(),
            },
        );
    }
    let iterations = (0..doc.sources.len())
        .map(|i| take(format!("iteration.{i}")))
        .collect();
    let mut timeline = Vec::with_capacity(doc.timeline.len());
    for r in doc.timeline {
        let mut errors_by_kind = Vec::new();
        for (k, n) in &r.errors_by_kind {
            errors_by_kind.push((kind_of(k)?, *n));
        }
        errors_by_kind.sort();
        timeline.push(SecondRow {
            second: r.second,
            scenario: r.scenario,
            step: r.step,
            requests: r.requests,
            errors: r.errors,
            errors_by_kind,
            p50_ms: r.p50_ms,
            p95_ms: r.p95_ms,
            p99_ms: r.p99_ms,
        });
    }
    let mut first_errors = BTreeMap::new();
    for f in doc.first_errors {
        first_errors.insert((f.scenario, kind_of(&f.kind)?), f.message);
    }
    Ok(RunMetrics {
        scenarios: doc
            .sources
            .into_iter()
            .map(|s| ScenarioInfo {
                name: s.name,
                kind: s.kind,
                executor: s.executor,
                requests: s.requests,
                methods: s.methods,
                tags: s.tags,
                flow: s.flow,
                checks: s.checks,
                dropped: s.dropped,
                active: Duration::from_nanos(s.active_ns),
            })
            .collect(),
        series,
        timeline,
        events: doc
            .events
            .into_iter()
            .map(|e| Event::new(Duration::from_nanos(e.at_ns), e.kind))
            .collect(),
        elapsed: Duration::from_nanos(doc.elapsed_ns),
        check_counts: CheckCounts(doc.check_counts),
        iterations,
        first_errors,
        second_latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_round_trip_exactly() {
        let mut m = RunMetrics {
            scenarios: vec![ScenarioInfo {
                name: "chat x".into(),
                executor: "constant-vus".into(),
                requests: vec!["GET /".into()],
                methods: vec!["GET".into()],
                active: Duration::from_nanos(1_234_567_891),
                dropped: 3,
                ..Default::default()
            }],
            elapsed: Duration::from_nanos(2_000_000_123),
            ..Default::default()
        };
        let key = SeriesKey {
            scenario: 0,
            request: 0,
            status: 503,
            error: Some(ErrorKind::Status5xx),
            variant: Variant::Canary,
        };
        let s = m.series.entry(key).or_default();
        for v in [1u64, 17, 1234, 99_999, 5_000_000] {
            s.duration.record_n(v, v % 7 + 1).unwrap();
            s.service.record(v / 2 + 1).unwrap();
        }
        s.requests = 9;
        s.failed = 9;
        m.check_counts.add(0, 0, 1, false, 4);
        m.first_errors
            .insert((0, ErrorKind::Status5xx), "GET /: HTTP 503".into());
        m.iterations = vec![super::super::new_histogram()];
        m.iterations[0].record(42).unwrap();
        m.events.push(Event::new(
            Duration::from_nanos(1_500_000_001),
            EventKind::ProbeFailure {
                probe: "login".into(),
                reason: "status 503".into(),
            },
        ));
        m.timeline.push(SecondRow {
            second: 1,
            scenario: "chat x".into(),
            step: String::new(),
            requests: 9,
            errors: 9,
            errors_by_kind: vec![(ErrorKind::Status5xx, 9)],
            p50_ms: 1.234,
            p95_ms: 99.999,
            p99_ms: 5000.1,
        });
        let mut sec = super::super::new_histogram();
        sec.record_n(2500, 3).unwrap();
        let mut v2_deflate = Vec::new();
        use hdrhistogram::serialization::Serializer as _;
        V2DeflateSerializer::new()
            .serialize(&sec, &mut v2_deflate)
            .unwrap();
        m.second_latency.push(SecondHistogram {
            second: 7,
            source: 0,
            v2_deflate,
        });
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &m,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back.second_latency.len(), 1);
        assert_eq!(
            (back.second_latency[0].second, back.second_latency[0].source),
            (7, 0)
        );
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &back.second_latency[0].v2_deflate[..])
            .unwrap();
        assert_eq!(h, sec);
        let s2 = &back.series[&key];
        assert_eq!(s2.duration, m.series[&key].duration);
        assert_eq!(s2.service, m.series[&key].service);
        assert_eq!(s2.requests, 9);
        assert_eq!(back.iterations[0], m.iterations[0]);
        assert_eq!(back.timeline, m.timeline);
        assert_eq!(back.events, m.events);
        assert_eq!(back.elapsed, m.elapsed);
        assert_eq!(back.scenarios[0].active, m.scenarios[0].active);
        assert_eq!(back.check_counts, m.check_counts);
        assert_eq!(back.first_errors, m.first_errors);
        // The log is a standard interval log: a reader sees tagged V2 histograms.
        let text = std::fs::read_to_string(dir.path().join(HISTOGRAMS_FILE)).unwrap();
        assert!(
            text.contains("Tag=duration.0,") && text.contains("HISTF"),
            "{text}"
        );
        assert!(text.contains("Tag=second.0,7.000,1.000,"), "{text}");
        assert!(text.contains("#[BaseTime: 1800000000.000"), "{text}");
    }
}

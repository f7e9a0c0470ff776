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
//!    report.html, results/), so `loadgate report OUT` and `--compare` work on a merged run;
//!    `results/merged.json` lists the segments merged (directory, index, start, requests).
//!
//! Seconds align across segments when they shared a start (`--start-at`); the spread of the
//! segments' actual starts is reported ([`Merged::start_spread`]).
mod replay;
mod union;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::results::{self, Judgement, StoppedRecord, Stored};
use super::segment::{self, JudgeError, SegmentManifest};
use super::summary::Summary;
use super::{write_reports, ReportError, RunReport};
use crate::checks::CheckKind;
use crate::control::{Section, Stopped};
use crate::metrics::slices::EncodedSlice;
use crate::metrics::RunMetrics;
use crate::spec::{HttpOptions, RunSpec};
use replay::replay;
use union::merge_metrics;

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
        what: Identity,
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
    #[error("{}: segment {index} of {count} is out of range (1 to {count})", dir.display())]
    OutOfRange {
        dir: PathBuf,
        index: u32,
        count: u32,
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

/// What makes segments parts of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The plan's name.
    Plan,
    /// The SHA-256 of the plan's text.
    PlanText,
    /// The `--env` profile.
    Environment,
    /// The `--set` overrides.
    Overrides,
    /// The thresholds and SLOs the union is judged with.
    Judges,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Identity::Plan => "the plan",
            Identity::PlanText => "the plan text with SHA-256",
            Identity::Environment => "--env",
            Identity::Overrides => "--set",
            Identity::Judges => "thresholds / SLOs",
        })
    }
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
    let identity = |m: &SegmentManifest| -> [(Identity, String); 4] {
        [
            (Identity::Plan, format!("{:?}", m.plan)),
            (
                Identity::PlanText,
                m.plan_sha256.clone().unwrap_or_else(|| "(none)".into()),
            ),
            (Identity::Environment, format!("{:?}", m.environment)),
            (Identity::Overrides, format!("{:?}", m.overrides)),
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
        if m.index == 0 || m.index > m.count {
            return Err(MergeError::OutOfRange {
                dir: s.dir.clone(),
                index: m.index,
                count: m.count,
            });
        }
        if m.thresholds != f.thresholds || m.slos != f.slos {
            return Err(MergeError::Mismatch {
                dir: s.dir.clone(),
                index: m.index,
                count: m.count,
                what: Identity::Judges,
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
    /// What was merged, for `results/merged.json`.
    pub inputs: Vec<MergedInput>,
}

/// The merged run's record of its inputs (`results/merged.json`): which directories, which
/// segment each was, when it started and what it sent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MergedInput {
    pub dir: String,
    pub index: u32,
    pub count: u32,
    pub started_at_unix_ns: u64,
    pub requests: u64,
    pub dropped: u64,
}

/// The file in the merged run's results directory that lists its inputs.
pub const MERGED_FILE: &str = "merged.json";

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
        inputs: segs
            .iter()
            .map(|s| MergedInput {
                dir: s.dir.display().to_string(),
                index: s.manifest.index,
                count: s.manifest.count,
                started_at_unix_ns: s.manifest.started_at_unix_ns,
                requests: s.stored.metrics.total_requests(),
                dropped: s.stored.metrics.total_dropped(),
            })
            .collect(),
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
    let path = out.join(results::RESULTS_DIR).join(MERGED_FILE);
    let mut json =
        serde_json::to_string_pretty(&merged.inputs).map_err(|e| ReportError::Render {
            format: "results",
            reason: e.to_string(),
        })?;
    json.push('\n');
    super::write_atomic(&path, json.as_bytes())?;
    written.push(path);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{
        new_histogram, Event, EventKind, ScenarioInfo, SecondRow, SecondSlice, SeriesKey,
        SeriesStats,
    };
    use crate::report::segment::StoredThreshold;
    use crate::spec::Variant;

    fn key(status: u16) -> SeriesKey {
        SeriesKey {
            scenario: 0,
            request: 0,
            status,
            error: None,
            variant: Variant::None,
        }
    }

    /// Segment `index` of `count`: one scenario, `per_second[s]` requests in second `s`,
    /// each of latency `latency_us` (a distinct latency per segment).
    fn seg(index: u32, count: u32, per_second: &[u64], latency_us: u64) -> Segment {
        let mut m = RunMetrics {
            scenarios: vec![ScenarioInfo {
                name: "s".into(),
                executor: "constant-arrival-rate".into(),
                requests: vec!["GET /".into()],
                methods: vec!["GET".into()],
                checks: vec![Vec::new()],
                dropped: index as u64,
                active: Duration::from_millis(2900 + index as u64),
                ..ScenarioInfo::default()
            }],
            elapsed: Duration::from_secs(per_second.len() as u64),
            ..RunMetrics::default()
        };
        let mut slices = Vec::new();
        for (second, &n) in per_second.iter().enumerate() {
            let mut s = SeriesStats::default();
            s.duration.record_n(latency_us, n).unwrap();
            s.service.record_n(latency_us / 2, n).unwrap();
            s.requests = n;
            m.series.entry(key(200)).or_default().merge(&s);
            m.timeline.push(SecondRow {
                second: second as u64,
                scenario: "s".into(),
                step: String::new(),
                requests: n,
                errors: 0,
                errors_by_kind: Vec::new(),
                p50_ms: latency_us as f64 / 1000.0,
                p95_ms: latency_us as f64 / 1000.0,
                p99_ms: latency_us as f64 / 1000.0,
            });
            slices.push(
                EncodedSlice::encode(&SecondSlice {
                    second: second as u64,
                    series: vec![(key(200), s)],
                    dropped: vec![0],
                })
                .unwrap(),
            );
        }
        for e in [
            EventKind::ScenarioStart {
                scenario: "s".into(),
                executor: "constant-arrival-rate".into(),
            },
            EventKind::ScenarioEnd {
                scenario: "s".into(),
            },
        ] {
            let at = match e {
                EventKind::ScenarioStart { .. } => Duration::from_millis(index as u64),
                _ => Duration::from_millis(2900 + index as u64),
            };
            m.events.push(Event::new(at, e));
        }
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let summary = Summary::build("p", &m, Vec::new(), Vec::new(), started, None);
        let judgement = Judgement::of(&summary, started, None, &[]);
        let threshold = |expr: &str| StoredThreshold {
            key: "http_reqs".into(),
            expr: expr.into(),
            abort_on_fail: false,
            delay_ns: 0,
            min_samples: 1,
            runbook: None,
        };
        Segment {
            dir: PathBuf::from(format!("seg-{index}")),
            manifest: SegmentManifest {
                format: segment::FORMAT,
                index,
                count,
                plan: "p".into(),
                plan_sha256: Some("abc".into()),
                environment: None,
                overrides: Vec::new(),
                started_at_unix_ns: 1_800_000_000_000_000_000 + index as u64 * 1000,
                start_at_unix_ns: None,
                probes: false,
                thresholds: vec![threshold("count<25"), threshold("count<12 over 1s")],
                slos: Vec::new(),
            },
            stored: Stored {
                metrics: m,
                judgement,
                summary,
            },
            slices,
        }
    }

    #[test]
    fn the_union_is_exact_and_judged_globally() {
        let mut segs = vec![seg(2, 2, &[8, 9], 2000), seg(1, 2, &[10, 0, 5], 1000)];
        check(&mut segs).unwrap();
        assert_eq!(segs[0].manifest.index, 1, "sorted by index");
        let m = merge(&segs).unwrap();
        let mut want = new_histogram();
        for s in &segs {
            want.add(&s.stored.metrics.scenario_latency()["s"]).unwrap();
        }
        assert_eq!(m.metrics.scenario_latency()["s"], want);
        assert_eq!(m.metrics.total_requests(), 32);
        assert_eq!(m.metrics.scenarios[0].dropped, 3, "dropped add up");
        assert_eq!(m.metrics.scenarios[0].active, Duration::from_millis(2902));
        assert_eq!(m.metrics.elapsed, Duration::from_secs(3));
        assert_eq!(m.start_spread, Duration::from_nanos(1000));
        // Per second: counts add, percentiles are the union's (18 requests, 10 at 1 ms).
        let rows: Vec<(u64, u64, f64)> = m
            .metrics
            .timeline
            .iter()
            .map(|r| (r.second, r.requests, r.p50_ms))
            .collect();
        assert_eq!(rows, vec![(0, 18, 1.0), (1, 9, 2.0), (2, 5, 1.0)]);
        assert_eq!(m.metrics.second_latency.len(), 3);
        // One start and one end per scenario.
        let kinds: Vec<&str> = m.metrics.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "scenario_start").count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(kinds.iter().filter(|k| **k == "scenario_end").count(), 1);
        // Each segment alone passes both; the union (32 requests, 18 in second 0) fails both.
        let checks: Vec<(String, bool)> = m
            .summary
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.passed))
            .collect();
        assert_eq!(
            checks,
            vec![
                ("http_reqs count<25".to_string(), false),
                ("http_reqs count<12 over 1s".to_string(), false)
            ]
        );
        assert!(kinds.contains(&"threshold_breach"), "{kinds:?}");
    }

    #[test]
    fn missing_duplicate_and_foreign_segments_are_named() {
        let err = |mut segs: Vec<Segment>| check(&mut segs).unwrap_err().to_string();
        let e = err(vec![seg(1, 3, &[1], 1), seg(3, 3, &[1], 1)]);
        assert!(e.contains("missing segment(s) 2 of 3"), "{e}");
        let e = err(vec![
            seg(1, 2, &[1], 1),
            seg(1, 2, &[1], 1),
            seg(2, 2, &[1], 1),
        ]);
        assert!(
            e.contains("segment 1/2 given twice: seg-1 and seg-1"),
            "{e}"
        );
        let e = err(vec![seg(1, 2, &[1], 1), seg(2, 3, &[1], 1)]);
        assert!(
            e.contains("seg-2: segment 2 of 3, but seg-1 is a segment of 2"),
            "{e}"
        );
        let mut other = seg(2, 2, &[1], 1);
        other.manifest.plan_sha256 = Some("def".into());
        let e = err(vec![seg(1, 2, &[1], 1), other]);
        assert!(
            e.contains("seg-2: segment 2/2 ran the plan text with SHA-256 def"),
            "{e}"
        );
        let mut sets = seg(2, 2, &[1], 1);
        sets.manifest.overrides = vec!["a=b".into()];
        assert!(err(vec![seg(1, 2, &[1], 1), sets]).contains("--set"));
        let e = err(vec![seg(1, 2, &[1], 1), seg(3, 2, &[1], 1)]);
        assert!(e.contains("seg-3: segment 3 of 2 is out of range"), "{e}");
        assert!(matches!(check(&mut []), Err(MergeError::NoInputs)));
    }
}

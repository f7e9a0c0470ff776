//! What a segment of a distributed run (`loadgate run PLAN --segment i/N`) stores besides the
//! results every run stores, so that `loadgate merge` can judge the union:
//!
//! ```text
//! DIR/results/segment.json   which segment of which plan this is (index, count, the plan's
//!                            digest, --env and --set), when it started, whether it ran the
//!                            plan's probes, and the judges to apply to the union: every
//!                            threshold (as written) and every SLO (as lowered)
//! DIR/results/slices.hlog    every second's samples per series (metrics::slices)
//! DIR/results/slices.json
//! ```
//!
//! The judges travel with the results because the merge must not need the plan file, its
//! feeders, or the environment the segments ran in (secrets included): a merge step in a CI
//! job or a Kubernetes pod reads nothing but the segments' directories.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::results::RESULTS_DIR;
use super::summary::RunInfo;
use super::ReportError;
use crate::grammar::metric_key::parse_metric_key;
use crate::grammar::threshold::ThresholdExpr;
use crate::metrics::slices::{self, EncodedSlice};
use crate::spec::{BurnWindow, RunSpec, Severity, Sli, SloSpec, ThresholdSpec};

/// The segment's manifest in the results directory.
pub const SEGMENT_FILE: &str = "segment.json";
/// `format` of segment.json.
pub const FORMAT: u32 = 1;

/// A stored judge could not be turned back into a spec.
#[derive(Debug, Error)]
pub enum JudgeError {
    #[error("threshold {key:?}: {reason}")]
    Threshold { key: String, reason: String },
}

/// Which segment of which run a results directory holds, and how to judge the union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentManifest {
    pub format: u32,
    /// 1-based, as on the command line (`--segment 2/3` is index 2).
    pub index: u32,
    pub count: u32,
    /// The plan's name.
    pub plan: String,
    /// SHA-256 of the plan's text (absent for `attack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    /// The `--env` profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Every `--set KEY=VALUE`, in order.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// When this segment's run clock started, nanoseconds since the Unix epoch.
    pub started_at_unix_ns: u64,
    /// The shared start asked for (`--start-at`), nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_unix_ns: Option<u64>,
    /// This segment ran the plan's probes (segment 1 does; the others do not, so the union
    /// probes as one run would).
    pub probes: bool,
    pub thresholds: Vec<StoredThreshold>,
    pub slos: Vec<StoredSlo>,
}

/// A threshold as written in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredThreshold {
    /// The metric key, e.g. `http_req_duration{scenario:chat}`.
    pub key: String,
    /// The expression as written, e.g. `p(95)<250 over 30s`.
    pub expr: String,
    pub abort_on_fail: bool,
    pub delay_ns: u64,
    pub min_samples: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// An SLO as lowered (burn windows already scaled to the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSlo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub objective: f64,
    pub metric: String,
    pub tags: Vec<(String, String)>,
    pub key: String,
    pub sli: StoredSli,
    pub burn: Vec<StoredBurn>,
    pub min_samples: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredSli {
    Availability,
    Latency { threshold_ms: f64, inclusive: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StoredBurn {
    pub long_ns: u64,
    pub short_ns: u64,
    pub factor: f64,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_from_s: Option<(u64, u64)>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(ns)
        .unwrap_or_default()
}

impl StoredThreshold {
    pub fn of(t: &ThresholdSpec) -> StoredThreshold {
        StoredThreshold {
            key: t.key.clone(),
            expr: t.expr.source.clone(),
            abort_on_fail: t.abort_on_fail,
            delay_ns: ns(t.delay),
            min_samples: t.min_samples,
            runbook: t.runbook.clone(),
        }
    }

    pub fn spec(&self) -> Result<ThresholdSpec, JudgeError> {
        let err = |reason: String| JudgeError::Threshold {
            key: self.key.clone(),
            reason,
        };
        let (metric, tags) = parse_metric_key(&self.key).map_err(|e| err(e.to_string()))?;
        let expr = ThresholdExpr::parse(&self.expr).map_err(|e| err(e.to_string()))?;
        Ok(ThresholdSpec {
            metric,
            tags,
            key: self.key.clone(),
            expr,
            abort_on_fail: self.abort_on_fail,
            delay: Duration::from_nanos(self.delay_ns),
            min_samples: self.min_samples,
            runbook: self.runbook.clone(),
        })
    }
}

impl StoredSlo {
    pub fn of(s: &SloSpec) -> StoredSlo {
        StoredSlo {
            name: s.name.clone(),
            description: s.description.clone(),
            objective: s.objective,
            metric: s.metric.clone(),
            tags: s.tags.clone(),
            key: s.key.clone(),
            sli: match s.sli {
                Sli::Availability => StoredSli::Availability,
                Sli::Latency {
                    threshold_ms,
                    inclusive,
                } => StoredSli::Latency {
                    threshold_ms,
                    inclusive,
                },
            },
            burn: s
                .burn
                .iter()
                .map(|b| StoredBurn {
                    long_ns: ns(b.long),
                    short_ns: ns(b.short),
                    factor: b.factor,
                    severity: b.severity,
                    scaled_from_s: b.scaled_from.map(|(l, s)| (l.as_secs(), s.as_secs())),
                })
                .collect(),
            min_samples: s.min_samples,
            runbook: s.runbook.clone(),
        }
    }

    pub fn spec(&self) -> SloSpec {
        SloSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            objective: self.objective,
            metric: self.metric.clone(),
            tags: self.tags.clone(),
            key: self.key.clone(),
            sli: match self.sli {
                StoredSli::Availability => Sli::Availability,
                StoredSli::Latency {
                    threshold_ms,
                    inclusive,
                } => Sli::Latency {
                    threshold_ms,
                    inclusive,
                },
            },
            burn: self
                .burn
                .iter()
                .map(|b| BurnWindow {
                    long: Duration::from_nanos(b.long_ns),
                    short: Duration::from_nanos(b.short_ns),
                    factor: b.factor,
                    severity: b.severity,
                    scaled_from: b
                        .scaled_from_s
                        .map(|(l, s)| (Duration::from_secs(l), Duration::from_secs(s))),
                })
                .collect(),
            min_samples: self.min_samples,
            runbook: self.runbook.clone(),
        }
    }
}

impl SegmentManifest {
    /// The manifest of segment `index` (0-based) of `count` of the run of `spec`.
    pub fn new(
        spec: &RunSpec,
        info: &RunInfo,
        (index, count): (u32, u32),
        started: SystemTime,
        start_at: Option<SystemTime>,
    ) -> SegmentManifest {
        SegmentManifest {
            format: FORMAT,
            index: index + 1,
            count,
            plan: spec.name.clone(),
            plan_sha256: info.plan_sha256.clone(),
            environment: info.environment.clone(),
            overrides: info.overrides.clone(),
            started_at_unix_ns: unix_ns(started),
            start_at_unix_ns: start_at.map(unix_ns),
            probes: !spec.probes.is_empty(),
            thresholds: spec.thresholds.iter().map(StoredThreshold::of).collect(),
            slos: spec.slos.iter().map(StoredSlo::of).collect(),
        }
    }

    /// The thresholds to judge the union with.
    pub fn threshold_specs(&self) -> Result<Vec<ThresholdSpec>, JudgeError> {
        self.thresholds.iter().map(StoredThreshold::spec).collect()
    }

    /// The SLOs to judge the union with.
    pub fn slo_specs(&self) -> Vec<SloSpec> {
        self.slos.iter().map(StoredSlo::spec).collect()
    }

    /// When this segment's run clock started.
    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.started_at_unix_ns)
    }
}

fn store_err(e: crate::metrics::store::StoreError) -> ReportError {
    ReportError::Results(e.to_string())
}

/// Store a segment's manifest and slices in `DIR/results/`. Returns the paths written.
pub fn store(
    dir: &Path,
    manifest: &SegmentManifest,
    slices: &[EncodedSlice],
) -> Result<Vec<PathBuf>, ReportError> {
    let rdir = dir.join(RESULTS_DIR);
    let mut written = slices::write(&rdir, slices, manifest.started()).map_err(store_err)?;
    let path = rdir.join(SEGMENT_FILE);
    let mut json = serde_json::to_string_pretty(manifest).map_err(|e| ReportError::Render {
        format: "results",
        reason: e.to_string(),
    })?;
    json.push('\n');
    super::write_atomic(&path, json.as_bytes())?;
    written.push(path);
    Ok(written)
}

/// The segment manifest stored in `dir` (an output directory), or `None` when `dir` holds
/// the results of a whole run.
pub fn load_manifest(dir: &Path) -> Result<Option<SegmentManifest>, ReportError> {
    let path = dir.join(RESULTS_DIR).join(SEGMENT_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReportError::Results(format!("{}: {e}", path.display()))),
    };
    let m: SegmentManifest = serde_json::from_slice(&text)
        .map_err(|e| ReportError::Results(format!("{}: {e}", path.display())))?;
    if m.format != FORMAT {
        return Err(ReportError::Results(format!(
            "{}: format {} (this loadgate reads {FORMAT})",
            path.display(),
            m.format
        )));
    }
    Ok(Some(m))
}

/// The slices stored in `dir` (an output directory).
pub fn load_slices(dir: &Path) -> Result<Vec<EncodedSlice>, ReportError> {
    slices::read(&dir.join(RESULTS_DIR)).map_err(store_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_thresholds_lower_back_to_the_same_spec() {
        for (key, expr) in [
            ("http_req_duration{scenario:chat}", "p(95)<250ms over 30s"),
            ("http_req_failed", "rate<1%"),
            ("http_reqs", "count>=100"),
        ] {
            let (metric, tags) = parse_metric_key(key).unwrap();
            let t = ThresholdSpec {
                metric,
                tags,
                key: key.into(),
                expr: ThresholdExpr::parse(expr).unwrap(),
                abort_on_fail: true,
                delay: Duration::from_millis(1500),
                min_samples: 3,
                runbook: Some("see docs".into()),
            };
            let json = serde_json::to_string(&StoredThreshold::of(&t)).unwrap();
            let back: StoredThreshold = serde_json::from_str(&json).unwrap();
            let s = back.spec().unwrap();
            assert_eq!((s.metric, s.tags, s.key), (t.metric, t.tags, t.key));
            assert_eq!(s.expr, t.expr);
            assert_eq!((s.delay, s.min_samples), (t.delay, t.min_samples));
        }
    }

    #[test]
    fn stored_slos_lower_back_to_the_same_spec() {
        let s = SloSpec {
            name: "latency".into(),
            description: None,
            objective: 0.999,
            metric: "http_req_duration".into(),
            tags: vec![("scenario".into(), "chat".into())],
            key: "http_req_duration{scenario:chat}".into(),
            sli: Sli::Latency {
                threshold_ms: 300.0,
                inclusive: false,
            },
            burn: BurnWindow::workbook_scaled(Duration::from_secs(60)),
            min_samples: 10,
            runbook: None,
        };
        let json = serde_json::to_string(&StoredSlo::of(&s)).unwrap();
        let back: StoredSlo = serde_json::from_str(&json).unwrap();
        let b = back.spec();
        assert_eq!(b.burn, s.burn);
        assert_eq!(b.sli, s.sli);
        assert_eq!((b.objective, b.min_samples), (s.objective, s.min_samples));
    }
}

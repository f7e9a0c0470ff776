//! `results/` in every output directory: a run's stored results, from which
//! `loadgate report DIR` regenerates every report file (and `--compare` reads two runs).
//!
//! ```text
//! DIR/results/histograms.hlog     latency histograms, HdrHistogram interval log (metrics::store)
//! DIR/results/measurements.json   counters, per-second rows, events (metrics::store)
//! DIR/results/judgement.json      what the run concluded: every check (with its runbook),
//!                                 the drills' sections, why it stopped, what ran, formats
//! ```
//!
//! The reports are a pure function of these files: [`regenerate`] rebuilds summary.json with
//! [`Summary::build`] from the stored measurements and judgement, exactly as the run did, so
//! the regenerated summary.json equals the run's (tests/report_regenerate.rs).
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::summary::{RunInfo, Summary};
use super::{write_reports, ReportError, RunReport};
use crate::checks::slo::SloReport;
use crate::checks::CheckResult;
use crate::control::blue_green::BlueGreenReport;
use crate::control::canary::CanaryReport;
use crate::control::{ProbeReport, Section, Stopped};
use crate::drills::capacity::CapacityReport;
use crate::metrics::store::{self, StoreError};
use crate::metrics::RunMetrics;
use crate::spec::ReportFormat;

/// The results directory inside an output directory.
pub const RESULTS_DIR: &str = "results";
/// The judgement's file name in the results directory.
pub const JUDGEMENT_FILE: &str = "judgement.json";
/// `format` of judgement.json.
pub const FORMAT: u32 = 1;

/// What a run concluded, stored beside its measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub format: u32,
    pub plan: String,
    /// Wall-clock start, seconds since the Unix epoch (summary.json keeps second precision).
    pub started_at_unix_s: u64,
    pub checks: Vec<CheckResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Vec<ProbeReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slos: Option<Vec<SloReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
    /// `interrupted`, or the abort's check and observed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StoppedRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    /// The report formats the run wrote (`table`, `json`, `junit`, `csv`, `html`).
    pub formats: Vec<String>,
}

/// Why the run stopped early, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoppedRecord {
    Interrupted,
    Aborted { check: String, observed: String },
}

fn format_name(f: ReportFormat) -> &'static str {
    match f {
        ReportFormat::Table => "table",
        ReportFormat::Json => "json",
        ReportFormat::Junit => "junit",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    }
}

fn format_of(s: &str) -> Option<ReportFormat> {
    ReportFormat::ALL.into_iter().find(|f| format_name(*f) == s)
}

impl Judgement {
    /// The judgement of a finished run: its summary's checks and sections.
    pub fn of(
        summary: &Summary,
        started_wall: SystemTime,
        stopped: Option<&Stopped>,
        formats: &[ReportFormat],
    ) -> Judgement {
        Judgement {
            format: FORMAT,
            plan: summary.plan.clone(),
            started_at_unix_s: started_wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            checks: summary.checks.clone(),
            probes: summary.probes.clone(),
            slos: summary.slos.clone(),
            canary: summary.canary.clone(),
            blue_green: summary.blue_green.clone(),
            capacity: summary.capacity.clone(),
            stopped: stopped.map(|s| match s {
                Stopped::Interrupted => StoppedRecord::Interrupted,
                Stopped::Aborted { check, observed } => StoppedRecord::Aborted {
                    check: check.clone(),
                    observed: observed.clone(),
                },
            }),
            run: summary.run.clone(),
            formats: formats
                .iter()
                .map(|f| format_name(*f).to_string())
                .collect(),
        }
    }

    /// The report formats to write again.
    pub fn report_formats(&self) -> Vec<ReportFormat> {
        self.formats.iter().filter_map(|f| format_of(f)).collect()
    }

    /// summary.json of the stored run, built as the run built it.
    pub fn summary(&self, metrics: &RunMetrics) -> Summary {
        let mut sections = Vec::new();
        if let Some(p) = &self.probes {
            sections.push(Section::Probes(p.clone()));
        }
        if let Some(s) = &self.slos {
            sections.push(Section::Slos(s.clone()));
        }
        if let Some(c) = &self.canary {
            sections.push(Section::Canary(Box::new(c.clone())));
        }
        if let Some(b) = &self.blue_green {
            sections.push(Section::BlueGreen(Box::new(b.clone())));
        }
        let stopped = self.stopped.as_ref().map(|s| match s {
            StoppedRecord::Interrupted => Stopped::Interrupted,
            StoppedRecord::Aborted { check, observed } => Stopped::Aborted {
                check: check.clone(),
                observed: observed.clone(),
            },
        });
        let mut summary = Summary::build(
            &self.plan,
            metrics,
            self.checks.clone(),
            sections,
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.started_at_unix_s),
            stopped.as_ref(),
        );
        summary.run = self.run.clone();
        if let Some(c) = &self.capacity {
            summary.set_capacity(c.clone());
        }
        summary
    }
}

fn store_err(e: StoreError) -> ReportError {
    ReportError::Results(e.to_string())
}

/// Store a run's results in `DIR/results/`. Returns the paths written.
pub fn store(
    dir: &Path,
    metrics: &RunMetrics,
    judgement: &Judgement,
) -> Result<Vec<PathBuf>, ReportError> {
    let rdir = dir.join(RESULTS_DIR);
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs(judgement.started_at_unix_s);
    let mut written = store::write(&rdir, metrics, started).map_err(store_err)?;
    let path = rdir.join(JUDGEMENT_FILE);
    let mut json = serde_json::to_string_pretty(judgement).map_err(|e| ReportError::Render {
        format: "results",
        reason: e.to_string(),
    })?;
    json.push('\n');
    super::write_atomic(&path, json.as_bytes())?;
    written.push(path);
    Ok(written)
}

/// A stored run, read back.
pub struct Stored {
    pub metrics: RunMetrics,
    pub judgement: Judgement,
    pub summary: Summary,
}

/// Read the run stored in `dir` (its output directory).
pub fn load(dir: &Path) -> Result<Stored, ReportError> {
    let rdir = dir.join(RESULTS_DIR);
    let metrics = store::read(&rdir).map_err(store_err)?;
    let path = rdir.join(JUDGEMENT_FILE);
    let text = std::fs::read(&path)
        .map_err(|e| ReportError::Results(format!("{}: {e}", path.display())))?;
    let judgement: Judgement = serde_json::from_slice(&text)
        .map_err(|e| ReportError::Results(format!("{}: {e}", path.display())))?;
    if judgement.format != FORMAT {
        return Err(ReportError::Results(format!(
            "{}: format {} (this loadgate reads {FORMAT})",
            path.display(),
            judgement.format
        )));
    }
    let summary = judgement.summary(&metrics);
    Ok(Stored {
        metrics,
        judgement,
        summary,
    })
}

/// Write every report file of the run stored in `dir` again. Returns the paths written.
pub fn regenerate(dir: &Path) -> Result<(Stored, Vec<PathBuf>), ReportError> {
    let stored = load(dir)?;
    let latency = stored.metrics.scenario_latency();
    let written = write_reports(
        dir,
        &RunReport {
            summary: &stored.summary,
            timeline: &stored.metrics.timeline,
            latency: &latency,
            baseline: None,
        },
        &stored.judgement.report_formats(),
    )?;
    Ok((stored, written))
}

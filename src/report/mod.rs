//! Report writers behind one trait, one file per format: [`summary`] (summary.json, the
//! contract), [`junit`] (junit.xml), [`csv`] (timeseries.csv), [`table`] (the terminal
//! table, also written as summary.txt) and [`html`] (report.html: charts, events, drills).
//! [`compare`] puts two runs side by side (`loadgate report --compare`). [`results`] stores
//! what a run measured and concluded; [`segment`] adds what a segment of a distributed run
//! stores for [`merge`], which merges the segments exactly and judges their union
//! (`loadgate merge`).
//!
//! Each format is an [`Exporter`] (hyperfine's design): it renders a [`RunReport`] to bytes
//! and names its file; [`write_reports`] writes the exporters a plan asks for, summary.json
//! and report.html always (CI tooling and `loadgate merge` read the one, people the other). A new format (HTML) is a new file and a
//! line in [`exporter_for`], nothing else. Files are written atomically (a temp file in the
//! same directory, then a rename), so a reader never sees half a summary.json.
pub mod autoscale;
pub mod capacity;
pub mod compare;
pub mod csv;
pub mod html;
pub mod junit;
pub mod merge;
pub mod results;
pub mod segment;
pub mod summary;
pub mod table;
pub mod warnings;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use thiserror::Error;

use crate::metrics::SecondRow;
use crate::spec::ReportFormat;

pub use summary::{Summary, Verdict};

/// File names inside the output directory.
pub const SUMMARY_FILE: &str = "summary.json";
pub const JUNIT_FILE: &str = "junit.xml";
pub const TIMESERIES_FILE: &str = "timeseries.csv";
pub const TABLE_FILE: &str = "summary.txt";
pub const HTML_FILE: &str = "report.html";

/// A report could not be rendered or written.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot create report directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} has {} free, the reports of this run need about {}: free some space or pass --out on another disk",
        path.display(), human_bytes(*available), human_bytes(*needed)
    )]
    NoSpace {
        path: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("cannot render {format}: {reason}")]
    Render {
        format: &'static str,
        reason: String,
    },
    /// A run's stored results (`DIR/results/`) could not be written or read.
    #[error("stored results: {0} (the output directory of a run has them under results/)")]
    Results(String),
}

/// Everything a report format may show of a run.
pub struct RunReport<'a> {
    pub summary: &'a Summary,
    /// One row per second and scenario (or probe).
    pub timeline: &'a [SecondRow],
    /// Per scenario: the whole run's latency histogram (intended send → last byte, µs), for
    /// the percentile spectrum. Empty when not known.
    pub latency: &'a BTreeMap<String, Histogram<u64>>,
    /// A baseline run shown beside this one (`loadgate report --compare`).
    pub baseline: Option<&'a Baseline<'a>>,
}

/// The run a report is compared with.
pub struct Baseline<'a> {
    pub summary: &'a Summary,
    pub timeline: &'a [SecondRow],
    pub latency: &'a BTreeMap<String, Histogram<u64>>,
    /// The judged deltas.
    pub comparison: Option<&'a compare::Comparison>,
}

/// One report format.
pub trait Exporter {
    /// The file it writes in the output directory.
    fn file_name(&self) -> &'static str;
    /// The file's contents.
    fn render(&self, run: &RunReport<'_>) -> Result<Vec<u8>, ReportError>;
}

/// The exporter of a format.
pub fn exporter_for(format: ReportFormat) -> Box<dyn Exporter> {
    match format {
        ReportFormat::Json => Box::new(summary::JsonExporter),
        ReportFormat::Junit => Box::new(junit::JunitExporter),
        ReportFormat::Csv => Box::new(csv::CsvExporter),
        ReportFormat::Table => Box::new(table::TableExporter),
        ReportFormat::Html => Box::new(html::HtmlExporter),
    }
}

/// The exporters for `formats`: summary.json first and always, then the others in order,
/// then report.html, also always (every output directory has one).
pub fn exporters(formats: &[ReportFormat]) -> Vec<Box<dyn Exporter>> {
    let mut list = vec![ReportFormat::Json];
    list.extend(
        formats
            .iter()
            .copied()
            .filter(|f| *f != ReportFormat::Json && *f != ReportFormat::Html),
    );
    list.push(ReportFormat::Html);
    list.dedup();
    list.into_iter().map(exporter_for).collect()
}

/// Write the reports of a run into `dir` (created if needed). Returns the paths written,
/// summary.json first.
pub fn write_reports(
    dir: &Path,
    run: &RunReport<'_>,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for e in exporters(formats) {
        let path = dir.join(e.file_name());
        let bytes = e.render(run)?;
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// About how many bytes the reports of a run of `seconds` seconds over `series` series
/// (scenarios + probes + the run's total row) take: 1 MiB for summary.json, junit.xml,
/// summary.txt and report.html (a short run's page is a few hundred KiB), plus ~512 bytes
/// per second and series (its timeseries.csv row, its share of the page's charts and the
/// stored copy under results/).
pub fn space_needed(seconds: u64, series: usize) -> u64 {
    (1 << 20)
        + seconds
            .saturating_mul(series.max(1) as u64)
            .saturating_mul(512)
}

/// Fail now, before any load is sent, when the file system holding `dir` has less room than
/// the reports will need: a run that ends on a full disk would lose its results.
pub fn check_space(dir: &Path, needed: u64) -> Result<(), ReportError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| ReportError::Write {
        path: dir.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    // f_bavail: blocks available to unprivileged users (root may dip into the reserve, but
    // a report written into it is one `df` call away from ENOSPC anyway).
    let available = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    if available < needed {
        return Err(ReportError::NoSpace {
            path: dir.to_path_buf(),
            available,
            needed,
        });
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.0} KiB", f / KIB)
    } else {
        format!("{n} B")
    }
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

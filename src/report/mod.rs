//! Report writers, one file per format: [`summary`] (summary.json, the contract), [`junit`]
//! (junit.xml), [`csv`] (timeseries.csv) and [`table`] (the terminal table the CLI prints).
//!
//! [`write_reports`] writes the files of a run into its output directory; summary.json is
//! always written because CI tooling and `loadgate merge` read it.
pub mod csv;
pub mod junit;
pub mod summary;
pub mod table;

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::metrics::RunMetrics;
use crate::spec::ReportFormat;

pub use summary::{Interruption, Summary, Verdict};

/// File names inside the output directory.
pub const SUMMARY_FILE: &str = "summary.json";
pub const JUNIT_FILE: &str = "junit.xml";
pub const TIMESERIES_FILE: &str = "timeseries.csv";

/// A report could not be written.
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
    #[error("cannot write {}: {source}", path.display())]
    Csv { path: PathBuf, source: ::csv::Error },
}

/// Write the reports of a run into `dir` (created if needed): summary.json always, plus
/// junit.xml for [`ReportFormat::Junit`] and timeseries.csv for [`ReportFormat::Csv`]
/// ([`ReportFormat::Json`] is summary.json; [`ReportFormat::Table`] is printed by the CLI, see
/// [`table::render`]). Returns the paths written, summary.json first.
pub fn write_reports(
    dir: &Path,
    summary: &Summary,
    metrics: &RunMetrics,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();

    let path = dir.join(SUMMARY_FILE);
    let mut json = summary.to_json_pretty();
    json.push('\n');
    fs::write(&path, json).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    written.push(path);

    if formats.contains(&ReportFormat::Junit) {
        let path = dir.join(JUNIT_FILE);
        junit::render(summary)
            .and_then(|xml| fs::write(&path, xml))
            .map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }

    if formats.contains(&ReportFormat::Csv) {
        let path = dir.join(TIMESERIES_FILE);
        let file = fs::File::create(&path).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        csv::write(std::io::BufWriter::new(file), &metrics.timeline).map_err(|source| {
            ReportError::Csv {
                path: path.clone(),
                source,
            }
        })?;
        written.push(path);
    }
    Ok(written)
}

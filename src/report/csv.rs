//! `timeseries.csv`: one row per second and scenario, for spreadsheets and plotting.
//!
//! Header: `second,scenario,step,requests,errors,p50_ms,p95_ms,p99_ms`. `second` counts whole
//! seconds since the run started (the row covers `[second, second+1)`); `scenario` is the
//! scenario's name, or `probe:NAME` for a probe; `step` is empty on the scenario's row, and a
//! user flow adds a row per step (named) for each second in which that step completed a
//! response; latencies are milliseconds (intended send →
//! last byte) rounded to 3 decimals, 0 when the second had no response.
use std::io::Write;

use serde::Serialize;

use crate::metrics::round3;
use crate::metrics::SecondRow;
use crate::report::{Exporter, ReportError, RunReport, TIMESERIES_FILE};

/// The header, in order.
pub const HEADER: [&str; 8] = [
    "second", "scenario", "step", "requests", "errors", "p50_ms", "p95_ms", "p99_ms",
];

#[derive(Serialize)]
struct Row<'a> {
    second: u64,
    scenario: &'a str,
    step: &'a str,
    requests: u64,
    errors: u64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

/// Write the time series as CSV (header always present, even without rows).
pub fn write<W: Write>(out: W, rows: &[SecondRow]) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(HEADER)?;
    for r in rows {
        w.serialize(Row {
            second: r.second,
            scenario: &r.scenario,
            step: &r.step,
            requests: r.requests,
            errors: r.errors,
            p50_ms: round3(r.p50_ms),
            p95_ms: round3(r.p95_ms),
            p99_ms: round3(r.p99_ms),
        })?;
    }
    w.flush()?;
    Ok(())
}

/// timeseries.csv.
pub struct CsvExporter;

impl Exporter for CsvExporter {
    fn file_name(&self) -> &'static str {
        TIMESERIES_FILE
    }

    fn render(&self, run: &RunReport<'_>) -> Result<Vec<u8>, ReportError> {
        let mut out = Vec::new();
        write(&mut out, run.timeline).map_err(|e| ReportError::Render {
            format: "csv",
            reason: e.to_string(),
        })?;
        Ok(out)
    }
}

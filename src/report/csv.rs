//! `timeseries.csv`: one row per second and scenario, for spreadsheets and plotting.
//!
//! Header: `second,scenario,step,requests,errors,p50_ms,p95_ms,p99_ms`. `second` counts whole
//! seconds since the run started (the row covers `[second, second+1)`); `scenario` is the
//! scenario's name, or `probe:NAME` for a probe; `step` is empty on the scenario's row, and a
//! user flow adds a row per step (named) for each second in which that step completed a
//! response; latencies are milliseconds (intended send →
//! last byte) rounded to 3 decimals, 0 when the second had no response; `value` is empty.
//!
//! A scraper (`scrapes:`) adds a row per scraped point after them: `second` the whole second
//! of the scrape, `scenario` `scrape:NAME`, `step` the series (`name{label="v"}`), `value`
//! the scraped value, the request columns 0.
use std::io::Write;

use serde::Serialize;

use crate::control::scrape::ScrapeReport;
use crate::metrics::round3;
use crate::metrics::SecondRow;
use crate::report::{Exporter, ReportError, RunReport, TIMESERIES_FILE};

/// The header, in order.
pub const HEADER: [&str; 9] = [
    "second", "scenario", "step", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "value",
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
    value: Option<f64>,
}

/// Write the time series as CSV (header always present, even without rows), then the
/// scrapers' points.
pub fn write<W: Write>(
    out: W,
    rows: &[SecondRow],
    scrapes: &[ScrapeReport],
) -> Result<(), csv::Error> {
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
            value: None,
        })?;
    }
    for s in scrapes {
        let source = format!("scrape:{}", s.name);
        for p in &s.points {
            w.serialize(Row {
                second: p.at_s.max(0.0) as u64,
                scenario: &source,
                step: &p.series,
                requests: 0,
                errors: 0,
                p50_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                value: Some(p.value),
            })?;
        }
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
        let scrapes = run.summary.scrapes.as_deref().unwrap_or_default();
        write(&mut out, run.timeline, scrapes).map_err(|e| ReportError::Render {
            format: "csv",
            reason: e.to_string(),
        })?;
        Ok(out)
    }
}

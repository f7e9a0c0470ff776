//! The end-of-run terminal table: per-scenario throughput and latency, every check with
//! PASS/FAIL, then the verdict. The CLI prints [`render`]'s output; nothing here writes.
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::metrics::format_number;
use crate::report::summary::{Summary, Verdict};
use crate::report::{Exporter, ReportError, RunReport, TABLE_FILE};

/// summary.txt: the table the terminal shows.
pub struct TableExporter;

impl Exporter for TableExporter {
    fn file_name(&self) -> &'static str {
        TABLE_FILE
    }

    fn render(&self, run: &RunReport<'_>) -> Result<Vec<u8>, ReportError> {
        Ok(render(run.summary).into_bytes())
    }
}

/// Render the table (ends with a newline).
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let mut title = format!(
        "loadgate: {} ({} s)",
        summary.plan,
        format_number(summary.duration_s)
    );
    if summary.interrupted {
        title.push_str(" — interrupted");
    } else if summary.aborted {
        title.push_str(" — aborted");
    }
    out.push_str(&title);
    out.push('\n');
    if let Some(reason) = &summary.stop_reason {
        out.push_str(&format!("stopped early: {reason}\n"));
    }

    let mut b = Builder::default();
    b.push_record([
        "scenario", "requests", "rps", "errors", "dropped", "p50 ms", "p95 ms", "p99 ms", "max ms",
    ]);
    for (name, s) in &summary.scenarios {
        let err = if s.requests > 0 {
            format!(
                "{} ({:.2}%)",
                s.errors,
                100.0 * s.errors as f64 / s.requests as f64
            )
        } else {
            s.errors.to_string()
        };
        b.push_record([
            name.clone(),
            s.requests.to_string(),
            format_number(s.rps),
            err,
            s.dropped.to_string(),
            format_number(s.latency_ms.p50),
            format_number(s.latency_ms.p95),
            format_number(s.latency_ms.p99),
            format_number(s.latency_ms.max),
        ]);
    }
    let mut t = b.build();
    t.with(Style::rounded())
        .modify(Columns::new(1..), Alignment::right());
    out.push_str(&t.to_string());
    out.push('\n');

    if !summary.checks.is_empty() {
        let mut b = Builder::default();
        b.push_record(["result", "kind", "check", "expected", "observed"]);
        for c in &summary.checks {
            b.push_record([
                if c.passed { "PASS" } else { "FAIL" }.to_string(),
                c.kind.to_string(),
                c.name.clone(),
                c.expected.clone(),
                c.observed.clone(),
            ]);
        }
        let mut t = b.build();
        t.with(Style::rounded());
        out.push_str(&t.to_string());
        out.push('\n');
    }

    let verdict = match summary.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    };
    out.push_str(&format!(
        "verdict: {verdict} ({} of {} checks passed)\n",
        summary.checks_passed,
        summary.checks_passed + summary.checks_failed
    ));
    out
}

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

    // The closed model never drops: its column would only ever read 0.
    let open_model = summary
        .scenarios
        .values()
        .any(|s| s.executor.contains("arrival-rate"));
    let mut b = Builder::default();
    let mut header = vec!["scenario", "requests", "rps", "errors"];
    if open_model {
        header.push("dropped");
    }
    header.extend(["p50 ms", "p95 ms", "p99 ms", "max ms"]);
    b.push_record(header);
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
        let mut row = vec![
            name.clone(),
            s.requests.to_string(),
            format!("{:.1}", s.rps),
            err,
        ];
        if open_model {
            row.push(s.dropped.to_string());
        }
        row.extend([
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p95),
            ms(s.latency_ms.p99),
            ms(s.latency_ms.max),
        ]);
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::rounded())
        .modify(Columns::new(1..), Alignment::right());
    out.push_str(&t.to_string());
    out.push('\n');

    // Per scenario: the latency distribution (wrk --latency style), status codes and error
    // kinds.
    for (name, s) in &summary.scenarios {
        if s.requests == 0 {
            continue;
        }
        let l = &s.latency_ms;
        out.push_str(&format!(
            "{name}: latency ms  50% {}  75% {}  90% {}  95% {}  99% {}  99.9% {}  max {}\n",
            ms(l.p50),
            ms(l.p75),
            ms(l.p90),
            ms(l.p95),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        ));
        let mut parts = Vec::new();
        if !s.status_codes.is_empty() {
            let codes: Vec<String> = s
                .status_codes
                .iter()
                .map(|(c, n)| format!("{c} x{n}"))
                .collect();
            parts.push(format!("status {}", codes.join(", ")));
        }
        if !s.errors_by_kind.is_empty() {
            let kinds: Vec<String> = s
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect();
            parts.push(format!("errors {}", kinds.join(", ")));
        }
        if !parts.is_empty() {
            out.push_str(&format!("{name}: {}\n", parts.join("; ")));
        }
    }

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

    for w in &summary.warnings {
        out.push_str(&format!("warning: {}\n", w.message()));
    }
    let verdict = match summary.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    };
    if summary.checks.is_empty() {
        out.push_str(&format!(
            "verdict: {verdict} (no checks: nothing was judged)\n"
        ));
    } else {
        out.push_str(&format!(
            "verdict: {verdict} ({} of {} checks passed)\n",
            summary.checks_passed,
            summary.checks_passed + summary.checks_failed
        ));
    }
    out
}

/// Milliseconds with two decimals: one width for every latency cell.
fn ms(v: f64) -> String {
    format!("{v:.2}")
}

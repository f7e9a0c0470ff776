//! The end-of-run terminal table: per-scenario throughput and latency, flow steps, the
//! response checks with their pass rates (k6's ✓ / ✗ lines), every judged criterion
//! (thresholds, probes, SLOs, drills) with PASS/FAIL, then the verdict. Words are kept apart:
//! a *check* is an assertion on each response; a *criterion* (a threshold, a probe's SLO, a
//! drill's expectation) is what the verdict judges. The CLI prints [`render`]'s output; nothing here writes.
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::control::canary::CanaryReport;
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
        for (kind, msg) in &s.first_errors {
            out.push_str(&format!("{name}: first {kind}: {msg}\n"));
        }
    }

    // Flows: each step, and the iteration as a whole.
    for (name, s) in &summary.scenarios {
        for st in &s.steps {
            let l = &st.latency_ms;
            out.push_str(&format!(
                "{name} step {}: {} requests, {} errors, latency ms p50 {} p95 {} max {}\n",
                st.name,
                st.requests,
                st.errors,
                ms(l.p50),
                ms(l.p95),
                ms(l.max)
            ));
        }
        if let (Some(n), Some(l)) = (s.iterations, &s.iteration_duration_ms) {
            out.push_str(&format!(
                "{name}: {n} iterations, iteration_duration ms p50 {} p95 {} max {}\n",
                ms(l.p50),
                ms(l.p95),
                ms(l.max)
            ));
        }
    }

    // Response checks, k6 style: one line per check with its pass rate. They describe the
    // responses; only a `checks` threshold turns them into a verdict.
    let any_response_checks = summary
        .scenarios
        .values()
        .any(|s| !s.checks_by_name.is_empty());
    if any_response_checks {
        out.push_str("response checks:\n");
        for (name, s) in &summary.scenarios {
            for c in &s.checks_by_name {
                let total = c.passes + c.fails;
                let mark = if c.fails == 0 && total > 0 {
                    '✓'
                } else {
                    '✗'
                };
                let place = match &c.step {
                    Some(step) => format!("{name} › {step}"),
                    None if s.checks_by_name.iter().any(|o| o.request != c.request) => {
                        format!("{name} › {}", c.request)
                    }
                    None => name.clone(),
                };
                out.push_str(&format!(
                    "  {mark} {place} › {}  {:.2}% — ✓ {} / ✗ {}\n",
                    c.name,
                    100.0 * c.rate,
                    c.passes,
                    c.fails
                ));
            }
        }
    }

    if let Some(c) = &summary.canary {
        out.push_str(&canary_table(c));
    }
    if let Some(b) = &summary.blue_green {
        for s in &b.switches {
            out.push_str(&format!(
                "blue/green {} to {} at {} s: switch {} ms, cutover {} s, {} requests, {} failed, {} on the old version, worst second {}: {}\n",
                s.kind,
                s.to,
                format_number(s.requested_at_s),
                s.switch_ms.map(format_number).unwrap_or_else(|| "-".into()),
                s.cutover_s.map(format_number).unwrap_or_else(|| "-".into()),
                s.requests,
                s.failed,
                s.old_version_requests,
                s.worst_second
                    .as_ref()
                    .map(|w| format!("{} s p99 {} ms", w.at_s, ms(w.p99_ms)))
                    .unwrap_or_else(|| "-".into()),
                if s.passed { "PASS" } else { "FAIL" }
            ));
        }
    }

    if let Some(f) = &summary.failover {
        out.push_str(&failover_table(f));
    }

    if let Some(c) = &summary.capacity {
        out.push_str(&super::capacity::table(c));
    }

    if let Some(a) = &summary.autoscale {
        out.push_str(&super::autoscale::table(a));
    }

    if !summary.checks.is_empty() {
        let mut b = Builder::default();
        b.push_record(["result", "kind", "criterion", "expected", "observed"]);
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
        // What to do about each failed criterion, when the plan says (`runbook:`).
        for c in summary.checks.iter().filter(|c| !c.passed) {
            if let Some(r) = &c.runbook {
                out.push_str(&format!("runbook for {}: {r}\n", c.name));
            }
        }
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
            "verdict: {verdict} (no thresholds: nothing was judged)\n"
        ));
    } else {
        out.push_str(&format!(
            "verdict: {verdict} ({} of {} criteria passed)\n",
            summary.checks_passed,
            summary.checks_passed + summary.checks_failed
        ));
    }
    out
}

/// The canary gate's steps as a header and rows of text cells (terminal and report.html share
/// them): step, weight, window, samples and p50 / p95 per side, U, p-value, effect size with its
/// interval, the class per metric, one column per number taken from responses ("NAME
/// base/canary": both means and the class) and the decision.
pub(crate) fn canary_step_rows(c: &CanaryReport) -> (Vec<String>, Vec<Vec<String>>) {
    let value_names: Vec<String> = c
        .steps
        .iter()
        .flat_map(|s| s.values.iter().map(|v| v.name.clone()))
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    let mut head: Vec<String> = [
        "step",
        "weight",
        "window s",
        "n base",
        "n canary",
        "p50 base",
        "p50 canary",
        "p95 base",
        "p95 canary",
        "U",
        "p-value",
        "effect [CI]",
        "latency",
        "errors",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    head.extend(value_names.iter().map(|n| format!("{n} base/canary")));
    head.push("decision".into());
    let opt = |v: Option<f64>| v.map(format_number).unwrap_or_else(|| "-".into());
    let mut rows = Vec::with_capacity(c.steps.len());
    for s in &c.steps {
        let (u, p, effect, lclass) = match &s.latency {
            Some(l) => (
                opt(l.u),
                opt(l.p_value),
                match l.ratio {
                    Some(r) => format!(
                        "x{} [{}, {}]",
                        format_number(r),
                        opt(l.ratio_lower),
                        opt(l.ratio_upper)
                    ),
                    None => "-".into(),
                },
                l.class.as_str().to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let eclass = s
            .errors
            .as_ref()
            .map(|e| {
                format!(
                    "{} {}%",
                    e.class.as_str(),
                    format_number(e.canary_rate * 100.0)
                )
            })
            .unwrap_or_else(|| "-".into());
        let step = if s.attempt > 1 {
            format!("{} (again)", s.step)
        } else {
            s.step.to_string()
        };
        let mut row = vec![
            step,
            format!("{}%", s.weight),
            format!("{}-{}", s.from_s, s.to_s),
            s.baseline.requests.to_string(),
            s.canary.requests.to_string(),
            ms(s.baseline.p50_ms),
            ms(s.canary.p50_ms),
            ms(s.baseline.p95_ms),
            ms(s.canary.p95_ms),
            u,
            p,
            effect,
            lclass,
            eclass,
        ];
        for n in &value_names {
            row.push(match s.values.iter().find(|v| &v.name == n) {
                Some(v) => format!(
                    "{} / {} {}",
                    opt(v.baseline_mean),
                    opt(v.canary_mean),
                    v.class.as_str()
                ),
                None => "-".into(),
            });
        }
        row.push(s.decision.as_str().to_string());
        rows.push(row);
    }
    (head, rows)
}

/// The canary gate's steps as a terminal table ([`canary_step_rows`]).
fn canary_table(c: &CanaryReport) -> String {
    let mut b = Builder::default();
    let (head, rows) = canary_step_rows(c);
    b.push_record(head);
    for row in rows {
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    let mut out = match &c.header {
        Some(h) => format!(
            "canary split: {h} = {} (baseline) vs {} (canary)\n",
            c.baseline, c.canary
        ),
        None => format!(
            "canary split by loadgate: {} (baseline) vs {} (canary)\n",
            c.baseline, c.canary
        ),
    };
    out.push_str(&t.to_string());
    out.push('\n');
    out.push_str(&format!(
        "canary decision: {} (expected {}): {}\n",
        c.decision.as_str(),
        c.expected,
        c.reason
    ));
    if let Some(a) = &c.after_rollback {
        out.push_str(&format!(
            "after the rollback: {} requests, {} failed, {} served by the canary over {} s\n",
            a.requests, a.failed, a.canary_requests, a.seconds
        ));
    }
    out
}

/// Milliseconds with two decimals: one width for every latency cell.
fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// The failover table: one row per fault repetition (fault, when, first error, users
/// recovered, RTO, errors in the window, writes), then each fault's RTO distribution.
fn failover_table(reports: &[crate::control::faults::FailoverReport]) -> String {
    let opt = |v: Option<f64>| v.map(format_number).unwrap_or_else(|| "-".into());
    let writes = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let mut b = Builder::default();
    b.push_record([
        "fault",
        "#",
        "at s",
        "first error s",
        "recovered s",
        "RTO s",
        "errors / requests",
        "worst p99 ms",
        "acked writes",
        "lost writes",
        "changed writes",
        "recovered writes",
    ]);
    for r in reports {
        let name = match &r.component {
            Some(c) => format!("{} ({} {c})", r.fault, r.action),
            None => format!("{} ({})", r.fault, r.action),
        };
        for rep in &r.repetitions {
            match &rep.measured {
                Some(m) => b.push_record([
                    name.clone(),
                    rep.repetition.to_string(),
                    format_number(m.injected_s),
                    opt(m.first_error_s),
                    m.recovered_s
                        .map(format_number)
                        .unwrap_or_else(|| "never".into()),
                    opt(m.rto_ms.map(|v| v / 1000.0)),
                    format!("{} / {}", m.errors, m.requests),
                    format_number(m.worst_p99_ms),
                    writes(r.acknowledged_writes),
                    writes(r.lost_writes),
                    writes(r.changed_writes),
                    writes(r.recovered_writes),
                ]),
                None => b.push_record([
                    name.clone(),
                    rep.repetition.to_string(),
                    format_number(rep.planned_s),
                    "-".into(),
                    format!("not injected: {}", rep.detail),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]),
            }
        }
    }
    let mut t = b.build();
    t.with(Style::rounded());
    let mut out = format!("failover (RTO as users saw it)\n{t}\n");
    for r in reports {
        out.push_str(&format!(
            "fault {}: RTO min {} / median {} / max {} s over {} repetition(s){}: {}\n",
            r.fault,
            opt(r.rto.min_ms.map(|v| v / 1000.0)),
            opt(r.rto.median_ms.map(|v| v / 1000.0)),
            opt(r.rto.max_ms.map(|v| v / 1000.0)),
            r.repetitions.len(),
            if r.rto.not_recovered > 0 {
                format!(", {} not recovered", r.rto.not_recovered)
            } else {
                String::new()
            },
            if r.passed { "PASS" } else { "FAIL" }
        ));
    }
    out
}

//! The capacity search in the reports: the step table (terminal and summary.txt) and the
//! steps as JUnit testcases. summary.json's `capacity` section is the
//! [`CapacityReport`] itself.
use quick_junit::{TestCase, TestCaseStatus};
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::drills::capacity::{CapacityReport, StepReport, StepVerdict};
use crate::metrics::format_number;

/// The step table's columns before the verdict (terminal and report.html alike).
pub const STEP_COLUMNS: [&str; 10] = [
    "step",
    "phase",
    "offered/s",
    "achieved/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "dropped",
    "gen cpu",
];

/// The columns of [`STEP_COLUMNS`] that hold numbers (right-aligned).
pub const STEP_NUMERIC: std::ops::Range<usize> = 2..10;

/// One step's cells under [`STEP_COLUMNS`]; each format adds the verdict its own way.
pub fn step_cells(s: &StepReport) -> Vec<String> {
    vec![
        s.step.to_string(),
        s.phase.as_str().to_string(),
        format_number(s.rate),
        format_number(s.achieved_rps),
        format_number(s.p50_ms),
        format_number(s.p95_ms),
        format_number(s.p99_ms),
        s.errors.to_string(),
        s.dropped.to_string(),
        format!("{:.0}%", s.generator_cpu * 100.0),
    ]
}

/// The search's steps as a table, then its conclusion, knee and headroom lines.
pub fn table(c: &CapacityReport) -> String {
    let mut b = Builder::default();
    b.push_record(STEP_COLUMNS.iter().copied().chain(["result"]));
    for s in &c.steps {
        let mut row = step_cells(s);
        row.push(s.verdict.as_str().to_uppercase());
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    t.modify(Columns::new(STEP_NUMERIC), Alignment::right());
    let mut out = format!("capacity search of scenario {}:\n", c.scenario);
    out.push_str(&t.to_string());
    out.push('\n');
    for s in c.steps.iter().filter(|s| !s.detail.is_empty()) {
        out.push_str(&format!(
            "  step {} {}: {}\n",
            s.step,
            s.verdict.as_str(),
            s.detail
        ));
    }
    out.push_str(&format!("capacity: {}\n", c.conclusion));
    if let Some(k) = &c.knee {
        out.push_str(&format!(
            "knee: {}/s offered, {}/s achieved, mean {} ms, p95 {} ms: {} requests in flight (Little's law)\n",
            format_number(k.rate),
            format_number(k.achieved_rps),
            format_number(k.mean_ms),
            format_number(k.p95_ms),
            format_number(k.concurrency)
        ));
    }
    if let Some(e) = c.expected {
        out.push_str(&format!(
            "headroom: {} over expected {}/s (needs {}x)\n",
            c.headroom
                .map(|h| format!("{}x", format_number(h)))
                .unwrap_or_else(|| "unknown".into()),
            format_number(e),
            format_number(c.headroom_factor)
        ));
    }
    out.push_str(&format!(
        "search took {} s over {} steps\n",
        format_number(c.duration_s),
        c.steps.len()
    ));
    out
}

/// One testcase per step (classname `capacity.step`): failing steps are how the knee is
/// found, so they pass as testcases (their detail in system-out); an invalid step is
/// skipped, with how the generator ran out.
pub fn junit_cases(c: &CapacityReport) -> Vec<TestCase> {
    c.steps
        .iter()
        .map(|s| {
            let name = format!("capacity step {} at {}/s", s.step, format_number(s.rate));
            let line = format!(
                "{}: offered {}/s, achieved {}/s, p50 {} ms, p95 {} ms, p99 {} ms, {} errors, {} dropped{}",
                s.verdict.as_str(),
                format_number(s.rate),
                format_number(s.achieved_rps),
                format_number(s.p50_ms),
                format_number(s.p95_ms),
                format_number(s.p99_ms),
                s.errors,
                s.dropped,
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.detail)
                }
            );
            let status = match s.verdict {
                StepVerdict::Invalid => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(s.detail.as_str());
                    st
                }
                StepVerdict::Pass | StepVerdict::Fail => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(name.as_str(), status);
            case.set_classname("capacity.step");
            case.set_system_out(line);
            case
        })
        .collect()
}

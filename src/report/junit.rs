//! `junit.xml`: the checks of a run as JUnit test cases, so any CI system shows which SLO,
//! probe or drill failed without knowing loadgate. Written with quick-junit (the format's
//! well-kept Rust writer: escaping, the Ant/Jenkins/GitLab dialect).
//!
//! Shape:
//!
//! ```xml
//! <testsuites name="loadgate" tests="2" failures="1" errors="0" time="60.000">
//!   <testsuite name="PLAN" tests="2" disabled="0" errors="0" failures="1" time="60.000"
//!              timestamp="2026-01-01T00:00:00Z">
//!     <properties><property name="verdict" value="fail"/></properties>
//!     <testcase name="http_req_duration p(95)&lt;250" classname="threshold"/>
//!     <testcase name="http_req_failed rate&lt;0.01" classname="threshold">
//!       <failure message="expected rate&lt;0.01, observed rate=0.05" type="threshold">…</failure>
//!     </testcase>
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! One `<testsuite>` named after the plan, one `<testcase>` per judged criterion
//! (`classname` = its kind, `name` = its name); a failed one's `<failure>` says what was
//! expected and observed, and ends with `; runbook: TEXT` when the plan gave the check a
//! `runbook:`. A second suite, `PLAN: response checks`, has one passing
//! `<testcase classname="response_check" name="SCENARIO › REQUEST-OR-STEP › CHECK">` per
//! response check with `passes`, `fails` and `rate` properties (response checks decide
//! nothing on their own; a `checks` threshold does).
use std::io;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::summary::Summary;
use crate::report::{Exporter, ReportError, RunReport, JUNIT_FILE};

/// junit.xml.
pub struct JunitExporter;

impl Exporter for JunitExporter {
    fn file_name(&self) -> &'static str {
        JUNIT_FILE
    }

    fn render(&self, run: &RunReport<'_>) -> Result<Vec<u8>, ReportError> {
        render(run.summary)
            .map(String::into_bytes)
            .map_err(|e| ReportError::Render {
                format: "junit",
                reason: e.to_string(),
            })
    }
}

/// Render the JUnit XML document for a summary.
pub fn render(summary: &Summary) -> io::Result<String> {
    let time = Duration::from_secs_f64(summary.duration_s.max(0.0));
    let mut suite = TestSuite::new(summary.plan.as_str());
    suite.set_time(time);
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&summary.started_at) {
        suite.set_timestamp(ts);
    }
    let verdict = if summary.passed() { "pass" } else { "fail" };
    suite.add_property(Property::new("verdict", verdict));
    if let Some(r) = &summary.stop_reason {
        suite.add_property(Property::new("stop_reason", r.as_str()));
    }
    for c in &summary.checks {
        let status = if c.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let runbook = c
                .runbook
                .as_ref()
                .map(|r| format!("; runbook: {r}"))
                .unwrap_or_default();
            s.set_message(format!(
                "expected {}, observed {}{runbook}",
                c.expected, c.observed
            ))
            .set_type(c.kind.as_str())
            .set_description(format!(
                "check:    {}\nexpected: {}\nobserved: {}{}",
                c.name,
                c.expected,
                c.observed,
                c.runbook
                    .as_ref()
                    .map(|r| format!("\nrunbook:  {r}"))
                    .unwrap_or_default()
            ));
            s
        };
        let mut case = TestCase::new(c.name.as_str(), status);
        case.set_classname(c.kind.as_str());
        suite.add_test_case(case);
    }
    // One testcase per judged canary step (classname `canary.step`): a step that rolled
    // back fails only when the gate as a whole failed (a rollback drill expects it).
    if let Some(c) = &summary.canary {
        for st in &c.steps {
            let name = format!("canary step {} ({}%)", st.step, st.weight);
            let detail = crate::control::canary::step_detail(st);
            let bad = !matches!(
                st.decision,
                crate::checks::canary::Decision::Continue
                    | crate::checks::canary::Decision::Promote
            );
            let status = if bad && !c.passed {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{}: {detail}", st.decision.as_str()))
                    .set_type("canary");
                s
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(name.as_str(), status);
            case.set_classname("canary.step");
            case.set_system_out(format!("{}: {detail}", st.decision.as_str()));
            suite.add_test_case(case);
        }
    }
    if let Some(c) = &summary.capacity {
        for case in super::capacity::junit_cases(c) {
            suite.add_test_case(case);
        }
    }
    if let Some(a) = &summary.autoscale {
        for case in super::autoscale::junit_cases(a) {
            suite.add_test_case(case);
        }
    }
    let mut report = Report::new("loadgate");
    report.set_time(time);
    report.add_test_suite(suite);
    // Response checks: what each check saw, one case per check. They describe responses
    // and do not decide the verdict (a `checks` threshold does), so their cases pass and
    // carry the counts as properties and output.
    let mut responses = TestSuite::new(format!("{}: response checks", summary.plan));
    responses.set_time(time);
    for (scenario, s) in &summary.scenarios {
        for c in &s.checks_by_name {
            let place = c.step.as_deref().unwrap_or(c.request.as_str());
            let mut case = TestCase::new(
                format!("{scenario} › {place} › {}", c.name),
                TestCaseStatus::success(),
            );
            case.set_classname("response_check");
            case.add_property(Property::new("passes", c.passes.to_string()));
            case.add_property(Property::new("fails", c.fails.to_string()));
            case.add_property(Property::new("rate", format!("{:.4}", c.rate)));
            case.set_system_out(format!(
                "{:.2}% passed: {} passes, {} fails",
                100.0 * c.rate,
                c.passes,
                c.fails
            ));
            responses.add_test_case(case);
        }
    }
    if !responses.test_cases.is_empty() {
        report.add_test_suite(responses);
    }
    let mut out = report.to_string().map_err(io::Error::other)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

//! `junit.xml`: the checks of a run as JUnit test cases, so any CI system shows which SLO,
//! probe or drill failed without knowing loadgate.
//!
//! Shape (the common Ant/Jenkins/GitLab dialect):
//!
//! ```xml
//! <testsuites name="loadgate" tests="2" failures="1" errors="0" time="60.0">
//!   <testsuite name="PLAN" tests="2" failures="1" errors="0" skipped="0" time="60.0"
//!              timestamp="2026-01-01T00:00:00">
//!     <properties><property name="verdict" value="fail"/></properties>
//!     <testcase classname="threshold" name="http_req_duration p(95)<250" time="0"/>
//!     <testcase classname="threshold" name="http_req_failed rate<0.01" time="0">
//!       <failure message="expected rate<0.01, observed rate=0.05" type="threshold">…</failure>
//!     </testcase>
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! One `<testsuite>` named after the plan, one `<testcase>` per check (`classname` = check
//! kind, `name` = check name). Escaping is quick-xml's.
use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

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
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let tests = summary.checks.len().to_string();
    let failures = summary
        .checks
        .iter()
        .filter(|c| !c.passed)
        .count()
        .to_string();
    let time = format!("{:.3}", summary.duration_s);
    // JUnit timestamps are ISO 8601 without a zone.
    let timestamp = summary.started_at.trim_end_matches('Z').to_string();
    let verdict = if summary.passed() { "pass" } else { "fail" };
    w.create_element("testsuites")
        .with_attributes([
            ("name", "loadgate"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attributes([
                    ("name", summary.plan.as_str()),
                    ("tests", tests.as_str()),
                    ("failures", failures.as_str()),
                    ("errors", "0"),
                    ("skipped", "0"),
                    ("time", time.as_str()),
                    ("timestamp", timestamp.as_str()),
                ])
                .write_inner_content(|w| {
                    w.create_element("properties").write_inner_content(|w| {
                        let mut props = vec![("verdict", verdict.to_string())];
                        if let Some(r) = &summary.stop_reason {
                            props.push(("stop_reason", r.clone()));
                        }
                        for (name, value) in &props {
                            w.create_element("property")
                                .with_attributes([("name", *name), ("value", value.as_str())])
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                    for c in &summary.checks {
                        let case = w.create_element("testcase").with_attributes([
                            ("classname", c.kind.as_str()),
                            ("name", c.name.as_str()),
                            ("time", "0"),
                        ]);
                        if c.passed {
                            case.write_empty()?;
                        } else {
                            let message =
                                format!("expected {}, observed {}", c.expected, c.observed);
                            let body = format!(
                                "check:    {}\nexpected: {}\nobserved: {}",
                                c.name, c.expected, c.observed
                            );
                            case.write_inner_content(|w| {
                                w.create_element("failure")
                                    .with_attributes([
                                        ("message", message.as_str()),
                                        ("type", c.kind.as_str()),
                                    ])
                                    .write_text_content(BytesText::new(&body))?;
                                Ok(())
                            })?;
                        }
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut out = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    out.push('\n');
    Ok(out)
}

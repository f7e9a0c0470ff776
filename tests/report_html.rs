//! report.html: self-contained (no network), the verdict and every check on top (a failed
//! one with its runbook), charts over time with the run's events drawn on them, the drills'
//! sections; under 2 MB for a one-hour run; written by `attack --out` too. (A drill's page in
//! headless Chromium: tests/stack_report_html.rs.)
mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use loadgate::checks::{CheckKind, CheckResult};
use loadgate::metrics::{
    ErrorKind, Event, EventKind, RunMetrics, ScenarioInfo, SecondRow, SeriesKey, SourceKind,
};
use loadgate::report::html;
use loadgate::report::summary::Summary;
use loadgate::report::RunReport;

/// `seconds` of a run with two scenarios, errors of two kinds now and then, and `events`
/// probe failures / recoveries spread over the run.
fn metrics(seconds: u64, events: u64) -> RunMetrics {
    let mut m = RunMetrics {
        scenarios: ["chat", "notes"]
            .iter()
            .map(|n| ScenarioInfo {
                name: n.to_string(),
                kind: SourceKind::Scenario,
                executor: "constant-arrival-rate".into(),
                requests: vec!["POST /x".into()],
                methods: vec!["POST".into()],
                active: Duration::from_secs(seconds),
                ..Default::default()
            })
            .collect(),
        elapsed: Duration::from_secs(seconds),
        ..Default::default()
    };
    for sc in 0..2u16 {
        let k = |status, error| SeriesKey {
            scenario: sc,
            request: 0,
            status,
            error,
            variant: Default::default(),
        };
        let s = m.series.entry(k(200, None)).or_default();
        for i in 0..1000u64 {
            s.duration.record(5_000 + i * 37 % 20_000).unwrap();
            s.service.record(4_000 + i * 37 % 20_000).unwrap();
        }
        s.requests = 1000;
        let e = m
            .series
            .entry(k(503, Some(ErrorKind::Status5xx)))
            .or_default();
        e.duration.record(90_000).unwrap();
        e.service.record(90_000).unwrap();
        e.requests = 1;
        e.failed = 1;
    }
    for s in 0..seconds {
        for (i, name) in ["chat", "notes"].iter().enumerate() {
            let burst = s % 97 == 13;
            m.timeline.push(SecondRow {
                second: s,
                scenario: name.to_string(),
                step: String::new(),
                requests: 100 + (s % 7) * (i as u64 + 1),
                errors: if burst { 5 } else { 0 },
                errors_by_kind: if burst {
                    vec![(ErrorKind::Timeout, 2), (ErrorKind::Status5xx, 3)]
                } else {
                    Vec::new()
                },
                p50_ms: 10.0 + (s % 11) as f64,
                p95_ms: 40.0 + (s % 13) as f64,
                p99_ms: if burst { 900.0 } else { 80.0 },
            });
        }
    }
    for i in 0..events {
        let at = Duration::from_secs_f64(seconds as f64 * (i as f64 + 0.5) / events as f64);
        let kind = if i % 2 == 0 {
            EventKind::ProbeFailure {
                probe: "login".into(),
                reason: "status 503".into(),
            }
        } else {
            EventKind::ProbeRecovered {
                probe: "login".into(),
                failed_samples: 3,
            }
        };
        m.events.push(Event::new(at, kind));
    }
    m.events.push(Event::new(
        Duration::from_secs(seconds / 2),
        EventKind::CanaryDecision {
            decision: "rollback".into(),
            expected: Some("rollback".into()),
            passed: true,
            reason: "step 1 was high".into(),
        },
    ));
    m.events.sort_by_key(|e| e.at);
    m
}

fn checks() -> Vec<CheckResult> {
    vec![
        CheckResult {
            name: "http_req_duration p(95)<250".into(),
            kind: CheckKind::Threshold,
            passed: true,
            expected: "p(95)<250".into(),
            observed: "p(95)=41".into(),
            runbook: Some("passing runbooks stay hidden".into()),
        },
        CheckResult {
            name: "http_req_failed rate<0.001 <b>".into(),
            kind: CheckKind::Threshold,
            passed: false,
            expected: "rate<0.001".into(),
            observed: "rate=0.002".into(),
            runbook: Some("check /ready <first>, then https://runbooks.example/errors".into()),
        },
    ]
}

fn render(m: &RunMetrics) -> String {
    let s = Summary::build("gate", m, checks(), vec![], SystemTime::UNIX_EPOCH, None);
    let latency = m.scenario_latency();
    html::render(&RunReport {
        summary: &s,
        timeline: &m.timeline,
        latency: &latency,
        baseline: None,
    })
    .expect("renders")
}

/// Nothing in the page makes the browser fetch anything.
fn assert_self_contained(page: &str) {
    for needle in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", " src=",
    ] {
        assert!(!page.contains(needle), "report.html contains {needle:?}");
    }
}

#[test]
fn html_shows_the_verdict_checks_runbooks_charts_and_events() {
    let page = render(&metrics(120, 6));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&page);
    assert!(
        page.contains("<meta name=\"viewport\""),
        "phone-width layout"
    );
    assert!(
        page.contains("FAIL: 1 of 2 criteria passed"),
        "verdict on top"
    );
    // The failed check first, escaped, with its runbook (its link clickable); a passing
    // check's runbook is not shown.
    let failed = page
        .find("http_req_failed rate&lt;0.001 &lt;b&gt;")
        .expect("failed check");
    let passed = page
        .find("http_req_duration p(95)&lt;250")
        .expect("passing check");
    assert!(failed < passed, "failed checks come first");
    assert!(page
        .contains("check /ready &lt;first&gt;, then <a href=\"https://runbooks.example/errors\">"));
    assert!(!page.contains("passing runbooks stay hidden"));
    // Charts: throughput, error rate, latency of each scenario, the spectrum; each an SVG
    // with a viewBox (scales to the screen).
    let svgs = page.matches("<svg").count();
    assert!(svgs >= 5, "{svgs} charts");
    assert_eq!(page.matches("viewBox=").count(), svgs);
    for title in [
        "Throughput",
        "Error rate by kind",
        "Latency of chat",
        "Latency of notes",
        "Latency distribution",
    ] {
        assert!(page.contains(title), "no {title}");
    }
    // Error kinds are lines of the error chart.
    assert!(page.contains("\ntimeout\n</text>") && page.contains("\nstatus_5xx\n</text>"));
    // Events: numbered in the table and drawn on the charts (marker labels in the SVG).
    assert!(
        page.contains("<span class=\"tag bad\">1</span>"),
        "probe failure is marker 1"
    );
    assert!(page.contains("canary_decision"));
    assert!(page.contains("probe login failed: status 503"));
}

#[test]
fn html_of_a_one_hour_run_stays_under_2_mb() {
    let m = metrics(3600, 800);
    let page = render(&m);
    let size = page.len();
    eprintln!("report.html of a synthetic 3600 s run (2 scenarios, 801 events): {size} bytes");
    assert!(size < 2 * 1024 * 1024, "{size} bytes");
    assert!(
        page.contains("3600 seconds drawn in buckets of 6 s"),
        "says it downsampled"
    );
    // The tables keep exact numbers: the scenario table is computed from the histograms.
    assert!(
        page.contains("<td class=\"num\">1001</td>"),
        "exact request count"
    );
    // Every event is listed up to the cap; the rest are counted.
    assert!(page.contains("more events in summary.json"));
}

fn loadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

fn show(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn attack_with_out_writes_report_html() {
    let server = common::TestServer::axum(
        axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("attack");
    let o = loadgate(&[
        "attack",
        &format!("{}/", server.url()),
        "-c",
        "2",
        "-d",
        "1s",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_self_contained(&page);
    assert!(
        page.contains("Latency of attack"),
        "charts of the attack scenario"
    );
    assert!(page.matches("<svg").count() >= 3);
}

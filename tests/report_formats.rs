//! Report files are API: summary.json (contract fields, JSON Schema, serde round trip),
//! junit.xml (readable by JUnit tooling), timeseries.csv and the terminal table.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use loadgate::checks::{CheckKind, CheckResult};
use loadgate::control::probe::{ProbeReport, ProbeSample, ProbeSloResult};
use loadgate::control::Stopped;
use loadgate::metrics::{
    ErrorKind, Event, EventKind, LatencySummary, RunMetrics, ScenarioInfo, SecondRow, SeriesKey,
    SourceKind,
};
use loadgate::report::summary::{json_schema, Summary, Verdict};
use loadgate::report::{
    table, ReportError, RunReport, HTML_FILE, JUNIT_FILE, SUMMARY_FILE, TABLE_FILE, TIMESERIES_FILE,
};
use loadgate::spec::ReportFormat;
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use serde_json::Value;

mod fixture {
    use super::*;

    fn add(m: &mut RunMetrics, key: SeriesKey, n: u64, ms: u64) {
        let s = m.series.entry(key).or_default();
        s.duration.record_n(ms * 1000, n).unwrap();
        s.service.record_n(ms * 800, n).unwrap();
        s.requests += n;
        if key.error.is_some() {
            s.failed += n;
        }
    }

    /// `chat`: 5990 x 200 at 10 ms, 8 x 503, 2 timeouts (status 0) at 5000 ms; 30 s active;
    /// 4 dropped; response checks 5990/10. `notes`: 100 x 201 at 20 ms over 10 s.
    pub fn metrics() -> RunMetrics {
        let mut m = RunMetrics {
            scenarios: vec![
                ScenarioInfo {
                    name: "chat".into(),
                    kind: SourceKind::Scenario,
                    executor: "ramping-arrival-rate".into(),
                    requests: vec!["POST /v1/chat".into()],
                    methods: vec!["POST".into()],
                    tags: BTreeMap::new(),
                    dropped: 4,
                    active: Duration::from_secs(30),
                    ..Default::default()
                },
                ScenarioInfo {
                    name: "notes".into(),
                    kind: SourceKind::Scenario,
                    executor: "constant-vus".into(),
                    requests: vec!["POST /v1/notes".into()],
                    methods: vec!["POST".into()],
                    tags: BTreeMap::new(),
                    dropped: 0,
                    active: Duration::from_secs(10),
                    ..Default::default()
                },
            ],
            elapsed: Duration::from_millis(31_500),
            ..Default::default()
        };
        let k = |scenario, status, error| SeriesKey {
            scenario,
            request: 0,
            status,
            error,
            variant: Default::default(),
        };
        add(&mut m, k(0, 200, None), 5990, 10);
        add(&mut m, k(0, 503, Some(ErrorKind::Status5xx)), 8, 30);
        add(&mut m, k(0, 0, Some(ErrorKind::Timeout)), 2, 5000);
        add(&mut m, k(1, 201, None), 100, 20);
        let s = m.series.get_mut(&k(0, 200, None)).unwrap();
        s.checks_passed = 5990;
        s.checks_failed = 10;
        m.timeline = vec![
            SecondRow {
                second: 0,
                scenario: "chat".into(),
                step: String::new(),
                requests: 199,
                errors: 1,
                errors_by_kind: vec![(ErrorKind::Status5xx, 1)],
                p50_ms: 9.8,
                p95_ms: 41.23456,
                p99_ms: 88.0,
            },
            SecondRow {
                second: 0,
                scenario: "notes".into(),
                step: String::new(),
                requests: 10,
                errors: 0,
                errors_by_kind: Vec::new(),
                p50_ms: 20.0,
                p95_ms: 20.0,
                p99_ms: 20.0,
            },
            SecondRow {
                second: 1,
                scenario: "chat".into(),
                step: String::new(),
                requests: 200,
                errors: 0,
                errors_by_kind: Vec::new(),
                p50_ms: 9.9,
                p95_ms: 40.0,
                p99_ms: 80.5,
            },
        ];
        m.events = vec![
            Event::new(
                Duration::ZERO,
                EventKind::ScenarioStart {
                    scenario: "chat".into(),
                    executor: "ramping-arrival-rate".into(),
                },
            ),
            Event::new(
                Duration::from_millis(30_250),
                EventKind::ScenarioEnd {
                    scenario: "chat".into(),
                },
            ),
        ];
        m
    }

    pub fn checks() -> Vec<CheckResult> {
        vec![
            CheckResult {
                name: "http_req_duration{scenario:chat} p(95)<250".into(),
                kind: CheckKind::Threshold,
                passed: true,
                expected: "p(95)<250".into(),
                observed: "p(95)=10.007".into(),
                runbook: Some("a passing check's runbook is not shown".into()),
            },
            CheckResult {
                name: "http_req_failed rate<0.001 & \"quotes\"".into(),
                kind: CheckKind::Threshold,
                passed: false,
                expected: "rate<0.001".into(),
                observed: "rate=0.00164".into(),
                runbook: Some("check /ready <first>, then https://runbooks.example/errors".into()),
            },
            CheckResult {
                name: "login p(95)<250".into(),
                kind: CheckKind::Probe,
                passed: true,
                expected: "p(95)<250".into(),
                observed: "p(95)=12".into(),
                runbook: None,
            },
        ]
    }

    pub fn summary() -> Summary {
        Summary::build(
            "predeploy-gate",
            &metrics(),
            checks(),
            vec![],
            SystemTime::UNIX_EPOCH,
            None,
        )
    }
}

/// write_reports with the fixture's timeline.
fn write_reports(
    dir: &Path,
    s: &Summary,
    m: &RunMetrics,
    formats: &[ReportFormat],
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    loadgate::report::write_reports(
        dir,
        &RunReport {
            summary: s,
            timeline: &m.timeline,
            latency: &m.scenario_latency(),
            baseline: None,
        },
        formats,
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// summary.json
// ---------------------------------------------------------------------------------------------

#[test]
fn summary_has_the_contract_fields() {
    let v = serde_json::to_value(fixture::summary()).unwrap();
    assert_eq!(v["verdict"], "fail");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    let keys: Vec<&str> = checks[2]
        .as_object()
        .unwrap()
        .keys()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        5,
        "a check without a runbook has no runbook key"
    );
    for k in ["name", "kind", "passed", "expected", "observed"] {
        assert!(keys.contains(&k), "check lacks {k}");
    }
    assert_eq!(
        checks[1]["runbook"],
        "check /ready <first>, then https://runbooks.example/errors"
    );
    assert_eq!(checks[0]["kind"], "threshold");
    assert_eq!(checks[2]["kind"], "probe");
    assert_eq!(checks[1]["passed"], false);
    assert_eq!(checks[0]["observed"], "p(95)=10.007");

    let chat = &v["scenarios"]["chat"];
    assert_eq!(chat["requests"], 6000);
    assert_eq!(chat["errors"], 10);
    assert_eq!(chat["dropped"], 4);
    assert_eq!(chat["rps"], 200.0); // 6000 requests / 30 s active
    let lat = chat["latency_ms"].as_object().unwrap();
    for k in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(lat[k].is_number(), "latency_ms.{k}");
    }
    assert_eq!(lat["p50"], 10.007);
    assert_eq!(lat["p99"], 10.007);
    assert_eq!(lat["p999"], 30.015);
    assert!((4990.0..5010.0).contains(&lat["max"].as_f64().unwrap()));
    assert_eq!(chat["service_time_ms"]["p50"], 8.003);
    assert_eq!(chat["executor"], "ramping-arrival-rate");
    assert_eq!(
        chat["errors_by_kind"],
        serde_json::json!({"status_5xx": 8, "timeout": 2})
    );
    assert_eq!(
        chat["status_codes"],
        serde_json::json!({"200": 5990, "503": 8})
    );
    assert_eq!(
        chat["response_checks"],
        serde_json::json!({"passed": 5990, "failed": 10})
    );
    assert_eq!(v["scenarios"]["notes"]["rps"], 10.0);
    assert_eq!(
        v["scenarios"]["notes"]["errors_by_kind"],
        serde_json::json!({})
    );

    assert_eq!(v["plan"], "predeploy-gate");
    assert_eq!(v["started_at"], "1970-01-01T00:00:00Z");
    assert_eq!(v["duration_s"], 31.5);
    assert_eq!(v["checks_passed"], 2);
    assert_eq!(v["checks_failed"], 1);
    assert_eq!(v["interrupted"], false);
    assert_eq!(v["aborted"], false);
    assert!(v.get("stop_reason").is_none());
    assert_eq!(
        v["events"][1],
        serde_json::json!({"at_s": 30.25, "kind": "scenario_end", "detail": "chat", "scenario": "chat"})
    );
}

#[test]
fn verdict_follows_the_checks() {
    let m = fixture::metrics();
    let s = Summary::build("p", &m, vec![], vec![], SystemTime::now(), None);
    assert_eq!(s.verdict, Verdict::Pass, "a run without checks passes");
    let mut passing = fixture::checks();
    passing.retain(|c| c.passed);
    let mut s = Summary::build("p", &m, passing, vec![], SystemTime::now(), None);
    assert_eq!(s.verdict, Verdict::Pass);
    assert_eq!((s.checks_passed, s.checks_failed), (2, 0));
    s.push_checks([CheckResult {
        name: "redis-down rto".into(),
        kind: CheckKind::Failover,
        passed: false,
        expected: "rto<15s".into(),
        observed: "rto=21.3s".into(),
        runbook: None,
    }]);
    assert_eq!(s.verdict, Verdict::Fail);
    assert!(!s.passed());
    assert_eq!((s.checks_passed, s.checks_failed), (2, 1));
}

#[test]
fn interruption_and_abort_are_reported() {
    let m = fixture::metrics();
    let mut passing = fixture::checks();
    passing.retain(|c| c.passed);
    let s = Summary::build(
        "p",
        &m,
        passing,
        vec![],
        SystemTime::now(),
        Some(&Stopped::Interrupted),
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        (v["interrupted"].clone(), v["aborted"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(v["stop_reason"], "interrupted (Ctrl-C / SIGTERM)");
    assert_eq!(
        v["verdict"], "fail",
        "an interrupted run never reads as a pass, even when its checks passed"
    );
    let s = Summary::build(
        "p",
        &m,
        vec![],
        vec![],
        SystemTime::now(),
        Some(&Stopped::Aborted {
            check: "http_req_failed rate<0.01".into(),
            observed: "rate=0.2".into(),
        }),
    );
    assert!(s.aborted && !s.interrupted);
    assert!(table::render(&s).contains(
        "stopped early: abort_on_fail check failed: http_req_failed rate<0.01 (rate=0.2)"
    ));
}

#[test]
fn summary_round_trips_through_serde() {
    let mut s = fixture::summary();
    let sample = ProbeSample {
        at_s: 12.5,
        latency_ms: 1500.0,
        status: 503,
        error: Some("status_5xx".into()),
        reason: Some("status 503".into()),
    };
    s.probes = Some(vec![ProbeReport {
        name: "login".into(),
        kind: "request".into(),
        target: "GET /auth/me".into(),
        every_s: 1.0,
        samples: 30,
        failed: 1,
        incomplete: 0,
        skipped: 0,
        latency_ms: LatencySummary::default(),
        slo: vec![ProbeSloResult {
            expected: "rate==0".into(),
            observed: "rate=0.033".into(),
            passed: false,
        }],
        worst: vec![sample.clone()],
        failures: vec![sample],
        failures_omitted: 0,
        passed: false,
    }]);
    s.stop_reason = Some("ctrl-c".into());
    s.events.push(loadgate::report::summary::EventSummary {
        at_s: 12.5,
        detail: "probe login failed: status 503".into(),
        event: EventKind::ProbeFailure {
            probe: "login".into(),
            reason: "status 503".into(),
        },
    });
    let text = s.to_json_pretty();
    let back: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["probes"][0]["failures"][0]["at_s"], 12.5);
    assert_eq!(v["events"][2]["kind"], "probe_failure");
    assert_eq!(v["events"][2]["probe"], "login");
    assert!(v.get("slos").is_none(), "absent sections are left out");
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = json_schema();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/summary.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed = read_json(&path);
    assert_eq!(
        committed, generated,
        "testdata/summary.schema.json is stale: rerun with UPDATE_SCHEMA=1 and commit it"
    );
}

#[test]
fn schema_requires_the_contract_fields() {
    let schema = json_schema();
    let required = |v: &Value| -> Vec<String> {
        v["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let top = required(&schema);
    for k in ["verdict", "checks", "scenarios"] {
        assert!(top.contains(&k.to_string()), "top-level {k} not required");
    }
    let defs = &schema["$defs"];
    let check = required(&defs["CheckResult"]);
    for k in ["name", "kind", "passed", "expected", "observed"] {
        assert!(check.contains(&k.to_string()), "check.{k} not required");
    }
    let sc = required(&defs["ScenarioSummary"]);
    for k in ["requests", "errors", "dropped", "rps", "latency_ms"] {
        assert!(sc.contains(&k.to_string()), "scenario.{k} not required");
    }
    let lat = required(&defs["LatencySummary"]);
    for k in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(lat.contains(&k.to_string()), "latency_ms.{k} not required");
    }
}

#[test]
fn summary_json_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let s = fixture::summary();
    write_reports(dir.path(), &s, &fixture::metrics(), &[]).unwrap();
    let instance = read_json(&dir.path().join(SUMMARY_FILE));
    let validator = jsonschema::validator_for(&json_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // Breaking a contract field makes the document invalid.
    let mut broken = instance.clone();
    broken["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&broken), "verdict must be pass|fail");
    let mut broken = instance.clone();
    broken["checks"][0]["kind"] = "vibes".into();
    assert!(!validator.is_valid(&broken), "kind is an enum");
    let mut broken = instance.clone();
    broken["scenarios"]["chat"]
        .as_object_mut()
        .unwrap()
        .remove("latency_ms");
    assert!(!validator.is_valid(&broken), "latency_ms is required");
    let mut broken = instance;
    broken.as_object_mut().unwrap().remove("checks");
    assert!(!validator.is_valid(&broken), "checks is required");
}

// ---------------------------------------------------------------------------------------------
// write_reports, junit.xml, timeseries.csv
// ---------------------------------------------------------------------------------------------

#[test]
fn write_reports_writes_the_requested_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/run-1");
    let s = fixture::summary();
    let m = fixture::metrics();
    let written = write_reports(&out, &s, &m, &ReportFormat::ALL).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            SUMMARY_FILE,
            TABLE_FILE,
            JUNIT_FILE,
            TIMESERIES_FILE,
            HTML_FILE
        ]
    );
    for p in &written {
        assert!(p.starts_with(&out) && p.is_file(), "{}", p.display());
    }
    let back: Summary =
        serde_json::from_str(&std::fs::read_to_string(&written[0]).unwrap()).unwrap();
    assert_eq!(back, s);

    let only = dir.path().join("only-json");
    let written = write_reports(&only, &s, &m, &[ReportFormat::Json]).unwrap();
    assert_eq!(
        written,
        vec![only.join(SUMMARY_FILE), only.join(HTML_FILE)],
        "summary.json and report.html are always written"
    );
    assert_eq!(
        std::fs::read_dir(&only).unwrap().count(),
        2,
        "no temp file is left behind"
    );
    let table = std::fs::read_to_string(out.join(TABLE_FILE)).unwrap();
    assert_eq!(table, table::render(&s));
}

#[test]
fn write_reports_names_the_path_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = write_reports(
        &file.join("sub"),
        &fixture::summary(),
        &fixture::metrics(),
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

/// Parsed junit.xml: (element name, attributes) in document order, and failure texts.
type Elements = Vec<(String, BTreeMap<String, String>)>;

fn parse_junit(xml: &str) -> (Elements, Vec<String>) {
    let mut reader = Reader::from_str(xml);
    let mut elems = Vec::new();
    let mut texts = Vec::new();
    let mut in_failure = false;
    loop {
        match reader.read_event().unwrap() {
            XmlEvent::Start(e) | XmlEvent::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let k = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                        (k, a.unescape_value().unwrap().into_owned())
                    })
                    .collect();
                in_failure = name == "failure";
                if in_failure {
                    texts.push(String::new());
                }
                elems.push((name, attrs));
            }
            XmlEvent::Text(t) if in_failure => {
                texts.last_mut().unwrap().push_str(&t.decode().unwrap());
            }
            XmlEvent::GeneralRef(r) if in_failure => {
                // Entity references inside text arrive as separate events.
                let name = r.decode().unwrap().into_owned();
                let ch = match name.as_str() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                };
                texts.last_mut().unwrap().push_str(ch);
            }
            XmlEvent::End(_) => in_failure = false,
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    (elems, texts)
}

#[test]
fn junit_has_one_suite_and_a_case_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = fixture::summary();
    write_reports(dir.path(), &s, &fixture::metrics(), &[ReportFormat::Junit]).unwrap();
    let xml = std::fs::read_to_string(dir.path().join(JUNIT_FILE)).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{xml}"
    );
    let (elems, texts) = parse_junit(&xml);
    let of = |n: &str| {
        elems
            .iter()
            .filter(|(e, _)| e == n)
            .map(|(_, a)| a)
            .collect::<Vec<_>>()
    };

    let suites = of("testsuites");
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0]["tests"], "3");
    assert_eq!(suites[0]["failures"], "1");

    let suite = of("testsuite");
    assert_eq!(suite.len(), 1);
    assert_eq!(suite[0]["name"], "predeploy-gate");
    assert_eq!(suite[0]["tests"], "3");
    assert_eq!(suite[0]["failures"], "1");
    assert_eq!(suite[0]["errors"], "0");
    assert_eq!(suite[0]["time"], "31.500");

    let cases = of("testcase");
    assert_eq!(cases.len(), 3);
    for (case, check) in cases.iter().zip(fixture::checks()) {
        assert_eq!(case["classname"], check.kind.as_str());
        assert_eq!(case["name"], check.name, "names survive escaping");
    }
    let failures = of("failure");
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0]["message"],
        "expected rate<0.001, observed rate=0.00164; runbook: check /ready <first>, then https://runbooks.example/errors"
    );
    assert_eq!(failures[0]["type"], "threshold");
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("expected: rate<0.001"), "{:?}", texts[0]);
    assert!(
        texts[0].contains("observed: rate=0.00164"),
        "{:?}",
        texts[0]
    );
    assert!(texts[0].contains("& \"quotes\""), "{:?}", texts[0]);

    // The failing case holds the failure; the passing ones are empty elements.
    let idx = elems.iter().position(|(e, _)| e == "failure").unwrap();
    assert_eq!(elems[idx - 1].1["name"], fixture::checks()[1].name);
    let props = of("property");
    assert!(props
        .iter()
        .any(|p| p["name"] == "verdict" && p["value"] == "fail"));
}

#[test]
fn junit_without_checks_is_an_empty_suite() {
    let s = Summary::build(
        "empty",
        &RunMetrics::default(),
        vec![],
        vec![],
        SystemTime::now(),
        None,
    );
    let xml = loadgate::report::junit::render(&s).unwrap();
    let (elems, _) = parse_junit(&xml);
    let suite = elems.iter().find(|(e, _)| e == "testsuite").unwrap();
    assert_eq!(suite.1["tests"], "0");
    assert_eq!(suite.1["failures"], "0");
    assert!(!elems.iter().any(|(e, _)| e == "testcase"));
}

#[test]
fn timeseries_csv_has_header_and_a_row_per_second() {
    let dir = tempfile::tempdir().unwrap();
    write_reports(
        dir.path(),
        &fixture::summary(),
        &fixture::metrics(),
        &[ReportFormat::Csv],
    )
    .unwrap();
    let mut rdr = csv::Reader::from_path(dir.path().join(TIMESERIES_FILE)).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "second", "scenario", "step", "requests", "errors", "p50_ms", "p95_ms", "p99_ms",
            "value"
        ]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        &rows[0],
        &csv::StringRecord::from(vec![
            "0", "chat", "", "199", "1", "9.8", "41.235", "88.0", ""
        ])
    );
    assert_eq!(&rows[1][1], "notes");
    assert_eq!(&rows[2][0], "1");
    let p99: f64 = rows[2][7].parse().unwrap();
    assert_eq!(p99, 80.5);

    // No rows: still a header.
    let mut buf = Vec::new();
    loadgate::report::csv::write(&mut buf, &[], &[]).unwrap();
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "second,scenario,step,requests,errors,p50_ms,p95_ms,p99_ms,value\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Terminal table
// ---------------------------------------------------------------------------------------------

#[test]
fn table_shows_scenarios_checks_and_verdict() {
    let text = table::render(&fixture::summary());
    let line_with = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    };
    let chat = line_with("│ chat");
    for cell in ["6000", "200.0", "10 (0.17%)", "4", "10.01", "5001.22"] {
        assert!(chat.contains(cell), "chat row lacks {cell}: {chat}");
    }
    // Latency distribution, status codes and error kinds per scenario.
    let dist = line_with("chat: latency ms");
    for cell in ["50% 10.01", "99.9% 30.02", "max 5001.22"] {
        assert!(dist.contains(cell), "{dist}");
    }
    let codes = line_with("chat: status");
    assert!(codes.contains("200 x5990, 503 x8"), "{codes}");
    assert!(
        codes.contains("errors status_5xx x8, timeout x2"),
        "{codes}"
    );
    let ok = line_with("http_req_duration{scenario:chat} p(95)<250");
    assert!(ok.contains("PASS") && ok.contains("p(95)=10.007"), "{ok}");
    let bad = line_with("rate=0.00164");
    assert!(bad.contains("FAIL") && bad.contains("rate<0.001"), "{bad}");
    let probe = line_with("login");
    assert!(probe.contains("PASS") && probe.contains("probe"), "{probe}");
    // A failed check's runbook is printed; a passing one's is not.
    let rb = line_with("runbook for");
    assert_eq!(
        rb,
        "runbook for http_req_failed rate<0.001 & \"quotes\": check /ready <first>, then https://runbooks.example/errors"
    );
    assert!(!text.contains("is not shown"), "{text}");
    let last = text.lines().last().unwrap();
    assert_eq!(last, "verdict: FAIL (2 of 3 criteria passed)");

    let pass = Summary::build(
        "p",
        &fixture::metrics(),
        vec![],
        vec![],
        SystemTime::now(),
        None,
    );
    let text = table::render(&pass);
    assert!(
        text.ends_with("verdict: PASS (no thresholds: nothing was judged)\n"),
        "{text}"
    );
    assert!(
        text.contains("warning: no thresholds: nothing was judged"),
        "{text}"
    );
    // Dropped arrivals are a warning with the VUs the rate needed.
    assert!(
        text.contains("warning: chat: 4 of 6004 arrivals (0.07%) were dropped"),
        "{text}"
    );
}

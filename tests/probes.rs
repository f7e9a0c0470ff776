//! Probes end to end: a request probe on a cadence with its own SLO and its traffic kept apart
//! from the scenarios', probe failures with their run-clock times and events, chains that
//! finish and a chain that misses its deadline, and "too few samples" never passing.
//! Runs plans (parsed, lowered, run through the session) against an in-process axum server.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use loadgate::plan::{self, PlanOptions};
use loadgate::report::Summary;
use loadgate::session::{self, OutDir, SessionOptions, Source};
use loadgate::spec::RunSpec;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use common::TestServer;

#[derive(Clone)]
struct App {
    start: Instant,
    jobs: Arc<Mutex<HashMap<u64, Instant>>>,
    next: Arc<Mutex<u64>>,
}

fn server() -> TestServer {
    let app = App {
        start: Instant::now(),
        jobs: Arc::default(),
        next: Arc::default(),
    };
    let router =
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/auth/me",
                get(|| async { Json(json!({"key_id": "user"})) }),
            )
            .route(
                "/flaky",
                get(|State(a): State<App>| async move {
                    // 500 from 1.0 s to 2.0 s after the server started.
                    let t = a.start.elapsed().as_secs_f64();
                    if (1.0..2.0).contains(&t) {
                        (StatusCode::INTERNAL_SERVER_ERROR, "down")
                    } else {
                        (StatusCode::OK, "up")
                    }
                }),
            )
            .route(
                "/jobs",
                post(|State(a): State<App>| async move {
                    let mut n = a.next.lock().unwrap();
                    *n += 1;
                    a.jobs.lock().unwrap().insert(*n, Instant::now());
                    (
                        StatusCode::ACCEPTED,
                        Json(json!({"id": *n, "state": "queued"})),
                    )
                }),
            )
            .route(
                "/jobs/{id}",
                get(
                    |State(a): State<App>, UrlPath(id): UrlPath<u64>| async move {
                        let created = a.jobs.lock().unwrap().get(&id).copied();
                        match created {
                            None => (StatusCode::NOT_FOUND, Json(json!({"error": "no job"}))),
                            // Done 300 ms after the submit.
                            Some(c) if c.elapsed() >= Duration::from_millis(300) => {
                                (StatusCode::OK, Json(json!({"id": id, "status": "done"})))
                            }
                            Some(_) => {
                                (StatusCode::OK, Json(json!({"id": id, "status": "pending"})))
                            }
                        }
                    },
                ),
            )
            .route(
                "/stuck/{id}",
                get(|UrlPath(id): UrlPath<u64>| async move {
                    Json(json!({"id": id, "status": "pending"}))
                }),
            )
            .route(
                "/broken/{id}",
                get(|UrlPath(id): UrlPath<u64>| async move {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Json(json!({"id": id, "status": "failed"})),
                    )
                }),
            )
            .with_state(app);
    TestServer::axum(router)
}

/// A plan with one 3 s scenario at 20/s on `/` plus `extra` (YAML at the top level).
fn spec(target: &str, extra: &str) -> RunSpec {
    let text = format!(
        "name: probes\ntarget: {target}\nscenarios:\n  main:\n    executor: constant-arrival-rate\n    rate: 20/s\n    duration: 3s\n    request: {{ path: / }}\n{extra}"
    );
    let validated = plan::parse(
        &text,
        "probes.yaml",
        Path::new("."),
        &PlanOptions::empty_env(),
    )
    .unwrap_or_else(|e| panic!("plan invalid:\n{e}\n{text}"));
    validated.lower(&[]).expect("lowers")
}

fn run(spec: RunSpec, out: Option<&Path>) -> Summary {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = SessionOptions {
        out: out
            .map(|p| OutDir::At(p.to_path_buf()))
            .unwrap_or(OutDir::Nowhere),
        run: loadgate::run::RunOptions {
            threads: Some(1),
            ..Default::default()
        },
        ..SessionOptions::default()
    };
    rt.block_on(async {
        session::run(Source::Spec(spec), &opts, &CancellationToken::new())
            .await
            .expect("the session runs")
            .summary
    })
}

fn json_of(s: &Summary) -> Value {
    serde_json::to_value(s).unwrap()
}

#[test]
fn a_request_probe_samples_on_its_cadence_apart_from_the_scenarios() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let s = run(
        spec(
            &srv.url(),
            r#"probes:
  login: { request: GET /auth/me, every: 200ms, slo: "p(95)<250" }
thresholds:
  http_reqs: [ "count>=50" ]
  http_reqs{probe:login}: [ "count>=10" ]
  http_req_duration{probe:login}: [ "p(99)<250" ]
"#,
        ),
        Some(dir.path()),
    );
    let v = json_of(&s);
    assert_eq!(v["verdict"], "pass", "{v:#}");
    let probe = &v["probes"][0];
    assert_eq!(probe["name"], "login");
    assert_eq!(probe["kind"], "request");
    assert_eq!(probe["target"], "GET /auth/me");
    let n = probe["samples"].as_u64().unwrap();
    // 3 s of load at one sample every 200 ms (the probe stops when the load does).
    assert!((12..=17).contains(&n), "samples: {n}");
    assert_eq!(probe["failed"], 0);
    assert_eq!(probe["worst"].as_array().unwrap().len(), 5);
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "probe")
        .expect("a probe check");
    assert_eq!(check["name"], "probe login");
    assert_eq!(
        check["expected"], "p(95)<250, rate==0",
        "without a rate expression no sample may fail"
    );
    assert!(check["observed"]
        .as_str()
        .unwrap()
        .contains(&format!("{n} samples, 0 failed")));
    // Kept apart: the scenario saw exactly its own 60 requests, the probe's are not in it.
    assert_eq!(v["scenarios"]["main"]["requests"], 60);
    assert!(v["scenarios"].get("login").is_none());
    let reqs = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "http_reqs count>=50")
        .unwrap();
    assert_eq!(reqs["observed"], "count=60");
    // timeseries.csv has the probe's rows under probe:login; junit has a case for it.
    let csv = std::fs::read_to_string(dir.path().join("timeseries.csv")).unwrap();
    assert!(csv.lines().any(|l| l.contains(",probe:login,")), "{csv}");
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"name="probe login" classname="probe""#),
        "{junit}"
    );
}

#[test]
fn probe_failures_are_reported_with_their_times_and_events() {
    let srv = server();
    let s = run(
        spec(
            &srv.url(),
            "probes:\n  flaky: { request: GET /flaky, every: 100ms }\n",
        ),
        None,
    );
    let v = json_of(&s);
    assert_eq!(v["verdict"], "fail");
    let p = &v["probes"][0];
    let failed = p["failed"].as_u64().unwrap();
    assert!(
        (6..=14).contains(&failed),
        "about 10 of 30 samples fail: {p:#}"
    );
    let failures = p["failures"].as_array().unwrap();
    assert_eq!(failures.len() as u64, failed);
    for f in failures {
        let at = f["at_s"].as_f64().unwrap();
        assert!((0.8..2.2).contains(&at), "failure outside the outage: {f}");
        assert_eq!(f["status"], 500);
        assert_eq!(f["error"], "status_5xx");
    }
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "probe")
        .unwrap();
    assert_eq!(check["passed"], false);
    assert_eq!(
        check["expected"], "rate==0",
        "the default SLO: no sample may fail"
    );
    assert!(
        check["observed"].as_str().unwrap().contains("first at"),
        "{check}"
    );
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let fail = kinds
        .iter()
        .position(|k| *k == "probe_failure")
        .expect("probe_failure event");
    let back = kinds
        .iter()
        .position(|k| *k == "probe_recovered")
        .expect("probe_recovered event");
    assert!(fail < back, "{kinds:?}");
    let rec = &v["events"][back];
    assert_eq!(rec["failed_samples"].as_u64().unwrap(), failed);
}

#[test]
fn a_chain_waits_for_its_condition_and_reports_the_time_to_done() {
    let srv = server();
    let s = run(
        spec(
            &srv.url(),
            r#"probes:
  import:
    submit: { method: POST, path: /jobs, body: { kind: import } }
    poll: { path: "/jobs/{{id}}", until: "/status == done", every: 100ms }
    deadline: 2s
    every: 500ms
    slo: [ "rate==0", "p(95)<1000", "count>=3" ]
"#,
        ),
        None,
    );
    let v = json_of(&s);
    assert_eq!(v["verdict"], "pass", "{v:#}");
    let p = &v["probes"][0];
    assert_eq!(p["kind"], "chain");
    assert_eq!(
        p["target"],
        "POST /jobs, then GET /jobs/{{id}} until json /status == done"
    );
    let lat = &p["latency_ms"];
    // Done 300 ms after the submit, seen by the poll every 100 ms after it.
    assert!(
        (300.0..700.0).contains(&lat["p50"].as_f64().unwrap()),
        "{lat}"
    );
    assert_eq!(p["failed"], 0);
}

#[test]
fn a_chain_that_misses_its_deadline_fails_with_the_deadline_as_its_latency() {
    let srv = server();
    let s = run(
        spec(
            &srv.url(),
            r#"probes:
  stuck:
    submit: { method: POST, path: /jobs, body: { kind: import } }
    capture: { job: /id }
    poll: { path: "/stuck/{{job}}", until: "json /status == done", every: 200ms }
    deadline: 1s
    every: 500ms
"#,
        ),
        None,
    );
    let v = json_of(&s);
    assert_eq!(v["verdict"], "fail");
    let p = &v["probes"][0];
    let failed = p["failed"].as_u64().unwrap();
    assert!(failed >= 2, "{p:#}");
    let f = &p["failures"][0];
    assert_eq!(f["error"], "deadline");
    assert_eq!(f["latency_ms"], 1000.0);
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .starts_with("not done within 1s"),
        "{f}"
    );
    assert!(
        f["reason"].as_str().unwrap().contains("did not hold"),
        "the last poll is named: {f}"
    );
    // Chains still in flight when the load ended are counted apart, never as failures.
    let total = p["samples"].as_u64().unwrap() + p["incomplete"].as_u64().unwrap();
    assert!((5..=8).contains(&total), "{p:#}");
}

#[test]
fn too_few_probe_samples_never_pass() {
    let srv = server();
    let s = run(
        spec(
            &srv.url(),
            "probes:\n  login: { request: GET /auth/me, every: 1s, min_samples: 100, slo: \"p(95)<250\" }\n",
        ),
        None,
    );
    let v = json_of(&s);
    assert_eq!(v["verdict"], "fail");
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "probe")
        .unwrap();
    assert_eq!(check["passed"], false);
    assert!(
        check["observed"]
            .as_str()
            .unwrap()
            .contains("too few samples (3 < 100)")
            || check["observed"]
                .as_str()
                .unwrap()
                .contains("too few samples (4 < 100)"),
        "{check}"
    );
}

#[test]
fn probe_plans_are_validated_with_positions() {
    let text = r#"target: http://127.0.0.1:1
scenarios:
  main: { executor: constant-vus, duration: 1s, request: { path: / } }
probes:
  a: { request: "GET", every: 0s }
  b: { request: GET /x, submit: POST /y }
  c:
    submit: POST /jobs
    capture: { job: /id }
    poll: { path: "/jobs/{{id}}", until: "/status is done" }
  d: { request: GET /x, slo: "p(95)<250 over 10s" }
thresholds:
  http_req_duration{probe:nope}: [ "p(95)<250" ]
"#;
    let err = plan::parse(text, "p.yaml", Path::new("."), &PlanOptions::empty_env())
        .expect_err("invalid");
    let msgs: Vec<String> = err.0.iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| {
        assert!(
            msgs.iter().any(|m| m.contains(needle)),
            "no problem containing {needle:?} in:\n{}",
            msgs.join("\n")
        )
    };
    has("p.yaml:5:17: probes.a.request: expected `METHOD /path`");
    has("probes.a.every: must be longer than 0s");
    has("probes.b: give either `request:` (one request) or `submit:` and `poll:`");
    has("probes.c.poll: {{id}} is not captured (capture: job)");
    has("probes.c.poll.until: bad condition");
    has("probes.d.slo: a probe's SLO is judged over the probe's whole run");
    has("probe:nope names no probe (probes: a, b, c, d)");
}

#[test]
fn a_chain_stops_at_fail_if_and_at_a_value_the_submit_did_not_return() {
    let srv = server();
    let s = run(
        spec(
            &srv.url(),
            r#"probes:
  broken:
    submit: { method: POST, path: /jobs, body: { kind: import } }
    poll: { path: "/broken/{{id}}", until: "/status == done", fail_if: "/status == failed", every: 100ms }
    deadline: 5s
    every: 1s
  typo:
    submit: { method: POST, path: /jobs, body: { kind: import } }
    poll: { path: "/jobs/{{job_id}}", until: "/status == done", every: 100ms }
    deadline: 5s
    every: 1s
"#,
        ),
        None,
    );
    let v = json_of(&s);
    let broken = &v["probes"][0];
    // fail_if is judged on the 422 response itself, at the first poll: not at the deadline.
    let f = &broken["failures"][0];
    assert_eq!(f["error"], "check_failed");
    assert_eq!(f["status"], 422);
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("`json /status == failed` held (status 422)"),
        "{f}"
    );
    assert!(f["latency_ms"].as_f64().unwrap() < 1000.0, "{f}");
    let typo = &v["probes"][1];
    let f = &typo["failures"][0];
    assert_eq!(f["error"], "check_failed");
    assert_eq!(
        f["reason"],
        "submit: the response has no `job_id` for {{job_id}} (captured: id, state)"
    );
    assert!(typo["incomplete"].as_u64().unwrap() <= 1);
}

//! The run clock end to end: a controller's actions change a running load (arrival rate,
//! request weights), a 10 s stall fails a windowed threshold that the whole-run one averages
//! away, and an SLO's burn-rate alert names its window pair and time. In-process axum server,
//! plans parsed and lowered as a user's would be.
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use loadgate::control::{self, Action, Conclusion, Controller, End, Tick};
use loadgate::metrics::EventKind;
use loadgate::plan::{self, PlanOptions};
use loadgate::report::Summary;
use loadgate::run::{self, RunOptions};
use loadgate::spec::RunSpec;
use serde_json::Value;

use common::TestServer;

fn spec(text: &str) -> RunSpec {
    plan::parse(
        text,
        "clock.yaml",
        Path::new("."),
        &PlanOptions::empty_env(),
    )
    .unwrap_or_else(|e| panic!("plan invalid:\n{e}\n{text}"))
    .lower(&[])
    .expect("lowers")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Run `spec` with the standard controllers plus `extra`; the summary as JSON.
fn run_with(
    spec: RunSpec,
    extra: Vec<Box<dyn Controller>>,
) -> (Value, loadgate::metrics::RunMetrics) {
    let spec = Arc::new(spec);
    let mut controllers = control::standard(&spec);
    controllers.extend(extra);
    let out = runtime()
        .block_on(run::execute(
            spec.clone(),
            controllers,
            None,
            &RunOptions {
                threads: Some(1),
                ..Default::default()
            },
            std::future::pending(),
        ))
        .expect("runs");
    let summary = Summary::build(
        &spec.name,
        &out.metrics,
        out.checks,
        out.sections,
        out.started_wall,
        out.stopped.as_ref(),
    );
    (serde_json::to_value(&summary).unwrap(), out.metrics)
}

/// Sends its actions at the first tick at or after `at`.
struct Scripted {
    at: Duration,
    actions: Vec<Action>,
}

impl Controller for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        if tick.at >= self.at && !tick.last {
            std::mem::take(&mut self.actions)
        } else {
            Vec::new()
        }
    }
    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        Conclusion::default()
    }
}

fn ok_server() -> TestServer {
    TestServer::axum(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { "b" })),
    )
}

#[test]
fn a_controller_changes_the_rate_of_a_running_scenario() {
    let srv = ok_server();
    let s = spec(&format!(
        "target: {}\nscenarios:\n  main: {{ executor: constant-arrival-rate, rate: 20/s, duration: 6s, request: {{ path: / }} }}\n",
        srv.url()
    ));
    let (v, m) = run_with(
        s,
        vec![Box::new(Scripted {
            at: Duration::from_secs(2),
            actions: vec![
                Action::SetRate {
                    scenario: "main".into(),
                    rate: 100.0,
                },
                Action::SetRate {
                    scenario: "nope".into(),
                    rate: 5.0,
                },
            ],
        })],
    );
    // About 2 s at 20/s, then about 4 s at 100/s.
    let per_second: Vec<u64> = m.timeline.iter().map(|r| r.requests).collect();
    assert!((15..=25).contains(&per_second[0]), "{per_second:?}");
    assert!((85..=115).contains(&per_second[4]), "{per_second:?}");
    let total = v["scenarios"]["main"]["requests"].as_u64().unwrap();
    assert!(
        (400..=480).contains(&total),
        "total {total}, {per_second:?}"
    );
    let events = &v["events"];
    let change = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "rate_change")
        .expect("rate_change event");
    assert_eq!(change["rate"], 100.0);
    let at = change["at_s"].as_f64().unwrap();
    assert!((2.0..3.2).contains(&at), "{at}");
    let failed = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "action_failed")
        .expect("the bad action is on the timeline");
    assert_eq!(failed["controller"], "scripted");
    assert!(failed["reason"]
        .as_str()
        .unwrap()
        .contains("no scenario `nope`"));
}

#[test]
fn a_controller_shifts_a_traffic_split() {
    let srv = ok_server();
    let s = spec(&format!(
        "target: {}\nscenarios:\n  main:\n    executor: constant-arrival-rate\n    rate: 100/s\n    duration: 4s\n    requests: [ {{ path: /a }}, {{ path: /b }} ]\n",
        srv.url()
    ));
    let (_, m) = run_with(
        s,
        vec![Box::new(Scripted {
            at: Duration::from_secs(2),
            actions: vec![Action::SetWeights {
                scenario: "main".into(),
                weights: vec![0, 1],
            }],
        })],
    );
    let count = |req: u16| -> u64 {
        m.series
            .iter()
            .filter(|(k, _)| k.request == req)
            .map(|(_, s)| s.requests)
            .sum()
    };
    // /a only in the first ~2 s (half of ~200), /b half of that plus everything after.
    let (a, b) = (count(0), count(1));
    assert!((70..=140).contains(&a), "a={a} b={b}");
    assert!((250..=330).contains(&b), "a={a} b={b}");
    assert!(m.events.iter().any(
        |e| matches!(&e.kind, EventKind::WeightsChange { weights, .. } if weights == &vec![0, 1])
    ));
}

/// Answers at once, except from 20 s to 30 s after the server started: requests arriving
/// then are held until 30 s.
fn stalling_server() -> TestServer {
    let start = Instant::now();
    TestServer::axum(
        Router::new()
            .route(
                "/",
                get(|State(start): State<Instant>| async move {
                    let t = start.elapsed();
                    if t >= Duration::from_secs(20) && t < Duration::from_secs(30) {
                        tokio::time::sleep(Duration::from_secs(30) - t).await;
                    }
                    StatusCode::OK
                }),
            )
            .with_state(start),
    )
}

#[test]
fn a_ten_second_stall_fails_a_windowed_threshold_but_not_the_whole_run() {
    let srv = stalling_server();
    // Open model, 100/s with at most 20 requests in flight: during the stall 20 requests
    // wait up to 10 s and the rest of the arrivals are dropped (counted, not sent).
    let s = spec(&format!(
        r#"target: {}
scenarios:
  main:
    executor: constant-arrival-rate
    rate: 100/s
    duration: 60s
    pre_allocated_vus: 20
    max_vus: 20
    request: {{ path: / }}
thresholds:
  http_req_duration: [ "p(95)<250", "p(95)<250 over 10s" ]
"#,
        srv.url()
    ));
    let (v, _) = run_with(s, vec![]);
    let checks = v["checks"].as_array().unwrap();
    let whole = &checks[0];
    assert_eq!(whole["name"], "http_req_duration p(95)<250");
    assert_eq!(whole["passed"], true, "{whole}");
    let windowed = &checks[1];
    assert_eq!(windowed["name"], "http_req_duration p(95)<250 over 10s");
    assert_eq!(windowed["passed"], false, "{windowed}");
    let observed = windowed["observed"].as_str().unwrap();
    // The first failing window holds the stalled requests (completed at ~30 s).
    let start: u64 = observed
        .split(" in ")
        .nth(1)
        .and_then(|w| w.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no window in {observed:?}"));
    assert!((20..=31).contains(&start), "{observed}");
    let breach = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "threshold_breach")
        .expect("threshold_breach event");
    assert_eq!(breach["check"], "http_req_duration p(95)<250 over 10s");
    assert_eq!(breach["window_start_s"].as_f64().unwrap() as u64, start);
    assert!(v["scenarios"]["main"]["dropped"].as_u64().unwrap() > 500);
}

/// Fails every request from 4 s to 8 s after the server started, else answers 200.
fn burning_server() -> TestServer {
    let start = Instant::now();
    TestServer::axum(
        Router::new()
            .route(
                "/",
                get(|State(start): State<Instant>| async move {
                    let t = start.elapsed().as_secs_f64();
                    if (4.0..8.0).contains(&t) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }),
            )
            .with_state(start),
    )
}

#[test]
fn an_slo_burn_alert_names_its_window_pair_and_time() {
    let srv = burning_server();
    let s = spec(&format!(
        r#"target: {}
scenarios:
  main: {{ executor: constant-arrival-rate, rate: 50/s, duration: 12s, request: {{ path: / }} }}
slos:
  availability:
    objective: 99.9%
    metric: http_req_failed
    burn: [ {{ long: 3s, short: 1s, factor: 14.4 }}, {{ long: 12s, short: 3s, factor: 1, severity: ticket }} ]
  latency: {{ objective: 99%, metric: "http_req_duration{{scenario:main}}", good: "<1000" }}
"#,
        srv.url()
    ));
    let (v, _) = run_with(s, vec![]);
    let slo = &v["slos"][0];
    assert_eq!(slo["name"], "availability");
    assert_eq!(slo["passed"], false);
    let page = &slo["windows"][0];
    assert_eq!(
        (page["long_s"].clone(), page["short_s"].clone()),
        (3.into(), 1.into())
    );
    assert_eq!(page["fired"], true);
    let at = page["first_alert_s"].as_u64().unwrap();
    assert!((5..=7).contains(&at), "{page}");
    assert!(page["burn_long_at_alert"].as_f64().unwrap() > 14.4);
    // The 1x pair's short window (the last 3 s) had recovered by the end: it did not fire,
    // yet the run missed its objective, which fails the SLO on its own.
    assert_eq!(slo["windows"][1]["fired"], false);
    let budget = &slo["error_budget"];
    assert!(budget["consumed"].as_f64().unwrap() > 100.0, "{budget}");
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "slo availability")
        .unwrap();
    assert_eq!(check["kind"], "slo");
    let observed = check["observed"].as_str().unwrap();
    assert!(observed.starts_with("page burn "), "{observed}");
    assert!(observed.contains(" over 3s and "), "{observed}");
    assert!(
        observed.contains(&format!(" > 14.4x at {at}s")),
        "{observed}"
    );
    assert!(observed.contains("objective missed: SLI "), "{observed}");
    // Fast errors are still fast: the latency SLO passes on the same run.
    let latency = &v["slos"][1];
    assert_eq!(latency["sli"], "latency<1000ms");
    assert_eq!(latency["passed"], true, "{latency}");
    let alert = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "burn_alert")
        .expect("burn_alert event");
    assert_eq!(alert["slo"], "availability");
    assert_eq!(alert["severity"], "page");
}

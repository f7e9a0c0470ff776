//! How a canary's weight reaches the traffic, without the reference stack:
//! - `split.targets`: loadgate splits the load between two target URLs itself (two local
//!   servers): each step's share of requests at each server follows the step's weight, every
//!   request is tagged by where it went, a slower canary target is rolled back and gets
//!   nothing afterwards.
//! - `apply.command`: a hook command gets each weight (argument and `CANARY_WEIGHT`); the hook
//!   here writes it to a file the test server routes by, and appends it to a log the test
//!   reads back: 10, 50, then the rollback's 0.
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use common::TestServer;
use serde_json::Value;

fn loadgate(plan: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--threads", "1"])
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

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// Two servers answering `GET /work` after their delay, counting their requests: the
/// baseline on the returned server's address, the canary on the second URL. Both run on one
/// runtime thread, so they share its wake-ups: a lightly loaded server on a thread of its own
/// parks between requests and pays a wake-up per request on a busy machine (~10% of a few
/// ms), which a canary at 10% would show as a real slowdown.
fn two_servers(
    baseline: (Duration, Arc<AtomicU64>),
    canary: (Duration, Arc<AtomicU64>),
) -> (TestServer, String) {
    let app = |(delay, count): (Duration, Arc<AtomicU64>)| {
        axum::Router::new().route(
            "/work",
            get(move || {
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    "ok"
                }
            }),
        )
    };
    let (base_app, canary_app) = (app(baseline), app(canary));
    let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    second.set_nonblocking(true).unwrap();
    let canary_url = format!("http://{}", second.local_addr().unwrap());
    let server = TestServer::start(move |listener, _stop| async move {
        let second = tokio::net::TcpListener::from_std(second).unwrap();
        let _ = tokio::join!(
            axum::serve(listener, base_app),
            axum::serve(second, canary_app)
        );
    });
    (server, canary_url)
}

fn split_plan(dir: &Path, baseline: &str, canary: &str, steps: &str, expect: &str) -> String {
    let plan = format!(
        r#"name: canary-targets
target: {baseline}
scenarios:
  work:
    executor: constant-arrival-rate
    rate: 200/s
    duration: 14s
    request: {{ method: GET, path: /work }}
canary:
  split: {{ targets: {{ baseline: "{baseline}", canary: "{canary}" }} }}
  steps: {steps}
  step_duration: 2s
  min_samples: 20
  compare:
    latency: {{ test: mann-whitney, confidence: 0.98, max_increase: 10% }}
    error_rate: {{ max: 1% }}
  expect: {expect}
report: {{ formats: [json] }}
"#
    );
    let path = dir.join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    path.to_string_lossy().into_owned()
}

/// The canary's share of a step's requests.
fn share(step: &Value) -> f64 {
    let c = step["canary"]["requests"].as_f64().unwrap();
    c / (c + step["baseline"]["requests"].as_f64().unwrap())
}

#[test]
fn loadgate_splits_two_targets_by_each_steps_weight_and_promotes() {
    let (nb, nc) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Equal servers: 10 ms each, so scheduling noise stays far below the allowed 10%.
    let ms10 = Duration::from_millis(10);
    let (base, canary) = two_servers((ms10, nb.clone()), (ms10, nc.clone()));
    let dir = tempfile::tempdir().unwrap();
    let plan = split_plan(
        dir.path(),
        &base.url(),
        &canary,
        "[10, 30, 60, 100]",
        "promote",
    );
    let out = dir.path().join("out");
    let o = loadgate(Path::new(&plan), &out);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "promote", "{c:#}");
    assert_eq!(c["split"], "targets", "{c:#}");
    assert!(c.get("header").is_none(), "{c:#}");
    assert_eq!(c["canary"], canary.as_str());
    // The last attempt of each weight (an inconclusive step runs once more).
    let all = c["steps"].as_array().unwrap();
    let steps: Vec<&Value> = all
        .iter()
        .enumerate()
        .filter(|(i, s)| all.get(i + 1).is_none_or(|n| n["weight"] != s["weight"]))
        .map(|(_, s)| s)
        .collect();
    let weights: Vec<u64> = steps
        .iter()
        .map(|s| s["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [10, 30, 60], "{c:#}");
    for s in &steps {
        let w = s["weight"].as_f64().unwrap() / 100.0;
        let n =
            s["canary"]["requests"].as_u64().unwrap() + s["baseline"]["requests"].as_u64().unwrap();
        // ~400 requests per 2 s step: a binomial share within ~4 standard deviations.
        assert!(n >= 300, "{s:#}");
        let sd = (w * (1.0 - w) / n as f64).sqrt();
        assert!(
            (share(s) - w).abs() < 4.0 * sd + 0.01,
            "step at {w}: canary share {} of {n}: {s:#}",
            share(s)
        );
        assert_eq!(s["decision"], "continue", "{s:#}");
    }
    // Every request went to one of the two servers, and each got its share.
    let sent = v["scenarios"]["work"]["requests"].as_u64().unwrap();
    let (b, k) = (nb.load(Ordering::Relaxed), nc.load(Ordering::Relaxed));
    assert_eq!(b + k, sent, "baseline {b} + canary {k} vs {sent} sent");
    assert!(k > 100 && b > 100, "baseline {b}, canary {k}");
    // The weights were applied by loadgate itself: no admin call, an event per weight.
    let applied: Vec<u64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "canary_weight" && e["ok"] == true)
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [10, 30, 60, 100], "{:#}", v["events"]);
}

#[test]
fn a_slower_canary_target_is_rolled_back_and_gets_nothing_afterwards() {
    let (nb, nc) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (base, canary) = two_servers(
        (Duration::from_millis(10), nb.clone()),
        (Duration::from_millis(30), nc.clone()),
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = split_plan(
        dir.path(),
        &base.url(),
        &canary,
        "[20, 50, 100]",
        "rollback",
    );
    let out = dir.path().join("out");
    let o = loadgate(Path::new(&plan), &out);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "rollback", "{c:#}");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{c:#}");
    let s = &steps[0];
    assert_eq!(s["latency"]["class"], "high", "{s:#}");
    // Tagged by where it went: the canary side is the slow server's 30 ms.
    assert!(s["canary"]["p50_ms"].as_f64().unwrap() >= 29.0, "{s:#}");
    assert!(s["baseline"]["p50_ms"].as_f64().unwrap() < 25.0, "{s:#}");
    assert!((share(s) - 0.2).abs() < 0.1, "{s:#}");
    let after = &c["after_rollback"];
    assert!(after["requests"].as_u64().unwrap() > 500, "{after:#}");
    assert_eq!(after["canary_requests"], 0, "{after:#}");
    // The canary server saw about its step's share, not a request more than the weight sent.
    let k = nc.load(Ordering::Relaxed);
    let stepped = s["canary"]["requests"].as_u64().unwrap();
    assert!(k >= stepped, "canary server {k} < {stepped} tagged canary");
    assert!(
        k <= stepped + 200,
        "canary server {k} vs {stepped} in the step"
    );
}

/// A server that routes by the weight in the file `weight` (written by the hook): v1 or v2
/// in the header `x-model-version`; v2 fails every request once it gets 50% or more.
fn weighted_server(weight_file: std::path::PathBuf) -> TestServer {
    TestServer::axum(axum::Router::new().route(
        "/work",
        get(move || {
            let path = weight_file.clone();
            async move {
                let w: u32 = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(5)).await;
                let v2 = rand::random_range(0..100u32) < w;
                let mut h = HeaderMap::new();
                h.insert(
                    "x-model-version",
                    HeaderValue::from_static(if v2 { "v2" } else { "v1" }),
                );
                let status = if v2 && w >= 50 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                (status, h, "ok")
            }
        }),
    ))
}

#[test]
fn a_hook_command_applies_each_weight_and_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let weight = dir.path().join("weight");
    let log = dir.path().join("weights.log");
    let server = weighted_server(weight.clone());
    let hook = format!(
        "echo {{{{weight}}}} >> '{}' && echo \"$CANARY_WEIGHT\" > '{w}.tmp' && mv '{w}.tmp' '{w}'",
        log.display(),
        w = weight.display()
    );
    let plan = format!(
        r#"name: canary-hook
target: {url}
scenarios:
  work:
    executor: constant-arrival-rate
    rate: 200/s
    duration: 12s
    request: {{ method: GET, path: /work }}
canary:
  split: {{ header: x-model-version, baseline: v1, canary: v2 }}
  steps: [10, 50, 100]
  step_duration: 2s
  min_samples: 20
  compare:
    error_rate: {{ max: 1% }}
  expect: rollback
  apply:
    command: [sh, -c, {hook:?}]
report: {{ formats: [json] }}
"#,
        url = server.url()
    );
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let out = dir.path().join("out");
    let o = loadgate(&path, &out);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "rollback", "{c:#}");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{c:#}");
    assert_eq!(steps[0]["decision"], "continue", "{c:#}");
    assert_eq!(steps[1]["errors"]["class"], "high", "{c:#}");
    // The hook ran once per weight, in order, the rollback's 0 last.
    let seen: Vec<u32> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(seen, [10, 50, 0], "weights the hook got");
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "0");
    // After the rollback the canary served nothing.
    assert_eq!(c["after_rollback"]["canary_requests"], 0, "{c:#}");
}

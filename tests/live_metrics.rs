//! `--metrics-addr`: while a run goes, its own metrics are served in the Prometheus text
//! format, and Python's standard parser (prometheus_client, Debian's python3-prometheus-client
//! installed by scripts/setup.sh) reads them: requests, errors by kind, the latency histogram
//! per scenario, dropped, active VUs, check states.
mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn server() -> common::TestServer {
    use axum::routing::get;
    common::TestServer::axum(
        axum::Router::new()
            .route(
                "/ok",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    "ok"
                }),
            )
            .route(
                "/bad",
                get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
            ),
    )
}

/// GET /metrics from `addr` (plain HTTP/1.1).
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Parse with prometheus_client's text parser; returns {family: {type, samples: [[name,
/// labels, value]]}}.
fn parse_with_python(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "prometheus_client could not parse:\n{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn samples<'a>(v: &'a Value, family: &str) -> &'a Vec<Value> {
    v[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {v:#}"))
}

fn value_of(v: &Value, family: &str, sample: &str, label: (&str, &str)) -> Option<f64> {
    samples(v, family)
        .iter()
        .find(|s| s[0] == sample && s[1][label.0] == label.1)
        .and_then(|s| s[2].as_f64())
}

#[test]
fn prometheus_metrics_parse_while_the_run_goes() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            r#"name: live
target: {}
scenarios:
  main:
    executor: constant-arrival-rate
    rate: 50/s
    duration: 8s
    request: {{ method: GET, path: /ok }}
  broken:
    executor: constant-vus
    vus: 1
    duration: 8s
    request: {{ method: GET, path: /bad }}
thresholds:
  http_req_failed{{scenario:main}}: [ "rate<0.01" ]
  http_req_failed{{scenario:broken}}: [ "rate<0.01" ]
"#,
            srv.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--threads",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut run = Run(child);
    // The bound address is announced on stderr.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("loadgate announces its metrics address");
        if let Some(rest) = line.split("metrics at http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    // Wait until the run has counted some requests (an observable condition), then parse.
    let mut parsed = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(text) = scrape(&addr) {
            let v = parse_with_python(&text);
            let main = value_of(
                &v,
                "loadgate_requests",
                "loadgate_requests_total",
                ("scenario", "main"),
            );
            if main.is_some_and(|n| n >= 50.0) {
                parsed = v;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        parsed != Value::Null,
        "no scrape showed 50 requests of main"
    );
    let v = &parsed;
    assert_eq!(v["loadgate_requests"]["type"], "counter");
    assert_eq!(v["loadgate_request_duration_seconds"]["type"], "histogram");
    // Errors by kind: the broken scenario's 503s.
    let errs = value_of(
        v,
        "loadgate_errors",
        "loadgate_errors_total",
        ("scenario", "broken"),
    )
    .expect("errors of broken");
    assert!(errs > 0.0, "{v:#}");
    assert!(samples(v, "loadgate_errors")
        .iter()
        .any(|s| s[1]["kind"] == "status_5xx"));
    // The latency histogram: buckets up to +Inf, a count equal to the requests.
    let hist = samples(v, "loadgate_request_duration_seconds");
    let count = hist
        .iter()
        .find(|s| s[0] == "loadgate_request_duration_seconds_count" && s[1]["scenario"] == "main")
        .and_then(|s| s[2].as_f64())
        .unwrap();
    let inf = hist
        .iter()
        .find(|s| {
            s[0] == "loadgate_request_duration_seconds_bucket"
                && s[1]["scenario"] == "main"
                && s[1]["le"] == "+Inf"
        })
        .and_then(|s| s[2].as_f64())
        .unwrap();
    assert_eq!(count, inf);
    assert!(count >= 50.0);
    // Dropped, active VUs, check states.
    assert!(value_of(
        v,
        "loadgate_dropped_iterations",
        "loadgate_dropped_iterations_total",
        ("scenario", "main")
    )
    .is_some());
    let vus = value_of(
        v,
        "loadgate_active_vus",
        "loadgate_active_vus",
        ("scenario", "broken"),
    )
    .unwrap();
    assert_eq!(vus, 1.0, "{v:#}");
    let checks = samples(v, "loadgate_check_passing");
    let state = |name: &str| {
        checks
            .iter()
            .find(|s| s[1]["check"] == name)
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
    };
    assert_eq!(state("http_req_failed{scenario:main} rate<0.01"), 1.0);
    assert_eq!(state("http_req_failed{scenario:broken} rate<0.01"), 0.0);

    // The run finishes on its own (the broken threshold fails it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(st) = run.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(99));
}

#[test]
fn a_busy_metrics_addr_fails_before_anything_is_sent() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args([
            "attack",
            "http://127.0.0.1:1/",
            "-d",
            "1s",
            "--metrics-addr",
            &addr,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--metrics-addr") && err.contains("nothing was sent"),
        "{err}"
    );
}

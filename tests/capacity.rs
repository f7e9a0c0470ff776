//! `loadgate capacity` against a test server of known capacity: `k` slots, each held `t` ms
//! per request (a semaphore), so it serves at most k / t requests per second, and beyond
//! that its queue (and latency) grows without bound. The search must find that knee within
//! 10% with an interval that contains it; a generator starved of VUs must say it ran out
//! instead of reporting a capacity.
mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use serde_json::Value;
use tokio::sync::Semaphore;

use common::TestServer;

/// How long the slots were actually held: requests served and their total hold time.
#[derive(Default)]
struct Held {
    requests: AtomicU64,
    nanos: AtomicU64,
}

impl Held {
    /// The server's capacity as it ran: slots / mean hold time, per second.
    fn capacity(&self, slots: usize) -> f64 {
        let n = self.requests.load(Ordering::Relaxed).max(1) as f64;
        let mean = self.nanos.load(Ordering::Relaxed) as f64 / n / 1e9;
        slots as f64 / mean
    }
}

/// A server with `slots` slots, each request holding one for `hold`.
fn slot_server(slots: usize, hold: Duration) -> (TestServer, Arc<Held>) {
    let sem = Arc::new(Semaphore::new(slots));
    let held = Arc::new(Held::default());
    let h = held.clone();
    let app = axum::Router::new().route(
        "/slot",
        get(move || {
            let (sem, h) = (sem.clone(), h.clone());
            async move {
                let _permit = sem.acquire().await.expect("semaphore open");
                let t0 = Instant::now();
                tokio::time::sleep(hold).await;
                h.nanos
                    .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                h.requests.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    (TestServer::axum(app), held)
}

fn loadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .arg("capacity")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn finds_the_knee_of_a_server_of_known_capacity_with_an_interval_around_it() {
    // 40 slots x 100 ms: 400 requests per second nominally; a timer sleeps a little longer
    // than asked, so the capacity it ran at (slots / the mean hold it measured, ~390/s) is
    // the known one. The threshold leaves 100 ms over the slot time: below the knee no
    // load-induced noise fails a step, above it the queue breaks it within the step.
    let (server, held) = slot_server(40, Duration::from_millis(100));
    let nominal = 400.0;
    let out = tempfile::tempdir().unwrap();
    let url = format!("{}/slot", server.url());
    let o = loadgate(&[
        "--url",
        &url,
        "--slo",
        "p(95)<200",
        "--min",
        "100/s",
        "--max",
        "1600/s",
        "--precision",
        "10%",
        "--warmup",
        "1s",
        "--step",
        "2s",
        "--cooldown",
        "0s",
        "--repeats",
        "2",
        "--expected",
        "150/s",
        "--threads",
        "1",
        "--json",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let v = json(&o);
    let c = &v["capacity"];
    let steps = c["steps"].as_array().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(c["outcome"], "found", "{c:#}\n{stderr}");
    let known = held.capacity(40);
    eprintln!("known capacity: {known:.1}/s (nominal {nominal}/s)");
    assert!((known - nominal).abs() / nominal < 0.05, "{known}");
    let max = c["max_rate"].as_f64().unwrap();
    for k in [known, nominal] {
        assert!(
            (max - k).abs() / k <= 0.10,
            "max_rate {max} is not within 10% of {k}: {c:#}"
        );
    }
    let (low, high) = (c["low"].as_f64().unwrap(), c["high"].as_f64().unwrap());
    assert!(
        low <= known && known <= high,
        "the interval [{low}, {high}] does not contain {known}: {c:#}"
    );
    assert!(low <= max && max < high);
    // Every step is reported with its evidence; the search bracketed from --min.
    assert_eq!(steps[0]["rate"], 100.0);
    assert_eq!(steps[1]["rate"], 200.0);
    for s in steps {
        for k in [
            "rate",
            "achieved_rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "errors",
            "dropped",
        ] {
            assert!(s[k].is_number(), "step without {k}: {s:#}");
        }
        assert_ne!(s["verdict"], "invalid", "the generator kept up: {s:#}");
    }
    // A passing step below the knee was served at its rate with the slot's latency.
    let first = &steps[0];
    assert_eq!(first["verdict"], "pass");
    assert!((first["achieved_rps"].as_f64().unwrap() - 100.0).abs() < 10.0);
    assert!(first["p50_ms"].as_f64().unwrap() >= 100.0);
    // The rates around the knee were repeated.
    let n_at = |r: f64| steps.iter().filter(|s| s["rate"] == r).count();
    assert!(n_at(max) >= 2 && n_at(high) >= 2, "{c:#}");
    // Little's law at the knee: about k requests in flight.
    let conc = c["knee"]["concurrency"].as_f64().unwrap();
    assert!((20.0..=80.0).contains(&conc), "{conc}");
    // 2x 150/s = 300/s is held: the headroom check passes, and so does the run.
    let headroom = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "capacity headroom capacity")
        .unwrap();
    assert_eq!(headroom["kind"], "capacity");
    assert_eq!(headroom["passed"], true, "{headroom:#}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    // The steps are events, JUnit testcases and table rows.
    let events = v["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "capacity_step")
            .count(),
        steps.len()
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(
        junit.matches("classname=\"capacity.step\"").count(),
        steps.len()
    );
    let table = std::fs::read_to_string(out.path().join("summary.txt")).unwrap();
    eprintln!("{table}");
    assert!(table.contains("max sustainable"), "{table}");
    assert!(table.contains("Little's law"), "{table}");
}

#[test]
fn a_starved_generator_says_it_ran_out_instead_of_reporting_a_capacity() {
    // 1000 slots x 50 ms: 20,000/s, far beyond what 2 VUs can offer (2 / 50 ms = 40/s).
    let (server, _) = slot_server(1000, Duration::from_millis(50));
    let url = format!("{}/slot", server.url());
    let out = tempfile::tempdir().unwrap();
    let o = loadgate(&[
        "--url",
        &url,
        "--slo",
        "p(95)<500",
        "--min",
        "100/s",
        "--warmup",
        "1s",
        "--step",
        "1s",
        "--cooldown",
        "0s",
        "--max-vus",
        "2",
        "--threads",
        "1",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(99), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the generator ran out"),
        "the table says so:\n{stdout}"
    );
    assert!(
        !stdout.contains("max sustainable"),
        "no capacity is claimed:\n{stdout}"
    );
    assert!(stdout.contains("INVALID"), "{stdout}");
    // summary.json: every step invalid, no max_rate, the search check failed.
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let c = &v["capacity"];
    assert_eq!(c["outcome"], "generator_limited", "{c:#}");
    assert!(c["max_rate"].is_null(), "{c:#}");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "an invalid step is retried once: {c:#}");
    for s in steps {
        assert_eq!(s["verdict"], "invalid", "{s:#}");
        assert!(s["dropped"].as_u64().unwrap() > 0);
        assert!(
            s["detail"].as_str().unwrap().contains("generator ran out"),
            "{s:#}"
        );
    }
    assert!(c["generator_limit"].as_str().unwrap().contains("dropped"));
    let search = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "capacity")
        .unwrap();
    assert_eq!(search["passed"], false);
    assert!(search["observed"]
        .as_str()
        .unwrap()
        .contains("generator ran out"));
}

#[test]
fn bad_arguments_exit_2_before_anything_is_sent() {
    let o = loadgate(&["--url", "http://127.0.0.1:1/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--slo is required"));
    let o = loadgate(&[
        "--url",
        "http://127.0.0.1:1/x",
        "--slo",
        "p(95)<100",
        "--min",
        "500/s",
        "--max",
        "100/s",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--max"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A plan whose steps nothing would judge, or whose scenario is not named: exit 2 (the
    // plan's stack would not even start).
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        "{ executor: constant-vus, vus: 1, duration: 1s, request: { method: GET, path: / } }";
    let plan = dir.path().join("p.yaml");
    std::fs::write(
        &plan,
        format!("target: http://127.0.0.1:1\nscenarios:\n  a: {scenario}\n"),
    )
    .unwrap();
    let o = loadgate(&[plan.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no threshold judges scenario `a`"), "{err}");
    std::fs::write(
        &plan,
        format!("target: http://127.0.0.1:1\nscenarios:\n  a: {scenario}\n  b: {scenario}\nthresholds: {{ http_req_failed: [\"rate<0.01\"] }}\n"),
    )
    .unwrap();
    let o = loadgate(&[plan.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("several scenarios (a, b)"), "{err}");
}

#[test]
fn the_capacity_section_lowers_with_its_defaults_and_names_its_scenario() {
    use loadgate::plan::{self, PlanOptions};
    let text = |section: &str| {
        format!(
            "target: http://127.0.0.1:8080\nscenarios:\n  a: {{ executor: constant-vus, vus: 1, duration: 1s, request: {{ method: GET, path: / }} }}\n  b: {{ executor: constant-vus, vus: 1, duration: 1s, request: {{ method: GET, path: / }} }}\n{section}"
        )
    };
    let parse = |t: &str, sets: &[(&str, &str)]| {
        let mut o = PlanOptions::empty_env();
        o.sets = sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan::parse(t, "p.yaml", std::path::Path::new("."), &o)
    };
    let p = parse(&text("capacity: { scenario: b, expected: 150/s }\n"), &[]).unwrap();
    let c = p.capacity().unwrap();
    assert_eq!(c.scenario, "b");
    assert_eq!(c.expected, Some(150.0));
    assert_eq!((c.precision, c.min, c.max), (0.05, 10.0, 100_000.0));
    assert_eq!((c.headroom, c.repeats), (2.0, 3));
    assert_eq!(c.step, Duration::from_secs(10));
    // Two scenarios and no name: the problem says how to name one.
    let e = parse(&text("capacity: { expected: 150/s }\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("--scenario NAME"), "{e}");
    // `--scenario a` is `--set capacity.scenario=a`; a plan without the section gets one.
    let p = parse(&text(""), &[("capacity.scenario", "a")]).unwrap();
    assert_eq!(p.capacity().unwrap().scenario, "a");
    assert!(parse(&text(""), &[]).unwrap().capacity().is_none());
}

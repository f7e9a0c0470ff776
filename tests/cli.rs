//! The command line as outside tools see it: exit codes (0 / 99 / 2), `attack --json`'s summary,
//! report files from `run`, abort_on_fail, and Ctrl-C writing the reports of what ran.
//! Runs the built `loadgate` binary against an in-process axum server on 127.0.0.1:0.
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod server {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;

    /// Requests `GET /` answered by any server of this process (tests wait on it instead of
    /// sleeping; nextest runs each test in its own process).
    pub static HITS: AtomicU64 = AtomicU64::new(0);

    /// Start a small test server in a background thread; it lives for the test process.
    pub fn start() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new()
                    .route(
                        "/",
                        get(|| async {
                            HITS.fetch_add(1, Ordering::Relaxed);
                            "ok"
                        }),
                    )
                    .route(
                        "/slow",
                        get(|| async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            "slow"
                        }),
                    )
                    .route(
                        "/stall",
                        get(|| async {
                            // Requests arriving from 0.5 s to 1.5 s after the first one wait
                            // until 1.5 s: a one-second server stall.
                            static FIRST: std::sync::OnceLock<std::time::Instant> =
                                std::sync::OnceLock::new();
                            let t = FIRST.get_or_init(std::time::Instant::now).elapsed();
                            let (from, to) =
                                (Duration::from_millis(500), Duration::from_millis(1500));
                            if t >= from && t < to {
                                tokio::time::sleep(to - t).await;
                            }
                            "stalled"
                        }),
                    )
                    .route(
                        "/status/{code}",
                        get(|Path(code): Path<u16>| async move {
                            (StatusCode::from_u16(code).unwrap(), "status")
                        }),
                    );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        addr
    }
}

fn loadgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("loadgate runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn json_stdout(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn assert_contract_scenario(s: &Value) {
    for f in ["requests", "errors", "dropped", "rps"] {
        assert!(s[f].is_number(), "scenario field {f} missing: {s}");
    }
    for p in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(
            s["latency_ms"][p].is_number(),
            "latency_ms.{p} missing: {s}"
        );
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[test]
fn attack_closed_model_prints_contract_json() {
    let addr = server::start();
    let o = run(loadgate().args(["attack", &url(addr, "/"), "-c", "8", "-d", "1s", "--json"]));
    assert_eq!(
        code(&o),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_stdout(&o);
    assert_eq!(v["verdict"], "pass");
    assert!(v["checks"].is_array());
    let s = &v["scenarios"]["attack"];
    assert_contract_scenario(s);
    assert!(
        s["requests"].as_u64().unwrap() > 100,
        "closed model at full speed sent too little: {s}"
    );
    assert_eq!(s["errors"], 0);
}

#[test]
fn attack_open_model_holds_the_rate() {
    let addr = server::start();
    let o = run(loadgate().args([
        "attack",
        &url(addr, "/"),
        "--rate",
        "200/s",
        "-d",
        "2s",
        "--json",
    ]));
    assert_eq!(
        code(&o),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_stdout(&o);
    let s = &v["scenarios"]["attack"];
    assert_contract_scenario(s);
    let n = s["requests"].as_u64().unwrap();
    assert!(
        (340..=460).contains(&n),
        "expected about 400 requests at 200/s for 2s, got {n}"
    );
}

#[test]
fn failed_threshold_exits_99_and_passing_one_exits_0() {
    let addr = server::start();
    let o = run(loadgate().args([
        "attack",
        &url(addr, "/slow"),
        "-c",
        "2",
        "-d",
        "1s",
        "--json",
        "--threshold",
        "http_req_duration: p(95)<1",
    ]));
    assert_eq!(
        code(&o),
        99,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_stdout(&o);
    assert_eq!(v["verdict"], "fail");
    let c = &v["checks"][0];
    assert_eq!(c["kind"], "threshold");
    assert_eq!(c["passed"], false);
    assert_eq!(c["expected"], "p(95)<1");

    let o = run(loadgate().args([
        "attack",
        &url(addr, "/"),
        "-c",
        "2",
        "-d",
        "1s",
        "--json",
        "--threshold",
        "http_req_failed: rate<0.01",
    ]));
    assert_eq!(
        code(&o),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn attack_thresholds_are_validated_before_anything_is_sent() {
    // A listener nobody accepts on: a connection loadgate made would wait in its backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for (threshold, says) in [
        ("bogus: p(95)<1", "unknown metric `bogus`"),
        (
            "http_req_failed: p(95)<1",
            "does not apply to `http_req_failed`",
        ),
        (
            "http_req_duration{scenario:chat}: p(95)<1",
            "scenario:chat names nothing",
        ),
        ("http_req_duration: p(95)<1 over 0s", "bad window"),
    ] {
        let o = run(loadgate().args([
            "attack",
            &url(addr, "/"),
            "-c",
            "1",
            "-d",
            "1s",
            "--threshold",
            threshold,
        ]));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{threshold}: {stderr}");
        assert!(stderr.contains(says), "{threshold}: {stderr}");
    }
    // loadgate has exited: any connection it made would be in the backlog now.
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("loadgate connected before refusing: {other:?}"),
    }
}

#[test]
fn invalid_arguments_exit_2_and_send_nothing() {
    for args in [
        vec!["attack", "not a url"],
        vec!["attack", "http://127.0.0.1:1/", "-c", "0", "-d", "1s"],
        vec!["attack", "http://127.0.0.1:1/", "--rate", "fast"],
        vec!["attack", "http://127.0.0.1:1/", "-d", "soon"],
        vec!["frobnicate"],
    ] {
        let o = run(loadgate().args(&args));
        assert_eq!(
            code(&o),
            2,
            "{args:?}: stderr {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn schema_prints_json_schemas() {
    for args in [vec!["schema"], vec!["schema", "--summary"]] {
        let o = run(loadgate().args(&args));
        assert_eq!(code(&o), 0);
        let v = json_stdout(&o);
        assert!(
            v.is_object() && (v.get("$schema").is_some() || v.get("properties").is_some()),
            "{v}"
        );
    }
}

/// `loadgate run PLAN --out OUT [extra...]` against the test server at `addr`.
fn run_plan(plan: &Path, out: &Path, addr: SocketAddr, extra: &[&str]) -> Output {
    run(loadgate()
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .env("TARGET_URL", format!("http://{addr}")))
}

fn read_summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

fn write_plan(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("plan.yaml");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    p
}

const PLAN: &str = r#"name: cli-test
target: ${TARGET_URL}
scenarios:
  main:
    executor: constant-arrival-rate
    rate: 50/s
    duration: 2s
    pre_allocated_vus: 5
    max_vus: 20
    request:
      method: GET
      path: /
      checks: ["status == 200"]
thresholds:
  http_req_duration: ["p(95)<2000"]
  http_req_failed: ["rate<0.01"]
  checks: ["rate>0.99"]
"#;

#[test]
fn validate_reports_problems_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(
        dir.path(),
        &PLAN
            .replace("rate: 50/s", "rate: fast")
            .replace("max_vus: 20", "max_vus: 20\n    bogus: 1"),
    );
    let o = run(loadgate()
        .args(["validate", plan.to_str().unwrap()])
        .env("TARGET_URL", "http://127.0.0.1:1"));
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plan.yaml:6:"),
        "rate problem at line 6 expected:\n{err}"
    );
    assert!(err.contains("bogus"), "unknown field expected:\n{err}");

    let plan = write_plan(dir.path(), PLAN);
    let o = run(loadgate()
        .args(["validate", plan.to_str().unwrap()])
        .env("TARGET_URL", "http://127.0.0.1:1"));
    assert_eq!(
        code(&o),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn run_writes_every_report_and_judges_thresholds() {
    let addr = server::start();
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), PLAN);
    let out = dir.path().join("out");
    let o = run_plan(&plan, &out, addr, &[]);
    assert_eq!(
        code(&o),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("main"), "table names the scenario:\n{table}");
    for f in ["summary.json", "junit.xml", "timeseries.csv"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let v = read_summary(&out);
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["checks"].as_array().unwrap().len(), 3);
    let n = v["scenarios"]["main"]["requests"].as_u64().unwrap();
    assert!((80..=120).contains(&n), "50/s for 2s gave {n}");

    // --set overrides a value: every request now gets a 500, so the failure-rate and
    // response-check thresholds fail while the latency one still passes.
    let o = run_plan(
        &plan,
        &out,
        addr,
        &["--set", "scenarios.main.request.path=/status/500"],
    );
    assert_eq!(
        code(&o),
        99,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = read_summary(&out);
    // What ran is on record: the plan, its digest, the override, the target.
    let run = &v["run"];
    assert_eq!(run["plan_path"], plan.to_str().unwrap());
    assert_eq!(run["plan_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        run["overrides"],
        serde_json::json!(["scenarios.main.request.path=/status/500"])
    );
    assert_eq!(run["target"], format!("http://{addr}"));
    assert_eq!(run["loadgate_version"], env!("CARGO_PKG_VERSION"));
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().any(|n| n.starts_with("http_req_failed")),
        "{failed:?}"
    );
    assert!(failed.iter().any(|n| n.starts_with("checks")), "{failed:?}");
}

#[test]
fn abort_on_fail_stops_the_run_early() {
    let addr = server::start();
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(
        dir.path(),
        &PLAN
            .replace("duration: 2s", "duration: 30s")
            .replace(
                "http_req_failed: [\"rate<0.01\"]",
                "http_req_failed: [{threshold: \"rate<0.01\", abort_on_fail: true, delay: 1s}]",
            )
            .replace("path: /\n", "path: /status/503\n"),
    );
    let out = dir.path().join("out");
    let t0 = Instant::now();
    let o = run_plan(&plan, &out, addr, &[]);
    assert_eq!(
        code(&o),
        99,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "abort took {:?}",
        t0.elapsed()
    );
    let v = read_summary(&out);
    assert_eq!(v["verdict"], "fail");
}

/// Wait until the test servers have answered `n` requests to `/` (at most 20 s).
fn wait_hits(n: u64) {
    let t0 = Instant::now();
    while server::HITS.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the load did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `sig` to `child` and wait (at most 20 s) for it to exit; returns its output.
fn interrupt(mut child: std::process::Child, sig: nix::sys::signal::Signal) -> Output {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
        .expect("signal to the child");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("loadgate did not stop within 20 s of {sig:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_mid_plan_exits_105_with_the_reports_of_what_ran() {
    let addr = server::start();
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), &PLAN.replace("duration: 2s", "duration: 60s"));
    let out = dir.path().join("out");
    let child = loadgate()
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("TARGET_URL", format!("http://{addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-plan: the 60 s plan has answered 30 requests (0.6 s at 50/s); its thresholds pass
    // over what ran, and still the exit code is 105.
    wait_hits(30);
    let o = interrupt(child, nix::sys::signal::Signal::SIGINT);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        code(&o),
        105,
        "a run cut short by Ctrl-C exits 105 (k6's external abort), never 0: {stderr}"
    );
    let v = read_summary(&out);
    assert_eq!(v["interrupted"], true, "{v}");
    assert_eq!(v["stop_reason"], "interrupted (Ctrl-C / SIGTERM)", "{v}");
    assert_eq!(
        v["verdict"], "fail",
        "an interrupted run never reads as a pass"
    );
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "the checks over what ran passed, the exit code says interrupted all the same: {v}"
    );
    let n = v["scenarios"]["main"]["requests"].as_u64().unwrap();
    assert!(
        (30..1000).contains(&n),
        "reports cover what ran before Ctrl-C, got {n} requests"
    );
    for f in ["junit.xml", "timeseries.csv", "summary.txt"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    // The terminal says why.
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("interrupted"), "{stdout}");
}

#[test]
fn sigterm_cuts_an_attack_short_with_exit_105_and_its_json() {
    let addr = server::start();
    let child = loadgate()
        .args(["attack", &url(addr, "/"), "-c", "2", "-d", "60s", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_hits(20);
    let o = interrupt(child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        code(&o),
        105,
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_stdout(&o);
    assert_eq!(v["interrupted"], true, "{v}");
    assert_eq!(v["verdict"], "fail", "{v}");
    assert!(v["scenarios"]["attack"]["requests"].as_u64().unwrap() >= 20);
}

#[test]
fn the_terminal_warns_about_drops_dead_targets_and_runs_that_judged_nothing() {
    let addr = server::start();
    let o = run(loadgate().args([
        "attack",
        &url(addr, "/slow"),
        "--rate",
        "500/s",
        "--max-vus",
        "2",
        "-d",
        "1s",
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.contains("arrivals") && out.contains("were dropped"),
        "{out}"
    );
    assert!(out.contains("raise max_vus"), "{out}");
    assert!(
        out.contains("verdict: PASS (no thresholds: nothing was judged)"),
        "{out}"
    );

    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let o = run(loadgate().args(["attack", &dead, "-c", "1", "-d", "1s"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("requests failed (connect_refused"), "{out}");
    assert!(out.contains("errors connect_refused x"), "{out}");
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_open_model_waits_through_a_stall_as_long_as_its_timeout() {
    // 300/s with a one-second stall needs ~300 requests in flight: the default in-flight
    // budget (rate x timeout) holds them instead of dropping arrivals.
    let addr = server::start();
    let o = run(loadgate().args([
        "attack",
        &url(addr, "/stall"),
        "--rate",
        "300/s",
        "-d",
        "3s",
        "--timeout",
        "5s",
        "--json",
    ]));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_stdout(&o);
    let s = &v["scenarios"]["attack"];
    assert_eq!(s["dropped"], 0, "{s:#}");
    let n = s["requests"].as_u64().unwrap();
    assert!((860..=940).contains(&n), "{n}");
    // The stall shows in the latency (from the intended send time), not in drops.
    assert!(s["latency_ms"]["max"].as_f64().unwrap() > 800.0, "{s:#}");
}

#[test]
fn load_goes_only_to_loopback_or_an_allowed_host() {
    // Nothing may be sent: the refusal comes before any connection.
    for (args, says) in [
        (
            vec!["attack", "http://staging.example.internal/", "-c", "1", "-d", "1s"],
            "target host `staging.example.internal` is not loopback and not allowed: add it to the plan's `allow_hosts` or pass `--allow-host staging.example.internal`",
        ),
        (
            vec![
                "attack",
                "http://10.1.2.3:8080/",
                "-c",
                "1",
                "-d",
                "1s",
                "--allow-host",
                "*.example.internal",
            ],
            "target host `10.1.2.3` is not loopback",
        ),
        (
            vec!["attack", "http://127.0.0.1:1/", "--rate", "1000/s", "--max-rate", "500/s"],
            "the plan's arrival rates add up to 1000/s, above --max-rate 500/s",
        ),
    ] {
        let o = run(loadgate().args(&args));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("nothing was sent"), "{stderr}");
    }
    // localhost and any 127.x address are loopback.
    let addr = server::start();
    let o = run(loadgate().args([
        "attack",
        &format!("http://localhost:{}/", addr.port()),
        "-c",
        "1",
        "-d",
        "1s",
        "--max-rate",
        "500/s",
    ]));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
}

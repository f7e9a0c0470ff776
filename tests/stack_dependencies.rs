//! `dependencies:` against real Redis and PostgreSQL (the reference stack's process backend,
//! services only): a healthy run passes its dependency checks (exit 0); with Redis's
//! maxmemory just above what it holds and keys written during the run, Redis evicts and the
//! eviction check fails the run (exit 99).
mod common;
mod stack_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack;
use serde_json::Value;
use stack_support::*;

const PLAN: &str = r#"
target: ${T}
scenarios:
  main: { executor: constant-arrival-rate, rate: 20/s, duration: 4s, request: { path: / } }
dependencies:
  redis: { url: "${REDIS_URL}", max_evicted_keys: 0, max_memory: 256MiB, max_clients: 50 }
  postgres: { url: "${DATABASE_URL}", connection_margin: 10, max_deadlocks: 0 }
"#;

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {:#}", v["checks"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_evictions_fail_the_run_and_a_healthy_run_passes() {
    let root = state_root();
    let services = StackSpec {
        backend: StackBackend::Process,
        gateways: 0,
        ..StackSpec::default()
    };
    let stack = stack::start(&services, &options(root.path()))
        .await
        .expect("start process stack");
    let env = stack.env();
    let redis_url = env_of(&env, "REDIS_URL");
    let database_url = env_of(&env, "DATABASE_URL");
    let srv = common::TestServer::axum(Router::new().route("/", get(|| async { "ok" })));
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("deps.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_loadgate"))
            .args(["run", plan.to_str().unwrap(), "--threads", "1", "--out"])
            .arg(dir.path().join(out))
            .env("T", srv.url())
            .env("REDIS_URL", &redis_url)
            .env("DATABASE_URL", &database_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("loadgate runs")
    };
    let summary = |out: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(out).join("summary.json")).unwrap(),
        )
        .unwrap()
    };

    // Healthy: nothing evicted, memory and connections far under their bounds.
    let o = run("healthy").wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = summary("healthy");
    for name in [
        "redis evicted_keys",
        "redis used_memory",
        "redis connected_clients",
        "postgres connections",
        "postgres deadlocks",
    ] {
        let c = check(&v, name);
        assert_eq!(c["kind"], "dependency");
        assert_eq!(c["passed"], true, "{c:#}");
    }

    // maxmemory just above what Redis holds now, LRU eviction; keys written while the run
    // reads Redis (its connection is in CLIENT LIST) must be evicted.
    let used: u64 = redis_cli(&redis_url, &["INFO", "memory"])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("used_memory:")
                .map(|v| v.parse().unwrap())
        })
        .unwrap();
    redis_cli(
        &redis_url,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    redis_cli(
        &redis_url,
        &["CONFIG", "SET", "maxmemory", &(used + 300_000).to_string()],
    );
    let child = run("evicting");
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis_cli(&redis_url, &["CLIENT", "LIST"]).lines().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "loadgate never connected to Redis"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let value = "x".repeat(50_000);
    for i in 0..40 {
        redis_cli(&redis_url, &["SET", &format!("fill:{i}"), &value]);
    }
    let evicted = redis_cli(&redis_url, &["INFO", "stats"]);
    assert!(
        !evicted.contains("evicted_keys:0\r"),
        "Redis evicted nothing"
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = summary("evicting");
    let c = check(&v, "redis evicted_keys");
    assert_eq!(c["passed"], false, "{c:#}");
    assert!(
        c["observed"]
            .as_str()
            .unwrap()
            .contains("evicted during the run"),
        "{c:#}"
    );
    assert_eq!(check(&v, "postgres connections")["passed"], true);

    stack.shutdown().await.expect("shutdown");
}

//! The failover example plans against the real reference stack (process backend), shortened
//! with `--set`, each with the exit code its comment documents, and the negative drill: a
//! fault that never recovers fails its RTO check when the load ends, it does not hang.
mod stack_support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use stack_support::{output_text, run_plan, summary};

fn loadgate(plan: &str, out: &Path, sets: &[&str]) -> std::process::Output {
    run_plan(
        plan,
        out,
        &["--set", "stack.reference.backend=process"],
        sets,
    )
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {:#}", v["checks"]))
}

fn events(v: &Value, kind: &str) -> usize {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// Prints each fault's RTOs (the closing note's figures come from here).
fn print_rto(plan: &str, s: &Value) {
    for f in s["failover"].as_array().unwrap() {
        let reps: Vec<String> = f["repetitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}", r["measured"]["rto_ms"]))
            .collect();
        println!(
            "{plan}: fault {} rto_ms per repetition {reps:?}, median {}",
            f["fault"], f["rto"]["median_ms"]
        );
    }
}

#[test]
fn failover_redis_recovers_within_its_rto_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = loadgate(
        "plans/failover-redis.yaml",
        &out,
        &[
            "scenarios.chat.duration=26s",
            "scenarios.notes.duration=26s",
            "faults.redis-kill.at=4s",
            "faults.redis-kill.every=11s",
            "faults.redis-kill.times=2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    print_rto("failover-redis", &s);
    let f = &s["failover"][0];
    assert_eq!(f["fault"], "redis-kill");
    let rto = f["rto_ms"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 15_000.0, "{f:#}");
    assert_eq!(f["repetitions"].as_array().unwrap().len(), 2);
    // Redis down fails chat requests: the users saw an outage, and its errors are counted.
    assert!(
        f["repetitions"][0]["measured"]["errors"].as_u64().unwrap() > 0,
        "{f:#}"
    );
    assert_eq!(check(&s, "fault redis-kill: rto < 15s")["kind"], "failover");
    assert_eq!(events(&s, "fault_injected"), 2);
    assert_eq!(events(&s, "fault_recovered"), 2);
    assert_eq!(events(&s, "users_recovered"), 2);
    assert!(output_text(&o).contains("failover (RTO as users saw it)"));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("fault redis-kill: rto &lt; 15s"), "{junit}");
}

/// Redis killed and never started again: the chat requests fail to the end, the RTO check
/// fails (exit 99) when the load ends, on time.
#[test]
fn a_fault_that_never_recovers_fails_its_rto_check_within_the_deadline() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("never.yaml");
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/failover-redis.yaml"),
    )
    .unwrap();
    // The same plan without the restart, and its data next to it.
    std::fs::write(&plan, src.replace("    restart_after: 3s\n", "")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/data/prompts.csv"),
        dir.path().join("data/prompts.csv"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let t = Instant::now();
    let o = loadgate(
        plan.to_str().unwrap(),
        &out,
        &[
            "scenarios.chat.duration=12s",
            "scenarios.notes.duration=12s",
            "faults.redis-kill.at=3s",
            "faults.redis-kill.times=1",
        ],
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(o.status.code(), Some(99), "{}", output_text(&o));
    let s = summary(&out);
    let c = check(&s, "fault redis-kill: rto < 15s");
    assert_eq!(c["passed"], false);
    assert!(
        c["observed"].as_str().unwrap().contains("not recovered"),
        "{c}"
    );
    assert_eq!(s["failover"][0]["rto_ms"], Value::Null);
    assert_eq!(
        check(&s, "fault redis-kill: injected and confirmed")["passed"],
        true
    );
}

#[test]
fn failover_gateway_one_of_two_behind_the_edge_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = loadgate(
        "plans/failover-gateway.yaml",
        &out,
        &[
            "scenarios.chat.duration=14s",
            "scenarios.notes.duration=14s",
            "faults.gateway-kill.at=4s",
            "faults.gateway-kill.times=1",
            "faults.gateway-kill.restart_after=3s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    print_rto("failover-gateway", &s);
    let f = &s["failover"][0];
    assert_eq!(f["component"], "gateway[1]");
    assert!(f["rto_ms"].as_f64().unwrap() < 15_000.0, "{f:#}");
    // The edge took gateway[1] back: its restart finished within the run.
    assert!(
        f["repetitions"][0]["fault_recovered_s"].as_f64().is_some(),
        "{f:#}"
    );
}

/// Latency, reset_peer and timeout toxics on Redis and PostgreSQL through the stack's fault
/// proxies: every injection takes effect, the gateway sheds (errors, no hang: no request
/// reaches the 5 s timeout) and users are served again within the RTO bound.
#[test]
fn network_chaos_the_gateway_degrades_never_hangs_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = loadgate(
        "plans/network-chaos.yaml",
        &out,
        &[
            "scenarios.chat.duration=27s",
            "scenarios.notes.duration=27s",
            "faults.pg-latency.at=2s",
            "faults.pg-latency.duration=4s",
            "faults.redis-reset.at=8s",
            "faults.redis-reset.duration=3s",
            "faults.pg-timeout.at=17s",
            "faults.pg-timeout.duration=3s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    print_rto("network-chaos", &s);
    let f = s["failover"].as_array().unwrap();
    assert_eq!(f.len(), 3);
    // 200 ms ± 50 ms on PostgreSQL: notes slow down, nobody fails.
    let lat = &f[0]["repetitions"][0]["measured"];
    assert_eq!(f[0]["rto_ms"], 0.0, "{lat:#}");
    assert!(lat["worst_p99_ms"].as_f64().unwrap() >= 150.0, "{lat:#}");
    // Resets and cut connections: errors the users saw, and a recovery.
    for i in [1, 2] {
        assert!(
            f[i]["repetitions"][0]["measured"]["errors"]
                .as_u64()
                .unwrap()
                > 0,
            "{:#}",
            f[i]
        );
        assert!(f[i]["rto_ms"].as_f64().unwrap() < 15_000.0, "{:#}", f[i]);
    }
    assert_eq!(check(&s, "http_req_duration max<5000")["passed"], true);
}

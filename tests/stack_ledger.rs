//! The write ledger against the real reference stack (process backend, shortened): with the
//! gateway's test knob GATEWAY_UNSAFE_ACK_BEFORE_COMMIT (201 first, commit 2 s later) and a
//! kill -9 of PostgreSQL during a notes write load, acknowledged notes are lost and the
//! lost-writes check fails (exit 99) listing their ids; with the normal gateway and a Redis
//! kill, every acknowledged note reads back and the ledger checks pass.
mod stack_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn plan(env: &str, component: &str) -> String {
    format!(
        "stack:
  reference: {{ backend: process, gateways: 1{env} }}
target: ${{TARGET_URL}}
defaults:
  headers: {{ authorization: \"Bearer ${{USER_KEY}}\" }}
  timeout: 3s
scenarios:
  notes:
    executor: constant-arrival-rate
    rate: 20/s
    duration: 12s
    request:
      method: POST
      path: /v1/notes
      body: {{ id: \"{{{{uuid}}}}\", text: \"ledger {{{{seq}}}}\" }}
    ledger: {{ id: \"{{{{uuid}}}}\", read_back: \"GET /v1/notes/{{{{id}}}}\" }}
faults:
  kill:
    at: 4s
    action: kill
    component: {component}
    restart_after: 2s
    expect: {{ rto: \"<30s\" }}
"
    )
}

fn run(text: &str, dir: &Path) -> (Output, Value) {
    let p = dir.join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let s = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json ({e}): {log}")),
    )
    .unwrap();
    (o, s)
}

fn lost_check(s: &Value) -> Value {
    s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ledger: lost_writes <= 0")
        .unwrap_or_else(|| panic!("no ledger check in {:#}", s["checks"]))
        .clone()
}

#[test]
fn ack_before_commit_and_a_postgres_kill_lose_acknowledged_writes_exit_99() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = run(
        &plan(
            ", env: { GATEWAY_UNSAFE_ACK_BEFORE_COMMIT: \"true\" }",
            "postgres",
        ),
        dir.path(),
    );
    let f = &s["failover"][0];
    println!(
        "unsafe ack + postgres kill: acknowledged {} lost {} rpo_ms {} lost_ids {}",
        f["acknowledged_writes"], f["lost_writes"], f["rpo_ms"], f["lost_ids"]
    );
    assert_eq!(o.status.code(), Some(99), "{:#}", s["checks"]);
    let c = lost_check(&s);
    assert_eq!(c["passed"], false, "{c}");
    assert!(f["lost_writes"].as_u64().unwrap() > 0, "{f}");
    assert!(!f["lost_ids"].as_array().unwrap().is_empty(), "{f}");
    assert!(
        c["observed"].as_str().unwrap().contains("lost ids: "),
        "{c}"
    );
}

#[test]
fn the_normal_gateway_loses_no_acknowledged_write_when_redis_is_killed() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = run(&plan("", "redis"), dir.path());
    let f = &s["failover"][0];
    println!(
        "normal gateway + redis kill: acknowledged {} lost {}",
        f["acknowledged_writes"], f["lost_writes"]
    );
    assert_eq!(lost_check(&s)["passed"], true, "{:#}", s["checks"]);
    assert_eq!(f["lost_writes"], 0, "{f}");
    assert!(f["acknowledged_writes"].as_u64().unwrap() > 100, "{f}");
    assert_eq!(o.status.code(), Some(0), "{:#}", s["checks"]);
}

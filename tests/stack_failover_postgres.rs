//! The PostgreSQL failover plans against the real reference stack, shortened with `--set`:
//! plans/failover-postgres.yaml (async replica: the failover may lose the writes the
//! primary acknowledged last; exit 0 within its documented bound, the lost ones counted and
//! listed) and plans/failover-postgres-sync.yaml (sync replica: exit 0 with none lost), with
//! the process backend, and the sync plan with the containers backend too (skipped without
//! a Docker engine unless LOADGATE_REQUIRE_DOCKER is set).
//!
//! Each asserts the exit code the plan's comment documents and summary.json's failover
//! entry: the injection promoted the replica, users recovered within the bound, and the
//! writes acknowledged before the failover were read back after it (`ledger_scope: fault`).
mod stack_support;

use std::path::Path;
use std::time::Duration;

use loadgate::spec::{Component, Replication, StackBackend, StackOp, StackSpec};
use loadgate::stack;
use serde_json::Value;
use stack_support::{env_of, options, output_text, psql, run_plan, state_root, summary};

/// The shortened shape: 14 s of notes at 100/s, the failover at 5 s.
const SHORT: &[&str] = &["scenarios.notes.duration=14s", "faults.pg-failover.at=5s"];

fn run(plan: &str, backend: &str, out: &Path) -> (std::process::Output, Value) {
    let backend = format!("stack.reference.backend={backend}");
    let o = run_plan(plan, out, &["--set", &backend], SHORT);
    let text = output_text(&o);
    let s = if out.join("summary.json").exists() {
        summary(out)
    } else {
        panic!("no summary.json: {text}")
    };
    (o, s)
}

/// The failover entry, with the figures every failover run must show; returns it.
fn failover_entry(s: &Value) -> &Value {
    let f = &s["failover"][0];
    assert_eq!(f["fault"], "pg-failover", "{f:#}");
    assert_eq!(f["action"], "failover", "{f:#}");
    assert_eq!(f["component"], "postgres", "{f:#}");
    assert_eq!(f["ledger_scope"], "fault", "{f:#}");
    let rep = &f["repetitions"][0];
    assert_eq!(rep["injected"], true, "{f:#}");
    let detail = rep["detail"].as_str().unwrap();
    assert!(detail.contains("promoted postgres-replica"), "{detail}");
    let rto = f["rto_ms"].as_f64().expect("users recovered");
    assert!(rto < 15_000.0, "{f:#}");
    let acked = f["acknowledged_writes"].as_u64().unwrap();
    // 5 s of writes at 100/s before the failover; a loaded machine drops some.
    assert!(acked > 100, "{f:#}");
    assert!(
        rep["ledger"]["acknowledged"].as_u64() == Some(acked),
        "{f:#}"
    );
    println!(
        "rto_ms {rto}, acknowledged before the failover {acked}, lost {}, rpo_ms {}",
        f["lost_writes"], f["rpo_ms"]
    );
    f
}

#[test]
fn failover_postgres_async_counts_lost_writes_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (o, s) = run("plans/failover-postgres.yaml", "process", &out);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let f = failover_entry(&s);
    let lost = f["lost_writes"].as_u64().unwrap();
    assert!(lost <= 50, "{f:#}");
    // Every lost write is listed, and the RPO is their span (nonzero exactly when any).
    assert_eq!(
        f["lost_ids"].as_array().unwrap().len() as u64,
        lost.min(20),
        "{f:#}"
    );
    assert_eq!(f["rpo_ms"].as_f64().unwrap() > 0.0, lost > 0, "{f:#}");
    for name in [
        "fault pg-failover: lost_writes <= 50",
        "fault pg-failover: rpo <= 1s",
        "ledger: lost_writes <= 50",
    ] {
        let c = s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {:#}", s["checks"]));
        assert_eq!(c["passed"], true, "{c:#}");
    }
    // Every write the whole run lost was lost by the failover (acknowledged before it).
    let run_wide = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ledger: lost_writes <= 50")
        .unwrap();
    assert!(
        run_wide["observed"]
            .as_str()
            .unwrap()
            .starts_with(&format!("lost_writes={lost} of")),
        "the failover's {lost} lost writes vs the run's: {run_wide:#}"
    );
}

fn sync_plan_loses_nothing(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (o, s) = run("plans/failover-postgres-sync.yaml", backend, &out);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(s["verdict"], "pass");
    let f = failover_entry(&s);
    assert_eq!(f["lost_writes"], 0, "{f:#}");
    assert_eq!(f["rpo_ms"], 0.0, "{f:#}");
    assert_eq!(f["lost_ids"].as_array().unwrap().len(), 0, "{f:#}");
}

#[test]
fn failover_postgres_sync_loses_nothing_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    sync_plan_loses_nothing("process");
}

#[test]
fn failover_postgres_sync_loses_nothing_on_containers_exit_0() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt.block_on(loadgate::stack::docker::connect(Duration::from_secs(3)));
    if let Err(why) = engine {
        if std::env::var_os("LOADGATE_REQUIRE_DOCKER").is_some() {
            panic!("LOADGATE_REQUIRE_DOCKER is set but no Docker engine answers: {why}");
        }
        eprintln!("SKIP: no Docker engine answers ({why})");
        return;
    }
    drop(rt);
    sync_plan_loses_nothing("containers");
}

/// The replica on its own (process backend, no gateway): a hot standby of the primary that
/// the handle can stop and start like any component; the failover promotes it, repoints the
/// proxy, and a second failover is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_streams_obeys_the_handle_and_fails_over_once() {
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 0,
        fault_proxy: true,
        postgres_replica: Some(Replication::Sync),
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start a process stack with a replica");
    let h = stack.handle();
    assert!(h.components().contains(&Component::PostgresReplica));
    let primary = env_of(&h.env(), "DATABASE_URL");
    let replica_addr = h.addr(Component::PostgresReplica).unwrap();
    let mut replica = url::Url::parse(&primary).unwrap();
    replica.set_port(Some(replica_addr.port())).unwrap();
    let replica = replica.to_string();
    // Sync: a row committed on the primary is on the replica already.
    let p = primary.clone();
    let r = replica.clone();
    tokio::task::spawn_blocking(move || {
        psql(&p, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
        assert_eq!(psql(&r, "SELECT pg_is_in_recovery()"), "t");
        assert_eq!(psql(&r, "SELECT v FROM t"), "7");
    })
    .await
    .unwrap();
    for op in [StackOp::Stop, StackOp::Start] {
        h.act(Component::PostgresReplica, op)
            .await
            .unwrap_or_else(|e| panic!("{op} postgres-replica: {e}"));
    }
    let proxy = h
        .proxy(Component::Postgres)
        .expect("a proxy in front of postgres");
    let p = h.failover(Component::Postgres).await.expect("failover");
    assert_eq!(p.new_primary, replica_addr);
    assert_eq!(proxy.upstream(), replica_addr);
    assert!(
        h.pid(Component::Postgres).is_none(),
        "the old primary is down"
    );
    let r = replica.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(psql(&r, "SELECT pg_is_in_recovery()"), "f");
        psql(&r, "INSERT INTO t VALUES (8)");
        assert_eq!(psql(&r, "SELECT count(*) FROM t"), "2");
    })
    .await
    .unwrap();
    let again = h
        .failover(Component::Postgres)
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("already failed over"), "{again}");
    let pids = stack.pids();
    stack.shutdown().await.expect("shutdown");
    for pid in pids {
        assert!(
            stack_support::wait_gone(pid, Duration::from_secs(10)),
            "pid {pid} left"
        );
    }
}

/// Per-fault attribution: with the gateway's ack-before-commit test knob, a PostgreSQL kill
/// loses acknowledged notes; its `expect.lost_writes: 0` fails naming them (exit 99), while a
/// later Redis kill is not charged for them (its read-back skips writes an earlier fault
/// already lost).
#[test]
fn a_lost_write_counts_against_the_fault_that_lost_it_exit_99() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let plan = "stack:
  reference: { backend: process, gateways: 1, env: { GATEWAY_UNSAFE_ACK_BEFORE_COMMIT: \"true\" } }
target: ${TARGET_URL}
defaults:
  headers: { authorization: \"Bearer ${USER_KEY}\" }
  timeout: 3s
scenarios:
  notes:
    executor: constant-arrival-rate
    rate: 20/s
    duration: 16s
    request:
      method: POST
      path: /v1/notes
      body: { id: \"{{uuid}}\", text: \"attribution {{seq}}\" }
    ledger:
      id: \"{{uuid}}\"
      read_back: \"GET /v1/notes/{{id}}\"
      expect: { lost_writes: 1000, rpo: 60s }
faults:
  pg-kill:
    at: 4s
    action: kill
    component: postgres
    restart_after: 2s
    expect: { rto: \"<30s\", lost_writes: 0, rpo: 0s }
  redis-kill:
    at: 10s
    action: kill
    component: redis
    restart_after: 3s
    expect: { rto: \"<30s\", lost_writes: 1000, rpo: 60s }
";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, plan).unwrap();
    let out = dir.path().join("out");
    let o = run_plan(p.to_str().unwrap(), &out, &[], &[]);
    assert_eq!(o.status.code(), Some(99), "{}", output_text(&o));
    let s = summary(&out);
    let check = |name: &str| {
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {:#}", s["checks"]))
            .clone()
    };
    let c = check("fault pg-kill: lost_writes <= 0");
    assert_eq!(c["passed"], false, "{c:#}");
    assert!(
        c["observed"].as_str().unwrap().contains("lost ids: "),
        "{c:#}"
    );
    let pg = &s["failover"][0];
    let redis = &s["failover"][1];
    assert_eq!(pg["ledger_scope"], "fault", "{pg:#}");
    assert_eq!(redis["ledger_scope"], "fault", "{redis:#}");
    let pg_lost = pg["lost_writes"].as_u64().unwrap();
    assert!(pg_lost > 0, "{pg:#}");
    let ids = |f: &Value| -> Vec<String> {
        f["lost_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let (pg_ids, redis_ids) = (ids(pg), ids(redis));
    assert!(
        pg_ids.iter().all(|id| !redis_ids.contains(id)),
        "a write lost to pg-kill was charged to redis-kill too: {pg:#} {redis:#}"
    );
    println!(
        "pg-kill lost {pg_lost} of {} acknowledged before it; redis-kill lost {} (ids disjoint)",
        pg["acknowledged_writes"], redis["lost_writes"]
    );
}

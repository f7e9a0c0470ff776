//! Backup and restore of the reference stack's PostgreSQL (real pg_dump / pg_restore; process
//! backend, and containers when a Docker engine and the local images are there): through the
//! stack handle, rows written after a backup are gone after the
//! restore and the ones before it are kept; and plans/restore-drill.yaml (shortened) makes the
//! write ledger report the notes acknowledged between the backup and the restore as lost, within
//! the plan's documented expectation, exit 0.
mod stack_support;

use std::time::Duration;

use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack::{self, containers, docker, Component, ControlError};
use stack_support::{
    env_of, options, output_text, psql, run_plan, skip_without_gateway, state_root, summary,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_goes_back_to_the_backup_and_drops_later_rows() {
    drill(StackBackend::Process).await;
}

/// The same with the containers backend (pg_dump / pg_restore run in the postgres container
/// through `docker exec`). Skipped, saying why, when no Docker engine answers or the local
/// images are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_restore_goes_back_to_the_backup_and_drops_later_rows() {
    if let Err(why) = docker::connect(Duration::from_secs(3)).await {
        eprintln!("SKIP: no Docker engine answers ({why})");
        return;
    }
    let spec = StackSpec {
        backend: StackBackend::Containers,
        ..StackSpec::default()
    };
    if let Err(why) = containers::images(&spec).await {
        eprintln!("SKIP: {why} (run reference-stack/images/build.sh)");
        return;
    }
    drill(StackBackend::Containers).await;
}

/// Rows 1..10, a backup, rows 11..25, a restore: rows 1..10 are what is left.
async fn drill(backend: StackBackend) {
    let root = state_root();
    let spec = StackSpec {
        backend,
        gateways: 0,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start redis + postgres");
    let h = stack.handle();
    let db = env_of(&h.env(), "DATABASE_URL");

    match h.restore(Component::Postgres).await {
        Err(e @ ControlError::DataOp { .. }) => {
            assert!(e.to_string().contains("`backup` fault before"), "{e}")
        }
        other => panic!("a restore with no backup: {other:?}"),
    }
    match h.backup(Component::Redis).await {
        Err(e @ ControlError::DataOp { .. }) => {
            assert!(e.to_string().contains("component: postgres"), "{e}")
        }
        other => panic!("a backup of redis: {other:?}"),
    }

    psql(
        &db,
        "CREATE TABLE drill (n int primary key); INSERT INTO drill SELECT generate_series(1, 10)",
    );
    let b = h.backup(Component::Postgres).await.expect("backup");
    assert_eq!(b.backup, 1);
    assert!(b.bytes > 0, "{b:?}");
    assert!(b.file.starts_with(stack.work_dir().unwrap()), "{b:?}");
    // pg_dump's custom format starts with its magic.
    let head = std::fs::read(&b.file).unwrap();
    assert_eq!(&head[..5], b"PGDMP", "{b:?}");
    psql(&db, "INSERT INTO drill SELECT generate_series(11, 25)");
    assert_eq!(psql(&db, "SELECT count(*) FROM drill"), "25");

    let r = h.restore(Component::Postgres).await.expect("restore");
    assert_eq!(r.backup, 1);
    eprintln!(
        "{backend:?}: backup {:?}, restore {:?}",
        b.elapsed, r.elapsed
    );
    assert_eq!(psql(&db, "SELECT count(*), max(n) FROM drill"), "10|10");

    let work = stack.work_dir().unwrap();
    let pids = stack.pids();
    let id = stack.id().to_string();
    assert_eq!(
        stack.container_ids().is_empty(),
        backend == StackBackend::Process
    );
    stack.shutdown().await.expect("shutdown");
    assert!(!work.exists(), "the work dir (and its backups) is deleted");
    if backend == StackBackend::Containers {
        assert!(
            docker::containers_of_stack(&id).await.unwrap().is_empty(),
            "containers of {id} left behind"
        );
    }
    for p in pids {
        assert!(stack_support::wait_gone(p, Duration::from_secs(10)), "{p}");
    }
    assert!(stack_support::entries(root.path()).is_empty());
}

#[test]
fn restore_drill_plan_reports_the_writes_after_the_backup_as_lost_exit_0() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Backup at 3 s, restore at 9 s, writes at 10/s until 14 s: about 60 lost.
    let o = run_plan(
        "plans/restore-drill.yaml",
        &out,
        &["--set", "stack.reference.backend=process"],
        &[
            "scenarios.notes.duration=14s",
            "scenarios.chat.duration=14s",
            "faults.backup.at=3s",
            "faults.restore.at=9s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    let fs = s["failover"].as_array().unwrap();
    assert_eq!(fs.len(), 2);
    assert_eq!(
        (&fs[0]["action"], &fs[1]["action"]),
        (&"backup".into(), &"restore".into())
    );
    let f = &fs[1];
    assert_eq!(f["component"], "postgres");
    assert_eq!(f["repetitions"][0]["injected"], true, "{f:#}");
    let lost = f["lost_writes"].as_u64().unwrap();
    let acked = f["acknowledged_writes"].as_u64().unwrap();
    let rpo = f["rpo_ms"].as_f64().unwrap();
    println!("restore-drill: acknowledged {acked} lost {lost} rpo_ms {rpo}");
    // 6 s of writes at 10/s between the backup and the restore (generous: the machine is
    // loaded, and an injection may start a little late).
    assert!((40..=80).contains(&lost), "{f:#}");
    assert!(acked >= 120, "{f:#}");
    assert!(rpo > 4_000.0 && rpo <= 7_000.0, "{f:#}");
    assert_eq!(f["lost_ids"].as_array().unwrap().len(), 20);
    // The backup's and the restore's durations are on the timeline.
    let done: Vec<&serde_json::Value> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "fault_injected")
        .collect();
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done[0]["detail"].as_str().unwrap().contains("pg_dump"));
    assert!(done[1]["detail"].as_str().unwrap().contains("pg_restore"));
    assert!(done
        .iter()
        .all(|e| e["ok"] == true && e["elapsed_ms"].is_number()));
}

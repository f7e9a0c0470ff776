//! `loadgate stack up|down|status` building blocks: `up` prints KEY=VALUE lines and holds the
//! stack until its shutdown future (or SIGTERM from `down`) ends it; `status` lists it;
//! `down` stops a stack owned by another process, which cleans up after itself.

mod stack_support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack::{self, cli};
use stack_support::*;

fn services_only() -> StackSpec {
    StackSpec {
        backend: StackBackend::Process,
        gateways: 0,
        ..StackSpec::default()
    }
}

#[test]
fn down_stops_a_stack_held_by_up_in_another_process() {
    let root = state_root();
    // The real binary: `loadgate stack up` in its own process, services only.
    let mut up = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args(["stack", "up", "--backend", "process", "--gateways", "0"])
        .env("LOADGATE_STATE_DIR", root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(up.stdout.take().unwrap()).lines();
    let mut env = Vec::new();
    loop {
        let line = lines.next().expect("up printed its env").unwrap();
        if let Some((k, v)) = line.split_once('=') {
            env.push((k.to_string(), v.to_string()));
            if k == "STACK_ID" {
                break;
            }
        }
    }
    for key in [
        "REDIS_URL",
        "DATABASE_URL",
        "ADMIN_KEY",
        "USER_KEY",
        "BACKEND",
    ] {
        assert!(
            env.iter().any(|(k, _)| k == key),
            "{key} missing from {env:?}"
        );
    }
    assert_eq!(redis_cli(&env_of(&env, "REDIS_URL"), &["PING"]), "PONG");

    let opts = options(root.path());
    let status = cli::status_lines(&opts);
    assert_eq!(status.len(), 1);
    assert!(status[0].owner_alive);
    assert_eq!(status[0].id, env_of(&env, "STACK_ID"));
    let pids: Vec<u32> = status[0].children.iter().map(|c| c.1).collect();
    assert!(status[0].children.iter().all(|c| c.2), "{status:?}");
    assert!(status[0].to_string().contains("running"), "{}", status[0]);

    assert_eq!(cli::down_in(&opts, Duration::from_secs(20)).unwrap(), 1);
    // The owner shut its stack down itself (orderly) and `stack up` exited 0.
    let status = up.wait().unwrap();
    assert!(status.success(), "stack up ended with {status:?}");
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(5)),
            "pid {pid} survived `down`"
        );
    }
    assert!(stack::status_in(root.path()).is_empty());
    assert!(
        entries(root.path()).is_empty(),
        "{:?}",
        entries(root.path())
    );
}

#[tokio::test]
async fn up_returns_when_its_shutdown_future_completes() {
    let root = state_root();
    let opts = options(root.path());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spec = services_only();
    let task = tokio::spawn({
        let opts = opts.clone();
        async move {
            cli::up(&spec, &opts, async {
                let _ = rx.await;
            })
            .await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cli::status_lines(&opts).first().map(|s| s.children.len()) != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "stack did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.send(()).unwrap();
    task.await.unwrap().expect("up");
    assert!(entries(root.path()).is_empty());
}

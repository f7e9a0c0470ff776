//! Process backend: redis-server and postgres as children, reachable through the exported
//! URLs with real clients, and gone (processes and directories) after shutdown or drop.

mod stack_support;

use std::time::Duration;

use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack;
use stack_support::*;

fn services_only() -> StackSpec {
    StackSpec {
        backend: StackBackend::Process,
        gateways: 0,
        ..StackSpec::default()
    }
}

#[tokio::test]
async fn process_backend_serves_redis_and_postgres_then_leaves_nothing() {
    let root = state_root();
    let stack = stack::start(&services_only(), &options(root.path()))
        .await
        .expect("start process stack");
    assert_eq!(stack.backend(), StackBackend::Process);
    let env = stack.env();
    assert_eq!(env_of(&env, "BACKEND"), "process");
    let redis_url = env_of(&env, "REDIS_URL");
    let database_url = env_of(&env, "DATABASE_URL");
    assert!(
        redis_url.starts_with("redis://default:") && redis_url.contains("@127.0.0.1:"),
        "{redis_url}"
    );
    assert!(
        database_url.starts_with("postgres://loadgate:") && database_url.ends_with("/loadgate"),
        "{database_url}"
    );
    assert!(
        !env.iter().any(|(k, _)| k == "TARGET_URL"),
        "no gateways, no TARGET_URL"
    );
    let admin = env_of(&env, "ADMIN_KEY");
    let user = env_of(&env, "USER_KEY");
    assert!(admin.len() > 20 && user.len() > 20 && admin != user);

    // Real clients through the exported URLs.
    assert_eq!(redis_cli(&redis_url, &["PING"]), "PONG");
    assert_eq!(redis_cli(&redis_url, &["SET", "k", "v"]), "OK");
    assert_eq!(psql(&database_url, "SELECT 1"), "1");
    assert_eq!(psql(&database_url, "SELECT current_database()"), "loadgate");
    // Without the password Redis refuses.
    let no_pw = redis_url.replacen(&redis_url[8..redis_url.find('@').unwrap() + 1], "", 1);
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &no_pw, "SET", "a", "b"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NOAUTH"),
        "{no_pw}: {out:?}"
    );

    let (redis_pid, pg_pid) = stack.service_pids().expect("process backend has pids");
    let state_dir = stack.state_dir().expect("state dir");
    assert!(state_dir.join("stack.json").is_file());
    assert_eq!(stack::status_in(root.path()).len(), 1);
    assert!(stack::status_in(root.path())[0].owner_alive);

    stack.shutdown().await.expect("shutdown");
    assert!(
        wait_gone(redis_pid, Duration::from_secs(5)),
        "redis-server {redis_pid} still runs"
    );
    assert!(
        wait_gone(pg_pid, Duration::from_secs(5)),
        "postgres {pg_pid} still runs"
    );
    assert!(!state_dir.exists(), "{} not removed", state_dir.display());
    assert!(stack::status_in(root.path()).is_empty());
}

#[tokio::test]
async fn dropping_a_stack_stops_it() {
    let root = state_root();
    let stack = stack::start(&services_only(), &options(root.path()))
        .await
        .expect("start");
    let (redis_pid, pg_pid) = stack.service_pids().unwrap();
    let dir = stack.state_dir().unwrap();
    drop(stack);
    assert!(
        pid_gone(redis_pid) && pid_gone(pg_pid),
        "drop must stop the services synchronously"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_panicking_test_still_cleans_up() {
    let root = state_root();
    let spec = services_only();
    let opts = options(root.path());
    let stack = stack::start(&spec, &opts).await.expect("start");
    let (redis_pid, pg_pid) = stack.service_pids().unwrap();
    let dir = stack.state_dir().unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _stack = stack;
        panic!("boom");
    }));
    assert!(result.is_err());
    assert!(pid_gone(redis_pid) && pid_gone(pg_pid));
    assert!(!dir.exists());
}

#[tokio::test]
async fn gateways_need_the_gateway_binary_or_say_how_to_build_it() {
    if std::env::var_os("LOADGATE_GATEWAY_BIN").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let present = [
        exe.parent().unwrap(),
        exe.parent().unwrap().parent().unwrap(),
    ]
    .iter()
    .any(|d| d.join("loadgate-gateway").is_file());
    if present {
        return; // covered by the gateway tests
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 1,
        ..StackSpec::default()
    };
    let err = stack::start(&spec, &options(root.path()))
        .await
        .expect_err("no gateway binary");
    assert!(
        err.to_string().contains("cargo build -p loadgate-gateway"),
        "{err}"
    );
    assert!(
        entries(root.path()).iter().all(|e| !e.starts_with("lg-")),
        "failed start left {:?}",
        entries(root.path())
    );
}

#[tokio::test]
async fn a_private_state_root_still_works_when_postgres_must_drop_root() {
    use std::os::unix::fs::PermissionsExt;
    let root = state_root();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let stack = stack::start(&services_only(), &options(root.path()))
        .await
        .expect("start in a 0700 root");
    assert_eq!(psql(&env_of(&stack.env(), "DATABASE_URL"), "SELECT 1"), "1");
    let id = stack.id().to_string();
    let outside = std::env::temp_dir().join(format!("loadgate-pg-{id}"));
    let is_root = nix::unistd::geteuid().is_root();
    assert_eq!(
        outside.exists(),
        is_root,
        "cluster dir outside the root only when dropping root"
    );
    stack.shutdown().await.unwrap();
    assert!(!outside.exists(), "{} not removed", outside.display());
    assert!(entries(root.path()).is_empty());
}

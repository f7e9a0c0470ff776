//! Containers backend (Docker through bollard) with the locally built images: Redis and PostgreSQL
//! reachable through the exported URLs, labelled, and removed after shutdown or drop.
//! Skipped (with a printed reason) only when no Docker engine answers; missing images fail
//! with the command that builds them.

mod stack_support;

use std::time::Duration;

use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack::{self, containers, docker};
use stack_support::*;

/// None (and a printed reason) when no engine answers; panics when the images are missing.
/// With LOADGATE_REQUIRE_DOCKER set (CI, whose machines run an engine) a missing engine fails.
async fn engine_or_skip() -> Option<()> {
    if let Err(why) = docker::connect(Duration::from_secs(3)).await {
        if std::env::var_os("LOADGATE_REQUIRE_DOCKER").is_some() {
            panic!("LOADGATE_REQUIRE_DOCKER is set but no Docker engine answers: {why}");
        }
        eprintln!("SKIP: no Docker engine answers ({why})");
        return None;
    }
    let spec = StackSpec {
        backend: StackBackend::Containers,
        ..StackSpec::default()
    };
    if let Err(why) = containers::images(&spec).await {
        panic!(
            "Docker is there but the images are not: {why} (run reference-stack/images/build.sh)"
        );
    }
    Some(())
}

fn services_only() -> StackSpec {
    StackSpec {
        backend: StackBackend::Containers,
        gateways: 0,
        ..StackSpec::default()
    }
}

#[tokio::test]
async fn containers_backend_serves_redis_and_postgres_then_removes_them() {
    if engine_or_skip().await.is_none() {
        return;
    }
    let root = state_root();
    let stack = stack::start(&services_only(), &options(root.path()))
        .await
        .expect("start containers stack");
    assert_eq!(stack.backend(), StackBackend::Containers);
    let env = stack.env();
    assert_eq!(env_of(&env, "BACKEND"), "containers");
    let redis_url = env_of(&env, "REDIS_URL");
    let database_url = env_of(&env, "DATABASE_URL");
    assert_eq!(redis_cli(&redis_url, &["PING"]), "PONG");
    assert_eq!(psql(&database_url, "SELECT 1"), "1");
    assert_eq!(psql(&database_url, "SELECT current_database()"), "loadgate");

    let ids = stack.container_ids();
    assert_eq!(ids.len(), 2);
    let mut labelled = docker::containers_of_stack(stack.id()).await.unwrap();
    labelled.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        labelled,
        want,
        "both containers carry loadgate.stack={}",
        stack.id()
    );
    let id = stack.id().to_string();
    let dir = stack.state_dir().unwrap();

    stack.shutdown().await.expect("shutdown");
    assert!(
        docker::containers_of_stack(&id).await.unwrap().is_empty(),
        "containers of {id} left behind"
    );
    assert!(!dir.exists());
}

// Current-thread runtime: Drop removes the containers from a helper thread
// (stack_leaks covers Drop on a multi-thread runtime).
#[tokio::test]
async fn dropping_a_container_stack_removes_its_containers() {
    if engine_or_skip().await.is_none() {
        return;
    }
    let root = state_root();
    let stack = stack::start(&services_only(), &options(root.path()))
        .await
        .expect("start");
    let id = stack.id().to_string();
    assert_eq!(docker::containers_of_stack(&id).await.unwrap().len(), 2);
    drop(stack);
    assert!(
        docker::containers_of_stack(&id).await.unwrap().is_empty(),
        "drop left containers of {id}"
    );
}

#[tokio::test]
async fn auto_prefers_containers_when_the_images_are_there() {
    if engine_or_skip().await.is_none() {
        return;
    }
    let spec = StackSpec {
        backend: StackBackend::Auto,
        ..StackSpec::default()
    };
    assert_eq!(
        stack::resolve_backend(&spec).await.unwrap(),
        StackBackend::Containers
    );
    // A missing explicit image makes auto fall back to processes.
    let spec = StackSpec {
        backend: StackBackend::Auto,
        redis_image: Some("loadgate/does-not-exist:1".into()),
        ..StackSpec::default()
    };
    assert_eq!(
        stack::resolve_backend(&spec).await.unwrap(),
        StackBackend::Process
    );
    // And the containers backend itself says what is missing.
    let err = containers::images(&StackSpec {
        backend: StackBackend::Containers,
        ..spec
    })
    .await
    .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("loadgate/does-not-exist:1"), "{err}");
}

#[tokio::test]
async fn a_container_that_does_not_come_up_is_named_and_auto_falls_back_to_processes() {
    if engine_or_skip().await.is_none() {
        return;
    }
    // The redis image as "postgres": present, but it cannot run postgres.
    let broken = |backend| StackSpec {
        backend,
        gateways: 0,
        postgres_image: Some(containers::LOCAL_REDIS.into()),
        ..StackSpec::default()
    };
    let root = state_root();
    let mut opts = options(root.path());
    opts.ready_timeout = Duration::from_secs(20);
    let err = stack::start(&broken(StackBackend::Containers), &opts)
        .await
        .expect_err("postgres cannot start");
    assert!(
        err.to_string()
            .contains("postgres container (loadgate/redis:7-local)"),
        "{err}"
    );
    assert!(
        entries(root.path()).is_empty(),
        "failed start left {:?}",
        entries(root.path())
    );

    let stack = stack::start(&broken(StackBackend::Auto), &opts)
        .await
        .expect("auto falls back");
    assert_eq!(stack.backend(), StackBackend::Process);
    assert_eq!(psql(&env_of(&stack.env(), "DATABASE_URL"), "SELECT 1"), "1");
    let id = stack.id().to_string();
    stack.shutdown().await.unwrap();
    assert!(docker::containers_of_stack(&id).await.unwrap().is_empty());
}

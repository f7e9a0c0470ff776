//! The final leak check: a full stack (Redis, PostgreSQL, two gateways and an edge; the
//! containers backend when a Docker engine has the images, else processes) is started and
//! stopped, once through `shutdown` and once through `Drop`; afterwards no redis-server,
//! postgres or loadgate-gateway process descends from this test process, no container
//! carries this run's labels, and the state root is empty.
//! This file holds one test so nothing else runs in its process at the same time.

mod stack_support;

use std::time::{Duration, Instant};

use loadgate::spec::{EdgeStrategy, StackBackend, StackSpec};
use loadgate::stack::{self, docker};
use stack_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stacks_leave_no_process_container_or_directory() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let docker_ok = docker::connect(Duration::from_secs(3)).await.is_ok();
    let backends: &[StackBackend] = if docker_ok {
        &[StackBackend::Containers, StackBackend::Process]
    } else {
        &[StackBackend::Process]
    };
    let mut ids = Vec::new();
    for (i, backend) in backends.iter().enumerate() {
        let spec = StackSpec {
            backend: *backend,
            gateways: 2,
            edge: Some(EdgeStrategy::LeastConnections),
            ..StackSpec::default()
        };
        for via_drop in [false, true] {
            let stack = stack::start(&spec, &options(root.path()))
                .await
                .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
            assert_eq!(stack.backend(), *backend);
            let target = env_of(&stack.env(), "TARGET_URL");
            let r = http()
                .get(format!("{target}/auth/me"))
                .bearer_auth(env_of(&stack.env(), "USER_KEY"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{backend:?} #{i}");
            assert!(!descendant_servers().is_empty());
            ids.push(stack.id().to_string());
            if via_drop {
                drop(stack);
            } else {
                stack.shutdown().await.unwrap();
            }
            // Everything is waited for synchronously; allow a moment for postgres backends.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !descendant_servers().is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(
                descendant_servers(),
                vec![],
                "{backend:?} (drop: {via_drop}) left processes"
            );
        }
    }
    if docker_ok {
        for id in &ids {
            assert!(
                docker::containers_of_stack(id).await.unwrap().is_empty(),
                "containers of {id} left"
            );
        }
    }
    assert!(
        entries(root.path()).is_empty(),
        "state root not empty: {:?}",
        entries(root.path())
    );
}

//! Regions against the real reference stack (process backend): `regions: 2` starts two sets of
//! gateways; the edge routes to the primary region only, fails over to the secondary when the
//! whole primary region is killed through the stack handle, and fails back once it is started
//! again; and plans/failover-region.yaml (shortened) measures the cross-region failover RTO
//! with the fault drill, exit 0 (also with the containers backend, when Docker and the local
//! images are there).
mod stack_support;

use std::time::{Duration, Instant};

use loadgate::spec::{EdgeStrategy, Region, StackBackend, StackSpec};
use loadgate::stack::{self, Component, ComponentState, StackOp};
use stack_support::{
    env_of, http, options, output_text, run_plan, skip_without_gateway, state_root, summary,
};

/// Which upstream served a request through the edge (`x-edge-upstream`).
async fn served_by(client: &reqwest::Client, target: &str, key: &str) -> Option<String> {
    let r = client
        .get(format!("{target}/auth/me"))
        .bearer_auth(key)
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.headers()
        .get("x-edge-upstream")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_prefers_the_primary_region_fails_over_to_the_secondary_and_back() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 2,
        regions: 2,
        edge: Some(EdgeStrategy::RoundRobin),
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start a two-region stack");
    let h = stack.handle();
    let env = h.env();
    let primary: Vec<String> = env_of(&env, "PRIMARY_GATEWAY_URLS")
        .split(',')
        .map(str::to_string)
        .collect();
    let secondary: Vec<String> = env_of(&env, "SECONDARY_GATEWAY_URLS")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!((primary.len(), secondary.len()), (2, 2));
    assert_eq!(stack.gateway_pids().len(), 4);
    assert_eq!(
        h.region_gateways(Region::Primary),
        vec![Component::Gateway(1), Component::Gateway(2)]
    );
    assert_eq!(
        h.region_gateways(Region::Secondary),
        vec![Component::Gateway(3), Component::Gateway(4)]
    );
    assert!(h
        .components()
        .contains(&Component::Region(Region::Secondary)));
    let target = env_of(&env, "TARGET_URL");
    let key = env_of(&env, "USER_KEY");
    let client = http();

    // Healthy: every request stays in the primary region, spread over both instances.
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push(served_by(&client, &target, &key).await.expect("served"));
    }
    assert!(seen.iter().all(|u| primary.contains(u)), "{seen:?}");
    assert!(primary.iter().all(|p| seen.contains(p)), "{seen:?}");

    // The whole primary region killed: served by the secondary region.
    let r = h
        .act(Component::Region(Region::Primary), StackOp::Kill)
        .await
        .expect("kill the primary region");
    assert!(
        r.detail.contains("gw-1") && r.detail.contains("gw-2"),
        "{r:?}"
    );
    assert_eq!(
        h.state(Component::Region(Region::Primary)),
        Some(ComponentState::Down)
    );
    assert_eq!(h.state(Component::Gateway(3)), Some(ComponentState::Up));
    let killed = Instant::now();
    let mut first_ok = None;
    let mut after = Vec::new();
    while after.len() < 20 {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover: {after:?}"
        );
        if let Some(u) = served_by(&client, &target, &key).await {
            first_ok.get_or_insert(killed.elapsed());
            after.push(u);
        }
    }
    assert!(after.iter().all(|u| secondary.contains(u)), "{after:?}");
    eprintln!(
        "first success through the secondary {:?} after the region kill",
        first_ok
    );

    // Started again: the edge fails back to the primary region (its health check).
    h.act(Component::Region(Region::Primary), StackOp::Start)
        .await
        .expect("start the primary region");
    let started = Instant::now();
    loop {
        let u = served_by(&client, &target, &key).await;
        if u.as_ref().is_some_and(|u| primary.contains(u)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no failback: last {u:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("failed back after {:?}", started.elapsed());
    let mut back = Vec::new();
    for _ in 0..20 {
        back.push(served_by(&client, &target, &key).await.expect("served"));
    }
    assert!(back.iter().all(|u| primary.contains(u)), "{back:?}");

    let pids = stack.pids();
    stack.shutdown().await.expect("shutdown");
    for p in pids {
        assert!(stack_support::wait_gone(p, Duration::from_secs(10)), "{p}");
    }
    assert!(stack_support::entries(root.path()).is_empty());
}

#[test]
fn failover_region_plan_measures_the_cross_region_rto_exit_0() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run_plan(
        "plans/failover-region.yaml",
        &out,
        &["--set", "stack.reference.backend=process"],
        &[
            "stack.reference.gateways=1",
            "scenarios.chat.duration=22s",
            "scenarios.notes.duration=22s",
            "faults.primary-region-down.at=4s",
            "faults.primary-region-down.every=9s",
            "faults.primary-region-down.times=2",
            "faults.primary-region-down.restart_after=4s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    let f = &s["failover"][0];
    assert_eq!(f["fault"], "primary-region-down");
    assert_eq!(f["action"], "kill");
    assert_eq!(f["component"], "region[primary]");
    let reps = f["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), 2);
    for r in reps {
        assert_eq!(r["injected"], true, "{r:#}");
        assert!(r["detail"].as_str().unwrap().contains("gw-1"), "{r:#}");
        assert!(r["fault_recovered_s"].is_number(), "{r:#}");
    }
    let rto = f["rto_ms"].as_f64().unwrap();
    assert!(rto < 15_000.0, "{f:#}");
    assert!(f["lost_writes"].is_null(), "{f:#}");
    println!(
        "failover-region: rto_ms per repetition {:?}, median {}",
        reps.iter()
            .map(|r| r["measured"]["rto_ms"].to_string())
            .collect::<Vec<_>>(),
        f["rto"]["median_ms"]
    );
}

/// The same drill with the containers backend (Redis and PostgreSQL in containers; the
/// gateways and the edge are processes in every backend, so regions work the same).
/// Skipped, saying why, when no Docker engine answers or the local images are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_region_plan_with_the_containers_backend_exit_0() {
    if skip_without_gateway() {
        return;
    }
    if let Err(why) = loadgate::stack::docker::connect(Duration::from_secs(3)).await {
        eprintln!("SKIP: no Docker engine answers ({why})");
        return;
    }
    let spec = StackSpec {
        backend: StackBackend::Containers,
        ..StackSpec::default()
    };
    if let Err(why) = loadgate::stack::containers::images(&spec).await {
        eprintln!("SKIP: {why} (run reference-stack/images/build.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = tokio::task::spawn_blocking(move || {
        let o = run_plan(
            "plans/failover-region.yaml",
            &out,
            &["--set", "stack.reference.backend=containers"],
            &[
                "stack.reference.gateways=1",
                "scenarios.chat.duration=14s",
                "scenarios.notes.duration=14s",
                "faults.primary-region-down.at=4s",
                "faults.primary-region-down.times=1",
                "faults.primary-region-down.restart_after=4s",
            ],
        );
        (o, out)
    })
    .await
    .unwrap();
    let (o, out) = o;
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    let f = &s["failover"][0];
    assert_eq!(f["component"], "region[primary]");
    assert_eq!(f["repetitions"][0]["injected"], true, "{f:#}");
    assert!(f["rto_ms"].as_f64().unwrap() < 15_000.0, "{f:#}");
    drop(dir);
}

//! The reference stack with its fault proxies (StackSpec::fault_proxy): the gateways reach
//! Redis and PostgreSQL through them, and the stack handle's network faults act on live
//! gateway traffic (a latency toxic slows the writes that need PostgreSQL, a down Redis
//! proxy refuses, healing restores both).
mod stack_support;

use std::time::{Duration, Instant};

use loadgate::spec::fault::{NetworkFault, Toxic, ToxicKind};
use loadgate::spec::{StackBackend, StackSpec};
use loadgate::stack::{self, Component, ControlError};
use stack_support::*;

async fn post_note(client: &reqwest::Client, target: &str, key: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = client
        .post(format!("{target}/v1/notes"))
        .bearer_auth(key)
        .json(&serde_json::json!({"id": uuid::Uuid::new_v4().to_string(), "text": "x"}))
        .send()
        .await
        .expect("POST /v1/notes");
    (r.status().as_u16(), t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_act_on_the_gateways_traffic_through_the_proxies() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        fault_proxy: true,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start process stack with proxies");
    let h = stack.handle();
    let env = h.env();
    let target = env_of(&env, "TARGET_URL");
    let key = env_of(&env, "USER_KEY");
    let redis_proxy = env_of(&env, "REDIS_PROXY_URL");
    assert_ne!(redis_proxy, env_of(&env, "REDIS_URL"));
    assert_eq!(redis_cli(&redis_proxy, &["PING"]), "PONG");
    let pg = h.proxy(Component::Postgres).expect("postgres proxy");
    assert!(
        pg.stats().accepted > 0,
        "the gateway connects through the proxy"
    );
    assert!(h.proxy(Component::Gateway(1)).is_none());

    let client = http();
    let (status, _) = post_note(&client, &target, &key).await;
    assert_eq!(status, 201);

    // 300 ms on PostgreSQL's answers: every write waits for at least one of them.
    let fault = NetworkFault::Toxics(vec![Toxic::new(ToxicKind::Latency {
        latency: Duration::from_millis(300),
        jitter: Duration::ZERO,
    })]);
    let applied = h.network_fault(Component::Postgres, &fault).await.unwrap();
    let (status, took) = post_note(&client, &target, &key).await;
    assert_eq!(status, 201);
    assert!(took >= Duration::from_millis(290), "slowed: {took:?}");
    h.heal(Component::Postgres, &applied).await.unwrap();
    let (_, took) = post_note(&client, &target, &key).await;
    assert!(took < Duration::from_millis(250), "healed: {took:?}");

    // Redis down: the proxy refuses; up: it answers again.
    let down = h
        .network_fault(Component::Redis, &NetworkFault::Down)
        .await
        .unwrap();
    let addr = h.proxy(Component::Redis).unwrap().listen_addr();
    assert!(std::net::TcpStream::connect(addr).is_err());
    h.heal(Component::Redis, &down).await.unwrap();
    assert_eq!(redis_cli(&redis_proxy, &["PING"]), "PONG");

    match h.network_fault(Component::Gateway(1), &fault).await {
        Err(e @ ControlError::NoProxy { .. }) => {
            assert!(e.to_string().contains("redis, postgres"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    stack.shutdown().await.expect("shutdown");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the proxy is gone with the stack"
    );
    assert!(entries(root.path()).is_empty());
}

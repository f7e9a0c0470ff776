//! The reference gateway started by the stack, against real Redis and PostgreSQL (process
//! backend): every endpoint, authentication, shedding under overload, job retries and the
//! dead-letter queue, the worker autoscaler, and the edge taking a killed instance out.
//! Skipped with a printed reason when the gateway binary is not built
//! (`cargo build -p loadgate-gateway`; LOADGATE_REQUIRE_GATEWAY=1 makes that a failure).

mod stack_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use loadgate::spec::{EdgeStrategy, StackBackend, StackSpec};
use loadgate::stack::{self, RunningStack};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stack_support::*;

struct Gw {
    stack: Option<RunningStack>,
    _root: tempfile::TempDir,
    target: String,
    user: String,
    admin: String,
    http: reqwest::Client,
}

impl Gw {
    async fn start(gateways: u32, edge: Option<EdgeStrategy>, env: &[(&str, &str)]) -> Gw {
        let root = state_root();
        let spec = StackSpec {
            backend: StackBackend::Process,
            gateways,
            edge,
            gateway_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..StackSpec::default()
        };
        let stack = stack::start(&spec, &options(root.path()))
            .await
            .expect("start stack with gateways");
        let e = stack.env();
        Gw {
            target: env_of(&e, "TARGET_URL"),
            user: env_of(&e, "USER_KEY"),
            admin: env_of(&e, "ADMIN_KEY"),
            stack: Some(stack),
            _root: root,
            http: http(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target)
    }

    async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut rb = self.http.get(self.url(path));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut rb = self.http.request(method, self.url(path)).json(&body);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(&self.user), body)
            .await
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not in /metrics"))
    }

    async fn wait_job(&self, id: &str, done: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job: Value = self
                .get(&format!("/v1/jobs/{id}"), Some(&self.user))
                .await
                .json()
                .await
                .unwrap();
            if done.contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not reach {done:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        let stack = self.stack.take().unwrap();
        let pids = stack.pids();
        stack.shutdown().await.expect("shutdown");
        for pid in pids {
            assert!(
                wait_gone(pid, Duration::from_secs(5)),
                "pid {pid} outlived shutdown"
            );
        }
    }
}

#[tokio::test]
async fn every_endpoint_against_real_redis_and_postgres() {
    if skip_without_gateway() {
        return;
    }
    let gw = Gw::start(1, None, &[]).await;
    let (user, admin) = (gw.user.clone(), gw.admin.clone());

    assert_eq!(gw.get("/health", None).await.status(), StatusCode::OK);
    assert_eq!(gw.get("/ready", None).await.status(), StatusCode::OK);
    let metrics = gw.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("gateway_info"), "{metrics}");

    // Auth: who the key is; no key 401; unknown key 401; user key on admin 403.
    let me: Value = gw.get("/auth/me", Some(&user)).await.json().await.unwrap();
    assert_eq!(me["role"], "user");
    let me: Value = gw.get("/auth/me", Some(&admin)).await.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(
        gw.get("/auth/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        gw.get("/auth/me", Some("lg_user_nope")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        gw.get("/admin/state", Some(&user)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        gw.post("/v1/chat", json!({"prompt": "x"})).await.status(),
        StatusCode::OK
    );
    let no_key = gw
        .send(
            reqwest::Method::POST,
            "/v1/chat",
            None,
            json!({"prompt": "x"}),
        )
        .await;
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);

    // Chat: a miss, then a cache hit (Redis), with the model version header.
    let prompt = format!("stack test {}", uuid::Uuid::new_v4());
    let first = gw.post("/v1/chat", json!({"prompt": prompt})).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().contains_key("x-model-version"));
    assert_eq!(first.headers()["x-cache"], "miss");
    let second = gw.post("/v1/chat", json!({"prompt": prompt})).await;
    assert_eq!(second.headers()["x-cache"], "hit");
    let body: Value = second.json().await.unwrap();
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );

    // Jobs: queued in Redis, processed by a worker, state in Postgres.
    let r = gw
        .post("/v1/jobs", json!({"kind": "import", "work_ms": 5}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = gw
        .wait_job(&id, &["succeeded"], Duration::from_secs(15))
        .await;
    assert_eq!(job["kind"], "import");
    assert_eq!(
        gw.get(&format!("/v1/jobs/{}", uuid::Uuid::new_v4()), Some(&user))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Notes: acknowledged after the commit, read back.
    let note = uuid::Uuid::new_v4().to_string();
    let r = gw
        .post("/v1/notes", json!({"id": note, "text": "hello"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let back: Value = gw
        .get(&format!("/v1/notes/{note}"), Some(&user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["text"], "hello");

    // Admin.
    let state: Value = gw
        .get("/admin/state", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["routing"]["active"], "v1", "{state}");
    let r = gw
        .send(
            reqwest::Method::PUT,
            "/admin/routing",
            Some(&admin),
            json!({"canary_weight": 100}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = gw
        .post(
            "/v1/chat",
            json!({"prompt": format!("canary {}", uuid::Uuid::new_v4())}),
        )
        .await;
    assert_eq!(
        r.headers()["x-model-version"],
        "v2",
        "canary weight 100 routes to v2"
    );
    let dlq: Value = gw
        .get("/admin/dlq", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(dlq["depth"].is_number(), "{dlq}");

    gw.stop().await;
}

#[tokio::test]
async fn overload_is_shed_with_429_or_503_and_the_gateway_survives() {
    if skip_without_gateway() {
        return;
    }
    let gw = Gw::start(
        1,
        None,
        &[
            ("GATEWAY_INFLIGHT_LIMIT", "4"),
            ("GATEWAY_MODEL_V1_BASE_MS", "300"),
            ("GATEWAY_QUEUE_LIMIT", "3"),
            ("GATEWAY_WORKERS_MIN", "1"),
            ("GATEWAY_WORKERS_MAX", "1"),
        ],
    )
    .await;
    let pid = gw.stack.as_ref().unwrap().gateway_pids()[0];

    // 40 concurrent uncached chats against an in-flight limit of 4.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat"), gw.user.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": format!("shed {i} {}", uuid::Uuid::new_v4())}))
                .send()
                .await
                .unwrap();
            (r.status(), r.headers().contains_key("retry-after"))
        }));
    }
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (status, retry_after) = t.await.unwrap();
        *by_status.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry_after, "503 without Retry-After");
        }
    }
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "nothing shed: {by_status:?}"
    );
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= 4,
        "nothing served: {by_status:?}"
    );
    assert_eq!(
        by_status
            .keys()
            .filter(|s| **s != 200 && **s != 503)
            .count(),
        0,
        "{by_status:?}"
    );

    // A full job queue answers 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            gw.post("/v1/jobs", json!({"kind": "slow", "work_ms": 2000}))
                .await
                .status(),
        );
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(gw.metric("gateway_shed_requests_total").await > 0.0);

    // Still alive and serving.
    assert!(!pid_gone(pid), "the gateway crashed under overload");
    assert_eq!(gw.get("/health", None).await.status(), StatusCode::OK);
    assert_eq!(
        gw.post("/v1/chat", json!({"prompt": "after"}))
            .await
            .status(),
        StatusCode::OK
    );
    gw.stop().await;
}

#[tokio::test]
async fn failing_jobs_are_retried_then_dead_lettered() {
    if skip_without_gateway() {
        return;
    }
    let gw = Gw::start(
        1,
        None,
        &[
            ("GATEWAY_JOB_MAX_ATTEMPTS", "3"),
            ("GATEWAY_JOB_BACKOFF_BASE_MS", "50"),
        ],
    )
    .await;
    let flaky = gw
        .post(
            "/v1/jobs",
            json!({"kind": "flaky", "fail_times": 2, "work_ms": 1}),
        )
        .await;
    let flaky = flaky.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let poison = gw
        .post("/v1/jobs", json!({"kind": "poison", "work_ms": 1}))
        .await;
    let poison = poison.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let job = gw
        .wait_job(&flaky, &["succeeded", "dead"], Duration::from_secs(20))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["attempts"], 3,
        "two planned failures then success: {job}"
    );
    let job = gw
        .wait_job(&poison, &["dead"], Duration::from_secs(20))
        .await;
    assert_eq!(job["attempts"], 3, "{job}");
    let dlq: Value = gw
        .get("/admin/dlq", Some(&gw.admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        dlq["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == &json!(poison)),
        "{dlq}"
    );
    assert!(
        !dlq["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == &json!(flaky)),
        "{dlq}"
    );
    assert!(gw.metric("gateway_jobs_retried_total").await >= 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn autoscaler_scales_out_with_the_queue_and_back_in_as_it_drains() {
    if skip_without_gateway() {
        return;
    }
    let gw = Gw::start(
        1,
        None,
        &[
            ("GATEWAY_WORKERS_MIN", "1"),
            ("GATEWAY_WORKERS_MAX", "4"),
            ("GATEWAY_AUTOSCALE_TARGET", "2"),
            ("GATEWAY_AUTOSCALE_INTERVAL_MS", "200"),
            ("GATEWAY_AUTOSCALE_STABILIZATION_MS", "1000"),
        ],
    )
    .await;
    assert_eq!(gw.metric("gateway_workers_current").await, 1.0);
    for _ in 0..30 {
        let r = gw
            .post("/v1/jobs", json!({"kind": "scale", "work_ms": 150}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut peak = 1.0;
    while Instant::now() < deadline && peak < 4.0 {
        peak = f64::max(peak, gw.metric("gateway_workers_current").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak >= 3.0,
        "workers peaked at {peak} with 30 queued jobs, target 2 per worker"
    );
    // Drain, then the stabilization window, then back to the minimum.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (depth, workers) = (
            gw.metric("gateway_queue_depth").await,
            gw.metric("gateway_workers_current").await,
        );
        if depth == 0.0 && workers == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not scale back in: depth {depth}, workers {workers}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_edge_takes_a_killed_instance_out() {
    if skip_without_gateway() {
        return;
    }
    let gw = Gw::start(
        2,
        Some(EdgeStrategy::RoundRobin),
        &[("EDGE_HEALTH_INTERVAL_MS", "200")],
    )
    .await;
    let stack = gw.stack.as_ref().unwrap();
    let env = stack.env();
    let edge_url = env_of(&env, "EDGE_URL");
    assert_eq!(gw.target, edge_url, "TARGET_URL points at the edge");
    let upstreams: Vec<String> = env_of(&env, "GATEWAY_URLS")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(upstreams.len(), 2);
    assert!(stack.edge_pid().is_some());

    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let r = gw.get("/auth/me", Some(&gw.user)).await;
        assert_eq!(r.status(), StatusCode::OK);
        seen.insert(r.headers()["x-edge-upstream"].to_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "round-robin over both: {seen:?}");

    // SIGKILL gw-1: the edge retries on the other upstream and marks gw-1 down.
    let gw1 = stack.gateway_pids()[0];
    loadgate::stack::child::signal_pid(gw1 as i32, nix::sys::signal::Signal::SIGKILL);
    assert!(wait_gone(gw1, Duration::from_secs(5)));
    let mut failures = 0;
    let mut served_by = BTreeSet::new();
    for _ in 0..20 {
        let r = gw.get("/auth/me", Some(&gw.user)).await;
        if r.status() == StatusCode::OK {
            served_by.insert(r.headers()["x-edge-upstream"].to_str().unwrap().to_string());
        } else {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 0,
        "the edge let failures through after an instance died"
    );
    assert_eq!(
        served_by,
        BTreeSet::from([upstreams[1].clone()]),
        "only gw-2 serves"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ups: Value = gw.get("/edge/upstreams", None).await.json().await.unwrap();
    let gw1_entry = ups["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["url"] == json!(upstreams[0]))
        .cloned();
    assert_eq!(
        gw1_entry.as_ref().map(|u| u["up"].clone()),
        Some(json!(false)),
        "{ups}"
    );
    gw.stop().await;
}

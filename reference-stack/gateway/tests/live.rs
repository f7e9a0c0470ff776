//! The gateway and its edge against real Redis and PostgreSQL child processes: auth, chat
//! cache, notes, jobs with retries and the DLQ, admin routing and faults, the autoscaler,
//! load shedding, rate limits, edge balancing and failover, graceful shutdown.
//! One stack serves every section (starting Postgres costs seconds); each section asserts
//! its own feature.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct T {
    c: Client,
    base: String,
}

impl T {
    async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.c.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
    async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, key, None).await
    }
    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path, key, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> Value {
        let r = self
            .req(reqwest::Method::PUT, path, Some(ADMIN_KEY), Some(body))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "PUT {path}");
        r.json().await.unwrap()
    }
    async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

async fn wait_for<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn auth_and_ready(t: &T) {
    assert_eq!(t.get("/ready", None).await.status(), StatusCode::OK);
    let me: Value = t
        .get("/auth/me", Some(USER_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"key_id": "user", "role": "user"}));
    let me: Value = t
        .get("/auth/me", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(
        t.get("/auth/me", Some("nope")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.get("/auth/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn chat_cache(t: &T) {
    let body = json!({"prompt": "what is the p95 budget?"});
    let a = t.post("/v1/chat", Some(USER_KEY), body.clone()).await;
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(a.headers()["x-cache"], "miss");
    assert_eq!(a.headers()["x-model-version"], "v1");
    assert_eq!(a.headers()["x-gateway-instance"], "gw-a");
    let a: Value = a.json().await.unwrap();
    assert!(a["cost_usd"].as_f64().unwrap() > 0.0);
    let b = t.post("/v1/chat", Some(USER_KEY), body).await;
    assert_eq!(b.headers()["x-cache"], "hit");
    let b: Value = b.json().await.unwrap();
    assert_eq!(a["output"], b["output"]);
    assert_eq!(b["cost_usd"], 0.0);
    assert!(t.metric("gateway_cache_hits_total").await >= 1.0);
    assert!(t.metric("gateway_tokens_total").await > 0.0);
    let bad = t.post("/v1/chat", Some(USER_KEY), json!({"nope": 1})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

async fn notes(t: &T) {
    let id = uuid::Uuid::new_v4();
    let r = t
        .post(
            "/v1/notes",
            Some(USER_KEY),
            json!({"id": id, "text": "durable"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r: Value = t
        .get(&format!("/v1/notes/{id}"), Some(USER_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["text"], "durable");
    let n = uuid::Uuid::new_v4();
    let r = t
        .post("/v1/notes", Some(USER_KEY), json!({"id": n, "text": 42}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let bad = t
        .post("/v1/notes", Some(USER_KEY), json!({"id": "x", "text": "y"}))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let other = uuid::Uuid::new_v4();
    let r = t.get(&format!("/v1/notes/{other}"), Some(USER_KEY)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn submit(t: &T, body: Value) -> String {
    let r = t.post("/v1/jobs", Some(USER_KEY), body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn job_state(t: &T, id: &str) -> Value {
    t.get(&format!("/v1/jobs/{id}"), Some(USER_KEY))
        .await
        .json()
        .await
        .unwrap()
}

async fn jobs_retries_and_dlq(t: &T, other: &T) {
    let ok = submit(t, json!({"kind": "import"})).await;
    let flaky = submit(t, json!({"kind": "import", "fail_times": 2})).await;
    let poison = submit(t, json!({"kind": "poison"})).await;
    for (id, state) in [(&ok, "succeeded"), (&flaky, "succeeded"), (&poison, "dead")] {
        wait_for(
            &format!("job {id} {state}"),
            Duration::from_secs(10),
            || async { job_state(t, id).await["state"] == state },
        )
        .await;
    }
    assert_eq!(job_state(t, &ok).await["attempts"], 1);
    assert_eq!(job_state(t, &ok).await["status"], "done");
    assert_eq!(job_state(t, &poison).await["status"], "failed");
    let f = job_state(t, &flaky).await;
    assert_eq!(f["attempts"], 3);
    assert_eq!(f["last_error"], "planned failure 2 of 2");
    let p = job_state(t, &poison).await;
    assert_eq!(p["attempts"], 3);
    let dlq: Value = t
        .get("/admin/dlq", Some(ADMIN_KEY))
        .await
        .json()
        .await
        .unwrap();
    assert!(dlq["ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == &json!(poison)));
    // Both instances' workers share the queue: add their counters.
    let sum = |name: &'static str| async move { t.metric(name).await + other.metric(name).await };
    assert!(sum("gateway_jobs_retried_total").await >= 4.0);
    assert!(sum("gateway_jobs_dead_total").await >= 1.0);
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        t.get(&format!("/v1/jobs/{missing}"), Some(USER_KEY))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn admin_routing_and_faults(t: &T) {
    assert_eq!(
        t.get("/admin/state", Some(USER_KEY)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.get("/admin/state", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let s = t.put("/admin/routing", json!({"canary_weight": 100})).await;
    assert_eq!(s["routing"]["canary_weight"], 100);
    let r = t
        .post("/v1/chat", Some(USER_KEY), json!({"prompt": "canary"}))
        .await;
    assert_eq!(r.headers()["x-model-version"], "v2");
    t.put(
        "/admin/routing",
        json!({"canary_weight": 0, "active": "v2"}),
    )
    .await;
    let r = t
        .post("/v1/chat", Some(USER_KEY), json!({"prompt": "green"}))
        .await;
    assert_eq!(r.headers()["x-model-version"], "v2");
    t.put("/admin/faults/v2", json!({"error_rate": 1.0})).await;
    let r = t
        .post("/v1/chat", Some(USER_KEY), json!({"prompt": "green"}))
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers()["x-model-version"], "v2");
    let r = t
        .req(
            reqwest::Method::PUT,
            "/admin/faults/v3",
            Some(ADMIN_KEY),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.put(
        "/admin/faults/v2",
        json!({"error_rate": 0.0, "latency_ms": 0}),
    )
    .await;
    let s = t.put("/admin/routing", json!({"active": "v1"})).await;
    assert_eq!(s["faults"], json!({}));
    let r = t
        .post("/v1/chat", Some(USER_KEY), json!({"prompt": "blue"}))
        .await;
    assert_eq!(r.headers()["x-model-version"], "v1");

    // Cost, quality and sub-millisecond latency knobs on v2. A cache hit costs nothing, so
    // the second ask of the same prompt differs only in `max_tokens` (another cache key, the
    // same completion): its cost is the first's times the factor.
    let ask = |body: Value| async move {
        let r = t.post("/v1/chat", Some(USER_KEY), body).await;
        let q: f64 = r.headers()["x-quality-score"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["quality"].as_f64().unwrap(), q, "{body}");
        (body["cost_usd"].as_f64().unwrap(), q)
    };
    let (cost, quality) = ask(json!({"prompt": "knobs", "model": "v2"})).await;
    assert!(
        cost > 0.0 && (0.8..=0.99).contains(&quality),
        "{cost} {quality}"
    );
    let s = t
        .put(
            "/admin/faults/v2",
            json!({"latency_us": 400, "cost_factor": 3.0, "quality_drop": 0.5}),
        )
        .await;
    assert_eq!(s["faults"]["v2"]["latency_us"], 400, "{s}");
    let (cost3, low) = ask(json!({"prompt": "knobs", "model": "v2", "max_tokens": 1000})).await;
    assert!((cost3 - 3.0 * cost).abs() < 1e-12, "{cost3} vs 3 x {cost}");
    assert!(
        (low - (quality - 0.5)).abs() < 0.011,
        "{low} vs {quality} - 0.5"
    );
    let (hit, _) = ask(json!({"prompt": "knobs", "model": "v2"})).await;
    assert_eq!(hit, 0.0, "a cache hit costs nothing, whatever the factor");
    let r = t
        .req(
            reqwest::Method::PUT,
            "/admin/faults/v2",
            Some(ADMIN_KEY),
            Some(json!({"quality_drop": 2.0})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.req(
        reqwest::Method::DELETE,
        "/admin/faults/v2",
        Some(ADMIN_KEY),
        None,
    )
    .await;
}

async fn autoscaler(t: &T) {
    for _ in 0..30 {
        submit(t, json!({"kind": "batch", "work_ms": 150})).await;
    }
    wait_for("scale up", Duration::from_secs(5), || async {
        t.metric("gateway_workers_current").await >= 3.0
    })
    .await;
    wait_for(
        "scale down to min after the window",
        Duration::from_secs(20),
        || async { t.metric("gateway_workers_current").await == 1.0 },
    )
    .await;
    assert!(
        t.metric("gateway_autoscaler_decisions_total{direction=\"up\"}")
            .await
            >= 1.0
    );
    assert!(
        t.metric("gateway_autoscaler_decisions_total{direction=\"down\"}")
            .await
            >= 1.0
    );
    // admin bounds apply on the next evaluation
    t.put("/admin/workers", json!({"min": 2, "max": 2})).await;
    wait_for("min 2", Duration::from_secs(5), || async {
        t.metric("gateway_workers_current").await == 2.0
    })
    .await;
    t.put("/admin/workers", json!({"min": 1, "max": 4})).await;
}

async fn rate_limit(t: &T) {
    let mut limited = 0;
    for i in 0..60 {
        let r = t
            .post(
                "/v1/chat",
                Some(ADMIN_KEY),
                json!({"prompt": format!("rl {}", i % 2)}),
            )
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers()["retry-after"], "1");
            limited += 1;
        }
    }
    assert!(limited > 0, "no 429 from 60 quick requests at 20/s");
}

async fn shedding(b: &T) {
    let futs: Vec<_> = (0..6)
        .map(|i| {
            b.post(
                "/v1/chat",
                Some(USER_KEY),
                json!({"prompt": format!("slow {i}")}),
            )
        })
        .collect();
    let rs = futures_util::future::join_all(futs).await;
    let shed: Vec<_> = rs
        .iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!shed.is_empty(), "in-flight limit 2 never shed");
    assert!(shed.iter().all(|r| r.headers()["retry-after"] == "1"));
    assert!(rs.iter().any(|r| r.status() == StatusCode::OK));
    let r = b
        .post("/v1/jobs", Some(USER_KEY), json!({"kind": "x"}))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(
        b.metric("gateway_shed_requests_total{reason=\"inflight\"}")
            .await
            >= 1.0
    );
}

async fn edge_failover(e: &T, gw_b: &mut Gateway) {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let r = e.get("/auth/me", Some(USER_KEY)).await;
        assert_eq!(r.status(), StatusCode::OK);
        seen.insert(
            r.headers()["x-gateway-instance"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.len(), 2, "round-robin reached {seen:?}");
    assert!(gw_b.stop(), "gw-b did not shut down cleanly on SIGTERM");
    for _ in 0..6 {
        let r = e.get("/auth/me", Some(USER_KEY)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-gateway-instance"], "gw-a");
    }
    let st: Value = e.get("/edge/upstreams", None).await.json().await.unwrap();
    let ups = st["upstreams"].as_array().unwrap();
    assert_eq!(ups.iter().filter(|u| u["up"] == true).count(), 1, "{st}");
    assert!(e.metric("edge_upstream_up").await == 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gateway_end_to_end() {
    let Some(s) = Services::start() else { return };
    let mut gw_a = Gateway::start(
        s.dir.path(),
        "gw-a",
        "gateway",
        &gateway_env(
            &s,
            "gw-a",
            &[
                ("GATEWAY_MODEL_V1_BASE_MS", "2"),
                ("GATEWAY_MODEL_V2_BASE_MS", "2"),
                ("GATEWAY_RATE_LIMIT_PER_SEC", "20"),
                ("GATEWAY_JOB_BACKOFF_BASE_MS", "50"),
                ("GATEWAY_JOB_WORK_MS", "5"),
                ("GATEWAY_AUTOSCALE_INTERVAL_MS", "200"),
                ("GATEWAY_AUTOSCALE_STABILIZATION_MS", "1000"),
                ("GATEWAY_AUTOSCALE_TARGET", "2"),
                ("GATEWAY_ADMIN_REFRESH_MS", "100"),
            ],
        ),
    );
    let mut gw_b = Gateway::start(
        s.dir.path(),
        "gw-b",
        "gateway",
        &gateway_env(
            &s,
            "gw-b",
            &[
                ("GATEWAY_INFLIGHT_LIMIT", "2"),
                ("GATEWAY_QUEUE_LIMIT", "0"),
                ("GATEWAY_MODEL_V1_BASE_MS", "400"),
                ("GATEWAY_MODEL_V2_BASE_MS", "400"),
            ],
        ),
    );
    let c = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let a = T {
        c: c.clone(),
        base: gw_a.base.clone(),
    };
    let b = T {
        c: c.clone(),
        base: gw_b.base.clone(),
    };
    auth_and_ready(&a).await;
    chat_cache(&a).await;
    notes(&a).await;
    jobs_retries_and_dlq(&a, &b).await;
    admin_routing_and_faults(&a).await;
    autoscaler(&a).await;
    rate_limit(&a).await;
    shedding(&b).await;

    let mut edge = Gateway::start(
        s.dir.path(),
        "edge",
        "edge",
        &[
            ("EDGE_UPSTREAMS", format!("{},{}", gw_a.base, gw_b.base)),
            ("EDGE_STRATEGY", "round-robin".into()),
            ("EDGE_HEALTH_INTERVAL_MS", "100".into()),
        ],
    );
    let e = T {
        c,
        base: edge.base.clone(),
    };
    edge_failover(&e, &mut gw_b).await;
    assert!(edge.stop(), "edge did not shut down cleanly");
    assert!(gw_a.stop(), "gw-a did not shut down cleanly");
}

#[test]
fn exits_non_zero_naming_redis_when_it_is_unreachable() {
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgate-gateway"))
        .env_clear()
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")
        .env("GATEWAY_STARTUP_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis unreachable at start"), "{err}");
}

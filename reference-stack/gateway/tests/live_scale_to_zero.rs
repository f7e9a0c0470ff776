//! Scale to zero against real Redis and PostgreSQL: an idle gateway releases its connections
//! and goes cold (`/health` 200 with `x-gateway-cold`, `/ready` 503, traffic 503 +
//! `Retry-After`), `POST /lifecycle/wake` takes the start-up path again after the boot delay,
//! and behind an edge with `EDGE_SCALE_TO_ZERO=true` a request to the cold instance is held
//! and served (`x-cold-start: true`).

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

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

/// Postgres connections other than the asking one.
async fn pg_connections(url: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let h = tokio::spawn(conn);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(c);
    let _ = h.await;
    n
}

/// Redis clients other than the asking one.
async fn redis_clients(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        - 1
}

async fn chat(c: &Client, base: &str, prompt: &str) -> reqwest::Response {
    c.post(format!("{base}/v1/chat"))
        .header("x-api-key", USER_KEY)
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .unwrap()
}

async fn metric(c: &Client, base: &str, name: &str) -> f64 {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_goes_cold_and_wakes_on_the_real_start_up_path() {
    let Some(s) = Services::start() else { return };
    let mut gw = Gateway::start(
        s.dir.path(),
        "gw-z",
        "gateway",
        &gateway_env(
            &s,
            "gw-z",
            &[
                ("GATEWAY_IDLE_TIMEOUT_MS", "800"),
                ("GATEWAY_BOOT_DELAY_MS", "300"),
                ("GATEWAY_MODEL_V1_BASE_MS", "2"),
                ("GATEWAY_MODEL_V2_BASE_MS", "2"),
            ],
        ),
    );
    let c = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = gw.base.clone();
    // Warm: served, holding connections.
    assert_eq!(chat(&c, &base, "warm").await.status(), StatusCode::OK);
    assert!(pg_connections(&s.database_url()).await > 0);
    assert!(redis_clients(&s.redis_url()).await > 0);

    // Idle: cold, every connection released.
    wait_for(
        "the gateway to go cold",
        Duration::from_secs(10),
        || async {
            c.get(format!("{base}/ready"))
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::SERVICE_UNAVAILABLE
        },
    )
    .await;
    let health = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["x-gateway-cold"], "true");
    let refused = chat(&c, &base, "while cold").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["x-gateway-cold"], "true");
    assert_eq!(refused.headers()["retry-after"], "1");
    wait_for(
        "Postgres connections to close",
        Duration::from_secs(5),
        || async { pg_connections(&s.database_url()).await == 0 },
    )
    .await;
    wait_for(
        "Redis connections to close",
        Duration::from_secs(5),
        || async { redis_clients(&s.redis_url()).await == 0 },
    )
    .await;
    assert_eq!(metric(&c, &base, "gateway_lifecycle_warm").await, 0.0);
    assert_eq!(metric(&c, &base, "gateway_idle_stops_total").await, 1.0);

    // Wake: the boot delay, then the start-up path.
    let woke: Value = c
        .post(format!("{base}/lifecycle/wake"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(woke["started"], true, "{woke}");
    assert!(woke["took_ms"].as_u64().unwrap() >= 300, "{woke}");
    assert_eq!(chat(&c, &base, "after wake").await.status(), StatusCode::OK);
    assert_eq!(metric(&c, &base, "gateway_cold_starts_total").await, 1.0);
    let again: Value = c
        .post(format!("{base}/lifecycle/wake"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["started"], false,
        "a warm instance is not started twice"
    );

    // Behind the activator: the request that finds it cold is held and served.
    let mut edge = Gateway::start(
        s.dir.path(),
        "edge-z",
        "edge",
        &[
            ("EDGE_UPSTREAMS", base.clone()),
            ("EDGE_HEALTH_INTERVAL_MS", "100".into()),
            ("EDGE_SCALE_TO_ZERO", "true".into()),
            ("EDGE_HOLD_TIMEOUT_MS", "10000".into()),
        ],
    );
    let e = edge.base.clone();
    wait_for(
        "the gateway to go cold again",
        Duration::from_secs(10),
        || async {
            c.get(format!("{base}/ready"))
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::SERVICE_UNAVAILABLE
        },
    )
    .await;
    let t0 = Instant::now();
    let held = chat(&c, &e, "through the edge").await;
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(held.headers()["x-cold-start"], "true");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    let next = chat(&c, &e, "warm again").await;
    assert_eq!(next.status(), StatusCode::OK);
    assert!(next.headers().get("x-cold-start").is_none());
    assert_eq!(metric(&c, &e, "edge_cold_starts_total").await, 1.0);
    assert_eq!(metric(&c, &e, "edge_held_requests_total").await, 1.0);
    assert!(edge.stop(), "edge did not shut down cleanly");
    assert!(gw.stop(), "gateway did not shut down cleanly");
}

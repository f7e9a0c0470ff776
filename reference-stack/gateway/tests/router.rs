//! Router behaviour that needs no Redis or Postgres (a detached state): liveness, metrics,
//! authentication refusals before any backend, readiness naming the failed component.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use loadgate_gateway::config::Config;
use loadgate_gateway::{app, AppState};
use tower::ServiceExt;

fn state() -> AppState {
    let cfg = Config::from_lookup(&|k| match k {
        "REDIS_URL" => Some("redis://127.0.0.1:1".into()),
        "DATABASE_URL" => Some("postgres://x@127.0.0.1:1/x".into()),
        "GATEWAY_INSTANCE" => Some("gw-test".into()),
        _ => None,
    })
    .unwrap();
    AppState::detached(cfg)
}

async fn call(req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = app(state()).oneshot(req).await.unwrap();
    let (p, b) = r.into_parts();
    let b = axum::body::to_bytes(b, 1 << 20).await.unwrap();
    (
        p.status,
        p.headers,
        String::from_utf8_lossy(&b).into_owned(),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_is_ok_and_names_the_instance() {
    let (s, h, b) = call(get("/health")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-gateway-instance"], "gw-test");
    assert!(b.contains("\"status\":\"ok\""));
}

#[tokio::test]
async fn ready_names_redis_when_it_is_down() {
    let (s, h, b) = call(get("/ready")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["failed"], "redis");
    let _ = h;
}

#[tokio::test]
async fn missing_key_is_401_before_any_backend() {
    for (method, path) in [
        ("GET", "/auth/me"),
        ("POST", "/v1/chat"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/00000000-0000-0000-0000-000000000000"),
        ("POST", "/v1/notes"),
        ("GET", "/admin/state"),
        ("PUT", "/admin/routing"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (s, _, b) = call(req).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {b}");
        assert!(b.contains("API key"), "{b}");
    }
    // a malformed Authorization header is also a missing key
    let req = Request::get("/auth/me")
        .header("authorization", "Basic abc")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_with_backends_down_is_503_naming_postgres() {
    // Redis (key cache) is down → falls back to Postgres, which is down too.
    let req = Request::get("/auth/me")
        .header("x-api-key", "k")
        .body(Body::empty())
        .unwrap();
    let (s, h, b) = call(req).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "1");
    assert!(b.contains("postgres unavailable"), "{b}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_route_labels() {
    let st = state();
    let router = app(st.clone());
    let _ = router.clone().oneshot(get("/health")).await.unwrap();
    let r = router.oneshot(get("/metrics")).await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let t = String::from_utf8_lossy(&b);
    assert!(
        t.contains(
            "gateway_http_requests_total{route=\"/health\",status=\"200\",version=\"none\"} 1"
        ),
        "{t}"
    );
    for name in [
        "gateway_in_flight_requests",
        "gateway_queue_depth",
        "gateway_workers_current",
        "gateway_workers_desired",
        "gateway_jobs_retried_total",
        "gateway_jobs_dead_total",
        "gateway_cache_hits_total",
        "gateway_cache_misses_total",
    ] {
        assert!(t.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let (s, _, b) = call(get("/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("\"error\""));
}

#[tokio::test]
async fn a_body_over_the_default_limit_is_413_before_authentication() {
    let limit = loadgate_gateway::config::DEFAULT_MAX_BODY_BYTES;
    for (method, path) in [
        ("POST", "/v1/chat"),
        ("POST", "/v1/jobs"),
        ("POST", "/v1/notes"),
        ("PUT", "/admin/routing"),
        ("POST", "/admin/faults/v1"),
        ("PUT", "/admin/workers"),
    ] {
        let over = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("content-length", limit + 1)
            .body(Body::from(vec![b' '; limit + 1]))
            .unwrap();
        let (s, _, b) = call(over).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}: {b}");
        assert!(b.contains("1048576 bytes"), "{b}");
        // at the limit the body passes the check (and the missing key is what is refused)
        let at = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("content-length", limit)
            .body(Body::from(vec![b' '; limit]))
            .unwrap();
        assert_eq!(
            call(at).await.0,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn the_debug_panic_route_is_absent_by_default() {
    let req = Request::post("/debug/panic")
        .header("x-api-key", "k")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(req).await.0, StatusCode::NOT_FOUND);
}

//! loadgate-gateway: the reference GenAI-style API gateway that loadgate tests against.
//!
//! One binary, two roles. The **gateway** role is a stateless HTTP API over Redis (key cache,
//! rate limits, response cache, job queue, shared admin state) and PostgreSQL (API keys,
//! conversations, jobs, notes). The **edge** role ([`edge`]) balances over several gateway
//! instances with active health checks.
//!
//! # Routes (gateway role)
//!
//! Authentication: `Authorization: Bearer <key>` or `x-api-key: <key>`. Missing or unknown
//! key → 401; a user key on an admin route → 403. Every error body is `{"error": "..."}`;
//! every response carries `x-gateway-instance`.
//!
//! | route | auth | request | response |
//! |---|---|---|---|
//! | `GET /health` | - | | 200 `{"status":"ok","instance":..}` (liveness) |
//! | `GET /ready` | - | | 200 `{"status":"ready"}`; 503 `{"status":"unready","failed":"redis"\|"postgres","error":..}` |
//! | `GET /metrics` | - | | Prometheus text ([`metrics`]) |
//! | `GET /auth/me` | key | | 200 `{"key_id":..,"role":"user"\|"admin"}` |
//! | `POST /v1/chat` | key | `{"prompt":"..","prompt_version"?:"p1","max_tokens"?:n,"model"?:"v1"\|"v2"}` | 200, see [`chat`]; headers `x-model-version`, `x-cache: hit\|miss` |
//! | `POST /v1/jobs` | key | `{"kind":"..","fail_times"?:n,"work_ms"?:n,..}` | 202 `{"id":..,"state":"queued","status":"pending"}` |
//! | `GET /v1/jobs/{id}` | key | | 200 job ([`jobs`]); 404 |
//! | `POST /v1/notes` | key | `{"id":"<uuid>","text":".."}` | 201 after the Postgres commit |
//! | `GET /v1/notes/{id}` | key | | 200 `{"id","text"}`; 404 |
//! | `GET /admin/state` | admin | | 200 admin state ([`admin`]) |
//! | `PUT\|POST /admin/routing` | admin | `{"canary_weight"?:0-100,"active"?:"v1"\|"v2"}` | 200 admin state |
//! | `PUT\|POST /admin/faults/{version}` | admin | `{"latency_ms"?:n,"error_rate"?:0.0-1.0}` | 200 admin state |
//! | `DELETE /admin/faults/{version}` | admin | | 200 admin state |
//! | `PUT\|POST /admin/workers` | admin | `{"min":n,"max":n}` | 200 admin state |
//! | `GET /admin/dlq` | admin | | 200 `{"depth":n,"ids":[..]}` |
//!
//! Backpressure ([`shed`]): `/v1/*` past `GATEWAY_INFLIGHT_LIMIT` in-flight → 503 +
//! `Retry-After: 1`; `POST /v1/jobs` with the queue at `GATEWAY_QUEUE_LIMIT` → 429 +
//! `Retry-After: 2`; `/v1/chat` past the per-key rate → 429 + `Retry-After: 1`.
//!
//! Dependency failures answer 503 naming the component (`{"error":"redis unavailable: .."}`).
//! The API-key lookup falls back to Postgres when Redis fails; chat needs Redis unless
//! `GATEWAY_REDIS_FAIL_OPEN=true` (then rate limiting is skipped and the cache counts as a miss).

pub mod admin;
pub mod auth;
pub mod autoscaler;
pub mod cache;
pub mod chat;
pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod notes;
pub mod shed;
pub mod state;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use error::ApiError;
pub use state::AppState;

/// The gateway router.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/chat", post(chat::chat))
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/notes", post(notes::create))
        .route("/v1/notes/{id}", get(notes::get_note))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            shed::inflight_limit,
        ));
    let admin = Router::new()
        .route("/admin/state", get(admin::get_state))
        .route(
            "/admin/routing",
            put(admin::set_routing).post(admin::set_routing),
        )
        .route(
            "/admin/faults/{version}",
            put(admin::set_fault)
                .post(admin::set_fault)
                .delete(admin::clear_fault),
        )
        .route(
            "/admin/workers",
            put(admin::set_workers).post(admin::set_workers),
        )
        .route("/admin/dlq", get(admin::dlq));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/auth/me", get(auth::me))
        .merge(v1)
        .merge(admin)
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts every request by route, status and model version; keeps the in-flight gauge.
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let m = &st.metrics;
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    // Decrements also when the client goes away and this future is dropped.
    struct Gauge<'a>(&'a std::sync::atomic::AtomicI64);
    impl Drop for Gauge<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let gauge = Gauge(&m.in_flight);
    let mut resp = next.run(req).await;
    drop(gauge);
    let status = resp.status().as_u16().to_string();
    let version = resp
        .headers()
        .get("x-model-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let labels = [route.as_str(), status.as_str(), version.as_str()];
    m.requests.inc(&labels);
    m.latency.observe(&labels, start.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&st.cfg.instance) {
        resp.headers_mut().insert("x-gateway-instance", v);
    }
    resp
}

async fn health(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "instance": st.cfg.instance}))
}

async fn ready(State(st): State<AppState>) -> Response {
    let fail = |component: &str, e: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unready", "failed": component, "error": e})),
        )
            .into_response()
    };
    if let Err(e) = st.redis.ping().await {
        return fail("redis", e.to_string());
    }
    if let Err(e) = db::ping(&st.db).await {
        return fail("postgres", e.to_string());
    }
    Json(serde_json::json!({"status": "ready", "instance": st.cfg.instance})).into_response()
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    // Refresh queue gauges opportunistically; a Redis failure keeps the last values.
    if let Ok((q, d)) = st.redis.queue_depths().await {
        st.metrics.queue_depth.store(q as i64, Ordering::Relaxed);
        st.metrics.dlq_depth.store(d as i64, Ordering::Relaxed);
    }
    let body = st.metrics.render(&st.cfg.instance, st.cfg.profile.as_str());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

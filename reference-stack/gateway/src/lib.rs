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
//! | `POST /v1/chat` | key | `{"prompt":"..","prompt_version"?:"p1","max_tokens"?:n,"model"?:"v1"\|"v2"}` | 200, see [`chat`]; headers `x-model-version`, `x-cache: hit\|miss`, `x-quality-score` |
//! | `POST /v1/jobs` | key | `{"kind":"..","fail_times"?:n,"work_ms"?:n,..}` | 202 `{"id":..,"state":"queued","status":"pending"}` |
//! | `GET /v1/jobs/{id}` | key | | 200 job ([`jobs`]); 404 (also for another user key's job) |
//! | `POST /v1/notes` | key | `{"id":"<uuid>","text":".."}` | 201 after the Postgres commit; 409 when another key owns the id |
//! | `GET /v1/notes/{id}` | key | | 200 `{"id","text"}`; 404 (also for another user key's note) |
//! | `GET /admin/state` | admin | | 200 admin state ([`admin`]) |
//! | `PUT\|POST /admin/routing` | admin | `{"canary_weight"?:0-100,"active"?:"v1"\|"v2"}` | 200 admin state |
//! | `PUT\|POST /admin/faults/{version}` | admin | `{"latency_ms"?:n,"latency_us"?:n,"error_rate"?:0.0-1.0,"cost_factor"?:x,"quality_drop"?:0.0-1.0}` ([`admin`]) | 200 admin state |
//! | `DELETE /admin/faults/{version}` | admin | | 200 admin state |
//! | `PUT\|POST /admin/workers` | admin | `{"min":n,"max":n}` | 200 admin state |
//! | `GET /admin/dlq` | admin | | 200 `{"depth":n,"ids":[..]}` |
//! | `POST /debug/panic` | admin | | 500 (a handler panic; only with `GATEWAY_DEBUG_PANIC_ROUTE=true`, never in prod) |
//!
//! Request bodies are limited to `GATEWAY_MAX_BODY_BYTES` (default 1 MiB,
//! [`config::DEFAULT_MAX_BODY_BYTES`]): a larger declared `Content-Length` gets 413
//! `{"error":"request body too large: ..."}` before authentication; a chunked body is cut off
//! at the limit with the same 413.
//!
//! Tenancy: jobs and notes belong to the key that created them. A user key reads (and, for
//! notes, overwrites) only its own; another key's job or note answers 404 exactly like a
//! missing one, and `POST /v1/notes` with another key's note id answers 409. Admin keys read
//! every tenant's jobs and notes.
//!
//! A panicking handler answers 500 `{"error":"internal error: request handler panicked"}`;
//! shared state (metrics, API-key cache, admin state, worker pool) sits behind non-poisoning
//! locks, so later requests are unaffected. `GATEWAY_DEBUG_PANIC_ROUTE=true` adds
//! `POST /debug/panic` (admin) to show it.
//!
//! Cost budget ([`budget`], `GATEWAY_BUDGET_USD_PER_MIN`, off by default): over the budget,
//! `/v1/chat` for the expensive model is served by the cheaper one (`x-budget-downgraded`) or,
//! with `GATEWAY_BUDGET_MODE=throttle`, refused with 429 + `Retry-After`.
//!
//! Scale to zero ([`lifecycle`], `GATEWAY_IDLE_TIMEOUT_MS`, off by default): an idle instance
//! releases its connections and goes cold; it adds `GET /lifecycle` (state) and
//! `POST /lifecycle/wake` (start it again; the edge's [`activator`] calls it and holds the
//! requests meanwhile).
//!
//! Backpressure ([`shed`]): `/v1/*` past `GATEWAY_INFLIGHT_LIMIT` in-flight → 503 +
//! `Retry-After: 1`; `POST /v1/jobs` with the queue at `GATEWAY_QUEUE_LIMIT` → 429 +
//! `Retry-After: 2`; `/v1/chat` past the per-key rate → 429 + `Retry-After: 1`.
//!
//! Dependency failures answer 503 naming the component (`{"error":"redis unavailable: .."}`).
//! The API-key lookup falls back to Postgres when Redis fails; chat needs Redis unless
//! `GATEWAY_REDIS_FAIL_OPEN=true` (then rate limiting is skipped and the cache counts as a miss).

pub mod activator;
pub mod admin;
pub mod auth;
pub mod autoscaler;
pub mod budget;
pub mod cache;
pub mod chat;
pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod notes;
pub mod shed;
pub mod state;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;

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
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/auth/me", get(auth::me))
        .merge(v1)
        .merge(admin);
    if state.cfg.debug_panic_route {
        router = router.route("/debug/panic", post(debug_panic));
    }
    router
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Refuses a request whose declared `Content-Length` is over `GATEWAY_MAX_BODY_BYTES` with 413
/// before authentication or any backend is touched. Chunked bodies are cut off at the same
/// limit when a handler reads them ([`error::JsonBody`]).
pub async fn body_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.cfg.max_body_bytes as u64) {
        return ApiError::PayloadTooLarge {
            limit: st.cfg.max_body_bytes,
        }
        .into_response();
    }
    next.run(req).await
}

/// What a panicking handler answers: 500 `{"error": "internal error: ..."}`. The panic is
/// logged; shared state stays usable because every lock on it is non-poisoning
/// (parking_lot, and prometheus-client's families).
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %what, "request handler panicked");
    ApiError::Internal("request handler panicked".into()).into_response()
}

/// `POST /debug/panic` (admin key; only with `GATEWAY_DEBUG_PANIC_ROUTE=true`): panics while
/// holding the admin-state, API-key cache, worker-pool and metrics locks, so a test can show
/// that later requests still work.
async fn debug_panic(_: auth::Admin, State(st): State<AppState>) -> Response {
    let _admin = st.admin.write();
    let _keys = st.key_cache.lock_for_debug_panic();
    let _workers = st.workers.lock_for_debug_panic();
    let _series = st.metrics.requests.get_or_create(&metrics::RequestLabels {
        route: "/debug/panic".into(),
        status: "500".into(),
        version: "none".into(),
    });
    panic!("debug panic route: panicking while holding the shared locks");
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
    m.in_flight.inc();
    // Decrements also when the client goes away and this future is dropped.
    struct Gauge<'a>(&'a prometheus_client::metrics::gauge::Gauge);
    impl Drop for Gauge<'_> {
        fn drop(&mut self) {
            self.0.dec();
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
    let labels = metrics::RequestLabels {
        route,
        status,
        version,
    };
    m.requests.get_or_create(&labels).inc();
    m.latency
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
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
        st.metrics.queue_depth.set(q as i64);
        st.metrics.dlq_depth.set(d as i64);
    }
    let body = st.metrics.render(&st.cfg.instance, st.cfg.profile.as_str());
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

//! Scale to zero (`GATEWAY_IDLE_TIMEOUT_MS` > 0): an instance that saw no traffic for the idle
//! timeout goes **cold**, and the edge's activator ([`crate::edge`]) wakes it on the next
//! request and holds that request until the instance is warm again (Knative's activator and
//! scale-to-zero, in one process pair).
//!
//! What "cold" means here, and why it is a fair model of a serverless instance:
//! - **Everything the instance held is released.** Going cold stops the background tasks and
//!   job workers ([`AppState::stop`]), flushes pending writes, and drops the [`AppState`]:
//!   the Redis connection, the Postgres pool, the in-process API-key cache, the metrics
//!   registry. Only the listening socket stays (the platform's routing entry for a scaled-to-
//!   zero service), answering `/health` 200 with `x-gateway-cold: true` (alive, not in
//!   rotation), `/ready` 503, and every other route 503 + `Retry-After: 1` + `x-gateway-cold`.
//! - **Waking takes the real start-up path.** `POST /lifecycle/wake` first waits
//!   `GATEWAY_BOOT_DELAY_MS` (what a platform spends before the process runs: image pull,
//!   sandbox and runtime start), then runs [`AppState::start`] as a fresh process would:
//!   connect Redis and Postgres, migrate, store the API keys, load the admin state, start the
//!   workers and tasks. The first requests then also pay the empty caches (API keys, responses
//!   are still in Redis, but the local key cache is empty), as on a real cold start.
//! - **Only traffic counts as activity.** Health checks, readiness probes and scrapes
//!   (`/health`, `/ready`, `/metrics`, `/lifecycle`) do not keep an instance warm, or no
//!   instance behind a health-checking edge would ever go cold; an instance with requests in
//!   flight never goes cold.
//! - **It starts warm.** A new instance starts as every gateway does (the stack waits for
//!   `/ready`); it goes cold only after its first idle timeout, like a Knative revision's
//!   initial scale of 1.
//!
//! - **Request-driven, not queue-driven.** Like Knative's scale to zero, only HTTP traffic
//!   wakes an instance: jobs already queued in Redis wait until something wakes one (a
//!   queue-driven wake, KEDA's job, is out of this model's scope), and a cold instance runs no
//!   job workers.
//!
//! Going cold and waking are serialized (one at a time); a wake of a warm instance answers at
//! once. The instance counts its own `gateway_lifecycle_warm` (gauge), `gateway_cold_starts_total`,
//! `gateway_idle_stops_total` and `gateway_last_cold_start_seconds`, appended to `/metrics`
//! (they outlive the cold periods; the rest of `/metrics` restarts from zero after each
//! start, as a new process's counters would).
//!
//! The request path costs one atomic load of the current instance ([`ArcSwapOption`]) and
//! two atomic counters; no lock. [`should_sleep`] is the pure idle rule.

use crate::config::Config;
use crate::state::{AppState, StartError};
use arc_swap::ArcSwapOption;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The header a cold instance (and its health check) answers with.
pub const COLD_HEADER: &str = "x-gateway-cold";

/// `GATEWAY_IDLE_TIMEOUT_MS`, `GATEWAY_BOOT_DELAY_MS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleConfig {
    /// Go cold after this long without traffic; zero = never (always on).
    pub idle_timeout: Duration,
    /// Waited before the start-up path of a cold start.
    pub boot_delay: Duration,
}

impl LifecycleConfig {
    pub fn enabled(&self) -> bool {
        !self.idle_timeout.is_zero()
    }
}

/// The idle rule: cold after `idle_timeout` without a request, never with one in flight.
pub fn should_sleep(
    idle_timeout: Duration,
    since_last_request: Duration,
    in_flight: usize,
) -> bool {
    !idle_timeout.is_zero() && in_flight == 0 && since_last_request >= idle_timeout
}

/// Paths that are not traffic (probes and scrapes).
pub fn is_probe_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics") || path.starts_with("/lifecycle")
}

struct Warm {
    state: AppState,
    router: Router,
}

/// One instance that can go cold and be woken.
pub struct Lifecycle {
    cfg: Config,
    current: ArcSwapOption<Warm>,
    origin: Instant,
    last_request_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Serializes going cold and waking.
    transition: tokio::sync::Mutex<()>,
    registry: Registry,
    warm: Gauge,
    cold_starts: Counter,
    idle_stops: Counter,
    last_start_seconds: Gauge<f64, AtomicU64>,
}

impl Lifecycle {
    /// Starts the instance warm.
    pub async fn start(cfg: Config) -> Result<Arc<Lifecycle>, StartError> {
        let state = AppState::start(cfg.clone()).await?;
        let mut lc = Lifecycle {
            cfg,
            current: ArcSwapOption::empty(),
            origin: Instant::now(),
            last_request_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            transition: tokio::sync::Mutex::new(()),
            registry: Registry::default(),
            warm: Gauge::default(),
            cold_starts: Counter::default(),
            idle_stops: Counter::default(),
            last_start_seconds: Gauge::default(),
        };
        let r = &mut lc.registry;
        r.register(
            "gateway_lifecycle_warm",
            "1 while the instance is warm (scale to zero)",
            lc.warm.clone(),
        );
        r.register(
            "gateway_cold_starts",
            "Cold starts of this instance (wakes after going cold)",
            lc.cold_starts.clone(),
        );
        r.register(
            "gateway_idle_stops",
            "Times this instance went cold after the idle timeout",
            lc.idle_stops.clone(),
        );
        r.register(
            "gateway_last_cold_start_seconds",
            "Duration of the last cold start (boot delay and start-up), seconds",
            lc.last_start_seconds.clone(),
        );
        lc.install(state);
        Ok(Arc::new(lc))
    }

    fn install(&self, state: AppState) {
        let router = crate::app(state.clone());
        self.current.store(Some(Arc::new(Warm { state, router })));
        self.touch();
        self.warm.set(1);
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_request_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn is_warm(&self) -> bool {
        self.current.load().is_some()
    }

    /// Wakes a cold instance; `Ok(true)` when this call started it, `Ok(false)` when it was
    /// already warm.
    pub async fn wake(&self) -> Result<bool, StartError> {
        let _t = self.transition.lock().await;
        if self.is_warm() {
            return Ok(false);
        }
        let t0 = Instant::now();
        tracing::info!(
            boot_delay_ms = self.cfg.lifecycle.boot_delay.as_millis() as u64,
            "cold start: booting"
        );
        tokio::time::sleep(self.cfg.lifecycle.boot_delay).await;
        let state = AppState::start(self.cfg.clone()).await?;
        self.install(state);
        let took = t0.elapsed();
        self.cold_starts.inc();
        self.last_start_seconds
            .set((took.as_secs_f64() * 1e3).round() / 1e6);
        tracing::info!(took_ms = took.as_millis() as u64, "cold start: warm");
        Ok(true)
    }

    /// Goes cold now if the idle rule says so; `true` when it went cold.
    pub async fn sleep_if_idle(&self) -> bool {
        let idle = self.cfg.lifecycle.idle_timeout;
        let since = || {
            Duration::from_millis(
                self.now_ms()
                    - self
                        .last_request_ms
                        .load(Ordering::Relaxed)
                        .min(self.now_ms()),
            )
        };
        if !should_sleep(idle, since(), self.in_flight.load(Ordering::SeqCst)) {
            return false;
        }
        let _t = self.transition.lock().await;
        if !should_sleep(idle, since(), self.in_flight.load(Ordering::SeqCst)) {
            return false;
        }
        let Some(warm) = self.current.swap(None) else {
            return false;
        };
        self.warm.set(0);
        // Requests that loaded the instance before the swap finish first (bounded).
        let drain_until = Instant::now() + Duration::from_secs(10);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        warm.state.stop(Duration::from_secs(10)).await;
        self.idle_stops.inc();
        tracing::info!(
            idle_ms = idle.as_millis() as u64,
            "idle timeout: released Redis, Postgres and caches; instance is cold"
        );
        true
    }

    /// Checks the idle rule until `stop`.
    pub async fn idle_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.cfg.lifecycle.idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.sleep_if_idle().await;
        }
    }

    /// Stops the warm instance, if any (process shutdown).
    pub async fn shutdown(&self, grace: Duration) {
        let _t = self.transition.lock().await;
        if let Some(w) = self.current.swap(None) {
            w.state.stop(grace).await;
        }
    }

    fn render_own(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The router of an instance that scales to zero: lifecycle routes, then the gateway's own.
pub fn app(lc: Arc<Lifecycle>) -> Router {
    Router::new()
        .route("/lifecycle", axum::routing::get(status))
        .route("/lifecycle/wake", axum::routing::post(wake))
        .fallback(forward)
        .with_state(lc)
}

fn cold_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        HeaderName::from_static(COLD_HEADER),
        HeaderValue::from_static("true"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    }
    r
}

async fn status(State(lc): State<Arc<Lifecycle>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "warm": lc.is_warm(),
        "cold_starts": lc.cold_starts.get(),
        "idle_stops": lc.idle_stops.get(),
        "idle_timeout_ms": lc.cfg.lifecycle.idle_timeout.as_millis() as u64,
        "boot_delay_ms": lc.cfg.lifecycle.boot_delay.as_millis() as u64,
    }))
}

/// `POST /lifecycle/wake`: 200 `{"started": bool, "took_ms": n}` once warm; 503 when the
/// start-up failed.
async fn wake(State(lc): State<Arc<Lifecycle>>) -> Response {
    let t0 = Instant::now();
    match lc.wake().await {
        Ok(started) => Json(serde_json::json!({
            "started": started,
            "took_ms": t0.elapsed().as_millis() as u64,
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cold start failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": format!("cold start failed: {e}")})),
            )
                .into_response()
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(State(lc): State<Arc<Lifecycle>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let probe = is_probe_path(&path);
    // Counted before the instance is loaded, so going cold waits for this request.
    lc.in_flight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(&lc.in_flight);
    let warm = lc.current.load_full();
    let Some(warm) = warm else {
        drop(guard);
        return match path.as_str() {
            "/health" => cold_response(
                StatusCode::OK,
                serde_json::json!({"status": "ok", "state": "cold", "instance": lc.cfg.instance}),
            ),
            "/metrics" => (
                [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                lc.render_own(),
            )
                .into_response(),
            "/ready" => cold_response(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "unready", "state": "cold"}),
            ),
            _ => cold_response(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "instance is cold (scaled to zero): POST /lifecycle/wake, or send through the edge, which wakes it"}),
            ),
        };
    };
    if !probe {
        lc.touch();
    }
    let resp = match warm.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if !probe {
        lc.touch();
    }
    drop(guard);
    if path == "/metrics" {
        let (mut parts, body) = resp.into_parts();
        // The body grows by the lifecycle series: its length is no longer the inner one.
        parts.headers.remove(header::CONTENT_LENGTH);
        let text = match axum::body::to_bytes(body, 16 << 20).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the gateway's metrics failed");
                String::new()
            }
        };
        let body = format!("{text}{}", lc.render_own());
        return Response::from_parts(parts, Body::from(body));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_rule() {
        let t = Duration::from_secs(2);
        assert!(
            !should_sleep(t, Duration::from_secs(1), 0),
            "not idle long enough"
        );
        assert!(should_sleep(t, Duration::from_secs(2), 0));
        assert!(
            !should_sleep(t, Duration::from_secs(9), 1),
            "a request in flight"
        );
        assert!(
            !should_sleep(Duration::ZERO, Duration::from_secs(99), 0),
            "always on"
        );
    }

    #[test]
    fn probes_are_not_traffic() {
        for p in [
            "/health",
            "/ready",
            "/metrics",
            "/lifecycle",
            "/lifecycle/wake",
        ] {
            assert!(is_probe_path(p), "{p}");
        }
        for p in ["/v1/chat", "/auth/me", "/admin/state", "/healthz"] {
            assert!(!is_probe_path(p), "{p}");
        }
    }
}

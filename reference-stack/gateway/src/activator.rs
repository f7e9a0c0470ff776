//! The edge's activator (`EDGE_SCALE_TO_ZERO=true`): holds requests while no upstream is warm,
//! wakes a cold one, and releases them once it is back in rotation — Knative's activator for
//! gateways that scale to zero ([`crate::lifecycle`]). The behaviour and its bounds are
//! described in [`crate::edge`]; this file is its mechanics.
//!
//! Why hold at the edge and not in the instance: a scaled-to-zero instance owns nothing (no
//! pools, no workers), so the component that sees the request first must keep it; and one
//! wake per fleet (not per request) keeps a burst after an idle gap from starting every
//! instance at once. Held requests wait on a [`tokio::sync::Notify`] fired whenever an
//! upstream enters the rotation (health check or wake), so they leave the queue within
//! microseconds of the instance being ready, not on a polling tick.

use crate::edge::EdgeState;
use axum::body::Bytes;
use axum::http::Uri;
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Why a held request is refused, or a wake failed.
#[derive(Debug, thiserror::Error)]
pub enum ActivatorError {
    #[error("no warm upstream and {0} requests already held (raise EDGE_HOLD_QUEUE)")]
    QueueFull(usize),
    #[error(
        "no upstream became warm within {0} ms (raise EDGE_HOLD_TIMEOUT_MS or shorten the boot)"
    )]
    Timeout(u128),
    #[error("POST {url}: {detail}")]
    Wake { url: String, detail: String },
}

/// `EDGE_SCALE_TO_ZERO`, `EDGE_HOLD_TIMEOUT_MS`, `EDGE_HOLD_QUEUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivatorConfig {
    pub scale_to_zero: bool,
    /// The longest a request waits for a cold start.
    pub hold_timeout: Duration,
    /// Requests held at once; more get 503.
    pub hold_queue: usize,
}

impl Default for ActivatorConfig {
    fn default() -> Self {
        ActivatorConfig {
            scale_to_zero: false,
            hold_timeout: Duration::from_secs(30),
            hold_queue: 1000,
        }
    }
}

/// The activator's state and series.
pub struct Activator {
    pub(crate) cfg: ActivatorConfig,
    held_now: AtomicUsize,
    waking: AtomicBool,
    pub(crate) warm: tokio::sync::Notify,
    cold_starts: Counter,
    held: Counter,
    rejected: Counter,
    held_seconds: Histogram,
}

impl Activator {
    pub fn new(cfg: ActivatorConfig) -> Activator {
        Activator {
            cfg,
            held_now: AtomicUsize::new(0),
            waking: AtomicBool::new(false),
            warm: tokio::sync::Notify::new(),
            cold_starts: Counter::default(),
            held: Counter::default(),
            rejected: Counter::default(),
            held_seconds: Histogram::new(crate::metrics::BUCKETS),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.scale_to_zero
    }

    /// Registers the activator's series on the edge's `/metrics`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "edge_cold_starts",
            "Wakes of a cold upstream that started it (scale to zero)",
            self.cold_starts.clone(),
        );
        r.register(
            "edge_held_requests",
            "Requests held while no upstream was warm",
            self.held.clone(),
        );
        r.register(
            "edge_hold_rejected",
            "Held requests refused: hold queue full or cold start too slow",
            self.rejected.clone(),
        );
        let held_now: Gauge = Gauge::default();
        held_now.set(self.held_now.load(Ordering::Acquire) as i64);
        r.register("edge_held_now", "Requests held right now", held_now);
        r.register(
            "edge_held_seconds",
            "Time requests were held for a cold start, seconds",
            self.held_seconds.clone(),
        );
    }
}

struct Held<'a>(&'a AtomicUsize);
impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EdgeState {
    /// Holds a request until an upstream is warm (waking one), within the activator's bounds;
    /// the time held, or the 503 to answer.
    pub(crate) async fn hold(&self) -> Result<Duration, ActivatorError> {
        let a = &self.activator;
        let refuse = |e: ActivatorError| {
            a.rejected.inc();
            Err(e)
        };
        if a.held_now.fetch_add(1, Ordering::AcqRel) >= a.cfg.hold_queue {
            a.held_now.fetch_sub(1, Ordering::AcqRel);
            return refuse(ActivatorError::QueueFull(a.cfg.hold_queue));
        }
        let _held = Held(&a.held_now);
        a.held.inc();
        let t0 = tokio::time::Instant::now();
        let deadline = t0 + a.cfg.hold_timeout;
        loop {
            let notified = a.warm.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.upstreams.iter().any(|u| u.up.load(Ordering::Acquire)) {
                let took = t0.elapsed();
                a.held_seconds.observe(took.as_secs_f64());
                return Ok(took);
            }
            self.wake_one();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return refuse(ActivatorError::Timeout(a.cfg.hold_timeout.as_millis()));
            }
        }
    }

    /// Starts waking a cold upstream unless a wake is under way: `POST /lifecycle/wake` on
    /// each upstream in turn until one is warm; then every held request is released.
    fn wake_one(&self) {
        let a = &self.activator;
        if a.waking.swap(true, Ordering::AcqRel) {
            return;
        }
        let st = self.clone();
        tokio::spawn(async move {
            let n = st.upstreams.len();
            let first = st.rr.load(Ordering::Relaxed);
            let mut woke = false;
            for k in 0..n {
                let i = (first + k) % n;
                match st.wake(i).await {
                    Ok(started) => {
                        if started {
                            st.activator.cold_starts.inc();
                        }
                        st.set_up(i, true, "woken");
                        woke = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %st.upstreams[i].url, error = %e, "wake failed")
                    }
                }
            }
            if !woke {
                // Do not spin on a fleet that cannot start; held requests retry the wake.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            st.activator.waking.store(false, Ordering::Release);
            st.activator.warm.notify_waiters();
        });
    }

    /// `POST <upstream>/lifecycle/wake`: whether this call started the instance.
    async fn wake(&self, i: usize) -> Result<bool, ActivatorError> {
        let url = format!("{}/lifecycle/wake", self.upstreams[i].url);
        let fail = |detail: String| ActivatorError::Wake {
            url: url.clone(),
            detail,
        };
        let uri: Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
        let req = http::Request::post(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| fail(e.to_string()))?;
        let resp = tokio::time::timeout(self.activator.cfg.hold_timeout, self.client.request(req))
            .await
            .map_err(|_| fail("no answer within EDGE_HOLD_TIMEOUT_MS".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = match http_body_util::BodyExt::collect(resp.into_body()).await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(fail(format!("reading the answer: {e}"))),
        };
        if !status.is_success() {
            return Err(fail(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let started = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("started")?.as_bool())
            .unwrap_or(false);
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::EdgeConfig;
    use crate::edge::{app, health_loop, EdgeState, Strategy};
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::Router;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    /// An upstream that is cold until `POST /lifecycle/wake`, which takes `boot`.
    async fn cold_upstream(boot: Duration) -> String {
        let warm = Arc::new(AtomicBool::new(false));
        let cold = |w: &AtomicBool, ok: &'static str| {
            let mut r = ok.into_response();
            if !w.load(Ordering::SeqCst) {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert(
                    crate::lifecycle::COLD_HEADER,
                    HeaderValue::from_static("true"),
                );
            }
            r
        };
        let (w1, w2, w3) = (warm.clone(), warm.clone(), warm.clone());
        let app = Router::new()
            .route(
                "/health",
                get(move || {
                    let w = w1.clone();
                    async move {
                        let mut r = cold(&w, "ok");
                        *r.status_mut() = StatusCode::OK;
                        r
                    }
                }),
            )
            .route(
                "/lifecycle/wake",
                post(move || {
                    let w = w2.clone();
                    async move {
                        let started = !w.load(Ordering::SeqCst);
                        if started {
                            tokio::time::sleep(boot).await;
                            w.store(true, Ordering::SeqCst);
                        }
                        axum::Json(serde_json::json!({ "started": started }))
                    }
                }),
            )
            .fallback(move || {
                let w = w3.clone();
                async move { cold(&w, "served") }
            });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn edge(upstream: String, hold_timeout: Duration) -> (EdgeState, Router) {
        edge_with_queue(upstream, hold_timeout, 10)
    }

    fn edge_with_queue(
        upstream: String,
        hold_timeout: Duration,
        hold_queue: usize,
    ) -> (EdgeState, Router) {
        let cfg = EdgeConfig {
            log_filter: "info".into(),
            upstreams: vec![upstream],
            secondary_upstreams: Vec::new(),
            strategy: Strategy::RoundRobin,
            health_interval: Duration::from_millis(50),
            health_timeout: Duration::from_millis(200),
            health_path: "/health".into(),
            proxy_timeout: Duration::from_secs(5),
            activator: super::ActivatorConfig {
                scale_to_zero: true,
                hold_timeout,
                hold_queue,
            },
        };
        let st = EdgeState::new(&cfg);
        (st.clone(), app(st))
    }

    async fn send(app: &Router) -> axum::response::Response {
        app.clone()
            .oneshot(Request::post("/v1/chat").body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_to_a_cold_fleet_is_held_until_one_instance_wakes() {
        let up = cold_upstream(Duration::from_millis(300)).await;
        let (st, app) = edge(up, Duration::from_secs(10));
        let stop = CancellationToken::new();
        tokio::spawn(health_loop(st.clone(), stop.clone()));
        // Concurrent requests after the idle gap: all held, one wake.
        let rs = futures_util::future::join_all((0..5).map(|_| send(&app))).await;
        for r in &rs {
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["x-cold-start"], "true");
            let held: u64 = r.headers()["x-edge-held-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(held >= 250, "held {held} ms, the boot takes 300");
        }
        // Warm now: served without holding.
        let r = send(&app).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-cold-start").is_none());
        let m = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let m = axum::body::to_bytes(m.into_body(), 1 << 20).await.unwrap();
        let m = String::from_utf8_lossy(&m);
        assert!(m.contains("edge_cold_starts_total 1\n"), "{m}");
        assert!(m.contains("edge_held_requests_total 5\n"), "{m}");
        assert!(m.contains("edge_held_seconds_count 5\n"), "{m}");
        stop.cancel();
    }

    #[tokio::test]
    async fn a_hold_is_bounded_by_the_timeout() {
        let up = cold_upstream(Duration::from_secs(5)).await;
        let (_st, app) = edge(up, Duration::from_millis(200));
        let t0 = std::time::Instant::now();
        let r = send(&app).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn a_full_hold_queue_refuses_at_once() {
        let up = cold_upstream(Duration::from_millis(500)).await;
        let (st, app) = edge_with_queue(up, Duration::from_secs(10), 1);
        let t0 = std::time::Instant::now();
        let (first, second) = tokio::join!(send(&app), async {
            // once the first request is held (its upstream answered "cold")
            while st.activator.held_now.load(Ordering::Acquire) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            send(&app).await
        });
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()["retry-after"], "1");
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()["x-cold-start"], "true");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}

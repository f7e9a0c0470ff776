//! The edge role: a small load balancer over several gateway instances, for failover drills.
//!
//! Strategies: `round-robin` (rotate over healthy upstreams) and `least-connections` (the
//! healthy upstream with the fewest requests in flight; ties broken by rotation). An active
//! health check (`GET <upstream><EDGE_HEALTH_PATH>` every `EDGE_HEALTH_INTERVAL_MS`, timeout
//! `EDGE_HEALTH_TIMEOUT_MS`, 2xx = healthy) takes an upstream out after one failed check and
//! puts it back after one good one; a connection error while proxying also takes it out at
//! once, and the request is retried on the next healthy upstream (the request had not been
//! sent, so this is safe for any method); other transport errors are retried elsewhere only
//! for idempotent methods (POST gets 502). Each attempt is bounded by `EDGE_PROXY_TIMEOUT_MS`
//! (30 s; then 504). No healthy upstream → 503 with `Retry-After: 1`.
//!
//! Routes of its own: `GET /health`, `GET /ready` (200 when at least one upstream is up, or
//! always with `EDGE_SCALE_TO_ZERO=true`, else 503; body `{"upstreams_up": n, "upstreams": m}`), `GET /metrics` (`edge_upstream_up{upstream}`,
//! `edge_upstream_in_flight{upstream}`, `edge_requests_total{upstream,status}`,
//! `edge_upstream_errors_total{upstream}`, `edge_no_upstream_total`), and `GET /edge/upstreams`
//! → `{"strategy": "round-robin", "upstreams": [{"url","up","in_flight","requests","errors"}]}`.
//! Every other path is proxied; responses carry `x-edge-upstream: <url>`.
//!
//! Regions: upstreams listed in `EDGE_SECONDARY_UPSTREAMS` form a secondary region. The
//! strategy picks among the healthy primary upstreams (`EDGE_UPSTREAMS`) and falls to the
//! secondary's only when none of the primary's can take the request (all out of rotation, or
//! all tried for this request); it fails back as soon as a health check puts a primary one
//! back. So a whole-region outage costs what one dead upstream costs (the requests in flight
//! on it, and a connect error per new request until the next health check), and no request
//! crosses regions while the primary is healthy. `/edge/upstreams` tells each one's `region`.
//!
//! **Activator** (`EDGE_SCALE_TO_ZERO=true`, for gateways with `GATEWAY_IDLE_TIMEOUT_MS`, see
//! [`crate::lifecycle`]): like Knative's activator, the edge holds a request that finds no
//! warm upstream instead of refusing it. It wakes one instance (`POST /lifecycle/wake`, one
//! wake at a time, trying the upstreams in turn) and releases every held request as soon as
//! an upstream is back in rotation. The hold is bounded twice: at most `EDGE_HOLD_QUEUE`
//! requests wait (the next get 503 + `Retry-After: 1`), each at most `EDGE_HOLD_TIMEOUT_MS`
//! (then 503 + `Retry-After: 1`). A cold instance answers `x-gateway-cold: true` (its health
//! check too), so it leaves the rotation and a request it refused (never processed, so safe
//! to resend whatever its method) is held and resent. Held requests' responses carry
//! `x-cold-start: true` and `x-edge-held-ms`; the edge counts `edge_cold_starts_total` (wakes
//! that started an instance), `edge_held_requests_total`, `edge_hold_rejected_total`
//! (queue full or timed out), `edge_held_now` and the histogram `edge_held_seconds`.

pub use crate::activator::{Activator, ActivatorConfig};
use crate::config::EdgeConfig;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    LeastConnections,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastConnections => "least-connections",
        }
    }
}

/// One gateway instance behind the edge.
#[derive(Debug)]
pub struct Upstream {
    pub url: String,
    /// In the secondary region (used only while no primary upstream is healthy).
    pub secondary: bool,
    pub up: AtomicBool,
    pub in_flight: AtomicUsize,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

pub struct EdgeInner {
    pub upstreams: Vec<Upstream>,
    /// Indices into `upstreams`: the primary region's, then the secondary's.
    regions: [Vec<usize>; 2],
    pub strategy: Strategy,
    pub(crate) rr: AtomicUsize,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
    health_path: String,
    health_interval: Duration,
    health_timeout: Duration,
    proxy_timeout: Duration,
    responses: Family<ResponseLabels, Counter>,
    no_upstream: Counter,
    pub activator: Activator,
}

#[derive(Clone)]
pub struct EdgeState(pub Arc<EdgeInner>);

impl std::ops::Deref for EdgeState {
    type Target = EdgeInner;
    fn deref(&self) -> &EdgeInner {
        &self.0
    }
}

impl EdgeState {
    /// Upstreams start healthy; the first health check runs at once.
    pub fn new(cfg: &EdgeConfig) -> EdgeState {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(1)));
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(conn);
        let n = cfg.upstreams.len();
        let m = cfg.secondary_upstreams.len();
        EdgeState(Arc::new(EdgeInner {
            upstreams: cfg
                .upstreams
                .iter()
                .chain(&cfg.secondary_upstreams)
                .enumerate()
                .map(|(i, u)| Upstream {
                    url: u.clone(),
                    secondary: i >= n,
                    up: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                })
                .collect(),
            regions: [(0..n).collect(), (n..n + m).collect()],
            strategy: cfg.strategy,
            rr: AtomicUsize::new(0),
            client,
            health_path: cfg.health_path.clone(),
            health_interval: cfg.health_interval,
            health_timeout: cfg.health_timeout,
            proxy_timeout: cfg.proxy_timeout,
            responses: Family::default(),
            no_upstream: Counter::default(),
            activator: Activator::new(cfg.activator.clone()),
        }))
    }

    /// Index of the upstream for the next request, skipping `tried`: from the primary
    /// region, else from the secondary (see the module doc).
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let rr = self.rr.fetch_add(1, Ordering::Relaxed);
        self.regions
            .iter()
            .find_map(|region| self.pick_in(region, rr, tried))
    }

    fn pick_in(&self, region: &[usize], rr: usize, tried: &[usize]) -> Option<usize> {
        let n = region.len();
        if n == 0 {
            return None;
        }
        let start = rr % n;
        let candidates = (0..n)
            .map(|i| region[(start + i) % n])
            .filter(|i| self.upstreams[*i].up.load(Ordering::Acquire) && !tried.contains(i));
        match self.strategy {
            Strategy::RoundRobin => candidates.into_iter().next(),
            Strategy::LeastConnections => {
                candidates.min_by_key(|i| self.upstreams[*i].in_flight.load(Ordering::Acquire))
            }
        }
    }

    pub(crate) fn set_up(&self, i: usize, up: bool, why: &str) {
        let u = &self.upstreams[i];
        if u.up.swap(up, Ordering::AcqRel) != up {
            if up {
                self.activator.warm.notify_waiters();
                tracing::info!(upstream = %u.url, "upstream back in rotation");
            } else {
                tracing::warn!(upstream = %u.url, reason = why, "upstream taken out of rotation");
            }
        }
    }

    async fn check(&self, i: usize) {
        let url = format!("{}{}", self.upstreams[i].url, self.health_path);
        let ok = match url.parse::<Uri>() {
            Ok(uri) => {
                let req = http::Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .expect("valid request");
                // A cold instance is alive but not in rotation.
                matches!(
                    tokio::time::timeout(self.health_timeout, self.client.request(req)).await,
                    Ok(Ok(r)) if r.status().is_success()
                        && !r.headers().contains_key(crate::lifecycle::COLD_HEADER)
                )
            }
            Err(_) => false,
        };
        self.set_up(i, ok, "health check failed");
    }
}

/// Runs the active health checks until `stop`.
pub async fn health_loop(st: EdgeState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(st.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let checks = (0..st.upstreams.len()).map(|i| st.check(i));
        futures_util::future::join_all(checks).await;
    }
}

/// The edge router.
pub fn app(st: EdgeState) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok", "role": "edge"})) }),
        )
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/edge/upstreams", get(upstreams))
        .fallback(proxy)
        .with_state(st)
}

async fn ready(State(st): State<EdgeState>) -> Response {
    let up = st
        .upstreams
        .iter()
        .filter(|u| u.up.load(Ordering::Acquire))
        .count();
    let body = Json(serde_json::json!({"upstreams_up": up, "upstreams": st.upstreams.len()}));
    // With the activator a fleet scaled to zero still serves (a request wakes it).
    if up > 0 || st.activator.enabled() {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn upstreams(State(st): State<EdgeState>) -> Json<serde_json::Value> {
    let list: Vec<_> = st
        .upstreams
        .iter()
        .map(|u| {
            serde_json::json!({
                "url": u.url,
                "region": if u.secondary { "secondary" } else { "primary" },
                "up": u.up.load(Ordering::Acquire),
                "in_flight": u.in_flight.load(Ordering::Acquire),
                "requests": u.requests.load(Ordering::Relaxed),
                "errors": u.errors.load(Ordering::Relaxed),
            })
        })
        .collect();
    Json(serde_json::json!({"strategy": st.strategy.as_str(), "upstreams": list}))
}

async fn metrics(State(st): State<EdgeState>) -> Response {
    // Per-upstream gauges are read from the upstream's atomics at scrape time.
    let up: Family<UpstreamLabels, Gauge> = Family::default();
    let in_flight: Family<UpstreamLabels, Gauge> = Family::default();
    let errors: Family<UpstreamLabels, Counter> = Family::default();
    for u in &st.upstreams {
        let l = UpstreamLabels {
            upstream: u.url.clone(),
        };
        up.get_or_create(&l)
            .set(u.up.load(Ordering::Acquire) as i64);
        in_flight
            .get_or_create(&l)
            .set(u.in_flight.load(Ordering::Acquire) as i64);
        errors
            .get_or_create(&l)
            .inc_by(u.errors.load(Ordering::Relaxed));
    }
    let mut r = Registry::default();
    r.register("edge_upstream_up", "1 when the upstream is in rotation", up);
    r.register(
        "edge_upstream_in_flight",
        "Requests in flight to the upstream",
        in_flight,
    );
    r.register(
        "edge_upstream_errors",
        "Proxy errors (connect failures, timeouts) by upstream",
        errors,
    );
    r.register(
        "edge_requests",
        "Proxied responses by upstream and status",
        st.responses.clone(),
    );
    r.register(
        "edge_no_upstream",
        "Requests refused because no upstream was healthy",
        st.no_upstream.clone(),
    );
    st.activator.register(&mut r);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &r);
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out).into_response()
}

/// Labels of the per-upstream series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// Labels of `edge_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    upstream: String,
    status: String,
}

impl EdgeInner {
    fn count_response(&self, upstream: &str, status: &str) {
        self.responses
            .get_or_create(&ResponseLabels {
                upstream: upstream.to_string(),
                status: status.to_string(),
            })
            .inc();
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        h.remove(name);
    }
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn error(status: StatusCode, msg: String) -> Response {
    let mut r = (status, Json(serde_json::json!({"error": msg}))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    }
    r
}

async fn proxy(State(st): State<EdgeState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("reading request body: {e}"),
            )
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    let mut tried: Vec<usize> = Vec::new();
    let mut held: Option<Duration> = None;
    loop {
        let Some(i) = st.pick(&tried) else {
            if st.activator.enabled() && held.is_none() {
                match st.hold().await {
                    Ok(took) => {
                        held = Some(took);
                        tried.clear();
                        continue;
                    }
                    Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            st.no_upstream.inc();
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy upstream".into(),
            );
        };
        tried.push(i);
        let u = &st.upstreams[i];
        let uri: Uri = match format!("{}{}", u.url, path).parse() {
            Ok(uri) => uri,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad path: {e}")),
        };
        let mut out = http::Request::new(Full::new(body.clone()));
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = headers.clone();
        u.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(&u.in_flight);
        let sent = tokio::time::timeout(st.proxy_timeout, st.client.request(out)).await;
        drop(guard);
        match sent {
            Ok(Ok(resp))
                if st.activator.enabled()
                    && resp.headers().contains_key(crate::lifecycle::COLD_HEADER) =>
            {
                // Refused unprocessed by a cold instance: out of rotation, then held.
                st.set_up(i, false, "instance is cold");
                continue;
            }
            Ok(Ok(resp)) => {
                u.requests.fetch_add(1, Ordering::Relaxed);
                st.count_response(&u.url, resp.status().as_str());
                let (mut rp, rb) = resp.into_parts();
                strip_hop_by_hop(&mut rp.headers);
                if let Ok(v) = HeaderValue::from_str(&u.url) {
                    rp.headers
                        .insert(HeaderName::from_static("x-edge-upstream"), v);
                }
                if let Some(took) = held {
                    rp.headers.insert(
                        HeaderName::from_static("x-cold-start"),
                        HeaderValue::from_static("true"),
                    );
                    rp.headers.insert(
                        HeaderName::from_static("x-edge-held-ms"),
                        HeaderValue::from(took.as_millis() as u64),
                    );
                }
                return Response::from_parts(rp, Body::new(rb));
            }
            Ok(Err(e)) if e.is_connect() => {
                u.errors.fetch_add(1, Ordering::Relaxed);
                st.set_up(i, false, "connect failed");
                continue;
            }
            Ok(Err(e)) if is_idempotent(&parts.method) => {
                // E.g. a kept-alive connection reset by an instance that just died: the
                // request may or may not have reached it, which is harmless for idempotent
                // methods, so take the upstream out and try the next one.
                u.errors.fetch_add(1, Ordering::Relaxed);
                st.set_up(i, false, "transport error");
                tracing::warn!(upstream = %u.url, error = %e, "retrying an idempotent request elsewhere");
                continue;
            }
            Ok(Err(e)) => {
                u.errors.fetch_add(1, Ordering::Relaxed);
                st.count_response(&u.url, "502");
                return error(StatusCode::BAD_GATEWAY, format!("upstream {}: {e}", u.url));
            }
            Err(_) => {
                u.errors.fetch_add(1, Ordering::Relaxed);
                st.count_response(&u.url, "504");
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("upstream {} timed out", u.url),
                );
            }
        }
    }
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::OPTIONS
            | http::Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn cfg(upstreams: Vec<String>, strategy: Strategy) -> EdgeConfig {
        EdgeConfig {
            log_filter: "info".into(),
            upstreams,
            secondary_upstreams: Vec::new(),
            strategy,
            health_interval: Duration::from_millis(50),
            health_timeout: Duration::from_millis(200),
            health_path: "/health".into(),
            activator: ActivatorConfig::default(),
            proxy_timeout: Duration::from_secs(5),
        }
    }

    /// A fake upstream answering its name on every path; `/slow` waits 300 ms.
    async fn fake(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/slow",
                get(move || async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    name
                }),
            )
            .fallback(move || async move { name });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            axum::serve(l, app).await.unwrap();
        });
        (format!("http://{addr}"), h)
    }

    async fn get_body(app: &Router, path: &str) -> (StatusCode, String) {
        let r = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let s = r.status();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn least_connections_prefers_idle_upstream() {
        let st = EdgeState::new(&cfg(
            vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            Strategy::LeastConnections,
        ));
        st.upstreams[0].in_flight.store(3, Ordering::Relaxed);
        for _ in 0..5 {
            assert_eq!(st.pick(&[]), Some(1));
        }
        st.upstreams[1].up.store(false, Ordering::Relaxed);
        assert_eq!(st.pick(&[]), Some(0));
        assert_eq!(st.pick(&[0]), None);
    }

    #[test]
    fn round_robin_rotates_over_healthy() {
        let st = EdgeState::new(&cfg(
            vec![
                "http://a:1".into(),
                "http://b:1".into(),
                "http://c:1".into(),
            ],
            Strategy::RoundRobin,
        ));
        let picks: Vec<_> = (0..6).map(|_| st.pick(&[]).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        st.upstreams[1].up.store(false, Ordering::Relaxed);
        let picks: Vec<_> = (0..4).map(|_| st.pick(&[]).unwrap()).collect();
        assert!(!picks.contains(&1));
        assert!(picks.contains(&0) && picks.contains(&2));
    }

    #[test]
    fn prefers_the_primary_region_and_fails_over_and_back() {
        let mut c = cfg(
            vec!["http://p1:1".into(), "http://p2:1".into()],
            Strategy::RoundRobin,
        );
        c.secondary_upstreams = vec!["http://s1:1".into(), "http://s2:1".into()];
        let st = EdgeState::new(&c);
        let picks: Vec<_> = (0..8).map(|_| st.pick(&[]).unwrap()).collect();
        assert!(picks.iter().all(|i| *i < 2), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&1));
        // One primary down: the other primary takes everything.
        st.upstreams[0].up.store(false, Ordering::Relaxed);
        assert!((0..4).all(|_| st.pick(&[]) == Some(1)));
        // Tried the last primary: the request goes to the secondary region.
        assert!(st.pick(&[1]).is_some_and(|i| i >= 2));
        // The whole primary region down: the secondary's, rotated.
        st.upstreams[1].up.store(false, Ordering::Relaxed);
        let picks: Vec<_> = (0..4).map(|_| st.pick(&[]).unwrap()).collect();
        assert!(picks.contains(&2) && picks.contains(&3), "{picks:?}");
        // A primary back: fail back at once.
        st.upstreams[1].up.store(true, Ordering::Relaxed);
        assert!((0..4).all(|_| st.pick(&[]) == Some(1)));
        // Least-connections too stays in the primary region however busy it is.
        let mut c = c.clone();
        c.strategy = Strategy::LeastConnections;
        let st = EdgeState::new(&c);
        st.upstreams[0].in_flight.store(10, Ordering::Relaxed);
        st.upstreams[1].in_flight.store(10, Ordering::Relaxed);
        assert!(st.pick(&[]).is_some_and(|i| i < 2));
    }

    #[tokio::test]
    async fn proxies_round_robin_and_fails_over() {
        let (a, ha) = fake("A").await;
        let (b, hb) = fake("B").await;
        let st = EdgeState::new(&cfg(vec![a.clone(), b], Strategy::RoundRobin));
        let app = app(st.clone());
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (s, body) = get_body(&app, "/anything?x=1").await;
            assert_eq!(s, StatusCode::OK);
            seen.push(body);
        }
        assert_eq!(seen, vec!["A", "B", "A", "B"]);
        // B dies: the connect error takes it out and the request goes to A.
        hb.abort();
        let _ = hb.await;
        for _ in 0..4 {
            let (s, body) = get_body(&app, "/x").await;
            assert_eq!((s, body.as_str()), (StatusCode::OK, "A"));
        }
        let (_, status) = get_body(&app, "/edge/upstreams").await;
        assert!(status.contains("\"up\":false"), "{status}");
        let (_, m) = get_body(&app, "/metrics").await;
        assert!(
            m.contains(&format!("edge_upstream_up{{upstream=\"{a}\"}} 1")),
            "{m}"
        );
        ha.abort();
    }

    #[tokio::test]
    async fn health_check_restores_an_upstream() {
        let (a, ha) = fake("A").await;
        let st = EdgeState::new(&cfg(vec![a], Strategy::LeastConnections));
        st.upstreams[0].up.store(false, Ordering::Relaxed);
        let app = app(st.clone());
        let (s, _) = get_body(&app, "/x").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let stop = CancellationToken::new();
        let h = tokio::spawn(health_loop(st.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(st.upstreams[0].up.load(Ordering::Relaxed));
        let (s, body) = get_body(&app, "/x").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "A"));
        stop.cancel();
        h.await.unwrap();
        ha.abort();
    }

    #[tokio::test]
    async fn least_connections_routes_around_a_busy_upstream() {
        let (a, ha) = fake("A").await;
        let (b, hb) = fake("B").await;
        let st = EdgeState::new(&cfg(vec![a, b], Strategy::LeastConnections));
        let app = app(st.clone());
        let slow = tokio::spawn({
            let app = app.clone();
            async move { get_body(&app, "/slow").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let busy = if st.upstreams[0].in_flight.load(Ordering::Relaxed) == 1 {
            "A"
        } else {
            "B"
        };
        for _ in 0..3 {
            let (_, body) = get_body(&app, "/x").await;
            assert_ne!(body, busy);
        }
        assert_eq!(slow.await.unwrap().1, busy);
        ha.abort();
        hb.abort();
    }
}

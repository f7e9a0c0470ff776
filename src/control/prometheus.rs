//! `--metrics-addr ADDR`: the run's own metrics in the Prometheus text format (version
//! 0.0.4, written by the prometheus-client crate) while it runs, so Grafana or a Prometheus
//! server can watch a long test. `GET /metrics` (or `/`) on ADDR; the endpoint closes when the
//! load ends.
//!
//! A controller like the others: once a tick it renders the text from the tick's snapshot
//! (nothing is computed per scrape or per request), and a task of its own answers scrapes
//! with the latest text. Metrics, per source (`scenario` label: a scenario's name, or
//! `probe:NAME`):
//!
//! ```text
//! loadgate_requests_total{scenario}                 responses (and transport failures)
//! loadgate_errors_total{scenario,kind}              failed requests by error kind
//! loadgate_dropped_iterations_total{scenario}       arrivals not sent (no free VU)
//! loadgate_request_duration_seconds{scenario}       histogram, intended send -> last byte
//! loadgate_active_vus{scenario}                     VUs running now
//! loadgate_check_passing{check,kind}                1 while a check holds, 0 when it fails:
//!                                                   thresholds (judged on the snapshot),
//!                                                   probes (failing since a probe_failure),
//!                                                   SLO burn-rate pairs (alerting)
//! loadgate_run_elapsed_seconds                      the run clock
//! ```
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Action, Conclusion, Controller, End, StartCtx, Tick};
use crate::checks::{judge_threshold, CheckKind};
use crate::metrics::recorder::{row_name, Aggregator};
use crate::metrics::{EventKind, RunMetrics, SourceKind};
use crate::spec::{RunSpec, ThresholdSpec};

/// Upper bounds of the latency histogram's buckets, seconds.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What one render shows (built from a tick; the collector encodes it).
#[derive(Debug, Default, Clone)]
struct State {
    elapsed_s: f64,
    /// Per source: name, requests, dropped, active VUs, errors by kind, latency
    /// (sum s, count, per-bucket counts).
    sources: Vec<SourceState>,
    /// (check, kind, passing)
    checks: Vec<(String, &'static str, bool)>,
}

#[derive(Debug, Default, Clone)]
struct SourceState {
    name: String,
    requests: u64,
    dropped: u64,
    vus: u64,
    errors: Vec<(&'static str, u64)>,
    sum_s: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl Collector for State {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut m = enc.encode_descriptor(
                "loadgate_requests",
                "Requests completed (responses and transport failures)",
                None,
                MetricType::Counter,
            )?;
            for s in &self.sources {
                let labels = [("scenario", s.name.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, f64>(&s.requests, None)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "loadgate_errors",
                "Failed requests by error kind",
                None,
                MetricType::Counter,
            )?;
            for s in &self.sources {
                for (kind, n) in &s.errors {
                    let labels = [("scenario", s.name.as_str()), ("kind", kind)];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, f64>(n, None)?;
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "loadgate_dropped_iterations",
                "Arrivals that found no free VU and were not sent",
                None,
                MetricType::Counter,
            )?;
            for s in &self.sources {
                let labels = [("scenario", s.name.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, f64>(&s.dropped, None)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "loadgate_request_duration_seconds",
                "Latency from the intended send time to the last byte",
                None,
                MetricType::Histogram,
            )?;
            for s in &self.sources {
                let labels = [("scenario", s.name.as_str())];
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(s.sum_s, s.count, &s.buckets, None)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "loadgate_active_vus",
                "VUs running now",
                None,
                MetricType::Gauge,
            )?;
            for s in &self.sources {
                let labels = [("scenario", s.name.as_str())];
                m.encode_family(&labels)?.encode_gauge(&s.vus)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "loadgate_check_passing",
                "1 while a check holds, 0 while it fails",
                None,
                MetricType::Gauge,
            )?;
            for (check, kind, passing) in &self.checks {
                let labels = [("check", check.as_str()), ("kind", kind)];
                m.encode_family(&labels)?.encode_gauge(&(*passing as u64))?;
            }
        }
        let mut m = enc.encode_descriptor(
            "loadgate_run_elapsed_seconds",
            "Seconds since the run started",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&self.elapsed_s)?;
        Ok(())
    }
}

fn render(state: &State) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(state.clone()));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "rendering the Prometheus metrics");
    }
    out
}

/// The controller behind `--metrics-addr`.
pub struct PrometheusEndpoint {
    listener: Option<std::net::TcpListener>,
    thresholds: Vec<ThresholdSpec>,
    text: Arc<RwLock<String>>,
    agg: Option<Arc<Aggregator>>,
    /// Probes and SLO pairs by check name: passing?
    states: Vec<(String, &'static str, bool)>,
}

impl PrometheusEndpoint {
    /// Bind `addr` now (before anything is sent), so a busy or bad address fails the run at
    /// once.
    pub fn bind(addr: SocketAddr, spec: &RunSpec) -> io::Result<PrometheusEndpoint> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let mut states = Vec::new();
        for p in &spec.probes {
            states.push((format!("probe {}", p.name), CheckKind::Probe.as_str(), true));
        }
        for s in &spec.slos {
            states.push((format!("slo {}", s.name), CheckKind::Slo.as_str(), true));
        }
        Ok(PrometheusEndpoint {
            listener: Some(listener),
            thresholds: spec.thresholds.clone(),
            text: Arc::new(RwLock::new(String::new())),
            agg: None,
            states,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    fn state(&self, snap: &RunMetrics, elapsed: Duration) -> State {
        let vus = self
            .agg
            .as_ref()
            .map(|a| a.active_vus())
            .unwrap_or_default();
        let mut sources: Vec<SourceState> = snap
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, info)| SourceState {
                name: row_name(info),
                dropped: info.dropped,
                vus: if info.kind == SourceKind::Scenario {
                    vus.get(i).copied().unwrap_or(0)
                } else {
                    0
                },
                ..SourceState::default()
            })
            .collect();
        let mut hists: Vec<hdrhistogram::Histogram<u64>> = (0..sources.len())
            .map(|_| crate::metrics::new_histogram())
            .collect();
        for (k, s) in &snap.series {
            let i = k.scenario as usize;
            let Some(src) = sources.get_mut(i) else {
                continue;
            };
            src.requests += s.requests;
            if let Some(e) = k.error {
                if s.failed > 0 {
                    match src.errors.iter_mut().find(|(n, _)| *n == e.as_str()) {
                        Some(x) => x.1 += s.failed,
                        None => src.errors.push((e.as_str(), s.failed)),
                    }
                }
            }
            if let Some(h) = hists.get_mut(i) {
                let _ = h.add(&s.duration);
            }
        }
        for (src, h) in sources.iter_mut().zip(&hists) {
            src.errors.sort();
            src.count = h.len();
            src.sum_s = h.mean() * h.len() as f64 / 1e6;
            let mut below = 0;
            for b in BUCKETS {
                let upto = if h.is_empty() {
                    0
                } else {
                    h.count_between(0, (b * 1e6) as u64)
                };
                src.buckets.push((b, upto.saturating_sub(below)));
                below = upto.max(below);
            }
            src.buckets
                .push((f64::INFINITY, h.len().saturating_sub(below)));
        }
        let mut checks: Vec<(String, &'static str, bool)> = self
            .thresholds
            .iter()
            .map(|t| {
                let c = judge_threshold(t, snap);
                (c.name, CheckKind::Threshold.as_str(), c.passed)
            })
            .collect();
        checks.extend(self.states.iter().cloned());
        State {
            elapsed_s: elapsed.as_secs_f64(),
            sources,
            checks,
        }
    }

    fn publish(&self, state: &State) {
        let text = render(state);
        match self.text.write() {
            Ok(mut g) => *g = text,
            Err(p) => *p.into_inner() = text,
        }
    }
}

impl Controller for PrometheusEndpoint {
    fn name(&self) -> &'static str {
        "metrics-addr"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        self.agg = Some(ctx.aggregator.clone());
        self.publish(&self.state(&RunMetrics::default(), Duration::ZERO));
        if let Some(l) = self.listener.take() {
            match tokio::net::TcpListener::from_std(l) {
                Ok(listener) => {
                    let (text, stop) = (self.text.clone(), ctx.stop.clone());
                    ctx.tasks.spawn(serve(listener, text, stop));
                }
                Err(e) => tracing::error!(error = %e, "--metrics-addr: cannot serve"),
            }
        }
        Vec::new()
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        for e in tick.events {
            let (name, passing) = match &e.kind {
                EventKind::ProbeFailure { probe, .. } => (format!("probe {probe}"), false),
                EventKind::ProbeRecovered { probe, .. } => (format!("probe {probe}"), true),
                EventKind::BurnAlert { slo, .. } => (format!("slo {slo}"), false),
                EventKind::BurnResolved { slo, .. } => (format!("slo {slo}"), true),
                _ => continue,
            };
            if let Some(s) = self.states.iter_mut().find(|s| s.0 == name) {
                s.2 = passing;
            }
        }
        if !tick.last {
            self.publish(&self.state(tick.snapshot, tick.at));
        }
        Vec::new()
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        Conclusion::default()
    }
}

/// Answer scrapes until `stop`: one request per connection, the latest text.
async fn serve(
    listener: tokio::net::TcpListener,
    text: Arc<RwLock<String>>,
    stop: CancellationToken,
) {
    loop {
        let (mut conn, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "--metrics-addr: accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let text = text.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&buf);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let response = if path == "/metrics" || path == "/" {
                let body = text.read().map(|g| g.clone()).unwrap_or_default();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    body.len()
                )
            } else {
                let body = "not found: GET /metrics\n";
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            if let Err(e) = conn.write_all(response.as_bytes()).await {
                tracing::debug!(error = %e, "--metrics-addr: write");
            }
            let _ = conn.shutdown().await;
        });
    }
}

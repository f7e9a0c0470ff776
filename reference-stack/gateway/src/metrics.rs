//! The gateway's Prometheus metrics, kept in a [`prometheus_client`] registry and rendered in
//! the Prometheus text format (version 0.0.4, `text/plain; version=0.0.4`).
//!
//! Why a crate and not a hand-written registry: labelled families, histogram buckets, label
//! escaping and the exposition format are prometheus-client's job, and its families sit behind
//! non-poisoning locks (a panicking request handler cannot break later observations or
//! renders). The series names are API (loadgate's stack tests and drills read them): every
//! name starts with `gateway_`, counters end in `_total`.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `gateway_info` | gauge (1) | instance, profile, build |
//! | `gateway_http_requests_total` | counter | route, status, version |
//! | `gateway_http_request_duration_seconds` | histogram ([`BUCKETS`]) | route, status, version |
//! | `gateway_in_flight_requests` | gauge | |
//! | `gateway_queue_depth`, `gateway_dlq_depth` | gauge | |
//! | `gateway_workers_current`, `gateway_workers_desired` | gauge | |
//! | `gateway_jobs_enqueued_total`, `gateway_jobs_retried_total`, `gateway_jobs_dead_total` | counter | |
//! | `gateway_jobs_processed_total` | counter | outcome (succeeded \| failed) |
//! | `gateway_cache_hits_total`, `gateway_cache_misses_total` | counter | |
//! | `gateway_tokens_total` | counter | version, kind (prompt \| completion) |
//! | `gateway_cost_usd_total` | counter (float) | version |
//! | `gateway_shed_requests_total` | counter | reason (inflight \| queue_full \| rate_limit) |
//! | `gateway_autoscaler_decisions_total` | counter | direction (up \| down \| none) |
//! | `gateway_faults_injected_total` | counter | version, kind (latency \| error) |
//! | `gateway_conversations_written_total`, `gateway_conversations_dropped_total` | counter | |
//! | `gateway_budget_exceeded` | gauge (0/1) | | ([`crate::budget`])
//! | `gateway_budget_cost_per_min_usd` | gauge (float) | |
//! | `gateway_budget_mode` | gauge (1 = configured and on) | mode (downgrade \| throttle) |
//! | `gateway_budget_downgrades_total` | counter | from, to |
//! | `gateway_budget_throttled_total` | counter | |
//!
//! Latency histograms are in seconds and measure from the moment the request entered the
//! router to the moment the response head was produced (the body of every gateway response is
//! already in memory).

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Histogram bucket upper bounds, seconds.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Labels of the per-request series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: String,
    pub version: String,
}

/// `outcome` of a job attempt: `succeeded` | `failed`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// `version` and `kind`: tokens (prompt | completion) and faults (latency | error).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionKindLabels {
    pub version: &'static str,
    pub kind: &'static str,
}

/// A model `version`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: &'static str,
}

/// The budget's `mode`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

/// A downgrade `from` one model version `to` another.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FromToLabels {
    pub from: &'static str,
    pub to: &'static str,
}

/// Why a request was shed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// An autoscaler decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub direction: &'static str,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every series the gateway exports; the handles are cheap clones of the registered metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: HistogramFamily,
    pub in_flight: Gauge,
    pub queue_depth: Gauge,
    pub dlq_depth: Gauge,
    pub workers_current: Gauge,
    pub workers_desired: Gauge,
    pub jobs_enqueued: Counter,
    pub jobs_processed: Family<OutcomeLabels, Counter>,
    pub jobs_retried: Counter,
    pub jobs_dead: Counter,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub tokens: Family<VersionKindLabels, Counter>,
    pub cost_usd: Family<VersionLabels, FloatCounter>,
    pub shed: Family<ReasonLabels, Counter>,
    pub autoscaler_decisions: Family<DirectionLabels, Counter>,
    pub faults_injected: Family<VersionKindLabels, Counter>,
    pub conversations_written: Counter,
    pub conversations_dropped: Counter,
    pub budget_exceeded: Gauge,
    pub budget_cost_per_min: FloatGauge,
    pub budget_mode: Family<ModeLabels, Gauge>,
    pub budget_downgrades: Family<FromToLabels, Counter>,
    pub budget_throttled: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            dlq_depth: Gauge::default(),
            workers_current: Gauge::default(),
            workers_desired: Gauge::default(),
            jobs_enqueued: Counter::default(),
            jobs_processed: Family::default(),
            jobs_retried: Counter::default(),
            jobs_dead: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            tokens: Family::default(),
            cost_usd: Family::default(),
            shed: Family::default(),
            autoscaler_decisions: Family::default(),
            faults_injected: Family::default(),
            conversations_written: Counter::default(),
            conversations_dropped: Counter::default(),
            budget_exceeded: Gauge::default(),
            budget_cost_per_min: FloatGauge::default(),
            budget_mode: Family::default(),
            budget_downgrades: Family::default(),
            budget_throttled: Counter::default(),
        };
        m.registered()
    }
}

impl Metrics {
    /// Registers every handle, in exposition order. Help texts get their final `.` from
    /// prometheus-client; counters get their `_total` suffix from it.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "gateway_http_requests",
            "HTTP requests by route, status and model version",
            self.requests.clone(),
        );
        r.register(
            "gateway_http_request_duration_seconds",
            "Time from routing to response head, seconds",
            self.latency.clone(),
        );
        r.register(
            "gateway_in_flight_requests",
            "Requests being served now",
            self.in_flight.clone(),
        );
        r.register(
            "gateway_queue_depth",
            "Jobs waiting in the Redis queue",
            self.queue_depth.clone(),
        );
        r.register(
            "gateway_dlq_depth",
            "Jobs in the dead-letter queue",
            self.dlq_depth.clone(),
        );
        r.register(
            "gateway_workers_current",
            "Job workers running in this instance",
            self.workers_current.clone(),
        );
        r.register(
            "gateway_workers_desired",
            "Job workers the autoscaler wants",
            self.workers_desired.clone(),
        );
        r.register(
            "gateway_jobs_enqueued",
            "Jobs accepted",
            self.jobs_enqueued.clone(),
        );
        r.register(
            "gateway_jobs_processed",
            "Job attempts finished, by outcome",
            self.jobs_processed.clone(),
        );
        r.register(
            "gateway_jobs_retried",
            "Job attempts scheduled for retry",
            self.jobs_retried.clone(),
        );
        r.register(
            "gateway_jobs_dead",
            "Jobs moved to the dead-letter queue",
            self.jobs_dead.clone(),
        );
        r.register(
            "gateway_cache_hits",
            "Chat response cache hits",
            self.cache_hits.clone(),
        );
        r.register(
            "gateway_cache_misses",
            "Chat response cache misses",
            self.cache_misses.clone(),
        );
        r.register(
            "gateway_tokens",
            "Tokens accounted, by model version and kind (prompt|completion)",
            self.tokens.clone(),
        );
        r.register(
            "gateway_cost_usd",
            "Simulated cost in USD by model version",
            self.cost_usd.clone(),
        );
        r.register(
            "gateway_shed_requests",
            "Requests refused by backpressure, by reason",
            self.shed.clone(),
        );
        r.register(
            "gateway_autoscaler_decisions",
            "Autoscaler evaluations by decision (up|down|none)",
            self.autoscaler_decisions.clone(),
        );
        r.register(
            "gateway_faults_injected",
            "Drill faults injected, by version and kind (latency|error)",
            self.faults_injected.clone(),
        );
        r.register(
            "gateway_conversations_written",
            "Conversation rows committed to Postgres",
            self.conversations_written.clone(),
        );
        r.register(
            "gateway_conversations_dropped",
            "Conversation rows dropped (writer queue full or insert failed)",
            self.conversations_dropped.clone(),
        );
        r.register(
            "gateway_budget_exceeded",
            "1 while the cost budget is exceeded",
            self.budget_exceeded.clone(),
        );
        r.register(
            "gateway_budget_cost_per_min_usd",
            "Model spend per minute over the budget window, USD",
            self.budget_cost_per_min.clone(),
        );
        r.register(
            "gateway_budget_mode",
            "1 for the configured budget mode when a budget is set",
            self.budget_mode.clone(),
        );
        r.register(
            "gateway_budget_downgrades",
            "Chat requests routed to the cheaper model by the budget",
            self.budget_downgrades.clone(),
        );
        r.register(
            "gateway_budget_throttled",
            "Chat requests refused (429) by the budget",
            self.budget_throttled.clone(),
        );
        self
    }

    /// Counts a refusal by backpressure.
    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Renders every series in the Prometheus text format; `instance` and `profile` go into
    /// `gateway_info`.
    pub fn render(&self, instance: &str, profile: &str) -> String {
        let mut info = Registry::default();
        info.register(
            "gateway",
            "Gateway instance information",
            Info::new(vec![
                ("instance", instance.to_string()),
                ("profile", profile.to_string()),
                ("build", env!("CARGO_PKG_VERSION").to_string()),
            ]),
        );
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &info);
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(route: &str, status: &str, version: &str) -> RequestLabels {
        RequestLabels {
            route: route.into(),
            status: status.into(),
            version: version.into(),
        }
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        let l = labels("/v1/chat", "200", "v1");
        m.requests.get_or_create(&l).inc();
        m.requests.get_or_create(&l).inc();
        m.latency.get_or_create(&l).observe(0.003);
        m.shed("inflight");
        m.workers_current.set(3);
        m.tokens
            .get_or_create(&VersionKindLabels {
                version: "v2",
                kind: "completion",
            })
            .inc_by(42);
        let t = m.render("gw-a", "dev");
        assert!(
            t.contains("gateway_info{instance=\"gw-a\",profile=\"dev\""),
            "{t}"
        );
        assert!(t.contains(
            "gateway_http_requests_total{route=\"/v1/chat\",status=\"200\",version=\"v1\"} 2"
        ));
        assert!(t.contains(
            "gateway_http_request_duration_seconds_bucket{route=\"/v1/chat\",status=\"200\",version=\"v1\",le=\"0.0025\"} 0"
        ));
        assert!(t.contains(
            "gateway_http_request_duration_seconds_bucket{route=\"/v1/chat\",status=\"200\",version=\"v1\",le=\"0.005\"} 1"
        ));
        assert!(t.contains("gateway_http_request_duration_seconds_count{route=\"/v1/chat\",status=\"200\",version=\"v1\"} 1"));
        assert!(t.contains("gateway_shed_requests_total{reason=\"inflight\"} 1"));
        assert!(t.contains("# TYPE gateway_workers_current gauge\ngateway_workers_current 3"));
        assert!(t.contains("gateway_tokens_total{version=\"v2\",kind=\"completion\"} 42"));
        // every counter keeps its `_total` name in HELP and TYPE too (text format 0.0.4)
        assert!(
            t.contains("# TYPE gateway_jobs_retried_total counter"),
            "{t}"
        );
        assert!(!t.contains(".."), "help text ends in a doubled period: {t}");
        // every sample line is `name{labels} value` or `name value`
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad line {line}");
            assert!(
                line.starts_with("gateway_"),
                "series without prefix: {line}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.requests
            .get_or_create(&labels("a\"b", "200", "none"))
            .inc();
        let t = m.render("gw", "dev");
        assert!(
            t.contains(
                "gateway_http_requests_total{route=\"a\\\"b\",status=\"200\",version=\"none\"} 1"
            ),
            "{t}"
        );
    }
}

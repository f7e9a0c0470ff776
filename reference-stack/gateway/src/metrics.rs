//! A small Prometheus registry and its text rendering.
//!
//! The gateway needs a fixed, known set of series, so instead of a general metrics crate it
//! keeps plain atomics for unlabelled values and short mutex-guarded maps for labelled ones
//! (one lock per observation, held for a short scan of a few dozen series and an add). Latency histograms are in
//! seconds and measure from the moment the request entered the router to the moment the
//! response head was produced (the body of every gateway response is already in memory).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Histogram bucket upper bounds, seconds.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Label values, in the order of the family's label names.
pub type Labels = Vec<String>;

/// Counters (or gauges) by label values.
#[derive(Default)]
pub struct CounterVec {
    map: Mutex<BTreeMap<Labels, f64>>,
}

impl CounterVec {
    pub fn add(&self, labels: &[&str], v: f64) {
        let mut m = self.map.lock().unwrap();
        if let Some((_, x)) = m.iter_mut().find(|(k, _)| same(k, labels)) {
            *x += v;
            return;
        }
        m.insert(labels.iter().map(|s| s.to_string()).collect(), v);
    }
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0)
    }
    pub fn set(&self, labels: &[&str], v: f64) {
        let mut m = self.map.lock().unwrap();
        m.insert(labels.iter().map(|s| s.to_string()).collect(), v);
    }
    pub fn get(&self, labels: &[&str]) -> f64 {
        let m = self.map.lock().unwrap();
        m.iter()
            .find(|(k, _)| same(k, labels))
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    }
    fn snapshot(&self) -> Vec<(Labels, f64)> {
        self.map
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

fn same(k: &Labels, labels: &[&str]) -> bool {
    k.len() == labels.len() && k.iter().zip(labels).all(|(a, b)| a == b)
}

#[derive(Clone, Default)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Histograms by label values.
#[derive(Default)]
pub struct HistogramVec {
    map: Mutex<BTreeMap<Labels, Hist>>,
}

impl HistogramVec {
    pub fn observe(&self, labels: &[&str], seconds: f64) {
        let mut m = self.map.lock().unwrap();
        let key = m.keys().find(|k| same(k, labels)).cloned();
        let h = match key {
            Some(k) => m.get_mut(&k).expect("present"),
            None => m
                .entry(labels.iter().map(|s| s.to_string()).collect())
                .or_default(),
        };
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }
}

/// Every series the gateway exports.
#[derive(Default)]
pub struct Metrics {
    pub requests: CounterVec,  // route, status, version
    pub latency: HistogramVec, // route, status, version
    pub in_flight: AtomicI64,
    pub queue_depth: AtomicI64,
    pub dlq_depth: AtomicI64,
    pub workers_current: AtomicI64,
    pub workers_desired: AtomicI64,
    pub jobs_enqueued: AtomicU64,
    pub jobs_processed: CounterVec, // outcome: succeeded | failed
    pub jobs_retried: AtomicU64,
    pub jobs_dead: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub tokens: CounterVec,               // version, kind
    pub cost_usd: CounterVec,             // version
    pub shed: CounterVec,                 // reason
    pub autoscaler_decisions: CounterVec, // direction
    pub faults_injected: CounterVec,      // version, kind
    pub conversations_written: AtomicU64,
    pub conversations_dropped: AtomicU64,
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(names: &[&str], values: &[String]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", esc(v)))
        .collect();
    parts.join(",")
}

/// Writes Prometheus text exposition format (version 0.0.4).
pub struct Writer {
    pub out: String,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: String::with_capacity(8192),
        }
    }
    pub fn scalar(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            fmt_f(v)
        );
    }
    pub fn vec(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        names: &[&str],
        rows: Vec<(Labels, f64)>,
    ) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (l, v) in rows {
            let _ = writeln!(
                self.out,
                "{name}{{{}}} {}",
                labels_text(names, &l),
                fmt_f(v)
            );
        }
    }
    pub fn counter_vec(&mut self, name: &str, help: &str, names: &[&str], c: &CounterVec) {
        self.vec(name, "counter", help, names, c.snapshot());
    }
    pub fn histogram_vec(&mut self, name: &str, help: &str, names: &[&str], h: &HistogramVec) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let snap: Vec<(Labels, Hist)> = h
            .map
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (l, hist) in snap {
            let base = labels_text(names, &l);
            let sep = if base.is_empty() { "" } else { "," };
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    self.out,
                    "{name}_bucket{{{base}{sep}le=\"{}\"}} {}",
                    fmt_f(*b),
                    hist.counts[i]
                );
            }
            let _ = writeln!(
                self.out,
                "{name}_bucket{{{base}{sep}le=\"+Inf\"}} {}",
                hist.count
            );
            let _ = writeln!(self.out, "{name}_sum{{{base}}} {}", fmt_f(hist.sum));
            let _ = writeln!(self.out, "{name}_count{{{base}}} {}", hist.count);
        }
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

fn fmt_f(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Metrics {
    /// Renders every series; `instance` and `profile` go into `gateway_info`.
    pub fn render(&self, instance: &str, profile: &str) -> String {
        let ld = |a: &AtomicI64| a.load(Ordering::Relaxed) as f64;
        let lu = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut w = Writer::new();
        w.vec(
            "gateway_info",
            "gauge",
            "Gateway instance information.",
            &["instance", "profile", "build"],
            vec![(
                vec![
                    instance.into(),
                    profile.into(),
                    env!("CARGO_PKG_VERSION").into(),
                ],
                1.0,
            )],
        );
        w.counter_vec(
            "gateway_http_requests_total",
            "HTTP requests by route, status and model version.",
            &["route", "status", "version"],
            &self.requests,
        );
        w.histogram_vec(
            "gateway_http_request_duration_seconds",
            "Time from routing to response head, seconds.",
            &["route", "status", "version"],
            &self.latency,
        );
        w.scalar(
            "gateway_in_flight_requests",
            "gauge",
            "Requests being served now.",
            ld(&self.in_flight),
        );
        w.scalar(
            "gateway_queue_depth",
            "gauge",
            "Jobs waiting in the Redis queue.",
            ld(&self.queue_depth),
        );
        w.scalar(
            "gateway_dlq_depth",
            "gauge",
            "Jobs in the dead-letter queue.",
            ld(&self.dlq_depth),
        );
        w.scalar(
            "gateway_workers_current",
            "gauge",
            "Job workers running in this instance.",
            ld(&self.workers_current),
        );
        w.scalar(
            "gateway_workers_desired",
            "gauge",
            "Job workers the autoscaler wants.",
            ld(&self.workers_desired),
        );
        w.scalar(
            "gateway_jobs_enqueued_total",
            "counter",
            "Jobs accepted.",
            lu(&self.jobs_enqueued),
        );
        w.counter_vec(
            "gateway_jobs_processed_total",
            "Job attempts finished, by outcome.",
            &["outcome"],
            &self.jobs_processed,
        );
        w.scalar(
            "gateway_jobs_retried_total",
            "counter",
            "Job attempts scheduled for retry.",
            lu(&self.jobs_retried),
        );
        w.scalar(
            "gateway_jobs_dead_total",
            "counter",
            "Jobs moved to the dead-letter queue.",
            lu(&self.jobs_dead),
        );
        w.scalar(
            "gateway_cache_hits_total",
            "counter",
            "Chat response cache hits.",
            lu(&self.cache_hits),
        );
        w.scalar(
            "gateway_cache_misses_total",
            "counter",
            "Chat response cache misses.",
            lu(&self.cache_misses),
        );
        w.counter_vec(
            "gateway_tokens_total",
            "Tokens accounted, by model version and kind (prompt|completion).",
            &["version", "kind"],
            &self.tokens,
        );
        w.counter_vec(
            "gateway_cost_usd_total",
            "Simulated cost in USD by model version.",
            &["version"],
            &self.cost_usd,
        );
        w.counter_vec(
            "gateway_shed_requests_total",
            "Requests refused by backpressure, by reason.",
            &["reason"],
            &self.shed,
        );
        w.counter_vec(
            "gateway_autoscaler_decisions_total",
            "Autoscaler evaluations by decision (up|down|none).",
            &["direction"],
            &self.autoscaler_decisions,
        );
        w.counter_vec(
            "gateway_faults_injected_total",
            "Drill faults injected, by version and kind (latency|error).",
            &["version", "kind"],
            &self.faults_injected,
        );
        w.scalar(
            "gateway_conversations_written_total",
            "counter",
            "Conversation rows committed to Postgres.",
            lu(&self.conversations_written),
        );
        w.scalar(
            "gateway_conversations_dropped_total",
            "counter",
            "Conversation rows dropped (writer queue full or insert failed).",
            lu(&self.conversations_dropped),
        );
        w.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.requests.inc(&["/v1/chat", "200", "v1"]);
        m.requests.inc(&["/v1/chat", "200", "v1"]);
        m.latency.observe(&["/v1/chat", "200", "v1"], 0.003);
        m.shed.inc(&["inflight"]);
        m.workers_current.store(3, Ordering::Relaxed);
        m.tokens.add(&["v2", "completion"], 42.0);
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
        // every sample line is `name{labels} value` or `name value`
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad line {line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let c = CounterVec::default();
        c.inc(&["a\"b"]);
        let mut w = Writer::new();
        w.counter_vec("x_total", "x", &["l"], &c);
        assert!(w.out.contains("x_total{l=\"a\\\"b\"} 1"));
    }
}

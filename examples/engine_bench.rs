//! Quick throughput measurement of the engine's closed model (not a test):
//! `cargo run --release --example engine_bench -- http://127.0.0.1:8080/ 64 5 1`
//! (URL, connections, seconds, worker threads[, rate/s for the open model with that many
//! pre-allocated VUs]). Prints requests/s, drops and latency percentiles.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgate::engine::{self, EngineOptions};
use loadgate::grammar::template::Template;
use loadgate::spec::{ExecutorSpec, HttpOptions, RequestSpec, RunSpec, ScenarioSpec};
use tokio_util::sync::CancellationToken;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let conns: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let threads: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let rate: Option<f64> = args.get(5).and_then(|a| a.parse().ok());
    let parsed = url::Url::parse(&url).expect("URL");
    let target = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap())
        + &parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let spec = RunSpec {
        name: "bench".into(),
        target,
        http: HttpOptions::default(),
        feeders: BTreeMap::new(),
        scenarios: vec![ScenarioSpec {
            name: "bench".into(),
            executor: match rate {
                Some(rate) => ExecutorSpec::ConstantArrivalRate {
                    rate,
                    duration: Duration::from_secs(secs),
                    pre_allocated_vus: conns,
                    max_vus: conns * 4,
                },
                None => ExecutorSpec::ConstantVus {
                    vus: conns,
                    duration: Duration::from_secs(secs),
                },
            },
            start_after: Duration::ZERO,
            graceful_stop: Duration::from_secs(1),
            requests: vec![RequestSpec {
                name: "bench".into(),
                weight: 1,
                method: "GET".into(),
                path: Template::parse(parsed.path()).unwrap(),
                headers: vec![],
                body: None,
                body_json: false,
                checks: vec![],
            }],
            tags: BTreeMap::new(),
            flow: None,
            ledger: None,
        }],
        thresholds: vec![],
        probes: vec![],
        slos: vec![],
        canary: None,
        blue_green: None,
        report_formats: vec![],
        allow_hosts: vec![],
        faults: Vec::new(),
        scrapes: Vec::new(),
        dependencies: None,
        autoscaling: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let m = rt.block_on(async {
        let h = engine::start(
            Arc::new(spec),
            EngineOptions {
                threads,
                segment: None,
                slices: false,
            },
            CancellationToken::new(),
        )
        .expect("start");
        h.finish().await.expect("finish")
    });
    let wall = t0.elapsed().as_secs_f64();
    let st = m.aggregate(|_| true);
    let active = m.scenarios[0].active.as_secs_f64();
    println!(
        "service p50 {:.3} ms p99 {:.3} ms",
        st.service.value_at_quantile(0.5) as f64 / 1000.0,
        st.service.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "{} requests ({} failed, {} dropped) in {:.2}s: {:.0} req/s; p50 {:.3} ms p99 {:.3} ms (wall {:.2}s)",
        st.requests,
        st.failed,
        m.total_dropped(),
        active,
        st.requests as f64 / active,
        st.duration.value_at_quantile(0.5) as f64 / 1000.0,
        st.duration.value_at_quantile(0.99) as f64 / 1000.0,
        wall
    );
}

//! The scrape parser on the reference gateway's live /metrics (the captured copy under
//! testdata/scrape/gateway.prom is what tests/scrape.rs checks offline).
mod stack_support;

use std::time::Duration;

use loadgate::control::scrape::task::{client, scrape_once};
use loadgate::spec::{ScrapeSource, ScrapeSpec, StackBackend, StackSpec};
use loadgate::stack;
use stack_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_gateway_metrics_parse() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 1,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start process stack");
    let target = env_of(&stack.env(), "TARGET_URL");
    let scrape = ScrapeSpec {
        name: "gateway".into(),
        source: ScrapeSource::Url(format!("{target}/metrics")),
        every: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        series: vec![],
        rates: vec![],
        checks: vec![],
    };
    let values = scrape_once(&scrape, &client().unwrap())
        .await
        .expect("the gateway's /metrics parses");
    for name in [
        "gateway_queue_depth",
        "gateway_workers_current",
        "gateway_workers_desired",
    ] {
        assert!(
            values.iter().any(|(s, _)| s == name),
            "{name} in {values:?}"
        );
    }
    assert!(values.len() >= 20, "{} series", values.len());
    stack.shutdown().await.expect("shutdown");
}

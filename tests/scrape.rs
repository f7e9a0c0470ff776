//! Scrapers (`scrapes:`): the Prometheus text parser on a node-exporter-style fixture
//! (histograms, summaries, labels with escapes) and on the reference gateway's real /metrics
//! (captured under testdata/scrape/), and a run that scrapes a live endpoint and a command:
//! every series lands in summary.json's `scrapes` and timeseries.csv, failures are counted.
mod common;

use std::collections::HashMap;
use std::path::Path;

use axum::routing::get;
use axum::Router;
use loadgate::control::scrape::parse_exposition;
use loadgate::plan::{self, PlanOptions};
use loadgate::session::{self, OutDir, SessionOptions, Source};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use common::TestServer;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/scrape")
            .join(name),
    )
    .unwrap()
}

fn by_series(text: &str) -> HashMap<String, f64> {
    parse_exposition(text)
        .unwrap()
        .into_iter()
        .map(|s| (s.series(), s.value))
        .collect()
}

#[test]
fn node_exporter_text_flattens_histograms_summaries_and_unescapes_labels() {
    let text = fixture("node_exporter.prom");
    let samples = parse_exposition(&text).unwrap();
    let m: HashMap<String, f64> = samples.iter().map(|s| (s.series(), s.value)).collect();
    // Histogram: every bucket, the sum and the count, labels kept.
    for (le, n) in [
        ("0.005", 10.0),
        ("0.01", 15.0),
        ("0.1", 19.0),
        ("+Inf", 20.0),
    ] {
        let key =
            format!("http_request_duration_seconds_bucket{{handler=\"/metrics\",le=\"{le}\"}}");
        assert_eq!(m.get(&key), Some(&n), "{key} in {m:#?}");
    }
    assert_eq!(
        m["http_request_duration_seconds_sum{handler=\"/metrics\"}"],
        0.35
    );
    assert_eq!(
        m["http_request_duration_seconds_count{handler=\"/metrics\"}"],
        20.0
    );
    // Summary: quantiles, sum, count.
    assert_eq!(m["go_gc_duration_seconds{quantile=\"0.5\"}"], 4.2e-05);
    assert_eq!(m["go_gc_duration_seconds{quantile=\"1\"}"], 0.000912);
    assert_eq!(m["go_gc_duration_seconds_count"], 1337.0);
    // Counters, gauges, untyped with a timestamp.
    assert_eq!(m["node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}"], 2345.5);
    assert_eq!(m["node_load1"], 0.52);
    assert_eq!(m["node_untyped_thing"], 3.0);
    // Escapes: the label value is unescaped (a backslash, quotes, a comma, a newline) ...
    let odd = samples
        .iter()
        .find(|s| s.labels.iter().any(|(k, v)| k == "fstype" && v == "ntfs"))
        .expect("the escaped series");
    let labels: HashMap<&str, &str> = odd
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels["device"], "C:\\DIR");
    assert_eq!(labels["mountpoint"], "/mnt/a \"quoted\", b\nline");
    assert_eq!(odd.value, 1024.0);
    // ... and escaped again in the series key, so keys stay one line and round-trip.
    assert_eq!(
        odd.series(),
        "node_filesystem_avail_bytes{device=\"C:\\\\DIR\",fstype=\"ntfs\",mountpoint=\"/mnt/a \\\"quoted\\\", b\\nline\"}"
    );
    assert_eq!(samples.len(), m.len(), "series keys are unique");
    assert_eq!(samples.len(), 22);
}

#[test]
fn the_gateway_s_real_metrics_parse() {
    let m = by_series(&fixture("gateway.prom"));
    assert!(m.len() >= 20, "{} series", m.len());
    // What the autoscaling checks will read: the queue and the worker replicas.
    for k in [
        "gateway_queue_depth",
        "gateway_workers_current",
        "gateway_workers_desired",
    ] {
        assert!(
            m.contains_key(k),
            "{k} in {:#?}",
            m.keys().collect::<Vec<_>>()
        );
    }
    // The request histogram: buckets up to +Inf, with the count equal to the +Inf bucket.
    let inf: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("gateway_http_request_duration_seconds_bucket{")
                && k.contains("le=\"+Inf\"")
        })
        .collect();
    assert!(!inf.is_empty());
    for (k, v) in inf {
        let count = k
            .replace("_bucket{", "_count{")
            .replace(",le=\"+Inf\"", "")
            .replace("le=\"+Inf\",", "");
        assert_eq!(m.get(&count), Some(v), "{count}");
    }
}

#[test]
fn a_run_scrapes_an_endpoint_and_a_command_onto_the_timeline() {
    let metrics = fixture("node_exporter.prom");
    let srv = TestServer::axum(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/metrics", get(move || async move { metrics })),
    );
    let text = format!(
        r#"name: scrape
target: {}
scenarios:
  main: {{ executor: constant-arrival-rate, rate: 10/s, duration: 3s, request: {{ path: / }} }}
scrapes:
  node: {{ url: /metrics, every: 200ms, series: [node_load1, http_request_duration_seconds] }}
  depth: {{ command: [echo, "7.5"], every: 500ms }}
  down: {{ url: "http://127.0.0.1:{}/metrics", every: 500ms, timeout: 300ms }}
"#,
        srv.url(),
        common::closed_port()
    );
    let validated = plan::parse(
        &text,
        "scrape.yaml",
        Path::new("."),
        &PlanOptions::empty_env(),
    )
    .unwrap_or_else(|e| panic!("plan invalid:\n{e}"));
    let spec = validated.lower(&[]).expect("lowers");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = SessionOptions {
        out: OutDir::At(dir.path().to_path_buf()),
        run: loadgate::run::RunOptions {
            threads: Some(1),
            ..Default::default()
        },
        ..SessionOptions::default()
    };
    let summary = rt.block_on(async {
        session::run(Source::Spec(spec), &opts, &CancellationToken::new())
            .await
            .expect("the session runs")
            .summary
    });
    let v: Value = serde_json::to_value(&summary).unwrap();
    // Scrapes produce no checks: the run passes on its (absent) thresholds.
    assert_eq!(v["verdict"], "pass", "{v:#}");
    let scrapes = v["scrapes"].as_array().expect("a scrapes section");
    let get = |n: &str| scrapes.iter().find(|s| s["name"] == n).unwrap().clone();

    let node = get("node");
    let n = node["scrapes"].as_u64().unwrap();
    assert!((8..=20).contains(&n), "3 s at 200 ms: {n} scrapes");
    assert_eq!(node["errors"], 0);
    let points = node["points"].as_array().unwrap();
    // The selection: node_load1 and the histogram's 6 series, nothing else.
    assert_eq!(points.len() as u64, n * 7, "{points:#?}");
    assert!(points.iter().all(|p| p["series"] == "node_load1"
        || p["series"]
            .as_str()
            .unwrap()
            .starts_with("http_request_duration_seconds_")));

    let depth = get("depth");
    assert!(depth["scrapes"].as_u64().unwrap() >= 4, "{depth:#}");
    assert_eq!(depth["points"][0]["series"], "depth");
    assert_eq!(depth["points"][0]["value"], 7.5);

    let down = get("down");
    assert_eq!(down["scrapes"], 0);
    assert!(down["errors"].as_u64().unwrap() >= 4, "{down:#}");
    assert!(
        down["last_error"].as_str().unwrap().contains("/metrics"),
        "{down:#}"
    );

    let mut rdr = csv::Reader::from_path(dir.path().join("timeseries.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    let load1: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[1] == "scrape:node" && &r[2] == "node_load1")
        .collect();
    assert_eq!(load1.len() as u64, n);
    assert_eq!(&load1[0][8], "0.52");
    assert!(rows
        .iter()
        .any(|r| &r[1] == "scrape:depth" && &r[8] == "7.5"));
}

#[test]
fn a_scrape_needs_a_url_or_a_command() {
    for (body, want) in [
        ("{ every: 1s }", "required: `url:"),
        ("{ url: /m, command: [echo] }", "not both"),
        ("{ url: metrics }", "http(s)://"),
        ("{ url: /m, every: 0s }", "longer than 0s"),
    ] {
        let text = format!(
            "target: http://127.0.0.1:1\nscenarios:\n  s: {{ executor: constant-vus, vus: 1, duration: 1s, request: {{ path: / }} }}\nscrapes:\n  x: {body}\n"
        );
        let err = plan::parse(&text, "p.yaml", Path::new("."), &PlanOptions::empty_env())
            .and_then(|v| v.lower(&[]).map(|_| ()))
            .expect_err(body);
        assert!(err.to_string().contains(want), "{body}: {err}");
    }
}

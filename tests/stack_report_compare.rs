//! `loadgate report --compare BASELINE_DIR DIR --max-regression ...`: two runs of the same
//! plan against the reference stack do not flag a regression (noise is not one); with the
//! gateway's model-latency knob raised by 30% on the second run, p95 does (exit 99). The
//! latency comparison uses the stored histograms (Mann-Whitney U over every recorded value).
//! In the `stack` test group (.config/nextest.toml): its runs start the reference stack, and
//! their latencies must not compete with other stack tests.
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn loadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

fn show(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Chat with a fresh prompt each time (every request a cache miss: the model's latency).
const PLAN: &str = r#"name: compare
stack:
  reference: { backend: auto, gateways: 1 }
target: ${TARGET_URL}
defaults:
  headers: { authorization: "Bearer ${USER_KEY}" }
  timeout: 5s
scenarios:
  warmup:                         # fills the gateway's pools first: a cold start is not news
    executor: shared-iterations
    vus: 8
    iterations: 200
    request: { method: POST, path: /v1/chat, body: { prompt: "warm {{uuid}}" } }
  chat:
    executor: constant-arrival-rate
    start_after: 3s
    rate: 50/s
    duration: 10s
    request:
      method: POST
      path: /v1/chat
      body: { prompt: "compare {{uuid}}" }
thresholds:
  http_req_failed: [ "rate<0.01" ]
"#;

fn run(plan: &Path, out: &Path, sets: &[&str]) {
    let mut args = vec![
        "run",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = loadgate(&args);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn compare_flags_a_30_percent_slower_gateway_and_not_noise() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("compare.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let (base, same, slow) = (
        dir.path().join("base"),
        dir.path().join("same"),
        dir.path().join("slow"),
    );
    run(&plan, &base, &[]);
    run(&plan, &same, &[]);
    // The gateway's latency knob (simulated model: base 20 ms + 0.5 ms per token) +30%.
    run(
        &plan,
        &slow,
        &[
            r#"stack.reference.env.GATEWAY_MODEL_V1_BASE_MS="26""#,
            r#"stack.reference.env.GATEWAY_MODEL_V1_PER_TOKEN_MS="0.65""#,
        ],
    );
    let limits = "p95{scenario:chat}=10%,error_rate=0.5pp";
    let o = loadgate(&[
        "report",
        "--compare",
        base.to_str().unwrap(),
        same.to_str().unwrap(),
        "--max-regression",
        limits,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "same plan, same server: no regression\n{}",
        show(&o)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    eprintln!("{table}");
    assert!(
        table.contains("p95 ms") && table.contains("compare verdict: PASS"),
        "{table}"
    );

    let o = loadgate(&[
        "report",
        "--compare",
        base.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--max-regression",
        limits,
    ]);
    assert_eq!(
        o.status.code(),
        Some(99),
        "30% slower: a regression\n{}",
        show(&o)
    );
    let table = String::from_utf8_lossy(&o.stdout);
    eprintln!("{table}");
    assert!(
        table.contains("REGRESSION: chat p95{scenario:chat}=10%"),
        "{table}"
    );
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(slow.join("compare.json")).unwrap()).unwrap();
    assert_eq!(c["passed"], false);
    let chat = c["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chat")
        .unwrap();
    assert!(
        chat["latency_test"]["p_value"].as_f64().unwrap() < 0.01,
        "{chat:#}"
    );
    assert!(
        chat["latency_ms"]["p95"]["change_pct"].as_f64().unwrap() > 10.0,
        "{chat:#}"
    );
    // Beyond the runs' own second-to-second variation (block bootstrap over stored seconds).
    assert!(
        chat["bootstrap_ratio"]["p95"][0].as_f64().unwrap() > 1.0,
        "{chat:#}"
    );
    eprintln!(
        "p95 {} -> {} ms ({}%), Mann-Whitney p={}",
        chat["latency_ms"]["p95"]["baseline"],
        chat["latency_ms"]["p95"]["current"],
        chat["latency_ms"]["p95"]["change_pct"],
        chat["latency_test"]["p_value"],
    );
    eprintln!(
        "p95 bootstrap ratio interval {}",
        chat["bootstrap_ratio"]["p95"]
    );
    let page = std::fs::read_to_string(slow.join("compare.html")).unwrap();
    assert!(page.contains("Compared with the baseline") && page.contains("regression"));
    assert!(page.contains("(baseline)"), "both runs' curves overlaid");
}

//! plans/predeploy.yaml, the README's main job, against the real reference stack (process
//! backend), shortened with `--set`: every kind of judgement it combines is present in
//! summary.json and passes, and the run exits 0 as the plan's comment documents.
mod stack_support;

use std::collections::BTreeSet;

use serde_json::Value;
use stack_support::{output_text, run_plan, summary};

#[test]
fn predeploy_gate_passes_with_every_kind_of_check() {
    if stack_support::skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run_plan(
        "plans/predeploy.yaml",
        &out,
        &["--set", "stack.reference.backend=process"],
        &[
            "scenarios.warmup.iterations=60",
            "scenarios.chat.duration=45s",
            "scenarios.notes.duration=45s",
            "scenarios.jobs.stages[0].over=2s",
            "scenarios.jobs.stages[1].over=10s",
            "scenarios.jobs.stages[3].over=32s",
            "stack.reference.env.GATEWAY_AUTOSCALE_STABILIZATION_MS=5000",
            "autoscaling.workers.stabilization=5s",
            "canary.step_duration=8s",
            "canary.min_samples=30",
            "faults.gateway-kill.at=30s",
            "faults.gateway-kill.restart_after=3s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let s = summary(&out);
    assert_eq!(s["verdict"], "pass", "{:#}", s["checks"]);
    let kinds: BTreeSet<&str> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    for k in [
        "threshold",
        "probe",
        "slo",
        "canary",
        "failover",
        "autoscale",
    ] {
        assert!(kinds.contains(k), "no {k} check in {kinds:?}");
    }
    assert_eq!(s["canary"]["decision"], "promote", "{:#}", s["canary"]);
    let f = &s["failover"][0];
    assert_eq!(f["fault"], "gateway-kill");
    assert!(f["rto_ms"].as_f64().unwrap() < 15_000.0, "{f:#}");
    assert!(f["acknowledged_writes"].as_u64().unwrap() > 100, "{f:#}");
    assert_eq!(f["lost_writes"], 0, "{f:#}");
    let episodes = s["autoscale"][0]["episodes"].as_array().unwrap();
    for dir in ["out", "in"] {
        assert!(
            episodes.iter().any(|e| e["direction"] == dir),
            "no scale-{dir} episode in {:#}",
            s["autoscale"]
        );
    }
    let v: Value = s["scenarios"]["chat"]["requests"].clone();
    assert!(v.as_u64().unwrap() >= 2000, "{v}");
    for file in ["summary.json", "junit.xml", "timeseries.csv", "report.html"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
}

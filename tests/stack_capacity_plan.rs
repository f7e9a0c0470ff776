//! plans/capacity.yaml against the real reference stack (Redis, PostgreSQL, one gateway),
//! shortened with `--set` (the full plan is what the README runs and what the closing
//! figures come from): three bracket steps from 100/s to a `max` of 400/s, well below what
//! one gateway holds, so the search ends `at_least_max` and the 2x-headroom check over the
//! plan's 150/s passes on the rate proven held (exit 0), with every report carrying the
//! search.
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn capacity_plan_runs_against_the_reference_stack() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "capacity",
            "plans/capacity.yaml",
            "--out",
            out.path().to_str().unwrap(),
            "--threads",
            "1",
        ])
        .args([
            "--set",
            "capacity.min=100/s",
            "--set",
            "capacity.max=400/s",
            "--set",
            "capacity.warmup=1s",
            "--set",
            "capacity.step=2s",
            "--set",
            "capacity.cooldown=0s",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json ({e}):\n{stdout}\n{stderr}")),
    )
    .unwrap();
    let c = &v["capacity"];
    assert_eq!(c["scenario"], "chat");
    assert_eq!(c["outcome"], "at_least_max", "{c:#}\n{stderr}");
    assert!(c["max_rate"].is_null(), "no knee was seen: {c:#}");
    assert_eq!(c["low"], 400.0);
    assert_eq!(c["expected"], 150.0);
    let rates: Vec<f64> = c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rate"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [100.0, 200.0, 400.0]);
    for s in c["steps"].as_array().unwrap() {
        assert_eq!(s["verdict"], "pass", "{s:#}");
        assert_eq!(s["errors"], 0, "{s:#}");
        // The warm-up is not judged: about 2 s of requests at the step's rate.
        let n = s["requests"].as_f64().unwrap();
        let rate = s["rate"].as_f64().unwrap();
        assert!(n >= 1.5 * rate && n <= 2.6 * rate, "{s:#}");
    }
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c["kind"], "capacity");
        assert_eq!(c["passed"], true, "{c:#}");
    }
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("capacity search of scenario chat"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("classname=\"capacity.step\"").count(), 3);
    // The run says which plan and stack it judged.
    assert_eq!(v["run"]["plan_path"], "plans/capacity.yaml");
    assert!(v["run"]["stack"].is_string());
}

//! plans/autoscale.yaml against the real reference stack (Redis, PostgreSQL, the gateway and
//! its worker autoscaler on queue depth), shortened with `--set` (process backend): the pool
//! scales out as jobs pile up and back in after the queue drains, within the plan's deadlines
//! (exit 0, summary.json `autoscale` with both directions); the gateway's autoscaler switched
//! off makes the decision check fail (exit 99); a scale-down window (500 ms) shorter than the
//! traffic's period (bursts every 9 s) makes the pool flap, which the check reports (exit 99).
mod stack_support;

use std::path::Path;

use serde_json::Value;
use stack_support::{output_text, run_plan, skip_without_gateway, summary};

const PLAN: &str = "plans/autoscale.yaml";
const PROCESS: &str = "stack.reference.backend=process";

fn run(out: &Path, sets: &[&str]) -> std::process::Output {
    let mut all = vec![PROCESS];
    all.extend_from_slice(sets);
    run_plan(PLAN, out, &[], &all)
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {:#}", v["checks"]))
}

fn episodes<'a>(v: &'a Value, direction: &str) -> Vec<&'a Value> {
    v["autoscale"][0]["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == direction)
        .collect()
}

#[test]
fn workers_scale_out_and_back_in_within_the_deadlines() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ok");
    let o = run(
        &out,
        &[
            "scenarios.jobs.stages[0].over=2s",
            "scenarios.jobs.stages[1].over=8s",
            "scenarios.jobs.stages[3].over=14s",
            r#"stack.reference.env.GATEWAY_AUTOSCALE_STABILIZATION_MS="3000""#,
            "autoscaling.workers.stabilization=3s",
        ],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("autoscaling (HPA recommendation"), "{text}");
    let v = summary(&out);
    let rule = &v["autoscale"][0];
    assert_eq!(rule["rule"], "workers");
    assert_eq!(rule["verdict"], "pass");
    assert!(rule["samples"].as_u64().unwrap() >= 20, "{rule:#}");
    assert_eq!(rule["peak_current"], 4, "{rule:#}");
    for dir in ["out", "in"] {
        let eps = episodes(&v, dir);
        assert!(!eps.is_empty(), "no {dir} episode: {rule:#}");
        for e in eps.iter().filter(|e| e["passed"] == true) {
            assert!(e["decision_latency_s"].as_f64().unwrap() <= 5.0, "{e:#}");
            assert!(e["ready_latency_s"].as_f64().unwrap() <= 8.0, "{e:#}");
        }
    }
    for name in [
        "decision_within",
        "ready_within",
        "no_flapping",
        "directions",
    ] {
        let c = check(&v, &format!("autoscale workers: {name}"));
        assert_eq!(c["kind"], "autoscale");
        assert_eq!(c["passed"], true, "{c:#}");
    }
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"scale_recommended"), "{kinds:?}");
    assert!(kinds.contains(&"scale_observed"), "{kinds:?}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("autoscale.episode"), "{junit}");
}

#[test]
fn an_autoscaler_switched_off_fails_the_decision_check() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("off");
    let o = run(
        &out,
        &[
            "scenarios.jobs.stages[0].over=2s",
            "scenarios.jobs.stages[1].over=6s",
            "scenarios.jobs.stages[3].over=1s",
            r#"stack.reference.env.GATEWAY_AUTOSCALE_ENABLED="false""#,
        ],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(99), "{text}");
    let v = summary(&out);
    let c = check(&v, "autoscale workers: decision_within");
    assert_eq!(c["passed"], false, "{c:#}");
    assert!(
        c["observed"].as_str().unwrap().contains("never reached"),
        "{c:#}"
    );
    let rule = &v["autoscale"][0];
    assert_eq!(rule["verdict"], "fail");
    assert_eq!(
        rule["peak_current"], 1,
        "the pool must not have grown: {rule:#}"
    );
    assert!(rule["peak_recommended"].as_u64().unwrap() >= 2, "{rule:#}");
    assert!(
        episodes(&v, "out")
            .iter()
            .any(|e| e["decision"] == "missed"),
        "{rule:#}"
    );
}

#[test]
fn a_scale_down_window_shorter_than_the_traffic_period_flaps() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flap");
    // Bursts of 15 jobs/s for 2 s every 9 s, a trickle between; the gateway (evaluating every
    // 500 ms, workers ready at once) scales in 500 ms after a burst drains, the next burst
    // scales it out again.
    let burst = "{ to: 15/s, over: 500ms }, { to: 15/s, over: 2s }, { to: 1/s, over: 500ms }, { to: 1/s, over: 6s }";
    let stages = format!("scenarios.jobs.stages=[ {burst}, {burst}, {burst} ]");
    let o = run(
        &out,
        &[
            &stages,
            r#"stack.reference.env.GATEWAY_AUTOSCALE_STABILIZATION_MS="500""#,
            r#"stack.reference.env.GATEWAY_AUTOSCALE_INTERVAL_MS="500""#,
            r#"stack.reference.env.GATEWAY_WORKER_START_MS="0""#,
        ],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(99), "{text}");
    let v = summary(&out);
    let c = check(&v, "autoscale workers: no_flapping");
    assert_eq!(c["passed"], false, "{c:#}");
    assert!(c["observed"].as_str().unwrap().contains("flap(s)"), "{c:#}");
    let flaps = v["autoscale"][0]["flaps"].as_array().unwrap();
    assert!(!flaps.is_empty());
    for f in flaps {
        let gap = f["at_s"].as_f64().unwrap() - f["previous_at_s"].as_f64().unwrap();
        assert!(
            gap < 10.0,
            "a flap is a reversal inside the 10 s window: {f:#}"
        );
    }
    assert!(text.contains("flap"), "{text}");
}

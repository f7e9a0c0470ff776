//! plans/canary-promote.yaml, plans/canary-rollback.yaml and plans/blue-green.yaml against the
//! real reference stack, shortened with `--set` (the full-length plans are what the README
//! runs): the healthy v2 is promoted (exit 0), the bad v2 (+40 ms, 3% errors through the
//! gateway's fault knobs) is rolled back at once and the canary serves nothing afterwards
//! (exit 0: the drill expects the rollback), both blue/green switches are clean (exit 0), and a
//! canary that never gets traffic ends NoData and fails (exit 99). Numbers taken from the
//! responses are judged per step: a v2 that costs 5x per token and answers 0.2 worse (the
//! gateway's `cost_factor` and `quality_drop` knobs) is rolled back on cost and quality.
mod stack_support;

use std::path::Path;

use serde_json::Value;
use stack_support::{output_text, run_plan, summary};

fn loadgate(plan: &str, out: &Path, sets: &[&str]) -> std::process::Output {
    run_plan(plan, out, &[], sets)
}

fn events<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Short steps with enough samples at 100 req/s: 6 s x 10% = ~60 canary samples per step.
const SHORT: [&str; 2] = ["canary.step_duration=6s", "canary.min_samples=50"];

#[test]
fn a_healthy_canary_is_promoted_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("promote");
    let mut sets = SHORT.to_vec();
    sets.push("scenarios.chat.duration=45s");
    // The numbers a healthy v2 reports pass: its quality score (header) above a floor and
    // its cost per request (JSON body) under a ceiling.
    sets.extend([
        "canary.compare.values.quality.from=header x-quality-score",
        "canary.compare.values.quality.min=0.8",
        "canary.compare.values.cost.from=json /cost_usd",
        "canary.compare.values.cost.max=0.01",
    ]);
    let o = loadgate("plans/canary-promote.yaml", &out, &sets);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "promote", "{c:#}");
    assert_eq!(c["passed"], true);
    // A step judged inconclusive (noise on ~4 ms latencies of a busy machine) runs once more
    // on fresh samples (`on_inconclusive: extend`); the last attempt of each weight passed.
    let all = c["steps"].as_array().unwrap();
    let steps: Vec<&Value> = all
        .iter()
        .enumerate()
        .filter(|(i, s)| all.get(i + 1).is_none_or(|n| n["weight"] != s["weight"]))
        .map(|(_, s)| s)
        .collect();
    let weights: Vec<u64> = steps
        .iter()
        .map(|s| s["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [10, 25, 50], "{c:#}");
    for s in &steps {
        assert_eq!(s["decision"], "continue", "{s:#}");
        assert!(s["canary"]["requests"].as_u64().unwrap() >= 50, "{s:#}");
        assert!(s["baseline"]["requests"].as_u64().unwrap() >= 50, "{s:#}");
        assert_ne!(s["latency"]["class"], "high", "{s:#}");
        assert!(s["latency"]["p_value"].as_f64().is_some(), "{s:#}");
        let values = s["values"].as_array().unwrap();
        let names: Vec<&str> = values.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["cost", "quality"], "{s:#}");
        for v in values {
            assert_eq!(v["class"], "pass", "{v:#}");
            assert!(v["canary_n"].as_u64().unwrap() >= 50, "{v:#}");
        }
        let q = values[1]["canary_mean"].as_f64().unwrap();
        assert!((0.8..=0.99).contains(&q), "{s:#}");
    }
    // The canary's share rose with the weight.
    let share = |s: &Value| {
        let c = s["canary"]["requests"].as_f64().unwrap();
        c / (c + s["baseline"]["requests"].as_f64().unwrap())
    };
    assert!(share(steps[2]) > share(steps[0]), "{c:#}");
    // Every weight was applied (the promotion's 100 included) and put on the timeline.
    let applied: Vec<u64> = events(&v, "canary_weight")
        .iter()
        .filter(|e| e["ok"] == true)
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [10, 25, 50, 100], "{:#}", v["events"]);
    assert_eq!(events(&v, "canary_step").len(), all.len());
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"name="canary step 1 (10%)" classname="canary.step""#),
        "{junit}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("canary decision: promote"));
}

#[test]
fn a_slow_failing_canary_is_rolled_back_and_its_traffic_stops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rollback");
    let mut sets = SHORT.to_vec();
    sets.push("scenarios.chat.duration=20s");
    let o = loadgate("plans/canary-rollback.yaml", &out, &sets);
    // `expect: rollback`: the gate rolled back, so the drill passes.
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "rollback", "{c:#}");
    assert_eq!(c["expected"], "rollback");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "rolled back at the first step: {c:#}");
    let s = &steps[0];
    assert_eq!(s["decision"], "rollback");
    assert_eq!(s["latency"]["class"], "high", "{s:#}");
    assert!(s["latency"]["p_value"].as_f64().unwrap() < 0.02, "{s:#}");
    // +40 ms on the canary: its median sits well above the baseline's.
    assert!(
        s["canary"]["p50_ms"].as_f64().unwrap() > s["baseline"]["p50_ms"].as_f64().unwrap() + 20.0,
        "{s:#}"
    );
    // After the rollback the canary got nothing and nothing failed.
    let after = &c["after_rollback"];
    assert!(after["requests"].as_u64().unwrap() > 100, "{after:#}");
    assert_eq!(after["canary_requests"], 0, "{after:#}");
    assert_eq!(after["failed"], 0, "{after:#}");
    let decision = events(&v, "canary_decision");
    assert_eq!(decision.len(), 1);
    assert_eq!(decision[0]["decision"], "rollback");
    let zero = events(&v, "canary_weight")
        .into_iter()
        .any(|e| e["weight"] == 0 && e["ok"] == true);
    assert!(zero, "the rollback applied weight 0: {:#}", v["events"]);
}

#[test]
fn a_canary_given_no_traffic_ends_nodata_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nodata");
    // The canary's header value is never seen: every v2 response belongs to neither side.
    let o = loadgate(
        "plans/canary-promote.yaml",
        &out,
        &[
            "canary.split.canary=v9",
            "canary.step_duration=4s",
            "canary.on_no_data=fail",
            "scenarios.chat.duration=15s",
        ],
    );
    assert_eq!(o.status.code(), Some(99), "{}", output_text(&o));
    let v = summary(&out);
    assert_eq!(v["verdict"], "fail");
    let c = &v["canary"];
    assert_eq!(c["decision"], "nodata", "{c:#}");
    assert_eq!(c["passed"], false);
    assert_eq!(c["steps"][0]["canary"]["requests"], 0, "{c:#}");
    assert_eq!(c["steps"][0]["latency"]["class"], "nodata", "{c:#}");
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "canary gate")
        .unwrap();
    assert_eq!(check["passed"], false);
    assert!(
        check["observed"].as_str().unwrap().starts_with("nodata"),
        "{check}"
    );
}

#[test]
fn blue_green_cutover_and_switch_back_are_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bg");
    let o = loadgate(
        "plans/blue-green.yaml",
        &out,
        &[
            "scenarios.chat.duration=18s",
            "blue_green.cutover_at=7s",
            "blue_green.switch_back_at=13s",
            "blue_green.window=4s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v = summary(&out);
    let switches = v["blue_green"]["switches"].as_array().unwrap();
    assert_eq!(switches.len(), 2, "{:#}", v["blue_green"]);
    for (s, to) in switches.iter().zip(["v2", "v1"]) {
        assert_eq!(s["to"], to);
        assert_eq!(s["passed"], true, "{s:#}");
        assert_eq!(s["failed"], 0, "{s:#}");
        assert!(s["requests"].as_u64().unwrap() > 100, "{s:#}");
        let cut = s["cutover_s"].as_f64().unwrap();
        assert!(
            cut <= 2.0,
            "the traffic moved within a second or two: {s:#}"
        );
        assert!(
            s["worst_second"]["p99_ms"].as_f64().unwrap() <= 250.0,
            "{s:#}"
        );
    }
    assert_eq!(events(&v, "cutover").len(), 2);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"blue-green cutover to v2"), "{names:?}");
    assert!(names.contains(&"blue-green switch back to v1"), "{names:?}");
}

#[test]
fn a_canary_that_costs_more_and_answers_worse_is_rolled_back_on_those_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("values");
    let mut sets = SHORT.to_vec();
    sets.extend([
        "scenarios.chat.duration=20s",
        // No latency or error fault: only the cost and quality knobs.
        "scenarios.bad-v2.request.body.latency_ms=0",
        "scenarios.bad-v2.request.body.error_rate=0.0",
        "scenarios.bad-v2.request.body.cost_factor=5",
        "scenarios.bad-v2.request.body.quality_drop=0.2",
        // Every prompt distinct: no cache hit, so every response has a cost.
        "scenarios.chat.request.body.prompt=\"{{prompts.text}} {{seq}}\"",
        "canary.compare.values.cost.from=json /cost_usd",
        "canary.compare.values.cost.max_increase=50%",
        "canary.compare.values.quality.from=header x-quality-score",
        "canary.compare.values.quality.max_decrease=10%",
    ]);
    let o = loadgate("plans/canary-rollback.yaml", &out, &sets);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v = summary(&out);
    let c = &v["canary"];
    assert_eq!(c["decision"], "rollback", "{c:#}");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{c:#}");
    let s = &steps[0];
    // v2's own price is half v1's; x5 makes it ~2.5x v1's, over the allowed +50%.
    let cost = &s["values"][0];
    assert_eq!(cost["name"], "cost");
    assert_eq!(cost["class"], "high", "{cost:#}");
    assert_eq!(cost["failed_bound"], "max_increase", "{cost:#}");
    assert!(cost["ratio"].as_f64().unwrap() > 1.8, "{cost:#}");
    let quality = &s["values"][1];
    assert_eq!(quality["class"], "low", "{quality:#}");
    assert!(
        quality["canary_mean"].as_f64().unwrap() + 0.1 < quality["baseline_mean"].as_f64().unwrap(),
        "{quality:#}"
    );
    assert_ne!(s["latency"]["class"], "high", "{s:#}");
    assert_eq!(s["errors"]["class"], "pass", "{s:#}");
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("cost base/canary"), "{table}");
    assert!(table.contains("quality base/canary"), "{table}");
}

//! plans/cost-budget.yaml and plans/cold-start.yaml against the real reference stack,
//! shortened with `--set` where they are long:
//! - the budget kicks in (downgrades v1 to v2) and keeps the cost per 1,000 requests under the
//!   ceiling (exit 0); without a budget the same load costs ~2x per 1k requests (exit 99);
//!   in throttle mode the expensive model's requests get 429 + Retry-After (exit 99);
//! - spiky traffic on a scale-to-zero gateway behind the edge's activator pays cold starts
//!   (held requests counted by `x-cold-start`, the edge's `edge_cold_starts_total`, a p99 that
//!   carries the boot delay), where the same traffic on an always-on instance pays none
//!   (both exit 0).
mod stack_support;

use serde_json::Value;
use stack_support::{output_text, run_plan, skip_without_gateway, summary};

fn check<'a>(v: &'a Value, name_part: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().contains(name_part))
        .unwrap_or_else(|| panic!("no check {name_part:?} in {:#}", v["checks"]))
}

/// The number after `=` in a check's `observed`.
fn observed(c: &Value) -> f64 {
    let o = c["observed"].as_str().unwrap();
    o.rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{o}"))
}

fn named_check_passes(v: &Value, scenario: &str, name: &str) -> u64 {
    v["scenarios"][scenario]["checks_by_name"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["passes"].as_u64().unwrap())
        .unwrap_or(0)
}

/// The last value of a scraped series.
fn last_point(v: &Value, scraper: &str, series: &str) -> Option<f64> {
    v["scrapes"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == scraper)?["points"]
        .as_array()?
        .iter()
        .rev()
        .find(|p| p["series"] == series)
        .and_then(|p| p["value"].as_f64())
}

#[test]
fn the_budget_downgrades_and_holds_the_cost_per_1k_requests() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("budget");
    let o = run_plan(
        "plans/cost-budget.yaml",
        &out,
        &[],
        &["scenarios.chat.duration=12s"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let v = summary(&out);
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c["passed"], true, "{c:#}");
        assert_eq!(c["kind"], "threshold");
    }
    let per_1k = observed(check(&v, "per 1k requests"));
    assert!(per_1k < 0.06, "cost per 1k requests {per_1k}");
    let downgraded = named_check_passes(&v, "chat", "header x-budget-downgraded exists");
    assert!(downgraded > 300, "{downgraded} of 600 downgraded");
    // tokens / min and cost / min are on the timeline and in timeseries.csv
    assert!(last_point(&v, "gateway", "tokens_per_min").is_some());
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains("scrape:gateway,cost_per_min,")),
        "no cost_per_min rows"
    );
    eprintln!("with the budget: {per_1k} USD per 1k requests, {downgraded} downgraded");
}

#[test]
fn without_a_budget_the_same_load_costs_more_and_fails() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nobudget");
    let o = run_plan(
        "plans/cost-budget.yaml",
        &out,
        &[],
        &[
            "scenarios.chat.duration=8s",
            "stack.reference.env.GATEWAY_BUDGET_USD_PER_MIN=0",
        ],
    );
    assert_eq!(o.status.code(), Some(99), "{}", output_text(&o));
    let v = summary(&out);
    let c = check(&v, "per 1k requests");
    assert_eq!(c["passed"], false);
    let per_1k = observed(c);
    assert!(per_1k > 0.065, "v1 alone costs ~0.08 per 1k: {per_1k}");
    assert_eq!(check(&v, "max(gateway_budget_exceeded)")["passed"], false);
    eprintln!("without the budget: {per_1k} USD per 1k requests");
}

#[test]
fn in_throttle_mode_the_expensive_model_gets_429() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("throttle");
    let o = run_plan(
        "plans/cost-budget.yaml",
        &out,
        &[],
        &[
            "scenarios.chat.duration=8s",
            "stack.reference.env.GATEWAY_BUDGET_MODE=throttle",
        ],
    );
    // The plan's thresholds expect served requests: throttling fails them.
    assert_eq!(o.status.code(), Some(99), "{}", output_text(&o));
    let v = summary(&out);
    let s = &v["scenarios"]["chat"]["status_codes"];
    let throttled = s["429"].as_u64().unwrap_or(0);
    assert!(throttled > 100, "{s:#}");
    assert!(last_point(&v, "gateway", "gateway_budget_throttled_total").unwrap() > 100.0);
    assert_eq!(
        named_check_passes(&v, "chat", "header x-budget-downgraded exists"),
        0
    );
    let per_1k = observed(check(&v, "per 1k requests"));
    assert!(per_1k < 0.06, "throttled requests cost nothing: {per_1k}");
}

#[test]
fn cold_starts_show_in_p99_beside_always_on_instances() {
    if skip_without_gateway() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cold_out = dir.path().join("cold");
    let o = run_plan("plans/cold-start.yaml", &cold_out, &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let cold = summary(&cold_out);
    let warm_out = dir.path().join("always-on");
    let o = run_plan(
        "plans/cold-start.yaml",
        &warm_out,
        &[],
        &["stack.reference.env.GATEWAY_IDLE_TIMEOUT_MS=0"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let warm = summary(&warm_out);

    let paid = |v: &Value| -> u64 {
        ["burst1", "burst2", "burst3", "burst4"]
            .iter()
            .map(|s| named_check_passes(v, s, "header x-cold-start exists"))
            .sum()
    };
    let p99 = |v: &Value| observed(check(v, "p(99)"));
    let (cold_paid, warm_paid) = (paid(&cold), paid(&warm));
    let (cold_p99, warm_p99) = (p99(&cold), p99(&warm));
    eprintln!(
        "scale to zero: p99 {cold_p99} ms, {cold_paid} of 240 requests paid a cold start; \
         always on: p99 {warm_p99} ms, {warm_paid} paid"
    );
    // The first burst finds the instance warm (it starts warm); the later ones after an idle
    // gap longer than the idle timeout find it cold.
    assert_eq!(
        named_check_passes(&cold, "burst1", "header x-cold-start exists"),
        0
    );
    assert!(cold_paid >= 2, "{cold_paid} requests paid a cold start");
    let starts = last_point(&cold, "edge", "edge_cold_starts_total").unwrap();
    assert!((2.0..=3.0).contains(&starts), "{starts} cold starts");
    assert!(last_point(&cold, "edge", "edge_held_requests_total").unwrap() >= 1.0);
    // A cold start carries the 500 ms boot delay; 1 in 8 requests paid one, so p99 shows it.
    assert!(cold_p99 >= 500.0, "cold p99 {cold_p99}");
    assert_eq!(warm_paid, 0);
    assert_eq!(
        last_point(&warm, "edge", "edge_cold_starts_total").unwrap(),
        0.0
    );
    assert!(
        cold_p99 > warm_p99,
        "cold {cold_p99} vs always on {warm_p99}"
    );
}

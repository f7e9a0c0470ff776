//! The canary judge's statistics against scipy: every case of
//! testdata/canary/mannwhitneyu.json (made by testdata/canary/gen_mannwhitneyu.py with
//! `scipy.stats.mannwhitneyu`: ties, tiny samples with the exact distribution, large samples
//! with the normal approximation and its tie and continuity corrections, all three
//! alternatives) must give scipy's U and p-value, and numpy's Hodges-Lehmann median of
//! differences. Then the judge's classes and decisions on samples whose answer is known.
use loadgate::checks::canary::{judge_step, judge_step_with, Class, Decision, Side, ValueSum};
use loadgate::checks::mannwhitney::{
    hodges_lehmann, mann_whitney_u, Alternative, Method, Weighted,
};
use loadgate::grammar::extract::Extractor;
use loadgate::spec::{LatencyCompare, ValueCompare};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/canary/mannwhitneyu.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(v["generator"], "scipy.stats.mannwhitneyu");
    v["cases"].as_array().unwrap().clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300) || (a - b).abs() < 1e-15
}

#[test]
fn mann_whitney_matches_scipy_on_every_fixture() {
    let cases = fixtures();
    assert!(cases.len() >= 27, "{} cases", cases.len());
    let mut kinds = std::collections::BTreeSet::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let x = Weighted::from_values(&floats(&c["x"]));
        let y = Weighted::from_values(&floats(&c["y"]));
        let alt = match c["alternative"].as_str().unwrap() {
            "greater" => Alternative::Greater,
            "less" => Alternative::Less,
            _ => Alternative::TwoSided,
        };
        let method = match c["method"].as_str().unwrap() {
            "exact" => Method::Exact,
            "asymptotic" => Method::Asymptotic,
            _ => Method::Auto,
        };
        let continuity = c["use_continuity"].as_bool().unwrap();
        let r = mann_whitney_u(&x, &y, alt, method, continuity).unwrap();
        kinds.insert(format!("{:?}", r.method));
        let (u, p) = (
            c["statistic"].as_f64().unwrap(),
            c["pvalue"].as_f64().unwrap(),
        );
        assert!(close(r.u, u, 1e-12), "{name}: U {} vs scipy {u}", r.u);
        assert!(
            close(r.p_value, p, 1e-9),
            "{name}: p {} vs scipy {p} ({:?})",
            r.p_value,
            r.method
        );
        let hl = hodges_lehmann(&x, &y, 0.95).unwrap();
        let want = c["hodges_lehmann"].as_f64().unwrap();
        assert!(
            close(hl.estimate, want, 1e-9),
            "{name}: HL {} vs numpy {want}",
            hl.estimate
        );
        assert!(
            hl.lower <= hl.estimate && hl.estimate <= hl.upper,
            "{name}: {hl:?}"
        );
    }
    // Both methods were exercised.
    assert!(
        kinds.contains("Exact") && kinds.contains("Asymptotic"),
        "{kinds:?}"
    );
}

fn side(values: impl Iterator<Item = f64>, failed: u64) -> Side {
    let v: Vec<f64> = values.collect();
    Side {
        requests: v.len() as u64 + failed,
        failed,
        latency: Weighted::from_values(&v),
        values: Vec::new(),
    }
}

/// Deterministic "latencies": a skewed spread around `median` ms.
fn latencies(n: usize, median: f64, seed: u64) -> impl Iterator<Item = f64> {
    let mut s = seed;
    (0..n).map(move |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = ((s >> 11) as f64 / (1u64 << 53) as f64).clamp(1e-9, 1.0 - 1e-9);
        // Log-logistic quantile: median * (u / (1 - u))^0.25.
        ((median * (u / (1.0 - u)).powf(0.25)) * 100.0).round() / 100.0
    })
}

const CMP: LatencyCompare = LatencyCompare {
    confidence: 0.98,
    max_increase: 0.10,
};

#[test]
fn the_judge_passes_a_healthy_canary_and_rolls_back_slow_or_failing_ones() {
    let base = side(latencies(2000, 20.0, 1), 0);
    let healthy = side(latencies(600, 20.0, 2), 0);
    let j = judge_step(&base, &healthy, 200, Some(&CMP), Some(0.01));
    assert_eq!(j.decision, Decision::Continue, "{j:?}");
    assert_eq!(j.latency.unwrap().class, Class::Pass);

    // +40 ms on a 20 ms median: High, far beyond the allowed 10%.
    let slow = side(latencies(600, 20.0, 3).map(|v| v + 40.0), 0);
    let j = judge_step(&base, &slow, 200, Some(&CMP), Some(0.01));
    assert_eq!(j.decision, Decision::Rollback, "{j:?}");
    let l = j.latency.unwrap();
    assert_eq!(l.class, Class::High);
    assert!(l.p_value.unwrap() < 1e-6, "{l:?}");
    assert!(l.ratio_lower.unwrap() > 2.5, "{l:?}");

    // 3% errors against a 1% ceiling.
    let failing = side(latencies(582, 20.0, 4), 18);
    let j = judge_step(&base, &failing, 200, Some(&CMP), Some(0.01));
    assert_eq!(j.errors.unwrap().class, Class::High);
    assert_eq!(j.decision, Decision::Rollback);

    // Faster is Low, and Low passes.
    let fast = side(latencies(600, 12.0, 5), 0);
    let j = judge_step(&base, &fast, 200, Some(&CMP), Some(0.01));
    assert_eq!(j.latency.unwrap().class, Class::Low);
    assert_eq!(j.decision, Decision::Continue);

    // A canary that got no traffic is NoData, never a pass.
    let j = judge_step(&base, &Side::default(), 200, Some(&CMP), Some(0.01));
    assert_eq!(j.decision, Decision::NoData);
}

fn value(name: &str, from: &str) -> ValueCompare {
    ValueCompare {
        name: name.into(),
        from: Extractor::parse(from).unwrap(),
        max: None,
        min: None,
        max_increase: None,
        max_decrease: None,
    }
}

/// `n` values with mean `mean`, as the engine sums them.
fn sum(n: u64, mean: f64) -> ValueSum {
    ValueSum {
        sum: mean * n as f64,
        n,
    }
}

#[test]
fn numbers_from_responses_are_judged_against_ceilings_floors_and_the_baseline() {
    let cost = ValueCompare {
        max: Some(0.0001),
        max_increase: Some(0.5),
        ..value("cost", "json /cost_usd")
    };
    let quality = ValueCompare {
        min: Some(0.8),
        max_decrease: Some(0.05),
        ..value("quality", "header x-quality-score")
    };
    let values = [cost, quality];
    let with = |mut s: Side, cost: ValueSum, quality: ValueSum| {
        s.values = vec![cost, quality];
        s
    };
    let base = with(
        side(latencies(2000, 20.0, 1), 0),
        sum(2000, 0.00004),
        sum(2000, 0.91),
    );
    let judge =
        |canary: &Side| judge_step_with(&base, canary, 200, Some(&CMP), Some(0.01), &values);

    // Same cost and quality as the baseline: both pass, the step continues.
    let healthy = with(
        side(latencies(600, 20.0, 2), 0),
        sum(600, 0.00004),
        sum(600, 0.9),
    );
    let j = judge(&healthy);
    assert_eq!(j.decision, Decision::Continue, "{j:?}");
    assert_eq!(j.values[0].class, Class::Pass);
    assert_eq!(j.values[1].class, Class::Pass);
    assert!((j.values[0].ratio.unwrap() - 1.0).abs() < 1e-9);

    // Twice the baseline's cost (under the absolute ceiling, over the allowed +50%): High.
    let costly = with(
        side(latencies(600, 20.0, 2), 0),
        sum(600, 0.00008),
        sum(600, 0.9),
    );
    let j = judge(&costly);
    assert_eq!(j.values[0].class, Class::High, "{j:?}");
    assert_eq!(j.values[0].failed_bound.as_deref(), Some("max_increase"));
    assert_eq!(j.decision, Decision::Rollback);

    // Over the absolute ceiling.
    let pricey = with(
        side(latencies(600, 20.0, 2), 0),
        sum(600, 0.0002),
        sum(600, 0.9),
    );
    assert_eq!(
        judge(&pricey).values[0].failed_bound.as_deref(),
        Some("max")
    );

    // A quality score 20% below the baseline's (still above the 0.8 floor? no: 0.73): Low,
    // and for a value Low fails the step.
    let worse = with(
        side(latencies(600, 20.0, 2), 0),
        sum(600, 0.00004),
        sum(600, 0.73),
    );
    let j = judge(&worse);
    assert_eq!(j.values[1].class, Class::Low, "{j:?}");
    assert_eq!(j.values[1].failed_bound.as_deref(), Some("min"));
    assert_eq!(j.decision, Decision::Rollback);
    // Above the floor but 6% below the baseline: Low on the relative bound.
    let slightly = with(
        side(latencies(600, 20.0, 2), 0),
        sum(600, 0.00004),
        sum(600, 0.85),
    );
    assert_eq!(
        judge(&slightly).values[1].failed_bound.as_deref(),
        Some("max_decrease")
    );

    // Too few responses carried the value: NoData, never a pass...
    let sparse = with(
        side(latencies(600, 20.0, 2), 0),
        sum(150, 0.00004),
        sum(600, 0.9),
    );
    let j = judge(&sparse);
    assert_eq!(j.values[0].class, Class::NoData, "{j:?}");
    assert_eq!(j.decision, Decision::NoData);
    // ...unless another value is conclusively bad.
    let sparse_bad = with(
        side(latencies(600, 20.0, 2), 0),
        sum(150, 0.00004),
        sum(600, 0.5),
    );
    assert_eq!(judge(&sparse_bad).decision, Decision::Rollback);
}

//! Thresholds: k6's expression grammar, metric keys, aggregation/metric compatibility, and
//! evaluation against hand-built metrics.
use std::collections::BTreeMap;
use std::time::Duration;

use loadgate::checks::threshold_eval::evaluate;
use loadgate::checks::{judge_threshold, CheckKind};
use loadgate::grammar::threshold::{
    known_metric, parse_metric_key, validate_for_metric, Aggregation, Op, ThresholdError,
    ThresholdExpr,
};
use loadgate::metrics::{ErrorKind, RunMetrics, ScenarioInfo, SeriesKey, SourceKind};
use loadgate::spec::ThresholdSpec;

// ---------------------------------------------------------------------------------------------
// Grammar
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_expressions_parse() {
    let cases: &[(&str, Aggregation, Op, f64)] = &[
        ("p(95)<250", Aggregation::Percentile(95.0), Op::Lt, 250.0),
        (
            "p(99.9) < 800",
            Aggregation::Percentile(99.9),
            Op::Lt,
            800.0,
        ),
        (
            "  p ( 90 )<=1.5  ",
            Aggregation::Percentile(90.0),
            Op::Le,
            1.5,
        ),
        ("p(0)>=0", Aggregation::Percentile(0.0), Op::Ge, 0.0),
        ("p(100)<1", Aggregation::Percentile(100.0), Op::Lt, 1.0),
        ("avg<100", Aggregation::Avg, Op::Lt, 100.0),
        ("min>0", Aggregation::Min, Op::Gt, 0.0),
        ("max <= 2000", Aggregation::Max, Op::Le, 2000.0),
        ("med\t<\t50", Aggregation::Med, Op::Lt, 50.0),
        ("rate<0.01", Aggregation::Rate, Op::Lt, 0.01),
        ("count>0", Aggregation::Count, Op::Gt, 0.0),
        ("count==10", Aggregation::Count, Op::Eq, 10.0),
        ("count===10", Aggregation::Count, Op::StrictEq, 10.0),
        ("count!=3", Aggregation::Count, Op::Ne, 3.0),
        ("value>-1", Aggregation::Value, Op::Gt, -1.0),
        ("rate>1e-3", Aggregation::Rate, Op::Gt, 0.001),
        ("avg<+5", Aggregation::Avg, Op::Lt, 5.0),
    ];
    for (src, agg, op, value) in cases {
        let e = ThresholdExpr::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(e.aggregation, *agg, "{src}");
        assert_eq!(e.op, *op, "{src}");
        assert_eq!(e.value, *value, "{src}");
        assert_eq!(e.source, src.trim(), "{src}");
    }
}

#[test]
fn canonical_display() {
    let cases = [
        ("p(95) < 250", "p(95)<250"),
        ("p( 99.9 )<=800", "p(99.9)<=800"),
        ("rate < 0.01", "rate<0.01"),
        ("count === 3", "count===3"),
        ("avg<1.50", "avg<1.5"),
    ];
    for (src, canon) in cases {
        assert_eq!(ThresholdExpr::parse(src).unwrap().to_string(), canon);
    }
}

/// Each invalid input, a predicate on the error, and a word its message must contain.
#[test]
fn invalid_expressions_are_rejected_with_a_useful_message() {
    type Pred = fn(&ThresholdError) -> bool;
    let cases: &[(&str, Pred, &str)] = &[
        (
            "",
            |e| matches!(e, ThresholdError::Empty),
            "expected `aggregation operator value`",
        ),
        ("   ", |e| matches!(e, ThresholdError::Empty), "p(95)<250"),
        (
            "p95<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(N)",
        ),
        (
            "P(95)<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(N)",
        ),
        (
            "p<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(95)",
        ),
        (
            "p()<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(N)",
        ),
        (
            "p(abc)<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(abc)",
        ),
        (
            "p(95<1",
            |e| matches!(e, ThresholdError::MalformedPercentile { .. }),
            "p(N)",
        ),
        (
            "p(101)<1",
            |e| matches!(e, ThresholdError::PercentileOutOfRange { .. }),
            "between 0 and 100",
        ),
        (
            "p(-1)<1",
            |e| matches!(e, ThresholdError::PercentileOutOfRange { .. }),
            "between 0 and 100",
        ),
        (
            "avg<<1",
            |e| matches!(e, ThresholdError::ExpectedNumber { column: 5, .. }),
            "expected a number",
        ),
        (
            "avg 1",
            |e| matches!(e, ThresholdError::ExpectedOperator { column: 5, .. }),
            "expected an operator",
        ),
        (
            "avg=1",
            |e| matches!(e, ThresholdError::ExpectedOperator { .. }),
            "<=",
        ),
        (
            "avg=>1",
            |e| matches!(e, ThresholdError::ExpectedOperator { .. }),
            "found `=>1`",
        ),
        (
            "avg<",
            |e| matches!(e, ThresholdError::ExpectedNumber { .. }),
            "the end of the expression",
        ),
        (
            "avg<abc",
            |e| matches!(e, ThresholdError::ExpectedNumber { .. }),
            "`abc`",
        ),
        (
            "avg<1.",
            |e| matches!(e, ThresholdError::ExpectedNumber { .. }),
            "expected a number",
        ),
        (
            "foo<1",
            |e| matches!(e, ThresholdError::UnknownAggregation { .. }),
            "`foo`",
        ),
        (
            "average<1",
            |e| matches!(e, ThresholdError::UnknownAggregation { .. }),
            "avg, min, max, med, p(N)",
        ),
        (
            "<1",
            |e| matches!(e, ThresholdError::UnknownAggregation { .. }),
            "expected one of",
        ),
        (
            "avg<1 msec",
            |e| matches!(e, ThresholdError::TrailingInput { column: 7, .. }),
            "`msec`",
        ),
        (
            "p(95)<250 and avg<3",
            |e| matches!(e, ThresholdError::TrailingInput { .. }),
            "ends after the value",
        ),
        (
            "avg<1<2",
            |e| matches!(e, ThresholdError::TrailingInput { .. }),
            "`<2`",
        ),
        (
            "rate<0.01%%",
            |e| matches!(e, ThresholdError::TrailingInput { .. }),
            "`%%`",
        ),
    ];
    for (src, pred, needle) in cases {
        let err = ThresholdExpr::parse(src).expect_err(src);
        assert!(pred(&err), "{src:?} gave unexpected error variant {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "{src:?}: message {msg:?} lacks {needle:?}"
        );
    }
}

#[test]
fn metric_keys_parse() {
    let t = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    type Case = (&'static str, &'static str, Vec<(String, String)>);
    let cases: Vec<Case> = vec![
        ("http_req_duration", "http_req_duration", vec![]),
        ("  http_reqs  ", "http_reqs", vec![]),
        (
            "http_req_duration{scenario:chat}",
            "http_req_duration",
            t(&[("scenario", "chat")]),
        ),
        (
            "http_req_duration{scenario:chat,status:200}",
            "http_req_duration",
            t(&[("scenario", "chat"), ("status", "200")]),
        ),
        (
            "http_req_duration { scenario : chat , name: POST /v1/chat }",
            "http_req_duration",
            t(&[("scenario", "chat"), ("name", "POST /v1/chat")]),
        ),
        (
            "http_req_failed{error:timeout}",
            "http_req_failed",
            t(&[("error", "timeout")]),
        ),
        (
            "http_reqs{url:http://x:1/a}",
            "http_reqs",
            t(&[("url", "http://x:1/a")]),
        ),
        (
            "http_reqs{name:\"a,b}\"}",
            "http_reqs",
            t(&[("name", "a,b}")]),
        ),
        ("http_reqs{name:'x'}", "http_reqs", t(&[("name", "x")])),
    ];
    for (src, metric, tags) in cases {
        let (m, tg) = parse_metric_key(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(m, metric, "{src}");
        assert_eq!(tg, tags, "{src}");
    }
}

#[test]
fn invalid_metric_keys_are_rejected() {
    let cases = [
        ("", "empty key"),
        ("{scenario:chat}", "metric name before"),
        ("http req", "not a metric name"),
        ("9lives", "not a metric name"),
        ("http_reqs{scenario:chat", "expected `}`"),
        ("http_reqs{}", "empty tag filter"),
        ("http_reqs{scenario}", "expected `tag:value`"),
        ("http_reqs{scenario:}", "empty value"),
        ("http_reqs{:chat}", "not a tag name"),
        ("http_reqs{scenario:a,}", "expected a tag after"),
        ("http_reqs{scenario:a,scenario:b}", "given twice"),
        ("http_reqs{name:\"abc}", "unterminated quote"),
        ("http_reqs{name:\"a\" b}", "expected `,` or `}`"),
        ("http_reqs{a:b}}", "unexpected brace"),
    ];
    for (src, needle) in cases {
        let err = parse_metric_key(src).expect_err(src);
        assert!(
            matches!(err, ThresholdError::MetricKey { .. }),
            "{src}: {err:?}"
        );
        assert!(
            err.to_string().contains(needle),
            "{src}: {err} lacks {needle:?}"
        );
    }
}

#[test]
fn aggregation_must_fit_the_metric() {
    let ok = [
        ("http_req_duration", "p(95)<1"),
        ("http_req_duration", "avg<1"),
        ("http_req_service_time", "med<1"),
        ("http_req_failed", "rate<0.01"),
        ("checks", "rate>0.99"),
        ("http_reqs", "count>0"),
        ("http_reqs", "rate>100"),
        ("dropped_iterations", "count==0"),
    ];
    for (m, e) in ok {
        validate_for_metric(m, &ThresholdExpr::parse(e).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    }
    let bad = [
        ("http_req_failed", "p(95)<1", "rate"),
        ("http_req_failed", "count<1", "rate"),
        ("http_req_duration", "rate<1", "avg, min, max, med, p(N)"),
        ("http_req_duration", "count<1", "p(N)"),
        ("http_reqs", "p(99)<1", "count, rate"),
        ("checks", "avg>0", "rate"),
        ("http_reqs", "value>0", "count, rate"),
    ];
    for (m, e, allowed) in bad {
        let err = validate_for_metric(m, &ThresholdExpr::parse(e).unwrap()).expect_err(e);
        assert!(
            matches!(err, ThresholdError::AggregationMismatch { .. }),
            "{m} {e}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(m) && msg.contains(allowed), "{msg}");
    }
    let err = validate_for_metric("http_req_latency", &ThresholdExpr::parse("avg<1").unwrap())
        .unwrap_err();
    assert!(matches!(err, ThresholdError::UnknownMetric { .. }));
    assert!(err.to_string().contains("http_req_duration"), "{err}");
    assert!(known_metric("http_req_duration"));
    assert!(known_metric("dropped_iterations"));
    assert!(!known_metric("iterations"));
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

mod fixture {
    use super::*;

    /// Add `n` samples of `ms` milliseconds (service time = ms / 2) to a series.
    pub fn add(
        m: &mut RunMetrics,
        scenario: u16,
        request: u16,
        status: u16,
        error: Option<ErrorKind>,
        n: u64,
        ms: u64,
    ) {
        let key = SeriesKey {
            scenario,
            request,
            status,
            error,
            variant: Default::default(),
        };
        let s = m.series.entry(key).or_default();
        s.duration.record_n(ms * 1000, n).unwrap();
        s.service.record_n(ms * 500, n).unwrap();
        s.requests += n;
        if error.is_some() {
            s.failed += n;
        }
    }

    /// Two scenarios:
    /// - `chat` (tag tier:gold): 90 x 200 at 10 ms and 10 x 500 at 100 ms on request `POST chat`;
    ///   response checks 95 passed / 5 failed; 3 dropped.
    /// - `notes`: 50 x 201 at 20 ms on `GET note`, 0 dropped; no response checks.
    /// - `idle`: configured but sent nothing.
    ///
    /// Elapsed: 10 s.
    pub fn metrics() -> RunMetrics {
        let mut m = RunMetrics {
            scenarios: vec![
                ScenarioInfo {
                    name: "chat".into(),
                    kind: SourceKind::Scenario,
                    executor: "constant-arrival-rate".into(),
                    requests: vec!["POST chat".into()],
                    methods: vec!["POST".into()],
                    tags: BTreeMap::from([("tier".to_string(), "gold".to_string())]),
                    dropped: 3,
                    active: Duration::from_secs(10),
                    ..Default::default()
                },
                ScenarioInfo {
                    name: "notes".into(),
                    kind: SourceKind::Scenario,
                    executor: "constant-vus".into(),
                    requests: vec!["GET note".into()],
                    methods: vec!["GET".into()],
                    tags: BTreeMap::new(),
                    dropped: 0,
                    active: Duration::from_secs(5),
                    ..Default::default()
                },
                ScenarioInfo {
                    name: "idle".into(),
                    executor: "constant-vus".into(),
                    requests: vec!["GET idle".into()],
                    methods: vec!["GET".into()],
                    ..Default::default()
                },
            ],
            elapsed: Duration::from_secs(10),
            ..Default::default()
        };
        add(&mut m, 0, 0, 200, None, 90, 10);
        add(&mut m, 0, 0, 500, Some(ErrorKind::Status5xx), 10, 100);
        add(&mut m, 1, 0, 201, None, 50, 20);
        let s = m.series.get_mut(&SeriesKey {
            scenario: 0,
            request: 0,
            status: 200,
            error: None,
            variant: Default::default(),
        });
        let s = s.unwrap();
        s.checks_passed = 95;
        s.checks_failed = 5;
        m
    }

    pub fn spec(key: &str, expr: &str) -> ThresholdSpec {
        let (metric, tags) = parse_metric_key(key).unwrap();
        ThresholdSpec {
            metric,
            tags,
            key: key.to_string(),
            expr: ThresholdExpr::parse(expr).unwrap(),
            abort_on_fail: false,
            delay: Duration::ZERO,
            min_samples: 1,
            runbook: None,
        }
    }
}

/// (key, expression, passes, observed)
#[test]
fn evaluation_table() {
    let m = fixture::metrics();
    let cases: &[(&str, &str, bool, &str)] = &[
        // Trends over everything: 90 x 10ms, 10 x 100ms, 50 x 20ms.
        ("http_req_duration", "max<=100.1", true, "max=100.031"),
        ("http_req_duration", "max<100", false, "max=100.031"),
        ("http_req_duration", "min>=10", true, "min=10"),
        ("http_req_duration", "min>10", false, "min=10"),
        ("http_req_duration", "med<11", true, "med=10.007"),
        ("http_req_duration", "p(50)<11", true, "p(50)=10.007"),
        ("http_req_duration", "p(95)<50", false, "p(95)=100.031"),
        ("http_req_duration", "p(61)<=20.1", true, "p(61)=20.015"),
        ("http_req_duration", "avg<20", true, "avg=19.338"),
        ("http_req_duration", "avg>20", false, "avg=19.338"),
        // Tag filters.
        (
            "http_req_duration{scenario:notes}",
            "p(99)<25",
            true,
            "p(99)=20.015",
        ),
        (
            "http_req_duration{scenario:chat}",
            "p(95)<50",
            false,
            "p(95)=100.031",
        ),
        (
            "http_req_duration{status:500}",
            "min>=99",
            true,
            "min=99.968",
        ),
        (
            "http_req_duration{scenario:chat,status:200}",
            "max<11",
            true,
            "max=10.007",
        ),
        (
            "http_req_duration{tier:gold}",
            "p(100)>99",
            true,
            "p(100)=100.031",
        ),
        ("http_req_duration{name:GET note}", "avg<21", true, "avg=20"),
        (
            "http_req_duration{method:POST,expected_response:true}",
            "max<11",
            true,
            "max=10.007",
        ),
        (
            "http_req_duration{error:status_5xx}",
            "avg>50",
            true,
            "avg=100",
        ),
        (
            "http_req_service_time{scenario:chat,status:200}",
            "avg<6",
            true,
            "avg=5",
        ),
        // Rates.
        ("http_req_failed", "rate<0.1", true, "rate=0.06667"),
        (
            "http_req_failed{scenario:chat}",
            "rate<0.1",
            false,
            "rate=0.1",
        ),
        (
            "http_req_failed{scenario:chat}",
            "rate<=0.1",
            true,
            "rate=0.1",
        ),
        ("http_req_failed{scenario:notes}", "rate==0", true, "rate=0"),
        ("http_req_failed{status:500}", "rate===1", true, "rate=1"),
        ("checks", "rate>0.9", true, "rate=0.95"),
        ("checks", "rate>0.99", false, "rate=0.95"),
        // Counters.
        ("http_reqs", "count==150", true, "count=150"),
        ("http_reqs", "rate>=15", true, "rate=15"),
        ("http_reqs", "rate>15", false, "rate=15"),
        ("http_reqs{scenario:chat}", "count>100", false, "count=100"),
        ("http_reqs{status:500}", "count<11", true, "count=10"),
        (
            "http_reqs{scenario:notes,status:500}",
            "count<1",
            true,
            "count=0",
        ),
        ("http_reqs{error:timeout}", "count==0", true, "count=0"),
        ("dropped_iterations", "count==3", true, "count=3"),
        ("dropped_iterations", "rate<0.5", true, "rate=0.3"),
        (
            "dropped_iterations{scenario:chat}",
            "count<1",
            false,
            "count=3",
        ),
        (
            "dropped_iterations{scenario:notes}",
            "count<1",
            true,
            "count=0",
        ),
        (
            "dropped_iterations{tier:gold}",
            "count!=3",
            false,
            "count=3",
        ),
        // No data fails.
        (
            "http_req_duration{scenario:typo}",
            "p(95)<1000",
            false,
            "no data",
        ),
        (
            "http_req_duration{scenario:idle}",
            "avg<1000",
            false,
            "no data",
        ),
        (
            "http_req_duration{status:404}",
            "max<1000",
            false,
            "no data",
        ),
        ("http_req_failed{scenario:idle}", "rate<1", false, "no data"),
        ("checks{scenario:notes}", "rate>0", false, "no data"),
        ("http_reqs{scenario:idle}", "count<1", false, "no data"),
        ("http_reqs{scenario:typo}", "count==0", false, "no data"),
        (
            "dropped_iterations{scenario:typo}",
            "count==0",
            false,
            "no data",
        ),
        (
            "dropped_iterations{status:200}",
            "count==0",
            false,
            "no data",
        ),
        // Mismatched aggregation (should have been caught at validation) still fails.
        ("http_req_failed", "p(95)<1", false, "does not apply"),
    ];
    for (key, expr, pass, observed) in cases {
        let out = evaluate(&fixture::spec(key, expr), &m);
        assert_eq!(out.passed, *pass, "{key} {expr}: {out:?}");
        assert_eq!(out.no_data, *observed == "no data", "{key} {expr}: {out:?}");
        assert!(
            out.observed.contains(observed),
            "{key} {expr}: observed {:?}, want {observed:?}",
            out.observed
        );
    }
}

#[test]
fn empty_run_fails_every_threshold_with_no_data() {
    let m = RunMetrics::default();
    for (key, expr) in [
        ("http_req_duration", "p(95)<250"),
        ("http_req_service_time", "avg<250"),
        ("http_req_failed", "rate<0.01"),
        ("checks", "rate>0.99"),
        ("http_reqs", "count>=0"),
        ("http_reqs", "rate>=0"),
        ("dropped_iterations", "count==0"),
    ] {
        let out = evaluate(&fixture::spec(key, expr), &m);
        assert!(!out.passed && out.no_data, "{key} {expr}: {out:?}");
        assert_eq!(out.observed, "no data");
        assert_eq!(out.value, None);
    }
}

#[test]
fn judged_thresholds_are_named_after_key_and_expression() {
    let m = fixture::metrics();
    let thresholds = [
        fixture::spec("http_req_duration{scenario:chat}", "p(95) < 250"),
        fixture::spec("http_req_failed", "rate<0.01"),
        fixture::spec("http_req_duration{scenario:typo}", "p(95)<250"),
    ];
    let results: Vec<_> = thresholds.iter().map(|t| judge_threshold(t, &m)).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].name,
        "http_req_duration{scenario:chat} p(95)<250"
    );
    assert_eq!(results[0].kind, CheckKind::Threshold);
    assert_eq!(results[0].expected, "p(95)<250");
    assert_eq!(results[0].observed, "p(95)=100.031");
    assert!(results[0].passed);
    assert_eq!(results[1].name, "http_req_failed rate<0.01");
    assert!(!results[1].passed);
    assert_eq!(results[1].observed, "rate=0.06667");
    assert!(!results[2].passed);
    assert_eq!(results[2].observed, "no data");
}

#[test]
fn observed_numbers_keep_about_four_significant_digits() {
    use loadgate::metrics::format_number;
    let cases = [
        (0.0, "0"),
        (41.2, "41.2"),
        (41.23456, "41.235"),
        (1234.5678, "1234.568"),
        (0.01, "0.01"),
        (0.0004, "0.0004"),
        (0.000123456, "0.0001235"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (200.0, "200"),
    ];
    for (v, want) in cases {
        assert_eq!(format_number(v), want, "{v}");
    }
}

#[test]
fn values_take_the_units_a_person_would_write() {
    // (expression, normalized value, canonical display)
    let cases = [
        ("p(95)<250ms", 250.0, "p(95)<250ms"),
        ("p(99) < 1s", 1000.0, "p(99)<1s"),
        ("avg<500us", 0.5, "avg<500us"),
        ("max<1.5 s", 1500.0, "max<1.5s"),
        ("med<2m", 120_000.0, "med<2m"),
        ("rate<1%", 0.01, "rate<1%"),
        ("rate < 0.5 %", 0.005, "rate<0.5%"),
        ("p(95)<250", 250.0, "p(95)<250"),
        ("p(95)<250ms over 30s", 250.0, "p(95)<250ms over 30s"),
    ];
    for (src, value, shown) in cases {
        let e = ThresholdExpr::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!((e.value - value).abs() < 1e-9, "{src}: {}", e.value);
        assert_eq!(e.to_string(), shown, "{src}");
    }
    // Units are checked against what the metric measures, and the message says what that is.
    for (metric, src, says) in [
        ("http_req_failed", "rate<250ms", "`rate` of http_req_failed is measured in a fraction (write 0.01 or 1%), not `ms`"),
        ("http_req_duration", "p(95)<1%", "`p(95)` of http_req_duration is measured in milliseconds (write 250 or 250ms, 1s), not `%`"),
        ("http_reqs", "count<5s", "`count` of http_reqs is measured in a count (a plain number), not `s`"),
        ("http_reqs", "rate<10%", "requests per second"),
    ] {
        let e = ThresholdExpr::parse(src).unwrap();
        let err = validate_for_metric(metric, &e).unwrap_err().to_string();
        assert!(err.contains(says), "{metric} {src}: {err}");
    }
    for (metric, src) in [("http_req_duration", "p(95)<1s"), ("checks", "rate>99%")] {
        validate_for_metric(metric, &ThresholdExpr::parse(src).unwrap()).unwrap();
    }
    // Not a unit: the message says what a value may be.
    let err = ThresholdExpr::parse("p(95)<250 msec")
        .unwrap_err()
        .to_string();
    assert!(err.contains("latencies in ms: 250, 250ms, 1s"), "{err}");
}

#[test]
fn a_threshold_with_units_judges_like_its_plain_twin() {
    let m = fixture::metrics();
    for (with_unit, plain) in [("p(95)<0.2s", "p(95)<200"), ("rate<10%", "rate<0.1")] {
        let key = if with_unit.starts_with("rate") {
            "http_req_failed"
        } else {
            "http_req_duration"
        };
        let a = evaluate(&fixture::spec(key, with_unit), &m);
        let b = evaluate(&fixture::spec(key, plain), &m);
        assert_eq!(a.passed, b.passed, "{with_unit} vs {plain}");
        assert_eq!(a.value, b.value);
    }
}

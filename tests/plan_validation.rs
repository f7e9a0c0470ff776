//! Plan validation: every problem is reported at once, each at its exact line:column.
use std::path::Path;
use std::sync::Arc;

use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::grammar::threshold::ThresholdExpr;
use loadgate::grammar::units::{Duration, Rate};
use loadgate::plan::{self, PlanOptions};

fn opts() -> PlanOptions {
    PlanOptions {
        env_profile: None,
        sets: vec![],
        env: Arc::new(|_| None),
    }
}

/// Problems of a fixture, as displayed, with the directory prefix removed.
fn problems(file: &str) -> Vec<String> {
    let path = Path::new("testdata/plans").join(file);
    match plan::load(&path, &opts()) {
        Ok(_) => vec![],
        Err(e) => {
            e.0.iter()
                .map(|p| p.to_string().replace("testdata/plans/", ""))
                .collect()
        }
    }
}

const EXECUTORS: &str = "`executor`, `rate`, `duration`, `start_rate`, `start_vus`, `stages`, `pre_allocated_vus`, `max_vus`, `vus`, `iterations`, `max_duration`, `start_after`, `graceful_stop`, `tags`, `request`, `requests`, `steps`, `ledger`";

#[test]
fn fixtures_report_every_problem_at_its_position() {
    let unknown_scenario_field = format!("unknown_field.yaml:6:5: scenarios.chat.rte: unknown field `rte`, expected one of {EXECUTORS} (did you mean `rate`?)");
    let colour = format!("multiple.yaml:17:5: scenarios.chat.colour: unknown field `colour`, expected one of {EXECUTORS}");
    let table: Vec<(&str, Vec<&str>)> = vec![
        ("unknown_field.yaml", vec![
            &unknown_scenario_field,
            "unknown_field.yaml:9:32: scenarios.chat.request.mehtod: unknown field `mehtod`, expected one of `name`, `weight`, `method`, `path`, `headers`, `body`, `checks` (did you mean `method`?)",
            "unknown_field.yaml:10:1: treshold: unknown field `treshold`, expected one of `name`, `description`, `target`, `stack`, `defaults`, `environments`, `feeders`, `scenarios`, `thresholds`, `probes`, `slos`, `canary`, `blue_green`, `faults`, `capacity`, `scrapes`, `dependencies`, `autoscaling`, `report`, `allow_hosts` (did you mean `thresholds`?)",
        ]),
        ("bad_units.yaml", vec![
            "bad_units.yaml:5:11: scenarios.chat.rate: expected a rate like 100/s or 30/m, got \"fast\"",
            "bad_units.yaml:6:15: scenarios.chat.duration: expected a duration like 500ms, 5s or 1m30s, got 30 (add a unit: ms, s, m or h)",
            "bad_units.yaml:7:18: scenarios.chat.start_after: expected a duration like 500ms, 5s or 1m30s, got \"1x\"",
            "bad_units.yaml:14:15: scenarios.ramp.stages[1].to: expected a rate like 10/s for ramping-arrival-rate, got 10",
            "bad_units.yaml:15:15: scenarios.ramp.stages[2].to: expected a rate like 100/s or 30/m, got \"20/x\"",
        ]),
        ("missing_scenario.yaml", vec![
            "missing_scenario.yaml:1:1: scenarios: a plan needs at least one scenario (add `scenarios:` with one entry)",
        ]),
        ("missing_target.yaml", vec![
            "missing_target.yaml:1:1: target: required: the base URL to test, e.g. `target: ${TARGET_URL}` (or add a `stack:` section)",
        ]),
        ("bad_thresholds.yaml", vec![
            "bad_thresholds.yaml:9:3: thresholds.latency: unknown metric \"latency\"; known: http_req_duration, http_req_service_time, http_req_failed, checks, http_reqs, dropped_iterations, iteration_duration",
            "bad_thresholds.yaml:10:3: thresholds.http_req_duration{scenario:nope}: scenario:nope names no scenario (scenarios: chat)",
            "bad_thresholds.yaml:11:3: thresholds.http_req_failed{scenario}: invalid metric key `http_req_failed{scenario}`: expected `tag:value`, found `scenario`",
            "bad_thresholds.yaml:12:15: thresholds.http_reqs[0].threshold: required: the expression, e.g. {threshold: \"rate<0.01\", abort_on_fail: true}",
            "bad_thresholds.yaml:13:44: thresholds.checks[0].delay: expected a duration like 500ms, 5s or 1m30s, got \"soon\"",
            "bad_thresholds.yaml:14:24: thresholds.dropped_iterations[0]: bad threshold: aggregation `p(95)` does not apply to `dropped_iterations` (a counter metric): use one of count, rate",
            "bad_thresholds.yaml:15:27: thresholds.http_req_service_time[0]: bad threshold: expected a number at column 8 of `p(95) << 250`, found `< 250`",
        ]),
        ("unknown_feeder.yaml", vec![
            "unknown_feeder.yaml:4:19: feeders.missing.csv: cannot read data/does-not-exist.csv: No such file or directory (os error 2) (a feeder's path is relative to the plan file)",
            "unknown_feeder.yaml:12:26: scenarios.s.request.headers.x-name: {{users.nickname}}: feeder \"users\" has no column \"nickname\" (columns: id, name)",
            "unknown_feeder.yaml:13:13: scenarios.s.request.body: {{prompts.text}} names an unknown feeder \"prompts\" (feeders: missing, users)",
        ]),
        ("unset_env.yaml", vec![
            "unset_env.yaml:1:9: target: environment variable LOADGATE_TEST_UNSET_HOST is not set (set it, or write ${LOADGATE_TEST_UNSET_HOST:-default})",
            "unset_env.yaml:4:20: defaults.headers.authorization: environment variable LOADGATE_TEST_UNSET_KEY is not set (set it, or write ${LOADGATE_TEST_UNSET_KEY:-default})",
        ]),
        ("executor_params.yaml", vec![
            "executor_params.yaml:5:5: scenarios.ramp.rate: `rate` is not a parameter of ramping-arrival-rate (it takes: start_rate, stages, pre_allocated_vus, max_vus)",
            "executor_params.yaml:8:14: scenarios.ramp.max_vus: max_vus (5) must be >= pre_allocated_vus (20)",
            "executor_params.yaml:10:3: scenarios.car.duration: constant-arrival-rate requires `duration` (e.g. `duration: 1m`)",
            "executor_params.yaml:12:11: scenarios.car.rate: must be positive, e.g. 100/s",
            "executor_params.yaml:13:5: scenarios.car.vus: `vus` is not a parameter of constant-arrival-rate (it takes: rate, duration, pre_allocated_vus, max_vus)",
            "executor_params.yaml:17:10: scenarios.vus.vus: must be at least 1",
            "executor_params.yaml:18:15: scenarios.vus.duration: must be longer than 0s",
            "executor_params.yaml:19:22: scenarios.vus.request.path: must start with '/', got \"c\"",
            "executor_params.yaml:20:3: scenarios.shared.request: required: `request:` (one request), `requests:` (a weighted list) or `steps:` (a flow)",
            "executor_params.yaml:23:17: scenarios.shared.iterations: shared-iterations needs iterations (5) >= vus (10)",
            "executor_params.yaml:24:3: scenarios.none.executor: required: the executor, one of constant-arrival-rate, ramping-arrival-rate, constant-vus, ramping-vus, per-vu-iterations, shared-iterations",
            "executor_params.yaml:26:5: scenarios.none.requests: give either `request` or `requests`, not both",
        ]),
        ("multiple.yaml", vec![
            "multiple.yaml:2:9: target: expected an http:// or https:// URL, got \"ftp://127.0.0.1\" (scheme \"ftp\")",
            "multiple.yaml:4:12: defaults.timeout: must be positive, e.g. 5s",
            "multiple.yaml:5:9: defaults.http: unknown variant `3`, expected one of `auto`, `1.1`, `2`",
            "multiple.yaml:7:25: stack.reference.backend: unknown variant `cloud`, expected one of `auto`, `containers`, `process`, `external`",
            "multiple.yaml:7:42: stack.reference.gateways: must be at least 1",
            "multiple.yaml:14:15: scenarios.chat.request.method: \"P@ST\" is not an HTTP method (GET, POST, PUT, ...)",
            "multiple.yaml:16:15: scenarios.chat.request.weight: must be at least 1",
            &colour,
            "multiple.yaml:19:3: thresholds.http_req_duration{scenario:chatt}: scenario:chatt names no scenario (scenarios: chat)",
            "multiple.yaml:21:20: report.formats[1]: unknown variant `pdf`, expected one of `table`, `json`, `junit`, `csv`, `html`",
        ]),
        ("syntax.yaml", vec![
            "syntax.yaml:6:13: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'",
        ]),
        ("valid_full.yaml", vec![]),
        ("bad_capacity.yaml", vec![
            "bad_capacity.yaml:11:13: capacity.scenario: no scenario named \"caht\" (did you mean `chat`?); the plan's scenarios: chat",
            "bad_capacity.yaml:12:13: capacity.expected: must be a positive rate, e.g. 150/s",
            "bad_capacity.yaml:13:14: capacity.precision: must be a share above 0% and at most 50%, e.g. `precision: 5%`",
            "bad_capacity.yaml:15:8: capacity.max: must be above `min` (100/s): the search doubles from min up to max",
            "bad_capacity.yaml:16:9: capacity.step: must be at least 1s: a step is judged on whole seconds of the run clock",
            "bad_capacity.yaml:17:12: capacity.repeats: must be at least 1",
        ]),
        ("failing_checks.yaml", vec![]),
    ];
    let mut failures = Vec::new();
    for (file, want) in &table {
        let got = problems(file);
        if &got != want {
            failures.push(format!(
                "{file}:\n  got:\n    {}\n  want:\n    {}",
                got.join("\n    "),
                want.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every fixture is in the table.
    let fixtures = std::fs::read_dir("testdata/plans")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(fixtures, table.len());
}

fn parse_inline(src: &str) -> Result<plan::ValidatedPlan, Vec<String>> {
    plan::parse(src, "inline.yaml", Path::new("testdata/plans"), &opts())
        .map_err(|e| e.0.iter().map(|p| p.to_string()).collect())
}

const HEAD: &str =
    "target: http://127.0.0.1:1\nscenarios:\n  s:\n    executor: constant-vus\n    duration: 1s\n";

#[test]
fn template_check_and_threshold_expressions_are_parsed() {
    // These parsers belong to other modules; assert whatever they reject is reported here
    // with its position (the stubs accept everything, the real parsers reject these).
    let src = format!(
        "{HEAD}    request:\n      path: \"/x/{{{{unclosed\"\n      checks: [\"status =\"]\nthresholds:\n  http_reqs: [\"count >>> 1\"]\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    let mut want = Vec::new();
    if let Err(e) = Template::parse("/x/{{unclosed") {
        want.push(format!(
            "inline.yaml:7:13: scenarios.s.request.path: bad template: {e}"
        ));
    }
    if let Err(e) = ResponseCheck::parse("status =") {
        want.push(format!(
            "inline.yaml:8:16: scenarios.s.request.checks[0]: bad check: {e}"
        ));
    }
    if let Err(e) = ThresholdExpr::parse("count >>> 1") {
        want.push(format!(
            "inline.yaml:10:15: thresholds.http_reqs[0]: bad threshold: {e}"
        ));
    }
    assert_eq!(got, want);
}

#[test]
fn set_problems_name_the_override() {
    let o = PlanOptions {
        sets: vec![("scenarios.s.duration".into(), "soon".into())],
        ..opts()
    };
    let src = format!("{HEAD}    request: {{ path: / }}\n");
    let err = plan::parse(&src, "inline.yaml", Path::new("."), &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--set scenarios.s.duration=soon: scenarios.s.duration: expected a duration like 500ms, 5s or 1m30s, got \"soon\""
    );
    assert_eq!((err.0[0].line, err.0[0].column), (0, 0));
}

#[test]
fn unknown_env_profile_is_a_problem() {
    let o = PlanOptions {
        env_profile: Some("prod".into()),
        ..opts()
    };
    let src =
        format!("environments:\n  staging: {{ scale: 2 }}\n{HEAD}    request: {{ path: / }}\n");
    let err = plan::parse(&src, "inline.yaml", Path::new("."), &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline.yaml:2:3: environments: --env prod: no such environment (defined: staging)"
    );
}

#[test]
fn structure_problems() {
    let p = |src: &str| parse_inline(src).err().unwrap_or_default();
    assert_eq!(
        p("- a\n- b\n"),
        ["inline.yaml:1:1: a plan is a YAML map (name, target, scenarios, ...)"]
    );
    assert_eq!(
        p("a: 1\na: 2\n"),
        ["inline.yaml:2:1: invalid YAML: duplicate mapping key: a"]
    );
    assert_eq!(
        p("target: http://x\nscenarios:\n  chat: 5\n"),
        ["inline.yaml:3:9: scenarios.chat: invalid type: integer `5`, expected a map (Scenario)"]
    );
    assert_eq!(
        p(&format!("{HEAD}    request: {{ path: / }}\nscenario: {{}}\n")),
        ["inline.yaml:7:1: scenario: unknown field `scenario`, expected one of `name`, `description`, `target`, `stack`, `defaults`, `environments`, `feeders`, `scenarios`, `thresholds`, `probes`, `slos`, `canary`, `blue_green`, `faults`, `capacity`, `scrapes`, `dependencies`, `autoscaling`, `report`, `allow_hosts` (did you mean `scenarios`?)"]
    );
}

#[test]
fn extension_keys_hold_anchors() {
    let src = "x-common: &common\n  executor: constant-vus\n  duration: 1s\ntarget: http://127.0.0.1:1\nscenarios:\n  a:\n    <<: *common\n    request: { path: /a }\n  b:\n    <<: *common\n    vus: 2\n    request: { path: /b }\n";
    let spec = parse_inline(src).unwrap().lower(&[]).unwrap();
    assert_eq!(spec.scenarios.len(), 2);
    assert_eq!(
        spec.scenarios[1].executor,
        loadgate::spec::ExecutorSpec::ConstantVus {
            vus: 2,
            duration: std::time::Duration::from_secs(1)
        }
    );
}

#[test]
fn io_error_is_a_problem_at_0_0() {
    let err = plan::load(Path::new("testdata/plans/no-such-plan.yaml"), &opts()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!((err.0[0].line, err.0[0].column), (0, 0));
    assert!(
        err.to_string()
            .starts_with("testdata/plans/no-such-plan.yaml: cannot read the plan: "),
        "{err}"
    );
}

#[test]
fn errors_display_one_problem_per_line() {
    let err = plan::load(Path::new("testdata/plans/unknown_field.yaml"), &opts()).unwrap_err();
    assert_eq!(err.to_string().lines().count(), 3);
    let e: &dyn std::error::Error = &err;
    assert!(e.to_string().contains("unknown_field.yaml:10:1: treshold"));
}

#[test]
fn units_table() {
    let durations = [
        ("500ms", 500),
        ("5s", 5_000),
        ("1m30s", 90_000),
        ("1.5s", 1_500),
        ("2h", 7_200_000),
    ];
    for (text, ms) in durations {
        assert_eq!(
            text.parse::<Duration>().unwrap().0,
            std::time::Duration::from_millis(ms),
            "{text}"
        );
    }
    let rates = [
        ("100/s", 100.0),
        ("30/m", 0.5),
        ("7200/h", 2.0),
        ("0.5/s", 0.5),
    ];
    for (text, per_second) in rates {
        assert_eq!(
            text.parse::<Rate>().unwrap().per_second,
            per_second,
            "{text}"
        );
    }
    for bad in ["fast", "100", "10/d"] {
        assert!(bad.parse::<Rate>().is_err(), "{bad}");
    }
    for bad in ["soon", "10", "5 s", "-1s"] {
        assert!(bad.parse::<Duration>().is_err(), "{bad}");
    }
}

#[test]
fn tag_filters_that_no_sample_can_carry_are_problems() {
    let src = "target: http://127.0.0.1:1\nscenarios:\n  home:\n    executor: constant-vus\n    duration: 1s\n    tags: { tier: gold }\n    request: { path: /, name: front }\nthresholds:\n  http_req_duration{name:nope}: [ \"p(95)<250\" ]\n  http_req_failed{method:PATCH}: [ \"rate<0.01\" ]\n  http_req_failed{error:timeoutt}: [ \"rate<0.01\" ]\n  http_reqs{tier:silver}: [ \"count>0\" ]\n  http_reqs{zone:eu}: [ \"count>0\" ]\n  http_reqs{status:200,name:front,tier:gold,error:timeout}: [ \"count>=0\" ]\n";
    let problems = parse_inline(src).err().unwrap_or_default();
    let want = [
        "inline.yaml:9:3: thresholds.http_req_duration{name:nope}: name:nope can match no sample: no request is named `nope` (names: front)",
        "inline.yaml:10:3: thresholds.http_req_failed{method:PATCH}: method:PATCH can match no sample: no request uses method PATCH (methods: GET)",
        "inline.yaml:11:3: thresholds.http_req_failed{error:timeoutt}: error:timeoutt can match no sample: `timeoutt` is not an error kind",
        "inline.yaml:12:3: thresholds.http_reqs{tier:silver}: tier:silver can match no sample: no scenario has `tier: silver` (values: gold)",
        "inline.yaml:13:3: thresholds.http_reqs{zone:eu}: zone:eu can match no sample: no scenario has a tag `zone` (scenario tags: tier)",
    ];
    assert_eq!(problems.len(), want.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(want) {
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
    }
}

#[test]
fn every_bad_placeholder_of_a_string_is_reported() {
    let src = "target: http://127.0.0.1:1\nscenarios:\n  home:\n    executor: constant-vus\n    duration: 1s\n    request: { path: \"/{{uuidd}}/{{seq}}/{{vuu}}\" }\n";
    let problems = parse_inline(src).err().unwrap_or_default();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("'uuidd'"), "{problems:#?}");
    assert!(problems[1].contains("'vuu'"), "{problems:#?}");
}

#[test]
fn canary_and_blue_green_problems_are_reported_at_their_positions() {
    let src = format!(
        "{HEAD}    request: {{ path: / }}\ncanary:\n  split: {{ header: x-model-version, baseline: v1, canary: v1 }}\n  scenarios: [ chta ]\n  steps: [ 25, 10, 150 ]\n  min_samples: 0\n  compare:\n    latency: {{ confidence: 1.5 }}\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    let want = [
        "inline.yaml:7:1: canary.apply: required: how the weight is applied: `reference: { admin_key: \"${ADMIN_KEY}\" }` (the reference gateway), `http: {...}` or `command: [...]`",
        "inline.yaml:8:59: canary.split.canary: must differ from `baseline` (a response is one or the other)",
        "inline.yaml:9:16: canary.scenarios[0]: no scenario `chta` (did you mean `s`?)",
        "inline.yaml:10:16: canary.steps[1]: weights must rise step by step (10 follows 25)",
        "inline.yaml:10:20: canary.steps[2]: a weight is a percentage of traffic, 1-100 (got 150)",
        "inline.yaml:11:16: canary.min_samples: must be at least 1 (a step with no samples is never a pass)",
        "inline.yaml:13:28: canary.compare.latency.confidence: must be between 0.5 and 0.9999, e.g. 0.98 (got 1.5)",
    ];
    assert_eq!(got, want, "{got:#?}");

    // Two targets instead of a header (no `apply`), and numbers taken from responses.
    let src = format!(
        "{HEAD}    request: {{ path: / }}\ncanary:\n  split: {{ targets: {{ baseline: \"http://127.0.0.1:2\", canary: ftp://x }} }}\n  compare:\n    values:\n      cost: {{ max_increase: 10% }}\n      quality: {{ from: jsn /q, min: 0.9, max: 0.5 }}\n  apply: {{ command: [ ./w.sh ] }}\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    let want = [
        (
            "inline.yaml:8:",
            "canary.split.targets.canary: required: an absolute http(s) base URL",
        ),
        (
            "inline.yaml:11:",
            "canary.compare.values.cost.from: required: where the number is",
        ),
        (
            "inline.yaml:12:",
            "canary.compare.values.quality.from: unknown extraction 'jsn /q'",
        ),
        (
            "inline.yaml:12:",
            "canary.compare.values.quality.min: 0.9 is above `max` 0.5",
        ),
        ("inline.yaml:13:", "canary.apply: not with `split.targets`"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (line, text) in want {
        assert!(
            got.iter().any(|g| g.starts_with(line) && g.contains(text)),
            "no {line} {text} in {got:#?}"
        );
    }

    let src = format!(
        "{HEAD}    request: {{ path: / }}\nblue_green:\n  split: {{ header: x-model-version, blue: v1, green: v2 }}\n  cutover_at: 10s\n  switch_back_at: 12s\n  apply: {{ command: [ ./switch.sh, \"{{{{version}}}}\" ] }}\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    assert_eq!(
        got,
        ["inline.yaml:10:19: blue_green.switch_back_at: must come at least one window (5s) after `cutover_at`, so the cutover is judged first"],
        "{got:#?}"
    );
}

#[test]
fn runbooks_are_lowered_and_an_empty_one_is_a_problem() {
    let src = format!(
        "{HEAD}    request: {{ path: /x }}\nthresholds:\n  http_reqs: [{{ threshold: \"count>0\", runbook: \"  see docs/x.md  \" }}]\nprobes:\n  p: {{ request: GET /x, runbook: \"   \" }}\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("probes.p.runbook: must not be empty"),
        "{got:?}"
    );
    let ok = format!(
        "{HEAD}    request: {{ path: /x }}\nthresholds:\n  http_reqs: [{{ threshold: \"count>0\", runbook: \"  see docs/x.md  \" }}]\n"
    );
    let spec = parse_inline(&ok).unwrap().lower(&[]).unwrap();
    assert_eq!(spec.thresholds[0].runbook.as_deref(), Some("see docs/x.md"));
}

#[test]
fn scrape_rates_and_checks_are_parsed_with_positions() {
    let src = format!(
        "{HEAD}    request: {{ path: / }}\nscrapes:\n  gw:\n    url: /metrics\n    series: [a_total]\n    rates: {{ per_min: \"b_total{{x=1}}\", ok_per_min: a_total }}\n    checks:\n      - \"sum(a_total) > 1\"\n      - \"max(c) > 1\"\n      - \"max(ok_per_min) per 1k requests < 2\"\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    assert_eq!(
        got,
        [
            "inline.yaml:11:23: scrapes.gw.rates.per_min: bad series selector \"b_total{x=1}\": a label value is a double-quoted string (write `name` or `name{label=\"value\"}`)",
            "inline.yaml:13:9: scrapes.gw.checks[0]: unknown function \"sum\": use last, max, min, avg or increase",
            "inline.yaml:14:9: scrapes.gw.checks[1]: reads `c`, which `series:` does not keep: add it to `series:`",
        ]
    );
}

#[test]
fn autoscaling_problems_have_positions_and_rules_lower() {
    let p = |src: &str| parse_inline(src).err().unwrap_or_default();
    let head = format!("{HEAD}    request: {{ path: / }}\n");
    assert_eq!(
        p(&format!(
            "{head}autoscaling:\n  w:\n    scrape: nope\n    metric: q\n    target_per_replica: 0\n    replicas: cur\n    max: 4\n    tolerance: 1.5\n    expect: {{ decision_within: 3s }}\n"
        )),
        [
            "inline.yaml:9:13: autoscaling.w.scrape: no scraper `nope`: add it under `scrapes:` or write `scrape: { url: ${TARGET_URL}/metrics }`",
            "inline.yaml:11:25: autoscaling.w.target_per_replica: must be a positive number: the metric's value per replica the autoscaler aims at, e.g. 5",
            "inline.yaml:14:16: autoscaling.w.tolerance: must be a fraction in [0, 1), e.g. 0.1 (the HPA's default)",
            "inline.yaml:15:32: autoscaling.w.expect.decision_within: needs the desired replicas' series: `replicas: { current: ..., desired: ... }`",
        ]
    );
    assert_eq!(
        p(&format!("{head}autoscaling:\n  w: {{ metric: q }}\n")),
        [
            "inline.yaml:8:3: autoscaling.w: `replicas:` is required, e.g. `replicas: { current: gateway_workers_current, desired: gateway_workers_desired }`",
            "inline.yaml:8:3: autoscaling.w: `target_per_replica:` is required, e.g. `target_per_replica: 5`",
            "inline.yaml:8:3: autoscaling.w: `max:` is required: the most replicas the system may run",
            "inline.yaml:8:3: autoscaling.w: `expect:` is required, e.g. `expect: { decision_within: 10s, ready_within: 30s }`",
            "inline.yaml:8:3: autoscaling.w: `scrape:` is required: a `scrapes:` entry's name or `{ url: ${TARGET_URL}/metrics }`",
        ]
    );
    assert_eq!(
        p(&format!(
            "{head}scrapes:\n  gw: {{ url: /metrics, series: [q] }}\nautoscaling:\n  w: {{ scrape: gw, metric: q, target_per_replica: 5, replicas: cur, max: 4, expect: {{ ready_within: 5s }} }}\n"
        )),
        ["inline.yaml:10:16: autoscaling.w.scrape: scraper `gw` keeps only [\"q\"]: add cur to its `series:`"]
    );
    // An inline scraper becomes `autoscaling.NAME`, keeping the rule's series.
    let src = format!(
        "{head}autoscaling:\n  w:\n    scrape: {{ url: /metrics, every: 250ms }}\n    metric: q\n    target_per_replica: 5\n    replicas: {{ current: cur, desired: des }}\n    max: 4\n    expect: {{ decision_within: 3s, no_flapping: true, directions: [out, in] }}\n"
    );
    let spec = parse_inline(&src).unwrap().lower(&[]).unwrap();
    let rule = &spec.autoscaling[0];
    assert_eq!(rule.scrape, "autoscaling.w");
    assert_eq!((rule.min, rule.max, rule.tolerance), (1, 4, 0.1));
    assert_eq!(rule.stabilization, std::time::Duration::from_secs(300));
    assert_eq!(rule.desired.as_deref(), Some("des"));
    assert_eq!(rule.expect.directions.len(), 2);
    let scrape = spec
        .scrapes
        .iter()
        .find(|s| s.name == "autoscaling.w")
        .unwrap();
    assert_eq!(scrape.series, ["q", "cur", "des"]);
    assert_eq!(scrape.every, std::time::Duration::from_millis(250));
}

#[test]
fn http2_sharing_problems_have_positions() {
    let src = format!(
        "{HEAD}    vus: 1\n    request: {{ path: / }}\ndefaults:\n  http: \"2\"\n  http2: {{ connections: 0, streams: 0 }}\n"
    );
    let got = parse_inline(&src).err().unwrap_or_default();
    let want = [
        "inline.yaml:10:25: defaults.http2.connections: must be at least 1 (omit it for as many connections as the VUs need)",
        "inline.yaml:10:37: defaults.http2.streams: must be at least 1 (concurrent streams per connection, e.g. 8)",
    ];
    assert_eq!(got, want, "{got:#?}");
}

//! A corpus of broken plans (tests/broken_plans/), each the kind of mistake people make: every
//! one makes `loadgate validate` (and `run`) exit 2 with a message that names the line and
//! column and says how to fix it.
use std::process::Command;

/// (file, `line:col: path: message` fragment, the fix the message must mention)
const CASES: &[(&str, &str, &str)] = &[
    (
        "rate_without_unit.yaml",
        "5:11: scenarios.chat.rate:",
        "add a unit: /s, /m or /h",
    ),
    (
        "executor_typo.yaml",
        "4:15: scenarios.chat.executor:",
        "did you mean `constant-arrival-rate`?",
    ),
    (
        "metric_typo.yaml",
        "8:3: thresholds.http_req_duraton:",
        "did you mean `http_req_duration`?",
    ),
    (
        "percentile_without_parens.yaml",
        "8:24: thresholds.http_req_duration[0]:",
        "write percentiles as p(N)",
    ),
    (
        "request_field_typo.yaml",
        "6:32: scenarios.chat.request.methd:",
        "did you mean `method`?",
    ),
    (
        "stage_without_over.yaml",
        "5:15: scenarios.chat.stages[0].over:",
        "e.g. `over: 30s`",
    ),
    (
        "path_without_slash.yaml",
        "6:22: scenarios.chat.request.path:",
        "must start with '/'",
    ),
    (
        "placeholder_typo.yaml",
        "6:22: scenarios.chat.request.path:",
        "expected uuid, seq",
    ),
    (
        "check_typo.yaml",
        "6:42: scenarios.chat.request.checks[0]:",
        "e.g. 'status == 200'",
    ),
    (
        "probe_without_request.yaml",
        "8:3: probes.login.request:",
        "`request: GET /path`",
    ),
    (
        "objective_without_percent.yaml",
        "8:30: slos.availability.objective:",
        "e.g. 99.9% or 0.999",
    ),
    (
        "latency_slo_without_good.yaml",
        "8:3: slos.latency.good:",
        "e.g. `good: \"<300\"`",
    ),
    (
        "zero_duration.yaml",
        "5:15: scenarios.chat.duration:",
        "must be longer than 0s",
    ),
    (
        "missing_feeder_file.yaml",
        "3:19: feeders.prompts.csv:",
        "relative to the plan file",
    ),
    (
        "allow_host_with_scheme.yaml",
        "7:16: allow_hosts[0]:",
        "no scheme, port or path",
    ),
    (
        "window_not_whole_seconds.yaml",
        "8:24: thresholds.http_req_duration[0]:",
        "write e.g. `p(95)<250 over 30s`",
    ),
    (
        "unit_the_metric_cannot_take.yaml",
        "8:22: thresholds.http_req_failed[0]:",
        "write 0.01 or 1%",
    ),
    (
        "executor_param_not_taken.yaml",
        "5:5: scenarios.chat.rate:",
        "it takes: vus, duration",
    ),
    (
        "failover_without_replica.yaml",
        "11:13: faults.pg.action:",
        "add `postgres: { replica: async }`",
    ),
];

#[test]
fn every_broken_plan_exits_2_naming_the_line_and_the_fix() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken_plans");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        CASES.len(),
        "every file of the corpus has a case here"
    );
    for (file, at, fix) in CASES {
        let path = dir.join(file);
        for cmd in ["validate", "run"] {
            let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
                .arg(cmd)
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{cmd} {file}: {stderr}");
            let line = stderr
                .lines()
                .find(|l| l.contains(at))
                .unwrap_or_else(|| panic!("{cmd} {file}: no problem at {at:?} in:\n{stderr}"));
            assert!(line.contains(fix), "{cmd} {file}: {line:?} lacks {fix:?}");
        }
    }
}

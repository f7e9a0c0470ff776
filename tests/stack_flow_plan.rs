//! plans/flow-jobs.yaml against the real reference stack (Redis, PostgreSQL, the gateway),
//! shortened with `--set`: each iteration submits a job, extracts its id and Location, polls
//! GET /v1/jobs/{id} until `json /status == done` (with think time between steps), then reads
//! the Location back. Per-step metrics (`step:NAME`), each check's pass rate (including the
//! `until` and `extract` results) and `iteration_duration` appear in summary.json, junit.xml
//! and the terminal, and the plan's step/check thresholds pass (exit 0).
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn flow_plan_reports_steps_checks_and_iterations_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flow");
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "plans/flow-jobs.yaml", "--out"])
        .arg(&out)
        .args(["--threads", "1"])
        .args(["--set", "scenarios.jobs.duration=8s"])
        .args(["--set", "scenarios.jobs.rate=2/s"])
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = summary(&out);
    let jobs = &v["scenarios"]["jobs"];

    // Steps, in order, each with its own requests and latency.
    let steps: Vec<&str> = jobs["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["submit", "poll", "read"], "{jobs:#}");
    let step = |i: usize| &jobs["steps"][i];
    let submits = step(0)["requests"].as_u64().unwrap();
    assert!(submits >= 12, "2/s for 8 s: {jobs:#}");
    assert!(
        step(1)["requests"].as_u64().unwrap() > submits,
        "the job takes 300 ms: polls repeat: {jobs:#}"
    );
    assert_eq!(step(2)["requests"].as_u64().unwrap(), submits, "{jobs:#}");
    assert_eq!(step(0)["status_codes"]["202"].as_u64(), Some(submits));
    assert!(step(1)["latency_ms"]["p50"].as_f64().unwrap() > 0.0);

    // timeseries.csv: the scenario's rows (step empty) and each step's own rows, whose
    // requests add up to the step's total.
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("second,scenario,step,requests,"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (i, name) in ["submit", "poll", "read"].iter().enumerate() {
        let n: u64 = rows
            .iter()
            .filter(|r| r[1] == "jobs" && r[2] == *name)
            .map(|r| r[3].parse::<u64>().unwrap())
            .sum();
        assert_eq!(
            n,
            step(i)["requests"].as_u64().unwrap(),
            "step {name}:\n{csv}"
        );
    }
    let whole: u64 = rows
        .iter()
        .filter(|r| r[1] == "jobs" && r[2].is_empty())
        .map(|r| r[3].parse::<u64>().unwrap())
        .sum();
    assert_eq!(whole, jobs["requests"].as_u64().unwrap(), "{csv}");

    // Every check by name: the response checks, the until condition, the extractions.
    let check = |name: &str| -> &Value {
        jobs["checks_by_name"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?}: {jobs:#}"))
    };
    for (name, step_name) in [
        ("status == 202", "submit"),
        ("json /state == queued", "submit"),
        ("extract id: json /id", "submit"),
        ("extract location: header location", "submit"),
        ("until: json /status == done", "poll"),
        ("json /state == succeeded", "read"),
    ] {
        let c = check(name);
        assert_eq!(c["step"], step_name, "{c:#}");
        assert_eq!(c["fails"], 0, "{c:#}");
        assert_eq!(c["passes"].as_u64(), Some(submits), "{c:#}");
        assert_eq!(c["rate"], 1.0, "{c:#}");
    }

    // iteration_duration: every flow, and at least the think time between the steps.
    assert_eq!(jobs["iterations"].as_u64(), Some(submits), "{jobs:#}");
    let iter_ms = &jobs["iteration_duration_ms"];
    assert!(iter_ms["p50"].as_f64().unwrap() >= 150.0, "{iter_ms:#}");

    // The thresholds on steps, one check and the iteration were judged and passed.
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for key in [
        "http_req_duration{step:submit}",
        "http_req_duration{step:poll}",
        "iteration_duration{scenario:jobs}",
        "checks{check:status == 202}",
        "checks{check:until: json /status == done}",
    ] {
        assert!(names.iter().any(|n| n.starts_with(key)), "{key}: {names:?}");
    }
    assert_eq!(v["verdict"], "pass");

    // junit.xml and the terminal show the steps' checks.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    for case in [
        "jobs › submit › status == 202",
        "jobs › poll › until: json /status == done",
        "jobs › read › json /state == succeeded",
        "http_req_duration{step:poll}",
    ] {
        assert!(junit.contains(case), "junit lacks {case}:\n{junit}");
    }
    for line in [
        "jobs step submit: ",
        "jobs step poll: ",
        "jobs step read: ",
        "iteration_duration ms",
        "✓ jobs › submit › status == 202  100.00%",
        "✓ jobs › poll › until: json /status == done  100.00%",
        "verdict: PASS",
    ] {
        assert!(stdout.contains(line), "terminal lacks {line:?}:\n{stdout}");
    }
}

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

//! plans/slo-gate.yaml and plans/slo-burn.yaml against the real reference stack (Redis,
//! PostgreSQL, the gateway), shortened with `--set` (the full-length plans are what the
//! README runs): the gate passes (exit 0) with its probes and SLOs in every report; the burn
//! plan's injected fault makes the availability SLO fail (exit 99) and the report names the
//! window pair that broke, its burn rates and the run-clock time.
mod stack_support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use stack_support::{run_plan, summary};

fn loadgate(plan: &str, out: &Path, sets: &[&str]) -> std::process::Output {
    run_plan(plan, out, &[], sets)
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {:#}", v["checks"]))
}

/// The stack's keys (`lg_user_<hex>`, `lg_admin_<hex>`, random per stack) travel in request
/// headers and the admin call of slo-burn; no report file and no output line may carry one.
fn assert_no_secrets(out: &Path, o: &Output) {
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
    ];
    // Every file, the stored results under results/ included.
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            texts.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    assert!(
        texts.len() >= 6,
        "expected the reports: {:?}",
        texts.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (name, text) in texts {
        for secret in ["lg_user_", "lg_admin_"] {
            assert!(
                !text.contains(secret),
                "{name} contains a key ({secret}...)"
            );
        }
    }
}

#[test]
fn slo_gate_passes_with_probes_and_slos_in_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gate");
    let o = loadgate(
        "plans/slo-gate.yaml",
        &out,
        &[
            "scenarios.chat.duration=15s",
            "scenarios.notes.duration=15s",
        ],
    );
    assert_no_secrets(&out, &o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = summary(&out);
    assert_eq!(v["verdict"], "pass");
    let probes: Vec<&str> = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(probes, ["login", "import"]);
    let import = &v["probes"][1];
    assert_eq!(import["kind"], "chain");
    assert!(import["samples"].as_u64().unwrap() >= 2, "{import:#}");
    let slos: Vec<&str> = v["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(slos, ["availability", "chat-latency"]);
    assert_eq!(check(&v, "slo availability")["kind"], "slo");
    assert_eq!(check(&v, "probe login")["kind"], "probe");
    // junit.xml: one testcase per probe and per SLO.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    for case in [
        r#"name="probe login" classname="probe""#,
        r#"name="probe import" classname="probe""#,
        r#"name="slo availability" classname="slo""#,
        r#"name="slo chat-latency" classname="slo""#,
    ] {
        assert!(junit.contains(case), "junit lacks {case}:\n{junit}");
    }
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
}

#[test]
fn slo_burn_fails_and_names_the_window_pair_that_broke() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("burn");
    let o = loadgate(
        "plans/slo-burn.yaml",
        &out,
        &[
            "scenarios.chat.duration=20s",
            "scenarios.notes.duration=20s",
            "scenarios.fault-on.start_after=5s",
            "scenarios.fault-off.start_after=15s",
            // 20% of v2 (~8% of all requests, ~80x the budget rate) instead of the plan's 5%:
            // ten seconds of fault at 50 req/s hold too few errors at 5% for the page pair to
            // fire every time (a Poisson draw of mean 5 per 5 s window).
            "scenarios.fault-on.request.body.error_rate=0.2",
        ],
    );
    assert_no_secrets(&out, &o);
    assert_eq!(
        o.status.code(),
        Some(99),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v = summary(&out);
    assert_eq!(v["verdict"], "fail");
    let c = check(&v, "slo availability");
    assert_eq!(c["passed"], false);
    let observed = c["observed"].as_str().unwrap();
    // e.g. "page burn 19.9x over 5s and 40x over 1s > 14.4x at 8s; ..."
    assert!(observed.starts_with("page burn "), "{observed}");
    assert!(observed.contains("over 5s and "), "{observed}");
    let at: u64 = observed
        .split(" at ")
        .nth(1)
        .and_then(|t| t.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no run-clock time in {observed:?}"));
    assert!(
        (5..=17).contains(&at),
        "the alert fires during the fault: {observed}"
    );
    let slo = &v["slos"][0];
    let page = &slo["windows"][0];
    assert_eq!(page["severity"], "page");
    assert_eq!(page["fired"], true, "{observed}");
    assert!(
        page["burn_long_at_alert"].as_f64().unwrap() > 14.4,
        "{page}"
    );
    assert_eq!(page["scaled_from"], "1h/5m");
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "burn_alert" && e["slo"] == "availability"),
        "a burn_alert event of the availability SLO: {:#}",
        v["events"]
    );
    // Only v2 failed, and only with the knob on.
    assert!(v["scenarios"]["chat"]["errors"].as_u64().unwrap() > 0);
    assert_eq!(check(&v, "slo chat-latency")["passed"], true);
}

//! Response checks visible everywhere: testdata/plans/failing_checks.yaml against a server
//! that answers 201 {"cached":true} and 200 {"cached":false} in turn. Each check's passes,
//! fails and rate appear in the terminal (k6's ✓ / ✗ lines), summary.json and junit.xml; a
//! `checks{check:NAME}` threshold judges one check and fails the run (exit 99); the verdict
//! line counts criteria, not response checks.
mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::post;
use serde_json::Value;

fn alternating_server() -> common::TestServer {
    let n = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/v1/chat",
        post(move || {
            let n = n.clone();
            async move {
                let i = n.fetch_add(1, Ordering::Relaxed);
                if i % 2 == 0 {
                    (axum::http::StatusCode::CREATED, r#"{"cached":true}"#)
                } else {
                    (axum::http::StatusCode::OK, r#"{"cached":false}"#)
                }
            }
        }),
    );
    common::TestServer::axum(app)
}

#[test]
fn each_check_has_its_pass_rate_and_a_threshold_on_one_check_fails_the_run() {
    let server = alternating_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "testdata/plans/failing_checks.yaml", "--out"])
        .arg(&out)
        .env("TARGET_URL", server.url())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}");
    assert_eq!(
        o.status.code(),
        Some(99),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // summary.json: every check by name, with passes, fails and rate.
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let home = &v["scenarios"]["home"];
    let requests = home["requests"].as_u64().unwrap();
    assert!(requests >= 60, "{home:#}");
    let by_name = |name: &str| -> &Value {
        home["checks_by_name"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?}: {home:#}"))
    };
    let status = by_name("status == 201");
    let header = by_name("header x-nope exists");
    let cached = by_name("json /cached == true");
    for c in [status, header, cached] {
        assert_eq!(
            c["passes"].as_u64().unwrap() + c["fails"].as_u64().unwrap(),
            requests,
            "{c:#}"
        );
    }
    assert_eq!(header["passes"], 0);
    assert_eq!(header["rate"], 0.0);
    let half = status["rate"].as_f64().unwrap();
    assert!((0.45..=0.55).contains(&half), "{status:#}");
    assert_eq!(
        status["passes"], cached["passes"],
        "the same responses pass both"
    );

    // The threshold on one check fails; the one on another passes; each says what it saw.
    let criterion = |name: &str| -> &Value {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no criterion {name:?}: {:#}", v["checks"]))
    };
    let failed = criterion("checks{check:header x-nope exists}");
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert_eq!(failed["observed"], "rate=0", "{failed:#}");
    assert_eq!(criterion("checks{check:status == 201}")["passed"], true);
    assert_eq!(v["verdict"], "fail");

    // The terminal: one ✓ / ✗ line per check with its percentage, the criteria apart.
    let line = |needle: &str| -> String {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{stdout}"))
            .to_string()
    };
    assert!(stdout.contains("response checks:"), "{stdout}");
    let h = line("header x-nope exists  ");
    assert!(
        h.trim_start()
            .starts_with("✗ home › header x-nope exists  0.00% — ✓ 0 / ✗ "),
        "{h}"
    );
    let s = line("› status == 201  ");
    assert!(s.trim_start().starts_with('✗'), "{s}");
    assert!(s.contains(&format!("{:.2}%", 100.0 * half)), "{s}");
    assert!(
        stdout.contains("verdict: FAIL (2 of 3 criteria passed)"),
        "{stdout}"
    );

    // junit.xml: one response_check case per check with its counts.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("failing-checks: response checks"), "{junit}");
    assert!(
        junit.contains("home › POST /v1/chat › header x-nope exists"),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<property name="fails" value=""#),
        "{junit}"
    );
    assert!(junit.contains("0.00% passed: 0 passes"), "{junit}");
}

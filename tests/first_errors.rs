//! The first message of each error kind is kept (one per scenario and kind, per worker, never
//! formatted on the success path) and shown in summary.json (`first_errors`) and in the
//! terminal's "mostly failed" warning: a dead target says "connection refused" and where, a
//! failing one its status and the start of its body.
mod common;

use std::process::{Command, Stdio};

use serde_json::Value;

fn attack(url: &str, json: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgate"));
    cmd.args(["attack", url, "-c", "2", "-d", "1s"]);
    if json {
        cmd.arg("--json");
    }
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_dead_target_names_the_error_and_where() {
    let port = common::closed_port();
    let url = format!("http://127.0.0.1:{port}/x");
    let (_, out) = attack(&url, true);
    let v: Value = serde_json::from_str(&out).unwrap();
    let first = v["scenarios"]["attack"]["first_errors"]["connect_refused"]
        .as_str()
        .unwrap_or_else(|| panic!("{:#}", v["scenarios"]["attack"]));
    assert_eq!(
        first,
        format!("GET /x: connection refused (127.0.0.1:{port})")
    );
    let warning = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "mostly_failed")
        .unwrap();
    assert_eq!(warning["first_error"], first);
    let (_, text) = attack(&url, false);
    assert!(
        text.contains(&format!(
            "first: GET /x: connection refused (127.0.0.1:{port})"
        )),
        "{text}"
    );
}

#[test]
fn a_failing_target_shows_its_status() {
    let server = common::TestServer::axum(
        axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "overloaded") }),
    );
    let (_, out) = attack(&format!("{}/y", server.url()), true);
    let v: Value = serde_json::from_str(&out).unwrap();
    let first = &v["scenarios"]["attack"]["first_errors"]["status_5xx"];
    assert_eq!(first, "GET /y: HTTP 503", "{:#}", v["scenarios"]["attack"]);
}

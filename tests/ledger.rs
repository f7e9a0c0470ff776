//! The write ledger end to end without a stack: a notes service that acknowledges every
//! write but keeps only some (and changes one) makes the lost-writes check fail (exit 99)
//! with the lost ids listed; a service that keeps everything passes. And `ledger:` problems
//! at their line:column.
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

type Notes = Arc<Mutex<(u64, HashMap<String, Value>)>>;

/// Acknowledges every note; with `lose_every`, keeps none of every n-th, and changes the text
/// of the second one kept.
fn notes_server(lose_every: Option<u64>) -> common::TestServer {
    let notes: Notes = Arc::default();
    let app = Router::new()
        .route(
            "/v1/notes",
            post(
                move |State(n): State<Notes>, Json(mut v): Json<Value>| async move {
                    let mut g = n.lock().unwrap();
                    g.0 += 1;
                    let seq = g.0;
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    if lose_every.is_some_and(|k| seq % k == 0) {
                        return StatusCode::CREATED;
                    }
                    if lose_every.is_some() && seq == 2 {
                        v["text"] = json!("changed");
                    }
                    v["created_at"] = json!(seq);
                    g.1.insert(id, v);
                    StatusCode::CREATED
                },
            ),
        )
        .route(
            "/v1/notes/{id}",
            get(
                |State(n): State<Notes>, h: HeaderMap, Path(id): Path<String>| async move {
                    // The read-back must carry the write's API key.
                    if h.get("authorization").is_none_or(|v| v != "Bearer k1") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    match n.lock().unwrap().1.get(&id) {
                        Some(v) => Ok(Json(v.clone())),
                        None => Err(StatusCode::NOT_FOUND),
                    }
                },
            ),
        )
        .with_state(notes);
    common::TestServer::axum(app)
}

fn run(target: &str, expect: &str) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "target: {target}
scenarios:
  notes:
    executor: shared-iterations
    vus: 2
    iterations: 40
    request: {{ method: POST, path: /v1/notes, headers: {{ authorization: Bearer k1 }}, body: {{ id: \"{{{{uuid}}}}\", text: \"{{{{seq}}}}\" }} }}
    ledger: {{ id: \"{{{{uuid}}}}\", read_back: \"GET /v1/notes/{{{{id}}}}\"{expect} }}
"
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args([
            "run",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "2",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let s: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json ({e}): {text}")),
    )
    .unwrap();
    (o.status.code(), s, text)
}

fn check(s: &Value, prefix: &str) -> Value {
    s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no check {prefix} in {:#}", s["checks"]))
        .clone()
}

#[test]
fn a_service_that_loses_acknowledged_writes_fails_the_ledger_checks() {
    let server = notes_server(Some(4));
    let (code, s, text) = run(&server.url(), "");
    assert_eq!(code, Some(99), "{text}");
    let lost = check(&s, "ledger: lost_writes");
    assert_eq!(lost["passed"], false);
    let observed = lost["observed"].as_str().unwrap();
    // 40 writes, every 4th dropped: 10 lost, one of the kept ones changed.
    assert!(
        observed.starts_with("lost_writes=10 of 40 acknowledged; changed=1"),
        "{observed}"
    );
    assert!(observed.contains("lost ids: "), "{observed}");
    assert_eq!(check(&s, "ledger: rpo")["passed"], false);
    // The same loss within a documented expectation passes.
    let (code, s, text) = run(&server.url(), ", expect: { lost_writes: 10, rpo: 60s }");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        check(&s, "ledger: lost_writes <= 10")["passed"],
        true,
        "{text}"
    );
    assert_eq!(check(&s, "ledger: rpo <= 60s")["passed"], true, "{text}");
}

#[test]
fn a_service_that_keeps_every_write_passes_the_ledger_checks() {
    let server = notes_server(None);
    let (code, s, text) = run(&server.url(), "");
    assert_eq!(code, Some(0), "{text}");
    let lost = check(&s, "ledger: lost_writes");
    assert_eq!(lost["passed"], true);
    assert!(
        lost["observed"]
            .as_str()
            .unwrap()
            .starts_with("lost_writes=0 of 40 acknowledged; changed=0, recovered=0, unreadable=0"),
        "{lost}"
    );
    assert_eq!(check(&s, "ledger: rpo")["passed"], true);
}

#[test]
fn ledger_problems_are_reported_at_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        "target: http://127.0.0.1:1
scenarios:
  notes:
    executor: shared-iterations
    request: { method: POST, path: /v1/notes, body: { id: \"{{uuid}}\" } }
    ledger:
      id: \"{{seq}}\"
      read_back: GET /v1/notes
",
    )
    .unwrap();
    let opts = loadgate::plan::PlanOptions {
        env_profile: None,
        sets: vec![],
        env: Arc::new(|_| None),
    };
    let errs: Vec<String> = match loadgate::plan::load(&path, &opts) {
        Ok(_) => panic!("a broken ledger was accepted"),
        Err(e) => e.0.iter().map(|p| p.to_string()).collect(),
    };
    let text = errs.join("\n");
    assert!(
        errs.iter()
            .any(|e| e.contains("plan.yaml:7:11") && e.contains("no top-level field")),
        "{text}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("plan.yaml:8:18") && e.contains("METHOD /path/{{id}}")),
        "{text}"
    );
    // A valid ledger lowers into the scenario's spec.
    std::fs::write(
        &path,
        "target: http://127.0.0.1:1
scenarios:
  notes:
    executor: shared-iterations
    request: { method: POST, path: /v1/notes, body: { id: \"{{uuid}}\", text: \"{{seq}}\" } }
    ledger: { id: \"{{uuid}}\", read_back: \"GET /v1/notes/{{id}}\", compare: [text] }
",
    )
    .unwrap();
    let plan = loadgate::plan::load(&path, &opts).unwrap_or_else(|e| panic!("{e:?}"));
    let l = plan.preview().scenarios[0].ledger.clone().unwrap();
    assert_eq!(l.id_field, "id");
    assert_eq!(
        (l.read_method.as_str(), l.path_for("x")),
        ("GET", "/v1/notes/x".to_string())
    );
    assert_eq!(l.compare, vec!["text".to_string()]);
}

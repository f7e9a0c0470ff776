//! `faults:` in plans: every problem at its line:column, the lowering into FaultSpec, and exec
//! faults end to end without a stack (an unconfirmed fault fails the drill; a confirmed one
//! nobody noticed has RTO 0 and passes).
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use loadgate::plan::{self, PlanOptions};
use loadgate::spec::fault::{FaultAction, NetworkFault, ToxicKind, ToxicStream};
use loadgate::spec::{Component, StackOp};
use serde_json::Value;

fn opts() -> PlanOptions {
    PlanOptions {
        env_profile: None,
        sets: vec![],
        env: Arc::new(|_| None),
    }
}

fn load(text: &str) -> Result<loadgate::spec::RunSpec, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    match plan::load(&path, &opts()) {
        Ok(p) => Ok(p.preview().clone()),
        Err(e) => Err(e
            .0
            .iter()
            .map(|p| {
                let s = p.to_string();
                s[s.find("plan.yaml").unwrap() + "plan.yaml".len()..].to_string()
            })
            .collect()),
    }
}

const HEAD: &str = "stack:
  reference: { backend: process }
scenarios:
  a: { executor: constant-arrival-rate, rate: 10/s, duration: 30s, request: { path: / } }
";

#[test]
fn faults_lower_into_the_spec() {
    let spec = load(&format!(
        "{HEAD}faults:
  k:
    at: 5s
    every: 10s
    times: 3
    action: kill
    component: gateway[2]
    restart_after: 2s
    expect: {{ rto: \"<8s\" }}
  t:
    at: 1s
    duration: 3s
    action: toxic
    component: postgres
    toxic: {{ kind: latency, latency: 200ms, jitter: 20ms, stream: upstream, toxicity: 0.5 }}
  d:
    at: 1s
    action: toxic
    component: redis
    toxic: {{ kind: down }}
"
    ))
    .unwrap();
    assert_eq!(spec.faults.len(), 3);
    let k = &spec.faults[0];
    assert_eq!(
        k.action,
        FaultAction::Stack {
            component: Component::Gateway(2),
            op: StackOp::Kill
        }
    );
    assert_eq!(k.at_of(2), Duration::from_secs(25));
    assert_eq!(k.hold, Some(Duration::from_secs(2)));
    assert_eq!(k.max_rto, Duration::from_secs(8));
    let FaultAction::Network { component, fault } = &spec.faults[1].action else {
        panic!("{:?}", spec.faults[1]);
    };
    assert_eq!(*component, Component::Postgres);
    let NetworkFault::Toxics(t) = fault else {
        panic!("{fault:?}")
    };
    assert_eq!(t[0].stream, ToxicStream::Upstream);
    assert_eq!(t[0].toxicity, 0.5);
    assert!(
        matches!(t[0].kind, ToxicKind::Latency { latency, .. } if latency == Duration::from_millis(200))
    );
    assert!(matches!(
        &spec.faults[2].action,
        FaultAction::Network {
            fault: NetworkFault::Down,
            ..
        }
    ));
}

#[test]
fn fault_problems_are_reported_at_their_fields() {
    let problems = load(&format!(
        "{HEAD}faults:
  a:
    action: kill
    component: mysql
  b:
    at: 1s
    action: toxic
    component: gateway[1]
    toxic: {{ kind: latency, bytes: 10KiB }}
    restart_after: 2s
  c:
    at: 1s
    times: 2
    action: pause
    component: redis
    duration: 3s
    expect: {{ rto: \"15s\" }}
"
    ))
    .unwrap_err();
    let want = [
        ":6:3: faults.a.at: required: when the fault is injected on the run clock, e.g. `at: 20s`",
        ":8:16: faults.a.component: unknown component `mysql`",
        ":12:16: faults.b.component: toxics act on the connections to a dependency",
        ":13:5: faults.b.toxic.latency: required with `kind: latency`, e.g. `latency: 200ms`",
        ":13:36: faults.b.toxic.bytes: not a parameter of `latency` (it takes: latency, jitter)",
        ":14:20: faults.b.restart_after: not used with `action: toxic`",
        ":15:3: faults.c.every: required with `times: 2`",
        ":20:15: faults.c.duration: not used with `action: pause`; write `resume_after:`",
        ":21:20: faults.c.expect.rto: write the bound as `<DURATION`",
    ];
    for w in want {
        assert!(
            problems.iter().any(|p| p.starts_with(w)),
            "missing {w:?} in\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn stack_faults_need_a_stack() {
    let problems = load(
        "target: http://127.0.0.1:1
scenarios:
  a: { executor: constant-arrival-rate, rate: 10/s, duration: 3s, request: { path: / } }
faults:
  k: { at: 1s, action: kill, component: redis }
",
    )
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("faults.k.action: `action: kill` acts on the reference stack")),
        "{problems:?}"
    );
}

/// An exec fault whose check never passes fails the drill (exit 99) instead of passing for a
/// recovery that never needed to happen; one whose check passes, and that no user noticed,
/// has RTO 0.
#[test]
fn an_exec_fault_whose_confirmation_fails_fails_the_drill() {
    let server = common::TestServer::axum(
        axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
    );
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("injected");
    let plan = dir.path().join("exec.yaml");
    std::fs::write(
        &plan,
        format!(
            "target: {}
scenarios:
  a: {{ executor: constant-arrival-rate, rate: 20/s, duration: 5s, request: {{ path: / }} }}
faults:
  unconfirmed:
    at: 1s
    action: exec
    exec: {{ command: \"true\", check: \"exit 3\", check_within: 1s }}
  confirmed:
    at: 1s
    duration: 1s
    action: exec
    exec: {{ command: \"touch {m}\", check: \"test -f {m}\", recover: \"rm {m}\" }}
",
            server.url(),
            m = marker.display()
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
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(99),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let check = |name: &str| {
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {:#}", s["checks"]))
            .clone()
    };
    let c = check("fault unconfirmed: injected and confirmed");
    assert_eq!(c["passed"], false);
    assert_eq!(c["kind"], "failover");
    assert!(
        c["observed"]
            .as_str()
            .unwrap()
            .contains("not confirmed: check `exit 3` exited 3"),
        "{c}"
    );
    assert_eq!(check("fault unconfirmed: rto < 15s")["passed"], false);
    assert_eq!(
        check("fault confirmed: injected and confirmed")["passed"],
        true
    );
    let rto = check("fault confirmed: rto < 15s");
    assert_eq!(rto["passed"], true, "{rto}");
    assert_eq!(rto["observed"], "rto=0s");
    let f = s["failover"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[1]["fault"], "confirmed");
    assert_eq!(f[1]["rto_ms"], 0.0);
    assert_eq!(f[1]["lost_writes"], Value::Null);
    assert!(!marker.exists(), "recover ran");
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"fault_injected") && kinds.contains(&"fault_recovered"),
        "{kinds:?}"
    );
    assert!(
        stdout.contains("failover (RTO as users saw it)"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("fault unconfirmed: injected and confirmed"));
}

/// `when: { error_rate_above: 50% }`: the fault waits for the condition (scenario `bad`
/// starts failing at 2 s), then fires; `when: { probe_failing: P }` with an unknown probe is
/// a plan problem.
#[test]
fn a_conditional_fault_fires_when_its_condition_holds() {
    let problems = load(&format!(
        "{HEAD}faults:
  p:
    when: {{ probe_failing: login }}
    action: kill
    component: redis
"
    ))
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("faults.p.when.probe_failing: no probe named `login`")),
        "{problems:?}"
    );

    let server = common::TestServer::axum(
        axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/bad",
                axum::routing::get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
            ),
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("when.yaml");
    std::fs::write(
        &plan,
        format!(
            "target: {}
scenarios:
  good: {{ executor: constant-arrival-rate, rate: 20/s, duration: 5s, request: {{ path: / }} }}
  bad: {{ executor: constant-arrival-rate, rate: 20/s, duration: 3s, start_after: 2s, request: {{ path: /bad }} }}
faults:
  on-errors:
    when: {{ error_rate_above: 30% }}
    action: exec
    exec: {{ command: \"true\" }}
",
            server.url()
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
            "1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let f = &s["failover"][0];
    let rep = &f["repetitions"][0];
    assert_eq!(
        rep["injected"],
        true,
        "{f:#}\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let at = rep["measured"]["injected_s"].as_f64().unwrap();
    assert!(
        (2.0..5.0).contains(&at),
        "fired at {at} s, after the errors began at 2 s"
    );
}

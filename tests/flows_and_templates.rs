//! User flows and template encoding against a small echo server on loopback:
//! - a path template with spaces and `&` arrives decoded to the exact value (path segment
//!   and query value), `{{raw ...}}` writes a value as is, JSON bodies stay JSON-escaped and
//!   `"{{randint(lo,hi)}}"` is a JSON number;
//! - a flow: a login step's token (JSON pointer), header and regex extractions fill the next
//!   step's path, query, header and body; per-step samples carry `step:NAME`; think time
//!   shows in `iteration_duration`; a failed extraction stops the iteration and is counted;
//! - validation: a variable no earlier step extracts is reported at its line and column.
mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, RawQuery};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use loadgate::checks::threshold_eval::evaluate_expr;
use loadgate::grammar::threshold::ThresholdExpr;
use loadgate::metrics::RunMetrics;
use loadgate::plan::{parse, PlanOptions};

/// What the echo server saw: (path segment, query `q`, raw query, authorization, body).
type Seen = Arc<Mutex<Vec<(String, String, String, String, String)>>>;

fn echo_server(seen: Seen) -> common::TestServer {
    let seen_post = seen.clone();
    let app = axum::Router::new()
        .route(
            "/login",
            post(|| async {
                (
                    [("x-session", "s-42")],
                    r#"{"token":"t o&k=1/2","user":{"id":7}}"#,
                )
            }),
        )
        .route(
            "/echo/{seg}",
            get(
                move |UrlPath(seg): UrlPath<String>,
                      Query(q): Query<std::collections::HashMap<String, String>>,
                      RawQuery(raw): RawQuery,
                      headers: HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        seen.lock().unwrap().push((
                            seg,
                            q.get("q").cloned().unwrap_or_default(),
                            raw.unwrap_or_default(),
                            auth,
                            String::new(),
                        ));
                        "ok"
                    }
                },
            )
            .post(move |UrlPath(seg): UrlPath<String>, body: String| {
                let seen = seen_post.clone();
                async move {
                    seen.lock().unwrap().push((
                        seg,
                        String::new(),
                        String::new(),
                        String::new(),
                        body,
                    ));
                    "ok"
                }
            }),
        );
    common::TestServer::axum(app)
}

fn run_plan(text: &str, dir: &Path) -> RunMetrics {
    let plan = parse(text, "inline.yaml", dir, &PlanOptions::empty_env())
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = plan.lower(&[]).unwrap_or_else(|e| panic!("{e}"));
    common::run(spec, 1)
}

#[test]
fn path_templates_are_percent_encoded_and_arrive_decoded() {
    let seen: Seen = Arc::default();
    let server = echo_server(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("words.csv"),
        "text,enc\n\"a b&c=d?e#f/g%h\",x%2Fy\n",
    )
    .unwrap();
    let text = format!(
        r#"
target: {url}
feeders:
  words: {{ csv: words.csv }}
scenarios:
  s:
    executor: shared-iterations
    vus: 1
    iterations: 2
    request:
      path: "/echo/{{{{words.text}}}}?q={{{{words.text}}}}&raw={{{{raw words.enc}}}}"
      headers: {{ authorization: "{{{{words.text}}}}" }}
      checks: [ "status == 200" ]
"#,
        url = server.url()
    );
    let m = run_plan(&text, dir.path());
    assert_eq!(m.total_requests(), 2);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (seg, q, raw, auth, _) = &seen[0];
    assert_eq!(
        seg, "a b&c=d?e#f/g%h",
        "path segment decoded to the exact value"
    );
    assert_eq!(
        q, "a b&c=d?e#f/g%h",
        "query value decoded to the exact value"
    );
    assert_eq!(
        raw, "q=a%20b%26c%3Dd%3Fe%23f%2Fg%25h&raw=x%2Fy",
        "raw: as is"
    );
    assert_eq!(auth, "a b&c=d?e#f/g%h", "headers are written as is");
}

#[test]
fn json_bodies_stay_escaped_and_randint_is_a_number() {
    let seen: Seen = Arc::default();
    let server = echo_server(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("words.csv"),
        "text\n\"say \"\"hi\"\" \\ there\"\n",
    )
    .unwrap();
    let text = format!(
        r#"
target: {url}
feeders:
  words: {{ csv: words.csv }}
scenarios:
  s:
    executor: shared-iterations
    vus: 1
    iterations: 1
    request:
      method: POST
      path: /echo/x
      body: {{ n: "{{{{randint(7,7)}}}}", s: "{{{{seq}}}}", t: "{{{{words.text}}}}", m: "n={{{{randint(1,1)}}}}" }}
"#,
        url = server.url()
    );
    let m = run_plan(&text, dir.path());
    assert_eq!(m.total_requests(), 1);
    let seen = seen.lock().unwrap();
    let body: serde_json::Value = serde_json::from_str(&seen[0].4).expect("valid JSON");
    assert_eq!(
        body,
        serde_json::json!({"n": 7, "s": "0", "t": "say \"hi\" \\ there", "m": "n=1"})
    );
}

#[test]
fn a_flow_extracts_values_for_later_steps_and_tags_its_steps() {
    let seen: Seen = Arc::default();
    let server = echo_server(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
target: {url}
scenarios:
  flow:
    executor: constant-arrival-rate
    rate: 10/s
    duration: 1s
    steps:
      - name: login
        method: POST
        path: /login
        checks: [ "status == 200" ]
        extract:
          token: json /token
          user: json /user/id
          session: header x-session
          word: 'regex "token":"([a-z])'
        think: 100ms..150ms
      - name: use
        path: "/echo/{{{{user}}}}-{{{{session}}}}?q={{{{token}}}}"
        headers: {{ authorization: "Bearer {{{{token}}}} {{{{word}}}}" }}
        checks: [ "status == 200", "body contains \"ok\"" ]
      - name: missing
        path: /login
        method: POST
        extract: {{ nope: json /nope }}
      - name: never
        path: "/echo/{{{{nope}}}}"
"#,
        url = server.url()
    );
    let m = run_plan(&text, dir.path());
    let info = &m.scenarios[0];
    assert!(info.flow);
    assert_eq!(info.requests, ["login", "use", "missing", "never"]);
    let n = |step: &str| {
        m.aggregate(|k| info.requests[k.request as usize] == step)
            .requests
    };
    assert_eq!(n("login"), 10);
    assert_eq!(n("use"), 10);
    assert_eq!(n("missing"), 10);
    assert_eq!(n("never"), 0, "a failed extraction stops the iteration");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 10);
        let (seg, q, _, auth, _) = &seen[0];
        assert_eq!(seg, "7-s-42");
        assert_eq!(q, "t o&k=1/2");
        assert_eq!(auth, "Bearer t o&k=1/2 t");
    }
    // Each check by name, with the extractions' results.
    assert_eq!(
        info.checks[0],
        [
            "status == 200",
            "extract session: header x-session",
            "extract token: json /token",
            "extract user: json /user/id",
            "extract word: regex \"token\":\"([a-z])",
        ]
    );
    assert_eq!(m.check_counts.get(0, 0, 0), [10, 0]);
    assert_eq!(m.check_counts.get(0, 2, 0), [0, 10], "extract nope failed");
    // Tags and metrics: step:NAME, check:NAME, iteration_duration.
    let judge = |metric: &str, tags: &[(&str, &str)], expr: &str| {
        let tags: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        evaluate_expr(metric, &tags, &ThresholdExpr::parse(expr).unwrap(), &m, 1)
    };
    assert!(judge("http_reqs", &[("step", "use")], "count==10").passed);
    assert!(judge("checks", &[("step", "use")], "rate==1").passed);
    assert!(
        judge(
            "checks",
            &[("check", "extract nope: json /nope")],
            "rate==0"
        )
        .passed,
        "{:?}",
        judge(
            "checks",
            &[("check", "extract nope: json /nope")],
            "rate==0"
        )
    );
    let it = judge("iteration_duration", &[("scenario", "flow")], "min>=100");
    assert!(it.passed, "think time counts in the iteration: {it:?}");
    assert_eq!(it.samples, 10);
    assert!(m.iterations[0].len() == 10);
    let _ = Duration::ZERO;
}

#[test]
fn a_variable_no_earlier_step_extracts_is_reported_where_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
target: http://127.0.0.1:1
scenarios:
  flow:
    executor: per-vu-iterations
    steps:
      - name: a
        path: /a
        extract: { id: "json /id", bad: "jsn /x" }
        think: 1s..10ms
      - name: b
        path: "/b/{{idd}}"
        until: "json /done == true"
        every: 0s
thresholds:
  http_req_duration{step:nope}: [ "p(95)<250" ]
  checks{check:status == 200}: [ "rate>0.99" ]
  iteration_duration: [ "p(95)<1s over 10s" ]
"#;
    let err = match parse(text, "flow.yaml", dir.path(), &PlanOptions::empty_env()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    for (line, needle) in [
        ("flow.yaml:9:", "scenarios.flow.steps[0].extract.bad: bad extraction: unknown extraction 'jsn /x'"),
        ("flow.yaml:10:", "scenarios.flow.steps[0].think: bad think time \"1s..10ms\": the range ends before it starts"),
        ("flow.yaml:12:", "scenarios.flow.steps[1].path: {{idd}} is not extracted by an earlier step (extracted before this step: id)"),
        ("flow.yaml:14:", "scenarios.flow.steps[1].every: must be longer than 0s"),
        ("flow.yaml:16:", "step:nope can match no sample: no flow step is named `nope` (steps: a, b)"),
        ("flow.yaml:17:", "check:status == 200 can match no sample: no response check is written `status == 200` (checks: extract id: json /id, until: json /done == true)"),
        ("flow.yaml:18:", "iteration_duration is judged over the whole run: drop `over ...`"),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(line) && l.contains(needle)),
            "missing {line} {needle:?} in\n{err}"
        );
    }
}

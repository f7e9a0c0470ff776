//! Plan layering (--env, --set, ${VAR}) and lowering into the RunSpec the engine runs.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loadgate::plan::{self, PlanOptions};
use loadgate::spec::{
    EdgeStrategy, ExecutorSpec, FeederOrder, HttpVersion, RateStage, ReportFormat, StackBackend,
    VuStage,
};

fn env_with(vars: &[(&str, &str)]) -> plan::EnvLookup {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

fn opts(vars: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        env_profile: None,
        sets: vec![],
        env: env_with(vars),
    }
}

fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TARGET: (&str, &str) = ("TARGET_URL", "http://127.0.0.1:8080");

#[test]
fn example_plans_validate() {
    let mut seen = 0;
    for entry in std::fs::read_dir("plans").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "yaml") && name != "smoke.yaml" {
            let plan =
                plan::load(&path, &opts(&[TARGET])).unwrap_or_else(|e| panic!("{name}:\n{e}"));
            // The stack provides its variables at lowering; a plan without one is complete.
            let extra = sets(&[
                TARGET,
                ("USER_KEY", "k-user"),
                ("ADMIN_KEY", "k-admin"),
                ("GATEWAY_1_URL", "http://127.0.0.1:8081"),
            ]);
            let spec = plan
                .lower(&extra)
                .unwrap_or_else(|e| panic!("{name} lowering:\n{e}"));
            assert_eq!(spec.target, "http://127.0.0.1:8080", "{name}");
            assert!(!spec.scenarios.is_empty(), "{name}");
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected basic, ramp and closed, saw {seen}");
}

#[test]
fn lowering_builds_every_executor() {
    let plan = plan::load(Path::new("testdata/plans/valid_full.yaml"), &opts(&[])).unwrap();
    let spec = plan.lower(&[]).unwrap();
    assert_eq!(spec.name, "full");
    assert_eq!(
        spec.target, "http://127.0.0.1:8080",
        "trailing slash trimmed"
    );
    assert_eq!(spec.http.timeout, Duration::from_secs(3));
    assert_eq!(spec.http.version, HttpVersion::Http2);
    assert!(spec.http.insecure);
    assert_eq!(spec.http.max_connections, Some(8));
    assert_eq!(
        spec.http.h2,
        loadgate::spec::H2Options {
            connections: Some(4),
            streams: 16
        },
        "defaults.http2 lowers to h2load's -c / -m"
    );
    assert_eq!(
        spec.report_formats,
        vec![ReportFormat::Json, ReportFormat::Junit, ReportFormat::Html]
    );
    let names: Vec<&str> = spec.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["open", "ramp", "closed", "each", "shared", "steady"],
        "file order"
    );
    let ex: Vec<&ExecutorSpec> = spec.scenarios.iter().map(|s| &s.executor).collect();
    assert_eq!(
        ex[0],
        &ExecutorSpec::ConstantArrivalRate {
            rate: 100.0,
            duration: Duration::from_secs(90),
            pre_allocated_vus: 5,
            max_vus: 20
        }
    );
    assert_eq!(
        ex[1],
        &ExecutorSpec::RampingArrivalRate {
            start_rate: 0.5,
            stages: vec![
                RateStage {
                    target: 10.0,
                    duration: Duration::from_secs(5)
                },
                RateStage {
                    target: 0.0,
                    duration: Duration::from_millis(500)
                }
            ],
            pre_allocated_vus: 10,
            max_vus: 100,
        }
    );
    assert_eq!(
        ex[2],
        &ExecutorSpec::RampingVus {
            start_vus: 1,
            stages: vec![VuStage {
                target: 10,
                duration: Duration::from_secs(5)
            }]
        }
    );
    assert_eq!(
        ex[3],
        &ExecutorSpec::PerVuIterations {
            vus: 3,
            iterations: 4,
            max_duration: Duration::from_secs(10)
        }
    );
    assert_eq!(
        ex[4],
        &ExecutorSpec::SharedIterations {
            vus: 2,
            iterations: 10,
            max_duration: Duration::from_secs(600)
        }
    );
    assert_eq!(
        ex[5],
        &ExecutorSpec::ConstantVus {
            vus: 3,
            duration: Duration::from_secs(5)
        }
    );

    let open = &spec.scenarios[0];
    assert_eq!(open.start_after, Duration::from_secs(2));
    assert_eq!(open.graceful_stop, Duration::from_secs(1));
    assert_eq!(
        spec.scenarios[1].graceful_stop,
        Duration::from_secs(30),
        "k6 default"
    );
    assert_eq!(open.tags.get("kind").map(String::as_str), Some("open"));
    let reqs: Vec<(&str, &str, u32, usize)> = open
        .requests
        .iter()
        .map(|r| (r.name.as_str(), r.method.as_str(), r.weight, r.checks.len()))
        .collect();
    assert_eq!(
        reqs,
        [
            ("read", "GET", 3, 1),
            ("write", "PUT", 1, 0),
            ("POST /raw", "POST", 1, 0)
        ]
    );
    let header_names = |i: usize| {
        open.requests[i]
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    assert_eq!(header_names(1), ["content-type"], "a YAML body is JSON");
    assert_eq!(
        header_names(2),
        ["content-type"],
        "a string body keeps its own content type only"
    );
    assert!(open
        .requests
        .iter()
        .all(|r| r.body.is_some() == (r.name != "read")));
    let json: Vec<bool> = open.requests.iter().map(|r| r.body_json).collect();
    assert_eq!(
        json,
        [false, true, false],
        "only the YAML mapping body is JSON"
    );

    let users = &spec.feeders["users"];
    assert_eq!(users.columns, ["id", "name"]);
    assert_eq!(
        users.rows,
        [["1", "ada"], ["2", "grace"]],
        "rows are loaded at lowering"
    );
    assert_eq!(users.order, FeederOrder::Random);
    assert!(
        plan.preview().feeders["users"].rows.is_empty(),
        "validation reads only the header"
    );

    assert_eq!(spec.thresholds.len(), 3);
    let t = &spec.thresholds[1];
    assert_eq!(
        (t.metric.as_str(), t.key.as_str()),
        (
            "http_req_duration",
            "http_req_duration{scenario:open,name:read}"
        )
    );
    assert_eq!(
        t.tags,
        [
            ("scenario".to_string(), "open".to_string()),
            ("name".to_string(), "read".to_string())
        ]
    );
    assert!(t.abort_on_fail);
    assert_eq!(t.delay, Duration::from_secs(10));
    assert!(!spec.thresholds[0].abort_on_fail);
}

const SMALL: &str = "\
target: ${HOST:-http://127.0.0.1:1}
defaults:
  headers: { authorization: 'Bearer ${KEY:-anonymous}', x-team: core }
environments:
  staging:
    target: https://staging.example.internal
    headers: { x-team: staging, x-env: staging }
    scale: 0.5
scenarios:
  chat:
    executor: constant-arrival-rate
    rate: 10/s
    duration: 5s
    pre_allocated_vus: 3
    max_vus: 9
    request: { path: /v1/chat }
";

fn lower_small(o: &PlanOptions) -> loadgate::spec::RunSpec {
    plan::parse(SMALL, "small.yaml", Path::new("."), o)
        .unwrap_or_else(|e| panic!("{e}"))
        .lower(&[])
        .unwrap()
}

#[test]
fn env_var_defaults_and_values() {
    assert_eq!(lower_small(&opts(&[])).target, "http://127.0.0.1:1");
    assert_eq!(
        lower_small(&opts(&[("HOST", "http://10.0.0.1:80")])).target,
        "http://10.0.0.1:80"
    );
    let m = plan::parse(
        SMALL,
        "small.yaml",
        Path::new("."),
        &opts(&[("KEY", "s3cret")]),
    )
    .unwrap();
    assert_eq!(
        m.model()
            .defaults
            .as_ref()
            .unwrap()
            .headers
            .as_ref()
            .unwrap()["authorization"],
        "Bearer s3cret"
    );
}

#[test]
fn set_overrides_the_file() {
    let o = PlanOptions {
        sets: sets(&[
            ("scenarios.chat.rate", "50/s"),
            ("target", "http://127.0.0.1:2"),
            ("defaults.timeout", "1s"),
        ]),
        ..opts(&[])
    };
    let spec = lower_small(&o);
    assert_eq!(spec.target, "http://127.0.0.1:2");
    assert_eq!(spec.http.timeout, Duration::from_secs(1));
    assert!(
        matches!(spec.scenarios[0].executor, ExecutorSpec::ConstantArrivalRate { rate, .. } if rate == 50.0)
    );
    // A list index, and a new key.
    let o = PlanOptions {
        sets: sets(&[("scenarios.chat.tags.tier", "gold")]),
        ..opts(&[])
    };
    assert_eq!(lower_small(&o).scenarios[0].tags["tier"], "gold");
}

#[test]
fn env_profile_overrides_and_scales() {
    let o = PlanOptions {
        env_profile: Some("staging".into()),
        ..opts(&[])
    };
    let spec = lower_small(&o);
    assert_eq!(spec.target, "https://staging.example.internal");
    assert_eq!(
        spec.scenarios[0].executor,
        ExecutorSpec::ConstantArrivalRate {
            rate: 5.0,
            duration: Duration::from_secs(5),
            pre_allocated_vus: 2,
            max_vus: 5
        }
    );
    let headers: Vec<&str> = spec.http.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(headers, ["authorization", "x-env", "x-team"]);
    let p = plan::parse(SMALL, "small.yaml", Path::new("."), &o).unwrap();
    assert_eq!(
        p.model()
            .defaults
            .as_ref()
            .unwrap()
            .headers
            .as_ref()
            .unwrap()["x-team"],
        "staging"
    );

    // --set wins over the profile, its scale included: an explicit rate is the rate
    // (defaults < file < profile with its scale < --set).
    let o = PlanOptions {
        env_profile: Some("staging".into()),
        sets: sets(&[
            ("target", "http://127.0.0.1:3"),
            ("scenarios.chat.rate", "100/s"),
        ]),
        ..opts(&[])
    };
    let spec = lower_small(&o);
    assert_eq!(spec.target, "http://127.0.0.1:3");
    assert!(
        matches!(spec.scenarios[0].executor, ExecutorSpec::ConstantArrivalRate { rate, pre_allocated_vus: 2, .. } if rate == 100.0),
        "{:?}",
        spec.scenarios[0].executor
    );
    // --set may edit the profile itself.
    let o = PlanOptions {
        env_profile: Some("staging".into()),
        sets: sets(&[("environments.staging.scale", "2")]),
        ..opts(&[])
    };
    assert!(
        matches!(lower_small(&o).scenarios[0].executor, ExecutorSpec::ConstantArrivalRate { rate, .. } if rate == 20.0)
    );
}

const STACKED: &str = "\
stack:
  reference: { backend: process, gateways: 2, edge: least-connections, env: { GATEWAY_PROFILE: staging } }
defaults:
  headers: { authorization: 'Bearer ${USER_KEY}' }
scenarios:
  s:
    executor: constant-vus
    duration: 1s
    request: { path: /auth/me }
";

#[test]
fn stack_variables_wait_for_the_running_stack() {
    // TARGET_URL and USER_KEY are unset (or wrong) in the environment: the stack provides them.
    let p = plan::parse(
        STACKED,
        "stacked.yaml",
        Path::new("."),
        &opts(&[("TARGET_URL", "http://wrong:1")]),
    )
    .unwrap();
    let stack = p.stack().unwrap();
    assert_eq!(stack.backend, StackBackend::Process);
    assert_eq!(stack.gateways, 2);
    assert_eq!(stack.edge, Some(EdgeStrategy::LeastConnections));
    assert_eq!(stack.gateway_env["GATEWAY_PROFILE"], "staging");
    let spec = p
        .lower(&sets(&[
            ("TARGET_URL", "http://127.0.0.1:4242/"),
            ("USER_KEY", "k"),
        ]))
        .unwrap();
    assert_eq!(spec.target, "http://127.0.0.1:4242");
    assert_eq!(p.name(), "stacked");

    let err = p
        .lower(&sets(&[("TARGET_URL", "http://127.0.0.1:4242")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stacked.yaml:4:29: defaults.headers.authorization: environment variable USER_KEY is not set (set it, or write ${USER_KEY:-default})"
    );
    // Without a stack the same variables come from the environment, and must be set.
    let no_stack = STACKED.replace("stack:\n  reference: { backend: process, gateways: 2, edge: least-connections, env: { GATEWAY_PROFILE: staging } }\n", "target: ${TARGET_URL}\n");
    let err = plan::parse(&no_stack, "plain.yaml", Path::new("."), &opts(&[])).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    assert!(plan::parse(
        &no_stack,
        "plain.yaml",
        Path::new("."),
        &opts(&[TARGET, ("USER_KEY", "k")])
    )
    .unwrap()
    .stack()
    .is_none());
}

#[test]
fn format_reference_example_validates() {
    let doc = std::fs::read_to_string("src/plan/FORMAT.md").unwrap();
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let p = plan::parse(example, "example.yaml", Path::new("plans"), &opts(&[]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name(), "checkout-gate");
    let env = sets(&[TARGET, ("USER_KEY", "k")]);
    let o = PlanOptions {
        env_profile: Some("staging".into()),
        ..opts(&[])
    };
    let staged = plan::parse(example, "example.yaml", Path::new("plans"), &o).unwrap();
    assert_eq!(
        staged.lower(&env).unwrap().target,
        "https://staging.example.internal"
    );
    assert_eq!(p.lower(&env).unwrap().target, "http://127.0.0.1:8080");
}

#[test]
fn feeder_paths_fall_back_to_the_current_directory() {
    let src = "target: http://127.0.0.1:1\nfeeders:\n  users: { csv: testdata/plans/data/users.csv }\n  gone: { csv: nowhere.csv }\nscenarios:\n  s:\n    executor: constant-vus\n    duration: 1s\n    request: { path: \"/u/{{users.name}}/{{gone.x}}\" }\n";
    let err = plan::parse(src, "p.yaml", Path::new("no-such-dir"), &opts(&[])).unwrap_err();
    // users.csv is found relative to the current directory; the missing feeder is reported
    // once, at its `csv:`, not again where a template uses it.
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(
        (err.0[0].line, err.0[0].column, err.0[0].path.as_str()),
        (4, 16, "feeders.gone.csv")
    );
    let ok = src
        .replace("/{{gone.x}}", "")
        .replace("  gone: { csv: nowhere.csv }\n", "");
    let spec = plan::parse(&ok, "p.yaml", Path::new("no-such-dir"), &opts(&[]))
        .unwrap()
        .lower(&[])
        .unwrap();
    assert_eq!(spec.feeders["users"].rows.len(), 2);
}

#[test]
fn yaml_bodies_are_json_and_string_bodies_are_sent_as_written() {
    let src = "\
target: http://127.0.0.1:1
scenarios:
  s:
    executor: shared-iterations
    vus: 1
    iterations: 1
    requests:
      - { name: map, path: /a, body: { id: \"{{uuid}}\", q: 'say \"hi\"', n: 1 } }
      - { name: seq, path: /b, body: [\"{{seq}}\", 2] }
      - { name: text, path: /c, body: '{\"id\":\"{{uuid}}\"}' }
      - { name: none, path: /d }
";
    let spec = plan::parse(src, "bodies.yaml", Path::new("."), &opts(&[]))
        .unwrap_or_else(|e| panic!("{e}"))
        .lower(&[])
        .unwrap();
    let got: Vec<(&str, bool, Option<&str>)> = spec.scenarios[0]
        .requests
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.body_json,
                r.body.as_ref().map(|b| b.source.as_str()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "map",
                true,
                Some(r#"{"id":"{{uuid}}","n":1,"q":"say \"hi\""}"#)
            ),
            ("seq", true, Some(r#"["{{seq}}",2]"#)),
            ("text", false, Some(r#"{"id":"{{uuid}}"}"#)),
            ("none", false, None),
        ]
    );
}

#[test]
fn set_reaches_into_flow_steps() {
    // A flow's steps are a list like any other: `--set` edits one step's fields by index, and
    // a step index past the end is an error, not a silently ignored override.
    let extra = sets(&[TARGET, ("USER_KEY", "k-user")]);
    let lower = |pairs: &[(&str, &str)]| {
        let o = PlanOptions {
            sets: sets(pairs),
            ..opts(&[TARGET])
        };
        plan::load(Path::new("plans/flow-jobs.yaml"), &o).map(|p| p.lower(&extra).expect("lowers"))
    };
    let base = lower(&[]).unwrap();
    let flow = base.scenarios[0].flow.as_ref().expect("a flow");
    assert_eq!(flow.steps[0].think.unwrap().max, Duration::from_millis(100));
    assert_eq!(
        flow.steps[1].until.as_ref().unwrap().every,
        Duration::from_millis(200)
    );

    let spec = lower(&[
        ("scenarios.jobs.steps[0].think", "1s"),
        ("scenarios.jobs.steps[1].every", "1s"),
        ("scenarios.jobs.steps[2].path", "/v1/jobs/fixed"),
        ("scenarios.jobs.steps[0].body.work_ms", "5"),
    ])
    .unwrap();
    let s = &spec.scenarios[0];
    let flow = s.flow.as_ref().unwrap();
    let think = flow.steps[0].think.unwrap();
    assert_eq!(
        (think.min, think.max),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
    assert_eq!(
        flow.steps[1].until.as_ref().unwrap().every,
        Duration::from_secs(1)
    );
    assert_eq!(s.requests[2].path.to_string(), "/v1/jobs/fixed");
    let body = s.requests[0].body.as_ref().unwrap().to_string();
    assert!(body.contains("\"work_ms\":5"), "{body}");
    // Untouched steps keep their values.
    assert_eq!(flow.steps[1].think.unwrap().max, Duration::from_millis(50));

    let Err(err) = lower(&[("scenarios.jobs.steps[7].think", "1s")]) else {
        panic!("an index past the steps is refused");
    };
    assert!(err.to_string().contains("steps"), "{err}");
}

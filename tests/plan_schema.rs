//! The plan's JSON Schema: a valid schema that accepts the example plans and rejects typos.
use serde_json::{json, Value};

fn yaml_to_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn schema_is_valid_and_accepts_the_examples() {
    let schema = loadgate::plan::json_schema();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    let validator = jsonschema::validator_for(&schema).unwrap();

    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("plans")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("smoke.yaml"))
        .collect();
    files.push("testdata/plans/valid_full.yaml".into());
    assert!(files.len() >= 4);
    for file in files {
        let instance = yaml_to_json(&file);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn schema_rejects_unknown_fields_and_bad_units() {
    let schema = loadgate::plan::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let ok = json!({"target": "http://x", "scenarios": {"s": {"executor": "constant-arrival-rate", "rate": "10/s", "duration": "1m30s", "request": {"path": "/"}}}});
    assert!(validator.is_valid(&ok));
    let mut typo = ok.clone();
    typo["scenarios"]["s"]["rte"] = json!("10/s");
    assert!(!validator.is_valid(&typo));
    let mut bad_rate = ok.clone();
    bad_rate["scenarios"]["s"]["rate"] = json!("fast");
    assert!(!validator.is_valid(&bad_rate));
    let mut bad_executor = ok.clone();
    bad_executor["scenarios"]["s"]["executor"] = json!("constant-arival-rate");
    assert!(!validator.is_valid(&bad_executor));
    let no_scenarios = json!({"target": "http://x"});
    assert!(!validator.is_valid(&no_scenarios));
    let empty_scenarios = json!({"target": "http://x", "scenarios": {}});
    assert!(!validator.is_valid(&empty_scenarios));
    let mut no_target = ok.clone();
    no_target.as_object_mut().unwrap().remove("target");
    assert!(!validator.is_valid(&no_target));
    no_target["stack"] = json!({"reference": {}});
    assert!(validator.is_valid(&no_target));
}

/// Validate a plan the way `loadgate validate` does, with TARGET_URL and USER_KEY set.
fn validates(path: &std::path::Path) -> Result<(), String> {
    let opts = loadgate::plan::PlanOptions {
        env: std::sync::Arc::new(|k: &str| match k {
            "TARGET_URL" => Some("http://127.0.0.1:8080".into()),
            "USER_KEY" => Some("k".into()),
            _ => None,
        }),
        ..loadgate::plan::PlanOptions::empty_env()
    };
    loadgate::plan::load(path, &opts)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Plans whose problems only validation can see: a schema describes one document, not what
/// its strings refer to (feeder files and columns, unset environment variables) nor rules
/// across fields (which parameters an executor takes, value ranges such as 0/s).
const SEMANTIC_ONLY: &[&str] = &[
    "unknown_feeder.yaml",
    "unset_env.yaml",
    "executor_params.yaml",
];

#[test]
fn schema_and_validate_agree_on_every_plan_in_the_repository() {
    let validator = jsonschema::validator_for(&loadgate::plan::json_schema()).unwrap();
    let mut files = Vec::new();
    for dir in ["plans", "testdata/plans"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let accepted = validates(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        let schema_ok = match serde_saphyr::from_str::<Value>(&text) {
            Ok(doc) => validator.is_valid(&doc),
            Err(_) => false, // not YAML at all: nothing validates it
        };
        match accepted {
            Ok(()) => assert!(
                schema_ok,
                "{name}: validate accepts it, the schema flags it"
            ),
            Err(e) if !SEMANTIC_ONLY.contains(&name.as_str()) => assert!(
                !schema_ok,
                "{name}: validate rejects it, the schema accepts it:\n{e}"
            ),
            Err(_) => {}
        }
    }
}

#[test]
fn schema_and_validate_agree_on_interpolated_and_numeric_forms() {
    let validator = jsonschema::validator_for(&loadgate::plan::json_schema()).unwrap();
    // (YAML lines for the scenario's parameters or the plan's defaults, accepted?)
    let cases: &[(&str, &str, bool)] = &[
        ("rate: ${RATE:-100/s}", "", true),
        ("rate: \"${RATE:-100/sec}\"", "", true),
        ("rate: 100/sec", "", true),
        ("rate: 30/min", "", true),
        ("rate: \"100\"", "", false),
        ("rate: fast", "", false),
        ("rate: 10/s\n    pre_allocated_vus: \"${VUS:-5}\"", "", true),
        ("rate: 10/s\n    pre_allocated_vus: five", "", false),
        (
            "rate: 10/s",
            "defaults: { timeout: \"${TIMEOUT:-2s}\" }",
            true,
        ),
        ("rate: 10/s", "defaults: { http: 2 }", true),
        ("rate: 10/s", "defaults: { http: \"2\" }", true),
        ("rate: 10/s", "defaults: { http: 1.1 }", true),
        ("rate: 10/s", "defaults: { http: 3 }", false),
        (
            "rate: 10/s",
            "defaults: { insecure: \"${INSECURE:-false}\" }",
            true,
        ),
        (
            "rate: 10/s",
            "thresholds: { http_req_duration: [\"p(95)<250ms\", \"p(99) < 1s over 30s\"] }",
            true,
        ),
        (
            "rate: 10/s",
            "thresholds: { http_req_failed: [\"rate<1%\"] }",
            true,
        ),
        (
            "rate: 10/s",
            "thresholds: { http_req_duration: [\"p95<250\"] }",
            false,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (params, extra, want) in cases {
        let text = format!(
            "target: http://127.0.0.1:1\n{extra}\nscenarios:\n  s:\n    executor: constant-arrival-rate\n    duration: 1s\n    {params}\n    request: {{ path: / }}\n"
        );
        let path = dir.path().join("form.yaml");
        std::fs::write(&path, &text).unwrap();
        let accepted = validates(&path);
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        let schema_ok = validator.is_valid(&doc);
        assert_eq!(
            accepted.is_ok(),
            *want,
            "validate on {params} {extra}: {accepted:?}"
        );
        assert_eq!(schema_ok, *want, "schema on {params} {extra}");
    }
}

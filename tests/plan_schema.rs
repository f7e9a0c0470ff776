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

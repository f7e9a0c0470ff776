//! plans/smoke.yaml is what the brief says it is: the reference stack (auto, one gateway),
//! 20 s of chat ~50/s, jobs ~5/s, notes ~10/s, and the three thresholds. (The plan module's
//! own tests validate it against the full plan grammar.)

use serde_json::Value;

#[test]
fn smoke_plan_shape() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plans/smoke.yaml")).unwrap();
    let plan: Value = serde_saphyr::from_str(&text).expect("smoke.yaml is YAML");
    assert_eq!(plan["stack"]["reference"]["backend"], "auto");
    assert_eq!(plan["stack"]["reference"]["gateways"], 1);
    assert_eq!(plan["target"], "${TARGET_URL}");
    assert_eq!(
        plan["defaults"]["headers"]["authorization"],
        "Bearer ${USER_KEY}"
    );
    for (name, rate, path) in [
        ("chat", "50/s", "/v1/chat"),
        ("jobs", "5/s", "/v1/jobs"),
        ("notes", "10/s", "/v1/notes"),
    ] {
        let s = &plan["scenarios"][name];
        assert_eq!(s["executor"], "constant-arrival-rate", "{name}");
        assert_eq!(s["rate"], rate, "{name}");
        assert_eq!(s["duration"], "20s", "{name}");
        assert_eq!(s["request"]["path"], path, "{name}");
        assert!(
            s["request"]["checks"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{name}"
        );
    }
    let t = &plan["thresholds"];
    assert!(t["http_req_duration{scenario:chat}"][0]
        .as_str()
        .unwrap()
        .starts_with("p(95)<"));
    assert_eq!(t["http_req_failed"][0], "rate<0.01");
    assert_eq!(t["checks"][0], "rate>0.99");
    // The prompts file comes with the plan module (plans/data/prompts.csv); once that has
    // landed (src/plan/FORMAT.md exists) the feeder path must resolve.
    let feeder = plan["feeders"]["prompts"]["csv"].as_str().unwrap();
    let csv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plans")
        .join(feeder);
    assert!(
        csv.is_file()
            || !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/plan/FORMAT.md")
                .exists(),
        "feeder file {} missing",
        csv.display()
    );
}

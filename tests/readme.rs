//! The README is part of the product: its plan-format section is the same text as
//! src/plan/FORMAT.md (the `plan` module's rustdoc), and its two quick-start commands exist.
#[test]
fn readme_plan_reference_is_format_md() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let format = std::fs::read_to_string(format!("{root}/src/plan/FORMAT.md")).unwrap();
    let body = format.split_once('\n').unwrap().1.trim();
    assert!(
        readme.contains(body),
        "README.md's 'Plan format' section differs from src/plan/FORMAT.md: copy it over"
    );
}

#[test]
fn readme_quick_start_commands_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let makefile = std::fs::read_to_string(format!("{root}/Makefile")).unwrap();
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    for target in ["predeploy", "test"] {
        assert!(
            readme.contains(&format!("make {target}")),
            "README lacks `make {target}`"
        );
        assert!(
            makefile.contains(&format!("\n{target}:")),
            "Makefile lacks target {target}"
        );
    }
    assert!(
        ci.contains("make test"),
        ".ci/run must call the README's test command"
    );
}

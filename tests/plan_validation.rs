use std::path::Path;
use std::sync::Arc;

use loadgate::plan::{self, PlanOptions};

fn opts() -> PlanOptions {
    PlanOptions { env_profile: None, sets: vec![], env: Arc::new(|_| None) }
}

fn problems(file: &str) -> Vec<String> {
    let path = Path::new("testdata/plans").join(file);
    match plan::load(&path, &opts()) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|p| p.to_string().replace("testdata/plans/", "")).collect(),
    }
}

#[test]
fn dump() {
    for f in std::fs::read_dir("testdata/plans").unwrap() {
        let f = f.unwrap().file_name().into_string().unwrap();
        if f.ends_with(".yaml") {
            println!("== {f}");
            for p in problems(&f) {
                println!("{p}");
            }
        }
    }
}

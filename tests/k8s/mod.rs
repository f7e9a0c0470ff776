//! deploy/k8s/ read as Kubernetes API objects (k8s-openapi's types), strictly: a field the
//! API does not have (a typo, a wrong nesting) is an error, as `kubectl apply
//! --validate=strict` would make it. Shared by tests/k8s_manifests.rs and
//! tests/stack_k8s_job.rs (which runs the Job's contract locally).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim};
use serde::de::DeserializeOwned;

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s")
}

/// What `envsubst '${RUN_ID} ${START_AT}'` does to a manifest before `kubectl apply`.
pub fn substitute(text: &str, run_id: &str, start_at: &str) -> String {
    text.replace("${RUN_ID}", run_id)
        .replace("${START_AT}", start_at)
}

/// Parse `text` as a `T`; every field Kubernetes would not know is an error.
pub fn strict<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    let out: T = serde_ignored::deserialize(value, |path| {
        // `?` marks an Option on the path: leave it out (spec.?.x -> spec.x).
        unknown.push(path.to_string().replace(".?", ""))
    })
    .map_err(|e| e.to_string())?;
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "fields the Kubernetes API does not have: {}",
            unknown.join(", ")
        ))
    }
}

/// A manifest of deploy/k8s, filled in and parsed strictly.
pub fn load<T: DeserializeOwned>(file: &str, run_id: &str, start_at: &str) -> T {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    strict(&substitute(&text, run_id, start_at)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

pub fn segments_job(run_id: &str, start_at: &str) -> Job {
    load("segments-job.yaml", run_id, start_at)
}

pub fn merge_job(run_id: &str) -> Job {
    load("merge-job.yaml", run_id, "")
}

pub fn pvc() -> PersistentVolumeClaim {
    load("pvc.yaml", "", "")
}

/// The Job's one container.
pub fn container(job: &Job) -> &Container {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1, "one container per pod");
    &pod.containers[0]
}

/// A container's environment variable with a literal value.
pub fn env<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .as_deref()
}

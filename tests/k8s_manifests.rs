//! deploy/k8s/ validated against the Kubernetes API types (k8s-openapi, API 1.33), strictly:
//! every manifest decodes as its kind with no field the API lacks, and the pieces fit: an
//! Indexed Job whose pods run segment JOB_COMPLETION_INDEX+1 of N with N agreeing everywhere,
//! both Jobs on the one shared claim, the same image, and a merge that reads the segments'
//! directories. No cluster runs here; tests/stack_k8s_job.rs runs the same contract in Docker.
#[path = "k8s/mod.rs"]
mod k8s;

use k8s_openapi::api::batch::v1::Job;

const RUN: &str = "ci-42";
const START: &str = "2026-11-30T14:05:00Z";

#[test]
fn manifests_are_valid_kubernetes_objects() {
    let pvc = k8s::pvc();
    let seg = k8s::segments_job(RUN, START);
    let merge = k8s::merge_job(RUN);
    let claim = pvc.metadata.name.clone().unwrap();
    assert_eq!(
        pvc.spec.as_ref().unwrap().access_modes.as_deref(),
        Some(&["ReadWriteMany".to_string()][..]),
        "pods on several nodes write the claim at once"
    );
    assert_eq!(
        seg.metadata.name.as_deref(),
        Some("loadgate-segments-ci-42")
    );
    assert_eq!(merge.metadata.name.as_deref(), Some("loadgate-merge-ci-42"));

    let spec = seg.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let n = spec.completions.unwrap();
    assert_eq!(spec.parallelism, Some(n), "every segment runs at once");
    let c = k8s::container(&seg);
    assert_eq!(
        k8s::env(c, "SEGMENTS"),
        Some(n.to_string().as_str()),
        "SEGMENTS is spec.completions"
    );
    assert_eq!(k8s::env(c, "START_AT"), Some(START));
    assert_eq!(k8s::env(c, "RUN_ID"), Some(RUN));
    let script = c.args.as_ref().unwrap().join(" ");
    for needle in [
        "$((JOB_COMPLETION_INDEX + 1))",
        "--segment \"$i/$SEGMENTS\"",
        "--start-at \"$START_AT\"",
        "/results/$RUN_ID/segment-$i",
    ] {
        assert!(script.contains(needle), "{needle:?} not in {script}");
    }
    let mc = k8s::container(&merge);
    let merge_script = mc.args.as_ref().unwrap().join(" ");
    assert!(
        merge_script.contains("loadgate merge /results/\"$RUN_ID\"/segment-*")
            && merge_script.contains("--out \"/results/$RUN_ID/merged\""),
        "{merge_script}"
    );
    assert_eq!(c.image, mc.image, "one image");

    for job in [&seg, &merge] {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0));
        let volumes = pod.volumes.as_ref().unwrap();
        let results = volumes.iter().find(|v| v.name == "results").unwrap();
        assert_eq!(
            results
                .persistent_volume_claim
                .as_ref()
                .map(|p| p.claim_name.as_str()),
            Some(claim.as_str()),
            "both Jobs share the claim"
        );
        // Every mount names a volume of the pod.
        for m in k8s::container(job).volume_mounts.as_ref().unwrap() {
            assert!(
                volumes.iter().any(|v| v.name == m.name),
                "mount {} has no volume",
                m.name
            );
        }
    }
}

#[test]
fn a_field_the_api_lacks_is_an_error() {
    let text = std::fs::read_to_string(k8s::dir().join("segments-job.yaml")).unwrap();
    let good = k8s::substitute(&text, RUN, START);
    assert!(k8s::strict::<Job>(&good).is_ok());
    // A typo a lenient decoder would drop silently.
    let typo = good.replace("completionMode: Indexed", "completionsMode: Indexed");
    let err = k8s::strict::<Job>(&typo).unwrap_err();
    assert!(err.contains("spec.completionsMode"), "{err}");
    // Deep inside the pod template too.
    let deep = good.replace(
        "imagePullPolicy: IfNotPresent",
        "imagePullPolicyy: IfNotPresent",
    );
    let err = k8s::strict::<Job>(&deep).unwrap_err();
    assert!(
        err.contains("spec.template.spec.containers.0.imagePullPolicyy"),
        "{err}"
    );
    // A wrong type.
    let wrong = good.replace("completions: 3", "completions: three");
    assert!(k8s::strict::<Job>(&wrong).is_err());
    // Another kind.
    let pvc = std::fs::read_to_string(k8s::dir().join("pvc.yaml")).unwrap();
    assert!(k8s::strict::<Job>(&pvc).is_err(), "a claim is not a Job");
}

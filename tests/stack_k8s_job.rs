//! The Kubernetes Job's contract, run locally in Docker: deploy/k8s/segments-job.yaml's pod
//! (its image, command, arguments, environment, user and mounts, read from the manifest) as N
//! containers of the loadgate image, each with JOB_COMPLETION_INDEX set as the Indexed Job
//! sets it and one shared directory as the claim; then merge-job.yaml's pod; and the merged
//! verdict compared with a single-process run of the same plan.
//!
//! The image is (re)built from the binary under test (deploy/k8s/image/build.sh; a cache hit
//! when unchanged). Containers use the host's network, so the target stays on loopback; they
//! are removed when the test ends, also when it fails. Skips without Docker unless
//! LOADGATE_REQUIRE_DOCKER=1.
mod common;
#[path = "k8s/mod.rs"]
mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker runs")
}

/// Docker answers and the local base image exists (scripts/setup.sh builds it); with
/// LOADGATE_REQUIRE_DOCKER=1 Docker must answer, and a missing base image is built.
fn docker_available() -> bool {
    let required = std::env::var("LOADGATE_REQUIRE_DOCKER").as_deref() == Ok("1");
    let ok = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required,
            "LOADGATE_REQUIRE_DOCKER=1 but no Docker engine answers"
        );
        eprintln!("SKIP: no Docker engine answers (docker info failed)");
        return false;
    }
    let base = docker(&["image", "inspect", "loadgate/debian-base:bookworm"]);
    if !base.status.success() && !required {
        eprintln!(
            "SKIP: no local base image loadgate/debian-base:bookworm (bash scripts/setup.sh builds it)"
        );
        return false;
    }
    true
}

/// Containers removed (and a shared directory made removable) on drop, even on failure.
struct Containers {
    names: Vec<String>,
    image: String,
    shared: PathBuf,
}

impl Drop for Containers {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = docker(&["rm", "-f", n]);
        }
        // Files the containers wrote belong to their user: let the temp dir's owner remove them.
        if !nix::unistd::geteuid().is_root() {
            let mount = format!("{}:/shared", self.shared.display());
            let _ = docker(&[
                "run",
                "--rm",
                "--user",
                "0",
                "-v",
                &mount,
                "--entrypoint",
                "/bin/chmod",
                &self.image,
                "-R",
                "a+rwX",
                "/shared",
            ]);
        }
    }
}

impl Containers {
    /// `docker run -d` the Job's pod: its command and arguments, its environment (with
    /// `env` overriding or adding), its user, its mounts mapped onto host directories by
    /// volume kind (a config map: `plan`, a claim: `shared`).
    fn run_pod(&mut self, job: &Job, name: &str, env: &[(&str, String)], plan: &Path) {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let c = k8s::container(job);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.into(),
            "--label".into(),
            "loadgate.test=stack_k8s_job".into(),
            "--network".into(),
            "host".into(),
        ];
        if let Some(sc) = &pod.security_context {
            if let (Some(u), Some(g)) = (sc.run_as_user, sc.run_as_group) {
                args.extend(["--user".into(), format!("{u}:{g}")]);
            }
        }
        let mut vars: Vec<(String, String)> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        for (k, v) in env {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v.clone()));
        }
        for (k, v) in vars {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        for m in c.volume_mounts.iter().flatten() {
            let vol = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .unwrap();
            let host = if vol.config_map.is_some() {
                plan
            } else if vol.persistent_volume_claim.is_some() {
                &self.shared
            } else {
                panic!("volume {} is neither a config map nor a claim", vol.name)
            };
            let ro = if m.read_only == Some(true) { ":ro" } else { "" };
            args.extend([
                "-v".into(),
                format!("{}:{}{ro}", host.display(), m.mount_path),
            ]);
        }
        let command = c.command.clone().unwrap_or_default();
        args.extend([
            "--entrypoint".into(),
            command[0].clone(),
            c.image.clone().unwrap(),
        ]);
        args.extend(command[1..].iter().cloned());
        args.extend(c.args.iter().flatten().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = docker(&refs);
        assert!(
            o.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.names.push(name.to_string());
    }

    /// Wait (bounded) for a container to exit; its exit code and logs.
    fn wait(&self, name: &str, limit: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + limit;
        loop {
            let o = docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]);
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if let Some(code) = state.strip_prefix("exited ") {
                let logs = docker(&["logs", name]);
                return (
                    code.parse().unwrap(),
                    String::from_utf8_lossy(&logs.stdout).to_string(),
                    String::from_utf8_lossy(&logs.stderr).to_string(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} still {state} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn checks(summary: &Value) -> Vec<(String, bool)> {
    summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["passed"] == true))
        .collect()
}

#[test]
fn indexed_job_contract_runs_in_docker_and_merges_like_one_process() {
    if !docker_available() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_loadgate");
    let seg_job = k8s::segments_job("local", "");
    let image = k8s::container(&seg_job).image.clone().unwrap();
    let built = Command::new("bash")
        .arg(k8s::dir().join("image/build.sh"))
        .args(["--binary", bin, "--tag", &image])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "image build: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let srv = common::TestServer::axum(axum::Router::new().fallback(|| async { "ok" }));
    let tmp = tempfile::tempdir().unwrap();
    let plan_dir = tmp.path().join("plan");
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    // The claim's fsGroup makes it writable for the pods' user; a world-writable dir here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&plan_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        plan_dir.join("plan.yaml"),
        r#"name: k8s-contract
target: ${TARGET_URL}
scenarios:
  steady:
    executor: constant-arrival-rate
    rate: 200/s
    duration: 3s
    pre_allocated_vus: 20
    max_vus: 100
    request: { method: GET, path: /, checks: ["status == 200"] }
thresholds:
  # 200 a segment, 600 the union: the one passes each segment and fails the union, the other
  # the reverse (with room for a few dropped iterations on a loaded machine).
  http_reqs: ["count<500"]
  http_reqs{scenario:steady}: ["count>=400"]
  http_req_failed: ["rate<0.01"]
  http_req_duration: ["p(99)<2000", "p(99)<2000 over 1s"]
"#,
    )
    .unwrap();
    std::fs::set_permissions(
        plan_dir.join("plan.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let run_id = format!("test-{}", std::process::id());
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(6);
    let start_at = time_rfc3339(start);
    let seg_job = k8s::segments_job(&run_id, &start_at);
    let merge_job = k8s::merge_job(&run_id);
    let n = seg_job.spec.as_ref().unwrap().completions.unwrap();
    let mut pods = Containers {
        names: Vec::new(),
        image: image.clone(),
        shared: shared.clone(),
    };
    for i in 0..n {
        pods.run_pod(
            &seg_job,
            &format!("loadgate-{run_id}-segment-{i}"),
            &[
                ("JOB_COMPLETION_INDEX", i.to_string()),
                ("TARGET_URL", srv.url()),
            ],
            &plan_dir,
        );
    }
    for i in 0..n {
        let (code, _, err) = pods.wait(
            &format!("loadgate-{run_id}-segment-{i}"),
            Duration::from_secs(60),
        );
        assert_eq!(code, 0, "segment {} exited {code}: {err}", i + 1);
    }
    let merge_name = format!("loadgate-{run_id}-merge");
    pods.run_pod(&merge_job, &merge_name, &[], &plan_dir);
    let (code, stdout, stderr) = pods.wait(&merge_name, Duration::from_secs(60));
    let merged_dir = shared.join(&run_id).join("merged");
    let merged: Value =
        serde_json::from_slice(&std::fs::read(merged_dir.join("summary.json")).unwrap())
            .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        merged,
        "the merge pod's log is the summary"
    );
    assert!(stderr.contains(&format!("{n} segments merged")), "{stderr}");

    // The same plan in one process.
    let single_dir = tmp.path().join("single");
    let single = Command::new(bin)
        .arg("run")
        .arg(plan_dir.join("plan.yaml"))
        .args(["--json", "--out"])
        .arg(&single_dir)
        .env("TARGET_URL", srv.url())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let one: Value = serde_json::from_slice(&single.stdout).unwrap();

    assert_eq!(code, 99, "the union breaks count<500: {stderr}");
    assert_eq!(
        single.status.code(),
        Some(code),
        "same exit code as one process"
    );
    assert_eq!(
        checks(&merged),
        checks(&one),
        "same verdict, check by check: merged {:#} single {:#}",
        merged["scenarios"],
        one["scenarios"]
    );
    assert_eq!(merged["verdict"], one["verdict"]);
    // Every arrival of the plan once: sent, or dropped when no VU was free.
    let sent = |s: &Value| {
        let sc = &s["scenarios"]["steady"];
        sc["requests"].as_u64().unwrap() + sc["dropped"].as_u64().unwrap()
    };
    assert_eq!(sent(&merged), 600, "the segments together ran the plan");
    assert_eq!(sent(&one), 600);
    for f in [
        "junit.xml",
        "timeseries.csv",
        "report.html",
        "results/histograms.hlog",
    ] {
        assert!(merged_dir.join(f).is_file(), "{f} in the merged reports");
    }
    for i in 1..=n {
        let seg = shared
            .join(&run_id)
            .join(format!("segment-{i}/results/segment.json"));
        let m: Value = serde_json::from_slice(&std::fs::read(&seg).unwrap()).unwrap();
        assert_eq!(
            (m["index"].as_i64(), m["count"].as_i64()),
            (Some(i as i64), Some(n as i64))
        );
    }
}

/// `2026-11-30T14:05:00.250Z` for a time since the Unix epoch.
fn time_rfc3339(since_epoch: Duration) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(since_epoch.as_nanos() as i128).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

//! Helpers shared by the stack_* integration tests: independent clients (redis-cli, psql)
//! and process/dir checks.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use loadgate::stack::StackOptions;

pub fn env_of(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("stack env has no {key}: {env:?}"))
}

/// `redis-cli -u URL PING` (a real client, independent of loadgate's probe).
pub fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "-u", url])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "redis-cli failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `psql URL -tA -c SQL`.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-tA", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A process is gone when /proc has no entry or it is a zombie.
pub fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            state == "Z" || state == "X"
        }
    }
}

pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pid_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pid_gone(pid)
}

/// A unique state root for one test (removed by the TempDir).
pub fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("loadgate-stack-test-")
        .tempdir()
        .expect("temp state root")
}

pub fn options(root: &Path) -> StackOptions {
    StackOptions {
        state_dir: Some(root.to_path_buf()),
        ready_timeout: Duration::from_secs(60),
    }
}

/// Entries left in a state root.
pub fn entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the gateway binary can be found (env, next to the test binary, or its parent dir).
pub fn gateway_binary_present() -> bool {
    loadgate::stack::gateway::find_binary().is_ok()
}

/// Prints why a gateway test is skipped and returns true when the binary is missing.
/// Set LOADGATE_REQUIRE_GATEWAY=1 (CI) to turn the skip into a failure.
pub fn skip_without_gateway() -> bool {
    if gateway_binary_present() {
        return false;
    }
    let msg = "loadgate-gateway binary not found; build it with `cargo build -p loadgate-gateway`";
    if std::env::var_os("LOADGATE_REQUIRE_GATEWAY").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    true
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Processes named like the stack's servers whose parent chain leads to this process.
pub fn descendant_servers() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if !(comm.starts_with("redis-server")
            || comm.starts_with("postgres")
            || comm.starts_with("loadgate-gatew"))
        {
            continue;
        }
        if pid_gone(pid) {
            continue;
        }
        let mut cur = pid;
        for _ in 0..64 {
            let Some(ppid) = ppid_of(cur) else { break };
            if ppid == me {
                out.push((pid, comm.clone()));
                break;
            }
            if ppid <= 1 {
                break;
            }
            cur = ppid;
        }
    }
    out
}

fn ppid_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// None (and a printed reason) when no Docker engine answers; panics when the images are
/// missing. With LOADGATE_REQUIRE_DOCKER set (CI, whose machines run an engine) a missing
/// engine fails instead of skipping.
pub async fn docker_engine_or_skip() -> Option<()> {
    use loadgate::spec::{StackBackend, StackSpec};
    use loadgate::stack::{containers, docker};
    if let Err(why) = docker::connect(Duration::from_secs(3)).await {
        if std::env::var_os("LOADGATE_REQUIRE_DOCKER").is_some() {
            panic!("LOADGATE_REQUIRE_DOCKER is set but no Docker engine answers: {why}");
        }
        eprintln!("SKIP: no Docker engine answers ({why})");
        return None;
    }
    let spec = StackSpec {
        backend: StackBackend::Containers,
        ..StackSpec::default()
    };
    if let Err(why) = containers::images(&spec).await {
        panic!(
            "Docker is there but the images are not: {why} (run reference-stack/images/build.sh)"
        );
    }
    Some(())
}

/// Polls `cond` every 50 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `loadgate run PLAN --out OUT --threads 1` from the crate root, with `args` (e.g. a backend
/// override) and then each of `sets` as `--set`; stdin closed. The example-plan tests run
/// their plans shortened this way.
pub fn run_plan(plan: &str, out: &Path, args: &[&str], sets: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgate"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            plan,
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ])
        .args(args);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.stdin(std::process::Stdio::null())
        .output()
        .expect("loadgate runs")
}

/// The run's summary.json.
pub fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

//! The harness under its own faults: an output directory that cannot be created or has no
//! room fails before any load is sent; a disk that fills during the run loses no report (they
//! go to a fallback directory, exit 1); SIGTERM mid-run writes whole reports of what ran
//! (exit 105); a second interrupt exits at once (exit 130) even while requests hang.
//!
//! Full disks are real: a small tmpfs mounted for the test (the suite runs as root on CI
//! machines like the development one; without root these tests fail rather than skip).
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

mod common;
use common::TestServer;

/// A server counting the requests that reached it; `/hang` answers after 30 s.
fn counting_server() -> (TestServer, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/",
            get(move || {
                h1.fetch_add(1, Ordering::Relaxed);
                async { "ok" }
            }),
        )
        .route(
            "/hang",
            get(move || {
                h2.fetch_add(1, Ordering::Relaxed);
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }
            }),
        );
    (TestServer::axum(app), hits)
}

fn plan(dir: &Path, url: &str, path: &str, duration: &str) -> PathBuf {
    let p = dir.join("plan.yaml");
    std::fs::write(
        &p,
        format!(
            "name: harness-faults\ntarget: {url}\ndefaults:\n  timeout: 60s\nscenarios:\n  main:\n    executor: constant-arrival-rate\n    rate: 50/s\n    duration: {duration}\n    max_vus: 20\n    request:\n      method: GET\n      path: {path}\nthresholds:\n  http_req_failed: [\"rate<0.5\"]\n"
        ),
    )
    .unwrap();
    p
}

fn loadgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadgate"));
    c.stdin(Stdio::null());
    c
}

/// Wait for `cond`, failing the test after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().expect("exited, not killed by a signal");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgate did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sig` to a child this test spawned and has not reaped (so its pid is not reused).
fn signal(child: &Child, sig: Signal) {
    nix::sys::signal::kill(Pid::from_raw(child.id() as i32), sig)
        .unwrap_or_else(|e| panic!("kill({}, {sig}): {e}", child.id()));
}

/// Files in `dir` that are not whole reports: the temp files of an atomic write.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A tmpfs of `size` mounted at `path` for the test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount(8) runs");
        assert!(
            st.success(),
            "mounting a {size} tmpfs at {} failed: these tests need root (CI runs as root)",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Write zeros until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn an_out_dir_that_cannot_be_created_fails_before_any_load() {
    let (srv, hits) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &srv.url(), "/", "2s");
    std::fs::write(dir.path().join("a-file"), "not a directory").unwrap();
    let out = dir.path().join("a-file").join("out");
    let o = loadgate()
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(
        stderr.contains(out.to_str().unwrap()),
        "names the directory: {stderr}"
    );
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "no request reached the target"
    );
}

#[test]
fn a_disk_without_room_for_the_reports_fails_before_any_load() {
    let (srv, hits) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &srv.url(), "/", "2s");
    let fs = Tmpfs::mount(&dir.path().join("mnt"), "256k");
    let out = fs.path.join("out");
    let o = loadgate()
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("free") && stderr.contains("nothing was sent"),
        "says how much room there is and that nothing was sent: {stderr}"
    );
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "no request reached the target"
    );
}

#[test]
fn a_disk_that_fills_during_the_run_loses_no_report() {
    let (srv, hits) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &srv.url(), "/", "4s");
    let fs = Tmpfs::mount(&dir.path().join("mnt"), "2m");
    let out = fs.path.join("out");
    let fallback_root = dir.path().join("tmp");
    std::fs::create_dir_all(&fallback_root).unwrap();
    let mut child = loadgate()
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("TMPDIR", &fallback_root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the load to start", Duration::from_secs(20), || {
        hits.load(Ordering::Relaxed) >= 20
    });
    fs.fill();
    let code = wait_exit(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, 1, "the harness failed to write where asked: {stderr}");
    assert!(
        !out.join("summary.json").exists(),
        "no summary.json on the full disk"
    );
    assert!(
        leftovers(&out).is_empty(),
        "temp files left: {:?}",
        leftovers(&out)
    );
    // The reports went to a fallback directory under TMPDIR, which stderr names.
    let fallback: Vec<PathBuf> = std::fs::read_dir(&fallback_root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("loadgate-reports-")
        })
        .collect();
    assert_eq!(fallback.len(), 1, "{stderr}");
    assert!(
        stderr.contains(fallback[0].to_str().unwrap()) && stderr.contains("summary.json"),
        "names the failed file and where the reports are: {stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fallback[0].join("summary.json")).unwrap()).unwrap();
    assert!(
        v["scenarios"]["main"]["requests"].as_u64().unwrap() >= 20,
        "{v}"
    );
    assert_eq!(v["verdict"], "pass", "the run itself was judged: {v}");
}

#[test]
fn sigterm_mid_run_writes_whole_reports_of_what_ran() {
    let (srv, hits) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &srv.url(), "/", "60s");
    let out = dir.path().join("out");
    let mut child = loadgate()
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the load to start", Duration::from_secs(20), || {
        hits.load(Ordering::Relaxed) >= 30
    });
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 105);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(
        v["verdict"], "fail",
        "an interrupted run never reads as a pass"
    );
    let n = v["scenarios"]["main"]["requests"].as_u64().unwrap();
    assert!(n >= 30 && n <= hits.load(Ordering::Relaxed), "{n} requests");
    for f in ["junit.xml", "timeseries.csv", "summary.txt"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    assert!(
        leftovers(&out).is_empty(),
        "temp files left: {:?}",
        leftovers(&out)
    );
}

#[test]
fn a_second_interrupt_exits_at_once_while_requests_hang() {
    let (srv, hits) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &srv.url(), "/hang", "60s");
    let out = dir.path().join("out");
    let mut child = loadgate()
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("requests to hang", Duration::from_secs(20), || {
        hits.load(Ordering::Relaxed) >= 5
    });
    signal(&child, Signal::SIGINT);
    // The first interrupt says it drains (also when stderr is not a terminal).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let said = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("interrupted: draining"));
    assert!(said.is_some(), "the first interrupt is announced");
    let t0 = Instant::now();
    signal(&child, Signal::SIGINT);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 130);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the second interrupt took {:?}",
        t0.elapsed()
    );
}

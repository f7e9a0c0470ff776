//! `loadgate report DIR` writes every report file again from the run's stored results
//! (`DIR/results/`: HdrHistogram interval log, measurements, judgement): after deleting the
//! reports, summary.json comes back equal and report.html exists again.
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn loadgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs")
}

fn show(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn server() -> common::TestServer {
    use axum::routing::get;
    common::TestServer::axum(
        axum::Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/flaky",
                get(|| async {
                    if rand_bit() {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
                    } else {
                        (axum::http::StatusCode::OK, "ok")
                    }
                }),
            ),
    )
}

fn rand_bit() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) % 10 == 0
}

fn write_plan(dir: &Path, url: &str) -> std::path::PathBuf {
    let p = dir.join("plan.yaml");
    std::fs::write(
        &p,
        format!(
            r#"name: regen
target: {url}
scenarios:
  main:
    executor: constant-arrival-rate
    rate: 40/s
    duration: 3s
    request: {{ method: GET, path: /ok, checks: [ "status == 200" ] }}
  flaky:
    executor: constant-vus
    vus: 2
    duration: 3s
    request: {{ method: GET, path: /flaky }}
thresholds:
  http_req_duration: [ "p(95)<2000" ]
  http_req_failed{{scenario:flaky}}:
    - {{ threshold: "rate<0.01", runbook: "docs/runbooks/flaky.md - restart the flaky pool" }}
probes:
  ok: {{ request: GET /ok, every: 500ms }}
slos:
  availability: {{ objective: 99%, metric: http_req_failed }}
"#
        ),
    )
    .unwrap();
    p
}

#[test]
fn report_regenerates_every_file_from_stored_results() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), &srv.url());
    let out = dir.path().join("out");
    let o = loadgate(&[
        "run",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert_eq!(
        o.status.code(),
        Some(99),
        "the flaky threshold fails: {}",
        show(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("runbook for http_req_failed{scenario:flaky} rate<0.01: docs/runbooks/flaky.md - restart the flaky pool"),
        "the terminal prints the failed check's runbook: {}",
        show(&o)
    );
    let files = [
        "summary.json",
        "summary.txt",
        "junit.xml",
        "timeseries.csv",
        "report.html",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    for f in ["histograms.hlog", "measurements.json", "judgement.json"] {
        assert!(out.join("results").join(f).is_file(), "results/{f}");
    }
    let hlog = std::fs::read_to_string(out.join("results/histograms.hlog")).unwrap();
    assert!(
        hlog.contains("Tag=duration.0,") && hlog.contains("HISTF"),
        "{hlog}"
    );
    // Each second's latency per source, stamped with its second of the run clock.
    assert!(hlog.contains("Tag=second.0,0.000,1.000,"), "{hlog}");
    assert!(hlog.contains("Tag=second.1,2.000,1.000,"), "{hlog}");
    let junit = String::from_utf8_lossy(&before[2]).to_string();
    assert!(
        junit.contains("; runbook: docs/runbooks/flaky.md - restart the flaky pool"),
        "{junit}"
    );
    for f in &files {
        std::fs::remove_file(out.join(f)).unwrap();
    }

    let o = loadgate(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for (f, old) in files.iter().zip(&before) {
        let new = std::fs::read(out.join(f)).unwrap_or_else(|_| panic!("{f} again"));
        assert_eq!(
            String::from_utf8_lossy(&new),
            String::from_utf8_lossy(old),
            "{f} regenerated equal"
        );
    }
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("restart the flaky pool"));
    // The table is printed again too.
    assert!(String::from_utf8_lossy(&o.stdout).contains("verdict: FAIL"));

    // A directory without results says so (exit 2).
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = loadgate(&["report", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("results"),
        "{}",
        show(&o)
    );
}

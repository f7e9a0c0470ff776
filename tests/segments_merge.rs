//! Segments and merge: N local processes each run `--segment i/N` of one plan from a shared
//! `--start-at`, and `loadgate merge` judges their union exactly and globally.
//!
//! - the merged percentiles are bit for bit those of the segments' histograms added in this
//!   process;
//! - the union sends the plan's total (requests and rate within 1%);
//! - thresholds are judged over the union: one that passes on every segment fails after the
//!   merge, one that fails on every segment passes, windowed ones included;
//! - a missing, duplicate or foreign segment is an error naming it (exit 2), nothing written;
//! - the segments' HdrHistogram logs decode with another implementation (Python's
//!   `hdrhistogram`, installed by scripts/setup.sh) to the same percentiles.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::TestServer;
use loadgate::metrics::{new_histogram, LatencySummary};
use loadgate::report::results;
use serde_json::Value;

/// A server whose latency varies (0-4 ms, deterministic by request order).
fn server() -> TestServer {
    static N: AtomicU64 = AtomicU64::new(0);
    TestServer::axum(axum::Router::new().fallback(|| async {
        let n = N.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(n * 7 % 5)).await;
        "ok"
    }))
}

fn loadgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgate"))
}

/// Children killed (and reaped) on drop, also when an assertion fails.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Procs {
    /// Wait for every child (bounded); their exit codes in order.
    fn wait_all(&mut self, limit: Duration) -> Vec<i32> {
        let deadline = Instant::now() + limit;
        let mut codes = vec![None; self.0.len()];
        while codes.iter().any(Option::is_none) {
            assert!(
                Instant::now() < deadline,
                "segments still running after {limit:?}"
            );
            for (i, c) in self.0.iter_mut().enumerate() {
                if codes[i].is_none() {
                    if let Some(st) = c.try_wait().unwrap() {
                        codes[i] = Some(st.code().unwrap_or(-1));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        codes.into_iter().map(Option::unwrap).collect()
    }
}

fn write_plan(dir: &Path, target: &str, rate: u32, secs: u32) -> PathBuf {
    let plan = format!(
        r#"name: segments
target: {target}
scenarios:
  steady:
    executor: constant-arrival-rate
    rate: {rate}/s
    duration: {secs}s
    pre_allocated_vus: 20
    max_vus: 100
    request: {{ method: GET, path: /work, checks: ["status == 200"] }}
thresholds:
  # Each segment sends a third: these pass on each alone, and fail over the union.
  http_reqs: ["count<{alone}", "count<{per_second_alone} over 1s"]
  # And this one fails on each alone, and passes over the union.
  http_reqs{{scenario:steady}}: ["count>{union}"]
  http_req_duration: ["p(99)<2000"]
slos:
  availability: {{ objective: 99%, metric: http_req_failed }}
"#,
        alone = rate * secs / 2,
        per_second_alone = rate / 2,
        union = rate * secs * 2 / 3,
    );
    let path = dir.join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    path
}

/// Run `n` segments of `plan` concurrently from a shared start; their output directories.
fn run_segments(plan: &Path, root: &Path, n: u32) -> Vec<PathBuf> {
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(3);
    let start_at = format!("@{:.3}", start.as_secs_f64());
    let dirs: Vec<PathBuf> = (1..=n).map(|i| root.join(format!("seg-{i}"))).collect();
    let mut procs = Procs(Vec::new());
    for (i, d) in dirs.iter().enumerate() {
        let child = loadgate()
            .arg("run")
            .arg(plan)
            .args(["--segment", &format!("{}/{n}", i + 1)])
            .args(["--start-at", &start_at, "--threads", "1", "--json", "--out"])
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        procs.0.push(child);
    }
    let codes = procs.wait_all(Duration::from_secs(60));
    // Every segment fails `count>600` alone (and passes the rest): 99.
    assert_eq!(codes, vec![99; n as usize], "segment exit codes");
    dirs
}

fn merge(dirs: &[PathBuf], out: &Path) -> Output {
    loadgate()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap()
}

fn check<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {summary:#}"))
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn segments_merge_exactly_and_judge_globally() {
    let srv = server();
    let tmp = tempfile::tempdir().unwrap();
    let (rate, secs, n) = (300u32, 3u32, 3u32);
    let plan = write_plan(tmp.path(), &srv.url(), rate, secs);
    let dirs = run_segments(&plan, tmp.path(), n);
    let out = tmp.path().join("merged");
    let merged = merge(&dirs, &out);
    let stderr = String::from_utf8_lossy(&merged.stderr);
    // `count<450` fails over the union: 99.
    assert_eq!(merged.status.code(), Some(99), "{stderr}");
    let m: Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(m, summary(&out), "--json prints the summary.json written");

    // Bit for bit: the merged percentiles are those of the segments' histograms added here.
    let mut sum = new_histogram();
    let mut requests = 0;
    for d in &dirs {
        let stored = results::load(d).unwrap();
        sum.add(&stored.metrics.scenario_latency()["steady"])
            .unwrap();
        requests += stored.metrics.total_requests();
        let s = summary(d);
        // Each segment alone: the union's thresholds read the other way round.
        assert_eq!(check(&s, "http_reqs count<450")["passed"], true, "{s:#}");
        assert_eq!(check(&s, "http_reqs count<150 over 1s")["passed"], true);
        assert_eq!(
            check(&s, "http_reqs{scenario:steady} count>600")["passed"],
            false
        );
    }
    let want = serde_json::to_value(LatencySummary::from_micros(&sum)).unwrap();
    assert_eq!(m["scenarios"]["steady"]["latency_ms"], want);
    let back = results::load(&out).unwrap();
    assert_eq!(back.metrics.scenario_latency()["steady"], sum);

    // The union is the plan: every arrival once, at the plan's rate.
    let total = (rate * secs) as f64;
    let got = m["scenarios"]["steady"]["requests"].as_u64().unwrap();
    let dropped = m["scenarios"]["steady"]["dropped"].as_u64().unwrap();
    assert_eq!(got, requests);
    assert_eq!(
        got + dropped,
        total as u64,
        "every arrival of the plan exactly once"
    );
    assert!(
        (got as f64 - total).abs() <= total * 0.01,
        "union sent {got} of {total}"
    );
    // The rate over the plan's duration is the total's; the summary's rps divides by the
    // active time (to the last response, a few ms past the plan on a loaded machine).
    let union_rate = got as f64 / secs as f64;
    assert!(
        (union_rate - rate as f64).abs() <= rate as f64 * 0.01,
        "union rate {union_rate}/s, plan {rate}/s"
    );
    let rps = m["scenarios"]["steady"]["rps"].as_f64().unwrap();
    assert!(
        (rps - rate as f64).abs() <= rate as f64 * 0.05,
        "summary rps {rps}/s, plan {rate}/s"
    );
    let rows: u64 = back
        .metrics
        .timeline
        .iter()
        .filter(|r| r.step.is_empty())
        .map(|r| r.requests)
        .sum();
    assert_eq!(rows, got, "the per-second rows add up to the union");

    // Judged over the union, globally.
    assert_eq!(check(&m, "http_reqs count<450")["passed"], false, "{m:#}");
    let w = check(&m, "http_reqs count<150 over 1s");
    assert_eq!(w["passed"], false, "{w}");
    assert_eq!(
        check(&m, "http_reqs{scenario:steady} count>600")["passed"],
        true
    );
    assert_eq!(check(&m, "http_req_duration p(99)<2000")["passed"], true);
    assert_eq!(check(&m, "slo availability")["passed"], true);
    assert!(
        m["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "threshold_breach"),
        "the union's first failing window is on its timeline: {:#}",
        m["events"]
    );
    for f in [
        "junit.xml",
        "timeseries.csv",
        "report.html",
        "results/histograms.hlog",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let inputs: Value =
        serde_json::from_slice(&std::fs::read(out.join("results/merged.json")).unwrap()).unwrap();
    let inputs = inputs.as_array().unwrap();
    let indices: Vec<u64> = inputs
        .iter()
        .map(|i| i["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [1, 2, 3], "{inputs:#?}");
    let sent: u64 = inputs.iter().map(|i| i["requests"].as_u64().unwrap()).sum();
    assert_eq!(
        sent, got,
        "results/merged.json lists what each segment sent"
    );

    // A missing, duplicate or foreign segment: exit 2, naming it, nothing written.
    let bad = |args: &[PathBuf], needle: &str| {
        let o = tmp.path().join("bad");
        let r = merge(args, &o);
        let err = String::from_utf8_lossy(&r.stderr).to_string();
        assert_eq!(r.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!o.exists(), "nothing is written for a bad merge");
    };
    bad(&dirs[..2], "missing segment(s) 3 of 3");
    bad(
        &[
            dirs[0].clone(),
            dirs[0].clone(),
            dirs[1].clone(),
            dirs[2].clone(),
        ],
        "segment 1/3 given twice",
    );
    let edit = |from: &Path, name: &str, f: &dyn Fn(&mut Value)| {
        let to = tmp.path().join(name);
        std::fs::create_dir_all(to.join("results")).unwrap();
        for e in std::fs::read_dir(from.join("results")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join("results").join(e.file_name())).unwrap();
        }
        let p = to.join("results/segment.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        to
    };
    let other = edit(&dirs[2], "other-plan", &|v| {
        v["plan_sha256"] = "0123abcd".into()
    });
    bad(
        &[dirs[0].clone(), dirs[1].clone(), other.clone()],
        &format!(
            "{}: segment 3/3 ran the plan text with SHA-256 0123abcd",
            other.display()
        ),
    );
    let four = edit(&dirs[1], "four", &|v| v["count"] = 4.into());
    bad(
        &[dirs[0].clone(), four.clone(), dirs[2].clone()],
        &format!("{}: segment 2 of 4", four.display()),
    );
    bad(
        &[dirs[0].clone(), dirs[1].clone(), tmp.path().to_path_buf()],
        "not a segment's results",
    );
}

/// Python's `hdrhistogram` package (import name `hdrh`), when installed; with
/// LOADGATE_REQUIRE_SERVERS=1 (CI, after scripts/setup.sh) it must be.
fn python_hdrh() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import hdrh.log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var("LOADGATE_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "python3 with the hdrhistogram package is required (LOADGATE_REQUIRE_SERVERS=1): run scripts/setup.sh"
    );
    eprintln!("SKIP: python3 with the hdrhistogram package (pip install hdrhistogram) not found");
    None
}

/// Reads an interval log with Python's HdrHistogram and prints, per entry, its tag and
/// figures (values in the log's unit, µs).
const PY_READ: &str = r#"
import json, sys
from hdrh.log import HistogramLogReader
from hdrh.histogram import HdrHistogram
r = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600 * 1000 * 1000, 3))
out = []
while True:
    h = r.get_next_interval_histogram()
    if h is None:
        break
    out.append({"tag": h.get_tag(), "start": h.get_start_time_stamp(), "count": h.get_total_count(),
                "p50": h.get_value_at_percentile(50), "p90": h.get_value_at_percentile(90),
                "p99": h.get_value_at_percentile(99), "p999": h.get_value_at_percentile(99.9),
                "min": h.get_min_value(), "max": h.get_max_value(),
                "buckets": [[v.value_iterated_to, v.count_at_value_iterated_to]
                            for v in h.get_recorded_iterator()]})
print(json.dumps(out))
"#;

/// The value at percentile `p` as the Java and Python HdrHistograms define it (the Rust
/// crate's `value_at_quantile` rounds the rank up instead).
fn java_percentile(buckets: &[(u64, u64)], total: u64, p: f64) -> u64 {
    let rank = (((p / 100.0) * total as f64) + 0.5) as u64;
    let mut seen = 0;
    for &(v, c) in buckets {
        seen += c;
        if seen >= rank.max(1) {
            return v;
        }
    }
    0
}

#[test]
fn segment_logs_decode_with_another_hdrhistogram_implementation() {
    let Some(python) = python_hdrh() else { return };
    let srv = server();
    let tmp = tempfile::tempdir().unwrap();
    let plan = write_plan(tmp.path(), &srv.url(), 200, 2);
    let out = tmp.path().join("seg");
    let st = loadgate()
        .arg("run")
        .arg(&plan)
        .args(["--segment", "2/2", "--threads", "1", "--json", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.code().is_some(), "{st:?}");
    let stored = results::load(&out).unwrap();
    let mut rust: Vec<(String, hdrhistogram::Histogram<u64>)> = Vec::new();
    for (i, s) in stored.metrics.series.values().enumerate() {
        rust.push((format!("duration.{i}"), s.duration.clone()));
        rust.push((format!("service.{i}"), s.service.clone()));
    }
    let mut de = hdrhistogram::serialization::Deserializer::new();
    for s in &stored.metrics.second_latency {
        let h = de.deserialize(&mut &s.v2_deflate[..]).unwrap();
        rust.push((format!("second.{}@{}", s.source, s.second), h));
    }
    for file in ["histograms.hlog", "slices.hlog"] {
        let path = out.join("results").join(file);
        let o = Command::new(python)
            .args(["-c", PY_READ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let entries: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        assert!(!entries.is_empty(), "{file}: Python read no histogram");
        let mut compared = 0;
        for e in &entries {
            let tag = e["tag"].as_str().unwrap().to_string();
            let count = e["count"].as_u64().unwrap();
            assert!(
                count > 0 || tag.starts_with("service"),
                "{file} {tag}: empty"
            );
            // The slices' histograms: the same percentiles as the histograms they add up to
            // (checked by the merge test); here, that Python reads what Rust wrote.
            let key = if tag.starts_with("second.") {
                let start = e["start"].as_f64().unwrap() / 1000.0;
                let base = stored.judgement.started_at_unix_s as f64;
                format!("{tag}@{}", (start - base).round() as u64)
            } else {
                tag.clone()
            };
            let Some((_, h)) = rust.iter().find(|(k, _)| *k == key) else {
                assert!(tag.starts_with("slice."), "{file}: unexpected tag {tag}");
                continue;
            };
            // Every bucket decodes to the same value and count...
            let buckets: Vec<(u64, u64)> = h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            let theirs: Vec<(u64, u64)> = serde_json::from_value(e["buckets"].clone()).unwrap();
            assert_eq!(theirs, buckets, "{file} {tag}: buckets");
            // ...so the percentiles agree, read with HdrHistogram's (Java's, Python's)
            // definition: the value at rank round(p * count), at least 1.
            let q = |p: f64| java_percentile(&buckets, h.len(), p);
            let want = [
                h.len(),
                q(50.0),
                q(90.0),
                q(99.0),
                q(99.9),
                h.min(),
                h.max(),
            ];
            let got = ["count", "p50", "p90", "p99", "p999", "min", "max"]
                .map(|f| e[f].as_u64().unwrap());
            if h.is_empty() {
                assert_eq!(got[0], 0, "{file} {tag}");
            } else {
                assert_eq!(
                    got, want,
                    "{file} {tag}: Python vs Rust (count, p50, p90, p99, p99.9, min, max)"
                );
            }
            compared += 1;
        }
        if file == "histograms.hlog" {
            assert_eq!(compared, rust.len(), "every histogram compared");
        }
    }
}

/// Probes run in segment 1 only and their judgement carries into the union; a flow's step
/// rows and iteration durations merge as well.
#[test]
fn probes_and_flows_merge_as_one_run() {
    let srv = server();
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            r#"name: flows
target: {}
scenarios:
  flow:
    executor: constant-arrival-rate
    rate: 40/s
    duration: 2s
    steps:
      - {{ name: first, method: GET, path: /a, checks: ["status == 200"] }}
      - {{ name: second, method: GET, path: /b }}
probes:
  ping: {{ request: GET /ping, every: 250ms }}
thresholds:
  http_req_duration{{step:second}}: ["p(99)<2000"]
  iteration_duration: ["p(99)<4000"]
"#,
            srv.url()
        ),
    )
    .unwrap();
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(3);
    let start_at = format!("@{:.3}", start.as_secs_f64());
    let dirs: Vec<PathBuf> = (1..=2).map(|i| tmp.path().join(format!("s{i}"))).collect();
    let mut procs = Procs(Vec::new());
    for (i, d) in dirs.iter().enumerate() {
        procs.0.push(
            loadgate()
                .arg("run")
                .arg(&plan)
                .args([
                    "--segment",
                    &format!("{}/2", i + 1),
                    "--start-at",
                    &start_at,
                ])
                .args(["--threads", "1", "--json", "--out"])
                .arg(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    assert_eq!(procs.wait_all(Duration::from_secs(60)), vec![0, 0]);
    let one = summary(&dirs[0]);
    let two = summary(&dirs[1]);
    assert_eq!(check(&one, "probe ping")["passed"], true, "{one:#}");
    assert!(
        two["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] != "probe"),
        "segment 2 runs no probe: {two:#}"
    );
    let out = tmp.path().join("merged");
    let merged = merge(&dirs, &out);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let m = summary(&out);
    let names: Vec<&str> = m["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "http_req_duration{step:second} p(99)<2000",
            "iteration_duration p(99)<4000",
            "probe ping"
        ],
        "thresholds, then probes, as a run reports them"
    );
    assert_eq!(
        m["probes"], one["probes"],
        "the probe's report is segment 1's"
    );
    // 80 iterations of two steps.
    assert_eq!(
        m["scenarios"]["flow"]["requests"], 160,
        "{:#}",
        m["scenarios"]
    );
    let back = results::load(&out).unwrap();
    let steps: u64 = back
        .metrics
        .timeline
        .iter()
        .filter(|r| r.step == "second")
        .map(|r| r.requests)
        .sum();
    assert_eq!(steps, 80, "the step's own rows add up");
    let iterations: u64 = (0..2)
        .map(|i| results::load(&dirs[i]).unwrap().metrics.iterations[0].len())
        .sum();
    assert_eq!(back.metrics.iterations[0].len(), iterations);
    assert_eq!(iterations, 80);
}

/// What a segment cannot do is refused before anything is sent (exit 2, nothing written).
#[test]
fn segments_refuse_what_they_cannot_do_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = tmp.path().join("out");
        let o = loadgate()
            .args(args)
            .arg("--out")
            .arg(&out)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
        assert!(!out.join("summary.json").exists(), "{args:?} wrote reports");
    };
    refused(
        &["run", "plans/smoke.yaml", "--segment", "1/2"],
        "segments of one run must load one shared target",
    );
    let plan = write_plan(tmp.path(), "http://127.0.0.1:9", 10, 1);
    let plan = plan.to_str().unwrap();
    let past = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    refused(
        &[
            "run",
            plan,
            "--segment",
            "1/2",
            "--start-at",
            &format!("@{past}"),
        ],
        "--start-at passed",
    );
    refused(
        &["run", plan, "--segment", "1/2", "--start-at", "noon"],
        "--start-at \"noon\": expected an RFC 3339 time",
    );
    refused(&["run", plan, "--segment", "3/2"], "--segment \"3/2\"");
}

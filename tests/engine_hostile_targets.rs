//! Hostile targets: a raw TCP server on 127.0.0.1 that resets connections, answers garbage,
//! drips its body a byte at a time, sends a 1 GiB body, never answers, lies about
//! Content-Length (shorter and longer than the body), answers `100 Continue` forever, sends an
//! endless header, or answers 500. Against each, the real `loadgate` binary finishes within its
//! duration and timeout, classifies every failed request by kind, keeps memory bounded (the
//! 1 GiB body is read to its end but only `max_body` of it is kept; the child's peak RSS is
//! measured), and exits as its thresholds say.
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::TestServer;

/// How the hostile server answers each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reset the connection (closed with the request unread: the kernel sends RST).
    Reset,
    /// Bytes that are not HTTP, then silence.
    Garbage,
    /// A 1000-byte body, one byte every 50 ms.
    Drip,
    /// A 1 GiB body (written from one 64 KiB block, never allocated whole): `BEGIN`, `x`s, `END`.
    Huge,
    /// Read the request, never answer.
    Silent,
    /// `Content-Length: 5` with a longer body.
    ShortLength,
    /// `Content-Length: 1000`, 9 bytes of body, then close.
    LongLength,
    /// `100 Continue`, forever.
    InterimForever,
    /// A status line, then one header that never ends.
    EndlessHeader,
    /// `500 Internal Server Error`, keep-alive.
    Status500,
}

const HUGE: u64 = 1 << 30;

/// Read one request head (up to the blank line); false when the client went away.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..i + 4);
            return true;
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Hold the connection open until the client closes it.
async fn hold(mut s: TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = s.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

async fn serve_conn(mut s: TcpStream, mode: Mode, body_bytes: Arc<AtomicU64>) {
    if mode == Mode::Reset {
        // Wait for the request, leave it unread and close: unread data makes close send RST.
        let _ = s.readable().await;
        return;
    }
    let mut buf = Vec::new();
    while read_request(&mut s, &mut buf).await {
        let ok = match mode {
            Mode::Reset => unreachable!(),
            Mode::Garbage => {
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http at all\r\n\r\n")
                    .await;
                return hold(s).await;
            }
            Mode::Drip => {
                if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                }
                true
            }
            Mode::Huge => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {HUGE}\r\n\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b'x'; 64 * 1024];
                let mut left = HUGE;
                let mut first = true;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    let r = if first {
                        first = false;
                        let mut b = block[..n].to_vec();
                        b[..5].copy_from_slice(b"BEGIN");
                        s.write_all(&b).await
                    } else if left == n as u64 {
                        let mut b = block[..n].to_vec();
                        b[n - 3..].copy_from_slice(b"END");
                        s.write_all(&b).await
                    } else {
                        s.write_all(&block[..n]).await
                    };
                    if r.is_err() {
                        return;
                    }
                    left -= n as u64;
                    body_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                true
            }
            Mode::Silent => return hold(s).await,
            Mode::ShortLength => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello, and more than announced",
                )
                .await
                .is_ok(),
            Mode::LongLength => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly this")
                    .await;
                return;
            }
            Mode::InterimForever => {
                while s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_ok() {
                    tokio::task::yield_now().await;
                }
                return;
            }
            Mode::EndlessHeader => {
                if s.write_all(b"HTTP/1.1 200 OK\r\nx-endless: ")
                    .await
                    .is_err()
                {
                    return;
                }
                let block = [b'a'; 4096];
                while s.write_all(&block).await.is_ok() {
                    tokio::task::yield_now().await;
                }
                return;
            }
            Mode::Status500 => s
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\n\r\noops!")
                .await
                .is_ok(),
        };
        if !ok {
            return;
        }
    }
}

/// The hostile server and the body bytes it managed to write (Huge).
fn hostile(mode: Mode) -> (TestServer, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let srv = TestServer::start(move |listener, _stop| async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::task::spawn_local(serve_conn(s, mode, w.clone()));
        }
    });
    (srv, written)
}

/// Run the real binary; return its output and how long it took.
fn loadgate(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("loadgate runs");
    (out, t0.elapsed())
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not summary.json ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `loadgate attack` for 1 s with a 1 s timeout and the given threshold; returns the
/// scenario's summary and the exit code, asserting it finished within duration + timeout.
fn attack(url: &str, threshold: &str) -> (Value, i32) {
    let (out, took) = loadgate(&[
        "attack",
        url,
        "-c",
        "2",
        "-d",
        "1s",
        "--timeout",
        "1s",
        "--threads",
        "1",
        "--json",
        "--threshold",
        threshold,
    ]);
    // 1 s of load, at most 1 s for the last requests, and a generous allowance for starting
    // a debug binary on a busy machine.
    assert!(took < Duration::from_secs(12), "attack took {took:?}");
    let code = out.status.code().expect("exited, not killed");
    (summary(&out)["scenarios"]["attack"].clone(), code)
}

/// Every failed request of `sc` has kind `kind`, and there was at least one.
fn all_failed_as(mode: Mode, sc: &Value, kind: &str) {
    let requests = sc["requests"].as_u64().unwrap();
    let errors = sc["errors"].as_u64().unwrap();
    let kinds = sc["errors_by_kind"].as_object().unwrap();
    eprintln!("{mode:?}: {requests} requests, errors by kind {kinds:?}");
    assert!(requests >= 1, "{mode:?}: no request finished: {sc}");
    assert_eq!(errors, requests, "{mode:?}: every request fails: {sc}");
    assert_eq!(
        kinds.keys().collect::<Vec<_>>(),
        vec![kind],
        "{mode:?}: kinds {kinds:?}"
    );
    assert_eq!(kinds[kind].as_u64(), Some(errors), "{mode:?}: {sc}");
}

const FAIL_ON_ERRORS: &str = "http_req_failed: rate<0.01";
/// Exit 99: a threshold failed.
const THRESHOLD_FAILED: i32 = 99;

fn failing_target(mode: Mode, kind: &str) {
    let (srv, _) = hostile(mode);
    let (sc, code) = attack(&srv.url(), FAIL_ON_ERRORS);
    all_failed_as(mode, &sc, kind);
    assert_eq!(code, THRESHOLD_FAILED, "{mode:?}: {sc}");
}

#[test]
fn reset_connections_are_reset() {
    failing_target(Mode::Reset, "reset");
}

#[test]
fn garbage_instead_of_http_is_protocol() {
    failing_target(Mode::Garbage, "protocol");
}

#[test]
fn a_dripped_body_times_out() {
    failing_target(Mode::Drip, "timeout");
}

#[test]
fn a_target_that_never_answers_times_out() {
    failing_target(Mode::Silent, "timeout");
}

#[test]
fn a_body_shorter_than_its_content_length_is_truncated() {
    failing_target(Mode::LongLength, "truncated");
}

#[test]
fn interim_responses_forever_are_protocol() {
    failing_target(Mode::InterimForever, "protocol");
}

#[test]
fn an_endless_header_is_protocol() {
    failing_target(Mode::EndlessHeader, "protocol");
}

#[test]
fn status_500_fails_or_passes_as_the_thresholds_say() {
    let (srv, _) = hostile(Mode::Status500);
    let (sc, code) = attack(&srv.url(), FAIL_ON_ERRORS);
    all_failed_as(Mode::Status500, &sc, "status_5xx");
    assert_eq!(sc["status_codes"]["500"], sc["requests"]);
    assert_eq!(code, THRESHOLD_FAILED);
    // The same target under a threshold the run meets: exit 0.
    let (sc, code) = attack(&srv.url(), "http_reqs: count>0");
    assert!(sc["requests"].as_u64().unwrap() > 0);
    assert_eq!(code, 0, "{sc}");
}

#[test]
fn bytes_past_a_short_content_length_are_never_the_next_response() {
    let (srv, _) = hostile(Mode::ShortLength);
    let (sc, code) = attack(&srv.url(), FAIL_ON_ERRORS);
    eprintln!("ShortLength: {sc}");
    // Each response ends where its Content-Length says; the extra bytes are dropped with the
    // connection instead of being parsed as the next response (which would be `protocol`).
    assert!(sc["requests"].as_u64().unwrap() > 0);
    assert_eq!(sc["errors"], 0, "{sc}");
    assert_eq!(sc["status_codes"]["200"], sc["requests"]);
    assert_eq!(code, 0);
}

/// Peak resident set (KiB) of the largest child this test process has waited for.
fn children_max_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss()
}

#[test]
fn a_1gib_body_is_read_to_its_end_in_bounded_memory() {
    let (srv, written) = hostile(Mode::Huge);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("huge.yaml");
    // Checks read the body, so it is captured: only its first 64 KiB are kept.
    let mut f = std::fs::File::create(&plan).unwrap();
    write!(
        f,
        "name: huge-body\ntarget: {}\ndefaults:\n  timeout: 120s\n  max_body: 64KiB\n\
         scenarios:\n  main:\n    executor: per-vu-iterations\n    vus: 1\n    iterations: 2\n\
         \x20   request:\n      path: /\n      checks:\n        - status == 200\n\
         \x20       - body contains \"BEGIN\"\n        - body contains \"END\"\n\
         thresholds:\n  http_req_failed: [\"rate<0.01\"]\n",
        srv.url()
    )
    .unwrap();
    drop(f);
    let (out, took) = loadgate(&["run", plan.to_str().unwrap(), "--threads", "1", "--json"]);
    let rss_kib = children_max_rss_kib();
    let s = summary(&out);
    let sc = &s["scenarios"]["main"];
    eprintln!(
        "2 x 1 GiB body: {took:?}, loadgate peak RSS {} MiB, service time {}",
        rss_kib / 1024,
        sc["service_time_ms"]
    );
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert_eq!(sc["requests"], 2, "{sc}");
    assert_eq!(sc["errors"], 0, "{sc}");
    // Both bodies were read to their end: the server wrote all of them.
    assert_eq!(written.load(Ordering::Relaxed), 2 * HUGE);
    // The checks saw the first 64 KiB: the start, not the end 1 GiB later.
    assert_eq!(sc["response_checks"]["passed"], 4, "{sc}");
    assert_eq!(sc["response_checks"]["failed"], 2, "{sc}");
    // 2 GiB went through a process that never grew past a small fraction of one body.
    assert!(
        rss_kib < 96 * 1024,
        "loadgate's peak RSS was {rss_kib} KiB reading a 1 GiB body"
    );
}

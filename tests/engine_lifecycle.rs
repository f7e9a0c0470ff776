//! Connection lifecycle: a connection the server ends in the ordinary way is never a failed
//! request, a request the server really lost stays one, and one user request is counted once
//! however many attempts it took. Each server here counts the requests it processed, so the
//! client's count is checked against the server's.
//!
//! - a FIN after the response, seen while the connection is idle (as a keep-alive timeout
//!   closes it), with POSTs, which may never be replayed: the idle check reconnects first;
//! - the same with a TLS close_notify;
//! - a server that reads the second request of each connection and closes without answering:
//!   a lost POST is an error, a GET is sent again on a new connection (Go's rule);
//! - an HTTP/2 server that retires each connection with a GOAWAY after a few streams.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{request, scenario, spec, TestServer};
use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::metrics::{ErrorKind, RunMetrics};
use loadgate::spec::{ExecutorSpec, HttpVersion, RequestSpec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the raw HTTP/1.1 server does after answering a request.
#[derive(Clone, Copy)]
enum After {
    /// Close the connection (FIN; TLS: close_notify first) a moment after the response, with
    /// no `Connection: close`: the client finds it closed when it is idle.
    CloseWhenIdle,
    /// Answer the first request of a connection; read the second and close unanswered.
    LoseTheSecond,
}

/// Read one request (head and `Content-Length` body); false when the client went away.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return true;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve_h1<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, after: After, seen: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    if !read_request(&mut s, &mut buf).await {
        return;
    }
    seen.fetch_add(1, Ordering::SeqCst);
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await;
    let _ = s.flush().await;
    match after {
        After::CloseWhenIdle => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let _ = s.shutdown().await;
        }
        After::LoseTheSecond => {
            if read_request(&mut s, &mut buf).await {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// A raw HTTP/1.1 server (TLS with a self-signed certificate when `tls`) that counts the
/// requests it read.
fn h1_server(after: After, tls: bool) -> (TestServer, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let acceptor = tls.then(tls_acceptor);
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (s, acceptor) = (s.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(t) = a.accept(tcp).await {
                            serve_h1(t, after, s).await
                        }
                    }
                    None => serve_h1(tcp, after, s).await,
                }
            });
        }
    });
    (srv, seen)
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

fn post() -> RequestSpec {
    let mut r = request("POST", "/");
    r.body = Some(Template::parse("payload").unwrap());
    r.checks
        .push(ResponseCheck::parse("status == 200").unwrap());
    r
}

fn get() -> RequestSpec {
    let mut r = request("GET", "/");
    r.checks
        .push(ResponseCheck::parse("status == 200").unwrap());
    r
}

/// One VU sending every 100 ms: each request finds its connection idle for ~100 ms, long
/// after the server's close (2 ms after its response). The gap is wide so that a busy machine
/// (the suite runs in parallel) cannot delay the server's close past the next send: that
/// would be the real keep-alive race, which no client can win for a POST.
fn paced() -> ExecutorSpec {
    ExecutorSpec::ConstantArrivalRate {
        rate: 10.0,
        duration: Duration::from_secs(3),
        pre_allocated_vus: 1,
        max_vus: 1,
    }
}

fn iterations(vus: u32, n: u64) -> ExecutorSpec {
    ExecutorSpec::SharedIterations {
        vus,
        iterations: n,
        max_duration: Duration::from_secs(20),
    }
}

fn errors(m: &RunMetrics) -> Vec<(Option<ErrorKind>, u64)> {
    let mut v: Vec<_> = m
        .series
        .iter()
        .filter(|(k, _)| k.error.is_some())
        .map(|(k, s)| (k.error, s.requests))
        .collect();
    v.sort_by_key(|(k, _)| format!("{k:?}"));
    v
}

#[test]
fn a_fin_seen_while_idle_is_no_failure_even_for_a_post() {
    let (srv, seen) = h1_server(After::CloseWhenIdle, false);
    let m = common::run(spec(&srv.url(), vec![scenario("s", paced(), post())]), 1);
    let st = m.aggregate(|_| true);
    assert!(st.requests >= 25, "{} requests", st.requests);
    assert_eq!(st.failed, 0, "{:?}", errors(&m));
    assert_eq!(st.checks_failed, 0);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        st.requests,
        "each POST reached the server once"
    );
}

#[test]
fn a_tls_close_notify_seen_while_idle_is_no_failure() {
    let (srv, seen) = h1_server(After::CloseWhenIdle, true);
    let url = format!("https://localhost:{}", srv.addr.port());
    let mut s = spec(&url, vec![scenario("s", paced(), post())]);
    s.http.insecure = true;
    let m = common::run(s, 1);
    let st = m.aggregate(|_| true);
    assert!(st.requests >= 25, "{} requests", st.requests);
    assert_eq!(st.failed, 0, "{:?}", errors(&m));
    assert_eq!(seen.load(Ordering::SeqCst), st.requests);
}

#[test]
fn a_post_the_server_lost_is_an_error_and_is_never_replayed() {
    let (srv, seen) = h1_server(After::LoseTheSecond, false);
    let m = common::run(
        spec(&srv.url(), vec![scenario("s", iterations(1, 20), post())]),
        1,
    );
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 20);
    assert_eq!(
        errors(&m),
        vec![(Some(ErrorKind::Reset), 10)],
        "every second POST was read and never answered"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        20,
        "a lost POST is not sent again"
    );
}

#[test]
fn a_get_lost_on_a_reused_connection_is_sent_again_and_counted_once() {
    let (srv, seen) = h1_server(After::LoseTheSecond, false);
    let m = common::run(
        spec(&srv.url(), vec![scenario("s", iterations(1, 20), get())]),
        1,
    );
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 20, "one user request, one count");
    assert_eq!(st.failed, 0, "{:?}", errors(&m));
    assert_eq!(st.checks_passed, 20);
    // Every second connection's lost GET was replayed once on a fresh connection, where it
    // is the first request and answered.
    let seen = seen.load(Ordering::SeqCst);
    assert!((20..=40).contains(&seen), "server saw {seen} requests");
}

#[test]
fn a_lost_request_on_a_fresh_connection_stays_an_error() {
    // Every connection: the first request is lost (read, then the connection closed).
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut tcp, &mut buf).await {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let m = common::run(
        spec(&srv.url(), vec![scenario("s", iterations(1, 10), get())]),
        1,
    );
    assert_eq!(errors(&m), vec![(Some(ErrorKind::Reset), 10)]);
    assert_eq!(seen.load(Ordering::SeqCst), 10, "never retried");
}

/// An HTTP/2 (h2c) server that retires every connection after `per_conn` streams with a
/// graceful GOAWAY (as nginx's `keepalive_requests` does), counting the streams it answered.
fn goaway_server(per_conn: u64) -> (TestServer, Arc<AtomicU64>, Arc<AtomicU64>) {
    let served = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicU64::new(0));
    let (s, c) = (served.clone(), conns.clone());
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                let mut n = 0;
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    n += 1;
                    s.fetch_add(1, Ordering::SeqCst);
                    let resp = http::Response::builder().status(200).body(()).unwrap();
                    if let Ok(mut body) = respond.send_response(resp, false) {
                        let _ = body.send_data(Bytes::from_static(b"ok"), true);
                    }
                    if n == per_conn {
                        conn.graceful_shutdown();
                    }
                }
            });
        }
    });
    (srv, served, conns)
}

#[test]
fn an_h2_goaway_mid_run_is_no_failure_and_nothing_is_counted_twice() {
    let (srv, served, conns) = goaway_server(10);
    let mut s = spec(&srv.url(), vec![scenario("s", iterations(4, 2000), get())]);
    s.http.version = HttpVersion::Http2;
    let m = common::run(s, 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 2000);
    assert_eq!(st.failed, 0, "{:?}", errors(&m));
    assert_eq!(st.checks_passed, 2000);
    assert_eq!(
        served.load(Ordering::SeqCst),
        2000,
        "the server answered each user request exactly once"
    );
    // The 4 VUs share one connection (HTTP/2 multiplexing): the streams already in flight
    // when the server decides to retire it are answered too (graceful GOAWAY), so a
    // connection carries 10 to 10 + 4 streams; never more than 20.
    assert!(
        conns.load(Ordering::SeqCst) >= 2000 / 20,
        "every connection was retired after about 10 streams: {} connections",
        conns.load(Ordering::SeqCst)
    );
}

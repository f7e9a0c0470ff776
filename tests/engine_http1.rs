//! The lean HTTP/1.1 client: keep-alive reuse, HEAD and 204 framing, a server that closes idle
//! connections, `max_connections`, and live snapshots while the run goes on.
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use common::{request, scenario, spec, TestServer};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use loadgate::engine::{self, EngineOptions};
use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::spec::ExecutorSpec;
use tokio_util::sync::CancellationToken;

struct Counters {
    connections: AtomicU64,
    vus: Mutex<BTreeSet<String>>,
}

/// HTTP/1.1 server counting accepted connections.
fn server() -> (TestServer, Arc<Counters>) {
    let counters = Arc::new(Counters {
        connections: AtomicU64::new(0),
        vus: Mutex::new(BTreeSet::new()),
    });
    let c = counters.clone();
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let c2 = c.clone();
                let app = Router::new()
                    .route(
                        "/",
                        get(|| async { "hello" })
                            .head(|| async { ([("content-length", "5")], "") }),
                    )
                    .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
                    .route(
                        "/vu",
                        get(move |h: HeaderMap| {
                            let c = c2.clone();
                            async move {
                                if let Some(v) = h.get("x-vu") {
                                    c.vus
                                        .lock()
                                        .unwrap()
                                        .insert(v.to_str().unwrap().to_string());
                                }
                                "ok"
                            }
                        }),
                    );
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app));
                let _ = conn.await;
            });
        }
    });
    (srv, counters)
}

fn iterations(vus: u32, n: u64) -> ExecutorSpec {
    ExecutorSpec::SharedIterations {
        vus,
        iterations: n,
        max_duration: Duration::from_secs(10),
    }
}

#[test]
fn keep_alive_reuses_one_connection_per_vu() {
    let (srv, c) = server();
    let mut head = request("HEAD", "/");
    head.name = "head".into();
    let mut empty = request("GET", "/empty");
    empty.name = "empty".into();
    empty
        .checks
        .push(ResponseCheck::parse("status == 204").unwrap());
    let mut sc = scenario("s", iterations(2, 200), request("GET", "/"));
    sc.requests.push(head);
    sc.requests.push(empty);
    let m = common::run(spec(&srv.url(), vec![sc]), 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 200);
    assert_eq!(st.failed, 0, "{:?}", m.series.keys().collect::<Vec<_>>());
    assert_eq!(st.checks_failed, 0);
    assert_eq!(
        c.connections.load(Ordering::SeqCst),
        2,
        "one connection per VU"
    );
}

/// A raw server answering `per_conn` requests per connection, then closing it silently
/// (no `Connection: close`), as a server's idle or max-requests limit does.
fn closing_server(per_conn: usize) -> (TestServer, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let conns = Arc::new(AtomicU64::new(0));
    let c = conns.clone();
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut served = 0;
                while served < per_conn {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let _ = tcp
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                            .await;
                        served += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            });
        }
    });
    (srv, conns)
}

#[test]
fn reconnects_when_the_server_drops_idle_connections() {
    let (srv, c) = closing_server(5);
    let m = common::run(
        spec(
            &srv.url(),
            vec![scenario("s", iterations(1, 40), request("GET", "/"))],
        ),
        1,
    );
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 40);
    assert_eq!(
        st.failed,
        0,
        "stale connections are retried: {:?}",
        m.series.keys().collect::<Vec<_>>()
    );
    assert!(c.load(Ordering::SeqCst) >= 8);
}

#[test]
fn max_connections_caps_the_vus() {
    let (srv, c) = server();
    let mut r = request("GET", "/vu");
    r.headers
        .push(("x-vu".into(), Template::parse("{{vu}}").unwrap()));
    let mut s = spec(&srv.url(), vec![scenario("s", iterations(10, 100), r)]);
    s.http.max_connections = Some(3);
    let m = common::run(s, 2);
    assert_eq!(m.total_requests(), 100);
    assert_eq!(c.vus.lock().unwrap().len(), 3);
    assert_eq!(c.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn live_snapshots_follow_the_run() {
    let (srv, _) = server();
    let exec = ExecutorSpec::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_millis(3000),
        pre_allocated_vus: 2,
        max_vus: 10,
    };
    let s = spec(&srv.url(), vec![scenario("s", exec, request("GET", "/"))]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let h = engine::start(
            Arc::new(s),
            EngineOptions {
                threads: 2,
                segment: None,
                slices: false,
            },
            CancellationToken::new(),
        )
        .unwrap();
        let agg = h.aggregator();
        tokio::time::sleep_until((h.started_at() + Duration::from_millis(2300)).into()).await;
        let snap = agg.snapshot();
        // Seconds 0 and 1 are flushed by now (about 200 requests); the snapshot is never ahead.
        assert!(
            (150..=240).contains(&snap.total_requests()),
            "{}",
            snap.total_requests()
        );
        assert!(snap.timeline.iter().any(|r| r.second == 1));
        let m = h.finish().await.unwrap();
        assert_eq!(m.total_requests() + m.total_dropped(), 300);
        assert!(m.total_requests() > snap.total_requests());
    });
}

/// Canned raw responses by path, written in small pieces to exercise the parser's buffering.
fn raw_server() -> TestServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        let (resp, close): (&[u8], bool) = match path.as_str() {
                            "/chunked-ext" => (
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5;name=v\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
                                false,
                            ),
                            "/continue" => (
                                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated",
                                false,
                            ),
                            "/http10" => (b"HTTP/1.0 200 OK\r\n\r\nuntil close", true),
                            "/garbage" => (b"SPDY/9 banana\r\n\r\n", true),
                            "/reset" => (b"", true),
                            _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
                        };
                        for piece in resp.chunks(3) {
                            if tcp.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::task::yield_now().await;
                        }
                        if close {
                            return;
                        }
                    }
                }
            });
        }
    })
}

#[test]
fn parses_fragmented_chunked_interim_and_close_delimited_responses() {
    let srv = raw_server();
    let mut a = request("GET", "/chunked-ext");
    a.checks
        .push(ResponseCheck::parse("body contains \"hello, world\"").unwrap());
    a.checks
        .push(ResponseCheck::parse("header x-a == \"1\"").unwrap());
    let mut b = request("GET", "/continue");
    b.name = "continue".into();
    b.checks
        .push(ResponseCheck::parse("status == 201").unwrap());
    b.checks
        .push(ResponseCheck::parse("body contains \"created\"").unwrap());
    let mut c = request("GET", "/http10");
    c.name = "http10".into();
    c.checks
        .push(ResponseCheck::parse("body contains \"until close\"").unwrap());
    let mut d = request("GET", "/chunked-ext");
    d.name = "no-capture".into();
    let mut sc = scenario("s", iterations(2, 80), a);
    sc.requests.extend([b, c, d]);
    let m = common::run(spec(&srv.url(), vec![sc]), 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 80);
    assert_eq!(st.failed, 0, "{:?}", m.series.keys().collect::<Vec<_>>());
    assert_eq!(st.checks_failed, 0);
    assert!(st.checks_passed >= 80);
}

#[test]
fn invalid_responses_are_protocol_errors() {
    let srv = raw_server();
    let m = common::run(
        spec(
            &srv.url(),
            vec![scenario("s", iterations(1, 3), request("GET", "/garbage"))],
        ),
        1,
    );
    assert_eq!(
        m.aggregate(|k| k.error == Some(loadgate::metrics::ErrorKind::Protocol))
            .requests,
        3
    );
}

#[test]
fn a_connection_closed_before_the_response_is_a_reset() {
    let srv = raw_server();
    let m = common::run(
        spec(
            &srv.url(),
            vec![scenario("s", iterations(1, 3), request("GET", "/reset"))],
        ),
        1,
    );
    assert_eq!(
        m.aggregate(|k| k.error == Some(loadgate::metrics::ErrorKind::Reset))
            .requests,
        3
    );
}

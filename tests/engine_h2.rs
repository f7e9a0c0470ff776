//! The HTTP/2 path against a small h2 server (the `h2` crate) that counts what it sees:
//!
//! - VUs are multiplexed over a bounded number of connections (h2load's `-c` / `-m`): the
//!   server sees no more connections than the bound, and several streams in flight on each;
//! - a stream reset (`RST_STREAM`) is a typed `reset` error for that request only: the
//!   connection stays, the other streams on it succeed, nothing is counted twice;
//! - a GOAWAY with an error code mid-run fails the streams it cut as typed `reset` errors (a
//!   POST is never replayed), and the run goes on over a new connection;
//! - large bodies both ways (flow-control windows) arrive whole;
//! - trailers after a body are read and ignored.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{request, scenario, spec, TestServer};
use h2::Reason;
use loadgate::grammar::response::ResponseCheck;
use loadgate::grammar::template::Template;
use loadgate::metrics::{ErrorKind, RunMetrics};
use loadgate::spec::{ExecutorSpec, H2Options, HttpVersion, RequestSpec, RunSpec};

/// What the server does with each stream.
#[derive(Clone, Copy)]
enum Mode {
    /// Answer `ok` after a moment (so streams overlap).
    Ok,
    /// Reset every n-th stream (counted over the server's life) with INTERNAL_ERROR.
    ResetEvery(u64),
    /// After n streams on a connection, GOAWAY with INTERNAL_ERROR (an abrupt shutdown).
    GoawayAfter(u64),
    /// Answer with a body of this many bytes (ending in `END`).
    Big(usize),
    /// Read the request body and answer with its length.
    EchoLen,
    /// Answer `ok`, then trailers.
    Trailers,
}

#[derive(Default)]
struct Seen {
    conns: AtomicU64,
    answered: AtomicU64,
    resets: AtomicU64,
    /// Streams accepted (numbers them for `ResetEvery`).
    streams: AtomicU64,
    /// Most streams in flight at once on one connection.
    max_in_flight: AtomicU64,
}

fn h2_server(mode: Mode) -> (TestServer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let srv = TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            s.conns.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::Builder::new()
                    .initial_window_size(16 << 20)
                    .initial_connection_window_size(64 << 20)
                    .handshake::<_, Bytes>(tcp)
                    .await
                else {
                    return;
                };
                // Per connection: every stream in flight, for `max_in_flight`.
                let here = Arc::new(AtomicU64::new(0));
                let mut n = 0u64;
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    n += 1;
                    if let Mode::GoawayAfter(k) = mode {
                        if n > k {
                            conn.abrupt_shutdown(Reason::INTERNAL_ERROR);
                            // Drive the connection to its end (the GOAWAY is written).
                            while conn.accept().await.is_some() {}
                            return;
                        }
                    }
                    let (s, here) = (s.clone(), here.clone());
                    tokio::spawn(async move {
                        let now = here.fetch_add(1, Ordering::SeqCst) + 1;
                        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        let nth = s.streams.fetch_add(1, Ordering::SeqCst);
                        let mut body_len = 0usize;
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            body_len += chunk.len();
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        here.fetch_sub(1, Ordering::SeqCst);
                        let resp = http::Response::builder().status(200).body(()).unwrap();
                        match mode {
                            Mode::ResetEvery(k) if nth % k == k - 1 => {
                                respond.send_reset(Reason::INTERNAL_ERROR);
                                s.resets.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            _ => {}
                        }
                        let Ok(mut out) = respond.send_response(resp, false) else {
                            return;
                        };
                        let sent = match mode {
                            Mode::Big(len) => {
                                let mut b = vec![b'x'; len - 3];
                                b.extend_from_slice(b"END");
                                out.send_data(Bytes::from(b), true)
                            }
                            Mode::EchoLen => out.send_data(Bytes::from(body_len.to_string()), true),
                            Mode::Trailers => out
                                .send_data(Bytes::from_static(b"ok"), false)
                                .and_then(|_| {
                                    let mut t = http::HeaderMap::new();
                                    t.insert("grpc-status", "0".parse().unwrap());
                                    out.send_trailers(t)
                                }),
                            _ => out.send_data(Bytes::from_static(b"ok"), true),
                        };
                        if sent.is_ok() {
                            s.answered.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
        }
    });
    (srv, seen)
}

fn iterations(vus: u32, n: u64) -> ExecutorSpec {
    ExecutorSpec::SharedIterations {
        vus,
        iterations: n,
        max_duration: Duration::from_secs(30),
    }
}

fn with_check(mut r: RequestSpec, check: &str) -> RequestSpec {
    r.checks.push(ResponseCheck::parse(check).unwrap());
    r
}

fn h2_spec(url: &str, exec: ExecutorSpec, req: RequestSpec) -> RunSpec {
    let mut s = spec(url, vec![scenario("s", exec, req)]);
    s.http.version = HttpVersion::Http2;
    s.http.timeout = Duration::from_secs(10);
    s
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
fn vus_share_a_bounded_number_of_connections() {
    // Default: 8 VUs (streams) per connection: 32 VUs on one thread open 4 connections.
    let (srv, seen) = h2_server(Mode::Ok);
    let req = with_check(request("GET", "/"), "status == 200");
    let m = common::run(h2_spec(&srv.url(), iterations(32, 3200), req.clone()), 1);
    let st = m.aggregate(|_| true);
    assert_eq!((st.requests, st.failed), (3200, 0), "{:?}", errors(&m));
    assert_eq!(seen.answered.load(Ordering::SeqCst), 3200);
    let conns = seen.conns.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&conns),
        "32 VUs / 8 streams: {conns} connections"
    );
    let most = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "streams multiplexed, at most 8 per connection: {most}"
    );
    drop(srv);

    // An explicit bound (h2load's -c 3 -m 8) over 2 worker threads: 64 VUs, 3 connections.
    let (srv, seen) = h2_server(Mode::Ok);
    let mut s = h2_spec(&srv.url(), iterations(64, 3200), req);
    s.http.h2 = H2Options {
        connections: Some(3),
        streams: 8,
    };
    let m = common::run(s, 2);
    let st = m.aggregate(|_| true);
    assert_eq!((st.requests, st.failed), (3200, 0), "{:?}", errors(&m));
    let conns = seen.conns.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&conns),
        "bounded at 3: {conns} connections"
    );
}

#[test]
fn a_stream_reset_is_a_typed_error_for_that_request_only() {
    let (srv, seen) = h2_server(Mode::ResetEvery(5));
    let req = with_check(request("POST", "/"), "status == 200");
    let m = common::run(h2_spec(&srv.url(), iterations(4, 500), req), 1);
    let st = m.aggregate(|_| true);
    let resets = seen.resets.load(Ordering::SeqCst);
    assert_eq!(st.requests, 500, "each user request counted once");
    assert_eq!(resets, 100);
    assert_eq!(errors(&m), vec![(Some(ErrorKind::Reset), resets)]);
    assert_eq!(seen.answered.load(Ordering::SeqCst), 500 - resets);
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        1,
        "a stream reset leaves the shared connection to the other streams"
    );
}

#[test]
fn a_goaway_with_an_error_mid_run_fails_the_cut_streams_as_resets() {
    // Every connection is cut after 50 streams: the streams in flight then fail (POSTs are
    // not replayed), the run goes on over new connections.
    let (srv, seen) = h2_server(Mode::GoawayAfter(50));
    let req = with_check(request("POST", "/"), "status == 200");
    let m = common::run(h2_spec(&srv.url(), iterations(4, 600), req), 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 600, "each user request counted once");
    let errs = errors(&m);
    assert!(st.failed > 0, "the cut streams fail");
    assert!(
        errs.iter().all(|(k, _)| *k == Some(ErrorKind::Reset)),
        "typed as resets: {errs:?}"
    );
    assert_eq!(
        st.requests - st.failed,
        seen.answered.load(Ordering::SeqCst),
        "every success is one the server answered"
    );
    assert!(
        seen.conns.load(Ordering::SeqCst) >= 600 / 50 / 2,
        "new connections after each GOAWAY"
    );
}

#[test]
fn large_bodies_cross_whole_both_ways() {
    // 4 MiB responses (past the default 64 KiB windows many times over).
    let (srv, _seen) = h2_server(Mode::Big(4 << 20));
    let mut s = h2_spec(
        &srv.url(),
        iterations(4, 40),
        with_check(request("GET", "/"), "status == 200"),
    );
    s.http.max_body = 8 << 20;
    s.scenarios[0].requests[0]
        .checks
        .push(ResponseCheck::parse("body contains \"END\"").unwrap());
    let m = common::run(s, 1);
    let st = m.aggregate(|_| true);
    assert_eq!((st.requests, st.failed), (40, 0), "{:?}", errors(&m));
    assert_eq!((st.checks_passed, st.checks_failed), (80, 0));

    // 3 MiB request bodies, shared (not copied) between sends.
    let (srv, _seen) = h2_server(Mode::EchoLen);
    let mut req = with_check(request("POST", "/"), "body contains \"3145728\"");
    req.body = Some(Template::literal(&"y".repeat(3 << 20)));
    let m = common::run(h2_spec(&srv.url(), iterations(4, 40), req), 1);
    let st = m.aggregate(|_| true);
    assert_eq!((st.requests, st.failed), (40, 0), "{:?}", errors(&m));
    assert_eq!((st.checks_passed, st.checks_failed), (40, 0));
}

#[test]
fn trailers_are_ignored() {
    let (srv, _seen) = h2_server(Mode::Trailers);
    let req = with_check(request("GET", "/"), "body contains \"ok\"");
    let m = common::run(h2_spec(&srv.url(), iterations(4, 200), req), 1);
    let st = m.aggregate(|_| true);
    assert_eq!((st.requests, st.failed), (200, 0), "{:?}", errors(&m));
    assert_eq!((st.checks_passed, st.checks_failed), (200, 0));
}

#[test]
fn requests_are_built_once_in_h2_form() {
    use loadgate::engine::request::{IterVars, RequestSource, Scratch};
    use rand::SeedableRng;
    let mut req = request("POST", "/notes");
    req.headers
        .push(("x-a".into(), Template::parse("1").unwrap()));
    req.body = Some(Template::literal("hello"));
    let s = h2_spec("http://127.0.0.1:9/api", iterations(1, 1), req);
    let target = loadgate::engine::resolve_target(&s).unwrap();
    let src = RequestSource::new(&s, &s.scenarios[0], &target).unwrap();
    let mut scratch = Scratch::default();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let mut render = |scratch: &mut Scratch| {
        assert!(src.render_h2(0, IterVars::default(), &mut rng, scratch));
        src.h2(0, scratch).unwrap().clone()
    };
    let (a, b) = (render(&mut scratch), render(&mut scratch));
    assert_eq!(a.uri, "http://127.0.0.1:9/api/notes");
    assert_eq!(a.method, http::Method::POST);
    assert_eq!(&a.body[..], b"hello");
    assert_eq!(
        a.body.as_ptr(),
        b.body.as_ptr(),
        "the body is shared, not copied"
    );
    assert_eq!(a.headers["x-a"], "1");
    assert!(a.headers.contains_key("user-agent"));
    assert!(
        !a.headers.contains_key("host") && !a.headers.contains_key("content-length"),
        "HTTP/1.1-only headers are left out: {:?}",
        a.headers
    );

    // A templated request is rendered straight into the h2 form.
    let mut req = request("GET", "/n/{{seq}}");
    req.headers
        .push(("x-seq".into(), Template::parse("s{{seq}}").unwrap()));
    let s = h2_spec("http://127.0.0.1:9", iterations(1, 1), req);
    let target = loadgate::engine::resolve_target(&s).unwrap();
    let src = RequestSource::new(&s, &s.scenarios[0], &target).unwrap();
    let vars = IterVars {
        seq: 7,
        ..IterVars::default()
    };
    assert!(src.render_h2(0, vars, &mut rng, &mut scratch));
    let r = src.h2(0, &scratch).unwrap();
    assert_eq!(r.uri, "http://127.0.0.1:9/n/7");
    assert_eq!(r.headers["x-seq"], "s7");
}

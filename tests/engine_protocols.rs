//! HTTP/2 by prior knowledge (h2c) and TLS (ALPN h2 and http/1.1, self-signed certificate
//! accepted with `insecure`).
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use common::{request, run, scenario, spec, TestServer};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use loadgate::grammar::response::ResponseCheck;
use loadgate::metrics::ErrorKind;
use loadgate::spec::{ExecutorSpec, HttpVersion};

/// Answers with the protocol version the server saw, e.g. `HTTP/2.0`.
fn app() -> Router {
    Router::new().route(
        "/v",
        get(|req: Request| async move { format!("{:?}", req.version()) }),
    )
}

fn h2c_server() -> TestServer {
    TestServer::start(|listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = TowerToHyperService::new(app());
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}

fn tls_server(alpn: &[&[u8]]) -> TestServer {
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
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                let svc = TowerToHyperService::new(app());
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    })
}

fn version_check(v: &str) -> loadgate::spec::RequestSpec {
    let mut r = request("GET", "/v");
    r.checks
        .push(ResponseCheck::parse("status == 200").unwrap());
    r.checks
        .push(ResponseCheck::parse(&format!("body contains \"{v}\"")).unwrap());
    r
}

fn iterations(n: u64) -> ExecutorSpec {
    ExecutorSpec::SharedIterations {
        vus: 3,
        iterations: n,
        max_duration: Duration::from_secs(10),
    }
}

#[test]
fn h2c_with_prior_knowledge() {
    let srv = h2c_server();
    let mut s = spec(
        &srv.url(),
        vec![scenario("h2c", iterations(50), version_check("HTTP/2.0"))],
    );
    s.http.version = HttpVersion::Http2;
    let m = run(s, 2);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 50);
    assert_eq!(st.failed, 0, "{:?}", m.series.keys().collect::<Vec<_>>());
    assert_eq!(st.checks_passed, 100);
}

#[test]
fn tls_negotiates_h2_with_insecure() {
    let srv = tls_server(&[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", srv.addr.port());
    let mut s = spec(
        &url,
        vec![scenario("tls", iterations(30), version_check("HTTP/2.0"))],
    );
    s.http.insecure = true;
    let m = run(s, 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 30);
    assert_eq!(
        st.checks_passed,
        60,
        "{:?}",
        m.series.keys().collect::<Vec<_>>()
    );
}

#[test]
fn tls_http1_through_the_lean_client() {
    let srv = tls_server(&[b"http/1.1"]);
    let url = format!("https://localhost:{}", srv.addr.port());
    let mut s = spec(
        &url,
        vec![scenario("tls", iterations(30), version_check("HTTP/1.1"))],
    );
    s.http.insecure = true;
    let m = run(s, 1);
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests, 30);
    assert_eq!(
        st.checks_passed,
        60,
        "{:?}",
        m.series.keys().collect::<Vec<_>>()
    );
}

#[test]
fn self_signed_certificate_is_rejected_without_insecure() {
    let srv = tls_server(&[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", srv.addr.port());
    let s = spec(
        &url,
        vec![scenario("tls", iterations(3), request("GET", "/v"))],
    );
    let m = run(s, 1);
    assert_eq!(m.aggregate(|k| k.error == Some(ErrorKind::Tls)).requests, 3);
}

#[test]
fn http1_version_keeps_tls_on_http1_even_when_h2_is_offered() {
    let srv = tls_server(&[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", srv.addr.port());
    let mut s = spec(
        &url,
        vec![scenario("tls", iterations(10), version_check("HTTP/1.1"))],
    );
    s.http.insecure = true;
    s.http.version = HttpVersion::Http1;
    let m = run(s, 1);
    assert_eq!(
        m.aggregate(|_| true).checks_passed,
        20,
        "{:?}",
        m.series.keys().collect::<Vec<_>>()
    );
}

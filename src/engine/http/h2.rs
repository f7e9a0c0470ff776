//! HTTP/2 through hyper's `client::conn::http2` (h2c by prior knowledge, or h2 over TLS).
//!
//! Requests arrive in h2 form ([`H2Request`]): method, absolute URI (scheme and authority
//! become the `:scheme` / `:authority` pseudo-headers), a header map without the
//! connection-specific HTTP/1.1 headers, and the body as shared [`Bytes`]. A request without
//! placeholders is built once per request template and each send clones it (the URI, header
//! values and body are reference-counted, so nothing is copied or parsed again); a templated
//! one is rendered straight into that form (see [`crate::engine::request`]). Only a request
//! rendered for HTTP/1.1 that meets a connection whose ALPN picked h2 is converted
//! ([`to_http_request`], once per such connection switch).
//!
//! Connections are shared: the VUs of a worker are multiplexed over a bounded number of
//! connections ([`super::pool`]); a handle ([`H2Conn`]) is a cheap clone of hyper's
//! `SendRequest`. Flow-control windows are opened wide ([`STREAM_WINDOW`],
//! [`CONNECTION_WINDOW`]): the client reads every body to its end at once, so a window only
//! limits throughput (the 64 KiB default stalls a large body on every round trip).
//!
//! Trailers are read and ignored; a body past `max_body` is read to its end and dropped.
//!
//! Errors are typed like HTTP/1.1's ([`hyper_kind`]): a stream reset or a GOAWAY with an
//! error code is `reset`, a protocol violation `protocol`, an I/O error its kind.
//!
//! GOAWAY (RFC 9113 section 6.8): a server retiring a connection (nginx after
//! `keepalive_requests` streams, a graceful shutdown) answers the streams up to its
//! last-stream-id and processes none above it. Those above, and any request sent after the
//! GOAWAY arrived, fail here as [`Stage::Unprocessed`] and the client sends them again on a new
//! connection; the ones at or below it complete as usual. A stream refused with
//! `REFUSED_STREAM` was not processed either (section 8.7). A request the connection never
//! took (its driver had already ended) is [`Stage::NotSent`].
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Capture, Failure, ResponseData, Stage, Stream, Target};
use crate::metrics::ErrorKind;

/// Per-stream receive window: 16 MiB.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// Connection receive window: 64 MiB (several large bodies in flight at once).
pub const CONNECTION_WINDOW: u32 = 64 << 20;

/// A request in HTTP/2 form, built once per template (or rendered per iteration).
#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: Method,
    /// Absolute: its scheme and authority are the pseudo-headers.
    pub uri: Uri,
    /// Without `Host`, `Content-Length`, `Connection`, `Transfer-Encoding`, `Keep-Alive`,
    /// `Upgrade` (HTTP/1.1-only headers).
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl H2Request {
    /// The hyper request to send (clones of reference-counted parts).
    fn to_http(&self) -> http::Request<Full<Bytes>> {
        let mut r = http::Request::new(Full::new(self.body.clone()));
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = http::Version::HTTP_2;
        *r.headers_mut() = self.headers.clone();
        r
    }

    /// The same request as HTTP/1.1 wire bytes (a connection whose ALPN picked http/1.1).
    pub fn write_h1(&self, authority: &str, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            self.uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .as_bytes(),
        );
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty()
            || matches!(self.method, Method::POST | Method::PUT | Method::PATCH)
        {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Whether an HTTP/1.1 header has no place in an HTTP/2 request (RFC 9113 section 8.2.2;
/// `Host` becomes `:authority`, the body's length is the stream's).
pub fn h1_only(name: &[u8]) -> bool {
    [
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
    ]
    .iter()
    .any(|s| name.eq_ignore_ascii_case(s.as_bytes()))
}

/// What to send: HTTP/1.1 wire bytes, or the h2 form.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    H1(&'a [u8]),
    H2(&'a H2Request),
}

/// A handle on one shared HTTP/2 connection (its driver runs as a local task on the worker
/// thread); cloning it is cheap.
#[derive(Clone)]
pub struct H2Conn {
    sender: http2::SendRequest<Full<Bytes>>,
}

/// The HTTP/2 error inside a hyper error, if any.
fn h2_error(e: &hyper::Error) -> Option<&::h2::Error> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<::h2::Error>() {
            return Some(h);
        }
        src = s.source();
    }
    None
}

/// How far a request got that failed with `e` before any part of its response: unprocessed
/// when the server said so (a graceful GOAWAY that did not cover it, `REFUSED_STREAM`).
fn stage_before_response(e: &hyper::Error) -> Stage {
    match h2_error(e) {
        Some(h)
            if h.is_remote()
                && ((h.is_go_away() && h.reason() == Some(::h2::Reason::NO_ERROR))
                    || (h.is_reset() && h.reason() == Some(::h2::Reason::REFUSED_STREAM))) =>
        {
            Stage::Unprocessed
        }
        _ => Stage::NoResponse,
    }
}

/// Classify a hyper error.
pub fn hyper_kind(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_parse() || e.is_parse_status() || e.is_user() {
        return ErrorKind::Protocol;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ErrorKind::from_io(io);
        }
        if let Some(h) = s.downcast_ref::<::h2::Error>() {
            // The peer reset the stream or went away: the request was not answered.
            if h.is_remote() && (h.is_reset() || h.is_go_away()) {
                return ErrorKind::Reset;
            }
        }
        src = s.source();
    }
    if e.is_closed() || e.is_canceled() || e.is_incomplete_message() {
        ErrorKind::Reset
    } else {
        ErrorKind::Protocol
    }
}

impl H2Conn {
    /// HTTP/2 handshake on an established stream.
    pub async fn handshake(stream: Stream) -> Result<H2Conn, ErrorKind> {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(1 << 20)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| hyper_kind(&e))?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(H2Conn { sender })
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Send one request and read the whole response (trailers are read and ignored).
    pub async fn exchange(
        &mut self,
        target: &Target,
        req: Outgoing<'_>,
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), Failure> {
        let request = match req {
            Outgoing::H2(r) => r.to_http(),
            // Rendered by the engine; never fails for a request it built.
            Outgoing::H1(wire) => to_http_request(target, wire)
                .ok_or(Failure::new(ErrorKind::Protocol, Stage::Responded))?,
        };
        if let Err(e) = self.sender.ready().await {
            return Err(Failure::new(hyper_kind(&e), Stage::NotSent));
        }
        let res = match self.sender.try_send_request(request).await {
            Ok(res) => res,
            Err(e) => {
                let stage = if e.message().is_some() {
                    Stage::NotSent
                } else {
                    stage_before_response(e.error())
                };
                return Err(Failure::new(hyper_kind(e.error()), stage));
            }
        };
        let status = res.status().as_u16();
        let (parts, mut body) = res.into_parts();
        if let Some(split) = &resp.split {
            resp.variant = split.side(
                parts
                    .headers
                    .get(split.header.as_str())
                    .map(|v| v.as_bytes()),
            );
        }
        if cap.headers {
            resp.headers = parts.headers;
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::new(hyper_kind(&e), Stage::Responded))?;
            if cap.body {
                if let Some(d) = frame.data_ref() {
                    super::keep_capped(&mut resp.body, d, target.max_body);
                }
            }
        }
        Ok((status, true))
    }
}

/// Convert HTTP/1.1 wire bytes into an `http::Request` for h2 (drops connection-specific
/// headers; `Host` becomes the URI authority). Only for a request rendered for HTTP/1.1 that
/// meets an h2 connection (ALPN's choice changed); the engine renders h2 requests directly.
fn to_http_request(target: &Target, req: &[u8]) -> Option<http::Request<Full<Bytes>>> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut r = httparse::Request::new(&mut headers);
    let n = match r.parse(req).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let uri = format!("{}://{}{}", target.scheme, target.authority, r.path?);
    let mut b = http::Request::builder()
        .method(r.method?)
        .uri(uri)
        .version(http::Version::HTTP_2);
    for h in r.headers.iter() {
        if !h1_only(h.name.as_bytes()) {
            b = b.header(h.name, h.value);
        }
    }
    b.body(Full::new(Bytes::copy_from_slice(&req[n..]))).ok()
}

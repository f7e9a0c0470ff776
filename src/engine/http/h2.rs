//! HTTP/2 through hyper's `client::conn::http2` (h2c by prior knowledge, or h2 over TLS).
//! One connection per VU, one stream at a time. Requests arrive as HTTP/1.1 wire bytes and are
//! converted here (allocation is accepted on this path).
//!
//! GOAWAY (RFC 9113 section 6.8): a server retiring a connection (nginx after
//! `keepalive_requests` streams, a graceful shutdown) answers the streams up to its
//! last-stream-id and processes none above it. Those above, and any request sent after the
//! GOAWAY arrived, fail here as [`Stage::Unprocessed`] and the client sends them again on a new
//! connection; the ones at or below it complete as usual. A stream refused with
//! `REFUSED_STREAM` was not processed either (section 8.7). A request the connection never
//! took (its driver had already ended) is [`Stage::NotSent`].
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Capture, Failure, ResponseData, Stage, Stream, Target};
use crate::metrics::ErrorKind;

/// One HTTP/2 connection (its driver runs as a local task on the worker thread).
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
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
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

    /// Send one request (HTTP/1.1 wire bytes) and read the whole response.
    pub async fn exchange(
        &mut self,
        target: &Target,
        req: &[u8],
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), Failure> {
        // Rendered by the engine; never fails for a request it built.
        let request = to_http_request(target, req)
            .ok_or(Failure::new(ErrorKind::Protocol, Stage::Responded))?;
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
/// headers; `Host` becomes the URI authority).
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
        let skip = [
            "host",
            "content-length",
            "connection",
            "transfer-encoding",
            "keep-alive",
            "upgrade",
        ]
        .iter()
        .any(|s| h.name.eq_ignore_ascii_case(s));
        if !skip {
            b = b.header(h.name, h.value);
        }
    }
    b.body(Full::new(Bytes::copy_from_slice(&req[n..]))).ok()
}

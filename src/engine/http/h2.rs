//! HTTP/2 through hyper's `client::conn::http2` (h2c by prior knowledge, or h2 over TLS).
//! One connection per VU, one stream at a time. Requests arrive as HTTP/1.1 wire bytes and are
//! converted here (allocation is accepted on this path).
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Capture, ResponseData, Stream, Target};
use crate::metrics::ErrorKind;

/// One HTTP/2 connection (its driver runs as a local task on the worker thread).
pub struct H2Conn {
    sender: http2::SendRequest<Full<Bytes>>,
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
    ) -> Result<(u16, bool), ErrorKind> {
        let request = to_http_request(target, req).ok_or(ErrorKind::Protocol)?;
        self.sender.ready().await.map_err(|e| hyper_kind(&e))?;
        let res = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| hyper_kind(&e))?;
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
            let frame = frame.map_err(|e| hyper_kind(&e))?;
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

//! HTTP/2 on the `h2` crate directly (h2c by prior knowledge, or h2 over TLS).
//!
//! Why `h2` and not hyper's `client::conn::http2` (which wraps the same crate): hyper hands
//! each request from the caller to the connection task over a channel, answers it through a
//! oneshot and spawns a task per response, so one exchange woke three tasks and allocated for
//! each hop. `h2`'s `SendRequest` opens the stream in the shared connection state directly
//! from the VU's task, and the VU awaits the response itself: one wake-up per response, as
//! h2load's event loop does. This path matched h2load only once that hop was gone (issue 13,
//! bench/bench.sh).
//!
//! Requests arrive in h2 form ([`H2Request`]): method, absolute URI (scheme and authority
//! become the `:scheme` / `:authority` pseudo-headers), a header map without the
//! connection-specific HTTP/1.1 headers, and the body as shared [`Bytes`]. A request without
//! placeholders is built once per request template and each send clones it (the URI, header
//! values and body are reference-counted, so nothing is copied or parsed again); a templated
//! one is rendered straight into that form (see [`crate::engine::request`]). Only a request
//! rendered for HTTP/1.1 that meets a connection whose ALPN picked h2 is converted
//! ([`to_h2_request`], once per such connection switch).
//!
//! Connections are shared: the VUs of a worker are multiplexed over a bounded number of
//! connections ([`super::pool`]); a handle ([`H2Conn`]) is a cheap clone of `h2`'s
//! `SendRequest`. Flow-control windows are opened wide ([`STREAM_WINDOW`],
//! [`CONNECTION_WINDOW`]) and every received chunk's capacity is released at once: the
//! client reads every body to its end, so a window only limits throughput (the 64 KiB
//! default stalls a large body on every round trip).
//!
//! Trailers are ignored (the stream ends with them); a body past `max_body` is read to its
//! end and dropped.
//!
//! Errors are typed like HTTP/1.1's ([`h2_kind`]): a stream reset or a GOAWAY with an error
//! code from the peer is `reset`, an I/O error its kind, anything else `protocol`.
//!
//! GOAWAY (RFC 9113 section 6.8): a server retiring a connection (nginx after
//! `keepalive_requests` streams, a graceful shutdown) answers the streams up to its
//! last-stream-id and processes none above it. Those above fail here as
//! [`Stage::Unprocessed`] and the client sends them again on a new connection; the ones at or
//! below it complete as usual. A stream refused with `REFUSED_STREAM` was not processed either
//! (section 8.7). A request the connection never took (it had already ended or been told to
//! go away) is [`Stage::NotSent`].
use std::cell::Cell;
use std::rc::Rc;

use ::h2::client::SendRequest;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

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
    /// The request head to open a stream with (clones of reference-counted parts; an empty
    /// header map clones without allocating).
    fn head(&self) -> http::Request<()> {
        let mut r = http::Request::new(());
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
    sender: SendRequest<Bytes>,
    /// Set by the driver task when the connection has ended (closed, failed, or drained
    /// after a GOAWAY).
    closed: Rc<Cell<bool>>,
}

/// How far a request got that failed with `e` before any part of its response: unprocessed
/// when the server said so (a graceful GOAWAY that did not cover it, `REFUSED_STREAM`).
fn stage_before_response(e: &::h2::Error) -> Stage {
    if e.is_remote()
        && ((e.is_go_away() && e.reason() == Some(::h2::Reason::NO_ERROR))
            || (e.is_reset() && e.reason() == Some(::h2::Reason::REFUSED_STREAM)))
    {
        Stage::Unprocessed
    } else {
        Stage::NoResponse
    }
}

/// Classify an HTTP/2 error.
pub fn h2_kind(e: &::h2::Error) -> ErrorKind {
    if let Some(io) = e.get_io() {
        return ErrorKind::from_io(io);
    }
    // The peer reset the stream or went away: the request was not answered.
    if e.is_remote() && (e.is_reset() || e.is_go_away()) {
        return ErrorKind::Reset;
    }
    ErrorKind::Protocol
}

impl H2Conn {
    /// HTTP/2 handshake on an established stream.
    pub async fn handshake(stream: Stream) -> Result<H2Conn, ErrorKind> {
        let (sender, conn) = ::h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| h2_kind(&e))?;
        let closed = Rc::new(Cell::new(false));
        let done = closed.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = conn.await {
                // Each stream on it fails with its own typed error; this is the why.
                tracing::debug!(error = %e, "an HTTP/2 connection ended with an error");
            }
            done.set(true);
        });
        Ok(H2Conn { sender, closed })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Send one request and read the whole response (trailers are ignored).
    pub async fn exchange(
        &mut self,
        target: &Target,
        req: Outgoing<'_>,
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), Failure> {
        let converted;
        let (head, body) = match req {
            Outgoing::H2(r) => (r.head(), &r.body),
            // Rendered by the engine; never fails for a request it built.
            Outgoing::H1(wire) => {
                converted = to_h2_request(target, wire)
                    .ok_or(Failure::new(ErrorKind::Protocol, Stage::Responded))?;
                (converted.head(), &converted.body)
            }
        };
        // Room for one more stream (the server's SETTINGS_MAX_CONCURRENT_STREAMS), or the
        // connection's error when it has ended.
        if let Err(e) = std::future::poll_fn(|cx| self.sender.poll_ready(cx)).await {
            return Err(Failure::new(h2_kind(&e), Stage::NotSent));
        }
        let (response, mut send) = match self.sender.send_request(head, body.is_empty()) {
            Ok(pair) => pair,
            Err(e) => return Err(Failure::new(h2_kind(&e), Stage::NotSent)),
        };
        if !body.is_empty() {
            // Buffered by h2 and written as the peer's window allows (the body is a shared
            // `Bytes`, already in memory: nothing more is held than the request itself).
            if let Err(e) = send.send_data(body.clone(), true) {
                return Err(Failure::new(h2_kind(&e), stage_before_response(&e)));
            }
        }
        let res = response
            .await
            .map_err(|e| Failure::new(h2_kind(&e), stage_before_response(&e)))?;
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
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| Failure::new(h2_kind(&e), Stage::Responded))?;
            // Hand the window back at once: the chunk is consumed here.
            let _ = body.flow_control().release_capacity(chunk.len());
            if cap.body {
                super::keep_capped(&mut resp.body, &chunk, target.max_body);
            }
        }
        Ok((status, true))
    }
}

/// Convert HTTP/1.1 wire bytes into the h2 form (drops connection-specific headers; `Host`
/// becomes the URI authority). Only for a request rendered for HTTP/1.1 that meets an h2
/// connection (ALPN's choice changed); the engine renders h2 requests directly.
fn to_h2_request(target: &Target, req: &[u8]) -> Option<H2Request> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut r = httparse::Request::new(&mut headers);
    let n = match r.parse(req).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let uri = format!("{}://{}{}", target.scheme, target.authority, r.path?)
        .parse()
        .ok()?;
    let mut map = HeaderMap::new();
    for h in r.headers.iter() {
        if !h1_only(h.name.as_bytes()) {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                http::HeaderValue::from_bytes(h.value).ok()?,
            );
        }
    }
    Some(H2Request {
        method: Method::from_bytes(r.method?.as_bytes()).ok()?,
        uri,
        headers: map,
        body: Bytes::copy_from_slice(&req[n..]),
    })
}

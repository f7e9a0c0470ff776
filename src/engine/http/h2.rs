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
//! Writes are batched ([`Corked`]): a connection woken by a VU's new request gives the worker
//! one event-loop turn before it writes, so one write carries the requests of every VU
//! answered meanwhile (as h2load's event loop does), not one write per stream. On loopback
//! a write costs the sender the receiver's TCP work too; the kernel, not the h2 code, was
//! most of an HTTP/2 exchange's CPU (issue 13's profile).
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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ::h2::client::SendRequest;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// An HTTP/2 connection's socket, whose first write of each batch waits for one turn of the
/// worker's event loop.
///
/// Why: `h2` flushes at the end of every poll of the connection, and the connection is
/// polled as soon as one VU opens a stream. Writing then sent each VU's request in a packet
/// of its own (0.89 writes per request against nginx, where h2load makes 0.70), and the
/// server answered in as many packets. With the wait, the connection's driver yields to
/// the runtime (`yield_now`: it runs again after the other ready tasks and an I/O poll, as
/// h2load writes on its event loop's next turn), so every VU answered in the meantime adds
/// its request to the same write. The wait is an event-loop turn, never a timer.
///
/// One turn was not enough: a turn lets the VUs already woken add their requests, but
/// responses arrive a few at a time, so most writes still carried one request (0.93 writes
/// per request). A batch therefore waits another turn while the last one read a response
/// (its VU has yet to run) or added a request, up to [`MAX_TURNS`]; the first turn that
/// does neither ends it (0.62 writes per request). `turns` counts the batch's waits and is
/// reset when its flush completes, so a batch waits however many `poll_write` calls it
/// takes. Nothing waits while the connection carries a single stream (no other VU can join
/// the write: with h2load's `-m 1` the wait was pure latency), nor before the driver runs
/// (`Batch::armed`: the handshake writes straight through).
struct Corked {
    io: Stream,
    /// Turns the current batch has waited (0: no batch is held).
    turns: u8,
    /// [`Batch::opened`] when the batch last waited.
    mark: u64,
    batch: Rc<Batch>,
}

/// Shared by a connection's socket and its driver task.
#[derive(Default)]
struct Batch {
    armed: Cell<bool>,
    /// A write was put off: the driver yields, then polls the connection again.
    want_turn: Cell<bool>,
    /// Streams open on the connection (counted by [`H2Conn::exchange`]).
    in_flight: Cell<u32>,
    /// Streams ever opened on it: a turn that opened none ends the batch.
    opened: Cell<u64>,
    /// Bytes were read since the batch last waited: responses whose VUs have not run yet.
    read: Cell<bool>,
}

/// Most event-loop turns a batch waits (each after a turn that read a response or added a
/// request; 2 to 8 turns measured alike, 1 cost 4% more CPU per request).
const MAX_TURNS: u8 = 8;

/// Counts one stream in [`Batch::in_flight`] while it lives (dropped with the exchange,
/// whether it completed, failed or timed out).
struct InFlight<'a>(&'a Batch);

impl<'a> InFlight<'a> {
    fn new(b: &'a Batch) -> InFlight<'a> {
        b.in_flight.set(b.in_flight.get() + 1);
        b.opened.set(b.opened.get() + 1);
        InFlight(b)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

impl Corked {
    /// Put a batch's write off by a turn: its first write, and again while each turn added
    /// a request to it (up to [`MAX_TURNS`]); the driver gives the turn back.
    fn hold(&mut self) -> bool {
        if !self.batch.armed.get() || self.batch.in_flight.get() < 2 {
            return false;
        }
        let opened = self.batch.opened.get();
        // Since the last wait: a response read (its VU has not run yet) or a request added.
        let moved = self.batch.read.replace(false) || opened != self.mark;
        if self.turns == 0 || (moved && self.turns < MAX_TURNS) {
            self.turns += 1;
            self.mark = opened;
            self.batch.want_turn.set(true);
            return true;
        }
        false
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            me.batch.read.set(true);
        }
        r
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.hold() {
            return Poll::Pending;
        }
        Pin::new(&mut me.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.hold() {
            return Poll::Pending;
        }
        Pin::new(&mut me.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.io).poll_flush(cx);
        if r.is_ready() {
            me.turns = 0;
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A handle on one shared HTTP/2 connection (its driver runs as a local task on the worker
/// thread); cloning it is cheap.
#[derive(Clone)]
pub struct H2Conn {
    sender: SendRequest<Bytes>,
    batch: Rc<Batch>,
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
        let batch = Rc::new(Batch::default());
        let (sender, conn) = ::h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(Corked {
                io: stream,
                turns: 0,
                mark: 0,
                batch: batch.clone(),
            })
            .await
            .map_err(|e| h2_kind(&e))?;
        let closed = Rc::new(Cell::new(false));
        let done = closed.clone();
        let driver = batch.clone();
        tokio::task::spawn_local(async move {
            let batch = driver;
            batch.armed.set(true);
            let mut conn = std::pin::pin!(conn);
            let end = loop {
                // Poll the connection; a write it put off ([`Corked`]) ends the poll early
                // and the driver gives the worker one turn before polling again.
                let step = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(Some(r)),
                    Poll::Pending if batch.want_turn.replace(false) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                })
                .await;
                match step {
                    Some(r) => break r,
                    None => tokio::task::yield_now().await,
                }
            };
            if let Err(e) = end {
                // Each stream on it fails with its own typed error; this is the why.
                tracing::debug!(error = %e, "an HTTP/2 connection ended with an error");
            }
            done.set(true);
        });
        Ok(H2Conn {
            sender,
            batch,
            closed,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Open a stream for `r` (after `poll_ready`), its body buffered by h2 and written as the
    /// peer's window allows (a shared `Bytes`: nothing more is held than the request).
    fn open(
        sender: &mut SendRequest<Bytes>,
        r: &H2Request,
    ) -> Result<::h2::client::ResponseFuture, Failure> {
        let (response, mut send) = sender
            .send_request(r.head(), r.body.is_empty())
            .map_err(|e| Failure::new(h2_kind(&e), Stage::NotSent))?;
        if !r.body.is_empty() {
            send.send_data(r.body.clone(), true)
                .map_err(|e| Failure::new(h2_kind(&e), stage_before_response(&e)))?;
        }
        Ok(response)
    }

    /// Send one request and read the whole response (trailers are ignored).
    pub async fn exchange(
        &mut self,
        target: &Target,
        req: Outgoing<'_>,
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), Failure> {
        // Room for one more stream (the server's SETTINGS_MAX_CONCURRENT_STREAMS), or the
        // connection's error when it has ended.
        if let Err(e) = std::future::poll_fn(|cx| self.sender.poll_ready(cx)).await {
            return Err(Failure::new(h2_kind(&e), Stage::NotSent));
        }
        let _open = InFlight::new(&self.batch);
        // Opened without an await in between: the request's head and a converted request
        // are not kept in this future's state (it is moved on every call: smaller is
        // cheaper per request).
        let response = match req {
            Outgoing::H2(r) => Self::open(&mut self.sender, r)?,
            // Rendered by the engine; never fails for a request it built.
            Outgoing::H1(wire) => Self::open(
                &mut self.sender,
                &to_h2_request(target, wire)
                    .ok_or(Failure::new(ErrorKind::Protocol, Stage::Responded))?,
            )?,
        };
        let res = response
            .await
            .map_err(|e| Failure::new(h2_kind(&e), stage_before_response(&e)))?;
        let status = res.status().as_u16();
        let mut body = {
            let (parts, body) = res.into_parts();
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
            body
        };
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| Failure::new(h2_kind(&e), Stage::Responded))?;
            // Hand the window back at once: the chunk is consumed here.
            if !chunk.is_empty() {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A loopback TCP pair: the client end wrapped as a connection's socket.
    async fn corked(batch: &Rc<Batch>) -> (Corked, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (s, _) = l.accept().await.unwrap();
        let io = Corked {
            io: Stream::Plain(c),
            turns: 0,
            mark: 0,
            batch: batch.clone(),
        };
        (io, s)
    }

    #[tokio::test]
    async fn a_batch_waits_one_turn_only_with_other_streams_in_flight() {
        let batch = Rc::new(Batch::default());
        let (mut io, _server) = corked(&batch).await;
        let mut cx = Context::from_waker(Waker::noop());
        let mut write = |io: &mut Corked| Pin::new(io).poll_write(&mut cx, b"x").is_pending();
        // Before the driver runs (the handshake) and with one stream: straight through.
        assert!(!write(&mut io));
        batch.armed.set(true);
        batch.in_flight.set(1);
        assert!(!write(&mut io), "a lone stream never waits");
        // Two streams: the batch's first write waits (and asks the driver for a turn), the
        // next ones of the same batch go through, and a completed flush starts a new batch.
        batch.in_flight.set(2);
        assert!(write(&mut io));
        assert!(batch.want_turn.get());
        // A turn that opened a stream: another turn, up to MAX_TURNS waits in all.
        for _ in 1..MAX_TURNS {
            batch.opened.set(batch.opened.get() + 1);
            assert!(write(&mut io));
        }
        batch.opened.set(batch.opened.get() + 1);
        assert!(!write(&mut io), "MAX_TURNS reached");
        assert!(!write(&mut io) && !write(&mut io));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert!(write(&mut io), "a new batch waits again");
        assert!(!write(&mut io), "a turn that opened nothing ends the batch");
    }
}

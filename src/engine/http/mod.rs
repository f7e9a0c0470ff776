//! The engine's HTTP clients. One [`Client`] per VU owns at most one HTTP/1.1 connection;
//! HTTP/2 connections are shared by a worker's VUs ([`pool`]).
//!
//! - HTTP/1.1 (plain, or over TLS when ALPN picks http/1.1) goes through the lean client in
//!   [`h1`]: the request is written as pre-built wire bytes, the response head is parsed with
//!   httparse, Content-Length and chunked bodies are read into a reused buffer and discarded
//!   unless a check needs them.
//! - HTTP/2 (h2c by prior knowledge on `http://` with `version: http2`, or ALPN h2 on
//!   `https://`) goes through the `h2` crate in [`h2`] (no hyper dispatch task in between).
//!
//! Requests are rendered in the form of the protocol the VU's connection speaks (see
//! [`crate::engine::request`]): HTTP/1.1 wire bytes, or an [`H2Request`] (pseudo-headers,
//! header map and shared body prepared once per template). The lean HTTP/1.1 path allocates
//! nothing per request; the h2 path only what the `h2` crate's request head needs.
//!
//! Hostile targets cost time, never memory: a body is kept only up to `defaults.max_body` (and
//! only when a check reads it), response heads are bounded, interim 1xx responses are counted;
//! a peer that stalls is cut off by the request timeout.
//!
//! Timing: the per-request timeout (`http.timeout`) runs from the actual send (first byte
//! written) to the last byte of the response; connecting is bounded by the same timeout
//! separately. Failures are typed [`ErrorKind`]s.
//!
//! Connection lifecycle: a connection the server ends in the ordinary way is never a failed
//! request: `Connection: close`, an HTTP/1.0 response without keep-alive, a TLS close_notify,
//! a FIN on an idle kept-alive connection, an HTTP/2 GOAWAY (see [`h1`] and [`h2`]). A user
//! request is one [`Outcome`] however many attempts it took; an attempt is repeated only when
//! that is safe, as Go's net/http decides ([`Stage`]):
//! - nothing of it reached a reused connection (no byte written; an h2 request the connection
//!   never took): always;
//! - the server said it did not process it (an h2 stream above a GOAWAY's last-stream-id, or
//!   refused with `REFUSED_STREAM`): always, on a new connection;
//! - it was sent on a reused connection that then ended before any byte of a response: only
//!   when it is replayable (GET, HEAD, OPTIONS, TRACE, or an `Idempotency-Key` header);
//! - never once a byte of the response arrived, nor after a timeout, nor on a fresh
//!   connection for the two cases above that need a reused one (the server really lost it).
//!
//! At most [`MAX_ATTEMPTS`] attempts; latency runs from the first.
pub mod h1;
pub mod h2;
pub mod pool;
pub mod tls;

pub use h2::{H2Request, Outgoing};
use pool::{Found, Slot};

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderMap;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::grammar::body::{Body, JsonCache};
use crate::metrics::ErrorKind;
use crate::spec::{HeaderSplit, HttpVersion, Variant};

/// Where requests go, resolved once before the run.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host name or address as written (SNI and `Host`).
    pub host: String,
    /// `host[:port]` as sent in the `Host` header / `:authority`.
    pub authority: String,
    /// Resolved addresses, tried in order.
    pub addrs: Vec<SocketAddr>,
    /// Path prefix of the target URL without a trailing slash (`""` or `/api`).
    pub base_path: String,
    pub version: HttpVersion,
    pub timeout: Duration,
    /// Most body bytes kept for checks ([`ResponseData::body`]); the rest is read and dropped.
    pub max_body: usize,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub server_name: Option<ServerName<'static>>,
}

/// Which parts of a response the checks read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capture {
    pub headers: bool,
    pub body: bool,
}

/// The captured parts of the last response (reused between requests).
#[derive(Debug, Default)]
pub struct ResponseData {
    pub headers: HeaderMap,
    /// The body's first `Target::max_body` bytes.
    pub body: Vec<u8>,
    /// A canary split's header: each response is tagged with its side in `variant` (found
    /// while the head is parsed; nothing is allocated).
    pub split: Option<Arc<HeaderSplit>>,
    /// The side of the last response (`Variant::None` without a split).
    pub variant: Variant,
    /// The body's JSON document, parsed once for all the checks and extractions that read it
    /// (cleared with the body before every attempt).
    pub json: JsonCache,
}

impl ResponseData {
    /// The kept body, as the checks and extractions read it.
    pub fn body(&self) -> Body<'_> {
        Body::new(&self.body, &self.json)
    }
}

/// Append `data` to a kept body, up to `max` bytes in all: a body past the cap is still read
/// to its end (and so timed), but never held, so a hostile 1 GiB body costs no memory.
pub(crate) fn keep_capped(body: &mut Vec<u8>, data: &[u8], max: usize) {
    let room = max.saturating_sub(body.len());
    body.extend_from_slice(&data[..data.len().min(room)]);
}

/// What the client must know about a request beyond its wire bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// A HEAD request: the response has no body.
    pub head: bool,
    /// Safe to send again after a reused connection ended before any response byte: the
    /// method is GET, HEAD, OPTIONS or TRACE, or the request has an `Idempotency-Key` header
    /// (Go's `Request.isReplayable`).
    pub replayable: bool,
}

impl RequestMeta {
    /// The meta of a request with `method` and these header names.
    pub fn new<'a>(method: &str, mut header_names: impl Iterator<Item = &'a [u8]>) -> RequestMeta {
        let safe = ["GET", "HEAD", "OPTIONS", "TRACE"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method));
        let keyed = header_names.any(|n| {
            n.eq_ignore_ascii_case(b"idempotency-key")
                || n.eq_ignore_ascii_case(b"x-idempotency-key")
        });
        RequestMeta {
            head: method.eq_ignore_ascii_case("HEAD"),
            replayable: safe || keyed,
        }
    }
}

/// How far a failed attempt got; decides whether it may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Nothing of the request reached the connection (no byte written, or an h2 connection
    /// that never took it).
    NotSent,
    /// The server said it did not process it (h2: above a GOAWAY's last-stream-id, or
    /// `REFUSED_STREAM`).
    Unprocessed,
    /// Sent; the connection ended before any byte of a response.
    NoResponse,
    /// Part of a response arrived: never sent again.
    Responded,
}

/// A failed attempt: its error kind and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub stage: Stage,
}

impl Failure {
    pub fn new(kind: ErrorKind, stage: Stage) -> Failure {
        Failure { kind, stage }
    }

    /// Whether the request may be sent again on a new connection.
    pub fn retryable(&self, reused: bool, replayable: bool) -> bool {
        match self.stage {
            Stage::NotSent => reused,
            Stage::Unprocessed => true,
            Stage::NoResponse => reused && replayable,
            Stage::Responded => false,
        }
    }
}

/// Most attempts for one user request (an h2 server going away twice in a row still
/// leaves one).
pub const MAX_ATTEMPTS: u32 = 3;

/// What happened to one request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// HTTP status, 0 when no response was received.
    pub status: u16,
    /// Transport failure, if any (status classes are added by the caller).
    pub error: Option<ErrorKind>,
    /// When the first byte of the (last attempt of the) request was written.
    pub sent_at: Option<Instant>,
    /// A new connection was turned away by a target that is up: its connect timed out, or it
    /// was reset or closed before any byte of a response (a target at its connection limit:
    /// nginx past its `worker_connections` accepts and closes, a full listen backlog drops the
    /// SYN). Not set for a target that is down or gone (a refused or unreachable connect), nor
    /// for a request timeout on an accepted connection (a slow target). The open model stops
    /// growing its pool on it ([`crate::engine::executor::open`]).
    pub turned_away: bool,
}

/// A TCP or TLS stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

enum Conn {
    H1(h1::H1Conn),
    H2(h2::H2Conn),
}

impl Conn {
    /// Whether the server ended this connection while it was idle (it carries no request).
    fn closed_while_idle(&mut self) -> bool {
        match self {
            Conn::H1(c) => c.closed_while_idle(),
            Conn::H2(c) => c.is_closed(),
        }
    }
}

/// One VU's client: owns at most one HTTP/1.1 connection, or a handle on its slot's shared
/// HTTP/2 connection ([`pool`]); reconnects when it is closed.
///
/// The request timeout uses one lazily moved timer per VU instead of a timer per request:
/// the timer is only re-armed when it fires, and a firing timer whose request is not yet
/// overdue is pushed to that request's deadline. So a request normally costs no timer
/// registration at all.
pub struct Client {
    target: Arc<Target>,
    conn: Option<Conn>,
    /// The VU's place in the worker's HTTP/2 pool (None: the target never speaks h2).
    slot: Option<Rc<Slot>>,
    /// The slot generation of `conn` when it is the shared connection.
    generation: u64,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// A request rendered in h2 form, written as HTTP/1.1 for a connection whose ALPN picked
    /// http/1.1 (reused buffer).
    convert: Vec<u8>,
}

/// Drive `fut` until it completes or `deadline` passes, using the VU's lazy `timer`.
async fn with_deadline<F: std::future::Future>(
    timer: &mut Pin<Box<tokio::time::Sleep>>,
    deadline: Instant,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            biased;
            r = &mut fut => return Some(r),
            _ = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline.into());
            }
        }
    }
}

/// Releases a slot's "connecting" mark if the connecting VU is dropped mid-connect (the run
/// ended), so the slot's other VUs do not wait for ever.
struct Connecting<'a>(Option<&'a Slot>);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.failed(false);
        }
    }
}

/// Whether `target` may speak HTTP/2: h2c by prior knowledge, or ALPN on https unless
/// HTTP/1.1 is forced. Such a target's VUs share connections ([`pool::H2Pool`]).
pub fn may_speak_h2(target: &Target) -> bool {
    match target.version {
        HttpVersion::Http2 => true,
        HttpVersion::Auto => target.tls.is_some(),
        HttpVersion::Http1 => false,
    }
}

impl Client {
    /// A client for `target`; `slot`: its place in the worker's HTTP/2 pool.
    pub fn new(target: Arc<Target>, slot: Option<Rc<Slot>>) -> Client {
        let timer = Box::pin(tokio::time::sleep(target.timeout));
        Client {
            target,
            conn: None,
            slot,
            generation: 0,
            timer,
            convert: Vec::new(),
        }
    }

    /// Whether the next request will most likely go over HTTP/2 (its connection, or its
    /// slot's, speaks h2): the engine renders it in that form. A wrong guess costs a
    /// conversion, never a failure.
    pub fn speaks_h2(&self) -> bool {
        match &self.conn {
            Some(Conn::H2(_)) => true,
            Some(Conn::H1(_)) => false,
            None => self.slot.as_ref().is_some_and(|s| !s.is_h1()),
        }
    }

    /// Get a connection: the slot's live h2 connection, or a new one. Returns whether it
    /// already carried requests (an h2 connection found live in the slot).
    async fn open(&mut self) -> Result<bool, ErrorKind> {
        let mut guard = Connecting(None);
        if let Some(slot) = self.slot.as_deref() {
            match slot.acquire().await {
                Found::Live(c, generation) => {
                    self.conn = Some(Conn::H2(c));
                    self.generation = generation;
                    return Ok(true);
                }
                Found::Connect => guard.0 = Some(slot),
                Found::Private => {}
            }
        }
        let conn = match tokio::time::timeout(self.target.timeout, connect(&self.target)).await {
            Ok(Ok(c)) => c,
            Ok(Err(k)) => return Err(k),
            Err(_) => return Err(ErrorKind::Timeout),
        };
        if let Some(slot) = guard.0.take() {
            match &conn {
                Conn::H2(c) => self.generation = slot.connected(c),
                Conn::H1(_) => slot.failed(true),
            }
        }
        self.conn = Some(conn);
        Ok(false)
    }

    /// Send one request (HTTP/1.1 wire bytes or the h2 form; converted when the connection
    /// speaks the other protocol); `meta` says whether it is a HEAD request (no body in the
    /// response) and whether it may be replayed.
    pub async fn send(
        &mut self,
        req: Outgoing<'_>,
        meta: RequestMeta,
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Outcome {
        let mut attempt = 1;
        // One deadline for the user request, from its first byte sent, whatever the attempts.
        let mut first_sent: Option<Instant> = None;
        loop {
            if cap.headers {
                resp.headers.clear();
            }
            resp.variant = if resp.split.is_some() {
                Variant::Other
            } else {
                Variant::None
            };
            if cap.body {
                resp.body.clear();
            }
            resp.json.clear();
            // The slot moved on to a newer connection: follow it.
            if let (Some(Conn::H2(_)), Some(slot)) = (&self.conn, &self.slot) {
                if slot.generation() != self.generation {
                    self.conn = None;
                }
            }
            if self.conn.as_mut().is_some_and(Conn::closed_while_idle) {
                self.conn = None;
            }
            let reused = match &self.conn {
                Some(_) => true,
                None => match self.open().await {
                    Ok(reused) => reused,
                    Err(k) => {
                        return Outcome {
                            status: 0,
                            error: Some(k),
                            sent_at: None,
                            turned_away: matches!(k, ErrorKind::Timeout | ErrorKind::Reset),
                        }
                    }
                },
            };
            let conn = self.conn.as_mut().expect("connected above");
            let sent_at = Instant::now();
            let deadline = *first_sent.get_or_insert(sent_at) + self.target.timeout;
            let timer = &mut self.timer;
            let res = match conn {
                Conn::H1(c) => {
                    let max_body = self.target.max_body;
                    let wire = match req {
                        Outgoing::H1(w) => w,
                        Outgoing::H2(r) => {
                            r.write_h1(&self.target.authority, &mut self.convert);
                            &self.convert
                        }
                    };
                    with_deadline(
                        timer,
                        deadline,
                        c.exchange(wire, meta.head, cap, max_body, resp),
                    )
                    .await
                }
                Conn::H2(c) => {
                    with_deadline(timer, deadline, c.exchange(&self.target, req, cap, resp)).await
                }
            };
            match res {
                Some(Ok((status, keep))) => {
                    if !keep {
                        self.conn = None;
                    }
                    return Outcome {
                        status,
                        error: None,
                        sent_at: Some(sent_at),
                        turned_away: false,
                    };
                }
                Some(Err(fail)) => {
                    // A shared connection that is gone, or that the server retired
                    // (GOAWAY), is retired for the slot's other VUs too; one failed stream
                    // (a reset) leaves it to them.
                    if let (Some(Conn::H2(c)), Some(slot)) = (&self.conn, &self.slot) {
                        if c.is_closed()
                            || matches!(fail.stage, Stage::NotSent | Stage::Unprocessed)
                        {
                            slot.retire(self.generation);
                        }
                    }
                    self.conn = None;
                    if attempt < MAX_ATTEMPTS && fail.retryable(reused, meta.replayable) {
                        tracing::debug!(
                            ?fail,
                            attempt,
                            "the connection ended before the request was answered; sending it again on a new one"
                        );
                        attempt += 1;
                        continue;
                    }
                    return Outcome {
                        status: 0,
                        error: Some(fail.kind),
                        sent_at: Some(sent_at),
                        turned_away: !reused
                            && fail.stage != Stage::Responded
                            && fail.kind == ErrorKind::Reset,
                    };
                }
                None => {
                    // HTTP/1.1: the connection is mid-response, drop it. HTTP/2: only this
                    // stream (reset when its future is dropped); the connection stays shared.
                    self.conn = None;
                    return Outcome {
                        status: 0,
                        error: Some(ErrorKind::Timeout),
                        sent_at: Some(sent_at),
                        turned_away: false,
                    };
                }
            }
        }
    }
}

async fn connect_tcp(addrs: &[SocketAddr]) -> Result<TcpStream, ErrorKind> {
    let mut last = ErrorKind::Connect;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => {
                last = match ErrorKind::from_io(&e) {
                    ErrorKind::ConnectRefused => ErrorKind::ConnectRefused,
                    ErrorKind::Timeout => ErrorKind::Timeout,
                    _ => ErrorKind::Connect,
                }
            }
        }
    }
    Err(last)
}

async fn connect(target: &Target) -> Result<Conn, ErrorKind> {
    let tcp = connect_tcp(&target.addrs).await?;
    match (&target.tls, &target.server_name) {
        (Some(cfg), Some(name)) => {
            let connector = tokio_rustls::TlsConnector::from(cfg.clone());
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| match e.kind() {
                    io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => {
                        ErrorKind::Reset
                    }
                    _ => ErrorKind::Tls,
                })?;
            let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let stream = Stream::Tls(Box::new(tls));
            if is_h2 {
                Ok(Conn::H2(h2::H2Conn::handshake(stream).await?))
            } else {
                Ok(Conn::H1(h1::H1Conn::new(stream)))
            }
        }
        _ => {
            let stream = Stream::Plain(tcp);
            if target.version == HttpVersion::Http2 {
                Ok(Conn::H2(h2::H2Conn::handshake(stream).await?))
            } else {
                Ok(Conn::H1(h1::H1Conn::new(stream)))
            }
        }
    }
}

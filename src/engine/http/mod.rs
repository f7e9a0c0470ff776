//! The engine's HTTP clients. One [`Client`] per VU owns at most one connection.
//!
//! - HTTP/1.1 (plain, or over TLS when ALPN picks http/1.1) goes through the lean client in
//!   [`h1`]: the request is written as pre-built wire bytes, the response head is parsed with
//!   httparse, Content-Length and chunked bodies are read into a reused buffer and discarded
//!   unless a check needs them.
//! - HTTP/2 (h2c by prior knowledge on `http://` with `version: http2`, or ALPN h2 on
//!   `https://`) goes through hyper's `client::conn::http2` in [`h2`].
//!
//! Requests are always rendered as HTTP/1.1 wire bytes (see [`crate::engine::request`]); the
//! h2 path converts them into an `http::Request` (allocation is accepted there, the lean path
//! has none per request).
//!
//! Hostile targets cost time, never memory: a body is kept only up to `defaults.max_body` (and
//! only when a check reads it), response heads are bounded, interim 1xx responses are counted;
//! a peer that stalls is cut off by the request timeout.
//!
//! Timing: the per-request timeout (`http.timeout`) runs from the actual send (first byte
//! written) to the last byte of the response; connecting is bounded by the same timeout
//! separately. Failures are typed [`ErrorKind`]s.
pub mod h1;
pub mod h2;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderMap;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
}

/// Append `data` to a kept body, up to `max` bytes in all: a body past the cap is still read
/// to its end (and so timed), but never held, so a hostile 1 GiB body costs no memory.
pub(crate) fn keep_capped(body: &mut Vec<u8>, data: &[u8], max: usize) {
    let room = max.saturating_sub(body.len());
    body.extend_from_slice(&data[..data.len().min(room)]);
}

/// What happened to one request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// HTTP status, 0 when no response was received.
    pub status: u16,
    /// Transport failure, if any (status classes are added by the caller).
    pub error: Option<ErrorKind>,
    /// When the first byte of the (last attempt of the) request was written.
    pub sent_at: Option<Instant>,
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

/// One VU's client: owns at most one connection, reconnects when it is closed.
///
/// The request timeout uses one lazily moved timer per VU instead of a timer per request:
/// the timer is only re-armed when it fires, and a firing timer whose request is not yet
/// overdue is pushed to that request's deadline. So a request normally costs no timer
/// registration at all.
pub struct Client {
    target: Arc<Target>,
    conn: Option<Conn>,
    timer: Pin<Box<tokio::time::Sleep>>,
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

impl Client {
    pub fn new(target: Arc<Target>) -> Client {
        let timer = Box::pin(tokio::time::sleep(target.timeout));
        Client {
            target,
            conn: None,
            timer,
        }
    }

    /// Send one request given as HTTP/1.1 wire bytes; `head` marks a HEAD request (no body
    /// in the response).
    pub async fn send(
        &mut self,
        req: &[u8],
        head: bool,
        cap: Capture,
        resp: &mut ResponseData,
    ) -> Outcome {
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
        if let Some(Conn::H2(c)) = &self.conn {
            if c.is_closed() {
                self.conn = None;
            }
        }
        let mut attempt = 0;
        loop {
            let reused = self.conn.is_some();
            if !reused {
                match tokio::time::timeout(self.target.timeout, connect(&self.target)).await {
                    Ok(Ok(c)) => self.conn = Some(c),
                    Ok(Err(k)) => {
                        return Outcome {
                            status: 0,
                            error: Some(k),
                            sent_at: None,
                        }
                    }
                    Err(_) => {
                        return Outcome {
                            status: 0,
                            error: Some(ErrorKind::Timeout),
                            sent_at: None,
                        }
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            let sent_at = Instant::now();
            let deadline = sent_at + self.target.timeout;
            let timer = &mut self.timer;
            let res = match conn {
                Conn::H1(c) => {
                    let max_body = self.target.max_body;
                    with_deadline(timer, deadline, c.exchange(req, head, cap, max_body, resp)).await
                }
                Conn::H2(c) => {
                    with_deadline(timer, deadline, c.exchange(&self.target, req, cap, resp)).await
                }
            }
            .ok_or(());
            match res {
                Ok(Ok((status, keep))) => {
                    if !keep {
                        self.conn = None;
                    }
                    return Outcome {
                        status,
                        error: None,
                        sent_at: Some(sent_at),
                    };
                }
                Ok(Err(kind)) => {
                    // A kept-alive HTTP/1.1 connection the server closed before answering
                    // anything: retry once on a fresh connection.
                    let stale = matches!(conn, Conn::H1(c) if !c.received());
                    self.conn = None;
                    if reused && stale && kind == ErrorKind::Reset && attempt == 0 {
                        attempt += 1;
                        continue;
                    }
                    return Outcome {
                        status: 0,
                        error: Some(kind),
                        sent_at: Some(sent_at),
                    };
                }
                Err(_) => {
                    self.conn = None;
                    return Outcome {
                        status: 0,
                        error: Some(ErrorKind::Timeout),
                        sent_at: Some(sent_at),
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

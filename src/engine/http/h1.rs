//! The lean HTTP/1.1 keep-alive client: write pre-built request bytes, parse the response head
//! with httparse, read the body (Content-Length, chunked, or until close) through one reused
//! buffer, keeping it only when a check needs it (and then at most `max_body` bytes). No
//! allocation per request once the buffer has grown to fit a response head.
//!
//! Hand-written on purpose: it is the generator's hot path (pre-built request bytes, one reused
//! buffer, no per-request allocation or task), and it bounds what a hostile server can cost:
//! a status below 100, a head past 64 KiB or 64 headers, a chunk-size line past 8 KiB or more
//! than [`MAX_INTERIM`] interim (1xx) responses is `protocol`; a body that ends before its
//! declared length is `truncated`; bytes past the declared end are never read as the next
//! response (the connection is dropped).
//!
//! Connection lifecycle: a response with `Connection: close`, or an HTTP/1.0 response without
//! `Connection: keep-alive`, ends the connection after it is read (its close, TLS close_notify
//! included, is no failure). A kept-alive connection is checked before it is used again
//! ([`H1Conn::closed_while_idle`]): one the server closed while it sat idle (a FIN, a TLS
//! close_notify, an unsolicited `408`) is dropped without a request being sent on it. A failed
//! exchange says how far it got ([`Stage`]) so the client retries only what is safe to.
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::{Capture, Failure, ResponseData, Stage, Stream};
use crate::metrics::ErrorKind;

/// Most response headers parsed; more is a protocol error.
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 16 * 1024;
/// Most interim (1xx) responses before the final one; more is a protocol error (a server
/// answering `100 Continue` forever).
pub const MAX_INTERIM: usize = 32;
/// Largest response head (status line and headers).
const MAX_HEAD: usize = 64 * 1024;

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// One HTTP/1.1 connection and its read buffer.
pub struct H1Conn {
    stream: Stream,
    buf: Vec<u8>,
    received: bool,
}

fn io_kind(e: std::io::Error) -> ErrorKind {
    ErrorKind::from_io(&e)
}

/// The connection ending inside a framed body: the body is shorter than it was declared.
fn in_body(kind: ErrorKind) -> ErrorKind {
    match kind {
        ErrorKind::Reset => ErrorKind::Truncated,
        k => k,
    }
}

fn header_has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

impl H1Conn {
    pub fn new(stream: Stream) -> H1Conn {
        H1Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            received: false,
        }
    }

    /// Whether the server closed this idle kept-alive connection (or sent bytes nobody asked
    /// for, such as a `408` before closing): then it must not carry the next request. One
    /// non-blocking read; with nothing to read it costs no more than the read that would
    /// otherwise find the socket empty right after the request is written.
    pub fn closed_while_idle(&mut self) -> bool {
        self.buf.clear();
        if self.buf.capacity() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut rb = ReadBuf::uninit(self.buf.spare_capacity_mut());
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut rb) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) => {
                tracing::debug!(
                    bytes = rb.filled().len(),
                    "the server closed an idle connection (or sent unasked bytes): reconnecting"
                );
                true
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "an idle connection failed: reconnecting");
                true
            }
        }
    }

    /// Read more bytes at the end of the buffer; EOF is an error (`Reset`).
    async fn read_more(&mut self) -> Result<(), ErrorKind> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.stream.read_buf(&mut self.buf).await.map_err(io_kind)?;
        if n == 0 {
            return Err(ErrorKind::Reset);
        }
        self.received = true;
        Ok(())
    }

    /// Drop the consumed prefix `..pos` of the buffer.
    fn compact(&mut self, pos: &mut usize) {
        if *pos >= self.buf.len() {
            self.buf.clear();
        } else if *pos > 0 {
            self.buf.drain(..*pos);
        }
        *pos = 0;
    }

    /// Consume `n` body bytes starting at `pos`, copying at most `max` of the body into `keep`
    /// if given. The connection ending first is `Truncated`.
    async fn consume(
        &mut self,
        pos: &mut usize,
        mut n: u64,
        mut keep: Option<&mut Vec<u8>>,
        max: usize,
    ) -> Result<(), ErrorKind> {
        loop {
            let avail = (self.buf.len() - *pos) as u64;
            let take = avail.min(n) as usize;
            if let Some(k) = keep.as_deref_mut() {
                super::keep_capped(k, &self.buf[*pos..*pos + take], max);
            }
            *pos += take;
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.buf.clear();
            *pos = 0;
            self.read_more().await.map_err(in_body)?;
        }
    }

    /// Make sure there is a complete line (ending in CRLF) at `pos`; returns its length
    /// without the CRLF.
    async fn line(&mut self, pos: &mut usize) -> Result<usize, ErrorKind> {
        loop {
            if let Some(i) = self.buf[*pos..].windows(2).position(|w| w == b"\r\n") {
                return Ok(i);
            }
            if self.buf.len() - *pos > 8 * 1024 {
                return Err(ErrorKind::Protocol);
            }
            self.compact(pos);
            self.read_more().await?;
        }
    }

    /// Write the request and read the whole response, keeping at most `max_body` bytes of
    /// the body when `cap.body`. Returns the status and whether the connection may be reused;
    /// a failure says how far the exchange got.
    pub async fn exchange(
        &mut self,
        req: &[u8],
        head_request: bool,
        cap: Capture,
        max_body: usize,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), Failure> {
        self.received = false;
        self.buf.clear();
        let mut written = 0;
        while written < req.len() {
            let stage = if written == 0 {
                Stage::NotSent
            } else {
                Stage::NoResponse
            };
            match self.stream.write(&req[written..]).await {
                Ok(0) => return Err(Failure::new(ErrorKind::Reset, stage)),
                Ok(n) => written += n,
                Err(e) => return Err(Failure::new(io_kind(e), stage)),
            }
        }
        // TLS keeps what the socket did not take in its own buffer; a read never sends it.
        if let Err(e) = self.stream.flush().await {
            return Err(Failure::new(io_kind(e), Stage::NoResponse));
        }
        let res = self.read_response(head_request, cap, max_body, resp).await;
        res.map_err(|kind| {
            let stage = if self.received {
                Stage::Responded
            } else {
                Stage::NoResponse
            };
            Failure::new(kind, stage)
        })
    }

    /// Read the response to the request just written.
    async fn read_response(
        &mut self,
        head_request: bool,
        cap: Capture,
        max_body: usize,
        resp: &mut ResponseData,
    ) -> Result<(u16, bool), ErrorKind> {
        // Response head (skipping interim 1xx responses, at most MAX_INTERIM of them).
        let mut interim = 0;
        let (status, head_len, framing, mut keep) = loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut r = httparse::Response::new(&mut headers);
                match r.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let code = r.code.unwrap_or(0);
                        if code < 100 {
                            // `000`..`099` parse as three digits but are no status.
                            return Err(ErrorKind::Protocol);
                        }
                        if (100..200).contains(&code) && code != 101 {
                            interim += 1;
                            if interim > MAX_INTERIM {
                                return Err(ErrorKind::Protocol);
                            }
                            self.buf.drain(..n);
                            continue;
                        }
                        let mut length = None;
                        let mut chunked = false;
                        let mut keep = r.version == Some(1);
                        for h in r.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse::<u64>().ok());
                                length = Some(v.ok_or(ErrorKind::Protocol)?);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = header_has_token(h.value, "chunked");
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                if header_has_token(h.value, "close") {
                                    keep = false;
                                } else if header_has_token(h.value, "keep-alive") {
                                    keep = true;
                                }
                            }
                            if let Some(split) = &resp.split {
                                if h.name.eq_ignore_ascii_case(&split.header) {
                                    resp.variant = split.side(Some(h.value));
                                }
                            }
                            if cap.headers {
                                if let (Ok(name), Ok(value)) = (
                                    HeaderName::from_bytes(h.name.as_bytes()),
                                    HeaderValue::from_bytes(h.value),
                                ) {
                                    resp.headers.append(name, value);
                                }
                            }
                        }
                        let framing = if head_request || code == 204 || code == 304 {
                            Framing::Length(0)
                        } else if chunked {
                            Framing::Chunked
                        } else if let Some(l) = length {
                            Framing::Length(l)
                        } else {
                            Framing::UntilClose
                        };
                        break (code, n, framing, keep);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return Err(ErrorKind::Protocol);
                        }
                    }
                    Err(_) => return Err(ErrorKind::Protocol),
                }
            }
            self.read_more().await?;
        };

        let mut pos = head_len;
        let mut body = cap.body.then_some(&mut resp.body);
        match framing {
            Framing::Length(n) => {
                self.consume(&mut pos, n, body.as_deref_mut(), max_body)
                    .await?
            }
            Framing::Chunked => loop {
                let len = self.line(&mut pos).await.map_err(in_body)?;
                let size = match httparse::parse_chunk_size(&self.buf[pos..pos + len + 2]) {
                    Ok(httparse::Status::Complete((_, size))) => size,
                    _ => return Err(ErrorKind::Protocol),
                };
                pos += len + 2;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        let len = self.line(&mut pos).await.map_err(in_body)?;
                        pos += len + 2;
                        if len == 0 {
                            break;
                        }
                    }
                    break;
                }
                self.consume(&mut pos, size, body.as_deref_mut(), max_body)
                    .await?;
                let len = self.line(&mut pos).await.map_err(in_body)?;
                if len != 0 {
                    return Err(ErrorKind::Protocol);
                }
                pos += 2;
            },
            Framing::UntilClose => {
                keep = false;
                loop {
                    if let Some(k) = body.as_deref_mut() {
                        super::keep_capped(k, &self.buf[pos..], max_body);
                    }
                    self.buf.clear();
                    pos = 0;
                    match self.read_more().await {
                        Ok(()) => {}
                        Err(ErrorKind::Reset) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if pos < self.buf.len() {
            // Bytes past the declared end of the response (a Content-Length shorter than the
            // body): never read them as the next response.
            keep = false;
        }
        self.compact(&mut pos);
        Ok((status, keep))
    }
}

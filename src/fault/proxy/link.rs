//! One proxied connection: dial the upstream, then pump both directions through their
//! toxics until both ends closed, a toxic closed or reset it, or the proxy went down.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::toxics::Active;
use super::{Shared, DIAL_TIMEOUT};
use crate::spec::fault::ToxicStream;

/// Bytes asked for per read.
const READ_SIZE: usize = 64 * 1024;
/// Chunks buffered between a direction's reader and its writer.
const CHANNEL_CHUNKS: usize = 16;

/// How a direction (or the whole connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The source closed; its end was passed on (FIN).
    Eof,
    /// Close the whole connection (both ends get a FIN).
    Close,
    /// Reset the whole connection (both ends get an RST).
    Reset,
}

/// A chunk read from one side, with the time it was read.
pub(super) struct Chunk {
    pub(super) data: Bytes,
    pub(super) at: Instant,
}

/// Counts a connection as active while it lives.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn connect_and_serve(
    client: TcpStream,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _guard = ActiveGuard(shared.clone());
    let upstream_addr = shared.upstream();
    let dial = tokio::select! {
        _ = cancel.cancelled() => None,
        r = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(upstream_addr)) => Some(r),
    };
    let upstream = match dial {
        Some(Ok(Ok(u))) => u,
        other => {
            // As toxiproxy: a client whose upstream cannot be reached is closed at once; an
            // RST says "nothing there" the way a refused connection would.
            if let Some(r) = other {
                let why = match r {
                    Err(_) => "timed out".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => unreachable!(),
                };
                tracing::debug!(proxy = %shared.name, upstream = %upstream_addr, error = %why, "fault proxy: upstream unreachable");
            }
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    serve(client, upstream, &shared, &cancel).await;
}

async fn serve(
    mut client: TcpStream,
    mut upstream: TcpStream,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) {
    let end = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = pump(cr, uw, ToxicStream::Upstream, shared);
        let down = pump(ur, cw, ToxicStream::Downstream, shared);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let e = tokio::select! {
                _ = cancel.cancelled() => End::Reset,
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
            };
            if e != End::Eof {
                break e;
            }
            if up_done && down_done {
                break End::Eof;
            }
        }
    };
    if end == End::Reset {
        // SO_LINGER 0: close sends an RST and discards unsent data (toxiproxy's reset_peer).
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// Moves bytes from `r` to `w` through the toxics of `stream`.
async fn pump<R, W>(mut r: R, w: W, stream: ToxicStream, shared: &Arc<Shared>) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let counter = match stream {
        ToxicStream::Upstream => &shared.bytes[0],
        ToxicStream::Downstream => &shared.bytes[1],
    };
    let read = async move {
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        loop {
            buf.reserve(READ_SIZE);
            match r.read_buf(&mut buf).await {
                Ok(0) => return End::Eof,
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    let chunk = Chunk {
                        data: buf.split().freeze(),
                        at: Instant::now(),
                    };
                    if tx.send(chunk).await.is_err() {
                        return End::Eof;
                    }
                }
                // A reset (or any error) on one side is passed on as a reset.
                Err(_) => return End::Reset,
            }
        }
    };
    let write = write_loop(rx, w, stream, shared);
    tokio::pin!(read, write);
    let mut read_done = false;
    loop {
        tokio::select! {
            e = &mut read, if !read_done => {
                if e == End::Reset {
                    return End::Reset;
                }
                // The sender is gone with the finished future: the writer sees the end.
                read_done = true;
            }
            e = &mut write => return e,
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<Chunk>,
    mut w: W,
    stream: ToxicStream,
    shared: &Arc<Shared>,
) -> End {
    let mut toxics = shared.toxics.subscribe();
    let mut active = Active::new(stream);
    active.reload(&toxics.borrow_and_update(), Instant::now());
    loop {
        let deadline = active.deadline();
        tokio::select! {
            biased;
            r = toxics.changed() => {
                if r.is_err() {
                    return End::Reset;
                }
                let set = toxics.borrow_and_update().clone();
                active.reload(&set, Instant::now());
            }
            _ = sleep_until(deadline.map(|d| d.0)), if deadline.is_some() => {
                return deadline.map_or(End::Close, |d| d.1);
            }
            c = rx.recv() => match c {
                None => {
                    if let Some(d) = active.slow_close() {
                        tokio::time::sleep(d).await;
                    }
                    let _ = w.shutdown().await;
                    return End::Eof;
                }
                Some(chunk) => match active.deliver(chunk, &mut w).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(_) => return End::Reset,
                },
            },
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

//! A TCP proxy with toxiproxy's toxics, on tokio: the stack puts one in front of each
//! dependency so that network faults (latency with jitter, bandwidth, slow_close, timeout,
//! reset_peer, slicer, limit_data, and the proxy down) act on the gateways' live connections.
//!
//! Why hand-written and not toxiproxy: toxiproxy is a Go binary with an HTTP API that the
//! machines here (and air-gapped CI runners) do not have, and no maintained Rust crate
//! implements its toxics. The semantics follow toxiproxy's `toxics/*.go` (read from its
//! source), with these choices:
//! - toxics act on live connections too (a pooled connection opened before the fault gets
//!   the fault), as toxiproxy's toxic chain does; whether a toxic applies to a connection is
//!   rolled once per connection and toxic, against its `toxicity`;
//! - the toxics of one stream are applied to each chunk in a fixed order (timeout and
//!   reset_peer drop data; then latency; then slicer; then bandwidth pacing; then
//!   limit_data), where toxiproxy chains them in insertion order; with one toxic per stream,
//!   as plans use them, the two agree;
//! - latency is measured from the time a chunk was read (toxiproxy's chunk timestamps), so
//!   a reader running ahead keeps back-to-back chunks from adding their delays;
//! - "down" (toxiproxy's `enabled: false`) closes the listener (new connections are refused)
//!   and resets every open connection; "up" listens again on the same address.
//!
//! Each proxy runs on its own thread with a current-thread tokio runtime: the stack and its
//! handles may outlive the runtime that started them (see `stack::control`), and the proxy
//! must keep forwarding whatever runtime the caller is on. Handles talk to it through watch
//! channels and atomics only, so they work from any runtime or none.
//!
//! Per connection: one task; per direction a reader (64 KiB reads into a reused buffer,
//! each chunk timestamped) and a writer that applies the direction's toxics, joined by a
//! bounded channel (16 chunks). With no toxic a chunk goes straight through: the proxy
//! moves several Gbit/s on loopback (`bench/proxy-throughput.sh`).
mod link;
mod toxics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::spec::fault::{NetworkFault, Toxic};

/// How long [`ProxyHandle::set_enabled`] waits for the proxy to close or reopen its listener.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection's dial to the upstream may take before the client is reset.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the fault proxy; each names the proxy and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy `{name}`: cannot listen on {addr}: {source}; pick another address (port 0 chooses a free one)")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("proxy `{name}`: cannot start its runtime thread: {source}")]
    Runtime {
        name: String,
        source: std::io::Error,
    },
    #[error("proxy `{name}`: cannot listen again on {addr} after being down: {detail}; something else took the port")]
    Rebind {
        name: String,
        addr: SocketAddr,
        detail: String,
    },
    #[error(
        "proxy `{name}` did not {what} within {:?}; its thread is stuck or gone",
        STATE_TIMEOUT
    )]
    Timeout { name: String, what: &'static str },
    #[error("proxy `{name}` has shut down")]
    Gone { name: String },
}

/// Identifies a toxic added to a proxy (to remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToxicId(pub u64);

/// The toxics a proxy applies now, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToxicSet {
    pub toxics: Vec<(ToxicId, Toxic)>,
}

/// What the listener does now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listening {
    Up,
    Down,
    /// Re-listening after a down failed (the message says why).
    Failed(String),
}

/// Counters of one proxy (cumulative since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    pub active: usize,
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
}

/// What a proxy and its handles share.
struct Shared {
    name: String,
    listen: SocketAddr,
    upstream: RwLock<SocketAddr>,
    toxics: watch::Sender<Arc<ToxicSet>>,
    next_id: AtomicU64,
    /// What the caller asked for (true: listening).
    enabled: watch::Sender<bool>,
    /// What the listener does now.
    listening: watch::Sender<Listening>,
    accepted: AtomicU64,
    active: AtomicUsize,
    bytes: [AtomicU64; 2],
}

impl Shared {
    fn upstream(&self) -> SocketAddr {
        *self.upstream.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy: forwards `listen` to `upstream` until dropped (or [`Proxy::shutdown`]).
/// Dropping it resets every open connection and joins its thread.
pub struct Proxy {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.shared.name)
            .field("listen", &self.shared.listen)
            .field("upstream", &self.shared.upstream())
            .finish()
    }
}

impl Proxy {
    /// Starts a proxy named `name` (for errors and logs) listening on `listen` (port 0: a
    /// free port; see [`Proxy::listen_addr`]) and forwarding to `upstream`.
    pub fn start(
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
    ) -> Result<Proxy, ProxyError> {
        let std_listener = bind(listen).map_err(|source| ProxyError::Bind {
            name: name.to_string(),
            addr: listen,
            source,
        })?;
        let local = std_listener
            .local_addr()
            .map_err(|source| ProxyError::Bind {
                name: name.to_string(),
                addr: listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            listen: local,
            upstream: RwLock::new(upstream),
            toxics: watch::Sender::new(Arc::new(ToxicSet::default())),
            next_id: AtomicU64::new(1),
            enabled: watch::Sender::new(true),
            listening: watch::Sender::new(Listening::Up),
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let cancel = CancellationToken::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ProxyError::Runtime {
                name: name.to_string(),
                source,
            })?;
        let (s, c) = (shared.clone(), cancel.clone());
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{name}"))
            .spawn(move || {
                runtime.block_on(accept_loop(s, std_listener, c));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|source| ProxyError::Runtime {
                name: name.to_string(),
                source,
            })?;
        tracing::debug!(proxy = name, %local, %upstream, "fault proxy started");
        Ok(Proxy {
            shared,
            cancel,
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// A handle to change its toxics and state; cheap to clone, works from any thread.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops listening, resets every connection and joins the proxy's thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!(proxy = %self.shared.name, "fault proxy thread panicked");
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Changes a running [`Proxy`]'s toxics and state.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// What [`ProxyHandle::apply`] did, to undo it with [`ProxyHandle::revert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Toxics(Vec<ToxicId>),
    Down,
}

impl ProxyHandle {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where clients connect.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream()
    }

    /// Forward new connections to `addr` from now on (open ones keep their upstream).
    pub fn set_upstream(&self, addr: SocketAddr) {
        *self
            .shared
            .upstream
            .write()
            .unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Adds a toxic; it acts on open connections and new ones.
    pub fn add(&self, toxic: Toxic) -> ToxicId {
        let id = ToxicId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        self.shared.toxics.send_modify(|set| {
            Arc::make_mut(set).toxics.push((id, toxic));
        });
        tracing::info!(proxy = %self.shared.name, toxic = %toxic, "toxic added");
        id
    }

    /// Removes a toxic; false when it was not there.
    pub fn remove(&self, id: ToxicId) -> bool {
        let mut found = false;
        self.shared.toxics.send_if_modified(|set| {
            let before = set.toxics.len();
            Arc::make_mut(set).toxics.retain(|(i, _)| *i != id);
            found = set.toxics.len() != before;
            found
        });
        if found {
            tracing::info!(proxy = %self.shared.name, id = id.0, "toxic removed");
        }
        found
    }

    /// Removes every toxic.
    pub fn clear(&self) {
        self.shared.toxics.send_if_modified(|set| {
            let had = !set.toxics.is_empty();
            Arc::make_mut(set).toxics.clear();
            had
        });
    }

    /// The toxics in effect, in the order they were added.
    pub fn toxics(&self) -> Vec<(ToxicId, Toxic)> {
        self.shared.toxics.borrow().toxics.clone()
    }

    /// Whether the proxy accepts connections (not down).
    pub fn is_enabled(&self) -> bool {
        *self.shared.enabled.borrow()
    }

    /// Down (`false`): the listener is closed (connections are refused) and every open
    /// connection is reset. Up (`true`): listening again on the same address. Returns once
    /// the listener did it.
    pub async fn set_enabled(&self, on: bool) -> Result<(), ProxyError> {
        let s = &self.shared;
        // A failure of an earlier attempt must not answer this one.
        s.listening.send_if_modified(|l| {
            let failed = matches!(l, Listening::Failed(_));
            if failed {
                *l = Listening::Down;
            }
            failed
        });
        s.enabled.send_replace(on);
        let mut rx = s.listening.subscribe();
        let what = if on { "listen again" } else { "go down" };
        let wait = rx.wait_for(|l| match l {
            Listening::Up => on,
            Listening::Down => !on,
            Listening::Failed(_) => on,
        });
        let state = match tokio::time::timeout(STATE_TIMEOUT, wait).await {
            Err(_) => {
                return Err(ProxyError::Timeout {
                    name: s.name.clone(),
                    what,
                })
            }
            Ok(Err(_)) => {
                return Err(ProxyError::Gone {
                    name: s.name.clone(),
                })
            }
            Ok(Ok(state)) => state.clone(),
        };
        match state {
            Listening::Failed(detail) => Err(ProxyError::Rebind {
                name: s.name.clone(),
                addr: s.listen,
                detail,
            }),
            _ => {
                tracing::info!(proxy = %s.name, up = on, "proxy state");
                Ok(())
            }
        }
    }

    /// Applies a network fault: adds its toxics, or takes the proxy down.
    pub async fn apply(&self, fault: &NetworkFault) -> Result<Applied, ProxyError> {
        match fault {
            NetworkFault::Toxics(t) => {
                Ok(Applied::Toxics(t.iter().map(|t| self.add(*t)).collect()))
            }
            NetworkFault::Down => self.set_enabled(false).await.map(|_| Applied::Down),
        }
    }

    /// Undoes what [`ProxyHandle::apply`] did.
    pub async fn revert(&self, applied: &Applied) -> Result<(), ProxyError> {
        match applied {
            Applied::Toxics(ids) => {
                for id in ids {
                    self.remove(*id);
                }
                Ok(())
            }
            Applied::Down => self.set_enabled(true).await,
        }
    }

    /// Counters since the proxy started.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            bytes_upstream: s.bytes[0].load(Ordering::Relaxed),
            bytes_downstream: s.bytes[1].load(Ordering::Relaxed),
        }
    }
}

/// A listening socket with SO_REUSEADDR (so the port can be taken again after a down while
/// closed connections sit in TIME_WAIT).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = std::net::TcpListener::bind(addr);
    // std's bind sets SO_REUSEADDR on Unix; make the socket non-blocking for tokio.
    let sock = sock?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Binds `addr` again (after a down), retrying briefly while the old socket lets go.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..20 {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        match sock.bind(addr).and_then(|_| sock.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

async fn accept_loop(shared: Arc<Shared>, first: std::net::TcpListener, cancel: CancellationToken) {
    let mut enabled = shared.enabled.subscribe();
    let mut listener = match TcpListener::from_std(first) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(proxy = %shared.name, error = %e, "fault proxy: cannot register its listener");
            shared
                .listening
                .send_replace(Listening::Failed(e.to_string()));
            None
        }
    };
    // Connections of the current "up" period: cancelled (reset) when the proxy goes down.
    let mut conns = cancel.child_token();
    loop {
        match &listener {
            Some(l) => {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = enabled.changed() => {
                        if r.is_err() { break; }
                        if !*enabled.borrow_and_update() {
                            listener = None;
                            conns.cancel();
                            conns = cancel.child_token();
                            shared.listening.send_replace(Listening::Down);
                        }
                    }
                    r = l.accept() => match r {
                        Ok((client, _)) => {
                            shared.accepted.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(link::connect_and_serve(client, shared.clone(), conns.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(proxy = %shared.name, error = %e, "fault proxy: accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
            None => {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = enabled.changed() => {
                        if r.is_err() { break; }
                        if *enabled.borrow_and_update() {
                            match rebind(shared.listen).await {
                                Ok(l) => {
                                    listener = Some(l);
                                    shared.listening.send_replace(Listening::Up);
                                }
                                Err(e) => {
                                    tracing::warn!(proxy = %shared.name, error = %e, "fault proxy: cannot listen again");
                                    shared.listening.send_replace(Listening::Failed(e.to_string()));
                                }
                            }
                        } else {
                            shared.listening.send_replace(Listening::Down);
                        }
                    }
                }
            }
        }
    }
    conns.cancel();
}

//! Readiness probes: Redis PING, a PostgreSQL startup handshake, gateway `GET /ready`.
//!
//! The probes need no client crates: Redis speaks RESP over TCP; for PostgreSQL, a server
//! that accepts connections answers a StartupMessage with an authentication request ('R'),
//! while one still starting (or shutting down) answers with an ErrorResponse ('E', SQLSTATE
//! 57P03). That tells "ready" apart without knowing the password scheme.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a readiness probe says "not ready (yet)". The stack's wait loops retry on any of these
/// until their deadline and then render the last one into their `NotReady` reason.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("connect: {0} (is the server listening on that address yet?)")]
    Connect(#[source] std::io::Error),
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected answer {0:?} (expected +PONG; a -WRONGPASS / -NOAUTH answer means the Redis password does not match)")]
    RedisAnswer(String),
    #[error("server said: {0}")]
    PostgresRefused(String),
    #[error("unexpected message type {0:?} (expected 'R', an authentication request: is this a PostgreSQL server?)")]
    PostgresMessage(char),
    #[error("GET /ready: {0}")]
    HttpRequest(#[source] reqwest::Error),
    #[error("GET /ready answered {0} (ready means 200)")]
    HttpStatus(reqwest::StatusCode),
    #[error("building an HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("no HTTP client for an HTTP probe (internal: the wait loop must build one with the probe's client())")]
    NoHttpClient,
}

/// `AUTH password` (when given) then `PING`; Ok when the answer is `+PONG`.
pub async fn redis_ping(addr: SocketAddr, password: Option<&str>) -> Result<(), HealthError> {
    let attempt = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(HealthError::Connect)?;
        let mut req = Vec::new();
        if let Some(pw) = password {
            req.extend_from_slice(
                format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len()).as_bytes(),
            );
        }
        req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        s.write_all(&req).await.map_err(HealthError::Write)?;
        let mut buf = Vec::new();
        let want: &[u8] = if password.is_some() {
            b"+OK\r\n+PONG\r\n"
        } else {
            b"+PONG\r\n"
        };
        let mut chunk = [0u8; 256];
        while buf.len() < want.len() {
            let n = s.read(&mut chunk).await.map_err(HealthError::Read)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if buf.starts_with(want) {
            Ok(())
        } else {
            Err(HealthError::RedisAnswer(
                String::from_utf8_lossy(&buf).into_owned(),
            ))
        }
    };
    timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| HealthError::Timeout(PROBE_TIMEOUT))?
}

/// Sends a StartupMessage; Ok when the server asks for authentication (or accepts).
pub async fn postgres_accepting(
    addr: SocketAddr,
    user: &str,
    database: &str,
) -> Result<(), HealthError> {
    let attempt = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(HealthError::Connect)?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
        for (k, v) in [("user", user), ("database", database)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        s.write_all(&msg).await.map_err(HealthError::Write)?;
        let mut tag = [0u8; 1];
        s.read_exact(&mut tag).await.map_err(HealthError::Read)?;
        match tag[0] {
            b'R' => Ok(()),
            b'E' => {
                let mut rest = vec![0u8; 512];
                // The refusal stands either way; its text is only the detail.
                let n = s.read(&mut rest).await.unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "reading PostgreSQL's error text");
                    0
                });
                let text: String = String::from_utf8_lossy(&rest[..n])
                    .split('\0')
                    .filter(|f| f.starts_with('M'))
                    .map(|f| f[1..].to_string())
                    .collect();
                Err(HealthError::PostgresRefused(text))
            }
            other => Err(HealthError::PostgresMessage(other as char)),
        }
    };
    timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| HealthError::Timeout(PROBE_TIMEOUT))?
}

/// `GET {base}/ready`; Ok on 200.
pub async fn http_ready(client: &reqwest::Client, base: &str) -> Result<(), HealthError> {
    let resp = client
        .get(format!("{base}/ready"))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(HealthError::HttpRequest)?;
    if resp.status() == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(HealthError::HttpStatus(resp.status()))
    }
}

/// Picks a free TCP port on 127.0.0.1 for a server of the stack ([`free_port_on`]).
pub fn free_port() -> std::io::Result<u16> {
    free_port_on(std::net::Ipv4Addr::LOCALHOST.into())
}

/// Picks a TCP port that is free on `ip` right now, from below the kernel's ephemeral range.
///
/// Why not port 0: the kernel takes port-0 listeners from the same ephemeral range it hands
/// out as source ports of outgoing connections. A component that a drill kills and starts
/// again on its port can then find the port taken in between by some client's connection
/// (the gateways reconnect to it while it is down; other programs connect anywhere), and the
/// restart fails with "address already in use". Ports below the range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 by default) are never handed out that
/// way. A random port is tried until one binds; port 0 is the last resort.
pub fn free_port_on(ip: std::net::IpAddr) -> std::io::Result<u16> {
    use rand::Rng;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(low..high);
        if let Ok(l) = std::net::TcpListener::bind((ip, port)) {
            return Ok(l.local_addr()?.port());
        }
    }
    let l = std::net::TcpListener::bind((ip, 0))?;
    Ok(l.local_addr()?.port())
}

//! Redis access: the API-key cache, per-key rate limits, the chat response cache, queue
//! depths and the shared admin state. One multiplexed [`ConnectionManager`] serves every
//! request (it reconnects on its own after Redis comes back); job workers open their own
//! (see [`Redis::dedicated`]) because `BRPOP` blocks a connection.
//!
//! Keys: `lg:key:<sha256>` (key cache), `lg:rl:<key_id>:<unix-second>` (rate-limit window),
//! `lg:chat:<version>:<prompt_version>:<sha256(prompt)>` (response cache),
//! `lg:jobs:queue` / `lg:jobs:delayed` (zset, score = due unix ms) / `lg:jobs:dlq`,
//! `lg:admin` (admin state JSON).

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const QUEUE: &str = "lg:jobs:queue";
pub const DELAYED: &str = "lg:jobs:delayed";
pub const DLQ: &str = "lg:jobs:dlq";
pub const ADMIN: &str = "lg:admin";

/// After a failed command, calls fail fast (without touching the network) for this long, so
/// an outage costs one slow request per period instead of one per request.
pub const BREAKER_OPEN: Duration = Duration::from_millis(250);

/// Redis handle; `detached` (no server) in router unit tests, where every call fails.
#[derive(Clone)]
pub struct Redis {
    mgr: Option<ConnectionManager>,
    client: Option<redis::Client>,
    /// Monotonic ms (since `epoch`) until which calls fail fast; 0 = closed.
    open_until: Arc<AtomicU64>,
    epoch: Instant,
}

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(0)
        .set_factor(10)
        .set_max_delay(100)
}

impl Redis {
    /// A handle with no server behind it: every command fails with an I/O error.
    pub fn detached() -> Self {
        Redis {
            mgr: None,
            client: None,
            open_until: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    /// Connects, retrying until `within` has passed.
    pub async fn connect(url: &str, within: Duration) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let deadline = Instant::now() + within;
        loop {
            let attempt = client
                .get_connection_manager_with_config(manager_config(Duration::from_secs(1)))
                .await;
            match attempt {
                Ok(mgr) => {
                    let r = Redis {
                        mgr: Some(mgr),
                        client: Some(client.clone()),
                        open_until: Arc::new(AtomicU64::new(0)),
                        epoch: Instant::now(),
                    };
                    match r.ping().await {
                        Ok(()) => return Ok(r),
                        Err(e) if Instant::now() >= deadline => return Err(e),
                        Err(_) => {}
                    }
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A separate connection for blocking commands (job workers).
    pub async fn dedicated(&self) -> RedisResult<ConnectionManager> {
        let client = self.client.as_ref().ok_or_else(not_connected)?;
        client
            .get_connection_manager_with_config(manager_config(Duration::from_secs(5)))
            .await
    }

    /// The shared connection, or an immediate error while the breaker is open.
    pub fn conn(&self) -> RedisResult<ConnectionManager> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.open_until.load(Ordering::Relaxed) {
            // ClientError, not IoError: a fail-fast refusal must not re-open the breaker.
            return Err(RedisError::from((
                ErrorKind::ClientError,
                "redis failed recently; failing fast",
            )));
        }
        self.mgr.clone().ok_or_else(not_connected)
    }

    /// Passes `r` through; an I/O-level failure opens the breaker.
    pub fn note<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
            {
                let until = self.epoch.elapsed() + BREAKER_OPEN;
                self.open_until
                    .store(until.as_millis() as u64, Ordering::Relaxed);
            }
        }
        r
    }

    pub async fn ping(&self) -> RedisResult<()> {
        let r = async {
            let mut c = self.conn()?;
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            Ok(())
        }
        .await;
        self.note(r)
    }

    /// (queue depth, dead-letter depth).
    pub async fn queue_depths(&self) -> RedisResult<(u64, u64)> {
        let r = async {
            let mut c = self.conn()?;
            redis::pipe()
                .cmd("LLEN")
                .arg(QUEUE)
                .cmd("LLEN")
                .arg(DLQ)
                .query_async(&mut c)
                .await
        }
        .await;
        self.note(r)
    }

    pub async fn get(&self, key: &str) -> RedisResult<Option<String>> {
        let r = async {
            let mut c = self.conn()?;
            redis::cmd("GET").arg(key).query_async(&mut c).await
        }
        .await;
        self.note(r)
    }

    pub async fn set_ex(&self, key: &str, value: &str, ttl_secs: u64) -> RedisResult<()> {
        let r = async {
            let mut c = self.conn()?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query_async(&mut c)
                .await
        }
        .await;
        self.note(r)
    }

    pub async fn set(&self, key: &str, value: &str) -> RedisResult<()> {
        let r = async {
            let mut c = self.conn()?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query_async(&mut c)
                .await
        }
        .await;
        self.note(r)
    }

    /// The rate-limit check and a cache read in one round trip:
    /// (allowed, cached value).
    pub async fn rate_and_get(
        &self,
        key_id: &str,
        limit_per_sec: u64,
        cache_key: &str,
    ) -> RedisResult<(bool, Option<String>)> {
        let r = async {
            if limit_per_sec == 0 {
                return Ok((true, self.get(cache_key).await?));
            }
            let key = format!("lg:rl:{key_id}:{}", unix_secs());
            let mut c = self.conn()?;
            let (count, cached): (u64, Option<String>) = redis::pipe()
                .cmd("INCR")
                .arg(&key)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(2)
                .ignore()
                .cmd("GET")
                .arg(cache_key)
                .query_async(&mut c)
                .await?;
            Ok((count <= limit_per_sec, cached))
        }
        .await;
        self.note(r)
    }

    /// Fixed one-second window counter. Returns `true` when the request is allowed.
    pub async fn rate_allow(&self, key_id: &str, limit_per_sec: u64) -> RedisResult<bool> {
        if limit_per_sec == 0 {
            return Ok(true);
        }
        let key = format!("lg:rl:{key_id}:{}", unix_secs());
        let mut c = self.conn()?;
        let (count,): (u64,) = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(2)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(count <= limit_per_sec)
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn not_connected() -> RedisError {
    RedisError::from((ErrorKind::IoError, "redis is not connected"))
}

/// Hex sha256 of a string (API keys, prompts).
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

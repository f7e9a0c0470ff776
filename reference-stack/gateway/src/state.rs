//! Shared gateway state and its start-up: connect (with a retry window), migrate, upsert the
//! configured API keys, load the admin state, and spawn the background tasks (conversation
//! writer, job workers, delayed-retry mover, stale-job reaper, autoscaler, admin-state
//! refresher).

use crate::admin::AdminState;
use crate::cache::Redis;
use crate::config::Config;
use crate::db::{self, Conversation};
use crate::jobs::WorkerPool;
use crate::metrics::Metrics;
use deadpool_postgres::Pool;
use parking_lot::RwLock;
use std::ops::Deref;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Start-up failures; each names the component that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("redis unreachable at start ({url_hint}): {source}")]
    Redis {
        url_hint: String,
        source: redis::RedisError,
    },
    #[error("postgres unreachable at start ({url_hint}): {source}")]
    Postgres {
        url_hint: String,
        source: db::DbError,
    },
    #[error("postgres migration failed: {0}")]
    Migrate(db::DbError),
    #[error("postgres: storing the configured API keys failed: {0}")]
    Keys(db::DbError),
}

pub struct Inner {
    pub cfg: Config,
    pub redis: Redis,
    pub db: Pool,
    pub metrics: Metrics,
    pub admin: RwLock<Arc<AdminState>>,
    pub conv_tx: mpsc::Sender<Conversation>,
    pub workers: WorkerPool,
    /// Second-level API-key cache in process memory (see [`crate::auth`]).
    pub key_cache: crate::auth::LocalKeyCache,
    /// In-flight `/v1/*` requests (the shedding counter).
    pub v1_in_flight: AtomicUsize,
    /// The cost budget's spend counter and decision ([`crate::budget`]).
    pub budget: crate::budget::Budget,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// Cheap-to-clone handle on [`Inner`].
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Host and port of a URL without credentials, for error messages.
pub fn url_hint(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    host.split('/').next().unwrap_or(host).to_string()
}

impl AppState {
    fn build(cfg: Config, redis: Redis, db: Pool) -> (AppState, mpsc::Receiver<Conversation>) {
        let (conv_tx, conv_rx) = mpsc::channel(10_000);
        let st = AppState(Arc::new(Inner {
            admin: RwLock::new(Arc::new(AdminState::default())),
            cfg,
            redis,
            db,
            metrics: Metrics::default(),
            conv_tx,
            workers: WorkerPool::default(),
            key_cache: Default::default(),
            v1_in_flight: AtomicUsize::new(0),
            budget: Default::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }));
        (st, conv_rx)
    }

    /// A state with no Redis and an unreachable Postgres, for router unit tests: everything
    /// that needs a backend answers 503.
    pub fn detached(cfg: Config) -> AppState {
        let pool = db::pool("postgres://nobody@127.0.0.1:1/none", 1).expect("static url");
        AppState::build(cfg, Redis::detached(), pool).0
    }

    /// Connects to Redis and Postgres, migrates, and starts every background task.
    pub async fn start(cfg: Config) -> Result<AppState, StartError> {
        let within = cfg.startup_timeout;
        let redis = Redis::connect(&cfg.redis_url.0, within)
            .await
            .map_err(|source| StartError::Redis {
                url_hint: url_hint(&cfg.redis_url.0),
                source,
            })?;
        let pg_err = |source| StartError::Postgres {
            url_hint: url_hint(&cfg.database_url.0),
            source,
        };
        let pool = db::pool(&cfg.database_url.0, cfg.db_pool).map_err(pg_err)?;
        db::wait_ready(&pool, within).await.map_err(pg_err)?;
        db::migrate(&pool).await.map_err(StartError::Migrate)?;
        for (key_id, role, key) in [
            ("admin", "admin", &cfg.admin_key),
            ("user", "user", &cfg.user_key),
        ] {
            if let Some(k) = key {
                db::upsert_key(&pool, key_id, &crate::cache::sha256_hex(&k.0), role)
                    .await
                    .map_err(StartError::Keys)?;
            }
        }
        let (st, conv_rx) = AppState::build(cfg, redis, pool);
        crate::admin::load_initial(&st).await;
        st.tasks
            .spawn(crate::chat::conversation_writer(st.clone(), conv_rx));
        st.tasks.spawn(crate::admin::refresher(st.clone()));
        st.tasks.spawn(crate::jobs::delayed_mover(st.clone()));
        st.tasks.spawn(crate::jobs::reaper(st.clone()));
        let min = st.admin_snapshot().workers_or(&st.cfg).0;
        st.workers.scale_to(&st, min);
        st.tasks.spawn(crate::autoscaler::run(st.clone()));
        st.tasks.spawn(crate::budget::run(st.clone()));
        Ok(st)
    }

    pub fn admin_snapshot(&self) -> Arc<AdminState> {
        self.admin.read().clone()
    }

    /// Stops the background tasks and workers (each worker finishes its current job) and
    /// flushes pending conversation rows; waits at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.shutdown.cancel();
        self.workers.scale_to(self, 0);
        self.tasks.close();
        let all = async {
            self.tasks.wait().await;
            self.workers.wait_all().await;
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shutdown grace period ran out"
            );
        }
        self.metrics.workers_current.set(self.workers.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_hint_drops_credentials_and_path() {
        assert_eq!(
            super::url_hint("postgres://u:secret@127.0.0.1:5/db"),
            "127.0.0.1:5"
        );
        assert_eq!(super::url_hint("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    }
}

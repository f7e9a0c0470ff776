//! Dependency health during load (`dependencies:`): Redis and PostgreSQL read from the
//! services themselves while the load runs — Redis `INFO` (evicted keys, used memory,
//! connected clients), PostgreSQL `pg_stat_database` (deadlocks) and `pg_stat_activity`
//! against `max_connections` — and judged as `dependency` checks when the run is over, so a
//! run that "passed" while Redis evicted keys or PostgreSQL ran out of connections fails.
//!
//! A task of its own reads both services every `every`, each read bounded by a timeout; the
//! worst values seen are kept ([`Observed`]). Counters (evictions, deadlocks) are judged on
//! their increase over the run (the first reading is the baseline). A failed read is counted
//! and logged once per change of reason; a service never read fails its checks with "no
//! data". The judging ([`judge_redis`], [`judge_postgres`]) is pure and unit-tested.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{Action, Conclusion, Controller, End, StartCtx, Tick};
use crate::checks::{CheckKind, CheckResult};
use crate::spec::{DependencySpec, PostgresHealth, RedisHealth, RunSpec};

/// A read slower than this fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a read of a service failed.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error("redis: {0} (check `dependencies.redis.url`)")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0} (check `dependencies.postgres.url`)")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("redis INFO has no `{0}` field")]
    MissingInfo(&'static str),
    #[error("{0}: no answer within {READ_TIMEOUT:?}")]
    Timeout(&'static str),
}

/// One service's readings over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub reads: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Redis `evicted_keys` / PostgreSQL `deadlocks` at the first and the last reading.
    pub counter_first: Option<u64>,
    pub counter_last: Option<u64>,
    /// Highest `used_memory` (Redis) seen.
    pub peak_memory: u64,
    /// Highest `connected_clients` (Redis) / connections (PostgreSQL) seen.
    pub peak_clients: u64,
    /// PostgreSQL's `max_connections`.
    pub max_connections: Option<u64>,
}

impl Observed {
    fn counter_increase(&self) -> Option<u64> {
        Some(self.counter_last?.saturating_sub(self.counter_first?))
    }

    fn no_data(&self) -> String {
        match &self.last_error {
            Some(e) => format!("no data ({e})"),
            None => "no data".to_string(),
        }
    }
}

/// Fields of a Redis `INFO` reply (`name:value` lines).
pub fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

fn check(name: String, passed: bool, expected: String, observed: String) -> CheckResult {
    CheckResult {
        name,
        kind: CheckKind::Dependency,
        passed,
        expected,
        observed,
        runbook: None,
    }
}

/// Redis's checks from what was observed.
pub fn judge_redis(spec: &RedisHealth, o: &Observed) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let seen = o.reads > 0;
    out.push(match o.counter_increase() {
        Some(n) => check(
            "redis evicted_keys".into(),
            n <= spec.max_evicted_keys,
            format!("<={}", spec.max_evicted_keys),
            format!("{n} evicted during the run"),
        ),
        None => check(
            "redis evicted_keys".into(),
            false,
            format!("<={}", spec.max_evicted_keys),
            o.no_data(),
        ),
    });
    if let Some(max) = spec.max_memory {
        out.push(check(
            "redis used_memory".into(),
            seen && o.peak_memory <= max,
            format!("<={max} bytes"),
            if seen {
                format!("peak {} bytes", o.peak_memory)
            } else {
                o.no_data()
            },
        ));
    }
    if let Some(max) = spec.max_clients {
        out.push(check(
            "redis connected_clients".into(),
            seen && o.peak_clients <= max,
            format!("<={max}"),
            if seen {
                format!("peak {}", o.peak_clients)
            } else {
                o.no_data()
            },
        ));
    }
    out
}

/// PostgreSQL's checks from what was observed.
pub fn judge_postgres(spec: &PostgresHealth, o: &Observed) -> Vec<CheckResult> {
    let conn_name = "postgres connections".to_string();
    let conn = match o.max_connections.filter(|_| o.reads > 0) {
        Some(max) => {
            let bound = max.saturating_sub(spec.connection_margin);
            check(
                conn_name,
                o.peak_clients <= bound,
                format!(
                    "<={bound} (max_connections {max} - {})",
                    spec.connection_margin
                ),
                format!("peak {}", o.peak_clients),
            )
        }
        None => check(
            conn_name,
            false,
            format!("<=max_connections - {}", spec.connection_margin),
            o.no_data(),
        ),
    };
    let dead = match o.counter_increase() {
        Some(n) => check(
            "postgres deadlocks".into(),
            n <= spec.max_deadlocks,
            format!("<={}", spec.max_deadlocks),
            format!("{n} during the run"),
        ),
        None => check(
            "postgres deadlocks".into(),
            false,
            format!("<={}", spec.max_deadlocks),
            o.no_data(),
        ),
    };
    vec![conn, dead]
}

fn lock(m: &Mutex<Observed>) -> std::sync::MutexGuard<'_, Observed> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn failed(o: &Mutex<Observed>, e: DependencyError) {
    let mut o = lock(o);
    o.errors += 1;
    let reason = e.to_string();
    if o.last_error.as_deref() != Some(reason.as_str()) {
        tracing::warn!("dependency read failed: {reason}");
    }
    o.last_error = Some(reason);
}

async fn read_redis(
    client: &redis::Client,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    o: &Mutex<Observed>,
) -> Result<(), DependencyError> {
    // One connection for the run, opened again after a failure.
    let c = match conn {
        Some(c) => c,
        None => conn.insert(client.get_multiplexed_async_connection().await?),
    };
    let info: String = match redis::cmd("INFO").query_async(c).await {
        Ok(i) => i,
        Err(e) => {
            *conn = None;
            return Err(e.into());
        }
    };
    let evicted =
        info_field(&info, "evicted_keys").ok_or(DependencyError::MissingInfo("evicted_keys"))?;
    let memory =
        info_field(&info, "used_memory").ok_or(DependencyError::MissingInfo("used_memory"))?;
    let clients = info_field(&info, "connected_clients")
        .ok_or(DependencyError::MissingInfo("connected_clients"))?;
    let mut o = lock(o);
    o.reads += 1;
    o.counter_first.get_or_insert(evicted);
    o.counter_last = Some(evicted);
    o.peak_memory = o.peak_memory.max(memory);
    // Our own connection is one of them.
    o.peak_clients = o.peak_clients.max(clients.saturating_sub(1));
    Ok(())
}

async fn read_postgres(
    pg: &tokio_postgres::Client,
    o: &Mutex<Observed>,
) -> Result<(), DependencyError> {
    let row = pg
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8, \
             current_setting('max_connections')::int8, \
             (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())::int8",
            &[],
        )
        .await?;
    let (conns, max, deadlocks): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let mut o = lock(o);
    o.reads += 1;
    o.max_connections = Some(max.max(0) as u64);
    // Our own connection is one of them.
    o.peak_clients = o.peak_clients.max((conns - 1).max(0) as u64);
    o.counter_first.get_or_insert(deadlocks.max(0) as u64);
    o.counter_last = Some(deadlocks.max(0) as u64);
    Ok(())
}

async fn run_task(
    spec: DependencySpec,
    redis_obs: Arc<Mutex<Observed>>,
    pg_obs: Arc<Mutex<Observed>>,
    stop: CancellationToken,
) {
    let redis_client = match spec
        .redis
        .as_ref()
        .map(|r| redis::Client::open(r.url.as_str()))
    {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            failed(&redis_obs, e.into());
            None
        }
        None => None,
    };
    let mut redis_conn = None;
    let mut pg: Option<tokio_postgres::Client> = None;
    let mut every = tokio::time::interval(spec.every);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Some(c) = &redis_client {
            match tokio::time::timeout(READ_TIMEOUT, read_redis(c, &mut redis_conn, &redis_obs))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed(&redis_obs, e),
                Err(_) => {
                    redis_conn = None;
                    failed(&redis_obs, DependencyError::Timeout("redis"))
                }
            }
        }
        if let Some(p) = &spec.postgres {
            if pg.as_ref().is_none_or(|c| c.is_closed()) {
                let connect = tokio_postgres::connect(&p.url, tokio_postgres::NoTls);
                match tokio::time::timeout(READ_TIMEOUT, connect).await {
                    Ok(Ok((client, connection))) => {
                        tokio::spawn(async move {
                            if let Err(e) = connection.await {
                                tracing::warn!("dependency postgres connection ended: {e}");
                            }
                        });
                        pg = Some(client);
                    }
                    Ok(Err(e)) => failed(&pg_obs, e.into()),
                    Err(_) => failed(&pg_obs, DependencyError::Timeout("postgres")),
                }
            }
            if let Some(c) = &pg {
                match tokio::time::timeout(READ_TIMEOUT, read_postgres(c, &pg_obs)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed(&pg_obs, e),
                    Err(_) => failed(&pg_obs, DependencyError::Timeout("postgres")),
                }
            }
        }
    }
}

/// The dependency checks of a run.
pub struct DependencyHealth {
    spec: DependencySpec,
    redis: Arc<Mutex<Observed>>,
    postgres: Arc<Mutex<Observed>>,
}

impl DependencyHealth {
    /// None when the plan has no `dependencies:`.
    pub fn new(spec: &RunSpec) -> Option<DependencyHealth> {
        Some(DependencyHealth {
            spec: spec.dependencies.clone()?,
            redis: Arc::default(),
            postgres: Arc::default(),
        })
    }
}

impl Controller for DependencyHealth {
    fn name(&self) -> &'static str {
        "dependencies"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        ctx.tasks.spawn(run_task(
            self.spec.clone(),
            self.redis.clone(),
            self.postgres.clone(),
            ctx.stop.clone(),
        ));
        Vec::new()
    }

    fn on_tick(&mut self, _tick: &Tick<'_>) -> Vec<Action> {
        Vec::new()
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        let mut checks = Vec::new();
        if let Some(r) = &self.spec.redis {
            checks.extend(judge_redis(r, &lock(&self.redis)));
        }
        if let Some(p) = &self.spec.postgres {
            checks.extend(judge_postgres(p, &lock(&self.postgres)));
        }
        Conclusion {
            checks,
            sections: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_spec() -> RedisHealth {
        RedisHealth {
            url: "redis://127.0.0.1:1".into(),
            max_evicted_keys: 0,
            max_memory: Some(1000),
            max_clients: Some(5),
        }
    }

    #[test]
    fn info_fields() {
        let info = "# Memory\r\nused_memory:1024\r\nused_memory_human:1.00K\r\n# Stats\r\nevicted_keys:3\r\n";
        assert_eq!(info_field(info, "used_memory"), Some(1024));
        assert_eq!(info_field(info, "evicted_keys"), Some(3));
        assert_eq!(info_field(info, "used_memory_human"), None);
        assert_eq!(info_field(info, "connected_clients"), None);
    }

    #[test]
    fn evictions_during_the_run_fail() {
        let mut o = Observed {
            reads: 3,
            counter_first: Some(10),
            counter_last: Some(10),
            peak_memory: 900,
            peak_clients: 5,
            ..Observed::default()
        };
        assert!(judge_redis(&redis_spec(), &o).iter().all(|c| c.passed));
        o.counter_last = Some(12);
        o.peak_memory = 1001;
        let c = judge_redis(&redis_spec(), &o);
        assert!(!c[0].passed && c[0].observed == "2 evicted during the run");
        assert!(!c[1].passed);
        assert!(c[2].passed);
    }

    #[test]
    fn never_read_is_no_data_not_a_pass() {
        let o = Observed {
            errors: 2,
            last_error: Some("redis: refused".into()),
            ..Observed::default()
        };
        let c = judge_redis(&redis_spec(), &o);
        assert!(c
            .iter()
            .all(|c| !c.passed && c.observed.starts_with("no data")));
        let p = PostgresHealth {
            url: "postgres://x".into(),
            connection_margin: 10,
            max_deadlocks: 0,
        };
        assert!(judge_postgres(&p, &o).iter().all(|c| !c.passed));
    }

    #[test]
    fn postgres_connections_under_the_margin() {
        let p = PostgresHealth {
            url: "postgres://x".into(),
            connection_margin: 10,
            max_deadlocks: 0,
        };
        let mut o = Observed {
            reads: 2,
            max_connections: Some(100),
            peak_clients: 90,
            counter_first: Some(1),
            counter_last: Some(1),
            ..Observed::default()
        };
        assert!(judge_postgres(&p, &o).iter().all(|c| c.passed));
        o.peak_clients = 91;
        o.counter_last = Some(2);
        assert!(judge_postgres(&p, &o).iter().all(|c| !c.passed));
    }
}

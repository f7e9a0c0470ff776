//! Async jobs: `POST /v1/jobs` stores the job in Postgres and pushes its id on the Redis list
//! `lg:jobs:queue`; a pool of workers per instance pops ids (`BRPOP`, each worker on its own
//! connection), runs one attempt, and records the outcome in Postgres.
//!
//! Job body: any JSON object with a string `kind`. Simulation knobs in the body:
//! `work_ms` (default `GATEWAY_JOB_WORK_MS`), `fail_times` (the first n attempts fail),
//! `kind: "poison"` (every attempt fails).
//!
//! A failed attempt is retried after `GATEWAY_JOB_BACKOFF_BASE_MS × 2^(attempt-1)` (capped at
//! 60 s) through the sorted set `lg:jobs:delayed`, which a mover task drains into the queue
//! when due; after `GATEWAY_JOB_MAX_ATTEMPTS` attempts the job is `dead` and its id is pushed on
//! `lg:jobs:dlq`. States: queued → running → succeeded | retrying → ... | dead.
//!
//! `POST /v1/jobs` → 202 `{"id": "<uuid>", "state": "queued"}` (header `Location`);
//! 429 + `Retry-After: 2` when the queue holds `GATEWAY_QUEUE_LIMIT` ids.
//! `GET /v1/jobs/{id}` → 200 `{"id","kind","state","status","attempts","max_attempts",
//! "last_error","result","payload","created_ms","updated_ms"}` or 404; `status` is the coarse
//! view for pollers: `pending` (queued, running, retrying) | `done` (succeeded) | `failed` (dead).
//!
//! A job belongs to the key that submitted it: another user key gets 404 for it, as for a
//! missing job; admin keys see every job.
//!
//! A job whose worker process died mid-attempt (still `running` after
//! [`STALE_AFTER`]) is put back as `retrying` by a reaper task in every instance.

use crate::auth::Caller;
use crate::cache::{DELAYED, DLQ, QUEUE};
use crate::error::JsonBody;
use crate::metrics::OutcomeLabels;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub async fn submit(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let payload = body;
    crate::error::reject_nul_json("body", &payload)?;
    let kind = payload
        .get("kind")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("field `kind` (a non-empty string) is required".into())
        })?
        .to_string();
    for field in ["fail_times", "work_ms"] {
        if let Some(v) = payload.get(field) {
            if v.as_u64().is_none() {
                return Err(ApiError::BadRequest(format!(
                    "field `{field}` must be a whole number, got {v}"
                )));
            }
        }
    }
    let mut c = st.redis.conn()?;
    let depth: u64 = redis::cmd("LLEN").arg(QUEUE).query_async(&mut c).await?;
    st.metrics.queue_depth.set(depth as i64);
    if depth >= st.cfg.queue_limit as u64 {
        st.metrics.shed("queue_full");
        return Err(ApiError::Shed {
            reason: "queue_full",
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: 2,
        });
    }
    let id = Uuid::new_v4();
    crate::db::insert_job(
        &st.db,
        id,
        &caller.key_id,
        &kind,
        &payload,
        st.cfg.job_max_attempts as i32,
    )
    .await?;
    let pushed: redis::RedisResult<u64> = redis::cmd("LPUSH")
        .arg(QUEUE)
        .arg(id.to_string())
        .query_async(&mut c)
        .await;
    if let Err(e) = pushed {
        let _ = crate::db::finish_attempt(&st.db, id, "dead", Some("enqueue failed"), None).await;
        return Err(e.into());
    }
    st.metrics.jobs_enqueued.inc();
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "state": "queued", "status": "pending"})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn get_job(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::db::JobRow>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("job id {id:?} is not a UUID")))?;
    crate::db::get_job(&st.db, id, caller.owner_filter())
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("job"))
}

/// Retry delay after `attempt` failed attempts (1-based).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u64 << attempt.saturating_sub(1).min(20);
    (base.saturating_mul(factor as u32)).min(Duration::from_secs(60))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
pub(crate) struct PoolInner {
    running: Vec<(CancellationToken, JoinHandle<()>)>,
    stopping: Vec<JoinHandle<()>>,
    next_id: u64,
}

/// This instance's job workers.
#[derive(Default)]
pub struct WorkerPool {
    inner: Mutex<PoolInner>,
    /// Workers past their start-up (`GATEWAY_WORKER_START_MS`) and not yet stopped.
    ready: std::sync::atomic::AtomicI64,
}

impl WorkerPool {
    /// The pool's lock, for `POST /debug/panic` only.
    pub(crate) fn lock_for_debug_panic(&self) -> parking_lot::MutexGuard<'_, PoolInner> {
        self.inner.lock()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts or stops workers until `n` run; a stopped worker finishes its current job.
    pub fn scale_to(&self, st: &AppState, n: usize) {
        let mut p = self.inner.lock();
        p.stopping.retain(|h| !h.is_finished());
        while p.running.len() > n {
            let (tok, h) = p.running.pop().expect("non-empty");
            tok.cancel();
            p.stopping.push(h);
        }
        while p.running.len() < n && !st.shutdown.is_cancelled() {
            let tok = st.shutdown.child_token();
            p.next_id += 1;
            let h = tokio::spawn(worker(st.clone(), p.next_id, tok.clone()));
            p.running.push((tok, h));
        }
        // With a start-up delay the workers themselves count in and out as they get ready
        // and stop (see `worker`); without, the pool's size is what runs.
        if st.cfg.worker_start.is_zero() {
            st.metrics.workers_current.set(p.running.len() as i64);
        }
    }

    /// Waits for every worker task (call after `scale_to(0)`).
    pub async fn wait_all(&self) {
        let handles: Vec<JoinHandle<()>> = {
            let mut p = self.inner.lock();
            let mut hs: Vec<_> = p.stopping.drain(..).collect();
            hs.extend(p.running.drain(..).map(|(t, h)| {
                t.cancel();
                h
            }));
            hs
        };
        for h in handles {
            let _ = h.await;
        }
    }
}

async fn worker(st: AppState, id: u64, stop: CancellationToken) {
    use std::sync::atomic::Ordering;
    let starting = st.cfg.worker_start;
    if !starting.is_zero() {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(starting) => {}
        }
        let n = st.workers.ready.fetch_add(1, Ordering::SeqCst) + 1;
        st.metrics.workers_current.set(n);
    }
    tracing::debug!(worker = id, "worker started");
    let mut conn: Option<redis::aio::ConnectionManager> = None;
    while !stop.is_cancelled() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match st.redis.dedicated().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(worker = id, error = %e, "worker cannot reach redis");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            },
        };
        // Never cancel a BRPOP in flight (the popped id would be lost): poll with a short
        // timeout and check `stop` between polls.
        let popped: redis::RedisResult<Option<(String, String)>> =
            redis::cmd("BRPOP").arg(QUEUE).arg(0.5).query_async(c).await;
        match popped {
            Ok(Some((_, job))) => run_attempt(&st, &job).await,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(worker = id, error = %e, "BRPOP failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if !starting.is_zero() {
        let n = st.workers.ready.fetch_sub(1, Ordering::SeqCst) - 1;
        st.metrics.workers_current.set(n);
    }
    tracing::debug!(worker = id, "worker stopped");
}

async fn schedule(st: &AppState, job: &str, delay: Duration) -> redis::RedisResult<()> {
    let mut c = st.redis.conn()?;
    redis::cmd("ZADD")
        .arg(DELAYED)
        .arg(now_ms() + delay.as_millis() as u64)
        .arg(job)
        .query_async::<()>(&mut c)
        .await
}

async fn run_attempt(st: &AppState, job: &str) {
    let Ok(id) = Uuid::parse_str(job) else {
        tracing::warn!(job, "queue held a non-UUID entry; dropped");
        return;
    };
    let claimed = match crate::db::start_attempt(&st.db, id).await {
        Ok(Some(x)) => x,
        Ok(None) => return, // already finished or claimed elsewhere
        Err(e) => {
            tracing::warn!(job, error = %e, "cannot claim job; re-queued in 1 s");
            if let Err(e) = schedule(st, job, Duration::from_secs(1)).await {
                tracing::error!(job, error = %e, "job lost: neither postgres nor redis available");
            }
            return;
        }
    };
    let (kind, payload, attempts, max_attempts) = claimed;
    let work_ms = payload
        .get("work_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(st.cfg.job_work_ms)
        .min(60_000);
    let fail_times = payload
        .get("fail_times")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(work_ms)).await;
    let failure = if kind == "poison" {
        Some("poison job: every attempt fails".to_string())
    } else if (attempts as u64) <= fail_times {
        Some(format!("planned failure {attempts} of {fail_times}"))
    } else {
        None
    };
    let m = &st.metrics;
    let outcome = match failure {
        None => {
            m.jobs_processed
                .get_or_create(&OutcomeLabels {
                    outcome: "succeeded",
                })
                .inc();
            let result = serde_json::json!({"processed_by": st.cfg.instance, "attempts": attempts});
            crate::db::finish_attempt(&st.db, id, "succeeded", None, Some(&result)).await
        }
        Some(err) if attempts >= max_attempts => {
            m.jobs_processed
                .get_or_create(&OutcomeLabels { outcome: "failed" })
                .inc();
            m.jobs_dead.inc();
            tracing::info!(job, attempts, error = %err, "job dead-lettered");
            let r = crate::db::finish_attempt(&st.db, id, "dead", Some(&err), None).await;
            if let Ok(mut c) = st.redis.conn() {
                let pushed: redis::RedisResult<u64> = redis::cmd("LPUSH")
                    .arg(DLQ)
                    .arg(job)
                    .query_async(&mut c)
                    .await;
                if let Err(e) = pushed {
                    tracing::warn!(job, error = %e, "DLQ push failed (state in postgres is dead)");
                }
            }
            r
        }
        Some(err) => {
            m.jobs_processed
                .get_or_create(&OutcomeLabels { outcome: "failed" })
                .inc();
            m.jobs_retried.inc();
            let delay = backoff(st.cfg.job_backoff_base, attempts as u32);
            tracing::debug!(job, attempts, delay_ms = delay.as_millis() as u64, error = %err, "job retry scheduled");
            let r = crate::db::finish_attempt(&st.db, id, "retrying", Some(&err), None).await;
            if let Err(e) = schedule(st, job, delay).await {
                tracing::warn!(job, error = %e, "retry scheduling failed");
            }
            r
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(job, error = %e, "recording job outcome failed");
    }
}

/// A `running` job older than this lost its worker (work is capped at 60 s).
pub const STALE_AFTER: Duration = Duration::from_secs(90);

/// Re-queues jobs whose worker died mid-attempt, every 5 s until shutdown.
pub async fn reaper(st: AppState) {
    loop {
        tokio::select! {
            _ = st.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        match crate::db::reclaim_stale(&st.db, STALE_AFTER.as_secs_f64()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::warn!(job = %id, "job lost its worker; re-queued");
                    if let Err(e) = schedule(&st, &id.to_string(), Duration::ZERO).await {
                        tracing::warn!(job = %id, error = %e, "re-queue failed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "reaper skipped"),
        }
    }
}

const MOVE_DUE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
return #ids";

/// Moves due retries from `lg:jobs:delayed` to the queue (atomically, so several instances
/// can run it together).
pub async fn delayed_mover(st: AppState) {
    let period =
        (st.cfg.job_backoff_base / 4).clamp(Duration::from_millis(20), Duration::from_millis(200));
    let script = redis::Script::new(MOVE_DUE);
    loop {
        tokio::select! {
            _ = st.shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Ok(mut c) = st.redis.conn() else { continue };
        let moved: redis::RedisResult<u64> = script
            .key(DELAYED)
            .key(QUEUE)
            .arg(now_ms())
            .invoke_async(&mut c)
            .await;
        if let Err(e) = moved {
            tracing::debug!(error = %e, "delayed mover failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), Duration::from_millis(100));
        assert_eq!(backoff(b, 2), Duration::from_millis(200));
        assert_eq!(backoff(b, 4), Duration::from_millis(800));
        assert_eq!(backoff(b, 40), Duration::from_secs(60));
    }
}

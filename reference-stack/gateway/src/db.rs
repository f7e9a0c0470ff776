//! PostgreSQL: the connection pool, idempotent migrations and every query (parameterized
//! only; hot statements go through the pool's prepared-statement cache).
//!
//! Migrations are `CREATE TABLE IF NOT EXISTS ...` run in one transaction that first takes
//! `pg_advisory_xact_lock(MIGRATION_LOCK)`, so several instances can start together.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Advisory lock key for migrations ("loadgate" in ASCII, truncated).
pub const MIGRATION_LOCK: i64 = 0x6c6f_6164_6761_7465;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid postgres URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("query: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("pool build: {0}")]
    Build(String),
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS conversations (
        id UUID PRIMARY KEY,
        key_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        prompt_version TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        prompt_tokens INT NOT NULL,
        completion_tokens INT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        cached BOOLEAN NOT NULL,
        instance TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS jobs (
        id UUID PRIMARY KEY,
        key_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload JSONB NOT NULL,
        state TEXT NOT NULL,
        attempts INT NOT NULL DEFAULT 0,
        max_attempts INT NOT NULL,
        last_error TEXT,
        result JSONB,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS notes (
        id UUID PRIMARY KEY,
        key_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
];

/// Builds a pool; no connection is made until first use.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let mut pg = tokio_postgres::Config::from_str(url).map_err(DbError::Url)?;
    pg.connect_timeout(Duration::from_secs(2));
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(3)))
        .create_timeout(Some(Duration::from_secs(2)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| DbError::Build(e.to_string()))
}

/// Retries `SELECT 1` until it works or `within` has passed.
pub async fn wait_ready(pool: &Pool, within: Duration) -> Result<(), DbError> {
    let deadline = Instant::now() + within;
    loop {
        match ping(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let c = pool.get().await?;
    c.simple_query("SELECT 1").await?;
    Ok(())
}

pub async fn migrate(pool: &Pool) -> Result<(), DbError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    for m in MIGRATIONS {
        tx.batch_execute(m).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stores (or moves) a key: its hash belongs to `key_id` only afterwards.
/// Advisory lock id serializing API-key upserts across instances.
const KEYS_LOCK_ID: i64 = 0x6c67_6b65_7973; // "lgkeys"

pub async fn upsert_key(
    pool: &Pool,
    key_id: &str,
    key_hash: &str,
    role: &str,
) -> Result<(), DbError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    // Several instances start together against a fresh database and upsert the same keys;
    // the DELETE + INSERT pair (key_hash is UNIQUE too) must not interleave between them.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK_ID])
        .await?;
    tx.execute(
        "DELETE FROM api_keys WHERE key_hash = $1 AND key_id <> $2",
        &[&key_hash, &key_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO api_keys (key_id, key_hash, role) VALUES ($1, $2, $3)
         ON CONFLICT (key_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, role = EXCLUDED.role",
        &[&key_id, &key_hash, &role],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// (key_id, role) for a key hash.
pub async fn lookup_key(pool: &Pool, key_hash: &str) -> Result<Option<(String, String)>, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached("SELECT key_id, role FROM api_keys WHERE key_hash = $1")
        .await?;
    let row = c.query_opt(&st, &[&key_hash]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// One row of the `conversations` table.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: Uuid,
    pub key_id: String,
    pub model_version: String,
    pub prompt_version: String,
    pub prompt: String,
    pub response: String,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cost_usd: f64,
    pub cached: bool,
    pub instance: String,
}

/// Inserts a batch in one statement (arrays unnested server-side).
pub async fn insert_conversations(pool: &Pool, rows: &[Conversation]) -> Result<u64, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "INSERT INTO conversations (id, key_id, model_version, prompt_version, prompt, response,
                prompt_tokens, completion_tokens, cost_usd, cached, instance)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::text[], $7::int4[], $8::int4[], $9::float8[], $10::bool[], $11::text[])
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let key_ids: Vec<&str> = rows.iter().map(|r| r.key_id.as_str()).collect();
    let versions: Vec<&str> = rows.iter().map(|r| r.model_version.as_str()).collect();
    let pvs: Vec<&str> = rows.iter().map(|r| r.prompt_version.as_str()).collect();
    let prompts: Vec<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
    let responses: Vec<&str> = rows.iter().map(|r| r.response.as_str()).collect();
    let pt: Vec<i32> = rows.iter().map(|r| r.prompt_tokens).collect();
    let ct: Vec<i32> = rows.iter().map(|r| r.completion_tokens).collect();
    let cost: Vec<f64> = rows.iter().map(|r| r.cost_usd).collect();
    let cached: Vec<bool> = rows.iter().map(|r| r.cached).collect();
    let inst: Vec<&str> = rows.iter().map(|r| r.instance.as_str()).collect();
    Ok(c.execute(
        &st,
        &[
            &ids, &key_ids, &versions, &pvs, &prompts, &responses, &pt, &ct, &cost, &cached, &inst,
        ],
    )
    .await?)
}

/// Stores a note, or overwrites it when `key_id` owns it; false when another key owns `id`
/// (nothing is written).
pub async fn upsert_note(pool: &Pool, id: Uuid, key_id: &str, text: &str) -> Result<bool, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "INSERT INTO notes (id, key_id, text) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET text = EXCLUDED.text
             WHERE notes.key_id = EXCLUDED.key_id",
        )
        .await?;
    Ok(c.execute(&st, &[&id, &key_id, &text]).await? == 1)
}

/// A note's text; with `owner`, only when that key created it.
pub async fn get_note(
    pool: &Pool,
    id: Uuid,
    owner: Option<&str>,
) -> Result<Option<String>, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "SELECT text FROM notes WHERE id = $1 AND ($2::text IS NULL OR key_id = $2)",
        )
        .await?;
    Ok(c.query_opt(&st, &[&id, &owner]).await?.map(|r| r.get(0)))
}

/// A job row as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub state: String,
    /// Coarse view of `state` for pollers: `pending` | `done` | `failed`.
    pub status: &'static str,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub payload: serde_json::Value,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds.
    pub updated_ms: i64,
}

pub async fn insert_job(
    pool: &Pool,
    id: Uuid,
    key_id: &str,
    kind: &str,
    payload: &serde_json::Value,
    max_attempts: i32,
) -> Result<(), DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "INSERT INTO jobs (id, key_id, kind, payload, state, max_attempts)
             VALUES ($1, $2, $3, $4, 'queued', $5)",
        )
        .await?;
    c.execute(&st, &[&id, &key_id, &kind, payload, &max_attempts])
        .await?;
    Ok(())
}

/// A job; with `owner`, only when that key submitted it.
pub async fn get_job(
    pool: &Pool,
    id: Uuid,
    owner: Option<&str>,
) -> Result<Option<JobRow>, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "SELECT id, kind, state, attempts, max_attempts, last_error, result, payload,
                (extract(epoch FROM created_at) * 1000)::int8,
                (extract(epoch FROM updated_at) * 1000)::int8
             FROM jobs WHERE id = $1 AND ($2::text IS NULL OR key_id = $2)",
        )
        .await?;
    Ok(c.query_opt(&st, &[&id, &owner]).await?.map(|r| JobRow {
        id: r.get(0),
        kind: r.get(1),
        status: match r.get::<_, &str>(2) {
            "succeeded" => "done",
            "dead" => "failed",
            _ => "pending",
        },
        state: r.get(2),
        attempts: r.get(3),
        max_attempts: r.get(4),
        last_error: r.get(5),
        result: r.get(6),
        payload: r.get(7),
        created_ms: r.get(8),
        updated_ms: r.get(9),
    }))
}

/// Claims a queued or retrying job for one attempt: (kind, payload, attempts, max_attempts).
pub async fn start_attempt(
    pool: &Pool,
    id: Uuid,
) -> Result<Option<(String, serde_json::Value, i32, i32)>, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = now()
             WHERE id = $1 AND state IN ('queued', 'retrying')
             RETURNING kind, payload, attempts, max_attempts",
        )
        .await?;
    Ok(c.query_opt(&st, &[&id])
        .await?
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))))
}

/// Records the end of an attempt: state is succeeded, retrying or dead.
pub async fn finish_attempt(
    pool: &Pool,
    id: Uuid,
    state: &str,
    last_error: Option<&str>,
    result: Option<&serde_json::Value>,
) -> Result<(), DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "UPDATE jobs SET state = $2, last_error = COALESCE($3, last_error),
                result = COALESCE($4, result), updated_at = now()
             WHERE id = $1",
        )
        .await?;
    c.execute(&st, &[&id, &state, &last_error, &result]).await?;
    Ok(())
}

/// Jobs stuck in `running` longer than `stale_secs` (their worker died) go back to
/// `retrying`; returns their ids. Row-level atomic, so one instance wins each job.
pub async fn reclaim_stale(pool: &Pool, stale_secs: f64) -> Result<Vec<Uuid>, DbError> {
    let c = pool.get().await?;
    let st = c
        .prepare_cached(
            "UPDATE jobs SET state = 'retrying', last_error = 'worker lost mid-attempt',
                updated_at = now()
             WHERE state = 'running' AND updated_at < now() - make_interval(secs => $1)
             RETURNING id",
        )
        .await?;
    Ok(c.query(&st, &[&stale_secs])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

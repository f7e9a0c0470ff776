//! `POST /v1/chat`: per-key rate limit, version routing, drill faults, the response cache and
//! a simulated model; token and cost accounting; the conversation row goes to Postgres.
//!
//! Request: `{"prompt": "...", "prompt_version"?: "p1", "max_tokens"?: n, "model"?: "v1"|"v2"}`
//! (a request header `x-model-version: v1|v2` also pins the version).
//!
//! Response 200 (headers `x-model-version`, `x-cache: hit|miss`, `x-quality-score`, and
//! `x-budget-downgraded: v1->v2` when the cost budget ([`crate::budget`]) served the request
//! with the cheaper model; in the budget's throttle mode the expensive model's requests get
//! 429 + `Retry-After` instead):
//! ```json
//! {"id": "<uuid>", "model_version": "v1", "prompt_version": "p1", "output": "...",
//!  "usage": {"prompt_tokens": 3, "completion_tokens": 17, "total_tokens": 20},
//!  "cost_usd": 0.00004, "quality": 0.91, "cached": false, "instance": "gw-a"}
//! ```
//! Tokens and cost are reported per request in the body only (`/usage/total_tokens`,
//! `/cost_usd`). A cache hit costs nothing (`cost_usd: 0`) and is not counted in the token
//! metrics. `quality` (also the header `x-quality-score`) is a simulated answer-quality score
//! in 0.80-0.99, deterministic per (version, prompt version, prompt), minus the version's
//! `quality_drop` fault; the `cost_factor` fault multiplies `cost_usd`.
//!
//! The model is deterministic: output and completion length derive from
//! sha256(version, prompt_version, prompt); latency = base + per_token × completion tokens
//! (`GATEWAY_MODEL_V{1,2}_BASE_MS`, `_PER_TOKEN_MS`).
//!
//! Conversation rows are written asynchronously: the handler hands the row to a bounded
//! channel (10 000 rows) and a writer task inserts them in batches (up to
//! `GATEWAY_CONVERSATION_BATCH` rows per statement), so a cache hit costs no Postgres round
//! trip. A full channel or a failed insert drops rows and counts them in
//! `gateway_conversations_dropped_total`; pending rows are flushed at shutdown.

use crate::admin::Version;
use crate::auth::Caller;
use crate::db::Conversation;
use crate::error::JsonBody;
use crate::metrics::{VersionKindLabels, VersionLabels};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub prompt: String,
    #[serde(default)]
    pub prompt_version: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// What the simulated model produced (also what the cache stores).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Completion {
    pub output: String,
    pub usage: Usage,
    pub cost_usd: f64,
}

const WORDS: [&str; 32] = [
    "the",
    "model",
    "answers",
    "with",
    "a",
    "short",
    "and",
    "deterministic",
    "reply",
    "about",
    "load",
    "latency",
    "budget",
    "cache",
    "queue",
    "worker",
    "version",
    "canary",
    "token",
    "cost",
    "gateway",
    "redis",
    "postgres",
    "edge",
    "retry",
    "backoff",
    "shed",
    "limit",
    "metric",
    "signal",
    "drill",
    "result",
];

/// The simulated model: same inputs, same output.
pub fn simulate(
    version: Version,
    prompt_version: &str,
    prompt: &str,
    max_tokens: Option<u32>,
    price_per_1k: f64,
) -> Completion {
    use sha2::{Digest, Sha256};
    let seed = Sha256::digest(format!(
        "{}\u{0}{prompt_version}\u{0}{prompt}",
        version.as_str()
    ));
    let prompt_tokens = prompt.split_whitespace().count().max(1) as u32;
    let natural = 8 + (u16::from_be_bytes([seed[0], seed[1]]) % 57) as u32;
    let completion_tokens = natural.min(max_tokens.unwrap_or(u32::MAX).max(1));
    let mut out = String::with_capacity(completion_tokens as usize * 7);
    let mut block = seed;
    for i in 0..completion_tokens as usize {
        if i > 0 && i % 32 == 0 {
            block = Sha256::digest(block);
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(block[i % 32] % 32) as usize]);
    }
    let total = prompt_tokens + completion_tokens;
    Completion {
        output: out,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: total,
        },
        cost_usd: total as f64 / 1000.0 * price_per_1k,
    }
}

/// The simulated quality score of an answer: 0.80-0.99, deterministic per input.
pub fn quality_score(version: Version, prompt_version: &str, prompt: &str) -> f64 {
    use sha2::{Digest, Sha256};
    let seed = Sha256::digest(format!(
        "quality\u{0}{}\u{0}{prompt_version}\u{0}{prompt}",
        version.as_str()
    ));
    0.80 + (seed[0] % 20) as f64 / 100.0
}

/// Wait `d` exactly (to tens of microseconds): the whole milliseconds but the last 1.5 on
/// the tokio timer (which fires up to ~1 ms late), the rest by yielding to the runtime until
/// the deadline. Yielding keeps the worker serving other tasks and never parks it, so no
/// thread wake-up (the slow, jittery part of a sleep on a busy machine) sits in the delay;
/// the cost is that one worker stays busy for at most ~1.5 ms per delayed request.
pub async fn precise_delay(d: Duration) {
    let until = std::time::Instant::now() + d;
    let coarse = Duration::from_micros(1500);
    if d > coarse {
        tokio::time::sleep(d - coarse).await;
    }
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Simulated model latency for a completion.
pub fn model_latency(cfg: &crate::config::ModelConfig, completion_tokens: u32) -> Duration {
    Duration::from_secs_f64(
        ((cfg.base_ms + cfg.per_token_ms * completion_tokens as f64) / 1000.0).max(0.0),
    )
}

fn pick_version(
    st: &AppState,
    headers: &HeaderMap,
    body: &ChatRequest,
) -> Result<Version, ApiError> {
    let pinned = headers
        .get("x-model-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| body.model.clone());
    if let Some(p) = pinned {
        return Version::parse(&p).ok_or_else(|| {
            ApiError::BadRequest(format!("model {p:?} is unknown: use \"v1\" or \"v2\""))
        });
    }
    Ok(st.admin_snapshot().route(rand::random_range(0..100u8)))
}

pub async fn chat(
    caller: Caller,
    State(st): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let req = body;
    if req.prompt.trim().is_empty() {
        return Err(ApiError::BadRequest("prompt must not be empty".into()));
    }
    crate::error::reject_nul("prompt", &req.prompt)?;
    let requested = pick_version(&st, &headers, &req)?;
    let version = match crate::budget::route(
        &st.cfg.budget,
        st.budget.exceeded(),
        crate::budget::price_order(&st.cfg.models),
        requested,
    ) {
        crate::budget::Routing::Serve(v) => v,
        crate::budget::Routing::Downgrade { from, to } => {
            st.metrics
                .budget_downgrades
                .get_or_create(&crate::metrics::FromToLabels {
                    from: from.as_str(),
                    to: to.as_str(),
                })
                .inc();
            to
        }
        crate::budget::Routing::Throttle { retry_after_secs } => {
            st.metrics.budget_throttled.inc();
            return Err(ApiError::BudgetThrottled {
                version: requested.as_str(),
                retry_after_secs,
            });
        }
    };
    let vs = version.as_str();
    let prompt_version = req.prompt_version.clone().unwrap_or_else(|| "p1".into());
    crate::error::reject_nul("prompt_version", &prompt_version)?;
    let cache_key = format!(
        "lg:chat:{vs}:{prompt_version}:{}:{}",
        req.max_tokens.map(|m| m.to_string()).unwrap_or_default(),
        crate::cache::sha256_hex(&req.prompt)
    );
    // One Redis round trip: the per-key rate counter and the cache read.
    let (allowed, cached) = match st
        .redis
        .rate_and_get(&caller.key_id, st.cfg.rate_limit_per_sec, &cache_key)
        .await
    {
        Ok(x) => x,
        Err(e) if st.cfg.redis_fail_open => {
            tracing::debug!(error = %e, "rate limit and cache skipped: redis down");
            (true, None)
        }
        Err(e) => return Err(e.into()),
    };
    if !allowed {
        st.metrics.shed("rate_limit");
        return Err(ApiError::RateLimited {
            retry_after_secs: 1,
        });
    }

    // Drill faults apply to every request served by the version, cached or not.
    let fault = st.admin_snapshot().faults.get(&version).cloned();
    if let Some(f) = &fault {
        let delay = f.delay();
        if !delay.is_zero() {
            st.metrics
                .faults_injected
                .get_or_create(&VersionKindLabels {
                    version: vs,
                    kind: "latency",
                })
                .inc();
            if f.latency_us == 0 {
                tokio::time::sleep(delay).await;
            } else {
                precise_delay(delay).await;
            }
        }
        if f.error_rate > 0.0 && rand::random::<f64>() < f.error_rate {
            st.metrics
                .faults_injected
                .get_or_create(&VersionKindLabels {
                    version: vs,
                    kind: "error",
                })
                .inc();
            return Err(ApiError::InjectedFault { version: vs });
        }
    }

    let cached = cached.and_then(|s| serde_json::from_str::<Completion>(&s).ok());
    let hit = cached.is_some();
    let mut completion = match cached {
        Some(c) => {
            st.metrics.cache_hits.inc();
            Completion { cost_usd: 0.0, ..c }
        }
        None => {
            st.metrics.cache_misses.inc();
            let mc = &st.cfg.models[version.index()];
            let c = simulate(
                version,
                &prompt_version,
                &req.prompt,
                req.max_tokens,
                mc.price_per_1k,
            );
            tokio::time::sleep(model_latency(mc, c.usage.completion_tokens)).await;
            st.metrics
                .tokens
                .get_or_create(&VersionKindLabels {
                    version: vs,
                    kind: "prompt",
                })
                .inc_by(c.usage.prompt_tokens as u64);
            st.metrics
                .tokens
                .get_or_create(&VersionKindLabels {
                    version: vs,
                    kind: "completion",
                })
                .inc_by(c.usage.completion_tokens as u64);
            st.metrics
                .cost_usd
                .get_or_create(&VersionLabels { version: vs })
                .inc_by(c.cost_usd);
            st.budget.record(c.cost_usd);
            if let Ok(json) = serde_json::to_string(&c) {
                if let Err(e) = st
                    .redis
                    .set_ex(&cache_key, &json, st.cfg.cache_ttl_secs)
                    .await
                {
                    tracing::debug!(error = %e, "cache write failed");
                }
            }
            c
        }
    };
    let mut quality = quality_score(version, &prompt_version, &req.prompt);
    if let Some(f) = &fault {
        completion.cost_usd *= f.cost_factor.unwrap_or(1.0);
        quality = (quality - f.quality_drop).max(0.0);
    }
    let quality = (quality * 100.0).round() / 100.0;
    let id = uuid::Uuid::new_v4();
    let row = Conversation {
        id,
        key_id: caller.key_id,
        model_version: vs.to_string(),
        prompt_version: prompt_version.clone(),
        prompt: req.prompt,
        response: completion.output.clone(),
        prompt_tokens: completion.usage.prompt_tokens as i32,
        completion_tokens: completion.usage.completion_tokens as i32,
        cost_usd: completion.cost_usd,
        cached: hit,
        instance: st.cfg.instance.clone(),
    };
    if st.conv_tx.try_send(row).is_err() {
        st.metrics.conversations_dropped.inc();
    }
    let body = serde_json::json!({
        "id": id,
        "model_version": vs,
        "prompt_version": prompt_version,
        "output": completion.output,
        "usage": completion.usage,
        "cost_usd": completion.cost_usd,
        "quality": quality,
        "cached": hit,
        "instance": st.cfg.instance,
    });
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("x-model-version", HeaderValue::from_static(vs));
    h.insert(
        "x-cache",
        HeaderValue::from_static(if hit { "hit" } else { "miss" }),
    );
    if let Ok(q) = HeaderValue::from_str(&format!("{quality:.2}")) {
        h.insert("x-quality-score", q);
    }
    if requested != version {
        if let Ok(d) = HeaderValue::from_str(&format!("{}->{vs}", requested.as_str())) {
            h.insert("x-budget-downgraded", d);
        }
    }
    Ok(resp)
}

/// Batches conversation rows into Postgres until shutdown, then flushes what is pending.
pub async fn conversation_writer(st: AppState, mut rx: mpsc::Receiver<Conversation>) {
    let max = st.cfg.conversation_batch;
    let mut batch: Vec<Conversation> = Vec::with_capacity(max);
    loop {
        let stopping = tokio::select! {
            got = rx.recv() => match got {
                Some(row) => { batch.push(row); false }
                None => true,
            },
            _ = st.shutdown.cancelled() => true,
        };
        while batch.len() < max {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            flush(&st, &mut batch).await;
        }
        if stopping {
            while let Ok(row) = rx.try_recv() {
                batch.push(row);
                if batch.len() >= max {
                    flush(&st, &mut batch).await;
                }
            }
            if !batch.is_empty() {
                flush(&st, &mut batch).await;
            }
            return;
        }
    }
}

async fn flush(st: &AppState, batch: &mut Vec<Conversation>) {
    match crate::db::insert_conversations(&st.db, batch).await {
        Ok(_) => {
            st.metrics.conversations_written.inc_by(batch.len() as u64);
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = batch.len(), "conversation batch insert failed; rows dropped");
            st.metrics.conversations_dropped.inc_by(batch.len() as u64);
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_deterministic_and_versioned() {
        let a = simulate(Version::V1, "p1", "hello there", None, 0.002);
        let b = simulate(Version::V1, "p1", "hello there", None, 0.002);
        assert_eq!(a, b);
        assert_eq!(a.usage.prompt_tokens, 2);
        assert!((8..=64).contains(&a.usage.completion_tokens));
        assert_eq!(
            a.output.split(' ').count() as u32,
            a.usage.completion_tokens
        );
        let c = simulate(Version::V2, "p1", "hello there", None, 0.002);
        assert_ne!(a.output, c.output);
        let capped = simulate(Version::V1, "p1", "hello there", Some(3), 0.002);
        assert_eq!(capped.usage.completion_tokens, 3);
        assert!((a.cost_usd - a.usage.total_tokens as f64 * 0.002 / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn quality_is_deterministic_in_range() {
        let q = quality_score(Version::V1, "p1", "hello");
        assert_eq!(q, quality_score(Version::V1, "p1", "hello"));
        assert!((0.80..=0.99).contains(&q), "{q}");
    }

    #[tokio::test]
    async fn precise_delay_is_finer_than_a_timer_tick() {
        // 300 µs: a 1 ms timer tick would take 1-2 ms.
        let mut took = Vec::new();
        for _ in 0..20 {
            let t0 = std::time::Instant::now();
            precise_delay(Duration::from_micros(300)).await;
            took.push(t0.elapsed());
        }
        took.sort();
        assert!(took[0] >= Duration::from_micros(300), "{took:?}");
        // A quarter of them within 0.9 ms (generous for a busy machine), where the timer's
        // tick would make every one take a millisecond or more.
        assert!(took[5] < Duration::from_micros(900), "{took:?}");
    }

    #[test]
    fn latency_is_base_plus_per_token() {
        let mc = crate::config::ModelConfig {
            base_ms: 10.0,
            per_token_ms: 0.5,
            price_per_1k: 0.0,
        };
        assert_eq!(model_latency(&mc, 20), Duration::from_millis(20));
    }
}

//! Admin API (admin role only): routing between model versions, per-version fault knobs for
//! drills, worker pool bounds, the dead-letter queue.
//!
//! The state is shared by every instance through Redis key `lg:admin` (JSON); a write goes
//! to Redis and to the local copy at once, and each instance re-reads Redis every
//! `GATEWAY_ADMIN_REFRESH_MS`, so a change made through one instance reaches the others
//! within that period. Request handlers read only the local copy.
//!
//! Routing: `active` is the blue/green switch (`v1` or `v2`); with `active = v1`,
//! `canary_weight` percent of chat requests go to `v2` (0 = none, 100 = all); with
//! `active = v2` every request goes to `v2`. A request can pin a version with the request
//! header `x-model-version` or body field `model`.
//!
//! Faults (`PUT /admin/faults/{version}`, drill knobs applied to every chat request the
//! version serves, cached or not): `latency_ms` and `latency_us` add latency (they add up;
//! `latency_us` is microseconds, for delays finer than a millisecond, e.g. +20% of a 2.4 ms
//! p95 = 480 µs: the whole milliseconds wait on the tokio timer, the last 1.5 ms by yielding
//! to the runtime until the deadline (no thread wake-up in the delay), so it is exact to tens
//! of microseconds where a 1 ms timer tick would add 1-2 ms); `error_rate` answers that share
//! with 500; `cost_factor` multiplies the reported `cost_usd` (a cache hit still costs 0);
//! `quality_drop` is subtracted from the reported quality score (floored at 0).
//!
//! `GET /admin/state` answers:
//! ```json
//! {"routing": {"active": "v1", "canary_weight": 10},
//!  "faults": {"v2": {"latency_ms": 200, "error_rate": 0.5}},
//!  "workers": {"min": 1, "max": 4}, "workers_current": 1, "workers_desired": 1,
//!  "instance": "gw-a", "revision": 3}
//! ```

use crate::auth::Admin;
use crate::config::Config;
use crate::error::JsonBody;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A simulated model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "v1" => Some(Version::V1),
            "v2" => Some(Version::V2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub active: Version,
    pub canary_weight: u8,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            active: Version::V1,
            canary_weight: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Added before the model runs, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added before the model runs, microseconds (on top of `latency_ms`); exact to tens of
    /// microseconds (see the module doc).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub latency_us: u64,
    /// Fraction of requests answered 500, 0.0-1.0.
    #[serde(default)]
    pub error_rate: f64,
    /// Multiplies the reported `cost_usd` (None: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_factor: Option<f64>,
    /// Subtracted from the reported quality score (0.0-1.0).
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub quality_drop: f64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}

impl Fault {
    /// The added latency (`latency_ms` + `latency_us`).
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.latency_ms)
            + std::time::Duration::from_micros(self.latency_us)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerBounds {
    pub min: usize,
    pub max: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminState {
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub faults: BTreeMap<Version, Fault>,
    /// `None` = the instance's configured `GATEWAY_WORKERS_MIN/MAX`.
    #[serde(default)]
    pub workers: Option<WorkerBounds>,
    #[serde(default)]
    pub revision: u64,
}

impl AdminState {
    /// Effective (min, max) worker bounds.
    pub fn workers_or(&self, cfg: &Config) -> (usize, usize) {
        match self.workers {
            Some(w) => (w.min, w.max),
            None => (cfg.workers_min, cfg.workers_max),
        }
    }

    /// Picks the version for one request; `roll` is uniform in [0, 100).
    pub fn route(&self, roll: u8) -> Version {
        match self.routing.active {
            Version::V2 => Version::V2,
            Version::V1 if roll < self.routing.canary_weight => Version::V2,
            Version::V1 => Version::V1,
        }
    }
}

fn view(st: &AppState) -> serde_json::Value {
    let a = st.admin_snapshot();
    let (min, max) = a.workers_or(&st.cfg);
    serde_json::json!({
        "routing": a.routing,
        "faults": a.faults,
        "workers": {"min": min, "max": max},
        "workers_current": st.metrics.workers_current.get(),
        "workers_desired": st.metrics.workers_desired.get(),
        "instance": st.cfg.instance,
        "revision": a.revision,
    })
}

/// Applies `change` to the latest shared state and publishes it.
async fn update(
    st: &AppState,
    change: impl FnOnce(&mut AdminState),
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut next = match st.redis.get(crate::cache::ADMIN).await? {
        Some(json) => {
            serde_json::from_str(&json).unwrap_or_else(|_| (*st.admin_snapshot()).clone())
        }
        None => (*st.admin_snapshot()).clone(),
    };
    change(&mut next);
    next.revision += 1;
    let json = serde_json::to_string(&next).map_err(|e| ApiError::Internal(e.to_string()))?;
    st.redis.set(crate::cache::ADMIN, &json).await?;
    tracing::info!(admin_state = %json, "admin state changed");
    *st.admin.write() = Arc::new(next);
    Ok(Json(view(st)))
}

pub async fn get_state(_: Admin, State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(view(&st))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingChange {
    pub canary_weight: Option<u32>,
    pub active: Option<String>,
}

pub async fn set_routing(
    _: Admin,
    State(st): State<AppState>,
    JsonBody(req): JsonBody<RoutingChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(w) = req.canary_weight {
        if w > 100 {
            return Err(ApiError::BadRequest(format!(
                "canary_weight {w} is out of range: use 0-100"
            )));
        }
    }
    let active = match &req.active {
        None => None,
        Some(a) => Some(Version::parse(a).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "active {a:?} is not a version: use \"v1\" or \"v2\""
            ))
        })?),
    };
    update(&st, |s| {
        if let Some(w) = req.canary_weight {
            s.routing.canary_weight = w as u8;
        }
        if let Some(a) = active {
            s.routing.active = a;
        }
    })
    .await
}

fn path_version(v: &str) -> Result<Version, ApiError> {
    Version::parse(v).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown version {v:?}: use /admin/faults/v1 or /admin/faults/v2"
        ))
    })
}

pub async fn set_fault(
    _: Admin,
    State(st): State<AppState>,
    Path(version): Path<String>,
    JsonBody(fault): JsonBody<Fault>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = path_version(&version)?;
    if !(0.0..=1.0).contains(&fault.error_rate) {
        return Err(ApiError::BadRequest(format!(
            "error_rate {} is out of range: use 0.0-1.0",
            fault.error_rate
        )));
    }
    if !(0.0..=1.0).contains(&fault.quality_drop) {
        return Err(ApiError::BadRequest(format!(
            "quality_drop {} is out of range: use 0.0-1.0",
            fault.quality_drop
        )));
    }
    if let Some(f) = fault.cost_factor {
        if !(f.is_finite() && f >= 0.0) {
            return Err(ApiError::BadRequest(format!(
                "cost_factor {f} is out of range: use a number >= 0 (1 = unchanged)"
            )));
        }
    }

    update(&st, |s| {
        if fault == Fault::default() {
            s.faults.remove(&v);
        } else {
            s.faults.insert(v, fault);
        }
    })
    .await
}

pub async fn clear_fault(
    _: Admin,
    State(st): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = path_version(&version)?;
    update(&st, |s| {
        s.faults.remove(&v);
    })
    .await
}

pub async fn set_workers(
    _: Admin,
    State(st): State<AppState>,
    JsonBody(b): JsonBody<WorkerBounds>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if b.min == 0 || b.max < b.min || b.max > 256 {
        return Err(ApiError::BadRequest(format!(
            "workers min {} max {} are invalid: need 1 <= min <= max <= 256",
            b.min, b.max
        )));
    }
    update(&st, |s| s.workers = Some(b)).await
}

pub async fn dlq(
    _: Admin,
    State(st): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut c = st.redis.conn()?;
    let (depth, ids): (u64, Vec<String>) = redis::pipe()
        .cmd("LLEN")
        .arg(crate::cache::DLQ)
        .cmd("LRANGE")
        .arg(crate::cache::DLQ)
        .arg(0)
        .arg(99)
        .query_async(&mut c)
        .await?;
    Ok(Json(serde_json::json!({"depth": depth, "ids": ids})))
}

async fn read_shared(st: &AppState) -> Option<AdminState> {
    match st.redis.get(crate::cache::ADMIN).await {
        Ok(Some(json)) => match serde_json::from_str(&json) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "admin state in redis is not valid JSON; keeping local");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "admin state refresh failed");
            None
        }
    }
}

/// Reads the shared state once at start.
pub async fn load_initial(st: &AppState) {
    if let Some(a) = read_shared(st).await {
        *st.admin.write() = Arc::new(a);
    }
}

/// Re-reads the shared state every `GATEWAY_ADMIN_REFRESH_MS` until shutdown.
pub async fn refresher(st: AppState) {
    let mut tick = tokio::time::interval(st.cfg.admin_refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = st.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(a) = read_shared(&st).await {
            if *st.admin_snapshot() != a {
                *st.admin.write() = Arc::new(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_canary_weight_and_blue_green() {
        let mut a = AdminState::default();
        assert!((0..100).all(|r| a.route(r) == Version::V1));
        a.routing.canary_weight = 25;
        let v2 = (0..100).filter(|r| a.route(*r) == Version::V2).count();
        assert_eq!(v2, 25);
        a.routing.canary_weight = 100;
        assert!((0..100).all(|r| a.route(r) == Version::V2));
        a.routing = Routing {
            active: Version::V2,
            canary_weight: 0,
        };
        assert!((0..100).all(|r| a.route(r) == Version::V2));
    }

    #[test]
    fn admin_state_round_trips_as_json() {
        let mut a = AdminState::default();
        a.faults.insert(
            Version::V2,
            Fault {
                latency_ms: 5,
                error_rate: 0.5,
                ..Fault::default()
            },
        );
        a.workers = Some(WorkerBounds { min: 1, max: 3 });
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.contains("\"v2\":{\"latency_ms\":5,\"error_rate\":0.5}"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<AdminState>(&json).unwrap(), a);
        let fine: Fault =
            serde_json::from_str(r#"{"latency_ms": 1, "latency_us": 480, "cost_factor": 2}"#)
                .unwrap();
        assert_eq!(fine.delay(), std::time::Duration::from_micros(1480));
        assert_eq!(fine.cost_factor, Some(2.0));
    }
}

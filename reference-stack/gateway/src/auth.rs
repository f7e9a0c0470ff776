//! API-key authentication. The key comes from `Authorization: Bearer <key>` or `x-api-key`;
//! it is hashed (sha256, hex) and looked up first in Redis (`lg:key:<hash>`, TTL
//! `GATEWAY_KEY_CACHE_TTL_SECS`, unknown keys cached for 5 s) and then in Postgres. When Redis
//! fails the lookup goes straight to Postgres. A missing key is refused before any backend is
//! touched. Known keys are also kept in process memory for 2 s ([`LocalKeyCache`]) so a hot
//! key costs no Redis round trip; a deleted key therefore stays usable for at most
//! `GATEWAY_KEY_CACHE_TTL_SECS` + 2 s.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Json;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
}

impl Caller {
    /// Whose rows this caller may read: `None` (every tenant's) for an admin, else its own
    /// key id.
    pub fn owner_filter(&self) -> Option<&str> {
        match self.role {
            Role::Admin => None,
            Role::User => Some(&self.key_id),
        }
    }
}

/// A caller with the admin role (401 without a key, 403 for a user key).
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

/// The raw key from the request headers, if any.
pub fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !v.is_empty() {
            return Some(v);
        }
    }
    let auth = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = auth.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty()).then(|| key.trim())
}

fn parse_role(s: &str) -> Option<Role> {
    match s {
        "user" => Some(Role::User),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

const UNKNOWN: &str = "-";

/// How long a key stays in process memory.
pub const LOCAL_KEY_TTL: Duration = Duration::from_secs(2);

/// Known keys by hash, with the time they were cached.
#[derive(Default)]
pub struct LocalKeyCache {
    map: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl LocalKeyCache {
    /// The cache's lock, for `POST /debug/panic` only.
    pub(crate) fn lock_for_debug_panic(
        &self,
    ) -> parking_lot::MutexGuard<'_, HashMap<String, (Caller, Instant)>> {
        self.map.lock()
    }
    fn get(&self, hash: &str) -> Option<Caller> {
        let m = self.map.lock();
        m.get(hash)
            .filter(|(_, at)| at.elapsed() < LOCAL_KEY_TTL)
            .map(|(c, _)| c.clone())
    }
    fn put(&self, hash: String, c: &Caller) {
        let mut m = self.map.lock();
        if m.len() >= 10_000 {
            m.retain(|_, (_, at)| at.elapsed() < LOCAL_KEY_TTL);
            if m.len() >= 10_000 {
                m.clear();
            }
        }
        m.insert(hash, (c.clone(), Instant::now()));
    }
}

async fn lookup(st: &AppState, key: &str) -> Result<Caller, ApiError> {
    let hash = crate::cache::sha256_hex(key);
    if let Some(c) = st.key_cache.get(&hash) {
        return Ok(c);
    }
    let caller = lookup_shared(st, &hash).await?;
    st.key_cache.put(hash, &caller);
    Ok(caller)
}

async fn lookup_shared(st: &AppState, hash: &str) -> Result<Caller, ApiError> {
    let cache_key = format!("lg:key:{hash}");
    let cached = st.redis.get(&cache_key).await;
    let redis_ok = cached.is_ok();
    match cached {
        Ok(Some(v)) if v == UNKNOWN => return Err(ApiError::Unauthorized),
        Ok(Some(v)) => {
            if let Some((id, role)) = v.split_once('\t') {
                if let Some(role) = parse_role(role) {
                    return Ok(Caller {
                        key_id: id.to_string(),
                        role,
                    });
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "key cache unavailable; asking postgres"),
    }
    let found = crate::db::lookup_key(&st.db, hash).await?;
    let caller =
        found.and_then(|(id, role)| parse_role(&role).map(|role| Caller { key_id: id, role }));
    if redis_ok {
        let (value, ttl) = match &caller {
            Some(c) => (
                format!(
                    "{}\t{}",
                    c.key_id,
                    if c.role == Role::Admin {
                        "admin"
                    } else {
                        "user"
                    }
                ),
                st.cfg.key_cache_ttl_secs,
            ),
            None => (UNKNOWN.to_string(), 5),
        };
        if let Err(e) = st.redis.set_ex(&cache_key, &value, ttl).await {
            tracing::debug!(error = %e, "key cache write failed");
        }
    }
    caller.ok_or(ApiError::Unauthorized)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let key = presented_key(parts)
            .ok_or(ApiError::Unauthorized)?
            .to_string();
        let caller = lookup(st, &key).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let c = Caller::from_request_parts(parts, st).await?;
        if c.role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
        Ok(Admin(c))
    }
}

/// `GET /auth/me`.
pub async fn me(c: Caller) -> Json<Caller> {
    Json(c)
}

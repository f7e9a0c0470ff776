//! Checks and lowering of `dependencies:` (see [`crate::spec::dependency`]).
use std::time::Duration;

use crate::spec::{DependencySpec, PostgresHealth, RedisHealth};

use super::model::Dependencies;
use super::problem::Issues;
use super::tree::PathSeg;

/// Default interval between reads.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Default margin under PostgreSQL's `max_connections`.
pub const DEFAULT_CONNECTION_MARGIN: u64 = 10;

pub(crate) fn dependencies(d: &Dependencies, issues: &mut Issues) -> Option<DependencySpec> {
    let before = issues.0.len();
    let every = match d.every.map(|e| e.0) {
        Some(e) if e.is_zero() => {
            issues.at(path!["dependencies", "every"], "must be longer than 0s");
            DEFAULT_EVERY
        }
        e => e.unwrap_or(DEFAULT_EVERY),
    };
    if d.redis.is_none() && d.postgres.is_none() {
        issues.at_key(
            path!["dependencies"],
            "name at least one service: `redis:` or `postgres:`",
        );
    }
    let mut url = |u: &Option<String>, service: &str, scheme: &str, example: &str| match u
        .as_deref()
        .map(str::trim)
    {
        Some(u) if u.starts_with(scheme) => Some(u.to_string()),
        Some(_) => {
            issues.at(
                path!["dependencies", service, "url"],
                format!("must start with `{scheme}`, e.g. `{example}`"),
            );
            None
        }
        None => {
            issues.at(
                path!["dependencies", service, "url"],
                format!("required: `url: \"{example}\"`"),
            );
            None
        }
    };
    let redis = d.redis.as_ref().and_then(|r| {
        Some(RedisHealth {
            url: url(&r.url, "redis", "redis://", "${REDIS_URL}")?,
            max_evicted_keys: r.max_evicted_keys.unwrap_or(0),
            max_memory: r.max_memory.map(|s| s.0),
            max_clients: r.max_clients,
        })
    });
    let postgres = d.postgres.as_ref().and_then(|p| {
        Some(PostgresHealth {
            url: url(&p.url, "postgres", "postgres", "${DATABASE_URL}")?,
            connection_margin: p.connection_margin.unwrap_or(DEFAULT_CONNECTION_MARGIN),
            max_deadlocks: p.max_deadlocks.unwrap_or(0),
        })
    });
    if issues.0.len() > before {
        return None;
    }
    Some(DependencySpec {
        every,
        redis,
        postgres,
    })
}

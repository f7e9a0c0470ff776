//! The plan's `dependencies:` section, field for field; see the parent module for the
//! conventions.

use super::*;

/// `dependencies:` — health of the stores behind the target, read from the services
/// themselves during the run and judged as `dependency` checks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependencies {
    /// How often the services are read (default 1s).
    pub every: Option<Duration>,
    /// Redis, from `INFO`.
    pub redis: Option<RedisHealthDef>,
    /// PostgreSQL, from `pg_stat_database` and `pg_stat_activity`.
    pub postgres: Option<PostgresHealthDef>,
}

/// `dependencies.redis:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisHealthDef {
    /// `redis://[user:password@]host:port/db`, required: `${REDIS_URL}` with the stack.
    pub url: Option<String>,
    /// Keys Redis may evict during the run (default 0).
    pub max_evicted_keys: Option<u64>,
    /// `used_memory` must stay at or under this, e.g. `256MB`.
    pub max_memory: Option<Size>,
    /// `connected_clients` must stay at or under this.
    pub max_clients: Option<u64>,
}

/// `dependencies.postgres:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresHealthDef {
    /// `postgres://user:password@host:port/db`, required: `${DATABASE_URL}` with the stack.
    pub url: Option<String>,
    /// Connections must stay at or under `max_connections` minus this (default 10).
    pub connection_margin: Option<u64>,
    /// Deadlocks the database may count during the run (default 0).
    pub max_deadlocks: Option<u64>,
}

//! The lowered `dependencies:` section: which stores to read during the run and the bounds
//! their health must stay in.
use std::time::Duration;

/// `dependencies:`.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencySpec {
    /// How often the services are read.
    pub every: Duration,
    pub redis: Option<RedisHealth>,
    pub postgres: Option<PostgresHealth>,
}

/// Bounds on Redis (`INFO`).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisHealth {
    pub url: String,
    /// Increase of `evicted_keys` over the run.
    pub max_evicted_keys: u64,
    /// Highest `used_memory`, bytes.
    pub max_memory: Option<u64>,
    /// Highest `connected_clients`.
    pub max_clients: Option<u64>,
}

/// Bounds on PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresHealth {
    pub url: String,
    /// Highest connection count must stay at or under `max_connections - connection_margin`.
    pub connection_margin: u64,
    /// Increase of the database's `deadlocks` over the run.
    pub max_deadlocks: u64,
}

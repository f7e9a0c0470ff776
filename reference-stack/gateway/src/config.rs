//! Configuration from the environment, with dev / staging / prod profiles.
//!
//! `GATEWAY_PROFILE` (dev | staging | prod, default dev) picks the defaults; any explicit
//! `GATEWAY_*` variable overrides its profile default. Secrets (`GATEWAY_ADMIN_KEY`,
//! `GATEWAY_USER_KEY`, passwords inside `DATABASE_URL`) come only from the environment and are
//! wrapped in [`Secret`], whose `Debug` never prints the value. Every invalid variable is
//! reported at once, naming the variable and what it expects.
//!
//! Tunables (all optional; units in the name):
//!
//! | variable | dev / staging / prod default | meaning |
//! |---|---|---|
//! | `GATEWAY_LOG` (or `RUST_LOG`) | gateway debug / info / info | tracing filter (EnvFilter syntax) |
//! | `GATEWAY_INFLIGHT_LIMIT` | 256 / 512 / 1024 | in-flight `/v1/*` requests before 503 |
//! | `GATEWAY_QUEUE_LIMIT` | 1000 / 5000 / 10000 | job queue depth before `POST /v1/jobs` gets 429 |
//! | `GATEWAY_RATE_LIMIT_PER_SEC` | 5000 / 500 / 200 | requests per API key per second (0 = off) |
//! | `GATEWAY_CACHE_TTL_SECS` | 300 / 600 / 3600 | response cache entry lifetime |
//! | `GATEWAY_KEY_CACHE_TTL_SECS` | 30 | API-key lookup cache lifetime in Redis |
//! | `GATEWAY_MODEL_V1_BASE_MS` / `_V2_` | 20 / 20 | simulated model base latency |
//! | `GATEWAY_MODEL_V1_PER_TOKEN_MS` / `_V2_` | 0.5 / 0.4 | simulated latency per output token |
//! | `GATEWAY_MODEL_V1_PRICE_PER_1K` / `_V2_` | 0.002 / 0.001 | USD per 1000 tokens (in + out) |
//! | `GATEWAY_WORKERS_MIN` / `GATEWAY_WORKERS_MAX` | 1..4 / 2..8 / 2..16 | worker pool bounds |
//! | `GATEWAY_AUTOSCALE_ENABLED` | true | TEST KNOB: false keeps the worker pool at `GATEWAY_WORKERS_MIN` (queue depth is still measured and exported; `workers_desired` stays at the current count) |
//! | `GATEWAY_AUTOSCALE_TARGET` | 5 | target queue depth per worker |
//! | `GATEWAY_AUTOSCALE_INTERVAL_MS` | 1000 | autoscaler evaluation period |
//! | `GATEWAY_AUTOSCALE_STABILIZATION_MS` | 10000 / 30000 / 300000 | scale-down window |
//! | `GATEWAY_AUTOSCALE_TOLERANCE` | 0.1 | skip when abs(ratio - 1) <= tolerance |
//! | `GATEWAY_JOB_MAX_ATTEMPTS` | 3 / 5 / 5 | attempts before a job goes to the DLQ |
//! | `GATEWAY_JOB_BACKOFF_BASE_MS` | 100 / 500 / 1000 | retry delay = base * 2^(attempt-1) |
//! | `GATEWAY_WORKER_START_MS` | 0 | simulated start-up of a new worker (a pod's start): it counts in `gateway_workers_current` and takes jobs only after this |
//! | `GATEWAY_JOB_WORK_MS` | 20 | default simulated work per job (`work_ms` in the body overrides) |
//! | `GATEWAY_ADMIN_REFRESH_MS` | 250 | how often admin state is re-read from Redis |
//! | `GATEWAY_STARTUP_TIMEOUT_MS` | 10000 | retry window for Redis / Postgres at start |
//! | `GATEWAY_DB_POOL` | 16 | Postgres pool size |
//! | `GATEWAY_CONVERSATION_BATCH` | 256 | max rows per batched conversation insert |
//! | `GATEWAY_REDIS_FAIL_OPEN` | false | chat serves without Redis (no rate limit, cache miss) |
//! | `GATEWAY_MAX_BODY_BYTES` | 1048576 (1 MiB) | largest request body; a larger one gets 413 |
//! | `GATEWAY_UNSAFE_ACK_BEFORE_COMMIT` | false | TEST KNOB: `POST /v1/notes` answers 201 first and commits 2 s later, so a Postgres kill loses acknowledged notes (refused in prod) |
//! | `GATEWAY_DEBUG_PANIC_ROUTE` | false | serve `POST /debug/panic` (admin key; for tests of panic isolation; refused in prod) |
//! | `GATEWAY_BUDGET_USD_PER_MIN` | 0 (off) | cost budget per instance, USD per minute ([`crate::budget`]) |
//! | `GATEWAY_BUDGET_MODE` | downgrade | over budget: `downgrade` (expensive model -> cheaper) or `throttle` (429) |
//! | `GATEWAY_BUDGET_WINDOW_MS` | 60000 | the spend is averaged over this window |
//! | `GATEWAY_BUDGET_RESUME_RATIO` | 0.5 | leave "exceeded" under this fraction of the budget |
//! | `GATEWAY_IDLE_TIMEOUT_MS` | 0 (off) | scale to zero: go cold after this long without traffic ([`crate::lifecycle`]) |
//! | `GATEWAY_BOOT_DELAY_MS` | 0 | extra start-up time of a cold start (image pull, runtime start) |
//!
//! Edge role: `EDGE_UPSTREAMS` (comma-separated base URLs, required), `EDGE_STRATEGY`
//! (round-robin | least-connections, default round-robin), `EDGE_HEALTH_INTERVAL_MS` (500),
//! `EDGE_HEALTH_TIMEOUT_MS` (500), `EDGE_HEALTH_PATH` (/health), `EDGE_PROXY_TIMEOUT_MS` (30000),
//! `EDGE_SECONDARY_UPSTREAMS` (comma-separated base URLs of a secondary region, used only while
//! none of `EDGE_UPSTREAMS` is healthy; default none);
//! scale to zero ([`crate::edge`]'s activator): `EDGE_SCALE_TO_ZERO` (false), `EDGE_HOLD_TIMEOUT_MS`
//! (30000, the longest a request waits for a cold start), `EDGE_HOLD_QUEUE` (1000 held requests).

use std::fmt;
use std::time::Duration;

/// A value that must never be printed (keys, passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Environment profile: picks defaults only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Staging,
    Prod,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Staging => "staging",
            Profile::Prod => "prod",
        }
    }
}

/// Configuration errors; each names the variable and the fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{var} is required: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?} is invalid: expected {expected}")]
    Invalid {
        var: String,
        value: String,
        expected: &'static str,
    },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<ConfigError>),
}

/// Simulated model parameters for one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Latency before the first token, milliseconds.
    pub base_ms: f64,
    /// Additional latency per completion token, milliseconds.
    pub per_token_ms: f64,
    /// USD per 1000 tokens (prompt + completion).
    pub price_per_1k: f64,
}

/// Gateway role configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    pub log_filter: String,
    pub redis_url: Secret,
    pub database_url: Secret,
    pub admin_key: Option<Secret>,
    pub user_key: Option<Secret>,
    pub instance: String,
    pub inflight_limit: usize,
    pub queue_limit: usize,
    pub rate_limit_per_sec: u64,
    pub cache_ttl_secs: u64,
    pub key_cache_ttl_secs: u64,
    /// Index 0 = v1, 1 = v2.
    pub models: [ModelConfig; 2],
    pub workers_min: usize,
    pub workers_max: usize,
    /// The worker autoscaler decides (false: it only measures the queue).
    pub autoscale_enabled: bool,
    pub autoscale_target: f64,
    pub autoscale_interval: Duration,
    pub autoscale_stabilization: Duration,
    pub autoscale_tolerance: f64,
    pub job_max_attempts: u32,
    pub job_backoff_base: Duration,
    pub job_work_ms: u64,
    /// A new worker's simulated start-up before it is ready.
    pub worker_start: Duration,
    pub admin_refresh: Duration,
    pub startup_timeout: Duration,
    pub db_pool: usize,
    pub conversation_batch: usize,
    /// Chat keeps serving when Redis fails (no rate limit, cache miss).
    pub redis_fail_open: bool,
    /// Largest accepted request body, bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Serve `POST /debug/panic`, a handler that panics while holding the shared locks.
    pub debug_panic_route: bool,
    /// A test knob: `POST /v1/notes` answers 201 before its commit and writes later, so a
    /// Postgres kill loses acknowledged notes (the write ledger's negative test).
    pub unsafe_ack_before_commit: bool,
    /// `GATEWAY_BUDGET_*`: the cost budget ([`crate::budget`]).
    pub budget: crate::budget::BudgetConfig,
    /// `GATEWAY_IDLE_TIMEOUT_MS`, `GATEWAY_BOOT_DELAY_MS`: scale to zero ([`crate::lifecycle`]).
    pub lifecycle: crate::lifecycle::LifecycleConfig,
}

/// Default of `GATEWAY_MAX_BODY_BYTES`: 1 MiB, far above any request the API defines (a chat
/// prompt, a job payload, a note) and far below what would hurt memory under load.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Edge role configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub log_filter: String,
    pub upstreams: Vec<String>,
    /// The secondary region's upstreams: used only while no primary one is healthy.
    pub secondary_upstreams: Vec<String>,
    pub strategy: crate::edge::Strategy,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub health_path: String,
    pub proxy_timeout: Duration,
    /// `EDGE_SCALE_TO_ZERO` and its bounds ([`crate::edge`]).
    pub activator: crate::edge::ActivatorConfig,
}

struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var).filter(|v| !v.trim().is_empty())
    }
    fn parse<T: std::str::FromStr>(&mut self, var: &str, default: T, expected: &'static str) -> T {
        match self.raw(var) {
            None => default,
            Some(v) => match v.trim().parse::<T>() {
                Ok(x) => x,
                Err(_) => {
                    self.errors.push(ConfigError::Invalid {
                        var: var.to_string(),
                        value: v,
                        expected,
                    });
                    default
                }
            },
        }
    }
    fn ms(&mut self, var: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.parse(var, default_ms, "a whole number of milliseconds"))
    }
    fn finish(self) -> Result<(), ConfigError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(self.errors.into_iter().next().unwrap()),
            _ => Err(ConfigError::Many(self.errors)),
        }
    }
}

fn parse_profile(r: &mut Reader<'_>) -> Profile {
    match r.raw("GATEWAY_PROFILE").as_deref().map(str::trim) {
        None | Some("dev") => Profile::Dev,
        Some("staging") => Profile::Staging,
        Some("prod") => Profile::Prod,
        Some(other) => {
            r.errors.push(ConfigError::Invalid {
                var: "GATEWAY_PROFILE".into(),
                value: other.into(),
                expected: "one of dev, staging, prod",
            });
            Profile::Dev
        }
    }
}

fn log_filter(r: &Reader<'_>, default: &str) -> String {
    r.raw("GATEWAY_LOG")
        .or_else(|| r.raw("RUST_LOG"))
        .unwrap_or_else(|| default.to_string())
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (tests pass a map).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            get,
            errors: Vec::new(),
        };
        let profile = parse_profile(&mut r);
        use Profile::*;
        let pick = |d: u64, s: u64, p: u64| match profile {
            Dev => d,
            Staging => s,
            Prod => p,
        };
        let redis_url = r.raw("REDIS_URL");
        let database_url = r.raw("DATABASE_URL");
        if redis_url.is_none() {
            r.errors.push(ConfigError::Missing {
                var: "REDIS_URL",
                hint: "set it to redis://HOST:PORT",
            });
        }
        if database_url.is_none() {
            r.errors.push(ConfigError::Missing {
                var: "DATABASE_URL",
                hint: "set it to postgres://USER:PASS@HOST:PORT/DB",
            });
        }
        let model = |r: &mut Reader<'_>, v: &str, base: f64, per: f64, price: f64| ModelConfig {
            base_ms: r.parse(
                &format!("GATEWAY_MODEL_{v}_BASE_MS"),
                base,
                "milliseconds (a number)",
            ),
            per_token_ms: r.parse(
                &format!("GATEWAY_MODEL_{v}_PER_TOKEN_MS"),
                per,
                "milliseconds per token (a number)",
            ),
            price_per_1k: r.parse(
                &format!("GATEWAY_MODEL_{v}_PRICE_PER_1K"),
                price,
                "USD per 1000 tokens (a number)",
            ),
        };
        let models = [
            model(&mut r, "V1", 20.0, 0.5, 0.002),
            model(&mut r, "V2", 20.0, 0.4, 0.001),
        ];
        let cfg = Config {
            profile,
            log_filter: log_filter(
                &r,
                if profile == Dev {
                    "info,loadgate_gateway=debug,tokio_postgres=warn"
                } else {
                    "info,tokio_postgres=warn"
                },
            ),
            redis_url: Secret(redis_url.unwrap_or_default()),
            database_url: Secret(database_url.unwrap_or_default()),
            admin_key: r.raw("GATEWAY_ADMIN_KEY").map(Secret),
            user_key: r.raw("GATEWAY_USER_KEY").map(Secret),
            instance: r
                .raw("GATEWAY_INSTANCE")
                .unwrap_or_else(|| format!("gw-{}", std::process::id())),
            inflight_limit: r.parse(
                "GATEWAY_INFLIGHT_LIMIT",
                pick(256, 512, 1024) as usize,
                "a whole number of requests",
            ),
            queue_limit: r.parse(
                "GATEWAY_QUEUE_LIMIT",
                pick(1000, 5000, 10000) as usize,
                "a whole number of jobs",
            ),
            rate_limit_per_sec: r.parse(
                "GATEWAY_RATE_LIMIT_PER_SEC",
                pick(5000, 500, 200),
                "requests per second per key (0 disables)",
            ),
            cache_ttl_secs: r.parse(
                "GATEWAY_CACHE_TTL_SECS",
                pick(300, 600, 3600),
                "a whole number of seconds",
            ),
            key_cache_ttl_secs: r.parse(
                "GATEWAY_KEY_CACHE_TTL_SECS",
                30,
                "a whole number of seconds",
            ),
            models,
            workers_min: r.parse(
                "GATEWAY_WORKERS_MIN",
                pick(1, 2, 2) as usize,
                "a whole number of workers",
            ),
            workers_max: r.parse(
                "GATEWAY_WORKERS_MAX",
                pick(4, 8, 16) as usize,
                "a whole number of workers",
            ),
            autoscale_enabled: r.parse("GATEWAY_AUTOSCALE_ENABLED", true, "true or false"),
            autoscale_target: r.parse(
                "GATEWAY_AUTOSCALE_TARGET",
                5.0,
                "queue depth per worker (a positive number)",
            ),
            autoscale_interval: r.ms("GATEWAY_AUTOSCALE_INTERVAL_MS", 1000),
            autoscale_stabilization: r.ms(
                "GATEWAY_AUTOSCALE_STABILIZATION_MS",
                pick(10_000, 30_000, 300_000),
            ),
            autoscale_tolerance: r.parse("GATEWAY_AUTOSCALE_TOLERANCE", 0.1, "a fraction like 0.1"),
            job_max_attempts: r.parse(
                "GATEWAY_JOB_MAX_ATTEMPTS",
                pick(3, 5, 5) as u32,
                "a whole number of attempts >= 1",
            ),
            job_backoff_base: r.ms("GATEWAY_JOB_BACKOFF_BASE_MS", pick(100, 500, 1000)),
            job_work_ms: r.parse("GATEWAY_JOB_WORK_MS", 20, "a whole number of milliseconds"),
            worker_start: r.ms("GATEWAY_WORKER_START_MS", 0),
            admin_refresh: r.ms("GATEWAY_ADMIN_REFRESH_MS", 250),
            startup_timeout: r.ms("GATEWAY_STARTUP_TIMEOUT_MS", 10_000),
            db_pool: r.parse("GATEWAY_DB_POOL", 16, "a whole number of connections >= 1"),
            conversation_batch: r.parse(
                "GATEWAY_CONVERSATION_BATCH",
                256,
                "a whole number of rows >= 1",
            ),
            redis_fail_open: r.parse("GATEWAY_REDIS_FAIL_OPEN", false, "true or false"),
            max_body_bytes: r.parse(
                "GATEWAY_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                "a whole number of bytes >= 1",
            ),
            debug_panic_route: r.parse("GATEWAY_DEBUG_PANIC_ROUTE", false, "true or false"),
            unsafe_ack_before_commit: r.parse(
                "GATEWAY_UNSAFE_ACK_BEFORE_COMMIT",
                false,
                "true or false",
            ),
            budget: budget_config(&mut r),
            lifecycle: crate::lifecycle::LifecycleConfig {
                idle_timeout: r.ms("GATEWAY_IDLE_TIMEOUT_MS", 0),
                boot_delay: r.ms("GATEWAY_BOOT_DELAY_MS", 0),
            },
        };
        let mut bad = |var: &str, value: String, expected: &'static str| {
            r.errors.push(ConfigError::Invalid {
                var: var.into(),
                value,
                expected,
            })
        };
        if cfg.workers_min == 0 {
            bad("GATEWAY_WORKERS_MIN", "0".into(), "at least 1 worker");
        }
        if cfg.workers_max < cfg.workers_min {
            bad(
                "GATEWAY_WORKERS_MAX",
                cfg.workers_max.to_string(),
                "a value >= GATEWAY_WORKERS_MIN",
            );
        }
        if cfg.autoscale_target <= 0.0 || !cfg.autoscale_target.is_finite() {
            bad(
                "GATEWAY_AUTOSCALE_TARGET",
                cfg.autoscale_target.to_string(),
                "a positive number",
            );
        }
        if cfg.job_max_attempts == 0 {
            bad("GATEWAY_JOB_MAX_ATTEMPTS", "0".into(), "at least 1 attempt");
        }
        if cfg.db_pool == 0 {
            bad("GATEWAY_DB_POOL", "0".into(), "at least 1 connection");
        }
        if cfg.conversation_batch == 0 {
            bad("GATEWAY_CONVERSATION_BATCH", "0".into(), "at least 1 row");
        }
        if cfg.autoscale_interval.is_zero() {
            bad("GATEWAY_AUTOSCALE_INTERVAL_MS", "0".into(), "at least 1 ms");
        }
        if cfg.max_body_bytes == 0 {
            bad("GATEWAY_MAX_BODY_BYTES", "0".into(), "at least 1 byte");
        }
        if cfg.unsafe_ack_before_commit && profile == Prod {
            bad(
                "GATEWAY_UNSAFE_ACK_BEFORE_COMMIT",
                "true".into(),
                "false in the prod profile (it loses acknowledged writes)",
            );
        }
        if cfg.debug_panic_route && profile == Prod {
            bad(
                "GATEWAY_DEBUG_PANIC_ROUTE",
                "true".into(),
                "false in the prod profile (the route exists for tests only)",
            );
        }
        r.finish()?;
        Ok(cfg)
    }
}

/// `GATEWAY_BUDGET_*` ([`crate::budget::BudgetConfig`]).
fn budget_config(r: &mut Reader<'_>) -> crate::budget::BudgetConfig {
    let d = crate::budget::BudgetConfig::default();
    let mode = match r.raw("GATEWAY_BUDGET_MODE") {
        None => d.mode,
        Some(m) => crate::budget::BudgetMode::parse(&m).unwrap_or_else(|| {
            r.errors.push(ConfigError::Invalid {
                var: "GATEWAY_BUDGET_MODE".into(),
                value: m,
                expected: "downgrade or throttle",
            });
            d.mode
        }),
    };
    let usd_per_min: f64 = r.parse(
        "GATEWAY_BUDGET_USD_PER_MIN",
        0.0,
        "USD per minute (a number >= 0; 0 disables the budget)",
    );
    if !(usd_per_min.is_finite() && usd_per_min >= 0.0) {
        r.errors.push(ConfigError::Invalid {
            var: "GATEWAY_BUDGET_USD_PER_MIN".into(),
            value: usd_per_min.to_string(),
            expected: "a number >= 0",
        });
    }
    let window = r.ms("GATEWAY_BUDGET_WINDOW_MS", d.window.as_millis() as u64);
    if window < Duration::from_secs(1) {
        r.errors.push(ConfigError::Invalid {
            var: "GATEWAY_BUDGET_WINDOW_MS".into(),
            value: window.as_millis().to_string(),
            expected: "at least 1000 ms",
        });
    }
    let resume_ratio: f64 = r.parse(
        "GATEWAY_BUDGET_RESUME_RATIO",
        d.resume_ratio,
        "a fraction in (0, 1]",
    );
    if !(resume_ratio > 0.0 && resume_ratio <= 1.0) {
        r.errors.push(ConfigError::Invalid {
            var: "GATEWAY_BUDGET_RESUME_RATIO".into(),
            value: resume_ratio.to_string(),
            expected: "a fraction in (0, 1]",
        });
    }
    crate::budget::BudgetConfig {
        usd_per_min: usd_per_min.max(0.0),
        mode,
        window,
        resume_ratio,
    }
}

impl EdgeConfig {
    pub fn from_env() -> Result<EdgeConfig, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<EdgeConfig, ConfigError> {
        let mut r = Reader {
            get,
            errors: Vec::new(),
        };
        let profile = parse_profile(&mut r);
        let list = |var: &str| -> Vec<String> {
            r.raw(var)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let upstreams = list("EDGE_UPSTREAMS");
        let secondary_upstreams = list("EDGE_SECONDARY_UPSTREAMS");
        if upstreams.is_empty() {
            r.errors.push(ConfigError::Missing {
                var: "EDGE_UPSTREAMS",
                hint: "set it to comma-separated base URLs like http://127.0.0.1:8081,http://127.0.0.1:8082",
            });
        }
        let all = upstreams.iter().map(|u| ("EDGE_UPSTREAMS", u)).chain(
            secondary_upstreams
                .iter()
                .map(|u| ("EDGE_SECONDARY_UPSTREAMS", u)),
        );
        for (var, u) in all {
            if !u.starts_with("http://") || u.parse::<http::Uri>().is_err() {
                r.errors.push(ConfigError::Invalid {
                    var: var.into(),
                    value: u.clone(),
                    expected: "http://HOST:PORT base URLs",
                });
            }
        }
        let strategy = match r.raw("EDGE_STRATEGY").as_deref().map(str::trim) {
            None | Some("round-robin") => crate::edge::Strategy::RoundRobin,
            Some("least-connections") => crate::edge::Strategy::LeastConnections,
            Some(other) => {
                r.errors.push(ConfigError::Invalid {
                    var: "EDGE_STRATEGY".into(),
                    value: other.into(),
                    expected: "round-robin or least-connections",
                });
                crate::edge::Strategy::RoundRobin
            }
        };
        let cfg = EdgeConfig {
            log_filter: log_filter(
                &r,
                if profile == Profile::Dev {
                    "debug"
                } else {
                    "info"
                },
            ),
            upstreams,
            secondary_upstreams,
            strategy,
            health_interval: r.ms("EDGE_HEALTH_INTERVAL_MS", 500),
            health_timeout: r.ms("EDGE_HEALTH_TIMEOUT_MS", 500),
            health_path: r
                .raw("EDGE_HEALTH_PATH")
                .unwrap_or_else(|| "/health".into()),
            proxy_timeout: r.ms("EDGE_PROXY_TIMEOUT_MS", 30_000),
            activator: crate::edge::ActivatorConfig {
                scale_to_zero: r.parse("EDGE_SCALE_TO_ZERO", false, "true or false"),
                hold_timeout: r.ms("EDGE_HOLD_TIMEOUT_MS", 30_000),
                hold_queue: r.parse("EDGE_HOLD_QUEUE", 1000, "a whole number of requests"),
            },
        };
        if cfg.health_interval.is_zero() {
            r.errors.push(ConfigError::Invalid {
                var: "EDGE_HEALTH_INTERVAL_MS".into(),
                value: "0".into(),
                expected: "at least 1 ms",
            });
        }
        r.finish()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut m: HashMap<String, String> = HashMap::from([
            ("REDIS_URL".into(), "redis://127.0.0.1:1".into()),
            (
                "DATABASE_URL".into(),
                "postgres://u:p@127.0.0.1:2/db".into(),
            ),
        ]);
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(&|k| m.get(k).cloned())
    }

    #[test]
    fn profiles_set_defaults() {
        let dev = cfg(&[]).unwrap();
        assert_eq!(dev.profile, Profile::Dev);
        assert_eq!(dev.inflight_limit, 256);
        assert!(dev.log_filter.contains("loadgate_gateway=debug"));
        let prod = cfg(&[("GATEWAY_PROFILE", "prod")]).unwrap();
        assert_eq!(prod.inflight_limit, 1024);
        assert_eq!(prod.rate_limit_per_sec, 200);
        assert_eq!(prod.workers_max, 16);
        assert_eq!(prod.log_filter, "info,tokio_postgres=warn");
        let staging = cfg(&[("GATEWAY_PROFILE", "staging")]).unwrap();
        assert_eq!(staging.queue_limit, 5000);
    }

    #[test]
    fn explicit_env_overrides_profile() {
        let c = cfg(&[
            ("GATEWAY_PROFILE", "prod"),
            ("GATEWAY_INFLIGHT_LIMIT", "7"),
            ("GATEWAY_AUTOSCALE_INTERVAL_MS", "200"),
            ("GATEWAY_MODEL_V2_BASE_MS", "1.5"),
            ("GATEWAY_AUTOSCALE_ENABLED", "false"),
            ("GATEWAY_AUTOSCALE_STABILIZATION_MS", "500"),
        ])
        .unwrap();
        assert!(!c.autoscale_enabled);
        assert_eq!(cfg(&[]).unwrap().worker_start, Duration::ZERO);
        assert_eq!(c.autoscale_stabilization, Duration::from_millis(500));
        assert!(cfg(&[]).unwrap().autoscale_enabled);
        assert_eq!(c.inflight_limit, 7);
        assert_eq!(c.autoscale_interval, Duration::from_millis(200));
        assert_eq!(c.models[1].base_ms, 1.5);
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let err = Config::from_lookup(&|k| match k {
            "GATEWAY_PROFILE" => Some("qa".into()),
            "GATEWAY_INFLIGHT_LIMIT" => Some("lots".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        for var in [
            "GATEWAY_PROFILE",
            "GATEWAY_INFLIGHT_LIMIT",
            "REDIS_URL",
            "DATABASE_URL",
        ] {
            assert!(err.contains(var), "{var} missing from {err}");
        }
    }

    #[test]
    fn body_limit_and_debug_route_knobs() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert!(!c.debug_panic_route);
        let c = cfg(&[
            ("GATEWAY_MAX_BODY_BYTES", "4096"),
            ("GATEWAY_DEBUG_PANIC_ROUTE", "true"),
        ])
        .unwrap();
        assert_eq!((c.max_body_bytes, c.debug_panic_route), (4096, true));
        let err = cfg(&[
            ("GATEWAY_PROFILE", "prod"),
            ("GATEWAY_DEBUG_PANIC_ROUTE", "true"),
            ("GATEWAY_MAX_BODY_BYTES", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("GATEWAY_DEBUG_PANIC_ROUTE"), "{err}");
        assert!(err.contains("GATEWAY_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let c = cfg(&[("GATEWAY_ADMIN_KEY", "hunter2-admin")]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("u:p@"));
    }

    #[test]
    fn edge_config_parses_upstreams_and_strategy() {
        let e = EdgeConfig::from_lookup(&|k| match k {
            "EDGE_UPSTREAMS" => Some("http://127.0.0.1:1/, http://127.0.0.1:2".into()),
            "EDGE_STRATEGY" => Some("least-connections".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            e.upstreams,
            vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(e.strategy, crate::edge::Strategy::LeastConnections);
        assert!(e.secondary_upstreams.is_empty());
        let e = EdgeConfig::from_lookup(&|k| match k {
            "EDGE_UPSTREAMS" => Some("http://127.0.0.1:1".into()),
            "EDGE_SECONDARY_UPSTREAMS" => Some("http://127.0.0.1:3/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(e.secondary_upstreams, vec!["http://127.0.0.1:3"]);
        assert!(EdgeConfig::from_lookup(&|k| match k {
            "EDGE_UPSTREAMS" => Some("http://127.0.0.1:1".into()),
            "EDGE_SECONDARY_UPSTREAMS" => Some("ftp://x".into()),
            _ => None,
        })
        .is_err());
        assert!(EdgeConfig::from_lookup(&|_| None).is_err());
    }
}

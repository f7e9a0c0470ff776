//! Gateway security against real Redis and PostgreSQL child processes (issue 12, item 6):
//! authentication and authorization on every route, tenant isolation of jobs and notes,
//! SQL-injection attempts in every stored field kept as data, 413 for oversized bodies, a
//! panicking handler that leaves shared state usable, and no secret (API keys, the admin key,
//! the database password) in the gateway's stdout or stderr.
//! One stack serves every section; each section asserts its own property.

mod common;

use common::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "live_security/authz.rs"]
mod authz;
#[path = "live_security/injection.rs"]
mod injection;
#[path = "live_security/limits.rs"]
mod limits;

use authz::*;
use injection::*;
use limits::*;

/// Distinctive secret values, so a grep of the logs cannot match anything else.
struct Secrets {
    admin: String,
    user: String,
    tenant_b: String,
    db_password: String,
}

impl Secrets {
    fn new() -> Secrets {
        let tag = || uuid::Uuid::new_v4().simple().to_string();
        Secrets {
            admin: format!("adminkey{}", tag()),
            user: format!("userkey{}", tag()),
            tenant_b: format!("tenantbkey{}", tag()),
            db_password: format!("dbpass{}", tag()),
        }
    }
    fn all(&self) -> [(&'static str, &str); 4] {
        [
            ("admin key", &self.admin),
            ("user key", &self.user),
            ("tenant B key", &self.tenant_b),
            ("database password", &self.db_password),
        ]
    }
}

/// Request bodies are limited to this many bytes in the security gateway.
const BODY_LIMIT: usize = 64 * 1024;

struct T {
    c: Client,
    base: String,
}

impl T {
    async fn req(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let mut r = self.c.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }
    async fn json(&self, method: Method, path: &str, key: &str, body: Option<&Value>) -> Value {
        let (s, b) = self.req(method.clone(), path, Some(key), body).await;
        assert!(s.is_success(), "{method} {path}: {s} {b}");
        serde_json::from_str(&b).unwrap()
    }
    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.req(Method::GET, "/metrics", None, None).await;
        text.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(name))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

async fn wait_for<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Greps `files` for every secret value; the files must hold the expected log lines (so the
/// grep looked at real logs).
fn assert_no_secrets(sec: &Secrets, files: &[std::path::PathBuf], expect: &[&str]) {
    let mut all = String::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (what, value) in sec.all() {
            assert!(
                !text.contains(value),
                "{what} appears in {}: {}",
                f.display(),
                text.lines().find(|l| l.contains(value)).unwrap_or("")
            );
        }
        all.push_str(&text);
    }
    for e in expect {
        assert!(all.contains(e), "logs lack {e:?}: the capture is broken");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gateway_security() {
    let Some(s) = Services::start() else { return };
    let sec = Secrets::new();
    // trust auth: the server never asks for the password, but the gateway holds it in its URL
    let db_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        sec.db_password, s.pg_port
    );
    let env: Vec<(&str, String)> = vec![
        ("REDIS_URL", s.redis_url()),
        ("DATABASE_URL", db_url.clone()),
        ("GATEWAY_ADMIN_KEY", sec.admin.clone()),
        ("GATEWAY_USER_KEY", sec.user.clone()),
        ("GATEWAY_INSTANCE", "gw-sec".into()),
        // every crate at debug: the secrets must stay out of the noisiest logs too
        ("GATEWAY_LOG", "debug".into()),
        ("GATEWAY_MAX_BODY_BYTES", BODY_LIMIT.to_string()),
        ("GATEWAY_DEBUG_PANIC_ROUTE", "true".into()),
        ("GATEWAY_RATE_LIMIT_PER_SEC", "0".into()),
        ("GATEWAY_MODEL_V1_BASE_MS", "1".into()),
        ("GATEWAY_MODEL_V2_BASE_MS", "1".into()),
        ("GATEWAY_MODEL_V1_PER_TOKEN_MS", "0".into()),
        ("GATEWAY_MODEL_V2_PER_TOKEN_MS", "0".into()),
        ("GATEWAY_JOB_WORK_MS", "1".into()),
        ("GATEWAY_ADMIN_REFRESH_MS", "100".into()),
        ("GATEWAY_AUTOSCALE_INTERVAL_MS", "200".into()),
    ];
    let mut gw = Gateway::start(s.dir.path(), "gw-sec", "gateway", &env);
    let t = T {
        c: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        base: gw.base.clone(),
    };
    // Two more tenants, stored the way the gateway stores keys (hashed).
    let db = loadgate_gateway::db::pool(&s.database_url(), 2).unwrap();
    let tenant_c = format!("tenantckey{}", uuid::Uuid::new_v4().simple());
    for (id, key) in [("tenant-b", &sec.tenant_b), ("tenant-c", &tenant_c)] {
        loadgate_gateway::db::upsert_key(
            &db,
            id,
            &loadgate_gateway::cache::sha256_hex(key),
            "user",
        )
        .await
        .unwrap();
    }

    // ids owned by the user key, for the GET routes
    let note = uuid::Uuid::new_v4().to_string();
    t.json(
        Method::POST,
        "/v1/notes",
        &sec.user,
        Some(&json!({"id": note, "text": "mine"})),
    )
    .await;
    let job = t
        .json(
            Method::POST,
            "/v1/jobs",
            &sec.user,
            Some(&json!({"kind": "mine"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let authz_checks = authn_authz_every_route(&t, &sec, &job, &note).await;
    tenant_isolation(&t, &sec).await;
    sql_injection_is_data(&t, &sec, &db).await;
    let body_checks = oversized_bodies_get_413(&t, &sec).await;
    panic_isolation(&t, &sec, &tenant_c).await;
    eprintln!(
        "security: {} routes, {authz_checks} authn/authz checks, {body_checks} body-limit checks",
        routes().len()
    );
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "gateway died during the security checks"
    );
    assert!(gw.stop(), "gateway did not shut down cleanly");
    drop(db);

    // A start-up failure prints the database URL's host, never its password or the keys.
    let bad_db = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        sec.db_password,
        free_port()
    );
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_loadgate-gateway"))
        .env_clear()
        .env("REDIS_URL", s.redis_url())
        .env("DATABASE_URL", &bad_db)
        .env("GATEWAY_ADMIN_KEY", &sec.admin)
        .env("GATEWAY_USER_KEY", &sec.user)
        .env("GATEWAY_LOG", "debug")
        .env("GATEWAY_STARTUP_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let fail_log = s.dir.path().join("startup-failure.log");
    let mut text = failed.stdout.clone();
    text.extend_from_slice(&failed.stderr);
    std::fs::write(&fail_log, text).unwrap();

    let dir = s.dir.path();
    assert_no_secrets(
        &sec,
        &[
            dir.join("gw-sec.log"),
            dir.join("gw-sec.out"),
            fail_log.clone(),
        ],
        &[
            "starting gateway",
            "\"listening\"",
            "request handler panicked",
            "request failed",
            "postgres unreachable at start",
            "Secret(***)",
        ],
    );
}

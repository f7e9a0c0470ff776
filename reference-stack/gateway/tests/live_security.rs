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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Access {
    Public,
    Key,
    Admin,
}

/// Every gateway route with a harmless body; `{job}` and `{note}` are replaced by ids the
/// user key owns.
fn routes() -> Vec<(Method, &'static str, Option<Value>, Access)> {
    use Access::*;
    vec![
        (Method::GET, "/health", None, Public),
        (Method::GET, "/ready", None, Public),
        (Method::GET, "/metrics", None, Public),
        (Method::GET, "/auth/me", None, Key),
        (
            Method::POST,
            "/v1/chat",
            Some(json!({"prompt": "authz"})),
            Key,
        ),
        (
            Method::POST,
            "/v1/jobs",
            Some(json!({"kind": "authz"})),
            Key,
        ),
        (Method::GET, "/v1/jobs/{job}", None, Key),
        (
            Method::POST,
            "/v1/notes",
            Some(json!({"id": uuid::Uuid::new_v4(), "text": "authz"})),
            Key,
        ),
        (Method::GET, "/v1/notes/{note}", None, Key),
        (Method::GET, "/admin/state", None, Admin),
        (
            Method::PUT,
            "/admin/routing",
            Some(json!({"canary_weight": 0})),
            Admin,
        ),
        (
            Method::POST,
            "/admin/routing",
            Some(json!({"canary_weight": 0})),
            Admin,
        ),
        (Method::PUT, "/admin/faults/v1", Some(json!({})), Admin),
        (Method::POST, "/admin/faults/v1", Some(json!({})), Admin),
        (Method::DELETE, "/admin/faults/v1", None, Admin),
        (
            Method::PUT,
            "/admin/workers",
            Some(json!({"min": 1, "max": 4})),
            Admin,
        ),
        (
            Method::POST,
            "/admin/workers",
            Some(json!({"min": 1, "max": 4})),
            Admin,
        ),
        (Method::GET, "/admin/dlq", None, Admin),
        // Admin-only too; the admin's own call is the panic section's.
        (Method::POST, "/debug/panic", None, Admin),
    ]
}

/// No key, a bad key (both headers), a user key on admin routes: refused before any work is
/// done (no job is enqueued by a refused POST /v1/jobs). Returns the number of route x case
/// checks made.
async fn authn_authz_every_route(t: &T, sec: &Secrets, job: &str, note: &str) -> usize {
    let enqueued = t.metric("gateway_jobs_enqueued_total").await;
    let bad = format!("not-a-key-{}", uuid::Uuid::new_v4());
    let mut checks = 0;
    for (method, path, body, access) in routes() {
        let path = path.replace("{job}", job).replace("{note}", note);
        let what = format!("{method} {path}");
        let (s, b) = t.req(method.clone(), &path, None, body.as_ref()).await;
        if access == Access::Public {
            assert!(s.is_success(), "{what} without a key: {s} {b}");
        } else {
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{what} without a key: {b}");
            assert!(b.contains("API key"), "{what}: {b}");
        }
        checks += 1;
        if access == Access::Public {
            continue;
        }
        // a bad key, as x-api-key and as a bearer token
        let (s, b) = t
            .req(method.clone(), &path, Some(&bad), body.as_ref())
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what} with a bad key: {b}");
        let mut rb =
            t.c.request(method.clone(), format!("{}{path}", t.base))
                .bearer_auth(&bad);
        if let Some(body) = &body {
            rb = rb.json(body);
        }
        let s = rb.send().await.unwrap().status();
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what} with a bad bearer key");
        checks += 2;
        // a user key: served on key routes, 403 on admin routes
        let (s, b) = t
            .req(method.clone(), &path, Some(&sec.user), body.as_ref())
            .await;
        match access {
            Access::Admin => {
                assert_eq!(s, StatusCode::FORBIDDEN, "{what} with a user key: {b}");
                assert!(b.contains("admin role required"), "{what}: {b}");
            }
            _ => assert!(s.is_success(), "{what} with a user key: {s} {b}"),
        }
        checks += 1;
        // the admin key is served everywhere (but /debug/panic, see panic_isolation)
        if path != "/debug/panic" {
            // a note id of its own: the user's id belongs to the user now (409 otherwise)
            let mut body = body.clone();
            if let Some(b) = body.as_mut().filter(|b| b.get("id").is_some()) {
                b["id"] = json!(uuid::Uuid::new_v4());
            }
            let (s, b) = t
                .req(method.clone(), &path, Some(&sec.admin), body.as_ref())
                .await;
            assert!(s.is_success(), "{what} with the admin key: {s} {b}");
            checks += 1;
        }
    }
    // Only the two accepted POST /v1/jobs (user and admin key) enqueued anything.
    assert_eq!(
        t.metric("gateway_jobs_enqueued_total").await - enqueued,
        2.0,
        "a refused POST /v1/jobs enqueued a job"
    );
    checks
}

/// Tenant B cannot read tenant A's (the user key's) jobs and notes, nor overwrite A's note;
/// the refusal looks like a missing id. The admin key reads both tenants.
async fn tenant_isolation(t: &T, sec: &Secrets) {
    let a = &sec.user;
    let b = &sec.tenant_b;
    let note = uuid::Uuid::new_v4();
    t.json(
        Method::POST,
        "/v1/notes",
        a,
        Some(&json!({"id": note, "text": "tenant A's note"})),
    )
    .await;
    let job = t
        .json(
            Method::POST,
            "/v1/jobs",
            a,
            Some(&json!({"kind": "tenant-a"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, missing_note) = t
        .req(
            Method::GET,
            &format!("/v1/notes/{}", uuid::Uuid::new_v4()),
            Some(b),
            None,
        )
        .await;
    let (_, missing_job) = t
        .req(
            Method::GET,
            &format!("/v1/jobs/{}", uuid::Uuid::new_v4()),
            Some(b),
            None,
        )
        .await;
    let (s, body) = t
        .req(Method::GET, &format!("/v1/notes/{note}"), Some(b), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "B read A's note: {body}");
    assert_eq!(body, missing_note, "B can tell A's note from a missing one");
    let (s, body) = t
        .req(Method::GET, &format!("/v1/jobs/{job}"), Some(b), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "B read A's job: {body}");
    assert_eq!(body, missing_job, "B can tell A's job from a missing one");
    let (s, body) = t
        .req(
            Method::POST,
            "/v1/notes",
            Some(b),
            Some(&json!({"id": note, "text": "overwritten by B"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "B wrote A's note id: {body}");
    let mine = t
        .json(Method::GET, &format!("/v1/notes/{note}"), a, None)
        .await;
    assert_eq!(mine["text"], "tenant A's note", "B overwrote A's note");
    // A retrying its own write is still an idempotent upsert.
    let (s, _) = t
        .req(
            Method::POST,
            "/v1/notes",
            Some(a),
            Some(&json!({"id": note, "text": "tenant A's note v2"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // And the other way round.
    let b_note = uuid::Uuid::new_v4();
    t.json(
        Method::POST,
        "/v1/notes",
        b,
        Some(&json!({"id": b_note, "text": "tenant B's note"})),
    )
    .await;
    let (s, _) = t
        .req(Method::GET, &format!("/v1/notes/{b_note}"), Some(a), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "A read B's note");
    // The admin key reads every tenant.
    let n = t
        .json(
            Method::GET,
            &format!("/v1/notes/{b_note}"),
            &sec.admin,
            None,
        )
        .await;
    assert_eq!(n["text"], "tenant B's note");
    let j = t
        .json(Method::GET, &format!("/v1/jobs/{job}"), &sec.admin, None)
        .await;
    assert_eq!(j["kind"], "tenant-a");
}

/// Classic injection strings, stored in every field the API stores; each must come back
/// byte for byte, and the tables and keys must be intact afterwards.
const INJECTIONS: [&str; 8] = [
    "'; DROP TABLE notes; --",
    "' OR '1'='1",
    "\"); DELETE FROM api_keys; --",
    "x'); TRUNCATE jobs, conversations CASCADE; --",
    "$1; SELECT pg_sleep(10); --",
    "\\'; UPDATE api_keys SET role = 'admin'; --",
    "1 UNION SELECT key_hash FROM api_keys --",
    "'; COPY notes TO '/tmp/pwned'; -- ü ✓ 😀",
];

async fn sql_injection_is_data(t: &T, sec: &Secrets, db: &deadpool_postgres::Pool) {
    let key = &sec.user;
    let mut conversation_ids = Vec::new();
    for (i, inj) in INJECTIONS.iter().enumerate() {
        // notes.text
        let id = uuid::Uuid::new_v4();
        t.json(
            Method::POST,
            "/v1/notes",
            key,
            Some(&json!({"id": id, "text": inj})),
        )
        .await;
        let n = t
            .json(Method::GET, &format!("/v1/notes/{id}"), key, None)
            .await;
        assert_eq!(n["text"], *inj, "note text changed");
        // jobs.kind and jobs.payload (a key and a value chosen by the client)
        let mut body = json!({"kind": inj, "note": inj, "work_ms": 1});
        body[*inj] = json!([inj, {"nested": inj}]);
        let job = t.json(Method::POST, "/v1/jobs", key, Some(&body)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let j = t
            .json(Method::GET, &format!("/v1/jobs/{job}"), key, None)
            .await;
        assert_eq!(j["kind"], *inj, "job kind changed");
        assert_eq!(j["payload"], body, "job payload changed");
        // conversations.prompt and prompt_version (no read route: read the row itself)
        let c = t
            .json(
                Method::POST,
                "/v1/chat",
                key,
                Some(&json!({"prompt": format!("{inj} {i}"), "prompt_version": inj})),
            )
            .await;
        assert_eq!(c["prompt_version"], *inj);
        conversation_ids.push((c["id"].as_str().unwrap().to_string(), i));
        // the same strings where the API expects ids, versions or keys: refused, not run
        for (method, path, body, want) in [
            (
                Method::GET,
                format!("/v1/notes/{}", urlencode(inj)),
                None,
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::GET,
                format!("/v1/jobs/{}", urlencode(inj)),
                None,
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/v1/chat".to_string(),
                Some(json!({"prompt": "p", "model": inj})),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                "/admin/routing".to_string(),
                Some(json!({"active": inj})),
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::PUT,
                format!("/admin/faults/{}", urlencode(inj)),
                Some(json!({})),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (s, b) = t
                .req(method.clone(), &path, Some(&sec.admin), body.as_ref())
                .await;
            assert_eq!(s, want, "{method} {path}: {b}");
        }
        let (s, _) = t.req(Method::GET, "/auth/me", Some(inj), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "an injection as the API key");
    }
    // NUL cannot be stored by PostgreSQL: 400 naming the field, not a 503 or a lost batch.
    for (path, body, field) in [
        (
            "/v1/notes",
            json!({"id": uuid::Uuid::new_v4(), "text": "a\u{0}b"}),
            "text",
        ),
        ("/v1/jobs", json!({"kind": "a\u{0}b"}), "body.kind"),
        ("/v1/jobs", json!({"kind": "k", "x\u{0}": 1}), "body.x"),
        ("/v1/chat", json!({"prompt": "a\u{0}b"}), "prompt"),
        (
            "/v1/chat",
            json!({"prompt": "p", "prompt_version": "\u{0}"}),
            "prompt_version",
        ),
    ] {
        let (s, b) = t.req(Method::POST, path, Some(key), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {b}");
        assert!(b.contains(&format!("`{field}")), "{path}: {b}");
    }
    // Conversation rows are written asynchronously: wait for each, then compare.
    let c = db.get().await.unwrap();
    for (id, i) in &conversation_ids {
        let id = uuid::Uuid::parse_str(id).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let row = loop {
            let row = c
                .query_opt(
                    "SELECT prompt, prompt_version FROM conversations WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            if let Some(r) = row {
                break r;
            }
            assert!(Instant::now() < deadline, "conversation {id} never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let inj = INJECTIONS[*i];
        assert_eq!(row.get::<_, String>(0), format!("{inj} {i}"));
        assert_eq!(row.get::<_, String>(1), inj);
    }
    // Tables intact, keys unchanged, roles unchanged.
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'
             AND table_name IN ('api_keys', 'conversations', 'jobs', 'notes')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 4, "a table is gone");
    let keys: Vec<(String, String)> = c
        .query("SELECT key_id, role FROM api_keys ORDER BY key_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        keys,
        [
            ("admin".to_string(), "admin".to_string()),
            ("tenant-b".into(), "user".into()),
            ("tenant-c".into(), "user".into()),
            ("user".into(), "user".into())
        ]
    );
    let notes: i64 = c
        .query_one(
            "SELECT count(*) FROM notes WHERE text = ANY($1)",
            &[&INJECTIONS.to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(notes, INJECTIONS.len() as i64, "injected notes missing");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let me = t.json(Method::GET, "/auth/me", &sec.user, None).await;
    assert_eq!(me["role"], "user");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends one request over a raw connection (`chunks` as chunked encoding when
/// `content_length` is None) and returns the status and body of the answer.
async fn raw(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &[u8],
    chunked: bool,
) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let framing = if chunked {
        "transfer-encoding: chunked".to_string()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\n{framing}\r\nconnection: close\r\n\r\n"
    );
    let mut wire = head.into_bytes();
    if chunked {
        for c in body.chunks(8192) {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        wire.extend_from_slice(body);
    }
    // The gateway may answer (and close) before it has read everything: a failed write is
    // fine as long as the answer arrives.
    let _ = s.write_all(&wire).await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A JSON body of exactly `len` bytes: `{"id":..,"text":"xxxx"}`-like with padding.
fn padded(template: Value, pad_field: &str, len: usize) -> Vec<u8> {
    let mut v = template;
    v[pad_field] = json!("");
    let base = serde_json::to_vec(&v).unwrap().len();
    v[pad_field] = json!("x".repeat(len - base));
    let out = serde_json::to_vec(&v).unwrap();
    assert_eq!(out.len(), len);
    out
}

/// Every route that takes a body: at the limit it is served, one byte over it is 413, with a
/// Content-Length and chunked; without a key an over-long declared body is 413 too. Returns
/// the number of route x case checks.
async fn oversized_bodies_get_413(t: &T, sec: &Secrets) -> usize {
    let over = BODY_LIMIT + 1;
    let mut checks = 0;
    for (method, path, template, pad) in [
        ("POST", "/v1/chat", json!({"prompt": "big"}), "prompt"),
        ("POST", "/v1/jobs", json!({"kind": "big"}), "pad"),
        ("POST", "/v1/notes", json!({"id": "", "text": ""}), "text"),
        ("PUT", "/admin/routing", json!({}), "pad"),
        ("POST", "/admin/routing", json!({}), "pad"),
        ("PUT", "/admin/faults/v1", json!({}), "pad"),
        ("POST", "/admin/faults/v1", json!({}), "pad"),
        ("PUT", "/admin/workers", json!({"min": 1, "max": 4}), "pad"),
        ("POST", "/admin/workers", json!({"min": 1, "max": 4}), "pad"),
    ] {
        let mut template = template;
        if path == "/v1/notes" {
            template["id"] = json!(uuid::Uuid::new_v4());
        }
        let what = format!("{method} {path}");
        for chunked in [false, true] {
            let (s, b) = raw(
                &t.base,
                method,
                path,
                &sec.admin,
                &padded(template.clone(), pad, over),
                chunked,
            )
            .await;
            assert_eq!(s, 413, "{what} with {over} bytes (chunked {chunked}): {b}");
            assert!(b.contains("GATEWAY_MAX_BODY_BYTES"), "{what}: {b}");
            checks += 1;
        }
        // At the limit the body is read: served, or refused for its content (unknown field
        // `pad`), never 413.
        let (s, b) = raw(
            &t.base,
            method,
            path,
            &sec.admin,
            &padded(template.clone(), pad, BODY_LIMIT),
            false,
        )
        .await;
        assert!(
            s == 200 || s == 201 || s == 202 || s == 400,
            "{what} at the limit: {s} {b}"
        );
        checks += 1;
        // An over-long declared body is refused before authentication.
        let (s, _) = raw(
            &t.base,
            method,
            path,
            "",
            &padded(template, pad, over),
            false,
        )
        .await;
        assert_eq!(s, 413, "{what} without a key");
        checks += 1;
    }
    // The gateway is fine afterwards.
    let me = t.json(Method::GET, "/auth/me", &sec.admin, None).await;
    assert_eq!(me["role"], "admin");
    checks
}

/// A handler that panics while holding the admin-state, key-cache, worker-pool and metrics
/// locks answers 500; afterwards every piece of shared state still works.
async fn panic_isolation(t: &T, sec: &Secrets, tenant_c: &str) {
    for _ in 0..3 {
        let (s, b) = t
            .req(Method::POST, "/debug/panic", Some(&sec.admin), None)
            .await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["error"], "internal error: request handler panicked");
    }
    // key cache: a cached key and a key never seen before (inserted into the cache now)
    let me = t.json(Method::GET, "/auth/me", &sec.user, None).await;
    assert_eq!(me["key_id"], "user");
    let me = t.json(Method::GET, "/auth/me", tenant_c, None).await;
    assert_eq!(me["key_id"], "tenant-c");
    // admin state: read and write
    t.json(Method::GET, "/admin/state", &sec.admin, None).await;
    let s = t
        .json(
            Method::PUT,
            "/admin/routing",
            &sec.admin,
            Some(&json!({"canary_weight": 3})),
        )
        .await;
    assert_eq!(s["routing"]["canary_weight"], 3);
    t.json(
        Method::PUT,
        "/admin/routing",
        &sec.admin,
        Some(&json!({"canary_weight": 0})),
    )
    .await;
    // worker pool: a job still runs, and the autoscaler can still resize the pool
    let job = t
        .json(
            Method::POST,
            "/v1/jobs",
            &sec.user,
            Some(&json!({"kind": "after-panic", "work_ms": 1})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        "a job after the panics",
        Duration::from_secs(10),
        || async {
            t.json(Method::GET, &format!("/v1/jobs/{job}"), &sec.user, None)
                .await["state"]
                == "succeeded"
        },
    )
    .await;
    t.json(
        Method::PUT,
        "/admin/workers",
        &sec.admin,
        Some(&json!({"min": 2, "max": 4})),
    )
    .await;
    wait_for(
        "2 workers after the panics",
        Duration::from_secs(10),
        || async { t.metric("gateway_workers_current").await == 2.0 },
    )
    .await;
    // metrics: render, count the panics as 500s, and the in-flight gauge came back down
    let (s, text) = t.req(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains(
            "gateway_http_requests_total{route=\"/debug/panic\",status=\"500\",version=\"none\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("\ngateway_in_flight_requests 1\n"),
        "in-flight gauge leaked: {text}"
    );
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

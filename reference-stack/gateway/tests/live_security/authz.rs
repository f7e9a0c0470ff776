//! Authentication and authorization on every route, and tenant isolation of jobs and notes.

use super::*;

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Access {
    Public,
    Key,
    Admin,
}

/// Every gateway route with a harmless body; `{job}` and `{note}` are replaced by ids the
/// user key owns.
pub(super) fn routes() -> Vec<(Method, &'static str, Option<Value>, Access)> {
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
pub(super) async fn authn_authz_every_route(t: &T, sec: &Secrets, job: &str, note: &str) -> usize {
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
pub(super) async fn tenant_isolation(t: &T, sec: &Secrets) {
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

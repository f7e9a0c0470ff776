//! SQL-injection attempts in every stored field are kept as data; the tables stay intact.

use super::*;

/// Classic injection strings, stored in every field the API stores; each must come back
/// byte for byte, and the tables and keys must be intact afterwards.
pub(super) const INJECTIONS: [&str; 8] = [
    "'; DROP TABLE notes; --",
    "' OR '1'='1",
    "\"); DELETE FROM api_keys; --",
    "x'); TRUNCATE jobs, conversations CASCADE; --",
    "$1; SELECT pg_sleep(10); --",
    "\\'; UPDATE api_keys SET role = 'admin'; --",
    "1 UNION SELECT key_hash FROM api_keys --",
    "'; COPY notes TO '/tmp/pwned'; -- ü ✓ 😀",
];

pub(super) async fn sql_injection_is_data(t: &T, sec: &Secrets, db: &deadpool_postgres::Pool) {
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

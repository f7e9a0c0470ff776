//! Oversized bodies get 413, and a panicking handler leaves shared state usable.

use super::*;

pub(super) fn urlencode(s: &str) -> String {
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
pub(super) async fn raw(
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
pub(super) fn padded(template: Value, pad_field: &str, len: usize) -> Vec<u8> {
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
pub(super) async fn oversized_bodies_get_413(t: &T, sec: &Secrets) -> usize {
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
pub(super) async fn panic_isolation(t: &T, sec: &Secrets, tenant_c: &str) {
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

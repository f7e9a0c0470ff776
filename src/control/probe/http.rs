//! One probe sample over HTTP (reqwest: probes are a few requests a second, off the hot path):
//! a request, or a chain (submit, capture, poll until `until` / `fail_if`, within the
//! deadline); templates rendered with feeders and captured values; reqwest errors classified
//! into the engine's error kinds.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::task::{Done, Shared};
use super::BODY_CAP;
use crate::grammar::template::{write_json_str_content, Ref, RenderVars, Template};
use crate::metrics::ErrorKind;
use crate::spec::{FeederOrder, ProbeKind, ProbeRequest, ProbeSpec};

/// One HTTP exchange of a probe.
struct Exchange {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    error: Option<(ErrorKind, String)>,
}

/// One sample (a request, or a whole chain).
pub(super) async fn sample(spec: Arc<ProbeSpec>, sh: Arc<Shared>, seq: u64) -> Done {
    let started = Instant::now();
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let vars = RenderVars {
        seq,
        vu: 0,
        iter: seq,
    };
    let captured: BTreeMap<String, String> = BTreeMap::new();
    match &spec.kind {
        ProbeKind::Request(req) => {
            let x = exchange(&sh, req, vars, &captured, &mut rng, spec.timeout).await;
            let end = Instant::now();
            let (passed, failed, first_failed) = run_checks(req, &x);
            let (error, reason) = match (&x.error, first_failed) {
                (Some((k, r)), _) => (Some(*k), Some(r.clone())),
                (None, Some(c)) => (
                    Some(ErrorKind::CheckFailed),
                    Some(format!("check failed: {c} (status {})", x.status)),
                ),
                (None, None) => (None, None),
            };
            Done {
                started,
                end,
                latency: end - started,
                status: x.status,
                error,
                reason,
                checks_passed: passed,
                checks_failed: failed,
            }
        }
        ProbeKind::Chain(c) => {
            let deadline = started + c.deadline;
            let fail = |x: &Exchange, kind: ErrorKind, reason: String| {
                let end = Instant::now();
                Done {
                    started,
                    end,
                    latency: end - started,
                    status: x.status,
                    error: Some(kind),
                    reason: Some(reason),
                    checks_passed: 0,
                    checks_failed: 0,
                }
            };
            let x = exchange(&sh, &c.submit, vars, &captured, &mut rng, spec.timeout).await;
            if let Some((k, r)) = &x.error {
                return fail(&x, *k, format!("submit: {r}"));
            }
            let (_, _, first_failed) = run_checks(&c.submit, &x);
            if let Some(check) = first_failed {
                return fail(
                    &x,
                    ErrorKind::CheckFailed,
                    format!("submit: check failed: {check} (status {})", x.status),
                );
            }
            let captured = capture(c, &x.headers, &x.body);
            if let Some(missing) = poll_vars(&c.poll).find(|v| !captured.contains_key(*v)) {
                let have: Vec<&str> = captured.keys().map(String::as_str).collect();
                return fail(
                    &x,
                    ErrorKind::CheckFailed,
                    format!(
                        "submit: the response has no `{missing}` for {{{{{missing}}}}} (captured: {})",
                        if have.is_empty() { "nothing".to_string() } else { have.join(", ") }
                    ),
                );
            }
            let mut last = String::from("no poll answered yet");
            let mut last_status = x.status;
            loop {
                let wake = Instant::now() + c.poll_every;
                if wake >= deadline {
                    tokio::time::sleep_until(deadline.into()).await;
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: c.deadline,
                        status: last_status,
                        error: Some(ErrorKind::Deadline),
                        reason: Some(format!(
                            "not done within {} ({last})",
                            crate::grammar::units::Duration(c.deadline)
                        )),
                        checks_passed: 0,
                        checks_failed: 0,
                    };
                }
                tokio::time::sleep_until(wake.into()).await;
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = spec.timeout.min(left.max(Duration::from_millis(1)));
                let x = exchange(&sh, &c.poll, vars, &captured, &mut rng, timeout).await;
                last_status = x.status;
                if x.status == 0 {
                    // No answer (transport error): try again.
                    let r = x
                        .error
                        .as_ref()
                        .map(|e| e.1.as_str())
                        .unwrap_or("no answer");
                    last = format!("last poll: {r}");
                    continue;
                }
                if let Some(f) = c
                    .fail_if
                    .as_ref()
                    .filter(|f| f.evaluate(x.status, &x.headers, &x.body))
                {
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: end - started,
                        status: x.status,
                        error: Some(ErrorKind::CheckFailed),
                        reason: Some(format!("poll: `{f}` held (status {})", x.status)),
                        checks_passed: 0,
                        checks_failed: 1,
                    };
                }
                if c.until.evaluate(x.status, &x.headers, &x.body) {
                    let end = Instant::now();
                    return Done {
                        started,
                        end,
                        latency: end - started,
                        status: x.status,
                        error: None,
                        reason: None,
                        checks_passed: 0,
                        checks_failed: 0,
                    };
                }
                last = format!("last poll: status {}, `{}` did not hold", x.status, c.until);
            }
        }
    }
}

/// Every `{{NAME}}` the poll's templates read.
fn poll_vars(poll: &ProbeRequest) -> impl Iterator<Item = &str> {
    poll.path
        .vars_used()
        .chain(poll.headers.iter().flat_map(|(_, t)| t.vars_used()))
        .chain(poll.body.iter().flat_map(|b| b.vars_used()))
}

/// Values for the poll's templates: the chain's `capture:` pointers, or every top-level
/// scalar field of the submit's JSON response.
fn capture(
    c: &crate::spec::ChainSpec,
    headers: &http::HeaderMap,
    body: &[u8],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !c.capture.is_empty() {
        let mut buf = Vec::new();
        for cap in &c.capture {
            if cap.from.extract(headers, body, &mut buf) {
                out.insert(cap.var.clone(), String::from_utf8_lossy(&buf).into_owned());
            }
        }
        return out;
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return out;
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if let Some(map) = doc.as_object() {
        for (k, v) in map {
            if let Some(t) = text(v) {
                out.insert(k.clone(), t);
            }
        }
    }
    out
}

/// (passed, failed, the first failed check).
fn run_checks(req: &ProbeRequest, x: &Exchange) -> (u64, u64, Option<String>) {
    let (mut passed, mut failed, mut first) = (0, 0, None);
    for c in &req.checks {
        if x.error.is_none() && c.evaluate(x.status, &x.headers, &x.body) {
            passed += 1;
        } else {
            failed += 1;
            first.get_or_insert_with(|| c.to_string());
        }
    }
    (passed, failed, first)
}

/// Render a probe template. `json`: the template is a JSON body whose placeholders sit
/// inside JSON strings, so feeder and captured values are written as JSON string content
/// (as the engine does, see `RequestSpec::body_json`).
fn render(
    t: &Template,
    vars: RenderVars,
    sh: &Shared,
    captured: &BTreeMap<String, String>,
    rng: &mut impl Rng,
    json: bool,
) -> String {
    let put = |v: &str, out: &mut Vec<u8>| {
        if json {
            write_json_str_content(v, out);
        } else {
            out.extend_from_slice(v.as_bytes());
        }
    };
    let mut out = Vec::new();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut pick = rand::rngs::SmallRng::from_rng(&mut *rng);
    t.render_with(
        vars,
        rng,
        &mut |r, out| match r {
            Ref::Var(name) => {
                if let Some(v) = captured.get(name) {
                    put(v, out);
                }
            }
            Ref::Feeder { feeder, column } => {
                let Some(f) = sh.feeders.get(feeder) else {
                    return;
                };
                let Some(col) = f.columns.iter().position(|c| c == column) else {
                    return;
                };
                if f.rows.is_empty() {
                    return;
                }
                let row = *rows
                    .entry(feeder.to_string())
                    .or_insert_with(|| match f.order {
                        FeederOrder::Sequential => (vars.seq % f.rows.len() as u64) as usize,
                        FeederOrder::Random => pick.random_range(0..f.rows.len()),
                    });
                if let Some(v) = f.rows[row].get(col) {
                    put(v, out);
                }
            }
        },
        &mut out,
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Send one probe request and read the response (body up to [`BODY_CAP`]).
async fn exchange(
    sh: &Shared,
    req: &ProbeRequest,
    vars: RenderVars,
    captured: &BTreeMap<String, String>,
    rng: &mut impl Rng,
    timeout: Duration,
) -> Exchange {
    let fail = |kind: ErrorKind, reason: String| Exchange {
        status: 0,
        headers: http::HeaderMap::new(),
        body: Vec::new(),
        error: Some((kind, reason)),
    };
    let url = format!(
        "{}{}",
        sh.base,
        render(&req.path, vars, sh, captured, rng, false)
    );
    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(e) => return fail(ErrorKind::Protocol, format!("method {}: {e}", req.method)),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, t) in sh.default_headers.iter().chain(req.headers.iter()) {
        let value = render(t, vars, sh, captured, rng, false);
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => headers.push((name.clone(), value)),
        }
    }
    let mut rb = sh.client.request(method, &url).timeout(timeout);
    for (n, v) in &headers {
        rb = rb.header(n.as_str(), v.as_str());
    }
    if let Some(body) = &req.body {
        rb = rb.body(render(body, vars, sh, captured, rng, req.body_json));
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return fail(classify(&e), e.to_string()),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                let mut x = fail(classify(&e), format!("reading the body: {e}"));
                x.status = status;
                return x;
            }
        }
    }
    let error = ErrorKind::from_status(status).map(|k| (k, format!("status {status}")));
    Exchange {
        status,
        headers,
        body,
        error,
    }
}

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ErrorKind::from_io(io);
        }
        src = s.source();
    }
    if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Io
    }
}

//! Checks and lowering of `probes:`: a request or a submit-then-poll chain, its cadence and
//! phase, and its SLO (see [`crate::spec::probe`] for what a sample is).
use std::collections::BTreeMap;
use std::time::Duration;

use crate::grammar::response::ResponseCheck;
use crate::grammar::template::Template;
use crate::grammar::threshold::{Aggregation, ThresholdExpr};
use crate::spec::{ChainSpec, Extraction, Feeder, HttpOptions, ProbeKind, ProbeRequest, ProbeSpec};

use super::common::{
    body_with, check_feeder_refs, headers, method, positive, template, template_vars,
};
use super::model::{PollDef, Probe, ProbeRequestDef};
use super::problem::Issues;
use super::tree::PathSeg;

/// Default cadence of a request probe.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Default cadence of a chain.
pub const DEFAULT_CHAIN_EVERY: Duration = Duration::from_secs(10);
/// Default deadline of a chain.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Default poll interval of a chain.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_secs(1);
/// What a probe's SLO gets when it has no `rate` expression: no sample may fail.
pub const DEFAULT_SLO: &str = "rate==0";

fn at(base: &[PathSeg], field: &str) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.push(PathSeg::Key(field.to_string()));
    p
}

pub(crate) fn probe(
    name: &str,
    p: &Probe,
    http: &HttpOptions,
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> Option<ProbeSpec> {
    let base = path!["probes", name];
    let before = issues.0.len();
    let chain_fields =
        p.submit.is_some() || p.poll.is_some() || p.capture.is_some() || p.deadline.is_some();
    let kind = match (&p.request, chain_fields) {
        (Some(_), true) => {
            issues.at_key(
                &base,
                "give either `request:` (one request) or `submit:` and `poll:` (a chain), not both",
            );
            None
        }
        (Some(r), false) => request(
            r,
            &at(&base, "request"),
            feeders,
            default_headers,
            false,
            issues,
        )
        .map(ProbeKind::Request),
        (None, true) => {
            chain(p, &base, feeders, default_headers, issues).map(|c| ProbeKind::Chain(Box::new(c)))
        }
        (None, false) => {
            issues.at(
                at(&base, "request"),
                "required: `request: GET /path` (or `submit:` and `poll:` for a chain)",
            );
            None
        }
    };
    let is_chain = matches!(kind, Some(ProbeKind::Chain(_)));
    let every =
        positive(p.every.map(|d| d.0), &at(&base, "every"), issues).unwrap_or(if is_chain {
            DEFAULT_CHAIN_EVERY
        } else {
            DEFAULT_EVERY
        });
    let from = p.start_after.map(|d| d.0).unwrap_or_default();
    let until = positive(p.duration.map(|d| d.0), &at(&base, "duration"), issues).map(|d| from + d);
    let timeout =
        positive(p.timeout.map(|d| d.0), &at(&base, "timeout"), issues).unwrap_or(http.timeout);
    let min_samples = p.min_samples.unwrap_or(1);
    if min_samples == 0 {
        issues.at(
            at(&base, "min_samples"),
            "must be at least 1 (no data is never a pass)",
        );
    }
    let texts = p
        .slo
        .as_ref()
        .map(|s| s.items())
        .unwrap_or_else(|| vec![DEFAULT_SLO.to_string()]);
    if texts.is_empty() {
        issues.at(
            at(&base, "slo"),
            "needs at least one expression, e.g. \"p(95)<250\"",
        );
    }
    let mut slo = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let path = match &p.slo {
            Some(super::model::OneOrMany::Many(_)) => {
                [at(&base, "slo"), vec![PathSeg::Index(i)]].concat()
            }
            _ => at(&base, "slo"),
        };
        match ThresholdExpr::parse(text) {
            Ok(e) if e.window.is_some() => issues.at(
                &path,
                "a probe's SLO is judged over the probe's whole run: drop `over ...` (use a threshold on `http_req_duration{probe:NAME}` for windows)",
            ),
            Ok(e) if matches!(e.aggregation, Aggregation::Value) => issues.at(
                &path,
                "`value` does not apply to a probe: use avg, min, max, med or p(N) (latency, ms), rate (failure rate) or count (samples)",
            ),
            Ok(e) => {
                // Checked against the metric it judges, so units are too (`p(95)<250ms`,
                // `rate<1%`).
                let metric = match e.aggregation {
                    Aggregation::Rate => "http_req_failed",
                    Aggregation::Count => "http_reqs",
                    _ => "http_req_duration",
                };
                match crate::grammar::threshold::validate_for_metric(metric, &e) {
                    Ok(()) => slo.push(e),
                    Err(err) => issues.at(&path, format!("bad SLO expression: {err}")),
                }
            }
            Err(e) => issues.at(&path, format!("bad SLO expression: {e}")),
        }
    }
    // A failed sample always counts: without a `rate` expression, no sample may fail.
    if !slo.iter().any(|e| e.aggregation == Aggregation::Rate) {
        if let Ok(e) = ThresholdExpr::parse(DEFAULT_SLO) {
            slo.push(e);
        }
    }
    let runbook = super::common::runbook(p.runbook.as_ref(), at(&base, "runbook"), issues);
    if issues.0.len() != before {
        return None;
    }
    Some(ProbeSpec {
        name: name.to_string(),
        kind: kind?,
        every,
        from,
        until,
        slo,
        min_samples: min_samples.max(1),
        timeout,
        runbook,
    })
}

/// A probe request from `GET /path` or the long form. `vars`: `{{NAME}}` allowed.
fn request(
    def: &ProbeRequestDef,
    base: &[PathSeg],
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    vars: bool,
    issues: &mut Issues,
) -> Option<ProbeRequest> {
    match def {
        ProbeRequestDef::Line(line) => {
            let mut parts = line.split_whitespace();
            let (m, path) = match (parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(p), None) => (m, p),
                (Some(p), None, None) if p.starts_with('/') => ("GET", p),
                _ => {
                    issues.at(
                        base,
                        format!("expected `METHOD /path`, e.g. `GET /auth/me`, got {line:?}"),
                    );
                    return None;
                }
            };
            parts_to_request(
                m,
                Some(path),
                None,
                None,
                None,
                base,
                base,
                feeders,
                default_headers,
                vars,
                issues,
            )
        }
        ProbeRequestDef::Full(f) => parts_to_request(
            f.method
                .as_deref()
                .unwrap_or(if f.body.is_some() { "POST" } else { "GET" }),
            f.path.as_deref(),
            f.headers.as_ref(),
            f.body.as_ref(),
            f.checks.as_deref(),
            base,
            &at(base, "path"),
            feeders,
            default_headers,
            vars,
            issues,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn parts_to_request(
    m: &str,
    path: Option<&str>,
    hdrs: Option<&BTreeMap<String, String>>,
    body: Option<&serde_json::Value>,
    checks: Option<&[String]>,
    base: &[PathSeg],
    path_at: &[PathSeg],
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    vars: bool,
    issues: &mut Issues,
) -> Option<ProbeRequest> {
    let before = issues.0.len();
    let method = method(m, &at(base, "method"), issues);
    let parse = |text: &str, p: &[PathSeg], issues: &mut Issues| {
        if vars {
            template_vars(text, p, issues)
        } else {
            template(text, p, issues)
        }
    };
    let path = match path {
        None => {
            issues.at(path_at, "required: the request path, e.g. `path: /auth/me`");
            None
        }
        Some(p) if !p.starts_with('/') && !p.starts_with("{{") => {
            issues.at(path_at, format!("must start with '/', got {p:?}"));
            None
        }
        Some(p) => parse(p, path_at, issues),
    };
    if let Some(t) = &path {
        check_feeder_refs(t, path_at, feeders, issues);
    }
    let mut headers: Vec<(String, Template)> = if vars {
        let mut out = Vec::new();
        for (name, value) in hdrs.into_iter().flatten() {
            let p = [at(base, "headers"), vec![PathSeg::Key(name.clone())]].concat();
            if let Some(t) = template_vars(value, &p, issues) {
                out.push((name.clone(), t));
            }
        }
        out
    } else {
        headers(hdrs, &at(base, "headers"), issues)
    };
    for (name, value) in &headers {
        let p = [at(base, "headers"), vec![PathSeg::Key(name.clone())]].concat();
        check_feeder_refs(value, &p, feeders, issues);
    }
    let (body, body_json) = body_with(
        body,
        &at(base, "body"),
        &mut headers,
        default_headers,
        issues,
        vars,
    );
    if let Some(t) = &body {
        check_feeder_refs(t, &at(base, "body"), feeders, issues);
    }
    let mut parsed = Vec::new();
    for (i, c) in checks.into_iter().flatten().enumerate() {
        match ResponseCheck::parse(c) {
            Ok(check) => parsed.push(check),
            Err(e) => issues.at(
                [at(base, "checks"), vec![PathSeg::Index(i)]].concat(),
                format!("bad check: {e}"),
            ),
        }
    }
    if issues.0.len() != before {
        return None;
    }
    Some(ProbeRequest {
        method,
        path: path?,
        headers,
        body,
        body_json,
        checks: parsed,
    })
}

fn chain(
    p: &Probe,
    base: &[PathSeg],
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    issues: &mut Issues,
) -> Option<ChainSpec> {
    let before = issues.0.len();
    let submit = match &p.submit {
        Some(s) => request(
            s,
            &at(base, "submit"),
            feeders,
            default_headers,
            false,
            issues,
        ),
        None => {
            issues.at(at(base, "submit"), "a chain needs `submit:` (the request that starts it, e.g. `submit: POST /v1/jobs`)");
            None
        }
    };
    let mut capture = Vec::new();
    for (var, pointer) in p.capture.iter().flatten() {
        let path = [at(base, "capture"), vec![PathSeg::Key(var.clone())]].concat();
        // A bare JSON pointer (`/id`), or any extraction a flow step takes (`json /id`,
        // `header location`, `regex ...`): probe chains and flows share one step model.
        let text = if pointer.is_empty() || pointer.starts_with('/') {
            format!("json {pointer}")
        } else {
            pointer.clone()
        };
        let from = match crate::grammar::extract::Extractor::parse(&text) {
            Ok(e) => Some(e),
            Err(e) => {
                issues.at(
                    &path,
                    format!("expected a JSON pointer such as /id or /data/0/id, or an extraction (`header NAME`, `regex PATTERN`), got {pointer:?}: {e}"),
                );
                None
            }
        };
        if !var
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            || !var
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            issues.at_key(
                &path,
                format!("{var:?} is not a usable name: letters, digits, `_`, `-`"),
            );
        }
        if let Some(from) = from {
            capture.push(Extraction {
                var: var.clone(),
                from,
            });
        }
    }
    let poll_at = at(base, "poll");
    let (poll, until, fail_if, poll_every) = match &p.poll {
        None => {
            issues.at(&poll_at, "a chain needs `poll:` (e.g. `poll: {path: \"/v1/jobs/{{id}}\", until: \"/status == done\"}`)");
            (None, None, None, DEFAULT_POLL_EVERY)
        }
        Some(PollDef {
            method: m,
            path,
            headers,
            body,
            until,
            fail_if,
            every,
        }) => {
            let req = parts_to_request(
                m.as_deref().unwrap_or("GET"),
                path.as_deref(),
                headers.as_ref(),
                body.as_ref(),
                None,
                &poll_at,
                &at(&poll_at, "path"),
                feeders,
                default_headers,
                true,
                issues,
            );
            let until = match until {
                None => {
                    issues.at(at(&poll_at, "until"), "required: the condition that ends the chain, e.g. `until: \"/status == done\"`");
                    None
                }
                Some(u) => condition(u, &at(&poll_at, "until"), issues),
            };
            let fail_if = fail_if
                .as_ref()
                .and_then(|f| condition(f, &at(&poll_at, "fail_if"), issues));
            let every = positive(every.map(|d| d.0), &at(&poll_at, "every"), issues)
                .unwrap_or(DEFAULT_POLL_EVERY);
            (req, until, fail_if, every)
        }
    };
    // With explicit captures, every `{{NAME}}` of the poll must be one of them.
    if let (Some(req), false) = (&poll, capture.is_empty()) {
        let known: Vec<&str> = capture.iter().map(|c| c.var.as_str()).collect();
        let mut used: Vec<&str> = req.path.vars_used().collect();
        for (_, t) in &req.headers {
            used.extend(t.vars_used());
        }
        if let Some(b) = &req.body {
            used.extend(b.vars_used());
        }
        for v in used {
            if !known.contains(&v) {
                issues.at(
                    &poll_at,
                    format!(
                        "{{{{{v}}}}} is not captured (capture: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let deadline = positive(p.deadline.map(|d| d.0), &at(base, "deadline"), issues)
        .unwrap_or(DEFAULT_DEADLINE);
    if poll_every >= deadline {
        issues.at(
            at(&poll_at, "every"),
            format!(
                "the poll interval ({}) must be shorter than the deadline ({})",
                crate::grammar::units::Duration(poll_every),
                crate::grammar::units::Duration(deadline)
            ),
        );
    }
    if issues.0.len() != before {
        return None;
    }
    Some(ChainSpec {
        submit: submit?,
        capture,
        poll: poll?,
        until: until?,
        fail_if,
        poll_every,
        deadline,
    })
}

/// A poll condition in the response-check grammar; a leading `/` means `json /...`.
fn condition(text: &str, path: &[PathSeg], issues: &mut Issues) -> Option<ResponseCheck> {
    let t = text.trim();
    let full = if t.starts_with('/') {
        format!("json {t}")
    } else {
        t.to_string()
    };
    match ResponseCheck::parse(&full) {
        Ok(c) => Some(c),
        Err(e) => {
            issues.at(path, format!("bad condition: {e}"));
            None
        }
    }
}

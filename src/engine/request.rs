//! The request source: picks a scenario's request by weight and renders it as HTTP/1.1 wire
//! bytes, or in HTTP/2 form ([`H2Request`]: method, absolute URI, header map without the
//! HTTP/1.1-only headers, body as shared `Bytes`) when the VU's connection speaks h2.
//! Templates are bound once to feeder and column indices; a request without any placeholder
//! is pre-built once in both forms and sent as the same bytes (h1) or the same shared parts
//! (h2) every time: no render, no parse, no copy of its body.
//!
//! Rendering writes into the VU's reused [`Scratch`] buffers, so a templated request allocates
//! nothing once the buffers have grown to fit.
//!
//! In a JSON body (`RequestSpec::body_json`) feeder values are written as JSON string content
//! (see "JSON bodies" in [`crate::grammar::template`]); the escaping writes straight into the buffer.
use std::io::Write;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};

use super::http::{h2::h1_only, Capture, H2Request, RequestMeta, Target};
use super::EngineError;
use crate::grammar::response::ResponseCheck;
use crate::grammar::template::{write_json_str_content, Part, Template};
use crate::spec::{Feeder, FeederOrder, RunSpec, ScenarioSpec};

enum Seg {
    Lit(Box<[u8]>),
    Uuid,
    Seq,
    Vu,
    Iter,
    Random(Vec<Box<[u8]>>),
    RandInt(i64, i64),
    /// A feeder value, written as `enc` says.
    Feeder {
        slot: usize,
        column: usize,
        enc: Enc,
    },
    /// A flow variable (index into [`crate::spec::FlowSpec::vars`]), written as `enc` says.
    Var {
        slot: usize,
        enc: Enc,
    },
}

/// How a value from outside the plan (a feeder's cell, an extracted variable) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// As is (header values, string bodies, and the `raw ...` placeholder form).
    Raw,
    /// As JSON string content (a placeholder in a JSON body).
    Json,
    /// Percent-encoded (a placeholder in a path or query string): everything but
    /// `A-Z a-z 0-9 - . _ ~` is written `%XX`, so spaces, `&`, `=`, `?`, `#` and `/` inside a
    /// value stay inside it.
    Url,
}

/// What [`Enc::Url`] leaves as is: RFC 3986's unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn write_enc(v: &[u8], enc: Enc, out: &mut Vec<u8>) {
    match enc {
        Enc::Raw => out.extend_from_slice(v),
        Enc::Json => write_json_str_content(&String::from_utf8_lossy(v), out),
        Enc::Url => {
            for piece in percent_encoding::percent_encode(v, URL_VALUE) {
                out.extend_from_slice(piece.as_bytes());
            }
        }
    }
}

/// A template bound to the scenario's feeders.
struct Bound(Vec<Seg>);

/// The per-iteration values placeholders read.
pub type IterVars = crate::grammar::template::RenderVars;

/// A VU's reused rendering buffers.
#[derive(Default)]
pub struct Scratch {
    out: Vec<u8>,
    body: Vec<u8>,
    rows: Vec<Option<usize>>,
    /// A flow's variables of the current iteration (indexed like `FlowSpec::vars`).
    pub vars: Vec<Vec<u8>>,
    /// The last request rendered in h2 form (its header map reused).
    h2: Option<H2Request>,
}

impl Scratch {
    /// Start an iteration: feeder rows are chosen afresh (every step of a flow iteration uses
    /// the same row of a feeder), flow variables are emptied (buffers kept).
    pub fn begin_iteration(&mut self, vars: usize) {
        self.rows.clear();
        if self.vars.len() != vars {
            self.vars.resize_with(vars, Vec::new);
        }
        self.vars.iter_mut().for_each(Vec::clear);
    }
}

/// One request of the mix, ready to render.
pub struct PreparedRequest {
    pub name: String,
    pub method: String,
    /// HEAD (the response has no body), and whether a retry may replay it.
    pub meta: RequestMeta,
    pub checks: Vec<ResponseCheck>,
    /// What the checks read from the response.
    pub capture: Capture,
    prebuilt: Option<Box<[u8]>>,
    request_line_start: Vec<u8>,
    path: Bound,
    headers: Vec<(Vec<u8>, Bound)>,
    body: Option<Bound>,
    /// The h2 form of a request without placeholders, built once.
    h2_prebuilt: Option<H2Request>,
    /// h2: the parsed method, the target's scheme and authority, the path prefix, and per
    /// header its name (None: HTTP/1.1-only) and its value when it has no placeholder.
    h2_method: http::Method,
    h2_origin: Option<(Scheme, Authority)>,
    base_path: Box<[u8]>,
    h2_headers: Vec<Option<(HeaderName, Option<HeaderValue>)>>,
}

/// A scenario's weighted request mix.
pub struct RequestSource {
    requests: Vec<PreparedRequest>,
    /// Running sums of the weights; replaced when a controller changes them.
    cumulative: std::cell::RefCell<Vec<u32>>,
    feeders: Vec<Arc<Feeder>>,
}

impl RequestSource {
    /// Bind a scenario's requests to the run's feeders and the target.
    pub fn new(
        spec: &RunSpec,
        scenario: &ScenarioSpec,
        target: &Target,
    ) -> Result<RequestSource, EngineError> {
        let mut feeders: Vec<Arc<Feeder>> = Vec::new();
        let mut requests = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        let no_vars = Vec::new();
        let vars = scenario.flow.as_ref().map(|f| &f.vars).unwrap_or(&no_vars);
        for (i, r) in scenario.requests.iter().enumerate() {
            let mut bind = |t: &Template, enc: Enc| -> Result<Bound, EngineError> {
                bind_template(t, enc, &spec.feeders, &mut feeders, vars, &scenario.name)
            };
            let path = bind(&t_or_slash(&r.path), Enc::Url)?;
            // Headers: defaults, overridden by the request's own (case-insensitive names).
            let mut merged: Vec<(String, &Template)> = Vec::new();
            for (name, value) in spec.http.headers.iter().chain(r.headers.iter()) {
                if name.eq_ignore_ascii_case("content-length")
                    || name.eq_ignore_ascii_case("transfer-encoding")
                {
                    continue;
                }
                if let Some(slot) = merged
                    .iter_mut()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                {
                    slot.1 = value;
                } else {
                    merged.push((name.clone(), value));
                }
            }
            let host_t = Template::literal(&target.authority);
            let ua_t = Template::literal(concat!("loadgate/", env!("CARGO_PKG_VERSION")));
            if !merged.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
                merged.insert(0, ("Host".into(), &host_t));
            }
            if !merged
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
            {
                merged.push(("User-Agent".into(), &ua_t));
            }
            let mut headers = Vec::new();
            for (n, t) in merged {
                headers.push((n.into_bytes(), bind(t, Enc::Raw)?));
            }
            let body_enc = if r.body_json { Enc::Json } else { Enc::Raw };
            let body = r.body.as_ref().map(|t| bind(t, body_enc)).transpose()?;
            let step = scenario.flow.as_ref().and_then(|f| f.steps.get(i));
            let extract_headers = step.is_some_and(|s| {
                s.extract.iter().any(|e| e.from.needs_headers())
                    || s.until.as_ref().is_some_and(|u| u.check.needs_headers())
            });
            let extract_body = step.is_some_and(|s| {
                s.extract.iter().any(|e| e.from.needs_body())
                    || s.until.as_ref().is_some_and(|u| u.check.needs_body())
            });
            let method = r.method.to_ascii_uppercase();
            let mut line = Vec::new();
            line.extend_from_slice(method.as_bytes());
            line.push(b' ');
            line.extend_from_slice(target.base_path.as_bytes());
            let h2_headers = headers
                .iter()
                .map(|(n, b)| {
                    let name = HeaderName::from_bytes(n).ok().filter(|_| !h1_only(n))?;
                    let value = if b.is_static() {
                        let mut v = Vec::new();
                        b.render_static(&mut v);
                        Some(HeaderValue::from_maybe_shared(Bytes::from(v)).ok()?)
                    } else {
                        None
                    };
                    Some((name, value))
                })
                .collect();
            let h2_origin = Scheme::try_from(target.scheme)
                .ok()
                .zip(Authority::try_from(target.authority.as_str()).ok());
            let mut p = PreparedRequest {
                name: r.name.clone(),
                h2_method: http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET),
                h2_origin,
                base_path: target.base_path.as_bytes().into(),
                h2_headers,
                h2_prebuilt: None,
                meta: RequestMeta::new(&method, headers.iter().map(|(n, _)| n.as_slice())),
                method,
                capture: Capture {
                    headers: extract_headers || r.checks.iter().any(|c| c.needs_headers()),
                    body: extract_body || r.checks.iter().any(|c| c.needs_body()),
                },
                checks: r.checks.clone(),
                prebuilt: None,
                request_line_start: line,
                path,
                headers,
                body,
            };
            let is_static = p.is_static();
            if is_static {
                let mut scratch = Scratch::default();
                let mut rng = SmallRng::from_rng(&mut rand::rng());
                p.render_into(&mut scratch, IterVars::default(), &mut rng, &feeders);
                p.prebuilt = Some(std::mem::take(&mut scratch.out).into_boxed_slice());
                if p.render_h2_into(&mut scratch, IterVars::default(), &mut rng, &feeders) {
                    p.h2_prebuilt = scratch.h2.take();
                }
            }
            total += r.weight.max(1);
            cumulative.push(total);
            requests.push(p);
        }
        Ok(RequestSource {
            requests,
            cumulative: std::cell::RefCell::new(cumulative),
            feeders,
        })
    }

    /// Replace the weights (one per request; a zero weight switches a request off). Ignored
    /// unless the lengths match and one weight is positive (the controller checked).
    pub fn set_weights(&self, weights: &[u32]) {
        if weights.len() != self.requests.len() || weights.iter().all(|w| *w == 0) {
            return;
        }
        let mut total = 0u32;
        let cumulative = weights
            .iter()
            .map(|w| {
                total = total.saturating_add(*w);
                total
            })
            .collect();
        *self.cumulative.borrow_mut() = cumulative;
    }

    pub fn requests(&self) -> &[PreparedRequest] {
        &self.requests
    }

    /// Pick a request index by weight.
    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        if self.requests.len() == 1 {
            return 0;
        }
        let cumulative = self.cumulative.borrow();
        let total = *cumulative.last().expect("a scenario has requests");
        let x = rng.random_range(0..total);
        cumulative.partition_point(|&c| c <= x)
    }

    /// Render request `idx` for one iteration; returns the wire bytes.
    pub fn render<'a>(
        &'a self,
        idx: usize,
        vars: IterVars,
        rng: &mut SmallRng,
        scratch: &'a mut Scratch,
    ) -> &'a [u8] {
        let r = &self.requests[idx];
        if let Some(b) = &r.prebuilt {
            return b;
        }
        r.render_into(scratch, vars, rng, &self.feeders);
        &scratch.out
    }
}

impl RequestSource {
    /// Render request `idx` in HTTP/2 form for one iteration; false when its path or a header
    /// value is not valid in HTTP/2 (render it as HTTP/1.1 then, the client converts or
    /// reports it). The result is [`RequestSource::h2`].
    pub fn render_h2(
        &self,
        idx: usize,
        vars: IterVars,
        rng: &mut SmallRng,
        scratch: &mut Scratch,
    ) -> bool {
        let r = &self.requests[idx];
        r.h2_prebuilt.is_some() || r.render_h2_into(scratch, vars, rng, &self.feeders)
    }

    /// Request `idx` in HTTP/2 form, after [`RequestSource::render_h2`] returned true.
    pub fn h2<'a>(&'a self, idx: usize, scratch: &'a Scratch) -> Option<&'a H2Request> {
        self.requests[idx]
            .h2_prebuilt
            .as_ref()
            .or(scratch.h2.as_ref())
    }
}

fn t_or_slash(t: &Template) -> Template {
    if t.source.starts_with('/') {
        t.clone()
    } else {
        Template::parse(&format!("/{}", t.source)).unwrap_or_else(|_| t.clone())
    }
}

/// Bind `t` to feeder slots and flow variables; `enc`: how their values are written there.
fn bind_template(
    t: &Template,
    enc: Enc,
    all: &std::collections::BTreeMap<String, Arc<Feeder>>,
    slots: &mut Vec<Arc<Feeder>>,
    vars: &[String],
    scenario: &str,
) -> Result<Bound, EngineError> {
    let mut segs = Vec::new();
    let outer = enc;
    for p in t.parts() {
        let (p, enc) = match p {
            Part::Raw(inner) => (&**inner, Enc::Raw),
            p => (p, outer),
        };
        segs.push(match p {
            Part::Literal(s) => Seg::Lit(s.as_bytes().into()),
            Part::Uuid => Seg::Uuid,
            Part::Seq => Seg::Seq,
            Part::Vu => Seg::Vu,
            Part::Iter => Seg::Iter,
            Part::Random(c) => Seg::Random(c.iter().map(|s| s.as_bytes().into()).collect()),
            Part::RandInt(lo, hi) => Seg::RandInt(*lo, *hi),
            Part::Raw(_) => Seg::Lit(Box::default()),
            Part::Var(name) => match vars.iter().position(|v| v == name) {
                Some(slot) => Seg::Var { slot, enc },
                None => {
                    return Err(EngineError::UnknownVariable {
                        scenario: scenario.to_string(),
                        name: name.clone(),
                    })
                }
            },
            Part::Feeder { feeder, column } => {
                let f = all.get(feeder).ok_or_else(|| EngineError::UnknownFeeder {
                    scenario: scenario.to_string(),
                    feeder: feeder.clone(),
                })?;
                let col = f.columns.iter().position(|c| c == column).ok_or_else(|| {
                    EngineError::UnknownColumn {
                        scenario: scenario.to_string(),
                        feeder: feeder.clone(),
                        column: column.clone(),
                    }
                })?;
                let slot = match slots.iter().position(|s| s.name == *feeder) {
                    Some(i) => i,
                    None => {
                        slots.push(f.clone());
                        slots.len() - 1
                    }
                };
                Seg::Feeder {
                    slot,
                    column: col,
                    enc,
                }
            }
        });
    }
    Ok(Bound(segs))
}

impl Bound {
    fn is_static(&self) -> bool {
        self.0.iter().all(|s| matches!(s, Seg::Lit(_)))
    }

    /// The literal text of a template without placeholders.
    fn render_static(&self, out: &mut Vec<u8>) {
        for s in &self.0 {
            if let Seg::Lit(b) = s {
                out.extend_from_slice(b);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        out: &mut Vec<u8>,
        vars: IterVars,
        rng: &mut SmallRng,
        feeders: &[Arc<Feeder>],
        rows: &mut [Option<usize>],
        values: &[Vec<u8>],
    ) {
        for s in &self.0 {
            match s {
                Seg::Lit(b) => out.extend_from_slice(b),
                Seg::Uuid => {
                    let u = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                    out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                }
                Seg::Seq => {
                    let _ = write!(out, "{}", vars.seq);
                }
                Seg::Vu => {
                    let _ = write!(out, "{}", vars.vu);
                }
                Seg::Iter => {
                    let _ = write!(out, "{}", vars.iter);
                }
                Seg::Random(c) => out.extend_from_slice(&c[rng.random_range(0..c.len())]),
                Seg::RandInt(lo, hi) => {
                    let _ = write!(out, "{}", rng.random_range(*lo..=*hi));
                }
                Seg::Var { slot, enc } => {
                    if let Some(v) = values.get(*slot) {
                        write_enc(v, *enc, out);
                    }
                }
                Seg::Feeder { slot, column, enc } => {
                    let f = &feeders[*slot];
                    if f.rows.is_empty() {
                        continue;
                    }
                    let row = *rows[*slot].get_or_insert_with(|| match f.order {
                        FeederOrder::Sequential => (vars.seq % f.rows.len() as u64) as usize,
                        FeederOrder::Random => rng.random_range(0..f.rows.len()),
                    });
                    if let Some(v) = f.rows[row].get(*column) {
                        write_enc(v.as_bytes(), *enc, out);
                    }
                }
            }
        }
    }
}

impl PreparedRequest {
    fn is_static(&self) -> bool {
        self.path.is_static()
            && self.headers.iter().all(|(_, b)| b.is_static())
            && self.body.as_ref().is_none_or(|b| b.is_static())
    }

    fn render_into(
        &self,
        s: &mut Scratch,
        vars: IterVars,
        rng: &mut SmallRng,
        feeders: &[Arc<Feeder>],
    ) {
        s.rows.resize(feeders.len(), None);
        s.out.clear();
        s.body.clear();
        if let Some(b) = &self.body {
            b.render(&mut s.body, vars, rng, feeders, &mut s.rows, &s.vars);
        }
        s.out.extend_from_slice(&self.request_line_start);
        self.path
            .render(&mut s.out, vars, rng, feeders, &mut s.rows, &s.vars);
        s.out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            s.out.extend_from_slice(name);
            s.out.extend_from_slice(b": ");
            value.render(&mut s.out, vars, rng, feeders, &mut s.rows, &s.vars);
            s.out.extend_from_slice(b"\r\n");
        }
        if self.body.is_some() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            let _ = write!(s.out, "Content-Length: {}\r\n", s.body.len());
        }
        s.out.extend_from_slice(b"\r\n");
        s.out.extend_from_slice(&s.body);
    }
}

impl PreparedRequest {
    /// Render into `s.h2` (its header map reused); false when the result is not a valid h2
    /// request. Placeholders draw the same values as [`PreparedRequest::render_into`] would.
    fn render_h2_into(
        &self,
        s: &mut Scratch,
        vars: IterVars,
        rng: &mut SmallRng,
        feeders: &[Arc<Feeder>],
    ) -> bool {
        let Some((scheme, authority)) = &self.h2_origin else {
            return false;
        };
        s.rows.resize(feeders.len(), None);
        s.body.clear();
        if let Some(b) = &self.body {
            b.render(&mut s.body, vars, rng, feeders, &mut s.rows, &s.vars);
        }
        s.out.clear();
        s.out.extend_from_slice(&self.base_path);
        self.path
            .render(&mut s.out, vars, rng, feeders, &mut s.rows, &s.vars);
        let Ok(path) = PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(&s.out)) else {
            return false;
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(path);
        let Ok(uri) = Uri::from_parts(parts) else {
            return false;
        };
        let req = s.h2.get_or_insert_with(|| H2Request {
            method: http::Method::GET,
            uri: Uri::default(),
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
        });
        req.method = self.h2_method.clone();
        req.uri = uri;
        req.body = Bytes::copy_from_slice(&s.body);
        req.headers.clear();
        for ((_, bound), h2) in self.headers.iter().zip(&self.h2_headers) {
            let Some((name, value)) = h2 else { continue };
            let value = match value {
                Some(v) => v.clone(),
                None => {
                    s.out.clear();
                    bound.render(&mut s.out, vars, rng, feeders, &mut s.rows, &s.vars);
                    match HeaderValue::from_bytes(&s.out) {
                        Ok(v) => v,
                        Err(_) => return false,
                    }
                }
            };
            req.headers.append(name.clone(), value);
        }
        true
    }
}

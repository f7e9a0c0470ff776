//! Response checks: small assertions evaluated on every response of a request; each result
//! feeds the `checks` rate metric (`checks_passed` / `checks_failed` of the series).
//!
//! They are parsed once at plan lowering and say what they need ([`ResponseCheck::needs_body`],
//! [`ResponseCheck::needs_headers`]) so the client only keeps a body or headers when a check
//! reads them.
//!
//! # Grammar
//!
//! ```text
//! check   := "status" cmp INT
//!          | "status" "in" "(" INT ( "," INT )* ")"
//!          | "header" NAME "exists"
//!          | "header" NAME ( "==" | "!=" ) STRING
//!          | "body" "contains" STRING
//!          | "json" POINTER "exists"
//!          | "json" POINTER ( "==" | "!=" ) VALUE
//! cmp     := "==" | "!=" | "<" | "<=" | ">" | ">="
//! NAME    := an HTTP header name (case-insensitive)
//! STRING  := a double-quoted JSON string, e.g. "v2" or "say \"hi\""
//! POINTER := an RFC 6901 JSON pointer: "" (the whole document) or "/a/0/b"
//! VALUE   := any JSON value (42, true, null, "x", [1,2], {"a":1});
//!            text that is not valid JSON is taken as a string: `json /status == done`
//! ```
//!
//! Examples: `status == 200`, `status in (200, 201, 204)`, `status < 400`,
//! `header x-model-version exists`, `header content-type == "application/json"`,
//! `body contains "ok"`, `json /data/0/id == 7`, `json /status == done`.
//!
//! A response whose body is not JSON fails every `json` check. A request that got no
//! response at all (transport error) fails every check.
use std::fmt;

use http::HeaderMap;
use thiserror::Error;

use super::body::{Body, JsonCache};

/// A parsed response check.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCheck {
    /// The check as written (its name in reports).
    pub source: String,
    kind: CheckKind,
}

/// What a check asserts.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Status(Cmp, u16),
    StatusIn(Vec<u16>),
    HeaderExists(http::HeaderName),
    HeaderEq {
        name: http::HeaderName,
        value: String,
        negate: bool,
    },
    BodyContains(String),
    JsonExists(String),
    JsonEq {
        pointer: String,
        value: serde_json::Value,
        negate: bool,
    },
}

/// Comparison operator of a status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn parse(s: &str) -> Option<Cmp> {
        Some(match s {
            "==" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            _ => return None,
        })
    }

    fn holds(self, a: u16, b: u16) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// Why a check does not parse.
#[derive(Debug, Error, PartialEq)]
pub enum ResponseCheckError {
    #[error("empty check: write e.g. 'status == 200'")]
    Empty,
    #[error("unknown check '{0}': a check starts with status, header, body or json")]
    UnknownSubject(String),
    #[error("invalid status check '{check}': {reason} (e.g. 'status == 200', 'status in (200, 204)', 'status < 400')")]
    Status { check: String, reason: String },
    #[error("invalid header check '{check}': {reason} (e.g. 'header x-id exists', 'header content-type == \"text/plain\"')")]
    Header { check: String, reason: String },
    #[error("invalid body check '{check}': {reason} (e.g. 'body contains \"ok\"')")]
    Body { check: String, reason: String },
    #[error("invalid json check '{check}': {reason} (e.g. 'json /status == \"done\"', 'json /items/0 exists')")]
    Json { check: String, reason: String },
}

impl ResponseCheck {
    /// Parse a check (see the module doc for the grammar).
    pub fn parse(s: &str) -> Result<ResponseCheck, ResponseCheckError> {
        let src = s.trim();
        if src.is_empty() {
            return Err(ResponseCheckError::Empty);
        }
        let end = src
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(src.len());
        let (subject, rest) = (&src[..end], src[end..].trim());
        let kind = match subject {
            "status" => parse_status(src, rest)?,
            "header" => parse_header(src, rest)?,
            "body" => parse_body(src, rest)?,
            "json" => parse_json(src, rest)?,
            other => return Err(ResponseCheckError::UnknownSubject(other.to_string())),
        };
        Ok(ResponseCheck {
            source: s.to_string(),
            kind,
        })
    }

    /// What the check asserts.
    pub fn kind(&self) -> &CheckKind {
        &self.kind
    }

    /// True when the check reads the response body.
    pub fn needs_body(&self) -> bool {
        matches!(
            self.kind,
            CheckKind::BodyContains(_) | CheckKind::JsonExists(_) | CheckKind::JsonEq { .. }
        )
    }

    /// True when the check reads response headers.
    pub fn needs_headers(&self) -> bool {
        matches!(
            self.kind,
            CheckKind::HeaderExists(_) | CheckKind::HeaderEq { .. }
        )
    }

    /// Evaluate against a response. `headers` and `body` may be empty when the check does not
    /// need them. Parses a JSON body for this check alone: a response read by several checks
    /// uses [`ResponseCheck::evaluate_body`] with one shared [`Body`].
    pub fn evaluate(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
        let json = JsonCache::default();
        self.evaluate_body(status, headers, Body::new(body, &json))
    }

    /// Evaluate against a response whose JSON document is parsed at most once for all the
    /// checks and extractions that read it.
    pub fn evaluate_body(&self, status: u16, headers: &HeaderMap, body: Body<'_>) -> bool {
        match &self.kind {
            CheckKind::Status(cmp, v) => cmp.holds(status, *v),
            CheckKind::StatusIn(list) => list.contains(&status),
            CheckKind::HeaderExists(name) => headers.contains_key(name),
            CheckKind::HeaderEq {
                name,
                value,
                negate,
            } => {
                let eq = headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes());
                eq != *negate
            }
            CheckKind::BodyContains(needle) => contains(body.bytes(), needle.as_bytes()),
            CheckKind::JsonExists(ptr) => body.json().is_some_and(|v| v.pointer(ptr).is_some()),
            CheckKind::JsonEq {
                pointer,
                value,
                negate,
            } => match body.json() {
                Some(doc) => (doc.pointer(pointer) == Some(value)) != *negate,
                None => false,
            },
        }
    }
}

impl fmt::Display for ResponseCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Substring search in a body (memchr's SIMD search: bodies can be large, checks run per
/// response).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// First whitespace-separated word and the trimmed rest.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// Operator at the start of `s` (longest first) and the trimmed rest.
fn split_op(s: &str) -> Option<(&str, &str)> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some(rest) = s.strip_prefix(op) {
            return Some((op, rest.trim()));
        }
    }
    None
}

/// Why one value inside a check does not parse (rendered into the check's `reason`).
#[derive(Debug, Error, PartialEq)]
enum ValueError {
    #[error("'{0}' is not an HTTP status (100-599)")]
    NotAStatus(String),
    #[error("expected a double-quoted string, found '{0}'")]
    NotQuoted(String),
    #[error("bad string {value}: {reason}")]
    BadString { value: String, reason: String },
}

fn parse_u16_status(s: &str) -> Result<u16, ValueError> {
    match s.trim().parse::<u16>() {
        Ok(v) if (100..=599).contains(&v) => Ok(v),
        _ => Err(ValueError::NotAStatus(s.trim().to_string())),
    }
}

fn parse_status(src: &str, rest: &str) -> Result<CheckKind, ResponseCheckError> {
    let err = |reason: String| ResponseCheckError::Status {
        check: src.to_string(),
        reason,
    };
    if let Some(list) = rest.strip_prefix("in") {
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| err("the list after 'in' must be in parentheses".into()))?;
        let codes = inner
            .split(',')
            .map(parse_u16_status)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        return Ok(CheckKind::StatusIn(codes));
    }
    let (op, value) = split_op(rest)
        .ok_or_else(|| err("expected an operator (==, !=, <, <=, >, >=) or 'in'".into()))?;
    let cmp = Cmp::parse(op).expect("split_op returns known operators");
    Ok(CheckKind::Status(
        cmp,
        parse_u16_status(value).map_err(|e| err(e.to_string()))?,
    ))
}

fn parse_json_string(s: &str) -> Result<String, ValueError> {
    if !s.starts_with('"') {
        return Err(ValueError::NotQuoted(s.to_string()));
    }
    serde_json::from_str::<String>(s).map_err(|e| ValueError::BadString {
        value: s.to_string(),
        reason: e.to_string(),
    })
}

fn parse_header(src: &str, rest: &str) -> Result<CheckKind, ResponseCheckError> {
    let err = |reason: String| ResponseCheckError::Header {
        check: src.to_string(),
        reason,
    };
    let (name, rest) = split_word(rest);
    if name.is_empty() {
        return Err(err("missing header name".into()));
    }
    let name = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| err(format!("'{name}' is not a valid header name")))?;
    if rest == "exists" {
        return Ok(CheckKind::HeaderExists(name));
    }
    match split_op(rest) {
        Some((op @ ("==" | "!="), value)) => Ok(CheckKind::HeaderEq {
            name,
            value: parse_json_string(value).map_err(|e| err(e.to_string()))?,
            negate: op == "!=",
        }),
        _ => Err(err(
            "expected 'exists', '== \"value\"' or '!= \"value\"'".into()
        )),
    }
}

fn parse_body(src: &str, rest: &str) -> Result<CheckKind, ResponseCheckError> {
    let err = |reason: String| ResponseCheckError::Body {
        check: src.to_string(),
        reason,
    };
    let (word, value) = split_word(rest);
    if word != "contains" {
        return Err(err("expected 'contains'".into()));
    }
    Ok(CheckKind::BodyContains(
        parse_json_string(value).map_err(|e| err(e.to_string()))?,
    ))
}

fn parse_json(src: &str, rest: &str) -> Result<CheckKind, ResponseCheckError> {
    let err = |reason: String| ResponseCheckError::Json {
        check: src.to_string(),
        reason,
    };
    let (pointer, rest) = split_word(rest);
    if !(pointer.is_empty() || pointer.starts_with('/'))
        || (pointer.contains('~') && !valid_escapes(pointer))
    {
        return Err(err(format!(
            "'{pointer}' is not a JSON pointer: it starts with '/' (RFC 6901), '~' only as ~0 or ~1"
        )));
    }
    if pointer.is_empty() {
        return Err(err("missing JSON pointer".into()));
    }
    if rest == "exists" {
        return Ok(CheckKind::JsonExists(pointer.to_string()));
    }
    match split_op(rest) {
        Some((op @ ("==" | "!="), value)) => {
            if value.is_empty() {
                return Err(err("missing value after the operator".into()));
            }
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            Ok(CheckKind::JsonEq {
                pointer: pointer.to_string(),
                value,
                negate: op == "!=",
            })
        }
        _ => Err(err("expected 'exists', '== VALUE' or '!= VALUE'".into())),
    }
}

fn valid_escapes(p: &str) -> bool {
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'~' || matches!(b.get(i + 1), Some(b'0') | Some(b'1')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_table() {
        let ok: &[(&str, CheckKind)] = &[
            ("status == 200", CheckKind::Status(Cmp::Eq, 200)),
            ("status==200", CheckKind::Status(Cmp::Eq, 200)),
            ("status < 400", CheckKind::Status(Cmp::Lt, 400)),
            ("status >= 500", CheckKind::Status(Cmp::Ge, 500)),
            (
                "status in (200, 201,204)",
                CheckKind::StatusIn(vec![200, 201, 204]),
            ),
            (
                "header X-Model-Version exists",
                CheckKind::HeaderExists("x-model-version".parse().unwrap()),
            ),
            (
                "header content-type == \"application/json\"",
                CheckKind::HeaderEq {
                    name: "content-type".parse().unwrap(),
                    value: "application/json".into(),
                    negate: false,
                },
            ),
            (
                "body contains \"a \\\"b\\\"\"",
                CheckKind::BodyContains("a \"b\"".into()),
            ),
            ("json /a/0 exists", CheckKind::JsonExists("/a/0".into())),
            (
                "json /status == done",
                CheckKind::JsonEq {
                    pointer: "/status".into(),
                    value: json!("done"),
                    negate: false,
                },
            ),
            (
                "json /n != 3",
                CheckKind::JsonEq {
                    pointer: "/n".into(),
                    value: json!(3),
                    negate: true,
                },
            ),
            (
                "json /o == {\"a\": [1, true]}",
                CheckKind::JsonEq {
                    pointer: "/o".into(),
                    value: json!({"a": [1, true]}),
                    negate: false,
                },
            ),
        ];
        for (src, kind) in ok {
            let c = ResponseCheck::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(c.kind(), kind, "{src}");
            assert_eq!(c.source, *src);
        }
    }

    #[test]
    fn rejects_table() {
        let bad: &[(&str, &str)] = &[
            ("", "empty check"),
            ("latency < 3", "unknown check 'latency'"),
            ("status", "expected an operator"),
            ("status = 200", "expected an operator"),
            ("status == abc", "'abc' is not an HTTP status"),
            ("status == 999", "'999' is not an HTTP status"),
            ("status in 200, 201", "parentheses"),
            ("status in (200, x)", "'x' is not an HTTP status"),
            ("header", "missing header name"),
            ("header x-a", "expected 'exists'"),
            ("header x-a == v2", "double-quoted"),
            ("header x-a < \"v\"", "expected 'exists'"),
            ("header bad\u{1}name exists", "not a valid header name"),
            ("body has \"x\"", "expected 'contains'"),
            ("body contains x", "double-quoted"),
            ("json status == 1", "not a JSON pointer"),
            ("json /a~2 == 1", "not a JSON pointer"),
            ("json /a ==", "missing value"),
            ("json /a is 1", "expected 'exists'"),
        ];
        for (src, needle) in bad {
            let e = ResponseCheck::parse(src).expect_err(src).to_string();
            assert!(e.contains(needle), "{src}: '{e}' should contain '{needle}'");
        }
    }

    #[test]
    fn evaluates() {
        let mut h = HeaderMap::new();
        h.insert("x-model-version", "v2".parse().unwrap());
        let body = br#"{"status":"done","items":[{"id":7}],"ok":true}"#;
        let cases: &[(&str, bool)] = &[
            ("status == 200", true),
            ("status != 200", false),
            ("status < 400", true),
            ("status in (201, 204)", false),
            ("header x-model-version exists", true),
            ("header x-other exists", false),
            ("header X-Model-Version == \"v2\"", true),
            ("header x-model-version != \"v2\"", false),
            ("body contains \"done\"", true),
            ("body contains \"nope\"", false),
            ("json /status == done", true),
            ("json /status == \"done\"", true),
            ("json /items/0/id == 7", true),
            ("json /items/0/id == \"7\"", false),
            ("json /ok == true", true),
            ("json /items/1 exists", false),
            ("json /missing != 1", true),
        ];
        for (src, want) in cases {
            let c = ResponseCheck::parse(src).unwrap();
            assert_eq!(c.evaluate(200, &h, body), *want, "{src}");
        }
        let c = ResponseCheck::parse("json /a exists").unwrap();
        assert!(!c.evaluate(200, &h, b"not json"));
        assert!(c.needs_body() && !c.needs_headers());
        let c = ResponseCheck::parse("header a exists").unwrap();
        assert!(!c.needs_body() && c.needs_headers());
    }

    #[test]
    fn checks_and_extractions_of_one_response_share_one_parse() {
        use crate::grammar::body::{Body, JsonCache};
        use crate::grammar::extract::Extractor;
        let h = HeaderMap::new();
        let body = br#"{"status":"done","items":[{"id":7}]}"#;
        let checks: Vec<ResponseCheck> = [
            "status == 200",
            "json /status == done",
            "json /items/0/id == 7",
            "json /items exists",
            "body contains \"done\"",
        ]
        .iter()
        .map(|s| ResponseCheck::parse(s).unwrap())
        .collect();
        let json = JsonCache::default();
        let view = Body::new(body, &json);
        assert!(checks[..1].iter().all(|c| c.evaluate_body(200, &h, view)));
        assert_eq!(json.parses(), 0, "a status check parses nothing");
        assert!(checks.iter().all(|c| c.evaluate_body(200, &h, view)));
        let mut out = Vec::new();
        assert!(Extractor::parse("json /items/0/id")
            .unwrap()
            .extract_body(&h, view, &mut out));
        assert_eq!(out, b"7");
        assert_eq!(
            json.parses(),
            1,
            "three json checks and an extraction: one parse"
        );
    }
}

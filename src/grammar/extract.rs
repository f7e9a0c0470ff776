//! Extractions: a value taken from a response into a flow variable, which later steps'
//! templates read as `{{NAME}}` (login, then use the token; submit a job, then poll it).
//! Probe chains and scenario flows share this grammar (their `extract:` / `capture:` maps).
//!
//! # Grammar
//!
//! ```text
//! extraction := "json" POINTER             the value at an RFC 6901 pointer of the JSON body
//!                                          ("" is the whole document)
//!                                          (a string as its content, anything else as JSON text)
//!             | "header" NAME              the first value of a response header
//!             | "regex" PATTERN            the first capture group of the first match in the
//!                                          body (the whole match when the pattern has no group)
//! POINTER    := "/a/0/b" (RFC 6901)
//! NAME       := an HTTP header name (case-insensitive)
//! PATTERN    := a regular expression (Rust `regex` syntax), to the end of the text
//! ```
//!
//! Examples: `json /id`, `json /data/0/token`, `header x-request-id`,
//! `regex "id":"([^"]+)"`.
//!
//! An extraction that finds nothing fails: the flow's iteration stops there (its later steps
//! would send a request without the value).
use std::fmt;

use http::HeaderMap;
use thiserror::Error;

use super::body::{Body, JsonCache};

/// A parsed extraction.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// As written.
    pub source: String,
    kind: ExtractKind,
}

/// Where an extraction reads from.
#[derive(Debug, Clone)]
pub enum ExtractKind {
    Json(String),
    Header(http::HeaderName),
    Regex(regex::bytes::Regex),
}

impl PartialEq for Extractor {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why an extraction does not parse.
#[derive(Debug, Error, PartialEq)]
pub enum ExtractError {
    #[error("unknown extraction '{0}': write `json /pointer`, `header NAME` or `regex PATTERN`")]
    Unknown(String),
    #[error("bad JSON pointer '{0}': it starts with '/', e.g. `json /id`")]
    Pointer(String),
    #[error("bad header name '{0}' (e.g. `header x-request-id`)")]
    Header(String),
    #[error("bad regular expression: {0}")]
    Regex(String),
}

impl Extractor {
    /// Parse an extraction (see the module doc for the grammar).
    pub fn parse(s: &str) -> Result<Extractor, ExtractError> {
        let src = s.trim();
        let (subject, rest) = src.split_once(char::is_whitespace).unwrap_or((src, ""));
        let rest = rest.trim();
        let kind = match subject {
            "json" => {
                if !(rest.is_empty() || rest.starts_with('/')) || rest.contains(char::is_whitespace)
                {
                    return Err(ExtractError::Pointer(rest.to_string()));
                }
                ExtractKind::Json(rest.to_string())
            }
            "header" => ExtractKind::Header(
                http::HeaderName::from_bytes(rest.as_bytes())
                    .map_err(|_| ExtractError::Header(rest.to_string()))?,
            ),
            "regex" if !rest.is_empty() => ExtractKind::Regex(
                regex::bytes::Regex::new(rest).map_err(|e| ExtractError::Regex(e.to_string()))?,
            ),
            _ => return Err(ExtractError::Unknown(src.to_string())),
        };
        Ok(Extractor {
            source: src.to_string(),
            kind,
        })
    }

    pub fn kind(&self) -> &ExtractKind {
        &self.kind
    }

    /// True when the extraction reads the response body.
    pub fn needs_body(&self) -> bool {
        !matches!(self.kind, ExtractKind::Header(_))
    }

    /// True when the extraction reads response headers.
    pub fn needs_headers(&self) -> bool {
        matches!(self.kind, ExtractKind::Header(_))
    }

    /// Write the extracted value into `out` (cleared first); false when there is none.
    /// Parses a JSON body for this extraction alone (see [`Extractor::extract_body`]).
    pub fn extract(&self, headers: &HeaderMap, body: &[u8], out: &mut Vec<u8>) -> bool {
        let json = JsonCache::default();
        self.extract_body(headers, Body::new(body, &json), out)
    }

    /// [`Extractor::extract`] from a body whose JSON document is parsed at most once for all
    /// its readers.
    pub fn extract_body(&self, headers: &HeaderMap, body: Body<'_>, out: &mut Vec<u8>) -> bool {
        out.clear();
        match &self.kind {
            ExtractKind::Header(name) => match headers.get(name) {
                Some(v) => {
                    out.extend_from_slice(v.as_bytes());
                    true
                }
                None => false,
            },
            ExtractKind::Regex(re) => match re.captures(body.bytes()) {
                Some(c) => {
                    let m = c.get(1).or_else(|| c.get(0));
                    if let Some(m) = m {
                        out.extend_from_slice(m.as_bytes());
                    }
                    m.is_some()
                }
                None => false,
            },
            ExtractKind::Json(ptr) => {
                let Some(doc) = body.json() else {
                    return false;
                };
                match doc.pointer(ptr) {
                    None | Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::String(s)) => {
                        out.extend_from_slice(s.as_bytes());
                        true
                    }
                    Some(v) => serde_json::to_writer(&mut *out, v).is_ok(),
                }
            }
        }
    }
}

impl fmt::Display for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_sources_extract() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "r-1".parse().unwrap());
        let body = br#"{"id":"j-7","n":3,"items":[{"t":"a"}]}"#;
        let mut out = Vec::new();
        let get = |s: &str, out: &mut Vec<u8>| Extractor::parse(s).unwrap().extract(&h, body, out);
        assert!(get("json /id", &mut out));
        assert_eq!(out, b"j-7");
        assert!(get("json /n", &mut out));
        assert_eq!(out, b"3");
        assert!(get("json /items/0/t", &mut out));
        assert_eq!(out, b"a");
        assert!(!get("json /nope", &mut out));
        assert!(get("header X-Request-Id", &mut out));
        assert_eq!(out, b"r-1");
        assert!(!get("header x-other", &mut out));
        assert!(get(r#"regex "id":"([^"]+)""#, &mut out));
        assert_eq!(out, b"j-7");
        assert!(get("regex [0-9]", &mut out));
        assert_eq!(out, b"7");
    }

    #[test]
    fn bad_extractions_say_how_to_write_them() {
        assert!(matches!(
            Extractor::parse("jsn /id"),
            Err(ExtractError::Unknown(_))
        ));
        assert!(matches!(
            Extractor::parse("json id"),
            Err(ExtractError::Pointer(_))
        ));
        assert!(matches!(
            Extractor::parse("regex ("),
            Err(ExtractError::Regex(_))
        ));
        assert!(matches!(
            Extractor::parse("header bad name"),
            Err(ExtractError::Header(_))
        ));
    }
}

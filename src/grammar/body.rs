//! A response body as the checks and extractions read it: its bytes, and its JSON document
//! parsed at most once.
//!
//! Why: a request with several `json` checks (or `json` checks plus a `json` extraction, or
//! a canary's `compare.values`) used to parse the same body once per check. The document is
//! now parsed lazily, on the first reader that needs it, and kept in a [`JsonCache`] that
//! lives beside the body (the engine's `ResponseData`) and is cleared with it for the next
//! response. A response no `json` check or extraction reads is never parsed (the lean path
//! allocates nothing).
use std::cell::{Cell, OnceCell};

use serde_json::Value;

/// The JSON document of one response body, parsed on first use. Whoever replaces the body
/// must [`JsonCache::clear`] it (the engine's client does so before every attempt).
#[derive(Debug, Default)]
pub struct JsonCache {
    doc: OnceCell<Option<Value>>,
    parses: Cell<u64>,
}

impl JsonCache {
    /// Forget the document of the previous body.
    pub fn clear(&mut self) {
        self.doc.take();
    }

    /// How many times a body was parsed (over the cache's life; tests read it).
    pub fn parses(&self) -> u64 {
        self.parses.get()
    }
}

/// A response body: its bytes and their JSON document, parsed at most once.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    bytes: &'a [u8],
    json: &'a JsonCache,
}

impl<'a> Body<'a> {
    /// `bytes` with the cache that holds (or will hold) their document.
    pub fn new(bytes: &'a [u8], json: &'a JsonCache) -> Body<'a> {
        Body { bytes, json }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The body as JSON (None when it is not JSON); parsed on the first call only.
    pub fn json(&self) -> Option<&'a Value> {
        self.json
            .doc
            .get_or_init(|| {
                self.json.parses.set(self.json.parses.get() + 1);
                serde_json::from_slice(self.bytes).ok()
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_parsed_once_however_many_readers() {
        let mut cache = JsonCache::default();
        let body = Body::new(br#"{"a":1}"#, &cache);
        assert_eq!(cache.parses(), 0, "nothing read yet: nothing parsed");
        for _ in 0..3 {
            assert_eq!(body.json().and_then(|v| v.get("a")), Some(&Value::from(1)));
        }
        assert_eq!(cache.parses(), 1);
        cache.clear();
        let body = Body::new(b"not json", &cache);
        assert!(body.json().is_none() && body.json().is_none());
        assert_eq!(
            cache.parses(),
            2,
            "a body that is not JSON is also tried once"
        );
    }
}

//! The write ledger's recording side: every write a `ledger:` request sent, as its id, a
//! digest of the fields it wrote and its run-clock time, never its body (bounded memory: an
//! entry is the id's bytes plus 24 bytes).
//!
//! Each engine worker keeps its own [`WriteLog`] inside its recorder (no lock, no channel
//! send per request); the logs are merged once, when the run ends ([`WriteLog::merge`]), the
//! way [`super::recorder`] merges its per-second stats. The judgement (lost, changed,
//! recovered, RPO) is pure and lives in [`crate::checks::ledger`].
//!
//! Digests: SHA-256 (the `sha2` crate the project already uses) over the canonical JSON of
//! the compared fields, truncated to 64 bits: a collision between a write and its read-back
//! is negligible at ledger sizes, and 8 bytes keep the entry small.
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How one recorded write ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteOutcome {
    /// A 2xx answer: the service promised the write.
    Acknowledged,
    /// A non-2xx answer: the service refused it (it must not be present).
    Refused,
    /// No answer (timeout, reset, connect error): the outcome is unknown.
    Unknown,
}

/// One write the load sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    /// The scenario's index (several scenarios may keep a ledger).
    pub scenario: u16,
    pub id: Box<str>,
    /// [`digest_fields`] of the written body.
    pub digest: u64,
    /// Run-clock time of the answer (or of giving up), ms.
    pub at_ms: u64,
    pub outcome: WriteOutcome,
}

/// One worker's writes, bounded: past `cap` entries new writes are only counted.
#[derive(Debug, Clone, Default)]
pub struct WriteLog {
    pub writes: Vec<LedgerWrite>,
    /// Writes not kept because the log was full.
    pub overflow: u64,
    cap: usize,
    /// Writes kept so far, handed over ones included (the bound counts them all).
    kept: usize,
}

impl WriteLog {
    /// A log keeping at most `cap` writes.
    pub fn with_cap(cap: usize) -> WriteLog {
        WriteLog {
            writes: Vec::new(),
            overflow: 0,
            cap,
            kept: 0,
        }
    }

    pub fn push(&mut self, w: LedgerWrite) {
        if self.kept < self.cap {
            self.writes.push(w);
            self.kept += 1;
        } else {
            self.overflow += 1;
        }
    }

    /// The writes (and overflow count) recorded since the last call, taken out; the bound
    /// still counts them. None when there is nothing new.
    pub fn take_new(&mut self) -> Option<WriteLog> {
        if self.writes.is_empty() && self.overflow == 0 {
            return None;
        }
        Some(WriteLog {
            writes: std::mem::take(&mut self.writes),
            overflow: std::mem::take(&mut self.overflow),
            cap: 0,
            kept: 0,
        })
    }

    /// Append another worker's log (end of the run), ordered by time afterwards.
    pub fn merge(&mut self, other: WriteLog) {
        self.writes.extend(other.writes);
        self.overflow += other.overflow;
        self.writes.sort_by_key(|w| w.at_ms);
    }
}

/// Canonical JSON of `v` restricted to `fields` (top-level keys; all of them when empty),
/// hashed: the same fields written and read back give the same digest whatever else the
/// read-back carries (timestamps, server ids) and whatever the key order.
pub fn digest_fields(v: &Value, fields: &[String]) -> u64 {
    let projected = match v {
        Value::Object(m) if !fields.is_empty() => Value::Object(
            fields
                .iter()
                .filter_map(|f| m.get(f).map(|x| (f.clone(), x.clone())))
                .collect(),
        ),
        other => other.clone(),
    };
    // serde_json's Map is a BTreeMap (no preserve_order feature): keys come out sorted.
    let text = projected.to_string();
    let h = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("sha256 has 32 bytes"))
}

/// The body of a rendered HTTP/1 request (after the blank line), if any.
pub fn body_of(wire: &[u8]) -> Option<&[u8]> {
    memchr::memmem::find(wire, b"\r\n\r\n").map(|i| &wire[i + 4..])
}

/// The ledger id and digest of a written body: `id_field` names the top-level key holding
/// the id; `fields` the compared keys (empty: every key of the written body).
pub fn entry_of(body: &[u8], id_field: &str, fields: &[String]) -> Option<(Box<str>, u64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = match v.get(id_field)? {
        Value::String(s) => s.clone().into_boxed_str(),
        other => other.to_string().into_boxed_str(),
    };
    let keys: Vec<String> = if fields.is_empty() {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        fields.to_vec()
    };
    Some((id, digest_fields(&v, &keys)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_extra_fields_and_order_but_not_values() {
        let f = vec!["id".to_string(), "text".to_string()];
        let written = json!({"id": "a", "text": "7"});
        let read = json!({"text": "7", "created_at": "now", "id": "a"});
        assert_eq!(digest_fields(&written, &f), digest_fields(&read, &f));
        let changed = json!({"id": "a", "text": "8"});
        assert_ne!(digest_fields(&written, &f), digest_fields(&changed, &f));
    }

    #[test]
    fn entry_from_wire_request() {
        let wire = b"POST /v1/notes HTTP/1.1\r\nhost: x\r\n\r\n{\"id\":\"u-1\",\"text\":\"3\"}";
        let (id, d) = entry_of(body_of(wire).unwrap(), "id", &[]).unwrap();
        assert_eq!(&*id, "u-1");
        let f = vec!["id".to_string(), "text".to_string()];
        assert_eq!(d, digest_fields(&json!({"id": "u-1", "text": "3"}), &f));
        assert!(entry_of(b"not json", "id", &[]).is_none());
    }

    #[test]
    fn log_is_bounded_and_merges_in_time_order() {
        let w = |at_ms| LedgerWrite {
            scenario: 0,
            id: "x".into(),
            digest: 0,
            at_ms,
            outcome: WriteOutcome::Acknowledged,
        };
        let mut a = WriteLog::with_cap(2);
        a.push(w(5));
        a.push(w(9));
        a.push(w(10));
        assert_eq!((a.writes.len(), a.overflow), (2, 1));
        let mut b = WriteLog::with_cap(2);
        b.push(w(1));
        a.merge(b);
        let times: Vec<u64> = a.writes.iter().map(|w| w.at_ms).collect();
        assert_eq!(times, vec![1, 5, 9]);
    }
}

//! The write ledger's judgement (Jepsen's set checker, per write): from every write the load
//! sent and what reading it back found, how many the service acknowledged, lost
//! (acknowledged, then missing), changed (present, but not what was written) and recovered
//! (not acknowledged, e.g. a timeout, yet present), and the RPO as data lost: the time span
//! of the lost writes on the run clock.
//!
//! Pure: the reading back (HTTP, bounded concurrency) is done by the caller, which hands the
//! results here, so the classification is unit-tested without a service.
use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::ledger::{LedgerWrite, WriteOutcome};

use super::{CheckKind, CheckResult};

/// How many lost ids a report lists.
pub const LOST_IDS_LISTED: usize = 20;

/// What reading one write back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// 404: the write is not there.
    Missing,
    /// Present, with the digest of the compared fields.
    Present(u64),
    /// The read itself failed (an error status, no answer): the write is not judged.
    Unreadable,
}

/// The ledger's figures (summary.json's `failover` entries carry them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LedgerReport {
    pub acknowledged: u64,
    pub lost: u64,
    pub changed: u64,
    pub recovered: u64,
    /// Writes whose read-back failed (not judged; any fails the lost-writes check).
    pub unreadable: u64,
    /// Writes sent but not kept (the ledger's memory bound).
    pub overflow: u64,
    /// The time span of the lost writes (last minus first lost write's acknowledgement,
    /// at least 1 ms when any was lost, so `rpo == 0s` holds exactly when none was).
    pub rpo_ms: f64,
    /// The first lost ids, in time order (at most [`LOST_IDS_LISTED`]).
    pub lost_ids: Vec<String>,
}

/// Classify `writes` by their read-backs (`reads[i]` for `writes[i]`; both in time order).
pub fn judge(writes: &[LedgerWrite], reads: &[ReadBack], overflow: u64) -> LedgerReport {
    let mut r = LedgerReport {
        overflow,
        ..LedgerReport::default()
    };
    // A retried id (the same id written twice) is judged by its last write.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        last.insert(&w.id, i);
    }
    let (mut first_lost, mut last_lost) = (None::<u64>, None::<u64>);
    for (i, (w, rb)) in writes.iter().zip(reads).enumerate() {
        if last.get(&*w.id) != Some(&i) {
            continue;
        }
        let acked = w.outcome == WriteOutcome::Acknowledged;
        if acked {
            r.acknowledged += 1;
        }
        match (*rb, acked) {
            (ReadBack::Unreadable, _) => r.unreadable += 1,
            (ReadBack::Missing, true) => {
                r.lost += 1;
                first_lost = Some(first_lost.map_or(w.at_ms, |f| f.min(w.at_ms)));
                last_lost = Some(last_lost.map_or(w.at_ms, |l| l.max(w.at_ms)));
                if r.lost_ids.len() < LOST_IDS_LISTED {
                    r.lost_ids.push(w.id.to_string());
                }
            }
            (ReadBack::Present(d), true) if d != w.digest => r.changed += 1,
            (ReadBack::Present(_), false) => r.recovered += 1,
            _ => {}
        }
    }
    if let (Some(f), Some(l)) = (first_lost, last_lost) {
        r.rpo_ms = ((l - f) as f64).max(1.0);
    }
    r
}

/// `lost_writes == 0` and `rpo == 0s`, named after `what` (a fault, or `ledger`).
pub fn checks(what: &str, r: &LedgerReport, max_lost: u64, max_rpo_ms: f64) -> Vec<CheckResult> {
    let ids = if r.lost_ids.is_empty() {
        String::new()
    } else {
        format!(" (lost ids: {})", r.lost_ids.join(", "))
    };
    vec![
        CheckResult {
            name: format!("{what}: lost_writes <= {max_lost}"),
            kind: CheckKind::Failover,
            // A write that could not be read back is not known to be kept: it fails the
            // check rather than pass it unverified.
            passed: r.lost <= max_lost && r.unreadable == 0,
            expected: format!("lost_writes<={max_lost}"),
            observed: format!(
                "lost_writes={} of {} acknowledged; changed={}, recovered={}, unreadable={}{ids}",
                r.lost, r.acknowledged, r.changed, r.recovered, r.unreadable
            ),
            runbook: None,
        },
        CheckResult {
            name: format!("{what}: rpo <= {}s", max_rpo_ms / 1000.0),
            kind: CheckKind::Failover,
            passed: r.rpo_ms <= max_rpo_ms,
            expected: format!("rpo<={}s", max_rpo_ms / 1000.0),
            observed: format!("rpo={}s", r.rpo_ms / 1000.0),
            runbook: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, at_ms: u64, digest: u64, outcome: WriteOutcome) -> LedgerWrite {
        LedgerWrite {
            scenario: 0,
            id: id.into(),
            digest,
            at_ms,
            outcome,
        }
    }

    #[test]
    fn classifies_lost_changed_recovered_and_rpo() {
        use WriteOutcome::*;
        let writes = vec![
            w("ok", 100, 1, Acknowledged),
            w("lost1", 1_000, 2, Acknowledged),
            w("changed", 1_500, 3, Acknowledged),
            w("lost2", 3_500, 4, Acknowledged),
            w("timeout-present", 4_000, 5, Unknown),
            w("timeout-absent", 4_100, 6, Unknown),
            w("refused", 4_200, 7, Refused),
            w("unreadable", 4_300, 8, Acknowledged),
        ];
        let reads = vec![
            ReadBack::Present(1),
            ReadBack::Missing,
            ReadBack::Present(99),
            ReadBack::Missing,
            ReadBack::Present(5),
            ReadBack::Missing,
            ReadBack::Missing,
            ReadBack::Unreadable,
        ];
        let r = judge(&writes, &reads, 3);
        assert_eq!(r.acknowledged, 5);
        assert_eq!(r.lost, 2);
        assert_eq!(r.changed, 1);
        assert_eq!(r.recovered, 1);
        assert_eq!(r.unreadable, 1);
        assert_eq!(r.overflow, 3);
        assert_eq!(r.rpo_ms, 2_500.0);
        assert_eq!(r.lost_ids, vec!["lost1", "lost2"]);
        let c = checks("fault pg", &r, 0, 0.0);
        assert!(!c[0].passed && !c[1].passed);
        assert!(c[0].observed.contains("lost1, lost2"), "{}", c[0].observed);
    }

    #[test]
    fn nothing_lost_passes_and_one_lost_write_has_nonzero_rpo() {
        use WriteOutcome::*;
        let writes = vec![w("a", 10, 1, Acknowledged), w("b", 20, 2, Acknowledged)];
        let r = judge(&writes, &[ReadBack::Present(1), ReadBack::Present(2)], 0);
        assert_eq!((r.acknowledged, r.lost, r.rpo_ms), (2, 0, 0.0));
        assert!(checks("ledger", &r, 0, 0.0).iter().all(|c| c.passed));
        let r = judge(&writes, &[ReadBack::Missing, ReadBack::Present(2)], 0);
        assert_eq!((r.lost, r.rpo_ms), (1, 1.0));
    }

    #[test]
    fn a_retried_id_is_judged_by_its_last_write() {
        use WriteOutcome::*;
        let writes = vec![w("a", 10, 1, Unknown), w("a", 20, 1, Acknowledged)];
        let r = judge(&writes, &[ReadBack::Present(1), ReadBack::Present(1)], 0);
        assert_eq!((r.acknowledged, r.recovered, r.lost), (1, 0, 0));
    }
}

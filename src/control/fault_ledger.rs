//! The write ledger per fault (`expect: { lost_writes, rpo }` of a fault): which writes a
//! fault answers for, reading them back once it recovered, and its checks. Apart from
//! `faults.rs`, which schedules and measures the faults, because this is the ledger's side.
//!
//! A fault answers for the writes answered before its injection had taken effect (a write
//! answered while the kill was on its way is at risk too) that no earlier fault already
//! lost: each lost write counts against the first fault whose read-back found it missing.
//! The workers hand their writes over with each finished second, so a read-back first
//! waits (at most [`FLUSH_WAIT`]) until every worker is past the second of the injection.
//! Reads are done once the fault recovered (a failover: once the replica is promoted and the
//! gateways repointed); reads that fail (the service may still be reconnecting) are retried
//! every second up to the fault's RTO bound (at least [`READ_BACK_RETRY_MIN`]), and for at
//! most [`READ_BACK_AFTER_STOP`] once the load has ended (the run waits for the task). A
//! write still unreadable then fails the lost-writes check (no unverified pass).
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use tokio_util::sync::CancellationToken;

use super::faults::FailoverReport;
use crate::checks::ledger::{LedgerReport, ReadBack};
use crate::checks::CheckResult;
use crate::metrics::ledger::WriteOutcome;
use crate::metrics::recorder::Aggregator;
use crate::spec::fault::FaultSpec;
use crate::spec::RunSpec;

/// How long a per-fault read-back retries reads that fail, at least (the fault's RTO bound
/// when longer), and at most once the load has ended.
pub const READ_BACK_RETRY_MIN: Duration = Duration::from_secs(10);
pub const READ_BACK_AFTER_STOP: Duration = Duration::from_secs(5);
/// How long a read-back waits for the workers to hand over the second of the injection.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Which writes a failover entry's ledger figures judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerScope {
    /// The writes acknowledged before each repetition, read back after it recovered (the
    /// fault's `expect.lost_writes` / `expect.rpo`).
    Fault,
    /// The whole run's ledger, read back when the load ended.
    Run,
}

impl FailoverReport {
    /// Fill the write ledger's figures (the run's ledger, read back after the load).
    pub fn set_ledger(&mut self, l: &LedgerReport) {
        self.ledger_scope = Some(LedgerScope::Run);
        self.acknowledged_writes = Some(l.acknowledged);
        self.lost_writes = Some(l.lost);
        self.changed_writes = Some(l.changed);
        self.recovered_writes = Some(l.recovered);
        self.rpo_ms = Some(l.rpo_ms);
        self.lost_ids = Some(l.lost_ids.clone());
    }
}

/// Ids a fault's read-back found lost: a later fault does not count them again.
pub(super) type LostIds = Arc<Mutex<HashSet<Box<str>>>>;

/// The repetitions' ledgers as one: acknowledged and the figures read at the last one, the
/// lost writes summed (each lost write counts once: later read-backs skip it), the RPO the
/// worst repetition's.
pub(super) fn sum_ledgers<'a>(ls: impl Iterator<Item = &'a LedgerReport>) -> Option<LedgerReport> {
    let mut out: Option<LedgerReport> = None;
    for l in ls {
        let o = out.get_or_insert_with(LedgerReport::default);
        o.acknowledged = o.acknowledged.max(l.acknowledged);
        o.lost += l.lost;
        o.changed = l.changed;
        o.recovered = l.recovered;
        o.unreadable += l.unreadable;
        o.overflow = o.overflow.max(l.overflow);
        o.rpo_ms = o.rpo_ms.max(l.rpo_ms);
        for id in &l.lost_ids {
            if o.lost_ids.len() < crate::checks::ledger::LOST_IDS_LISTED {
                o.lost_ids.push(id.clone());
            }
        }
    }
    out
}

/// `fault NAME: lost_writes <= N` and `rpo <= D` on the writes acknowledged before the
/// fault; a fault whose writes were never read back fails them (no unverified pass).
pub(super) fn ledger_checks(
    r: &FailoverReport,
    expect: &crate::spec::fault::FaultLedgerExpect,
) -> Vec<CheckResult> {
    let what = format!("fault {}", r.fault);
    let max_rpo_ms = expect.max_rpo.as_secs_f64() * 1000.0;
    if r.ledger_scope == Some(LedgerScope::Fault) {
        let l = LedgerReport {
            acknowledged: r.acknowledged_writes.unwrap_or(0),
            lost: r.lost_writes.unwrap_or(0),
            changed: r.changed_writes.unwrap_or(0),
            recovered: r.recovered_writes.unwrap_or(0),
            unreadable: r
                .repetitions
                .iter()
                .filter_map(|rep| rep.ledger.as_ref())
                .map(|l| l.unreadable)
                .sum(),
            overflow: 0,
            rpo_ms: r.rpo_ms.unwrap_or(0.0),
            lost_ids: r.lost_ids.clone().unwrap_or_default(),
        };
        return crate::checks::ledger::checks(&what, &l, expect.max_lost, max_rpo_ms);
    }
    let why = "not read back: the run keeps no write ledger (add `ledger:` to a writing scenario) or the fault was never injected";
    crate::checks::ledger::checks(&what, &LedgerReport::default(), expect.max_lost, max_rpo_ms)
        .into_iter()
        .map(|mut c| {
            c.passed = false;
            c.observed = why.to_string();
            c
        })
        .collect()
}

/// Reads back the writes `fault` answers for (answered by `acked_by` on the run clock, not
/// in `lost`), adds the ones found lost to `lost`, and judges them; None when the fault has
/// no ledger expectation or the run keeps no ledger.
pub(super) async fn read_back_before(
    fault: &FaultSpec,
    run: &RunSpec,
    agg: &Aggregator,
    lost: &LostIds,
    stop: &CancellationToken,
    acked_by: Duration,
) -> Option<LedgerReport> {
    if fault.ledger.is_none() || run.scenarios.iter().all(|s| s.ledger.is_none()) {
        return None;
    }
    // The workers hand their writes over with each finished second: wait (bounded) until
    // every worker is past the second of `acked_by`, so its last writes are not missed.
    let flushed_by = Instant::now() + FLUSH_WAIT;
    while agg.flushed_below() <= acked_by.as_secs() && Instant::now() < flushed_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writes: Vec<_> = {
        let before = agg.ledger_until(acked_by.as_millis() as u64);
        let lost = lost.lock().unwrap_or_else(|p| p.into_inner());
        before
            .into_iter()
            .filter(|w| !lost.contains(&w.id))
            .collect()
    };
    let mut deadline = Instant::now() + fault.max_rto.max(READ_BACK_RETRY_MIN);
    let mut reads = crate::control::ledger::read_writes(run, &writes).await;
    loop {
        let pending: Vec<usize> = (0..reads.len())
            .filter(|&i| reads[i] == ReadBack::Unreadable)
            .collect();
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        if stop.is_cancelled() {
            deadline = deadline.min(Instant::now() + READ_BACK_AFTER_STOP);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled(), if !stop.is_cancelled() => {}
        }
        let again: Vec<_> = pending.iter().map(|&i| writes[i].clone()).collect();
        let r = crate::control::ledger::read_writes(run, &again).await;
        for (i, rb) in pending.into_iter().zip(r) {
            reads[i] = rb;
        }
    }
    let report = crate::checks::ledger::judge(&writes, &reads, 0);
    let mut lost = lost.lock().unwrap_or_else(|p| p.into_inner());
    for (w, rb) in writes.iter().zip(&reads) {
        if *rb == ReadBack::Missing && w.outcome == WriteOutcome::Acknowledged {
            lost.insert(w.id.clone());
        }
    }
    Some(report)
}

//! Reading the write ledger back when the load has ended: every recorded write of a
//! `ledger:` scenario is fetched with its scenario's `read_back` request (reqwest, at most
//! [`CONCURRENCY`] at a time, each with the run's timeout), and the pure judgement in
//! [`crate::checks::ledger`] classifies the writes by what came back.
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::checks::ledger::{judge, LedgerReport, ReadBack};
use crate::metrics::ledger::{digest_fields, LedgerWrite, WriteLog};
use crate::spec::RunSpec;

/// Read-backs in flight at once.
pub const CONCURRENCY: usize = 16;

/// Read back every write of `log` (the run's merged ledger) and judge them; None when no
/// scenario keeps a ledger.
pub async fn read_back(spec: &RunSpec, log: WriteLog) -> Option<LedgerReport> {
    if spec.scenarios.iter().all(|s| s.ledger.is_none()) {
        return None;
    }
    let reads = read_writes(spec, &log.writes).await;
    Some(judge(&log.writes, &reads, log.overflow))
}

/// Read back each of `writes` (`reads[i]` for `writes[i]`), at most [`CONCURRENCY`] at a
/// time; a write whose read fails is [`ReadBack::Unreadable`].
pub async fn read_writes(spec: &RunSpec, writes: &[LedgerWrite]) -> Vec<ReadBack> {
    let client = match reqwest::Client::builder()
        .timeout(spec.http.timeout.max(Duration::from_secs(1)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("ledger: cannot build the read-back client: {e}");
            return vec![ReadBack::Unreadable; writes.len()];
        }
    };
    // Owned items: a future borrowing the stream's items is not `Send` for every lifetime,
    // which a fault's spawned task needs.
    stream::iter(writes.iter().cloned())
        .map(|w| {
            let client = client.clone();
            async move { read_one(spec, &client, &w).await }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}

async fn read_one(spec: &RunSpec, client: &reqwest::Client, w: &LedgerWrite) -> ReadBack {
    let Some((sc, l)) = spec
        .scenarios
        .get(w.scenario as usize)
        .and_then(|s| s.ledger.as_ref().map(|l| (s, l)))
    else {
        return ReadBack::Unreadable;
    };
    let url = format!("{}{}", spec.target.trim_end_matches('/'), l.path_for(&w.id));
    let method =
        reqwest::Method::from_bytes(l.read_method.as_bytes()).unwrap_or(reqwest::Method::GET);
    // The write's static headers and the plan's default ones (the API key) go along; templated ones (a per-request id)
    // and the body's headers do not.
    let mut req = client.request(method, &url);
    let own = sc
        .requests
        .first()
        .map(|r| r.headers.as_slice())
        .unwrap_or_default();
    let defaults = spec
        .http
        .headers
        .iter()
        .filter(|(n, _)| !own.iter().any(|(o, _)| o.eq_ignore_ascii_case(n)));
    for (name, value) in own.iter().chain(defaults) {
        let skip = name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("content-length");
        if value.is_static() && !skip {
            req = req.header(name.as_str(), value.render_string(Default::default()));
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("ledger: reading back {url}: {e}");
            return ReadBack::Unreadable;
        }
    };
    match resp.status().as_u16() {
        404 | 410 => ReadBack::Missing,
        200..=299 => match resp.json::<serde_json::Value>().await {
            Ok(v) => ReadBack::Present(digest_fields(&v, &l.compare)),
            Err(e) => {
                tracing::warn!("ledger: reading back {url}: body is not JSON: {e}");
                ReadBack::Unreadable
            }
        },
        s => {
            tracing::warn!("ledger: reading back {url}: HTTP {s}");
            ReadBack::Unreadable
        }
    }
}

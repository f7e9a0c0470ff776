//! Guardrails: what a person must not miss at the end of a run even when every check passed
//! (or when there were none): arrivals the generator dropped, a target that failed most
//! requests, a scenario that sent nothing, a run that judged nothing. They are computed from
//! the summary's own numbers, listed in summary.json's `warnings` and printed under the table.
//! A warning never changes the verdict: the checks decide; warnings say what the checks did
//! not ask about.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::summary::ScenarioSummary;
use crate::checks::CheckResult;

/// Share of failed requests above which a scenario is called mostly failed.
pub const MOSTLY_FAILED: f64 = 0.5;

/// Something the reader should know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// Arrivals were due but no VU was free (`max_vus` reached): not sent, not measured.
    Dropped {
        scenario: String,
        dropped: u64,
        sent: u64,
        /// VUs the offered rate needed by Little's law (offered rate x mean service time),
        /// when it can be told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vus_needed: Option<u64>,
    },
    /// Most requests of a scenario failed.
    MostlyFailed {
        scenario: String,
        failed: u64,
        requests: u64,
        /// Failed requests by error kind, most frequent first.
        kinds: Vec<(String, u64)>,
        /// The first message of the most frequent kind.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_error: Option<String>,
    },
    /// A scenario sent no request at all.
    NothingSent { scenario: String },
    /// The run had no check: nothing was judged, so it cannot fail.
    NothingJudged,
}

impl Warning {
    /// One line for the terminal.
    pub fn message(&self) -> String {
        match self {
            Warning::Dropped {
                scenario,
                dropped,
                sent,
                vus_needed,
            } => {
                let total = dropped + sent;
                let share = 100.0 * *dropped as f64 / total.max(1) as f64;
                let mut m = format!(
                    "{scenario}: {dropped} of {total} arrivals ({share:.2}%) were dropped: no VU was free when they were due, so they were neither sent nor measured"
                );
                match vus_needed {
                    Some(n) => m.push_str(&format!(
                        "; the offered rate needed about {n} VUs (Little's law): raise max_vus"
                    )),
                    None => m.push_str("; raise max_vus"),
                }
                m
            }
            Warning::MostlyFailed {
                scenario,
                failed,
                requests,
                kinds,
                first_error,
            } => {
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let mut m = format!(
                    "{scenario}: {failed} of {requests} requests failed ({})",
                    kinds.join(", ")
                );
                if let Some(first) = first_error {
                    m.push_str(&format!("; first: {first}"));
                }
                m
            }
            Warning::NothingSent { scenario } => {
                format!("{scenario}: no request was sent")
            }
            Warning::NothingJudged => {
                "no thresholds: nothing was judged (add thresholds, probes or SLOs to gate on this run)"
                    .into()
            }
        }
    }
}

/// The warnings of a run's summary.
pub fn warnings(
    scenarios: &BTreeMap<String, ScenarioSummary>,
    checks: &[CheckResult],
) -> Vec<Warning> {
    let mut out = Vec::new();
    for (name, s) in scenarios {
        if s.requests == 0 && s.dropped == 0 {
            out.push(Warning::NothingSent {
                scenario: name.clone(),
            });
        }
        if s.dropped > 0 {
            let offered = (s.requests + s.dropped) as f64 / s.active_s.max(1e-9);
            let service_s = s.service_time_ms.mean / 1000.0;
            let vus_needed = (service_s > 0.0 && s.active_s > 0.0)
                .then(|| (offered * service_s).ceil().max(1.0) as u64);
            out.push(Warning::Dropped {
                scenario: name.clone(),
                dropped: s.dropped,
                sent: s.requests,
                vus_needed,
            });
        }
        if s.requests > 0 && s.errors as f64 / s.requests as f64 > MOSTLY_FAILED {
            let mut kinds: Vec<(String, u64)> = s
                .errors_by_kind
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect();
            kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let first_error = kinds
                .first()
                .and_then(|(k, _)| s.first_errors.get(k))
                .cloned();
            out.push(Warning::MostlyFailed {
                scenario: name.clone(),
                failed: s.errors,
                requests: s.requests,
                kinds,
                first_error,
            });
        }
    }
    if checks.is_empty() {
        out.push(Warning::NothingJudged);
    }
    out
}

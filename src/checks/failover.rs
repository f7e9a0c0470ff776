//! Failover as users saw it: from the per-second series of the judged scenarios and a
//! fault's injection time, when requests started failing, when they stopped, and when the
//! users were served again for good (the first of `sustain` consecutive seconds with
//! requests answered and an error rate at most the bound). RTO = that recovery minus the
//! first failed request (the anchors' definition: the outage the users saw), or minus the
//! first second with no answer at all when earlier (a hang is an outage too); a fault no user
//! noticed has an RTO of zero, and one the users never recovered from before the next
//! repetition (or the end of the run) has none, which fails its check: the run's own end is
//! the deadline, so a fault that never recovers can never hang the drill.
//!
//! Resolution: whole seconds of the run clock (the series' granularity): the RTO is a whole
//! number of seconds, from the start of the first bad second to the start of the first good
//! one; the injection's own time is kept to the millisecond (and the outage, injection to
//! recovery, with it).
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::timeline::SecondRow;
use crate::spec::fault::RecoveryRule;

/// One second of the judged scenarios, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    pub requests: u64,
    pub errors: u64,
    /// The worst p99 latency of the judged scenarios in that second, ms.
    pub p99_ms: f64,
}

/// The judged scenarios' seconds, dense (index = second of the run clock; seconds without a
/// row count as no requests). `scenarios` empty: every scenario (probes never count).
pub fn seconds_of(rows: &[SecondRow], scenarios: &[String]) -> Vec<Second> {
    let mut out: Vec<Second> = Vec::new();
    for r in rows {
        if !r.step.is_empty() || r.scenario.starts_with("probe:") {
            continue;
        }
        if !scenarios.is_empty() && !scenarios.contains(&r.scenario) {
            continue;
        }
        let i = r.second as usize;
        if out.len() <= i {
            out.resize(i + 1, Second::default());
        }
        let s = &mut out[i];
        s.requests += r.requests;
        s.errors += r.errors;
        s.p99_ms = s.p99_ms.max(r.p99_ms);
    }
    out
}

/// One repetition of one fault, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Repetition {
    /// 1-based.
    pub repetition: u32,
    /// When the fault was injected (run clock, s).
    pub injected_s: f64,
    /// The first second (from the injection) with a failed request.
    pub first_error_s: Option<f64>,
    /// The last second with a failed request before the recovery (or the window's end).
    pub last_error_s: Option<f64>,
    /// The start of the first sustained success; None: not recovered in the window.
    pub recovered_s: Option<f64>,
    /// Recovery minus the outage's start: the first failed request, or the first second
    /// without any answer if earlier (0 when every user was served); None: not recovered.
    pub rto_ms: Option<f64>,
    /// Recovery minus injection; None: not recovered.
    pub outage_ms: Option<f64>,
    /// Requests and failed requests from the injection's second to the recovery (or the
    /// window's end), or to the fault's own end when that is later.
    pub requests: u64,
    pub errors: u64,
    /// The worst per-second p99 latency in that window, ms.
    pub worst_p99_ms: f64,
    /// Where the window ended (the next repetition's injection or the run's end), s.
    pub window_end_s: f64,
}

/// Measures one repetition: `injected` and `window_end` on the run clock.
/// `held_until`: when the fault itself was undone (its requests and latency count to there
/// at least, so a slowdown without errors shows too).
pub fn measure(
    seconds: &[Second],
    repetition: u32,
    injected: Duration,
    held_until: Option<Duration>,
    window_end: Duration,
    rule: RecoveryRule,
) -> Repetition {
    let inj = injected.as_secs_f64();
    let start = injected.as_secs() as usize;
    // Seconds that start before the window's end and end by it: the second in which the
    // next injection falls is shared, and left to the next fault.
    let end = (window_end.as_secs() as usize).max(start);
    let at = |i: usize| seconds.get(i).copied().unwrap_or_default();
    let sustain = (rule.sustain.as_secs_f64().ceil() as usize).max(1);
    let good =
        |s: Second| s.requests > 0 && (s.errors as f64) <= rule.max_error_rate * s.requests as f64;
    let first_error = (start..end).find(|&i| at(i).errors > 0);
    // The outage starts with the first second a user was not served: a failed request, or
    // no answer at all (a hang shows as silence before its timeouts).
    let first_bad = (start..end).find(|&i| at(i).errors > 0 || at(i).requests == 0);
    // Recovery is looked for from the outage's start on (from the injection when nothing
    // went wrong).
    let from = first_bad.unwrap_or(start);
    let recovered =
        (from..end).find(|&i| i + sustain <= end && (i..i + sustain).all(|j| good(at(j))));
    let stop = recovered.unwrap_or(end);
    let last_error = (start..stop).rev().find(|&i| at(i).errors > 0);
    // The window's figures: from the injection to the recovery, or to the fault's own end
    // when later (a slowdown without errors recovers at once, but lasts while held).
    let held = held_until.map_or(0, |h| h.as_secs_f64().ceil() as usize);
    let stats_stop = stop.max(held.min(end));
    let (mut requests, mut errors, mut worst) = (0, 0, 0.0f64);
    for i in start..stats_stop {
        let s = at(i);
        requests += s.requests;
        errors += s.errors;
        worst = worst.max(s.p99_ms);
    }
    // Second boundaries (the series' resolution): an outage that starts in the injection's
    // own second counts from that second's start.
    let first_error_s = first_error.map(|i| i as f64);
    let first_bad_s = first_bad.map(|i| i as f64);
    let recovered_s = recovered.map(|i| (i as f64).max(inj));
    let rto_ms = recovered_s.map(|r| match first_bad_s {
        Some(f) if r > f => ((r - f) * 1000.0).round(),
        _ => 0.0,
    });
    let outage_ms = recovered_s.map(|r| ((r - inj).max(0.0) * 1000.0).round());
    Repetition {
        repetition,
        injected_s: round3(inj),
        first_error_s: first_error_s.map(round3),
        last_error_s: last_error.map(|i| i as f64),
        recovered_s: recovered_s.map(round3),
        rto_ms,
        outage_ms,
        requests,
        errors,
        worst_p99_ms: round3(worst),
        window_end_s: round3(window_end.as_secs_f64()),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// RTO over the repetitions: min / median / max of those that recovered, and how many did
/// not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RtoDistribution {
    pub min_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub not_recovered: u32,
}

pub fn distribution(reps: &[Repetition]) -> RtoDistribution {
    let mut v: Vec<f64> = reps.iter().filter_map(|r| r.rto_ms).collect();
    v.sort_by(f64::total_cmp);
    let median = if v.is_empty() {
        None
    } else if v.len() % 2 == 1 {
        Some(v[v.len() / 2])
    } else {
        Some((v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0)
    };
    RtoDistribution {
        min_ms: v.first().copied(),
        median_ms: median,
        max_ms: v.last().copied(),
        not_recovered: reps.iter().filter(|r| r.rto_ms.is_none()).count() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(pattern: &[(u64, u64)]) -> Vec<Second> {
        pattern
            .iter()
            .map(|&(requests, errors)| Second {
                requests,
                errors,
                p99_ms: if errors > 0 { 900.0 } else { 10.0 },
            })
            .collect()
    }

    fn rule() -> RecoveryRule {
        RecoveryRule {
            sustain: Duration::from_secs(3),
            max_error_rate: 0.01,
        }
    }

    #[test]
    fn rto_runs_from_the_first_failure_to_the_first_sustained_success() {
        // Fault at 10.4 s; failures in seconds 11..=14; clean from 15 on.
        let mut p = vec![(100, 0); 11];
        p.extend([(100, 40), (100, 100), (50, 50), (100, 3)]);
        p.extend(vec![(100, 0); 10]);
        let r = measure(
            &secs(&p),
            1,
            Duration::from_millis(10_400),
            None,
            Duration::from_secs(25),
            rule(),
        );
        assert_eq!(r.first_error_s, Some(11.0));
        assert_eq!(r.last_error_s, Some(14.0));
        assert_eq!(r.recovered_s, Some(15.0));
        assert_eq!(r.rto_ms, Some(4000.0));
        assert_eq!(r.outage_ms, Some(4600.0));
        assert_eq!(r.errors, 193);
        assert_eq!(r.requests, 100 * 4 + 50);
        assert_eq!(r.worst_p99_ms, 900.0);
    }

    #[test]
    fn a_fault_nobody_noticed_has_zero_rto() {
        let r = measure(
            &secs(&vec![(100, 0); 20]),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(20),
            rule(),
        );
        assert_eq!(r.first_error_s, None);
        assert_eq!(r.rto_ms, Some(0.0));
        assert_eq!(r.recovered_s, Some(5.0));
        assert_eq!(r.requests, 0);
        // A slowdown held 3 s: no outage, but its requests and latency are the window's.
        let mut p = secs(&vec![(100, 0); 20]);
        for s in &mut p[5..8] {
            s.p99_ms = 250.0;
        }
        let r = measure(
            &p,
            1,
            Duration::from_secs(5),
            Some(Duration::from_millis(7_900)),
            Duration::from_secs(20),
            rule(),
        );
        assert_eq!(r.rto_ms, Some(0.0));
        assert_eq!((r.requests, r.worst_p99_ms), (300, 250.0));
    }

    #[test]
    fn never_recovering_gives_no_rto_and_a_flapping_service_is_not_recovered() {
        let mut p = vec![(100, 0); 5];
        p.extend(vec![(100, 100); 10]);
        let r = measure(
            &secs(&p),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(15),
            rule(),
        );
        assert_eq!(r.rto_ms, None);
        assert_eq!(r.recovered_s, None);
        assert_eq!(r.last_error_s, Some(14.0));
        // Two good seconds, a bad one, two good ones: never 3 in a row.
        let mut p = vec![(100, 0); 5];
        p.extend([(100, 50), (100, 0), (100, 0), (100, 9), (100, 0), (100, 0)]);
        let r = measure(
            &secs(&p),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(11),
            rule(),
        );
        assert_eq!(r.rto_ms, None);
    }

    #[test]
    fn silence_is_not_success_and_the_error_bound_is_inclusive() {
        // No answers at all for 4 s after the fault (a hang), then clean.
        let mut p = vec![(100, 0); 5];
        p.extend(vec![(0, 0); 4]);
        p.extend(vec![(100, 1); 5]);
        let r = measure(
            &secs(&p),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(14),
            rule(),
        );
        assert_eq!(
            r.first_error_s,
            Some(9.0),
            "1 error in 100 is a failed request"
        );
        assert_eq!(r.recovered_s, Some(9.0), "but 1% meets the bound");
        assert_eq!(r.outage_ms, Some(4000.0));
        assert_eq!(r.rto_ms, Some(4000.0), "the silence counts");
    }

    #[test]
    fn the_window_ends_at_the_next_repetition() {
        let mut p = vec![(100, 0); 5];
        p.extend(vec![(100, 100); 4]);
        p.extend(vec![(100, 0); 10]);
        // The next repetition at 10 s leaves 1 clean second: not enough.
        let r = measure(
            &secs(&p),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(10),
            rule(),
        );
        assert_eq!(r.rto_ms, None);
        let r = measure(
            &secs(&p),
            1,
            Duration::from_secs(5),
            None,
            Duration::from_secs(19),
            rule(),
        );
        assert_eq!(r.rto_ms, Some(4000.0));
    }

    #[test]
    fn distribution_over_repetitions() {
        let rep = |rto: Option<f64>| Repetition {
            repetition: 1,
            injected_s: 0.0,
            first_error_s: None,
            last_error_s: None,
            recovered_s: None,
            rto_ms: rto,
            outage_ms: None,
            requests: 0,
            errors: 0,
            worst_p99_ms: 0.0,
            window_end_s: 0.0,
        };
        let d = distribution(&[rep(Some(3000.0)), rep(Some(1000.0)), rep(Some(2000.0))]);
        assert_eq!(
            (d.min_ms, d.median_ms, d.max_ms, d.not_recovered),
            (Some(1000.0), Some(2000.0), Some(3000.0), 0)
        );
        let d = distribution(&[rep(None), rep(Some(1000.0))]);
        assert_eq!((d.median_ms, d.not_recovered), (Some(1000.0), 1));
    }

    #[test]
    fn seconds_sum_scenarios_and_skip_probes_and_steps() {
        let row = |second, scenario: &str, step: &str, requests, errors| SecondRow {
            second,
            scenario: scenario.into(),
            step: step.into(),
            requests,
            errors,
            errors_by_kind: Vec::new(),
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
        };
        let rows = vec![
            row(0, "a", "", 10, 1),
            row(0, "b", "", 5, 0),
            row(2, "a", "", 7, 0),
            row(2, "a", "step1", 7, 0),
            row(2, "probe:login", "", 1, 1),
        ];
        let s = seconds_of(&rows, &[]);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].requests, s[0].errors), (15, 1));
        assert_eq!(s[1].requests, 0);
        assert_eq!(s[2].requests, 7);
        let s = seconds_of(&rows, &["b".to_string()]);
        assert_eq!(s[0].requests, 5);
    }
}

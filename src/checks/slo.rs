//! SLO arithmetic: the error budget of a run and multi-window, multi-burn-rate alerts
//! (Google SRE workbook, chapter 5 "Alerting on SLOs", table 5-8), computed from per-second
//! good / total event counts, never from whole-run totals, so a 5-minute test can say "this
//! error rate would page".
//!
//! - burn rate = (bad / total) / (1 - objective): 1 spends the budget exactly over the SLO
//!   period; 14.4 over one hour spends 2% of a 30-day budget (14.4 x 1 h / 720 h).
//! - error budget of the run = (1 - objective) x total events; consumed = bad / budget.
//! - a window pair (long L, short S, factor f) alerts at second t when the burn over the last
//!   L seconds and the burn over the last S seconds both exceed f (`>`, as the workbook's
//!   PromQL). Windows are judged once full; a pair whose long window never filled (a run cut
//!   short) is judged once at the end over the seconds there are, marked `partial`.
//!
//! An SLO passes when it had at least `min_samples` events, met its objective over the run
//! (budget consumed at most 100%) and no pair alerted. A burn that ended before the run did
//! can miss the objective without the 1x pair firing (its short window has recovered by the
//! end), so the objective is judged on its own.
//!
//! [`SloTracker`] is a fold over [`SecondSlice`]s (the run clock feeds it live, a merge can
//! replay it); prefix sums make every window O(1).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::threshold_eval::source_matches;
use crate::metrics::{format_number, ScenarioInfo, SecondSlice};
use crate::spec::{BurnWindow, Severity, Sli, SloSpec};

/// Good and total events of one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

/// Burn rate of `bad` out of `total` events against `objective` (0 without events).
pub fn burn_rate(bad: u64, total: u64, objective: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (bad as f64 / total as f64) / (1.0 - objective)
}

/// The share of an SLO period's error budget that burning at `burn` for `window` spends
/// (`14.4 x 1 h / 30 d = 0.02`).
pub fn budget_spent(burn: f64, window: std::time::Duration, period: std::time::Duration) -> f64 {
    burn * window.as_secs_f64() / period.as_secs_f64()
}

/// How long a total outage (every event bad) takes to make a window of length `window` burn
/// faster than `factor`: `factor x (1 - objective) x window` (the workbook's detection time).
pub fn detection_time(
    factor: f64,
    objective: f64,
    window: std::time::Duration,
) -> std::time::Duration {
    window.mul_f64(factor * (1.0 - objective))
}

/// Good / total events of one second of the SLO's metric under its filter.
pub fn second_counts(slo: &SloSpec, slice: &SecondSlice, infos: &[ScenarioInfo]) -> Counts {
    let mut c = Counts::default();
    for (k, s) in &slice.series {
        if !source_matches(infos, k, &slo.tags) {
            continue;
        }
        c.total += s.requests;
        c.good += match slo.sli {
            Sli::Availability => s.requests - s.failed,
            Sli::Latency {
                threshold_ms,
                inclusive,
            } => {
                let h = if slo.metric == "http_req_service_time" {
                    &s.service
                } else {
                    &s.duration
                };
                let us = threshold_ms * 1000.0;
                let high = if inclusive {
                    us.floor() as u64
                } else {
                    (us.ceil() as u64).saturating_sub(1)
                };
                if h.is_empty() {
                    0
                } else {
                    h.count_between(0, high)
                }
            }
        };
    }
    c
}

/// The error budget of a run, in events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Budget {
    /// Bad events the objective allows over the run: (1 - objective) x total.
    pub allowed_bad: f64,
    pub bad: u64,
    /// bad / allowed_bad: 1.0 is the whole budget, above 1 the objective was missed.
    pub consumed: f64,
    /// 1 - consumed (negative when overspent).
    pub remaining: f64,
}

impl Budget {
    pub fn of(objective: f64, good: u64, total: u64) -> Budget {
        let bad = total - good.min(total);
        let allowed_bad = (1.0 - objective) * total as f64;
        let consumed = if allowed_bad > 0.0 {
            bad as f64 / allowed_bad
        } else if bad > 0 {
            f64::INFINITY
        } else {
            0.0
        };
        Budget {
            allowed_bad,
            bad,
            consumed,
            remaining: 1.0 - consumed,
        }
    }
}

/// A pair's alert state changed at a second.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired {
        window: BurnWindow,
        /// The run-clock second the alert fired in (end of that second).
        at_s: u64,
        burn_long: f64,
        burn_short: f64,
    },
    Resolved {
        window: BurnWindow,
        at_s: u64,
    },
}

/// One window pair in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowReport {
    pub severity: Severity,
    pub long_s: u64,
    pub short_s: u64,
    pub factor: f64,
    /// The workbook windows these were scaled from, e.g. `1h/5m` (absent: given by the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_from: Option<String>,
    /// True when both windows burned faster than `factor` at some second.
    pub fired: bool,
    /// Run-clock second (end) of the first alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_alert_s: Option<u64>,
    /// Burn rates at the first alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_long_at_alert: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_short_at_alert: Option<f64>,
    /// Seconds during which the pair alerted.
    pub alert_seconds: u64,
    /// The highest long-window burn rate seen.
    pub max_burn_long: f64,
    /// Seconds the pair was judged at (0: the long window never filled).
    pub judged_seconds: u64,
    /// Judged once at the end over a shorter run than the long window.
    pub partial: bool,
}

/// One SLO in summary.json's `slos` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloReport {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The metric key, e.g. `http_req_duration{scenario:chat}`.
    pub metric: String,
    /// `availability`, or `latency<300ms`.
    pub sli: String,
    /// Required good fraction, e.g. 0.999.
    pub objective: f64,
    pub total: u64,
    pub good: u64,
    /// good / total (absent without events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli_value: Option<f64>,
    pub error_budget: Budget,
    /// Burn rate over the whole run.
    pub burn_rate: f64,
    pub windows: Vec<WindowReport>,
    pub passed: bool,
}

#[derive(Debug, Clone)]
struct PairState {
    window: BurnWindow,
    alerting: bool,
    fired: Option<(u64, f64, f64)>,
    alert_seconds: u64,
    max_burn_long: f64,
    judged: u64,
    partial: bool,
}

/// Folds an SLO over the run's seconds.
#[derive(Debug, Clone)]
pub struct SloTracker {
    spec: SloSpec,
    /// prefix[i] = (good, total) over seconds 0..i.
    prefix: Vec<(u64, u64)>,
    pairs: Vec<PairState>,
}

impl SloTracker {
    pub fn new(spec: &SloSpec) -> SloTracker {
        SloTracker {
            spec: spec.clone(),
            prefix: vec![(0, 0)],
            pairs: spec
                .burn
                .iter()
                .map(|w| PairState {
                    window: *w,
                    alerting: false,
                    fired: None,
                    alert_seconds: 0,
                    max_burn_long: 0.0,
                    judged: 0,
                    partial: false,
                })
                .collect(),
        }
    }

    pub fn spec(&self) -> &SloSpec {
        &self.spec
    }

    /// Seconds fed so far.
    pub fn seconds(&self) -> u64 {
        self.prefix.len() as u64 - 1
    }

    /// Feed the next second's slice (missing seconds before it count as empty).
    pub fn push(&mut self, slice: &SecondSlice, infos: &[ScenarioInfo]) -> Vec<Transition> {
        let counts = second_counts(&self.spec, slice, infos);
        self.push_counts(slice.second, counts)
    }

    /// Feed the counts of second `second` (missing seconds before it count as empty; a second
    /// already fed is ignored).
    pub fn push_counts(&mut self, second: u64, counts: Counts) -> Vec<Transition> {
        let mut out = Vec::new();
        while self.seconds() < second {
            out.extend(self.advance(Counts::default()));
        }
        if self.seconds() == second {
            out.extend(self.advance(counts));
        }
        out
    }

    /// (good, total) over the last `len` seconds (fewer when fewer were fed).
    fn last(&self, len: u64) -> (u64, u64) {
        let n = self.prefix.len() - 1;
        let from = n.saturating_sub(len as usize);
        let (g1, t1) = self.prefix[n];
        let (g0, t0) = self.prefix[from];
        (g1 - g0, t1 - t0)
    }

    fn burn_over(&self, len: u64) -> f64 {
        let (good, total) = self.last(len);
        burn_rate(total - good, total, self.spec.objective)
    }

    fn advance(&mut self, c: Counts) -> Vec<Transition> {
        let (g, t) = *self.prefix.last().expect("prefix starts with (0, 0)");
        self.prefix.push((g + c.good.min(c.total), t + c.total));
        let now = self.seconds();
        let mut out = Vec::new();
        for i in 0..self.pairs.len() {
            let w = self.pairs[i].window;
            if now < w.long.as_secs().max(1) {
                continue;
            }
            let long = self.burn_over(w.long.as_secs().max(1));
            let short = self.burn_over(w.short.as_secs().max(1));
            let p = &mut self.pairs[i];
            p.judged += 1;
            p.max_burn_long = p.max_burn_long.max(long);
            let alert = long > w.factor && short > w.factor;
            if alert {
                p.alert_seconds += 1;
                if p.fired.is_none() {
                    p.fired = Some((now, long, short));
                }
                if !p.alerting {
                    out.push(Transition::Fired {
                        window: w,
                        at_s: now,
                        burn_long: long,
                        burn_short: short,
                    });
                }
            } else if p.alerting {
                out.push(Transition::Resolved {
                    window: w,
                    at_s: now,
                });
            }
            p.alerting = alert;
        }
        out
    }

    /// Judge pairs whose long window never filled (a run shorter than planned) once, over the
    /// seconds there are. Call once, after the last second.
    pub fn finish(&mut self) -> Vec<Transition> {
        let now = self.seconds();
        let mut out = Vec::new();
        if now == 0 {
            return out;
        }
        for i in 0..self.pairs.len() {
            if self.pairs[i].judged > 0 {
                continue;
            }
            let w = self.pairs[i].window;
            let long = self.burn_over(w.long.as_secs().max(1));
            let short = self.burn_over(w.short.as_secs().max(1));
            let p = &mut self.pairs[i];
            p.judged = 1;
            p.partial = true;
            p.max_burn_long = long;
            if long > w.factor && short > w.factor {
                p.alert_seconds = 1;
                p.fired = Some((now, long, short));
                out.push(Transition::Fired {
                    window: w,
                    at_s: now,
                    burn_long: long,
                    burn_short: short,
                });
            }
        }
        out
    }

    /// The SLO's report (after [`SloTracker::finish`]).
    pub fn report(&self) -> SloReport {
        let (good, total) = *self.prefix.last().expect("prefix starts with (0, 0)");
        let budget = Budget::of(self.spec.objective, good, total);
        let enough = total >= self.spec.min_samples.max(1);
        let windows: Vec<WindowReport> = self
            .pairs
            .iter()
            .map(|p| WindowReport {
                severity: p.window.severity,
                long_s: p.window.long.as_secs(),
                short_s: p.window.short.as_secs(),
                factor: p.window.factor,
                scaled_from: p
                    .window
                    .scaled_from
                    .map(|(l, s)| format!("{}/{}", human(l), human(s))),
                fired: p.fired.is_some(),
                first_alert_s: p.fired.map(|f| f.0),
                burn_long_at_alert: p.fired.map(|f| round4(f.1)),
                burn_short_at_alert: p.fired.map(|f| round4(f.2)),
                alert_seconds: p.alert_seconds,
                max_burn_long: round4(p.max_burn_long),
                judged_seconds: p.judged,
                partial: p.partial,
            })
            .collect();
        let met = total > 0 && budget.consumed <= 1.0;
        let passed = enough && met && windows.iter().all(|w| !w.fired);
        SloReport {
            name: self.spec.name.clone(),
            description: self.spec.description.clone(),
            metric: self.spec.key.clone(),
            sli: sli_label(&self.spec),
            objective: self.spec.objective,
            total,
            good,
            sli_value: (total > 0).then(|| good as f64 / total as f64),
            error_budget: budget,
            burn_rate: round4(burn_rate(total - good, total, self.spec.objective)),
            windows,
            passed,
        }
    }
}

fn round4(v: f64) -> f64 {
    if v.is_finite() {
        (v * 10_000.0).round() / 10_000.0
    } else {
        v
    }
}

/// `1h`, `5m`, `3d`, `90s`.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// `availability`, `latency<300ms`.
pub fn sli_label(spec: &SloSpec) -> String {
    match spec.sli {
        Sli::Availability => "availability".into(),
        Sli::Latency {
            threshold_ms,
            inclusive,
        } => format!(
            "latency{}{}ms",
            if inclusive { "<=" } else { "<" },
            format_number(threshold_ms)
        ),
    }
}

/// `99.9%`.
pub fn percent(fraction: f64) -> String {
    format!("{}%", format_number(fraction * 100.0))
}

/// The SLO's check: expected and observed, in words a person reads in a table.
pub fn check_texts(r: &SloReport, min_samples: u64) -> (String, String) {
    let factors: Vec<String> = r
        .windows
        .iter()
        .map(|w| format!("{}x {}s/{}s", format_number(w.factor), w.long_s, w.short_s))
        .collect();
    let expected = format!(
        "{} {} over the run; no burn alert ({})",
        percent(r.objective),
        r.sli,
        factors.join(", ")
    );
    let missed = r.error_budget.consumed > 1.0;
    let sli = match r.sli_value {
        Some(v) => format!(
            "{}SLI {} of {}{} (budget {} consumed)",
            if missed { "objective missed: " } else { "" },
            percent(v),
            r.total,
            if missed {
                format!(" < {}", percent(r.objective))
            } else {
                String::new()
            },
            percent(r.error_budget.consumed)
        ),
        None => "no data".to_string(),
    };
    if r.total < min_samples.max(1) {
        let observed = if r.total == 0 {
            "no data".to_string()
        } else {
            format!("too few samples ({} < {min_samples}); {sli}", r.total)
        };
        return (expected, observed);
    }
    let fired: Vec<String> = r
        .windows
        .iter()
        .filter(|w| w.fired)
        .map(|w| {
            format!(
                "{} burn {}x over {}s and {}x over {}s > {}x at {}s{}",
                w.severity.as_str(),
                format_number(w.burn_long_at_alert.unwrap_or(0.0)),
                w.long_s,
                format_number(w.burn_short_at_alert.unwrap_or(0.0)),
                w.short_s,
                format_number(w.factor),
                w.first_alert_s.unwrap_or(0),
                if w.partial { " (partial window)" } else { "" }
            )
        })
        .collect();
    let observed = if fired.is_empty() {
        let max = r
            .windows
            .iter()
            .map(|w| w.max_burn_long)
            .fold(0.0, f64::max);
        format!("{sli}; max burn {}x", format_number(max))
    } else {
        format!("{}; {sli}", fired.join("; "))
    };
    (expected, observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slo(objective: f64, burn: Vec<BurnWindow>) -> SloSpec {
        SloSpec {
            name: "availability".into(),
            description: None,
            objective,
            metric: "http_req_failed".into(),
            tags: vec![],
            key: "http_req_failed".into(),
            sli: Sli::Availability,
            burn,
            min_samples: 1,
            runbook: None,
        }
    }

    fn pair(long: u64, short: u64, factor: f64) -> BurnWindow {
        BurnWindow {
            long: Duration::from_secs(long),
            short: Duration::from_secs(short),
            factor,
            severity: Severity::Page,
            scaled_from: None,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn workbook_table_5_8_budget_consumed() {
        // Table 5-8: 14.4x over 1 h, 6x over 6 h, 1x over 3 d spend 2%, 5%, 10% of a 30-day
        // budget.
        let period = DAY * 30;
        assert!((budget_spent(14.4, HOUR, period) - 0.02).abs() < 1e-12);
        assert!((budget_spent(6.0, HOUR * 6, period) - 0.05).abs() < 1e-12);
        assert!((budget_spent(1.0, DAY * 3, period) - 0.10).abs() < 1e-12);
    }

    #[test]
    fn burn_rate_is_error_rate_over_budget_rate() {
        // 99.9%: 0.1% errors burns at exactly 1; 1% errors at 10; 100% at 1000.
        assert!((burn_rate(1, 1000, 0.999) - 1.0).abs() < 1e-9);
        assert!((burn_rate(10, 1000, 0.999) - 10.0).abs() < 1e-9);
        assert!((burn_rate(1000, 1000, 0.999) - 1000.0).abs() < 1e-6);
        assert_eq!(burn_rate(0, 0, 0.999), 0.0);
        let b = Budget::of(0.999, 99_950, 100_000);
        assert!((b.allowed_bad - 100.0).abs() < 1e-6);
        assert!((b.consumed - 0.5).abs() < 1e-9);
    }

    #[test]
    fn workbook_detection_time_of_a_total_outage() {
        // The workbook: with a 99.9% SLO, a 100% outage trips the 1 h / 14.4x alert after
        // 0.864 min (51.84 s) and the 6 h / 6x alert after 2.16 min (129.6 s).
        assert_eq!(
            detection_time(14.4, 0.999, HOUR),
            Duration::from_millis(51_840)
        );
        assert_eq!(
            detection_time(6.0, 0.999, HOUR * 6),
            Duration::from_millis(129_600)
        );
        // The same from per-second counts: 6 h of clean traffic, then every request fails.
        let mut t = SloTracker::new(&slo(
            0.999,
            vec![pair(3600, 300, 14.4), pair(21600, 1800, 6.0)],
        ));
        let clean = 6 * 3600;
        for s in 0..clean {
            assert!(t
                .push_counts(
                    s,
                    Counts {
                        good: 100,
                        total: 100
                    }
                )
                .is_empty());
        }
        let mut fired = Vec::new();
        for k in 0..200 {
            for tr in t.push_counts(
                clean + k,
                Counts {
                    good: 0,
                    total: 100,
                },
            ) {
                if let Transition::Fired { window, at_s, .. } = tr {
                    fired.push((window.long.as_secs(), at_s - clean));
                }
            }
        }
        // 52 bad seconds of 3600 (1.444%) > 14.4 x 0.1%; 51 (1.417%) is not. 130 of 21600
        // (0.602%) > 6 x 0.1%; 129 is not. (Alerts are stamped at the end of their second.)
        assert_eq!(fired, vec![(3600, 52), (21600, 130)]);
    }

    #[test]
    fn alerts_resolve_and_the_report_names_the_pair() {
        let mut t = SloTracker::new(&slo(0.99, vec![pair(10, 2, 5.0)]));
        let mut transitions = Vec::new();
        for s in 0..60 {
            let bad = if (20..25).contains(&s) { 50 } else { 0 };
            transitions.extend(t.push_counts(
                s,
                Counts {
                    good: 100 - bad,
                    total: 100,
                },
            ));
        }
        transitions.extend(t.finish());
        // Second 21 is the second bad one; the alert is known at its end, 22 s.
        assert!(
            matches!(transitions[0], Transition::Fired { at_s: 22, .. }),
            "{transitions:?}"
        );
        assert!(
            matches!(transitions[1], Transition::Resolved { .. }),
            "{transitions:?}"
        );
        let r = t.report();
        assert!(!r.passed);
        assert_eq!(r.windows[0].first_alert_s, Some(22));
        // At second 21 (the 2nd bad one): long window 100 bad of 1000 = 10% -> 10x; short 50%.
        assert_eq!(r.windows[0].burn_long_at_alert, Some(10.0));
        assert_eq!(r.windows[0].burn_short_at_alert, Some(50.0));
        let (_, observed) = check_texts(&r, 1);
        assert!(
            observed.starts_with("page burn 10x over 10s and 50x over 2s > 5x at 22s"),
            "{observed}"
        );
        assert_eq!(r.good, 6000 - 250);
    }

    #[test]
    fn missing_the_objective_fails_even_when_no_pair_fires() {
        // 1% errors against 99.9%: ten times the budget, but no pair can reach 1000x.
        let mut t = SloTracker::new(&slo(0.999, vec![pair(10, 2, 1000.0)]));
        for s in 0..30 {
            t.push_counts(
                s,
                Counts {
                    good: 99,
                    total: 100,
                },
            );
        }
        t.finish();
        let r = t.report();
        assert!(r.windows.iter().all(|w| !w.fired));
        assert!((r.error_budget.consumed - 10.0).abs() < 1e-9);
        assert!(!r.passed);
        let (_, observed) = check_texts(&r, 1);
        assert!(
            observed
                .starts_with("objective missed: SLI 99% of 3000 < 99.9% (budget 1000% consumed)"),
            "{observed}"
        );
    }

    #[test]
    fn a_clean_run_passes_and_a_short_one_is_judged_partially() {
        let mut t = SloTracker::new(&slo(
            0.999,
            BurnWindow::workbook_scaled(Duration::from_secs(60)),
        ));
        for s in 0..30 {
            t.push_counts(
                s,
                Counts {
                    good: 1000,
                    total: 1000,
                },
            );
        }
        t.finish();
        let r = t.report();
        assert!(r.passed, "{r:?}");
        // The 60 s ticket pair never filled in a 30 s run: judged once, partially.
        assert!(r.windows[2].partial);
        assert_eq!(r.error_budget.consumed, 0.0);
        let mut t = SloTracker::new(&slo(0.999, vec![pair(10, 1, 14.4)]));
        t.finish();
        let r = t.report();
        assert!(!r.passed, "no events is never a pass");
        assert_eq!(check_texts(&r, 1).1, "no data");
    }
}

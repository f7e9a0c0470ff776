//! The lowered `slos:` section: service level objectives over the run's traffic, in the
//! OpenSLO spirit (an objective over good / total events), with the error budget and
//! multi-window, multi-burn-rate alerts of the Google SRE workbook (chapter 5, table 5-8).
//!
//! Burn rate = error rate / (1 - objective): 1 spends the budget exactly over the SLO's
//! period, 14.4 spends 2% of a 30-day budget in one hour. An alert fires when both the long
//! and the short window of a pair burn faster than the pair's factor.
//!
//! The workbook's windows (1 h / 5 min at 14.4x, 6 h / 30 min at 6x: page; 3 d / 6 h at 1x:
//! ticket) are far longer than a load test, so by default they are scaled to the run: the
//! longest window (3 d) becomes the run's planned length and every other window keeps its
//! ratio to it, rounded to whole seconds ([`BurnWindow::workbook_scaled`]). The page pairs
//! then say "this error rate, sustained this long, would page", the 1x ticket pair "the run
//! as a whole burned its budget and was still burning at the end". The objective over the
//! whole run is judged besides the pairs.
//!
//! Floors: a long window is at least [`MIN_LONG`] (5 s) and a short one at least 1 s (both at
//! most the run). Scaled down further, a window of a short test holds so few requests that a
//! single stray error burns "20x" (1 error in 50 requests against a 99.9% objective): the
//! workbook's hour-long windows never have that problem, and the floor keeps the scaled
//! alerts about sustained burns, as the workbook's are. Plans may give their own windows.
use std::time::Duration;

/// One SLO.
#[derive(Debug, Clone)]
pub struct SloSpec {
    pub name: String,
    pub description: Option<String>,
    /// The good fraction required, in (0, 1), e.g. 0.999.
    pub objective: f64,
    /// `http_req_failed` or `http_req_duration` / `http_req_service_time`.
    pub metric: String,
    /// The metric key's tag filter (all must match).
    pub tags: Vec<(String, String)>,
    /// The metric key as written, e.g. `http_req_duration{scenario:chat}`.
    pub key: String,
    pub sli: Sli,
    /// Burn-rate window pairs, already scaled to the run when they were not given.
    pub burn: Vec<BurnWindow>,
    /// Fewer events than this over the run fails the SLO with "too few samples". At least 1.
    pub min_samples: u64,
    /// What to do when this check fails (`runbook:` in the plan): text or a link, shown
    /// beside a failed check in the terminal, junit.xml and report.html.
    pub runbook: Option<String>,
}

/// What makes an event good.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sli {
    /// `http_req_failed`: a request is good when it did not fail.
    Availability,
    /// A latency metric: a request is good when its latency is under the threshold
    /// (`<300`; `<=300` includes it). Failed requests count by their latency too.
    Latency { threshold_ms: f64, inclusive: bool },
}

/// Alert severity of a window pair.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// A long and a short window and the burn factor both must exceed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
    /// The workbook windows this pair was scaled from (None: given by the plan).
    pub scaled_from: Option<(Duration, Duration)>,
}

/// The SRE workbook's recommended pairs (table 5-8): (long, short, factor, severity).
pub const WORKBOOK: [(u64, u64, f64, Severity); 3] = [
    (3600, 300, 14.4, Severity::Page),
    (6 * 3600, 1800, 6.0, Severity::Page),
    (3 * 86400, 6 * 3600, 1.0, Severity::Ticket),
];

/// The shortest long window of the scaled defaults.
pub const MIN_LONG: Duration = Duration::from_secs(5);

impl BurnWindow {
    /// The workbook pairs scaled so that the longest window (3 d) lasts `run`: every window
    /// keeps its ratio to 3 d, rounded to whole seconds; long windows at least [`MIN_LONG`],
    /// short ones at least 1 s, none longer than the run.
    pub fn workbook_scaled(run: Duration) -> Vec<BurnWindow> {
        let longest = WORKBOOK.iter().map(|w| w.0).max().unwrap_or(1) as f64;
        let run_s = run.as_secs_f64().max(1.0).round();
        let scale = |secs: u64, floor: f64| {
            let v = ((secs as f64 / longest) * run_s)
                .round()
                .max(floor)
                .min(run_s);
            Duration::from_secs(v.max(1.0) as u64)
        };
        WORKBOOK
            .iter()
            .map(|&(long, short, factor, severity)| {
                let l = scale(long, MIN_LONG.as_secs_f64());
                BurnWindow {
                    long: l,
                    short: scale(short, 1.0).min(l),
                    factor,
                    severity,
                    scaled_from: Some((Duration::from_secs(long), Duration::from_secs(short))),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workbook_windows_scale_to_the_run() {
        // 3 d -> 72 s: 1 h -> 1 s (raised to the 5 s floor), 5 min -> 0.08 s (1 s floor),
        // 6 h -> 6 s, 30 min -> 0.5 s (rounds to 1 s), 6 h -> 6 s.
        let secs = |run: u64| -> Vec<(u64, u64)> {
            BurnWindow::workbook_scaled(Duration::from_secs(run))
                .iter()
                .map(|b| (b.long.as_secs(), b.short.as_secs()))
                .collect()
        };
        assert_eq!(secs(72), vec![(5, 1), (6, 1), (72, 6)]);
        // A 3-second run: no window longer than the run.
        assert_eq!(secs(3), vec![(3, 1), (3, 1), (3, 1)]);
        // A 12-hour soak keeps the workbook's proportions: 1 h / 3 d * 12 h = 600 s.
        let w = BurnWindow::workbook_scaled(Duration::from_secs(12 * 3600));
        assert_eq!(w[0].long, Duration::from_secs(600));
        assert_eq!(w[0].short, Duration::from_secs(50));
        assert_eq!(w[2].long, Duration::from_secs(12 * 3600));
        assert_eq!(w[2].short, Duration::from_secs(3600));
        assert_eq!(
            w[0].scaled_from,
            Some((Duration::from_secs(3600), Duration::from_secs(300)))
        );
    }
}

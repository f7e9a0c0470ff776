//! Autoscaling rules (`autoscaling:`): while the load runs, read what a scraper saw of the
//! load metric and the replicas, recompute the Kubernetes HPA recommendation from it and
//! judge how the system followed (see [`crate::checks::autoscale`], which is pure).
//!
//! Why a controller of its own rather than a judgement at the end: the changes (the
//! recommendation's, the desired and current replicas') are events on the run's timeline,
//! recorded at their scrape's time so the reports draw them beside the latency they caused.
//! Each tick folds the points scraped since the last one into the rule's
//! [`Follower`]; the last tick (after the scrapers stopped) folds the rest, then
//! [`Controller::finish`] returns the `autoscale` checks and summary.json's `autoscale`
//! section.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::scrape::{lock, ScrapePoint, ScrapeReport, Scrapers};
use super::{Action, Conclusion, Controller, End, Section, Tick};
use crate::checks::autoscale::{AutoscaleReport, Change, Follower, Sample};
use crate::metrics::EventKind;
use crate::spec::{AutoscaleSpec, RunSpec};

/// One rule and where it reads.
struct Rule {
    spec: AutoscaleSpec,
    log: Option<Arc<Mutex<ScrapeReport>>>,
    /// Points of the log already folded.
    cursor: usize,
    follower: Follower,
}

/// The run's autoscaling rules.
pub struct Autoscale {
    rules: Vec<Rule>,
}

/// Whether `series` (`name{labels}`) is selected by `selector` (a bare name: every series of
/// that name; else the exact series).
pub fn selects(selector: &str, series: &str) -> bool {
    if selector.contains('{') {
        series == selector
    } else {
        series.split('{').next() == Some(selector)
    }
}

/// The sum of the selected series of one scrape (None: none scraped).
fn total(points: &[ScrapePoint], selector: &str) -> Option<f64> {
    points
        .iter()
        .filter(|p| selects(selector, &p.series))
        .map(|p| p.value)
        .reduce(|a, b| a + b)
}

fn replicas(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// One scrape's points as a rule's sample (None: a series the rule needs is missing).
pub fn sample_of(spec: &AutoscaleSpec, points: &[ScrapePoint]) -> Option<Sample> {
    let first = points.first()?;
    let metric = total(points, &spec.metric)?;
    let current = replicas(total(points, &spec.current)?);
    let desired = match &spec.desired {
        Some(d) => Some(replicas(total(points, d)?)),
        None => None,
    };
    Some(Sample {
        at_s: first.at_s,
        metric,
        current,
        desired,
    })
}

impl Autoscale {
    /// None when the plan has no `autoscaling:`.
    pub fn new(spec: &RunSpec, scrapers: Option<&Scrapers>) -> Option<Autoscale> {
        if spec.autoscaling.is_empty() {
            return None;
        }
        let rules = spec
            .autoscaling
            .iter()
            .map(|r| {
                let every = spec
                    .scrapes
                    .iter()
                    .find(|s| s.name == r.scrape)
                    .map_or(Duration::from_secs(1), |s| s.every);
                let log = scrapers.and_then(|s| s.log(&r.scrape));
                if log.is_none() {
                    tracing::warn!(rule = %r.name, scrape = %r.scrape, "autoscale rule has no scraper to read: its checks will have no data");
                }
                Rule {
                    spec: r.clone(),
                    log,
                    cursor: 0,
                    follower: Follower::new(r, every.as_secs_f64()),
                }
            })
            .collect();
        Some(Autoscale { rules })
    }
}

impl Rule {
    /// Fold the points scraped since the last call; the changes as timeline events.
    fn fold(&mut self) -> Vec<Action> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let fresh: Vec<ScrapePoint> = {
            let log = lock(log);
            let from = self.cursor.min(log.points.len());
            self.cursor = log.points.len();
            log.points[from..].to_vec()
        };
        let mut out = Vec::new();
        // A scrape's points are appended together and share its `at_s`.
        for scrape in fresh.chunk_by(|a, b| a.at_s == b.at_s) {
            let Some(sample) = sample_of(&self.spec, scrape) else {
                self.follower.push_incomplete();
                continue;
            };
            for c in self.follower.push(sample) {
                let (at_s, kind) = match c {
                    Change::Recommended {
                        at_s,
                        from,
                        to,
                        metric,
                    } => (
                        at_s,
                        EventKind::ScaleRecommended {
                            rule: self.spec.name.clone(),
                            from,
                            to,
                            metric,
                        },
                    ),
                    Change::Observed {
                        at_s,
                        replicas,
                        from,
                        to,
                    } => (
                        at_s,
                        EventKind::ScaleObserved {
                            rule: self.spec.name.clone(),
                            replicas: replicas.to_string(),
                            from,
                            to,
                        },
                    ),
                };
                out.push(Action::RecordAt {
                    at: Duration::from_secs_f64(at_s.max(0.0)),
                    kind,
                });
            }
        }
        out
    }
}

impl Controller for Autoscale {
    fn name(&self) -> &'static str {
        "autoscaling"
    }

    fn on_tick(&mut self, _tick: &Tick<'_>) -> Vec<Action> {
        self.rules.iter_mut().flat_map(Rule::fold).collect()
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        let mut checks = Vec::new();
        let mut reports: Vec<AutoscaleReport> = Vec::new();
        for r in &mut self.rules {
            // Points a last tick did not see (none, normally: the scrapers stopped first).
            let late = r.fold();
            if !late.is_empty() {
                tracing::debug!(rule = %r.spec.name, "{} scale events after the last tick", late.len());
            }
            let (c, report) = r.follower.finish();
            checks.extend(c);
            reports.push(report);
        }
        Conclusion {
            checks,
            sections: vec![Section::Autoscale(reports)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(at_s: f64, series: &str, value: f64) -> ScrapePoint {
        ScrapePoint {
            at_s,
            series: series.into(),
            value,
        }
    }

    #[test]
    fn selectors_sum_labelled_series() {
        assert!(selects("q", "q"));
        assert!(selects("q", r#"q{shard="1"}"#));
        assert!(!selects("q", "qq"));
        assert!(selects(r#"q{shard="1"}"#, r#"q{shard="1"}"#));
        assert!(!selects(r#"q{shard="1"}"#, r#"q{shard="2"}"#));
        let pts = [
            p(1.0, r#"q{shard="1"}"#, 3.0),
            p(1.0, r#"q{shard="2"}"#, 4.0),
            p(1.0, "cur", 2.0),
        ];
        assert_eq!(total(&pts, "q"), Some(7.0));
        assert_eq!(total(&pts, "des"), None);
    }
}

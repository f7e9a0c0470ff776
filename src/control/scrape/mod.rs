//! Scrapers (`scrapes:`): read what the system under test says about itself while the load
//! runs — Prometheus text from an endpoint (the gateway's `/metrics`, a node exporter) or a
//! number printed by a command — on an interval, so later checks (autoscaling, dependency
//! health) and the reports can put the target's own series beside the load's.
//!
//! Each scraper runs a task of its own ([`task`]), started when the load starts and stopped
//! when it ends: one scrape at a time, each bounded by its `timeout`. A failed scrape is
//! counted and logged once per change of reason (never per request: scrapes are not on the
//! request path); the points are kept per scraper (at most [`MAX_POINTS`]) and become
//! summary.json's `scrapes` section and `scrape:NAME` rows of timeseries.csv. The text is
//! parsed in [`parse`]. When the run is over, a scraper's `rates:` (per-minute rates of
//! counters, e.g. cost / min) join its points as series of their own, and its `checks:` are
//! judged over them as `threshold` checks ([`derive`]).
pub mod derive;
pub mod parse;
pub mod task;

use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, Conclusion, Controller, End, Section, StartCtx, Tick};
use crate::spec::{RunSpec, ScrapeSource, ScrapeSpec};

pub use parse::{parse_exposition, ScrapedSample};

/// Points a scraper keeps (about 55 hours of 100 series at 1/s would be far more: a bound on
/// memory, the rest counted as `dropped_points`).
pub const MAX_POINTS: usize = 500_000;

/// One scraped value on the run clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScrapePoint {
    /// Seconds since the run started, when the scrape started.
    pub at_s: f64,
    /// `name{label="value",...}`, labels sorted (a command's series is the scraper's name).
    pub series: String,
    pub value: f64,
}

/// What one scraper saw: summary.json's `scrapes[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScrapeReport {
    pub name: String,
    /// The URL, or the command line.
    pub source: String,
    /// Scrapes that returned values.
    pub scrapes: u64,
    /// Scrapes that failed (timeout, connection, status, unparsable text).
    pub errors: u64,
    /// The last failure's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Points left out past [`MAX_POINTS`].
    #[serde(default)]
    pub dropped_points: u64,
    /// Every kept point, in scrape order.
    pub points: Vec<ScrapePoint>,
}

impl ScrapeReport {
    fn new(spec: &ScrapeSpec) -> ScrapeReport {
        ScrapeReport {
            name: spec.name.clone(),
            source: match &spec.source {
                ScrapeSource::Url(u) => u.clone(),
                ScrapeSource::Command(c) => c.join(" "),
            },
            scrapes: 0,
            errors: 0,
            last_error: None,
            dropped_points: 0,
            points: Vec::new(),
        }
    }
}

/// The scrapers of a run.
pub struct Scrapers {
    specs: Vec<Arc<ScrapeSpec>>,
    logs: Vec<Arc<Mutex<ScrapeReport>>>,
}

pub(crate) fn lock(m: &Mutex<ScrapeReport>) -> std::sync::MutexGuard<'_, ScrapeReport> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scrapers {
    /// None when the plan has no `scrapes:`.
    pub fn new(spec: &RunSpec) -> Option<Scrapers> {
        if spec.scrapes.is_empty() {
            return None;
        }
        Some(Scrapers {
            specs: spec.scrapes.iter().cloned().map(Arc::new).collect(),
            logs: spec
                .scrapes
                .iter()
                .map(|s| Arc::new(Mutex::new(ScrapeReport::new(s))))
                .collect(),
        })
    }
}

impl Scrapers {
    /// The log scraper `name` fills (the autoscale rules read it while the run goes).
    pub fn log(&self, name: &str) -> Option<Arc<Mutex<ScrapeReport>>> {
        self.specs
            .iter()
            .position(|s| s.name == name)
            .map(|i| self.logs[i].clone())
    }
}

impl Controller for Scrapers {
    fn name(&self) -> &'static str {
        "scrapes"
    }

    fn on_start(&mut self, ctx: &StartCtx<'_>) -> Vec<Action> {
        let client = match task::client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("scrapes: no HTTP client ({e}); URL scrapers will fail");
                reqwest::Client::new()
            }
        };
        for (spec, log) in self.specs.iter().zip(&self.logs) {
            let t = task::ScrapeTask {
                spec: spec.clone(),
                log: log.clone(),
                client: client.clone(),
                origin: ctx.origin,
                stop: ctx.stop.clone(),
            };
            ctx.tasks.spawn(t.run());
        }
        Vec::new()
    }

    fn on_tick(&mut self, _tick: &Tick<'_>) -> Vec<Action> {
        Vec::new()
    }

    fn finish(&mut self, end: &End<'_>) -> Conclusion {
        let requests = end.metrics.total_requests();
        let mut checks = Vec::new();
        let mut reports = Vec::new();
        for (spec, log) in self.specs.iter().zip(&self.logs) {
            let mut r = lock(log).clone();
            let mut derived = Vec::new();
            for (name, sel) in &spec.rates {
                derived.extend(derive::rate_points(&r.points, name, sel));
            }
            // Each derived point joins the scrape it came from (checks read scrape by scrape).
            r.points.extend(derived);
            r.points.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
            for c in &spec.checks {
                checks.push(derive::judge(&spec.name, c, &r.points, requests));
            }
            reports.push(r);
        }
        Conclusion {
            checks,
            sections: vec![Section::Scrapes(reports)],
        }
    }
}

//! The lowered `scrapes:` section: endpoints (Prometheus text) or commands (one number) read
//! on an interval while the load runs, every series kept on the run's timeline.
use std::time::Duration;

pub use crate::grammar::scrape_expr::{ScrapeExpr, ScrapeFn, Selector};

/// One scraper.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeSpec {
    pub name: String,
    pub source: ScrapeSource,
    /// A scrape starts this often (the next waits for the previous one).
    pub every: Duration,
    /// A scrape (request or command) taking longer than this is an error.
    pub timeout: Duration,
    /// Metric names to keep (a histogram's `x_bucket`, `x_sum`, `x_count` count as `x` too);
    /// empty: every series.
    pub series: Vec<String>,
    /// Derived per-minute rates of counters (`rates:`): each becomes a series named after it
    /// (`cost_per_min`), the sum over the counters the selector matches.
    pub rates: Vec<(String, Selector)>,
    /// Checks over the scraped and derived series (`checks:`), judged when the run is over.
    pub checks: Vec<ScrapeExpr>,
}

/// What a scraper reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ScrapeSource {
    /// `GET url`, Prometheus text format 0.0.4.
    Url(String),
    /// Program and arguments (no shell); its standard output's first word is the value of
    /// the series named after the scraper.
    Command(Vec<String>),
}

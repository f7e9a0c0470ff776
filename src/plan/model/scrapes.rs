//! The plan's `scrapes:` section, field for field; see the parent module for the conventions.

use super::*;

/// `scrapes.NAME:` — an endpoint serving Prometheus text (`url:`) or a command printing a
/// number (`command:`), read on an interval while the load runs; every series goes on the
/// run's timeline and into timeseries.csv.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scrape {
    /// `${TARGET_URL}/metrics`, any `http(s)://` URL, or a path on the target (`/metrics`).
    pub url: Option<String>,
    /// A program and its arguments (no shell), e.g. `[redis-cli, llen, jobs]`; the first
    /// word of its output is the value of the series named after the scraper.
    pub command: Option<Vec<String>>,
    /// How often to scrape (default 1s).
    pub every: Option<Duration>,
    /// A scrape slower than this is an error (default 2s).
    pub timeout: Option<Duration>,
    /// Metric names to keep (default: every series); a histogram's name keeps its
    /// `_bucket`, `_sum` and `_count` series.
    pub series: Option<Vec<String>>,
    /// Per-minute rates of counters, by the name of the series they become:
    /// `cost_per_min: gateway_cost_usd_total` (a selector: `name` or `name{label="value"}`;
    /// the rate sums every matching series).
    pub rates: Option<BTreeMap<String, String>>,
    /// Checks over the scraped and rate series, judged when the run is over:
    /// `FUNC(SERIES) [per 1k requests] OP NUMBER`, FUNC one of last, max, min, avg, increase;
    /// e.g. `increase(gateway_cost_usd_total) per 1k requests < 0.06`.
    pub checks: Option<Vec<String>>,
}

//! Checks and lowering of `scrapes:` (see [`crate::spec::scrape`]).
use std::time::Duration;

use crate::spec::{ScrapeExpr, ScrapeSource, ScrapeSpec, Selector};

use super::common::positive;
use super::model::Scrape;
use super::problem::Issues;
use super::tree::PathSeg;

/// Default interval between scrapes.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Default timeout of one scrape.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

fn at(base: &[PathSeg], field: &str) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.push(PathSeg::Key(field.to_string()));
    p
}

pub(crate) fn scrape(
    name: &str,
    s: &Scrape,
    target: &str,
    issues: &mut Issues,
) -> Option<ScrapeSpec> {
    scrape_at(path!["scrapes", name], name, s, target, issues)
}

/// A scraper written at `base` (an `autoscaling:` rule's inline `scrape:` too).
pub(crate) fn scrape_at(
    base: Vec<PathSeg>,
    name: &str,
    s: &Scrape,
    target: &str,
    issues: &mut Issues,
) -> Option<ScrapeSpec> {
    let before = issues.0.len();
    let source = match (&s.url, &s.command) {
        (Some(_), Some(_)) => {
            issues.at_key(
                &base,
                "give either `url:` (Prometheus text) or `command:` (prints a number), not both",
            );
            None
        }
        (Some(u), None) => {
            let u = u.trim();
            // `${TARGET_URL}/...` (or another stack variable) is still unresolved when a plan
            // with a stack is validated; lowering sees the URL itself.
            if u.starts_with("http://") || u.starts_with("https://") || u.starts_with("${") {
                Some(ScrapeSource::Url(u.to_string()))
            } else if u.starts_with('/') {
                Some(ScrapeSource::Url(format!(
                    "{}{u}",
                    target.trim_end_matches('/')
                )))
            } else {
                issues.at(
                    at(&base, "url"),
                    "must be an http(s):// URL or a path on the target, e.g. `${TARGET_URL}/metrics` or `/metrics`",
                );
                None
            }
        }
        (None, Some(c)) => {
            if c.first().is_none_or(|p| p.trim().is_empty()) {
                issues.at(
                    at(&base, "command"),
                    "must name a program, e.g. `[redis-cli, llen, jobs]`",
                );
                None
            } else {
                Some(ScrapeSource::Command(c.clone()))
            }
        }
        (None, None) => {
            issues.at(
                at(&base, "url"),
                "required: `url: ${TARGET_URL}/metrics` (or `command: [program, args]`)",
            );
            None
        }
    };
    let every =
        positive(s.every.map(|d| d.0), &at(&base, "every"), issues).unwrap_or(DEFAULT_EVERY);
    let timeout =
        positive(s.timeout.map(|d| d.0), &at(&base, "timeout"), issues).unwrap_or(DEFAULT_TIMEOUT);
    let series = s.series.clone().unwrap_or_default();
    if let Some(i) = series.iter().position(|n| n.trim().is_empty()) {
        let mut p = at(&base, "series");
        p.push(PathSeg::Index(i));
        issues.at(p, "a metric name, e.g. `queue_depth`");
    }
    let mut rates = Vec::new();
    for (rate, sel) in s.rates.iter().flatten() {
        let mut p = at(&base, "rates");
        p.push(PathSeg::Key(rate.clone()));
        if !Selector::parse(rate).is_ok_and(|s| s.labels.is_empty()) {
            issues.at_key(
                &p,
                "a rate's name is a series name: letters, digits, `_` and `:`, e.g. `cost_per_min`",
            );
        }
        match Selector::parse(sel) {
            Ok(s) => {
                kept(&series, &s.name, &p, issues);
                rates.push((rate.clone(), s));
            }
            Err(e) => issues.at(p, e.to_string()),
        }
    }
    let mut checks = Vec::new();
    for (i, text) in s.checks.iter().flatten().enumerate() {
        let mut p = at(&base, "checks");
        p.push(PathSeg::Index(i));
        match ScrapeExpr::parse(text) {
            Ok(e) => {
                if !rates.iter().any(|(r, _)| *r == e.selector.name) {
                    kept(&series, &e.selector.name, &p, issues);
                }
                checks.push(e);
            }
            Err(e) => issues.at(p, e.to_string()),
        }
    }
    if issues.0.len() > before {
        return None;
    }
    Some(ScrapeSpec {
        name: name.to_string(),
        source: source?,
        every,
        timeout,
        series,
        rates,
        checks,
    })
}

/// With a `series:` keep-list, a rate or check must read a kept series.
fn kept(series: &[String], name: &str, path: &[PathSeg], issues: &mut Issues) {
    if !crate::control::scrape::task::selected(series, name) {
        issues.at(
            path,
            format!("reads `{name}`, which `series:` does not keep: add it to `series:`"),
        );
    }
}

//! What a scraper's points say once the run is over: per-minute rates of counters (`rates:`,
//! e.g. tokens / min and cost / min from the gateway's `gateway_tokens_total` and
//! `gateway_cost_usd_total`) and the checks over them (`checks:`, e.g. cost per 1,000
//! requests under a ceiling), judged as `threshold` checks.
//!
//! Counters are handled per series, as Prometheus does: the increase between two scrapes is
//! `now - before`, or `now` when the counter went down (a restart: a gateway that scaled to zero
//! and came back starts its counters again); a series first seen after the first scrape starts
//! from 0 (the gateway creates a labelled counter at its first increment, so its first value is
//! spend that happened during the run). Everything here is a function of the points.
use std::collections::BTreeMap;

use super::ScrapePoint;
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::format_number;
use crate::spec::{ScrapeExpr, ScrapeFn, Selector};

/// The points grouped by scrape: `(at_s, [(series, value)])`, in time order.
fn by_scrape(points: &[ScrapePoint]) -> Vec<(f64, Vec<(&str, f64)>)> {
    let mut out: Vec<(f64, Vec<(&str, f64)>)> = Vec::new();
    for p in points {
        match out.last_mut() {
            Some((at, v)) if *at == p.at_s => v.push((&p.series, p.value)),
            _ => out.push((p.at_s, vec![(&p.series, p.value)])),
        }
    }
    out
}

/// Per scrape after the first: `(at_s, seconds since the previous scrape, summed increase)`
/// of the counters `sel` matches.
pub fn increments(points: &[ScrapePoint], sel: &Selector) -> Vec<(f64, f64, f64)> {
    let scrapes = by_scrape(points);
    let mut last: BTreeMap<&str, f64> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, (at, values)) in scrapes.iter().enumerate() {
        let mut inc = 0.0;
        for (series, v) in values.iter().filter(|(s, _)| sel.matches(s)) {
            let before = match last.get(series) {
                Some(b) => Some(*b),
                None if k == 0 => None,
                None => Some(0.0),
            };
            if let Some(b) = before {
                inc += if *v >= b { v - b } else { *v };
            }
            last.insert(series, *v);
        }
        if k > 0 {
            out.push((*at, at - scrapes[k - 1].0, inc));
        }
    }
    out
}

/// The per-minute rate of the counters `sel` matches, one point per scrape after the first,
/// named `name`.
pub fn rate_points(points: &[ScrapePoint], name: &str, sel: &Selector) -> Vec<ScrapePoint> {
    increments(points, sel)
        .into_iter()
        .filter(|(_, dt, _)| *dt > 0.0)
        .map(|(at, dt, inc)| ScrapePoint {
            at_s: at,
            series: name.to_string(),
            value: round6(inc / dt * 60.0),
        })
        .collect()
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The per-scrape sums of the series `sel` matches (scrapes where none matched are skipped).
fn sums(points: &[ScrapePoint], sel: &Selector) -> Vec<f64> {
    by_scrape(points)
        .into_iter()
        .filter_map(|(_, values)| {
            let m: Vec<f64> = values
                .iter()
                .filter(|(s, _)| sel.matches(s))
                .map(|(_, v)| *v)
                .collect();
            (!m.is_empty()).then(|| m.iter().sum())
        })
        .collect()
}

/// The value an expression reads (before its comparison), or why there is none.
pub fn value_of(
    expr: &ScrapeExpr,
    points: &[ScrapePoint],
    requests: u64,
) -> Result<f64, &'static str> {
    let v = match expr.func {
        ScrapeFn::Increase => {
            let inc = increments(points, &expr.selector);
            if inc.is_empty() {
                return Err("no data (fewer than two scrapes with the series)");
            }
            if !points.iter().any(|p| expr.selector.matches(&p.series)) {
                return Err("no data (no scraped series matches)");
            }
            inc.iter().map(|(_, _, i)| i).sum()
        }
        f => {
            let s = sums(points, &expr.selector);
            if s.is_empty() {
                return Err("no data (no scraped series matches)");
            }
            match f {
                ScrapeFn::Last => s[s.len() - 1],
                ScrapeFn::Max => s.iter().cloned().fold(f64::MIN, f64::max),
                ScrapeFn::Min => s.iter().cloned().fold(f64::MAX, f64::min),
                _ => s.iter().sum::<f64>() / s.len() as f64,
            }
        }
    };
    if expr.per_1k_requests {
        if requests == 0 {
            return Err("no data (no requests were sent)");
        }
        return Ok(v / (requests as f64 / 1000.0));
    }
    Ok(v)
}

/// Judges one check of scraper `scraper`.
pub fn judge(
    scraper: &str,
    expr: &ScrapeExpr,
    points: &[ScrapePoint],
    requests: u64,
) -> CheckResult {
    let lhs = expr.to_string();
    let lhs = lhs
        .rsplit_once(&format!(" {} ", expr.op.as_str()))
        .map(|(l, _)| l.to_string())
        .unwrap_or(lhs);
    let (passed, observed) = match value_of(expr, points, requests) {
        Ok(v) => (
            expr.op.holds(v, expr.value),
            format!("{lhs}={}", format_number(v)),
        ),
        Err(why) => (false, why.to_string()),
    };
    CheckResult {
        name: format!("scrape {scraper}: {expr}"),
        kind: CheckKind::Threshold,
        passed,
        expected: expr.to_string(),
        observed,
        runbook: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(rows: &[(f64, &str, f64)]) -> Vec<ScrapePoint> {
        rows.iter()
            .map(|(at, s, v)| ScrapePoint {
                at_s: *at,
                series: s.to_string(),
                value: *v,
            })
            .collect()
    }

    fn expr(s: &str) -> ScrapeExpr {
        ScrapeExpr::parse(s).unwrap()
    }

    #[test]
    fn increase_handles_resets_and_late_series() {
        let p = pts(&[
            (0.0, "c{v=\"1\"}", 10.0),
            (1.0, "c{v=\"1\"}", 12.0),
            (2.0, "c{v=\"1\"}", 15.0),
            (2.0, "c{v=\"2\"}", 4.0), // first seen mid-run: 4 of increase
            (3.0, "c{v=\"1\"}", 1.0), // restart: +1
            (3.0, "c{v=\"2\"}", 5.0),
        ]);
        let sel = Selector::parse("c").unwrap();
        let inc: Vec<f64> = increments(&p, &sel).iter().map(|r| r.2).collect();
        assert_eq!(inc, vec![2.0, 7.0, 2.0]);
        assert_eq!(value_of(&expr("increase(c) > 0"), &p, 0), Ok(11.0));
        assert_eq!(value_of(&expr("increase(c{v=\"2\"}) > 0"), &p, 0), Ok(5.0));
        // per 1k requests: 11 over 2000 requests = 5.5 per 1k
        assert_eq!(
            value_of(&expr("increase(c) per 1k requests < 6"), &p, 2000),
            Ok(5.5)
        );
    }

    #[test]
    fn rates_are_per_minute() {
        let p = pts(&[(0.0, "cost", 0.0), (2.0, "cost", 0.2), (4.0, "cost", 0.2)]);
        let r = rate_points(&p, "cost_per_min", &Selector::parse("cost").unwrap());
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].series, "cost_per_min");
        assert_eq!(r[0].value, 6.0);
        assert_eq!(r[1].value, 0.0);
    }

    #[test]
    fn gauges_aggregate_per_scrape_sums() {
        let p = pts(&[
            (0.0, "g{i=\"a\"}", 0.0),
            (0.0, "g{i=\"b\"}", 1.0),
            (1.0, "g{i=\"a\"}", 1.0),
            (1.0, "g{i=\"b\"}", 1.0),
            (2.0, "g{i=\"a\"}", 0.0),
            (2.0, "g{i=\"b\"}", 0.0),
        ]);
        assert_eq!(value_of(&expr("max(g) == 2"), &p, 0), Ok(2.0));
        assert_eq!(value_of(&expr("min(g) == 0"), &p, 0), Ok(0.0));
        assert_eq!(value_of(&expr("last(g) == 0"), &p, 0), Ok(0.0));
        assert_eq!(value_of(&expr("avg(g) == 1"), &p, 0), Ok(1.0));
    }

    #[test]
    fn no_data_fails() {
        let p = pts(&[(0.0, "x", 1.0)]);
        let c = judge("gw", &expr("max(y) < 1"), &p, 10);
        assert!(!c.passed);
        assert!(c.observed.starts_with("no data"), "{}", c.observed);
        let c = judge("gw", &expr("increase(x) per 1k requests < 1"), &p, 10);
        assert!(!c.passed, "one scrape has no increase");
        let c = judge("gw", &expr("max(x) per 1k requests < 1"), &p, 0);
        assert!(c.observed.contains("no requests"), "{}", c.observed);
    }

    #[test]
    fn judged_checks_read_well() {
        let p = pts(&[(0.0, "cost", 0.0), (1.0, "cost", 0.0412)]);
        let c = judge(
            "gateway",
            &expr("increase(cost) per 1k requests < 0.06"),
            &p,
            1000,
        );
        assert!(c.passed);
        assert_eq!(c.kind, CheckKind::Threshold);
        assert_eq!(
            c.name,
            "scrape gateway: increase(cost) per 1k requests < 0.06"
        );
        assert_eq!(c.observed, "increase(cost) per 1k requests=0.0412");
    }
}

//! The sections every run has: the checks, the scenarios, the charts over time, the latency
//! spectrum, the events; and the comparison against a baseline run when there is one.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::chart::{self, Fold, Line, PALETTE};
use super::{chip, esc, ms, table, verdict_cell, Page, Section, MAX_EVENT_ROWS};
use crate::metrics::format_number;
use crate::report::ReportError;

/// The verdict's evidence: every check, a failed one with its runbook; the warnings.
pub struct Checks;

impl Section for Checks {
    fn id(&self) -> &'static str {
        "checks"
    }
    fn title(&self) -> &'static str {
        "Checks"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let s = page.run.summary;
        let mut o = String::new();
        if s.checks.is_empty() {
            o.push_str("<p class=\"note\">No thresholds, probes or SLOs: nothing was judged.</p>");
        } else {
            o.push_str("<div class=\"scroll\"><table><thead><tr><th>result</th><th>kind</th><th>check</th><th>expected</th><th>observed</th></tr></thead><tbody>");
            // Failed checks first: they are what a reader came for.
            let mut ordered: Vec<_> = s.checks.iter().collect();
            ordered.sort_by_key(|c| c.passed);
            for c in ordered {
                let _ = write!(
                    o,
                    "<tr{}><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                    if c.passed { "" } else { " class=\"failed\"" },
                    verdict_cell(c.passed),
                    esc(c.kind.as_str()),
                    esc(&c.name),
                    match (&c.runbook, c.passed) {
                        (Some(r), false) => format!("<div class=\"runbook\">{}</div>", linkify(r)),
                        _ => String::new(),
                    },
                    esc(&c.expected),
                    esc(&c.observed)
                );
            }
            o.push_str("</tbody></table></div>");
        }
        for w in &s.warnings {
            let _ = write!(o, "<div class=\"warn\">{}</div>", esc(&w.message()));
        }
        Ok(Some(o))
    }
}

/// A runbook line, its `http(s)://` words turned into links.
fn linkify(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if (w.starts_with("https://") || w.starts_with("http://")) && !w.contains('"') {
                format!("<a href=\"{0}\">{0}</a>", esc(w))
            } else {
                esc(w)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Per scenario: throughput, errors, latency percentiles.
pub struct Scenarios;

impl Section for Scenarios {
    fn id(&self) -> &'static str {
        "scenarios"
    }
    fn title(&self) -> &'static str {
        "Scenarios"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let s = page.run.summary;
        if s.scenarios.is_empty() {
            return Ok(None);
        }
        let rows: Vec<Vec<String>> = s
            .scenarios
            .iter()
            .map(|(name, sc)| {
                let l = &sc.latency_ms;
                let kinds: Vec<String> = sc
                    .errors_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                vec![
                    esc(name),
                    esc(&sc.executor),
                    sc.requests.to_string(),
                    format!("{:.1}", sc.rps),
                    if sc.requests > 0 {
                        format!(
                            "{} ({:.2}%)",
                            sc.errors,
                            100.0 * sc.errors as f64 / sc.requests as f64
                        )
                    } else {
                        sc.errors.to_string()
                    },
                    sc.dropped.to_string(),
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p95),
                    ms(l.p99),
                    ms(l.p999),
                    ms(l.max),
                    esc(&kinds.join(", ")),
                ]
            })
            .collect();
        let mut o = table(
            &[
                "scenario",
                "executor",
                "requests",
                "req/s",
                "errors",
                "dropped",
                "p50 ms",
                "p90 ms",
                "p95 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "errors by kind",
            ],
            &rows,
            &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        for (name, sc) in &s.scenarios {
            for (kind, msg) in &sc.first_errors {
                let _ = write!(
                    o,
                    "<p class=\"note\">{}: first {}: {}</p>",
                    esc(name),
                    esc(kind),
                    esc(msg)
                );
            }
        }
        o.push_str("<p class=\"note\">Latency is measured from the intended send time to the last byte (coordinated-omission corrected in the open model).</p>");
        Ok(Some(o))
    }
}

/// Per scenario (whole-scenario rows: no probe, no flow step): `second → (requests, errors,
/// errors by kind, p50, p95, p99)`.
type Rows<'a> = BTreeMap<&'a str, Vec<&'a crate::metrics::SecondRow>>;

fn scenario_rows<'a>(timeline: &'a [crate::metrics::SecondRow]) -> Rows<'a> {
    let mut out: Rows<'a> = BTreeMap::new();
    for r in timeline {
        if r.step.is_empty() && !r.scenario.starts_with("probe:") {
            out.entry(r.scenario.as_str()).or_default().push(r);
        }
    }
    out
}

/// Charts over the run clock with the events drawn on them.
pub struct Timeline;

impl Section for Timeline {
    fn id(&self) -> &'static str {
        "timeline"
    }
    fn title(&self) -> &'static str {
        "Over time"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let run = page.run;
        let rows = scenario_rows(run.timeline);
        if rows.is_empty() {
            return Ok(None);
        }
        let x_max = run.summary.duration_s.max(
            rows.values()
                .flatten()
                .map(|r| r.second + 1)
                .max()
                .unwrap_or(1) as f64,
        );
        let mut o = String::new();
        let seconds = x_max.ceil() as usize;
        if seconds > chart::MAX_POINTS {
            let _ = write!(
                o,
                "<p class=\"note\">{seconds} seconds drawn in buckets of {} s (throughput and p50 averaged, p95 / p99 the bucket's highest second); the tables hold the exact numbers.</p>",
                seconds.div_ceil(chart::MAX_POINTS)
            );
        }
        if !page.markers.is_empty() {
            o.push_str(
                "<p class=\"note\">Numbered lines are the run's events (listed under Events).</p>",
            );
        }

        // Throughput.
        let lines: Vec<Line> = rows
            .iter()
            .enumerate()
            .map(|(i, (name, rs))| Line {
                name: name.to_string(),
                color: PALETTE[i % PALETTE.len()],
                points: chart::downsample(
                    &rs.iter()
                        .map(|r| (r.second, r.requests as f64))
                        .collect::<Vec<_>>(),
                    Fold::Mean,
                ),
                faint: false,
            })
            .collect();
        o.push_str("<h3>Throughput (responses per second)</h3><div class=\"chart\">");
        o.push_str(&chart::over_time(
            "req/s",
            &lines,
            (&page.markers, &page.bands),
            x_max,
            1.0,
        )?);
        o.push_str("</div>");

        // Error rate by kind, over every scenario.
        let mut per_second: BTreeMap<u64, (u64, BTreeMap<&'static str, u64>)> = BTreeMap::new();
        for r in rows.values().flatten() {
            let e = per_second.entry(r.second).or_default();
            e.0 += r.requests;
            for (k, n) in &r.errors_by_kind {
                *e.1.entry(k.as_str()).or_default() += n;
            }
        }
        let kinds: std::collections::BTreeSet<&str> = per_second
            .values()
            .flat_map(|(_, m)| m.keys().copied())
            .collect();
        let pct = |n: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * n as f64 / total as f64
            }
        };
        let mut lines: Vec<Line> = vec![Line {
            name: "all errors".into(),
            color: plotters::style::RGBColor(60, 60, 60),
            points: chart::downsample(
                &per_second
                    .iter()
                    .map(|(s, (t, m))| (*s, pct(m.values().sum(), *t)))
                    .collect::<Vec<_>>(),
                Fold::Max,
            ),
            faint: false,
        }];
        if kinds.len() > 1 {
            for (i, k) in kinds.iter().enumerate() {
                lines.push(Line {
                    name: k.to_string(),
                    color: PALETTE[(i + 3) % PALETTE.len()],
                    points: chart::downsample(
                        &per_second
                            .iter()
                            .map(|(s, (t, m))| (*s, pct(m.get(k).copied().unwrap_or(0), *t)))
                            .collect::<Vec<_>>(),
                        Fold::Max,
                    ),
                    faint: false,
                });
            }
        } else if let Some(k) = kinds.iter().next() {
            lines[0].name = format!("{k} (all errors)");
        }
        o.push_str(
            "<h3>Error rate by kind (% of the second's responses)</h3><div class=\"chart\">",
        );
        o.push_str(&chart::over_time(
            "% failed",
            &lines,
            (&page.markers, &page.bands),
            x_max,
            1.0,
        )?);
        o.push_str("</div>");

        // Latency per scenario.
        for (name, rs) in &rows {
            let pick = |f: fn(&crate::metrics::SecondRow) -> f64| {
                rs.iter()
                    .filter(|r| r.requests > 0)
                    .map(|r| (r.second, f(r)))
                    .collect::<Vec<_>>()
            };
            let lines = vec![
                Line {
                    name: "p50".into(),
                    color: PALETTE[2],
                    points: chart::downsample(&pick(|r| r.p50_ms), Fold::Mean),
                    faint: false,
                },
                Line {
                    name: "p95".into(),
                    color: PALETTE[1],
                    points: chart::downsample(&pick(|r| r.p95_ms), Fold::Max),
                    faint: false,
                },
                Line {
                    name: "p99".into(),
                    color: PALETTE[3],
                    points: chart::downsample(&pick(|r| r.p99_ms), Fold::Max),
                    faint: false,
                },
            ];
            let _ = write!(
                o,
                "<h3>Latency of {} (ms, per second)</h3><div class=\"chart\">",
                esc(name)
            );
            o.push_str(&chart::over_time(
                "ms",
                &lines,
                (&page.markers, &page.bands),
                x_max,
                1.0,
            )?);
            o.push_str("</div>");
        }
        Ok(Some(o))
    }
}

/// The latency distribution as an HDR percentile spectrum, per scenario.
pub struct Spectrum;

/// `(percentile as a fraction, ms)` points of a histogram in µs (HdrHistogram's percentile
/// iteration, 5 ticks per half distance).
pub fn spectrum_points(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .filter(|(q, _)| *q < 0.999_999)
        .collect();
    pts.push((0.999_999, h.max() as f64 / 1000.0));
    pts
}

impl Section for Spectrum {
    fn id(&self) -> &'static str {
        "spectrum"
    }
    fn title(&self) -> &'static str {
        "Latency distribution"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let hs = page.run.latency;
        if hs.values().all(|h| h.is_empty()) {
            return Ok(None);
        }
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for (i, (name, h)) in hs.iter().enumerate().filter(|(_, (_, h))| !h.is_empty()) {
            lines.push(Line {
                name: name.clone(),
                color: PALETTE[i % PALETTE.len()],
                points: spectrum_points(h),
                faint: false,
            });
            let q = |p: f64| ms(h.value_at_quantile(p) as f64 / 1000.0);
            rows.push(vec![
                esc(name),
                h.len().to_string(),
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                q(0.9999),
                ms(h.max() as f64 / 1000.0),
            ]);
        }
        if let Some(b) = page.run.baseline {
            for (i, (name, h)) in b
                .latency
                .iter()
                .enumerate()
                .filter(|(_, (_, h))| !h.is_empty())
            {
                lines.push(Line {
                    name: format!("{name} (baseline)"),
                    color: PALETTE[i % PALETTE.len()],
                    points: spectrum_points(h),
                    faint: true,
                });
            }
        }
        let mut o = String::from("<div class=\"chart\">");
        o.push_str(&chart::spectrum(&lines)?);
        o.push_str("</div>");
        o.push_str(&table(
            &[
                "scenario",
                "samples",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "p99.99 ms",
                "max ms",
            ],
            &rows,
            &[1, 2, 3, 4, 5, 6, 7],
        ));
        o.push_str("<p class=\"note\">HDR percentile spectrum of the whole run (3 significant digits); x is 1/(1-p) on a log scale, so the tail gets the room.</p>");
        Ok(Some(o))
    }
}

/// Every event: the numbered ones are the charts' markers.
pub struct Events;

impl Section for Events {
    fn id(&self) -> &'static str {
        "events"
    }
    fn title(&self) -> &'static str {
        "Events"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let events = &page.run.summary.events;
        if events.is_empty() {
            return Ok(None);
        }
        let rows: Vec<Vec<String>> = events
            .iter()
            .take(MAX_EVENT_ROWS)
            .map(|e| {
                let n = page
                    .number_of(e)
                    .and_then(|n| page.markers.get(n - 1).map(|m| chip(n, m.tone)))
                    .unwrap_or_default();
                vec![n, format_number(e.at_s), esc(e.kind()), esc(&e.detail)]
            })
            .collect();
        let mut o = table(&["#", "at s", "kind", "what happened"], &rows, &[1]);
        if events.len() > MAX_EVENT_ROWS {
            let _ = write!(
                o,
                "<p class=\"note\">{} more events in summary.json.</p>",
                events.len() - MAX_EVENT_ROWS
            );
        }
        Ok(Some(o))
    }
}

/// Deltas against a baseline run (`loadgate report --compare`).
pub struct Compare;

impl Section for Compare {
    fn id(&self) -> &'static str {
        "compare"
    }
    fn title(&self) -> &'static str {
        "Compared with the baseline"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(b) = page.run.baseline else {
            return Ok(None);
        };
        let mut o = String::new();
        if let Some(c) = b.comparison {
            o.push_str(&crate::report::compare::html(c));
        }
        // Both runs' latency curves overlaid, per scenario (p95 per second).
        let cur = scenario_rows(page.run.timeline);
        let base = scenario_rows(b.timeline);
        for (i, (name, rs)) in cur.iter().enumerate() {
            let p95 = |rs: &[&crate::metrics::SecondRow]| {
                chart::downsample(
                    &rs.iter()
                        .filter(|r| r.requests > 0)
                        .map(|r| (r.second, r.p95_ms))
                        .collect::<Vec<_>>(),
                    Fold::Max,
                )
            };
            let mut lines = vec![Line {
                name: format!("{name} p95"),
                color: PALETTE[i % PALETTE.len()],
                points: p95(rs),
                faint: false,
            }];
            if let Some(brs) = base.get(name) {
                lines.push(Line {
                    name: format!("{name} p95 (baseline)"),
                    color: PALETTE[i % PALETTE.len()],
                    points: p95(brs),
                    faint: true,
                });
            }
            let x_max = lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0 + 1.0))
                .fold(1.0, f64::max);
            let _ = write!(
                o,
                "<h3>p95 of {} per second, this run and the baseline</h3><div class=\"chart\">",
                esc(name)
            );
            o.push_str(&chart::over_time("ms", &lines, (&[], &[]), x_max, 1.0)?);
            o.push_str("</div>");
        }
        Ok(Some(o))
    }
}

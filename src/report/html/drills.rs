//! The drills' sections: probes, SLOs (error budget and burn rates), the canary gate's steps,
//! the blue/green switches. Each reads its own part of summary.json and nothing else; a new
//! drill (failover, autoscale, capacity) adds a type here (or a file beside it) and a line in
//! [`super::sections`].
use std::fmt::Write as _;

use super::{esc, ms, opt, table, verdict_cell, Page, Section};
use crate::metrics::format_number;
use crate::report::ReportError;

/// Probes: samples, failures, latency, each SLO expression, the first failures.
pub struct Probes;

impl Section for Probes {
    fn id(&self) -> &'static str {
        "probes"
    }
    fn title(&self) -> &'static str {
        "Probes"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(probes) = &page.run.summary.probes else {
            return Ok(None);
        };
        let rows: Vec<Vec<String>> = probes
            .iter()
            .map(|p| {
                let slo: Vec<String> = p
                    .slo
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} ({})",
                            if s.passed { "✓" } else { "✗" },
                            esc(&s.expected),
                            esc(&s.observed)
                        )
                    })
                    .collect();
                vec![
                    verdict_cell(p.passed),
                    esc(&p.name),
                    esc(&p.target),
                    format_number(p.every_s),
                    p.samples.to_string(),
                    p.failed.to_string(),
                    ms(p.latency_ms.p50),
                    ms(p.latency_ms.p95),
                    ms(p.latency_ms.max),
                    slo.join("<br>"),
                ]
            })
            .collect();
        let mut o = table(
            &[
                "result", "probe", "sends", "every s", "samples", "failed", "p50 ms", "p95 ms",
                "max ms", "SLO",
            ],
            &rows,
            &[3, 4, 5, 6, 7, 8],
        );
        for p in probes.iter().filter(|p| !p.failures.is_empty()) {
            let _ = write!(o, "<h3>Failures of probe {}</h3>", esc(&p.name));
            let rows: Vec<Vec<String>> = p
                .failures
                .iter()
                .take(20)
                .map(|f| {
                    vec![
                        format_number(f.at_s),
                        ms(f.latency_ms),
                        f.status.to_string(),
                        esc(f.error.as_deref().unwrap_or("")),
                        esc(f.reason.as_deref().unwrap_or("")),
                    ]
                })
                .collect();
            o.push_str(&table(
                &["at s", "latency ms", "status", "error", "reason"],
                &rows,
                &[0, 1, 2],
            ));
            let more = p.failures.len().saturating_sub(20) as u64 + p.failures_omitted;
            if more > 0 {
                let _ = write!(o, "<p class=\"note\">{more} more failures.</p>");
            }
        }
        Ok(Some(o))
    }
}

/// SLOs: the SLI, the error budget consumed, the burn rates of every window pair.
pub struct Slos;

impl Section for Slos {
    fn id(&self) -> &'static str {
        "slos"
    }
    fn title(&self) -> &'static str {
        "SLOs and error budgets"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(slos) = &page.run.summary.slos else {
            return Ok(None);
        };
        let mut o = String::new();
        for s in slos {
            let consumed = s.error_budget.consumed;
            let pct = if consumed.is_finite() {
                format!("{}%", format_number(100.0 * consumed))
            } else {
                "all (no budget)".into()
            };
            let bar = if consumed.is_finite() {
                (100.0 * consumed).clamp(0.0, 100.0)
            } else {
                100.0
            };
            let _ = write!(
                o,
                "<h3>{} {}</h3><p>{} · objective {}% · SLI {} over {} events ({} bad) · budget consumed <b>{pct}</b> · burn rate over the run {}x</p>\
<div style=\"background:#eee;border-radius:4px;height:10px;max-width:480px\"><div style=\"background:{};width:{bar:.1}%;height:10px;border-radius:4px\"></div></div>",
                verdict_cell(s.passed),
                esc(&s.name),
                esc(&s.sli),
                format_number(100.0 * s.objective),
                s.sli_value
                    .map(|v| format!("{}%", format_number(100.0 * v)))
                    .unwrap_or_else(|| "-".into()),
                s.total,
                s.error_budget.bad,
                format_number(s.burn_rate),
                if consumed > 1.0 { "#c82828" } else if consumed > 0.5 { "#e0a800" } else { "#1e8c3c" },
            );
            let rows: Vec<Vec<String>> = s
                .windows
                .iter()
                .map(|w| {
                    vec![
                        esc(w.severity.as_str()),
                        format!("{} s / {} s", w.long_s, w.short_s),
                        esc(w.scaled_from.as_deref().unwrap_or("")),
                        format_number(w.factor),
                        format_number(w.max_burn_long),
                        if w.fired {
                            format!(
                                "<span class=\"fail\">at {} s</span> ({}x / {}x)",
                                opt(w.first_alert_s.map(|v| v as f64)),
                                opt(w.burn_long_at_alert),
                                opt(w.burn_short_at_alert)
                            )
                        } else {
                            "no".into()
                        },
                        w.alert_seconds.to_string(),
                        w.judged_seconds.to_string(),
                    ]
                })
                .collect();
            o.push_str(&table(
                &[
                    "severity",
                    "windows",
                    "scaled from",
                    "factor",
                    "max burn (long)",
                    "alerted",
                    "alert s",
                    "judged s",
                ],
                &rows,
                &[3, 4, 6, 7],
            ));
        }
        Ok(Some(o))
    }
}

/// The canary gate: per step, both sides' samples and latency, the test and the decision.
pub struct Canary;

impl Section for Canary {
    fn id(&self) -> &'static str {
        "canary"
    }
    fn title(&self) -> &'static str {
        "Canary gate"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(c) = &page.run.summary.canary else {
            return Ok(None);
        };
        let split = match &c.header {
            Some(h) => format!("split by header {}", esc(h)),
            None => "split by loadgate between two targets".to_string(),
        };
        let mut o = format!(
            "<p>{} decision <b>{}</b> (expected {}): {}</p><p class=\"note\">{split}: {} (baseline) vs {} (canary); at least {} samples per side and step</p>",
            verdict_cell(c.passed),
            esc(c.decision.as_str()),
            esc(&c.expected),
            esc(&c.reason),
            esc(&c.baseline),
            esc(&c.canary),
            c.min_samples
        );
        let (head, rows) = crate::report::table::canary_step_rows(c);
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(|cell| esc(&cell)).collect())
            .collect();
        // Numeric columns: weight .. p-value (text from the effect on).
        o.push_str(&table(&head, &rows, &[1, 3, 4, 5, 6, 7, 8, 9, 10]));
        if let Some(a) = &c.after_rollback {
            let _ = write!(
                o,
                "<p>After the rollback (from {} s, {} s): {} requests, {} failed, {} still served by the canary.</p>",
                a.from_s, a.seconds, a.requests, a.failed, a.canary_requests
            );
        }
        Ok(Some(o))
    }
}

/// Blue/green: per switch, its window, failures, the worst second and the cutover time.
pub struct BlueGreen;

impl Section for BlueGreen {
    fn id(&self) -> &'static str {
        "blue-green"
    }
    fn title(&self) -> &'static str {
        "Blue/green switches"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(b) = &page.run.summary.blue_green else {
            return Ok(None);
        };
        let rows: Vec<Vec<String>> = b
            .switches
            .iter()
            .map(|s| {
                vec![
                    verdict_cell(s.passed),
                    esc(&s.kind.to_string()),
                    esc(&s.to),
                    format_number(s.requested_at_s),
                    opt(s.switch_ms),
                    opt(s.cutover_s),
                    format!("{}-{}", s.from_s, s.to_s),
                    s.requests.to_string(),
                    s.failed.to_string(),
                    s.old_version_requests.to_string(),
                    s.worst_second
                        .as_ref()
                        .map(|w| format!("{} s: p99 {} ms", w.at_s, ms(w.p99_ms)))
                        .unwrap_or_else(|| "-".into()),
                    esc(&s.reason),
                ]
            })
            .collect();
        let mut o = format!(
            "<p class=\"note\">split {}: blue {} · green {} · at most {} failed per window{}</p>",
            esc(&b.header),
            esc(&b.blue),
            esc(&b.green),
            b.max_failed,
            b.max_p99_ms
                .map(|m| format!(" · every second's p99 ≤ {} ms", format_number(m)))
                .unwrap_or_default()
        );
        o.push_str(&table(
            &[
                "result",
                "switch",
                "to",
                "at s",
                "call ms",
                "cutover s",
                "window s",
                "requests",
                "failed",
                "old version",
                "worst second",
                "why",
            ],
            &rows,
            &[3, 4, 5, 7, 8, 9],
        ));
        Ok(Some(o))
    }
}

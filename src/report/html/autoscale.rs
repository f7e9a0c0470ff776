//! The autoscaling rules' section of report.html: per rule its metric, target and peaks, then
//! every episode (trigger, recommended replicas, decision and ready latency, overshoot) and
//! the flaps. The scale events themselves are markers on the charts.
use super::{esc, opt, table, verdict_cell, Page, Section};
use crate::checks::autoscale::Reach;
use crate::metrics::format_number;
use crate::report::ReportError;

pub struct Autoscale;

fn latency(reach: Reach, v: Option<f64>) -> String {
    match (reach, v) {
        (Reach::Missed, None) => "missed".into(),
        _ => opt(v),
    }
}

impl Section for Autoscale {
    fn id(&self) -> &'static str {
        "autoscale"
    }
    fn title(&self) -> &'static str {
        "Autoscaling"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(rules) = &page.run.summary.autoscale else {
            return Ok(None);
        };
        let mut o = String::new();
        for r in rules {
            o.push_str(&format!(
                "<p><strong>{}</strong> {} · {} / {} per replica, {}..{} replicas, scale-down window {} s · {} samples · peak recommended {} / desired {} / current {} · {} flap(s)</p>",
                esc(&r.rule),
                verdict_cell(r.verdict == "pass"),
                esc(&r.metric),
                format_number(r.target_per_replica),
                r.min,
                r.max,
                format_number(r.stabilization_s),
                r.samples,
                r.peak_recommended,
                r.peak_desired.map_or("-".into(), |d| d.to_string()),
                r.peak_current,
                r.flaps.len()
            ));
            let rows: Vec<Vec<String>> = r
                .episodes
                .iter()
                .map(|e| {
                    vec![
                        e.direction.clone(),
                        format_number(e.trigger_at_s),
                        e.from.to_string(),
                        e.recommended.to_string(),
                        e.peak_recommended.to_string(),
                        latency(e.decision, e.decision_latency_s),
                        latency(e.ready, e.ready_latency_s),
                        e.overshoot.to_string(),
                        match e.passed {
                            Some(p) => verdict_cell(p),
                            None => "pending".into(),
                        },
                    ]
                })
                .collect();
            o.push_str(&table(
                &[
                    "dir",
                    "trigger at s",
                    "from",
                    "recommended",
                    "furthest",
                    "decision s",
                    "ready s",
                    "overshoot",
                    "verdict",
                ],
                &rows,
                &[1, 2, 3, 4, 5, 6, 7],
            ));
            if !r.flaps.is_empty() {
                let rows: Vec<Vec<String>> = r
                    .flaps
                    .iter()
                    .map(|f| {
                        vec![
                            format_number(f.at_s),
                            format_number(f.previous_at_s),
                            f.direction.clone(),
                            format!("{} -> {}", f.from, f.to),
                        ]
                    })
                    .collect();
                o.push_str(&table(
                    &["flap at s", "previous change at s", "dir", "replicas"],
                    &rows,
                    &[0, 1],
                ));
            }
        }
        Ok(Some(o))
    }
}

//! The capacity search's section of report.html: the conclusion, the knee and headroom, and
//! every step with its evidence. Each step is also a band on the charts (see
//! `super::bands`), so the staircase of rates lines up with the latency it caused.
use super::{esc, table, Page, Section};
use crate::drills::capacity::StepVerdict;
use crate::metrics::format_number;
use crate::report::capacity::{step_cells, STEP_COLUMNS, STEP_NUMERIC};
use crate::report::ReportError;

pub struct Capacity;

impl Section for Capacity {
    fn id(&self) -> &'static str {
        "capacity"
    }
    fn title(&self) -> &'static str {
        "Capacity search"
    }
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError> {
        let Some(c) = &page.run.summary.capacity else {
            return Ok(None);
        };
        let mut o = format!(
            "<p><strong>{}</strong></p><p class=\"note\">scenario {} · outcome {} · precision {}% · search {} s over {} steps</p>",
            esc(&c.conclusion),
            esc(&c.scenario),
            c.outcome.as_str(),
            format_number(c.precision * 100.0),
            format_number(c.duration_s),
            c.steps.len()
        );
        if let Some(k) = &c.knee {
            o.push_str(&format!(
                "<p class=\"note\">knee: {}/s offered, {}/s achieved, mean {} ms, p95 {} ms, p99 {} ms: {} requests in flight (Little's law)</p>",
                format_number(k.rate),
                format_number(k.achieved_rps),
                format_number(k.mean_ms),
                format_number(k.p95_ms),
                format_number(k.p99_ms),
                format_number(k.concurrency)
            ));
        }
        if let Some(e) = c.expected {
            o.push_str(&format!(
                "<p class=\"note\">headroom: {} over the expected {}/s (needs {}x)</p>",
                c.headroom
                    .map(|h| format!("{}x", format_number(h)))
                    .unwrap_or_else(|| "unknown".into()),
                format_number(e),
                format_number(c.headroom_factor)
            ));
        }
        if let Some(g) = &c.generator_limit {
            o.push_str(&format!(
                "<p class=\"note\">the generator ran out {}</p>",
                esc(g)
            ));
        }
        let rows: Vec<Vec<String>> = c
            .steps
            .iter()
            .map(|s| {
                let mut row = step_cells(s);
                row.push(match s.verdict {
                    StepVerdict::Pass => "<span class=\"pass\">pass</span>".to_string(),
                    StepVerdict::Fail => "<span class=\"fail\">fail</span>".to_string(),
                    StepVerdict::Invalid => "invalid".to_string(),
                });
                row.push(esc(&s.detail));
                row
            })
            .collect();
        let headers: Vec<&str> = STEP_COLUMNS
            .iter()
            .copied()
            .chain(["result", "detail"])
            .collect();
        let numeric: Vec<usize> = STEP_NUMERIC.collect();
        o.push_str(&table(&headers, &rows, &numeric));
        Ok(Some(o))
    }
}

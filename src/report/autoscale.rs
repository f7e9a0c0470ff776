//! Autoscaling rules in the reports: the episode table (terminal and summary.txt) and the
//! episodes as JUnit testcases. summary.json's `autoscale` section is the
//! [`AutoscaleReport`]s themselves; the rules' checks are ordinary `autoscale` checks.
use quick_junit::{TestCase, TestCaseStatus};
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::checks::autoscale::{AutoscaleReport, Reach, ScaleEpisode};
use crate::metrics::format_number;

/// Rows shown per rule (a flapping system has many episodes; summary.json keeps them all).
pub const MAX_ROWS: usize = 20;

fn latency(reach: Reach, v: Option<f64>) -> String {
    match (reach, v) {
        (_, Some(v)) => format_number(v),
        (Reach::Missed, None) => "missed".into(),
        _ => "-".into(),
    }
}

fn verdict(ep: &ScaleEpisode) -> &'static str {
    match ep.passed {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "pending",
    }
}

fn recommended(ep: &ScaleEpisode) -> String {
    if ep.peak_recommended == ep.recommended {
        format!("{} -> {}", ep.from, ep.recommended)
    } else {
        format!(
            "{} -> {} (then {})",
            ep.from, ep.recommended, ep.peak_recommended
        )
    }
}

/// One row per episode (rule, direction, trigger, recommended, decision and ready latency,
/// overshoot, flaps, verdict), then a line per rule.
pub fn table(reports: &[AutoscaleReport]) -> String {
    let mut b = Builder::default();
    b.push_record([
        "rule",
        "dir",
        "trigger at s",
        "recommended",
        "decision s",
        "ready s",
        "overshoot",
        "flaps",
        "verdict",
    ]);
    let mut more = Vec::new();
    for r in reports {
        for (i, ep) in r.episodes.iter().take(MAX_ROWS).enumerate() {
            b.push_record([
                r.rule.clone(),
                ep.direction.clone(),
                format_number(ep.trigger_at_s),
                recommended(ep),
                latency(ep.decision, ep.decision_latency_s),
                latency(ep.ready, ep.ready_latency_s),
                ep.overshoot.to_string(),
                if i == 0 {
                    r.flaps.len().to_string()
                } else {
                    String::new()
                },
                verdict(ep).to_string(),
            ]);
        }
        if r.episodes.is_empty() {
            b.push_record([
                r.rule.clone(),
                "-".into(),
                "-".into(),
                "no trigger".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                r.flaps.len().to_string(),
                r.verdict.to_uppercase(),
            ]);
        }
        if r.episodes.len() > MAX_ROWS {
            more.push(format!(
                "  {}: {} more episode(s) in summary.json\n",
                r.rule,
                r.episodes.len() - MAX_ROWS
            ));
        }
    }
    let mut t = b.build();
    t.with(Style::rounded());
    t.modify(Columns::new(2..8), Alignment::right());
    let mut out = format!("autoscaling (HPA recommendation vs the system's replicas)\n{t}\n");
    out.extend(more);
    for r in reports {
        out.push_str(&format!(
            "autoscale {}: {} / {} per replica, {} samples, {} episode(s), {} flap(s), peak recommended {} / desired {} / current {} (max {}): {}\n",
            r.rule,
            r.metric,
            format_number(r.target_per_replica),
            r.samples,
            r.episodes.len(),
            r.flaps.len(),
            r.peak_recommended,
            r.peak_desired.map_or("-".into(), |d| d.to_string()),
            r.peak_current,
            r.max,
            r.verdict.to_uppercase()
        ));
    }
    out
}

/// One testcase per episode (classname `autoscale.episode`): the rule's checks carry the
/// verdict, so an episode passes (its measurements in system-out) or is skipped when it was
/// not judged.
pub fn junit_cases(reports: &[AutoscaleReport]) -> Vec<TestCase> {
    let mut out = Vec::new();
    for r in reports {
        for ep in &r.episodes {
            let name = format!(
                "autoscale {} {} at {}s: {}",
                r.rule,
                ep.direction,
                format_number(ep.trigger_at_s),
                recommended(ep)
            );
            let line = format!(
                "{}: decision {} s, ready {} s, overshoot {}",
                verdict(ep),
                latency(ep.decision, ep.decision_latency_s),
                latency(ep.ready, ep.ready_latency_s),
                ep.overshoot
            );
            let status = match ep.passed {
                None => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message("not judged: the run ended or the need went away first");
                    st
                }
                Some(_) => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(name.as_str(), status);
            case.set_classname("autoscale.episode");
            case.set_system_out(line);
            out.push(case);
        }
    }
    out
}

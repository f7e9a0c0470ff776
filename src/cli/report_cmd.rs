//! `loadgate report DIR`: write a run's report files again from its stored results
//! (`DIR/results/`); `loadgate report --compare BASELINE_DIR DIR [--max-regression LIMITS]`:
//! compare two runs (terminal table, `DIR/compare.json`, `DIR/compare.html`), a CI gate with
//! limits (exit 99 when one is broken beyond noise).
//!
//! Exit codes: 0 done (and no limit broken); 99 a `--max-regression` limit broken; 2 bad
//! arguments or a directory without stored results; 1 a report could not be written.
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::{ReportArgs, EXIT_CHECK_FAILED, EXIT_HARNESS, EXIT_INVALID, EXIT_PASS};
use crate::report::compare::{self, Comparison};
use crate::report::results::{self, Stored};
use crate::report::{self as rep, Baseline, RunReport};

/// compare.json / compare.html in the compared run's directory.
pub const COMPARE_JSON: &str = "compare.json";
pub const COMPARE_HTML: &str = "compare.html";

pub(super) fn report(a: &ReportArgs) -> ExitCode {
    match &a.compare {
        None => regenerate(a),
        Some(base) => compare_runs(a, base),
    }
}

fn load(dir: &Path) -> Result<Stored, ExitCode> {
    results::load(dir).map_err(|e| {
        eprintln!("loadgate: {}: {e}", dir.display());
        ExitCode::from(EXIT_INVALID)
    })
}

fn regenerate(a: &ReportArgs) -> ExitCode {
    if let Err(code) = load(&a.dir) {
        return code;
    }
    match results::regenerate(&a.dir) {
        Ok((stored, written)) => {
            let out = if a.json {
                format!("{}\n", stored.summary.to_json_pretty())
            } else {
                rep::table::render(&stored.summary)
            };
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            eprintln!(
                "loadgate: {} report files written again in {}",
                written.len(),
                a.dir.display()
            );
            ExitCode::from(EXIT_PASS)
        }
        Err(e) => {
            eprintln!("loadgate: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

fn compare_runs(a: &ReportArgs, base_dir: &Path) -> ExitCode {
    let limits = match a.max_regression.as_deref().map(compare::parse_limits) {
        None => Vec::new(),
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("loadgate: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let (base, cur) = match (load(base_dir), load(&a.dir)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let (bl, cl) = (
        base.metrics.scenario_latency(),
        cur.metrics.scenario_latency(),
    );
    let (bs, cs) = (
        base.metrics.scenario_seconds(),
        cur.metrics.scenario_seconds(),
    );
    let c: Comparison = compare::compare(
        (&base_dir.display().to_string(), &base.summary, &bl),
        (&a.dir.display().to_string(), &cur.summary, &cl),
        (&bs, &cs),
        &limits,
    );
    let baseline = Baseline {
        summary: &base.summary,
        timeline: &base.metrics.timeline,
        latency: &bl,
        comparison: Some(&c),
    };
    let page = rep::html::render(&RunReport {
        summary: &cur.summary,
        timeline: &cur.metrics.timeline,
        latency: &cl,
        baseline: Some(&baseline),
    });
    let json = serde_json::to_string_pretty(&c).expect("comparison serializes") + "\n";
    let written = page.and_then(|page| {
        rep::write_atomic(&a.dir.join(COMPARE_HTML), page.as_bytes())?;
        rep::write_atomic(&a.dir.join(COMPARE_JSON), json.as_bytes())
    });
    let out = if a.json { json } else { compare::table(&c) };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if let Err(e) = written {
        eprintln!("loadgate: {e}");
        return ExitCode::from(EXIT_HARNESS);
    }
    eprintln!(
        "loadgate: comparison written to {} and {}",
        a.dir.join(COMPARE_JSON).display(),
        a.dir.join(COMPARE_HTML).display()
    );
    if c.passed {
        ExitCode::from(EXIT_PASS)
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    }
}

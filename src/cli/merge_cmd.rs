//! `loadgate merge DIR... --out DIR`: merge a distributed run's segments and judge the union
//! ([`crate::report::merge`]); prints the table (or `--json` the summary) as `run` does.
//!
//! Exit codes (the contract's): 0 every check passed over the union; 99 a check failed; 105 a
//! segment was interrupted (the union is short, never a pass); 2 a directory is not a
//! segment, a segment is missing, given twice, of another plan or another N (nothing is
//! written); 1 the reports could not be written.
use std::io::Write;
use std::process::ExitCode;

use super::{
    MergeArgs, EXIT_CHECK_FAILED, EXIT_HARNESS, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_PASS,
};
use crate::report::merge::{self, Segment};
use crate::report::{self as rep};

pub(super) fn merge(a: &MergeArgs) -> ExitCode {
    let mut segs: Vec<Segment> = Vec::with_capacity(a.dirs.len());
    for dir in &a.dirs {
        match merge::load(dir) {
            Ok(s) => segs.push(s),
            Err(e) => {
                eprintln!("loadgate: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    let merged = match merge::check(&mut segs).and_then(|()| merge::merge(&segs)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("loadgate: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Err(e) = merge::write(&a.out, &merged) {
        eprintln!("loadgate: {e}");
        return ExitCode::from(EXIT_HARNESS);
    }
    let out = if a.json {
        format!("{}\n", merged.summary.to_json_pretty())
    } else {
        rep::table::render(&merged.summary)
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    let spread = merged.start_spread.as_secs_f64();
    eprintln!(
        "loadgate: {} segments merged (starts {:.3} s apart); reports written to {}",
        merged.segments,
        spread,
        a.out.display()
    );
    if spread > 1.0 {
        eprintln!(
            "loadgate: warning: the segments started {spread:.1} s apart, so their seconds do not align: give them a shared --start-at"
        );
    }
    ExitCode::from(if merged.summary.interrupted {
        EXIT_INTERRUPTED
    } else if merged.summary.passed() {
        EXIT_PASS
    } else {
        EXIT_CHECK_FAILED
    })
}

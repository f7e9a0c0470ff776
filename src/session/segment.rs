//! A session that runs one segment of a distributed run (`--segment i/N`), and the shared
//! start (`--start-at`) that aligns the segments' seconds.
//!
//! The engine already splits every scenario into N disjoint shares (lanes, see
//! [`crate::engine::executor`]), so the union of the segments sends exactly the plan. What
//! this module adds around it:
//!
//! - what a segment may not do alone: drive a canary or a blue/green cutover (their decisions
//!   need the union's samples live), or start its own reference stack (the segments must load
//!   one shared target); such a plan is refused before anything is sent;
//! - probes run in segment 1 only, so the union probes as one run does;
//! - the run waits for the shared wall-clock start, so second `s` of every segment is the same
//!   second, and a start that has already passed is an error rather than a silent skew;
//! - its results carry the manifest and slices a merge needs ([`crate::report::segment`]).
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::SessionError;
use crate::spec::RunSpec;

/// How late a segment may reach its `--start-at` and still start: its seconds are then off
/// the others' by at most this much.
pub const START_TOLERANCE: Duration = Duration::from_secs(1);

/// Refuse what a segment cannot do alone; leave the probes to segment 1.
pub(super) fn prepare(spec: &mut RunSpec, (index, count): (u32, u32)) -> Result<(), SessionError> {
    let alone = |what: &str| {
        SessionError::Refused(format!(
            "--segment {}/{count}: the plan has {what}, whose decisions need every segment's samples while the load runs; run it on one machine (without --segment)",
            index + 1
        ))
    };
    if spec.canary.is_some() {
        return Err(alone("a canary gate (canary:)"));
    }
    if spec.blue_green.is_some() {
        return Err(alone("a blue/green cutover (blue_green:)"));
    }
    if index != 0 {
        spec.probes.clear();
    }
    Ok(())
}

/// The refusal for a plan that starts its own reference stack.
pub(super) fn refuse_stack((index, count): (u32, u32)) -> SessionError {
    SessionError::Refused(format!(
        "--segment {}/{count}: the plan starts its own reference stack (stack:), but the segments of one run must load one shared target: start it once (`loadgate stack up`) and set `target:` to it",
        index + 1
    ))
}

/// Wait until the wall clock reaches `at`. Fails when `at` passed more than
/// [`START_TOLERANCE`] ago (the seconds would not align), or when interrupted.
pub(super) async fn wait_until(
    at: SystemTime,
    announce: bool,
    interrupt: &CancellationToken,
) -> Result<(), SessionError> {
    let now = SystemTime::now();
    match at.duration_since(now) {
        Ok(wait) => {
            if announce && wait >= Duration::from_secs(1) {
                eprintln!(
                    "loadgate: waiting {:.1} s for --start-at",
                    wait.as_secs_f64()
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => Ok(()),
                _ = interrupt.cancelled() => Err(SessionError::InterruptedAtStart),
            }
        }
        Err(late) if late.duration() <= START_TOLERANCE => Ok(()),
        Err(late) => Err(SessionError::StartPassed {
            late: late.duration(),
        }),
    }
}

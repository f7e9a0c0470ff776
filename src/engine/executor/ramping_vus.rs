//! `ramping-vus`: the number of active VUs follows linear ramps between stage targets (closed
//! model). VU v (0-based) is active while the target, `floor` of the interpolated VU count, is
//! greater than v; it checks between iterations, so a VU ramped down finishes its iteration
//! first (k6's graceful ramp-down). An inactive VU re-checks every [`POLL`].
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};
use crate::spec::VuStage;

/// How often an inactive VU checks whether it is needed.
pub const POLL: Duration = Duration::from_millis(10);

pub struct RampingVus {
    lane: Lane,
    start_vus: u32,
    stages: Vec<VuStage>,
    seq: Cell<u64>,
}

impl RampingVus {
    pub fn new(start_vus: u32, stages: &[VuStage], lane: Lane) -> RampingVus {
        RampingVus {
            lane,
            start_vus,
            stages: stages.to_vec(),
            seq: Cell::new(0),
        }
    }

    /// Target VU count `at` into the scenario.
    pub fn target(&self, at: Duration) -> u32 {
        let mut from = self.start_vus as f64;
        let mut t0 = Duration::ZERO;
        for s in &self.stages {
            if at < t0 + s.duration {
                let frac = (at - t0).as_secs_f64() / s.duration.as_secs_f64();
                return (from + (s.target as f64 - from) * frac).floor() as u32;
            }
            t0 += s.duration;
            from = s.target as f64;
        }
        from as u32
    }

    /// The largest target from `at` to the end.
    fn max_ahead(&self, at: Duration) -> u32 {
        let mut best = self.target(at);
        let mut t0 = Duration::ZERO;
        for s in &self.stages {
            t0 += s.duration;
            if t0 > at {
                best = best.max(s.target);
            }
        }
        best
    }

    fn peak(&self) -> u32 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start_vus, u32::max)
    }
}

impl Schedule for RampingVus {
    fn initial_vus(&self) -> Vec<u64> {
        (0..self.lane.share(self.peak() as u64))
            .map(|j| self.lane.nth(j))
            .collect()
    }

    fn next(&self, vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step {
        if now >= ctx.end {
            return Step::Done;
        }
        let at = now.saturating_duration_since(ctx.start);
        if (self.target(at) as u64) > vu.id {
            Step::Go {
                seq: self.lane.next_seq(&self.seq),
                intended: None,
                grow: false,
            }
        } else if (self.max_ahead(at) as u64) > vu.id {
            Step::Wait(now + POLL)
        } else {
            Step::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_interpolates() {
        let stages = [
            VuStage {
                target: 4,
                duration: Duration::from_secs(2),
            },
            VuStage {
                target: 0,
                duration: Duration::from_secs(2),
            },
        ];
        let r = RampingVus::new(0, &stages, Lane::single());
        assert_eq!(r.target(Duration::ZERO), 0);
        assert_eq!(r.target(Duration::from_millis(1000)), 2);
        assert_eq!(r.target(Duration::from_millis(2000)), 4);
        assert_eq!(r.target(Duration::from_millis(3500)), 1);
        assert_eq!(r.max_ahead(Duration::from_millis(2500)), 3);
        assert_eq!(r.peak(), 4);
    }
}

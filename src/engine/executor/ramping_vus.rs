//! `ramping-vus`: the number of active VUs follows linear ramps between stage targets (closed
//! model). VU v (0-based) is active while the target, `floor` of the interpolated VU count, is
//! greater than v; it checks between iterations, so a VU ramped down finishes its iteration
//! first (k6's graceful ramp-down). An inactive VU sleeps until the schedule first needs it
//! again (computed from the stages), at least [`POLL`].
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};
use crate::spec::VuStage;

/// Shortest sleep of an inactive VU.
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

    /// The first instant at or after `at` when VU `v` is needed (target > v), if any.
    pub fn activation(&self, v: u64, at: Duration) -> Option<Duration> {
        let need = (v + 1) as f64;
        let mut from = self.start_vus as f64;
        let mut t0 = Duration::ZERO;
        for s in &self.stages {
            let t1 = t0 + s.duration;
            let to = s.target as f64;
            if t1 > at && !s.duration.is_zero() {
                let d = s.duration.as_secs_f64();
                let f_at = (at.saturating_sub(t0).as_secs_f64() / d).clamp(0.0, 1.0);
                // value(f) = from + (to - from) f; needed where value >= need.
                let f = if to >= from {
                    let f_a = if from >= need {
                        Some(0.0)
                    } else if to >= need {
                        Some((need - from) / (to - from))
                    } else {
                        None
                    };
                    f_a.map(|f| f.max(f_at))
                } else if from >= need && f_at <= (from - need) / (from - to) {
                    Some(f_at)
                } else {
                    None
                };
                if let Some(f) = f {
                    return Some((t0 + s.duration.mul_f64(f)).max(at));
                }
            }
            t0 = t1;
            from = to;
        }
        None
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
        } else {
            match self.activation(vu.id, at) {
                Some(t) => Step::Wait((ctx.start + t).max(now + POLL)),
                None => Step::Done,
            }
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
        // VU 2 is needed once 0 → 4 over 2 s reaches 3: at 1.5 s.
        assert_eq!(
            r.activation(2, Duration::ZERO),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            r.activation(0, Duration::from_millis(2100)),
            Some(Duration::from_millis(2100))
        );
        assert_eq!(r.activation(3, Duration::from_millis(2100)), None);
        assert_eq!(r.peak(), 4);
    }
}

//! `constant-vus`: a fixed number of VUs loop at full speed for a duration (closed model: the
//! intended time of a request is its actual send time).
use std::cell::Cell;
use std::time::Instant;

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};

pub struct ConstantVus {
    lane: Lane,
    vus: u64,
    seq: Cell<u64>,
}

impl ConstantVus {
    pub fn new(vus: u32, lane: Lane) -> ConstantVus {
        ConstantVus {
            lane,
            vus: vus as u64,
            seq: Cell::new(0),
        }
    }
}

impl Schedule for ConstantVus {
    fn initial_vus(&self) -> Vec<u64> {
        (0..self.lane.share(self.vus))
            .map(|j| self.lane.nth(j))
            .collect()
    }

    fn next(&self, _vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step {
        if now >= ctx.end {
            return Step::Done;
        }
        Step::Go {
            seq: self.lane.next_seq(&self.seq),
            intended: None,
            grow: false,
        }
    }
}

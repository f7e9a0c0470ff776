//! `per-vu-iterations`: each VU runs exactly `iterations` iterations (or stops at
//! `max_duration`), so a complete run sends exactly `vus * iterations` requests.
use std::cell::Cell;
use std::time::Instant;

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};

pub struct PerVuIterations {
    lane: Lane,
    vus: u64,
    iterations: u64,
    seq: Cell<u64>,
}

impl PerVuIterations {
    pub fn new(vus: u32, iterations: u64, lane: Lane) -> PerVuIterations {
        PerVuIterations {
            lane,
            vus: vus as u64,
            iterations,
            seq: Cell::new(0),
        }
    }
}

impl Schedule for PerVuIterations {
    fn initial_vus(&self) -> Vec<u64> {
        (0..self.lane.share(self.vus))
            .map(|j| self.lane.nth(j))
            .collect()
    }

    fn next(&self, vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step {
        if vu.iter >= self.iterations || now >= ctx.end {
            return Step::Done;
        }
        Step::Go {
            seq: self.lane.next_seq(&self.seq),
            intended: None,
            grow: false,
        }
    }
}

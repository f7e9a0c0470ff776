//! `shared-iterations`: `iterations` iterations in total, shared by the VUs (a free VU takes
//! the next one), stopping at `max_duration`.
//!
//! Iteration indices are split over the lanes that have VUs: with `V` VUs and `L` lanes, the
//! first `min(V, L)` lanes take indices `i ≡ lane (mod min(V, L))` from a per-thread counter,
//! so the total is exact without any cross-thread coordination.
use std::cell::Cell;
use std::time::Instant;

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};

pub struct SharedIterations {
    lane: Lane,
    vus: u64,
    iterations: u64,
    next: Cell<u64>,
}

impl SharedIterations {
    pub fn new(vus: u32, iterations: u64, lane: Lane) -> SharedIterations {
        SharedIterations {
            lane,
            vus: vus as u64,
            iterations,
            next: Cell::new(0),
        }
    }
}

impl Schedule for SharedIterations {
    fn initial_vus(&self) -> Vec<u64> {
        (0..self.lane.share(self.vus))
            .map(|j| self.lane.nth(j))
            .collect()
    }

    fn next(&self, _vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step {
        let active_lanes = self.vus.min(self.lane.stride).max(1);
        let j = self.next.get();
        let i = self.lane.offset + active_lanes * j;
        if i >= self.iterations || now >= ctx.end {
            return Step::Done;
        }
        self.next.set(j + 1);
        Step::Go {
            seq: i,
            intended: None,
            grow: false,
        }
    }
}

//! The open model's VU pool, shared by the two arrival-rate executors (they differ only in
//! their [`Pacer`]).
//!
//! Each worker thread owns the arrivals of its lane (see [`Lane`]) and a pool of VUs
//! (`pre_allocated_vus`, growing up to `max_vus`, both split over the lanes, at least one per
//! lane). A free VU claims the next arrival index from a per-thread counter (a `Cell`, no
//! atomics), sleeps until that arrival's intended time and sends it.
//!
//! Lateness and drops: a VU may claim an arrival that is already overdue by more than the
//! slack — **10 ms or one of this thread's inter-arrival gaps, whichever is larger**.
//! - If every other VU of the pool is busy sending, no VU was free at the arrival's time. If
//!   the pool may still grow, the arrival is sent anyway (late: its `duration`, measured from
//!   the intended time, includes the wait — the coordinated-omission correction) and one more
//!   VU is started. If the pool is at `max_vus`, the arrival is counted in
//!   `ScenarioInfo::dropped` and not sent (k6's dropped_iterations); the VU moves on to the
//!   next arrival.
//! - If some other VU is idle, the lateness came from the generator itself (a busy or
//!   descheduled worker thread), not from a lack of VUs: the arrival is sent late, with its
//!   lateness in `duration`, and the pool does not grow.
//!
//! The pool grows lazily, when an overdue arrival is claimed: while every VU is stuck (a
//! stalled server), nothing else is sent; the arrivals of the stall are sent late when VUs
//! come back (or dropped at `max_vus`), and their wait shows in `duration`, not in `service`.
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};
use crate::engine::control::Steering;
use crate::engine::pacer::{Pacer, Steered};

/// Minimum lateness before an arrival counts as "no VU was free".
pub const MIN_SLACK: Duration = Duration::from_millis(10);

pub struct OpenSchedule<P: Pacer> {
    /// The executor's pacer, with the rate overrides controllers set (see
    /// [`crate::engine::control`]).
    pacer: Steered<P>,
    lane: Lane,
    next: Cell<u64>,
    live: Cell<u32>,
    /// VUs currently sending an iteration.
    busy: Cell<u32>,
    pre: u32,
    max: u32,
    next_vu: Cell<u64>,
}

impl<P: Pacer> OpenSchedule<P> {
    pub fn new(pacer: P, lane: Lane, pre_allocated_vus: u32, max_vus: u32) -> OpenSchedule<P> {
        let max = (lane.share(max_vus.max(pre_allocated_vus) as u64) as u32).max(1);
        let pre = (lane.share(pre_allocated_vus as u64) as u32).clamp(1, max);
        OpenSchedule {
            pacer: Steered::new(pacer),
            lane,
            next: Cell::new(0),
            live: Cell::new(0),
            busy: Cell::new(0),
            pre,
            max,
            next_vu: Cell::new(0),
        }
    }

    fn slack(&self, j: u64, due: Duration) -> Duration {
        let gap = self
            .pacer
            .due(self.lane.nth(j + 1))
            .map(|n| n.saturating_sub(due))
            .unwrap_or(Duration::ZERO);
        gap.max(MIN_SLACK)
    }

    fn new_vu_id(&self) -> u64 {
        let j = self.next_vu.get();
        self.next_vu.set(j + 1);
        self.live.set(self.live.get() + 1);
        self.lane.nth(j)
    }
}

impl<P: Pacer> Schedule for OpenSchedule<P> {
    fn initial_vus(&self) -> Vec<u64> {
        (0..self.pre).map(|_| self.new_vu_id()).collect()
    }

    fn next(&self, _vu: &VuState, now: Instant, ctx: &ScenarioCtx) -> Step {
        loop {
            let j = self.next.get();
            let i = self.lane.nth(j);
            let Some(due) = self.pacer.due(i) else {
                return Step::Done;
            };
            self.next.set(j + 1);
            let intended = ctx.start + due;
            let others_busy = self.busy.get() + 1 >= self.live.get();
            if others_busy && now > intended + MIN_SLACK && now > intended + self.slack(j, due) {
                if self.live.get() < self.max {
                    return Step::Go {
                        seq: i,
                        intended: Some(intended),
                        grow: true,
                    };
                }
                ctx.recorder.borrow_mut().dropped(ctx.index);
                continue;
            }
            return Step::Go {
                seq: i,
                intended: Some(intended),
                grow: false,
            };
        }
    }

    fn steer(&self, steering: &Steering) {
        let rates: Vec<_> = steering.rates.iter().map(|r| (r.at, r.rate)).collect();
        self.pacer.apply(&rates);
    }

    fn grow(&self) -> Option<u64> {
        (self.live.get() < self.max).then(|| self.new_vu_id())
    }

    fn vu_exited(&self) {
        self.live.set(self.live.get().saturating_sub(1));
    }

    fn iteration_started(&self) {
        self.busy.set(self.busy.get() + 1);
    }

    fn iteration_finished(&self) {
        self.busy.set(self.busy.get().saturating_sub(1));
    }
}

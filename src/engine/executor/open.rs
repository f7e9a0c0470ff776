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
//!
//! The target's connection limit: a VU's new connection that the target turns away (reset
//! or closed before any response, a connect that times out: see
//! [`crate::engine::http::Outcome::turned_away`]) means the pool has more VUs than the target
//! takes connections. The pool's limit drops to an eighth below the VUs it had (a pool at
//! the target's limit churns: nginx closes idle kept-alive connections to take new ones),
//! never under `pre_allocated_vus`; VUs above it leave when they are next free. The limit
//! holds for [`TURNED_AWAY_HOLD`] after the last connection turned away, then rises by
//! [`RAMP_PER_MS`] back to `max_vus`. Arrivals no VU is free for meanwhile are dropped, as at
//! `max_vus`. A refused or unreachable connect (a target that is down or gone, as in a
//! failover drill) does not hold the pool.
//!
//! Why: a server stall at a high rate grew the pool past nginx's `worker_connections`, and the
//! VUs beyond it, free again at once after each reset, took most arrivals and reconnected for
//! each one. At 80,000/s against one nginx core, a 1 s stall with 2048 worker_connections
//! ended in 400,000 resets, 39,700/s achieved, a p50 of 416 ms and a 15 s run lasting 25 s;
//! with the hold: 3% of arrivals dropped (those of the stall), a few hundred to two thousand
//! resets, p50 0.45 ms (2026-11-30).
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::{Lane, ScenarioCtx, Schedule, Step, VuState};
use crate::engine::control::Steering;
use crate::engine::pacer::{Pacer, Steered};

/// Minimum lateness before an arrival counts as "no VU was free".
pub const MIN_SLACK: Duration = Duration::from_millis(10);

/// How long the pool does not grow after the target turned a new connection away.
pub const TURNED_AWAY_HOLD: Duration = Duration::from_secs(1);

/// After the hold, the pool's limit rises by this many VUs per millisecond (back to
/// `max_vus` unless the target turns a connection away again): probing the target's limit
/// one VU at a time instead of with a burst of connections it resets.
pub const RAMP_PER_MS: u32 = 1;

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
    /// While the target turns new connections away: the most VUs the pool may have, and
    /// until when (see the module docs).
    held: Cell<Option<(u32, Instant)>>,
    /// The hold was logged once.
    warned: Cell<bool>,
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
            held: Cell::new(None),
            warned: Cell::new(false),
        }
    }

    /// The most VUs the pool may have at `now`: `max`, or less while held and in the ramp
    /// after it.
    fn limit(&self, now: Instant) -> u32 {
        let Some((n, until)) = self.held.get() else {
            return self.max;
        };
        let Some(after) = now.checked_duration_since(until) else {
            return n;
        };
        let ramp = after.as_millis().saturating_mul(RAMP_PER_MS as u128);
        let limit = (n as u128).saturating_add(ramp).min(self.max as u128) as u32;
        if limit == self.max {
            self.held.set(None);
        }
        limit
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
        // Above the limit the target's connections set: this VU leaves.
        if self.held.get().is_some() && self.live.get() > self.pre.max(self.limit(now)) {
            return Step::Done;
        }
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
                if self.live.get() < self.limit(now) {
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

    fn turned_away(&self, now: Instant) -> bool {
        let live = self.live.get();
        let leave = live > self.pre;
        let held = matches!(self.held.get(), Some((_, until)) if now < until);
        let keep = if held {
            // More of the same burst: the VUs left.
            self.limit(now).min(live.saturating_sub(1))
        } else {
            // A pool at the target's limit churns (nginx closes idle kept-alive connections
            // to take new ones): stay an eighth below it.
            let n = live.saturating_sub(1);
            n - n / 8
        };
        self.held
            .set(Some((keep.max(self.pre), now + TURNED_AWAY_HOLD)));
        if !self.warned.replace(true) {
            tracing::warn!(
                vus = live,
                "the target turned a new connection away: the open model's pool holds an \
                 eighth below the VUs it had (arrivals no VU is free for are dropped) until \
                 {TURNED_AWAY_HOLD:?} after the last one turned away, then grows back slowly"
            );
        }
        leave
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pacer::ConstantRate;

    fn pool(pre: u32, max: u32) -> OpenSchedule<ConstantRate> {
        let pacer = ConstantRate {
            rate: 100.0,
            duration: Duration::from_secs(10),
        };
        let s = OpenSchedule::new(pacer, Lane::new(0, 1, None), pre, max);
        s.initial_vus();
        s
    }

    fn grow_to(s: &OpenSchedule<ConstantRate>, n: u32) {
        while s.live.get() < n {
            s.grow().expect("below max");
        }
    }

    #[test]
    fn a_turned_away_connection_holds_the_pool_an_eighth_below_then_ramps_back() {
        let s = pool(2, 1000);
        grow_to(&s, 81);
        let t = Instant::now();
        assert_eq!(s.limit(t), 1000);
        // The 81st VU's connection was turned away: it leaves, the limit is 7/8 of 80.
        assert!(s.turned_away(t));
        assert_eq!(s.limit(t), 70);
        s.vu_exited();
        // More of the same burst: each leaves, the limit only goes down to the VUs left.
        assert!(s.turned_away(t + Duration::from_millis(1)));
        assert_eq!(s.limit(t), 70);
        // The hold lasts TURNED_AWAY_HOLD after the last one, then the limit rises by
        // RAMP_PER_MS, back to max_vus.
        let last = t + Duration::from_millis(1);
        assert_eq!(
            s.limit(last + TURNED_AWAY_HOLD - Duration::from_millis(1)),
            70
        );
        assert_eq!(
            s.limit(last + TURNED_AWAY_HOLD + Duration::from_millis(10)),
            70 + 10 * RAMP_PER_MS
        );
        assert_eq!(
            s.limit(last + TURNED_AWAY_HOLD + Duration::from_secs(5)),
            1000
        );
        assert!(
            s.held.get().is_none(),
            "back at max_vus: the hold is cleared"
        );
    }

    #[test]
    fn the_pre_allocated_vus_stay_and_bound_the_limit_from_below() {
        let s = pool(10, 1000);
        let t = Instant::now();
        assert!(
            !s.turned_away(t),
            "a pool at pre_allocated_vus keeps its VUs"
        );
        assert_eq!(s.limit(t), 10);
        grow_to(&s, 11);
        assert!(s.turned_away(t), "above pre_allocated_vus the VU leaves");
        assert_eq!(s.limit(t), 10);
    }
}

//! Pacers: the open model's schedule, "when is arrival i due".
//!
//! A pacer maps the arrival index i (0-based, over the whole scenario, all threads and
//! segments) to its intended time, an offset from the scenario's start. Arrival i is due when
//! the cumulative number of arrivals A(t) = ∫ rate reaches i, so arrival 0 is due at t = 0
//! and a constant rate r puts arrival i at i / r. A piecewise-linear rate is inverted per
//! stage by solving the quadratic of that stage exactly, so no arrival depends on a clock tick.
use std::cell::RefCell;
use std::time::Duration;

use crate::spec::RateStage;

/// When arrival `i` is due.
pub trait Pacer {
    /// Offset of arrival `i` from the scenario start, or `None` if it falls at or after the
    /// schedule's end.
    fn due(&self, i: u64) -> Option<Duration>;
    /// The schedule's length.
    fn end(&self) -> Duration;
}

/// A constant arrival rate.
#[derive(Debug, Clone)]
pub struct ConstantRate {
    pub rate: f64,
    pub duration: Duration,
}

impl Pacer for ConstantRate {
    fn due(&self, i: u64) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let t = i as f64 / self.rate;
        (t < self.duration.as_secs_f64()).then(|| Duration::from_secs_f64(t))
    }

    fn end(&self) -> Duration {
        self.duration
    }
}

#[derive(Debug, Clone)]
struct Segment {
    /// Stage start (seconds from the scenario start).
    t0: f64,
    len: f64,
    r0: f64,
    r1: f64,
    /// Cumulative arrivals at the stage start.
    a0: f64,
}

/// A piecewise-linear arrival rate (k6's ramping-arrival-rate).
#[derive(Debug, Clone)]
pub struct RampingRate {
    segments: Vec<Segment>,
    end: Duration,
    total: f64,
}

impl RampingRate {
    pub fn new(start_rate: f64, stages: &[RateStage]) -> RampingRate {
        let mut segments = Vec::new();
        let (mut t, mut a, mut r) = (0.0, 0.0, start_rate.max(0.0));
        for s in stages {
            let len = s.duration.as_secs_f64();
            let r1 = s.target.max(0.0);
            segments.push(Segment {
                t0: t,
                len,
                r0: r,
                r1,
                a0: a,
            });
            a += (r + r1) / 2.0 * len;
            t += len;
            r = r1;
        }
        RampingRate {
            segments,
            end: stages.iter().map(|s| s.duration).sum(),
            total: a,
        }
    }

    /// Expected number of arrivals over the whole schedule (the integral of the rate).
    pub fn total_arrivals(&self) -> f64 {
        self.total
    }
}

impl Pacer for RampingRate {
    fn due(&self, i: u64) -> Option<Duration> {
        let target = i as f64;
        if target >= self.total {
            return None;
        }
        // The stage whose cumulative range contains `target` (A is non-decreasing).
        let idx = self
            .segments
            .partition_point(|s| s.a0 <= target)
            .saturating_sub(1);
        let mut k = idx;
        // Skip zero-arrival stages at the same cumulative value.
        while k + 1 < self.segments.len() && self.segments[k + 1].a0 <= target {
            k += 1;
        }
        let s = &self.segments[k];
        let c = target - s.a0; // arrivals needed inside this stage
        let a = (s.r1 - s.r0) / (2.0 * s.len.max(f64::MIN_POSITIVE)); // A(τ) = r0 τ + a τ²
        let b = s.r0;
        let disc = (b * b + 4.0 * a * c).max(0.0);
        let denom = b + disc.sqrt();
        let tau = if denom > 0.0 { 2.0 * c / denom } else { 0.0 };
        let t = s.t0 + tau.min(s.len);
        (t < self.end.as_secs_f64()).then(|| Duration::from_secs_f64(t))
    }

    fn end(&self) -> Duration {
        self.end
    }
}

/// A pacer whose rate controllers may override while it runs: from override k on (its
/// instant `t0`, and the first arrival due at or after it under the schedule before it,
/// `i0`), arrival `i` is due at `t0 + (i - i0) / rate`, until the base schedule's end.
/// `i0` depends only on `t0` and the earlier overrides, so every worker thread (and segment)
/// that applies the same overrides agrees on the sequence.
pub struct Steered<P> {
    base: P,
    overrides: RefCell<Vec<Override>>,
}

#[derive(Debug, Clone, Copy)]
struct Override {
    t0: f64,
    i0: u64,
    rate: f64,
}

impl<P: Pacer> Steered<P> {
    pub fn new(base: P) -> Steered<P> {
        Steered {
            base,
            overrides: RefCell::new(Vec::new()),
        }
    }

    /// Apply `rates` (each `(at, rate)`, `at` since the scenario start), replacing what was
    /// applied before (the list only ever grows, so a re-apply recomputes the same prefix).
    pub fn apply(&self, rates: &[(Duration, f64)]) {
        self.overrides.borrow_mut().clear();
        for &(at, rate) in rates {
            let t0 = at.as_secs_f64();
            let i0 = self.first_due_at_or_after(t0);
            self.overrides.borrow_mut().push(Override { t0, i0, rate });
        }
    }

    /// The smallest index due at or after `t` (or past the end) under the current schedule.
    fn first_due_at_or_after(&self, t: f64) -> u64 {
        let reached = |i: u64| self.due(i).is_none_or(|d| d.as_secs_f64() >= t);
        if reached(0) {
            return 0;
        }
        // Exponential search for an upper bound, then bisect (due is non-decreasing).
        let mut hi = 1u64;
        while !reached(hi) {
            if hi >= u64::MAX / 4 {
                return u64::MAX;
            }
            hi *= 2;
        }
        let mut lo = hi / 2; // !reached(lo)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

impl<P: Pacer> Pacer for Steered<P> {
    fn due(&self, i: u64) -> Option<Duration> {
        let ov = self.overrides.borrow();
        match ov.iter().rev().find(|o| o.i0 <= i) {
            None => self.base.due(i),
            Some(o) => {
                let t = o.t0 + (i - o.i0) as f64 / o.rate;
                (t < self.base.end().as_secs_f64()).then(|| Duration::from_secs_f64(t))
            }
        }
    }

    fn end(&self) -> Duration {
        self.base.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steered_rate_changes_take_effect_at_their_instant() {
        // 10/s for 10 s; from 2 s on 100/s; from 4 s on 1/s.
        let p = Steered::new(ConstantRate {
            rate: 10.0,
            duration: Duration::from_secs(10),
        });
        p.apply(&[
            (Duration::from_secs(2), 100.0),
            (Duration::from_secs(4), 1.0),
        ]);
        // Arrivals 0..19 at 10/s (0 .. 1.9 s), then 200 arrivals in [2 s, 4 s), then 1/s.
        assert_eq!(p.due(19), Some(Duration::from_millis(1900)));
        assert_eq!(p.due(20), Some(Duration::from_secs(2)));
        let t = p.due(219).unwrap().as_secs_f64();
        assert!((t - 3.99).abs() < 1e-9, "{t}");
        assert_eq!(p.due(220), Some(Duration::from_secs(4)));
        assert_eq!(p.due(225), Some(Duration::from_secs(9)));
        assert_eq!(p.due(226), None);
        // Applying the same list again changes nothing.
        p.apply(&[
            (Duration::from_secs(2), 100.0),
            (Duration::from_secs(4), 1.0),
        ]);
        assert_eq!(p.due(220), Some(Duration::from_secs(4)));
    }

    fn count(p: &dyn Pacer) -> u64 {
        (0..).take_while(|&i| p.due(i).is_some()).count() as u64
    }

    #[test]
    fn constant_rate_schedule() {
        let p = ConstantRate {
            rate: 200.0,
            duration: Duration::from_secs(3),
        };
        assert_eq!(p.due(0), Some(Duration::ZERO));
        assert_eq!(p.due(200), Some(Duration::from_secs(1)));
        assert_eq!(count(&p), 600);
    }

    #[test]
    fn ramping_rate_inverts_the_integral() {
        // 0 → 100/s over 2 s (100 arrivals), then flat 100/s for 1 s (100), then down to 0 over 1 s (50).
        let stages = [
            RateStage {
                target: 100.0,
                duration: Duration::from_secs(2),
            },
            RateStage {
                target: 100.0,
                duration: Duration::from_secs(1),
            },
            RateStage {
                target: 0.0,
                duration: Duration::from_secs(1),
            },
        ];
        let p = RampingRate::new(0.0, &stages);
        assert!((p.total_arrivals() - 250.0).abs() < 1e-9);
        let n = count(&p);
        assert!((249..=250).contains(&n), "{n}");
        // During the ramp A(t) = 25 t², so arrival 25 is due at t = 1 s.
        let t = p.due(25).unwrap().as_secs_f64();
        assert!((t - 1.0).abs() < 1e-6, "{t}");
        // Arrival 150 is half-way through the flat stage: t = 2.5 s.
        let t = p.due(150).unwrap().as_secs_f64();
        assert!((t - 2.5).abs() < 1e-6, "{t}");
        // Times never go backwards.
        let mut last = Duration::ZERO;
        for i in 0..n {
            let d = p.due(i).unwrap();
            assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn ramping_rate_with_idle_stage() {
        let stages = [
            RateStage {
                target: 0.0,
                duration: Duration::from_secs(1),
            },
            RateStage {
                target: 10.0,
                duration: Duration::from_secs(0),
            },
            RateStage {
                target: 10.0,
                duration: Duration::from_secs(1),
            },
        ];
        let p = RampingRate::new(0.0, &stages);
        assert_eq!(count(&p), 10);
        assert_eq!(p.due(0), Some(Duration::from_secs(1)));
    }
}

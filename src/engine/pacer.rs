//! Pacers: the open model's schedule, "when is arrival i due".
//!
//! A pacer maps the arrival index i (0-based, over the whole scenario, all threads and
//! segments) to its intended time, an offset from the scenario's start. Arrival i is due when
//! the cumulative number of arrivals A(t) = ∫ rate reaches i, so arrival 0 is due at t = 0
//! and a constant rate r puts arrival i at i / r. A piecewise-linear rate is inverted per
//! stage by solving the quadratic of that stage exactly, so no arrival depends on a clock tick.
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! `constant-arrival-rate`: a fixed number of iterations per second for a duration (open
//! model). Arrival i is due at i / rate; see [`super::open`] for the VU pool and drops.
use super::open::OpenSchedule;
use super::Lane;
use crate::engine::pacer::ConstantRate;

pub fn schedule(
    rate: f64,
    duration: std::time::Duration,
    pre: u32,
    max: u32,
    lane: Lane,
) -> OpenSchedule<ConstantRate> {
    OpenSchedule::new(ConstantRate { rate, duration }, lane, pre, max)
}

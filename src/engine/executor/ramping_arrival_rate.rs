//! `ramping-arrival-rate`: the arrival rate follows linear ramps between stage targets (open
//! model). The intended time of arrival i inverts the cumulative-arrivals integral per stage
//! ([`crate::engine::pacer::RampingRate`]); see [`super::open`] for the VU pool and drops.
use super::open::OpenSchedule;
use super::Lane;
use crate::engine::pacer::RampingRate;
use crate::spec::RateStage;

pub fn schedule(
    start_rate: f64,
    stages: &[RateStage],
    pre: u32,
    max: u32,
    lane: Lane,
) -> OpenSchedule<RampingRate> {
    OpenSchedule::new(RampingRate::new(start_rate, stages), lane, pre, max)
}

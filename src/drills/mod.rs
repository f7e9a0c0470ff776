//! What a drill concludes, as pure functions of the run's measurements (the per-second series
//! and the typed events), kept apart from the controllers that drive the drills on the run
//! clock so they can be unit-tested on hand-made series: [`failover`] (RTO as users saw it,
//! per fault and repetition, and its distribution over repetitions).
pub mod failover;

//! Drills of more than one run: they run the engine several times on the run clock and
//! conclude from all of it. Controllers ([`crate::control`]) act within one run; a drill here
//! decides which runs to make. Judgements that are pure functions of one run's measurements
//! (RTO, canary statistics) live in [`crate::checks`].
//!
//! - [`capacity`]: the capacity search (`loadgate capacity`): the pure `next_rate(history)`
//!   beside the loop that runs each step.
pub mod capacity;

//! The run clock's timelines: one row per second and scenario (for timeseries.csv and live
//! progress), and events (scenario start/stop, abort, later faults and drills) on the same clock.
use std::time::Duration;

/// One second of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondRow {
    /// Whole seconds since the run started (the row covers `[second, second+1)`).
    pub second: u64,
    pub scenario: String,
    pub requests: u64,
    pub errors: u64,
    /// Latency percentiles of that second, milliseconds (intended send → last byte).
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Something that happened during the run, on the run clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Since the run started.
    pub at: Duration,
    /// Short machine-readable kind: `scenario_start`, `scenario_end`, `abort`, `interrupt`, ...
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
}

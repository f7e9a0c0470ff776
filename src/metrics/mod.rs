//! Measurements: per-worker recorders, their exact merge, the per-second timeline and the
//! run's event timeline.
//!
//! No per-request storage: every sample goes into HDR histograms (3 significant digits,
//! microseconds) and counters keyed by a small [`SeriesKey`] (scenario, request, status, error
//! kind), so memory stays flat however long the run. Histograms merge exactly, which is what
//! lets results from several workers (and later several machines) be judged as one run.
//!
//! What a latency measures:
//! - `duration` (metric `http_req_duration`): from the **intended** send time to the last byte
//!   of the response. In the open model the intended time comes from the schedule, so time a
//!   request spent waiting for a free VU/connection or a late generator is included
//!   (coordinated-omission correction, as wrk2). In the closed model the intended time is the
//!   actual send time.
//! - `service` (metric `http_req_service_time`): from the actual send (first byte written) to
//!   the last byte of the response.
pub mod error;
pub mod recorder;
pub mod timeline;

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

pub use error::ErrorKind;
pub use timeline::{Event, SecondRow};

/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;

/// A new empty latency histogram (microseconds, auto-resizing).
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(SIGFIG).expect("valid sigfig");
    h.auto(true);
    h
}

/// Identifies one series of samples. Indices point into [`RunMetrics::scenarios`] and
/// [`ScenarioInfo::requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub scenario: u16,
    pub request: u16,
    /// HTTP status, or 0 when no response was received.
    pub status: u16,
    /// Why the request failed (transport error or status class), if it did.
    pub error: Option<ErrorKind>,
}

/// Samples of one series.
#[derive(Debug, Clone)]
pub struct SeriesStats {
    /// Intended send → last byte, microseconds.
    pub duration: Histogram<u64>,
    /// Actual send → last byte, microseconds.
    pub service: Histogram<u64>,
    pub requests: u64,
    /// Requests counted as failed (transport error, or status >= 400).
    pub failed: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
}

impl Default for SeriesStats {
    fn default() -> Self {
        SeriesStats {
            duration: new_histogram(),
            service: new_histogram(),
            requests: 0,
            failed: 0,
            checks_passed: 0,
            checks_failed: 0,
        }
    }
}

impl SeriesStats {
    /// Exact merge.
    pub fn merge(&mut self, other: &SeriesStats) {
        self.duration
            .add(&other.duration)
            .expect("auto-resizing histograms merge");
        self.service
            .add(&other.service)
            .expect("auto-resizing histograms merge");
        self.requests += other.requests;
        self.failed += other.failed;
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
    }
}

/// Names and tags of a scenario, so a [`SeriesKey`] can be turned back into tags.
#[derive(Debug, Clone, Default)]
pub struct ScenarioInfo {
    pub name: String,
    pub executor: String,
    /// Request names, indexed by `SeriesKey::request`.
    pub requests: Vec<String>,
    /// Request methods, indexed like `requests`.
    pub methods: Vec<String>,
    /// The scenario's extra tags.
    pub tags: BTreeMap<String, String>,
    /// Iterations that could not start on time (no free VU) and were not sent.
    pub dropped: u64,
    /// How long the scenario actually ran (its own start to its last response).
    pub active: Duration,
}

/// Everything measured in a run, merged over workers. Merging two `RunMetrics` of the same
/// plan (e.g. two segments) is exact.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    pub scenarios: Vec<ScenarioInfo>,
    pub series: BTreeMap<SeriesKey, SeriesStats>,
    /// Per second and scenario, in order.
    pub timeline: Vec<SecondRow>,
    /// Things that happened on the run clock (start/stop of scenarios, aborts, faults, ...).
    pub events: Vec<Event>,
    /// Wall time from the run's start to its end.
    pub elapsed: Duration,
}

impl RunMetrics {
    /// Index of a scenario by name.
    pub fn scenario_index(&self, name: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.name == name)
    }

    /// Merged stats of all series matching `filter`.
    pub fn aggregate(&self, mut filter: impl FnMut(&SeriesKey) -> bool) -> SeriesStats {
        let mut out = SeriesStats::default();
        for (k, v) in &self.series {
            if filter(k) {
                out.merge(v);
            }
        }
        out
    }

    /// Total requests across all series.
    pub fn total_requests(&self) -> u64 {
        self.series.values().map(|s| s.requests).sum()
    }

    /// Total dropped iterations across scenarios.
    pub fn total_dropped(&self) -> u64 {
        self.scenarios.iter().map(|s| s.dropped).sum()
    }
}

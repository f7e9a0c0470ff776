//! A probe's task: starts samples on the cadence (whatever the previous one is doing, up to a
//! bound of samples in flight), records each finished one into the probe's own recorder
//! (ticked every second so the run's seconds are finalized on time), keeps the evidence and
//! puts `probe_failure` / `probe_recovered` on the timeline.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::http::sample;
use super::{lock, Evidence, ProbeSample, END_GRACE};
use crate::grammar::template::Template;
use crate::metrics::recorder::{Aggregator, Recorder};
use crate::metrics::{round3, ErrorKind, EventKind, SeriesKey};
use crate::spec::{Feeder, ProbeKind, ProbeSpec};

/// What every probe task of a run shares.
pub(super) struct Shared {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) default_headers: Vec<(String, Template)>,
    pub(super) feeders: BTreeMap<String, Arc<Feeder>>,
    pub(super) aggregator: Arc<Aggregator>,
    pub(super) origin: Instant,
    pub(super) sources: usize,
}

/// One probe's task: starts samples on the cadence, records them, ticks its recorder.
pub(super) struct ProbeTask {
    pub(super) spec: Arc<ProbeSpec>,
    pub(super) shared: Arc<Shared>,
    pub(super) evidence: Arc<Mutex<Evidence>>,
    pub(super) worker: usize,
    pub(super) source: usize,
    pub(super) stop: CancellationToken,
}

/// A finished sample.
pub(super) struct Done {
    pub(super) started: Instant,
    pub(super) end: Instant,
    pub(super) latency: Duration,
    pub(super) status: u16,
    pub(super) error: Option<ErrorKind>,
    pub(super) reason: Option<String>,
    pub(super) checks_passed: u64,
    pub(super) checks_failed: u64,
}

impl ProbeTask {
    pub(super) async fn run(self) {
        let sh = self.shared.clone();
        let agg = &sh.aggregator;
        let mut recorder = Recorder::new(self.worker, sh.origin, sh.sources);
        let start = sh.origin + self.spec.from;
        let until = self.spec.until.map(|u| sh.origin + u);
        let every = self.spec.every.max(Duration::from_millis(1));
        let bound = in_flight_bound(&self.spec);
        let mut next = start;
        let mut seq = 0u64;
        let mut started = false;
        let mut sampling = true;
        let mut inflight: JoinSet<Done> = JoinSet::new();
        let mut second = tokio::time::interval_at(
            (sh.origin + Duration::from_millis(1020)).into(),
            Duration::from_secs(1),
        );
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if sampling && until.is_some_and(|u| next >= u) {
                sampling = false;
            }
            if !sampling && inflight.is_empty() {
                break;
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(next.into()), if sampling => {
                    if !started {
                        started = true;
                        agg.scenario_started(self.source);
                    }
                    if inflight.len() >= bound {
                        lock(&self.evidence).skipped += 1;
                    } else {
                        let fut = sample(self.spec.clone(), sh.clone(), seq);
                        inflight.spawn(fut);
                    }
                    seq += 1;
                    // Keep the cadence; after a stall, skip to the next due start.
                    next += every;
                    let now = Instant::now();
                    if next < now {
                        let behind = (now - next).as_nanos() / every.as_nanos().max(1) + 1;
                        next += every * behind as u32;
                    }
                }
                Some(res) = inflight.join_next(), if !inflight.is_empty() => {
                    if let Ok(done) = res {
                        self.record(&mut recorder, done);
                    }
                }
                _ = second.tick() => recorder.tick(agg, Instant::now()),
            }
        }
        // The load ended: give in-flight samples a short grace, abandon the rest.
        let grace = tokio::time::sleep(END_GRACE);
        tokio::pin!(grace);
        while !inflight.is_empty() {
            tokio::select! {
                Some(res) = inflight.join_next() => {
                    if let Ok(done) = res {
                        self.record(&mut recorder, done);
                    }
                }
                _ = &mut grace => {
                    lock(&self.evidence).incomplete += inflight.len() as u64;
                    inflight.abort_all();
                    break;
                }
            }
        }
        recorder.finish(agg);
        if started {
            agg.scenario_finished(self.source);
        }
    }

    fn record(&self, recorder: &mut Recorder, d: Done) {
        let sh = &self.shared;
        let key = SeriesKey {
            scenario: self.source as u16,
            request: 0,
            status: d.status,
            error: d.error,
            variant: Default::default(),
        };
        let us = d.latency.as_micros() as u64;
        recorder.record(
            &sh.aggregator,
            key,
            d.end,
            us,
            us,
            d.error.is_some(),
            d.checks_passed,
            d.checks_failed,
        );
        let at = d.started.saturating_duration_since(sh.origin);
        let sample = ProbeSample {
            at_s: round3(at.as_secs_f64()),
            latency_ms: round3(d.latency.as_secs_f64() * 1000.0),
            status: d.status,
            error: d.error.map(|e| e.as_str().to_string()),
            reason: d.reason.clone(),
        };
        let mut ev = lock(&self.evidence);
        ev.add(&sample);
        let name = self.spec.name.clone();
        let at_end = d.end.saturating_duration_since(sh.origin);
        if d.error.is_some() {
            ev.failing_count += 1;
            if !ev.failing {
                ev.failing = true;
                let reason = d
                    .reason
                    .clone()
                    .or(sample.error.clone())
                    .unwrap_or_else(|| "failed".into());
                sh.aggregator.push_event_at(
                    at_end,
                    EventKind::ProbeFailure {
                        probe: name,
                        reason,
                    },
                );
            }
        } else if ev.failing {
            ev.failing = false;
            let failed_samples = std::mem::take(&mut ev.failing_count);
            sh.aggregator.push_event_at(
                at_end,
                EventKind::ProbeRecovered {
                    probe: name,
                    failed_samples,
                },
            );
        }
    }
}

/// Samples allowed in flight at once: enough to keep the cadence through one slow sample.
fn in_flight_bound(p: &ProbeSpec) -> usize {
    let longest = match &p.kind {
        ProbeKind::Request(_) => p.timeout,
        ProbeKind::Chain(c) => c.deadline + p.timeout,
    };
    let n = longest.as_secs_f64() / p.every.as_secs_f64().max(1e-3);
    (n.ceil() as usize + 1).clamp(1, 1000)
}

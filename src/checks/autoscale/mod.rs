//! Autoscaling judged from what was scraped: the Kubernetes HPA recommendation recomputed on
//! the run clock, and how the system's own replicas followed it.
//!
//! Why recompute: a system that "has an autoscaler" may still scale late, too far, or back and
//! forth. The rule of the HPA (Kubernetes' `replica_calculator.go` and the behavior's
//! stabilization) is the reference: for a total metric `m` over `current` replicas and a
//! target per replica `t`, ratio = (m / current) / t; no change while |ratio − 1| ≤ tolerance
//! (0.1), else desired = ceil(m / t) (= ceil(current × ratio)), clamped to min / max. A
//! scale-down applies the highest recommendation of the last `stabilization` window (the
//! HPA's `scaleDown.stabilizationWindowSeconds`, 300 s by default); a scale-up applies at
//! once (the HPA's default scale-up window is 0). A scale-up the system decided between two
//! scrapes counts as a recommendation of the window too (the system's own window holds it;
//! without it a sampled window would call a scale-down the HPA would not).
//!
//! An *episode* starts when the recommendation departs from the current replicas (the trigger,
//! in direction out or in) and lasts until they agree again or the direction turns; a further
//! change of the recommendation the same way is a trigger of its own (the earlier one keeps
//! waiting for its own recommendation until the need goes away). A change
//! of the recommendation that the replicas had already followed by the same scrape is an
//! episode too, reached with latency 0 (that is, within one scrape interval). Measured
//! from the trigger: the decision latency (the system's desired replicas reach the trigger's
//! recommendation) and the ready latency (its current replicas do); the overshoot is how far
//! the replicas went past the furthest recommendation of the episode (and of the steady
//! stretch after it). A *flap* is a change of the replicas in the direction opposite to the
//! previous change, less than the stabilization window after it (minus one scrape interval:
//! both changes are seen only at scrape times).
//!
//! Everything here is a fold over samples ([`Follower::push`]), so the controller feeds it
//! while the run goes (the changes become timeline events) and tests feed it fixtures;
//! `judge` settles the episodes and makes the checks and the report.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::round3;
use crate::spec::{AutoscaleSpec, ScaleDirection};

/// One scrape's values for a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Run-clock seconds of the scrape.
    pub at_s: f64,
    /// The load metric's total.
    pub metric: f64,
    pub current: u64,
    pub desired: Option<u64>,
}

/// The HPA's recommendation for `current` replicas seeing a `metric` total, before bounds
/// and stabilization.
pub fn hpa_recommendation(current: u64, metric: f64, target: f64, tolerance: f64) -> u64 {
    let wanted = metric.max(0.0) / target;
    if current == 0 {
        return ceil(wanted);
    }
    let ratio = wanted / current as f64;
    if (ratio - 1.0).abs() <= tolerance {
        return current;
    }
    ceil(wanted)
}

/// `ceil`, forgiving the last bits of a division (10 / 5 × 1 must stay 2).
fn ceil(v: f64) -> u64 {
    (v - 1e-9).ceil().max(0.0) as u64
}

/// Scale-down stabilization: the recommendations of the last window.
#[derive(Debug, Clone, Default)]
pub struct Stabilizer {
    window_s: f64,
    recent: std::collections::VecDeque<(f64, u64)>,
}

impl Stabilizer {
    pub fn new(window_s: f64) -> Stabilizer {
        Stabilizer {
            window_s,
            recent: Default::default(),
        }
    }

    /// Count `rec` as a recommendation made at `at_s` (a scale-up the system decided between
    /// two scrapes).
    pub fn note(&mut self, at_s: f64, rec: u64) {
        self.recent.push_back((at_s, rec));
    }

    /// The recommendation to apply at `at_s` given this evaluation's `raw` one.
    pub fn apply(&mut self, at_s: f64, current: u64, raw: u64) -> u64 {
        self.recent.push_back((at_s, raw));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| at_s - *t > self.window_s)
        {
            self.recent.pop_front();
        }
        if raw >= current {
            return raw;
        }
        let highest = self.recent.iter().map(|(_, r)| *r).max().unwrap_or(raw);
        highest.min(current)
    }
}

/// A change worth a timeline event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The recommendation changed (`metric` is the total that produced it).
    Recommended {
        at_s: f64,
        from: u64,
        to: u64,
        metric: f64,
    },
    /// The system's replicas (`desired` or `current`) changed.
    Observed {
        at_s: f64,
        replicas: &'static str,
        from: u64,
        to: u64,
    },
}

/// How an episode ended for one latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Reached (the latency is set).
    Reached,
    /// Not reached, and the deadline passed: fails.
    Missed,
    /// Not reached, but the recommendation went away (or the run ended) before the deadline:
    /// not judged.
    Pending,
}

/// One episode: a trigger and how the system followed it (summary.json `autoscale[].episodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScaleEpisode {
    /// `out` or `in`.
    pub direction: String,
    /// When the recommendation departed from the current replicas.
    pub trigger_at_s: f64,
    /// Current replicas at the trigger.
    pub from: u64,
    /// The recommendation at the trigger (what the latencies are measured against).
    pub recommended: u64,
    /// The furthest recommendation of the episode (highest out, lowest in).
    pub peak_recommended: u64,
    /// Trigger to the desired replicas reaching `recommended` (no desired series: null).
    pub decision_latency_s: Option<f64>,
    pub decision: Reach,
    /// Trigger to the current replicas reaching `recommended`.
    pub ready_latency_s: Option<f64>,
    pub ready: Reach,
    /// Current replicas beyond `peak_recommended` in the episode's direction (and in the
    /// steady stretch after it, while the recommendation holds).
    pub overshoot: u64,
    /// When the replicas agreed with the recommendation again (or the direction turned).
    pub ended_at_s: Option<f64>,
    /// Whether the episode met the rule's deadlines (null: not judged, nothing reached and
    /// no deadline passed).
    pub passed: Option<bool>,
}

/// A reversal of direction inside the stabilization window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Flap {
    /// The reversing change.
    pub at_s: f64,
    /// The previous change, in the other direction.
    pub previous_at_s: f64,
    /// `out` then `in`, or `in` then `out`: the direction of the reversing change.
    pub direction: String,
    /// Replicas before and after the reversing change.
    pub from: u64,
    pub to: u64,
}

/// One rule's result (summary.json `autoscale[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AutoscaleReport {
    pub rule: String,
    pub metric: String,
    pub target_per_replica: f64,
    pub min: u64,
    pub max: u64,
    pub stabilization_s: f64,
    /// Scrapes with every series the rule needs.
    pub samples: u64,
    /// Scrapes that lacked the metric or the replica series.
    pub incomplete_samples: u64,
    pub episodes: Vec<ScaleEpisode>,
    pub flaps: Vec<Flap>,
    /// Highest recommendation, desired and current replicas seen.
    pub peak_recommended: u64,
    pub peak_desired: Option<u64>,
    pub peak_current: u64,
    /// `pass` when every check of the rule passed.
    pub verdict: String,
}

fn dir_of(from: u64, to: u64) -> Option<ScaleDirection> {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Some(ScaleDirection::Out),
        std::cmp::Ordering::Less => Some(ScaleDirection::In),
        std::cmp::Ordering::Equal => None,
    }
}

/// Whether `value` has reached `target` going `dir`.
fn reached(dir: ScaleDirection, value: u64, target: u64) -> bool {
    match dir {
        ScaleDirection::Out => value >= target,
        ScaleDirection::In => value <= target,
    }
}

#[derive(Debug, Clone)]
struct Open {
    dir: ScaleDirection,
    ep: ScaleEpisode,
    /// A later scrape ended the episode (or a further trigger superseded it).
    closed: bool,
    /// When it stopped waiting for its latencies (both reached, or the need went away);
    /// None: still waiting, judged at the end of the observation.
    stop_at: Option<f64>,
}

/// The fold over one rule's samples.
#[derive(Debug, Clone)]
pub struct Follower {
    spec: AutoscaleSpec,
    resolution_s: f64,
    stab: Stabilizer,
    last: Option<(Sample, u64)>,
    /// The last sample's recommendation before stabilization.
    last_raw: Option<u64>,
    episodes: Vec<Open>,
    /// The last change of the replicas the flaps are judged on: (at, direction).
    last_move: Option<(f64, ScaleDirection)>,
    flaps: Vec<Flap>,
    samples: u64,
    incomplete: u64,
    peak_rec: u64,
    peak_desired: Option<u64>,
    peak_current: u64,
    end_s: f64,
}

impl Follower {
    /// `resolution_s`: the scrape interval (changes are seen that late at most).
    pub fn new(spec: &AutoscaleSpec, resolution_s: f64) -> Follower {
        Follower {
            stab: Stabilizer::new(spec.stabilization.as_secs_f64()),
            spec: spec.clone(),
            resolution_s,
            last: None,
            last_raw: None,
            episodes: Vec::new(),
            last_move: None,
            flaps: Vec::new(),
            samples: 0,
            incomplete: 0,
            peak_rec: 0,
            peak_desired: None,
            peak_current: 0,
            end_s: 0.0,
        }
    }

    /// A scrape that lacked a series the rule needs.
    pub fn push_incomplete(&mut self) {
        self.incomplete += 1;
    }

    /// The recommendation for a sample (bounds, then stabilization).
    fn recommend(&mut self, s: &Sample) -> (u64, u64) {
        // A scale-up the system decided from a value between two scrapes is a recommendation
        // its own window holds; without it the window would lack it and call a scale-down.
        if let Some((prev, _)) = &self.last {
            let (before, now) = match (prev.desired, s.desired) {
                (Some(a), Some(b)) => (a, b),
                _ => (prev.current, s.current),
            };
            if now > before {
                self.stab.note(s.at_s, now.min(self.spec.max));
            }
        }
        let raw = hpa_recommendation(
            s.current,
            s.metric,
            self.spec.target_per_replica,
            self.spec.tolerance,
        )
        .clamp(self.spec.min, self.spec.max);
        (raw, self.stab.apply(s.at_s, s.current, raw))
    }

    /// Fold one sample in; the changes it shows, for the timeline.
    pub fn push(&mut self, s: Sample) -> Vec<Change> {
        let (raw, rec) = self.recommend(&s);
        self.samples += 1;
        self.end_s = self.end_s.max(s.at_s);
        self.peak_rec = self.peak_rec.max(rec);
        self.peak_current = self.peak_current.max(s.current);
        if let Some(d) = s.desired {
            self.peak_desired = Some(self.peak_desired.unwrap_or(0).max(d));
        }
        let mut changes = Vec::new();
        if let Some((prev, prev_rec)) = self.last {
            if prev_rec != rec {
                changes.push(Change::Recommended {
                    at_s: s.at_s,
                    from: prev_rec,
                    to: rec,
                    metric: s.metric,
                });
            }
            if let (Some(a), Some(b)) = (prev.desired, s.desired) {
                if a != b {
                    changes.push(Change::Observed {
                        at_s: s.at_s,
                        replicas: "desired",
                        from: a,
                        to: b,
                    });
                }
            }
            if prev.current != s.current {
                changes.push(Change::Observed {
                    at_s: s.at_s,
                    replicas: "current",
                    from: prev.current,
                    to: s.current,
                });
            }
            // Flaps, on the desired replicas when exposed (the decision), else the current.
            let moved = match (prev.desired, s.desired) {
                (Some(a), Some(b)) => (a, b),
                _ => (prev.current, s.current),
            };
            if let Some(dir) = dir_of(moved.0, moved.1) {
                if let Some((t, d)) = self.last_move {
                    let window = self.spec.stabilization.as_secs_f64();
                    if d != dir && s.at_s - t + self.resolution_s < window {
                        self.flaps.push(Flap {
                            at_s: s.at_s,
                            previous_at_s: t,
                            direction: dir.as_str().to_string(),
                            from: moved.0,
                            to: moved.1,
                        });
                    }
                }
                self.last_move = Some((s.at_s, dir));
            }
        }
        self.follow(&s, rec, raw);
        self.last_raw = Some(raw);
        self.last = Some((s, rec));
        changes
    }

    /// Episodes: open, escalate, follow, close.
    fn follow(&mut self, s: &Sample, rec: u64, raw: u64) {
        let need = dir_of(s.current, rec);
        let had_open = self.episodes.last().is_some_and(|o| !o.closed);
        let rec_changed = self.last.is_some_and(|(_, r)| r != rec);
        let raw_changed = self.last_raw.is_some_and(|r| r != raw);
        // The recommendation changed and the replicas had already followed by this scrape:
        // an episode of its own, reached within one scrape interval (latency 0).
        let jump = match (need, self.last) {
            (None, Some((prev, prev_rec))) if !had_open && prev_rec != rec => {
                dir_of(prev.current, rec).map(|d| (d, prev.current))
            }
            _ => None,
        };
        // The open episode: the need went on further (a new trigger; the old one keeps
        // waiting for its own recommendation), went away or turned (it ends, with every
        // earlier trigger still waiting), or holds.
        let mut escalate = false;
        let mut need_ended = false;
        if let Some(open) = self.episodes.last_mut().filter(|o| !o.closed) {
            if need == Some(open.dir) {
                let further = match open.dir {
                    ScaleDirection::Out => rec > open.ep.recommended,
                    ScaleDirection::In => rec < open.ep.recommended,
                };
                if further {
                    open.closed = true;
                    open.ep.ended_at_s = Some(s.at_s);
                    escalate = true;
                } else {
                    open.ep.peak_recommended = match open.dir {
                        ScaleDirection::Out => open.ep.peak_recommended.max(rec),
                        ScaleDirection::In => open.ep.peak_recommended.min(rec),
                    };
                }
            } else {
                open.closed = true;
                open.ep.ended_at_s = Some(s.at_s);
                need_ended = true;
            }
        }
        // Latencies of every trigger still waiting.
        for o in self.episodes.iter_mut().filter(|o| o.stop_at.is_none()) {
            let ep = &mut o.ep;
            let since = round3(s.at_s - ep.trigger_at_s);
            if let Some(d) = s.desired {
                if ep.decision_latency_s.is_none() && reached(o.dir, d, ep.recommended) {
                    ep.decision_latency_s = Some(since);
                    ep.decision = Reach::Reached;
                }
            }
            if ep.ready_latency_s.is_none() && reached(o.dir, s.current, ep.recommended) {
                ep.ready_latency_s = Some(since);
                ep.ready = Reach::Reached;
            }
            let waiting = ep.ready == Reach::Pending
                || (s.desired.is_some() && ep.decision == Reach::Pending);
            if !waiting || need_ended {
                o.stop_at = Some(s.at_s);
            }
        }
        // Overshoot of the last episode, on the current replicas (the desired ones lead the
        // recommendation by up to a scrape at the window's edge, which is no overshoot); a
        // closed episode's steady stretch lasts while the recommendation holds (out: the
        // HPA's own, before a scale-up the system made is held by the window).
        if let Some(open) = self.episodes.last_mut() {
            let ep = &mut open.ep;
            let over = match open.dir {
                ScaleDirection::Out => s.current.saturating_sub(ep.peak_recommended),
                ScaleDirection::In => ep.peak_recommended.saturating_sub(s.current),
            };
            let holds = match open.dir {
                ScaleDirection::Out => !raw_changed,
                ScaleDirection::In => !rec_changed,
            };
            if !open.closed || (need.is_none() && holds) {
                ep.overshoot = ep.overshoot.max(over);
            }
        }
        if let Some(dir) = need {
            if escalate || self.episodes.last().is_none_or(|o| o.closed) {
                let mut ep = ScaleEpisode {
                    direction: dir.as_str().to_string(),
                    trigger_at_s: s.at_s,
                    from: s.current,
                    recommended: rec,
                    peak_recommended: rec,
                    decision_latency_s: None,
                    decision: Reach::Pending,
                    ready_latency_s: None,
                    ready: Reach::Pending,
                    overshoot: 0,
                    ended_at_s: None,
                    passed: None,
                };
                if s.desired.is_some_and(|d| reached(dir, d, rec)) {
                    ep.decision_latency_s = Some(0.0);
                    ep.decision = Reach::Reached;
                }
                self.episodes.push(Open {
                    dir,
                    ep,
                    closed: false,
                    stop_at: None,
                });
            }
        } else if let Some((dir, from)) = jump {
            let decided = s.desired.is_none_or(|d| reached(dir, d, rec));
            self.episodes.push(Open {
                dir,
                ep: ScaleEpisode {
                    direction: dir.as_str().to_string(),
                    trigger_at_s: s.at_s,
                    from,
                    recommended: rec,
                    peak_recommended: rec,
                    decision_latency_s: (s.desired.is_some() && decided).then_some(0.0),
                    decision: if decided {
                        Reach::Reached
                    } else {
                        Reach::Pending
                    },
                    ready_latency_s: Some(0.0),
                    ready: Reach::Reached,
                    overshoot: 0,
                    ended_at_s: Some(s.at_s),
                    passed: None,
                },
                closed: true,
                stop_at: Some(s.at_s),
            });
        }
    }
}

mod judge;
#[cfg(test)]
mod tests;

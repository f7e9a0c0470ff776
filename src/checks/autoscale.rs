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
//! while the run goes (the changes become timeline events) and tests feed it fixtures.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckKind, CheckResult};
use crate::metrics::{format_number, round3};
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

    /// The episodes with their outcome at `end_s` (the last observation, or later).
    fn judged_episodes(&self) -> Vec<ScaleEpisode> {
        let e = &self.spec.expect;
        self.episodes
            .iter()
            .map(|o| {
                let mut ep = o.ep.clone();
                let until = o.stop_at.unwrap_or(self.end_s) - ep.trigger_at_s;
                let settle = |reach: &mut Reach, deadline: Option<std::time::Duration>| {
                    if *reach == Reach::Pending && deadline.is_some_and(|d| until > d.as_secs_f64())
                    {
                        *reach = Reach::Missed;
                    }
                };
                let mut verdicts = Vec::new();
                if self.spec.desired.is_some() {
                    settle(&mut ep.decision, e.decision_within);
                    verdicts.push(judge(ep.decision, ep.decision_latency_s, e.decision_within));
                }
                settle(&mut ep.ready, e.ready_within);
                verdicts.push(judge(ep.ready, ep.ready_latency_s, e.ready_within));
                ep.passed = verdicts.into_iter().flatten().reduce(|a, b| a && b);
                ep
            })
            .collect()
    }

    /// The rule's checks and report.
    pub fn finish(&self) -> (Vec<CheckResult>, AutoscaleReport) {
        let episodes = self.judged_episodes();
        let name = &self.spec.name;
        let e = &self.spec.expect;
        let mut checks = Vec::new();
        if let (Some(d), Some(_)) = (e.decision_within, &self.spec.desired) {
            checks.push(latency_check(
                name,
                "decision_within",
                d,
                &episodes,
                |ep| (ep.decision, ep.decision_latency_s),
                "desired",
            ));
        }
        if let Some(d) = e.ready_within {
            checks.push(latency_check(
                name,
                "ready_within",
                d,
                &episodes,
                |ep| (ep.ready, ep.ready_latency_s),
                "current",
            ));
        }
        if e.no_flapping {
            let observed = match self.flaps.first() {
                None => format!("no reversal within {}", secs(self.spec.stabilization)),
                Some(f) => format!(
                    "{} flap(s); first at {}s: {} -> {} ({}s after the previous change)",
                    self.flaps.len(),
                    format_number(f.at_s),
                    f.from,
                    f.to,
                    format_number(round3(f.at_s - f.previous_at_s))
                ),
            };
            checks.push(check(
                name,
                "no_flapping",
                self.samples > 0 && self.flaps.is_empty(),
                format!(
                    "no direction change within {}",
                    secs(self.spec.stabilization)
                ),
                if self.samples == 0 {
                    "no data".into()
                } else {
                    observed
                },
            ));
        }
        if !e.directions.is_empty() {
            let missing: Vec<&str> = e
                .directions
                .iter()
                .filter(|d| {
                    !episodes
                        .iter()
                        .any(|ep| ep.direction == d.as_str() && ep.ready == Reach::Reached)
                })
                .map(|d| d.as_str())
                .collect();
            let wanted: Vec<&str> = e.directions.iter().map(|d| d.as_str()).collect();
            checks.push(check(
                name,
                "directions",
                missing.is_empty(),
                format!("scaled {}", wanted.join(" and ")),
                if missing.is_empty() {
                    format!("scaled {}", wanted.join(" and "))
                } else {
                    format!(
                        "never scaled {} ({} episode(s) in all)",
                        missing.join(" nor "),
                        episodes.len()
                    )
                },
            ));
        }
        let passed = checks.iter().all(|c| c.passed);
        let report = AutoscaleReport {
            rule: name.clone(),
            metric: self.spec.metric.clone(),
            target_per_replica: self.spec.target_per_replica,
            min: self.spec.min,
            max: self.spec.max,
            stabilization_s: round3(self.spec.stabilization.as_secs_f64()),
            samples: self.samples,
            incomplete_samples: self.incomplete,
            episodes,
            flaps: self.flaps.clone(),
            peak_recommended: self.peak_rec,
            peak_desired: self.peak_desired,
            peak_current: self.peak_current,
            verdict: if passed { "pass" } else { "fail" }.into(),
        };
        (checks, report)
    }
}

/// One latency against its deadline: None when not judged.
fn judge(
    reach: Reach,
    latency: Option<f64>,
    deadline: Option<std::time::Duration>,
) -> Option<bool> {
    let d = deadline?;
    match reach {
        Reach::Missed => Some(false),
        Reach::Pending => None,
        Reach::Reached => Some(latency.is_some_and(|l| l <= d.as_secs_f64())),
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", format_number(round3(d.as_secs_f64())))
}

fn check(rule: &str, what: &str, passed: bool, expected: String, observed: String) -> CheckResult {
    CheckResult {
        name: format!("autoscale {rule}: {what}"),
        kind: CheckKind::Autoscale,
        passed,
        expected,
        observed,
        runbook: None,
    }
}

/// Every judged episode's latency within `deadline`; at least one judged.
fn latency_check(
    rule: &str,
    what: &str,
    deadline: std::time::Duration,
    episodes: &[ScaleEpisode],
    get: impl Fn(&ScaleEpisode) -> (Reach, Option<f64>),
    replicas: &str,
) -> CheckResult {
    let limit = deadline.as_secs_f64();
    let mut parts = Vec::new();
    let mut passed = true;
    let mut judged = 0;
    for dir in ["out", "in"] {
        let eps: Vec<&ScaleEpisode> = episodes.iter().filter(|e| e.direction == dir).collect();
        let missed: Vec<&&ScaleEpisode> =
            eps.iter().filter(|e| get(e).0 == Reach::Missed).collect();
        let lat: Vec<f64> = eps.iter().filter_map(|e| get(e).1).collect();
        judged += missed.len() + lat.len();
        if let Some(m) = missed.first() {
            passed = false;
            parts.push(format!(
                "{dir}: {replicas} replicas never reached {} after the trigger at {}s ({} of {} episodes missed)",
                m.recommended,
                format_number(m.trigger_at_s),
                missed.len(),
                eps.len()
            ));
        } else if let Some(worst) = lat.iter().copied().reduce(f64::max) {
            if worst > limit {
                passed = false;
            }
            parts.push(format!(
                "{dir}: worst {}s of {} episode(s)",
                format_number(round3(worst)),
                lat.len()
            ));
        }
    }
    if judged == 0 {
        passed = false;
        parts.push(format!(
            "no data: the recommendation never departed from the current replicas long enough to judge ({} episode(s) pending)",
            episodes.len()
        ));
    }
    check(
        rule,
        what,
        passed,
        format!("<={}", secs(deadline)),
        parts.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AutoscaleExpect;
    use std::time::Duration;

    fn spec(window_s: u64) -> AutoscaleSpec {
        AutoscaleSpec {
            name: "workers".into(),
            scrape: "gw".into(),
            metric: "queue".into(),
            target_per_replica: 5.0,
            current: "cur".into(),
            desired: Some("des".into()),
            min: 1,
            max: 8,
            tolerance: 0.1,
            stabilization: Duration::from_secs(window_s),
            expect: AutoscaleExpect {
                decision_within: Some(Duration::from_secs(3)),
                ready_within: Some(Duration::from_secs(5)),
                no_flapping: true,
                directions: vec![ScaleDirection::Out, ScaleDirection::In],
            },
        }
    }

    fn s(at_s: f64, metric: f64, current: u64, desired: u64) -> Sample {
        Sample {
            at_s,
            metric,
            current,
            desired: Some(desired),
        }
    }

    #[test]
    fn hpa_rule_table() {
        // (current, metric total, target, expected): the HPA's own examples and edges.
        let table: &[(u64, f64, f64, u64)] = &[
            (1, 5.0, 5.0, 1),
            (1, 5.4, 5.0, 1),   // ratio 1.08: within tolerance
            (1, 5.6, 5.0, 2),   // ratio 1.12
            (2, 20.0, 5.0, 4),  // double
            (4, 4.0, 5.0, 1),   // ceil(0.8)
            (4, 0.0, 5.0, 0),   // empty: bounds decide
            (3, 13.8, 5.0, 3),  // ratio 0.92: within tolerance
            (3, 13.2, 5.0, 3),  // ratio 0.88: ceil(2.64)
            (10, 20.0, 5.0, 4), // ceil(4.0) exactly
            (0, 7.0, 5.0, 2),
            (3, 30.0, 10.0, 3),
        ];
        for &(cur, m, t, want) in table {
            assert_eq!(hpa_recommendation(cur, m, t, 0.1), want, "{cur} {m} {t}");
        }
    }

    #[test]
    fn stabilization_holds_the_highest_recommendation_of_the_window() {
        let mut st = Stabilizer::new(10.0);
        assert_eq!(st.apply(0.0, 1, 8), 8);
        assert_eq!(st.apply(5.0, 8, 1), 8);
        assert_eq!(st.apply(10.0, 8, 2), 8);
        assert_eq!(st.apply(15.5, 8, 1), 2); // the 8 left the window; the 2 of 10.0 remains
        assert_eq!(st.apply(21.0, 2, 1), 1);
    }

    /// Scale out as the queue rises, then in after it drains and the window passes.
    fn out_and_in() -> Vec<Sample> {
        let mut v = vec![s(0.0, 0.0, 1, 1), s(1.0, 3.0, 1, 1)];
        v.push(s(2.0, 18.0, 1, 1)); // trigger out: rec 4
        v.push(s(3.0, 20.0, 4, 4)); // decided and ready 1 s later
        v.push(s(4.0, 30.0, 4, 6)); // rec 6, desired first
        v.push(s(5.0, 30.0, 6, 6));
        v.push(s(6.0, 0.0, 6, 6)); // drained: stabilization holds 6
        for t in 7..=16 {
            v.push(s(t as f64, 0.0, 6, 6));
        }
        v.push(s(17.0, 0.0, 6, 1)); // window passed (6 last at 5.0 + 10 s): rec 1
        v.push(s(18.0, 0.0, 1, 1));
        v
    }

    #[test]
    fn out_then_in_is_judged_with_latencies_and_events() {
        let mut f = Follower::new(&spec(10), 1.0);
        let mut changes = Vec::new();
        for x in out_and_in() {
            changes.extend(f.push(x));
        }
        let (checks, rep) = f.finish();
        // Two triggers out (the queue rose past the replicas twice), one in.
        assert_eq!(rep.episodes.len(), 3, "{:#?}", rep.episodes);
        let out = &rep.episodes[0];
        assert_eq!(
            (
                out.direction.as_str(),
                out.trigger_at_s,
                out.recommended,
                out.peak_recommended
            ),
            ("out", 2.0, 4, 4)
        );
        assert_eq!(out.decision_latency_s, Some(1.0));
        assert_eq!(out.ready_latency_s, Some(1.0));
        assert_eq!(out.overshoot, 0);
        let out2 = &rep.episodes[1];
        assert_eq!((out2.trigger_at_s, out2.recommended), (4.0, 6));
        assert_eq!(out2.decision_latency_s, Some(0.0)); // desired moved before the scrape
        assert_eq!(out2.ready_latency_s, Some(1.0));
        let inn = &rep.episodes[2];
        assert_eq!((inn.direction.as_str(), inn.recommended), ("in", 1));
        assert_eq!(inn.trigger_at_s, 16.0, "{inn:#?}");
        assert_eq!(inn.decision_latency_s, Some(1.0));
        assert_eq!(inn.ready_latency_s, Some(2.0));
        assert!(rep.flaps.is_empty(), "{:?}", rep.flaps);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
        assert_eq!(checks.len(), 4);
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Recommended { from: 1, to: 4, .. })));
        assert!(changes.iter().any(|c| matches!(
            c,
            Change::Observed {
                replicas: "desired",
                from: 6,
                to: 1,
                ..
            }
        )));
    }

    #[test]
    fn a_system_that_never_scales_misses_the_decision() {
        let mut f = Follower::new(&spec(10), 1.0);
        for t in 0..20 {
            f.push(s(t as f64, if t > 2 { 40.0 } else { 0.0 }, 1, 1));
        }
        let (checks, rep) = f.finish();
        assert_eq!(rep.episodes.len(), 1);
        assert_eq!(rep.episodes[0].decision, Reach::Missed);
        let dec = checks
            .iter()
            .find(|c| c.name.ends_with("decision_within"))
            .unwrap();
        assert!(!dec.passed);
        assert!(dec.observed.contains("never reached 8"), "{}", dec.observed);
        assert!(
            !checks
                .iter()
                .find(|c| c.name.ends_with("directions"))
                .unwrap()
                .passed
        );
    }

    #[test]
    fn late_decisions_fail_and_unfinished_ones_stay_pending() {
        let mut f = Follower::new(&spec(10), 1.0);
        f.push(s(0.0, 0.0, 1, 1));
        f.push(s(1.0, 20.0, 1, 1)); // trigger: rec 4
        f.push(s(6.0, 20.0, 4, 4)); // 5 s later: decision late (3 s), ready on time (5 s)
        let (checks, _) = f.finish();
        let dec = checks
            .iter()
            .find(|c| c.name.ends_with("decision_within"))
            .unwrap();
        assert!(!dec.passed && dec.observed.contains("worst 5s"), "{dec:?}");
        assert!(
            checks
                .iter()
                .find(|c| c.name.ends_with("ready_within"))
                .unwrap()
                .passed
        );

        let mut f = Follower::new(&spec(10), 1.0);
        f.push(s(0.0, 0.0, 1, 1));
        f.push(s(1.0, 20.0, 1, 1)); // the run ends 1 s after the trigger
        f.push(s(2.0, 20.0, 1, 1));
        let (checks, rep) = f.finish();
        assert_eq!(rep.episodes[0].decision, Reach::Pending);
        let dec = checks
            .iter()
            .find(|c| c.name.ends_with("decision_within"))
            .unwrap();
        assert!(
            !dec.passed && dec.observed.starts_with("no data"),
            "{dec:?}"
        );
    }

    #[test]
    fn reversals_inside_the_window_are_flaps() {
        // A short system window against a periodic load: up, down, up within 10 s.
        let mut f = Follower::new(&spec(10), 1.0);
        let pattern = [(0.0, 1), (1.0, 4), (3.0, 1), (5.0, 4), (7.0, 1), (20.0, 4)];
        for (at, r) in pattern {
            f.push(s(at, r as f64 * 5.0, r, r));
        }
        let (checks, rep) = f.finish();
        assert_eq!(rep.flaps.len(), 3, "{:?}", rep.flaps);
        assert_eq!((rep.flaps[0].at_s, rep.flaps[0].previous_at_s), (3.0, 1.0));
        let c = checks
            .iter()
            .find(|c| c.name.ends_with("no_flapping"))
            .unwrap();
        assert!(!c.passed && c.observed.starts_with("3 flap(s)"), "{c:?}");
    }

    #[test]
    fn overshoot_counts_replicas_past_the_recommendation() {
        let mut f = Follower::new(&spec(10), 1.0);
        f.push(s(0.0, 0.0, 1, 1));
        f.push(s(1.0, 10.0, 1, 1)); // rec 2
        f.push(s(2.0, 10.0, 1, 5)); // the system wants 5
        f.push(s(3.0, 10.0, 5, 5));
        let (_, rep) = f.finish();
        assert_eq!(rep.episodes[0].overshoot, 3, "{:#?}", rep.episodes);
    }

    #[test]
    fn without_a_desired_series_only_ready_is_judged() {
        let mut sp = spec(10);
        sp.desired = None;
        let mut f = Follower::new(&sp, 1.0);
        for x in out_and_in() {
            f.push(Sample { desired: None, ..x });
        }
        let (checks, rep) = f.finish();
        assert!(checks.iter().all(|c| !c.name.ends_with("decision_within")));
        assert_eq!(rep.episodes[0].decision_latency_s, None);
        assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    }
    #[test]
    fn a_change_followed_within_one_scrape_is_an_episode_with_latency_0() {
        let mut f = Follower::new(&spec(0), 1.0);
        f.push(s(0.0, 20.0, 4, 4));
        f.push(s(1.0, 0.0, 1, 1)); // recommendation 4 -> 1 and the pool already at 1
        let (_, rep) = f.finish();
        assert_eq!(rep.episodes.len(), 1, "{:#?}", rep.episodes);
        let e = &rep.episodes[0];
        assert_eq!((e.direction.as_str(), e.from, e.recommended), ("in", 4, 1));
        assert_eq!(
            (e.decision_latency_s, e.ready_latency_s),
            (Some(0.0), Some(0.0))
        );
        assert_eq!(e.passed, Some(true));
    }
    #[test]
    fn every_further_trigger_is_judged_on_its_own() {
        // The queue rises step by step; the system follows the first step only.
        let mut f = Follower::new(&spec(10), 1.0);
        f.push(s(0.0, 0.0, 1, 1));
        f.push(s(1.0, 10.0, 1, 1)); // 2
        f.push(s(2.0, 15.0, 2, 2)); // 3: a further trigger; the first reached
        f.push(s(3.0, 20.0, 2, 2)); // 4
        for t in 4..12 {
            f.push(s(t as f64, 20.0, 2, 2));
        }
        let (checks, rep) = f.finish();
        let got: Vec<(u64, Reach)> = rep
            .episodes
            .iter()
            .map(|e| (e.recommended, e.decision))
            .collect();
        assert_eq!(
            got,
            [(2, Reach::Reached), (3, Reach::Missed), (4, Reach::Missed)],
            "{:#?}",
            rep.episodes
        );
        let dec = checks
            .iter()
            .find(|c| c.name.ends_with("decision_within"))
            .unwrap();
        assert!(
            !dec.passed && dec.observed.contains("2 of 3 episodes missed"),
            "{dec:?}"
        );
    }
}

//! A rule's verdict: each episode settled against the deadlines, the checks and the report.
use super::{AutoscaleReport, Follower, Reach, ScaleEpisode};
use crate::checks::{CheckKind, CheckResult};
use crate::metrics::{format_number, round3};

impl Follower {
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

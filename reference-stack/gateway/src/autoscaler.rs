//! The worker autoscaler: Kubernetes' HPA rule applied to queue depth per worker.
//!
//! Every `GATEWAY_AUTOSCALE_INTERVAL_MS`: metric = queue depth / current workers;
//! ratio = metric / target (`GATEWAY_AUTOSCALE_TARGET`); when |ratio − 1| ≤ tolerance
//! (`GATEWAY_AUTOSCALE_TOLERANCE`, 0.1) nothing changes, else
//! desired = ceil(current × ratio), clamped to the worker bounds (admin override or
//! `GATEWAY_WORKERS_MIN/MAX`). Scale-up applies at once; scale-down uses the highest
//! recommendation seen within the stabilization window (`GATEWAY_AUTOSCALE_STABILIZATION_MS`),
//! as the HPA's `scaleDown.stabilizationWindowSeconds` does. Every evaluation is counted in
//! `gateway_autoscaler_decisions_total{direction="up|down|none"}`; changes are logged at info.
//!
//! Each instance scales its own pool from the shared queue depth.
//!
//! `GATEWAY_AUTOSCALE_ENABLED=false` switches the decisions off (the pool stays where it is,
//! `workers_desired` follows `workers_current`) while the queue depth is still measured and
//! exported: what a system without a working autoscaler looks like to loadgate's
//! `autoscaling:` checks.

use crate::metrics::DirectionLabels;
use crate::AppState;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The HPA rule: desired replicas for `current` replicas observing `metric` per replica.
pub fn hpa_desired(current: usize, metric: f64, target: f64, tolerance: f64) -> usize {
    if current == 0 {
        return if metric > 0.0 { 1 } else { 0 };
    }
    let ratio = metric / target;
    if (ratio - 1.0).abs() <= tolerance {
        return current;
    }
    (current as f64 * ratio).ceil() as usize
}

/// Scale-down stabilization: remembers recent recommendations.
#[derive(Debug)]
pub struct Stabilizer {
    window: Duration,
    recent: VecDeque<(Instant, usize)>,
}

impl Stabilizer {
    pub fn new(window: Duration) -> Self {
        Stabilizer {
            window,
            recent: VecDeque::new(),
        }
    }

    /// The replica count to apply now, given this evaluation's recommendation.
    pub fn apply(&mut self, now: Instant, current: usize, recommendation: usize) -> usize {
        self.recent.push_back((now, recommendation));
        while let Some((t, _)) = self.recent.front() {
            if now.duration_since(*t) > self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if recommendation >= current {
            return recommendation;
        }
        let highest = self
            .recent
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(recommendation);
        highest.min(current)
    }
}

/// One evaluation: (recommendation after clamping, decision after stabilization).
pub fn evaluate(
    stab: &mut Stabilizer,
    now: Instant,
    current: usize,
    depth: u64,
    target: f64,
    tolerance: f64,
    (min, max): (usize, usize),
) -> usize {
    let metric = if current == 0 {
        depth as f64
    } else {
        depth as f64 / current as f64
    };
    let rec = hpa_desired(current, metric, target, tolerance).clamp(min, max.max(min));
    let desired = stab.apply(now, current, rec);
    desired.clamp(min, max.max(min))
}

/// Runs until shutdown.
pub async fn run(st: AppState) {
    let cfg = &st.cfg;
    if !cfg.autoscale_enabled {
        tracing::warn!(
            "worker autoscaler switched off (GATEWAY_AUTOSCALE_ENABLED=false): queue depth is measured, the pool keeps its size"
        );
    }
    let mut stab = Stabilizer::new(cfg.autoscale_stabilization);
    let mut tick = tokio::time::interval(cfg.autoscale_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = st.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (depth, dlq) = match st.redis.queue_depths().await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "autoscaler skipped: queue depth unknown");
                continue;
            }
        };
        st.metrics.queue_depth.set(depth as i64);
        st.metrics.dlq_depth.set(dlq as i64);
        let current = st.workers.len();
        if !cfg.autoscale_enabled {
            st.metrics.workers_desired.set(current as i64);
            continue;
        }
        let bounds = st.admin_snapshot().workers_or(cfg);
        let desired = evaluate(
            &mut stab,
            Instant::now(),
            current,
            depth,
            cfg.autoscale_target,
            cfg.autoscale_tolerance,
            bounds,
        );
        st.metrics.workers_desired.set(desired as i64);
        let direction = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => "up",
            std::cmp::Ordering::Less => "down",
            std::cmp::Ordering::Equal => "none",
        };
        st.metrics
            .autoscaler_decisions
            .get_or_create(&DirectionLabels { direction })
            .inc();
        if direction == "none" {
            tracing::debug!(
                current,
                desired,
                queue_depth = depth,
                "autoscaler: no change"
            );
        } else {
            tracing::info!(
                decision = direction,
                current,
                desired,
                queue_depth = depth,
                target_per_worker = cfg.autoscale_target,
                min = bounds.0,
                max = bounds.1,
                "autoscaler decision"
            );
            st.workers.scale_to(&st, desired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_rule_table() {
        // (current, metric per worker, target, expected)
        let table: &[(usize, f64, f64, usize)] = &[
            (1, 5.0, 5.0, 1),  // on target
            (1, 5.4, 5.0, 1),  // ratio 1.08: inside tolerance
            (1, 5.6, 5.0, 2),  // ratio 1.12: ceil(1.12)
            (2, 10.0, 5.0, 4), // double
            (4, 1.0, 5.0, 1),  // ceil(0.8)
            (4, 0.0, 5.0, 0),  // empty queue
            (3, 4.6, 5.0, 3),  // ratio 0.92: inside tolerance
            (3, 4.4, 5.0, 3),  // ratio 0.88: ceil(2.64) = 3
            (3, 4.0, 5.0, 3),  // ceil(2.4)
            (10, 2.0, 5.0, 4),
            (0, 7.0, 5.0, 1),
        ];
        for &(cur, metric, target, want) in table {
            assert_eq!(
                hpa_desired(cur, metric, target, 0.1),
                want,
                "current {cur} metric {metric}"
            );
        }
    }

    #[test]
    fn scale_up_is_immediate_and_down_waits_for_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut s = Stabilizer::new(w);
        let b = (1, 8);
        // queue 40, target 5, 1 worker → 8
        assert_eq!(evaluate(&mut s, t0, 1, 40, 5.0, 0.1, b), 8);
        // queue empties: the 8 seen 0.5 s ago holds
        assert_eq!(evaluate(&mut s, t0 + w / 2, 8, 0, 5.0, 0.1, b), 8);
        // after the window only low recommendations remain
        assert_eq!(evaluate(&mut s, t0 + w * 2, 8, 0, 5.0, 0.1, b), 1);
    }

    #[test]
    fn bounds_clamp_the_decision() {
        let mut s = Stabilizer::new(Duration::ZERO);
        let t = Instant::now();
        assert_eq!(evaluate(&mut s, t, 2, 1000, 5.0, 0.1, (1, 4)), 4);
        let later = t + Duration::from_millis(1);
        assert_eq!(evaluate(&mut s, later, 4, 0, 5.0, 0.1, (2, 4)), 2);
    }
}

//! The cost budget: when the simulated model spend per minute exceeds
//! `GATEWAY_BUDGET_USD_PER_MIN`, requests for the expensive model are routed to the cheaper one
//! (`downgrade`, the default) or refused with 429 + `Retry-After` (`throttle`). Off by default
//! (budget 0).
//!
//! Why these shapes:
//! - **Spend is measured, not predicted.** Every cache-missing chat adds its cost to one atomic
//!   counter (nano-USD; the only per-request work, no lock). A ticker samples that total every
//!   [`TICK`] and [`CostWindow`] turns the samples of the last `GATEWAY_BUDGET_WINDOW_MS`
//!   (default 60 s) into USD per minute: a sliding window like Prometheus' `rate()`, so one
//!   burst does not flip the budget and a sustained overspend does within one window.
//! - **Hysteresis.** [`BudgetState`] enters "exceeded" above the budget and leaves it only under
//!   `GATEWAY_BUDGET_RESUME_RATIO` x the budget (default 0.5). Downgrading the reference's
//!   models halves the cost per request (v1 0.002, v2 0.001 USD per 1k tokens), so resuming
//!   at, say, 0.9 x the budget would put the full cost back on, exceed again a window later and
//!   flap; at 0.5 the downgrade holds while the load that caused it lasts and lifts once the
//!   load falls.
//! - **Default downgrade, not throttle.** A cheaper answer keeps users served (the routing GenAI
//!   gateways do under spend caps); throttling is there for hard caps. Both answer a header:
//!   `x-budget-downgraded: v1->v2` on a downgraded response, 429 `Retry-After` (the window, at
//!   least 1 s) on a throttled one.
//! - **Per instance.** Each gateway instance keeps its own window (like its worker autoscaler):
//!   with N instances behind the edge the fleet's ceiling is N x the budget. A fleet-wide
//!   budget would need a shared counter in Redis on every costly request; the per-instance one
//!   needs nothing and is what the drills here exercise.
//!
//! Metrics: `gateway_budget_exceeded` (gauge 0/1), `gateway_budget_cost_per_min_usd` (the
//! windowed rate the decision used), `gateway_budget_mode{mode}` (1 for the configured mode),
//! `gateway_budget_downgrades_total{from,to}`, `gateway_budget_throttled_total`.
//!
//! The decisions ([`CostWindow`], [`BudgetState`], [`route`]) are pure and unit-tested; the
//! ticker ([`run`]) only feeds them.

use crate::admin::Version;
use crate::config::ModelConfig;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the ticker samples the spend.
pub const TICK: Duration = Duration::from_millis(250);

/// What to do with the expensive model's requests while the budget is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetMode {
    /// Serve them with the cheaper model (`x-budget-downgraded`).
    Downgrade,
    /// Refuse them with 429 + `Retry-After`.
    Throttle,
}

impl BudgetMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetMode::Downgrade => "downgrade",
            BudgetMode::Throttle => "throttle",
        }
    }
    pub fn parse(s: &str) -> Option<BudgetMode> {
        match s.trim() {
            "downgrade" => Some(BudgetMode::Downgrade),
            "throttle" => Some(BudgetMode::Throttle),
            _ => None,
        }
    }
}

/// `GATEWAY_BUDGET_*`.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    /// USD per minute; 0 = no budget.
    pub usd_per_min: f64,
    pub mode: BudgetMode,
    /// The spend is averaged over this window.
    pub window: Duration,
    /// Leave "exceeded" under this fraction of the budget.
    pub resume_ratio: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            usd_per_min: 0.0,
            mode: BudgetMode::Downgrade,
            window: Duration::from_secs(60),
            resume_ratio: 0.5,
        }
    }
}

impl BudgetConfig {
    pub fn enabled(&self) -> bool {
        self.usd_per_min > 0.0
    }
    /// `Retry-After` of a throttled request: the window, at least a second.
    pub fn retry_after_secs(&self) -> u64 {
        self.window.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Samples of a monotonically growing spend total over a sliding window.
#[derive(Debug, Clone)]
pub struct CostWindow {
    window: Duration,
    samples: VecDeque<(Duration, f64)>,
}

impl CostWindow {
    pub fn new(window: Duration) -> CostWindow {
        CostWindow {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Adds the total spend (USD) at `at` (time since any fixed origin) and returns the spend
    /// per minute over the window: (newest - oldest) / span, 0 until the samples span a
    /// second (too short a span would turn one request into a huge rate).
    pub fn observe(&mut self, at: Duration, total_usd: f64) -> f64 {
        self.samples.push_back((at, total_usd));
        // Keep one sample at or before the window's start so the span covers the window.
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
        let (t0, v0) = self.samples[0];
        let span = at.saturating_sub(t0);
        if span < Duration::from_secs(1) {
            return 0.0;
        }
        ((total_usd - v0).max(0.0)) / span.as_secs_f64() * 60.0
    }
}

/// Exceeded or not, with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetState {
    pub exceeded: bool,
}

impl BudgetState {
    /// The state after seeing `cost_per_min`: enter above the budget, leave under
    /// `resume_ratio` x the budget, hold in between.
    pub fn update(self, cfg: &BudgetConfig, cost_per_min: f64) -> BudgetState {
        if !cfg.enabled() {
            return BudgetState { exceeded: false };
        }
        let exceeded = if self.exceeded {
            cost_per_min >= cfg.usd_per_min * cfg.resume_ratio
        } else {
            cost_per_min > cfg.usd_per_min
        };
        BudgetState { exceeded }
    }
}

/// How one chat request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    Serve(Version),
    Downgrade { from: Version, to: Version },
    Throttle { retry_after_secs: u64 },
}

/// The version priced higher and the one priced lower; `None` when they cost the same (then
/// there is nothing to downgrade to, and nothing is "expensive").
pub fn price_order(models: &[ModelConfig; 2]) -> Option<(Version, Version)> {
    let (p1, p2) = (models[0].price_per_1k, models[1].price_per_1k);
    if p1 > p2 {
        Some((Version::V1, Version::V2))
    } else if p2 > p1 {
        Some((Version::V2, Version::V1))
    } else {
        None
    }
}

/// Routes a request for `version`: untouched unless the budget is exceeded and `version` is
/// the expensive one (`order` from [`price_order`]).
pub fn route(
    cfg: &BudgetConfig,
    exceeded: bool,
    order: Option<(Version, Version)>,
    version: Version,
) -> Routing {
    match order {
        Some((expensive, cheap)) if exceeded && version == expensive => match cfg.mode {
            BudgetMode::Downgrade => Routing::Downgrade {
                from: expensive,
                to: cheap,
            },
            BudgetMode::Throttle => Routing::Throttle {
                retry_after_secs: cfg.retry_after_secs(),
            },
        },
        _ => Routing::Serve(version),
    }
}

/// The live budget of an instance: the spend counter (hot path) and the current decision.
#[derive(Debug, Default)]
pub struct Budget {
    spent_nano_usd: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    /// Counts a request's cost (one atomic add).
    pub fn record(&self, cost_usd: f64) {
        if cost_usd > 0.0 && cost_usd.is_finite() {
            self.spent_nano_usd
                .fetch_add((cost_usd * 1e9).round() as u64, Ordering::Relaxed);
        }
    }
    pub fn spent_usd(&self) -> f64 {
        self.spent_nano_usd.load(Ordering::Relaxed) as f64 / 1e9
    }
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }
}

/// Samples the spend every [`TICK`] and updates the decision and its gauges until shutdown.
pub async fn run(st: crate::AppState) {
    let cfg = st.cfg.budget.clone();
    st.metrics
        .budget_mode
        .get_or_create(&crate::metrics::ModeLabels {
            mode: cfg.mode.as_str(),
        })
        .set(cfg.enabled() as i64);
    if !cfg.enabled() {
        return;
    }
    let origin = Instant::now();
    let mut window = CostWindow::new(cfg.window);
    let mut state = BudgetState { exceeded: false };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = st.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let per_min = window.observe(origin.elapsed(), st.budget.spent_usd());
        let next = state.update(&cfg, per_min);
        if next != state {
            tracing::info!(
                cost_per_min = per_min,
                budget = cfg.usd_per_min,
                exceeded = next.exceeded,
                mode = cfg.mode.as_str(),
                "cost budget state changed"
            );
        }
        state = next;
        st.budget.exceeded.store(state.exceeded, Ordering::Relaxed);
        st.metrics.budget_exceeded.set(state.exceeded as i64);
        st.metrics
            .budget_cost_per_min
            .set((per_min * 1e6).round() / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: BudgetMode) -> BudgetConfig {
        BudgetConfig {
            usd_per_min: 1.0,
            mode,
            window: Duration::from_secs(10),
            resume_ratio: 0.5,
        }
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn window_rate_is_per_minute_over_the_window() {
        let mut w = CostWindow::new(s(10.0));
        assert_eq!(w.observe(s(0.0), 0.0), 0.0);
        assert_eq!(w.observe(s(0.5), 0.1), 0.0, "under a second: no rate yet");
        // 0.1 USD per second = 6 USD per minute
        for i in 1..=30 {
            let r = w.observe(s(i as f64), i as f64 * 0.1);
            assert!((r - 6.0).abs() < 1e-9, "{i}: {r}");
        }
        // spend stops: the rate decays to 0 within one window
        let mut last = f64::MAX;
        for i in 31..=41 {
            let r = w.observe(s(i as f64), 3.0);
            assert!(r <= last);
            last = r;
        }
        assert_eq!(last, 0.0);
    }

    #[test]
    fn window_keeps_a_bounded_history() {
        let mut w = CostWindow::new(s(2.0));
        for i in 0..1000 {
            w.observe(s(i as f64 * 0.25), i as f64);
        }
        assert!(w.samples.len() <= 10, "{}", w.samples.len());
    }

    #[test]
    fn state_has_hysteresis() {
        let c = cfg(BudgetMode::Downgrade);
        let s0 = BudgetState { exceeded: false };
        assert!(!s0.update(&c, 1.0).exceeded, "at the budget is not over it");
        let over = s0.update(&c, 1.5);
        assert!(over.exceeded);
        assert!(over.update(&c, 0.75).exceeded, "between 0.5 and 1: holds");
        assert!(!over.update(&c, 0.49).exceeded, "under half: resumes");
        let off = BudgetConfig {
            usd_per_min: 0.0,
            ..c
        };
        assert!(!s0.update(&off, 1e9).exceeded, "no budget: never exceeded");
    }

    #[test]
    fn routing_touches_only_the_expensive_model_when_exceeded() {
        let models = [
            ModelConfig {
                base_ms: 0.0,
                per_token_ms: 0.0,
                price_per_1k: 0.002,
            },
            ModelConfig {
                base_ms: 0.0,
                per_token_ms: 0.0,
                price_per_1k: 0.001,
            },
        ];
        let order = price_order(&models);
        assert_eq!(order, Some((Version::V1, Version::V2)));
        let d = cfg(BudgetMode::Downgrade);
        assert_eq!(
            route(&d, false, order, Version::V1),
            Routing::Serve(Version::V1)
        );
        assert_eq!(
            route(&d, true, order, Version::V1),
            Routing::Downgrade {
                from: Version::V1,
                to: Version::V2
            }
        );
        assert_eq!(
            route(&d, true, order, Version::V2),
            Routing::Serve(Version::V2)
        );
        let t = cfg(BudgetMode::Throttle);
        assert_eq!(
            route(&t, true, order, Version::V1),
            Routing::Throttle {
                retry_after_secs: 10
            }
        );
        let same = [models[0].clone(), models[0].clone()];
        assert_eq!(price_order(&same), None);
        assert_eq!(
            route(&d, true, None, Version::V1),
            Routing::Serve(Version::V1)
        );
    }

    #[test]
    fn record_accumulates_nano_usd() {
        let b = Budget::default();
        b.record(0.00008);
        b.record(0.00002);
        b.record(-1.0);
        b.record(f64::NAN);
        assert!((b.spent_usd() - 0.0001).abs() < 1e-12);
    }
}

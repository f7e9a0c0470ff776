//! The capacity search itself, as a pure function of the steps run so far:
//! [`next_rate`]`(history)` says which rate to run next, or what the search concluded.
//!
//! The shape is MLPerf LoadGen's FindPeakPerformance and Triton perf_analyzer's binary
//! search (widen, then bisect against a latency bound), with two changes for noise, which
//! Balter admits makes a single set point fragile:
//!
//! 1. Bracket: double from `min` until a rate breaks (or `max` holds); when `min` itself
//!    breaks, halve down to `min / 8`.
//! 2. Bisect between the highest rate that holds and the lowest that breaks, until the
//!    bracket is narrower than `precision` of its low end.
//! 3. Confirm: run each of the two rates around the knee until it has `repeats` valid
//!    trials. A rate *holds* when most of its valid trials passed (a tie breaks), so a lucky
//!    or unlucky trial flips the bracket and the search bisects again where it must.
//!
//! The result is a rate with an interval ([`Conclusion`]): the estimate is the highest rate
//! that holds below the lowest that breaks; the interval runs from the highest rate whose
//! every trial passed to the lowest rate whose every trial failed, so a knee that moves
//! between trials widens the interval instead of hiding in one lucky number.
//!
//! Invalid trials (the generator, not the target, was the limit) count for nothing: such a
//! step is run once more, and a rate invalid twice is the generator's ceiling. Above it
//! nothing can be claimed; below it the search goes on, and it ends as
//! [`Outcome::GeneratorLimited`] with no capacity (only the rate the target was seen to
//! hold) rather than a false one.
//!
//! Rates are rounded to 4 significant digits, so trials of "the same" rate are counted
//! together and reports read well.
use serde::{Deserialize, Serialize};

use schemars::JsonSchema;

/// What a step's judgement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepVerdict {
    /// Every threshold held over the step's judged part.
    Pass,
    /// A threshold broke: the target could not hold the rate.
    Fail,
    /// The generator was the limit (dropped arrivals while the target kept up, its own CPU
    /// saturated): the step says nothing about the target.
    Invalid,
}

impl StepVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            StepVerdict::Pass => "pass",
            StepVerdict::Fail => "fail",
            StepVerdict::Invalid => "invalid",
        }
    }
}

/// One step run: its rate and verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub rate: f64,
    pub verdict: StepVerdict,
}

/// Why a step is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Doubling up from `min` (or halving down from it).
    Bracket,
    /// Halving the bracket.
    Bisect,
    /// Repeating a rate around the knee.
    Confirm,
    /// Running an invalid step once more.
    Retry,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Bracket => "bracket",
            Phase::Bisect => "bisect",
            Phase::Confirm => "confirm",
            Phase::Retry => "retry",
        }
    }
}

/// How the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The knee was found to the precision asked, with its interval.
    Found,
    /// Every rate up to `max` held: the capacity is at least `max`.
    AtLeastMax,
    /// Even `min / 8` broke: the capacity is below every rate tried.
    BelowMin,
    /// The generator ran out before the target did: no capacity can be claimed above the
    /// highest rate the target held.
    GeneratorLimited,
    /// `max_steps` ran out before the search converged.
    StepLimit,
    /// Ctrl-C / SIGTERM stopped the search.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::AtLeastMax => "at_least_max",
            Outcome::BelowMin => "below_min",
            Outcome::GeneratorLimited => "generator_limited",
            Outcome::StepLimit => "step_limit",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What the search concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conclusion {
    pub outcome: Outcome,
    /// The highest rate that holds (only when the knee was found).
    pub max_rate: Option<f64>,
    /// The highest rate whose every trial passed, at or below the estimate: the target
    /// holds at least this.
    pub low: Option<f64>,
    /// The lowest rate above the estimate whose every trial failed.
    pub high: Option<f64>,
    /// The lowest rate at which the generator ran out (twice), if it did.
    pub generator_ceiling: Option<f64>,
}

/// The search's settings (from the plan's `capacity:` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    pub min: f64,
    pub max: f64,
    /// Fraction, e.g. 0.05.
    pub precision: f64,
    pub repeats: u32,
    pub max_steps: u32,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Run { rate: f64, phase: Phase },
    Done(Conclusion),
}

/// How far below `min` the search halves before it concludes [`Outcome::BelowMin`].
const FLOOR_DIVISOR: f64 = 8.0;
/// Invalid trials of one rate that make it the generator's ceiling.
const INVALID_LIMIT: u32 = 2;

/// `v` rounded to 4 significant digits (rates are compared after this).
pub fn round_rate(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return v;
    }
    let e = v.log10().floor() as i32 - 3;
    if e < 0 {
        let scale = 10f64.powi(-e);
        (v * scale).round() / scale
    } else {
        let mag = 10f64.powi(e);
        (v / mag).round() * mag
    }
}

/// The trials of one rate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    rate: f64,
    pass: u32,
    fail: u32,
    invalid: u32,
}

impl Tally {
    fn valid(&self) -> u32 {
        self.pass + self.fail
    }
    /// Most valid trials passed.
    fn holds(&self) -> bool {
        self.valid() > 0 && self.pass > self.fail
    }
    /// At least half of the valid trials failed.
    fn breaks(&self) -> bool {
        self.valid() > 0 && self.fail >= self.pass
    }
    fn solid_pass(&self) -> bool {
        self.valid() > 0 && self.fail == 0
    }
    fn solid_fail(&self) -> bool {
        self.valid() > 0 && self.pass == 0
    }
}

/// Trials grouped by (rounded) rate, ascending.
fn tallies(history: &[Trial]) -> Vec<Tally> {
    let mut out: Vec<Tally> = Vec::new();
    for t in history {
        let rate = round_rate(t.rate);
        let i = match out.iter().position(|x| x.rate == rate) {
            Some(i) => i,
            None => {
                out.push(Tally {
                    rate,
                    ..Tally::default()
                });
                out.len() - 1
            }
        };
        match t.verdict {
            StepVerdict::Pass => out[i].pass += 1,
            StepVerdict::Fail => out[i].fail += 1,
            StepVerdict::Invalid => out[i].invalid += 1,
        }
    }
    out.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    out
}

/// The bracket as the history stands: `(lo, hi, generator ceiling)`.
struct Bracket {
    /// The highest rate that holds below the ceiling.
    lo: Option<Tally>,
    /// The lowest rate that breaks (below the generator's ceiling).
    hi: Option<Tally>,
    generator: Option<f64>,
}

fn bracket(t: &[Tally]) -> Bracket {
    let generator = t
        .iter()
        .find(|x| x.invalid >= INVALID_LIMIT && x.valid() == 0)
        .map(|x| x.rate);
    let below_gen = |x: &&Tally| generator.is_none_or(|g| x.rate < g);
    let hi = t.iter().filter(below_gen).find(|x| x.breaks()).copied();
    let ceiling = match (hi, generator) {
        (Some(h), Some(g)) => Some(h.rate.min(g)),
        (Some(h), None) => Some(h.rate),
        (None, g) => g,
    };
    let lo = t
        .iter()
        .rev()
        .filter(|x| ceiling.is_none_or(|c| x.rate < c))
        .find(|x| x.holds())
        .copied();
    Bracket { lo, hi, generator }
}

/// The next step of the search, or its conclusion, from the steps run so far.
pub fn next_rate(history: &[Trial], cfg: &SearchConfig) -> Next {
    let t = tallies(history);
    if history.len() as u32 >= cfg.max_steps {
        return Next::Done(conclude(history, cfg, Outcome::StepLimit));
    }
    // An invalid step is run once more before its rate counts as the generator's ceiling.
    if let Some(last) = history.last() {
        let rate = round_rate(last.rate);
        let tally = t
            .iter()
            .find(|x| x.rate == rate)
            .copied()
            .unwrap_or_default();
        if last.verdict == StepVerdict::Invalid
            && tally.invalid < INVALID_LIMIT
            && tally.valid() == 0
        {
            return Next::Run {
                rate,
                phase: Phase::Retry,
            };
        }
    }
    let b = bracket(&t);
    let gen_bound = |c: f64| {
        b.generator
            .is_some_and(|g| b.hi.is_none_or(|h| g <= h.rate) && g == c)
    };
    let ceiling = match (b.hi, b.generator) {
        (Some(h), Some(g)) => Some(h.rate.min(g)),
        (Some(h), None) => Some(h.rate),
        (None, g) => g,
    };
    let run = |rate: f64, phase: Phase| Next::Run {
        rate: round_rate(rate),
        phase,
    };
    match (b.lo, ceiling) {
        (None, None) => run(cfg.min, Phase::Bracket),
        (None, Some(c)) => {
            if gen_bound(c) {
                return Next::Done(conclude(history, cfg, Outcome::GeneratorLimited));
            }
            let next = round_rate(c / 2.0);
            if next < round_rate(cfg.min / FLOOR_DIVISOR) {
                Next::Done(conclude(history, cfg, Outcome::BelowMin))
            } else {
                run(next, Phase::Bracket)
            }
        }
        (Some(lo), None) => {
            if lo.rate >= round_rate(cfg.max) {
                Next::Done(conclude(history, cfg, Outcome::AtLeastMax))
            } else {
                run((lo.rate * 2.0).min(cfg.max), Phase::Bracket)
            }
        }
        (Some(lo), Some(c)) => {
            let mid = round_rate((lo.rate + c) / 2.0);
            if (c - lo.rate) / lo.rate > cfg.precision && mid > lo.rate && mid < c {
                return run(mid, Phase::Bisect);
            }
            if gen_bound(c) {
                return Next::Done(conclude(history, cfg, Outcome::GeneratorLimited));
            }
            if lo.valid() < cfg.repeats {
                return run(lo.rate, Phase::Confirm);
            }
            if let Some(h) = b.hi.filter(|h| h.valid() < cfg.repeats) {
                return run(h.rate, Phase::Confirm);
            }
            Next::Done(conclude(history, cfg, Outcome::Found))
        }
    }
}

/// What the history shows, for a search that ended with `outcome`.
pub fn conclude(history: &[Trial], _cfg: &SearchConfig, outcome: Outcome) -> Conclusion {
    let t = tallies(history);
    let b = bracket(&t);
    let lo = b.lo.map(|x| x.rate);
    let low = lo.and_then(|lo| {
        t.iter()
            .rev()
            .filter(|x| x.rate <= lo)
            .find(|x| x.solid_pass())
            .map(|x| x.rate)
    });
    let high = t
        .iter()
        .filter(|x| lo.is_none_or(|lo| x.rate > lo))
        .find(|x| x.solid_fail())
        .map(|x| x.rate);
    let (max_rate, low, high) = match outcome {
        Outcome::Found => (lo, low, high),
        // Nothing above `max` (nor above the generator's ceiling) was seen: no upper end.
        Outcome::AtLeastMax | Outcome::GeneratorLimited => (None, low, None),
        Outcome::BelowMin => (None, None, high),
        Outcome::StepLimit | Outcome::Interrupted => (None, low, high),
    };
    Conclusion {
        outcome,
        max_rate,
        low,
        high,
        generator_ceiling: b.generator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SearchConfig {
        SearchConfig {
            min: 10.0,
            max: 100_000.0,
            precision: 0.05,
            repeats: 3,
            max_steps: 40,
        }
    }

    /// Run the search against a target whose every trial is `judge(rate, n)` (n: the how
    /// many-th trial of the search); returns the trials and the conclusion.
    fn drive(
        cfg: &SearchConfig,
        mut judge: impl FnMut(f64, usize) -> StepVerdict,
    ) -> (Vec<Trial>, Conclusion) {
        let mut h = Vec::new();
        for _ in 0..100 {
            match next_rate(&h, cfg) {
                Next::Run { rate, .. } => {
                    let verdict = judge(rate, h.len());
                    h.push(Trial { rate, verdict });
                }
                Next::Done(c) => return (h, c),
            }
        }
        panic!("the search did not end: {h:?}");
    }

    fn knee(k: f64) -> impl FnMut(f64, usize) -> StepVerdict {
        move |r, _| {
            if r <= k {
                StepVerdict::Pass
            } else {
                StepVerdict::Fail
            }
        }
    }

    #[test]
    fn brackets_by_doubling_from_min_then_bisects() {
        let (h, c) = drive(&cfg(), knee(365.0));
        let rates: Vec<f64> = h.iter().map(|t| t.rate).collect();
        assert_eq!(&rates[..7], &[10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0]);
        assert_eq!(
            rates[7], 480.0,
            "the first bisection is the bracket's middle"
        );
        assert_eq!(c.outcome, Outcome::Found);
        let m = c.max_rate.unwrap();
        assert!((365.0 / 1.05..=365.0).contains(&m), "{m}");
        let (lo, hi) = (c.low.unwrap(), c.high.unwrap());
        assert!(lo <= 365.0 && 365.0 < hi, "[{lo}, {hi}]");
        assert!(
            (hi - lo) / lo <= 0.05 + 1e-9,
            "[{lo}, {hi}] is within the precision"
        );
    }

    #[test]
    fn the_two_rates_around_the_knee_are_repeated() {
        let (h, c) = drive(&cfg(), knee(365.0));
        let lo = c.low.unwrap();
        let hi = c.high.unwrap();
        let n = |r: f64| h.iter().filter(|t| t.rate == r).count();
        assert_eq!(n(lo), 3);
        assert_eq!(n(hi), 3);
        assert!(h.len() < 25, "{} steps", h.len());
    }

    #[test]
    fn a_noisy_knee_widens_the_interval_and_the_estimate_holds_most_trials() {
        // Rates from 350 to 380 pass on every other trial: the knee is fuzzy there.
        let mut flip = false;
        let (h, c) = drive(&cfg(), |r, _| {
            if r < 350.0 {
                StepVerdict::Pass
            } else if r > 380.0 {
                StepVerdict::Fail
            } else {
                flip = !flip;
                if flip {
                    StepVerdict::Pass
                } else {
                    StepVerdict::Fail
                }
            }
        });
        assert_eq!(c.outcome, Outcome::Found, "{h:?}");
        let (lo, hi) = (c.low.unwrap(), c.high.unwrap());
        assert!(
            lo < 350.0,
            "the interval starts where every trial passed: {lo}"
        );
        assert!(hi >= 350.0, "the interval reaches the fuzzy zone: {hi}");
        let m = c.max_rate.unwrap();
        assert!(lo <= m && m < hi, "{lo} <= {m} < {hi}");
    }

    #[test]
    fn min_breaking_halves_down_then_gives_up() {
        let (h, c) = drive(&cfg(), knee(3.0));
        assert_eq!(c.outcome, Outcome::Found, "{h:?}");
        assert!(c.max_rate.unwrap() <= 3.0);
        let (h, c) = drive(&cfg(), knee(0.1));
        assert_eq!(c.outcome, Outcome::BelowMin);
        assert_eq!(c.max_rate, None);
        assert_eq!(h[0].rate, 10.0);
        assert!(h.iter().all(|t| t.rate >= 1.25));
    }

    #[test]
    fn holding_max_ends_at_least_max_without_a_capacity() {
        let c = SearchConfig {
            max: 300.0,
            ..cfg()
        };
        let (h, c) = drive(&c, knee(1e9));
        assert_eq!(c.outcome, Outcome::AtLeastMax);
        assert_eq!(c.max_rate, None);
        assert_eq!(c.low, Some(300.0));
        assert_eq!(h.last().unwrap().rate, 300.0, "max itself is tried");
    }

    #[test]
    fn an_invalid_step_is_retried_once_then_is_the_generators_ceiling() {
        // The target holds 1000/s, the generator only 100/s.
        let (h, c) = drive(&cfg(), |r, _| {
            if r > 100.0 {
                StepVerdict::Invalid
            } else {
                StepVerdict::Pass
            }
        });
        assert_eq!(c.outcome, Outcome::GeneratorLimited, "{h:?}");
        assert_eq!(c.max_rate, None, "no false capacity");
        let low = c.low.unwrap();
        assert!((90.0..=100.0).contains(&low), "{low}");
        assert_eq!(c.high, None);
        let g = c.generator_ceiling.unwrap();
        assert!(g > 100.0 && g <= 110.0, "{g}");
        // Every invalid rate was tried twice, back to back.
        for w in h.windows(2) {
            if w[0].verdict == StepVerdict::Invalid && w[0].rate != w[1].rate {
                let n = h.iter().filter(|t| t.rate == w[0].rate).count();
                assert_eq!(n, 2, "{h:?}");
            }
        }
    }

    #[test]
    fn a_generator_out_at_min_concludes_at_once() {
        let (h, c) = drive(&cfg(), |_, _| StepVerdict::Invalid);
        assert_eq!(h.len(), 2);
        assert_eq!(c.outcome, Outcome::GeneratorLimited);
        assert_eq!((c.max_rate, c.low), (None, None));
    }

    #[test]
    fn a_transient_invalid_step_does_not_end_the_search() {
        let (h, c) = drive(&cfg(), |r, n| {
            if n == 3 {
                StepVerdict::Invalid
            } else if r <= 365.0 {
                StepVerdict::Pass
            } else {
                StepVerdict::Fail
            }
        });
        assert_eq!(c.outcome, Outcome::Found, "{h:?}");
        assert_eq!(h[3].rate, h[4].rate, "retried");
    }

    #[test]
    fn max_steps_bounds_the_search() {
        let c = SearchConfig {
            max_steps: 5,
            ..cfg()
        };
        let (h, c) = drive(&c, knee(365.0));
        assert_eq!(h.len(), 5);
        assert_eq!(c.outcome, Outcome::StepLimit);
        assert_eq!(c.max_rate, None);
    }

    #[test]
    fn rates_round_to_four_significant_digits() {
        assert_eq!(round_rate(365.123), 365.1);
        assert_eq!(round_rate(123_456.0), 123_500.0);
        assert_eq!(round_rate(0.012345), 0.01235);
    }
}

//! `loadgate report --compare BASELINE_DIR DIR`: what changed between two runs, per scenario
//! and per check, from their stored results (`results/`), as a terminal table, JSON
//! (`compare.json`) and an HTML page (`compare.html`, both runs' curves overlaid); with
//! `--max-regression` a CI gate (exit 99).
//!
//! Limits (`--max-regression`), comma-separated `METRIC=LIMIT` (every scenario) or
//! `METRIC{scenario:NAME}=LIMIT` (one scenario, as a threshold's tag filter):
//!
//! ```text
//! p50 | p90 | p95 | p99 | p999 | mean | max  =  N%   latency rose by more than N percent
//!                                           =  Nms  latency rose by more than N ms
//! error_rate                                =  Npp  the failed share rose by more than N
//!                                                   percentage points (0.5pp: 0.1% -> 0.6%)
//! rps                                       =  N%   throughput fell by more than N percent
//! ```
//!
//! Noise is not a regression: a latency limit is broken only when the percentile moved past
//! it **and** the whole distributions differ: a one-sided Mann-Whitney U test "this run is
//! slower" over the two runs' stored histograms (every recorded value with its count, see
//! [`crate::checks::mannwhitney`]) is significant at [`ALPHA`] **and**, when the runs stored
//! their per-second histograms, the percentile's rise is beyond each run's own
//! second-to-second variation: a block bootstrap ([`BOOTSTRAP`] resamples of the seconds,
//! with replacement, at most 60 blocks a run, fixed seed) gives a 95% interval of the ratio
//! this run / baseline whose lower end must exceed 1 (a stall of a few seconds in one run
//! widens it). An error-rate limit needs a one-sided two-proportion z-test at [`ALPHA`].
//! Throughput is compared as measured.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::html::esc;
use super::summary::{ScenarioSummary, Summary};
use crate::checks::mannwhitney::{mann_whitney_u, normal_sf, Alternative, Method, Weighted};
use crate::metrics::format_number;

/// Significance level of the noise tests.
pub const ALPHA: f64 = 0.01;
/// Resamples of the block bootstrap.
pub const BOOTSTRAP: usize = 400;
/// Most blocks a run's seconds are grouped into before resampling.
const MAX_BLOCKS: usize = 60;

/// Per scenario: the run's seconds' latency histograms, in order (µs).
pub type Seconds = BTreeMap<String, Vec<Histogram<u64>>>;

/// The 95% block-bootstrap interval of `quantile(current) / quantile(baseline)` over the
/// runs' seconds; None with fewer than 3 seconds on a side.
pub fn bootstrap_ratio(
    baseline: &[Histogram<u64>],
    current: &[Histogram<u64>],
    quantile: f64,
) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    fn blocks(secs: &[Histogram<u64>]) -> Vec<Histogram<u64>> {
        let secs: Vec<&Histogram<u64>> = secs.iter().filter(|h| !h.is_empty()).collect();
        let width = secs.len().div_ceil(MAX_BLOCKS).max(1);
        secs.chunks(width)
            .map(|c| {
                let mut h = crate::metrics::new_histogram();
                for s in c {
                    let _ = h.add(*s);
                }
                h
            })
            .collect()
    }
    let (b, c) = (blocks(baseline), blocks(current));
    if b.len() < 3 || c.len() < 3 {
        return None;
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x10ad_6a7e);
    let resample = |set: &[Histogram<u64>], rng: &mut rand::rngs::SmallRng| {
        let mut h = crate::metrics::new_histogram();
        for _ in 0..set.len() {
            let _ = h.add(&set[rng.random_range(0..set.len())]);
        }
        h.value_at_quantile(quantile) as f64
    };
    let mut ratios: Vec<f64> = (0..BOOTSTRAP)
        .filter_map(|_| {
            let bv = resample(&b, &mut rng);
            let cv = resample(&c, &mut rng);
            (bv > 0.0).then(|| cv / bv)
        })
        .collect();
    if ratios.len() < BOOTSTRAP / 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

fn quantile_of(metric: &str) -> Option<f64> {
    Some(match metric {
        "p50" => 0.5,
        "p90" => 0.9,
        "p95" => 0.95,
        "p99" => 0.99,
        "p999" => 0.999,
        _ => return None,
    })
}

/// A `--max-regression` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("--max-regression {text:?}: {reason}")]
pub struct LimitError {
    pub text: String,
    pub reason: String,
}

/// What a limit bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum Bound {
    /// Relative increase (latency) or decrease (rps), percent.
    Percent(f64),
    /// Absolute latency increase, ms.
    Ms(f64),
    /// Error-rate increase, percentage points.
    Pp(f64),
}

/// One `METRIC=LIMIT` or `METRIC{scenario:NAME}=LIMIT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Limit {
    pub metric: String,
    /// The one scenario it applies to (None: every scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    pub bound: Bound,
    /// As written.
    pub text: String,
}

const LATENCY: [&str; 7] = ["p50", "p90", "p95", "p99", "p999", "mean", "max"];

/// Parse `p95=10%,error_rate=0.5pp`.
pub fn parse_limits(text: &str) -> Result<Vec<Limit>, LimitError> {
    let err = |reason: String| LimitError {
        text: text.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (metric, value) = part
            .split_once('=')
            .ok_or_else(|| err(format!("{part:?}: expected METRIC=LIMIT, e.g. p95=10%")))?;
        let (metric, value) = (metric.trim(), value.trim());
        let (metric, scenario) = match metric.split_once('{') {
            None => (metric, None),
            Some((m, rest)) => {
                let name = rest
                    .strip_suffix('}')
                    .and_then(|r| r.trim().strip_prefix("scenario:"))
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        err(format!(
                            "{part:?}: a filter is {{scenario:NAME}}, e.g. p95{{scenario:chat}}=10%"
                        ))
                    })?;
                (m.trim(), Some(name.to_string()))
            }
        };
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| err(format!("{part:?}: {s:?} is not a non-negative number")))
        };
        let bound = if LATENCY.contains(&metric) {
            if let Some(v) = value.strip_suffix('%') {
                Bound::Percent(num(v)?)
            } else if let Some(v) = value.strip_suffix("ms") {
                Bound::Ms(num(v)?)
            } else {
                return Err(err(format!(
                    "{part:?}: a latency limit is N% or Nms, e.g. {metric}=10%"
                )));
            }
        } else if metric == "error_rate" {
            match value.strip_suffix("pp") {
                Some(v) => Bound::Pp(num(v)?),
                None => {
                    return Err(err(format!(
                    "{part:?}: the error-rate limit is in percentage points, e.g. error_rate=0.5pp"
                )))
                }
            }
        } else if metric == "rps" {
            match value.strip_suffix('%') {
                Some(v) => Bound::Percent(num(v)?),
                None => return Err(err(format!("{part:?}: the rps limit is N%, e.g. rps=5%"))),
            }
        } else {
            return Err(err(format!(
                "{part:?}: unknown metric {metric:?}; use p50, p90, p95, p99, p999, mean, max, error_rate or rps"
            )));
        };
        out.push(Limit {
            metric: metric.to_string(),
            scenario,
            bound,
            text: part.to_string(),
        });
    }
    if out.is_empty() {
        return Err(err("no limit given, e.g. p95=10%,error_rate=0.5pp".into()));
    }
    Ok(out)
}

/// One number in both runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    pub baseline: f64,
    pub current: f64,
    /// current - baseline.
    pub change: f64,
    /// change / baseline, percent (absent when the baseline is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_pct: Option<f64>,
}

impl Delta {
    fn of(baseline: f64, current: f64) -> Delta {
        Delta {
            baseline,
            current,
            change: current - baseline,
            change_pct: (baseline != 0.0).then(|| 100.0 * (current - baseline) / baseline),
        }
    }
}

/// The latency distributions of both runs, tested.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyTest {
    /// One-sided Mann-Whitney U p-value of "this run is slower than the baseline".
    pub p_value: f64,
    /// p < ALPHA.
    pub slower: bool,
}

/// One scenario in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioDelta {
    pub name: String,
    pub requests: Delta,
    pub rps: Delta,
    /// Failed share, percent.
    pub error_rate_pct: Delta,
    /// Latency percentiles, ms (intended send → last byte).
    pub latency_ms: BTreeMap<String, Delta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_test: Option<LatencyTest>,
    /// Per limited percentile: the 95% block-bootstrap interval of this run / baseline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bootstrap_ratio: BTreeMap<String, [f64; 2]>,
    /// One-sided two-proportion z-test p-value of "this run fails more".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_p_value: Option<f64>,
}

/// One check in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckDelta {
    pub name: String,
    pub kind: crate::checks::CheckKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<CheckSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CheckSide>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckSide {
    pub passed: bool,
    pub observed: String,
}

/// A limit broken by a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Regression {
    pub scenario: String,
    pub limit: String,
    /// What moved, e.g. `p95 41.2 -> 55.0 ms (+33.5%), Mann-Whitney p=1e-12`.
    pub detail: String,
}

/// The comparison (compare.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// The two runs' output directories as given.
    pub baseline_dir: String,
    pub current_dir: String,
    pub baseline_verdict: String,
    pub current_verdict: String,
    pub scenarios: Vec<ScenarioDelta>,
    pub checks: Vec<CheckDelta>,
    pub limits: Vec<Limit>,
    /// Limits broken (beyond noise).
    pub regressions: Vec<Regression>,
    /// Limits that moved past their bound but whose test was not significant (noise).
    pub within_noise: Vec<Regression>,
    /// No limit broken.
    pub passed: bool,
}

fn weighted(h: &Histogram<u64>) -> Weighted {
    Weighted::from_counts(
        h.iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 / 1000.0, v.count_at_value()))
            .collect(),
    )
}

fn error_rate(s: &ScenarioSummary) -> f64 {
    if s.requests == 0 {
        0.0
    } else {
        100.0 * s.errors as f64 / s.requests as f64
    }
}

/// One-sided two-proportion z-test: does `b` (k2 of n2) fail more than `a` (k1 of n1)?
fn proportion_p(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let p = (k1 + k2) as f64 / (n1 + n2) as f64;
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return Some(if p2 > p1 { 0.0 } else { 1.0 });
    }
    Some(normal_sf((p2 - p1) / se))
}

/// Compare `current` with `baseline` (summaries and per-scenario latency histograms, µs)
/// under `limits`.
pub fn compare(
    (baseline_dir, baseline, baseline_latency): (&str, &Summary, &BTreeMap<String, Histogram<u64>>),
    (current_dir, current, current_latency): (&str, &Summary, &BTreeMap<String, Histogram<u64>>),
    (baseline_seconds, current_seconds): (&Seconds, &Seconds),
    limits: &[Limit],
) -> Comparison {
    let mut scenarios = Vec::new();
    let mut regressions = Vec::new();
    let mut within_noise = Vec::new();
    for (name, cur) in &current.scenarios {
        let Some(base) = baseline.scenarios.get(name) else {
            continue;
        };
        let (bl, cl) = (&base.latency_ms, &cur.latency_ms);
        let latency_ms: BTreeMap<String, Delta> = [
            ("mean", bl.mean, cl.mean),
            ("p50", bl.p50, cl.p50),
            ("p90", bl.p90, cl.p90),
            ("p95", bl.p95, cl.p95),
            ("p99", bl.p99, cl.p99),
            ("p999", bl.p999, cl.p999),
            ("max", bl.max, cl.max),
        ]
        .into_iter()
        .map(|(k, b, c)| (k.to_string(), Delta::of(b, c)))
        .collect();
        let latency_test = match (baseline_latency.get(name), current_latency.get(name)) {
            (Some(b), Some(c)) if !b.is_empty() && !c.is_empty() => mann_whitney_u(
                &weighted(c),
                &weighted(b),
                Alternative::Greater,
                Method::Asymptotic,
                true,
            )
            .map(|r| LatencyTest {
                p_value: r.p_value,
                slower: r.p_value < ALPHA,
            }),
            _ => None,
        };
        let error_p_value = proportion_p(base.errors, base.requests, cur.errors, cur.requests);
        let mut bootstrap = BTreeMap::new();
        if let (Some(bs), Some(cs)) = (baseline_seconds.get(name), current_seconds.get(name)) {
            for l in limits
                .iter()
                .filter(|l| l.scenario.as_ref().is_none_or(|s| s == name))
            {
                if let Some(q) = quantile_of(&l.metric) {
                    if let Some((lo, hi)) = bootstrap_ratio(bs, cs, q) {
                        bootstrap.insert(l.metric.clone(), [lo, hi]);
                    }
                }
            }
        }
        let d = ScenarioDelta {
            bootstrap_ratio: bootstrap,
            name: name.clone(),
            requests: Delta::of(base.requests as f64, cur.requests as f64),
            rps: Delta::of(base.rps, cur.rps),
            error_rate_pct: Delta::of(error_rate(base), error_rate(cur)),
            latency_ms,
            latency_test,
            error_p_value,
        };
        for l in limits
            .iter()
            .filter(|l| l.scenario.as_ref().is_none_or(|s| s == name))
        {
            let (moved, significant, detail) = match (l.metric.as_str(), l.bound) {
                ("error_rate", Bound::Pp(max)) => {
                    let e = d.error_rate_pct;
                    let p = d.error_p_value.unwrap_or(1.0);
                    (
                        e.change > max,
                        p < ALPHA,
                        format!(
                            "error rate {}% -> {}% ({:+} pp), z-test p={}",
                            format_number(e.baseline),
                            format_number(e.current),
                            format_number(e.change),
                            fmt_p(p)
                        ),
                    )
                }
                ("rps", Bound::Percent(max)) => {
                    let r = d.rps;
                    (
                        r.change_pct.is_some_and(|c| -c > max),
                        true,
                        format!(
                            "rps {} -> {} ({}%)",
                            format_number(r.baseline),
                            format_number(r.current),
                            r.change_pct
                                .map(format_number)
                                .unwrap_or_else(|| "-".into())
                        ),
                    )
                }
                (m, bound) => {
                    let Some(x) = d.latency_ms.get(m) else {
                        continue;
                    };
                    let moved = match bound {
                        Bound::Percent(max) => x.change_pct.is_some_and(|c| c > max),
                        Bound::Ms(max) => x.change > max,
                        Bound::Pp(_) => false,
                    };
                    let p = d.latency_test.map(|t| t.p_value);
                    let interval = d.bootstrap_ratio.get(m);
                    (
                        moved,
                        d.latency_test.is_some_and(|t| t.slower)
                            && interval.is_none_or(|[lo, _]| *lo > 1.0),
                        format!(
                            "{m} {} -> {} ms ({}{}), Mann-Whitney p={}{}",
                            format_number(x.baseline),
                            format_number(x.current),
                            if x.change >= 0.0 { "+" } else { "" },
                            x.change_pct
                                .map(|c| format!("{}%", format_number(c)))
                                .unwrap_or_else(|| format!("{} ms", format_number(x.change))),
                            p.map(fmt_p).unwrap_or_else(|| "-".into()),
                            interval
                                .map(|[lo, hi]| format!(
                                    ", 95% interval of the ratio x{}-x{}",
                                    format_number(*lo),
                                    format_number(*hi)
                                ))
                                .unwrap_or_default()
                        ),
                    )
                }
            };
            if moved {
                let r = Regression {
                    scenario: name.clone(),
                    limit: l.text.clone(),
                    detail,
                };
                if significant {
                    regressions.push(r);
                } else {
                    within_noise.push(r);
                }
            }
        }
        scenarios.push(d);
    }
    let mut checks: Vec<CheckDelta> = Vec::new();
    let side = |c: &crate::checks::CheckResult| CheckSide {
        passed: c.passed,
        observed: c.observed.clone(),
    };
    for c in &current.checks {
        checks.push(CheckDelta {
            name: c.name.clone(),
            kind: c.kind,
            baseline: baseline.checks.iter().find(|b| b.name == c.name).map(side),
            current: Some(side(c)),
        });
    }
    for b in &baseline.checks {
        if !current.checks.iter().any(|c| c.name == b.name) {
            checks.push(CheckDelta {
                name: b.name.clone(),
                kind: b.kind,
                baseline: Some(side(b)),
                current: None,
            });
        }
    }
    let verdict = |s: &Summary| if s.passed() { "pass" } else { "fail" }.to_string();
    Comparison {
        baseline_dir: baseline_dir.to_string(),
        current_dir: current_dir.to_string(),
        baseline_verdict: verdict(baseline),
        current_verdict: verdict(current),
        scenarios,
        checks,
        limits: limits.to_vec(),
        passed: regressions.is_empty(),
        regressions,
        within_noise,
    }
}

/// A p-value for people: tiny ones in scientific notation (never a bare `0`).
fn fmt_p(p: f64) -> String {
    if p > 0.0 && p < 1e-3 {
        format!("{p:.1e}")
    } else if p == 0.0 {
        "<1e-300".into()
    } else {
        format_number(p)
    }
}

fn pct(d: &Delta) -> String {
    d.change_pct
        .map(|c| format!("{}{}%", if c >= 0.0 { "+" } else { "" }, format_number(c)))
        .unwrap_or_else(|| "-".into())
}

fn rows(c: &Comparison) -> Vec<[String; 5]> {
    let mut out = Vec::new();
    for s in &c.scenarios {
        let mut push = |metric: &str, d: &Delta, change: String| {
            out.push([
                s.name.clone(),
                metric.to_string(),
                format_number(d.baseline),
                format_number(d.current),
                change,
            ])
        };
        push("requests", &s.requests, pct(&s.requests));
        push("rps", &s.rps, pct(&s.rps));
        push(
            "error rate %",
            &s.error_rate_pct,
            format!("{:+} pp", format_number(s.error_rate_pct.change)),
        );
        for k in ["p50", "p90", "p95", "p99", "p999", "max"] {
            if let Some(d) = s.latency_ms.get(k) {
                let mut ch = pct(d);
                if k == "p95" {
                    if let Some(t) = &s.latency_test {
                        ch.push_str(&format!(
                            " (MW p={}{})",
                            fmt_p(t.p_value),
                            if t.slower { ", slower" } else { "" }
                        ));
                    }
                }
                push(&format!("{k} ms"), d, ch);
            }
        }
    }
    out
}

/// The terminal table (ends with a newline).
pub fn table(c: &Comparison) -> String {
    use tabled::builder::Builder;
    use tabled::settings::Style;
    let mut b = Builder::default();
    b.push_record(["scenario", "metric", "baseline", "this run", "change"]);
    for r in rows(c) {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::rounded());
    let mut out = format!(
        "compare: {} (baseline, {}) -> {} ({})\n",
        c.baseline_dir, c.baseline_verdict, c.current_dir, c.current_verdict
    );
    out.push_str(&t.to_string());
    out.push('\n');
    for ch in &c.checks {
        let show = |s: &Option<CheckSide>| {
            s.as_ref()
                .map(|s| {
                    format!(
                        "{} ({})",
                        if s.passed { "PASS" } else { "FAIL" },
                        s.observed
                    )
                })
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "check {}: {} -> {}\n",
            ch.name,
            show(&ch.baseline),
            show(&ch.current)
        ));
    }
    for r in &c.within_noise {
        out.push_str(&format!(
            "within noise: {} {}: {}\n",
            r.scenario, r.limit, r.detail
        ));
    }
    for r in &c.regressions {
        out.push_str(&format!(
            "REGRESSION: {} {}: {}\n",
            r.scenario, r.limit, r.detail
        ));
    }
    if !c.limits.is_empty() {
        let limits: Vec<&str> = c.limits.iter().map(|l| l.text.as_str()).collect();
        out.push_str(&format!(
            "compare verdict: {} (limits {})\n",
            if c.passed { "PASS" } else { "FAIL" },
            limits.join(",")
        ));
    }
    out
}

/// The comparison as an HTML fragment (report.html's compare section).
pub fn html(c: &Comparison) -> String {
    let mut o = format!(
        "<p>baseline <b>{}</b> ({}) → this run <b>{}</b> ({})</p>",
        esc(&c.baseline_dir),
        esc(&c.baseline_verdict),
        esc(&c.current_dir),
        esc(&c.current_verdict)
    );
    for r in &c.regressions {
        let _ = write!(
            o,
            "<div class=\"warn\"><span class=\"fail\">regression</span> {} {}: {}</div>",
            esc(&r.scenario),
            esc(&r.limit),
            esc(&r.detail)
        );
    }
    for r in &c.within_noise {
        let _ = write!(
            o,
            "<p class=\"note\">within noise: {} {}: {}</p>",
            esc(&r.scenario),
            esc(&r.limit),
            esc(&r.detail)
        );
    }
    let rows: Vec<Vec<String>> = rows(c)
        .into_iter()
        .map(|r| r.iter().map(|x| esc(x)).collect())
        .collect();
    o.push_str(&super::html::table(
        &["scenario", "metric", "baseline", "this run", "change"],
        &rows,
        &[2, 3],
    ));
    let crow: Vec<Vec<String>> = c
        .checks
        .iter()
        .map(|ch| {
            let show = |s: &Option<CheckSide>| {
                s.as_ref()
                    .map(|s| {
                        format!(
                            "{} {}",
                            super::html::verdict_cell(s.passed),
                            esc(&s.observed)
                        )
                    })
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                esc(&ch.name),
                esc(ch.kind.as_str()),
                show(&ch.baseline),
                show(&ch.current),
            ]
        })
        .collect();
    if !crow.is_empty() {
        o.push_str("<h3>Checks</h3>");
        o.push_str(&super::html::table(
            &["check", "kind", "baseline", "this run"],
            &crow,
            &[],
        ));
    }
    if !c.limits.is_empty() {
        let _ = write!(
            o,
            "<p>Gate {}: {}</p>",
            super::html::verdict_cell(c.passed),
            esc(&c
                .limits
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join(","))
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_say_what_is_wrong() {
        let l = parse_limits("p95=10%,error_rate=0.5pp, p99=20ms,rps=5%").unwrap();
        assert_eq!(l[0].bound, Bound::Percent(10.0));
        assert_eq!(l[1].bound, Bound::Pp(0.5));
        assert_eq!(l[2].bound, Bound::Ms(20.0));
        assert_eq!(l[3].bound, Bound::Percent(5.0));
        assert!(parse_limits("p95=10")
            .unwrap_err()
            .reason
            .contains("N% or Nms"));
        assert!(parse_limits("error_rate=1%")
            .unwrap_err()
            .reason
            .contains("percentage points"));
        assert!(parse_limits("p42=1%")
            .unwrap_err()
            .reason
            .contains("unknown metric"));
        assert!(parse_limits("").is_err());
        let l = parse_limits("p95{scenario:chat}=10%").unwrap();
        assert_eq!(
            (l[0].metric.as_str(), l[0].scenario.as_deref()),
            ("p95", Some("chat"))
        );
        assert!(parse_limits("p95{name:x}=10%")
            .unwrap_err()
            .reason
            .contains("scenario:NAME"));
    }

    #[test]
    fn the_bootstrap_sees_a_shift_and_not_a_stall() {
        let second = |us: u64| {
            let mut h = crate::metrics::new_histogram();
            for i in 0..50 {
                h.record(us + i * 100).unwrap();
            }
            h
        };
        let base: Vec<_> = (0..10).map(|_| second(50_000)).collect();
        let slower: Vec<_> = (0..10).map(|_| second(65_000)).collect();
        let (lo, _) = bootstrap_ratio(&base, &slower, 0.95).unwrap();
        assert!(lo > 1.2, "{lo}");
        // The same run but for a 2-second stall: its interval reaches below 1.
        let mut stall = base.clone();
        stall[3] = second(400_000);
        stall[7] = second(400_000);
        let (lo, hi) = bootstrap_ratio(&base, &stall, 0.95).unwrap();
        assert!(lo <= 1.0 && hi > 1.0, "{lo} {hi}");
    }

    #[test]
    fn proportions() {
        assert!(proportion_p(10, 10_000, 100, 10_000).unwrap() < 1e-6);
        assert!(proportion_p(10, 10_000, 11, 10_000).unwrap() > 0.1);
    }
}

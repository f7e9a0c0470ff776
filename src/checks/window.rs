//! Windowed thresholds: `p(95)<250 over 30s` holds on every 30-second window of the run,
//! not just on the whole run (k6 #2379 asks for it; none of the anchors has it). A 10 s
//! stall in an hour-long run disappears in the whole-run p95 but not in the windows that
//! contain it.
//!
//! Windows are aligned to whole seconds of the run clock and slide by one second: the window
//! ending with second `s` covers seconds `s-W+1 ..= s` (samples belong to the second their
//! response completed in). A window with fewer samples than the threshold's `min_samples`
//! (none, say, before a scenario starts) is not judged. The threshold fails at the first
//! judged window that breaks it and reports that window's time; if no window could be judged
//! it fails with "no data" / "too few samples", never passes. A run shorter than the window
//! is judged once, as one partial window over the whole run.
//!
//! The judge is a fold over per-second slices ([`SecondSlice`]), so the run clock feeds it
//! live and a merge or a re-judged report can replay the same slices. Trend windows keep one
//! histogram per second and a running sum (add the new second, subtract the one leaving), so
//! a window costs two histogram operations per second whatever its length.
use std::collections::VecDeque;

use hdrhistogram::Histogram;

use super::threshold_eval::{scenario_level, scenario_matches, source_matches, ThresholdOutcome};
use crate::grammar::threshold::{metric_type, Aggregation, MetricType, Op, ThresholdExpr};
use crate::metrics::{format_number, new_histogram, ScenarioInfo, SecondSlice};
use crate::spec::ThresholdSpec;

/// One judged window: `[start, end)` in whole seconds of the run clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub value: f64,
    pub samples: u64,
}

/// What one second (or a window) holds of the threshold's metric under its filter.
#[derive(Debug, Clone)]
enum Acc {
    Trend(Histogram<u64>),
    /// A rate metric: numerator and denominator.
    Rate(u64, u64),
    /// A counter: the count and the population it is counted in (requests of the filter's
    /// scenarios; for `dropped_iterations` also the drops).
    Counter(u64, u64),
}

impl Acc {
    fn empty(ty: MetricType) -> Acc {
        match ty {
            MetricType::Trend => Acc::Trend(new_histogram()),
            MetricType::Rate => Acc::Rate(0, 0),
            MetricType::Counter | MetricType::Gauge => Acc::Counter(0, 0),
        }
    }

    fn add(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Trend(a), Acc::Trend(b)) => a.add(b).expect("auto-resizing histograms merge"),
            (Acc::Rate(n, d), Acc::Rate(n2, d2)) | (Acc::Counter(n, d), Acc::Counter(n2, d2)) => {
                *n += n2;
                *d += d2;
            }
            _ => unreachable!("one threshold, one metric type"),
        }
    }

    fn sub(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Trend(a), Acc::Trend(b)) => {
                // `b` was added before, so its values are inside `a`'s range and counts.
                let _ = a.subtract(b);
            }
            (Acc::Rate(n, d), Acc::Rate(n2, d2)) | (Acc::Counter(n, d), Acc::Counter(n2, d2)) => {
                *n -= n2;
                *d -= d2;
            }
            _ => unreachable!("one threshold, one metric type"),
        }
    }

    /// The metric's value over `seconds` seconds, and the samples behind it.
    fn value(&self, metric: &str, agg: Aggregation, seconds: u64) -> Option<(f64, u64)> {
        match self {
            Acc::Trend(h) => {
                if h.is_empty() {
                    return None;
                }
                let us = match agg {
                    Aggregation::Avg => h.mean(),
                    Aggregation::Min => h.min() as f64,
                    Aggregation::Max => h.max() as f64,
                    Aggregation::Med => h.value_at_quantile(0.5) as f64,
                    Aggregation::Percentile(p) => h.value_at_percentile(p) as f64,
                    _ => return None,
                };
                let _ = metric;
                Some((us / 1000.0, h.len()))
            }
            Acc::Rate(n, d) => (*d > 0).then(|| (*n as f64 / *d as f64, *d)),
            Acc::Counter(c, population) => {
                if *population == 0 {
                    return None;
                }
                match agg {
                    Aggregation::Count => Some((*c as f64, *population)),
                    Aggregation::Rate => Some((*c as f64 / seconds.max(1) as f64, *population)),
                    _ => None,
                }
            }
        }
    }
}

/// Judges one windowed threshold, second by second.
pub struct WindowJudge {
    metric: String,
    tags: Vec<(String, String)>,
    /// The scenario-level part of the filter (counters' population).
    population_tags: Vec<(String, String)>,
    expr: ThresholdExpr,
    ty: MetricType,
    min_samples: u64,
    width: u64,
    ring: VecDeque<Acc>,
    sum: Acc,
    /// The next second expected; missing seconds are empty.
    next_second: u64,
    judged: u64,
    failed: u64,
    first_failure: Option<Window>,
    worst: Option<Window>,
    /// The most samples any window had (for "too few samples").
    most_samples: u64,
}

impl WindowJudge {
    /// A judge for `spec` (which must have a window).
    pub fn new(spec: &ThresholdSpec) -> WindowJudge {
        let ty = metric_type(&spec.metric).unwrap_or(MetricType::Trend);
        let width = spec.expr.window.map(|w| w.as_secs().max(1)).unwrap_or(1);
        WindowJudge {
            metric: spec.metric.clone(),
            tags: spec.tags.clone(),
            population_tags: scenario_level(&spec.tags),
            expr: spec.expr.clone(),
            ty,
            min_samples: spec.min_samples.max(1),
            width,
            ring: VecDeque::with_capacity(width as usize + 1),
            sum: Acc::empty(ty),
            next_second: 0,
            judged: 0,
            failed: 0,
            first_failure: None,
            worst: None,
            most_samples: 0,
        }
    }

    /// The window's length in seconds.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// Windows judged so far.
    pub fn judged(&self) -> u64 {
        self.judged
    }

    /// Feed the next second. Returns the first failing window when it is this second's.
    pub fn push(&mut self, slice: &SecondSlice, infos: &[ScenarioInfo]) -> Option<Window> {
        let mut first = None;
        while self.next_second < slice.second {
            let s = self.next_second;
            if let Some(w) = self.advance(s, Acc::empty(self.ty)) {
                first.get_or_insert(w);
            }
        }
        if slice.second < self.next_second {
            return first; // already seen (out of order): ignore
        }
        let acc = self.second_acc(slice, infos);
        if let Some(w) = self.advance(slice.second, acc) {
            first.get_or_insert(w);
        }
        first
    }

    fn second_acc(&self, slice: &SecondSlice, infos: &[ScenarioInfo]) -> Acc {
        let mut acc = Acc::empty(self.ty);
        match &mut acc {
            Acc::Trend(h) => {
                let service = self.metric == "http_req_service_time";
                for (k, s) in &slice.series {
                    if source_matches(infos, k, &self.tags) {
                        let src = if service { &s.service } else { &s.duration };
                        h.add(src).expect("auto-resizing histograms merge");
                    }
                }
            }
            Acc::Rate(n, d) => {
                for (k, s) in &slice.series {
                    if source_matches(infos, k, &self.tags) {
                        if self.metric == "checks" {
                            *n += s.checks_passed;
                            *d += s.checks_passed + s.checks_failed;
                        } else {
                            *n += s.failed;
                            *d += s.requests;
                        }
                    }
                }
            }
            Acc::Counter(c, population) => {
                if self.metric == "dropped_iterations" {
                    for (i, info) in infos.iter().enumerate() {
                        if scenario_matches(info, &self.tags) {
                            let d = slice.dropped.get(i).copied().unwrap_or(0);
                            *c += d;
                            *population += d;
                        }
                    }
                    for (k, s) in &slice.series {
                        if infos
                            .get(k.scenario as usize)
                            .is_some_and(|i| scenario_matches(i, &self.tags))
                        {
                            *population += s.requests;
                        }
                    }
                } else {
                    for (k, s) in &slice.series {
                        if source_matches(infos, k, &self.population_tags) {
                            *population += s.requests;
                            if source_matches(infos, k, &self.tags) {
                                *c += s.requests;
                            }
                        }
                    }
                }
            }
        }
        acc
    }

    fn advance(&mut self, second: u64, acc: Acc) -> Option<Window> {
        self.next_second = second + 1;
        self.sum.add(&acc);
        self.ring.push_back(acc);
        if self.ring.len() as u64 > self.width {
            if let Some(old) = self.ring.pop_front() {
                self.sum.sub(&old);
            }
        }
        if self.ring.len() as u64 == self.width {
            return self.judge(second + 1 - self.width, second + 1);
        }
        None
    }

    fn judge(&mut self, start: u64, end: u64) -> Option<Window> {
        let (value, samples) = self
            .sum
            .value(&self.metric, self.expr.aggregation, end - start)?;
        self.most_samples = self.most_samples.max(samples);
        if samples < self.min_samples {
            return None;
        }
        self.judged += 1;
        let w = Window {
            start,
            end,
            value,
            samples,
        };
        let passes = self.expr.op.holds(value, self.expr.value);
        // The worst window is the one farthest in the failing direction (for `==` and `!=`:
        // the first failing one, else the first).
        let worse = match self.worst {
            None => true,
            Some(old) => match self.expr.op {
                Op::Lt | Op::Le => value > old.value,
                Op::Gt | Op::Ge => value < old.value,
                _ => !passes && self.expr.op.holds(old.value, self.expr.value),
            },
        };
        if worse {
            self.worst = Some(w);
        }
        if passes {
            return None;
        }
        self.failed += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(w);
            return Some(w);
        }
        None
    }

    /// The verdict over every window fed so far (call once the run's last second is in).
    pub fn outcome(&mut self) -> ThresholdOutcome {
        // A run shorter than the window: one partial window over the whole run.
        if self.judged == 0 && (self.ring.len() as u64) < self.width && !self.ring.is_empty() {
            let start = self.next_second - self.ring.len() as u64;
            self.judge(start, self.next_second);
        }
        let agg = self.expr.aggregation;
        let windows = |n: u64| {
            if n == 1 {
                "1 window".to_string()
            } else {
                format!("{n} windows")
            }
        };
        if self.judged == 0 {
            let mut o = ThresholdOutcome::no_data();
            if self.most_samples > 0 {
                o.observed = format!(
                    "too few samples in every window (at most {} < {})",
                    self.most_samples, self.min_samples
                );
            }
            return o;
        }
        let span = |w: &Window| format!("{}s-{}s", w.start, w.end);
        match self.first_failure {
            Some(f) => {
                let mut observed = format!(
                    "{agg}={} in {} (first of {} failing of {})",
                    format_number(f.value),
                    span(&f),
                    self.failed,
                    windows(self.judged)
                );
                if let Some(w) = self.worst.filter(|w| w.start != f.start) {
                    observed.push_str(&format!(
                        "; worst {agg}={} in {}",
                        format_number(w.value),
                        span(&w)
                    ));
                }
                ThresholdOutcome {
                    passed: false,
                    observed,
                    no_data: false,
                    value: Some(f.value),
                    samples: f.samples,
                }
            }
            None => {
                let w = self.worst.expect("a judged window");
                ThresholdOutcome {
                    passed: true,
                    observed: format!(
                        "worst {agg}={} in {} ({})",
                        format_number(w.value),
                        span(&w),
                        windows(self.judged)
                    ),
                    no_data: false,
                    value: Some(w.value),
                    samples: w.samples,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::threshold::ThresholdExpr;
    use crate::metrics::{SeriesKey, SeriesStats, SourceKind};

    fn info() -> Vec<ScenarioInfo> {
        vec![ScenarioInfo {
            name: "s".into(),
            kind: SourceKind::Scenario,
            ..Default::default()
        }]
    }

    fn spec(expr: &str) -> ThresholdSpec {
        ThresholdSpec {
            metric: "http_req_duration".into(),
            tags: vec![],
            key: "http_req_duration".into(),
            expr: ThresholdExpr::parse(expr).unwrap(),
            abort_on_fail: false,
            delay: std::time::Duration::ZERO,
            min_samples: 1,
            runbook: None,
        }
    }

    /// A second with `n` samples of `ms` milliseconds.
    fn second(second: u64, n: u64, ms: u64) -> SecondSlice {
        let mut s = SeriesStats::default();
        for _ in 0..n {
            s.duration.record(ms * 1000).unwrap();
            s.service.record(ms * 1000).unwrap();
        }
        s.requests = n;
        let key = SeriesKey {
            scenario: 0,
            request: 0,
            status: 200,
            error: None,
            variant: Default::default(),
        };
        SecondSlice {
            second,
            series: if n > 0 { vec![(key, s)] } else { vec![] },
            dropped: vec![0],
        }
    }

    #[test]
    fn a_stall_fails_its_window_but_not_the_whole_run() {
        // 60 s at 100 req/s of 5 ms; seconds 20..30 answer nothing, then 30 requests that
        // waited ~10 s complete in second 30 (the open model's stalled arrivals, max_vus 30).
        let mut j = WindowJudge::new(&spec("p(95)<250 over 10s"));
        let mut breach = None;
        for s in 0..60 {
            let slice = match s {
                20..=29 => second(s, 0, 0),
                30 => {
                    let mut a = second(s, 30, 10_000);
                    let b = second(s, 100, 5);
                    a.series[0].1.merge(&b.series[0].1);
                    a
                }
                _ => second(s, 100, 5),
            };
            if let Some(w) = j.push(&slice, &info()) {
                breach.get_or_insert(w);
            }
        }
        let b = breach.expect("a failing window");
        // The first window containing second 30 with few other samples: 21..31.
        assert_eq!((b.start, b.end), (21, 31));
        let o = j.outcome();
        assert!(!o.passed);
        assert!(o.observed.contains("in 21s-31s"), "{}", o.observed);
        // 51 windows of 10 s in 60 s; 20s-30s (the stall itself) has no sample.
        assert_eq!(j.judged(), 50);
    }

    #[test]
    fn passing_windows_report_the_worst() {
        let mut j = WindowJudge::new(&spec("p(95)<250 over 5s"));
        for s in 0..20 {
            j.push(&second(s, 10, if s == 7 { 200 } else { 5 }), &info());
        }
        let o = j.outcome();
        assert!(o.passed, "{}", o.observed);
        assert!(o.observed.starts_with("worst p(95)=200"), "{}", o.observed);
        assert!(o.observed.contains("(16 windows)"), "{}", o.observed);
    }

    #[test]
    fn empty_windows_are_not_judged_and_no_window_is_no_data() {
        let mut j = WindowJudge::new(&spec("p(95)<250 over 5s"));
        for s in 0..10 {
            j.push(&second(s, 0, 0), &info());
        }
        let o = j.outcome();
        assert!(!o.passed);
        assert_eq!(o.observed, "no data");
        let mut sp = spec("p(95)<250 over 5s");
        sp.min_samples = 100;
        let mut j = WindowJudge::new(&sp);
        for s in 0..10 {
            j.push(&second(s, 3, 5), &info());
        }
        let o = j.outcome();
        assert!(!o.passed);
        assert!(
            o.observed
                .contains("too few samples in every window (at most 15 < 100)"),
            "{}",
            o.observed
        );
    }

    #[test]
    fn a_run_shorter_than_the_window_is_one_partial_window() {
        let mut j = WindowJudge::new(&spec("p(95)<250 over 30s"));
        for s in 0..5 {
            j.push(&second(s, 10, 5), &info());
        }
        let o = j.outcome();
        assert!(o.passed, "{}", o.observed);
        assert!(o.observed.contains("0s-5s (1 window)"), "{}", o.observed);
    }

    #[test]
    fn missing_seconds_count_as_empty() {
        let mut j = WindowJudge::new(&spec("p(95)<250 over 2s"));
        j.push(&second(0, 10, 5), &info());
        j.push(&second(5, 10, 500), &info());
        let o = j.outcome();
        assert!(!o.passed);
        // Windows 0-2 (data), 1-3, 2-4, 3-5 (empty: skipped), 4-6 (the slow second).
        assert!(o.observed.contains("in 4s-6s"), "{}", o.observed);
        assert_eq!(j.judged(), 2);
    }
}

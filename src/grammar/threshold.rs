//! k6's threshold grammar: the expressions (`p(95)<250`), the metric keys they apply to
//! (`http_req_duration{scenario:chat}`), and which aggregation fits which metric.
//!
//! Plans use k6's syntax so users can bring their thresholds unchanged. Parsing is strict and
//! every error says what was expected; evaluation lives in [`crate::checks::threshold_eval`]
//! (re-exported here as [`evaluate`]).
//!
//! # Expression grammar
//!
//! As k6's `metrics/thresholds_parser.go`, whitespace (spaces and tabs) allowed between all
//! tokens:
//!
//! ```text
//! expression   := ws* aggregation ws* operator ws* number ws*
//! aggregation  := trend | "rate" | "count" | "value"
//! trend        := "avg" | "min" | "max" | "med" | percentile
//! percentile   := "p" ws* "(" ws* number ws* ")"        0 <= number <= 100, e.g. p(99.9)
//! operator     := "<=" | "<" | ">=" | ">" | "===" | "==" | "!="
//! number       := ("+" | "-")? digit+ ("." digit+)? (("e" | "E") ("+" | "-")? digit+)? unit?
//! unit         := "us" | "µs" | "ms" | "s" | "m" | "h"  (trend aggregations: a latency)
//!               | "%"                                  (`rate` of a rate metric)
//! windowed     := expression "over" ws+ duration      e.g. p(95)<250 over 30s
//! ```
//!
//! Units: a value without one keeps k6's meaning, so k6 thresholds work unchanged: trend
//! aggregations are milliseconds (`p(95)<250`), `rate` of a rate metric is a fraction
//! (`rate<0.01`), of a counter per second. Where a person would write a unit, it is taken:
//! `p(95)<250ms`, `p(99)<1s`, `avg<500us`, `rate<1%`; a unit the aggregation cannot take
//! (`rate<250ms`, `p(95)<1%`, `count<5s`) is an error that says what the metric is measured in.
//!
//! A windowed expression (`p(95)<250 over 30s`, none of the anchors has it: k6 #2379) is judged
//! on every window of that length of the run, sliding by one second, and fails at the first
//! window that breaks it; see [`crate::checks::window`]. `duration` is a
//! [`crate::grammar::units`] duration of at least one second.
//!
//! `==` and `===` both mean exact equality (k6 keeps both from JavaScript). Values of trend
//! aggregations are milliseconds; `rate` of a rate metric is a fraction in `[0, 1]`; `rate` of
//! a counter is per second over the run's elapsed time; `count` is a plain count.
//!
//! Metric keys (`http_req_duration{scenario:chat}`) are parsed in [`super::metric_key`]
//! (re-exported here).
//!
//! # Metrics and the aggregations they accept
//!
//! | metric                  | type    | aggregations                 |
//! |-------------------------|---------|------------------------------|
//! | `http_req_duration`     | trend   | avg min max med p(N)         |
//! | `http_req_service_time` | trend   | avg min max med p(N)         |
//! | `http_req_failed`       | rate    | rate                         |
//! | `checks`                | rate    | rate                         |
//! | `http_reqs`             | counter | count rate                   |
//! | `dropped_iterations`    | counter | count rate                   |
//!
//! Tags a key may filter on: `scenario`, `probe` (a probe's samples: kept apart, matched only
//! when named), `name` (request name), `method`, `status`, `error`
//! (an [`crate::metrics::ErrorKind`] name such as `timeout`), `expected_response`
//! (`true`/`false`), and any custom tag of the scenario.
use std::fmt;

use thiserror::Error;

pub use super::metric_key::{format_metric_key, metric_key, parse_metric_key};

/// The expression grammar as a regular expression (for the plan's JSON Schema, so editors
/// flag a malformed threshold; the parser stays the authority and explains what is wrong).
pub const THRESHOLD_PATTERN: &str = r"^[ \t]*(avg|min|max|med|p[ \t]*\([ \t]*[0-9]+(\.[0-9]+)?[ \t]*\)|rate|count|value)[ \t]*(<=|<|>=|>|===|==|!=)[ \t]*[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?[ \t]*(us|µs|ms|s|m|h|%)?([ \t]+over[ \t]+([0-9]+(\.[0-9]+)?(us|µs|ms|s|m|h))+)?[ \t]*$";

/// A parsed threshold expression such as `p(95) < 250`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdExpr {
    /// The expression as written (trimmed).
    pub source: String,
    pub aggregation: Aggregation,
    pub op: Op,
    /// Right-hand side, normalized: milliseconds for trend aggregations, a fraction for the
    /// rate of a rate metric (`1%` is 0.01).
    pub value: f64,
    /// The unit the value was written with, if any (for display and validation).
    pub unit: Option<ValueUnit>,
    /// `over 30s`: judge every window of this length (whole seconds, >= 1 s) instead of the
    /// whole run.
    pub window: Option<std::time::Duration>,
}

/// A unit written after a threshold's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueUnit {
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
    Percent,
}

impl ValueUnit {
    fn parse(word: &str) -> Option<ValueUnit> {
        Some(match word {
            "us" | "µs" => ValueUnit::Micros,
            "ms" => ValueUnit::Millis,
            "s" => ValueUnit::Seconds,
            "m" => ValueUnit::Minutes,
            "h" => ValueUnit::Hours,
            "%" => ValueUnit::Percent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValueUnit::Micros => "us",
            ValueUnit::Millis => "ms",
            ValueUnit::Seconds => "s",
            ValueUnit::Minutes => "m",
            ValueUnit::Hours => "h",
            ValueUnit::Percent => "%",
        }
    }

    /// Factor to the normalized value: milliseconds for durations, a fraction for percent.
    fn factor(self) -> f64 {
        match self {
            ValueUnit::Micros => 0.001,
            ValueUnit::Millis => 1.0,
            ValueUnit::Seconds => 1_000.0,
            ValueUnit::Minutes => 60_000.0,
            ValueUnit::Hours => 3_600_000.0,
            ValueUnit::Percent => 0.01,
        }
    }

    fn is_duration(self) -> bool {
        self != ValueUnit::Percent
    }
}

/// The left-hand side of an expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    Avg,
    Min,
    Max,
    /// Median, same as `p(50)`.
    Med,
    /// `p(N)`, N in `[0, 100]`.
    Percentile(f64),
    /// Fraction of true samples (rate metrics) or per-second rate (counters).
    Rate,
    /// Number of samples (counters).
    Count,
    /// Last value (gauges).
    Value,
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    /// `==`
    Eq,
    /// `===` (same meaning as `==`)
    StrictEq,
    Ne,
}

/// The kind of a metric, which decides the aggregations it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Trend,
    Rate,
    Counter,
    Gauge,
}

/// The metrics thresholds can refer to, with their types.
pub const KNOWN_METRICS: [(&str, MetricType); 7] = [
    ("http_req_duration", MetricType::Trend),
    ("http_req_service_time", MetricType::Trend),
    ("http_req_failed", MetricType::Rate),
    ("checks", MetricType::Rate),
    ("http_reqs", MetricType::Counter),
    ("dropped_iterations", MetricType::Counter),
    ("iteration_duration", MetricType::Trend),
];

/// The tags every sample carries (scenarios may add their own). A probe's samples carry
/// `probe` instead of `scenario`.
pub const BUILTIN_TAGS: [&str; 9] = [
    "scenario",
    "probe",
    "name",
    "step",
    "check",
    "method",
    "status",
    "error",
    "expected_response",
];

/// Why a threshold expression, metric key, or combination of the two is invalid.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ThresholdError {
    #[error("empty threshold: expected `aggregation operator value`, e.g. `p(95)<250`")]
    Empty,
    #[error(
        "unknown aggregation `{found}` in `{expr}`: expected one of avg, min, max, med, p(N), \
         rate, count, value"
    )]
    UnknownAggregation { expr: String, found: String },
    #[error("malformed percentile `{found}` in `{expr}`: write percentiles as p(N), e.g. p(95) or p(99.9)")]
    MalformedPercentile { expr: String, found: String },
    #[error("percentile p({value}) in `{expr}` is out of range: N must be between 0 and 100")]
    PercentileOutOfRange { expr: String, value: f64 },
    #[error(
        "expected an operator (<, <=, >, >=, ==, ===, !=) at column {column} of `{expr}`, found {found}"
    )]
    ExpectedOperator {
        expr: String,
        column: usize,
        found: String,
    },
    #[error("expected a number at column {column} of `{expr}`, found {found}")]
    ExpectedNumber {
        expr: String,
        column: usize,
        found: String,
    },
    #[error(
        "unexpected `{rest}` at column {column} of `{expr}`: the expression ends after the value, a number with an optional unit (latencies in ms: 250, 250ms, 1s; rates as fractions: 0.01, 1%), then optionally `over DURATION`"
    )]
    TrailingInput {
        expr: String,
        column: usize,
        rest: String,
    },
    #[error("unknown metric `{metric}`: expected one of {}", known_metric_names())]
    UnknownMetric { metric: String },
    #[error(
        "aggregation `{aggregation}` does not apply to `{metric}` (a {kind} metric): use one of {allowed}"
    )]
    AggregationMismatch {
        metric: String,
        kind: &'static str,
        aggregation: String,
        allowed: &'static str,
    },
    #[error(
        "bad window in `{expr}` at column {column}: {reason}; write e.g. `p(95)<250 over 30s`"
    )]
    BadWindow {
        expr: String,
        column: usize,
        reason: String,
    },
    #[error("{reason} in `{expr}`")]
    UnitMismatch { expr: String, reason: String },
    #[error("invalid metric key `{key}`: {reason}")]
    MetricKey { key: String, reason: String },
}

fn known_metric_names() -> String {
    KNOWN_METRICS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Trend => "trend",
            MetricType::Rate => "rate",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }

    /// The aggregations this type accepts, as written in the error message.
    pub fn allowed(self) -> &'static str {
        match self {
            MetricType::Trend => "avg, min, max, med, p(N)",
            MetricType::Rate => "rate",
            MetricType::Counter => "count, rate",
            MetricType::Gauge => "value",
        }
    }

    /// Whether `agg` applies to a metric of this type.
    pub fn accepts(self, agg: Aggregation) -> bool {
        use Aggregation as A;
        match self {
            MetricType::Trend => {
                matches!(agg, A::Avg | A::Min | A::Max | A::Med | A::Percentile(_))
            }
            MetricType::Rate => matches!(agg, A::Rate),
            MetricType::Counter => matches!(agg, A::Count | A::Rate),
            MetricType::Gauge => matches!(agg, A::Value),
        }
    }
}

/// The type of a known metric.
pub fn metric_type(name: &str) -> Option<MetricType> {
    KNOWN_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Whether thresholds can refer to `name`.
pub fn known_metric(name: &str) -> bool {
    metric_type(name).is_some()
}

/// Check that `metric` exists and that `expr`'s aggregation applies to it (e.g. `p(95)` on
/// `http_req_failed` is an error). Plan validation calls this.
pub fn validate_for_metric(metric: &str, expr: &ThresholdExpr) -> Result<(), ThresholdError> {
    let ty = metric_type(metric).ok_or_else(|| ThresholdError::UnknownMetric {
        metric: metric.to_string(),
    })?;
    if !ty.accepts(expr.aggregation) {
        return Err(ThresholdError::AggregationMismatch {
            metric: metric.to_string(),
            kind: ty.as_str(),
            aggregation: expr.aggregation.to_string(),
            allowed: ty.allowed(),
        });
    }
    let Some(unit) = expr.unit else {
        return Ok(());
    };
    let measured = match (ty, expr.aggregation) {
        (MetricType::Trend, _) => "milliseconds (write 250 or 250ms, 1s)",
        (MetricType::Rate, _) => "a fraction (write 0.01 or 1%)",
        (MetricType::Counter, Aggregation::Rate) => "requests per second (a plain number)",
        (MetricType::Counter, _) => "a count (a plain number)",
        (MetricType::Gauge, _) => "a plain number",
    };
    let fits = match ty {
        MetricType::Trend => unit.is_duration(),
        MetricType::Rate => unit == ValueUnit::Percent,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(ThresholdError::UnitMismatch {
            expr: expr.source.clone(),
            reason: format!(
                "`{}` of {metric} is measured in {measured}, not `{}`",
                expr.aggregation,
                unit.as_str()
            ),
        })
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Avg => f.write_str("avg"),
            Aggregation::Min => f.write_str("min"),
            Aggregation::Max => f.write_str("max"),
            Aggregation::Med => f.write_str("med"),
            Aggregation::Percentile(p) => write!(f, "p({p})"),
            Aggregation::Rate => f.write_str("rate"),
            Aggregation::Count => f.write_str("count"),
            Aggregation::Value => f.write_str("value"),
        }
    }
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::StrictEq => "===",
            Op::Ne => "!=",
        }
    }

    /// `observed op threshold`.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => observed < threshold,
            Op::Le => observed <= threshold,
            Op::Gt => observed > threshold,
            Op::Ge => observed >= threshold,
            Op::Eq | Op::StrictEq => observed == threshold,
            Op::Ne => observed != threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Canonical form without spaces, the value in the unit it was written with, e.g.
/// `p(95)<250`, `p(99)<1s`, `rate<1%`, `p(95)<250 over 30s`.
impl fmt::Display for ThresholdExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            None => write!(f, "{}{}{}", self.aggregation, self.op, self.value)?,
            Some(u) => {
                // Back to the written unit (rounded to hide float noise from the factor).
                let v = self.value / u.factor();
                let v = (v * 1e9).round() / 1e9;
                write!(f, "{}{}{}{}", self.aggregation, self.op, v, u.as_str())?
            }
        }
        if let Some(w) = self.window {
            write!(f, " over {}", crate::grammar::units::Duration(w))?;
        }
        Ok(())
    }
}

/// A byte cursor over the expression (all tokens are ASCII; columns are 1-based chars).
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }
    fn column(&self) -> usize {
        self.src[..self.pos].chars().count() + 1
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    /// What is at the cursor, for error messages.
    fn found(&self) -> String {
        match self.rest().chars().next() {
            None => "the end of the expression".to_string(),
            Some(_) => {
                let shown: String = self.rest().chars().take(12).collect();
                format!("`{shown}`")
            }
        }
    }
    /// Scan a number token; returns its text (not yet converted).
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let b = self.src.as_bytes();
        let mut i = self.pos;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i > s
        };
        if !digits(&mut i) {
            return None;
        }
        if i < b.len() && b[i] == b'.' {
            let mut j = i + 1;
            if digits(&mut j) {
                i = j;
            } else {
                return None;
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if digits(&mut j) {
                i = j;
            }
        }
        self.pos = i;
        Some(&self.src[start..i])
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl ThresholdExpr {
    /// Parse a k6 threshold expression (see the module doc for the grammar).
    pub fn parse(input: &str) -> Result<ThresholdExpr, ThresholdError> {
        let src = input.trim();
        if src.is_empty() {
            return Err(ThresholdError::Empty);
        }
        let expr = src.to_string();
        let mut c = Cursor { src, pos: 0 };

        // Aggregation: a word, and for `p` a parenthesised number.
        let word_end = src.find(|ch: char| !is_word_char(ch)).unwrap_or(src.len());
        let word = &src[..word_end];
        c.pos = word_end;
        let aggregation = match word {
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "med" => Aggregation::Med,
            "rate" => Aggregation::Rate,
            "count" => Aggregation::Count,
            "value" => Aggregation::Value,
            "p" => {
                c.skip_ws();
                let pstart = 0;
                let malformed = |c: &Cursor| {
                    let end = c.rest().find(')').map(|i| c.pos + i + 1).unwrap_or(c.pos);
                    ThresholdError::MalformedPercentile {
                        expr: expr.clone(),
                        found: src[pstart..end.max(1)].trim().to_string(),
                    }
                };
                if !c.eat("(") {
                    return Err(malformed(&c));
                }
                c.skip_ws();
                let num = c.number().ok_or_else(|| malformed(&c))?;
                c.skip_ws();
                if !c.eat(")") {
                    return Err(malformed(&c));
                }
                let value: f64 = num.parse().map_err(|_| malformed(&c))?;
                if !(0.0..=100.0).contains(&value) {
                    return Err(ThresholdError::PercentileOutOfRange { expr, value });
                }
                Aggregation::Percentile(value)
            }
            _ => {
                // `p95`, `p 95`, `P(95)`: say how to write a percentile.
                let looks_like_percentile = (word.len() > 1
                    && (word.starts_with('p') || word.starts_with('P'))
                    && word[1..].chars().all(|ch| ch.is_ascii_digit() || ch == '_'))
                    || word == "P";
                if looks_like_percentile {
                    return Err(ThresholdError::MalformedPercentile {
                        expr,
                        found: word.to_string(),
                    });
                }
                let found = if word.is_empty() {
                    src.chars().next().map(String::from).unwrap_or_default()
                } else {
                    word.to_string()
                };
                return Err(ThresholdError::UnknownAggregation { expr, found });
            }
        };

        // Operator: longest match first.
        c.skip_ws();
        let op_column = c.column();
        let op = [
            ("===", Op::StrictEq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(tok, _)| c.eat(tok))
        .map(|(_, op)| op)
        .ok_or_else(|| ThresholdError::ExpectedOperator {
            expr: expr.clone(),
            column: op_column,
            found: c.found(),
        })?;

        // Value.
        c.skip_ws();
        let num_column = c.column();
        let num = c.number().ok_or_else(|| ThresholdError::ExpectedNumber {
            expr: expr.clone(),
            column: num_column,
            found: c.found(),
        })?;
        let mut value: f64 = num.parse().map_err(|_| ThresholdError::ExpectedNumber {
            expr: expr.clone(),
            column: num_column,
            found: format!("`{num}`"),
        })?;
        // An optional unit right after the number (or after spaces): `250ms`, `1 s`, `1%`.
        let mut unit = None;
        {
            let save = c.pos;
            c.skip_ws();
            let rest = c.rest();
            let word_len = rest
                .char_indices()
                .find(|(_, ch)| !(ch.is_alphabetic() || *ch == '%'))
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            match ValueUnit::parse(&rest[..word_len]) {
                Some(u) => {
                    unit = Some(u);
                    value *= u.factor();
                    c.pos += word_len;
                }
                None => c.pos = save,
            }
        }

        c.skip_ws();
        let mut window = None;
        let window_column = c.column();
        if c.rest().starts_with("over") && c.rest()[4..].starts_with([' ', '\t']) {
            c.pos += 4;
            c.skip_ws();
            let text = c.rest().trim_end();
            let bad = |reason: String| ThresholdError::BadWindow {
                expr: expr.clone(),
                column: window_column,
                reason,
            };
            let d = crate::grammar::units::parse_duration(text).map_err(|e| bad(e.to_string()))?;
            if d < std::time::Duration::from_secs(1) || d.subsec_nanos() != 0 {
                return Err(bad(format!(
                    "the window must be a whole number of seconds, at least 1s (got {text})"
                )));
            }
            window = Some(d);
            c.pos = c.src.len();
        }
        if !c.rest().is_empty() {
            return Err(ThresholdError::TrailingInput {
                column: c.column(),
                rest: c.rest().to_string(),
                expr,
            });
        }
        Ok(ThresholdExpr {
            source: expr,
            aggregation,
            op,
            value,
            unit,
            window,
        })
    }
}

//! Checks and rates over scraped series: `FUNC(SELECTOR) [per 1k requests] OP NUMBER`.
//!
//! ```text
//! expr     := func "(" selector ")" [ "per 1k requests" ] op NUMBER
//! func     := "last" | "max" | "min" | "avg" | "increase"
//! selector := NAME [ "{" LABEL "=" STRING ( "," LABEL "=" STRING )* "}" ]
//! op       := "<" | "<=" | ">" | ">=" | "==" | "!="
//! ```
//! e.g. `increase(gateway_cost_usd_total) per 1k requests < 0.06`,
//! `max(gateway_budget_exceeded) == 1`, `max(cost_per_min{}) > 0.1`,
//! `increase(gateway_budget_downgrades_total{from="v1"}) > 0`.
//!
//! Why this shape and not PromQL: the checks a load run needs read a counter's increase over
//! the run or a gauge's extreme, summed over the label sets a selector matches (like PromQL's
//! `sum(increase(x[run]))` and `max_over_time(sum(x)[run])`), and the one ratio no server can
//! compute alone is "per 1,000 of the requests loadgate sent" (cost per 1k requests: the
//! gateway knows the spend, loadgate the requests). The operators and the number are k6's, as
//! in thresholds. Labels in a selector must all match (a subset match, `=` only).
use std::fmt;

use super::threshold::Op;

/// A series selector: a metric name and labels that must all match.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// How the selected series' values over the run become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeFn {
    /// The sum over the matching series at the last scrape.
    Last,
    /// The highest per-scrape sum.
    Max,
    /// The lowest per-scrape sum.
    Min,
    /// The mean of the per-scrape sums.
    Avg,
    /// The counters' increase over the run (resets count as restarts from 0; a series first
    /// seen after the first scrape starts from 0).
    Increase,
}

impl ScrapeFn {
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeFn::Last => "last",
            ScrapeFn::Max => "max",
            ScrapeFn::Min => "min",
            ScrapeFn::Avg => "avg",
            ScrapeFn::Increase => "increase",
        }
    }
}

/// A parsed check over scraped series.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeExpr {
    pub func: ScrapeFn,
    pub selector: Selector,
    /// Divide by the run's requests / 1000.
    pub per_1k_requests: bool,
    pub op: Op,
    pub value: f64,
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeExprError {
    #[error("{0:?} is not `FUNC(SERIES) [per 1k requests] OP NUMBER`, e.g. `increase(gateway_cost_usd_total) per 1k requests < 0.05`")]
    Shape(String),
    #[error("unknown function {0:?}: use last, max, min, avg or increase")]
    Func(String),
    #[error("bad series selector {text:?}: {why} (write `name` or `name{{label=\"value\"}}`)")]
    Selector { text: String, why: &'static str },
    #[error("{0:?} is not a number")]
    Number(String),
}

const PER_1K: &str = "per 1k requests";

impl ScrapeExpr {
    pub fn parse(text: &str) -> Result<ScrapeExpr, ScrapeExprError> {
        let t = text.trim();
        let shape = || ScrapeExprError::Shape(t.to_string());
        let open = t.find('(').ok_or_else(shape)?;
        let close = t.rfind(')').ok_or_else(shape)?;
        if close < open {
            return Err(shape());
        }
        let func = match t[..open].trim() {
            "last" => ScrapeFn::Last,
            "max" => ScrapeFn::Max,
            "min" => ScrapeFn::Min,
            "avg" => ScrapeFn::Avg,
            "increase" => ScrapeFn::Increase,
            other => return Err(ScrapeExprError::Func(other.to_string())),
        };
        let selector = Selector::parse(&t[open + 1..close])?;
        let mut rest = t[close + 1..].trim();
        let per_1k_requests = rest.starts_with(PER_1K);
        if per_1k_requests {
            rest = rest[PER_1K.len()..].trim();
        }
        let (op, num) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|n| (op, n.trim())))
        .ok_or_else(shape)?;
        let value: f64 = num
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| ScrapeExprError::Number(num.to_string()))?;
        Ok(ScrapeExpr {
            func,
            selector,
            per_1k_requests,
            op,
            value,
        })
    }
}

impl fmt::Display for ScrapeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.func.as_str(), self.selector)?;
        if self.per_1k_requests {
            write!(f, " {PER_1K}")?;
        }
        write!(f, " {} {}", self.op.as_str(), self.value)
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, ScrapeExprError> {
        let t = text.trim();
        let bad = |why| ScrapeExprError::Selector {
            text: t.to_string(),
            why,
        };
        let (name, labels) = match t.find('{') {
            None => (t, None),
            Some(i) => {
                let body = t[i + 1..]
                    .strip_suffix('}')
                    .ok_or_else(|| bad("no closing `}`"))?;
                (t[..i].trim(), Some(body))
            }
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !name_ok {
            return Err(bad("a metric name is letters, digits, `_` and `:`"));
        }
        let mut out = Vec::new();
        if let Some(body) = labels {
            let mut rest = body.trim();
            while !rest.is_empty() {
                let eq = rest
                    .find('=')
                    .ok_or_else(|| bad("a label needs `=\"value\"`"))?;
                let label = rest[..eq].trim().to_string();
                if label.is_empty() {
                    return Err(bad("empty label name"));
                }
                let after = rest[eq + 1..].trim_start();
                let after = after
                    .strip_prefix('"')
                    .ok_or_else(|| bad("a label value is a double-quoted string"))?;
                let (value, consumed) = unquote(after).ok_or_else(|| bad("unterminated string"))?;
                out.push((label, value));
                rest = after[consumed..].trim_start();
                rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            }
        }
        Ok(Selector {
            name: name.to_string(),
            labels: out,
        })
    }

    /// Whether a series key (`name{a="1",b="2"}`, as scrapers write it) is selected.
    pub fn matches(&self, series: &str) -> bool {
        let (name, labels) = match series.find('{') {
            None => (series, ""),
            Some(i) => (&series[..i], series[i + 1..].trim_end_matches('}')),
        };
        if name != self.name {
            return false;
        }
        if self.labels.is_empty() {
            return true;
        }
        let Ok(have) = Selector::parse(&format!("x{{{labels}}}")) else {
            return false;
        };
        self.labels
            .iter()
            .all(|want| have.labels.iter().any(|h| h == want))
    }
}

/// The string after an opening quote: its unescaped value and the bytes consumed (through the
/// closing quote).
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            write!(f, "{{{}}}", l.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let e =
            ScrapeExpr::parse("increase(gateway_cost_usd_total) per 1k requests < 0.06").unwrap();
        assert_eq!(e.func, ScrapeFn::Increase);
        assert!(e.per_1k_requests);
        assert_eq!(e.op, Op::Lt);
        assert_eq!(e.value, 0.06);
        assert_eq!(
            e.to_string(),
            "increase(gateway_cost_usd_total) per 1k requests < 0.06"
        );
        let e = ScrapeExpr::parse("max(x{version=\"v1\", kind=\"a,\\\"b\"})>=1").unwrap();
        assert_eq!(
            e.selector.labels,
            vec![
                ("version".to_string(), "v1".to_string()),
                ("kind".to_string(), "a,\"b".to_string())
            ]
        );
        assert_eq!(e.op, Op::Ge);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            ScrapeExpr::parse("sum(x) > 1"),
            Err(ScrapeExprError::Func(_))
        ));
        assert!(matches!(
            ScrapeExpr::parse("max(x) > lots"),
            Err(ScrapeExprError::Number(_))
        ));
        assert!(matches!(
            ScrapeExpr::parse("max(x)"),
            Err(ScrapeExprError::Shape(_))
        ));
        assert!(matches!(
            ScrapeExpr::parse("max(x{a=1}) > 1"),
            Err(ScrapeExprError::Selector { .. })
        ));
    }

    #[test]
    fn selectors_match_a_subset_of_labels() {
        let s = Selector::parse("gateway_tokens_total{version=\"v1\"}").unwrap();
        assert!(s.matches("gateway_tokens_total{kind=\"prompt\",version=\"v1\"}"));
        assert!(!s.matches("gateway_tokens_total{kind=\"prompt\",version=\"v2\"}"));
        assert!(!s.matches("gateway_tokens"));
        let all = Selector::parse("gateway_tokens_total").unwrap();
        assert!(all.matches("gateway_tokens_total{kind=\"prompt\",version=\"v2\"}"));
        assert!(all.matches("gateway_tokens_total"));
        assert!(!all.matches("gateway_tokens_total_x"));
    }
}

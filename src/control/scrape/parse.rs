//! Prometheus text (0.0.4) into flat series: one `(name, labels, value)` per line a Prometheus
//! server would store, so a histogram gives its `_bucket{le=..}`, `_sum` and `_count` series
//! and a summary its `{quantile=..}`, `_sum` and `_count` series.
//!
//! The text is parsed by the `openmetrics-parser` crate (a pest grammar of both the
//! Prometheus text format and OpenMetrics, maintained, with label escapes `\\`, `\"`, `\n`
//! resolved), not by hand. `prometheus-parse` was the other candidate; it splits labels on
//! `,` and `=` and keeps escapes as written, so a label value with a comma or a quote comes
//! out wrong.
use openmetrics_parser::{prometheus::parse_prometheus, PrometheusValue};

/// One scraped series and its value at the scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    /// The series' name as exposed (`http_requests_total`, `x_bucket`, `x_sum`, `x_count`).
    pub name: String,
    /// Label pairs, sorted by label name, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ScrapedSample {
    /// `name{a="1",b="2"}` (labels sorted, values escaped again): the series' key on the
    /// timeline and in timeseries.csv.
    pub fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                format!("{k}=\"{v}\"")
            })
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// The exposition could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("not Prometheus text format 0.0.4: {reason} (check that the scrape `url` serves /metrics)")]
pub struct ParseError {
    pub reason: String,
}

/// Every series of a Prometheus text exposition, sorted by [`ScrapedSample::series`].
pub fn parse_exposition(text: &str) -> Result<Vec<ScrapedSample>, ParseError> {
    let text = with_untyped_types(text);
    let exposition = parse_prometheus(&text).map_err(|e| ParseError {
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (name, family) in &exposition.families {
        let names = family.get_label_names();
        for sample in family.iter_samples() {
            let set = sample.get_labelset().map_err(|e| ParseError {
                reason: format!("{name}: {e}"),
            })?;
            let mut labels: Vec<(String, String)> =
                set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            debug_assert!(labels.len() <= names.len());
            labels.sort();
            let with = |extra: Option<(&str, String)>| {
                let mut l = labels.clone();
                if let Some((k, v)) = extra {
                    l.push((k.to_string(), v));
                    l.sort();
                }
                l
            };
            let mut push = |suffix: &str, labels: Vec<(String, String)>, value: f64| {
                out.push(ScrapedSample {
                    name: format!("{name}{suffix}"),
                    labels,
                    value,
                })
            };
            match &sample.value {
                PrometheusValue::Unknown(n) | PrometheusValue::Gauge(n) => {
                    push("", with(None), n.as_f64())
                }
                PrometheusValue::Counter(c) => push("", with(None), c.value.as_f64()),
                PrometheusValue::Histogram(h) => {
                    for b in &h.buckets {
                        push(
                            "_bucket",
                            with(Some(("le", le(b.upper_bound)))),
                            b.count.as_f64(),
                        );
                    }
                    if let Some(s) = &h.sum {
                        push("_sum", with(None), s.as_f64());
                    }
                    if let Some(c) = h.count {
                        push("_count", with(None), c as f64);
                    }
                }
                PrometheusValue::Summary(s) => {
                    for q in &s.quantiles {
                        push(
                            "",
                            with(Some(("quantile", q.quantile.to_string()))),
                            q.value.as_f64(),
                        );
                    }
                    if let Some(v) = &s.sum {
                        push("_sum", with(None), v.as_f64());
                    }
                    if let Some(c) = s.count {
                        push("_count", with(None), c as f64);
                    }
                }
            }
        }
    }
    out.sort_by_cached_key(ScrapedSample::series);
    Ok(out)
}

/// The crate's grammar puts a sample without a `# TYPE` line into the family before it (and
/// then fails on its labels); the text format allows such untyped samples anywhere. Give
/// each one its own `# TYPE NAME untyped` line first (the only hand-written part).
fn with_untyped_types(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut family: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("# TYPE ") {
            family = rest.split_whitespace().next();
        } else if !t.is_empty() && !t.starts_with('#') {
            let name = t
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            let belongs = family.is_some_and(|f| {
                name.strip_prefix(f).is_some_and(|rest| {
                    matches!(
                        rest,
                        "" | "_bucket" | "_sum" | "_count" | "_total" | "_created"
                    )
                })
            });
            if !belongs {
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push_str(" untyped\n");
                family = Some(name);
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_string()
    } else {
        bound.to_string()
    }
}

/// A command's output as one number (the first whitespace-separated word).
pub fn parse_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_gauge_and_untyped() {
        let s =
            parse_exposition("# TYPE a counter\na{x=\"1\"} 3\n# TYPE b gauge\nb 2.5\nc 7").unwrap();
        let keys: Vec<(String, f64)> = s.iter().map(|s| (s.series(), s.value)).collect();
        assert_eq!(
            keys,
            vec![
                ("a{x=\"1\"}".to_string(), 3.0),
                ("b".to_string(), 2.5),
                ("c".to_string(), 7.0)
            ]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_exposition("<html>nope</html>\n").is_err());
    }

    #[test]
    fn command_number() {
        assert_eq!(parse_number(" 42.5\n"), Some(42.5));
        assert_eq!(parse_number("n/a"), None);
        assert_eq!(parse_number(""), None);
    }
}

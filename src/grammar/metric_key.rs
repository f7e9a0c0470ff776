//! Metric keys: the part of a threshold's key before the expression,
//! `http_req_duration{scenario:chat,status:200}`, a metric name and a tag filter, as k6 writes
//! them. Split from [`super::threshold`] (the expression grammar) to keep each file to one
//! grammar; errors are [`ThresholdError::MetricKey`] / [`ThresholdError::UnknownMetric`] so
//! callers see one error type for a whole threshold line.
//!
//! # Grammar
//!
//! ```text
//! key        := ws* metric ws* ( "{" ws* tag ( ws* "," ws* tag )* ws* "}" )? ws*
//! metric     := [A-Za-z_] [A-Za-z0-9_]*
//! tag        := tag-name ws* ":" ws* tag-value
//! tag-name   := [A-Za-z0-9_.-]+
//! tag-value  := quoted | bare            (non-empty)
//! bare       := any characters but "," and "}" (trimmed; may contain ":" and spaces)
//! quoted     := '"' any but '"' '"'  |  "'" any but "'" "'"
//! ```

use super::threshold::{known_metric, ThresholdError};

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parse a metric key and check that its metric is known (the plan's and `attack
/// --threshold`'s shared first step).
pub fn metric_key(key: &str) -> Result<(String, Vec<(String, String)>), ThresholdError> {
    let (metric, tags) = parse_metric_key(key)?;
    if !known_metric(&metric) {
        return Err(ThresholdError::UnknownMetric { metric });
    }
    Ok((metric, tags))
}

/// Parse a metric key such as `http_req_duration{scenario:chat,status:200}` into the metric
/// name and its tag filter (in written order). Does not check that the metric is known (see
/// [`known_metric`]).
pub fn parse_metric_key(key: &str) -> Result<(String, Vec<(String, String)>), ThresholdError> {
    let err = |reason: String| ThresholdError::MetricKey {
        key: key.to_string(),
        reason,
    };
    let s = key.trim();
    if s.is_empty() {
        return Err(err(
            "empty key: expected a metric name such as `http_req_duration`".into(),
        ));
    }
    let (name, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), Some(&s[i + 1..])),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(err("expected a metric name before `{`".into()));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(is_word_char) {
        return Err(err(format!(
            "`{name}` is not a metric name: use letters, digits and `_`, e.g. `http_req_duration`"
        )));
    }
    if name.contains('}') {
        return Err(err("`}` without a matching `{`".into()));
    }
    let Some(rest) = rest else {
        return Ok((name.to_string(), Vec::new()));
    };
    let body = rest.trim_end();
    let Some(body) = body.strip_suffix('}') else {
        return Err(err("expected `}` at the end of the tag filter".into()));
    };
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut rest = body.trim();
    if rest.is_empty() {
        return Err(err(
            "empty tag filter `{}`: expected `{tag:value}` or no braces".into(),
        ));
    }
    loop {
        let colon = rest
            .find(':')
            .ok_or_else(|| err(format!("expected `tag:value`, found `{}`", rest.trim())))?;
        let tag = rest[..colon].trim();
        if tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(err(format!(
                "`{tag}` is not a tag name: use letters, digits, `_`, `.` or `-`"
            )));
        }
        let after = rest[colon + 1..].trim_start();
        let (value, remaining) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let close = after[1..]
                    .find(q)
                    .ok_or_else(|| err(format!("unterminated quote in the value of `{tag}`")))?;
                let v = &after[1..1 + close];
                let remaining = after[close + 2..].trim_start();
                if !(remaining.is_empty() || remaining.starts_with(',')) {
                    return Err(err(format!(
                        "expected `,` or `}}` after the quoted value of `{tag}`, found `{remaining}`"
                    )));
                }
                (v.to_string(), remaining)
            }
            _ => {
                if after.contains('{') || after.split(',').next().unwrap_or("").contains('}') {
                    return Err(err(format!("unexpected brace in the value of `{tag}`")));
                }
                let end = after.find(',').unwrap_or(after.len());
                let v = after[..end].trim();
                if v.is_empty() {
                    return Err(err(format!(
                        "empty value for tag `{tag}`: expected `{tag}:value`"
                    )));
                }
                (v.to_string(), &after[end..])
            }
        };
        if tags.iter().any(|(t, _)| t == tag) {
            return Err(err(format!("tag `{tag}` is given twice")));
        }
        tags.push((tag.to_string(), value));
        match remaining.strip_prefix(',') {
            Some(r) => {
                rest = r.trim_start();
                if rest.is_empty() {
                    return Err(err("expected a tag after `,`".into()));
                }
            }
            None => break,
        }
    }
    Ok((name.to_string(), tags))
}

/// The key as `metric{tag:value,...}` (no braces without tags).
pub fn format_metric_key(metric: &str, tags: &[(String, String)]) -> String {
    if tags.is_empty() {
        return metric.to_string();
    }
    let inner: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

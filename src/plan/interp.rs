//! `${VAR}` interpolation inside plan string values.
//!
//! Why: secrets (API keys) and per-environment URLs stay out of plan files; the plan names
//! them and the environment (or the running reference stack) supplies them.
//!
//! Grammar:
//! ```text
//! text     := ( literal | "$${" | reference )*
//! reference:= "${" NAME ( ":-" default )? "}"
//! NAME     := [A-Za-z_][A-Za-z0-9_]*
//! default  := any characters except "}"
//! ```
//! `$${` is an escaped literal `${`. A `$` not followed by `{` is literal.
//! `${NAME:-default}` uses `default` when NAME is unset or empty.
use thiserror::Error;

/// Why a `${...}` reference could not be resolved.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InterpError {
    #[error("environment variable {0} is not set (set it, or write ${{{0}:-default}})")]
    Unset(String),
    #[error("unclosed '${{' (add the closing '}}', or write '$${{' for a literal '${{')")]
    Unclosed,
    #[error("invalid variable name {0:?} in '${{...}}' (use letters, digits and _)")]
    BadName(String),
}

/// What to do with a name.
pub enum Lookup {
    Value(String),
    /// Leave `${NAME}` in place (resolved later, e.g. by the running stack).
    Defer,
    Unset,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Interpolate every reference in `s`. Returns the result or every error found.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Lookup) -> Result<String, Vec<InterpError>> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                errors.push(InterpError::Unclosed);
                return Err(errors);
            };
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !valid_name(name) {
                errors.push(InterpError::BadName(name.to_string()));
            } else {
                match lookup(name) {
                    Lookup::Value(v) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
                    Lookup::Defer => {
                        out.push_str("${");
                        out.push_str(inner);
                        out.push('}');
                    }
                    Lookup::Value(_) | Lookup::Unset => match default {
                        Some(d) => out.push_str(d),
                        None => errors.push(InterpError::Unset(name.to_string())),
                    },
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Lookup {
        match name {
            "HOST" => Lookup::Value("example.com".into()),
            "EMPTY" => Lookup::Value(String::new()),
            "TARGET_URL" => Lookup::Defer,
            _ => Lookup::Unset,
        }
    }

    #[test]
    fn table() {
        let ok = [
            ("plain", "plain"),
            ("http://${HOST}/x", "http://example.com/x"),
            ("${MISSING:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY}", ""),
            ("${HOST:-other}", "example.com"),
            ("cost $5", "cost $5"),
            ("$${HOST}", "${HOST}"),
            ("${TARGET_URL}/v1", "${TARGET_URL}/v1"),
            ("${MISSING:-}", ""),
            ("{{feeder.col}}", "{{feeder.col}}"),
        ];
        for (input, want) in ok {
            assert_eq!(interpolate(input, &env).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(
            interpolate("${A}-${B}", &env),
            Err(vec![
                InterpError::Unset("A".into()),
                InterpError::Unset("B".into())
            ])
        );
        assert_eq!(
            interpolate("${HOST", &env),
            Err(vec![InterpError::Unclosed])
        );
        assert_eq!(
            interpolate("${1X}", &env),
            Err(vec![InterpError::BadName("1X".into())])
        );
    }
}

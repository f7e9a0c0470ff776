//! Request templating: paths, header values and bodies with placeholders filled per iteration.
//!
//! Templates are parsed once (at plan lowering) so a typo is a plan error with its byte offset,
//! never a runtime surprise, and so the engine can pre-build the request bytes of a template
//! that has no placeholder at all ([`Template::is_static`]).
//!
//! # Grammar
//!
//! ```text
//! template    := ( literal | placeholder )*
//! literal     := any text not containing "{{"        (a lone "}}" is literal text)
//! placeholder := "{{" ws expr ws "}}"
//! expr        := "uuid"                       a random (v4) UUID, lower-case hyphenated
//!              | "seq"                        the iteration's sequence number (see below)
//!              | "vu"                         the VU id (0-based, unique within the scenario)
//!              | "iter"                       the VU's own iteration number (0-based)
//!              | "random(" choice ( "|" choice )* ")"   one choice, uniformly (each trimmed)
//!              | "randint(" int "," int ")"   a uniform integer in [lo, hi] (inclusive)
//!              | FEEDER "." COLUMN            a value of the feeder's current row
//!              | NAME                         a value extracted earlier in a flow or probe chain
//!                                             (flow steps and probe templates only, see below)
//!              | "raw" ws ( FEEDER "." COLUMN | NAME )   the value unencoded (see below)
//! FEEDER, COLUMN, NAME := [A-Za-z_][A-Za-z0-9_-]*
//! ```
//!
//! `NAME` placeholders exist only in flow steps and probe requests
//! ([`Template::parse_with_vars`]): a chain's poll reads what its submit captured
//! (`/v1/jobs/{{id}}`), a flow step what an earlier step extracted. Other scenario templates
//! reject them as unknown placeholders.
//!
//! # Encoding
//!
//! Where a value lands decides how it is written:
//! - in a **path or query string**, a feeder value or variable is **percent-encoded**
//!   (everything but `A-Z a-z 0-9 - . _ ~`), so `a b&c=d` arrives as one value
//!   (`a%20b%26c%3Dd`); `{{raw NAME}}` / `{{raw feeder.column}}` writes it as is (a value that
//!   is itself a path, such as a `Location` header, or already encoded);
//! - in a **JSON body**, as JSON string content (below);
//! - in a header or a string body, as is.
//!
//! Built-ins need no encoding: `uuid`, `seq`, `vu`, `iter` and `randint` write only
//! `[0-9a-f-]`; `random(...)` choices are written as given.
//!
//! - `seq` is unique within a scenario and 0-based. In the arrival-rate executors it is the
//!   arrival index (0, 1, 2, ... in schedule order, across all worker threads and segments).
//!   In the VU executors each worker thread hands out its own arithmetic progression
//!   (thread k of N: k, k+N, k+2N, ...), so values are unique but not dense in time order.
//! - All placeholders of one iteration that name the same feeder use the **same row** of it.
//!   A `sequential` feeder uses row `seq mod rows`; a `random` feeder a uniformly random row.
//! - `${ENV}` interpolation happens in the plan layer before templates are parsed.
//! - There is no escape for a literal `{{`.
//!
//! # JSON bodies
//!
//! A plan `body:` written as a YAML mapping or sequence is serialized to JSON text first and
//! that text is the template (`RequestSpec::body_json` is set). Every placeholder in it then
//! sits inside a JSON string, and **in a JSON body, a placeholder's value is escaped as JSON
//! string content**: a feeder value's `"`, `\` and control characters (U+0000..U+001F) are
//! written as `\"`, `\\`, `\n`, `\u0001`, ..., so the body stays valid JSON and the string
//! decodes to the exact value ([`write_json_str_content`]). The other placeholders need no
//! escaping: `uuid`, `seq`, `vu`, `iter` and `randint` produce only `[0-9a-f-]`, and
//! `random(...)` choices are copied from the JSON text, where serialization already escaped
//! them. A string whose whole content is `{{randint(lo,hi)}}` is written as a JSON number
//! (the plan drops its quotes: `{n: "{{randint(1,6)}}"}` sends `{"n":4}`). A string `body:`
//! is not JSON to loadgate and its placeholders are filled as is.
use std::fmt;

use thiserror::Error;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The text as written.
    pub source: String,
    parts: Vec<Part>,
}

/// Values of the per-iteration placeholders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderVars {
    pub seq: u64,
    pub vu: u64,
    pub iter: u64,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Literal(String),
    Uuid,
    Seq,
    Vu,
    Iter,
    Random(Vec<String>),
    RandInt(i64, i64),
    Feeder {
        feeder: String,
        column: String,
    },
    /// A captured value (probe and flow templates only).
    Var(String),
    /// `raw X`: a feeder value or variable written as is where it would be encoded (a path
    /// or query string percent-encodes values by default).
    Raw(Box<Part>),
}

/// What a placeholder that needs outside data refers to (see [`Template::render_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref<'a> {
    Feeder { feeder: &'a str, column: &'a str },
    Var(&'a str),
}

/// Why a template does not parse. Offsets are bytes into the template text.
#[derive(Debug, Error, PartialEq)]
pub enum TemplateError {
    #[error("unclosed '{{{{' at byte {0}: add the closing '}}}}'")]
    Unclosed(usize),
    #[error("empty placeholder '{{{{}}}}' at byte {0}: write an expression such as {{{{uuid}}}} or {{{{feeder.column}}}}")]
    Empty(usize),
    #[error("unknown placeholder '{name}' at byte {offset}: expected uuid, seq, vu, iter, random(a|b), randint(lo,hi) or FEEDER.COLUMN")]
    Unknown { name: String, offset: usize },
    #[error("bad arguments to {func}(...) at byte {offset}: {reason}")]
    BadArgs {
        func: &'static str,
        offset: usize,
        reason: String,
    },
}

impl Template {
    /// Parse template text (see the module doc for the grammar); `NAME` placeholders are
    /// unknown.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        Template::parse_mode(s, false)
    }

    /// Parse a probe's template: a bare `{{NAME}}` reads a captured value.
    pub fn parse_with_vars(s: &str) -> Result<Template, TemplateError> {
        Template::parse_mode(s, true)
    }

    fn parse_mode(s: &str, vars: bool) -> Result<Template, TemplateError> {
        Template::parse_every(s, vars).map_err(|mut errors| errors.remove(0))
    }

    /// Parse, reporting every bad placeholder of the text (not only the first): what plan
    /// validation shows. `vars`: bare `{{NAME}}` reads a captured value (probe templates).
    pub fn parse_every(s: &str, vars: bool) -> Result<Template, Vec<TemplateError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut rest = 0usize;
        while rest < s.len() {
            match s[rest..].find("{{") {
                None => {
                    parts.push(Part::Literal(s[rest..].to_string()));
                    break;
                }
                Some(rel) => {
                    let open = rest + rel;
                    if rel > 0 {
                        parts.push(Part::Literal(s[rest..open].to_string()));
                    }
                    let inner_start = open + 2;
                    let Some(close) = s[inner_start..].find("}}").map(|c| inner_start + c) else {
                        errors.push(TemplateError::Unclosed(open));
                        break;
                    };
                    let raw = &s[inner_start..close];
                    let lead = raw.len() - raw.trim_start().len();
                    let expr = raw.trim();
                    match parse_expr(expr, inner_start + lead, open, vars) {
                        Ok(part) => parts.push(part),
                        Err(e) => errors.push(e),
                    }
                    rest = close + 2;
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// A template of only literal text.
    pub fn literal(s: &str) -> Template {
        let parts = if s.is_empty() {
            Vec::new()
        } else {
            vec![Part::Literal(s.to_string())]
        };
        Template {
            source: s.to_string(),
            parts,
        }
    }

    /// The parsed pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the template has no placeholder: it renders to its source every time.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Render once, outside the engine's hot path (probes, read-backs, tests): placeholders
    /// take their values from `vars`, `rng`, and `lookup(reference, out)`, which appends the
    /// value of a feeder's current row or of a captured variable (the engine's own workers use
    /// pre-bound templates instead, see `engine::request`).
    pub fn render_with(
        &self,
        vars: RenderVars,
        rng: &mut impl rand::Rng,
        lookup: &mut dyn FnMut(Ref<'_>, &mut Vec<u8>),
        out: &mut Vec<u8>,
    ) {
        use std::io::Write;
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Uuid => {
                    let u = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                    out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                }
                Part::Seq => {
                    let _ = write!(out, "{}", vars.seq);
                }
                Part::Vu => {
                    let _ = write!(out, "{}", vars.vu);
                }
                Part::Iter => {
                    let _ = write!(out, "{}", vars.iter);
                }
                Part::Random(c) => {
                    out.extend_from_slice(c[rng.random_range(0..c.len())].as_bytes())
                }
                Part::RandInt(lo, hi) => {
                    let _ = write!(out, "{}", rng.random_range(*lo..=*hi));
                }
                Part::Feeder { feeder, column } => lookup(Ref::Feeder { feeder, column }, out),
                Part::Var(name) => lookup(Ref::Var(name), out),
                Part::Raw(inner) => match &**inner {
                    Part::Feeder { feeder, column } => lookup(Ref::Feeder { feeder, column }, out),
                    Part::Var(name) => lookup(Ref::Var(name), out),
                    _ => {}
                },
            }
        }
    }

    /// Render to a `String` (no feeders: their placeholders render empty).
    pub fn render_string(&self, vars: RenderVars) -> String {
        let mut out = Vec::new();
        self.render_with(vars, &mut rand::rng(), &mut |_, _| {}, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Every captured-variable name the template reads, in order of appearance.
    pub fn vars_used(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Raw(inner) => match &**inner {
                Part::Var(name) => Some(name.as_str()),
                _ => None,
            },
            _ => None,
        })
    }

    /// Every `(feeder, column)` pair the template reads, in order of appearance.
    pub fn feeders_used(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Feeder { feeder, column } => Some((feeder.as_str(), column.as_str())),
            Part::Raw(inner) => match &**inner {
                Part::Feeder { feeder, column } => Some((feeder.as_str(), column.as_str())),
                _ => None,
            },
            _ => None,
        })
    }
}

/// Append `value` as the content of a JSON string (without the quotes): `"` and `\\` are
/// backslash-escaped, control characters use the short escapes (`\\n`, `\\r`, `\\t`, `\\b`,
/// `\\f`) or `\\u00XX`; everything else (including non-ASCII UTF-8) is copied unchanged.
/// Allocation-free apart from growing `out`.
pub fn write_json_str_content(value: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut unicode = *b"\\u00XX";
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                unicode[4] = HEX[(b >> 4) as usize];
                unicode[5] = HEX[(b & 0xf) as usize];
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_expr(expr: &str, offset: usize, open: usize, vars: bool) -> Result<Part, TemplateError> {
    match expr {
        "" => return Err(TemplateError::Empty(open)),
        "uuid" => return Ok(Part::Uuid),
        "seq" => return Ok(Part::Seq),
        "vu" => return Ok(Part::Vu),
        "iter" => return Ok(Part::Iter),
        _ => {}
    }
    if let Some(inner) = expr
        .strip_prefix("raw")
        .filter(|r| r.starts_with(char::is_whitespace))
    {
        let inner_expr = inner.trim_start();
        let inner_offset = offset + (expr.len() - inner_expr.len());
        return match parse_expr(inner_expr, inner_offset, open, vars)? {
            p @ (Part::Feeder { .. } | Part::Var(_)) => Ok(Part::Raw(Box::new(p))),
            _ => Err(TemplateError::BadArgs {
                func: "raw",
                offset,
                reason: "`raw` applies to a value from outside the plan: {{raw FEEDER.COLUMN}} or {{raw NAME}}".into(),
            }),
        };
    }
    if let Some(args) = call_args(expr, "random", offset)? {
        let choices: Vec<String> = args.split('|').map(|c| c.trim().to_string()).collect();
        if args.trim().is_empty() {
            return Err(TemplateError::BadArgs {
                func: "random",
                offset,
                reason: "give at least one choice, e.g. random(a|b|c)".into(),
            });
        }
        return Ok(Part::Random(choices));
    }
    if let Some(args) = call_args(expr, "randint", offset)? {
        let bad = |reason: String| TemplateError::BadArgs {
            func: "randint",
            offset,
            reason,
        };
        let (lo, hi) = args
            .split_once(',')
            .ok_or_else(|| bad("expected two integers 'randint(lo,hi)'".into()))?;
        let lo: i64 = lo
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{}' is not an integer", lo.trim())))?;
        let hi: i64 = hi
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{}' is not an integer", hi.trim())))?;
        if lo > hi {
            return Err(bad(format!("lo ({lo}) is greater than hi ({hi})")));
        }
        return Ok(Part::RandInt(lo, hi));
    }
    if let Some((feeder, column)) = expr.split_once('.') {
        if is_ident(feeder) && is_ident(column) {
            return Ok(Part::Feeder {
                feeder: feeder.to_string(),
                column: column.to_string(),
            });
        }
    }
    if vars && is_ident(expr) {
        return Ok(Part::Var(expr.to_string()));
    }
    Err(TemplateError::Unknown {
        name: expr.to_string(),
        offset,
    })
}

/// `name(args)` → Some(args); `name` followed by something else → error; otherwise None.
fn call_args<'a>(
    expr: &'a str,
    name: &'static str,
    offset: usize,
) -> Result<Option<&'a str>, TemplateError> {
    let Some(rest) = expr.strip_prefix(name) else {
        return Ok(None);
    };
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('(') else {
        return Ok(None);
    };
    let Some(args) = rest.strip_suffix(')') else {
        return Err(TemplateError::BadArgs {
            func: name,
            offset,
            reason: "missing closing ')'".into(),
        });
    };
    Ok(Some(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table() {
        let ok: &[(&str, Vec<Part>)] = &[
            ("", vec![]),
            ("/plain", vec![Part::Literal("/plain".into())]),
            ("{{uuid}}", vec![Part::Uuid]),
            (
                "/a/{{ seq }}/b",
                vec![
                    Part::Literal("/a/".into()),
                    Part::Seq,
                    Part::Literal("/b".into()),
                ],
            ),
            ("{{vu}}{{iter}}", vec![Part::Vu, Part::Iter]),
            (
                "{{random(a| b |c)}}",
                vec![Part::Random(vec!["a".into(), "b".into(), "c".into()])],
            ),
            ("{{randint(-3, 7)}}", vec![Part::RandInt(-3, 7)]),
            (
                "{{prompts.text}}",
                vec![Part::Feeder {
                    feeder: "prompts".into(),
                    column: "text".into(),
                }],
            ),
            ("a }} b", vec![Part::Literal("a }} b".into())]),
        ];
        for (src, parts) in ok {
            let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(t.parts(), parts.as_slice(), "{src}");
        }
    }

    #[test]
    fn rejects_table() {
        let bad: &[(&str, TemplateError)] = &[
            ("/x/{{uuid", TemplateError::Unclosed(3)),
            ("{{ }}", TemplateError::Empty(0)),
            (
                "ab{{ nope }}",
                TemplateError::Unknown {
                    name: "nope".into(),
                    offset: 5,
                },
            ),
            (
                "{{a.b.c}}",
                TemplateError::Unknown {
                    name: "a.b.c".into(),
                    offset: 2,
                },
            ),
        ];
        for (src, err) in bad {
            assert_eq!(Template::parse(src).unwrap_err(), *err, "{src}");
        }
        for src in [
            "{{randint(5,1)}}",
            "{{randint(a,1)}}",
            "{{randint(1)}}",
            "{{random()}}",
            "{{random(a}}",
        ] {
            assert!(
                matches!(Template::parse(src), Err(TemplateError::BadArgs { .. })),
                "{src} should be BadArgs"
            );
        }
        let msg = Template::parse("x{{oops}}").unwrap_err().to_string();
        assert!(msg.contains("oops") && msg.contains("byte 3"), "{msg}");
    }

    #[test]
    fn renders() {
        let t =
            Template::parse("/u/{{vu}}/{{iter}}/{{seq}}/{{randint(4,4)}}/{{random(x)}}/{{f.c}}")
                .unwrap();
        let mut out = Vec::new();
        let vars = RenderVars {
            seq: 7,
            vu: 2,
            iter: 3,
        };
        t.render_with(
            vars,
            &mut rand::rng(),
            &mut |r, o| {
                if let Ref::Feeder { feeder, column } = r {
                    o.extend_from_slice(format!("{feeder}:{column}").as_bytes())
                }
            },
            &mut out,
        );
        assert_eq!(String::from_utf8(out).unwrap(), "/u/2/3/7/4/x/f:c");
        let u = Template::parse("{{uuid}}").unwrap().render_string(vars);
        assert_eq!(uuid::Uuid::parse_str(&u).unwrap().get_version_num(), 4);
    }

    #[test]
    fn every_bad_placeholder_is_reported() {
        let errors =
            Template::parse_every("/x/{{uuidd}}/{{seq}}/{{nope}}/{{random()}}", false).unwrap_err();
        let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 3, "{texts:?}");
        assert!(texts[0].contains("'uuidd'"), "{texts:?}");
        assert!(texts[1].contains("'nope'"), "{texts:?}");
        assert!(texts[2].contains("random"), "{texts:?}");
        // `parse` still answers with the first one.
        assert!(Template::parse("{{uuidd}} {{nope}}")
            .unwrap_err()
            .to_string()
            .contains("uuidd"));
    }

    #[test]
    fn json_string_content_round_trips() {
        for v in [
            "",
            "plain",
            r#"say "hi""#,
            r"C:\path\x",
            "line1\nline2\r\n\ttab",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "ünïcødé \u{2028} 😀",
        ] {
            let mut out = b"\"".to_vec();
            write_json_str_content(v, &mut out);
            out.push(b'"');
            let text = String::from_utf8(out).unwrap();
            let back: String =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, v, "{text}");
        }
        let mut out = Vec::new();
        write_json_str_content("a\"b\\c\nd\u{1}", &mut out);
        assert_eq!(out, br#"a\"b\\c\nd\u0001"#);
    }

    #[test]
    fn static_and_feeders() {
        assert!(Template::parse("/health").unwrap().is_static());
        let t = Template::parse("{{p.text}}-{{uuid}}-{{q.id}}").unwrap();
        assert!(!t.is_static());
        assert_eq!(
            t.feeders_used().collect::<Vec<_>>(),
            vec![("p", "text"), ("q", "id")]
        );
    }
}

//! Pieces of lowering that scenarios, probes and the plan as a whole share: defaults,
//! templates, headers, bodies and feeder references. A module of its own so that `validate`
//! (the plan), `scenario` and `probes` import it and not each other.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::grammar::response::ResponseCheck;
use crate::grammar::template::Template;
use crate::spec::{Feeder, RequestSpec};

use super::model;

use super::problem::Issues;
use super::tree::PathSeg;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `graceful_stop` (as k6).
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Default `max_duration` of the iteration executors (as k6).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);
/// Default `pre_allocated_vus` of the arrival-rate executors.
pub const DEFAULT_PRE_ALLOCATED_VUS: u32 = 10;
/// `max_vus` defaults to `max(pre_allocated_vus, DEFAULT_MAX_VUS)`.
pub const DEFAULT_MAX_VUS: u32 = 100;

/// A check's `runbook:` (text or a link): trimmed; an empty one is a problem (it would print
/// nothing under a failed check).
pub(crate) fn runbook(
    text: Option<&String>,
    path: impl AsRef<[PathSeg]>,
    issues: &mut Issues,
) -> Option<String> {
    let t = text?.trim();
    if t.is_empty() {
        issues.at(
            path,
            "must not be empty: say what to do when the check fails, or link a runbook",
        );
        return None;
    }
    Some(t.to_string())
}

pub(crate) fn template(text: &str, path: &[PathSeg], issues: &mut Issues) -> Option<Template> {
    parse_template(text, false, path, issues)
}

/// Parse a template, reporting every bad placeholder in it.
fn parse_template(
    text: &str,
    vars: bool,
    path: &[PathSeg],
    issues: &mut Issues,
) -> Option<Template> {
    match Template::parse_every(text, vars) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in errors {
                issues.at(path, format!("bad template: {e}"));
            }
            None
        }
    }
}

pub(crate) fn headers(
    map: Option<&BTreeMap<String, String>>,
    base: &[PathSeg],
    issues: &mut Issues,
) -> Vec<(String, Template)> {
    headers_with(map, base, false, issues)
}

/// [`headers`]; `vars`: `{{NAME}}` placeholders are allowed (flow steps, probes).
pub(crate) fn headers_with(
    map: Option<&BTreeMap<String, String>>,
    base: &[PathSeg],
    vars: bool,
    issues: &mut Issues,
) -> Vec<(String, Template)> {
    let mut out = Vec::new();
    for (name, value) in map.into_iter().flatten() {
        let mut p = base.to_vec();
        p.push(PathSeg::Key(name.clone()));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            issues.at_key(&p, format!("{name:?} is not a valid header name"));
            continue;
        }
        if let Some(t) = parse_template(value, vars, &p, issues) {
            out.push((name.clone(), t));
        }
    }
    out
}

/// Report every `{{feeder.column}}` of `t` that names no feeder of the plan, or no column of it.
pub(crate) fn check_feeder_refs(
    t: &Template,
    path: &[PathSeg],
    feeders: &BTreeMap<String, Feeder>,
    issues: &mut Issues,
) {
    for (f, c) in t.feeders_used() {
        match feeders.get(f) {
            None => {
                let known: Vec<&str> = feeders.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "the plan defines no feeders".to_string()
                } else {
                    format!("feeders: {}", known.join(", "))
                };
                issues.at(
                    path,
                    format!("{{{{{f}.{c}}}}} names an unknown feeder {f:?} ({hint})"),
                );
            }
            Some(feeder) if feeder.columns.is_empty() => {} // failed to load: reported there
            Some(feeder) if !feeder.columns.iter().any(|col| col == c) => issues.at(
                path,
                format!(
                    "{{{{{f}.{c}}}}}: feeder {f:?} has no column {c:?} (columns: {})",
                    feeder.columns.join(", ")
                ),
            ),
            Some(_) => {}
        }
    }
}

/// A request body: a YAML string is sent as written; any other value is sent as JSON (its
/// placeholders all sit inside JSON strings and their values are escaped,
/// `RequestSpec::body_json`), with `content-type: application/json` unless a header sets
/// one. Returns the template and whether it is JSON. `vars`: `{{NAME}}` placeholders are
/// allowed (probe chains).
pub(crate) fn body_with(
    body: Option<&serde_json::Value>,
    path: &[PathSeg],
    hdrs: &mut Vec<(String, Template)>,
    default_headers: &[String],
    issues: &mut Issues,
    vars: bool,
) -> (Option<Template>, bool) {
    let parse = |text: &str, issues: &mut Issues| {
        if vars {
            template_vars(text, path, issues)
        } else {
            template(text, path, issues)
        }
    };
    match body {
        None => (None, false),
        Some(serde_json::Value::String(s)) => (parse(s, issues), false),
        Some(v) => {
            let json = numbers_unquoted(&serde_json::to_string(v).unwrap_or_default());
            let has_ct = |n: &str| n.eq_ignore_ascii_case("content-type");
            if !hdrs.iter().any(|(n, _)| has_ct(n)) && !default_headers.iter().any(|n| has_ct(n)) {
                hdrs.push((
                    "content-type".to_string(),
                    Template::literal("application/json"),
                ));
            }
            (parse(&json, issues), true)
        }
    }
}

/// In a JSON body, a string that is nothing but `{{randint(lo,hi)}}` becomes a JSON number:
/// its quotes are dropped, so `{n: "{{randint(1,6)}}"}` sends `{"n":4}`. Every other
/// placeholder (`"{{seq}}"` included, which servers often take as a string id) stays inside
/// its string.
pub(crate) fn numbers_unquoted(json: &str) -> String {
    static NUMERIC: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#""(\{\{\s*randint\([^)"]*\)\s*\}\})""#).expect("valid pattern")
    });
    NUMERIC.replace_all(json, "$1").into_owned()
}

/// Parse a probe template (`{{NAME}}` reads a captured value).
pub(crate) fn template_vars(text: &str, path: &[PathSeg], issues: &mut Issues) -> Option<Template> {
    parse_template(text, true, path, issues)
}

/// An HTTP method as written (upper-cased), or a problem.
pub(crate) fn method(m: &str, path: &[PathSeg], issues: &mut Issues) -> String {
    let method = m.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        issues.at(
            path,
            format!("{method:?} is not an HTTP method (GET, POST, PUT, ...)"),
        );
    }
    method
}

/// The names tag filters may refer to.
pub(crate) struct Names<'a> {
    pub scenarios: &'a BTreeSet<String>,
    pub probes: &'a BTreeSet<String>,
    /// What the plan's requests can tag samples with (None: some scenario or probe did not
    /// lower, so request-level tags are not checked).
    pub sources: Option<Sources>,
}

/// The values request-level tags can take in a plan: a filter on anything else matches no
/// sample, and its threshold can only fail with "no data".
#[derive(Debug, Default)]
pub(crate) struct Sources {
    names: BTreeSet<String>,
    methods: BTreeSet<String>,
    /// Flow steps' names.
    steps: BTreeSet<String>,
    /// Response checks as written (and flow steps' `until: ...` / `extract ...`).
    checks: BTreeSet<String>,
    /// The scenarios' own tags: key -> values.
    custom: BTreeMap<String, BTreeSet<String>>,
}

impl Sources {
    pub fn of(
        scenarios: &[crate::spec::ScenarioSpec],
        probes: &[crate::spec::ProbeSpec],
    ) -> Sources {
        let mut s = Sources::default();
        for sc in scenarios {
            for (i, r) in sc.requests.iter().enumerate() {
                s.names.insert(r.name.clone());
                s.methods.insert(r.method.to_ascii_uppercase());
                if sc.flow.is_some() {
                    s.steps.insert(r.name.clone());
                }
                s.checks.extend(crate::metrics::request_check_names(sc, i));
            }
            for (k, v) in &sc.tags {
                s.custom.entry(k.clone()).or_default().insert(v.clone());
            }
        }
        for p in probes {
            match &p.kind {
                crate::spec::ProbeKind::Request(r) => {
                    s.names.insert(r.label());
                    s.methods.insert(r.method.clone());
                }
                crate::spec::ProbeKind::Chain(c) => {
                    s.names.insert("chain".into());
                    s.methods.insert(c.submit.method.clone());
                }
            }
        }
        s
    }

    /// Why `key:value` matches no sample of the plan, if it cannot.
    fn never_matches(&self, key: &str, value: &str) -> Option<String> {
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        match key {
            "name" if !self.names.contains(value) => Some(format!(
                "no request is named `{value}` (names: {})",
                list(&self.names)
            )),
            "step" if !self.steps.contains(value) => Some(if self.steps.is_empty() {
                "no scenario has `steps:` (step tags come from flows)".to_string()
            } else {
                format!(
                    "no flow step is named `{value}` (steps: {})",
                    list(&self.steps)
                )
            }),
            "check" if !self.checks.contains(value) => Some(format!(
                "no response check is written `{value}` (checks: {})",
                if self.checks.is_empty() {
                    "none".to_string()
                } else {
                    list(&self.checks)
                }
            )),
            "method" if !self.methods.contains(&value.to_ascii_uppercase()) => Some(format!(
                "no request uses method {value} (methods: {})",
                list(&self.methods)
            )),
            "error" if crate::metrics::ErrorKind::parse(value).is_none() => Some(format!(
                "`{value}` is not an error kind (kinds: {})",
                crate::metrics::ErrorKind::ALL
                    .map(|k| k.as_str())
                    .join(", ")
            )),
            "expected_response" if value != "true" && value != "false" => {
                Some("expected_response is `true` or `false`".into())
            }
            "status"
                if !value
                    .parse::<u16>()
                    .is_ok_and(|s| s == 0 || (100..=599).contains(&s)) =>
            {
                Some("a status is a number from 100 to 599 (0: no response)".into())
            }
            "scenario" | "probe" | "name" | "step" | "check" | "method" | "error"
            | "expected_response" | "status" => None,
            custom => match self.custom.get(custom) {
                None => Some(format!(
                    "no scenario has a tag `{custom}` (scenario tags: {})",
                    if self.custom.is_empty() {
                        "none".to_string()
                    } else {
                        self.custom.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )),
                Some(values) if !values.contains(value) => Some(format!(
                    "no scenario has `{custom}: {value}` (values: {})",
                    list(values)
                )),
                Some(_) => None,
            },
        }
    }
}

impl Names<'_> {
    /// Report a tag that no sample of the plan can carry: a `scenario:` or `probe:` naming
    /// nothing, a request name, method, error kind or custom tag no request produces.
    pub fn check_tags(&self, tags: &[(String, String)], at: &[PathSeg], issues: &mut Issues) {
        for (k, v) in tags {
            if let Some(why) = self.sources.as_ref().and_then(|s| s.never_matches(k, v)) {
                issues.at_key(at, format!("{k}:{v} can match no sample: {why}"));
                continue;
            }
            let (set, what) = match k.as_str() {
                "scenario" => (self.scenarios, "scenario"),
                "probe" => (self.probes, "probe"),
                _ => continue,
            };
            if !set.contains(v) {
                let known: Vec<&str> = set.iter().map(String::as_str).collect();
                let list = if known.is_empty() {
                    format!("the plan has no {what}s")
                } else {
                    format!("{what}s: {}", known.join(", "))
                };
                issues.at_key(at, format!("{k}:{v} names no {what} ({list})"));
            }
        }
    }
}

/// Lower one request; `vars`: `{{NAME}}` placeholders are allowed (flow steps).
pub(crate) fn request(
    base: &[PathSeg],
    r: &model::Request,
    feeders: &BTreeMap<String, Feeder>,
    default_headers: &[String],
    vars: bool,
    issues: &mut Issues,
) -> Option<RequestSpec> {
    let at = |field: &str| {
        let mut p = base.to_vec();
        p.push(PathSeg::Key(field.to_string()));
        p
    };
    let before = issues.0.len();
    let method = method(
        r.method
            .as_deref()
            .unwrap_or(if r.body.is_some() { "POST" } else { "GET" }),
        &at("method"),
        issues,
    );
    let weight = r.weight.unwrap_or(1);
    if weight == 0 {
        issues.at(at("weight"), "must be at least 1");
    }
    let path = match &r.path {
        None => {
            issues.at(
                at("path"),
                "required: the request path, e.g. `path: /v1/chat`",
            );
            None
        }
        Some(p) if !p.starts_with('/') && !p.starts_with("{{") => {
            issues.at(at("path"), format!("must start with '/', got {p:?}"));
            None
        }
        Some(p) if vars => template_vars(p, &at("path"), issues),
        Some(p) => template(p, &at("path"), issues),
    };
    if let Some(t) = &path {
        check_feeder_refs(t, &at("path"), feeders, issues);
    }
    let mut hdrs = headers_with(r.headers.as_ref(), &at("headers"), vars, issues);
    for (name, value) in &hdrs {
        let mut p = at("headers");
        p.push(PathSeg::Key(name.clone()));
        check_feeder_refs(value, &p, feeders, issues);
    }
    let (body, body_json) = body_with(
        r.body.as_ref(),
        &at("body"),
        &mut hdrs,
        default_headers,
        issues,
        vars,
    );
    if let Some(t) = &body {
        check_feeder_refs(t, &at("body"), feeders, issues);
    }
    let mut checks = Vec::new();
    for (i, c) in r.checks.iter().flatten().enumerate() {
        match ResponseCheck::parse(c) {
            Ok(check) => checks.push(check),
            Err(e) => issues.at(
                [at("checks"), vec![PathSeg::Index(i)]].concat(),
                format!("bad check: {e}"),
            ),
        }
    }
    let path = path?;
    if issues.0.len() != before {
        return None;
    }
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("{method} {}", r.path.as_deref().unwrap_or_default()));
    Some(RequestSpec {
        name,
        weight,
        method,
        path,
        headers: hdrs,
        body,
        body_json,
        checks,
    })
}

/// A duration that must be more than zero (an interval, a timeout): a zero one is a problem
/// at `path` and counts as not given.
pub fn positive(d: Option<Duration>, path: &[PathSeg], issues: &mut Issues) -> Option<Duration> {
    match d {
        Some(d) if d.is_zero() => {
            issues.at(path, "must be longer than 0s");
            None
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_placeholders_become_json_numbers() {
        assert_eq!(
            numbers_unquoted(
                r#"{"n":"{{randint(1,6)}}","s":"{{ seq }}","t":"x {{randint(1,2)}}","u":"{{uuid}}"}"#
            ),
            r#"{"n":{{randint(1,6)}},"s":"{{ seq }}","t":"x {{randint(1,2)}}","u":"{{uuid}}"}"#
        );
    }

    #[test]
    fn feeder_refs_are_checked_against_the_plan_feeders() {
        let feeders = BTreeMap::from([(
            "users".to_string(),
            Feeder {
                name: "users".into(),
                columns: vec!["id".into(), "name".into()],
                rows: vec![],
                order: crate::spec::FeederOrder::Sequential,
            },
        )]);
        let t = Template::parse(
            "{{users.id}} {{ users.nick }} {{uuid}} {{seq}} {{prompts.text}} {{random(a.b)}}",
        )
        .unwrap();
        let mut issues = Issues::default();
        check_feeder_refs(&t, &[PathSeg::from("body")], &feeders, &mut issues);
        let msgs: Vec<&str> = issues.0.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "{{users.nick}}: feeder \"users\" has no column \"nick\" (columns: id, name)",
                "{{prompts.text}} names an unknown feeder \"prompts\" (feeders: users)",
            ]
        );
    }
}

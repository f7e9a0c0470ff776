//! Layering of a plan: the file, then an environment profile (`--env NAME`), then
//! `--set key.path=value` overrides, then `${VAR}` interpolation. All of it edits the located
//! tree before the typed model is read, so a value from any layer is checked the same way and
//! problems still point at the file (or at the `--set` that introduced the value).
//!
//! `--set` path grammar:
//! ```text
//! path    := segment ( '.' segment )*
//! segment := key index* | digits        e.g. scenarios.chat.stages[0].to, stages.0.to
//! key     := any characters except '.', '[' (a '.' inside {...} belongs to the key, so
//!            thresholds.http_req_duration{name:a.b} works)
//! index   := '[' digits ']'
//! ```
//! The value is read as a YAML scalar (or flow collection): `50/s`, `10`, `true`, `[a, b]`.
use super::interp::{interpolate, Lookup};
use super::problem::Issue;
use super::tree::{Key, Kind, Loc, Node, PathSeg};

/// Why a `--set` key path did not parse (reported at the `--set` it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetPathError {
    #[error("empty segment in --set path {0:?}: write keys separated by single dots, e.g. scenarios.chat.rate")]
    EmptySegment(String),
    #[error("unclosed '[' in --set path {0:?}: write an index as [N], e.g. stages[1]")]
    Unclosed(String),
    #[error("bad index in --set path {0:?}: an index is a number, e.g. stages[1]")]
    BadIndex(String),
    #[error(
        "unexpected {rest:?} in --set path {text:?}: after an index comes another [N] or a '.'"
    )]
    AfterIndex { rest: String, text: String },
}

/// Parse a `--set` key path.
pub fn parse_set_path(text: &str) -> Result<Vec<PathSeg>, SetPathError> {
    let mut segments = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut parts = Vec::new();
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c)
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c)
            }
            '.' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    for part in parts {
        // Indices follow the key, after a tag filter's `}` if it has one:
        // `stages[1]`, `http_reqs{scenario:home}[0]`.
        let from = part.rfind('}').map(|i| i + 1).unwrap_or(0);
        let (key, mut indices) = match part[from..].find('[') {
            Some(i) => (&part[..from + i], &part[from + i..]),
            None => (part.as_str(), ""),
        };
        if key.is_empty() && indices.is_empty() {
            return Err(SetPathError::EmptySegment(text.to_string()));
        }
        if !key.is_empty() {
            match key.parse::<usize>() {
                Ok(i) if !segments.is_empty() => segments.push(PathSeg::Index(i)),
                _ => segments.push(PathSeg::Key(key.to_string())),
            }
        }
        while !indices.is_empty() {
            let close = indices
                .find(']')
                .ok_or_else(|| SetPathError::Unclosed(text.to_string()))?;
            let i = indices[1..close]
                .parse::<usize>()
                .map_err(|_| SetPathError::BadIndex(text.to_string()))?;
            segments.push(PathSeg::Index(i));
            indices = &indices[close + 1..];
            if !indices.is_empty() && !indices.starts_with('[') {
                return Err(SetPathError::AfterIndex {
                    rest: indices.to_string(),
                    text: text.to_string(),
                });
            }
        }
    }
    Ok(segments)
}

/// Sections whose entries are named by the user; `--set` may edit an entry, not start one
/// with a single field.
const NAMED: [&str; 5] = ["scenarios", "feeders", "environments", "probes", "slos"];

/// Apply the `index`-th `--set key=value` to the tree.
pub(crate) fn apply_set(
    tree: &mut Node,
    index: usize,
    key: &str,
    value: &str,
) -> Result<(), Issue> {
    let loc = Loc::Set(index);
    let fail = |path: Vec<PathSeg>, msg: String| {
        let mut issue = Issue::new(path, msg);
        issue.loc = Some(loc);
        issue
    };
    let path = parse_set_path(key).map_err(|e| fail(Vec::new(), e.to_string()))?;
    let value = Node::parse_value(value, loc);
    let mut node = tree;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match seg {
            PathSeg::Key(k) => {
                if !matches!(node.kind, Kind::Map(_)) {
                    // Overriding a scalar (or null) with a nested value: start a fresh map.
                    *node = Node::new(Kind::Map(Vec::new()), loc);
                }
                if node.get(k).is_none() {
                    // A named entry of a collection (a scenario, a probe, ...) cannot be made
                    // from one field: a typo in its name would otherwise surface as "missing
                    // executor" on an entry nobody meant to write.
                    let parent = path[..i].last();
                    if i == 1
                        && !last
                        && matches!(parent, Some(PathSeg::Key(p)) if NAMED.contains(&p.as_str()))
                    {
                        let names: Vec<String> = node
                            .as_map()
                            .map(|m| m.iter().map(|(k, _)| k.name.clone()).collect())
                            .unwrap_or_default();
                        let what = match parent {
                            Some(PathSeg::Key(p)) => p.trim_end_matches('s').to_string(),
                            _ => "entry".into(),
                        };
                        let best = names
                            .iter()
                            .map(|n| (strsim::levenshtein(k, n), n))
                            .filter(|(d, n)| *d <= 2.max(n.len() / 3))
                            .min();
                        let hint = match best {
                            Some((_, n)) => format!("did you mean `{n}`?"),
                            None if names.is_empty() => format!("the plan has no {what}"),
                            None => format!("{what}s: {}", names.join(", ")),
                        };
                        return Err(fail(
                            path[..i].to_vec(),
                            format!("--set {key}: no {what} `{k}` ({hint})"),
                        ));
                    }
                    let fresh = Node::new(Kind::Map(Vec::new()), loc);
                    node.insert(
                        Key {
                            name: k.clone(),
                            loc,
                        },
                        fresh,
                    );
                }
                let child = node.get_mut(k).expect("just inserted");
                if last {
                    *child = value;
                    return Ok(());
                }
                node = child;
            }
            PathSeg::Index(idx) => {
                let Kind::Seq(items) = &mut node.kind else {
                    return Err(fail(
                        path[..i].to_vec(),
                        format!("--set {key}: [{idx}] indexes a value that is not a list"),
                    ));
                };
                let len = items.len();
                let Some(child) = items.get_mut(*idx) else {
                    return Err(fail(
                        path[..i].to_vec(),
                        format!(
                            "--set {key}: index {idx} is out of range (the list has {len} items)"
                        ),
                    ));
                };
                if last {
                    *child = value;
                    return Ok(());
                }
                node = child;
            }
        }
    }
    Err(fail(
        Vec::new(),
        "--set needs a key path, e.g. --set scenarios.chat.rate=50/s".into(),
    ))
}

/// Apply the environment profile `name`: its `target` replaces the plan's, its `headers` are
/// merged over `defaults.headers`. (Its `scale` is applied when lowering.)
pub(crate) fn apply_profile(tree: &mut Node, name: &str) -> Result<(), Issue> {
    let envs = tree.get("environments");
    let Some(profile) = envs.and_then(|e| e.get(name)).cloned() else {
        let defined: Vec<String> = envs
            .and_then(Node::as_map)
            .map(|m| m.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default();
        let hint = if defined.is_empty() {
            "the plan has no `environments`".to_string()
        } else {
            format!("defined: {}", defined.join(", "))
        };
        return Err(Issue::new(
            vec![PathSeg::Key("environments".into())],
            format!("--env {name}: no such environment ({hint})"),
        ));
    };
    if let Some(target) = profile.get("target") {
        let key_loc = profile.key_loc("target").unwrap_or(target.loc);
        tree.insert(
            Key {
                name: "target".into(),
                loc: key_loc,
            },
            target.clone(),
        );
    }
    if let Some(headers) = profile.get("headers").and_then(Node::as_map) {
        if tree.get("defaults").is_none() {
            tree.insert(
                Key {
                    name: "defaults".into(),
                    loc: Loc::Unknown,
                },
                Node::new(Kind::Map(Vec::new()), Loc::Unknown),
            );
        }
        let defaults = tree.get_mut("defaults").expect("inserted");
        if !matches!(defaults.kind, Kind::Map(_)) {
            return Ok(()); // decoding reports the bad `defaults`
        }
        if defaults.get("headers").is_none() {
            defaults.insert(
                Key {
                    name: "headers".into(),
                    loc: Loc::Unknown,
                },
                Node::new(Kind::Map(Vec::new()), Loc::Unknown),
            );
        }
        let target = defaults.get_mut("headers").expect("inserted");
        if matches!(target.kind, Kind::Map(_)) {
            for (k, v) in headers {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// Interpolate `${VAR}` in every string of the tree except the `environments` section (its
/// selected profile was already copied in; the others must not need their variables).
pub(crate) fn interpolate_tree(tree: &mut Node, lookup: &dyn Fn(&str) -> Lookup) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut path = Vec::new();
    tree.walk_strings_mut(&mut path, &mut |path, loc, s| {
        if matches!(path.first(), Some(PathSeg::Key(k)) if k == "environments") {
            return;
        }
        match interpolate(s, lookup) {
            Ok(v) => *s = v,
            Err(errors) => {
                for e in errors {
                    let mut issue = Issue::new(path.to_vec(), e.to_string());
                    issue.loc = Some(loc);
                    issues.push(issue);
                }
            }
        }
    });
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> PathSeg {
        PathSeg::Key(s.into())
    }

    #[test]
    fn set_paths() {
        assert_eq!(parse_set_path("target").unwrap(), vec![k("target")]);
        assert_eq!(
            parse_set_path("scenarios.chat.rate").unwrap(),
            vec![k("scenarios"), k("chat"), k("rate")]
        );
        assert_eq!(
            parse_set_path("scenarios.chat.stages[1].to").unwrap(),
            vec![
                k("scenarios"),
                k("chat"),
                k("stages"),
                PathSeg::Index(1),
                k("to")
            ]
        );
        assert_eq!(
            parse_set_path("scenarios.chat.stages.0.to").unwrap()[3],
            PathSeg::Index(0)
        );
        assert_eq!(
            parse_set_path("thresholds.http_req_duration{name:a.b}").unwrap(),
            vec![k("thresholds"), k("http_req_duration{name:a.b}")]
        );
        assert_eq!(
            parse_set_path("thresholds.http_reqs{scenario:home}[0]").unwrap(),
            vec![
                k("thresholds"),
                k("http_reqs{scenario:home}"),
                PathSeg::Index(0)
            ]
        );
        assert!(parse_set_path("a..b").is_err());
        assert!(parse_set_path("a[x]").is_err());
    }

    #[test]
    fn set_values_are_typed_and_create_maps() {
        let mut tree = Node::parse("scenarios:\n  chat:\n    rate: 10/s\n").unwrap();
        apply_set(&mut tree, 0, "scenarios.chat.rate", "50/s").unwrap();
        apply_set(&mut tree, 1, "defaults.timeout", "2s").unwrap();
        apply_set(&mut tree, 2, "scenarios.chat.vus", "7").unwrap();
        let chat = tree.get("scenarios").unwrap().get("chat").unwrap();
        assert_eq!(chat.get("rate").unwrap().kind, Kind::Str("50/s".into()));
        assert_eq!(chat.get("rate").unwrap().loc, Loc::Set(0));
        assert_eq!(chat.get("vus").unwrap().kind, Kind::UInt(7));
        assert_eq!(
            tree.get("defaults").unwrap().get("timeout").unwrap().kind,
            Kind::Str("2s".into())
        );
        let err = apply_set(&mut tree, 3, "scenarios.chat.rate[2]", "1").unwrap_err();
        assert!(err.message.contains("not a list"), "{}", err.message);
    }

    #[test]
    fn a_typo_in_a_named_entry_is_named_with_a_suggestion() {
        let mut tree =
            Node::parse("scenarios:\n  home:\n    rate: 10/s\n  checkout:\n    rate: 1/s\n")
                .unwrap();
        let err = apply_set(&mut tree, 0, "scenarios.hom.rate", "100/s").unwrap_err();
        assert_eq!(
            err.message,
            "--set scenarios.hom.rate: no scenario `hom` (did you mean `home`?)"
        );
        let err = apply_set(&mut tree, 0, "scenarios.zzzzzz.rate", "1/s").unwrap_err();
        assert!(
            err.message.ends_with("(scenarios: home, checkout)"),
            "{}",
            err.message
        );
        // Whole new entries, and new keys elsewhere, are still fine.
        apply_set(&mut tree, 1, "scenarios.extra", "{executor: constant-vus}").unwrap();
        apply_set(
            &mut tree,
            2,
            "thresholds.http_reqs{scenario:home}",
            "[\"count>0\"]",
        )
        .unwrap();
        apply_set(
            &mut tree,
            3,
            "thresholds.http_reqs{scenario:home}[0]",
            "count>1",
        )
        .unwrap();
        let t = tree
            .get("thresholds")
            .unwrap()
            .get("http_reqs{scenario:home}")
            .unwrap();
        assert!(
            matches!(&t.kind, Kind::Seq(items) if items[0].kind == Kind::Str("count>1".into()))
        );
    }
}

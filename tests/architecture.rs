//! The module map is a contract of its own (design.md, Architecture): data flows one way, the
//! lowered spec is a leaf above the grammars, and no module imports its importer. This test
//! reads the sources and fails when a `use crate::X` (or a `crate::X::` path in code) breaks
//! the layering, or when the plan module's files import each other in a cycle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules, lowest first: each may import only modules listed before it.
const LAYERS: &[&str] = &[
    "grammar", "spec", "metrics", "checks", "engine", "fault", "stack", "control", "run", "drills",
    "report", "plan", "session", "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Code lines only (no comments, no doc comments).
fn code(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// `crate::NAME` references in code.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code(text) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + 7..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
        // `use crate::{a, b::c}` groups.
        if let Some(i) = line.find("crate::{") {
            for part in line[i + 8..].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn top_level_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let refs = crate_refs(&text);
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != top));
    }
    graph
}

#[test]
fn modules_only_import_lower_layers() {
    let graph = top_level_graph();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut problems = Vec::new();
    for (module, deps) in &graph {
        let Some(r) = rank(module) else {
            problems.push(format!(
                "src/{module} is not in the layer list: add it to LAYERS"
            ));
            continue;
        };
        for d in deps {
            match rank(d) {
                Some(dr) if dr < r => {}
                Some(_) => problems.push(format!("{module} imports {d}, a higher (or same) layer")),
                None => problems.push(format!("{module} imports crate::{d}, not a known module")),
            }
        }
    }
    // Print the map (the closing note's listing comes from here: `cargo test --test
    // architecture -- --nocapture`).
    for m in LAYERS {
        let deps: Vec<&str> = graph
            .get(*m)
            .map(|d| d.iter().map(String::as_str).collect())
            .unwrap_or_default();
        println!("{m:<8} -> {}", deps.join(", "));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        graph["spec"].iter().all(|d| d == "grammar"),
        "spec is a leaf above grammar: {:?}",
        graph["spec"]
    );
    assert!(
        graph.get("grammar").is_none_or(|d| d.is_empty()),
        "grammar imports nothing"
    );
}

#[test]
fn plan_files_do_not_import_each_other_in_a_cycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            names.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    for n in &names {
        let text = std::fs::read_to_string(dir.join(format!("{n}.rs"))).unwrap();
        let deps: BTreeSet<String> = names
            .iter()
            .filter(|m| *m != n && *m != "mod")
            .filter(|m| {
                code(&text).any(|l| {
                    l.contains(&format!("super::{m}::"))
                        || l.contains(&format!("super::{m};"))
                        || l.contains(&format!("super::{{{m}"))
                        || (l.contains("use super::{") && l.contains(&format!(" {m}")))
                })
            })
            .cloned()
            .collect();
        graph.insert(n.clone(), deps);
    }
    // Depth-first search for a cycle (mod.rs is the parent: its children may use it).
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            return Some(stack[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys().filter(|n| *n != "mod") {
        let cycle = visit(n, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "plan files import each other in a cycle: {cycle:?}"
        );
    }
    assert!(
        !graph["scenario"].contains("validate"),
        "scenario.rs must not import validate.rs (its importer)"
    );
}

//! Plan problems: what is wrong, where (file:line:column), and at which path.
use std::fmt;

use super::tree::{path_string, Loc, Node, PathSeg};

/// One problem in a plan. `line` and `column` are 1-based; 0 means "no position" (an IO error,
/// a `--set` override, a problem of the plan as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending value, e.g. `scenarios.chat.rate` (empty: the whole plan).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `file:line:col: path: message` (`file: path: message` when there is no position).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<Problem>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

impl PlanErrors {
    /// Problems in file order (problems without a position first).
    pub(crate) fn sorted(mut problems: Vec<Problem>) -> PlanErrors {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        PlanErrors(problems)
    }
}

/// A problem before it is placed in the file: a path, and the location if already known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub path: Vec<PathSeg>,
    pub loc: Option<Loc>,
    /// Point at the key rather than the value (e.g. a field not allowed here).
    pub at_key: bool,
    pub message: String,
}

impl Issue {
    pub fn new(path: Vec<PathSeg>, message: impl Into<String>) -> Issue {
        Issue {
            path,
            loc: None,
            at_key: false,
            message: message.into(),
        }
    }
}

/// Collects issues while checking one plan.
#[derive(Default)]
pub(crate) struct Issues(pub Vec<Issue>);

impl Issues {
    pub fn at(&mut self, path: impl AsRef<[PathSeg]>, message: impl Into<String>) {
        self.0.push(Issue::new(path.as_ref().to_vec(), message));
    }

    pub fn at_key(&mut self, path: impl AsRef<[PathSeg]>, message: impl Into<String>) {
        let mut issue = Issue::new(path.as_ref().to_vec(), message);
        issue.at_key = true;
        self.0.push(issue);
    }
}

/// Where problems are placed: the file name, the tree (for positions) and the `--set` texts.
pub(crate) struct Placer<'a> {
    pub file: &'a str,
    pub tree: &'a Node,
    pub sets: &'a [(String, String)],
}

impl Placer<'_> {
    pub fn place(&self, issue: &Issue) -> Problem {
        let loc = issue
            .loc
            .unwrap_or_else(|| self.locate(&issue.path, issue.at_key));
        let (file, line, column) = match loc {
            Loc::File { line, column } => (self.file.to_string(), line, column),
            Loc::Set(i) => {
                let (k, v) = self.sets.get(i).cloned().unwrap_or_default();
                (format!("--set {k}={v}"), 0, 0)
            }
            Loc::Unknown => (self.file.to_string(), 0, 0),
        };
        Problem {
            file,
            line,
            column,
            path: path_string(&issue.path),
            message: issue.message.clone(),
        }
    }

    /// The location of the node at `path`, or of its nearest existing ancestor.
    fn locate(&self, path: &[PathSeg], at_key: bool) -> Loc {
        for len in (0..=path.len()).rev() {
            let prefix = &path[..len];
            if at_key && len == path.len() {
                if let Some((PathSeg::Key(k), parent)) = prefix.split_last() {
                    if let Some(loc) = self.tree.at(parent).and_then(|p| p.key_loc(k)) {
                        return loc;
                    }
                }
            }
            if len < path.len() {
                // A missing field: point at the key that names its parent (`chat:`), not at
                // the parent's first entry.
                if let Some((PathSeg::Key(k), parent)) = prefix.split_last() {
                    if let Some(loc) = self.tree.at(parent).and_then(|p| p.key_loc(k)) {
                        return loc;
                    }
                }
            }
            if let Some(node) = self.tree.at(prefix) {
                return node.loc;
            }
        }
        Loc::Unknown
    }
}

//! A YAML document as a tree of located nodes.
//!
//! Why: serde stops at the first error and loses positions, but the plan needs (a) layering
//! (`--env` profiles, `--set key.path=value`) and `${VAR}` interpolation applied to the YAML
//! *before* it is typed, and (b) every problem reported with its line and column. So the source
//! is read once by serde-saphyr into this tree (every node and key keeps its [`Loc`]), the
//! layers edit the tree, and [`super::de`] deserializes the typed model from it, attaching the
//! location of the node where each error arose.
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Build a path from segments: `path!["scenarios", name, "rate"]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(PathSeg::from($seg)),*] };
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> PathSeg {
        PathSeg::Key(s.to_string())
    }
}

impl From<&String> for PathSeg {
    fn from(s: &String) -> PathSeg {
        PathSeg::Key(s.clone())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> PathSeg {
        PathSeg::Index(i)
    }
}

/// Where a node came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loc {
    /// Not known (synthesized node).
    #[default]
    Unknown,
    /// 1-based line and column in the plan file.
    File { line: usize, column: usize },
    /// The n-th `--set` override (0-based index into `PlanOptions::sets`).
    Set(usize),
}

impl Loc {
    fn from_saphyr(l: &serde_saphyr::Location) -> Loc {
        if l.line() == 0 {
            Loc::Unknown
        } else {
            Loc::File {
                line: l.line() as usize,
                column: l.column() as usize,
            }
        }
    }
}

/// A map key with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

/// A located YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub loc: Loc,
}

/// The node's value. Maps keep the file's key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Node {
    pub fn new(kind: Kind, loc: Loc) -> Node {
        Node { kind, loc }
    }

    /// Parse a YAML document. An empty document is an empty map.
    pub fn parse(source: &str) -> Result<Node, serde_saphyr::Error> {
        if source.trim().is_empty() {
            return Ok(Node::new(
                Kind::Map(Vec::new()),
                Loc::File { line: 1, column: 1 },
            ));
        }
        let options = serde_saphyr::options! { with_snippet: false, strict_booleans: true };
        let raw: Spanned<Raw> = serde_saphyr::from_str_with_options(source, options)?;
        Ok(into_node(raw))
    }

    /// Parse a `--set` value as a YAML scalar (or flow collection); every node gets `loc`.
    pub fn parse_value(text: &str, loc: Loc) -> Node {
        let mut node = match Node::parse(text) {
            Ok(node) if !text.trim().is_empty() => node,
            // Not valid YAML (or empty): take the text verbatim.
            _ => Node::new(Kind::Str(text.to_string()), loc),
        };
        node.set_loc(loc);
        node
    }

    fn set_loc(&mut self, loc: Loc) {
        self.loc = loc;
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.set_loc(loc)),
            Kind::Map(entries) => entries.iter_mut().for_each(|(k, n)| {
                k.loc = loc;
                n.set_loc(loc)
            }),
            _ => {}
        }
    }

    /// The scalar's text (numbers and booleans as written in canonical form).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Null => None,
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::UInt(u) => Some(u.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Str(s) => Some(s.clone()),
            Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    pub fn as_map(&self) -> Option<&Vec<(Key, Node)>> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(Key, Node)>> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` of a map node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The location of `key` itself in a map node.
    pub fn key_loc(&self, key: &str) -> Option<Loc> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k.loc)
    }

    /// Insert or replace `key` in a map node (keeps the position of an existing key).
    pub fn insert(&mut self, key: Key, value: Node) {
        if let Some(m) = self.as_map_mut() {
            if let Some(slot) = m.iter_mut().find(|(k, _)| k.name == key.name) {
                slot.1 = value;
            } else {
                m.push((key, value));
            }
        }
    }

    /// The node at a path of segments (map keys, or list indices).
    pub fn at(&self, path: &[PathSeg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.kind) {
                (PathSeg::Key(k), Kind::Map(_)) => node.get(k)?,
                (PathSeg::Index(i), Kind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Remove the node at `path` (a map entry or a list item). Returns false if absent.
    pub fn remove(&mut self, path: &[PathSeg]) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parent_path {
            node = match (seg, &mut node.kind) {
                (PathSeg::Key(k), Kind::Map(m)) => {
                    match m.iter_mut().find(|(key, _)| &key.name == k) {
                        Some((_, v)) => v,
                        None => return false,
                    }
                }
                (PathSeg::Index(i), Kind::Seq(items)) => match items.get_mut(*i) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, &mut node.kind) {
            (PathSeg::Key(k), Kind::Map(m)) => {
                let before = m.len();
                m.retain(|(key, _)| &key.name != k);
                m.len() != before
            }
            (PathSeg::Index(i), Kind::Seq(items)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }

    /// Visit every string scalar mutably, with its path.
    pub fn walk_strings_mut(
        &mut self,
        path: &mut Vec<PathSeg>,
        f: &mut dyn FnMut(&[PathSeg], Loc, &mut String),
    ) {
        let loc = self.loc;
        match &mut self.kind {
            Kind::Str(s) => f(path, loc, s),
            Kind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(PathSeg::Index(i));
                    item.walk_strings_mut(path, f);
                    path.pop();
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    path.push(PathSeg::Key(k.name.clone()));
                    v.walk_strings_mut(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Render a path the way users write it: `scenarios.chat.stages[1].to`.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Intermediate value read by serde-saphyr (children carry their spans).
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<RawKey>, Spanned<Raw>)>),
}

/// Keys: any scalar, kept as text.
struct RawKey(String);

fn into_node(raw: Spanned<Raw>) -> Node {
    {
        let loc = Loc::from_saphyr(&raw.referenced);
        let kind = match raw.value {
            Raw::Null => Kind::Null,
            Raw::Bool(b) => Kind::Bool(b),
            Raw::Int(i) => Kind::Int(i),
            Raw::UInt(u) => Kind::UInt(u),
            Raw::Float(f) => Kind::Float(f),
            Raw::Str(s) => Kind::Str(s),
            Raw::Seq(items) => Kind::Seq(items.into_iter().map(into_node).collect()),
            Raw::Map(entries) => Kind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.value.0,
                                loc: Loc::from_saphyr(&k.referenced),
                            },
                            into_node(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node { kind, loc }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::UInt(v))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_char<E>(self, v: char) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Raw, D2::Error> {
                Raw::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<RawKey>>()? {
                    let value = map.next_value::<Spanned<Raw>>()?;
                    entries.push((key, value));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawKey, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar map key")
            }
            fn visit_char<E>(self, v: char) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawKey, E> {
                Ok(RawKey(v))
            }
            fn visit_unit<E>(self) -> Result<RawKey, E> {
                Ok(RawKey("null".into()))
            }
            fn visit_none<E>(self) -> Result<RawKey, E> {
                Ok(RawKey("null".into()))
            }
        }
        d.deserialize_string(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_locations_and_order() {
        let n = Node::parse("b: 1\na:\n  x: [1, \"two\", 3.5]\n  y: 100/s\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].0.name, "b");
        assert_eq!(m[1].0.loc, Loc::File { line: 2, column: 1 });
        let a = n.get("a").unwrap();
        assert_eq!(a.get("y").unwrap().kind, Kind::Str("100/s".into()));
        assert_eq!(a.get("y").unwrap().loc, Loc::File { line: 4, column: 6 });
        let x = a.get("x").unwrap();
        match &x.kind {
            Kind::Seq(items) => {
                assert_eq!(items[1].kind, Kind::Str("two".into()));
                assert_eq!(
                    items[1].loc,
                    Loc::File {
                        line: 3,
                        column: 10
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_error_has_location() {
        let e = Node::parse("a: [1, 2\nb: 3\n").unwrap_err();
        let loc = e.location().expect("location");
        assert!(loc.line() >= 1, "{e}");
        eprintln!("{e}");
    }
}

//! Deserialize the typed plan model from a located [`Node`] tree, collecting every error.
//!
//! Why: serde stops at the first error and its errors carry no position. Here the
//! deserializer knows which node it is reading, so each error is stamped with the location
//! and path of the innermost node where it arose (an unknown field: the key; a bad value: the
//! value; a missing field: the map). [`decode_all`] then removes the offending entry from a
//! copy of the tree and decodes again, so one pass reports every bad field, not just the first.
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use super::tree::{path_string, Kind, Loc, Node, PathSeg};

/// A deserialization error with the location of the node it came from.
#[derive(Debug, Clone)]
pub struct DeError {
    pub message: String,
    /// Path of the node (None until stamped).
    pub path: Option<Vec<PathSeg>>,
    pub loc: Loc,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", path_string(p), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            path: None,
            loc: Loc::Unknown,
        }
    }
}

impl DeError {
    fn stamp(mut self, loc: Loc, path: &[PathSeg]) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_vec());
            self.loc = loc;
        }
        self
    }
}

/// Deserialize `T` from `node`; the first error is stamped with its location.
pub fn decode<T: DeserializeOwned>(node: &Node, path: &[PathSeg]) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_vec(),
    })
    .map_err(|e| e.stamp(node.loc, path))
}

/// Deserialize `T`, removing each offending entry and retrying, so every error is reported.
/// Returns the value decoded from what remained (if anything decoded), every error, and the
/// paths that were removed.
pub fn decode_all<T: DeserializeOwned>(
    node: &Node,
    max_errors: usize,
) -> (Option<T>, Vec<DeError>) {
    let mut work = node.clone();
    let mut errors: Vec<DeError> = Vec::new();
    loop {
        match decode::<T>(&work, &[]) {
            Ok(v) => return (Some(v), errors),
            Err(e) => {
                let path = e.path.clone().unwrap_or_default();
                let removed = !path.is_empty() && work.remove(&path);
                errors.push(e);
                if !removed || errors.len() >= max_errors {
                    return (None, errors);
                }
            }
        }
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: Vec<PathSeg>,
}

impl NodeDe<'_> {
    fn invalid_type(&self, exp: &dyn de::Expected) -> DeError {
        let unexp = match &self.node.kind {
            Kind::Null => de::Unexpected::Unit,
            Kind::Bool(b) => de::Unexpected::Bool(*b),
            Kind::Int(i) => de::Unexpected::Signed(*i),
            Kind::UInt(u) => de::Unexpected::Unsigned(*u),
            Kind::Float(f) => de::Unexpected::Float(*f),
            Kind::Str(s) => de::Unexpected::Str(s),
            Kind::Seq(_) => de::Unexpected::Seq,
            Kind::Map(_) => de::Unexpected::Map,
        };
        <DeError as de::Error>::invalid_type(unexp, exp)
    }
}

macro_rules! stamp {
    ($self:ident, $e:expr) => {{
        let loc = $self.node.loc;
        let path = $self.path.clone();
        $e.map_err(|e: DeError| e.stamp(loc, &path))
    }};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => stamp!(self, visitor.visit_unit()),
            Kind::Bool(b) => stamp!(self, visitor.visit_bool(*b)),
            Kind::Int(i) => stamp!(self, visitor.visit_i64(*i)),
            Kind::UInt(u) => stamp!(self, visitor.visit_u64(*u)),
            Kind::Float(f) => stamp!(self, visitor.visit_f64(*f)),
            Kind::Str(s) => stamp!(self, visitor.visit_str(s)),
            Kind::Seq(items) => {
                let access = SeqAcc {
                    items: items.iter().enumerate(),
                    path: &self.path,
                };
                stamp!(self, visitor.visit_seq(access))
            }
            Kind::Map(entries) => {
                let access = MapAcc {
                    entries: entries.iter(),
                    path: &self.path,
                    pending: None,
                };
                stamp!(self, visitor.visit_map(access))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            Kind::Null => stamp!(self, visitor.visit_none()),
            _ => {
                let (loc, path) = (self.node.loc, self.path.clone());
                visitor.visit_some(self).map_err(|e| e.stamp(loc, &path))
            }
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => stamp!(self, visitor.visit_str(s)),
            Kind::Bool(_) | Kind::Int(_) | Kind::UInt(_) | Kind::Float(_) => {
                let text = self.node.scalar_text().unwrap_or_default();
                stamp!(self, visitor.visit_string(text))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) if s.trim() == "true" => stamp!(self, visitor.visit_bool(true)),
            Kind::Str(s) if s.trim() == "false" => stamp!(self, visitor.visit_bool(false)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node.scalar_text() {
            Some(text) => {
                let d: de::value::StringDeserializer<DeError> = text.into_deserializer();
                stamp!(self, visitor.visit_enum(d))
            }
            None => {
                let e = self.invalid_type(&"one of the listed names");
                Err(e.stamp(self.node.loc, &self.path))
            }
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (loc, path) = (self.node.loc, self.path.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.stamp(loc, &path))
    }

    forward_to_deserialize_any! {
        i8 i16 i128 u128 char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

impl NodeDe<'_> {
    /// Numbers, also from strings (values that came from `${VAR}` interpolation).
    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Kind::Str(s) = &self.node.kind {
            let t = s.trim();
            if let Ok(u) = t.parse::<u64>() {
                return stamp!(self, visitor.visit_u64(u));
            }
            if let Ok(i) = t.parse::<i64>() {
                return stamp!(self, visitor.visit_i64(i));
            }
            if let Ok(f) = t.parse::<f64>() {
                return stamp!(self, visitor.visit_f64(f));
            }
        }
        de::Deserializer::deserialize_any(self, visitor)
    }
}

struct SeqAcc<'a, I> {
    items: I,
    path: &'a [PathSeg],
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for SeqAcc<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let mut path = self.path.to_vec();
                path.push(PathSeg::Index(i));
                let loc = node.loc;
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.stamp(loc, &path))
            }
        }
    }
}

struct MapAcc<'a, I> {
    entries: I,
    path: &'a [PathSeg],
    pending: Option<(&'a Node, Vec<PathSeg>)>,
}

impl<'de, 'a, I: Iterator<Item = &'a (super::tree::Key, Node)>> MapAccess<'de> for MapAcc<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                let mut path = self.path.to_vec();
                path.push(PathSeg::Key(key.name.clone()));
                let d: de::value::StrDeserializer<DeError> = key.name.as_str().into_deserializer();
                let k = seed.deserialize(d).map_err(|e| e.stamp(key.loc, &path))?;
                self.pending = Some((value, path));
                Ok(Some(k))
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self
            .pending
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without a key"))?;
        let loc = node.loc;
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.stamp(loc, &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<u32>,
        b: Option<crate::grammar::units::Rate>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Option<String>,
        items: Option<std::collections::BTreeMap<String, Inner>>,
    }

    #[test]
    fn every_error_located() {
        let src =
            "name: x\nitems:\n  one: { a: 1, b: fast }\n  two:\n    a: nope\n    zz: 3\nextra: 1\n";
        let node = Node::parse(src).unwrap();
        let (v, errs) = decode_all::<Outer>(&node, 50);
        let got: Vec<String> = errs
            .iter()
            .map(|e| match e.loc {
                Loc::File { line, column } => format!("{line}:{column}: {e}"),
                _ => format!("?: {e}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "3:19: items.one.b: expected a rate like 100/s or 30/m, got \"fast\"",
                "5:8: items.two.a: invalid type: string \"nope\", expected u32",
                "6:5: items.two.zz: unknown field `zz`, expected `a` or `b`",
                "7:1: extra: unknown field `extra`, expected `name` or `items`",
            ]
        );
        let v = v.unwrap();
        assert_eq!(
            v.items.unwrap()["one"],
            Inner {
                a: Some(1),
                b: None
            }
        );
    }
}

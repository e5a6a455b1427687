//! Where a field is in a YAML stream, for messages that point at a line: the stream is read
//! again into a tree of positions only when a document is refused.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node and where its children are.
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// The line of `field` (a path as `spec.endpoints[0].host`; `[]` for any element) in
/// document `document` (1-based) of `text`: the deepest part of the path the document has,
/// so a missing field points at the mapping it is missing from. None when the text cannot be
/// read as YAML (its own error says where).
pub fn line_of(text: &str, document: usize, field: &str) -> Option<u64> {
    let documents: Vec<Spanned<Node>> = serde_saphyr::from_multiple(text).ok()?;
    let mut node = documents.get(document.checked_sub(1)?)?;
    let mut line = node.referenced.line();
    for segment in segments(field) {
        let next = match (&node.value, segment) {
            (Node::Map(entries), Segment::Key(key)) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            (Node::Seq(items), Segment::Index(index)) => items.get(index),
            _ => None,
        };
        let Some(next) = next else { break };
        node = next;
        line = node.referenced.line();
    }
    Some(line)
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
    /// `[]`, or an index that is no number: the path stops there.
    Any,
}

/// `spec.endpoints[0].host` → spec, endpoints, 0, host.
fn segments(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index = index.trim_end_matches(']');
            out.push(index.parse().map_or(Segment::Any, Segment::Index));
        }
    }
    out
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// A key as the path names it: scalars keep their text, anything else never matches.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Key(match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }))
    }
}

macro_rules! scalar {
    ($($method:ident($type:ty)),*) => {
        $(fn $method<E>(self, _: $type) -> Result<Node, E> { Ok(Node::Scalar) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    scalar!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_i128(i128),
        visit_u128(u128),
        visit_f64(f64),
        visit_str(&str),
        visit_bytes(&[u8])
    );

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((Key(key), value)) = map.next_entry()? {
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n\
                          apiVersion: skupper.io/v2alpha1\n\
                          kind: Link\n\
                          metadata:\n  name: west\n\
                          spec:\n  endpoints:\n  - name: inter-router\n    host: a\n  - name: edge\n    host:\n    port: '1'\n";

    #[test]
    fn a_field_is_found_by_its_path() {
        assert_eq!(line_of(STREAM, 2, "spec.endpoints[1].host"), Some(14));
        assert_eq!(line_of(STREAM, 2, "spec.endpoints[0].host"), Some(12));
        assert_eq!(line_of(STREAM, 2, "metadata.name"), Some(8));
        assert_eq!(line_of(STREAM, 1, "metadata.name"), Some(3));
    }

    #[test]
    fn a_missing_field_points_at_what_holds_it() {
        assert_eq!(line_of(STREAM, 2, "spec.endpoints[1].group"), Some(13));
        assert_eq!(line_of(STREAM, 2, "spec.endpoints[].port"), Some(11));
        assert_eq!(line_of(STREAM, 2, "status"), Some(5));
        assert_eq!(line_of(STREAM, 3, "spec"), None);
        assert_eq!(line_of("a: [b\n", 1, "a"), None);
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            segments("spec.endpoints[0].host"),
            [
                Segment::Key("spec"),
                Segment::Key("endpoints"),
                Segment::Index(0),
                Segment::Key("host")
            ]
        );
        assert_eq!(segments("a[]"), [Segment::Key("a"), Segment::Any]);
        assert_eq!(segments(""), []);
    }
}

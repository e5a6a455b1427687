//! Values printed as the real router's Python code prints them in its messages: `repr` in a
//! dict (`{'type': 'io.skupper.router.site', 'name': 'vm'}`), `str` in an entity adapter's
//! `TcpListenerEntity(host=127.0.0.1, port=5432)`.

use serde_json::{Map, Value};

/// Python's `repr` of a JSON value (`True`, `None`, `'text'`, `[1, 'a']`, `{'k': 'v'}`).
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => repr_str(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => dict(map.iter()),
    }
}

/// Python's `str`: a string as it is, anything else as its `repr`.
pub fn str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// A dict's `repr`, keys in the order given.
pub fn dict<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    let entries: Vec<String> = entries
        .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// A config entity as `Config.load` holds it: `type` (its full name) first, then `name`, then
/// the other attributes (the real dict keeps the file's order, then the defaults).
pub fn config_entity(long_type: &str, attributes: &Map<String, Value>) -> String {
    let type_entry = ("type".to_string(), Value::String(long_type.into()));
    let name = attributes.get_key_value("name");
    let rest = attributes.iter().filter(|(k, _)| *k != "name");
    dict(
        std::iter::once((&type_entry.0, &type_entry.1))
            .chain(name)
            .chain(rest),
    )
}

/// An entity adapter's `str` (`agent.py` `EntityAdapter.__str__`): its class, after the
/// type's short name (`tcpListener` → `TcpListenerEntity`), and every attribute, sorted.
pub fn adapter(short_type: &str, attributes: &Map<String, Value>) -> String {
    // `camelcase(short_name, capital=True)`: `router.config.autoLink` → `RouterConfigAutolink`.
    let mut class = String::new();
    for (index, word) in short_type.split([' ', '_', '.', '-']).enumerate() {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            class.extend(first.to_uppercase());
            match index {
                0 => class.push_str(chars.as_str()),
                _ => class.push_str(&chars.as_str().to_lowercase()),
            }
        }
    }
    let mut keys: Vec<&String> = attributes.keys().collect();
    keys.sort();
    let fields: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{k}={}", str(&attributes[k])))
        .collect();
    format!("{class}Entity({})", fields.join(", "))
}

fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_python() {
        let attrs = json!({"port": "5432", "name": "vm", "authenticatePeer": false, "cost": 1,
                           "it's": "a \"q\"", "x": null, "l": ["a", 2]});
        let attrs = attrs.as_object().unwrap();
        assert_eq!(
            config_entity("io.skupper.router.tcpListener", attrs),
            "{'type': 'io.skupper.router.tcpListener', 'name': 'vm', 'authenticatePeer': False, \
             'cost': 1, \"it's\": 'a \"q\"', 'l': ['a', 2], 'port': '5432', 'x': None}"
        );
        assert_eq!(
            adapter("router.config.autoLink", attrs),
            "RouterConfigAutolinkEntity(authenticatePeer=False, cost=1, it's=a \"q\", \
             l=['a', 2], name=vm, port=5432, x=None)"
        );
    }
}

//! Loading `skrouterd.json` as the skupper-router image does: the entry script expands `${VARS}`
//! (Python's `os.path.expandvars`), then skrouterd parses a JSON array of `[type, {attributes}]`
//! pairs and refuses to start on anything its schema rejects.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::schema::{Operation, Schema, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("configuration must be a JSON array of [entityType, {{attributes}}] pairs; entry {0} is not")]
    Shape(usize),
    #[error("configuration entry {index} ({entity}): {source}")]
    Schema {
        index: usize,
        entity: String,
        source: SchemaError,
    },
    #[error("sslProfile '{profile}': {attribute} {path}: {source}")]
    SslFile {
        profile: String,
        attribute: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{entity} '{name}' refers to sslProfile '{profile}', which is not defined")]
    MissingProfile {
        entity: String,
        name: String,
        profile: String,
    },
    #[error("only one 'router' entity is allowed")]
    DuplicateRouter,
}

/// One validated entity: its short type name and coerced attributes (defaults filled in).
#[derive(Debug, Clone)]
pub struct Entity {
    pub entity_type: String,
    pub attributes: Map<String, Value>,
}

impl Entity {
    pub fn str(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn int(&self, key: &str) -> i64 {
        self.attributes
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    pub fn bool(&self, key: &str) -> bool {
        self.attributes
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn name(&self) -> &str {
        self.str("name")
    }
}

/// Expands `$NAME` and `${NAME}` from `lookup`, leaving unknown variables untouched, exactly as
/// Python's `os.path.expandvars` does in the image's `expandvars.py`.
pub fn expand_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if end > 0 => (&braced[..end], end + 2),
                _ => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        match (consumed, lookup(name)) {
            (c, Some(value)) if c > 0 && !name.is_empty() => {
                out.push_str(&value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses and validates a whole configuration text (already variable-expanded).
pub fn parse(text: &str) -> Result<Vec<Entity>, ConfigError> {
    let raw: Value = serde_json::from_str(text)?;
    let entries = raw.as_array().ok_or(ConfigError::Shape(0))?;
    let mut entities = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let (Some(type_name), Some(attrs)) = (
            entry.get(0).and_then(Value::as_str),
            entry.get(1).and_then(Value::as_object),
        ) else {
            return Err(ConfigError::Shape(index));
        };
        let schema_error = |source| ConfigError::Schema {
            index,
            entity: type_name.to_string(),
            source,
        };
        let entity_type = Schema::get().entity_type(type_name).map_err(schema_error)?;
        let attributes = entity_type
            .validate(attrs, Operation::Configure)
            .map_err(schema_error)?;
        entities.push(Entity {
            entity_type: entity_type.name.clone(),
            attributes,
        });
    }
    if entities
        .iter()
        .filter(|e| e.entity_type == "router")
        .count()
        > 1
    {
        return Err(ConfigError::DuplicateRouter);
    }
    check_references(&entities)?;
    Ok(entities)
}

/// Reads, expands and validates the file, then checks that every sslProfile's files can be read:
/// the real router refuses to start when one is missing ("Failed to configure TLS certFile").
pub fn load(path: &Path) -> Result<Vec<Entity>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let expanded = expand_vars(&text, |name| std::env::var(name).ok());
    let entities = parse(&expanded)?;
    for profile in entities.iter().filter(|e| e.entity_type == "sslProfile") {
        check_ssl_files(profile)?;
    }
    Ok(entities)
}

pub fn check_ssl_files(profile: &Entity) -> Result<(), ConfigError> {
    for attribute in ["caCertFile", "certFile", "privateKeyFile"] {
        let path = profile.str(attribute);
        if path.is_empty() {
            continue;
        }
        std::fs::File::open(path).map_err(|source| ConfigError::SslFile {
            profile: profile.name().to_string(),
            attribute,
            path: path.to_string(),
            source,
        })?;
    }
    Ok(())
}

fn check_references(entities: &[Entity]) -> Result<(), ConfigError> {
    let profiles: Vec<&str> = entities
        .iter()
        .filter(|e| e.entity_type == "sslProfile")
        .map(Entity::name)
        .collect();
    for entity in entities {
        let profile = entity.str("sslProfile");
        if !profile.is_empty() && !profiles.contains(&profile) {
            return Err(ConfigError::MissingProfile {
                entity: entity.entity_type.clone(),
                name: entity.name().to_string(),
                profile: profile.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_python_expandvars() {
        let lookup = |n: &str| (n == "BASE").then(|| "/etc/skupper-router".to_string());
        assert_eq!(
            expand_vars("${BASE}/certs/a/tls.crt", lookup),
            "/etc/skupper-router/certs/a/tls.crt"
        );
        assert_eq!(expand_vars("$BASE/x", lookup), "/etc/skupper-router/x");
        assert_eq!(
            expand_vars("${NOPE}/x $NOPE $", lookup),
            "${NOPE}/x $NOPE $"
        );
        assert_eq!(expand_vars("a${BASE", lookup), "a${BASE");
    }

    #[test]
    fn names_the_offending_attribute() {
        let err = parse(r#"[["router", {"id": "r", "mode": "interior"}], ["listener", {"name": "l", "prot": 5671}]]"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration entry 1 (listener): unknown attribute 'prot' for entity type 'listener'"
        );
    }

    #[test]
    fn refuses_dangling_ssl_profile() {
        let err =
            parse(r#"[["listener", {"name": "l", "port": 1, "sslProfile": "nope"}]]"#).unwrap_err();
        assert!(matches!(err, ConfigError::MissingProfile { .. }), "{err}");
    }
}

//! skupper-router 3.5.1's management schema, used the way the real router uses it: every entity
//! in the configuration file and every management CREATE is checked against it, and anything the
//! real router would refuse (unknown type, unknown or non-creatable attribute, a value of the
//! wrong type, a missing required attribute) is refused here too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const SCHEMA_JSON: &str = include_str!("../schema/skrouter-schema-3.5.1.json");
const PREFIX: &str = "io.skupper.router.";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("unknown entity type '{0}'")]
    UnknownType(String),
    #[error("unknown attribute '{attribute}' for entity type '{entity}'")]
    UnknownAttribute { entity: String, attribute: String },
    #[error("attribute '{attribute}' of entity type '{entity}' cannot be set")]
    NotSettable { entity: String, attribute: String },
    #[error("attribute '{attribute}' of entity type '{entity}': {problem}")]
    BadValue {
        entity: String,
        attribute: String,
        problem: String,
    },
    #[error("required attribute '{attribute}' missing from entity type '{entity}'")]
    Missing { entity: String, attribute: String },
    #[error("entity type '{entity}' does not allow {operation}")]
    OperationNotAllowed { entity: String, operation: String },
}

#[derive(Debug, Clone)]
enum AttrType {
    String,
    Integer,
    Boolean,
    Enum(Vec<String>),
    Map,
    List,
}

#[derive(Debug, Clone)]
struct Attribute {
    ty: AttrType,
    required: bool,
    create: bool,
    update: bool,
    /// `unique` in the schema: `name` and `identity`, defined once on the base `entity` type.
    unique: bool,
    default: Option<Value>,
}

#[derive(Debug)]
pub struct EntityType {
    /// Short name, e.g. `tcpListener`.
    pub name: String,
    attributes: BTreeMap<String, Attribute>,
    operations: Vec<String>,
    /// Its own operations, then its bases' (as the Python agent's `EntityType.operations`).
    all_operations: Vec<String>,
    /// At most one entity of the type (router, network, policy, management).
    singleton: bool,
    /// Its unique attributes, `name` first as the schema lists them (the agent compares them
    /// in that order and reports the first that clashes).
    unique: Vec<String>,
}

/// Why `Schema.validate_add` (`schema.py`) refuses an entity beside an existing one.
#[derive(Debug, Clone, PartialEq)]
pub enum Clash {
    /// A second entity of a singleton type.
    Singleton,
    /// The existing entity, of any type, has the same value of this unique attribute.
    Unique(String),
}

impl Clash {
    /// The router's ValidationError text; `new` and `existing` are the entities as the
    /// refusing code prints them (a dict at config load, an `...Entity(...)` at CREATE).
    pub fn message(&self, long_type: &str, new: &str, existing: &str) -> String {
        match self {
            Clash::Singleton => {
                format!("Adding {long_type} singleton {new} when {existing} already exists")
            }
            Clash::Unique(attribute) => format!(
                "adding {new} duplicates unique attribute '{attribute}' from existing {existing}"
            ),
        }
    }
}

/// How an attribute map is being applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operation {
    /// An entry of the configuration file: any schema attribute may be given (Skupper's
    /// config sets `log.enable`, which is update-only for management).
    Configure,
    /// A management CREATE: only attributes marked `create`.
    Create,
    Update,
}

pub struct Schema {
    types: BTreeMap<String, EntityType>,
}

impl Schema {
    /// The schema shipped with skupper-router 3.5.1, parsed once.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(SCHEMA_JSON))
    }

    fn parse(text: &str) -> Schema {
        let root: Value = serde_json::from_str(text).expect("embedded schema is valid JSON");
        let raw = root["entityTypes"].as_object().expect("entityTypes");
        let types = raw
            .keys()
            .map(|name| {
                let mut attributes = BTreeMap::new();
                let mut operations = Vec::new();
                // Walk the `extends` chain; the most derived definition wins.
                let mut chain = Vec::new();
                let mut current = Some(name.as_str());
                while let Some(n) = current {
                    chain.push(&raw[n]);
                    current = raw[n]["extends"].as_str();
                }
                for def in chain.iter().rev() {
                    for (attr, spec) in def["attributes"].as_object().into_iter().flatten() {
                        attributes.insert(attr.clone(), Attribute::parse(spec));
                    }
                    if let Some(ops) = def["operations"].as_array() {
                        operations = ops
                            .iter()
                            .filter_map(|o| o.as_str().map(String::from))
                            .collect();
                    }
                }
                let all_operations = chain
                    .iter()
                    .flat_map(|def| def["operations"].as_array().into_iter().flatten())
                    .filter_map(|o| o.as_str().map(String::from))
                    .collect();
                let mut unique: Vec<String> = attributes
                    .iter()
                    .filter(|(_, a)| a.unique)
                    .map(|(n, _)| n.clone())
                    .collect();
                unique.sort_by_key(|n| n != "name");
                let entity = EntityType {
                    name: name.clone(),
                    attributes,
                    operations,
                    all_operations,
                    singleton: raw[name]["singleton"].as_bool().unwrap_or(false),
                    unique,
                };
                (name.clone(), entity)
            })
            .collect();
        Schema { types }
    }

    /// Accepts `io.skupper.router.tcpListener` or `tcpListener`; the config file's `address`
    /// is the router's `router.config.address`, as the real config loader maps it.
    pub fn entity_type(&self, name: &str) -> Result<&EntityType, SchemaError> {
        let short = name.strip_prefix(PREFIX).unwrap_or(name);
        let short = if short == "address" {
            "router.config.address"
        } else {
            short
        };
        self.types
            .get(short)
            .ok_or_else(|| SchemaError::UnknownType(name.to_string()))
    }
}

impl Attribute {
    fn parse(spec: &Value) -> Attribute {
        let ty = match &spec["type"] {
            Value::Array(tags) => AttrType::Enum(
                tags.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect(),
            ),
            Value::String(t) => match t.as_str() {
                "integer" => AttrType::Integer,
                "boolean" => AttrType::Boolean,
                "map" | "properties" => AttrType::Map,
                "list" => AttrType::List,
                // string, path, entityId
                _ => AttrType::String,
            },
            _ => AttrType::String,
        };
        Attribute {
            ty,
            required: spec["required"].as_bool().unwrap_or(false),
            create: spec["create"].as_bool().unwrap_or(false),
            update: spec["update"].as_bool().unwrap_or(false),
            unique: spec["unique"].as_bool().unwrap_or(false),
            default: spec.get("default").cloned(),
        }
    }

    /// Converts a value the way the real router's schema does (it coerces "3" to 3, 5671 to
    /// "5671", "true" to true) and refuses what it cannot convert.
    fn coerce(&self, value: &Value) -> Result<Value, String> {
        match (&self.ty, value) {
            (AttrType::String, Value::String(_)) => Ok(value.clone()),
            (AttrType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
            (AttrType::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
            (AttrType::String, other) => Err(format!("expected a string, got {other}")),
            (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            (AttrType::Integer, Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("invalid integer '{s}'")),
            (AttrType::Integer, other) => Err(format!("expected an integer, got {other}")),
            (AttrType::Boolean, Value::Bool(_)) => Ok(value.clone()),
            (AttrType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
                "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("invalid boolean '{s}'")),
            },
            (AttrType::Boolean, other) => Err(format!("expected a boolean, got {other}")),
            (AttrType::Enum(tags), Value::String(s)) if tags.contains(s) => Ok(value.clone()),
            (AttrType::Enum(tags), other) => Err(format!(
                "invalid value {other}, must be one of {}",
                tags.join(", ")
            )),
            (AttrType::Map, Value::Object(_)) => Ok(value.clone()),
            (AttrType::Map, other) => Err(format!("expected a map, got {other}")),
            (AttrType::List, Value::Array(_)) => Ok(value.clone()),
            (AttrType::List, other) => Err(format!("expected a list, got {other}")),
        }
    }
}

impl EntityType {
    pub fn allows(&self, operation: &str) -> bool {
        self.operations.iter().any(|o| o == operation)
    }

    /// The operations the Python agent lists for the type: its own, then its bases' (`READ`).
    pub fn all_operations(&self) -> &[String] {
        &self.all_operations
    }

    /// The type's full name, as the router prints it (`io.skupper.router.sslProfile`).
    pub fn long_name(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }

    /// `Schema.validate_add` for one existing entity (of type `other_type`): a singleton's
    /// second entity, or a unique attribute of this type set to the value the other has.
    /// Unique attributes are defined on the base type, so an sslProfile and a site may not
    /// share a name.
    pub fn clash(
        &self,
        attributes: &Map<String, Value>,
        other_type: &str,
        other: &Map<String, Value>,
    ) -> Option<Clash> {
        if self.singleton && other_type == self.name {
            return Some(Clash::Singleton);
        }
        self.unique
            .iter()
            .find(|a| attributes.get(*a).is_some_and(|v| other.get(*a) == Some(v)))
            .map(|a| Clash::Unique(a.clone()))
    }

    /// Whether the type has attribute `name`.
    pub fn has(&self, name: &str) -> bool {
        self.attributes.contains_key(name)
    }

    /// Whether management may UPDATE attribute `name`.
    pub fn updatable(&self, name: &str) -> bool {
        self.attributes.get(name).is_some_and(|a| a.update)
    }

    /// Validates `attributes` and returns them coerced, with the schema's defaults filled in
    /// unless this is an UPDATE.
    pub fn validate(
        &self,
        attributes: &Map<String, Value>,
        op: Operation,
    ) -> Result<Map<String, Value>, SchemaError> {
        let mut out = Map::new();
        for (key, value) in attributes {
            let attr = self
                .attributes
                .get(key)
                .ok_or_else(|| SchemaError::UnknownAttribute {
                    entity: self.name.clone(),
                    attribute: key.clone(),
                })?;
            // `type` is always accepted: management requests repeat it in the body.
            let settable = match op {
                Operation::Configure => true,
                Operation::Create => attr.create,
                Operation::Update => attr.update || key == "name",
            };
            if !settable && key != "type" && key != "identity" {
                return Err(SchemaError::NotSettable {
                    entity: self.name.clone(),
                    attribute: key.clone(),
                });
            }
            let value = attr
                .coerce(value)
                .map_err(|problem| SchemaError::BadValue {
                    entity: self.name.clone(),
                    attribute: key.clone(),
                    problem,
                })?;
            out.insert(key.clone(), value);
        }
        if op != Operation::Update {
            for (key, attr) in &self.attributes {
                if out.contains_key(key) || key == "type" {
                    continue;
                }
                match &attr.default {
                    Some(default) => {
                        let value = attr.coerce(default).unwrap_or_else(|_| default.clone());
                        out.insert(key.clone(), value);
                    }
                    None if attr.required => {
                        return Err(SchemaError::Missing {
                            entity: self.name.clone(),
                            attribute: key.clone(),
                        })
                    }
                    None => {}
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn coerces_like_the_router() {
        let listener = Schema::get().entity_type("listener").unwrap();
        let out = listener
            .validate(
                &attrs(json!({"name": "l", "port": 5671, "authenticatePeer": "true"})),
                Operation::Create,
            )
            .unwrap();
        assert_eq!(out["port"], json!("5671"));
        assert_eq!(out["authenticatePeer"], json!(true));
        assert_eq!(out["role"], json!("normal"), "default filled in");
        let router = Schema::get()
            .entity_type("io.skupper.router.router")
            .unwrap();
        let out = router
            .validate(
                &attrs(json!({"helloMaxAgeSeconds": "3"})),
                Operation::Create,
            )
            .unwrap();
        assert_eq!(out["helloMaxAgeSeconds"], json!(3));
    }

    #[test]
    fn refuses_what_the_router_refuses() {
        let schema = Schema::get();
        assert!(matches!(
            schema.entity_type("tcpBridge"),
            Err(SchemaError::UnknownType(_))
        ));
        let connector = schema.entity_type("connector").unwrap();
        let err = connector
            .validate(&attrs(json!({"hostname": "x"})), Operation::Create)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown attribute 'hostname' for entity type 'connector'"
        );
        let err = connector
            .validate(&attrs(json!({"cost": "cheap"})), Operation::Create)
            .unwrap_err();
        assert!(matches!(err, SchemaError::BadValue { .. }), "{err}");
        let err = connector
            .validate(&attrs(json!({"role": "peer"})), Operation::Create)
            .unwrap_err();
        assert!(err.to_string().contains("must be one of"), "{err}");
        let err = connector
            .validate(&attrs(json!({"connectionStatus": "x"})), Operation::Create)
            .unwrap_err();
        assert!(matches!(err, SchemaError::NotSettable { .. }), "{err}");
        let log = schema.entity_type("log").unwrap();
        log.validate(
            &attrs(json!({"module": "ROUTER_CORE", "enable": "error+"})),
            Operation::Configure,
        )
        .unwrap();
        let err = log
            .validate(&attrs(json!({"enable": "info+"})), Operation::Configure)
            .unwrap_err();
        assert!(matches!(err, SchemaError::Missing { .. }), "{err}");
    }

    #[test]
    fn address_is_router_config_address() {
        let address = Schema::get().entity_type("address").unwrap();
        address
            .validate(
                &attrs(json!({"prefix": "mc", "distribution": "multicast"})),
                Operation::Create,
            )
            .unwrap();
        assert!(Schema::get()
            .entity_type("tcpListener")
            .unwrap()
            .allows("DELETE"));
        assert!(!Schema::get()
            .entity_type("router")
            .unwrap()
            .allows("CREATE"));
    }
}

//! Loading `skrouterd.json` as the skupper-router image does: the entry script copies
//! `$QDROUTERD_CONF` to `/tmp/skrouterd.$QDROUTERD_CONF_TYPE` (`conf` by default) and expands
//! `${VARS}` (Python's `os.path.expandvars`), then `skrouterd -c` reads it, as a JSON array of
//! `[type, {attributes}]` pairs only when the file name ends in `.json`, and refuses to start on
//! anything its schema rejects.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::python;
use crate::schema::{Operation, Schema, SchemaError};

/// Where the configuration comes from, and so how the real router reads it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file the stand-in reads.
    pub path: PathBuf,
    /// The file the real router is given (`skrouterd -c FILE`): its name decides the format
    /// (`config.py` `Config.load`: JSON if it ends in `.json`) and its errors name it.
    pub router_file: String,
    /// Whether `${VARS}` are expanded first: the image's launch script does, skrouterd not.
    pub expand_vars: bool,
}

impl Source {
    /// `skrouterd -c FILE`.
    pub fn router_file(path: PathBuf) -> Source {
        Source {
            router_file: path.display().to_string(),
            path,
            expand_vars: false,
        }
    }

    /// The image's `launch.sh` with `QDROUTERD_CONF=path` and `QDROUTERD_CONF_TYPE=conf_type`.
    pub fn launch_script(path: PathBuf, conf_type: Option<&str>) -> Source {
        let extension = conf_type.filter(|t| !t.is_empty()).unwrap_or("conf");
        Source {
            path,
            router_file: format!("/tmp/skrouterd.{extension}"),
            expand_vars: true,
        }
    }
}

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
    #[error("{entity} '{name}' refers to sslProfile '{profile}', which is not defined")]
    MissingProfile {
        entity: String,
        name: String,
        profile: String,
    },
    /// `Schema.validate_add` refused an entity beside an earlier one: its ValidationError text.
    #[error("{0}")]
    Clash(String),
    #[error(
        "a JSON configuration read in the classic conf format, which the real router cannot \
         parse (it reads JSON only from a file named *.json: QDROUTERD_CONF_TYPE=json)"
    )]
    JsonAsClassic,
    #[error(
        "the stand-in reads only JSON configurations, not the classic conf format (JSON is \
         read from a file named *.json: QDROUTERD_CONF_TYPE=json)"
    )]
    Classic,
    /// What the real router's `Config` refuses, before anything is configured.
    #[error("Cannot load configuration file {file}: {source}")]
    Load {
        file: String,
        source: Box<ConfigError>,
    },
    /// What the real router's C code refuses once the schema has accepted the entity.
    #[error("{entity} '{name}': {message}")]
    Refused {
        entity: String,
        name: String,
        message: String,
    },
}

/// The real router's rule for a tcpListener (`tcp_adaptor.c`
/// `qd_dispatch_configure_tcp_listener`): `multiAddressStrategy` `none` means a single-address
/// listener, which needs `address`; `priority` or `weighted` take their addresses from
/// listenerAddress entities and must have no `address`. Returns the router's error
/// (`qd_error` name and text) when broken.
pub fn tcp_listener_problem(listener: &Entity) -> Option<String> {
    let multi = !matches!(listener.str("multiAddressStrategy"), "" | "none");
    let has_address = listener.attributes.contains_key("address");
    (multi == has_address).then(|| {
        "Configuration: Exactly one of the 'address' or 'multiAddressStrategy' field must be set"
            .to_string()
    })
}

/// The real router's rule for a listenerAddress (`adaptor_listener.c`
/// `qd_adaptor_listener_add_address`): its `listener` must be an existing tcpListener with a
/// multi-address strategy. `listener` is that tcpListener, if it exists.
pub fn listener_address_problem(address: &Entity, listener: Option<&Entity>) -> Option<String> {
    let name = address.str("listener");
    match listener {
        None => Some(format!(
            "Value: Listener for new address does not exist {name}"
        )),
        Some(l) if matches!(l.str("multiAddressStrategy"), "" | "none") => Some(format!(
            "Value: Must not assign new address to non multi-address listener {name}"
        )),
        Some(_) => None,
    }
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
    check_unique(&entities)?;
    check_references(&entities)?;
    check_tcp_listeners(&entities)?;
    Ok(entities)
}

/// Reads, expands and validates the file. An sslProfile's files are not read here: the real
/// router reads them when a listener, connector, tcpListener or tcpConnector uses the profile
/// (and refuses to start if they cannot be read then: "Failed to configure TLS certFile").
pub fn load(source: &Source) -> Result<Vec<Entity>, ConfigError> {
    let text = std::fs::read_to_string(&source.path).map_err(|e| ConfigError::Read {
        path: source.path.clone(),
        source: e,
    })?;
    let text = match source.expand_vars {
        true => expand_vars(&text, |name| std::env::var(name).ok()),
        false => text,
    };
    let parsed = if source.router_file.ends_with(".json") {
        parse(&text)
    } else if serde_json::from_str::<Value>(&text).is_ok() {
        // The classic parser turns JSON's lines into brackets that no longer match, or an
        // entity list nested one level too deep: the real router exits ("Extra data: line 17
        // column 4", "expected string or bytes-like object, got 'list'").
        Err(ConfigError::JsonAsClassic)
    } else {
        Err(ConfigError::Classic)
    };
    parsed.map_err(|e| match e {
        ConfigError::MissingProfile { .. } | ConfigError::Refused { .. } => e,
        e => ConfigError::Load {
            file: source.router_file.clone(),
            source: Box::new(e),
        },
    })
}

/// `Schema.validate_all`: each entity in turn against those before it (a singleton's second
/// entity, a name or identity already taken by an entity of any type).
fn check_unique(entities: &[Entity]) -> Result<(), ConfigError> {
    for (index, entity) in entities.iter().enumerate() {
        let entity_type = Schema::get()
            .entity_type(&entity.entity_type)
            .expect("parsed entities have schema types");
        for earlier in &entities[..index] {
            let Some(clash) = entity_type.clash(
                &entity.attributes,
                &earlier.entity_type,
                &earlier.attributes,
            ) else {
                continue;
            };
            let earlier_type = Schema::get()
                .entity_type(&earlier.entity_type)
                .expect("parsed entities have schema types");
            let long_type = entity_type.long_name();
            return Err(ConfigError::Clash(clash.message(
                &long_type,
                &python::config_entity(&long_type, &entity.attributes),
                &python::config_entity(&earlier_type.long_name(), &earlier.attributes),
            )));
        }
    }
    Ok(())
}

/// The router configures every tcpListener before any listenerAddress (`config.py`), so a
/// listenerAddress may come before its tcpListener in the file.
fn check_tcp_listeners(entities: &[Entity]) -> Result<(), ConfigError> {
    let refused = |entity: &Entity, message| ConfigError::Refused {
        entity: entity.entity_type.clone(),
        name: entity.name().to_string(),
        message,
    };
    for entity in entities {
        let problem = match entity.entity_type.as_str() {
            "tcpListener" => tcp_listener_problem(entity),
            "listenerAddress" => {
                let listener = entities
                    .iter()
                    .find(|e| e.entity_type == "tcpListener" && e.name() == entity.str("listener"));
                listener_address_problem(entity, listener)
            }
            _ => None,
        };
        if let Some(message) = problem {
            return Err(refused(entity, message));
        }
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
    fn tcp_listener_needs_exactly_one_of_address_or_strategy() {
        let listener = |attrs: &str| {
            parse(&format!(
                r#"[["tcpListener", {{"name": "l", "host": "127.0.0.1", "port": "1"{attrs}}}]]"#
            ))
        };
        listener(r#", "address": "a""#).unwrap();
        listener(r#", "address": "a", "multiAddressStrategy": "none""#).unwrap();
        listener(r#", "multiAddressStrategy": "priority""#).unwrap();
        for bad in [
            "",
            r#", "multiAddressStrategy": "none""#,
            r#", "address": "a", "multiAddressStrategy": "weighted""#,
        ] {
            let err = listener(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                "tcpListener 'l': Configuration: Exactly one of the 'address' or \
                 'multiAddressStrategy' field must be set",
                "{bad}"
            );
        }
        let err = listener(r#", "multiAddressStrategy": "random""#).unwrap_err();
        assert!(err.to_string().contains("must be one of"), "{err}");
    }

    #[test]
    fn listener_address_needs_a_multi_address_listener() {
        let config = |strategy: &str, listener: &str| {
            parse(&format!(
                r#"[["listenerAddress", {{"name": "m/k", "address": "k", "value": 1, "listener": "{listener}"}}],
                    ["tcpListener", {{"name": "multiAddress/m", "host": "127.0.0.1", "port": "1", {strategy}}}]]"#
            ))
        };
        // Before its tcpListener in the file is fine: the router loads tcpListeners first.
        config(r#""multiAddressStrategy": "priority""#, "multiAddress/m").unwrap();
        let err = config(r#""multiAddressStrategy": "priority""#, "multiAddress/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "listenerAddress 'm/k': Value: Listener for new address does not exist multiAddress/x"
        );
        let err = config(r#""address": "a""#, "multiAddress/m").unwrap_err();
        assert_eq!(
            err.to_string(),
            "listenerAddress 'm/k': Value: Must not assign new address to non multi-address \
             listener multiAddress/m"
        );
        // The schema requires address, value and listener.
        let err =
            parse(r#"[["listenerAddress", {"name": "m/k", "address": "k", "listener": "l"}]]"#)
                .unwrap_err();
        assert!(
            err.to_string().contains("required attribute 'value'"),
            "{err}"
        );
    }

    #[test]
    fn names_are_unique_across_entity_types() {
        let err = parse(
            r#"[["sslProfile", {"name": "vm", "caCertFile": "/ca.crt"}],
                ["site", {"name": "vm", "location": "x"}]]"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "adding {'type': 'io.skupper.router.site', 'name': 'vm', 'location': 'x'} \
             duplicates unique attribute 'name' from existing {'type': \
             'io.skupper.router.sslProfile', 'name': 'vm', 'caCertFile': '/ca.crt'}"
        );
        let err = parse(
            r#"[["tcpConnector", {"name": "c", "host": "h", "port": "1", "address": "a"}],
                ["tcpConnector", {"name": "c", "host": "h", "port": "2", "address": "a"}]]"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("duplicates unique attribute 'name' from existing"),
            "{err}"
        );
        // Entities without a name (address, log) never clash.
        parse(
            r#"[["address", {"prefix": "a", "distribution": "multicast"}],
                ["address", {"prefix": "b", "distribution": "multicast"}],
                ["sslProfile", {"name": "vm"}], ["site", {"name": "vm-1"}]]"#,
        )
        .unwrap();
    }

    #[test]
    fn refuses_a_second_singleton() {
        let err = parse(r#"[["router", {"id": "a"}], ["router", {"id": "b"}]]"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "Adding io.skupper.router.router singleton {'type': 'io.skupper.router.router', "
            ) && text.contains("'id': 'b'")
                && text.contains(" when {'type': 'io.skupper.router.router', ")
                && text.ends_with("} already exists"),
            "{text}"
        );
    }

    /// The image's launch script hands skrouterd `/tmp/skrouterd.$QDROUTERD_CONF_TYPE`
    /// (`conf` unless set), which skrouterd reads as JSON only if the name ends in `.json`.
    #[test]
    fn reads_json_only_as_the_image_would() {
        let dir = std::env::temp_dir().join(format!("standin-conf-type-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("skrouterd.json");
        std::fs::write(
            &json,
            "[[\"router\", {\"id\": \"r\"}],\n [\"sslProfile\", {\"name\": \"p\", \"caCertFile\": \"${HOME}/ca.crt\"}]]",
        )
        .unwrap();
        let classic = dir.join("skrouterd.conf");
        std::fs::write(&classic, "router {\n    id: r\n}\n").unwrap();

        let entities = load(&Source::launch_script(json.clone(), Some("json"))).unwrap();
        let home = std::env::var("HOME").unwrap();
        assert_eq!(entities[1].str("caCertFile"), format!("{home}/ca.crt"));
        for conf_type in [None, Some(""), Some("conf")] {
            let err = load(&Source::launch_script(json.clone(), conf_type)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "Cannot load configuration file /tmp/skrouterd.conf: a JSON configuration read \
                 in the classic conf format, which the real router cannot parse (it reads JSON \
                 only from a file named *.json: QDROUTERD_CONF_TYPE=json)",
                "{conf_type:?}"
            );
        }
        // `skrouterd -c FILE` itself: the name decides, and no ${VARS} are expanded.
        let entities = load(&Source::router_file(json.clone())).unwrap();
        assert_eq!(entities[1].str("caCertFile"), "${HOME}/ca.crt");
        let err = load(&Source::router_file(classic.clone())).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Load { source, .. } if matches!(**source, ConfigError::Classic)),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_dangling_ssl_profile() {
        let err =
            parse(r#"[["listener", {"name": "l", "port": 1, "sslProfile": "nope"}]]"#).unwrap_err();
        assert!(matches!(err, ConfigError::MissingProfile { .. }), "{err}");
    }
}

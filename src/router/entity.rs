//! The router's entity vocabulary: the types vansite renders into `skrouterd.json` and changes
//! through management, parsed once from the wire or the file into [`EntityType`].

use std::fmt;

use serde_json::{Map, Value};

/// A router entity type vansite knows (the schema's short names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    Router,
    SslProfile,
    Connector,
    Listener,
    Address,
    TcpConnector,
    TcpListener,
    ListenerAddress,
    Log,
    Site,
}

impl EntityType {
    /// Every type, in the order Skupper writes them into `skrouterd.json`.
    pub const ALL: [EntityType; 10] = [
        EntityType::Router,
        EntityType::SslProfile,
        EntityType::Connector,
        EntityType::Listener,
        EntityType::Address,
        EntityType::TcpConnector,
        EntityType::TcpListener,
        EntityType::ListenerAddress,
        EntityType::Log,
        EntityType::Site,
    ];

    /// The types a running router takes CREATE and DELETE for, each after the types it refers
    /// to: created in this order, deleted in the reverse.
    pub const LIVE: [EntityType; 5] = [
        EntityType::SslProfile,
        EntityType::Connector,
        EntityType::TcpConnector,
        EntityType::TcpListener,
        EntityType::ListenerAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Router => "router",
            EntityType::SslProfile => "sslProfile",
            EntityType::Connector => "connector",
            EntityType::Listener => "listener",
            EntityType::Address => "address",
            EntityType::TcpConnector => "tcpConnector",
            EntityType::TcpListener => "tcpListener",
            EntityType::ListenerAddress => "listenerAddress",
            EntityType::Log => "log",
            EntityType::Site => "site",
        }
    }

    pub fn parse(text: &str) -> Option<EntityType> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether a running router can create and delete entities of this type.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[type, {attributes}]` entry of `skrouterd.json`, or one entity of a running router.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterEntity {
    pub entity_type: EntityType,
    pub attributes: Map<String, Value>,
}

impl RouterEntity {
    /// The `name` attribute ("" for the unnamed singletons: router, address, log).
    pub fn name(&self) -> &str {
        self.attributes
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `type/name`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.entity_type, self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigFileError(String);

/// Reads a `skrouterd.json` text: a JSON array of `[type, {attributes}]` pairs. Entities of
/// types vansite does not know are an error: vansite wrote the file.
pub fn parse_config(text: &str) -> Result<Vec<RouterEntity>, ConfigFileError> {
    let pairs: Vec<(String, Map<String, Value>)> = serde_json::from_str(text)
        .map_err(|e| ConfigFileError(format!("not a router configuration: {e}")))?;
    pairs
        .into_iter()
        .map(|(entity_type, attributes)| {
            let entity_type = EntityType::parse(&entity_type)
                .ok_or_else(|| ConfigFileError(format!("unknown entity type '{entity_type}'")))?;
            Ok(RouterEntity {
                entity_type,
                attributes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names() {
        for entity_type in EntityType::ALL {
            assert_eq!(EntityType::parse(entity_type.as_str()), Some(entity_type));
        }
        assert_eq!(EntityType::parse("tcplistener"), None);
    }

    #[test]
    fn a_config_file_parses_into_typed_entities() {
        let entities = parse_config(
            r#"[["router", {"id": "r", "mode": "interior"}], ["tcpListener", {"name": "listener/a", "port": "1"}]]"#,
        )
        .unwrap();
        assert_eq!(entities[0].entity_type, EntityType::Router);
        assert_eq!(entities[0].name(), "");
        assert_eq!(entities[1].label(), "tcpListener/listener/a");
        assert!(parse_config(r#"[["bogus", {}]]"#).is_err());
        assert!(parse_config("{").is_err());
    }
}

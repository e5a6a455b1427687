//! A running router's tcpConnectors, tcpListeners and listenerAddresses brought to what the
//! site's resources render (`config::tcp_entities`), through management: DELETE what is no
//! longer wanted or differs, CREATE what is missing. The router is never restarted, so every
//! other connection and link stays up. Entities are matched by Skupper's names (`listener/…`,
//! `multiAddress/…`, `connector/…`; a listenerAddress by its `listener`); other entities of
//! those types are left alone.
//!
//! The router refuses a listenerAddress whose tcpListener does not exist, and refuses to delete
//! a tcpListener that still has listenerAddresses (skupper-router `adaptor_listener.c`), so
//! deletions go listenerAddresses, tcpListeners, tcpConnectors, and creations the other way
//! round; a tcpListener that is replaced takes its listenerAddresses with it, and they are
//! created again after it (as Skupper's `qdr.go` `Difference` does).

use std::collections::BTreeSet;

use serde_json::Value as JsonValue;

use super::config::TcpEntity;
use super::management::{ManagementClient, ManagementError};

/// What one sync changed, by entity name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LiveChanges {
    pub deleted: Vec<String>,
    pub created: Vec<String>,
}

impl LiveChanges {
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.created.is_empty()
    }
}

const MANAGED_PREFIXES: [&str; 3] = ["listener/", "connector/", "multiAddress/"];

/// In creation order; deletion goes the other way.
const TYPES: [&str; 3] = ["tcpConnector", "tcpListener", "listenerAddress"];

fn is_managed(name: &str) -> bool {
    MANAGED_PREFIXES.iter().any(|p| name.starts_with(p))
}

pub async fn sync_tcp(
    client: &mut ManagementClient,
    desired: &[TcpEntity],
) -> Result<LiveChanges, ManagementError> {
    let mut changes = LiveChanges::default();
    // (type, name) of what runs as wanted, and of what must go.
    let mut present: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut stale: Vec<(&str, String)> = Vec::new();
    for entity_type in TYPES {
        let running = client.query(entity_type, &[]).await?;
        for row in &running {
            let text = |key: &str| row.get(key).and_then(JsonValue::as_str);
            let Some(name) = text("name") else {
                continue;
            };
            let managed = match entity_type {
                "listenerAddress" => text("listener").is_some_and(is_managed),
                _ => is_managed(name),
            };
            if !managed {
                continue;
            }
            let same = desired
                .iter()
                .find(|e| e.entity_type == entity_type && e.name() == name)
                .is_some_and(|e| {
                    e.attributes()
                        .iter()
                        .all(|(k, v)| same_value(row.get(k), v))
                });
            if same {
                present.insert((entity_type, name.to_string()));
            } else {
                stale.push((entity_type, name.to_string()));
            }
        }
    }
    // A tcpListener that goes takes its listenerAddresses along, changed or not.
    let going: BTreeSet<String> = stale
        .iter()
        .filter(|(t, _)| *t == "tcpListener")
        .map(|(_, name)| name.clone())
        .collect();
    let orphans: Vec<(&str, String)> = present
        .iter()
        .filter(|(t, name)| {
            *t == "listenerAddress"
                && desired
                    .iter()
                    .find(|e| e.entity_type == *t && e.name() == name)
                    .and_then(TcpEntity::listener)
                    .is_some_and(|listener| going.contains(listener))
        })
        .cloned()
        .collect();
    for (entity_type, name) in orphans {
        present.remove(&(entity_type, name.clone()));
        stale.push((entity_type, name));
    }
    for entity_type in TYPES.iter().rev() {
        for (_, name) in stale.iter().filter(|(t, _)| t == entity_type) {
            client.delete(entity_type, name).await?;
            changes.deleted.push(name.clone());
        }
    }
    for entity_type in TYPES {
        for entity in desired.iter().filter(|e| e.entity_type == entity_type) {
            if !present.contains(&(entity_type, entity.name().to_string())) {
                client
                    .create(entity_type, entity.name(), entity.attributes())
                    .await?;
                changes.created.push(entity.name().to_string());
            }
        }
    }
    Ok(changes)
}

/// The router may answer a port written as a string with a number, or the reverse.
fn same_value(running: Option<&JsonValue>, wanted: &JsonValue) -> bool {
    let text = |v: &JsonValue| match v {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    };
    running.is_some_and(|r| text(r) == text(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_across_string_and_number() {
        assert!(same_value(Some(&json!(8080)), &json!("8080")));
        assert!(same_value(Some(&json!("x")), &json!("x")));
        assert!(same_value(Some(&json!(true)), &json!(true)));
        assert!(!same_value(None, &json!("x")));
        assert!(!same_value(Some(&json!("8081")), &json!("8080")));
    }
}

//! A running router's tcpConnectors and tcpListeners brought to what the site's resources
//! render (`config::tcp_entities`), through management: DELETE what is no longer wanted or
//! differs, CREATE what is missing. The router is never restarted, so every other connection
//! and link stays up. Entities are matched by Skupper's names (`listener/…`, `connector/…`);
//! other entities of those types are left alone.

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

const MANAGED_PREFIXES: [&str; 2] = ["listener/", "connector/"];

pub async fn sync_tcp(
    client: &mut ManagementClient,
    desired: &[TcpEntity],
) -> Result<LiveChanges, ManagementError> {
    let mut changes = LiveChanges::default();
    for entity_type in ["tcpConnector", "tcpListener"] {
        let running = client.query(entity_type, &[]).await?;
        let wanted: Vec<&TcpEntity> = desired
            .iter()
            .filter(|e| e.entity_type == entity_type)
            .collect();
        let mut present = Vec::new();
        for row in &running {
            let Some(name) = row.get("name").and_then(JsonValue::as_str) else {
                continue;
            };
            if !MANAGED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let same = wanted.iter().find(|e| e.name() == name).is_some_and(|e| {
                e.attributes()
                    .iter()
                    .all(|(k, v)| same_value(row.get(k), v))
            });
            if same {
                present.push(name.to_string());
            } else {
                client.delete(entity_type, name).await?;
                changes.deleted.push(name.to_string());
            }
        }
        for entity in wanted {
            if !present.iter().any(|name| name == entity.name()) {
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

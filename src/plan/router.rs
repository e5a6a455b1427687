//! What a change of the site's resources does to its router, decided from rendered entities
//! alone: the part of `skrouterd.json` a running router cannot change (its id and mode, its
//! listeners for links and management and their certificates) restarts it; everything else
//! (links' connectors, services' tcp entities, their sslProfiles) goes to the running router
//! through management as DELETE and CREATE, and never restarts it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::router::entity::{EntityType, RouterEntity};

/// Management operations that bring a running router's live entities to the wanted ones.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveOp {
    Delete {
        entity_type: EntityType,
        name: String,
    },
    Create(RouterEntity),
}

impl LiveOp {
    pub fn label(&self) -> String {
        match self {
            LiveOp::Delete { entity_type, name } => format!("delete {entity_type}/{name}"),
            LiveOp::Create(entity) => format!("create {}", entity.label()),
        }
    }
}

/// Names of the sslProfiles the router's own `listener`s use: fixed at start like the
/// listeners themselves.
fn listener_profiles(entities: &[RouterEntity]) -> BTreeSet<&str> {
    entities
        .iter()
        .filter(|e| e.entity_type == EntityType::Listener)
        .filter_map(|e| e.attributes.get("sslProfile").and_then(Value::as_str))
        .collect()
}

/// Whether `entity` is fixed at the router's start (`profiles`: the listeners' sslProfiles).
fn is_static(entity: &RouterEntity, profiles: &BTreeSet<&str>) -> bool {
    !entity.entity_type.is_live()
        || (entity.entity_type == EntityType::SslProfile && profiles.contains(entity.name()))
}

/// The entities of `config` a running router takes live, in creation order.
pub fn live_entities(config: &[RouterEntity]) -> Vec<RouterEntity> {
    let profiles = listener_profiles(config);
    let mut live: Vec<RouterEntity> = config
        .iter()
        .filter(|e| !is_static(e, &profiles))
        .cloned()
        .collect();
    live.sort_by_key(|e| creation_rank(e.entity_type));
    live
}

fn creation_rank(entity_type: EntityType) -> usize {
    EntityType::LIVE
        .iter()
        .position(|t| *t == entity_type)
        .unwrap_or(usize::MAX)
}

/// The fixed entities that differ between the configuration a router runs (`running`) and the
/// wanted one, as `type/name` labels; empty when the change can be made live.
pub fn restart_needed_for(running: &[RouterEntity], wanted: &[RouterEntity]) -> Vec<String> {
    let fixed = |config: &[RouterEntity]| -> Vec<(String, String)> {
        let profiles = listener_profiles(config);
        let mut entries: Vec<(String, String)> = config
            .iter()
            .filter(|e| is_static(e, &profiles))
            .map(|e| (e.label(), Value::Object(e.attributes.clone()).to_string()))
            .collect();
        entries.sort();
        entries
    };
    let (before, after) = (fixed(running), fixed(wanted));
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for entry in before.iter().filter(|e| !after.contains(e)) {
        changed.insert(entry.0.clone());
    }
    for entry in after.iter().filter(|e| !before.contains(e)) {
        changed.insert(entry.0.clone());
    }
    changed.into_iter().collect()
}

/// The operations that turn the router's live entities (`running`, as QUERY returns them,
/// every attribute included) into `wanted` (from [`live_entities`]): an entity that is missing
/// or differs in an attribute vansite sets is (re)created; one vansite no longer wants is
/// deleted; the fixed ones (`fixed`, by type and name) are never touched. An sslProfile of
/// `renewed` (its files changed) is recreated with every entity that uses it. Deletes come
/// first, dependents before what they use; creates after, in the reverse order.
pub fn live_ops(
    running: &[RouterEntity],
    wanted: &[RouterEntity],
    fixed: &BTreeSet<(EntityType, String)>,
    renewed: &BTreeSet<String>,
) -> Vec<LiveOp> {
    let uses_renewed = |r: &RouterEntity| {
        let profile = match r.entity_type {
            EntityType::SslProfile => Some(r.name()),
            _ => r.attributes.get("sslProfile").and_then(Value::as_str),
        };
        profile.is_some_and(|p| renewed.contains(p))
    };
    let same = |r: &RouterEntity, w: &RouterEntity| {
        !uses_renewed(r)
            && r.entity_type == w.entity_type
            && r.name() == w.name()
            && w.attributes
                .iter()
                .all(|(key, value)| same_value(r.attributes.get(key), value))
    };
    let mut deletes: Vec<&RouterEntity> = running
        .iter()
        .filter(|r| r.entity_type.is_live())
        .filter(|r| !fixed.contains(&(r.entity_type, r.name().to_string())))
        .filter(|r| !wanted.iter().any(|w| same(r, w)))
        .collect();
    // The router refuses to delete a tcpListener that still has listenerAddresses: a listener
    // that goes (or is replaced) takes its addresses along; wanted ones are created again.
    let listeners_going: Vec<String> = deletes
        .iter()
        .filter(|e| e.entity_type == EntityType::TcpListener)
        .map(|e| e.name().to_string())
        .collect();
    for address in running.iter().filter(|r| {
        r.entity_type == EntityType::ListenerAddress
            && r.attributes
                .get("listener")
                .and_then(Value::as_str)
                .is_some_and(|l| listeners_going.iter().any(|g| g == l))
    }) {
        if !deletes.iter().any(|d| std::ptr::eq(*d, address)) {
            deletes.push(address);
        }
    }
    deletes.sort_by_key(|e| std::cmp::Reverse(creation_rank(e.entity_type)));
    let deleted = |w: &RouterEntity| {
        deletes
            .iter()
            .any(|d| d.entity_type == w.entity_type && d.name() == w.name())
    };
    let mut creates: Vec<&RouterEntity> = wanted
        .iter()
        .filter(|w| deleted(w) || !running.iter().any(|r| same(r, w)))
        .collect();
    creates.sort_by_key(|e| creation_rank(e.entity_type));
    deletes
        .into_iter()
        .map(|e| LiveOp::Delete {
            entity_type: e.entity_type,
            name: e.name().to_string(),
        })
        .chain(creates.into_iter().cloned().map(LiveOp::Create))
        .collect()
}

/// The fixed entities of a configuration, by type and name (see [`live_ops`]).
pub fn fixed_names(config: &[RouterEntity]) -> BTreeSet<(EntityType, String)> {
    let profiles = listener_profiles(config);
    config
        .iter()
        .filter(|e| is_static(e, &profiles))
        .map(|e| (e.entity_type, e.name().to_string()))
        .collect()
}

/// The router may answer a port written as a string with a number, or the reverse.
fn same_value(running: Option<&Value>, wanted: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    running.is_some_and(|r| text(r) == text(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(entity_type: EntityType, attributes: Value) -> RouterEntity {
        let Value::Object(attributes) = attributes else {
            panic!("attributes are a map")
        };
        RouterEntity {
            entity_type,
            attributes,
        }
    }

    fn config(tcp_port: &str, mode: &str) -> Vec<RouterEntity> {
        vec![
            entity(EntityType::Router, json!({"id": "west-1", "mode": mode})),
            entity(
                EntityType::SslProfile,
                json!({"name": "skupper-local-server", "caCertFile": "a"}),
            ),
            entity(
                EntityType::SslProfile,
                json!({"name": "link1-profile", "caCertFile": "b"}),
            ),
            entity(
                EntityType::Connector,
                json!({"name": "link1", "sslProfile": "link1-profile", "port": "55671"}),
            ),
            entity(
                EntityType::Listener,
                json!({"name": "skupper-local-normal", "sslProfile": "skupper-local-server", "port": 5671}),
            ),
            entity(
                EntityType::TcpListener,
                json!({"name": "listener/db", "port": tcp_port, "address": "db"}),
            ),
        ]
    }

    #[test]
    fn services_and_links_are_live_the_routers_own_listeners_are_not() {
        let labels: Vec<String> = live_entities(&config("1", "interior"))
            .iter()
            .map(RouterEntity::label)
            .collect();
        assert_eq!(
            labels,
            [
                "sslProfile/link1-profile",
                "connector/link1",
                "tcpListener/listener/db"
            ]
        );
    }

    #[test]
    fn a_live_change_needs_no_restart_a_mode_change_does() {
        assert!(restart_needed_for(&config("1", "interior"), &config("2", "interior")).is_empty());
        assert_eq!(
            restart_needed_for(&config("1", "interior"), &config("1", "edge")),
            ["router/"]
        );
        let mut without_listener = config("1", "interior");
        without_listener.retain(|e| e.entity_type != EntityType::Listener);
        assert_eq!(
            restart_needed_for(&config("1", "interior"), &without_listener),
            [
                "listener/skupper-local-normal",
                "sslProfile/skupper-local-server"
            ]
        );
    }

    #[test]
    fn live_ops_delete_what_differs_or_is_gone_and_create_the_rest_in_order() {
        let wanted = live_entities(&config("2", "interior"));
        let fixed = fixed_names(&config("2", "interior"));
        // The router runs port 1 for listener/db, has a stray tcpConnector, lacks the link,
        // and reports extra attributes (null and counters) that vansite does not set.
        let running = vec![
            entity(
                EntityType::SslProfile,
                json!({"name": "skupper-local-server", "caCertFile": "a"}),
            ),
            entity(
                EntityType::TcpListener,
                json!({"name": "listener/db", "port": 1, "address": "db", "connectionsOpened": 3}),
            ),
            entity(
                EntityType::TcpConnector,
                json!({"name": "connector/old@localhost", "port": "9"}),
            ),
        ];
        let ops: Vec<String> = live_ops(&running, &wanted, &fixed, &BTreeSet::new())
            .iter()
            .map(LiveOp::label)
            .collect();
        assert_eq!(
            ops,
            [
                "delete tcpListener/listener/db",
                "delete tcpConnector/connector/old@localhost",
                "create sslProfile/link1-profile",
                "create connector/link1",
                "create tcpListener/listener/db",
            ]
        );
        // Once applied, nothing is left to do.
        let converged: Vec<RouterEntity> = wanted.clone();
        assert!(live_ops(&converged, &wanted, &fixed, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_profile_with_new_files_is_created_again_with_what_uses_it() {
        let profile = entity(
            EntityType::SslProfile,
            json!({"name": "web-tls", "caCertFile": "c", "certFile": "t", "privateKeyFile": "k"}),
        );
        let listener = entity(
            EntityType::TcpListener,
            json!({"name": "listener/web", "port": "1", "address": "web", "sslProfile": "web-tls"}),
        );
        let other = entity(
            EntityType::TcpListener,
            json!({"name": "listener/db", "port": "2", "address": "db"}),
        );
        let config = vec![profile, listener, other];
        let renewed = BTreeSet::from(["web-tls".to_string()]);
        let ops: Vec<String> = live_ops(&config, &config, &BTreeSet::new(), &renewed)
            .iter()
            .map(LiveOp::label)
            .collect();
        assert_eq!(
            ops,
            [
                "delete tcpListener/listener/web",
                "delete sslProfile/web-tls",
                "create sslProfile/web-tls",
                "create tcpListener/listener/web",
            ]
        );
    }

    #[test]
    fn a_replaced_multi_address_listener_takes_its_addresses_along() {
        let listener = |port: &str| {
            entity(
                EntityType::TcpListener,
                json!({"name": "multiAddress/db", "port": port, "multiAddressStrategy": "priority"}),
            )
        };
        let address = entity(
            EntityType::ListenerAddress,
            json!({"name": "db/a", "address": "a", "value": 0, "listener": "multiAddress/db"}),
        );
        let running = vec![listener("1"), address.clone()];
        let wanted = vec![listener("2"), address];
        let ops: Vec<String> = live_ops(&running, &wanted, &BTreeSet::new(), &BTreeSet::new())
            .iter()
            .map(LiveOp::label)
            .collect();
        assert_eq!(
            ops,
            [
                "delete listenerAddress/db/a",
                "delete tcpListener/multiAddress/db",
                "create tcpListener/multiAddress/db",
                "create listenerAddress/db/a",
            ]
        );
    }

    #[test]
    fn values_compare_across_string_and_number() {
        assert!(same_value(Some(&json!(8080)), &json!("8080")));
        assert!(same_value(Some(&json!(true)), &json!(true)));
        assert!(!same_value(None, &json!("x")));
        assert!(!same_value(Some(&json!("8081")), &json!("8080")));
    }
}

//! What a change of the site's resources does to its router, decided from rendered entities
//! alone: the part of `skrouterd.json` a running router cannot change (its id and mode, its
//! listeners for links and management) restarts it; everything else (links' connectors,
//! services' tcp entities, their sslProfiles) goes to the running router through management
//! as DELETE and CREATE, and never restarts it. New certificate files reach every sslProfile,
//! the listeners' too, as an UPDATE that makes the router read them again (skupper-router
//! 3.5.1 `qd_tls_update_ssl_profile`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::render::certs::{self, CertFiles};
use crate::router::entity::{EntityType, RouterEntity};

/// Management operations that bring a running router's live entities to the wanted ones.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveOp {
    Delete {
        entity_type: EntityType,
        name: String,
    },
    Create(RouterEntity),
    /// An sslProfile reads its files again: new handshakes use them. `ordinal` is the
    /// profile's next revision; with `close_older`, connections made under earlier revisions
    /// are closed (the router's `oldestValidOrdinal`), and those still trusted come back.
    Renew {
        profile: String,
        ordinal: u64,
        close_older: bool,
    },
}

impl LiveOp {
    pub fn label(&self) -> String {
        match self {
            LiveOp::Delete { entity_type, name } => format!("delete {entity_type}/{name}"),
            LiveOp::Create(entity) => format!("create {}", entity.label()),
            LiveOp::Renew {
                profile,
                close_older: false,
                ..
            } => format!("renew sslProfile/{profile}"),
            LiveOp::Renew {
                profile,
                close_older: true,
                ..
            } => format!("renew sslProfile/{profile} (its connections reconnect)"),
        }
    }

    /// The attributes an UPDATE of a renewed profile sends.
    pub fn renew_attributes(ordinal: u64, close_older: bool) -> serde_json::Map<String, Value> {
        let mut attributes = serde_json::Map::new();
        attributes.insert("ordinal".into(), ordinal.into());
        if close_older {
            attributes.insert("oldestValidOrdinal".into(), ordinal.into());
        }
        attributes
    }
}

/// How an sslProfile's files changed, which decides what the running router does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// New certificates with at least the trust the old ones had: new handshakes use them,
    /// open connections stay.
    Rotated,
    /// A CA the profile trusted is gone (a revoked link, a new site CA): connections made
    /// before are closed, so none stays up on trust that was withdrawn.
    TrustWithdrawn,
}

/// What changed between a profile's files on disk (`old`) and the planned ones; None when
/// nothing did.
pub fn renewal(old: &CertFiles, new: &CertFiles) -> Option<Renewal> {
    if old == new {
        return None;
    }
    let (trusted_before, trusted_now) = (
        certs::bundle_certificates(&old.ca_crt),
        certs::bundle_certificates(&new.ca_crt),
    );
    if trusted_before.is_subset(&trusted_now) {
        Some(Renewal::Rotated)
    } else {
        Some(Renewal::TrustWithdrawn)
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
/// every attribute included, every sslProfile too) into `wanted` (from [`live_entities`]): an
/// entity that is missing or differs in an attribute vansite sets is (re)created; one vansite
/// no longer wants is deleted; the fixed ones (`fixed`, by type and name) are never touched.
/// An sslProfile of `renewed` (its files changed) that is not created again is renewed in
/// place, fixed or not, at the revision after the one it runs. Deletes come first, dependents
/// before what they use; creates after, in the reverse order; renewals last.
pub fn live_ops(
    running: &[RouterEntity],
    wanted: &[RouterEntity],
    fixed: &BTreeSet<(EntityType, String)>,
    renewed: &BTreeMap<String, Renewal>,
) -> Vec<LiveOp> {
    let same = |r: &RouterEntity, w: &RouterEntity| {
        r.entity_type == w.entity_type
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
    let created = |profile: &RouterEntity| {
        creates
            .iter()
            .any(|c| c.entity_type == EntityType::SslProfile && c.name() == profile.name())
    };
    let kept_profiles: Vec<RouterEntity> =
        running.iter().filter(|r| !created(r)).cloned().collect();
    let renewals = renew_ops(&kept_profiles, renewed);
    deletes
        .into_iter()
        .map(|e| LiveOp::Delete {
            entity_type: e.entity_type,
            name: e.name().to_string(),
        })
        .chain(creates.into_iter().cloned().map(LiveOp::Create))
        .chain(renewals)
        .collect()
}

/// The renewals of the running sslProfiles (`running` may hold other entities too) whose
/// files changed: each at the revision after the one it runs.
pub fn renew_ops(running: &[RouterEntity], renewed: &BTreeMap<String, Renewal>) -> Vec<LiveOp> {
    running
        .iter()
        .filter(|r| r.entity_type == EntityType::SslProfile)
        .filter_map(|r| {
            let renewal = renewed.get(r.name())?;
            let ordinal = r.attributes.get("ordinal").and_then(Value::as_u64);
            Some(LiveOp::Renew {
                profile: r.name().to_string(),
                ordinal: ordinal.unwrap_or(0) + 1,
                close_older: *renewal == Renewal::TrustWithdrawn,
            })
        })
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
        let ops: Vec<String> = live_ops(&running, &wanted, &fixed, &BTreeMap::new())
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
        assert!(live_ops(&converged, &wanted, &fixed, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_profile_with_new_files_is_renewed_in_place_fixed_or_not() {
        let profile = |name: &str, ordinal: Option<u64>| {
            let mut attributes = json!({"name": name, "caCertFile": "c", "certFile": "t"});
            if let Some(ordinal) = ordinal {
                attributes["ordinal"] = json!(ordinal);
            }
            entity(EntityType::SslProfile, attributes)
        };
        let listener = entity(
            EntityType::TcpListener,
            json!({"name": "listener/web", "port": "1", "address": "web", "sslProfile": "web-tls"}),
        );
        // The router reports the revision it runs; a fixed (link listener) profile too.
        let running = vec![
            profile("web-tls", Some(2)),
            profile("skupper-site-server", None),
            listener.clone(),
        ];
        let wanted = vec![profile("web-tls", None), listener];
        let fixed = BTreeSet::from([(EntityType::SslProfile, "skupper-site-server".to_string())]);
        let renewed = BTreeMap::from([
            ("web-tls".to_string(), Renewal::Rotated),
            ("skupper-site-server".to_string(), Renewal::TrustWithdrawn),
        ]);
        let ops = live_ops(&running, &wanted, &fixed, &renewed);
        assert_eq!(
            ops,
            [
                LiveOp::Renew {
                    profile: "web-tls".into(),
                    ordinal: 3,
                    close_older: false
                },
                LiveOp::Renew {
                    profile: "skupper-site-server".into(),
                    ordinal: 1,
                    close_older: true
                },
            ]
        );
        // A profile created again anyway reads its files then: no renewal on top.
        let moved = vec![entity(
            EntityType::SslProfile,
            json!({"name": "web-tls", "caCertFile": "elsewhere", "certFile": "t"}),
        )];
        let labels: Vec<String> = live_ops(&running[..1], &moved, &BTreeSet::new(), &renewed)
            .iter()
            .map(LiveOp::label)
            .collect();
        assert_eq!(
            labels,
            ["delete sslProfile/web-tls", "create sslProfile/web-tls"]
        );
    }

    #[test]
    fn withdrawn_trust_closes_connections_added_trust_does_not() {
        let ca = |name: &str| certs::Ca::new(name).unwrap().cert_pem().to_string();
        let (site, link_a, link_b) = (ca("site"), ca("link-a"), ca("link-b"));
        let files = |cas: &[&str]| CertFiles {
            ca_crt: cas.concat(),
            tls_crt: "server".into(),
            tls_key: "key".into(),
        };
        let both = files(&[&site, &link_a, &link_b]);
        assert_eq!(renewal(&both, &both), None);
        assert_eq!(
            renewal(&files(&[&site, &link_a]), &both),
            Some(Renewal::Rotated)
        );
        assert_eq!(
            renewal(&both, &files(&[&site, &link_b])),
            Some(Renewal::TrustWithdrawn)
        );
        let rotated = CertFiles {
            tls_crt: "new server".into(),
            ..both.clone()
        };
        assert_eq!(renewal(&both, &rotated), Some(Renewal::Rotated));
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
        let ops: Vec<String> = live_ops(&running, &wanted, &BTreeSet::new(), &BTreeMap::new())
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

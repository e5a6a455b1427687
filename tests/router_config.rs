//! `skrouterd.json` rendering: golden files compared byte for byte (set `UPDATE_GOLDEN=1` to
//! rewrite them after an intended change), and every rendered config accepted by the router's
//! 3.5.1 schema as the stand-in router checks it.

mod support;

use vansite::model::{parse_documents, SiteResources};
use vansite::render::router_config::{render, tcp_entities, RenderContext};

const SITE_ID: &str = "6f1c2d3e-0000-4000-8000-000000000001";

/// The two RouterAccesses vansite's init writes: local management and link access.
const ROUTER_ACCESSES: &str = r#"
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: skupper-local}
spec:
  roles: [{name: normal, port: 5671}]
  bindHost: 127.0.0.1
  tlsCredentials: skupper-local-server
  issuer: skupper-local-ca
---
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: west}
spec:
  roles: [{name: inter-router, port: 55671}, {name: edge, port: 45671}]
  tlsCredentials: west
  issuer: skupper-site-ca
  subjectAlternativeNames: [west.example, 192.0.2.10]
"#;

const LOCAL_ACCESS_ONLY: &str = r#"
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: skupper-local}
spec:
  roles: [{name: normal, port: 5671}]
  bindHost: 127.0.0.1
  tlsCredentials: skupper-local-server
  issuer: skupper-local-ca
"#;

/// Two Links (one with a cost, both on one Secret) and TCP services both ways, some with TLS.
const LINKS_AND_SERVICES: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: east-token}
type: kubernetes.io/tls
data: {ca.crt: Y2E=, tls.crt: Y3J0, tls.key: a2V5}
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata: {name: east-token}
spec:
  tlsCredentials: east-token
  endpoints:
  - {name: inter-router, host: 203.0.113.7, port: "55671", group: skupper-router}
  - {name: edge, host: 203.0.113.7, port: "45671", group: skupper-router}
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata: {name: east-token-2}
spec:
  tlsCredentials: east-token
  cost: 5
  endpoints:
  - {name: inter-router, host: east-2.example, port: "55671"}
---
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata: {name: backend}
spec: {routingKey: backend, host: localhost, port: 8080}
---
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata: {name: payments}
spec: {routingKey: payments, host: payments.local, port: 8443, tlsCredentials: payments-ca, verifyHostname: true}
---
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata: {name: frontend}
spec: {routingKey: frontend, host: 0.0.0.0, port: 9090}
---
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata: {name: db}
spec: {routingKey: db, host: 127.0.0.1, port: 5432, tlsCredentials: db-tls, observer: none}
"#;

/// A Listener and MultiKeyListeners both ways: one served through a forwarder (router port
/// annotation, TLS, client certificates required), one bound by the router itself.
const MULTI_KEY_LISTENERS: &str = r#"
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata: {name: frontend, annotations: {vansite.io/router-port: "41000"}}
spec: {routingKey: frontend, host: 0.0.0.0, port: 9090}
---
apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata: {name: db, annotations: {vansite.io/router-port: "41001"}}
spec:
  host: 0.0.0.0
  port: 5432
  tlsCredentials: db-tls
  requireClientCert: true
  observer: none
  strategy:
    priority:
      routingKeys: [db-primary, db-replica, db-backup]
---
apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata: {name: web}
spec:
  host: 127.0.0.1
  port: 8080
  strategy:
    weighted:
      routingKeys: {web-green: 1, web-blue: 3}
"#;

fn site(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {{name: {name}, uid: {SITE_ID}}}\nspec: {spec}\n"
    )
}

fn resources(documents: &[&str]) -> SiteResources {
    let parsed = documents
        .iter()
        .flat_map(|text| {
            parse_documents(text, "test input")
                .expect("valid input")
                .resources
        })
        .collect();
    SiteResources::new("west", parsed).expect("valid site")
}

fn context(site_name: &str) -> RenderContext {
    RenderContext {
        site_id: SITE_ID.to_string(),
        router_id: format!("{site_name}-{}", &SITE_ID[..8]),
        skupper_version: "2.2.1".to_string(),
        platform: "podman".to_string(),
    }
}

/// The router would start with it: the stand-in's schema check accepts every entity and attribute.
fn assert_router_accepts(rendered: &str) {
    if let Err(error) = skrouterd_standin::config::parse(rendered) {
        panic!("the router schema refuses the rendered config: {error}\n{rendered}");
    }
}

fn check(golden: &str, resources: &SiteResources, site_name: &str) -> String {
    let rendered = render(resources, &context(site_name));
    assert_router_accepts(&rendered);
    support::assert_golden(&format!("tests/golden/{golden}"), &rendered);
    rendered
}

#[test]
fn interior_site_with_link_access() {
    let set = resources(&[&site("west", "{linkAccess: default}"), ROUTER_ACCESSES]);
    check("skrouterd-interior.json", &set, "west");
}

#[test]
fn edge_site_uses_edge_endpoints_and_mode() {
    let set = resources(&[
        &site("west", "{edge: true}"),
        LOCAL_ACCESS_ONLY,
        LINKS_AND_SERVICES,
    ]);
    let rendered = check("skrouterd-edge.json", &set, "west");
    // east-token-2 has no edge endpoint, so an edge router does not dial it.
    assert!(!rendered.contains("east-2.example"));
}

#[test]
fn interior_site_with_links_and_services() {
    let set = resources(&[
        &site("west", "{linkAccess: default}"),
        ROUTER_ACCESSES,
        LINKS_AND_SERVICES,
    ]);
    check("skrouterd-with-link-and-services.json", &set, "west");
}

#[test]
fn rendering_does_not_depend_on_input_order() {
    let forward = resources(&[&site("west", "{}"), ROUTER_ACCESSES, LINKS_AND_SERVICES]);
    let mut documents: Vec<&str> = LINKS_AND_SERVICES.split("---").collect();
    documents.reverse();
    let reversed_links = documents.join("---");
    let backward = resources(&[&reversed_links, ROUTER_ACCESSES, &site("west", "{}")]);
    assert_eq!(
        render(&forward, &context("west")),
        render(&backward, &context("west"))
    );
}

#[test]
fn interior_site_with_multi_key_listeners() {
    let set = resources(&[&site("west", "{}"), LOCAL_ACCESS_ONLY, MULTI_KEY_LISTENERS]);
    check("skrouterd-multi-key-listeners.json", &set, "west");
}

/// Live management creates entities in `tcp_entities` order and deletes them in the reverse:
/// every listenerAddress must come after its tcpListener.
#[test]
fn listener_addresses_come_after_their_tcp_listener() {
    let set = resources(&[&site("west", "{}"), LOCAL_ACCESS_ONLY, MULTI_KEY_LISTENERS]);
    let entities = tcp_entities(&set);
    let names: Vec<(&str, &str)> = entities.iter().map(|e| (e.entity_type, e.name())).collect();
    assert_eq!(
        names,
        [
            ("tcpListener", "listener/frontend"),
            ("tcpListener", "multiAddress/db"),
            ("tcpListener", "multiAddress/web"),
            ("listenerAddress", "db/db-backup"),
            ("listenerAddress", "db/db-primary"),
            ("listenerAddress", "db/db-replica"),
            ("listenerAddress", "web/web-blue"),
            ("listenerAddress", "web/web-green"),
        ]
    );
    for (index, entity) in entities.iter().enumerate() {
        if let Some(listener) = entity.listener() {
            let parent = entities
                .iter()
                .position(|e| e.entity_type == "tcpListener" && e.name() == listener)
                .expect("its tcpListener is rendered");
            assert!(parent < index, "{} before its tcpListener", entity.name());
        }
    }
    // What a live CREATE sends is what the file says.
    let rendered: serde_json::Value =
        serde_json::from_str(&render(&set, &context("west"))).unwrap();
    for entity in &entities {
        let in_file = rendered
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[0] == entity.entity_type && e[1]["name"] == entity.name())
            .expect("in the file");
        assert_eq!(
            in_file[1],
            serde_json::Value::Object(entity.attributes()),
            "{}",
            entity.name()
        );
    }
}

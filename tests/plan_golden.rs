//! What the one apply plans for each kind of resource, as golden files: the files and units the
//! host holds, the router entities a running router takes live and those fixed at its start,
//! and what a change of each kind does to a running router (live, or a restart and why). Set
//! `UPDATE_GOLDEN=1` to rewrite them after an intended change.

mod support;

use std::fmt::Write;

use vansite::model::{parse_documents, SiteResources};
use vansite::plan::router::restart_needed_for;
use vansite::plan::{plan, HostContext, HostPlan};
use vansite::quadlet::PodmanVersion;
use vansite::render::certs::{LeafRenewal, SiteCertificates};
use vansite::store::SiteDir;

const BASE: &str = r#"
apiVersion: skupper.io/v2alpha1
kind: Site
metadata:
  name: west
  uid: 6f1c2d3e-0000-4000-8000-000000000001
  annotations: {vansite.io/router-image: "quay.io/skupper/skupper-router:3.5.1"}
spec: {linkAccess: default}
---
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
  subjectAlternativeNames: [west.example]
"#;

/// One sample of each kind a host honours beyond the Site and its accesses.
const KINDS: [(&str, &str); 7] = [
    (
        "link",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: east}
type: kubernetes.io/tls
data: {ca.crt: Y2E=, tls.crt: Y3J0, tls.key: a2V5}
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata: {name: east}
spec:
  tlsCredentials: east
  cost: 2
  endpoints:
  - {name: inter-router, host: east.example, port: "55671"}
"#,
    ),
    (
        "listener",
        r#"
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata:
  name: db
  annotations: {vansite.io/router-port: "41000"}
spec: {routingKey: db, host: 0.0.0.0, port: 5432}
"#,
    ),
    (
        "connector",
        r#"
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata: {name: db}
spec: {routingKey: db, host: localhost, port: 5432}
"#,
    ),
    (
        "multi-key-listener",
        r#"
apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata:
  name: db
  annotations: {vansite.io/router-port: "41001"}
spec:
  host: 127.0.0.1
  port: 15432
  strategy: {priority: {routingKeys: [db-primary, db-replica]}}
"#,
    ),
    (
        "access-grant",
        r#"
apiVersion: skupper.io/v2alpha1
kind: AccessGrant
metadata: {name: for-east, uid: 00000000-0000-4000-8000-0000000000a1}
spec: {redemptionsAllowed: 1, expirationWindow: 15m, code: abc}
"#,
    ),
    (
        "certificate",
        r#"
apiVersion: skupper.io/v2alpha1
kind: Certificate
metadata: {name: web-tls}
spec: {ca: skupper-service-ca, hosts: [web.example], server: true}
"#,
    ),
    (
        "router-access",
        r#"
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: extra}
spec:
  roles: [{name: edge, port: 45700}]
  tlsCredentials: extra
  issuer: skupper-site-ca
"#,
    ),
];

fn resources(extra: &str, grant_port: bool) -> SiteResources {
    let mut text = BASE.to_string();
    if grant_port {
        text = text.replace(
            "{vansite.io/router-image:",
            "{vansite.io/grant-port: \"9090\", vansite.io/router-image:",
        );
    }
    let mut all = parse_documents(&text, "base").unwrap().resources;
    if !extra.is_empty() {
        all.extend(parse_documents(extra, "extra").unwrap().resources);
    }
    SiteResources::new("west", all).unwrap()
}

fn host() -> HostContext {
    HostContext {
        site_dir: SiteDir {
            namespace: "west".into(),
            root: "/home/u/.local/share/vansite/west".into(),
        },
        quadlet_dir: "/home/u/.config/containers/systemd".into(),
        systemd_user_dir: "/home/u/.config/systemd/user".into(),
        uid: 1000,
        gid: 1000,
        podman: PodmanVersion::new(5, 4, 2),
        executable: "/usr/bin/vansite".into(),
        renew_certificates: false,
    }
}

/// The plan as text: file paths and unit contents, live and fixed router entities; the
/// certificates by name only (their keys are new each time).
fn describe(plan: &HostPlan) -> String {
    let mut out = String::new();
    let names = |set: &std::collections::BTreeMap<String, _>| {
        set.keys().cloned().collect::<Vec<String>>().join(", ")
    };
    writeln!(
        out,
        "certificate authorities: {}",
        names(&plan.certificates.issuers)
    )
    .unwrap();
    writeln!(out, "certificates: {}", names(&plan.certificates.certs)).unwrap();
    writeln!(
        out,
        "router configuration: {}",
        plan.router_config.path.display()
    )
    .unwrap();
    let mut units = vec![&plan.router_unit];
    for forwarder in &plan.forwarders {
        units.extend([&forwarder.socket, &forwarder.service]);
    }
    if let Some(grants) = &plan.grant_server {
        units.extend([&grants.socket, &grants.service]);
        writeln!(out, "enabled: {}", grants.enabled_link.display()).unwrap();
    }
    if let Some(renewal) = &plan.renewal {
        units.extend([&renewal.timer, &renewal.service]);
        writeln!(out, "enabled: {}", renewal.enabled_link.display()).unwrap();
    }
    for unit in units {
        writeln!(out, "\n== {}\n{}", unit.path.display(), unit.contents).unwrap();
    }
    writeln!(out, "== live router entities (created in this order)").unwrap();
    for entity in &plan.live_entities {
        writeln!(
            out,
            "{} {}",
            entity.label(),
            serde_json::Value::Object(entity.attributes.clone())
        )
        .unwrap();
    }
    writeln!(out, "== fixed at the router's start").unwrap();
    for (entity_type, name) in &plan.fixed {
        writeln!(out, "{entity_type}/{name}").unwrap();
    }
    out
}

#[test]
fn each_kind_plans_its_files_units_and_router_entities() {
    let empty = SiteCertificates::default();
    let base = plan(&resources("", false), &host(), &empty, LeafRenewal::WhenDue).unwrap();
    support::assert_golden("tests/golden/plan/site.txt", &describe(&base));
    for (name, documents) in KINDS {
        let grant = name == "access-grant";
        let with = plan(
            &resources(documents, grant),
            &host(),
            &empty,
            LeafRenewal::WhenDue,
        )
        .unwrap();
        let mut text = describe(&with);
        let restart = restart_needed_for(&base.config_entities, &with.config_entities);
        writeln!(
            text,
            "== a running router takes it: {}",
            if restart.is_empty() {
                "live".to_string()
            } else {
                format!("by a restart, for {}", restart.join(", "))
            }
        )
        .unwrap();
        support::assert_golden(&format!("tests/golden/plan/{name}.txt"), &text);
    }
    // The settings' `renew_certificates = true` adds the renewal timer.
    let renewing = HostContext {
        renew_certificates: true,
        ..host()
    };
    let with = plan(
        &resources("", false),
        &renewing,
        &empty,
        LeafRenewal::WhenDue,
    )
    .unwrap();
    support::assert_golden("tests/golden/plan/renewal-timer.txt", &describe(&with));
}

//! One rule for the ports a site takes when nobody named them (`init`'s management and link
//! ports, the grant server's for `token issue` and `apply -f`): the default port, or the next
//! one above it that is free to bind now and recorded by none of the user's other sites (their
//! routers or grant servers may be stopped right now, so a probe alone would not see them).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::Error;
use crate::grants::grant_port;
use crate::model::SiteResources;
use crate::store::Paths;

/// The default port of the site's local management access (`skupper-local`).
pub const MANAGEMENT_PORT: u16 = 5671;
/// The default ports of link access, by role.
pub const INTER_ROUTER_PORT: u16 = 55671;
pub const EDGE_PORT: u16 = 45671;
/// How many ports above a default are tried when it is taken.
const PORT_SEARCH: u16 = 100;

/// A port the site takes, beside the default it was picked from (they differ when the default
/// was in use, or recorded by another site, when the port was chosen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SitePort {
    /// `management`, `inter-router`, `edge`, `grant server`.
    pub purpose: String,
    pub port: u16,
    pub default: u16,
}

/// The ports `resources` take, each with its default: management, link access, the grant
/// server's (once `grant_default` is known: the settings' `grant_port`).
pub fn site_ports(resources: &SiteResources, management: u16, grant_default: u16) -> Vec<SitePort> {
    let port = |purpose: &str, port: u16, default: u16| SitePort {
        purpose: purpose.to_string(),
        port,
        default,
    };
    let mut ports = vec![port("management", management, MANAGEMENT_PORT)];
    for (role, link_port) in resources.link_endpoints() {
        let default = match role.as_str() {
            "edge" => EDGE_PORT,
            _ => INTER_ROUTER_PORT,
        };
        ports.push(port(&role, link_port, default));
    }
    if let Some(grants) = grant_port(resources) {
        ports.push(port("grant server", grants, grant_default));
    }
    ports
}

/// Ports recorded by the user's sites other than `namespace`'s: router access and grant
/// server ports.
pub fn ports_of_other_sites(paths: &Paths, namespace: &str) -> BTreeSet<u16> {
    paths
        .namespaces()
        .into_iter()
        .filter(|ns| ns != namespace)
        .filter_map(|ns| paths.site(&ns).load_resources().ok().flatten())
        .flat_map(|set| recorded_ports(&set))
        .collect()
}

/// The router access and grant server ports `set` records.
fn recorded_ports(set: &SiteResources) -> Vec<u16> {
    set.router_accesses
        .iter()
        .flat_map(|a| a.spec.roles.iter().map(|r| r.effective_port()))
        .chain(grant_port(set))
        .collect()
}

/// `preferred`, or the next port that is free to bind on `bind` and not in `taken`.
pub fn free_port(bind: &str, preferred: u16, taken: &BTreeSet<u16>) -> Result<u16, Error> {
    (preferred..preferred.saturating_add(PORT_SEARCH))
        .find(|port| !taken.contains(port) && std::net::TcpListener::bind((bind, *port)).is_ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "ports {preferred} to {} on {bind} are all in use or taken by other sites; free one of them",
                preferred.saturating_add(PORT_SEARCH - 1)
            ))
        })
}

/// The grant server's port when `token issue` or `apply -f` is not told one and the site has
/// none yet: `preferred` (the settings' `grant_port`), or the next free one by the same rule
/// as `init`'s ports. A site that already has one keeps it (its own socket holds it).
pub fn default_grant_port(paths: &Paths, namespace: &str, preferred: u16) -> Result<u16, Error> {
    let site = paths.site(namespace).load_resources().ok().flatten();
    if let Some(port) = site.as_ref().and_then(grant_port) {
        return Ok(port);
    }
    let mut taken = ports_of_other_sites(paths, namespace);
    taken.extend(site.iter().flat_map(recorded_ports));
    free_port("0.0.0.0", preferred, &taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_skipped() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let chosen = free_port("127.0.0.1", port, &BTreeSet::new()).unwrap();
        assert_ne!(chosen, port);
        let recorded: BTreeSet<u16> = [chosen].into();
        assert_ne!(
            free_port("127.0.0.1", port, &recorded).unwrap(),
            chosen,
            "ports of other sites are skipped too"
        );
    }

    #[test]
    fn the_grant_port_follows_the_same_rule_and_a_site_keeps_its_own() {
        let base = std::env::temp_dir().join(format!("vansite-ports-grant-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let paths = Paths {
            data: base.clone(),
            config_home: base.join("config"),
            runtime_dir: base.join("run"),
        };
        // Something else holds the default: the next port is the default.
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let chosen = default_grant_port(&paths, "default", busy).unwrap();
        assert_ne!(chosen, busy);
        // Another site records a grant port: skipped even while its socket is not listening.
        let site = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: other\nspec:\n  linkAccess: default\n";
        let parsed = crate::model::parse_documents(site, "site.yaml").unwrap();
        let mut other = SiteResources::new("other", parsed.resources).unwrap();
        other.site.metadata.annotations.insert(
            crate::grants::GRANT_PORT_ANNOTATION.into(),
            chosen.to_string(),
        );
        paths.site("other").save_resources(&other).unwrap();
        let next = default_grant_port(&paths, "default", busy).unwrap();
        assert!(next != busy && next != chosen, "{next}");
        // That site itself keeps its port.
        assert_eq!(default_grant_port(&paths, "other", busy).unwrap(), chosen);
        std::fs::remove_dir_all(base).unwrap();
    }
}

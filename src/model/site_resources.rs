//! [`SiteResources`] (its fields come from the registry): building one from loose objects,
//! lookups, and the checks across objects.

use std::collections::{BTreeMap, BTreeSet};

use super::check::check_name;
use super::{
    Grouped, ObjectRef, Resource, ResourceError, RouterAccess, RouterMode, Secret, SiteResources,
    ROUTER_PORT_ANNOTATION,
};

impl SiteResources {
    /// Groups and checks `resources` for `namespace`. Each list is sorted by name, so what is
    /// rendered from it does not depend on file order.
    pub fn new(namespace: &str, resources: Vec<Resource>) -> Result<Self, ResourceError> {
        check_name(namespace).map_err(|problem| ResourceError::Invalid {
            object: ObjectRef {
                kind: "Namespace",
                name: namespace.to_string(),
            },
            field: "name",
            problem,
        })?;
        let mut seen = BTreeSet::new();
        let mut grouped = Grouped::default();
        for resource in resources {
            resource.validate()?;
            let object = resource.object_ref();
            let found = &resource.metadata().namespace;
            if !found.is_empty() && found != namespace {
                return Err(ResourceError::WrongNamespace {
                    object,
                    found: found.clone(),
                    expected: namespace.to_string(),
                });
            }
            if !seen.insert(object.clone()) {
                return Err(ResourceError::Duplicate(object));
            }
            grouped.push(resource);
        }
        let set = grouped.into_site_resources(namespace)?;
        set.check_references()?;
        set.check_ports()?;
        Ok(set)
    }

    pub fn site_name(&self) -> &str {
        &self.site.metadata.name
    }

    pub fn is_edge(&self) -> bool {
        self.site.spec.edge
    }

    pub fn router_mode(&self) -> RouterMode {
        RouterMode::from_edge(self.site.spec.edge)
    }

    /// The role, and port, of each endpoint other sites link to (the RouterAccess named after
    /// the site).
    pub fn link_endpoints(&self) -> Vec<(String, u16)> {
        self.router_access(self.site_name())
            .map(|a| {
                a.spec
                    .roles
                    .iter()
                    .map(|r| (r.name.clone(), r.effective_port()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every listener, of either kind, as (name, port, the router's loopback port behind its
    /// forwarder).
    pub fn listener_ports(&self) -> impl Iterator<Item = (&str, u16, Option<u16>)> {
        let listeners = self
            .listeners
            .iter()
            .map(|l| (l.metadata.name.as_str(), l.spec.port, l.router_port()));
        let multi_key = self
            .multi_key_listeners
            .iter()
            .map(|l| (l.metadata.name.as_str(), l.spec.port, l.router_port()));
        listeners.chain(multi_key)
    }

    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|secret| secret.metadata.name == name)
    }

    pub fn router_access(&self, name: &str) -> Option<&RouterAccess> {
        self.router_accesses
            .iter()
            .find(|access| access.metadata.name == name)
    }

    fn check_references(&self) -> Result<(), ResourceError> {
        for link in &self.links {
            let secret_name = &link.spec.tls_credentials;
            if self.secret(secret_name).is_none() {
                return Err(ResourceError::MissingReference {
                    object: ObjectRef {
                        kind: "Link",
                        name: link.metadata.name.clone(),
                    },
                    field: "spec.tlsCredentials",
                    target: ObjectRef {
                        kind: "Secret",
                        name: secret_name.clone(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Ports bound twice: RouterAccess roles on the same bind host, Listeners and
    /// MultiKeyListeners on the same host (Skupper's "port is already mapped", which checks
    /// both kinds together), and the loopback router port of two forwarded listeners.
    fn check_ports(&self) -> Result<(), ResourceError> {
        let mut bound: BTreeMap<(String, u16), ObjectRef> = BTreeMap::new();
        let mut bind = |host: &str, port: u16, object: ObjectRef| match bound
            .insert((host.to_string(), port), object.clone())
        {
            Some(other) => Err(ResourceError::PortInUse {
                object,
                port: if host.is_empty() {
                    port.to_string()
                } else {
                    format!("{host}:{port}")
                },
                other,
            }),
            None => Ok(()),
        };
        for access in &self.router_accesses {
            for role in &access.spec.roles {
                let object = ObjectRef {
                    kind: "RouterAccess",
                    name: access.metadata.name.clone(),
                };
                bind(&access.spec.bind_host, role.effective_port(), object)?;
            }
        }
        let listeners = self.listeners.iter().map(|listener| {
            let object = ObjectRef {
                kind: "Listener",
                name: listener.metadata.name.clone(),
            };
            (
                &listener.spec.host,
                listener.spec.port,
                &listener.metadata,
                object,
            )
        });
        let multi_key_listeners = self.multi_key_listeners.iter().map(|listener| {
            let object = ObjectRef {
                kind: "MultiKeyListener",
                name: listener.metadata.name.clone(),
            };
            (
                &listener.spec.host,
                listener.spec.port,
                &listener.metadata,
                object,
            )
        });
        let all: Vec<_> = listeners.chain(multi_key_listeners).collect();
        for (host, port, _, object) in &all {
            bind(host, *port, object.clone())?;
        }
        // The router's own loopback ports behind the forwarders: one tcpListener each.
        let mut router_ports: BTreeMap<u16, &ObjectRef> = BTreeMap::new();
        for (_, _, metadata, object) in &all {
            if let Some(port) = metadata.router_port() {
                if let Some(other) = router_ports.insert(port, object) {
                    return Err(ResourceError::PortInUse {
                        object: object.clone(),
                        port: format!("router port {port} ({ROUTER_PORT_ANNOTATION})"),
                        other: other.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Skupper refuses to change a MultiKeyListener's strategy from priority to weighted or back
    /// ("strategy is immutable"): delete it and create it anew instead. Checks `self`, the set
    /// about to be applied, against `current`, the site's set now.
    pub fn check_strategies_unchanged(&self, current: &SiteResources) -> Result<(), ResourceError> {
        for listener in &self.multi_key_listeners {
            let before = current
                .multi_key_listeners
                .iter()
                .find(|l| l.metadata.name == listener.metadata.name);
            if let Some(before) = before {
                let (was, is) = (before.strategy_kind(), listener.strategy_kind());
                if let (Some(was), Some(is)) = (was, is) {
                    if was != is {
                        return Err(ResourceError::Invalid {
                            object: ObjectRef {
                                kind: "MultiKeyListener",
                                name: listener.metadata.name.clone(),
                            },
                            field: "spec.strategy",
                            problem: format!(
                                "cannot change from {} to {}; delete the MultiKeyListener and \
                                 create it again",
                                was.as_str(),
                                is.as_str()
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{all, LINK_AND_SECRET, PRIORITY_MKL, SITE, WEIGHTED_MKL};
    use super::super::KINDS;
    use super::*;

    #[test]
    fn site_resources_need_exactly_one_site() {
        let links = all(&[LINK_AND_SECRET]);
        assert!(matches!(
            SiteResources::new("default", links.clone()),
            Err(ResourceError::NoSite)
        ));
        let mut two = all(&[SITE, &SITE.replace("name: west", "name: east")]);
        two.extend(links);
        let error = SiteResources::new("default", two).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the namespace has more than one Site (west, east); keep exactly one"
        );
    }

    #[test]
    fn site_resources_check_references_namespace_and_duplicates() {
        let link_only = LINK_AND_SECRET.split("---\n").nth(2).unwrap();
        let error = SiteResources::new("default", all(&[SITE, link_only])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Link/my-token: spec.tlsCredentials names Secret/my-token, which does not exist"
        );
        let error = SiteResources::new("other", all(&[SITE])).unwrap_err();
        assert!(
            matches!(error, ResourceError::WrongNamespace { .. }),
            "{error}"
        );
        let error =
            SiteResources::new("default", all(&[SITE, LINK_AND_SECRET, link_only])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Link/my-token is defined twice; names must be unique per kind"
        );
        let set = SiteResources::new("default", all(&[LINK_AND_SECRET, SITE])).unwrap();
        assert_eq!(set.site_name(), "west");
        assert_eq!(set.to_resources()[0].kind(), "Site");
        let kinds: Vec<_> = set.to_resources().iter().map(Resource::kind).collect();
        let rank = |kind: &str| KINDS.iter().position(|k| *k == kind).unwrap();
        assert!(
            kinds.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
            "{kinds:?} is not in KINDS order"
        );
    }

    #[test]
    fn site_resources_refuse_a_port_bound_twice() {
        let listener = |name: &str| {
            format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {{name: {name}}}\nspec: {{routingKey: k, host: 0.0.0.0, port: 8080}}\n")
        };
        let error = SiteResources::new("default", all(&[SITE, &listener("a"), &listener("b")]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Listener/b: port 0.0.0.0:8080 is already used by Listener/a"
        );
    }

    #[test]
    fn multi_key_listeners_share_ports_with_listeners() {
        let listener = |name: &str, port: u16, router_port: u16| {
            format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {{name: {name}, annotations: {{vansite.io/router-port: '{router_port}'}}}}\nspec: {{routingKey: k, host: 0.0.0.0, port: {port}}}\n")
        };
        let error = SiteResources::new(
            "default",
            all(&[SITE, &listener("a", 5432, 41002), PRIORITY_MKL]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "MultiKeyListener/db: port 0.0.0.0:5432 is already used by Listener/a"
        );
        let error = SiteResources::new(
            "default",
            all(&[SITE, &listener("a", 5433, 41001), PRIORITY_MKL]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "MultiKeyListener/db: port router port 41001 (vansite.io/router-port) is already used by Listener/a"
        );
        let set = SiteResources::new(
            "default",
            all(&[
                WEIGHTED_MKL,
                SITE,
                &listener("a", 5433, 41002),
                PRIORITY_MKL,
            ]),
        )
        .unwrap();
        let names: Vec<_> = set
            .multi_key_listeners
            .iter()
            .map(|l| l.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["db", "web"], "sorted by name");
        let kinds: Vec<_> = set.to_resources().iter().map(Resource::kind).collect();
        assert_eq!(
            kinds,
            ["Site", "Listener", "MultiKeyListener", "MultiKeyListener"]
        );
    }

    #[test]
    fn multi_key_listener_strategy_cannot_change() {
        let current = SiteResources::new("default", all(&[SITE, WEIGHTED_MKL])).unwrap();
        let same_kind = WEIGHTED_MKL.replace("web-green: 1", "web-green: 2");
        let target = SiteResources::new("default", all(&[SITE, &same_kind])).unwrap();
        target.check_strategies_unchanged(&current).unwrap();
        let other_kind = "apiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {name: web}\n\
                          spec: {host: localhost, port: 8080, strategy: {priority: {routingKeys: [web-blue]}}}\n";
        let target = SiteResources::new("default", all(&[SITE, other_kind])).unwrap();
        let error = target.check_strategies_unchanged(&current).unwrap_err();
        assert_eq!(
            error.to_string(),
            "MultiKeyListener/web: spec.strategy: cannot change from weighted to priority; delete \
             the MultiKeyListener and create it again"
        );
    }
}

//! What a remote site needs to link to this one: a Secret with a client certificate signed by
//! a CA of that link's own, which this site's router trusts until the link is revoked, and a
//! Link whose endpoints are this site's RouterAccess roles. One function builds it for the
//! grant server's answer (§2.8) and for `vansite link generate` (§2.9); the v1
//! connection-token (§3.1) is the same, reshaped. The Secret keeps Skupper's shape: `ca.crt`
//! is the CA the linking site checks this site's server certificate with.

use std::collections::BTreeMap;

use crate::model::{
    Endpoint, Link, LinkSpec, ObjectMeta, Resource, ResourceError, RouterAccess, Secret,
    SiteResources,
};
use crate::render::certs::{self, Ca, CertError, CertFiles, SITE_CA};
use crate::settings::SKUPPER_VERSION;

use super::GrantError;

/// Secret type of a TLS Secret.
const TLS_SECRET: &str = "kubernetes.io/tls";
/// Label key Skupper v1 types its Secrets with.
pub const V1_TYPE_LABEL: &str = "skupper.io/type";

/// A Secret and the Link(s) that use it, in the order Skupper writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkBundle {
    pub secret: Secret,
    pub links: Vec<Link>,
}

/// Where remote sites reach this one: the site's own RouterAccess, the host to dial, and every
/// host the site is known by (the client certificate's SANs, as Skupper's grant server does).
#[derive(Debug, Clone)]
pub struct LinkAccess<'a> {
    pub access: &'a RouterAccess,
    pub host: String,
    pub hosts: Vec<String>,
}

impl<'a> LinkAccess<'a> {
    /// The site's link access, dialled at `host` (default: its first name). Refuses edge sites,
    /// sites without link access, and hosts the site's certificates do not carry.
    pub fn of(resources: &'a SiteResources, host: Option<&str>) -> Result<Self, GrantError> {
        let namespace = || resources.namespace.clone();
        if resources.is_edge() {
            return Err(GrantError::EdgeSite {
                namespace: namespace(),
            });
        }
        let access = resources
            .router_access(resources.site_name())
            .filter(|a| resources.site.spec.link_access_enabled() && a.accepts_links())
            .ok_or_else(|| GrantError::NoLinkAccess {
                namespace: namespace(),
            })?;
        let hosts = access.spec.subject_alternative_names.clone();
        let host = match host {
            None => hosts.first().cloned().ok_or_else(|| GrantError::NoHost {
                namespace: namespace(),
            })?,
            Some(host) if hosts.iter().any(|h| h == host) => host.to_string(),
            Some(host) => {
                return Err(GrantError::UnknownHost {
                    host: host.to_string(),
                    known: hosts,
                })
            }
        };
        Ok(LinkAccess {
            access,
            host,
            hosts,
        })
    }

    /// The CA that signs the certificates the RouterAccess's listeners accept.
    pub fn issuer(&self) -> &str {
        match self.access.spec.issuer.as_str() {
            "" => SITE_CA,
            issuer => issuer,
        }
    }

    /// The endpoints of a Link to this site: one per role, all at `host`.
    fn endpoints(&self) -> Vec<Endpoint> {
        self.access
            .spec
            .roles
            .iter()
            .filter(|role| matches!(role.name.as_str(), "inter-router" | "edge"))
            .map(|role| Endpoint {
                name: role.name.clone(),
                host: self.host.clone(),
                port: role.effective_port().to_string(),
                group: String::new(),
            })
            .collect()
    }
}

/// One incoming link this site issued: the name it is known by here (`link status`, `link
/// revoke`), its CA, which the caller keeps, and what the linking site gets.
#[derive(Debug)]
pub struct IssuedLink {
    pub link: String,
    pub ca: CertFiles,
    pub bundle: LinkBundle,
}

/// A new incoming link `link`: its own CA, the Secret `name` (client certificate with CN
/// `subject` and OU `link`, SANs = the site's hosts, signed by that CA; `ca.crt` =
/// `server_ca_pem`, the CA of this site's server certificate) and the Link `name` to `access`.
/// The one builder of both the grant server's 200 answer and `vansite link generate`.
pub fn link_bundle(
    access: &LinkAccess<'_>,
    server_ca_pem: &str,
    link: &str,
    name: &str,
    subject: &str,
) -> Result<IssuedLink, CertError> {
    let link_ca = Ca::new(&format!("vansite-link-{link}"))?;
    let mut client = certs::issue_link_client(&link_ca, subject, link, &access.hosts)?;
    client.ca_crt = server_ca_pem.to_string();
    let mut secret = Secret {
        metadata: ObjectMeta::named(name),
        secret_type: TLS_SECRET.into(),
        data: BTreeMap::new(),
    };
    secret.insert("ca.crt", client.ca_crt.as_bytes());
    secret.insert("tls.crt", client.tls_crt.as_bytes());
    secret.insert("tls.key", client.tls_key.as_bytes());
    let link_name = link;
    let link_resource = Link {
        metadata: ObjectMeta::named(name),
        spec: LinkSpec {
            endpoints: access.endpoints(),
            tls_credentials: name.to_string(),
            ..LinkSpec::default()
        },
    };
    Ok(IssuedLink {
        link: link_name.to_string(),
        ca: link_ca.files().clone(),
        bundle: LinkBundle {
            secret,
            links: vec![link_resource],
        },
    })
}

impl LinkBundle {
    /// The YAML stream Skupper's grant server answers with: `---`, the Secret, then `---` and
    /// each Link.
    pub fn to_yaml_stream(&self) -> Result<String, ResourceError> {
        let mut out = String::new();
        let documents = std::iter::once(Resource::Secret(self.secret.clone()))
            .chain(self.links.iter().cloned().map(Resource::Link));
        for document in documents {
            out.push_str("---\n");
            out.push_str(&document.to_yaml()?);
        }
        Ok(out)
    }

    /// The same credentials as a Skupper v1 connection-token Secret (§3.1): the link's
    /// endpoints become the inter-router/edge host and port annotations.
    pub fn to_v1_connection_token(&self, site_uid: &str) -> Secret {
        let mut token = self.secret.clone();
        token
            .metadata
            .labels
            .insert(V1_TYPE_LABEL.into(), "connection-token".into());
        let annotations = &mut token.metadata.annotations;
        for endpoint in self.links.iter().flat_map(|l| &l.spec.endpoints) {
            annotations.insert(format!("{}-host", endpoint.name), endpoint.host.clone());
            annotations.insert(format!("{}-port", endpoint.name), endpoint.port.clone());
        }
        annotations.insert("skupper.io/site-version".into(), SKUPPER_VERSION.into());
        annotations.insert("skupper.io/generated-by".into(), site_uid.into());
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_documents;
    use crate::render::certs::tests::site;
    use crate::render::certs::{site_certificates, LeafRenewal, SiteCertificates};

    fn site_ca(resources: &SiteResources) -> String {
        let certs = site_certificates(
            resources,
            &SiteCertificates::default(),
            LeafRenewal::WhenDue,
        )
        .unwrap();
        certs.issuers[SITE_CA].tls_crt.clone()
    }

    #[test]
    fn bundle_is_a_tls_secret_and_a_link_to_the_router_access() {
        let resources = site("");
        let access = LinkAccess::of(&resources, None).unwrap();
        assert_eq!(access.host, "west.example");
        let ca = site_ca(&resources);
        let issued = link_bundle(&access, &ca, "east-link-2", "east-link", "east").unwrap();
        assert_eq!(issued.link, "east-link-2");
        let bundle = issued.bundle;
        let yaml = bundle.to_yaml_stream().unwrap();
        assert!(
            yaml.starts_with("---\napiVersion: v1\nkind: Secret\n"),
            "{yaml}"
        );
        let parsed = parse_documents(&yaml, "answer").unwrap();
        let [Resource::Secret(secret), Resource::Link(link)] = parsed.resources.as_slice() else {
            panic!("{yaml}")
        };
        assert_eq!(secret.metadata.name, "east-link");
        assert_eq!(secret.secret_type, "kubernetes.io/tls");
        let ca_pem = String::from_utf8(secret.decoded("ca.crt").unwrap().unwrap()).unwrap();
        assert_eq!(ca_pem, ca);
        assert_eq!(link.spec.tls_credentials, "east-link");
        let endpoints: Vec<(&str, &str, &str)> = link
            .spec
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e.host.as_str(), e.port.as_str()))
            .collect();
        assert_eq!(
            endpoints,
            [
                ("inter-router", "west.example", "55671"),
                ("edge", "west.example", "45671")
            ]
        );
        // The client certificate: CN = subject, OU = the link's name here, SANs = the site's
        // hosts, signed by the link's own CA, which follows it in tls.crt.
        let crt = secret.decoded("tls.crt").unwrap().unwrap();
        let chain: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&crt)
            .map(Result::unwrap)
            .collect();
        assert_eq!(chain.len(), 2);
        assert_eq!(
            chain[1].contents,
            certs::bundle_certificates(&issued.ca.tls_crt)
                .into_iter()
                .next()
                .unwrap()
        );
        let cert = chain[0].parse_x509().unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "east");
        let ou = cert.subject().iter_organizational_unit().next().unwrap();
        assert_eq!(ou.as_str().unwrap(), "east-link-2");
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(
            names.contains(&"DNSName(west.example)".to_string()),
            "{names:?}"
        );
        let link_ca = chain[1].parse_x509().unwrap();
        cert.verify_signature(Some(link_ca.public_key())).unwrap();
        // What a redeeming vansite checks: the chain holds.
        let files = CertFiles {
            ca_crt: ca_pem,
            tls_crt: String::from_utf8(crt).unwrap(),
            tls_key: String::from_utf8(secret.decoded("tls.key").unwrap().unwrap()).unwrap(),
        };
        certs::check_credentials(&files).unwrap();
    }

    #[test]
    fn the_host_must_be_one_of_the_sites_names() {
        let resources = site("");
        assert_eq!(
            LinkAccess::of(&resources, Some("192.0.2.1")).unwrap().host,
            "192.0.2.1"
        );
        let error = LinkAccess::of(&resources, Some("elsewhere"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("west.example, 192.0.2.1") && error.contains("--host"),
            "{error}"
        );
    }

    #[test]
    fn edge_sites_and_sites_without_link_access_are_refused() {
        let mut edge = site("");
        edge.site.spec.edge = true;
        let error = LinkAccess::of(&edge, None).unwrap_err();
        assert!(matches!(error, GrantError::EdgeSite { .. }), "{error}");
        let mut closed = site("");
        closed.site.spec.link_access = "none".into();
        let error = LinkAccess::of(&closed, None).unwrap_err().to_string();
        assert!(error.contains("--enable-link-access"), "{error}");
    }

    #[test]
    fn v1_connection_token_carries_endpoints_as_annotations() {
        let resources = site("");
        let access = LinkAccess::of(&resources, None).unwrap();
        let bundle = link_bundle(&access, &site_ca(&resources), "east", "east", "east")
            .unwrap()
            .bundle;
        let token = bundle.to_v1_connection_token("site-uid");
        let annotations = &token.metadata.annotations;
        assert_eq!(token.metadata.labels[V1_TYPE_LABEL], "connection-token");
        assert_eq!(annotations["inter-router-host"], "west.example");
        assert_eq!(annotations["inter-router-port"], "55671");
        assert_eq!(annotations["edge-port"], "45671");
        assert_eq!(annotations["skupper.io/generated-by"], "site-uid");
        assert_eq!(token.data, bundle.secret.data);
    }
}

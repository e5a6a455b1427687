//! Pure link checks: what `link create` refuses before and after a token is redeemed (a link
//! to this same site, a name in use, a second link to the same place, a Link without an
//! endpoint for this router's role), and the errors of links, probe included.

use crate::model::{Link, RouterMode, SiteResources};
use crate::render::certs::same_certificate;
use crate::render::router_config::{link_entities, LinkEntities};
use crate::render::router_unit::CERTS_DIR_IN_CONTAINER;
use crate::tokens::{LinkBundle, GENERATED_BY};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "{what} was made for this same site ({reason}): a site cannot link to itself; use it on \
         the site that should link to this one"
    )]
    SelfLink { what: &'static str, reason: String },
    #[error(
        "a {kind} named '{name}' already exists in this site: choose another name with --name, \
         or remove the existing link with `vansite link delete {link}`"
    )]
    NameTaken {
        kind: &'static str,
        name: String,
        link: String,
    },
    #[error(
        "this site is already linked to {target} by link '{existing}': remove that link first \
         (`vansite link delete {existing}`) to replace it"
    )]
    AlreadyLinked { target: String, existing: String },
    #[error(
        "Link '{link}' has no '{}' endpoint, the one an {mode} site dials (endpoints: {found})",
        mode.link_role()
    )]
    NoEndpoint {
        link: String,
        mode: RouterMode,
        found: String,
    },
    #[error(
        "the server at {endpoint} does not present a certificate of the link's CA ({detail}): \
         the link was made for another site, or its file was altered"
    )]
    ServerNotTrusted { endpoint: String, detail: String },
    #[error(
        "the server at {endpoint} refused the link's client certificate ({detail}): the link was \
         made by another site, or has been revoked"
    )]
    ClientRefused { endpoint: String, detail: String },
    #[error("TLS with {endpoint} failed ({detail}): is it a Skupper router's link port?")]
    NotARouter { endpoint: String, detail: String },
    #[error("no link named '{name}' in this site{}", links_hint(.present))]
    NotFound { name: String, present: Vec<String> },
}

fn links_hint(present: &[String]) -> String {
    match present {
        [] => " (it has none)".into(),
        names => format!(" (links: {})", names.join(", ")),
    }
}

/// This site, as far as refusing a link to itself goes.
pub struct OwnSite {
    pub id: String,
    /// PEM of every CA of the site (`runtime/issuers/`).
    pub cas: Vec<String>,
}

impl OwnSite {
    pub fn refuse_own_ca(&self, ca_pem: &str, what: &'static str) -> Result<(), LinkError> {
        if self.cas.iter().any(|own| same_certificate(own, ca_pem)) {
            return Err(LinkError::SelfLink {
                what,
                reason: "its CA is one of this site's own".into(),
            });
        }
        Ok(())
    }

    pub fn refuse_generated_by(
        &self,
        generated_by: &str,
        what: &'static str,
    ) -> Result<(), LinkError> {
        if !generated_by.is_empty() && generated_by == self.id {
            return Err(LinkError::SelfLink {
                what,
                reason: format!("{GENERATED_BY} is this site's id {generated_by}"),
            });
        }
        Ok(())
    }
}

pub fn refuse_taken_name(resources: &SiteResources, name: &str) -> Result<(), LinkError> {
    if let Some(link) = resources.links.iter().find(|l| l.metadata.name == name) {
        return Err(LinkError::NameTaken {
            kind: "Link",
            name: name.to_string(),
            link: link.metadata.name.clone(),
        });
    }
    if resources.secret(name).is_some() {
        let link = resources
            .links
            .iter()
            .find(|l| l.spec.tls_credentials == name)
            .map(|l| l.metadata.name.clone())
            .unwrap_or_else(|| name.to_string());
        return Err(LinkError::NameTaken {
            kind: "Secret",
            name: name.to_string(),
            link,
        });
    }
    Ok(())
}

/// A second token of a site this one already links to (v1 tokens name their issuer).
pub fn refuse_linked_site(resources: &SiteResources, generated_by: &str) -> Result<(), LinkError> {
    if generated_by.is_empty() {
        return Ok(());
    }
    match resources.links.iter().find(|l| {
        l.metadata.annotations.get(GENERATED_BY).map(String::as_str) == Some(generated_by)
    }) {
        Some(existing) => Err(LinkError::AlreadyLinked {
            target: format!("site {generated_by}"),
            existing: existing.metadata.name.clone(),
        }),
        None => Ok(()),
    }
}

/// Every check of the links to be added against the site; returns their router entities
/// (with paths as the router container sees them).
pub fn check_bundle(
    resources: &SiteResources,
    own: &OwnSite,
    bundle: &LinkBundle,
    what: &'static str,
) -> Result<Vec<LinkEntities>, LinkError> {
    own.refuse_own_ca(&bundle.credentials.ca_crt, what)?;
    refuse_taken_name(resources, &bundle.secret.metadata.name)?;
    let mode = resources.router_mode();
    let role = mode.link_role();
    let existing: Vec<(String, String)> = resources
        .links
        .iter()
        .filter_map(|l| {
            link_entities(l, role, CERTS_DIR_IN_CONTAINER)
                .map(|e| (e.connector.address(), l.metadata.name.clone()))
        })
        .collect();
    let mut entities = Vec::new();
    for link in &bundle.links {
        refuse_taken_name(resources, &link.metadata.name)?;
        let generated_by = link.metadata.annotations.get(GENERATED_BY);
        own.refuse_generated_by(generated_by.map(String::as_str).unwrap_or_default(), what)?;
        refuse_linked_site(
            resources,
            generated_by.map(String::as_str).unwrap_or_default(),
        )?;
        let Some(link_entities) = link_entities(link, role, CERTS_DIR_IN_CONTAINER) else {
            return Err(LinkError::NoEndpoint {
                link: link.metadata.name.clone(),
                mode,
                found: endpoint_names(link),
            });
        };
        let address = link_entities.connector.address();
        if let Some((_, existing)) = existing.iter().find(|(a, _)| *a == address) {
            return Err(LinkError::AlreadyLinked {
                target: address,
                existing: existing.clone(),
            });
        }
        entities.push(link_entities);
    }
    Ok(entities)
}

fn endpoint_names(link: &Link) -> String {
    let names: Vec<&str> = link
        .spec
        .endpoints
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

pub fn find_link<'a>(resources: &'a SiteResources, name: &str) -> Result<&'a Link, LinkError> {
    resources
        .links
        .iter()
        .find(|l| l.metadata.name == name)
        .ok_or_else(|| LinkError::NotFound {
            name: name.to_string(),
            present: resources
                .links
                .iter()
                .map(|l| l.metadata.name.clone())
                .collect(),
        })
}

//! Who may link to this site, and the certificates that decide it.
//!
//! - `link revoke NAME`: one incoming link's CA leaves the link listeners' trust bundle. The
//!   router cannot close one inter-router connection (management refuses `adminStatus:
//!   deleted` for inter-router and edge connections), so the renewal closes every connection
//!   made under the old trust (`oldestValidOrdinal`); the links still trusted dial again
//!   (skupper-router retries 2 s after a connection that had opened drops), the revoked one is
//!   refused from then on, its router restarted or not.
//! - `revoke-access`: Skupper v1's meaning: a new site CA and server certificate, every
//!   incoming link's CA and every AccessGrant gone, so incoming links drop and stay down and
//!   unredeemed tokens are refused; this site's own links (other sites' CAs) are untouched.
//! - `certs rotate`: every certificate vansite issued for the site issued again from the
//!   same CAs; the running router reads them through sslProfile updates, links stay up.
//!   With `--ca`, a key rollover first: new CAs, each also signed by its predecessor, which
//!   stays trusted until the next such rotation.
//!
//! Each is an edit of the site's CAs on disk (and, for revoke-access, its resources) plus the
//! one apply, which writes the files and renews the router's profiles.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::model::{Resource, SiteResources};
use crate::ops::apply::{Applied, ApplyOptions, RouterChange, SiteSession};
use crate::ops::expiry::{self, ExpiryReport};
use crate::render::certs::{Ca, LeafRenewal, PriorCa, SiteCertificates, ROTATED_CAS, SITE_CA};
use crate::store::{Paths, SiteDir};

use super::unix_seconds;

/// What `link revoke` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkRevoked {
    pub namespace: String,
    pub link: String,
    /// The incoming links still trusted: their connections were closed with the revoked
    /// one's and come back within seconds.
    pub still_trusted: Vec<String>,
    pub router: RouterChange,
}

/// `vansite link revoke NAME`.
pub async fn revoke_link(
    paths: &Paths,
    namespace: &str,
    link: &str,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<LinkRevoked, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let resources = session.resources()?.clone();
    let site_dir = session.site_dir.clone();
    let issued = issued_links(&site_dir)?;
    if !issued.iter().any(|name| name == link) {
        return Err(Error::Usage(format!(
            "site '{namespace}' issued no incoming link '{link}'; issued: {} (`vansite link \
             status` names the connected ones)",
            if issued.is_empty() {
                "none".to_string()
            } else {
                issued.join(", ")
            }
        )));
    }
    // Gone from disk first: whatever happens next, no later apply trusts it again.
    site_dir.remove_issuer(&site_dir.link_issuers(), link)?;
    progress(&format!("withdrawing the router's trust in link '{link}'"));
    let applied = session
        .apply(
            resources,
            &format!("link revoke {link}"),
            options(LeafRenewal::WhenDue, timeout),
            progress,
        )
        .await?;
    Ok(LinkRevoked {
        namespace: namespace.to_string(),
        link: link.to_string(),
        still_trusted: issued.into_iter().filter(|name| name != link).collect(),
        router: applied.router,
    })
}

/// The incoming links this site issued and still trusts, by name.
pub fn issued_links(site_dir: &SiteDir) -> Result<Vec<String>, Error> {
    Ok(site_dir
        .load_certificates()?
        .link_issuers
        .into_keys()
        .collect())
}

/// What `revoke-access` will break, and then did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRevoked {
    pub namespace: String,
    /// Incoming links whose credentials stopped working.
    pub links: Vec<String>,
    /// AccessGrants removed: their tokens are refused.
    pub grants: Vec<String>,
    pub router: RouterChange,
}

/// What `revoke-access` would revoke, to say before doing it.
#[derive(Debug, Clone)]
pub struct AccessToRevoke {
    pub links: Vec<String>,
    pub grants: Vec<String>,
}

/// The incoming links and grants of the site, which `revoke-access` ends.
pub fn access_to_revoke(paths: &Paths, namespace: &str) -> Result<AccessToRevoke, Error> {
    let site_dir = paths.site(namespace);
    let resources = paths.load_site(namespace)?;
    Ok(AccessToRevoke {
        links: issued_links(&site_dir)?,
        grants: grant_names(&resources),
    })
}

fn grant_names(resources: &SiteResources) -> Vec<String> {
    resources
        .access_grants
        .iter()
        .map(|g| g.metadata.name.clone())
        .collect()
}

/// `vansite revoke-access`: a new site CA and server certificate, no incoming link's CA, no
/// predecessor of the site CA still trusted, no AccessGrant. The grant server stays (with nothing to redeem) for tokens issued afterwards.
pub async fn revoke_access(
    paths: &Paths,
    namespace: &str,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<AccessRevoked, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let resources = session.resources()?.clone();
    let site_dir = session.site_dir.clone();
    let links = issued_links(&site_dir)?;
    let grants = grant_names(&resources);
    let kept: Vec<Resource> = resources
        .to_resources()
        .into_iter()
        .filter(|r| !matches!(r, Resource::AccessGrant(_)))
        .collect();
    let target = SiteResources::new(namespace, kept)?;
    // The CAs go before the apply, which issues a new site CA and server certificate for the
    // files it writes: a crash in between leaves them gone, and the next command's apply
    // finishes the job rather than restoring trust.
    let site_ca = resources
        .router_access(resources.site_name())
        .map(|access| access.spec.issuer.as_str())
        .filter(|issuer| !issuer.is_empty())
        .unwrap_or(SITE_CA)
        .to_string();
    progress("removing the site CA and every incoming link's CA");
    site_dir.remove_issuer(&site_dir.issuers(), &site_ca)?;
    site_dir.remove_issuer(&site_dir.prior_issuers(), &site_ca)?;
    for link in &links {
        site_dir.remove_issuer(&site_dir.link_issuers(), link)?;
    }
    let applied = session
        .apply(
            target,
            "revoke-access",
            options(LeafRenewal::WhenDue, timeout),
            progress,
        )
        .await?;
    for grant in resources.access_grants.iter() {
        let dir = site_dir.grants();
        crate::grants::state::remove(&dir, &grant.metadata.uid)
            .map_err(Error::file("cannot remove", &dir))?;
    }
    Ok(AccessRevoked {
        namespace: namespace.to_string(),
        links,
        grants,
        router: applied.router,
    })
}

/// One certificate `certs rotate` issued again.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    /// Its directory under `runtime/certs/`.
    pub certificate: String,
    /// RFC 3339, the new certificate's end.
    pub not_after: String,
}

/// What `certs rotate` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    pub namespace: String,
    /// The CAs replaced by new ones (`--ca`); their predecessors stay trusted.
    pub cas: Vec<String>,
    pub renewed: Vec<Renewed>,
    pub router: RouterChange,
}

/// Which certificates `certs rotate` issues again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Every certificate vansite issued for the site.
    All,
    /// New CAs too, each trusted beside its predecessor until the next such rotation.
    WithCas,
    /// Only those within 30 days of expiry (what the renewal timer runs).
    Due,
}

/// `vansite certs rotate`: the site's leaves issued again from the same CAs; the running
/// router reads them through sslProfile updates, connections and links stay up.
pub async fn rotate(
    paths: &Paths,
    namespace: &str,
    rotation: Rotation,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<Rotated, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let resources = session.resources()?.clone();
    let site_dir = session.site_dir.clone();
    let mut existing = site_dir.load_certificates()?;
    let before = existing.certs.clone();
    let renewal = match rotation {
        Rotation::All | Rotation::WithCas => LeafRenewal::All,
        Rotation::Due => LeafRenewal::WhenDue,
    };
    let mut cas = Vec::new();
    if rotation == Rotation::WithCas {
        // Saved before the apply: a crash in between leaves the new CAs, and the next
        // command's apply issues the leaves they no longer match.
        progress("making new CAs (their predecessors stay trusted)");
        cas = succeed_cas(&mut existing)?;
        site_dir.save_certificates(&existing)?;
    }
    progress("issuing the site's certificates again");
    let Applied { router, .. } = session
        .apply(
            resources,
            "certs rotate",
            options(renewal, timeout),
            progress,
        )
        .await?;
    let after = site_dir.load_certificates()?.certs;
    Ok(Rotated {
        namespace: namespace.to_string(),
        cas,
        renewed: renewed_leaves(&before, &after),
        router,
    })
}

/// Replaces each of the site's [`ROTATED_CAS`] by a successor, its predecessor kept as prior
/// (a prior from an earlier rotation is no longer trusted). Returns their names.
fn succeed_cas(certificates: &mut SiteCertificates) -> Result<Vec<String>, Error> {
    let generation = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let mut replaced = Vec::new();
    for name in ROTATED_CAS {
        let Some(files) = certificates.issuers.get(name) else {
            continue;
        };
        let current = Ca::from_pem(name, &files.tls_crt, &files.tls_key)?;
        // A name of its own: peers that hold both never take one for the other.
        let (successor, cross_crt) = current.successor(&format!("{name}-{generation}"))?;
        let prior = PriorCa {
            ca_crt: files.tls_crt.clone(),
            cross_crt,
        };
        certificates.prior_issuers.insert(name.to_string(), prior);
        certificates
            .issuers
            .insert(name.to_string(), successor.files().clone());
        replaced.push(name.to_string());
    }
    Ok(replaced)
}

/// The leaves whose certificate changed, with their new end.
fn renewed_leaves(
    before: &BTreeMap<String, crate::render::certs::CertFiles>,
    after: &BTreeMap<String, crate::render::certs::CertFiles>,
) -> Vec<Renewed> {
    after
        .iter()
        .filter(|(name, files)| {
            before
                .get(*name)
                .is_none_or(|old| old.tls_crt != files.tls_crt)
        })
        .filter_map(|(name, files)| {
            let (_, not_after) = crate::render::certs::validity(&files.tls_crt).ok()?;
            Some(Renewed {
                certificate: name.clone(),
                not_after: expiry::rfc3339_of_unix(not_after),
            })
        })
        .collect()
}

/// `vansite certs list`: every certificate the site keeps, soonest to expire first.
pub fn list(paths: &Paths, namespace: &str) -> Result<Vec<ExpiryReport>, Error> {
    paths.load_site(namespace)?;
    let now = unix_seconds(std::time::SystemTime::now());
    Ok(expiry::site_certificates(&paths.site(namespace))
        .iter()
        .map(|cert| cert.report(now))
        .collect())
}

fn options(renewal: LeafRenewal, timeout: Duration) -> ApplyOptions {
    ApplyOptions {
        renewal,
        start_router: false,
        timeout,
    }
}

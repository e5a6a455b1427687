//! `vansite link create|delete|status`: links from this site to others.
//!
//! `create` takes any file [`crate::tokens`] understands, redeems it if it is a token, refuses
//! a link to this same site and a second link to the same place, checks that the remote
//! server's certificate matches the link's CA, then stores the Link, its Secret, the
//! `<secret>-profile` certificate directory and the new `skrouterd.json` (resources last: the
//! commit point), and adds the sslProfile and connector to the running router over management,
//! so the router is not restarted. Every failure before or during the writes leaves the site's
//! files exactly as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::certs::{self, same_certificate, CertFiles};
use crate::error::Error;
use crate::quadlet::router::{router_unit_name, CERTS_DIR_IN_CONTAINER};
use crate::resources::{check_name, Link, Resource, SiteResources};
use crate::router::config::{link_entities, link_role, render, LinkEntities};
use crate::router::management::{ClientTls, ManagementClient, ManagementError};
use crate::systemd::{ActiveState, UserManager};
use crate::tokens::redeem::{redeem_access_token, redeem_v1_claim};
use crate::tokens::{self, LinkBundle, Token, GENERATED_BY};

use super::init::{local_port, render_context, wait_until_answering};
use super::status::rfc3339;
use super::{files, Paths, SiteDir};

/// Bound on reaching the router's management for one operation.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the check of a link's remote server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that refuses our client certificate says so within this time after the handshake.
const PROBE_REFUSAL_WAIT: Duration = Duration::from_millis(500);

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
        "Link '{link}' has no '{role}' endpoint, the one a{mode} site dials (endpoints: {found})"
    )]
    NoEndpoint {
        link: String,
        role: &'static str,
        mode: &'static str,
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
    #[error("the router refused to add link '{link}': {source}; the site is unchanged")]
    RouterRefused {
        link: String,
        source: Box<ManagementError>,
    },
}

fn links_hint(present: &[String]) -> String {
    match present {
        [] => " (it has none)".into(),
        names => format!(" (links: {})", names.join(", ")),
    }
}

/// What `vansite link create` is asked to do.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub namespace: String,
    /// The file's text, and its name for messages.
    pub text: String,
    pub source_name: String,
    /// Name of the Link and Secret (default: the name in the file).
    pub name: Option<String>,
    /// Cost of the link (default: the file's, else 1).
    pub cost: Option<i64>,
    /// Bound on a router restart, when management cannot be reached.
    pub timeout: Duration,
}

/// How the router got the new (or lost the deleted) link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// Management CREATE/DELETE on the running router: no restart.
    Live,
    /// Management did not answer, so the router unit was restarted with the new config.
    Restarted,
    /// The router is not running; it reads the config when it starts.
    RouterNotRunning,
}

#[derive(Debug, Clone)]
pub struct CreateOutcome {
    pub namespace: String,
    /// What the file held (`Token::describe`).
    pub from: &'static str,
    pub links: Vec<String>,
    pub secret: String,
    /// `host:port` dialled per link, in `links` order.
    pub endpoints: Vec<String>,
    pub role: &'static str,
    pub applied: Applied,
    /// Things the person should know (an endpoint not reachable now, a restart and why).
    pub notes: Vec<String>,
}

/// `vansite link create FILE` (also `vansite token redeem FILE`).
pub async fn create(
    paths: &Paths,
    request: CreateRequest,
    progress: &dyn Fn(&str),
) -> Result<CreateOutcome, Error> {
    if let Some(name) = &request.name {
        check_name(name).map_err(|problem| Error::Usage(format!("--name: {problem}")))?;
    }
    if request.cost.is_some_and(|cost| cost < 1) {
        return Err(Error::Usage("--cost must be 1 or more".into()));
    }
    let token = tokens::parse(&request.text, &request.source_name)?;
    let from = token.describe();
    let site_dir = paths.site(&request.namespace);
    let _lock = paths.lock(&request.namespace, progress)?;
    let resources = paths.load_site(&site_dir.namespace)?;
    let existing_certs = site_dir.load_certificates()?;
    let own = OwnSite {
        id: resources.site.metadata.uid.clone(),
        cas: existing_certs
            .issuers
            .values()
            .map(|ca| ca.tls_crt.clone())
            .collect(),
    };
    let role = link_role(&resources);

    // What can be refused before a token is spent is refused here.
    let (name, mut bundle) = match token {
        Token::AccessToken(access_token) => {
            own.refuse_own_ca(&access_token.spec.ca, from)?;
            let name = request
                .name
                .clone()
                .unwrap_or_else(|| access_token.metadata.name.clone());
            refuse_taken_name(&resources, &name)?;
            progress(&format!("redeeming the token at {}", access_token.spec.url));
            let bundle = redeem_access_token(&access_token, &name, resources.site_name()).await?;
            let bundle = bundle.renamed(&name);
            match access_token.spec.link_cost {
                cost if cost > 0 => (name, bundle.with_cost(cost)),
                _ => (name, bundle),
            }
        }
        Token::V1Claim(claim) => {
            own.refuse_generated_by(&claim.generated_by, from)?;
            own.refuse_own_ca(&claim.ca_pem, from)?;
            refuse_linked_site(&resources, &claim.generated_by)?;
            let name = request.name.clone().unwrap_or_else(|| claim.name.clone());
            refuse_taken_name(&resources, &name)?;
            progress(&format!("redeeming the claim at {}", claim.url));
            let token = redeem_v1_claim(&claim, &own.id).await?;
            (name.clone(), token.to_link_bundle().renamed(&name))
        }
        Token::V1Connection(token) => {
            let name = request.name.clone().unwrap_or_else(|| token.name.clone());
            (name.clone(), token.to_link_bundle().renamed(&name))
        }
        Token::Links(bundle) => match &request.name {
            Some(name) => (name.clone(), bundle.renamed(name)),
            None => (bundle.secret.metadata.name.clone(), bundle),
        },
    };
    if let Some(cost) = request.cost {
        bundle = bundle.with_cost(cost);
    }
    let entities = check_bundle(&resources, &own, &bundle, role, from)?;
    let mut notes = Vec::new();
    for endpoint in entities
        .iter()
        .map(|e| e.connector.address())
        .collect::<BTreeSet<_>>()
    {
        progress(&format!("checking the remote router at {endpoint}"));
        if let Some(note) = probe(&endpoint, &bundle.credentials).await? {
            notes.push(note);
        }
    }

    // Everything is decided in memory; then written, resources last.
    let mut all = resources.to_resources();
    all.push(Resource::Secret(bundle.secret.clone()));
    all.extend(bundle.links.iter().cloned().map(Resource::Link));
    let updated = SiteResources::new(&request.namespace, all)?;
    let profile_name = format!("{name}-profile");
    let mut wanted = certs::site_certificates(&updated, &existing_certs)?;
    let profile = wanted
        .certs
        .remove(&profile_name)
        .expect("site_certificates derives every Link Secret's profile");
    let config = render(&updated, &render_context(&updated));
    let change = Change::begin(&site_dir, &resources, &existing_certs.certs);
    change
        .write(
            &BTreeMap::from([(profile_name.clone(), profile)]),
            &[],
            &config,
            &updated,
        )
        .inspect_err(|_| change.undo())?;

    let applied = match add_live(&site_dir, &updated, &entities).await {
        Ok(()) => Applied::Live,
        Err(Live::Refused(source)) => {
            change.undo();
            return Err(LinkError::RouterRefused {
                link: name,
                source: Box::new(source),
            }
            .into());
        }
        Err(Live::Unreachable(reason)) => {
            match restart_if_running(
                &request.namespace,
                &site_dir,
                &updated,
                request.timeout,
                progress,
            )
            .await
            {
                Ok(applied) => {
                    if applied == Applied::Restarted {
                        notes.push(format!(
                            "the router's management did not answer ({reason}), so the router was restarted to use the link"
                        ));
                    }
                    applied
                }
                Err(error) => {
                    change.undo();
                    return Err(error);
                }
            }
        }
    };
    Ok(CreateOutcome {
        namespace: request.namespace,
        from,
        links: bundle
            .links
            .iter()
            .map(|l| l.metadata.name.clone())
            .collect(),
        secret: name,
        endpoints: entities.iter().map(|e| e.connector.address()).collect(),
        role,
        applied,
        notes,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOutcome {
    pub namespace: String,
    pub link: String,
    /// The Secret, when no other Link uses it.
    pub removed_secret: Option<String>,
    pub applied: Applied,
    pub notes: Vec<String>,
}

/// `vansite link delete NAME`: management DELETE of the connector (and of its sslProfile when
/// no other link uses it), then the files.
pub async fn delete(
    paths: &Paths,
    namespace: &str,
    name: &str,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<DeleteOutcome, Error> {
    let site_dir = paths.site(namespace);
    let _lock = paths.lock(namespace, progress)?;
    let resources = paths.load_site(&site_dir.namespace)?;
    let link = find_link(&resources, name)?.clone();
    let secret = link.spec.tls_credentials.clone();
    let shared = resources
        .links
        .iter()
        .any(|l| l.metadata.name != name && l.spec.tls_credentials == secret);
    let kept: Vec<Resource> = resources
        .to_resources()
        .into_iter()
        .filter(|r| match r {
            Resource::Link(l) => l.metadata.name != name,
            Resource::Secret(s) => shared || s.metadata.name != secret,
            _ => true,
        })
        .collect();
    let updated = SiteResources::new(namespace, kept)?;
    let profile = format!("{secret}-profile");
    let role = link_role(&resources);

    let mut notes = Vec::new();
    let live = remove_live(
        &site_dir,
        &resources,
        link_entities(&link, role, CERTS_DIR_IN_CONTAINER).map(|e| e.connector.name().to_string()),
        (!shared).then_some(profile.as_str()),
    )
    .await;
    let existing_certs = site_dir.load_certificates()?;
    let change = Change::begin(&site_dir, &resources, &existing_certs.certs);
    let removed_dirs: Vec<&str> = if shared {
        vec![]
    } else {
        vec![profile.as_str()]
    };
    change
        .write(
            &BTreeMap::new(),
            &removed_dirs,
            &render(&updated, &render_context(&updated)),
            &updated,
        )
        .inspect_err(|_| change.undo())?;
    let applied = match live {
        Ok(()) => Applied::Live,
        Err(Live::Refused(source)) => {
            notes.push(format!(
                "the router refused to remove the link live ({source}); it is gone from the files and goes at the router's next restart"
            ));
            Applied::Live
        }
        Err(Live::Unreachable(reason)) => {
            let applied =
                restart_if_running(namespace, &site_dir, &updated, timeout, progress).await?;
            if applied == Applied::Restarted {
                notes.push(format!(
                    "the router's management did not answer ({reason}), so the router was restarted without the link"
                ));
            }
            applied
        }
    };
    Ok(DeleteOutcome {
        namespace: namespace.to_string(),
        link: name.to_string(),
        removed_secret: (!shared).then_some(secret),
        applied,
        notes,
    })
}

/// One link as the router sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    pub name: String,
    /// `host:port` this site dials (empty when the Link has no endpoint for this site's role).
    pub endpoint: String,
    pub role: &'static str,
    pub cost: i64,
    pub connected: bool,
    /// connected, connecting, failed, not-on-router (the router has no connector for it), or
    /// unknown (the router did not answer).
    pub state: &'static str,
    /// The remote router's id (its AMQP container id), while connected.
    pub remote_router: Option<String>,
    /// RFC 3339: since when the link is up.
    pub since: Option<String>,
    /// The router's last connection error for this link, or why the state is unknown.
    pub last_error: Option<String>,
}

/// A router known in the network (`router.node`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRouter {
    pub id: String,
    /// Hops from this router (0 for itself).
    pub cost: i64,
    /// The neighbour traffic to it goes through (`(self)` for this router).
    pub next_hop: String,
}

/// What the router's management says about links and the network.
#[derive(Debug, Clone, Default)]
pub struct RouterView {
    pub connectors: Vec<Map<String, Value>>,
    pub connections: Vec<Map<String, Value>>,
    pub nodes: Vec<Map<String, Value>>,
}

impl RouterView {
    /// QUERYs `connector`, `connection` and `router.node` on the site's router.
    pub async fn query(
        site_dir: &SiteDir,
        resources: &SiteResources,
    ) -> Result<RouterView, ManagementError> {
        let mut client = connect(site_dir, resources).await?;
        let view = async {
            Ok::<_, ManagementError>(RouterView {
                connectors: client.query("connector", &[]).await?,
                connections: client.query("connection", &[]).await?,
                nodes: client.query("router.node", &[]).await?,
            })
        }
        .await;
        let _ = client.close().await;
        view
    }

    pub fn network(&self) -> Vec<NetworkRouter> {
        let mut routers: Vec<NetworkRouter> = self
            .nodes
            .iter()
            .map(|node| NetworkRouter {
                id: text(node, "id"),
                cost: node.get("cost").and_then(Value::as_i64).unwrap_or_default(),
                next_hop: text(node, "nextHop"),
            })
            .collect();
        routers.sort_by(|a, b| (a.cost, &a.id).cmp(&(b.cost, &b.id)));
        routers
    }
}

/// The state of every Link of `resources`; `view` is None when the router did not answer
/// (`why` says why).
pub fn link_statuses(
    resources: &SiteResources,
    view: Result<&RouterView, &str>,
) -> Vec<LinkStatus> {
    let role = link_role(resources);
    let now = SystemTime::now();
    resources
        .links
        .iter()
        .map(|link| {
            let entities = link_entities(link, role, CERTS_DIR_IN_CONTAINER);
            let endpoint = entities
                .as_ref()
                .map(|e| e.connector.address())
                .unwrap_or_default();
            let mut status = LinkStatus {
                name: link.metadata.name.clone(),
                endpoint: endpoint.clone(),
                role,
                cost: link.spec.cost.max(1),
                connected: false,
                state: "unknown",
                remote_router: None,
                since: None,
                last_error: None,
            };
            let view = match view {
                Ok(view) => view,
                Err(why) => {
                    status.last_error = Some(why.to_string());
                    return status;
                }
            };
            if entities.is_none() {
                status.state = "not-on-router";
                status.last_error = Some(format!("the Link has no '{role}' endpoint"));
                return status;
            }
            let connector = view
                .connectors
                .iter()
                .find(|c| text(c, "name") == link.metadata.name);
            let Some(connector) = connector else {
                status.state = "not-on-router";
                status.last_error = Some(
                    "the router has no connector for this link: run `vansite init` to restart it with the site's configuration".into(),
                );
                return status;
            };
            let connection = view.connections.iter().find(|c| {
                text(c, "dir") == "out"
                    && text(c, "role") == role
                    && text(c, "host") == endpoint
                    && c.get("opened").and_then(Value::as_bool).unwrap_or(true)
            });
            let message = text(connector, "connectionMsg");
            status.last_error = (!message.is_empty()).then_some(message);
            match connection {
                Some(connection) => {
                    status.connected = true;
                    status.state = "connected";
                    status.remote_router =
                        Some(text(connection, "container")).filter(|c| !c.is_empty());
                    status.since = connection
                        .get("uptimeSeconds")
                        .and_then(Value::as_u64)
                        .map(|up| rfc3339(now - Duration::from_secs(up)));
                }
                None => {
                    status.state = match text(connector, "connectionStatus").as_str() {
                        "FAILED" => "failed",
                        _ => "connecting",
                    };
                }
            }
            status
        })
        .collect()
}

/// `vansite link status [NAME]`.
pub async fn status(
    paths: &Paths,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<LinkStatus>, Error> {
    let site_dir = paths.site(namespace);
    let resources = paths.load_site(&site_dir.namespace)?;
    if let Some(name) = name {
        find_link(&resources, name)?;
    }
    let view = RouterView::query(&site_dir, &resources).await;
    let why = view
        .as_ref()
        .err()
        .map(|e| format!("the router did not answer: {e}"));
    let statuses = link_statuses(
        &resources,
        view.as_ref()
            .map_err(|_| why.as_deref().unwrap_or_default()),
    );
    Ok(statuses
        .into_iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .collect())
}

/// This site, as far as refusing a link to itself goes.
struct OwnSite {
    id: String,
    /// PEM of every CA of the site (`runtime/issuers/`).
    cas: Vec<String>,
}

impl OwnSite {
    fn refuse_own_ca(&self, ca_pem: &str, what: &'static str) -> Result<(), LinkError> {
        if self.cas.iter().any(|own| same_certificate(own, ca_pem)) {
            return Err(LinkError::SelfLink {
                what,
                reason: "its CA is one of this site's own".into(),
            });
        }
        Ok(())
    }

    fn refuse_generated_by(&self, generated_by: &str, what: &'static str) -> Result<(), LinkError> {
        if !generated_by.is_empty() && generated_by == self.id {
            return Err(LinkError::SelfLink {
                what,
                reason: format!("{GENERATED_BY} is this site's id {generated_by}"),
            });
        }
        Ok(())
    }
}

fn refuse_taken_name(resources: &SiteResources, name: &str) -> Result<(), LinkError> {
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
fn refuse_linked_site(resources: &SiteResources, generated_by: &str) -> Result<(), LinkError> {
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
fn check_bundle(
    resources: &SiteResources,
    own: &OwnSite,
    bundle: &LinkBundle,
    role: &'static str,
    what: &'static str,
) -> Result<Vec<LinkEntities>, LinkError> {
    own.refuse_own_ca(&bundle.credentials.ca_crt, what)?;
    refuse_taken_name(resources, &bundle.secret.metadata.name)?;
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
                role,
                mode: if role == "edge" {
                    "n edge"
                } else {
                    "n interior"
                },
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

/// Checks the remote router at `endpoint` with the link's credentials, as its connector will:
/// TLS with the link's client certificate, trusting only the link's CA. A server of another
/// CA, or one refusing the certificate, is an error; a server not reachable now is a note (the
/// router keeps trying).
async fn probe(endpoint: &str, credentials: &CertFiles) -> Result<Option<String>, LinkError> {
    use tokio::io::AsyncReadExt;
    let config = match crate::tls::client_config(
        credentials.ca_crt.as_bytes(),
        Some(crate::tls::Identity {
            cert_pem: credentials.tls_crt.as_bytes(),
            key_pem: credentials.tls_key.as_bytes(),
        }),
        crate::tls::Versions::Default,
    ) {
        Ok(config) => config,
        Err(e) => {
            return Err(LinkError::ClientRefused {
                endpoint: endpoint.to_string(),
                detail: e.to_string(),
            })
        }
    };
    let Some((host, _)) = endpoint.rsplit_once(':') else {
        return Ok(None);
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let unreachable = |why: String| {
        Ok(Some(format!(
            "the remote router at {endpoint} cannot be reached now ({why}); the router keeps trying"
        )))
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(host) else {
        return unreachable("not a valid host name".into());
    };
    let tcp =
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return unreachable(e.to_string()),
            Err(_) => return unreachable("timed out".into()),
        };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tls_error = |e: &std::io::Error| -> LinkError {
        let endpoint = endpoint.to_string();
        match crate::tls::find_rustls_error(e) {
            Some(tls) if crate::tls::is_untrusted_server(tls) => LinkError::ServerNotTrusted {
                endpoint,
                detail: tls.to_string(),
            },
            Some(tls) if crate::tls::is_refused_client(tls) => LinkError::ClientRefused {
                endpoint,
                detail: tls.to_string(),
            },
            _ => LinkError::NotARouter {
                endpoint,
                detail: e.to_string(),
            },
        }
    };
    let mut stream =
        match tokio::time::timeout(PROBE_TIMEOUT, connector.connect(server_name, tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(tls_error(&e)),
            Err(_) => return unreachable("the TLS handshake timed out".into()),
        };
    // With TLS 1.3 the server judges the client certificate after the handshake; a refusal
    // arrives as an alert on the first read.
    let mut byte = [0u8; 1];
    if let Ok(Err(e)) = tokio::time::timeout(PROBE_REFUSAL_WAIT, stream.read(&mut byte)).await {
        if crate::tls::find_rustls_error(&e).is_some() {
            return Err(tls_error(&e));
        }
    }
    Ok(None)
}

/// The files a link operation changes, and how to put them back.
struct Change<'a> {
    site_dir: &'a SiteDir,
    resources: &'a SiteResources,
    config: Option<Vec<u8>>,
    leaves: &'a BTreeMap<String, CertFiles>,
    touched: std::cell::RefCell<Vec<String>>,
}

impl<'a> Change<'a> {
    fn begin(
        site_dir: &'a SiteDir,
        resources: &'a SiteResources,
        leaves: &'a BTreeMap<String, CertFiles>,
    ) -> Self {
        Change {
            site_dir,
            resources,
            config: std::fs::read(site_dir.router_config()).ok(),
            leaves,
            touched: Default::default(),
        }
    }

    /// Writes the certificate directories, the router config, then the resources (the commit
    /// point: a crash before it leaves a config the next `init` rewrites from the resources).
    fn write(
        &self,
        add: &BTreeMap<String, CertFiles>,
        remove: &[&str],
        config: &str,
        resources: &SiteResources,
    ) -> Result<(), Error> {
        for name in add.keys().map(String::as_str).chain(remove.iter().copied()) {
            self.touched.borrow_mut().push(name.to_string());
        }
        self.site_dir.save_leaves(add)?;
        for name in remove {
            self.site_dir.remove_leaf(name)?;
        }
        let path = self.site_dir.router_config();
        files::write_atomic(&path, config.as_bytes(), files::PUBLIC)
            .map_err(Error::file("cannot write", &path))?;
        self.site_dir.save_resources(resources)?;
        Ok(())
    }

    /// Puts back what [`Change::write`] changed. Best effort: a failure here is logged, the
    /// original error is what the person needs.
    fn undo(&self) {
        let undo = || -> Result<(), Error> {
            self.site_dir.save_resources(self.resources)?;
            if let Some(config) = &self.config {
                let path = self.site_dir.router_config();
                files::write_atomic(&path, config, files::PUBLIC)
                    .map_err(Error::file("cannot write", &path))?;
            }
            for name in self.touched.borrow().iter() {
                match self.leaves.get(name) {
                    Some(files) => {
                        self.site_dir
                            .save_leaves(&BTreeMap::from([(name.clone(), files.clone())]))?;
                    }
                    None => {
                        self.site_dir.remove_leaf(name)?;
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = undo() {
            tracing::error!("could not put the site's files back as they were: {e}");
        }
    }
}

enum Live {
    /// Management could not be reached (the reason, for the person).
    Unreachable(String),
    /// The router answered and refused.
    Refused(ManagementError),
}

async fn connect(
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Result<ManagementClient, ManagementError> {
    let tls = ClientTls::from_dir(site_dir.certs().join(certs::LOCAL_CLIENT))?;
    ManagementClient::connect("127.0.0.1", local_port(resources), &tls, MANAGEMENT_TIMEOUT).await
}

/// CREATE of each link's sslProfile and connector on the running router; on a refusal, what
/// was created is deleted again.
async fn add_live(
    site_dir: &SiteDir,
    resources: &SiteResources,
    entities: &[LinkEntities],
) -> Result<(), Live> {
    let mut client = connect(site_dir, resources)
        .await
        .map_err(|e| Live::Unreachable(e.to_string()))?;
    let mut created: Vec<(&str, &str)> = Vec::new();
    let mut result = Ok(());
    for entity in entities {
        let profile = &entity.ssl_profile;
        if !created.contains(&("sslProfile", profile.name())) {
            if let Err(e) = client
                .create("sslProfile", profile.name(), profile.attributes())
                .await
            {
                result = Err(e);
                break;
            }
            created.push(("sslProfile", profile.name()));
        }
        let connector = &entity.connector;
        if let Err(e) = client
            .create("connector", connector.name(), connector.attributes())
            .await
        {
            result = Err(e);
            break;
        }
        created.push(("connector", connector.name()));
    }
    if result.is_err() {
        for (entity_type, name) in created.iter().rev() {
            let _ = client.delete(entity_type, name).await;
        }
    }
    let _ = client.close().await;
    result.map_err(Live::Refused)
}

/// DELETE of a link's connector and (when given) sslProfile; entities the router does not
/// have are not an error.
async fn remove_live(
    site_dir: &SiteDir,
    resources: &SiteResources,
    connector: Option<String>,
    profile: Option<&str>,
) -> Result<(), Live> {
    let mut client = connect(site_dir, resources)
        .await
        .map_err(|e| Live::Unreachable(e.to_string()))?;
    let mut result = Ok(());
    let targets = connector
        .as_deref()
        .map(|c| ("connector", c))
        .into_iter()
        .chain(profile.map(|p| ("sslProfile", p)));
    for (entity_type, name) in targets {
        match client.delete(entity_type, name).await {
            Err(e) if !e.is_not_found() => {
                result = Err(Live::Refused(e));
                break;
            }
            _ => {}
        }
    }
    let _ = client.close().await;
    result
}

/// When management cannot be reached: restart the router if it runs (it then reads the new
/// config), else leave it for its next start.
async fn restart_if_running(
    namespace: &str,
    site_dir: &SiteDir,
    resources: &SiteResources,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<Applied, Error> {
    let manager = UserManager::connect().await?;
    let unit = format!("{}.service", router_unit_name(namespace));
    let state = manager.unit_state(&unit).await?;
    if state.active_state != ActiveState::Active {
        return Ok(Applied::RouterNotRunning);
    }
    progress(&format!(
        "the router's management does not answer: restarting {unit}"
    ));
    manager.restart(&unit, timeout).await?;
    let log = site_dir.router_log();
    wait_until_answering(
        &manager,
        &unit,
        site_dir,
        local_port(resources),
        timeout,
        |state| Error::RouterFailed {
            namespace: namespace.to_string(),
            unit: unit.clone(),
            state,
            log: log.clone(),
            log_tail: String::new(),
        },
        |state| Error::RouterTimeout {
            namespace: namespace.to_string(),
            unit: unit.clone(),
            state,
            seconds: timeout.as_secs(),
            log: log.clone(),
        },
    )
    .await?;
    Ok(Applied::Restarted)
}

fn find_link<'a>(resources: &'a SiteResources, name: &str) -> Result<&'a Link, LinkError> {
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

fn text(row: &Map<String, Value>, key: &str) -> String {
    match row.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

//! `vansite link create|delete|status`: links from this site to others.
//!
//! `create` takes any file [`crate::tokens`] understands. Every check that can be made before a
//! token is spent is made first (a link to this same site, a name in use, a site already
//! linked); then it redeems the token, keeps what the redemption returned (so a retry after a
//! later refusal or a kill applies it without redeeming again: tokens are often single-use),
//! refuses a second link to the same place, checks that the remote server's certificate
//! matches the link's CA, and adds the Link and its Secret to the site through the one apply
//! (`ops::apply`): certificates and `skrouterd.json` are written and the running router gets
//! the sslProfile and connector through management, without a restart.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::model::{check_name, LinkRole, LinkState, Resource, SiteResources};
use crate::observe::collector;
use crate::observe::records::Timestamp;
use crate::observe::status::NetworkStatus;
use crate::ops::apply::{
    site_router_endpoint, with_site_management, ApplyOptions, RouterChange, SiteSession,
};
use crate::render::certs::CertFiles;
use crate::render::certs::LeafRenewal;
use crate::render::router_config::link_entities;
use crate::render::router_unit::CERTS_DIR_IN_CONTAINER;
use crate::router::management::{ManagementClient, ManagementError};
use crate::router::views::{ConnectionView, ConnectorView, NodeView};
use crate::tokens::redeem::{redeem_access_token, redeem_v1_claim};
use crate::tokens::{self, LinkBundle, Token};

use super::rfc3339;
use crate::plan::link::{
    check_bundle, find_link, refuse_linked_site, refuse_taken_name, LinkError, OwnSite,
};
use crate::store::{files, Paths, SiteDir};

/// Bound on reaching the router's management for one operation.
pub(super) const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the check of a link's remote server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that refuses our client certificate says so within this time after the handshake.
const PROBE_REFUSAL_WAIT: Duration = Duration::from_millis(500);

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
    pub role: LinkRole,
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
    let mut session = SiteSession::open(paths, &request.namespace, progress).await?;
    let site_dir = session.site_dir.clone();
    let resources = session.resources()?.clone();
    let existing_certs = site_dir.load_certificates()?;
    let own = OwnSite {
        id: resources.site.metadata.uid.clone(),
        cas: existing_certs
            .issuers
            .values()
            .map(|ca| ca.tls_crt.clone())
            .collect(),
    };
    let role = resources.router_mode().link_role();

    // What can be refused before a token is spent is refused here.
    let mut redemption = None;
    let (name, mut bundle) = match token {
        Token::AccessToken(access_token) => {
            own.refuse_own_ca(&access_token.spec.ca, from)?;
            let name = request
                .name
                .clone()
                .unwrap_or_else(|| access_token.metadata.name.clone());
            refuse_taken_name(&resources, &name)?;
            let kept = Redemption::of(&site_dir, &access_token.spec.url);
            let redeem = async {
                Ok(redeem_access_token(&access_token, &name, resources.site_name()).await?)
            };
            let bundle = kept.bundle("token", redeem, progress).await?;
            redemption = Some(kept);
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
            let kept = Redemption::of(&site_dir, &claim.url);
            let redeem = async { Ok(redeem_v1_claim(&claim, &own.id).await?.to_link_bundle()) };
            let bundle = kept.bundle("claim", redeem, progress).await?;
            redemption = Some(kept);
            (name.clone(), bundle.renamed(&name))
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
    let entities = check_bundle(&resources, &own, &bundle, from)?;
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

    let mut all = resources.to_resources();
    all.push(Resource::Secret(bundle.secret.clone()));
    all.extend(bundle.links.iter().cloned().map(Resource::Link));
    let target = SiteResources::new(&request.namespace, all)?;
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: false,
        timeout: request.timeout,
    };
    let applied = session
        .apply(target, &format!("link create {name}"), options, progress)
        .await?;
    if let Some(kept) = redemption {
        kept.forget()?;
    }
    let applied = applied_by(&applied.router, &mut notes);
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

/// How a link change reached the router, for the outcome; a restart is explained in `notes`.
fn applied_by(router: &RouterChange, notes: &mut Vec<String>) -> Applied {
    match router {
        RouterChange::NotRunning | RouterChange::Removed => Applied::RouterNotRunning,
        RouterChange::Restarted { .. } | RouterChange::Started => {
            notes.push(router.describe());
            Applied::Restarted
        }
        RouterChange::Live { .. } => Applied::Live,
    }
}

/// What a redemption returned, kept in `runtime/redeemed/` until its link is applied.
pub(crate) struct Redemption {
    url: String,
    path: std::path::PathBuf,
}

impl Redemption {
    /// The redemption of the grant at `url` (its last path segment is the grant's uid).
    pub(crate) fn of(site_dir: &SiteDir, url: &str) -> Redemption {
        let key: String = url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Redemption {
            url: url.to_string(),
            path: site_dir
                .runtime()
                .join("redeemed")
                .join(format!("{key}.yaml")),
        }
    }

    /// What the grant returned: kept from an earlier run of the same token, or `redeem`ed now
    /// and kept at once, before anything can still refuse the link.
    pub(crate) async fn bundle(
        &self,
        what: &str,
        redeem: impl std::future::Future<Output = Result<LinkBundle, Error>>,
        progress: &dyn Fn(&str),
    ) -> Result<LinkBundle, Error> {
        if let Some(bundle) = self.load() {
            progress(&format!(
                "using the link this {what} was already redeemed for"
            ));
            return Ok(bundle);
        }
        progress(&format!("redeeming the {what} at {}", self.url));
        let bundle = redeem.await?;
        self.keep(&bundle)?;
        Ok(bundle)
    }

    fn load(&self) -> Option<LinkBundle> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        match tokens::parse(&text, &self.path.display().to_string()) {
            Ok(Token::Links(bundle)) => Some(bundle),
            _ => None,
        }
    }

    fn keep(&self, bundle: &LinkBundle) -> Result<(), Error> {
        let mut text = String::new();
        for resource in bundle
            .links
            .iter()
            .cloned()
            .map(Resource::Link)
            .chain([Resource::Secret(bundle.secret.clone())])
        {
            text.push_str("---\n");
            text.push_str(&resource.to_yaml()?);
        }
        if let Some(dir) = self.path.parent() {
            files::create_dir(dir, files::PRIVATE_DIR)
                .map_err(Error::file("cannot create", dir))?;
        }
        files::write_atomic(&self.path, text.as_bytes(), files::SECRET)
            .map_err(Error::file("cannot write", &self.path))
            .map(drop)
    }

    pub(crate) fn forget(&self) -> Result<(), Error> {
        files::remove_if_present(&self.path)
            .map_err(Error::file("cannot remove", &self.path))
            .map(drop)
    }
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

/// `vansite link delete NAME`: the Link (and its Secret when no other Link uses it) leave the
/// site; the apply deletes the connector and sslProfile from the running router.
pub async fn delete(
    paths: &Paths,
    namespace: &str,
    name: &str,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<DeleteOutcome, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let resources = session.resources()?.clone();
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
    let target = SiteResources::new(namespace, kept)?;
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: false,
        timeout,
    };
    let applied = session
        .apply(target, &format!("link delete {name}"), options, progress)
        .await?;
    let mut notes = Vec::new();
    let applied = applied_by(&applied.router, &mut notes);
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
    pub role: LinkRole,
    pub cost: i64,
    pub connected: bool,
    /// connected, connecting, failed, not-on-router (the router has no connector for it), or
    /// unknown (the router did not answer).
    pub state: LinkState,
    /// The remote router's id (its AMQP container id), while connected.
    pub remote_router: Option<String>,
    /// RFC 3339: since when the link is up.
    pub since: Option<String>,
    /// The router's last connection error for this link, or why the state is unknown.
    pub last_error: Option<String>,
}

/// A link another site made to this one: an incoming router connection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingLink {
    /// The name this site gave the link when it issued its credentials (`link revoke NAME`);
    /// None for credentials from before each link had its own CA.
    pub name: Option<String>,
    /// The linking router's id (its AMQP container id).
    pub remote_router: String,
    /// The site of that router, as the network's records name it (`link status` asks them;
    /// `status` does not wait for them).
    pub from_site: Option<String>,
    pub role: LinkRole,
    /// `host:port` the link comes from.
    pub from: String,
    /// RFC 3339: since when the link is up.
    pub since: Option<String>,
}

/// `link status`: the links this site made, and those other sites made to it (empty when the
/// router does not answer).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinksReport {
    pub outgoing: Vec<LinkStatus>,
    pub incoming: Vec<IncomingLink>,
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
    pub connectors: Vec<ConnectorView>,
    pub connections: Vec<ConnectionView>,
    pub nodes: Vec<NodeView>,
}

impl RouterView {
    /// QUERYs `connector`, `connection` and `router.node`.
    pub async fn query(client: &mut ManagementClient) -> Result<RouterView, ManagementError> {
        Ok(RouterView {
            connectors: client
                .query_views("connector", ConnectorView::from_row)
                .await?,
            connections: client
                .query_views("connection", ConnectionView::from_row)
                .await?,
            nodes: client
                .query_views("router.node", NodeView::from_row)
                .await?,
        })
    }

    /// The links other routers made to this one, one per linking router.
    pub fn incoming_links(&self) -> Vec<IncomingLink> {
        let now = SystemTime::now();
        let mut links: Vec<IncomingLink> = self
            .connections
            .iter()
            .filter(|c| c.dir == "in" && c.opened)
            .filter_map(|c| {
                Some(IncomingLink {
                    name: c.issued_link().map(String::from),
                    remote_router: c.container.clone(),
                    from_site: None,
                    role: LinkRole::of_connection(&c.role)?,
                    from: c.host.clone(),
                    since: c
                        .uptime_seconds
                        .map(|up| rfc3339(now - Duration::from_secs(up))),
                })
            })
            .collect();
        links.sort_by(|a, b| a.remote_router.cmp(&b.remote_router));
        links
    }

    pub fn network(&self) -> Vec<NetworkRouter> {
        let mut routers: Vec<NetworkRouter> = self
            .nodes
            .iter()
            .map(|node| NetworkRouter {
                id: node.id.clone(),
                cost: node.cost,
                next_hop: node.next_hop.clone(),
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
    let role = resources.router_mode().link_role();
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
                state: LinkState::Unknown,
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
                status.state = LinkState::NotOnRouter;
                status.last_error = Some(format!("the Link has no '{role}' endpoint"));
                return status;
            }
            let connector = view
                .connectors
                .iter()
                .find(|c| c.name == link.metadata.name);
            let Some(connector) = connector else {
                status.state = LinkState::NotOnRouter;
                status.last_error = Some(
                    "the router has no connector for this link: run `vansite init` to restart it with the site's configuration".into(),
                );
                return status;
            };
            let connection = view.connections.iter().find(|c| {
                c.dir == "out" && c.role == role.as_str() && c.host == endpoint && c.opened
            });
            status.last_error = connector.last_error().map(String::from);
            match connection {
                Some(connection) => {
                    status.connected = true;
                    status.state = LinkState::Connected;
                    status.remote_router =
                        Some(connection.container.clone()).filter(|c| !c.is_empty());
                    status.since = connection
                        .uptime_seconds
                        .map(|up| rfc3339(now - Duration::from_secs(up)));
                }
                None => {
                    status.state = match connector.connection_status.as_str() {
                        "FAILED" => LinkState::Failed,
                        _ => LinkState::Connecting,
                    };
                }
            }
            status
        })
        .collect()
}

/// `vansite link status [NAME]`: NAME is an outgoing Link's name or a linking router's id.
pub async fn status(
    paths: &Paths,
    namespace: &str,
    name: Option<&str>,
) -> Result<LinksReport, Error> {
    let site_dir = paths.site(namespace);
    let resources = paths.load_site(&site_dir.namespace)?;
    let view = with_site_management(&site_dir, &resources, MANAGEMENT_TIMEOUT, async |client| {
        RouterView::query(client).await
    })
    .await;
    let why = view
        .as_ref()
        .err()
        .map(|e| format!("the router did not answer: {e}"));
    let outgoing = link_statuses(
        &resources,
        view.as_ref()
            .map_err(|_| why.as_deref().unwrap_or_default()),
    );
    let incoming = view
        .as_ref()
        .map(RouterView::incoming_links)
        .unwrap_or_default();
    let mut report = LinksReport {
        outgoing: outgoing
            .into_iter()
            .filter(|s| name.is_none_or(|n| s.name == n))
            .collect(),
        incoming: incoming
            .into_iter()
            .filter(|l| name.is_none_or(|n| l.remote_router == n))
            .collect(),
    };
    if !report.incoming.is_empty() {
        name_linking_sites(&site_dir, &resources, &mut report.incoming).await;
    }
    if let Some(name) = name {
        if report.outgoing.is_empty() && report.incoming.is_empty() {
            find_link(&resources, name)?;
        }
    }
    Ok(report)
}

/// Names the site of each incoming link's router from the network's vanflow records; a link
/// whose site does not answer in time keeps only its router id.
async fn name_linking_sites(
    site_dir: &SiteDir,
    resources: &SiteResources,
    links: &mut [IncomingLink],
) {
    const LIMIT: Duration = Duration::from_secs(5);
    let network = match site_router_endpoint(site_dir, resources) {
        Ok(endpoint) => collector::snapshot(&endpoint, LIMIT).await,
        Err(e) => Err(e.into()),
    };
    let network = match network {
        Ok(network) => NetworkStatus::of(&network, Timestamp::now()),
        Err(e) => {
            tracing::debug!("cannot name the sites of incoming links: {e}");
            return;
        }
    };
    for link in links {
        link.from_site = network
            .site_of_router(&link.remote_router)
            .map(str::to_string);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(dir: &str, role: &str, container: &str) -> ConnectionView {
        ConnectionView {
            dir: dir.into(),
            role: role.into(),
            host: "192.0.2.9:40000".into(),
            container: container.into(),
            opened: true,
            uptime_seconds: Some(5),
            user: format!("OU={container}-link,CN=client"),
        }
    }

    #[test]
    fn incoming_links_are_the_links_other_routers_made_one_each() {
        let view = RouterView {
            connections: vec![
                connection("in", "inter-router", "east-1"),
                connection("in", "inter-router-data", "east-1"),
                connection("in", "edge", "laptop-2"),
                connection("in", "normal", ""),
                connection("out", "inter-router", "west-3"),
            ],
            ..RouterView::default()
        };
        let links = view.incoming_links();
        let seen: Vec<(&str, Option<&str>, LinkRole)> = links
            .iter()
            .map(|l| (l.remote_router.as_str(), l.name.as_deref(), l.role))
            .collect();
        assert_eq!(
            seen,
            [
                ("east-1", Some("east-1-link"), LinkRole::InterRouter),
                ("laptop-2", Some("laptop-2-link"), LinkRole::Edge)
            ]
        );
        assert!(links[0].since.as_deref().is_some_and(|s| s.ends_with('Z')));
    }
}

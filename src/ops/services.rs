//! Services: `vansite connector …` (a local service offered to the network) and `vansite
//! listener …` (a network service reachable here), stored as Skupper Connector / Listener
//! resources.
//!
//! Each command edits the site's resources and hands them to the one apply
//! (`ops::apply`): forwarders, `skrouterd.json` and the running router's tcp entities follow,
//! live, and the resources are saved last.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::model::{
    check_name, Connector, ConnectorSpec, Listener, ListenerSpec, ObjectMeta, PeerState, Resource,
    SiteResources, ROUTER_PORT_ANNOTATION,
};
use crate::ops::apply::{local_port, ApplyOptions, RouterChange, SiteSession};
use crate::plan::bind_address;
use crate::platform::systemd::{ActiveState, UserManager};
use crate::render::forwarder_units::forwarder_unit_name;
use crate::render::router_config::{tcp_entities, LOOPBACK};
use crate::render::router_unit::router_unit_name;
use crate::router::management::{ClientTls, ManagementClient};
use crate::router::views::TcpEndpointView;

use crate::store::{Paths, SiteDir};

/// A service change never needs the router restarted; when it is not running it stays so.
const SERVICE_APPLY: ApplyOptions = ApplyOptions {
    start_router: false,
    timeout: Duration::from_secs(120),
};
const UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
/// Listeners bind every interface unless told otherwise, as Skupper's do.
const DEFAULT_LISTENER_HOST: &str = "0.0.0.0";
const DEFAULT_CONNECTOR_HOST: &str = "localhost";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Listener,
    Connector,
}

impl ServiceKind {
    fn word(self) -> &'static str {
        match self {
            ServiceKind::Listener => "listener",
            ServiceKind::Connector => "connector",
        }
    }
}

/// `listener create` / `connector create`; `None` takes the default.
#[derive(Debug, Clone)]
pub struct ServiceRequest {
    pub kind: ServiceKind,
    pub name: String,
    pub port: u16,
    pub routing_key: Option<String>,
    pub host: Option<String>,
}

/// One listener or connector as its resource has it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub kind: ServiceKind,
    pub name: String,
    pub routing_key: String,
    pub host: String,
    pub port: u16,
    /// Listeners: the router's loopback port behind the forwarder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_port: Option<u16>,
}

/// A service and how it runs right now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(flatten)]
    pub info: ServiceInfo,
    /// Listeners: the forwarder's units (`<unit>.socket`, `<unit>.service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarder_state: Option<String>,
    /// Whether the running router has the service's tcpListener / tcpConnector.
    pub in_router: Option<bool>,
    /// Listeners: `reachable` (a connector of the routing key is reachable in the network),
    /// `pending` (none yet), or `unknown` (the router does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerState>,
    /// Connections open now, when the router counts them.
    pub active_connections: Option<u64>,
}

/// What a create or delete did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChange {
    pub info: ServiceInfo,
    /// Whether the running router was changed live (false: it is not running; the change
    /// applies when it starts).
    pub live: bool,
    /// How the change reached the router.
    pub router: RouterChange,
    /// Delete: connections that were open and have been ended.
    pub ended_connections: Option<u64>,
}

/// `listener list` / `connector list`: from the resources alone.
pub fn list(paths: &Paths, namespace: &str, kind: ServiceKind) -> Result<Vec<ServiceInfo>, Error> {
    let resources = paths.load_site(namespace)?;
    Ok(infos(&resources)
        .into_iter()
        .filter(|info| info.kind == kind)
        .collect())
}

/// `listener status` / `connector status`: `name` or all of the kind.
pub async fn status(
    paths: &Paths,
    namespace: &str,
    kind: ServiceKind,
    name: Option<&str>,
) -> Result<Vec<ServiceStatus>, Error> {
    let resources = paths.load_site(namespace)?;
    if let Some(name) = name {
        find(&resources, kind, name)?;
    }
    let manager = UserManager::connect().await?;
    let (all, _) = services_status(&manager, &paths.site(namespace), &resources).await?;
    Ok(all
        .into_iter()
        .filter(|s| s.info.kind == kind && name.is_none_or(|n| s.info.name == n))
        .collect())
}

pub async fn create(
    paths: &Paths,
    namespace: &str,
    request: ServiceRequest,
    progress: &dyn Fn(&str),
) -> Result<ServiceChange, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let current = session.resources()?.clone();
    let current = &current;
    check_name(&request.name)
        .map_err(|problem| Error::Usage(format!("{} name: {problem}", request.kind.word())))?;
    if let Ok(existing) = find(current, request.kind, &request.name) {
        return Err(Error::Usage(format!(
            "a {kind} named '{name}' already exists in namespace '{namespace}' (routing key '{key}', \
             {host}:{port}); delete it first with `vansite -n {namespace} {kind} delete {name}`, or \
             choose another name",
            kind = request.kind.word(),
            name = request.name,
            key = existing.routing_key,
            host = existing.host,
            port = existing.port,
        )));
    }
    let routing_key = request
        .routing_key
        .clone()
        .unwrap_or_else(|| request.name.clone());
    if routing_key.is_empty() || routing_key.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "routing key '{routing_key}': give a non-empty key without whitespace"
        )));
    }
    if request.port == 0 {
        return Err(Error::Usage("port 0: give a port from 1 to 65535".into()));
    }
    let resource = match request.kind {
        ServiceKind::Listener => {
            let host = request
                .host
                .clone()
                .unwrap_or_else(|| DEFAULT_LISTENER_HOST.into());
            let bind = bind_address(&host, request.port)?;
            check_port_free(paths, bind)?;
            let mut metadata = ObjectMeta::named(&request.name);
            metadata.annotations.insert(
                ROUTER_PORT_ANNOTATION.into(),
                router_port(paths)?.to_string(),
            );
            Resource::Listener(Listener {
                metadata,
                spec: ListenerSpec {
                    routing_key,
                    host,
                    port: request.port,
                    ..ListenerSpec::default()
                },
            })
        }
        ServiceKind::Connector => Resource::Connector(Connector {
            metadata: ObjectMeta::named(&request.name),
            spec: ConnectorSpec {
                routing_key,
                host: request
                    .host
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONNECTOR_HOST.into()),
                port: request.port,
                ..ConnectorSpec::default()
            },
        }),
    };
    let mut objects = current.to_resources();
    objects.push(resource);
    let target = SiteResources::new(namespace, objects)?;
    progress(&format!("adding {} {}", request.kind.word(), request.name));
    let command = format!("{} create {}", request.kind.word(), request.name);
    let applied = session
        .apply(target, &command, SERVICE_APPLY, progress)
        .await?;
    Ok(ServiceChange {
        info: find(session.resources()?, request.kind, &request.name)?,
        live: applied.router.is_live(),
        router: applied.router,
        ended_connections: None,
    })
}

/// `listener update` / `connector update`: what is given changes, the rest stays.
#[derive(Debug, Clone)]
pub struct ServiceUpdate {
    pub kind: ServiceKind,
    pub name: String,
    pub port: Option<u16>,
    pub routing_key: Option<String>,
    pub host: Option<String>,
}

/// Changes a listener's or connector's port, host or routing key; the running router takes
/// the change live, and a listener's forwarder moves to a new port.
pub async fn update(
    paths: &Paths,
    namespace: &str,
    request: ServiceUpdate,
    progress: &dyn Fn(&str),
) -> Result<ServiceChange, Error> {
    if request.port == Some(0) {
        return Err(Error::Usage("port 0: give a port from 1 to 65535".into()));
    }
    if let Some(key) = &request.routing_key {
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(Error::Usage(format!(
                "routing key '{key}': give a non-empty key without whitespace"
            )));
        }
    }
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let mut target = session.resources()?.clone();
    find(&target, request.kind, &request.name)?;
    match request.kind {
        ServiceKind::Listener => {
            let listener = target
                .listeners
                .iter_mut()
                .find(|l| l.metadata.name == request.name)
                .expect("found above");
            let spec = &mut listener.spec;
            let moved = request.port.is_some_and(|p| p != spec.port)
                || request.host.as_ref().is_some_and(|h| *h != spec.host);
            spec.port = request.port.unwrap_or(spec.port);
            spec.host = request.host.clone().unwrap_or(spec.host.clone());
            spec.routing_key = request
                .routing_key
                .clone()
                .unwrap_or(spec.routing_key.clone());
            if moved {
                check_port_free(paths, bind_address(&spec.host, spec.port)?)?;
            }
        }
        ServiceKind::Connector => {
            let connector = target
                .connectors
                .iter_mut()
                .find(|c| c.metadata.name == request.name)
                .expect("found above");
            let spec = &mut connector.spec;
            spec.port = request.port.unwrap_or(spec.port);
            spec.host = request.host.clone().unwrap_or(spec.host.clone());
            spec.routing_key = request
                .routing_key
                .clone()
                .unwrap_or(spec.routing_key.clone());
        }
    }
    let target = SiteResources::new(namespace, target.to_resources())?;
    progress(&format!(
        "updating {} {}",
        request.kind.word(),
        request.name
    ));
    let command = format!("{} update {}", request.kind.word(), request.name);
    let applied = session
        .apply(target, &command, SERVICE_APPLY, progress)
        .await?;
    Ok(ServiceChange {
        info: find(session.resources()?, request.kind, &request.name)?,
        live: applied.router.is_live(),
        router: applied.router,
        ended_connections: None,
    })
}

pub async fn delete(
    paths: &Paths,
    namespace: &str,
    kind: ServiceKind,
    name: &str,
    progress: &dyn Fn(&str),
) -> Result<ServiceChange, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let current = session.resources()?.clone();
    let info = find(&current, kind, name)?;
    let (statuses, _) = services_status(&session.manager, &session.site_dir, &current).await?;
    let ended_connections = statuses
        .iter()
        .find(|s| s.info.kind == kind && s.info.name == name)
        .and_then(|s| s.active_connections);
    let mut target = current;
    match kind {
        ServiceKind::Listener => target.listeners.retain(|l| l.metadata.name != name),
        ServiceKind::Connector => target.connectors.retain(|c| c.metadata.name != name),
    }
    progress(&format!("removing {} {name}", kind.word()));
    let command = format!("{} delete {name}", kind.word());
    let applied = session
        .apply(target, &command, SERVICE_APPLY, progress)
        .await?;
    Ok(ServiceChange {
        info,
        live: applied.router.is_live(),
        router: applied.router,
        ended_connections,
    })
}

/// Every service of the site with its units' and the router's view; and the problems found.
pub async fn services_status(
    manager: &UserManager,
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Result<(Vec<ServiceStatus>, Vec<String>), Error> {
    let router = router_entities(manager, site_dir, resources).await;
    let mut problems = Vec::new();
    let mut all = Vec::new();
    for info in infos(resources) {
        let entity = tcp_entities(resources)
            .into_iter()
            .find(|e| e.name() == entity_name(&info))
            .expect("every service renders one entity");
        let row = router
            .as_ref()
            .and_then(|rows| rows.get(&(entity.entity_type, entity.name().to_string())));
        let in_router = router.as_ref().map(|_| row.is_some());
        if in_router == Some(false) {
            problems.push(format!(
                "{} {} is not in the running router; run any `vansite {} create|delete` to \
                 reapply, or restart the router",
                info.kind.word(),
                info.name,
                info.kind.word()
            ));
        }
        let active_connections = row.and_then(TcpEndpointView::open_connections);
        let mut status = ServiceStatus {
            info,
            unit: None,
            socket_state: None,
            forwarder_state: None,
            in_router,
            peer: None,
            active_connections,
        };
        if status.info.kind == ServiceKind::Listener {
            let unit = forwarder_unit_name(&site_dir.namespace, &status.info.name);
            let socket = manager.unit_state(&format!("{unit}.socket")).await?;
            let service = manager.unit_state(&format!("{unit}.service")).await?;
            if socket.active_state != ActiveState::Active {
                problems.push(format!(
                    "the port of listener {} ({unit}.socket) is {}",
                    status.info.name,
                    state_text(&socket.active_state, &socket.sub_state)
                ));
            }
            status.socket_state = Some(state_text(&socket.active_state, &socket.sub_state));
            status.forwarder_state = Some(state_text(&service.active_state, &service.sub_state));
            status.unit = Some(unit);
            status.peer = Some(match row.and_then(|r| r.oper_status.as_deref()) {
                Some("up") => PeerState::Reachable,
                Some(_) => PeerState::Pending,
                None => PeerState::Unknown,
            });
        }
        all.push(status);
    }
    Ok((all, problems))
}

fn state_text(state: &ActiveState, sub_state: &str) -> String {
    format!("{state}/{sub_state}")
}

/// The running router's tcpConnectors and tcpListeners by (type, name); None when it is not
/// running or does not answer.
async fn router_entities(
    manager: &UserManager,
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Option<BTreeMap<(&'static str, String), TcpEndpointView>> {
    let unit = format!("{}.service", router_unit_name(&site_dir.namespace));
    let state = manager.unit_state(&unit).await.ok()?;
    if state.active_state != ActiveState::Active {
        return None;
    }
    let tls = ClientTls::from_dir(site_dir.certs().join("skupper-local-client")).ok()?;
    let port = local_port(resources);
    let mut client = ManagementClient::connect(LOOPBACK, port, &tls, Duration::from_secs(3))
        .await
        .ok()?;
    let mut rows = BTreeMap::new();
    for entity_type in ["tcpConnector", "tcpListener"] {
        for row in client.query(entity_type, &[]).await.ok()? {
            let view = TcpEndpointView::from_row(&row);
            rows.insert((entity_type, view.name.clone()), view);
        }
    }
    let _ = client.close().await;
    Some(rows)
}

fn entity_name(info: &ServiceInfo) -> String {
    match info.kind {
        ServiceKind::Listener => format!("listener/{}", info.name),
        ServiceKind::Connector => format!("connector/{}@{}", info.name, info.host),
    }
}

fn infos(resources: &SiteResources) -> Vec<ServiceInfo> {
    let listeners = resources.listeners.iter().map(|l| ServiceInfo {
        kind: ServiceKind::Listener,
        name: l.metadata.name.clone(),
        routing_key: l.spec.routing_key.clone(),
        host: l.spec.host.clone(),
        port: l.spec.port,
        router_port: l.router_port(),
    });
    let connectors = resources.connectors.iter().map(|c| ServiceInfo {
        kind: ServiceKind::Connector,
        name: c.metadata.name.clone(),
        routing_key: c.spec.routing_key.clone(),
        host: c.spec.host.clone(),
        port: c.spec.port,
        router_port: None,
    });
    listeners.chain(connectors).collect()
}

fn find(resources: &SiteResources, kind: ServiceKind, name: &str) -> Result<ServiceInfo, Error> {
    infos(resources)
        .into_iter()
        .find(|i| i.kind == kind && i.name == name)
        .ok_or_else(|| {
            Error::Usage(format!(
                "no {kind} named '{name}' in namespace '{namespace}'; `vansite -n {namespace} {kind} list` shows them",
                kind = kind.word(),
                namespace = resources.namespace
            ))
        })
}

/// Refuses a port the user may not bind, or one that something else holds now or that
/// another listener of this user's sites has recorded.
pub(crate) fn check_port_free(paths: &Paths, bind: SocketAddr) -> Result<(), Error> {
    let port = bind.port();
    let unprivileged_start: u16 = std::fs::read_to_string(UNPRIVILEGED_PORT_START)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1024);
    if port < unprivileged_start && !rustix::process::getuid().is_root() {
        return Err(Error::Usage(format!(
            "port {port} is privileged on this host (below net.ipv4.ip_unprivileged_port_start = \
             {unprivileged_start}); choose a port ≥ {unprivileged_start}, or have an administrator \
             lower that setting"
        )));
    }
    for ns in paths.namespaces() {
        let Ok(Some(other)) = paths.site(&ns).load_resources() else {
            continue;
        };
        if let Some(listener) = other.listeners.iter().find(|l| l.spec.port == port) {
            return Err(Error::Usage(format!(
                "port {port} is already the port of listener '{}' in namespace '{ns}'; choose \
                 another port",
                listener.metadata.name
            )));
        }
    }
    std::net::TcpListener::bind(bind).map(drop).map_err(|e| {
        Error::Usage(format!(
            "cannot use port {port} on {}: {e} (another program holds it? `ss -ltnp` shows which); \
             choose another port",
            bind.ip()
        ))
    })
}

/// A free loopback port for a router tcpListener, not recorded by any listener of this user.
pub(crate) fn router_port(paths: &Paths) -> Result<u16, Error> {
    let recorded: Vec<u16> = paths
        .namespaces()
        .into_iter()
        .filter_map(|ns| paths.site(&ns).load_resources().ok().flatten())
        .flat_map(|set| set.listeners.into_iter())
        .filter_map(|l| l.router_port())
        .collect();
    for _ in 0..20 {
        let port = std::net::TcpListener::bind((LOOPBACK, 0))
            .and_then(|l| l.local_addr())
            .map_err(Error::file("cannot find a free port on", LOOPBACK))?
            .port();
        if !recorded.contains(&port) {
            return Ok(port);
        }
    }
    Err(Error::Usage(
        "no free loopback port for the router's tcpListener".into(),
    ))
}

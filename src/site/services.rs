//! Services: `vansite connector …` (a local service offered to the network) and `vansite
//! listener …` (a network service reachable here), stored as Skupper Connector / Listener
//! resources.
//!
//! Every change is applied as one reconciliation of the whole site to its new resources, under
//! the site lock: forwarders no longer wanted are stopped and removed, `skrouterd.json` is
//! re-rendered, the running router's tcpConnectors/tcpListeners are brought to the rendered
//! ones through management (no restart), the forwarders wanted are written and started, and
//! the resources are saved last (the commit point). If a step fails, the site is reconciled
//! back to its previous resources, so a change is applied whole or not at all; a killed
//! command is repaired by the next one, which reconciles everything again.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as JsonValue;
use tokio::time::Instant;

use crate::error::Error;
use crate::forward::bundle;
use crate::forward::units::{
    forwarder_unit_name, forwarder_units, ForwarderSpec, LISTENER_LABEL, NAMESPACE_LABEL,
};
use crate::quadlet::router::router_unit_name;
use crate::quadlet::version::detect_generator_version;
use crate::resources::{
    check_name, Connector, ConnectorSpec, Listener, ListenerSpec, ObjectMeta, Resource,
    SiteResources, ROUTER_PORT_ANNOTATION,
};
use crate::router::config::{render, tcp_entities, LOOPBACK};
use crate::router::live::{sync_tcp, LiveChanges};
use crate::router::management::{ClientTls, ManagementClient, ManagementError};
use crate::systemd::{ActiveState, JobResult, LoadState, UserManager};

use super::init::{local_port, render_context, ROUTER_IMAGE_ANNOTATION};
use super::{files, Paths, SiteDir, SiteLock};

/// How long a forwarder's client waits for the router (restart, no reachable connector).
pub const FORWARDER_WAIT: Duration = Duration::from_secs(30);
const UNIT_TIMEOUT: Duration = Duration::from_secs(90);
/// A router that is (re)starting gets this long to answer management.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(30);
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
    pub peer: Option<&'static str>,
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
    let session = Session::open(paths, namespace, progress).await?;
    let current = &session.resources;
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
    let live = session.apply(&target, progress).await?;
    Ok(ServiceChange {
        info: find(&target, request.kind, &request.name)?,
        live,
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
    let session = Session::open(paths, namespace, progress).await?;
    let info = find(&session.resources, kind, name)?;
    let (statuses, _) =
        services_status(&session.manager, &session.site_dir, &session.resources).await?;
    let ended_connections = statuses
        .iter()
        .find(|s| s.info.kind == kind && s.info.name == name)
        .and_then(|s| s.active_connections);
    let mut target = session.resources.clone();
    match kind {
        ServiceKind::Listener => target.listeners.retain(|l| l.metadata.name != name),
        ServiceKind::Connector => target.connectors.retain(|c| c.metadata.name != name),
    }
    progress(&format!("removing {} {name}", kind.word()));
    let live = session.apply(&target, progress).await?;
    Ok(ServiceChange {
        info,
        live,
        ended_connections,
    })
}

/// Stops and removes every forwarder of the namespace (for `vansite delete`); returns what went.
pub async fn remove_all_forwarders(
    paths: &Paths,
    namespace: &str,
    manager: &UserManager,
) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for listener in installed_forwarders(paths, namespace) {
        removed.extend(remove_forwarder(paths, namespace, manager, &listener).await?);
    }
    if !removed.is_empty() {
        manager.reload().await?;
    }
    Ok(removed)
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
        let counter = |key: &str| row.and_then(|r| r.get(key)).and_then(JsonValue::as_u64);
        let active_connections = counter("connectionsOpened")
            .zip(counter("connectionsClosed"))
            .map(|(opened, closed)| opened.saturating_sub(closed));
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
            status.peer = Some(
                match row
                    .and_then(|r| r.get("operStatus"))
                    .and_then(JsonValue::as_str)
                {
                    Some("up") => "reachable",
                    Some(_) => "pending",
                    None => "unknown",
                },
            );
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
) -> Option<BTreeMap<(&'static str, String), serde_json::Map<String, JsonValue>>> {
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
            if let Some(name) = row.get("name").and_then(JsonValue::as_str) {
                rows.insert((entity_type, name.to_string()), row.clone());
            }
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

/// The socket address systemd binds for a listener: an IP literal (systemd resolves no names).
fn bind_address(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let ip: IpAddr = host.parse().map_err(|_| {
        Error::Usage(format!(
            "listener host '{host}' is not an IP address: give the address to listen on, e.g. \
             0.0.0.0 (every interface), 127.0.0.1 (this host only) or ::"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Refuses a port the user may not bind, or one that something else holds now or that
/// another listener of this user's sites has recorded.
fn check_port_free(paths: &Paths, bind: SocketAddr) -> Result<(), Error> {
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
fn router_port(paths: &Paths) -> Result<u16, Error> {
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

/// The listener names that have forwarder units installed for `namespace`.
fn installed_forwarders(paths: &Paths, namespace: &str) -> Vec<String> {
    let namespace_line = format!("Label={NAMESPACE_LABEL}={namespace}");
    let listener_prefix = format!("Label={LISTENER_LABEL}=");
    let mut names: Vec<String> = std::fs::read_dir(paths.quadlet_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".container"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.lines().any(|l| l == namespace_line))
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&listener_prefix).map(str::to_string))
        })
        .collect();
    names.sort();
    names
}

/// Stops a forwarder (its connections end with a FIN) and removes its files; the caller reloads.
async fn remove_forwarder(
    paths: &Paths,
    namespace: &str,
    manager: &UserManager,
    listener: &str,
) -> Result<Vec<String>, Error> {
    let unit = forwarder_unit_name(namespace, listener);
    let mut removed = Vec::new();
    for suffix in ["service", "socket"] {
        let name = format!("{unit}.{suffix}");
        let state = manager.unit_state(&name).await?;
        if state.load_state == LoadState::Loaded && state.active_state != ActiveState::Inactive {
            manager.stop(&name, UNIT_TIMEOUT).await?;
            removed.push(format!("unit {name} (stopped)"));
        }
    }
    let site_dir = paths.site(namespace);
    for path in [
        paths.quadlet_dir().join(format!("{unit}.container")),
        paths.systemd_user_dir().join(format!("{unit}.socket")),
        site_dir.forwarder_log(listener),
    ] {
        if files::remove_if_present(&path).map_err(Error::file("cannot remove", &path))? {
            removed.push(path.display().to_string());
        }
    }
    Ok(removed)
}

/// One service command's hold on the site: the lock, the bus, the current resources.
struct Session {
    paths: Paths,
    site_dir: SiteDir,
    manager: UserManager,
    resources: SiteResources,
    _lock: SiteLock,
}

impl Session {
    async fn open(paths: &Paths, namespace: &str, progress: &dyn Fn(&str)) -> Result<Self, Error> {
        let manager = UserManager::connect().await?;
        let lock_file = paths.lock_file(namespace);
        let lock = SiteLock::acquire(&lock_file, || {
            progress(&format!(
                "waiting for another vansite command on namespace '{namespace}'"
            ))
        })
        .map_err(Error::file("cannot lock", &lock_file))?;
        Ok(Session {
            paths: paths.clone(),
            site_dir: paths.site(namespace),
            manager,
            resources: paths.load_site(namespace)?,
            _lock: lock,
        })
    }

    /// Brings the site to `target`; on failure back to the current resources. Returns whether
    /// the running router was changed live.
    async fn apply(&self, target: &SiteResources, progress: &dyn Fn(&str)) -> Result<bool, Error> {
        match self.reconcile(target, progress).await {
            Ok(live) => Ok(live),
            Err(error) => {
                progress("undoing the change");
                if let Err(undo) = self.reconcile(&self.resources, progress).await {
                    tracing::warn!("undoing the change failed too: {undo}");
                }
                Err(error)
            }
        }
    }

    async fn reconcile(
        &self,
        target: &SiteResources,
        progress: &dyn Fn(&str),
    ) -> Result<bool, Error> {
        let namespace = &self.site_dir.namespace;
        let podman = detect_generator_version()?;
        let wanted: Vec<&str> = target
            .listeners
            .iter()
            .map(|l| l.metadata.name.as_str())
            .collect();
        let mut reload = false;
        for listener in installed_forwarders(&self.paths, namespace) {
            if !wanted.contains(&listener.as_str()) {
                progress(&format!("stopping the forwarder of listener {listener}"));
                reload |= !remove_forwarder(&self.paths, namespace, &self.manager, &listener)
                    .await?
                    .is_empty();
            }
        }

        let config = self.site_dir.router_config();
        files::write_atomic(
            &config,
            render(target, &render_context(target)).as_bytes(),
            files::PUBLIC,
        )
        .map_err(Error::file("cannot write", &config))?;
        let live = self.sync_router(target).await?;
        if let Some(changes) = &live {
            if !changes.is_empty() {
                progress(&format!(
                    "router changed live: created {:?}, deleted {:?}",
                    changes.created, changes.deleted
                ));
            }
        }

        let mut to_start = Vec::new();
        if !target.listeners.is_empty() {
            let bundle_dir = self.site_dir.forwarder_bundle();
            let command = bundle::prepare(&bundle_dir)
                .map_err(Error::file("cannot prepare the forwarder in", &bundle_dir))?;
            for dir in [self.paths.quadlet_dir(), self.paths.systemd_user_dir()] {
                files::create_dir(&dir, 0o755).map_err(Error::file("cannot create", &dir))?;
            }
            for listener in &target.listeners {
                let spec = self.forwarder_spec(target, listener, &command)?;
                let (socket, container) = forwarder_units(&spec);
                let socket_path = self.paths.systemd_user_dir().join(socket.file_name());
                let container_path = self.paths.quadlet_dir().join(container.file_name());
                let mut changed =
                    files::write_atomic(&socket_path, socket.render()?.as_bytes(), files::PUBLIC)
                        .map_err(Error::file("cannot write", &socket_path))?;
                changed |= files::write_atomic(
                    &container_path,
                    container.render(podman)?.as_bytes(),
                    files::PUBLIC,
                )
                .map_err(Error::file("cannot write", &container_path))?;
                reload |= changed;
                to_start.push((container.name.clone(), changed));
            }
        }
        if reload {
            self.manager.reload().await?;
        }
        for (unit, changed) in to_start {
            self.start_forwarder(&unit, changed).await?;
        }
        self.site_dir.save_resources(target)?;
        Ok(live.is_some())
    }

    fn forwarder_spec(
        &self,
        target: &SiteResources,
        listener: &Listener,
        command: &[String],
    ) -> Result<ForwarderSpec, Error> {
        let name = &listener.metadata.name;
        let router_port = listener.router_port().ok_or_else(|| {
            Error::Usage(format!(
                "listener {name} has no {ROUTER_PORT_ANNOTATION} annotation (was it written by \
                 hand?); delete it and create it with `vansite listener create`"
            ))
        })?;
        Ok(ForwarderSpec {
            namespace: self.site_dir.namespace.clone(),
            listener: name.clone(),
            bind: bind_address(&listener.spec.host, listener.spec.port)?,
            router: SocketAddr::new(LOOPBACK.parse().expect("an IP"), router_port),
            wait: FORWARDER_WAIT,
            image: target
                .site
                .metadata
                .annotations
                .get(ROUTER_IMAGE_ANNOTATION)
                .cloned()
                .unwrap_or_default(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            bundle_dir: self.site_dir.forwarder_bundle(),
            command: command.to_vec(),
            log_file: self.site_dir.forwarder_log(name),
        })
    }

    /// Starts the socket, then the forwarder (warm, so the first client waits for nothing);
    /// a forwarder whose unit changed is restarted.
    async fn start_forwarder(&self, unit: &str, changed: bool) -> Result<(), Error> {
        let socket = format!("{unit}.socket");
        let service = format!("{unit}.service");
        for (name, restart) in [(&socket, false), (&service, changed)] {
            let state = self.manager.unit_state(name).await?;
            let running = state.active_state == ActiveState::Active;
            let result = if running && !restart {
                continue;
            } else if running {
                self.manager.restart(name, UNIT_TIMEOUT).await?
            } else {
                self.manager.start(name, UNIT_TIMEOUT).await?
            };
            if result != JobResult::Done {
                let state = self.manager.unit_state(name).await?;
                return Err(Error::Usage(format!(
                    "{name} did not start ({state}, job {result:?}); see `systemctl --user status \
                     {name}` and {}",
                    self.site_dir.runtime().join("logs").display()
                )));
            }
        }
        Ok(())
    }

    /// The router's tcp entities made equal to `target`'s, when the router runs; None when it
    /// does not (its configuration file has the change for its next start).
    async fn sync_router(&self, target: &SiteResources) -> Result<Option<LiveChanges>, Error> {
        let unit = format!("{}.service", router_unit_name(&self.site_dir.namespace));
        let state = self.manager.unit_state(&unit).await?;
        if state.load_state != LoadState::Loaded
            || matches!(
                state.active_state,
                ActiveState::Inactive | ActiveState::Failed
            )
        {
            return Ok(None);
        }
        let tls = ClientTls::from_dir(self.site_dir.certs().join("skupper-local-client"))?;
        let port = local_port(target);
        let deadline = Instant::now() + MANAGEMENT_TIMEOUT;
        let mut client = loop {
            match ManagementClient::connect(LOOPBACK, port, &tls, Duration::from_secs(3)).await {
                Ok(client) => break client,
                Err(e) if Instant::now() >= deadline => return Err(e.into()),
                Err(
                    ManagementError::ConnectionRefused { .. } | ManagementError::Timeout { .. },
                ) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(e.into()),
            }
        };
        let changes = sync_tcp(&mut client, &tcp_entities(target)).await;
        let _ = client.close().await;
        Ok(Some(changes?))
    }
}

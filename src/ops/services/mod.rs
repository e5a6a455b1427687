//! Services: `vansite connector …` (a local service offered to the network) and `vansite
//! listener …` (a network service reachable here), stored as Skupper Connector / Listener
//! resources.
//!
//! Each command edits the site's resources and hands them to the one apply
//! (`ops::apply`): forwarders, `skrouterd.json` and the running router's tcp entities follow,
//! live, and the resources are saved last.

mod edit;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::model::{check_name, PeerState, SiteResources, StrategyKind};
use crate::ops::apply::{with_site_management, ApplyOptions, RouterChange, SiteSession};
use crate::plan::{bind_address, choose_router_port};
use crate::platform::systemd::{ActiveState, UserManager};
use crate::render::certs::listener_credentials_have_ca;
use crate::render::certs::LeafRenewal;
use crate::render::forwarder_units::forwarder_unit_name;
use crate::render::router_config::{
    connector_ssl_profile, listener_name, multi_key_listener_name, tcp_entities, LOOPBACK,
};
use crate::render::router_unit::router_unit_name;
use crate::router::management::{ManagementClient, ManagementError};
use crate::router::views::{AddressView, TcpEndpointKind, TcpEndpointView};
use crate::store::{Paths, SiteDir};

use edit::{edit_service, remove_service, NewService};
pub use edit::{ServiceSettings, TlsMaterial, TlsSetting};

/// A service change never needs the router restarted; when it is not running it stays so.
const SERVICE_APPLY: ApplyOptions = ApplyOptions {
    renewal: LeafRenewal::WhenDue,
    start_router: false,
    timeout: Duration::from_secs(120),
};
const UNPRIVILEGED_PORT_START: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
const EPHEMERAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
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

/// `listener create|update` / `connector create|update`: the service and what to set.
#[derive(Debug, Clone)]
pub struct ServiceRequest {
    pub kind: ServiceKind,
    pub name: String,
    pub settings: ServiceSettings,
}

/// One listener or connector as its resource has it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub kind: ServiceKind,
    pub name: String,
    /// The one routing key; absent for a listener with several keys (see `strategy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// A listener with several routing keys (a MultiKeyListener): how it chooses among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<KeyStrategy>,
    pub host: String,
    pub port: u16,
    /// Listeners: the router's loopback port behind the forwarder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServiceTlsInfo>,
    /// Listeners: the router's protocol observer (`auto` unless set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
}

/// A MultiKeyListener's strategy and its keys, in priority order or by name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStrategy {
    #[serde(serialize_with = "strategy_name")]
    pub kind: StrategyKind,
    pub keys: Vec<KeyValue>,
}

/// One routing key of a MultiKeyListener: its weight, or its priority (the first key the
/// highest).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyValue {
    pub key: String,
    pub value: i64,
}

fn strategy_name<S: serde::Serializer>(kind: &StrategyKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// How a service speaks TLS. TLS ends at the router: the forwarder in front of a listener
/// carries the client's TLS bytes unchanged, the router decrypts them, carries plain bytes
/// across the network, and a TLS connector encrypts them again for its backend.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTlsInfo {
    /// The Secret or issued certificate the service names (`tlsCredentials`).
    pub credentials: String,
    /// Listeners: the CA file a client must trust (it signed the listener's certificate, or is
    /// the Secret's `ca.crt`). Connectors: the CA file that verifies the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Listeners: clients must present a certificate signed by that CA. Connectors: the
    /// router presents the credentials' certificate to the backend.
    pub client_certificate: bool,
    /// Connectors: the backend's certificate must name the connector's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_hostname: Option<bool>,
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
    /// Where the routing key is offered: `here` (a connector of this site) and the ids of the
    /// other routers with a connector for it; None when the router does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_at: Option<Vec<String>>,
    /// A listener with several keys: each key, where it is offered, and the share of new
    /// connections it takes now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyStatus>,
    /// Listeners: why the router cannot listen on the listener's router port (its own
    /// message), when it cannot. The forwarder re-creates the tcpListener until it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_error: Option<String>,
    /// What is wrong with this service now; any makes `status` and `<kind> status` unhealthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One routing key of a MultiKeyListener, now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    pub key: String,
    pub value: i64,
    /// As [`ServiceStatus::offered_at`].
    pub offered_at: Option<Vec<String>>,
    /// The percentage of new connections that go to this key now: with priority 100 for the
    /// first reachable key; weighted, its weight's share among the reachable keys.
    pub new_connections_percent: Option<u32>,
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
    /// Connector delete: where the routing key is still offered (`here` for another connector
    /// of this site, else router ids); empty: nowhere, its listeners stop accepting. None when
    /// the router did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_offered_at: Option<Vec<String>>,
    /// A listener's forwarder once it runs (create, update), so its first client waits for
    /// nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarder: Option<RunningForwarder>,
}

/// A listener's forwarder, started with the listener (systemd holds its port; without this
/// start, the first client would wait for the forwarder to start).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningForwarder {
    pub unit: String,
    pub main_pid: Option<u32>,
}

/// `listener list` / `connector list`: from the resources alone.
pub fn list(paths: &Paths, namespace: &str, kind: ServiceKind) -> Result<Vec<ServiceInfo>, Error> {
    let resources = paths.load_site(namespace)?;
    Ok(infos(&paths.site(namespace), &resources)
        .into_iter()
        .filter(|info| info.kind == kind)
        .collect())
}

/// `listener status` / `connector status`: `name` or all of the kind, each with its problems.
pub async fn status(
    paths: &Paths,
    namespace: &str,
    kind: ServiceKind,
    name: Option<&str>,
) -> Result<Vec<ServiceStatus>, Error> {
    let resources = paths.load_site(namespace)?;
    let site_dir = paths.site(namespace);
    if let Some(name) = name {
        find(&site_dir, &resources, kind, name)?;
    }
    let manager = UserManager::connect().await?;
    let router = services_view(&manager, &site_dir, &resources).await;
    let (all, _) = services_status(&manager, &site_dir, &resources, router.as_ref()).await?;
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
    let ServiceRequest {
        kind,
        name,
        settings,
    } = request;
    check_name(&name)
        .map_err(|problem| Error::Usage(format!("{} name: {problem}", kind.word())))?;
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let current = session.resources()?.clone();
    if let Ok(existing) = find(&session.site_dir, &current, kind, &name) {
        return Err(Error::Usage(format!(
            "a {kind} named '{name}' already exists in namespace '{namespace}' ({host}:{port}); \
             change it with `vansite -n {namespace} {kind} update {name}`, delete it first, or \
             choose another name",
            kind = kind.word(),
            host = existing.host,
            port = existing.port,
        )));
    }
    let Some(port) = settings.port else {
        return Err(Error::Usage("give the service's PORT".into()));
    };
    let new = match kind {
        ServiceKind::Listener => {
            let host = settings
                .host
                .clone()
                .unwrap_or_else(|| DEFAULT_LISTENER_HOST.into());
            check_port_free(paths, bind_address(&host, port)?)?;
            NewService {
                default_host: host,
                router_port: Some(RouterPorts::new(paths).take()?),
            }
        }
        ServiceKind::Connector => NewService {
            default_host: DEFAULT_CONNECTOR_HOST.into(),
            router_port: None,
        },
    };
    let objects = edit_service(&current, kind, &name, &settings, Some(&new))?;
    let target = SiteResources::new(namespace, objects)?;
    progress(&format!("adding {} {name}", kind.word()));
    apply_service(&mut session, target, kind, &name, "create", progress).await
}

/// Applies `target`, which holds service `name` of `kind`, as `vansite <kind> <verb>`.
async fn apply_service(
    session: &mut SiteSession,
    target: SiteResources,
    kind: ServiceKind,
    name: &str,
    verb: &str,
    progress: &dyn Fn(&str),
) -> Result<ServiceChange, Error> {
    let command = format!("{} {verb} {name}", kind.word());
    let applied = session
        .apply(target, &command, SERVICE_APPLY, progress)
        .await?;
    let forwarder = if kind == ServiceKind::Listener {
        let unit = format!(
            "{}.service",
            forwarder_unit_name(&session.site_dir.namespace, name)
        );
        let state = session.manager.unit_state(&unit).await?;
        (state.active_state == ActiveState::Active).then_some(RunningForwarder {
            unit,
            main_pid: state.main_pid,
        })
    } else {
        None
    };
    Ok(ServiceChange {
        info: find(&session.site_dir, session.resources()?, kind, name)?,
        live: applied.router.is_live(),
        router: applied.router,
        ended_connections: None,
        still_offered_at: None,
        forwarder,
    })
}

/// `listener update` / `connector update`: what is given changes, the rest stays; the
/// running router takes the change live (sslProfiles included), and a listener's forwarder
/// moves to a new port.
pub async fn update(
    paths: &Paths,
    namespace: &str,
    request: ServiceRequest,
    progress: &dyn Fn(&str),
) -> Result<ServiceChange, Error> {
    let ServiceRequest {
        kind,
        name,
        settings,
    } = request;
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let current = session.resources()?.clone();
    let before = find(&session.site_dir, &current, kind, &name)?;
    let objects = edit_service(&current, kind, &name, &settings, None)?;
    let target = SiteResources::new(namespace, objects)?;
    let after = find(&session.site_dir, &target, kind, &name)?;
    if kind == ServiceKind::Listener && (after.port, &after.host) != (before.port, &before.host) {
        check_port_free(paths, bind_address(&after.host, after.port)?)?;
    }
    progress(&format!("updating {} {name}", kind.word()));
    apply_service(&mut session, target, kind, &name, "update", progress).await
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
    let info = find(&session.site_dir, &current, kind, name)?;
    let router = services_view(&session.manager, &session.site_dir, &current).await;
    let (statuses, _) = services_status(
        &session.manager,
        &session.site_dir,
        &current,
        router.as_ref(),
    )
    .await?;
    let deleted = statuses
        .iter()
        .find(|s| s.info.kind == kind && s.info.name == name);
    let ended_connections = deleted.and_then(|s| s.active_connections);
    let target = SiteResources::new(namespace, remove_service(&current, kind, name))?;
    // Moving a service: say whether another site still offers the key.
    let still_offered_at = deleted
        .filter(|_| kind == ServiceKind::Connector)
        .and_then(|s| s.offered_at.clone())
        .map(|at| {
            let key = info.routing_key.as_deref().unwrap_or_default();
            let here = target.connectors.iter().any(|c| c.spec.routing_key == key);
            at.into_iter()
                .filter(|site| site != "here" || here)
                .collect()
        });
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
        still_offered_at,
        forwarder: None,
    })
}

/// Every service of the site with its units' and the router's view; and the problems found.
/// `router` is None when the router is not running or does not answer.
pub async fn services_status(
    manager: &UserManager,
    site_dir: &SiteDir,
    resources: &SiteResources,
    router: Option<&ServicesView>,
) -> Result<(Vec<ServiceStatus>, Vec<String>), Error> {
    let entities = tcp_entities(resources);
    let mut all = Vec::new();
    for info in infos(site_dir, resources) {
        let entity_name = entity_name(&info);
        let entity = entities
            .iter()
            .find(|e| e.name() == entity_name)
            .expect("every service renders one entity");
        let row = router.and_then(|view| {
            view.endpoints
                .get(&(entity.entity_type, entity.name().to_string()))
        });
        let in_router = router.map(|_| row.is_some());
        let mut problems = Vec::new();
        if in_router == Some(false) {
            problems.push(format!(
                "{} {} is not in the running router; run any `vansite {} create|delete` to \
                 reapply, or restart the router",
                info.kind.word(),
                info.name,
                info.kind.word()
            ));
        }
        let offered_at = |key: &str| router.map(|view| view.offered_at(key));
        let keys = info
            .strategy
            .as_ref()
            .map(|strategy| key_statuses(strategy, &offered_at))
            .unwrap_or_default();
        let mut status = ServiceStatus {
            offered_at: info.routing_key.as_deref().and_then(offered_at),
            keys,
            active_connections: row.and_then(TcpEndpointView::open_connections),
            info,
            unit: None,
            socket_state: None,
            forwarder_state: None,
            in_router,
            peer: None,
            router_error: row.and_then(|r| r.connection_msg.clone()),
            problems,
        };
        if status.info.kind == ServiceKind::Listener {
            let unit = forwarder_unit_name(&site_dir.namespace, &status.info.name);
            let (socket_unit, service_unit) = (format!("{unit}.socket"), format!("{unit}.service"));
            let (socket, service) = tokio::try_join!(
                manager.unit_state(&socket_unit),
                manager.unit_state(&service_unit)
            )?;
            if socket.active_state != ActiveState::Active {
                status.problems.push(format!(
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
            if let Some(error) = &status.router_error {
                let port = status
                    .info
                    .router_port
                    .map_or("?".into(), |p| p.to_string());
                status.problems.push(format!(
                    "listener {}: the router cannot listen on its port {LOOPBACK}:{port}: {error} \
                     (another program holds the port? `ss -ltnp 'sport = :{port}'` shows which); \
                     the listener's forwarder re-creates it once the port is free",
                    status.info.name
                ));
            }
        }
        all.push(status);
    }
    let problems = all.iter().flat_map(|s| s.problems.clone()).collect();
    Ok((all, problems))
}

/// Each key of a MultiKeyListener with where it is offered and the share of new connections
/// it takes now, as the router chooses (priority: the first reachable key; weighted: in
/// proportion among the reachable ones).
fn key_statuses(
    strategy: &KeyStrategy,
    offered_at: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Vec<KeyStatus> {
    let mut keys: Vec<KeyStatus> = strategy
        .keys
        .iter()
        .map(|k| KeyStatus {
            key: k.key.clone(),
            value: k.value,
            offered_at: offered_at(&k.key),
            new_connections_percent: None,
        })
        .collect();
    let reachable = |k: &KeyStatus| k.offered_at.as_ref().map(|at| !at.is_empty());
    if keys.iter().any(|k| reachable(k).is_none()) {
        return keys;
    }
    let total: i64 = keys
        .iter()
        .filter(|k| reachable(k) == Some(true))
        .map(|k| k.value.max(0))
        .sum();
    let mut chosen = false;
    for key in &mut keys {
        let up = reachable(key) == Some(true);
        key.new_connections_percent = Some(match strategy.kind {
            StrategyKind::Priority if up && !chosen => {
                chosen = true;
                100
            }
            StrategyKind::Priority => 0,
            StrategyKind::Weighted if up && total > 0 => (key.value.max(0) * 100 / total) as u32,
            StrategyKind::Weighted => 0,
        });
    }
    keys
}

fn state_text(state: &ActiveState, sub_state: &str) -> String {
    format!("{state}/{sub_state}")
}

/// What the running router says about the site's services.
pub struct ServicesView {
    /// tcpConnectors and tcpListeners by (type, name).
    endpoints: BTreeMap<(&'static str, String), TcpEndpointView>,
    /// Mobile addresses (routing keys) with destinations.
    addresses: Vec<AddressView>,
}

impl ServicesView {
    /// QUERYs the tcpListeners, tcpConnectors and mobile addresses.
    pub async fn query(client: &mut ManagementClient) -> Result<ServicesView, ManagementError> {
        let mut endpoints = BTreeMap::new();
        for kind in TcpEndpointKind::ALL {
            for row in client.query(kind.entity_type(), &[]).await? {
                let view = TcpEndpointView::from_row(kind, &row);
                endpoints.insert((kind.entity_type(), view.name.clone()), view);
            }
        }
        let addresses = client
            .query_views("router.address", AddressView::from_row)
            .await?;
        Ok(ServicesView {
            endpoints,
            addresses,
        })
    }

    /// `here` for a connector of this router, then the other routers offering `key`.
    fn offered_at(&self, key: &str) -> Vec<String> {
        let Some(address) = self.addresses.iter().find(|a| a.routing_key() == Some(key)) else {
            return Vec::new();
        };
        let here = (address.subscriber_count > 0).then(|| "here".to_string());
        here.into_iter()
            .chain(address.remote_host_routers.iter().cloned())
            .collect()
    }
}

/// The router's view of the services, when the router runs and answers (a connection of its
/// own, for commands that ask the router nothing else).
pub async fn services_view(
    manager: &UserManager,
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Option<ServicesView> {
    let unit = format!("{}.service", router_unit_name(&site_dir.namespace));
    let state = manager.unit_state(&unit).await.ok()?;
    if state.active_state != ActiveState::Active {
        return None;
    }
    with_site_management(
        site_dir,
        resources,
        Duration::from_secs(3),
        async |client| ServicesView::query(client).await,
    )
    .await
    .ok()
}

fn entity_name(info: &ServiceInfo) -> String {
    match (info.kind, &info.strategy) {
        (ServiceKind::Listener, None) => listener_name(&info.name),
        (ServiceKind::Listener, Some(_)) => multi_key_listener_name(&info.name),
        (ServiceKind::Connector, _) => format!("connector/{}@{}", info.name, info.host),
    }
}

fn infos(site_dir: &SiteDir, resources: &SiteResources) -> Vec<ServiceInfo> {
    let ca_path = |profile: &str| {
        site_dir
            .certs()
            .join(profile)
            .join("ca.crt")
            .display()
            .to_string()
    };
    let listener_tls = |credentials: &str, client_certificate: bool| {
        (!credentials.is_empty()).then(|| ServiceTlsInfo {
            credentials: credentials.to_string(),
            ca_file: listener_credentials_have_ca(resources, credentials)
                .then(|| ca_path(credentials)),
            client_certificate,
            verify_hostname: None,
        })
    };
    let observer = |observer: &str| {
        Some(
            if observer.is_empty() {
                "auto"
            } else {
                observer
            }
            .into(),
        )
    };
    let listeners = resources.listeners.iter().map(|l| ServiceInfo {
        kind: ServiceKind::Listener,
        name: l.metadata.name.clone(),
        routing_key: Some(l.spec.routing_key.clone()),
        strategy: None,
        host: l.spec.host.clone(),
        port: l.spec.port,
        router_port: l.router_port(),
        tls: listener_tls(&l.spec.tls_credentials, false),
        observer: observer(&l.spec.observer),
    });
    let multi_key_listeners = resources.multi_key_listeners.iter().map(|l| ServiceInfo {
        kind: ServiceKind::Listener,
        name: l.metadata.name.clone(),
        routing_key: None,
        strategy: l.strategy_kind().map(|kind| KeyStrategy {
            kind,
            keys: l
                .keyed_values()
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_string(),
                    value,
                })
                .collect(),
        }),
        host: l.spec.host.clone(),
        port: l.spec.port,
        router_port: l.router_port(),
        tls: listener_tls(&l.spec.tls_credentials, l.spec.require_client_cert),
        observer: observer(&l.spec.observer),
    });
    let connectors = resources.connectors.iter().map(|c| ServiceInfo {
        kind: ServiceKind::Connector,
        name: c.metadata.name.clone(),
        routing_key: Some(c.spec.routing_key.clone()),
        strategy: None,
        host: c.spec.host.clone(),
        port: c.spec.port,
        router_port: None,
        tls: (!c.spec.tls_credentials.is_empty()).then(|| ServiceTlsInfo {
            credentials: c.spec.tls_credentials.clone(),
            // A connector's credentials always hold its CA (the certificates refuse one without).
            ca_file: Some(ca_path(&connector_ssl_profile(&c.spec))),
            client_certificate: c.spec.use_client_cert,
            verify_hostname: Some(c.spec.verify_hostname),
        }),
        observer: None,
    });
    listeners
        .chain(multi_key_listeners)
        .chain(connectors)
        .collect()
}

fn find(
    site_dir: &SiteDir,
    resources: &SiteResources,
    kind: ServiceKind,
    name: &str,
) -> Result<ServiceInfo, Error> {
    infos(site_dir, resources)
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
        let holder = other
            .listener_ports()
            .find(|(_, p, _)| *p == port)
            .map(|(name, ..)| name.to_string());
        if let Some(name) = holder {
            return Err(Error::Usage(format!(
                "port {port} is already the port of listener '{name}' in namespace '{ns}'; choose \
                 another port"
            )));
        }
    }
    std::net::TcpListener::bind(bind).map(drop).map_err(|e| {
        let ip = match bind {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        Error::Usage(format!(
            "cannot use port {port} on {ip}: {e} (another program holds it? `ss -ltnp` shows \
             which); choose another port"
        ))
    })
}

/// Chooses ports for router tcpListeners (`plan::choose_router_port`): outside the kernel's
/// ephemeral range, free to bind on loopback now, and neither recorded by a listener of any of
/// this user's sites nor handed out before by this chooser. Existing listeners keep theirs.
pub(crate) struct RouterPorts {
    taken: Vec<u16>,
    ephemeral: std::ops::RangeInclusive<u16>,
}

impl RouterPorts {
    pub(crate) fn new(paths: &Paths) -> RouterPorts {
        let taken = paths
            .namespaces()
            .into_iter()
            .filter_map(|ns| paths.site(&ns).load_resources().ok().flatten())
            .flat_map(|set| {
                set.listener_ports()
                    .filter_map(|(_, _, router_port)| router_port)
                    .collect::<Vec<_>>()
            })
            .collect();
        RouterPorts {
            taken,
            ephemeral: ephemeral_port_range(),
        }
    }

    pub(crate) fn take(&mut self) -> Result<u16, Error> {
        let mut offset = [0u8; 2];
        getrandom::fill(&mut offset).expect("the operating system's random number generator");
        let port = choose_router_port(self.ephemeral.clone(), u16::from_ne_bytes(offset), |port| {
            self.taken.contains(&port) || std::net::TcpListener::bind((LOOPBACK, port)).is_err()
        })
        .ok_or_else(|| {
            Error::Usage(format!(
                "no free loopback port for the router's tcpListener outside the ephemeral port \
                 range {}-{} (net.ipv4.ip_local_port_range); narrow that range",
                self.ephemeral.start(),
                self.ephemeral.end()
            ))
        })?;
        self.taken.push(port);
        Ok(port)
    }
}

/// The kernel's ephemeral port range; Linux's default when it cannot be read.
fn ephemeral_port_range() -> std::ops::RangeInclusive<u16> {
    std::fs::read_to_string(EPHEMERAL_PORT_RANGE)
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some(bounds.next()??..=bounds.next()??)
        })
        .unwrap_or(32768..=60999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: StrategyKind, keys: &[(&str, i64)]) -> KeyStrategy {
        KeyStrategy {
            kind,
            keys: keys
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_string(),
                    value: *value,
                })
                .collect(),
        }
    }

    /// Where each key is offered: `a` nowhere, `b` and `c` at one router each.
    fn offered(key: &str) -> Option<Vec<String>> {
        Some(match key {
            "a" => vec![],
            other => vec![format!("router-{other}")],
        })
    }

    fn shares(strategy: &KeyStrategy) -> Vec<Option<u32>> {
        key_statuses(strategy, &offered)
            .iter()
            .map(|k| k.new_connections_percent)
            .collect()
    }

    #[test]
    fn new_connections_go_to_the_first_reachable_key_or_by_weight_among_the_reachable() {
        let priority = strategy(StrategyKind::Priority, &[("a", 2), ("b", 1), ("c", 0)]);
        assert_eq!(shares(&priority), [Some(0), Some(100), Some(0)]);
        let weighted = strategy(StrategyKind::Weighted, &[("a", 5), ("b", 1), ("c", 3)]);
        assert_eq!(shares(&weighted), [Some(0), Some(25), Some(75)]);
        // The router not answering: nothing known, no share guessed.
        let unknown = key_statuses(&priority, &|_| None);
        assert!(unknown.iter().all(|k| k.new_connections_percent.is_none()));
    }
}

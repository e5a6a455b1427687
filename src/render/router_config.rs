//! The router's configuration file, `skrouterd.json`, rendered from a site's resources.
//!
//! Written the way Skupper writes it for a podman site (`internal/qdr/qdr.go`
//! `MarshalRouterConfig`, `pkg/nonkube/api/site_state.go` `ToRouterConfig`, `internal/site/*.go`;
//! skupper-formats §4): a JSON array of `[entityType, {attributes}]` pairs in the order router,
//! sslProfile, connector, listener, address, tcpConnector, tcpListener, listenerAddress, log,
//! site; attributes in
//! Skupper's order with its string/number choices (listener `port` a number, connector and tcp
//! ports strings, `helloMaxAgeSeconds` "3"); 4-space indentation and no final newline, as Go's
//! `json.MarshalIndent`. Where Skupper iterates a Go map (random order), entities are sorted by
//! name so the output is deterministic.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{
    self, ConnectorSpec, Link, LinkRole, MultiKeyListener, RouterMode, SiteResources,
};

use super::certs::listener_credentials_have_ca;
use crate::router::entity::{EntityType, RouterEntity};

/// Where the router listens for a Listener served by a forwarder: never another interface.
pub const LOOPBACK: &str = "127.0.0.1";

/// Where the router container finds the certificate directories, as `skrouterd.json` says it:
/// the image's entry script expands the variable (skrouterd itself does not, so entities
/// created over management name the directory as the container sees it).
pub const CERTS_PATH: &str = "${SSL_PROFILE_BASE_PATH}/runtime/certs";

/// What the rendering needs besides the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// `Site.metadata.uid`.
    pub site_id: String,
    /// The router's id in the network (`<siteName>-<first 8 hex of the site id>`).
    pub router_id: String,
    /// The Skupper release vansite is compatible with, e.g. "2.2.1" (pairs with router 3.5.1).
    pub skupper_version: String,
    /// "podman".
    pub platform: String,
}

/// Renders `skrouterd.json` for `resources`.
pub fn render(resources: &SiteResources, ctx: &RenderContext) -> String {
    let entities = entities(resources, ctx, CERTS_PATH);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    entities
        .serialize(&mut serializer)
        .expect("serializing plain structs to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// One `[type, {attributes}]` entry.
#[derive(Serialize)]
#[serde(untagged)]
enum Entity {
    Router(&'static str, Router),
    SslProfile(&'static str, SslProfile),
    Connector(&'static str, Connector),
    Listener(&'static str, Listener),
    Address(&'static str, Address),
    TcpEndpoint(&'static str, TcpEndpoint),
    ListenerAddress(&'static str, ListenerAddress),
    Log(&'static str, Log),
    Site(&'static str, Site),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Router {
    id: String,
    mode: RouterMode,
    hello_max_age_seconds: &'static str,
    /// A JSON document inside a string, as Skupper writes it.
    metadata: String,
}

#[derive(Serialize)]
struct SiteMetadata<'a> {
    id: &'a str,
    version: &'a str,
    platform: &'a str,
}

/// A router `sslProfile` entity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SslProfile {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_cert_file: Option<String>,
}

impl SslProfile {
    /// A profile reading `<certs_path>/<name>/`; `with_key` adds the certificate and key to
    /// present (Skupper's `ConfigureSslProfile(name, path, clientAuth)`).
    fn for_certs(name: &str, with_key: bool, certs_path: &str) -> Self {
        let file = |file: &str| format!("{certs_path}/{name}/{file}");
        Self {
            name: name.to_string(),
            cert_file: with_key.then(|| file("tls.crt")),
            private_key_file: with_key.then(|| file("tls.key")),
            ca_cert_file: Some(file("ca.crt")),
        }
    }
}

/// A router `connector` entity (a link this router dials).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    name: String,
    role: LinkRole,
    host: String,
    port: String,
    cost: i64,
    ssl_profile: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listener {
    name: String,
    role: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    port: u16,
    ssl_profile: String,
    sasl_mechanisms: &'static str,
    authenticate_peer: bool,
}

#[derive(Serialize)]
struct Address {
    prefix: &'static str,
    distribution: &'static str,
}

/// `tcpListener` and `tcpConnector` share Skupper's `TcpEndpoint` shape (`internal/qdr/qdr.go`,
/// fields in its order, empty ones left out as its `omitempty` does).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct TcpEndpoint {
    name: String,
    host: String,
    port: String,
    /// Empty for a MultiKeyListener's tcpListener: its addresses are listenerAddress entities.
    #[serde(skip_serializing_if = "String::is_empty")]
    address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ssl_profile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    observer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_hostname: Option<bool>,
    /// `priority` or `weighted` for a MultiKeyListener; never written otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    multi_address_strategy: String,
    #[serde(skip_serializing_if = "is_false")]
    authenticate_peer: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One routing key of a MultiKeyListener: Skupper's `ListenerAddress` (`value` always
/// written, even 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ListenerAddress {
    name: String,
    address: String,
    value: i64,
    listener: String,
}

#[derive(Serialize)]
struct Log {
    module: &'static str,
    enable: &'static str,
}

#[derive(Serialize)]
struct Site {
    name: String,
    platform: String,
    namespace: String,
    version: String,
}

/// A `tcpConnector`, `tcpListener` or `listenerAddress` exactly as `skrouterd.json` has it:
/// what a management CREATE sends to a running router, so that a live change and a restart
/// give the same router.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpEntity {
    /// `tcpConnector`, `tcpListener` or `listenerAddress`.
    pub entity_type: &'static str,
    body: TcpBody,
}

#[derive(Debug, Clone, PartialEq)]
enum TcpBody {
    Endpoint(TcpEndpoint),
    Address(ListenerAddress),
}

impl TcpEntity {
    pub fn name(&self) -> &str {
        match &self.body {
            TcpBody::Endpoint(endpoint) => &endpoint.name,
            TcpBody::Address(address) => &address.name,
        }
    }

    /// For a `listenerAddress`, the name of the `tcpListener` it belongs to: the router takes
    /// it only once that listener exists, and deletes that listener only once none is left.
    pub fn listener(&self) -> Option<&str> {
        match &self.body {
            TcpBody::Endpoint(_) => None,
            TcpBody::Address(address) => Some(&address.listener),
        }
    }

    /// The attributes, `name` included, as the configuration file has them.
    pub fn attributes(&self) -> Map<String, Value> {
        match &self.body {
            TcpBody::Endpoint(endpoint) => attributes(endpoint),
            TcpBody::Address(address) => attributes(address),
        }
    }
}

/// The site's tcpConnectors, then tcpListeners (Listeners' and MultiKeyListeners'), then
/// listenerAddresses, each sorted by name, as `render` writes them. Created in this order,
/// every listenerAddress comes after its tcpListener; deleted in the reverse order, before it.
pub fn tcp_entities(resources: &SiteResources) -> Vec<TcpEntity> {
    let (connectors, listeners, addresses) = tcp_parts(resources);
    let endpoint = |entity_type| {
        move |endpoint| TcpEntity {
            entity_type,
            body: TcpBody::Endpoint(endpoint),
        }
    };
    connectors
        .into_iter()
        .map(endpoint("tcpConnector"))
        .chain(listeners.into_iter().map(endpoint("tcpListener")))
        .chain(addresses.into_iter().map(|address| TcpEntity {
            entity_type: "listenerAddress",
            body: TcpBody::Address(address),
        }))
        .collect()
}

/// tcpConnectors, tcpListeners and listenerAddresses, each sorted by name.
fn tcp_parts(
    resources: &SiteResources,
) -> (Vec<TcpEndpoint>, Vec<TcpEndpoint>, Vec<ListenerAddress>) {
    let mut connectors: Vec<TcpEndpoint> = resources.connectors.iter().map(tcp_connector).collect();
    let mut listeners: Vec<TcpEndpoint> = resources
        .listeners
        .iter()
        .map(tcp_listener)
        .chain(
            resources
                .multi_key_listeners
                .iter()
                .map(multi_key_tcp_listener),
        )
        .collect();
    let mut addresses: Vec<ListenerAddress> = resources
        .multi_key_listeners
        .iter()
        .flat_map(listener_addresses)
        .collect();
    connectors.sort_by(|a, b| a.name.cmp(&b.name));
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    addresses.sort_by(|a, b| a.name.cmp(&b.name));
    (connectors, listeners, addresses)
}

/// With a client certificate the profile presents it; otherwise it only holds the CA that
/// verifies the server, under a distinct name (Skupper's `GetSslProfileName`).
pub fn connector_ssl_profile(spec: &ConnectorSpec) -> String {
    match (spec.tls_credentials.as_str(), spec.use_client_cert) {
        ("", _) => String::new(),
        (credentials, true) => credentials.to_string(),
        (credentials, false) => format!("{credentials}-profile"),
    }
}

fn tcp_connector(connector: &model::Connector) -> TcpEndpoint {
    let spec = &connector.spec;
    let ssl_profile = connector_ssl_profile(spec);
    TcpEndpoint {
        name: format!("connector/{}@{}", connector.metadata.name, spec.host),
        host: spec.host.clone(),
        port: spec.port.to_string(),
        address: spec.routing_key.clone(),
        verify_hostname: (!ssl_profile.is_empty()).then_some(spec.verify_hostname),
        ssl_profile,
        observer: String::new(),
        multi_address_strategy: String::new(),
        authenticate_peer: false,
    }
}

/// A Listener that vansite serves through a forwarder has its router port recorded: the router
/// then listens on that loopback port only, and the forwarder holds the Listener's own port.
fn tcp_listener(listener: &model::Listener) -> TcpEndpoint {
    let spec = &listener.spec;
    let (host, port) = match listener.router_port() {
        Some(port) => (LOOPBACK.to_string(), port),
        None => (spec.host.clone(), spec.port),
    };
    TcpEndpoint {
        name: listener_name(&listener.metadata.name),
        host,
        port: port.to_string(),
        address: spec.routing_key.clone(),
        ssl_profile: spec.tls_credentials.clone(),
        observer: spec.observer.clone(),
        verify_hostname: None,
        multi_address_strategy: String::new(),
        authenticate_peer: false,
    }
}

/// Skupper's name for a Listener's tcpListener.
pub fn listener_name(name: &str) -> String {
    format!("listener/{name}")
}

/// Skupper's name for a MultiKeyListener's tcpListener (`internal/site/multikeylistener.go`
/// `multiAddressTcpListenerName`), distinct from Listeners' `listener/<name>`.
pub fn multi_key_listener_name(name: &str) -> String {
    format!("multiAddress/{name}")
}

/// A MultiKeyListener's tcpListener (Skupper's `UpdateBridgeConfigForMultiKeyListener`): no
/// `address`, `multiAddressStrategy` instead, and `authenticatePeer` for `requireClientCert`.
/// Served through a forwarder like a Listener: then on the loopback router port.
fn multi_key_tcp_listener(listener: &MultiKeyListener) -> TcpEndpoint {
    let spec = &listener.spec;
    let (host, port) = match listener.router_port() {
        Some(port) => (LOOPBACK.to_string(), port),
        None => (spec.host.clone(), spec.port),
    };
    TcpEndpoint {
        name: multi_key_listener_name(&listener.metadata.name),
        host,
        port: port.to_string(),
        address: String::new(),
        ssl_profile: spec.tls_credentials.clone(),
        observer: spec.observer.clone(),
        verify_hostname: None,
        multi_address_strategy: listener
            .strategy_kind()
            .map(|kind| kind.as_str().to_string())
            .unwrap_or_default(),
        authenticate_peer: spec.require_client_cert,
    }
}

/// One listenerAddress per routing key, named `<MultiKeyListener name>/<routing key>` as
/// Skupper names them (`listenerAddressName`), with Skupper's values.
fn listener_addresses(listener: &MultiKeyListener) -> Vec<ListenerAddress> {
    let tcp_listener = multi_key_listener_name(&listener.metadata.name);
    listener
        .keyed_values()
        .into_iter()
        .map(|(key, value)| ListenerAddress {
            name: format!("{}/{key}", listener.metadata.name),
            address: key.to_string(),
            value,
            listener: tcp_listener.clone(),
        })
        .collect()
}

/// What the router runs for one Link: its sslProfile and its connector.
#[derive(Debug, Clone)]
pub struct LinkEntities {
    pub ssl_profile: SslProfile,
    pub connector: Connector,
}

/// The sslProfile (`<tlsCredentials>-profile`, files under `certs_path`) and connector of
/// `link` for a router dialling `role` endpoints; None when the Link has no such endpoint
/// (Skupper then creates no connector either). Used for `skrouterd.json` and for live
/// management CREATE alike, so both say the same.
pub fn link_entities(link: &Link, role: LinkRole, certs_path: &str) -> Option<LinkEntities> {
    let endpoint = link.spec.endpoint_for_role(role.as_str())?;
    let profile = format!("{}-profile", link.spec.tls_credentials);
    Some(LinkEntities {
        ssl_profile: SslProfile::for_certs(&profile, true, certs_path),
        connector: Connector {
            name: link.metadata.name.clone(),
            role,
            host: endpoint.host.clone(),
            port: endpoint.port.clone(),
            cost: link.spec.cost.max(1),
            ssl_profile: profile,
        },
    })
}

impl SslProfile {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The attributes as a management CREATE sends them.
    pub fn attributes(&self) -> Map<String, Value> {
        attributes(self)
    }
}

impl Connector {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ssl_profile(&self) -> &str {
        &self.ssl_profile
    }

    /// `host:port`, as the router names the connection it opens.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The attributes as a management CREATE sends them.
    pub fn attributes(&self) -> Map<String, Value> {
        attributes(self)
    }
}

fn attributes(entity: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(entity) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("router entities serialize to JSON objects"),
    }
}

/// The entities `render` writes, typed, with certificate paths under `certs_path`: the file's
/// `CERTS_PATH`, or the directory as the container sees it for management CREATE (skrouterd
/// does not expand the variable).
pub fn router_entities(
    resources: &SiteResources,
    ctx: &RenderContext,
    certs_path: &str,
) -> Vec<RouterEntity> {
    entities(resources, ctx, certs_path)
        .into_iter()
        .map(Entity::typed)
        .collect()
}

impl Entity {
    /// The `name` attribute; None for the unnamed singletons.
    fn name(&self) -> Option<&str> {
        match self {
            Entity::SslProfile(_, e) => Some(&e.name),
            Entity::Connector(_, e) => Some(&e.name),
            Entity::Listener(_, e) => Some(&e.name),
            Entity::TcpEndpoint(_, e) => Some(&e.name),
            Entity::ListenerAddress(_, e) => Some(&e.name),
            Entity::Site(_, e) => Some(&e.name),
            Entity::Router(..) | Entity::Address(..) | Entity::Log(..) => None,
        }
    }

    fn typed(self) -> RouterEntity {
        let (name, attributes) = match self {
            Entity::Router(name, e) => (name, attributes(&e)),
            Entity::SslProfile(name, e) => (name, attributes(&e)),
            Entity::Connector(name, e) => (name, attributes(&e)),
            Entity::Listener(name, e) => (name, attributes(&e)),
            Entity::Address(name, e) => (name, attributes(&e)),
            Entity::TcpEndpoint(name, e) => (name, attributes(&e)),
            Entity::ListenerAddress(name, e) => (name, attributes(&e)),
            Entity::Log(name, e) => (name, attributes(&e)),
            Entity::Site(name, e) => (name, attributes(&e)),
        };
        RouterEntity {
            entity_type: EntityType::parse(name).expect("render writes known entity types"),
            attributes,
        }
    }
}

fn entities(resources: &SiteResources, ctx: &RenderContext, certs_path: &str) -> Vec<Entity> {
    let link_role = resources.router_mode().link_role();
    let metadata = SiteMetadata {
        id: &ctx.site_id,
        version: &ctx.skupper_version,
        platform: &ctx.platform,
    };
    let router = Router {
        id: ctx.router_id.clone(),
        mode: resources.router_mode(),
        hello_max_age_seconds: "3",
        metadata: serde_json::to_string(&metadata).expect("plain struct"),
    };

    let mut ssl_profiles: Vec<SslProfile> = Vec::new();
    let mut add_profile = |profile: SslProfile| {
        if !ssl_profiles.iter().any(|p| p.name == profile.name) {
            ssl_profiles.push(profile);
        }
    };

    let mut listeners = Vec::new();
    for access in &resources.router_accesses {
        for role in &access.spec.roles {
            listeners.push(Listener {
                name: format!("{}-{}", access.metadata.name, role.name),
                role: role.name.clone(),
                host: access.spec.bind_host.clone(),
                port: role.effective_port(),
                ssl_profile: access.tls_credentials().to_string(),
                sasl_mechanisms: "EXTERNAL",
                authenticate_peer: true,
            });
            add_profile(SslProfile::for_certs(
                access.tls_credentials(),
                true,
                certs_path,
            ));
        }
    }

    let mut connectors = Vec::new();
    for link in &resources.links {
        if let Some(LinkEntities {
            ssl_profile,
            connector,
        }) = link_entities(link, link_role, certs_path)
        {
            connectors.push(connector);
            add_profile(ssl_profile);
        }
    }

    for connector in &resources.connectors {
        let spec = &connector.spec;
        let ssl_profile = connector_ssl_profile(spec);
        if !ssl_profile.is_empty() {
            add_profile(SslProfile::for_certs(
                &ssl_profile,
                spec.use_client_cert,
                certs_path,
            ));
        }
    }
    let listener_credentials = resources
        .listeners
        .iter()
        .map(|l| &l.spec.tls_credentials)
        .chain(
            resources
                .multi_key_listeners
                .iter()
                .map(|l| &l.spec.tls_credentials),
        );
    for tls_credentials in listener_credentials {
        if !tls_credentials.is_empty() {
            let mut profile = SslProfile::for_certs(tls_credentials, true, certs_path);
            if !listener_credentials_have_ca(resources, tls_credentials) {
                profile.ca_cert_file = None;
            }
            add_profile(profile);
        }
    }
    let (tcp_connectors, tcp_listeners, listener_addresses) = tcp_parts(resources);

    ssl_profiles.sort_by(|a, b| a.name.cmp(&b.name));
    connectors.sort_by(|a, b| a.name.cmp(&b.name));
    listeners.sort_by(|a, b| a.name.cmp(&b.name));

    let mut entities = vec![Entity::Router("router", router)];
    entities.extend(
        ssl_profiles
            .into_iter()
            .map(|p| Entity::SslProfile("sslProfile", p)),
    );
    entities.extend(
        connectors
            .into_iter()
            .map(|c| Entity::Connector("connector", c)),
    );
    entities.extend(
        listeners
            .into_iter()
            .map(|l| Entity::Listener("listener", l)),
    );
    entities.push(Entity::Address(
        "address",
        Address {
            prefix: "mc",
            distribution: "multicast",
        },
    ));
    entities.extend(
        tcp_connectors
            .into_iter()
            .map(|t| Entity::TcpEndpoint("tcpConnector", t)),
    );
    entities.extend(
        tcp_listeners
            .into_iter()
            .map(|t| Entity::TcpEndpoint("tcpListener", t)),
    );
    entities.extend(
        listener_addresses
            .into_iter()
            .map(|a| Entity::ListenerAddress("listenerAddress", a)),
    );
    entities.push(Entity::Log(
        "log",
        Log {
            module: "ROUTER_CORE",
            enable: "error+",
        },
    ));
    // The vanflow SITE record, and so every console, names the site by this entity. The
    // router refuses a name any other entity has: a site whose link access's Secret is named
    // after the site (Skupper's host sites do that) gets the router's id instead, as Skupper
    // names it there.
    let site_name = resources.site_name();
    let name_taken = entities.iter().any(|e| e.name() == Some(site_name));
    entities.push(Entity::Site(
        "site",
        Site {
            name: if name_taken {
                ctx.router_id.clone()
            } else {
                site_name.to_string()
            },
            platform: ctx.platform.clone(),
            namespace: resources.namespace.clone(),
            version: ctx.skupper_version.clone(),
        },
    ));
    entities
}

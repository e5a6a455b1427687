//! Skupper v2 resources (`skupper.io/v2alpha1`, plus core `v1` Secret) as Rust types.
//!
//! Field names and zero-value conventions follow Skupper's Go types
//! (`pkg/apis/skupper/v2alpha1/types.go`): a string that Go marks `omitempty` is a `String`
//! that is left out when empty, so a file vansite writes is one Skupper would write, and a file
//! Skupper (or a user) wrote loads here. What Go serializers add and vansite does not use
//! (`creationTimestamp: null`, `status`, `managedFields`, …) is accepted and dropped.
//!
//! Loading follows Skupper's non-kube rules (`site_state_loader.go`, `site_state_validator.go`):
//! other API groups are skipped with a note, names are RFC 1123 labels, a site has exactly one
//! `Site`, and every `Link.spec.tlsCredentials` names a `Secret`.

mod vocabulary;

pub use vocabulary::{LinkRole, LinkState, PeerState, RouterMode};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API version of every Skupper kind vansite reads and writes.
pub const SKUPPER_API_VERSION: &str = "skupper.io/v2alpha1";

/// The name Skupper reserves for the router's local management access (role `normal`).
pub const LOCAL_ROUTER_ACCESS: &str = "skupper-local";

/// Skupper kinds that exist but that a vansite site does not use; they are skipped, not refused.
const SKIPPED_SKUPPER_KINDS: &[&str] = &[
    "AttachedConnector",
    "AttachedConnectorBinding",
    "Certificate",
    "SecuredAccess",
];

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}, document {document}: {problem}")]
    Document {
        source_name: String,
        document: usize,
        problem: String,
    },
    #[error(
        "{source_name}, document {document}: unknown kind '{kind}' for apiVersion {SKUPPER_API_VERSION} \
         (vansite reads Site, RouterAccess, Link, Listener, MultiKeyListener, Connector, AccessGrant, \
         AccessToken)"
    )]
    UnknownKind {
        source_name: String,
        document: usize,
        kind: String,
    },
    #[error("{source_name}, document {document}: {source}")]
    InDocument {
        source_name: String,
        document: usize,
        source: Box<ResourceError>,
    },
    /// The document has the right kind but a field of the wrong type.
    #[error("{object}: {message}")]
    Shape { object: ObjectRef, message: String },
    #[error("{object}: {field}: {problem}")]
    Invalid {
        object: ObjectRef,
        field: &'static str,
        problem: String,
    },
    #[error("the site has no Site resource; create one (exactly one Site per namespace)")]
    NoSite,
    #[error("the namespace has more than one Site ({}); keep exactly one", .0.join(", "))]
    SeveralSites(Vec<String>),
    #[error("{object} is in namespace '{found}', but this site is namespace '{expected}'")]
    WrongNamespace {
        object: ObjectRef,
        found: String,
        expected: String,
    },
    #[error("{0} is defined twice; names must be unique per kind")]
    Duplicate(ObjectRef),
    #[error("{object}: {field} names {target}, which does not exist")]
    MissingReference {
        object: ObjectRef,
        field: &'static str,
        target: ObjectRef,
    },
    #[error("{object}: port {port} is already used by {other}")]
    PortInUse {
        object: ObjectRef,
        port: String,
        other: ObjectRef,
    },
    #[error("cannot write {object} as YAML: {message}")]
    Serialize { object: ObjectRef, message: String },
}

/// Names one object in messages, as `Kind/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The part of Kubernetes `ObjectMeta` a site uses; other metadata fields are dropped on load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// `settings` on every Skupper spec: free-form string pairs.
pub type Settings = BTreeMap<String, String>;

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// Anything but `""` or `none` makes the site accept links (a RouterAccess named after it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_access: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_issuer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub edge: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ha: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

impl SiteSpec {
    pub fn link_access_enabled(&self) -> bool {
        !matches!(self.link_access.as_str(), "" | "none")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterAccessRole {
    #[serde(default)]
    pub name: String,
    /// 0 means the role's default port (55671 inter-router, 45671 edge).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub port: u16,
}

fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

impl RouterAccessRole {
    /// The port the router listens on, with Skupper's defaults for 0 (`RouterAccessRole.GetPort`).
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.name.as_str()) {
            (0, "edge") => 45671,
            (0, _) => 55671,
            (port, _) => port,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterAccessSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_type: String,
    #[serde(default)]
    pub roles: Vec<RouterAccessRole>,
    /// Name of the server certificate; on non-kube sites it defaults to the RouterAccess name.
    #[serde(default)]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub generate_tls_credentials: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Empty binds every interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind_host: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alternative_names: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// A string in Skupper's Link type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Name of the Secret holding the client certificate and the remote site's CA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

impl LinkSpec {
    /// The endpoint for a router role (`inter-router` on interior sites, `edge` on edge sites).
    pub fn endpoint_for_role(&self, role: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|endpoint| endpoint.name == role)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub listener_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub expose_pods_by_name: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

/// A Listener whose connections go to one of several routing keys, chosen by a strategy
/// (Skupper's `MultiKeyListenerSpec`, `pkg/apis/skupper/v2alpha1/multikeylistener_types.go`;
/// fields in Go's order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiKeyListenerSpec {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_client_cert: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
    #[serde(default)]
    pub strategy: MultiKeyListenerStrategy,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observer: String,
}

/// Exactly one of `priority` or `weighted` (Skupper's `MultiKeyListenerStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiKeyListenerStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityStrategySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<WeightedStrategySpec>,
}

/// Routing keys from highest to lowest priority: every connection goes to the first key that
/// has a reachable connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorityStrategySpec {
    #[serde(default)]
    pub routing_keys: Vec<String>,
}

/// Routing keys and their weights: connections are spread over the reachable keys in
/// proportion to their weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedStrategySpec {
    #[serde(default)]
    pub routing_keys: BTreeMap<String, u32>,
}

/// Skupper's limit on the routing keys of one strategy (the CRD's `maxItems`/`maxProperties`).
pub const MAX_STRATEGY_KEYS: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpec {
    #[serde(default)]
    pub routing_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_client_cert: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify_hostname: bool,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub connector_type: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub expose_pods_by_name: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_not_ready_pods: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantSpec {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redemptions_allowed: i64,
    /// A Go duration such as `15m`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration_window: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenSpec {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub code: String,
    /// PEM of the grant server's CA.
    #[serde(default)]
    pub ca: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_cost: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

/// A Skupper object: metadata and a kind-specific spec (status is not kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Object<Spec> {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Spec,
}

pub type Site = Object<SiteSpec>;
pub type RouterAccess = Object<RouterAccessSpec>;
pub type Link = Object<LinkSpec>;
pub type Listener = Object<ListenerSpec>;
pub type MultiKeyListener = Object<MultiKeyListenerSpec>;
pub type Connector = Object<ConnectorSpec>;
pub type AccessGrant = Object<AccessGrantSpec>;
pub type AccessToken = Object<AccessTokenSpec>;

/// Annotation on a Listener or MultiKeyListener: the loopback port vansite chose for the
/// router's tcpListener, behind the forwarder that holds the object's own port. Clusters ignore
/// it.
pub const ROUTER_PORT_ANNOTATION: &str = "vansite.io/router-port";

impl ObjectMeta {
    /// The [`ROUTER_PORT_ANNOTATION`], when present and a port number other than 0.
    pub fn router_port(&self) -> Option<u16> {
        self.annotations
            .get(ROUTER_PORT_ANNOTATION)
            .and_then(|port| port.parse().ok())
            .filter(|port| *port != 0)
    }
}

impl Listener {
    /// The router's loopback port for this Listener, when vansite serves it through a forwarder.
    pub fn router_port(&self) -> Option<u16> {
        self.metadata.router_port()
    }
}

/// Which of the two strategies a MultiKeyListener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    Priority,
    Weighted,
}

impl StrategyKind {
    /// The field name in the resource, and the router's `multiAddressStrategy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Priority => "priority",
            StrategyKind::Weighted => "weighted",
        }
    }
}

impl MultiKeyListener {
    /// The router's loopback port for this MultiKeyListener, when vansite serves it through a
    /// forwarder (as for a Listener).
    pub fn router_port(&self) -> Option<u16> {
        self.metadata.router_port()
    }

    /// The strategy in use; None unless exactly one is set (refused by validation).
    pub fn strategy_kind(&self) -> Option<StrategyKind> {
        match (&self.spec.strategy.priority, &self.spec.strategy.weighted) {
            (Some(_), None) => Some(StrategyKind::Priority),
            (None, Some(_)) => Some(StrategyKind::Weighted),
            _ => None,
        }
    }

    /// Every routing key with the router's `listenerAddress` value, as Skupper computes it
    /// (`internal/site/multikeylistener.go`): for priority the first key gets the highest
    /// value (keys − 1) down to 0 for the last; for weighted the value is the weight. Weighted
    /// keys come sorted by key.
    pub fn keyed_values(&self) -> Vec<(&str, i64)> {
        let strategy = &self.spec.strategy;
        if let Some(priority) = &strategy.priority {
            let count = priority.routing_keys.len() as i64;
            priority
                .routing_keys
                .iter()
                .enumerate()
                .map(|(index, key)| (key.as_str(), count - 1 - index as i64))
                .collect()
        } else if let Some(weighted) = &strategy.weighted {
            weighted
                .routing_keys
                .iter()
                .map(|(key, weight)| (key.as_str(), i64::from(*weight)))
                .collect()
        } else {
            Vec::new()
        }
    }
}

impl RouterAccess {
    /// The server certificate name: `spec.tlsCredentials`, or the RouterAccess name (non-kube default).
    pub fn tls_credentials(&self) -> &str {
        if self.spec.tls_credentials.is_empty() {
            &self.metadata.name
        } else {
            &self.spec.tls_credentials
        }
    }

    /// Whether remote routers can link to this access (it has an inter-router or edge role).
    pub fn accepts_links(&self) -> bool {
        self.spec
            .roles
            .iter()
            .any(|role| matches!(role.name.as_str(), "inter-router" | "edge"))
    }
}

/// A core v1 Secret; `data` values are base64 as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub secret_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

impl Secret {
    /// Decodes one data entry; `None` when absent.
    pub fn decoded(&self, key: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.data
            .get(key)
            .map(|value| base64::engine::general_purpose::STANDARD.decode(value.trim()))
    }

    /// Stores `bytes` base64-encoded under `key`.
    pub fn insert(&mut self, key: &str, bytes: &[u8]) {
        self.data.insert(
            key.to_string(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
}

/// The kinds vansite keeps, the Site first, each before the kinds it refers to: the order in
/// which a site's objects are listed and removed, and the reverse of the order in which they
/// are written, so that a write cut short never leaves an object pointing at a missing one.
pub const KINDS: [&str; 9] = [
    "Site",
    "RouterAccess",
    "Link",
    "Listener",
    "MultiKeyListener",
    "Connector",
    "AccessGrant",
    "AccessToken",
    "Secret",
];

/// One object vansite understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Site(Site),
    RouterAccess(RouterAccess),
    Link(Link),
    Listener(Listener),
    MultiKeyListener(MultiKeyListener),
    Connector(Connector),
    AccessGrant(AccessGrant),
    AccessToken(AccessToken),
    Secret(Secret),
}

/// A document that was read but skipped (another API group, or a Skupper kind vansite does not use).
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedDocument {
    pub document: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// What a YAML stream held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedDocuments {
    pub resources: Vec<Resource>,
    pub skipped: Vec<SkippedDocument>,
}

/// The apiVersion/kind/metadata/spec layout written back out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, Spec> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a ObjectMeta,
    spec: &'a Spec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretEnvelope<'a> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    secret: &'a Secret,
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Site(_) => "Site",
            Resource::RouterAccess(_) => "RouterAccess",
            Resource::Link(_) => "Link",
            Resource::Listener(_) => "Listener",
            Resource::MultiKeyListener(_) => "MultiKeyListener",
            Resource::Connector(_) => "Connector",
            Resource::AccessGrant(_) => "AccessGrant",
            Resource::AccessToken(_) => "AccessToken",
            Resource::Secret(_) => "Secret",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::Site(o) => &o.metadata,
            Resource::RouterAccess(o) => &o.metadata,
            Resource::Link(o) => &o.metadata,
            Resource::Listener(o) => &o.metadata,
            Resource::MultiKeyListener(o) => &o.metadata,
            Resource::Connector(o) => &o.metadata,
            Resource::AccessGrant(o) => &o.metadata,
            Resource::AccessToken(o) => &o.metadata,
            Resource::Secret(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::Site(o) => &mut o.metadata,
            Resource::RouterAccess(o) => &mut o.metadata,
            Resource::Link(o) => &mut o.metadata,
            Resource::Listener(o) => &mut o.metadata,
            Resource::MultiKeyListener(o) => &mut o.metadata,
            Resource::Connector(o) => &mut o.metadata,
            Resource::AccessGrant(o) => &mut o.metadata,
            Resource::AccessToken(o) => &mut o.metadata,
            Resource::Secret(o) => &mut o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind(),
            name: self.name().to_string(),
        }
    }

    /// The file name Skupper expects for this object: `<Kind>-<name>.yaml`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.yaml", self.kind(), self.name())
    }

    /// The object as a YAML document that `kubectl apply` and Skupper accept.
    pub fn to_yaml(&self) -> Result<String, ResourceError> {
        fn envelope<Spec: Serialize>(
            kind: &'static str,
            object: &Object<Spec>,
        ) -> Result<String, serde_saphyr::ser::Error> {
            serde_saphyr::to_string(&Envelope {
                api_version: SKUPPER_API_VERSION,
                kind,
                metadata: &object.metadata,
                spec: &object.spec,
            })
        }
        let kind = self.kind();
        let text = match self {
            Resource::Site(o) => envelope(kind, o),
            Resource::RouterAccess(o) => envelope(kind, o),
            Resource::Link(o) => envelope(kind, o),
            Resource::Listener(o) => envelope(kind, o),
            Resource::MultiKeyListener(o) => envelope(kind, o),
            Resource::Connector(o) => envelope(kind, o),
            Resource::AccessGrant(o) => envelope(kind, o),
            Resource::AccessToken(o) => envelope(kind, o),
            Resource::Secret(secret) => serde_saphyr::to_string(&SecretEnvelope {
                api_version: "v1",
                kind,
                secret,
            }),
        };
        text.map_err(|error| ResourceError::Serialize {
            object: self.object_ref(),
            message: error.to_string(),
        })
    }

    /// Checks what can be checked on this object alone (names, required fields, allowed values).
    pub fn validate(&self) -> Result<(), ResourceError> {
        let object = self.object_ref();
        let invalid = |field: &'static str, problem: String| ResourceError::Invalid {
            object: object.clone(),
            field,
            problem,
        };
        let metadata = self.metadata();
        if metadata.name.is_empty() {
            return Err(invalid("metadata.name", "is required".into()));
        }
        check_name(&metadata.name).map_err(|problem| invalid("metadata.name", problem))?;
        if !metadata.namespace.is_empty() {
            check_name(&metadata.namespace)
                .map_err(|problem| invalid("metadata.namespace", problem))?;
        }
        match self {
            Resource::Site(site) => {
                if site.spec.edge && site.spec.ha {
                    return Err(invalid(
                        "spec.ha",
                        "an edge site cannot have HA enabled; drop one of edge/ha".into(),
                    ));
                }
            }
            Resource::RouterAccess(access) => validate_router_access(access, &invalid)?,
            Resource::Link(link) => {
                if link.spec.endpoints.is_empty() {
                    return Err(invalid(
                        "spec.endpoints",
                        "is required (at least one endpoint)".into(),
                    ));
                }
                for endpoint in &link.spec.endpoints {
                    if endpoint.name.is_empty() || endpoint.host.is_empty() {
                        return Err(invalid(
                            "spec.endpoints",
                            "every endpoint needs a name (inter-router or edge) and a host".into(),
                        ));
                    }
                    check_port_text(&endpoint.port)
                        .map_err(|problem| invalid("spec.endpoints[].port", problem))?;
                }
                if link.spec.tls_credentials.is_empty() {
                    return Err(invalid(
                        "spec.tlsCredentials",
                        "is required: the Secret with the link's client certificate".into(),
                    ));
                }
            }
            Resource::Listener(listener) => {
                let spec = &listener.spec;
                require("spec.routingKey", &spec.routing_key, &invalid)?;
                require("spec.host", &spec.host, &invalid)?;
                check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
                if spec.port == 0 {
                    return Err(invalid("spec.port", "is required (1-65535)".into()));
                }
                check_tcp_type(&spec.listener_type)
                    .map_err(|problem| invalid("spec.type", problem))?;
                check_observer(&spec.observer)
                    .map_err(|problem| invalid("spec.observer", problem))?;
            }
            Resource::MultiKeyListener(listener) => {
                validate_multi_key_listener(listener, &invalid)?
            }
            Resource::Connector(connector) => {
                let spec = &connector.spec;
                require("spec.routingKey", &spec.routing_key, &invalid)?;
                require("spec.host", &spec.host, &invalid)?;
                check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
                if spec.port == 0 {
                    return Err(invalid("spec.port", "is required (1-65535)".into()));
                }
                check_tcp_type(&spec.connector_type)
                    .map_err(|problem| invalid("spec.type", problem))?;
            }
            Resource::AccessGrant(_) => {}
            Resource::AccessToken(token) => {
                require("spec.url", &token.spec.url, &invalid)?;
                require("spec.code", &token.spec.code, &invalid)?;
                require("spec.ca", &token.spec.ca, &invalid)?;
                if !token.spec.url.starts_with("https://") {
                    return Err(invalid("spec.url", "must be an https:// URL".into()));
                }
            }
            Resource::Secret(secret) => {
                for key in secret.data.keys() {
                    if let Some(Err(error)) = secret.decoded(key) {
                        return Err(ResourceError::Invalid {
                            object: object.clone(),
                            field: "data",
                            problem: format!("'{key}' is not valid base64: {error}"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Builds the typed object from a document already known to be `kind`.
    fn from_value(kind: &str, value: Value) -> Result<Option<Self>, serde_json::Error> {
        Ok(Some(match kind {
            "Site" => Resource::Site(serde_json::from_value(value)?),
            "RouterAccess" => Resource::RouterAccess(serde_json::from_value(value)?),
            "Link" => Resource::Link(serde_json::from_value(value)?),
            "Listener" => Resource::Listener(serde_json::from_value(value)?),
            "MultiKeyListener" => Resource::MultiKeyListener(serde_json::from_value(value)?),
            "Connector" => Resource::Connector(serde_json::from_value(value)?),
            "AccessGrant" => Resource::AccessGrant(serde_json::from_value(value)?),
            "AccessToken" => Resource::AccessToken(serde_json::from_value(value)?),
            _ => return Ok(None),
        }))
    }
}

fn require(
    field: &'static str,
    value: &str,
    invalid: &impl Fn(&'static str, String) -> ResourceError,
) -> Result<(), ResourceError> {
    if value.is_empty() {
        Err(invalid(field, "is required".into()))
    } else {
        Ok(())
    }
}

/// Skupper's checks (`site_state_validator.go` `validateMultiKeyListeners` and the CRD):
/// host and port, exactly one strategy, 1 to 256 non-empty keys (unique for priority),
/// weights of at least 1.
fn validate_multi_key_listener(
    listener: &MultiKeyListener,
    invalid: &impl Fn(&'static str, String) -> ResourceError,
) -> Result<(), ResourceError> {
    let spec = &listener.spec;
    require("spec.host", &spec.host, invalid)?;
    check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
    if spec.port == 0 {
        return Err(invalid("spec.port", "is required (1-65535)".into()));
    }
    check_observer(&spec.observer).map_err(|problem| invalid("spec.observer", problem))?;
    let keys: Vec<&String> = match (&spec.strategy.priority, &spec.strategy.weighted) {
        (None, None) => {
            return Err(invalid(
                "spec.strategy",
                "is required: give either strategy.priority or strategy.weighted".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.strategy",
                "give only one of strategy.priority or strategy.weighted".into(),
            ))
        }
        (Some(priority), None) => {
            let mut seen = BTreeSet::new();
            for key in &priority.routing_keys {
                if !seen.insert(key) {
                    return Err(invalid(
                        "spec.strategy.priority.routingKeys",
                        format!("routing key '{key}' is listed twice"),
                    ));
                }
            }
            priority.routing_keys.iter().collect()
        }
        (None, Some(weighted)) => {
            if let Some((key, _)) = weighted.routing_keys.iter().find(|(_, w)| **w == 0) {
                return Err(invalid(
                    "spec.strategy.weighted.routingKeys",
                    format!("the weight of '{key}' must be positive (at least 1)"),
                ));
            }
            weighted.routing_keys.keys().collect()
        }
    };
    let field = match listener.strategy_kind() {
        Some(StrategyKind::Weighted) => "spec.strategy.weighted.routingKeys",
        _ => "spec.strategy.priority.routingKeys",
    };
    if keys.is_empty() {
        return Err(invalid(
            field,
            "must not be empty (1 to 256 routing keys)".into(),
        ));
    }
    if keys.len() > MAX_STRATEGY_KEYS {
        return Err(invalid(
            field,
            format!(
                "has {} routing keys; at most {MAX_STRATEGY_KEYS} are allowed",
                keys.len()
            ),
        ));
    }
    if keys.iter().any(|key| key.is_empty()) {
        return Err(invalid(field, "a routing key must not be empty".into()));
    }
    Ok(())
}

fn check_observer(observer: &str) -> Result<(), String> {
    if matches!(observer, "" | "auto" | "none" | "http1" | "http2") {
        Ok(())
    } else {
        Err(format!(
            "'{observer}' is not one of auto, none, http1, http2"
        ))
    }
}

fn validate_router_access(
    access: &RouterAccess,
    invalid: &impl Fn(&'static str, String) -> ResourceError,
) -> Result<(), ResourceError> {
    let spec = &access.spec;
    if !spec.tls_credentials.is_empty() {
        check_name(&spec.tls_credentials)
            .map_err(|problem| invalid("spec.tlsCredentials", problem))?;
    }
    if spec.roles.is_empty() {
        return Err(invalid(
            "spec.roles",
            "is required (inter-router and/or edge)".into(),
        ));
    }
    let is_local = access.metadata.name == LOCAL_ROUTER_ACCESS;
    let mut seen = BTreeSet::new();
    for role in &spec.roles {
        let allowed = if is_local {
            role.name == "normal"
        } else {
            matches!(role.name.as_str(), "inter-router" | "edge")
        };
        if !allowed {
            let expected = if is_local {
                format!("'{LOCAL_ROUTER_ACCESS}' is reserved for the local management access and takes only role normal")
            } else {
                "valid roles: inter-router, edge".to_string()
            };
            return Err(invalid(
                "spec.roles",
                format!("invalid role '{}' ({expected})", role.name),
            ));
        }
        if !seen.insert(role.name.as_str()) {
            return Err(invalid(
                "spec.roles",
                format!("role '{}' is listed twice", role.name),
            ));
        }
    }
    Ok(())
}

/// RFC 1123 label, as Skupper's validator (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) plus the 63-character limit.
pub fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let valid_ends = matches!((bytes.first(), bytes.last()), (Some(first), Some(last))
        if *first != b'-' && *last != b'-');
    if !valid_chars || !valid_ends {
        return Err(format!(
            "'{name}' is not a valid name: use lower case letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-name')"
        ));
    }
    if name.len() > 63 {
        return Err(format!(
            "'{name}' is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    Ok(())
}

/// A listener or connector host: an IP address or a lower-case host name (Skupper's `hostnameRfc1123Regex`).
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = host.split(['.', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }) && !host.contains("..")
        && !host.contains("--")
        && !host.contains(".-")
        && !host.contains("-.");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{host}' is neither an IP address nor a valid lower-case host name"
        ))
    }
}

fn check_port_text(port: &str) -> Result<(), String> {
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("'{port}' is not a port number (1-65535)")),
    }
}

fn check_tcp_type(value: &str) -> Result<(), String> {
    if matches!(value, "" | "tcp") {
        Ok(())
    } else {
        Err(format!("'{value}' is not supported; only tcp"))
    }
}

/// Reads a YAML stream (one or more `---`-separated documents). `source_name` (a file path, or
/// `<stdin>`) is used in messages. Each object is validated on its own; see [`SiteResources`]
/// for the checks across objects.
pub fn parse_documents(text: &str, source_name: &str) -> Result<ParsedDocuments, ResourceError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| ResourceError::Yaml {
            source_name: source_name.to_string(),
            message: error.to_string(),
        })?;
    let mut parsed = ParsedDocuments::default();
    for (index, value) in documents.into_iter().enumerate() {
        let document = index + 1;
        let problem = |problem: String| ResourceError::Document {
            source_name: source_name.to_string(),
            document,
            problem,
        };
        let map = match &value {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => {
                return Err(problem(
                    "expected a mapping with apiVersion and kind".into(),
                ))
            }
        };
        let text_field = |field: &str| -> Result<String, ResourceError> {
            match map.get(field) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                _ => Err(problem(format!("{field} is missing or not a string"))),
            }
        };
        let api_version = text_field("apiVersion")?;
        let kind = text_field("kind")?;
        let name = map
            .get("metadata")
            .and_then(|metadata| metadata.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let skipped = SkippedDocument {
            document,
            api_version: api_version.clone(),
            kind: kind.clone(),
            name: name.clone(),
        };
        let resource = match (api_version.as_str(), kind.as_str()) {
            ("v1", "Secret") => serde_json::from_value(value)
                .map(|secret| Some(Resource::Secret(secret)))
                .map_err(|error| (error, "Secret")),
            (SKUPPER_API_VERSION, kind) if SKIPPED_SKUPPER_KINDS.contains(&kind) => Ok(None),
            (SKUPPER_API_VERSION, kind) => match Resource::from_value(kind, value) {
                Ok(Some(resource)) => Ok(Some(resource)),
                Ok(None) => {
                    return Err(ResourceError::UnknownKind {
                        source_name: source_name.to_string(),
                        document,
                        kind: kind.to_string(),
                    })
                }
                Err(error) => Err((error, static_kind(kind))),
            },
            _ => Ok(None),
        };
        let in_document = |source: ResourceError| ResourceError::InDocument {
            source_name: source_name.to_string(),
            document,
            source: Box::new(source),
        };
        match resource {
            Ok(Some(resource)) => {
                resource.validate().map_err(in_document)?;
                parsed.resources.push(resource);
            }
            Ok(None) => parsed.skipped.push(skipped),
            Err((error, kind)) => {
                return Err(in_document(ResourceError::Shape {
                    object: ObjectRef { kind, name },
                    message: error.to_string(),
                }))
            }
        }
    }
    Ok(parsed)
}

/// The `&'static str` for a kind [`Resource::from_value`] knows.
fn static_kind(kind: &str) -> &'static str {
    KINDS
        .into_iter()
        .find(|known| *known == kind)
        .unwrap_or("object")
}

/// The resources of one namespace, checked as a whole: exactly one Site, one namespace, unique
/// names per kind, references that resolve, no port used twice.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteResources {
    pub namespace: String,
    pub site: Site,
    pub router_accesses: Vec<RouterAccess>,
    pub links: Vec<Link>,
    pub listeners: Vec<Listener>,
    pub multi_key_listeners: Vec<MultiKeyListener>,
    pub connectors: Vec<Connector>,
    pub access_grants: Vec<AccessGrant>,
    pub access_tokens: Vec<AccessToken>,
    pub secrets: Vec<Secret>,
}

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
        let mut sites = Vec::new();
        let mut set = SiteResources {
            namespace: namespace.to_string(),
            site: Site::default(),
            router_accesses: Vec::new(),
            links: Vec::new(),
            listeners: Vec::new(),
            multi_key_listeners: Vec::new(),
            connectors: Vec::new(),
            access_grants: Vec::new(),
            access_tokens: Vec::new(),
            secrets: Vec::new(),
        };
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
            match resource {
                Resource::Site(site) => sites.push(site),
                Resource::RouterAccess(o) => set.router_accesses.push(o),
                Resource::Link(o) => set.links.push(o),
                Resource::Listener(o) => set.listeners.push(o),
                Resource::MultiKeyListener(o) => set.multi_key_listeners.push(o),
                Resource::Connector(o) => set.connectors.push(o),
                Resource::AccessGrant(o) => set.access_grants.push(o),
                Resource::AccessToken(o) => set.access_tokens.push(o),
                Resource::Secret(o) => set.secrets.push(o),
            }
        }
        set.site = match sites.len() {
            0 => return Err(ResourceError::NoSite),
            1 => sites.remove(0),
            _ => {
                return Err(ResourceError::SeveralSites(
                    sites.into_iter().map(|site| site.metadata.name).collect(),
                ))
            }
        };
        let by_name = |a: &ObjectMeta, b: &ObjectMeta| a.name.cmp(&b.name);
        set.router_accesses
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.links.sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.listeners
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.multi_key_listeners
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.connectors
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.access_grants
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.access_tokens
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
        set.secrets
            .sort_by(|a, b| by_name(&a.metadata, &b.metadata));
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

    /// Every object, in [`KINDS`] order: the Site first, and each object before the objects
    /// it refers to (a Link before its Secret).
    pub fn to_resources(&self) -> Vec<Resource> {
        let mut all = vec![Resource::Site(self.site.clone())];
        all.extend(
            self.router_accesses
                .iter()
                .cloned()
                .map(Resource::RouterAccess),
        );
        all.extend(self.links.iter().cloned().map(Resource::Link));
        all.extend(self.listeners.iter().cloned().map(Resource::Listener));
        all.extend(
            self.multi_key_listeners
                .iter()
                .cloned()
                .map(Resource::MultiKeyListener),
        );
        all.extend(self.connectors.iter().cloned().map(Resource::Connector));
        all.extend(
            self.access_grants
                .iter()
                .cloned()
                .map(Resource::AccessGrant),
        );
        all.extend(
            self.access_tokens
                .iter()
                .cloned()
                .map(Resource::AccessToken),
        );
        all.extend(self.secrets.iter().cloned().map(Resource::Secret));
        all
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
    use super::*;

    /// Shaped like what `skupper link generate` / grant redemption writes (skupper-formats §2.3),
    /// with the fields Go serializers add.
    const LINK_AND_SECRET: &str = r#"---
apiVersion: v1
kind: Secret
metadata:
  name: my-token
  creationTimestamp: null
type: kubernetes.io/tls
data:
  ca.crt: Y2E=
  tls.crt: Y3J0
  tls.key: a2V5
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata:
  name: my-token
  creationTimestamp: null
spec:
  tlsCredentials: my-token
  cost: 1
  endpoints:
  - {name: inter-router, host: 203.0.113.7, port: "55671", group: skupper-router}
  - {name: edge,         host: 203.0.113.7, port: "45671", group: skupper-router}
status: {}
"#;

    const SITE: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata:
  name: west
  namespace: default
  uid: 6f1c0000-0000-4000-8000-000000000001
spec:
  linkAccess: default
"#;

    fn parse(text: &str) -> Result<ParsedDocuments, ResourceError> {
        parse_documents(text, "test.yaml")
    }

    fn all(texts: &[&str]) -> Vec<Resource> {
        texts
            .iter()
            .flat_map(|text| parse(text).expect("valid").resources)
            .collect()
    }

    #[test]
    fn parses_link_and_secret_stream() {
        let parsed = parse(LINK_AND_SECRET).unwrap();
        assert!(parsed.skipped.is_empty());
        let [Resource::Secret(secret), Resource::Link(link)] = parsed.resources.as_slice() else {
            panic!("unexpected {:?}", parsed.resources)
        };
        assert_eq!(secret.secret_type, "kubernetes.io/tls");
        assert_eq!(secret.decoded("ca.crt").unwrap().unwrap(), b"ca");
        assert_eq!(link.spec.cost, 1);
        let endpoint = link.spec.endpoint_for_role("edge").unwrap();
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port.as_str()),
            ("203.0.113.7", "45671")
        );
        assert_eq!(link.spec.endpoints[0].group, "skupper-router");
    }

    #[test]
    fn parses_access_token_with_block_ca() {
        let text = r#"apiVersion: skupper.io/v2alpha1
kind: AccessToken
metadata: {name: west-grant}
spec:
  url: https://10.107.241.191:9090/86b80f6b-2b02-47ac-bab4-d285bb4f7b9d
  code: L1qCl2mZ7D81gbXp3ax4YT0K
  ca: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
  linkCost: 1
"#;
        let parsed = parse(text).unwrap();
        let [Resource::AccessToken(token)] = parsed.resources.as_slice() else {
            panic!()
        };
        assert!(token
            .spec
            .ca
            .starts_with("-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert_eq!(token.spec.link_cost, 1);
        // Round trip keeps the PEM intact.
        let again = parse(&parsed.resources[0].to_yaml().unwrap()).unwrap();
        assert_eq!(again.resources, parsed.resources);
    }

    #[test]
    fn round_trips_every_kind_through_yaml() {
        let access = RouterAccess {
            metadata: ObjectMeta::named("west"),
            spec: RouterAccessSpec {
                roles: vec![
                    RouterAccessRole {
                        name: "inter-router".into(),
                        port: 55671,
                    },
                    RouterAccessRole {
                        name: "edge".into(),
                        port: 45671,
                    },
                ],
                tls_credentials: "west".into(),
                issuer: "skupper-site-ca".into(),
                subject_alternative_names: vec!["west.example".into(), "192.0.2.1".into()],
                ..Default::default()
            },
        };
        let listener = Listener {
            metadata: ObjectMeta::named("backend"),
            spec: ListenerSpec {
                routing_key: "backend".into(),
                host: "0.0.0.0".into(),
                port: 8080,
                ..Default::default()
            },
        };
        let connector = Connector {
            metadata: ObjectMeta::named("backend"),
            spec: ConnectorSpec {
                routing_key: "backend".into(),
                host: "localhost".into(),
                port: 8080,
                ..Default::default()
            },
        };
        let grant = AccessGrant {
            metadata: ObjectMeta::named("grant"),
            spec: AccessGrantSpec {
                expiration_window: "15m".into(),
                ..Default::default()
            },
        };
        let mut resources = all(&[SITE, LINK_AND_SECRET, PRIORITY_MKL, WEIGHTED_MKL]);
        resources.extend([
            Resource::RouterAccess(access),
            Resource::Listener(listener),
            Resource::Connector(connector),
            Resource::AccessGrant(grant),
        ]);
        for resource in &resources {
            let yaml = resource.to_yaml().unwrap();
            let again = parse(&yaml).unwrap();
            assert_eq!(again.resources, vec![resource.clone()], "{yaml}");
        }
    }

    #[test]
    fn writes_kubectl_shaped_yaml() {
        let resources = all(&[SITE]);
        let yaml = resources[0].to_yaml().unwrap();
        assert_eq!(
            yaml,
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n  namespace: default\n  uid: 6f1c0000-0000-4000-8000-000000000001\nspec:\n  linkAccess: default\n"
        );
        assert_eq!(resources[0].file_name(), "Site-west.yaml");
        let secret = parse(LINK_AND_SECRET).unwrap().resources.remove(0);
        let yaml = secret.to_yaml().unwrap();
        assert!(yaml.starts_with("apiVersion: v1\nkind: Secret\nmetadata:\n  name: my-token\ntype: kubernetes.io/tls\ndata:\n"), "{yaml}");
        assert_eq!(secret.file_name(), "Secret-my-token.yaml");
    }

    #[test]
    fn skips_other_groups_and_unused_skupper_kinds() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: skupper.io/v2alpha1\nkind: Certificate\nmetadata: {name: c}\n---\n";
        let parsed = parse(text).unwrap();
        assert!(parsed.resources.is_empty());
        assert_eq!(parsed.skipped.len(), 2);
        assert_eq!(parsed.skipped[0].kind, "Deployment");
        assert_eq!(parsed.skipped[1].document, 2);
    }

    #[test]
    fn truncated_yaml_is_an_error_naming_the_file() {
        let error = parse("apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: [west\n")
            .unwrap_err();
        assert!(matches!(error, ResourceError::Yaml { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with("test.yaml: not valid YAML"),
            "{error}"
        );
    }

    #[test]
    fn unknown_skupper_kind_is_an_error() {
        let error = parse("apiVersion: skupper.io/v2alpha1\nkind: Sit\nmetadata: {name: west}\n")
            .unwrap_err();
        assert!(error.to_string().contains("unknown kind 'Sit'"), "{error}");
    }

    #[test]
    fn document_without_kind_is_an_error() {
        let error = parse("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "test.yaml, document 1: kind is missing or not a string"
        );
        let error = parse("- a\n- b\n").unwrap_err();
        assert!(error.to_string().contains("expected a mapping"), "{error}");
    }

    #[test]
    fn bad_name_is_an_error_naming_object_and_field() {
        let error = parse(&SITE.replace("name: west", "name: West_1")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(
                "test.yaml, document 1: Site/West_1: metadata.name: 'West_1' is not a valid name"
            ),
            "{text}"
        );
        assert!(check_name(&"a".repeat(64))
            .unwrap_err()
            .contains("at most 63"));
        assert!(check_name(&"a".repeat(63)).is_ok());
        assert!(check_name("-a").is_err() && check_name("a-").is_err() && check_name("").is_err());
    }

    #[test]
    fn wrong_field_type_is_an_error_naming_the_field() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {name: l}\n\
                    spec: {routingKey: k, host: 0.0.0.0, port: eighty}\n";
        let text = parse(text).unwrap_err().to_string();
        assert!(
            text.contains("Listener/l") && text.contains("eighty"),
            "{text}"
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata: {name: c}\n\
                    spec: {routingKey: k, port: 80}\n";
        assert!(parse(text)
            .unwrap_err()
            .to_string()
            .contains("spec.host: is required"));
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata: {name: l}\nspec: {tlsCredentials: s}\n";
        assert!(parse(text)
            .unwrap_err()
            .to_string()
            .contains("spec.endpoints: is required"));
        let text = "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata: {name: t}\n\
                    spec: {url: 'http://x', code: c, ca: x}\n";
        assert!(parse(text).unwrap_err().to_string().contains("https://"));
    }

    #[test]
    fn router_access_roles_are_checked() {
        let access = |name: &str, roles: &str| {
            format!("apiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {{name: {name}}}\nspec:\n  tlsCredentials: x\n  roles: {roles}\n")
        };
        assert!(parse(&access(
            "west",
            "[{name: inter-router, port: 55671}, {name: edge}]"
        ))
        .is_ok());
        assert!(parse(&access("skupper-local", "[{name: normal, port: 5671}]")).is_ok());
        let error = parse(&access("west", "[{name: normal}]"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("invalid role 'normal' (valid roles: inter-router, edge)"),
            "{error}"
        );
        let error = parse(&access("skupper-local", "[{name: edge}]"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("reserved"), "{error}");
        assert!(parse(&access("west", "[]"))
            .unwrap_err()
            .to_string()
            .contains("spec.roles"));
        assert!(parse(&access("west", "[{name: edge}, {name: edge}]")).is_err());
    }

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

    /// The CRD's fields in Go's order, quoted as vansite writes them.
    const PRIORITY_MKL: &str = r#"apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata:
  name: db
  annotations:
    vansite.io/router-port: "41001"
spec:
  host: "0.0.0.0"
  port: 5432
  tlsCredentials: db-tls
  requireClientCert: true
  strategy:
    priority:
      routingKeys:
      - db-primary
      - db-replica
  observer: none
"#;

    const WEIGHTED_MKL: &str = r#"apiVersion: skupper.io/v2alpha1
kind: MultiKeyListener
metadata:
  name: web
spec:
  host: localhost
  port: 8080
  strategy:
    weighted:
      routingKeys:
        web-blue: 3
        web-green: 1
"#;

    fn mkl(text: &str) -> MultiKeyListener {
        match parse(text).expect("valid").resources.remove(0) {
            Resource::MultiKeyListener(listener) => listener,
            other => panic!("not a MultiKeyListener: {other:?}"),
        }
    }

    #[test]
    fn multi_key_listener_round_trips_in_skuppers_shape() {
        let priority = mkl(PRIORITY_MKL);
        assert_eq!(priority.spec.port, 5432);
        assert!(priority.spec.require_client_cert);
        assert_eq!(priority.strategy_kind(), Some(StrategyKind::Priority));
        assert_eq!(priority.router_port(), Some(41001));
        let resource = Resource::MultiKeyListener(priority);
        assert_eq!(resource.to_yaml().unwrap(), PRIORITY_MKL);
        assert_eq!(resource.file_name(), "MultiKeyListener-db.yaml");
        let weighted = mkl(WEIGHTED_MKL);
        assert_eq!(weighted.strategy_kind(), Some(StrategyKind::Weighted));
        assert_eq!(weighted.router_port(), None);
        assert_eq!(
            Resource::MultiKeyListener(weighted).to_yaml().unwrap(),
            WEIGHTED_MKL
        );
    }

    #[test]
    fn multi_key_listener_values_follow_skupper() {
        // Priority: the first key the highest value, the last 0 (numKeys - 1 - i).
        let three = PRIORITY_MKL.replace(
            "      - db-replica\n",
            "      - db-replica\n      - db-backup\n",
        );
        assert_eq!(
            mkl(&three).keyed_values(),
            vec![("db-primary", 2), ("db-replica", 1), ("db-backup", 0)]
        );
        assert_eq!(
            mkl(WEIGHTED_MKL).keyed_values(),
            vec![("web-blue", 3), ("web-green", 1)]
        );
    }

    #[test]
    fn multi_key_listener_strategy_is_checked() {
        let error = |text: &str| parse(text).unwrap_err().to_string();
        let no_strategy =
            "apiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {name: m}\n\
                           spec: {host: 0.0.0.0, port: 80}\n";
        assert!(
            error(no_strategy).contains("spec.strategy: is required"),
            "{}",
            error(no_strategy)
        );
        let both = format!(
            "{}    weighted:\n      routingKeys: {{a: 1}}\n",
            PRIORITY_MKL.replace("  observer: none\n", "")
        );
        assert!(error(&both).contains("only one of"), "{}", error(&both));
        let empty = PRIORITY_MKL.replace(
            "      routingKeys:\n      - db-primary\n      - db-replica\n",
            "      routingKeys: []\n",
        );
        assert!(
            error(&empty).contains("must not be empty"),
            "{}",
            error(&empty)
        );
        let twice = PRIORITY_MKL.replace("db-replica", "db-primary");
        assert!(error(&twice).contains("listed twice"), "{}", error(&twice));
        let blank = PRIORITY_MKL.replace("db-replica", "''");
        assert!(
            error(&blank).contains("must not be empty"),
            "{}",
            error(&blank)
        );
        let zero = WEIGHTED_MKL.replace("web-green: 1", "web-green: 0");
        assert!(
            error(&zero).contains("'web-green' must be positive"),
            "{}",
            error(&zero)
        );
        let negative = WEIGHTED_MKL.replace("web-green: 1", "web-green: -1");
        assert!(error(&negative).contains("MultiKeyListener/web"));
        let no_port = WEIGHTED_MKL.replace("  port: 8080\n", "");
        assert!(error(&no_port).contains("spec.port: is required"));
        let bad_host = WEIGHTED_MKL.replace("localhost", "Local_Host");
        assert!(error(&bad_host).contains("spec.host"));
        let observer = PRIORITY_MKL.replace("observer: none", "observer: http3");
        assert!(error(&observer).contains("spec.observer"));
        let many: String = (0..257).map(|i| format!("      - k{i}\n")).collect();
        let too_many = PRIORITY_MKL.replace("      - db-primary\n      - db-replica\n", &many);
        assert!(
            error(&too_many).contains("at most 256"),
            "{}",
            error(&too_many)
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

    #[test]
    fn listener_host_must_be_ip_or_hostname() {
        assert!(check_host("backend.svc-1.local").is_ok());
        assert!(check_host("::1").is_ok());
        for bad in ["Backend", "a..b", "-a", "a b", ""] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}

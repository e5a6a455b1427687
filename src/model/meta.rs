//! What every kind shares: how an object is named in messages, its metadata, the
//! `metadata`/`spec` shape of Skupper objects, and the YAML document it is written as.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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

/// Annotation on a Secret vansite made from a service's `--tls-cert`/`--tls-key`/`--tls-ca`
/// files: the service it was made for, as `Kind/name`. Such a Secret is removed once no
/// service names it; one the user applied is never removed by a service command.
pub const SERVICE_CREDENTIALS_ANNOTATION: &str = "vansite.io/service-credentials";

/// `settings` on every Skupper spec: free-form string pairs.
pub type Settings = BTreeMap<String, String>;

pub(super) fn is_false(value: &bool) -> bool {
    !*value
}

pub(super) fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// A Skupper object: metadata and a kind-specific spec (status is not kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Object<Spec> {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Spec,
}

/// How an object is written as one YAML document, given its apiVersion and kind from the
/// registry.
pub(super) trait Document {
    fn to_document(
        &self,
        api_version: &'static str,
        kind: &'static str,
    ) -> Result<String, serde_saphyr::ser::Error>;
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

impl<Spec: Serialize> Document for Object<Spec> {
    fn to_document(
        &self,
        api_version: &'static str,
        kind: &'static str,
    ) -> Result<String, serde_saphyr::ser::Error> {
        serde_saphyr::to_string(&Envelope {
            api_version,
            kind,
            metadata: &self.metadata,
            spec: &self.spec,
        })
    }
}

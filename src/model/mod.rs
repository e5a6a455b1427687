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
//!
//! One file per kind (its types, its own checks, its helpers); the kinds are listed once, in
//! `registry.rs`, which generates [`Resource`], [`KINDS`] and the fields of [`SiteResources`].
//! Shared: `meta.rs` (metadata, `Object<Spec>`, YAML documents), `check.rs` (names, hosts,
//! ports), `parse.rs` (YAML streams), `site_resources.rs` (the checks across objects).

mod check;
mod locate;
mod meta;
mod parse;
#[macro_use]
mod registry;
mod site_resources;
#[cfg(test)]
pub(crate) mod test_support;
mod vocabulary;

pub use check::check_name;
pub use meta::{
    Object, ObjectMeta, ObjectRef, Settings, ROUTER_PORT_ANNOTATION, SERVICE_CREDENTIALS_ANNOTATION,
};
use parse::field_words;
pub use parse::{parse_documents, ParsedDocuments, Place, SkippedDocument};
pub use vocabulary::{LinkRole, LinkState, PeerState, RouterMode};

/// The API version of every Skupper kind vansite reads and writes.
pub const SKUPPER_API_VERSION: &str = "skupper.io/v2alpha1";

/// The name Skupper reserves for the router's local management access (role `normal`).
pub const LOCAL_ROUTER_ACCESS: &str = "skupper-local";

// The registry: one line a kind. Each line declares the kind's module (`model/<file>.rs`, whose
// public items are re-exported here) and generates its `Resource` variant, its place in `KINDS`
// and its `SiteResources` field; see `registry.rs` for the columns.
kinds! {
//  variant(Rust type) in file                                apiVersion           field: one|many            file mode
    Site(Site) in site,                                       SKUPPER_API_VERSION, site: one,                 public;
    RouterAccess(RouterAccess) in router_access,              SKUPPER_API_VERSION, router_accesses: many,     public;
    Link(Link) in link,                                       SKUPPER_API_VERSION, links: many,               public;
    Listener(Listener) in listener,                           SKUPPER_API_VERSION, listeners: many,           public;
    MultiKeyListener(MultiKeyListener) in multi_key_listener, SKUPPER_API_VERSION, multi_key_listeners: many, public;
    Connector(Connector) in connector,                        SKUPPER_API_VERSION, connectors: many,          public;
    Certificate(Certificate) in certificate,                  SKUPPER_API_VERSION, certificates: many,        public;
    AccessGrant(AccessGrant) in access_grant,                 SKUPPER_API_VERSION, access_grants: many,       private;
    AccessToken(AccessToken) in access_token,                 SKUPPER_API_VERSION, access_tokens: many,       private;
    Secret(Secret) in secret,                                 "v1",                secrets: many,             private;
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{place}: not valid YAML: {message}")]
    Yaml { place: Place, message: String },
    #[error("{place}: {problem}")]
    Document { place: Place, problem: String },
    #[error(
        "{place}: unknown kind '{kind}' for apiVersion {SKUPPER_API_VERSION} (vansite reads {})",
        Resource::kinds_of(SKUPPER_API_VERSION).join(", ")
    )]
    UnknownKind { place: Place, kind: String },
    #[error("{place}: {source}")]
    InDocument {
        place: Place,
        source: Box<ResourceError>,
    },
    /// The document has the right kind but a field of the wrong type (`field` as
    /// `spec.endpoints[0].host`, empty for the document itself).
    #[error("{object}: {}{problem}", field_words(field))]
    Shape {
        object: ObjectRef,
        field: String,
        problem: String,
    },
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

/// What every kind shares; the per-kind dispatch (`kind`, `metadata`, `is_private`, …) is
/// generated by the registry.
impl ResourceError {
    /// Where in the input the problem is, for errors of a stream being read.
    pub fn place_mut(&mut self) -> Option<&mut Place> {
        match self {
            ResourceError::Yaml { place, .. }
            | ResourceError::Document { place, .. }
            | ResourceError::UnknownKind { place, .. }
            | ResourceError::InDocument { place, .. } => Some(place),
            _ => None,
        }
    }
}

impl Resource {
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
        self.to_document()
            .map_err(|error| ResourceError::Serialize {
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
        self.validate_spec(&invalid)
    }
}

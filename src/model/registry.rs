//! The registry of resource kinds: the `kinds!` table in `model/mod.rs` lists each kind
//! once; this macro turns it into the kind modules, `Resource`, `KINDS`, every per-kind
//! dispatch on `Resource`, and the fields of `SiteResources` with the grouping into them and
//! back out.
//!
//! A new kind is its file (its types, `impl Validate`, helpers, tests) plus one line in the
//! table.

use super::check::Invalid;
use super::ResourceError;

/// The checks of one kind on its own fields; the name and namespace, which every kind has, are
/// checked before (see `Resource::validate`).
pub(super) trait Validate {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let _ = invalid;
        Ok(())
    }
}

/// A kind a namespace holds exactly one of (a `one` slot in `SiteResources`).
pub(super) trait Singleton: Sized {
    fn exactly_one(found: Vec<Self>) -> Result<Self, ResourceError>;
}

/// One line a kind:
/// `Variant(RustType) in module, apiVersion, site_resources_field: one|many, public|private;`
/// - `module`: the kind's file, `model/<module>.rs`; its public items are re-exported from
///   `model`.
/// - `one`: the `SiteResources` field holds exactly one (the type implements [`Singleton`]);
///   `many`: a `Vec`, sorted by name.
/// - `private`: the stored file is readable by the user only (0600).
///
/// The order is `KINDS` order (see there).
macro_rules! kinds {
    ($(
        $variant:ident($ty:ty) in $module:ident, $api:expr, $field:ident: $slot:ident, $file:ident;
    )*) => {
        $(
            mod $module;
            pub use $module::*;
        )*

        /// The kinds vansite keeps, the Site first, each before the kinds it refers to: the
        /// order in which a site's objects are listed and removed, and the reverse of the order
        /// in which they are written, so that a write cut short never leaves an object pointing
        /// at a missing one.
        pub const KINDS: [&str; [$(stringify!($variant)),*].len()] = [$(stringify!($variant)),*];

        /// One object vansite understands.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Resource {
            $($variant($ty),)*
        }

        impl Resource {
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Resource::$variant(_) => stringify!($variant),)*
                }
            }

            pub fn api_version(&self) -> &'static str {
                match self {
                    $(Resource::$variant(_) => $api,)*
                }
            }

            pub fn metadata(&self) -> &$crate::model::ObjectMeta {
                match self {
                    $(Resource::$variant(o) => &o.metadata,)*
                }
            }

            pub fn metadata_mut(&mut self) -> &mut $crate::model::ObjectMeta {
                match self {
                    $(Resource::$variant(o) => &mut o.metadata,)*
                }
            }

            /// Whether the stored file is readable by the user only (Secrets, and grant codes).
            pub fn is_private(&self) -> bool {
                match self {
                    $(Resource::$variant(_) => kinds!(@private $file),)*
                }
            }

            /// The kind's own checks (`Validate`).
            fn validate_spec(&self, invalid: $crate::model::check::Invalid) -> Result<(), $crate::model::ResourceError> {
                match self {
                    $(Resource::$variant(o) => $crate::model::registry::Validate::validate_spec(o, invalid),)*
                }
            }

            /// The object as one YAML document (`Document`).
            fn to_document(&self) -> Result<String, serde_saphyr::ser::Error> {
                match self {
                    $(Resource::$variant(o) => $crate::model::meta::Document::to_document(o, $api, stringify!($variant)),)*
                }
            }

            /// Builds the typed object from a document of `api_version` and `kind`; `None`
            /// when no registered kind has both. A document of the wrong shape gives the
            /// error and the kind.
            fn from_document(
                api_version: &str,
                kind: &str,
                value: serde_json::Value,
            ) -> Option<Result<Resource, ($crate::model::parse::ShapeError, &'static str)>> {
                $(
                    if api_version == $api && kind == stringify!($variant) {
                        return Some(
                            serde_path_to_error::deserialize(value)
                                .map(Resource::$variant)
                                .map_err(|error| (error, stringify!($variant))),
                        );
                    }
                )*
                None
            }

            /// The kinds of one apiVersion, in [`KINDS`] order.
            fn kinds_of(api_version: &str) -> Vec<&'static str> {
                let mut kinds = Vec::new();
                $(
                    if api_version == $api {
                        kinds.push(stringify!($variant));
                    }
                )*
                kinds
            }
        }

        /// The resources of one namespace, checked as a whole: exactly one Site, one namespace,
        /// unique names per kind, references that resolve, no port used twice.
        #[derive(Debug, Clone, PartialEq)]
        pub struct SiteResources {
            pub namespace: String,
            $(pub $field: kinds!(@slot $slot $ty),)*
        }

        /// Objects sorted into one list per kind, before [`SiteResources`] checks them.
        #[derive(Default)]
        struct Grouped {
            $($field: Vec<$ty>,)*
        }

        impl Grouped {
            fn push(&mut self, resource: Resource) {
                match resource {
                    $(Resource::$variant(o) => self.$field.push(o),)*
                }
            }

            /// One object in each `one` slot, and each `many` slot sorted by name, so what is
            /// rendered from it does not depend on file order.
            fn into_site_resources(
                self,
                namespace: &str,
            ) -> Result<SiteResources, $crate::model::ResourceError> {
                Ok(SiteResources {
                    namespace: namespace.to_string(),
                    $($field: kinds!(@take $slot $ty, self.$field),)*
                })
            }
        }

        impl SiteResources {
            /// Every object, in [`KINDS`] order: the Site first, and each object before the
            /// objects it refers to (a Link before its Secret).
            pub fn to_resources(&self) -> Vec<Resource> {
                let mut all = Vec::new();
                $(all.extend(kinds!(@iter $slot self.$field).cloned().map(Resource::$variant));)*
                all
            }
        }
    };

    (@private private) => { true };
    (@private public) => { false };

    (@slot one $ty:ty) => { $ty };
    (@slot many $ty:ty) => { Vec<$ty> };

    (@take one $ty:ty, $list:expr) => { <$ty as $crate::model::registry::Singleton>::exactly_one($list)? };
    (@take many $ty:ty, $list:expr) => {{
        let mut list = $list;
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        list
    }};

    (@iter one $value:expr) => { std::iter::once(&$value) };
    (@iter many $list:expr) => { $list.iter() };
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        all, parse, LINK_AND_SECRET, PRIORITY_MKL, SITE, WEIGHTED_MKL,
    };
    use super::super::*;

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
    fn registry_lists_each_kind_once_with_its_file_mode() {
        // Each kind once, in this order (a new kind may go anywhere that keeps each kind
        // before the kinds it refers to).
        let order = [
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
        let positions: Vec<_> = order
            .iter()
            .map(|kind| KINDS.iter().position(|k| k == kind).expect(kind))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{KINDS:?}");
        assert_eq!(KINDS[0], "Site");
        assert_eq!(Resource::kinds_of("v1"), ["Secret"]);
        let skupper: Vec<_> = KINDS.into_iter().filter(|k| *k != "Secret").collect();
        assert_eq!(Resource::kinds_of(SKUPPER_API_VERSION), skupper);
        let private: Vec<_> = all(&[SITE, LINK_AND_SECRET])
            .iter()
            .map(|r| (r.kind(), r.is_private()))
            .collect();
        assert_eq!(
            private,
            [("Site", false), ("Secret", true), ("Link", false)]
        );
        assert!(Resource::AccessGrant(AccessGrant::default()).is_private());
        assert!(Resource::AccessToken(AccessToken::default()).is_private());
        assert!(!Resource::Listener(Listener::default()).is_private());
    }
}

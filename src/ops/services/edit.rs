//! The pure part of `listener|connector create|update`: a request's settings applied to the
//! site's resources. A listener is stored as Skupper stores it: a `Listener` for one routing
//! key, a `MultiKeyListener` for several keys or client certificates required
//! (Skupper's Listener has no `requireClientCert`). TLS files given on the command line become
//! a `kubernetes.io/tls` Secret that the service names, as a cluster user would apply one.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::model::{
    Connector, ConnectorSpec, Listener, ListenerSpec, MultiKeyListener, MultiKeyListenerSpec,
    MultiKeyListenerStrategy, ObjectMeta, PriorityStrategySpec, Resource, Secret, SiteResources,
    StrategyKind, WeightedStrategySpec, SERVICE_CREDENTIALS_ANNOTATION,
};
use crate::render::certs::{check_key_pair, CertFiles};

use super::ServiceKind;

/// PEM texts from `--tls-cert`, `--tls-key` and `--tls-ca`, read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
}

/// What a request says about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// `--no-tls`: plain TCP again.
    Off,
    /// `--tls-credentials NAME` and/or files: NAME (or the service's current credentials, or
    /// `<service>-tls`) names the Secret or the certificate vansite issues.
    On {
        credentials: Option<String>,
        material: Option<TlsMaterial>,
    },
}

/// A create or update request: `None` (or empty) leaves a setting as it is, or at its default
/// on create.
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings {
    pub port: Option<u16>,
    pub host: Option<String>,
    /// Listeners may have several; connectors one.
    pub routing_keys: Vec<String>,
    pub strategy: Option<StrategyKind>,
    /// Weighted listeners: `KEY=N`.
    pub weights: Vec<(String, u32)>,
    pub tls: Option<TlsSetting>,
    pub require_client_cert: Option<bool>,
    pub use_client_cert: Option<bool>,
    pub verify_hostname: Option<bool>,
    pub observer: Option<String>,
}

/// What a new listener needs that the request does not say.
#[derive(Debug, Clone)]
pub struct NewService {
    pub default_host: String,
    /// Listeners: the loopback port of the router's tcpListener behind the forwarder.
    pub router_port: Option<u16>,
}

/// The resources with service `name` of `kind` created (`new` given) or changed as `settings`
/// say. Secrets vansite made for services and no service names any more are left out.
pub fn edit_service(
    resources: &SiteResources,
    kind: ServiceKind,
    name: &str,
    settings: &ServiceSettings,
    new: Option<&NewService>,
) -> Result<Vec<Resource>, Error> {
    check_settings(kind, settings)?;
    let mut secrets: Vec<Secret> = resources.secrets.clone();
    let mut objects: Vec<Resource> = resources
        .to_resources()
        .into_iter()
        .filter(|object| !matches!(object, Resource::Secret(_)))
        .collect();
    let edited = match kind {
        ServiceKind::Listener => {
            let shape = match new {
                Some(new) => ListenerShape::new(name, new),
                None => ListenerShape::of(resources, name).ok_or_else(|| not_found(kind, name))?,
            };
            let shape = shape.with(settings, &mut secrets)?;
            objects.retain(|object| !is_listener_named(object, name));
            shape.into_resource()
        }
        ServiceKind::Connector => {
            let connector = match new {
                Some(new) => Connector {
                    metadata: ObjectMeta::named(name),
                    spec: ConnectorSpec {
                        routing_key: name.to_string(),
                        host: new.default_host.clone(),
                        ..ConnectorSpec::default()
                    },
                },
                None => resources
                    .connectors
                    .iter()
                    .find(|c| c.metadata.name == name)
                    .cloned()
                    .ok_or_else(|| not_found(kind, name))?,
            };
            let connector = edit_connector(connector, settings, &mut secrets)?;
            objects.retain(
                |object| !matches!(object, Resource::Connector(c) if c.metadata.name == name),
            );
            Resource::Connector(connector)
        }
    };
    objects.push(edited);
    objects.extend(secrets.into_iter().map(Resource::Secret));
    Ok(without_unused_service_secrets(objects))
}

/// Service `name` of `kind` removed, with the Secrets vansite made for it.
pub fn remove_service(resources: &SiteResources, kind: ServiceKind, name: &str) -> Vec<Resource> {
    let objects = resources
        .to_resources()
        .into_iter()
        .filter(|object| match kind {
            ServiceKind::Listener => !is_listener_named(object, name),
            ServiceKind::Connector => {
                !matches!(object, Resource::Connector(c) if c.metadata.name == name)
            }
        })
        .collect();
    without_unused_service_secrets(objects)
}

fn is_listener_named(object: &Resource, name: &str) -> bool {
    match object {
        Resource::Listener(l) => l.metadata.name == name,
        Resource::MultiKeyListener(l) => l.metadata.name == name,
        _ => false,
    }
}

fn not_found(kind: ServiceKind, name: &str) -> Error {
    Error::Usage(format!("no {} named '{name}'", kind.word()))
}

/// Refuses what does not fit the kind or contradicts itself, before anything is looked up.
fn check_settings(kind: ServiceKind, settings: &ServiceSettings) -> Result<(), Error> {
    let usage = |text: &str| Err(Error::Usage(text.to_string()));
    if settings.port == Some(0) {
        return usage("port 0: give a port from 1 to 65535");
    }
    let keys = settings
        .routing_keys
        .iter()
        .chain(settings.weights.iter().map(|(key, _)| key));
    for key in keys {
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(Error::Usage(format!(
                "routing key '{key}': give a non-empty key without whitespace"
            )));
        }
    }
    match kind {
        ServiceKind::Connector => {
            if settings.routing_keys.len() > 1 {
                return usage("a connector has one routing key; give --routing-key once");
            }
            if settings.strategy.is_some() || !settings.weights.is_empty() {
                return usage("--strategy and --weight are for listeners");
            }
            if settings.require_client_cert.is_some() || settings.observer.is_some() {
                return usage("--require-client-cert and --observer are for listeners");
            }
        }
        ServiceKind::Listener => {
            if settings.use_client_cert.is_some() || settings.verify_hostname.is_some() {
                return usage("--use-client-cert and --verify-hostname are for connectors");
            }
            if settings.strategy == Some(StrategyKind::Priority) && !settings.weights.is_empty() {
                return usage("--weight goes with --strategy weighted");
            }
        }
    }
    if settings.tls == Some(TlsSetting::Off)
        && (settings.require_client_cert == Some(true) || settings.use_client_cert == Some(true))
    {
        return usage("--no-tls cannot go with client certificates");
    }
    Ok(())
}

/// A listener in the terms of both kinds that store one.
struct ListenerShape {
    metadata: ObjectMeta,
    host: String,
    port: u16,
    /// Routing keys in priority order, each with its weight (1 unless weighted).
    keys: Vec<(String, u32)>,
    strategy: Option<StrategyKind>,
    tls_credentials: String,
    require_client_cert: bool,
    observer: String,
    settings: BTreeMap<String, String>,
    /// A Listener's own fields a MultiKeyListener lacks; kept while it stays a Listener.
    listener_extra: Option<ListenerSpec>,
}

impl ListenerShape {
    fn new(name: &str, new: &NewService) -> Self {
        let mut metadata = ObjectMeta::named(name);
        if let Some(port) = new.router_port {
            metadata.annotations.insert(
                crate::model::ROUTER_PORT_ANNOTATION.into(),
                port.to_string(),
            );
        }
        ListenerShape {
            metadata,
            host: new.default_host.clone(),
            port: 0,
            keys: Vec::new(),
            strategy: None,
            tls_credentials: String::new(),
            require_client_cert: false,
            observer: String::new(),
            settings: BTreeMap::new(),
            listener_extra: None,
        }
    }

    fn of(resources: &SiteResources, name: &str) -> Option<Self> {
        if let Some(listener) = resources.listeners.iter().find(|l| l.metadata.name == name) {
            let spec = &listener.spec;
            return Some(ListenerShape {
                metadata: listener.metadata.clone(),
                host: spec.host.clone(),
                port: spec.port,
                keys: vec![(spec.routing_key.clone(), 1)],
                strategy: None,
                tls_credentials: spec.tls_credentials.clone(),
                require_client_cert: false,
                observer: spec.observer.clone(),
                settings: spec.settings.clone(),
                listener_extra: Some(spec.clone()),
            });
        }
        let listener = resources
            .multi_key_listeners
            .iter()
            .find(|l| l.metadata.name == name)?;
        let spec = &listener.spec;
        let keys = match &spec.strategy.weighted {
            Some(weighted) => weighted
                .routing_keys
                .iter()
                .map(|(key, weight)| (key.clone(), *weight))
                .collect(),
            None => listener
                .keyed_values()
                .into_iter()
                .map(|(key, _)| (key.to_string(), 1))
                .collect(),
        };
        Some(ListenerShape {
            metadata: listener.metadata.clone(),
            host: spec.host.clone(),
            port: spec.port,
            keys,
            strategy: listener.strategy_kind(),
            tls_credentials: spec.tls_credentials.clone(),
            require_client_cert: spec.require_client_cert,
            observer: spec.observer.clone(),
            settings: spec.settings.clone(),
            listener_extra: None,
        })
    }

    fn with(
        mut self,
        settings: &ServiceSettings,
        secrets: &mut Vec<Secret>,
    ) -> Result<Self, Error> {
        self.port = settings.port.unwrap_or(self.port);
        self.host = settings.host.clone().unwrap_or(self.host);
        if !settings.routing_keys.is_empty() {
            let weight_of = |key: &str| {
                self.keys
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(1, |(_, weight)| *weight)
            };
            let keys = settings
                .routing_keys
                .iter()
                .map(|key| (key.clone(), weight_of(key)))
                .collect();
            self.keys = keys;
        }
        for (key, weight) in &settings.weights {
            if *weight == 0 {
                return Err(Error::Usage(format!(
                    "--weight {key}=0: a weight is at least 1 (delete the key to send it nothing)"
                )));
            }
            match self.keys.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = *weight,
                None if settings.routing_keys.is_empty() => self.keys.push((key.clone(), *weight)),
                None => {
                    return Err(Error::Usage(format!(
                        "--weight {key}={weight}: '{key}' is not one of the --routing-key keys"
                    )))
                }
            }
        }
        if self.keys.is_empty() {
            // A new listener reaches the routing key of its own name by default.
            self.keys.push((self.metadata.name.clone(), 1));
        }
        self.strategy = match (settings.strategy, self.strategy) {
            (Some(strategy), _) => Some(strategy),
            (None, _) if !settings.weights.is_empty() => Some(StrategyKind::Weighted),
            (None, None) if self.keys.len() > 1 => Some(StrategyKind::Priority),
            (None, current) => current,
        };
        let mut seen = std::collections::BTreeSet::new();
        if let Some((key, _)) = self.keys.iter().find(|(key, _)| !seen.insert(key)) {
            return Err(Error::Usage(format!("routing key '{key}' is given twice")));
        }
        if let Some(observer) = &settings.observer {
            self.observer = observer.clone();
        }
        let name = self.metadata.name.clone();
        self.tls_credentials = tls_credentials(
            ServiceKind::Listener,
            &name,
            &self.tls_credentials,
            settings.tls.as_ref(),
            secrets,
        )?;
        self.require_client_cert = settings
            .require_client_cert
            .unwrap_or(self.require_client_cert && !self.tls_credentials.is_empty());
        if self.require_client_cert && self.tls_credentials.is_empty() {
            return Err(Error::Usage(
                "--require-client-cert needs TLS: add --tls-credentials NAME, or --tls-cert and \
                 --tls-key"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// A Listener when it can be one (one key: any strategy picks it; no client certificates),
    /// else a MultiKeyListener.
    fn into_resource(self) -> Resource {
        let single = self.keys.len() == 1 && !self.require_client_cert;
        if single {
            let spec = ListenerSpec {
                routing_key: self.keys[0].0.clone(),
                host: self.host,
                port: self.port,
                tls_credentials: self.tls_credentials,
                observer: self.observer,
                settings: self.settings,
                ..self.listener_extra.unwrap_or_default()
            };
            return Resource::Listener(Listener {
                metadata: self.metadata,
                spec,
            });
        }
        let strategy = match self.strategy.unwrap_or(StrategyKind::Priority) {
            StrategyKind::Priority => MultiKeyListenerStrategy {
                priority: Some(PriorityStrategySpec {
                    routing_keys: self.keys.into_iter().map(|(key, _)| key).collect(),
                }),
                weighted: None,
            },
            StrategyKind::Weighted => MultiKeyListenerStrategy {
                priority: None,
                weighted: Some(WeightedStrategySpec {
                    routing_keys: self.keys.into_iter().collect(),
                }),
            },
        };
        Resource::MultiKeyListener(MultiKeyListener {
            metadata: self.metadata,
            spec: MultiKeyListenerSpec {
                host: self.host,
                port: self.port,
                tls_credentials: self.tls_credentials,
                require_client_cert: self.require_client_cert,
                settings: self.settings,
                strategy,
                observer: self.observer,
            },
        })
    }
}

fn edit_connector(
    mut connector: Connector,
    settings: &ServiceSettings,
    secrets: &mut Vec<Secret>,
) -> Result<Connector, Error> {
    let spec = &mut connector.spec;
    spec.port = settings.port.unwrap_or(spec.port);
    spec.host = settings.host.clone().unwrap_or(spec.host.clone());
    if let Some(key) = settings.routing_keys.first() {
        spec.routing_key = key.clone();
    }
    spec.tls_credentials = tls_credentials(
        ServiceKind::Connector,
        &connector.metadata.name,
        &spec.tls_credentials,
        settings.tls.as_ref(),
        secrets,
    )?;
    let client_files_given = matches!(
        &settings.tls,
        Some(TlsSetting::On { material: Some(m), .. }) if m.cert.is_some()
    );
    let tls = !spec.tls_credentials.is_empty();
    spec.use_client_cert = tls
        && settings
            .use_client_cert
            .unwrap_or(spec.use_client_cert || client_files_given);
    spec.verify_hostname = tls && settings.verify_hostname.unwrap_or(spec.verify_hostname);
    if !tls && (settings.use_client_cert == Some(true) || settings.verify_hostname == Some(true)) {
        return Err(Error::Usage(
            "--use-client-cert and --verify-hostname need TLS: add --tls-credentials NAME or \
             --tls-ca FILE"
                .into(),
        ));
    }
    Ok(connector)
}

/// The service's `tlsCredentials` after `setting`; files given become (or replace) the Secret
/// of that name, which must then be one vansite made for a service.
fn tls_credentials(
    kind: ServiceKind,
    service: &str,
    current: &str,
    setting: Option<&TlsSetting>,
    secrets: &mut Vec<Secret>,
) -> Result<String, Error> {
    let (credentials, material) = match setting {
        None => return Ok(current.to_string()),
        Some(TlsSetting::Off) => return Ok(String::new()),
        Some(TlsSetting::On {
            credentials,
            material,
        }) => (credentials, material),
    };
    let name = match (credentials, current) {
        (Some(name), _) => name.clone(),
        (None, "") => format!("{service}-tls"),
        (None, current) => current.to_string(),
    };
    crate::model::check_name(&name)
        .map_err(|problem| Error::Usage(format!("--tls-credentials {name}: {problem}")))?;
    let Some(material) = material else {
        return Ok(name);
    };
    let owner = format!(
        "{}/{service}",
        match kind {
            ServiceKind::Listener => "Listener",
            ServiceKind::Connector => "Connector",
        }
    );
    if let Some(existing) = secrets.iter().find(|s| s.metadata.name == name) {
        if !existing
            .metadata
            .annotations
            .contains_key(SERVICE_CREDENTIALS_ANNOTATION)
        {
            return Err(Error::Usage(format!(
                "Secret '{name}' is the site's own (applied or linked), not made from files; give \
                 another --tls-credentials NAME for these files, or use that Secret without files"
            )));
        }
    }
    let secret = secret_of(kind, &name, &owner, material)?;
    secrets.retain(|s| s.metadata.name != name);
    secrets.push(secret);
    Ok(name)
}

/// A `kubernetes.io/tls` Secret of the PEM files: a listener presents `tls.crt`; a connector
/// verifies its backend with `ca.crt` and presents `tls.crt` as a client certificate.
fn secret_of(
    kind: ServiceKind,
    name: &str,
    owner: &str,
    material: &TlsMaterial,
) -> Result<Secret, Error> {
    let usage = |text: &str| Err(Error::Usage(text.to_string()));
    match (&material.cert, &material.key) {
        (Some(_), None) | (None, Some(_)) => return usage("--tls-cert and --tls-key go together"),
        (None, None) if kind == ServiceKind::Listener => {
            return usage("a listener's TLS files are --tls-cert and --tls-key (and --tls-ca)")
        }
        (None, None) if material.ca.is_none() => {
            return usage("a connector's TLS files are --tls-ca (and --tls-cert, --tls-key)")
        }
        _ => {}
    }
    if kind == ServiceKind::Connector && material.ca.is_none() {
        return usage(
            "--tls-ca FILE is needed: the CA that signed the service's certificate, so that the \
             router can verify it",
        );
    }
    if let (Some(cert), Some(key)) = (&material.cert, &material.key) {
        let files = CertFiles {
            ca_crt: String::new(),
            tls_crt: cert.clone(),
            tls_key: key.clone(),
        };
        check_key_pair(&files)
            .map_err(|problem| Error::Usage(format!("--tls-cert/--tls-key: {problem}")))?;
    }
    let mut secret = Secret {
        metadata: ObjectMeta::named(name),
        secret_type: "kubernetes.io/tls".into(),
        ..Secret::default()
    };
    secret
        .metadata
        .annotations
        .insert(SERVICE_CREDENTIALS_ANNOTATION.into(), owner.to_string());
    for (key, value) in [
        ("ca.crt", &material.ca),
        ("tls.crt", &material.cert),
        ("tls.key", &material.key),
    ] {
        if let Some(pem) = value {
            secret.insert(key, pem.as_bytes());
        }
    }
    Ok(secret)
}

/// Drops the Secrets vansite made for services that no service names any more.
fn without_unused_service_secrets(objects: Vec<Resource>) -> Vec<Resource> {
    let named: Vec<String> = objects
        .iter()
        .filter_map(|object| match object {
            Resource::Listener(l) => Some(l.spec.tls_credentials.clone()),
            Resource::MultiKeyListener(l) => Some(l.spec.tls_credentials.clone()),
            Resource::Connector(c) => Some(c.spec.tls_credentials.clone()),
            _ => None,
        })
        .collect();
    objects
        .into_iter()
        .filter(|object| match object {
            Resource::Secret(secret) => {
                !secret
                    .metadata
                    .annotations
                    .contains_key(SERVICE_CREDENTIALS_ANNOTATION)
                    || named.contains(&secret.metadata.name)
            }
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_documents;
    use crate::render::certs::{issue, Ca};

    fn site(extra: &str) -> SiteResources {
        let text = format!(
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {{name: west}}\nspec: {{}}\n{extra}"
        );
        SiteResources::new(
            "default",
            parse_documents(&text, "site.yaml").unwrap().resources,
        )
        .unwrap()
    }

    fn new_listener() -> NewService {
        NewService {
            default_host: "0.0.0.0".into(),
            router_port: Some(40001),
        }
    }

    fn new_connector() -> NewService {
        NewService {
            default_host: "localhost".into(),
            router_port: None,
        }
    }

    /// Applies `settings` to `resources` (creating when `new`), validated as a site.
    fn edited(
        resources: &SiteResources,
        kind: ServiceKind,
        settings: ServiceSettings,
        new: Option<NewService>,
    ) -> Result<SiteResources, Error> {
        let objects = edit_service(resources, kind, "web", &settings, new.as_ref())?;
        Ok(SiteResources::new("default", objects).unwrap())
    }

    fn listener(settings: ServiceSettings) -> Result<SiteResources, Error> {
        edited(
            &site(""),
            ServiceKind::Listener,
            settings,
            Some(new_listener()),
        )
    }

    fn settings() -> ServiceSettings {
        ServiceSettings {
            port: Some(8443),
            ..ServiceSettings::default()
        }
    }

    fn usage(result: Result<SiteResources, Error>) -> String {
        match result {
            Err(Error::Usage(text)) => text,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn tls_files() -> TlsMaterial {
        let ca = Ca::new("my-ca").unwrap();
        let leaf = issue(&ca, "web.example", &["web.example".into()]).unwrap();
        TlsMaterial {
            cert: Some(leaf.tls_crt),
            key: Some(leaf.tls_key),
            ca: Some(leaf.ca_crt),
        }
    }

    #[test]
    fn one_key_is_a_listener_several_keys_a_priority_multi_key_listener() {
        let single = listener(ServiceSettings {
            observer: Some("http2".into()),
            ..settings()
        })
        .unwrap();
        assert_eq!(single.listeners[0].spec.routing_key, "web");
        assert_eq!(single.listeners[0].spec.observer, "http2");
        assert_eq!(single.listeners[0].router_port(), Some(40001));
        assert!(single.multi_key_listeners.is_empty());

        let multi = listener(ServiceSettings {
            routing_keys: vec!["web-b".into(), "web-a".into()],
            ..settings()
        })
        .unwrap();
        assert!(multi.listeners.is_empty());
        let mkl = &multi.multi_key_listeners[0];
        assert_eq!(
            mkl.keyed_values(),
            [("web-b", 1), ("web-a", 0)],
            "the first key given has the highest priority"
        );
        assert_eq!(mkl.router_port(), Some(40001));
    }

    #[test]
    fn weights_make_a_weighted_listener_and_update_keeps_the_other_keys() {
        let weighted = listener(ServiceSettings {
            weights: vec![("a".into(), 1), ("b".into(), 3)],
            ..settings()
        })
        .unwrap();
        let mkl = &weighted.multi_key_listeners[0];
        assert_eq!(mkl.strategy_kind(), Some(StrategyKind::Weighted));
        assert_eq!(mkl.keyed_values(), [("a", 1), ("b", 3)]);

        let reweighted = edited(
            &weighted,
            ServiceKind::Listener,
            ServiceSettings {
                weights: vec![("b".into(), 5)],
                ..ServiceSettings::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            reweighted.multi_key_listeners[0].keyed_values(),
            [("a", 1), ("b", 5)]
        );

        let wrong = ServiceSettings {
            routing_keys: vec!["a".into()],
            weights: vec![("c".into(), 2)],
            ..settings()
        };
        assert!(usage(listener(wrong)).contains("'c' is not one of the --routing-key keys"));
        let zero = ServiceSettings {
            weights: vec![("a".into(), 0)],
            ..settings()
        };
        assert!(usage(listener(zero)).contains("at least 1"));
        let twice = ServiceSettings {
            routing_keys: vec!["a".into(), "a".into()],
            ..settings()
        };
        assert!(usage(listener(twice)).contains("given twice"));
    }

    #[test]
    fn client_certificates_need_tls_and_make_a_multi_key_listener() {
        let without_tls = ServiceSettings {
            require_client_cert: Some(true),
            ..settings()
        };
        assert!(usage(listener(without_tls)).contains("needs TLS"));

        let with_tls = listener(ServiceSettings {
            require_client_cert: Some(true),
            tls: Some(TlsSetting::On {
                credentials: Some("web-creds".into()),
                material: None,
            }),
            ..settings()
        })
        .unwrap();
        let mkl = &with_tls.multi_key_listeners[0];
        assert!(mkl.spec.require_client_cert);
        assert_eq!(mkl.spec.tls_credentials, "web-creds");
        assert_eq!(mkl.keyed_values(), [("web", 0)]);

        // Without client certificates again, one key: a plain Listener, as Skupper has it.
        let relaxed = edited(
            &with_tls,
            ServiceKind::Listener,
            ServiceSettings {
                require_client_cert: Some(false),
                ..ServiceSettings::default()
            },
            None,
        )
        .unwrap();
        assert!(relaxed.multi_key_listeners.is_empty());
        assert_eq!(relaxed.listeners[0].spec.tls_credentials, "web-creds");
    }

    #[test]
    fn tls_files_become_a_secret_that_leaves_with_its_service() {
        let files = tls_files();
        let with_files = listener(ServiceSettings {
            tls: Some(TlsSetting::On {
                credentials: None,
                material: Some(files.clone()),
            }),
            ..settings()
        })
        .unwrap();
        assert_eq!(with_files.listeners[0].spec.tls_credentials, "web-tls");
        let secret = with_files.secret("web-tls").unwrap();
        assert_eq!(secret.secret_type, "kubernetes.io/tls");
        assert_eq!(
            secret.metadata.annotations[SERVICE_CREDENTIALS_ANNOTATION],
            "Listener/web"
        );
        assert_eq!(
            secret.decoded("tls.key").unwrap().unwrap(),
            files.key.unwrap().into_bytes()
        );

        let plain = edited(
            &with_files,
            ServiceKind::Listener,
            ServiceSettings {
                tls: Some(TlsSetting::Off),
                ..ServiceSettings::default()
            },
            None,
        )
        .unwrap();
        assert!(plain.listeners[0].spec.tls_credentials.is_empty());
        assert!(plain.secret("web-tls").is_none(), "no service names it");

        let removed = SiteResources::new(
            "default",
            remove_service(&with_files, ServiceKind::Listener, "web"),
        )
        .unwrap();
        assert!(removed.listeners.is_empty() && removed.secrets.is_empty());
    }

    #[test]
    fn the_users_own_secret_is_neither_overwritten_nor_removed() {
        let users = site(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: mine}\ntype: kubernetes.io/tls\n\
             data: {ca.crt: Y2E=}\n",
        );
        let overwrite = ServiceSettings {
            tls: Some(TlsSetting::On {
                credentials: Some("mine".into()),
                material: Some(tls_files()),
            }),
            ..settings()
        };
        let error = usage(edited(
            &users,
            ServiceKind::Listener,
            overwrite,
            Some(new_listener()),
        ));
        assert!(error.contains("Secret 'mine' is the site's own"), "{error}");

        let named = edited(
            &users,
            ServiceKind::Connector,
            ServiceSettings {
                tls: Some(TlsSetting::On {
                    credentials: Some("mine".into()),
                    material: None,
                }),
                ..settings()
            },
            Some(new_connector()),
        )
        .unwrap();
        let removed = SiteResources::new(
            "default",
            remove_service(&named, ServiceKind::Connector, "web"),
        )
        .unwrap();
        assert!(removed.secret("mine").is_some());
    }

    #[test]
    fn connector_tls_needs_its_ca_and_a_client_certificate_turns_use_client_cert_on() {
        let connector = |material: TlsMaterial, verify: Option<bool>| {
            edited(
                &site(""),
                ServiceKind::Connector,
                ServiceSettings {
                    tls: Some(TlsSetting::On {
                        credentials: None,
                        material: Some(material),
                    }),
                    verify_hostname: verify,
                    ..settings()
                },
                Some(new_connector()),
            )
        };
        let no_ca = TlsMaterial {
            ca: None,
            ..tls_files()
        };
        assert!(usage(connector(no_ca, None)).contains("--tls-ca FILE is needed"));

        let client = connector(tls_files(), Some(true)).unwrap();
        let spec = &client.connectors[0].spec;
        assert!(spec.use_client_cert && spec.verify_hostname);
        assert_eq!(spec.tls_credentials, "web-tls");

        let ca_only = TlsMaterial {
            cert: None,
            key: None,
            ..tls_files()
        };
        let verify_only = connector(ca_only, None).unwrap();
        assert!(!verify_only.connectors[0].spec.use_client_cert);
        assert!(verify_only
            .secret("web-tls")
            .unwrap()
            .decoded("tls.key")
            .is_none());

        let mismatched = TlsMaterial {
            key: tls_files().key,
            ..tls_files()
        };
        assert!(usage(connector(mismatched, None)).contains("does not belong"));
    }

    #[test]
    fn options_of_the_other_kind_are_refused() {
        let for_listeners = ServiceSettings {
            strategy: Some(StrategyKind::Priority),
            ..settings()
        };
        let error = usage(edited(
            &site(""),
            ServiceKind::Connector,
            for_listeners,
            Some(new_connector()),
        ));
        assert!(error.contains("for listeners"), "{error}");
        let for_connectors = ServiceSettings {
            verify_hostname: Some(true),
            ..settings()
        };
        assert!(usage(listener(for_connectors)).contains("for connectors"));
    }
}

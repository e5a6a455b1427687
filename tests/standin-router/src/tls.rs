//! TLS as skupper-router does it: listeners with `authenticatePeer` demand a client certificate
//! from the sslProfile's CA; connectors verify the server against the sslProfile's CA and, with
//! `verifyHostname` (the default), match the dialled host against the certificate's DNS SANs and
//! subject CN only. IP SANs are ignored, as OpenSSL's host check in the real router ignores them.
//!
//! tcpListeners and tcpConnectors with an sslProfile end TLS at the router the same way;
//! between routers the bytes are carried as any others.
//!
//! An sslProfile is kept as the real router's `src/tls/tls.c` keeps it: a [`TlsContext`] with
//! the attributes it last accepted and one [`TlsConfig`] per listener, connector, tcpListener
//! or tcpConnector made from it ([`config_for`], which reads the files then). An UPDATE
//! ([`update_profile`]) re-reads the files for every one of them; new TLS sessions use the new
//! material and carry the profile's `ordinal` at the time they were made, which listeners and
//! connectors compare with `oldestValidOrdinal` ([`crate::links`]).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::{Mutex, MutexGuard};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Entity;
use crate::router::Router;

/// The PEM material of one sslProfile as one of its users read it.
struct Profile {
    name: String,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

impl Profile {
    /// Every certificate of the caCertFile (a bundle of several CAs trusts each of them, as
    /// OpenSSL's `SSL_CTX_load_verify_locations` loads them all).
    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca {
            roots
                .add(cert.clone())
                .map_err(|e| self.invalid(format!("caCertFile: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    fn invalid(&self, what: String) -> String {
        format!("sslProfile '{}': {what}", self.name)
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        match &self.key {
            Some(key) if !self.chain.is_empty() => Ok((self.chain.clone(), key.clone_key())),
            _ => Err(self.invalid("certFile and privateKeyFile are required here".into())),
        }
    }

    /// Server side of a listener. `authenticate_peer` demands a client certificate signed by
    /// one of the profile's CAs: a peer without one, or with one from another CA, fails the
    /// handshake.
    fn server_config(&self, authenticate_peer: bool) -> Result<Arc<ServerConfig>, String> {
        let (chain, key) = self.identity()?;
        let builder = ServerConfig::builder();
        let config = if authenticate_peer {
            let verifier = WebPkiClientVerifier::builder(self.roots()?)
                .build()
                .map_err(|e| self.invalid(format!("caCertFile: {e}")))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
        } else {
            builder.with_no_client_auth().with_single_cert(chain, key)
        };
        config
            .map(Arc::new)
            .map_err(|e| self.invalid(e.to_string()))
    }

    /// Client side of a connector dialling `host`. Presents the profile's certificate when it
    /// has one; verifies the server against the profile's CAs and, if `verify_hostname`, `host`
    /// against the DNS SANs and CN.
    fn client_config(
        &self,
        host: &str,
        verify_hostname: bool,
    ) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let anchors = self
            .ca
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.invalid(format!("caCertFile: {e}")))?;
        let verifier = RouterHostVerifier {
            anchors,
            host: verify_hostname.then(|| host.to_ascii_lowercase()),
            algorithms: provider.signature_verification_algorithms,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.invalid(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match (&self.key, self.chain.is_empty()) {
            (Some(_), false) => {
                let (chain, key) = self.identity()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| self.invalid(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// How one listener, connector, tcpListener or tcpConnector uses its sslProfile: the real
/// router's `qd_tls_config_t` (its mode, proton type and peer checks).
#[derive(Debug, Clone)]
pub struct Usage {
    /// A tcpListener's or tcpConnector's (proton raw TLS, `src/tls/tls_raw.c`) rather than an
    /// AMQP listener's or connector's (`src/tls/tls_amqp.c`): they word their errors apart.
    pub raw: bool,
    pub side: Side,
}

#[derive(Debug, Clone)]
pub enum Side {
    /// A listener: with `authenticate_peer` a client must present a certificate from the CA.
    Server { authenticate_peer: bool },
    /// A connector dialling `host`.
    Client { host: String, verify_hostname: bool },
}

/// Reads and checks a profile's files for one use, as `qd_tls_config` and
/// `_update_tls_config` do (`src/tls/tls.c`): `_validate_config`, then proton reads the files.
/// Err is the `qd_error` text, error name first. The AMQP and the raw (TCP adaptor) proton
/// configurations word their failures apart; the raw one carries proton's return code (-1 for
/// the CA file, -3 the certificate, -4 the key, -5 a key that does not match).
fn load(entity: &Entity, usage: &Usage) -> Result<Profile, String> {
    let name = entity.name();
    let (ca, cert, key) = (
        entity.str("caCertFile"),
        entity.str("certFile"),
        entity.str("privateKeyFile"),
    );
    let refused = |what: String| Err(format!("Configuration: {what}"));
    match &usage.side {
        Side::Server { authenticate_peer } => {
            if cert.is_empty() {
                return refused(format!(
                    "Listener requires a self-identifying certificate (sslProfile: {name})"
                ));
            }
            if *authenticate_peer && ca.is_empty() {
                return refused(format!(
                    "Listener requires a CA for peer authentication (sslProfile: {name})"
                ));
            }
        }
        Side::Client { .. } if ca.is_empty() => {
            return refused(format!(
                "Connector requires a CA certificate (sslProfile: {name})"
            ));
        }
        Side::Client { .. } => {}
    }
    if !cert.is_empty() && key.is_empty() {
        return refused(format!("Missing Private Keyfile (sslProfile: {name})"));
    }
    let read_certs = |path: &str| -> Option<Vec<CertificateDer<'static>>> {
        let pem = std::fs::read(path).ok()?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        (!certs.is_empty()).then_some(certs)
    };
    let ca_certs = if ca.is_empty() {
        Vec::new()
    } else {
        let anchors = read_certs(ca).filter(|certs| {
            certs
                .iter()
                .all(|c| webpki::anchor_from_trusted_cert(c).is_ok())
        });
        match anchors {
            Some(certs) => certs,
            None if usage.raw => {
                return refused(format!(
                    "Failed to configure TLS caCertFile {ca} for sslProfile '{name}': (-1)"
                ))
            }
            None => {
                return refused(format!(
                    "Failed to configure TLS caCertFile '{ca}' from sslProfile '{name}'"
                ))
            }
        }
    };
    let cert_failed = |code: i32| {
        if usage.raw {
            refused(format!(
                "Failed to set TLS certFile '{cert}' for sslProfile '{name}': ({code})"
            ))
        } else {
            refused(format!(
                "Failed to configure TLS certFile '{cert}' from sslProfile '{name}'"
            ))
        }
    };
    let (chain, private_key) = if cert.is_empty() {
        (Vec::new(), None)
    } else {
        let Some(chain) = read_certs(cert) else {
            return cert_failed(-3);
        };
        let private_key = std::fs::read(key)
            .ok()
            .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem).ok());
        let Some(private_key) = private_key else {
            return cert_failed(-4);
        };
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        match CertifiedKey::from_der(chain.clone(), private_key.clone_key(), &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => return cert_failed(-5),
            Err(_) => return cert_failed(-4),
        }
        (chain, Some(private_key))
    };
    Ok(Profile {
        name: name.to_string(),
        ca: ca_certs,
        chain,
        key: private_key,
    })
}

/// The TLS end one user makes of a profile.
#[derive(Clone)]
enum Material {
    Server(TlsAcceptor),
    Client(TlsConnector),
}

fn build(entity: &Entity, usage: &Usage) -> Result<Material, String> {
    let profile = load(entity, usage)?;
    let material = match &usage.side {
        Side::Server { authenticate_peer } => profile
            .server_config(*authenticate_peer)
            .map(|c| Material::Server(TlsAcceptor::from(c))),
        Side::Client {
            host,
            verify_hostname,
        } => profile
            .client_config(host, *verify_hostname)
            .map(|c| Material::Client(TlsConnector::from(c))),
    };
    material.map_err(|e| format!("Configuration: {e}"))
}

/// A profile's `ordinal` and `oldestValidOrdinal` (0 when not set), checked as
/// `_read_tls_profile` checks them on create and on every update.
fn read_ordinals(entity: &Entity) -> Result<(u64, u64), String> {
    let name = match entity.name() {
        "" => "<NONE>",
        n => n,
    };
    let (ordinal, oldest) = (entity.int("ordinal"), entity.int("oldestValidOrdinal"));
    if ordinal < 0 || oldest < 0 {
        return Err(format!(
            "Configuration: Negative ordinal field values are invalid (sslProfile '{name}')"
        ));
    }
    if ordinal < oldest {
        return Err(format!(
            "Configuration: ordinal must be >= oldestValidOrdinal (sslProfile '{name}')"
        ));
    }
    Ok((ordinal as u64, oldest as u64))
}

/// Called with the profile's new `ordinal` and `oldestValidOrdinal` after an update has given
/// a [`TlsConfig`] new material (a listener closes expired connections, a connector redials).
pub type UpdateCallback = Box<dyn Fn(u64, u64) + Send + Sync>;

/// One user's TLS configuration of an sslProfile (the real router's `qd_tls_config_t`): what a
/// new TLS session is made with and the profile's ordinals at the time. An sslProfile UPDATE
/// replaces it; sessions made before keep what they were made with.
pub struct TlsConfig {
    profile: String,
    usage: Usage,
    current: Mutex<(Material, u64, u64)>,
    on_update: Mutex<Option<UpdateCallback>>,
}

impl TlsConfig {
    fn current(&self) -> MutexGuard<'_, (Material, u64, u64)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The name of the sslProfile.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// A TLS server for a new session and the ordinal that session has (a listener's).
    pub fn acceptor(&self) -> Option<(TlsAcceptor, u64)> {
        match &*self.current() {
            (Material::Server(tls), ordinal, _) => Some((tls.clone(), *ordinal)),
            _ => None,
        }
    }

    /// A TLS client for a new session and the ordinal that session has (a connector's).
    pub fn connector(&self) -> Option<(TlsConnector, u64)> {
        match &*self.current() {
            (Material::Client(tls), ordinal, _) => Some((tls.clone(), *ordinal)),
            _ => None,
        }
    }

    /// The profile's `ordinal` and `oldestValidOrdinal` as this configuration last took them.
    pub fn ordinals(&self) -> (u64, u64) {
        let current = self.current();
        (current.1, current.2)
    }

    /// What to do after an update (`qd_tls_config_register_update_callback`).
    pub fn on_update(&self, callback: UpdateCallback) {
        *self.on_update.lock().unwrap_or_else(|p| p.into_inner()) = Some(callback);
    }

    /// No more callbacks: its listener or connector is gone. The configuration itself stays
    /// with the profile, as the real router's stays on the profile's list (and is rebuilt, and
    /// checked, on every update) until the profile is deleted.
    pub fn clear_update(&self) {
        *self.on_update.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn replace(&self, material: Material, ordinal: u64, oldest: u64) {
        *self.current() = (material, ordinal, oldest);
        if let Some(callback) = &*self.on_update.lock().unwrap_or_else(|p| p.into_inner()) {
            callback(ordinal, oldest);
        }
    }
}

/// An sslProfile as the C side of the real router holds it (`qd_tls_context_t`): the
/// attributes it last accepted and the configurations made from it.
pub struct TlsContext {
    entity: Entity,
    configs: Vec<Arc<TlsConfig>>,
}

/// sslProfile CREATE (`qd_tls_configure_ssl_profile`): the files are not read yet, only the
/// ordinals checked. Err is the `qd_error` text.
pub fn configure_profile(router: &Router, entity: &Entity) -> Result<(), String> {
    read_ordinals(entity)?;
    router.state().tls_contexts.insert(
        entity.name().to_string(),
        TlsContext {
            entity: entity.clone(),
            configs: Vec::new(),
        },
    );
    tracing::info!("Created sslProfile {}", entity.name());
    Ok(())
}

/// sslProfile DELETE: listeners and connectors made from it keep their configuration.
pub fn delete_profile(router: &Router, name: &str) {
    router.state().tls_contexts.remove(name);
    tracing::info!("Deleted sslProfile {name}");
}

/// A new user's configuration of sslProfile `profile` (`qd_tls_config`), with its files read
/// now. Err is the `qd_error` text (`Not found: sslProfile 'x' not found`, or a
/// `Configuration:` one).
pub fn config_for(router: &Router, profile: &str, usage: Usage) -> Result<Arc<TlsConfig>, String> {
    let entity = router
        .state()
        .tls_contexts
        .get(profile)
        .map(|c| c.entity.clone())
        .ok_or_else(|| format!("Not found: sslProfile '{profile}' not found"))?;
    let (ordinal, oldest) = read_ordinals(&entity)?;
    let material = build(&entity, &usage)?;
    let config = Arc::new(TlsConfig {
        profile: profile.to_string(),
        usage,
        current: Mutex::new((material, ordinal, oldest)),
        on_update: Mutex::new(None),
    });
    if let Some(context) = router.state().tls_contexts.get_mut(profile) {
        context.configs.push(Arc::clone(&config));
    }
    Ok(config)
}

/// sslProfile UPDATE (`qd_tls_update_ssl_profile`) with the merged attributes: checks the
/// ordinals, then gives every configuration made from the profile, in the order they were
/// made, new material read from the (possibly same) files, and runs its callback. The first
/// that cannot be built stops the update: the profile keeps its old attributes (those already
/// rebuilt keep the new material, as in the real router). Err is the `qd_error` text.
pub fn update_profile(router: &Router, entity: &Entity) -> Result<(), String> {
    let name = entity.name();
    let (ordinal, oldest) = read_ordinals(entity).inspect_err(|e| {
        tracing::error!("Unable to update sslProfile '{name}': {e}");
    })?;
    let configs = router
        .state()
        .tls_contexts
        .get(name)
        .map(|c| c.configs.clone())
        .ok_or_else(|| format!("Not found: sslProfile '{name}' not found"))?;
    for config in configs {
        let material = build(entity, &config.usage).inspect_err(|e| {
            tracing::error!("Failed to update sslProfile '{name}': {e}");
        })?;
        config.replace(material, ordinal, oldest);
    }
    if let Some(context) = router.state().tls_contexts.get_mut(name) {
        context.entity = entity.clone();
    }
    tracing::info!("Updated sslProfile {name} (ordinal {ordinal}, oldestValidOrdinal {oldest})");
    Ok(())
}

/// The server name handed to rustls for `host` (only used for SNI; verification is ours).
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("invalid.host").unwrap())
}

#[derive(Debug)]
struct RouterHostVerifier {
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    host: Option<String>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RouterHostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(e),
            )))
        })?;
        if let Some(host) = &self.host {
            let names = dns_names_and_cn(end_entity).map_err(rustls::Error::General)?;
            if !names.iter().any(|name| host_matches(name, host)) {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext {
                        expected: server_name(host),
                        presented: names,
                    },
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// DNS-type subjectAltNames and the subject CN; never IP-type SANs.
fn dns_names_and_cn(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("bad server certificate: {e}"))?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// The subject of a peer's certificate as the real router reports a SASL EXTERNAL user:
/// proton's `pn_ssl_get_remote_subject` (`c/src/ssl/openssl.c`) prints it with OpenSSL's
/// `X509_NAME_print_ex(..., XN_FLAG_RFC2253)`: the RDNs last first, `,` between RDNs and `+`
/// within one, OpenSSL's short names (an attribute OpenSSL does not know as its dotted OID with
/// the value dumped as `#` and the hex of its DER), values as UTF-8 with RFC 2253's specials,
/// control characters and every byte above 0x7f escaped. None when there is no certificate.
pub fn peer_subject(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    use x509_parser::prelude::*;
    let der = certs?.first()?;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(rfc2253(cert.subject()))
}

fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let entries: Vec<(usize, &x509_parser::x509::AttributeTypeAndValue<'_>)> = name
        .iter()
        .enumerate()
        .flat_map(|(set, rdn)| rdn.iter().map(move |attribute| (set, attribute)))
        .collect();
    let mut out = String::new();
    let mut previous = None;
    for (set, attribute) in entries.into_iter().rev() {
        if let Some(previous) = previous {
            out.push(if previous == set { '+' } else { ',' });
        }
        previous = Some(set);
        let oid = attribute.attr_type().to_id_string();
        let value = attribute.attr_value();
        match short_name(&oid) {
            Some(short) => {
                out.push_str(short);
                out.push('=');
                out.push_str(&value_2253(value));
            }
            None => {
                out.push_str(&oid);
                out.push('=');
                out.push_str(&der_dump(value));
            }
        }
    }
    out
}

/// OpenSSL's short names of the attributes certificates' subjects carry.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// `#` and the upper-case hex of the value's whole DER encoding (OpenSSL's DUMP_DER).
fn der_dump(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::ToDer;
    let der = value.to_der_vec().unwrap_or_default();
    let mut out = String::from("#");
    for byte in der {
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// A value as `ASN1_STRFLGS_RFC2253` prints it: string types converted to UTF-8 (one-byte
/// types read as Latin-1, BMPString as UCS-2, UniversalString as UCS-4), anything else dumped.
fn value_2253(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::Class;
    let data = value.data;
    let text: Option<String> = if value.header.class() != Class::Universal {
        None
    } else {
        match value.header.tag().0 {
            // UTF8String: its bytes as they are.
            12 => Some(String::from_utf8_lossy(data).into_owned()),
            18 | 19 | 20 | 22 | 23 | 24 | 26 => Some(data.iter().map(|b| char::from(*b)).collect()),
            30 => Some(
                data.chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
                    .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            ),
            28 => Some(
                data.chunks(4)
                    .filter(|c| c.len() == 4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            ),
            _ => None,
        }
    };
    let Some(text) = text else {
        return der_dump(value);
    };
    let bytes = text.as_bytes();
    let mut out = String::new();
    for (i, &byte) in bytes.iter().enumerate() {
        let (first, last) = (i == 0, i + 1 == bytes.len());
        match byte {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' ' if first || last => out.push_str("\\ "),
            b'#' if first => out.push_str("\\#"),
            0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{byte:02X}")),
            _ => out.push(char::from(byte)),
        }
    }
    out
}

/// Makes sure a process-wide default provider exists (rustls needs one for `builder()`).
pub fn install_crypto_provider() {
    let _ = CryptoProvider::install_default(rustls::crypto::aws_lc_rs::default_provider());
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
    }
}

#[cfg(test)]
mod subject_tests {
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn subjects_print_as_openssl_prints_them_in_rfc2253() {
        let mut params = CertificateParams::default();
        let subject = [
            (
                DnType::CountryName,
                DnValue::PrintableString("FR".try_into().unwrap()),
            ),
            (
                DnType::OrganizationName,
                DnValue::Utf8String("Café \"Bar\", <x>".into()),
            ),
            (
                DnType::OrganizationalUnitName,
                DnValue::Utf8String("Team; A\\B".into()),
            ),
            (
                DnType::CustomDnType(vec![1, 2, 3, 4]),
                DnValue::Utf8String("custom".into()),
            ),
            (
                DnType::CommonName,
                DnValue::Utf8String(" #lead+trail ".into()),
            ),
        ];
        for (attribute, value) in subject {
            params.distinguished_name.push(attribute, value);
        }
        let pem = params
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        // What `openssl x509 -noout -subject -nameopt RFC2253` prints for this certificate.
        assert_eq!(
            super::peer_subject(Some(&[der])).unwrap(),
            r#"1.2.3.4=#0C06637573746F6D,OU=Team\; A\\B,O=Caf\C3\A9 \"Bar\"\, \<x\>,C=FR,CN=\ #lead\+trail\ "#
        );
        assert_eq!(super::peer_subject(None), None);
    }
}

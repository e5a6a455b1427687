//! TLS as skupper-router does it: listeners with `authenticatePeer` demand a client certificate
//! from the sslProfile's CA; connectors verify the server against the sslProfile's CA and, with
//! `verifyHostname` (the default), match the dialled host against the certificate's DNS SANs and
//! subject CN only. IP SANs are ignored, as OpenSSL's host check in the real router ignores them.
//!
//! tcpListeners and tcpConnectors with an sslProfile end TLS at the router the same way
//! ([`tcp_listener_tls`], [`tcp_connector_tls`]); between routers the bytes are carried as any
//! others.

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

use crate::config::Entity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslProfile '{profile}': cannot read {path}: {source}")]
    Read {
        profile: String,
        path: String,
        source: std::io::Error,
    },
    #[error("sslProfile '{profile}': {what}")]
    Invalid { profile: String, what: String },
}

/// The PEM material of one sslProfile, read when it is used (as the real router does).
pub struct Profile {
    name: String,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

impl Profile {
    pub fn load(entity: &Entity) -> Result<Profile, TlsError> {
        let name = entity.name().to_string();
        let read = |attribute: &str| -> Result<Option<Vec<u8>>, TlsError> {
            let path = entity.str(attribute);
            if path.is_empty() {
                return Ok(None);
            }
            std::fs::read(path)
                .map(Some)
                .map_err(|source| TlsError::Read {
                    profile: name.clone(),
                    path: path.to_string(),
                    source,
                })
        };
        let invalid = |what: String| TlsError::Invalid {
            profile: name.clone(),
            what,
        };
        let certs =
            |pem: Option<Vec<u8>>, what: &str| -> Result<Vec<CertificateDer<'static>>, TlsError> {
                let Some(pem) = pem else {
                    return Ok(Vec::new());
                };
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(format!("{what}: {e}")))?;
                if certs.is_empty() {
                    return Err(invalid(format!("{what}: no certificate found")));
                }
                Ok(certs)
            };
        let ca = certs(read("caCertFile")?, "caCertFile")?;
        let chain = certs(read("certFile")?, "certFile")?;
        let key = read("privateKeyFile")?
            .map(|pem| {
                PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|e| invalid(format!("privateKeyFile: {e}")))
            })
            .transpose()?;
        Ok(Profile {
            name,
            ca,
            chain,
            key,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca {
            roots
                .add(cert.clone())
                .map_err(|e| self.invalid(format!("caCertFile: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    fn invalid(&self, what: String) -> TlsError {
        TlsError::Invalid {
            profile: self.name.clone(),
            what,
        }
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        match &self.key {
            Some(key) if !self.chain.is_empty() => Ok((self.chain.clone(), key.clone_key())),
            _ => Err(self.invalid("certFile and privateKeyFile are required here".into())),
        }
    }

    /// Server side of a listener. `authenticate_peer` demands a client certificate signed by the
    /// profile's CA: a peer without one, or with one from another CA, fails the handshake.
    pub fn server_config(&self, authenticate_peer: bool) -> Result<Arc<ServerConfig>, TlsError> {
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
    /// has one; verifies the server against the profile's CA and, if `verify_hostname`, `host`
    /// against the DNS SANs and CN.
    pub fn client_config(
        &self,
        host: &str,
        verify_hostname: bool,
    ) -> Result<Arc<ClientConfig>, TlsError> {
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

/// What the real router says when a tcpListener's or tcpConnector's sslProfile cannot be used:
/// `qd_tls_config` (`src/tls/tls.c`) checks the profile (`_validate_config`), then proton reads
/// the files (`src/tls/tls_raw.c` `tls_private_allocate_raw_config`, with proton's return codes:
/// -1 for the CA file, -3 the certificate, -4 the key, -5 a key that does not match). The text
/// is the `qd_error` message, error name first.
fn raw_profile(
    entity: &Entity,
    is_listener: bool,
    authenticate_peer: bool,
) -> Result<Profile, String> {
    let name = entity.name();
    let (ca, cert, key) = (
        entity.str("caCertFile"),
        entity.str("certFile"),
        entity.str("privateKeyFile"),
    );
    let refused = |what: String| Err(format!("Configuration: {what}"));
    if is_listener {
        if cert.is_empty() {
            return refused(format!(
                "Listener requires a self-identifying certificate (sslProfile: {name})"
            ));
        }
        if authenticate_peer && ca.is_empty() {
            return refused(format!(
                "Listener requires a CA for peer authentication (sslProfile: {name})"
            ));
        }
    } else if ca.is_empty() {
        return refused(format!(
            "Connector requires a CA certificate (sslProfile: {name})"
        ));
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
            None => {
                return refused(format!(
                    "Failed to configure TLS caCertFile {ca} for sslProfile '{name}': (-1)"
                ))
            }
        }
    };
    let cert_failed = |code: i32| {
        refused(format!(
            "Failed to set TLS certFile '{cert}' for sslProfile '{name}': ({code})"
        ))
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

/// The TLS server of a tcpListener with sslProfile `profile`, set up when the tcpListener is
/// created (the files are read now). With `authenticate_peer` a client must present a
/// certificate from the profile's CA. Err is the real router's refusal text.
pub fn tcp_listener_tls(
    profile: &Entity,
    authenticate_peer: bool,
) -> Result<Arc<ServerConfig>, String> {
    raw_profile(profile, true, authenticate_peer)?
        .server_config(authenticate_peer)
        .map_err(|e| format!("Configuration: {e}"))
}

/// The TLS client of a tcpConnector with sslProfile `profile` dialling `host`, set up when the
/// tcpConnector is created: the backend is verified against the profile's CA and, with
/// `verify_hostname`, `host` against its DNS SANs and CN; the profile's certificate, if it has
/// one, is presented. Err is the real router's refusal text.
pub fn tcp_connector_tls(
    profile: &Entity,
    host: &str,
    verify_hostname: bool,
) -> Result<Arc<ClientConfig>, String> {
    raw_profile(profile, false, false)?
        .client_config(host, verify_hostname)
        .map_err(|e| format!("Configuration: {e}"))
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

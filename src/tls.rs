//! TLS client settings shared by every client vansite runs (router management, token
//! redemption, link checks): trust only the CA that came with the credentials, never the
//! system's public roots, and present a client certificate when one is given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the CA certificate is not valid PEM: {0}")]
    CaPem(String),
    #[error("no certificate found in the CA PEM")]
    NoCa,
    #[error("the CA certificate was rejected: {0}")]
    CaRejected(String),
    #[error("the client certificate is not valid PEM: {0}")]
    CertPem(String),
    #[error("no certificate found in the client certificate PEM")]
    NoCert,
    #[error("the client key is not valid PEM: {0}")]
    KeyPem(String),
    #[error("the client certificate and key do not match: {0}")]
    Mismatch(String),
    #[error("TLS 1.3 is not available: {0}")]
    Versions(String),
}

/// A client certificate chain and its key, PEM.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// Which TLS versions a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// rustls' defaults (TLS 1.2 and 1.3): what the router's own listeners accept.
    Default,
    /// TLS 1.3 only, as Skupper's grant clients require.
    Tls13Only,
}

/// The roots of trust: every certificate in `ca_pem`, and nothing else.
pub fn roots(ca_pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsConfigError::CaPem(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::CaRejected(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCa);
    }
    Ok(roots)
}

/// A client configuration trusting only `ca_pem`, presenting `identity` if given.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<Identity<'_>>,
    versions: Versions,
) -> Result<ClientConfig, TlsConfigError> {
    let roots = roots(ca_pem)?;
    let builder = match versions {
        Versions::Default => ClientConfig::builder(),
        Versions::Tls13Only => {
            ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        }
    }
    .with_root_certificates(roots);
    let Some(identity) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::CertPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCert);
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem)
        .map_err(|e| TlsConfigError::KeyPem(e.to_string()))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsConfigError::Mismatch(e.to_string()))
}

/// The rustls error behind an error, if any (tokio-rustls wraps it in an `io::Error`).
pub fn find_rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(tls);
            }
        }
        cur = err.source();
    }
    None
}

/// Whether the peer's certificate failed verification against our CA (as opposed to the
/// peer refusing ours, or the network failing).
pub fn is_untrusted_server(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

/// Whether the peer refused the certificate we presented (or wanted one we did not present).
pub fn is_refused_client(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e,
        rustls::Error::AlertReceived(
            A::CertificateRequired
                | A::UnknownCA
                | A::BadCertificate
                | A::DecryptError
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::AccessDenied
        )
    )
}

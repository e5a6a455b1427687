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

/// PEM framing checked line by line, in a person's words: a block cut off (what a PEM parser
/// calls a "missing section end marker"), an END without its BEGIN, no block at all.
pub fn check_pem_framing(pem: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    let marker = |line: &str, prefix: &str| {
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("-----"))
            .map(str::to_string)
    };
    let cut_off = |label: &str| {
        format!(
            "the {} is cut off (no END {label} line): the file is truncated?",
            label.to_lowercase()
        )
    };
    let mut open: Option<String> = None;
    let mut blocks = 0;
    for line in text.lines().map(str::trim) {
        if let Some(label) = marker(line, "-----BEGIN ") {
            if let Some(begun) = open.replace(label) {
                return Err(cut_off(&begun));
            }
        } else if let Some(label) = marker(line, "-----END ") {
            match open.take() {
                Some(begun) if begun == label => blocks += 1,
                Some(begun) => {
                    return Err(format!(
                        "a {begun} block ends with END {label}: the PEM text is damaged"
                    ))
                }
                None => {
                    return Err(format!(
                        "END {label} comes without its BEGIN {label} line: the start is cut off"
                    ))
                }
            }
        }
    }
    match open {
        Some(begun) => Err(cut_off(&begun)),
        None if blocks == 0 => Err("no PEM block in it (no -----BEGIN line)".into()),
        None => Ok(()),
    }
}

/// The roots of trust: every certificate in `ca_pem`, and nothing else.
pub fn roots(ca_pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    check_pem_framing(ca_pem).map_err(TlsConfigError::CaPem)?;
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
    check_pem_framing(identity.cert_pem).map_err(TlsConfigError::CertPem)?;
    check_pem_framing(identity.key_pem).map_err(TlsConfigError::KeyPem)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_framing_is_told_in_words() {
        assert_eq!(check_pem_framing(BLOCK.as_bytes()), Ok(()));
        assert_eq!(check_pem_framing(BLOCK.repeat(2).as_bytes()), Ok(()));
        let cut = |text: &str| check_pem_framing(text.as_bytes()).unwrap_err();
        assert_eq!(
            cut("-----BEGIN CERTIFICATE-----\nAAAA\n"),
            "the certificate is cut off (no END CERTIFICATE line): the file is truncated?"
        );
        assert_eq!(
            cut(&format!("{BLOCK}-----BEGIN EC PRIVATE KEY-----\nAA")),
            "the ec private key is cut off (no END EC PRIVATE KEY line): the file is truncated?"
        );
        assert!(cut("AAAA\n-----END CERTIFICATE-----\n").contains("without its BEGIN"));
        assert!(cut("").contains("no PEM block"));
        assert!(
            cut("-----BEGIN CERTIFICATE-----\n-----END PRIVATE KEY-----\n")
                .contains("ends with END PRIVATE KEY")
        );
    }
}

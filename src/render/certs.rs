//! Certificate authorities and the leaf certificates a site's router uses.
//!
//! Follows Skupper's rules (`internal/certs/certs.go`, skupper-formats §5) with one documented
//! deviation: keys are ECDSA P-256 instead of RSA 2048 (much faster to generate; OpenSSL-based
//! routers accept them). Every certificate is valid for 5 years, has KeyUsage
//! DigitalSignature|KeyEncipherment and both ServerAuth and ClientAuth; CAs add CertSign. Every
//! host becomes a DNS SAN, because the router checks the dialled host against DNS SANs and the
//! CN only, and hosts that are IP addresses also become IP SANs.
//!
//! Nothing here touches files: existing certificates come in as PEM text and the result goes
//! out as PEM text, so the caller decides what to write.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::time::ASN1Time;

use crate::model::{Secret, SiteResources, LOCAL_ROUTER_ACCESS};

/// Issuer of the certificates remote sites link to (RouterAccess server certificates).
pub const SITE_CA: &str = "skupper-site-ca";
/// Issuer of the router's local management certificates.
pub const LOCAL_CA: &str = "skupper-local-ca";
/// Issuer of the certificates of TLS Listeners and Connectors.
pub const SERVICE_CA: &str = "skupper-service-ca";
/// Server certificate of the local management listener (`skupper-local` RouterAccess).
pub const LOCAL_SERVER: &str = "skupper-local-server";
/// Client certificate for management over the local listener (what `vansite status` uses).
pub const LOCAL_CLIENT: &str = "skupper-local-client";
/// Issuer of the grant server's certificate; an AccessToken's `ca` is this CA.
pub const GRANT_SERVER_CA: &str = "skupper-grant-server-ca";
/// The grant server's certificate (SANs = the site's hosts).
pub const GRANT_SERVER: &str = "skupper-grant-server";

/// Skupper issues for 5×365 days.
const VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);
/// A leaf expiring sooner than this is issued again rather than reused.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The hosts of the local management certificates.
const LOCAL_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot create certificate '{subject}': {source}")]
    Generate {
        subject: String,
        source: rcgen::Error,
    },
    #[error("certificate authority '{name}' cannot be used: {problem}; remove its files to have a new CA generated (links issued by the old one stop working)")]
    BadCa { name: String, problem: String },
    /// `user` is the resource that names the Secret, as `Kind/name`.
    #[error("Secret '{secret}' (used by {user}): {problem}")]
    Secret {
        user: String,
        secret: String,
        problem: String,
    },
}

/// The three PEM files of a certificate directory (`ca.crt`, `tls.crt`, `tls.key`), as in a
/// Kubernetes TLS Secret. For a leaf `ca_crt` is its issuer's certificate; for a CA, itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub ca_crt: String,
    pub tls_crt: String,
    pub tls_key: String,
}

/// A certificate authority that can sign leaves.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    files: CertFiles,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert", &self.files.tls_crt)
            .finish()
    }
}

impl Ca {
    /// A new self-signed CA whose subject CN is `common_name`.
    pub fn new(common_name: &str) -> Result<Self, CertError> {
        Ok(Self::generate(common_name, None)?.0)
    }

    /// The CA that takes this one's place (`certs rotate --ca`): a new key, the CN
    /// `common_name`, and the same certificate signed by this CA (PEM), which follows every
    /// leaf of the successor so that whoever still trusts only this CA verifies them.
    pub fn successor(&self, common_name: &str) -> Result<(Ca, String), CertError> {
        let (successor, cross) = Self::generate(common_name, Some(self))?;
        Ok((successor, cross.expect("signed by the predecessor")))
    }

    fn generate(
        common_name: &str,
        predecessor: Option<&Ca>,
    ) -> Result<(Self, Option<String>), CertError> {
        let generate = |source| CertError::Generate {
            subject: common_name.to_string(),
            source,
        };
        let key = new_key().map_err(generate)?;
        let mut params = base_params(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        params.use_authority_key_identifier_extension = predecessor.is_some();
        let cross = predecessor
            .map(|ca| params.signed_by(&key, &ca.issuer).map(|c| c.pem()))
            .transpose()
            .map_err(generate)?;
        params.use_authority_key_identifier_extension = false;
        let cert = params.self_signed(&key).map_err(generate)?;
        let files = CertFiles {
            ca_crt: cert.pem(),
            tls_crt: cert.pem(),
            tls_key: key.serialize_pem(),
        };
        Ok((
            Self {
                issuer: Issuer::new(params, key),
                files,
            },
            cross,
        ))
    }

    /// Reloads a CA from its certificate and private key (PEM; the key may be PKCS#8, SEC1 or
    /// PKCS#1 RSA, so a CA written by Skupper loads too). `name` is for messages.
    pub fn from_pem(name: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let bad = |problem: String| CertError::BadCa {
            name: name.to_string(),
            problem,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(format!("tls.key: {e}")))?;
        let pem = parse_pem(cert_pem).map_err(|e| bad(format!("tls.crt: {e}")))?;
        let cert = pem.parse_x509().map_err(|e| bad(format!("tls.crt: {e}")))?;
        if !cert.is_ca() {
            return Err(bad("tls.crt is not a CA certificate".into()));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(bad("tls.key does not belong to tls.crt".into()));
        }
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| bad(format!("tls.crt: {e}")))?;
        Ok(Self {
            issuer,
            files: CertFiles {
                ca_crt: cert_pem.to_string(),
                tls_crt: cert_pem.to_string(),
                tls_key: key_pem.to_string(),
            },
        })
    }

    /// The CA's own files (`ca.crt` and `tls.crt` are both its certificate).
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    pub fn cert_pem(&self) -> &str {
        &self.files.tls_crt
    }
}

/// Issues a leaf signed by `ca` with CN `subject` and a SAN per host (DNS always, IP too for
/// addresses).
pub fn issue(ca: &Ca, subject: &str, hosts: &[String]) -> Result<CertFiles, CertError> {
    issue_with_unit(ca, subject, None, hosts)
}

/// The client certificate of one incoming link: CN `subject` (what Skupper puts there), OU
/// the name the link is known by here, so the router's connection (its `user`) names it. It
/// is signed by that link's own CA, sent along as the chain's second certificate; `ca.crt` is
/// left to the caller: the CA the linking site checks this site's server certificate with.
pub fn issue_link_client(
    link_ca: &Ca,
    subject: &str,
    link: &str,
    hosts: &[String],
) -> Result<CertFiles, CertError> {
    let mut files = issue_with_unit(link_ca, subject, Some(link), hosts)?;
    files.tls_crt.push_str(link_ca.cert_pem());
    Ok(files)
}

fn issue_with_unit(
    ca: &Ca,
    subject: &str,
    unit: Option<&str>,
    hosts: &[String],
) -> Result<CertFiles, CertError> {
    let generate = |source| CertError::Generate {
        subject: subject.to_string(),
        source,
    };
    let key = new_key().map_err(generate)?;
    let mut params = base_params(subject);
    if let Some(unit) = unit {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, unit);
    }
    params.use_authority_key_identifier_extension = true;
    for host in hosts {
        let dns = host.clone().try_into().map_err(generate)?;
        params.subject_alt_names.push(SanType::DnsName(dns));
        if let Ok(ip) = host.parse::<IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;
    Ok(CertFiles {
        ca_crt: ca.cert_pem().to_string(),
        tls_crt: cert.pem(),
        tls_key: key.serialize_pem(),
    })
}

/// Checks a link's credentials, which come from another site (a Secret, a token):
/// `ca.crt` is a certificate, `tls.crt` a certificate signed by it (Skupper issues a link's
/// client certificate with the CA it ships as `ca.crt`) or by the next certificate of its
/// chain (vansite signs each link's with a CA of its own, see [`issue_link_client`]), and
/// `tls.key` the certificate's private key. A damaged or altered file fails here instead of
/// in the router.
pub fn check_credentials(files: &CertFiles) -> Result<(), String> {
    let ca_pem = parse_pem(&files.ca_crt).map_err(|e| format!("ca.crt: {e}"))?;
    ca_pem
        .parse_x509()
        .map_err(|e| format!("ca.crt is not a valid certificate: {e}"))?;
    crate::tls::check_pem_framing(files.tls_crt.as_bytes()).map_err(|e| format!("tls.crt: {e}"))?;
    crate::tls::check_pem_framing(files.tls_key.as_bytes()).map_err(|e| format!("tls.key: {e}"))?;
    let chain: Vec<Pem> = Pem::iter_from_buffer(files.tls_crt.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    let leaf_pem = chain.first().ok_or("tls.crt: no PEM block")?;
    let cert = leaf_pem
        .parse_x509()
        .map_err(|e| format!("tls.crt is not a valid certificate: {e}"))?;
    let signed = std::iter::once(&ca_pem)
        .chain(chain.iter().skip(1))
        .filter_map(|pem| pem.parse_x509().ok())
        .any(|issuer| cert.verify_signature(Some(issuer.public_key())).is_ok());
    if !signed {
        return Err(
            "tls.crt is not signed by ca.crt nor by its chain (altered, or not from one site)"
                .into(),
        );
    }
    check_key_pair(files)
}

/// Checks that `tls.crt` is a certificate and `tls.key` its private key.
pub fn check_key_pair(files: &CertFiles) -> Result<(), String> {
    let pem = parse_pem(&files.tls_crt).map_err(|e| format!("tls.crt: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("tls.crt is not a valid certificate: {e}"))?;
    let key = KeyPair::from_pem(&files.tls_key)
        .map_err(|e| format!("tls.key is not a valid private key: {e}"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("tls.key does not belong to tls.crt".into());
    }
    Ok(())
}

/// Whether two PEM texts hold the same (first) certificate, whatever their line layout.
pub fn same_certificate(a: &str, b: &str) -> bool {
    matches!((parse_pem(a), parse_pem(b)), (Ok(a), Ok(b)) if a.contents == b.contents)
}

/// Issuers (`runtime/issuers/<name>/`), leaves (`runtime/certs/<name>/`) and the CAs of the
/// incoming links this site issued (`runtime/link-issuers/<link>/`) of a site, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteCertificates {
    pub issuers: BTreeMap<String, CertFiles>,
    pub certs: BTreeMap<String, CertFiles>,
    /// One CA per link this site issued (a redeemed token, a generated link), by the link's
    /// name here: the link listeners trust each until the link is revoked.
    pub link_issuers: BTreeMap<String, CertFiles>,
    /// The CAs `certs rotate --ca` replaced (`runtime/prior-issuers/<name>/`), by the name of
    /// their successor: trusted beside it until the next rotation.
    pub prior_issuers: BTreeMap<String, PriorCa>,
}

/// A CA replaced by its successor, and what keeps both trusted meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorCa {
    /// Its certificate: in the trust files of everything its successor's leaves use.
    pub ca_crt: String,
    /// The successor's certificate signed by it: after each of the successor's leaves, so
    /// that a peer holding only this CA (another site's link, an unredeemed token, a running
    /// router's old trust) still verifies them.
    pub cross_crt: String,
}

/// The CAs `certs rotate --ca` renews: those vansite made and only it issues from (a
/// RouterAccess's own `issuer` and signing Certificates are the user's).
pub const ROTATED_CAS: [&str; 4] = [SITE_CA, LOCAL_CA, SERVICE_CA, GRANT_SERVER_CA];

/// Which existing leaves a plan may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafRenewal {
    /// Keep every leaf that is still what it should be and not within 30 days of expiry.
    WhenDue,
    /// Issue every leaf vansite issues again (`certs rotate`); CAs and the user's stay.
    All,
}

/// What one leaf must look like to be reused.
struct LeafSpec {
    name: String,
    issuer: String,
    subject: String,
    hosts: Vec<String>,
    /// A link listener's certificate: its `ca.crt` is the trust bundle of its issuer and
    /// every link CA (what the listener checks linking routers' certificates against).
    trusts_links: bool,
}

/// The certificates `resources` need, reusing what `existing` holds: every existing CA is kept
/// (links issued by it keep working), and an existing leaf is kept when it was signed by its
/// CA, has the same CN and SANs, matches its key and is not about to expire. Only what is
/// missing or outdated is issued, so running this on its own output changes nothing.
///
/// Issued: the CAs skupper-site-ca, skupper-local-ca, skupper-service-ca and any RouterAccess
/// `issuer`; for RouterAccess `skupper-local` its server certificate (CN 127.0.0.1) and
/// skupper-local-client; for every RouterAccess accepting links its server certificate
/// (CN = RouterAccess name, SANs = subjectAlternativeNames + bindHost); for every TLS Listener
/// and Connector a server certificate from skupper-service-ca (CN and SAN = its host), for a
/// Connector without client certificate also under `<tlsCredentials>-profile`. Each Link's
/// Secret becomes `<tlsCredentials>-profile`, the name its router sslProfile uses. A site that
/// accepts links also gets skupper-grant-server-ca and the grant server's certificate
/// skupper-grant-server (CN skupper-grant-server, SANs = its RouterAccess's names). Each
/// Certificate resource is issued by its `spec.ca` (CN = `subject`, SANs = `hosts`), and takes
/// the place of the one a service of that tlsCredentials would get; a `signing` one is a CA.
///
/// Link CAs are kept as they are: they are made by [`issue_link_client`]'s callers and removed
/// by a revocation, never here.
pub fn site_certificates(
    resources: &SiteResources,
    existing: &SiteCertificates,
    renewal: LeafRenewal,
) -> Result<SiteCertificates, CertError> {
    let leaves = leaf_specs(resources);
    let issuer_names: BTreeSet<String> = [SITE_CA, LOCAL_CA, SERVICE_CA]
        .into_iter()
        .map(String::from)
        .chain(leaves.iter().map(|leaf| leaf.issuer.clone()))
        .chain(
            resources
                .certificates
                .iter()
                .filter(|c| c.spec.signing)
                .map(|c| c.metadata.name.clone()),
        )
        .collect();
    let mut cas = BTreeMap::new();
    for name in issuer_names {
        let ca = match existing.issuers.get(&name) {
            Some(files) => Ca::from_pem(&name, &files.tls_crt, &files.tls_key)?,
            None => Ca::new(&name)?,
        };
        cas.insert(name, ca);
    }
    let mut result = SiteCertificates {
        issuers: cas
            .iter()
            .map(|(name, ca)| (name.clone(), ca.files().clone()))
            .collect(),
        certs: BTreeMap::new(),
        link_issuers: existing.link_issuers.clone(),
        prior_issuers: existing.prior_issuers.clone(),
    };
    for leaf in leaves {
        let ca = &cas[&leaf.issuer];
        let mut files = match existing.certs.get(&leaf.name) {
            Some(files)
                if renewal == LeafRenewal::WhenDue
                    && leaf_is_current(files, ca, &leaf.subject, &leaf.hosts) =>
            {
                files.clone()
            }
            _ => issue(ca, &leaf.subject, &leaf.hosts)?,
        };
        let prior = existing.prior_issuers.get(&leaf.issuer);
        files.tls_crt = with_chain(&files.tls_crt, prior);
        let link_issuers = if leaf.trusts_links {
            &existing.link_issuers
        } else {
            &BTreeMap::new()
        };
        files.ca_crt = trust_bundle(ca, prior, link_issuers);
        result.certs.insert(leaf.name, files);
    }
    for service in service_tls(resources) {
        if declared_certificate(resources, service.credentials) {
            continue;
        }
        if let Some(secret) = resources.secret(service.credentials) {
            let files = secret_files(secret, &service.user, service.needs)?;
            if service.needs.contains(&"tls.key") {
                // The user's files: a wrong pair fails here, not in the router.
                check_key_pair(&files).map_err(|problem| CertError::Secret {
                    user: service.user.clone(),
                    secret: service.credentials.to_string(),
                    problem,
                })?;
            }
            result.certs.insert(service.credentials.to_string(), files);
        }
    }
    // A Connector without a client certificate has a CA-only router profile named
    // `<tlsCredentials>-profile`; Skupper writes no such directory (the router then refuses to
    // start), so vansite writes the same files there: its ca.crt trusts the backend's certificate.
    for connector in &resources.connectors {
        let spec = &connector.spec;
        if !spec.tls_credentials.is_empty() && !spec.use_client_cert {
            let files = result.certs[&spec.tls_credentials].clone();
            result
                .certs
                .insert(format!("{}-profile", spec.tls_credentials), files);
        }
    }
    for link in &resources.links {
        let secret_name = &link.spec.tls_credentials;
        let secret = resources
            .secret(secret_name)
            .ok_or_else(|| CertError::Secret {
                user: format!("Link/{}", link.metadata.name),
                secret: secret_name.clone(),
                problem: "no such Secret".into(),
            })?;
        let files = secret_files(
            secret,
            &format!("Link/{}", link.metadata.name),
            &["ca.crt", "tls.crt", "tls.key"],
        )?;
        result.certs.insert(format!("{secret_name}-profile"), files);
    }
    Ok(result)
}

/// A leaf's trust file: its issuer, the issuer's predecessor while both are trusted, and for
/// a link listener every link CA (links issued before vansite gave each its own CA, and
/// Skupper's, are the issuer's), one PEM file.
fn trust_bundle(
    issuer: &Ca,
    prior: Option<&PriorCa>,
    link_issuers: &BTreeMap<String, CertFiles>,
) -> String {
    let link_cas = link_issuers.values().map(|ca| ca.tls_crt.as_str());
    let bundle = std::iter::once(issuer.cert_pem())
        .chain(prior.map(|p| p.ca_crt.as_str()))
        .chain(link_cas);
    pem_concat(bundle)
}

/// A leaf's `tls.crt`: the leaf (the first certificate of `tls_crt`), then, while its issuer
/// has a predecessor, the issuer signed by that predecessor.
fn with_chain(tls_crt: &str, prior: Option<&PriorCa>) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    let leaf = match tls_crt.find(END) {
        Some(at) => &tls_crt[..at + END.len()],
        None => tls_crt,
    };
    pem_concat(std::iter::once(leaf).chain(prior.map(|p| p.cross_crt.as_str())))
}

/// PEM texts one after the other, each ending in a newline.
fn pem_concat<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    texts.fold(String::new(), |mut out, text| {
        out.push_str(text.trim_end());
        out.push('\n');
        out
    })
}

fn leaf_specs(resources: &SiteResources) -> Vec<LeafSpec> {
    let local_hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
    let mut leaves = Vec::new();
    for access in &resources.router_accesses {
        let issuer = |default: &str| {
            if access.spec.issuer.is_empty() {
                default.to_string()
            } else {
                access.spec.issuer.clone()
            }
        };
        if access.metadata.name == LOCAL_ROUTER_ACCESS {
            let issuer = issuer(LOCAL_CA);
            leaves.push(LeafSpec {
                name: access.tls_credentials().to_string(),
                issuer: issuer.clone(),
                subject: LOCAL_HOSTS[0].to_string(),
                hosts: local_hosts.clone(),
                trusts_links: false,
            });
            leaves.push(LeafSpec {
                name: LOCAL_CLIENT.to_string(),
                issuer,
                subject: LOCAL_HOSTS[0].to_string(),
                hosts: local_hosts.clone(),
                trusts_links: false,
            });
        } else if access.accepts_links() {
            let mut hosts = access.spec.subject_alternative_names.clone();
            let bind_host = &access.spec.bind_host;
            if !bind_host.is_empty() && !hosts.contains(bind_host) {
                hosts.push(bind_host.clone());
            }
            leaves.push(LeafSpec {
                name: access.tls_credentials().to_string(),
                issuer: issuer(SITE_CA),
                subject: access.metadata.name.clone(),
                hosts,
                trusts_links: true,
            });
        }
    }
    let site_access = resources
        .router_access(resources.site_name())
        .filter(|a| resources.site.spec.link_access_enabled() && a.accepts_links());
    if let (Some(access), false) = (site_access, resources.is_edge()) {
        leaves.push(LeafSpec {
            name: GRANT_SERVER.to_string(),
            issuer: GRANT_SERVER_CA.to_string(),
            subject: GRANT_SERVER.to_string(),
            hosts: access.spec.subject_alternative_names.clone(),
            trusts_links: false,
        });
    }
    for certificate in resources.certificates.iter().filter(|c| !c.spec.signing) {
        leaves.push(LeafSpec {
            name: certificate.metadata.name.clone(),
            issuer: certificate.spec.ca.clone(),
            subject: certificate.subject().to_string(),
            hosts: certificate.spec.hosts.clone(),
            trusts_links: false,
        });
    }
    for service in service_tls(resources) {
        let credentials = service.credentials;
        let taken = |leaves: &[LeafSpec]| leaves.iter().any(|l| l.name == credentials);
        if declared_certificate(resources, credentials)
            || resources.secret(credentials).is_some()
            || taken(&leaves)
        {
            continue;
        }
        let hosts = service_hosts(resources, service.host);
        leaves.push(LeafSpec {
            name: credentials.to_string(),
            issuer: SERVICE_CA.to_string(),
            subject: hosts[0].clone(),
            hosts,
            trusts_links: false,
        });
    }
    leaves
}

/// One service's use of `tlsCredentials`, and what it needs from them.
struct ServiceTls<'a> {
    credentials: &'a str,
    /// The service, as `Kind/name`, for messages.
    user: String,
    host: &'a str,
    /// The files a Secret of that name must hold: a listener presents `tls.crt` (and checks
    /// clients against `ca.crt` when it requires their certificates); a connector verifies the
    /// backend with `ca.crt` and presents `tls.crt` only with `useClientCert`.
    needs: &'static [&'static str],
}

const SERVER_FILES: &[&str] = &["tls.crt", "tls.key"];
const ALL_FILES: &[&str] = &["ca.crt", "tls.crt", "tls.key"];
const CA_FILE: &[&str] = &["ca.crt"];

fn service_tls(resources: &SiteResources) -> Vec<ServiceTls<'_>> {
    let listeners = resources.listeners.iter().map(|l| ServiceTls {
        credentials: &l.spec.tls_credentials,
        user: format!("Listener/{}", l.metadata.name),
        host: &l.spec.host,
        needs: SERVER_FILES,
    });
    let multi_key_listeners = resources.multi_key_listeners.iter().map(|l| ServiceTls {
        credentials: &l.spec.tls_credentials,
        user: format!("MultiKeyListener/{}", l.metadata.name),
        host: &l.spec.host,
        needs: if l.spec.require_client_cert {
            ALL_FILES
        } else {
            SERVER_FILES
        },
    });
    let connectors = resources.connectors.iter().map(|c| ServiceTls {
        credentials: &c.spec.tls_credentials,
        user: format!("Connector/{}", c.metadata.name),
        host: &c.spec.host,
        needs: if c.spec.use_client_cert {
            ALL_FILES
        } else {
            CA_FILE
        },
    });
    listeners
        .chain(multi_key_listeners)
        .chain(connectors)
        .filter(|service| !service.credentials.is_empty())
        .collect()
}

/// A Certificate the user declared is what a service of that tlsCredentials uses.
fn declared_certificate(resources: &SiteResources, name: &str) -> bool {
    resources
        .certificates
        .iter()
        .any(|c| c.metadata.name == name)
}

/// Whether the router profile of a listener's `tlsCredentials` has a CA to check clients with:
/// every certificate vansite issues has one; a Secret of the user's may hold none.
pub fn listener_credentials_have_ca(resources: &SiteResources, name: &str) -> bool {
    declared_certificate(resources, name)
        || resources
            .secret(name)
            .is_none_or(|secret| secret.data.contains_key("ca.crt"))
}

/// The names a service's issued server certificate carries: its host, or for a listener on
/// every interface (`0.0.0.0`, `::`) the names clients use for this host: localhost, 127.0.0.1
/// and the site's link names (its RouterAccess subject alternative names).
fn service_hosts(resources: &SiteResources, host: &str) -> Vec<String> {
    let unspecified = host
        .parse::<IpAddr>()
        .is_ok_and(|address| address.is_unspecified());
    if !unspecified {
        return vec![host.to_string()];
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1"].map(String::from).to_vec();
    let site_names = resources
        .router_access(resources.site_name())
        .map(|access| access.spec.subject_alternative_names.clone())
        .unwrap_or_default();
    for name in site_names {
        if !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    hosts
}

/// The PEM files of a Secret: each of `needs` must be there and be PEM text; a file not needed
/// and absent is left empty.
fn secret_files(secret: &Secret, user: &str, needs: &[&str]) -> Result<CertFiles, CertError> {
    let problem = |problem: String| CertError::Secret {
        user: user.to_string(),
        secret: secret.metadata.name.clone(),
        problem,
    };
    let text = |key: &str| -> Result<String, CertError> {
        match secret.decoded(key) {
            None if needs.contains(&key) => Err(problem(format!("data has no '{key}'"))),
            None => Ok(String::new()),
            Some(bytes) => {
                let bytes =
                    bytes.map_err(|e| problem(format!("'{key}' is not valid base64: {e}")))?;
                String::from_utf8(bytes).map_err(|_| problem(format!("'{key}' is not PEM text")))
            }
        }
    };
    let files = CertFiles {
        ca_crt: text("ca.crt")?,
        tls_crt: text("tls.crt")?,
        tls_key: text("tls.key")?,
    };
    Ok(files)
}

/// Whether an existing leaf still is what [`issue`] would produce for `subject`/`hosts` by `ca`.
fn leaf_is_current(files: &CertFiles, ca: &Ca, subject: &str, hosts: &[String]) -> bool {
    // A link listener's `ca.crt` is a bundle that starts with its issuer.
    if !same_certificate(&files.ca_crt, ca.cert_pem()) {
        return false;
    }
    let (Ok(ca_pem), Ok(leaf_pem), Ok(key)) = (
        parse_pem(ca.cert_pem()),
        parse_pem(&files.tls_crt),
        KeyPair::from_pem(&files.tls_key),
    ) else {
        return false;
    };
    let (Ok(ca_cert), Ok(leaf)) = (ca_pem.parse_x509(), leaf_pem.parse_x509()) else {
        return false;
    };
    let renew_at = ASN1Time::now().to_datetime() + RENEW_BEFORE;
    let names = SubjectNames::of(&leaf);
    leaf.verify_signature(Some(ca_cert.public_key())).is_ok()
        && leaf.public_key().subject_public_key.data.as_ref() == key.der_bytes()
        && leaf.validity().not_after.to_datetime() > renew_at
        && names == SubjectNames::expected(subject, hosts)
}

/// The names a certificate is valid for, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
struct SubjectNames {
    common_name: Option<String>,
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
}

impl SubjectNames {
    fn of(cert: &X509Certificate<'_>) -> Self {
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(String::from);
        let mut dns = BTreeSet::new();
        let mut ips = BTreeSet::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(host) => {
                        dns.insert(host.to_string());
                    }
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ips.insert(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Self {
            common_name,
            dns,
            ips,
        }
    }

    fn expected(subject: &str, hosts: &[String]) -> Self {
        Self {
            common_name: Some(subject.to_string()),
            dns: hosts.iter().cloned().collect(),
            ips: hosts.iter().filter_map(|host| host.parse().ok()).collect(),
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A PEM certificate's validity window as Unix seconds (notBefore, notAfter).
pub fn validity(cert_pem: &str) -> Result<(i64, i64), String> {
    let pem = parse_pem(cert_pem)?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// The certificates (DER) of a PEM bundle such as a trust file; blocks that do not parse are
/// left out.
pub fn bundle_certificates(text: &str) -> BTreeSet<Vec<u8>> {
    Pem::iter_from_buffer(text.as_bytes())
        .flatten()
        .filter(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
        .collect()
}

fn parse_pem(text: &str) -> Result<Pem, String> {
    crate::tls::check_pem_framing(text.as_bytes())?;
    Pem::iter_from_buffer(text.as_bytes())
        .next()
        .ok_or_else(|| "no PEM block".to_string())?
        .map_err(|e| e.to_string())
}

fn new_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

/// What CAs and leaves share: CN, 5-year validity from now, random 128-bit serial, key usages.
fn base_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let now = ASN1Time::now().to_datetime();
    params.not_before = now;
    params.not_after = now + VALIDITY;
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f; // a positive DER INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;

    use super::*;
    use crate::model::{parse_documents, Secret, SiteResources};

    fn der(pem: &str) -> Vec<u8> {
        parse_pem(pem).unwrap().contents
    }

    /// What a site with no certificates yet gets.
    fn issued(resources: &SiteResources) -> SiteCertificates {
        site_certificates(
            resources,
            &SiteCertificates::default(),
            LeafRenewal::WhenDue,
        )
        .unwrap()
    }

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn new_ca_is_a_self_signed_p256_ca() {
        let ca = Ca::new("skupper-site-ca").unwrap();
        let files = ca.files();
        assert_eq!(files.ca_crt, files.tls_crt);
        let pem = parse_pem(&files.tls_crt).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert!(cert.is_ca());
        assert_eq!(
            SubjectNames::of(&cert).common_name.as_deref(),
            Some("skupper-site-ca")
        );
        assert_eq!(cert.subject(), cert.issuer());
        cert.verify_signature(None).unwrap();
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.digital_signature() && usage.key_encipherment());
        assert_eq!(
            cert.public_key().algorithm.algorithm,
            OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        assert!(files.tls_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn leaf_has_cn_every_host_as_dns_san_ips_as_ip_sans_and_both_ekus() {
        let ca = Ca::new("skupper-site-ca").unwrap();
        let files = issue(&ca, "west", &hosts(&["west.example", "192.0.2.1", "::1"])).unwrap();
        assert_eq!(files.ca_crt, ca.cert_pem());
        let pem = parse_pem(&files.tls_crt).unwrap();
        let leaf = pem.parse_x509().unwrap();
        let names = SubjectNames::of(&leaf);
        assert_eq!(names.common_name.as_deref(), Some("west"));
        assert_eq!(
            names.dns,
            ["west.example", "192.0.2.1", "::1"]
                .map(String::from)
                .into()
        );
        let expected_ips: BTreeSet<IpAddr> =
            ["192.0.2.1".parse().unwrap(), "::1".parse().unwrap()].into();
        assert_eq!(names.ips, expected_ips);
        assert!(!leaf.is_ca());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let ca_pem = parse_pem(ca.cert_pem()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        assert_eq!(leaf.issuer(), ca_cert.subject());
        leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
        let has_authority_key_id = leaf.extensions().iter().any(|ext| {
            matches!(
                ext.parsed_extension(),
                ParsedExtension::AuthorityKeyIdentifier(_)
            )
        });
        assert!(has_authority_key_id);
        let lifetime =
            leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
        assert_eq!(lifetime, VALIDITY.as_secs() as i64);
    }

    #[test]
    fn after_a_ca_rotation_leaves_verify_for_peers_of_the_old_ca_and_of_the_new() {
        let resources = site("");
        let first = issued(&resources);
        let old = &first.issuers[SITE_CA];
        let current = Ca::from_pem(SITE_CA, &old.tls_crt, &old.tls_key).unwrap();
        let (successor, cross_crt) = current.successor("skupper-site-ca-2").unwrap();
        let mut rotated = first.clone();
        rotated
            .issuers
            .insert(SITE_CA.into(), successor.files().clone());
        rotated.prior_issuers.insert(
            SITE_CA.into(),
            PriorCa {
                ca_crt: old.tls_crt.clone(),
                cross_crt,
            },
        );
        let next = site_certificates(&resources, &rotated, LeafRenewal::All).unwrap();
        let server = &next.certs["west"];
        let chain: Vec<CertificateDer> = Pem::iter_from_buffer(server.tls_crt.as_bytes())
            .map(|pem| CertificateDer::from(pem.unwrap().contents))
            .collect();
        assert_eq!(
            chain.len(),
            2,
            "the leaf, then the new CA signed by the old"
        );
        assert_eq!(
            bundle_certificates(&server.ca_crt).len(),
            2,
            "both CAs trusted"
        );
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        for (peer, ca_pem) in [
            ("an old peer", old.tls_crt.as_str()),
            ("a new peer", successor.cert_pem()),
        ] {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(der(ca_pem))).unwrap();
            let roots = Arc::new(roots);
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .unwrap()
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from("west.example").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{peer}: {e}"));
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .unwrap()
                .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
                .unwrap_or_else(|e| panic!("{peer}: {e}"));
        }
        // Planning again keeps it all; the next rotation's prior replaces this one.
        assert_eq!(
            site_certificates(&resources, &next, LeafRenewal::WhenDue).unwrap(),
            next
        );
    }

    #[test]
    fn leaf_verifies_against_its_ca_with_webpki_as_server_and_client() {
        let ca = Ca::new("skupper-local-ca").unwrap();
        let files = issue(&ca, "127.0.0.1", &hosts(&LOCAL_HOSTS)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(der(ca.cert_pem()))).unwrap();
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let leaf = CertificateDer::from(der(&files.tls_crt));
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .unwrap();
        for host in ["localhost", "127.0.0.1"] {
            server
                .verify_server_cert(
                    &leaf,
                    &[],
                    &ServerName::try_from(host).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        assert!(server
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("other.example").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err());
        let client = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .unwrap();
        client
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .unwrap();
        let stranger = issue(&Ca::new("other").unwrap(), "x", &[]).unwrap();
        assert!(client
            .verify_client_cert(
                &CertificateDer::from(der(&stranger.tls_crt)),
                &[],
                UnixTime::now()
            )
            .is_err());
    }

    #[test]
    fn reloaded_ca_signs_leaves_that_chain_to_the_original() {
        let original = Ca::new("skupper-site-ca").unwrap();
        let files = original.files();
        let reloaded = Ca::from_pem("skupper-site-ca", &files.tls_crt, &files.tls_key).unwrap();
        assert_eq!(reloaded.files(), files);
        let leaf = issue(&reloaded, "west", &hosts(&["west"])).unwrap();
        assert!(leaf_is_current(&leaf, &original, "west", &hosts(&["west"])));
    }

    #[test]
    fn bad_ca_files_are_refused_with_the_ca_named() {
        let ca = Ca::new("a").unwrap();
        let other = Ca::new("b").unwrap();
        let leaf = issue(&ca, "leaf", &[]).unwrap();
        let error = Ca::from_pem(
            "skupper-site-ca",
            &ca.files().tls_crt,
            &other.files().tls_key,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("'skupper-site-ca'") && error.contains("does not belong"),
            "{error}"
        );
        let error = Ca::from_pem("x", &leaf.tls_crt, &leaf.tls_key)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a CA"), "{error}");
        assert!(Ca::from_pem("x", "garbage", "garbage").is_err());
        assert!(Ca::from_pem("x", &ca.files().tls_crt[..100], &ca.files().tls_key).is_err());
    }

    /// A site with link access (RouterAccess `west`: west.example, 192.0.2.1), a Link with its
    /// Secret, and TLS services.
    pub(crate) fn site(extra: &str) -> SiteResources {
        let link_ca = Ca::new("remote-ca").unwrap();
        let link_client = issue(&link_ca, "west", &[]).unwrap();
        let mut secret = Secret::default();
        secret.metadata.name = "east-token".into();
        secret.secret_type = "kubernetes.io/tls".into();
        secret.insert("ca.crt", link_client.ca_crt.as_bytes());
        secret.insert("tls.crt", link_client.tls_crt.as_bytes());
        secret.insert("tls.key", link_client.tls_key.as_bytes());
        let text = format!(
            r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata: {{name: west, uid: 6f1c0000-0000-4000-8000-000000000001}}
spec: {{linkAccess: default}}
---
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {{name: skupper-local}}
spec:
  roles: [{{name: normal, port: 5671}}]
  bindHost: 127.0.0.1
  tlsCredentials: skupper-local-server
  issuer: skupper-local-ca
---
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {{name: west}}
spec:
  roles: [{{name: inter-router, port: 55671}}, {{name: edge, port: 45671}}]
  tlsCredentials: west
  issuer: skupper-site-ca
  subjectAlternativeNames: [west.example, 192.0.2.1]
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata: {{name: east-token}}
spec:
  tlsCredentials: east-token
  endpoints: [{{name: inter-router, host: 203.0.113.7, port: "55671"}}]
---
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata: {{name: db}}
spec: {{routingKey: db, host: db.local, port: 5432, tlsCredentials: db-tls}}
---
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata: {{name: payments}}
spec: {{routingKey: payments, host: payments.local, port: 8443, tlsCredentials: payments-tls}}
{extra}"#
        );
        let mut resources = parse_documents(&text, "site.yaml").unwrap().resources;
        resources.push(crate::model::Resource::Secret(secret));
        SiteResources::new("default", resources).unwrap()
    }

    #[test]
    fn declared_certificates_are_issued_by_their_ca_and_serve_the_services_that_name_them() {
        let resources = site(
            "---\napiVersion: skupper.io/v2alpha1\nkind: Certificate\nmetadata: {name: db-tls}\n\
             spec: {ca: my-ca, subject: db.example, hosts: [db.example, db]}\n\
             ---\napiVersion: skupper.io/v2alpha1\nkind: Certificate\nmetadata: {name: my-ca}\n\
             spec: {signing: true}\n",
        );
        let certs = issued(&resources);
        assert!(
            certs.issuers.contains_key("my-ca"),
            "a signing Certificate is a CA"
        );
        let db = &certs.certs["db-tls"];
        assert_eq!(
            db.ca_crt, certs.issuers["my-ca"].tls_crt,
            "not skupper-service-ca"
        );
        let names = SubjectNames::of(&parse_pem(&db.tls_crt).unwrap().parse_x509().unwrap());
        assert_eq!(
            names,
            SubjectNames::expected("db.example", &super::tests::hosts(&["db.example", "db"]))
        );
        let again = site_certificates(&resources, &certs, LeafRenewal::WhenDue).unwrap();
        assert_eq!(again, certs, "kept as long as it is current");
    }

    #[test]
    fn link_listeners_trust_every_issued_link_and_rotation_renews_every_leaf() {
        let resources = site("");
        let first = issued(&resources);
        let link_ca = Ca::new("vansite-link-east").unwrap();
        let with_link = SiteCertificates {
            link_issuers: BTreeMap::from([("east".to_string(), link_ca.files().clone())]),
            ..first.clone()
        };
        let trusted = site_certificates(&resources, &with_link, LeafRenewal::WhenDue).unwrap();
        let server = &trusted.certs["west"];
        assert_eq!(
            server.tls_crt, first.certs["west"].tls_crt,
            "the same server certificate"
        );
        let bundle = bundle_certificates(&server.ca_crt);
        assert_eq!(bundle.len(), 2, "{}", server.ca_crt);
        assert!(bundle.contains(&der(link_ca.cert_pem())));
        assert!(bundle.contains(&der(&first.issuers[SITE_CA].tls_crt)));
        assert_eq!(
            trusted.link_issuers, with_link.link_issuers,
            "kept as they are"
        );
        assert_eq!(
            site_certificates(&resources, &trusted, LeafRenewal::WhenDue).unwrap(),
            trusted,
            "a bundle is current"
        );
        // A client certificate of that link verifies against the bundle.
        let client = issue_link_client(&link_ca, "east", "east", &[]).unwrap();
        let files = CertFiles {
            ca_crt: server.ca_crt.clone(),
            ..client
        };
        check_credentials(&files).unwrap();

        let rotated = site_certificates(&resources, &trusted, LeafRenewal::All).unwrap();
        assert_eq!(rotated.issuers, trusted.issuers, "the CAs stay");
        for (name, files) in &trusted.certs {
            // The link's Secret is another site's; the rest vansite issued.
            let issued_here = name != "east-token-profile";
            assert_eq!(
                rotated.certs[name].tls_crt != files.tls_crt,
                issued_here,
                "{name}"
            );
        }
    }

    #[test]
    fn site_gets_its_issuers_and_leaves() {
        let resources = site("");
        let certs = issued(&resources);
        let issuers: Vec<&str> = certs.issuers.keys().map(String::as_str).collect();
        assert_eq!(issuers, [GRANT_SERVER_CA, LOCAL_CA, SERVICE_CA, SITE_CA]);
        let leaves: Vec<&str> = certs.certs.keys().map(String::as_str).collect();
        assert_eq!(
            leaves,
            [
                "db-tls",
                "east-token-profile",
                "payments-tls",
                "payments-tls-profile",
                GRANT_SERVER,
                LOCAL_CLIENT,
                LOCAL_SERVER,
                "west"
            ]
        );
        let check = |name: &str, issuer: &str, cn: &str, hosts: &[&str]| {
            let files = &certs.certs[name];
            assert_eq!(files.ca_crt, certs.issuers[issuer].tls_crt, "{name}");
            let pem = parse_pem(&files.tls_crt).unwrap();
            let names = SubjectNames::of(&pem.parse_x509().unwrap());
            assert_eq!(
                names,
                SubjectNames::expected(cn, &super::tests::hosts(hosts)),
                "{name}"
            );
        };
        check(LOCAL_SERVER, LOCAL_CA, "127.0.0.1", &LOCAL_HOSTS);
        check(LOCAL_CLIENT, LOCAL_CA, "127.0.0.1", &LOCAL_HOSTS);
        check("west", SITE_CA, "west", &["west.example", "192.0.2.1"]);
        check(
            GRANT_SERVER,
            GRANT_SERVER_CA,
            GRANT_SERVER,
            &["west.example", "192.0.2.1"],
        );
        check("db-tls", SERVICE_CA, "db.local", &["db.local"]);
        check(
            "payments-tls",
            SERVICE_CA,
            "payments.local",
            &["payments.local"],
        );
        assert_eq!(
            certs.certs["payments-tls-profile"],
            certs.certs["payments-tls"]
        );
        let secret = resources.secret("east-token").unwrap();
        let link_files = &certs.certs["east-token-profile"];
        assert_eq!(
            link_files.tls_key.as_bytes(),
            secret.decoded("tls.key").unwrap().unwrap()
        );
    }

    #[test]
    fn multi_key_listener_gets_its_server_certificate() {
        // As Skupper's `site_state.go` issues one for a MultiKeyListener's tlsCredentials.
        let resources = site(
            "---\napiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {name: web}\n\
             spec: {host: web.local, port: 8443, tlsCredentials: web-tls, \
             strategy: {priority: {routingKeys: [web-a, web-b]}}}\n",
        );
        let certs = issued(&resources);
        let files = &certs.certs["web-tls"];
        assert_eq!(files.ca_crt, certs.issuers[SERVICE_CA].tls_crt);
        let pem = parse_pem(&files.tls_crt).unwrap();
        assert_eq!(
            SubjectNames::of(&pem.parse_x509().unwrap()),
            SubjectNames::expected("web.local", &super::tests::hosts(&["web.local"]))
        );
    }

    #[test]
    fn running_twice_changes_nothing() {
        let resources = site("");
        let first = issued(&resources);
        let second = site_certificates(&resources, &first, LeafRenewal::WhenDue).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn only_outdated_or_missing_leaves_are_reissued() {
        let resources = site("");
        let first = issued(&resources);

        // New SANs for the RouterAccess: only its certificate and the grant server's change.
        let mut changed = resources.clone();
        changed.router_accesses[1]
            .spec
            .subject_alternative_names
            .push("west.other".into());
        let second = site_certificates(&changed, &first, LeafRenewal::WhenDue).unwrap();
        assert_eq!(second.issuers, first.issuers);
        for (name, files) in &second.certs {
            let renamed = matches!(name.as_str(), "west" | GRANT_SERVER);
            assert_eq!(files == &first.certs[name], !renamed, "{name}");
        }

        // A missing leaf, and one signed by a CA that is not its issuer, are issued again.
        let mut existing = first.clone();
        existing.certs.remove(LOCAL_CLIENT);
        let stranger = Ca::new(LOCAL_CA).unwrap();
        existing.certs.insert(
            LOCAL_SERVER.into(),
            issue(&stranger, "127.0.0.1", &hosts(&LOCAL_HOSTS)).unwrap(),
        );
        let third = site_certificates(&resources, &existing, LeafRenewal::WhenDue).unwrap();
        assert_eq!(third.issuers, first.issuers);
        assert_eq!(third.certs["west"], first.certs["west"]);
        assert_ne!(third.certs[LOCAL_SERVER], existing.certs[LOCAL_SERVER]);
        assert!(leaf_is_current(
            &third.certs[LOCAL_SERVER],
            &Ca::from_pem(
                LOCAL_CA,
                &first.issuers[LOCAL_CA].tls_crt,
                &first.issuers[LOCAL_CA].tls_key
            )
            .unwrap(),
            "127.0.0.1",
            &hosts(&LOCAL_HOSTS)
        ));
        assert!(third.certs.contains_key(LOCAL_CLIENT));
    }

    #[test]
    fn corrupt_existing_ca_is_an_error_not_a_silent_new_ca() {
        let resources = site("");
        let mut existing = issued(&resources);
        existing.issuers.get_mut(SITE_CA).unwrap().tls_key = "garbage".into();
        let error = site_certificates(&resources, &existing, LeafRenewal::WhenDue).unwrap_err();
        assert!(
            matches!(error, CertError::BadCa { ref name, .. } if name == SITE_CA),
            "{error}"
        );
    }

    #[test]
    fn router_access_with_own_issuer_gets_that_ca() {
        let extra = "---\napiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {name: backup}\n\
                     spec: {roles: [{name: inter-router, port: 55672}], issuer: backup-ca, bindHost: 10.0.0.1}\n";
        let resources = site(extra);
        let certs = issued(&resources);
        assert!(certs.issuers.contains_key("backup-ca"));
        let backup = &certs.certs["backup"];
        assert_eq!(backup.ca_crt, certs.issuers["backup-ca"].tls_crt);
        let pem = parse_pem(&backup.tls_crt).unwrap();
        let names = SubjectNames::of(&pem.parse_x509().unwrap());
        assert_eq!(
            names,
            SubjectNames::expected("backup", &hosts(&["10.0.0.1"]))
        );
    }

    /// A kubernetes.io/tls Secret document of `files`, without `ca.crt` when it is empty.
    fn secret_document(name: &str, files: &CertFiles) -> String {
        let mut secret = Secret::default();
        secret.metadata.name = name.into();
        secret.secret_type = "kubernetes.io/tls".into();
        for (key, pem) in [
            ("ca.crt", &files.ca_crt),
            ("tls.crt", &files.tls_crt),
            ("tls.key", &files.tls_key),
        ] {
            if !pem.is_empty() {
                secret.insert(key, pem.as_bytes());
            }
        }
        let data: Vec<String> = secret
            .data
            .iter()
            .map(|(k, v)| format!("  {k}: {v}\n"))
            .collect();
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\ndata:\n{}",
            data.concat()
        )
    }

    #[test]
    fn a_services_secret_is_used_as_it_is_and_checked() {
        let theirs = Ca::new("their-ca").unwrap();
        let server = issue(&theirs, "db.example", &hosts(&["db.example"])).unwrap();
        let without_ca = CertFiles {
            ca_crt: String::new(),
            ..server.clone()
        };
        let backend_ca = CertFiles {
            ca_crt: theirs.cert_pem().to_string(),
            tls_crt: String::new(),
            tls_key: String::new(),
        };
        let resources = site(
            &(secret_document("db-tls", &without_ca)
                + &secret_document("payments-tls", &backend_ca)),
        );
        let certs = issued(&resources);
        assert_eq!(
            certs.certs["db-tls"], without_ca,
            "the listener presents the user's pair"
        );
        assert!(!listener_credentials_have_ca(&resources, "db-tls"));
        assert_eq!(
            certs.certs["payments-tls-profile"].ca_crt,
            theirs.cert_pem(),
            "the connector verifies its backend with the Secret's CA"
        );

        let stranger = issue(&theirs, "other", &[]).unwrap();
        let mismatched = CertFiles {
            tls_key: stranger.tls_key,
            ..server
        };
        let error = site_certificates(
            &site(&secret_document("db-tls", &mismatched)),
            &SiteCertificates::default(),
            LeafRenewal::WhenDue,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "Secret 'db-tls' (used by Listener/db): tls.key does not belong to tls.crt"
        );
        let error = site_certificates(
            &site(&secret_document("payments-tls", &without_ca)),
            &SiteCertificates::default(),
            LeafRenewal::WhenDue,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("(used by Connector/payments): data has no 'ca.crt'"),
            "{error}"
        );
    }

    #[test]
    fn a_listener_on_every_interface_is_issued_for_the_names_clients_use() {
        let resources = site(
            "---\napiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {name: web}\n\
             spec: {routingKey: web, host: 0.0.0.0, port: 8443, tlsCredentials: web-tls}\n",
        );
        let certs = issued(&resources);
        let pem = parse_pem(&certs.certs["web-tls"].tls_crt).unwrap();
        assert_eq!(
            SubjectNames::of(&pem.parse_x509().unwrap()),
            SubjectNames::expected(
                "localhost",
                &hosts(&["localhost", "127.0.0.1", "west.example", "192.0.2.1"])
            )
        );
        assert!(listener_credentials_have_ca(&resources, "web-tls"));
    }
}

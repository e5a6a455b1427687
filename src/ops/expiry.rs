//! When the site's certificates expire: every certificate vansite keeps for the site (its
//! issuing CAs, the router's, each link's and each service's), read from the site's runtime
//! directory. The soonest decides what `status` shows and what `doctor` says.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::render::certs;
use crate::store::SiteDir;

/// `doctor` warns this long before a certificate expires.
pub const EXPIRY_WARNING_SECONDS: i64 = 30 * 24 * 60 * 60;

/// One certificate file and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The file, relative to the site's runtime directory (`certs/west/tls.crt`).
    pub certificate: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// How a certificate stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryState {
    Valid,
    /// Within [`EXPIRY_WARNING_SECONDS`] of its end.
    Soon,
    Expired,
}

impl ExpiryState {
    /// The word the JSON uses too.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryState::Valid => "valid",
            ExpiryState::Soon => "soon",
            ExpiryState::Expired => "expired",
        }
    }
}

/// A certificate's expiry as `status` and `certs list` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    /// The file, relative to the site's runtime directory.
    pub certificate: String,
    /// RFC 3339.
    pub not_after: String,
    pub days_left: i64,
    pub state: ExpiryState,
}

impl CertificateExpiry {
    /// How it stands at `now` (Unix seconds).
    pub fn report(&self, now: i64) -> ExpiryReport {
        ExpiryReport {
            certificate: self.certificate.clone(),
            not_after: rfc3339_of_unix(self.not_after),
            days_left: self.days_left(now),
            state: self.state(now),
        }
    }

    pub fn state(&self, now: i64) -> ExpiryState {
        if now >= self.not_after {
            ExpiryState::Expired
        } else if now + EXPIRY_WARNING_SECONDS >= self.not_after {
            ExpiryState::Soon
        } else {
            ExpiryState::Valid
        }
    }

    /// Whole days left (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(24 * 60 * 60)
    }
}

/// Every certificate of the site (`tls.crt` and `ca.crt` under `issuers/`, `link-issuers/`
/// and `certs/`);
/// files that are not certificates are skipped.
pub fn site_certificates(site_dir: &SiteDir) -> Vec<CertificateExpiry> {
    let runtime = site_dir.runtime();
    let mut found = Vec::new();
    for top in [
        site_dir.issuers(),
        site_dir.link_issuers(),
        site_dir.certs(),
    ] {
        let Ok(entries) = std::fs::read_dir(&top) else {
            continue;
        };
        for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            for file in ["tls.crt", "ca.crt"] {
                if let Some(not_after) = not_after(&dir.join(file)) {
                    let path = dir.join(file);
                    let relative = path.strip_prefix(&runtime).unwrap_or(&path);
                    found.push(CertificateExpiry {
                        certificate: relative.display().to_string(),
                        not_after,
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| (a.not_after, &a.certificate).cmp(&(b.not_after, &b.certificate)));
    found
}

/// The certificate that expires first.
pub fn soonest(certificates: &[CertificateExpiry]) -> Option<&CertificateExpiry> {
    certificates
        .iter()
        .min_by_key(|c| (c.not_after, &c.certificate))
}

/// RFC 3339 of a Unix time in seconds (times before 1970 shown as 1970).
pub fn rfc3339_of_unix(seconds: i64) -> String {
    super::rfc3339(UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64))
}

fn not_after(path: &Path) -> Option<i64> {
    let pem = std::fs::read_to_string(path).ok()?;
    certs::validity(&pem).ok().map(|(_, not_after)| not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    fn expiring(certificate: &str, not_after: i64) -> CertificateExpiry {
        CertificateExpiry {
            certificate: certificate.into(),
            not_after,
        }
    }

    #[test]
    fn valid_then_soon_thirty_days_ahead_then_expired() {
        let now = 1_800_000_000;
        let cert = expiring("certs/west/tls.crt", now + 31 * DAY);
        assert_eq!(cert.state(now), ExpiryState::Valid);
        assert_eq!(cert.days_left(now), 31);
        assert_eq!(cert.state(now + 2 * DAY), ExpiryState::Soon);
        assert_eq!(cert.state(now + 31 * DAY), ExpiryState::Expired);
        assert_eq!(cert.days_left(now + 31 * DAY + 1), -1);
    }

    #[test]
    fn the_soonest_decides() {
        let all = [
            expiring("issuers/skupper-site-ca/tls.crt", 300),
            expiring("certs/web-tls/tls.crt", 100),
            expiring("certs/west/tls.crt", 200),
        ];
        assert_eq!(soonest(&all).unwrap().certificate, "certs/web-tls/tls.crt");
        assert_eq!(soonest(&[]), None);
    }
}

//! `Certificate`: a certificate the site makes for the user (Skupper's non-kube sites generate
//! them: `createTlsCertificates`), written to `runtime/certs/<name>/` (`ca.crt`, `tls.crt`,
//! `tls.key`) for a listener's or connector's `tlsCredentials` or for a program of the user's.
//! `spec.ca` names the issuing CA: one of the site's (skupper-site-ca, skupper-service-ca, ...)
//! or a new CA of that name; a `signing` Certificate is itself a CA (`runtime/issuers/<name>/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{check_name, Invalid};
use super::meta::{is_false, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The issuing CA's name; a host site needs one (self-signed leaves are not made).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca: String,
    /// The CN [default: the Certificate's name].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Subject alternative names (every one also a DNS name: the router ignores IP SANs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub client: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub server: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub signing: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type Certificate = Object<CertificateSpec>;

impl Certificate {
    /// The CN it is issued with.
    pub fn subject(&self) -> &str {
        if self.spec.subject.is_empty() {
            &self.metadata.name
        } else {
            &self.spec.subject
        }
    }
}

impl Validate for Certificate {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let spec = &self.spec;
        if spec.signing {
            return Ok(());
        }
        if spec.ca.is_empty() {
            return Err(invalid(
                "spec.ca",
                "is required on a host site: name the issuing CA (e.g. skupper-service-ca, \
                 or a signing Certificate)"
                    .into(),
            ));
        }
        check_name(&spec.ca).map_err(|problem| invalid("spec.ca", problem))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;
    use super::super::Resource;

    #[test]
    fn a_leaf_names_its_ca_and_defaults_its_subject_to_its_name() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Certificate\nmetadata: {name: web}\n\
                    spec: {ca: skupper-service-ca, hosts: [web.example], server: true}\n";
        let parsed = parse(text).unwrap();
        let Resource::Certificate(certificate) = &parsed.resources[0] else {
            panic!("a Certificate")
        };
        assert_eq!(certificate.subject(), "web");
        let without_ca = "apiVersion: skupper.io/v2alpha1\nkind: Certificate\n\
                          metadata: {name: web}\nspec: {hosts: [web.example]}\n";
        assert!(parse(without_ca)
            .unwrap_err()
            .to_string()
            .contains("spec.ca: is required"));
    }
}

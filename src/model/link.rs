//! `Link`: endpoints of a remote site's router and the Secret with the client certificate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{check_port_text, Invalid};
use super::meta::{is_zero, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// A string in Skupper's Link type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Name of the Secret holding the client certificate and the remote site's CA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

impl LinkSpec {
    /// The endpoint for a router role (`inter-router` on interior sites, `edge` on edge sites).
    pub fn endpoint_for_role(&self, role: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|endpoint| endpoint.name == role)
    }
}

pub type Link = Object<LinkSpec>;

impl Validate for Link {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        if self.spec.endpoints.is_empty() {
            return Err(invalid(
                "spec.endpoints",
                "is required (at least one endpoint)".into(),
            ));
        }
        for endpoint in &self.spec.endpoints {
            if endpoint.name.is_empty() || endpoint.host.is_empty() {
                return Err(invalid(
                    "spec.endpoints",
                    "every endpoint needs a name (inter-router or edge) and a host".into(),
                ));
            }
            check_port_text(&endpoint.port)
                .map_err(|problem| invalid("spec.endpoints[].port", problem))?;
        }
        if self.spec.tls_credentials.is_empty() {
            return Err(invalid(
                "spec.tlsCredentials",
                "is required: the Secret with the link's client certificate".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;

    #[test]
    fn missing_required_fields_are_named() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata: {name: l}\nspec: {tlsCredentials: s}\n";
        assert!(parse(text)
            .unwrap_err()
            .to_string()
            .contains("spec.endpoints: is required"));
    }
}

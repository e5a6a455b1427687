//! `RouterAccess`: a port the router listens on for links (roles inter-router, edge) or, as
//! `skupper-local`, for local management (role normal).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::check::{check_name, Invalid};
use super::meta::{is_false, Object, Settings};
use super::registry::Validate;
use super::{ResourceError, LOCAL_ROUTER_ACCESS};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterAccessRole {
    #[serde(default)]
    pub name: String,
    /// 0 means the role's default port (55671 inter-router, 45671 edge).
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub port: u16,
}

fn is_zero_u16(value: &u16) -> bool {
    *value == 0
}

impl RouterAccessRole {
    /// The port the router listens on, with Skupper's defaults for 0 (`RouterAccessRole.GetPort`).
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.name.as_str()) {
            (0, "edge") => 45671,
            (0, _) => 55671,
            (port, _) => port,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterAccessSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_type: String,
    #[serde(default)]
    pub roles: Vec<RouterAccessRole>,
    /// Name of the server certificate; on non-kube sites it defaults to the RouterAccess name.
    #[serde(default)]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub generate_tls_credentials: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Empty binds every interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind_host: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alternative_names: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type RouterAccess = Object<RouterAccessSpec>;

impl RouterAccess {
    /// The server certificate name: `spec.tlsCredentials`, or the RouterAccess name (non-kube default).
    pub fn tls_credentials(&self) -> &str {
        if self.spec.tls_credentials.is_empty() {
            &self.metadata.name
        } else {
            &self.spec.tls_credentials
        }
    }

    /// Whether remote routers can link to this access (it has an inter-router or edge role).
    pub fn accepts_links(&self) -> bool {
        self.spec
            .roles
            .iter()
            .any(|role| matches!(role.name.as_str(), "inter-router" | "edge"))
    }
}

impl Validate for RouterAccess {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let spec = &self.spec;
        if !spec.tls_credentials.is_empty() {
            check_name(&spec.tls_credentials)
                .map_err(|problem| invalid("spec.tlsCredentials", problem))?;
        }
        if spec.roles.is_empty() {
            return Err(invalid(
                "spec.roles",
                "is required (inter-router and/or edge)".into(),
            ));
        }
        let is_local = self.metadata.name == LOCAL_ROUTER_ACCESS;
        let mut seen = BTreeSet::new();
        for role in &spec.roles {
            let allowed = if is_local {
                role.name == "normal"
            } else {
                matches!(role.name.as_str(), "inter-router" | "edge")
            };
            if !allowed {
                let expected = if is_local {
                    format!("'{LOCAL_ROUTER_ACCESS}' is reserved for the local management access and takes only role normal")
                } else {
                    "valid roles: inter-router, edge".to_string()
                };
                return Err(invalid(
                    "spec.roles",
                    format!("invalid role '{}' ({expected})", role.name),
                ));
            }
            if !seen.insert(role.name.as_str()) {
                return Err(invalid(
                    "spec.roles",
                    format!("role '{}' is listed twice", role.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;

    #[test]
    fn router_access_roles_are_checked() {
        let access = |name: &str, roles: &str| {
            format!("apiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {{name: {name}}}\nspec:\n  tlsCredentials: x\n  roles: {roles}\n")
        };
        assert!(parse(&access(
            "west",
            "[{name: inter-router, port: 55671}, {name: edge}]"
        ))
        .is_ok());
        assert!(parse(&access("skupper-local", "[{name: normal, port: 5671}]")).is_ok());
        let error = parse(&access("west", "[{name: normal}]"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("invalid role 'normal' (valid roles: inter-router, edge)"),
            "{error}"
        );
        let error = parse(&access("skupper-local", "[{name: edge}]"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("reserved"), "{error}");
        assert!(parse(&access("west", "[]"))
            .unwrap_err()
            .to_string()
            .contains("spec.roles"));
        assert!(parse(&access("west", "[{name: edge}, {name: edge}]")).is_err());
    }
}

//! `Connector`: where connections for one routing key leave the network (a host and port).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{check_host, check_tcp_type, require, Invalid};
use super::meta::{is_false, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpec {
    #[serde(default)]
    pub routing_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_client_cert: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify_hostname: bool,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub connector_type: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub expose_pods_by_name: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_not_ready_pods: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type Connector = Object<ConnectorSpec>;

impl Validate for Connector {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let spec = &self.spec;
        require("spec.routingKey", &spec.routing_key, invalid)?;
        require("spec.host", &spec.host, invalid)?;
        check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
        if spec.port == 0 {
            return Err(invalid("spec.port", "is required (1-65535)".into()));
        }
        check_tcp_type(&spec.connector_type).map_err(|problem| invalid("spec.type", problem))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;

    #[test]
    fn missing_required_fields_are_named() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata: {name: c}\n\
                    spec: {routingKey: k, port: 80}\n";
        assert!(parse(text)
            .unwrap_err()
            .to_string()
            .contains("spec.host: is required"));
    }
}

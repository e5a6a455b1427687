//! `Listener`: a port on this host whose connections go to one routing key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{check_host, check_observer, check_tcp_type, require, Invalid};
use super::meta::{is_false, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub listener_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub expose_pods_by_name: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type Listener = Object<ListenerSpec>;

impl Listener {
    /// The router's loopback port for this Listener, when vansite serves it through a forwarder.
    pub fn router_port(&self) -> Option<u16> {
        self.metadata.router_port()
    }
}

impl Validate for Listener {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let spec = &self.spec;
        require("spec.routingKey", &spec.routing_key, invalid)?;
        require("spec.host", &spec.host, invalid)?;
        check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
        if spec.port == 0 {
            return Err(invalid("spec.port", "is required (1-65535)".into()));
        }
        check_tcp_type(&spec.listener_type).map_err(|problem| invalid("spec.type", problem))?;
        check_observer(&spec.observer).map_err(|problem| invalid("spec.observer", problem))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;

    #[test]
    fn wrong_field_type_is_an_error_naming_the_field() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata: {name: l}\n\
                    spec: {routingKey: k, host: 0.0.0.0, port: eighty}\n";
        let text = parse(text).unwrap_err().to_string();
        assert!(
            text.contains("Listener/l") && text.contains("eighty"),
            "{text}"
        );
    }
}

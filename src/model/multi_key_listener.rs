//! `MultiKeyListener`: a Listener whose connections go to one of several routing keys, chosen
//! by a priority or weighted strategy.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::check::{check_host, check_observer, require, Invalid};
use super::meta::{is_false, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

/// A Listener whose connections go to one of several routing keys, chosen by a strategy
/// (Skupper's `MultiKeyListenerSpec`, `pkg/apis/skupper/v2alpha1/multikeylistener_types.go`;
/// fields in Go's order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiKeyListenerSpec {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_credentials: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_client_cert: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
    #[serde(default)]
    pub strategy: MultiKeyListenerStrategy,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observer: String,
}

/// Exactly one of `priority` or `weighted` (Skupper's `MultiKeyListenerStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiKeyListenerStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityStrategySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<WeightedStrategySpec>,
}

/// Routing keys from highest to lowest priority: every connection goes to the first key that
/// has a reachable connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorityStrategySpec {
    #[serde(default)]
    pub routing_keys: Vec<String>,
}

/// Routing keys and their weights: connections are spread over the reachable keys in
/// proportion to their weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedStrategySpec {
    #[serde(default)]
    pub routing_keys: BTreeMap<String, u32>,
}

/// Skupper's limit on the routing keys of one strategy (the CRD's `maxItems`/`maxProperties`).
pub const MAX_STRATEGY_KEYS: usize = 256;

pub type MultiKeyListener = Object<MultiKeyListenerSpec>;

/// Which of the two strategies a MultiKeyListener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    Priority,
    Weighted,
}

impl StrategyKind {
    /// The field name in the resource, and the router's `multiAddressStrategy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Priority => "priority",
            StrategyKind::Weighted => "weighted",
        }
    }
}

impl MultiKeyListener {
    /// The router's loopback port for this MultiKeyListener, when vansite serves it through a
    /// forwarder (as for a Listener).
    pub fn router_port(&self) -> Option<u16> {
        self.metadata.router_port()
    }

    /// The strategy in use; None unless exactly one is set (refused by validation).
    pub fn strategy_kind(&self) -> Option<StrategyKind> {
        match (&self.spec.strategy.priority, &self.spec.strategy.weighted) {
            (Some(_), None) => Some(StrategyKind::Priority),
            (None, Some(_)) => Some(StrategyKind::Weighted),
            _ => None,
        }
    }

    /// Every routing key with the router's `listenerAddress` value, as Skupper computes it
    /// (`internal/site/multikeylistener.go`): for priority the first key gets the highest
    /// value (keys − 1) down to 0 for the last; for weighted the value is the weight. Weighted
    /// keys come sorted by key.
    pub fn keyed_values(&self) -> Vec<(&str, i64)> {
        let strategy = &self.spec.strategy;
        if let Some(priority) = &strategy.priority {
            let count = priority.routing_keys.len() as i64;
            priority
                .routing_keys
                .iter()
                .enumerate()
                .map(|(index, key)| (key.as_str(), count - 1 - index as i64))
                .collect()
        } else if let Some(weighted) = &strategy.weighted {
            weighted
                .routing_keys
                .iter()
                .map(|(key, weight)| (key.as_str(), i64::from(*weight)))
                .collect()
        } else {
            Vec::new()
        }
    }
}

/// Skupper's checks (`site_state_validator.go` `validateMultiKeyListeners` and the CRD):
/// host and port, exactly one strategy, 1 to 256 non-empty keys (unique for priority),
/// weights of at least 1.
impl Validate for MultiKeyListener {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        let spec = &self.spec;
        require("spec.host", &spec.host, invalid)?;
        check_host(&spec.host).map_err(|problem| invalid("spec.host", problem))?;
        if spec.port == 0 {
            return Err(invalid("spec.port", "is required (1-65535)".into()));
        }
        check_observer(&spec.observer).map_err(|problem| invalid("spec.observer", problem))?;
        let keys: Vec<&String> = match (&spec.strategy.priority, &spec.strategy.weighted) {
            (None, None) => {
                return Err(invalid(
                    "spec.strategy",
                    "is required: give either strategy.priority or strategy.weighted".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "spec.strategy",
                    "give only one of strategy.priority or strategy.weighted".into(),
                ))
            }
            (Some(priority), None) => {
                let mut seen = BTreeSet::new();
                for key in &priority.routing_keys {
                    if !seen.insert(key) {
                        return Err(invalid(
                            "spec.strategy.priority.routingKeys",
                            format!("routing key '{key}' is listed twice"),
                        ));
                    }
                }
                priority.routing_keys.iter().collect()
            }
            (None, Some(weighted)) => {
                if let Some((key, _)) = weighted.routing_keys.iter().find(|(_, w)| **w == 0) {
                    return Err(invalid(
                        "spec.strategy.weighted.routingKeys",
                        format!("the weight of '{key}' must be positive (at least 1)"),
                    ));
                }
                weighted.routing_keys.keys().collect()
            }
        };
        let field = match self.strategy_kind() {
            Some(StrategyKind::Weighted) => "spec.strategy.weighted.routingKeys",
            _ => "spec.strategy.priority.routingKeys",
        };
        if keys.is_empty() {
            return Err(invalid(
                field,
                "must not be empty (1 to 256 routing keys)".into(),
            ));
        }
        if keys.len() > MAX_STRATEGY_KEYS {
            return Err(invalid(
                field,
                format!(
                    "has {} routing keys; at most {MAX_STRATEGY_KEYS} are allowed",
                    keys.len()
                ),
            ));
        }
        if keys.iter().any(|key| key.is_empty()) {
            return Err(invalid(field, "a routing key must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{mkl, parse, PRIORITY_MKL, WEIGHTED_MKL};
    use super::super::Resource;
    use super::*;

    #[test]
    fn multi_key_listener_round_trips_in_skuppers_shape() {
        let priority = mkl(PRIORITY_MKL);
        assert_eq!(priority.spec.port, 5432);
        assert!(priority.spec.require_client_cert);
        assert_eq!(priority.strategy_kind(), Some(StrategyKind::Priority));
        assert_eq!(priority.router_port(), Some(41001));
        let resource = Resource::MultiKeyListener(priority);
        assert_eq!(resource.to_yaml().unwrap(), PRIORITY_MKL);
        assert_eq!(resource.file_name(), "MultiKeyListener-db.yaml");
        let weighted = mkl(WEIGHTED_MKL);
        assert_eq!(weighted.strategy_kind(), Some(StrategyKind::Weighted));
        assert_eq!(weighted.router_port(), None);
        assert_eq!(
            Resource::MultiKeyListener(weighted).to_yaml().unwrap(),
            WEIGHTED_MKL
        );
    }

    #[test]
    fn multi_key_listener_values_follow_skupper() {
        // Priority: the first key the highest value, the last 0 (numKeys - 1 - i).
        let three = PRIORITY_MKL.replace(
            "      - db-replica\n",
            "      - db-replica\n      - db-backup\n",
        );
        assert_eq!(
            mkl(&three).keyed_values(),
            vec![("db-primary", 2), ("db-replica", 1), ("db-backup", 0)]
        );
        assert_eq!(
            mkl(WEIGHTED_MKL).keyed_values(),
            vec![("web-blue", 3), ("web-green", 1)]
        );
    }

    #[test]
    fn multi_key_listener_strategy_is_checked() {
        let error = |text: &str| parse(text).unwrap_err().to_string();
        let no_strategy =
            "apiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {name: m}\n\
                           spec: {host: 0.0.0.0, port: 80}\n";
        assert!(
            error(no_strategy).contains("spec.strategy: is required"),
            "{}",
            error(no_strategy)
        );
        let both = format!(
            "{}    weighted:\n      routingKeys: {{a: 1}}\n",
            PRIORITY_MKL.replace("  observer: none\n", "")
        );
        assert!(error(&both).contains("only one of"), "{}", error(&both));
        let empty = PRIORITY_MKL.replace(
            "      routingKeys:\n      - db-primary\n      - db-replica\n",
            "      routingKeys: []\n",
        );
        assert!(
            error(&empty).contains("must not be empty"),
            "{}",
            error(&empty)
        );
        let twice = PRIORITY_MKL.replace("db-replica", "db-primary");
        assert!(error(&twice).contains("listed twice"), "{}", error(&twice));
        let blank = PRIORITY_MKL.replace("db-replica", "''");
        assert!(
            error(&blank).contains("must not be empty"),
            "{}",
            error(&blank)
        );
        let zero = WEIGHTED_MKL.replace("web-green: 1", "web-green: 0");
        assert!(
            error(&zero).contains("'web-green' must be positive"),
            "{}",
            error(&zero)
        );
        let negative = WEIGHTED_MKL.replace("web-green: 1", "web-green: -1");
        assert!(error(&negative).contains("MultiKeyListener/web"));
        let no_port = WEIGHTED_MKL.replace("  port: 8080\n", "");
        assert!(error(&no_port).contains("spec.port: is required"));
        let bad_host = WEIGHTED_MKL.replace("localhost", "Local_Host");
        assert!(error(&bad_host).contains("spec.host"));
        let observer = PRIORITY_MKL.replace("observer: none", "observer: http3");
        assert!(error(&observer).contains("spec.observer"));
        let many: String = (0..257).map(|i| format!("      - k{i}\n")).collect();
        let too_many = PRIORITY_MKL.replace("      - db-primary\n      - db-replica\n", &many);
        assert!(
            error(&too_many).contains("at most 256"),
            "{}",
            error(&too_many)
        );
    }
}

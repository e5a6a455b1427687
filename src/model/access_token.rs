//! `AccessToken`: a grant of another site to redeem for a Link (its file is private: the code
//! is a secret).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{require, Invalid};
use super::meta::{is_zero, Object, Settings};
use super::registry::Validate;
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenSpec {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub code: String,
    /// PEM of the grant server's CA.
    #[serde(default)]
    pub ca: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_cost: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type AccessToken = Object<AccessTokenSpec>;

impl Validate for AccessToken {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        require("spec.url", &self.spec.url, invalid)?;
        require("spec.code", &self.spec.code, invalid)?;
        require("spec.ca", &self.spec.ca, invalid)?;
        if !self.spec.url.starts_with("https://") {
            return Err(invalid("spec.url", "must be an https:// URL".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;
    use super::super::Resource;

    #[test]
    fn parses_access_token_with_block_ca() {
        let text = r#"apiVersion: skupper.io/v2alpha1
kind: AccessToken
metadata: {name: west-grant}
spec:
  url: https://10.107.241.191:9090/86b80f6b-2b02-47ac-bab4-d285bb4f7b9d
  code: L1qCl2mZ7D81gbXp3ax4YT0K
  ca: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
  linkCost: 1
"#;
        let parsed = parse(text).unwrap();
        let [Resource::AccessToken(token)] = parsed.resources.as_slice() else {
            panic!()
        };
        assert!(token
            .spec
            .ca
            .starts_with("-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert_eq!(token.spec.link_cost, 1);
        // Round trip keeps the PEM intact.
        let again = parse(&parsed.resources[0].to_yaml().unwrap()).unwrap();
        assert_eq!(again.resources, parsed.resources);
    }

    #[test]
    fn missing_required_fields_are_named() {
        let text = "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata: {name: t}\n\
                    spec: {url: 'http://x', code: c, ca: x}\n";
        assert!(parse(text).unwrap_err().to_string().contains("https://"));
    }
}

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

/// The longest grant code (or v1 claim password) vansite sends to a server: Skupper's are 24
/// (v2) and 128 (v1) characters; anything far longer is a damaged or hostile token, not a code.
pub const MAX_CODE_LENGTH: usize = 256;

/// Whether `code` can be a grant code: 1 to [`MAX_CODE_LENGTH`] printable ASCII characters.
pub fn check_code(code: &str) -> Result<(), String> {
    if code.len() > MAX_CODE_LENGTH {
        return Err(format!(
            "is {} characters long; a code is at most {MAX_CODE_LENGTH} (the file is damaged?)",
            code.len()
        ));
    }
    if !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("holds spaces, control or non-ASCII characters; a code has none".into());
    }
    Ok(())
}

impl Validate for AccessToken {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        require("spec.url", &self.spec.url, invalid)?;
        require("spec.code", &self.spec.code, invalid)?;
        check_code(&self.spec.code).map_err(|problem| invalid("spec.code", problem))?;
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

    #[test]
    fn a_code_longer_than_a_code_is_refused() {
        let token = |code: &str| {
            format!(
                "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata: {{name: t}}\n\
                 spec: {{url: 'https://x:9090/g', code: '{code}', ca: x}}\n"
            )
        };
        assert!(parse(&token(&"c".repeat(super::MAX_CODE_LENGTH))).is_ok());
        let error = parse(&token(&"c".repeat(50_000))).unwrap_err().to_string();
        assert!(
            error.contains("spec.code: is 50000 characters long; a code is at most 256"),
            "{error}"
        );
        let error = parse(&token("a code")).unwrap_err().to_string();
        assert!(error.contains("spec.code: holds spaces"), "{error}");
    }
}

//! `Secret` (core `v1`): certificates and keys, `data` base64 as in Kubernetes (its file is
//! private).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::check::Invalid;
use super::meta::{Document, ObjectMeta};
use super::registry::Validate;
use super::ResourceError;

/// A core v1 Secret; `data` values are base64 as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub secret_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

impl Secret {
    /// Decodes one data entry; `None` when absent.
    pub fn decoded(&self, key: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.data
            .get(key)
            .map(|value| base64::engine::general_purpose::STANDARD.decode(value.trim()))
    }

    /// Stores `bytes` base64-encoded under `key`.
    pub fn insert(&mut self, key: &str, bytes: &[u8]) {
        self.data.insert(
            key.to_string(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
}

impl Validate for Secret {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        for key in self.data.keys() {
            if let Some(Err(error)) = self.decoded(key) {
                return Err(invalid(
                    "data",
                    format!("'{key}' is not valid base64: {error}"),
                ));
            }
        }
        Ok(())
    }
}

/// A Secret has no `spec`: `type` and `data` sit next to `metadata`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretEnvelope<'a> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    secret: &'a Secret,
}

impl Document for Secret {
    fn to_document(
        &self,
        api_version: &'static str,
        kind: &'static str,
    ) -> Result<String, serde_saphyr::ser::Error> {
        serde_saphyr::to_string(&SecretEnvelope {
            api_version,
            kind,
            secret: self,
        })
    }
}

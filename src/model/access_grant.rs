//! `AccessGrant`: permission for other sites to redeem a token here (its file is private: the
//! code is a secret).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{is_zero, Object, Settings};
use super::registry::Validate;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantSpec {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redemptions_allowed: i64,
    /// A Go duration such as `15m`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expiration_window: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

pub type AccessGrant = Object<AccessGrantSpec>;

/// Every field may be left out (Skupper fills in defaults).
impl Validate for AccessGrant {}

//! `Site`: the one object every site has; edge or interior, and whether it accepts links.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::Invalid;
use super::meta::{is_false, Object, Settings};
use super::registry::{Singleton, Validate};
use super::ResourceError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// Anything but `""` or `none` makes the site accept links (a RouterAccess named after it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_access: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_issuer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub edge: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ha: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: Settings,
}

impl SiteSpec {
    pub fn link_access_enabled(&self) -> bool {
        !matches!(self.link_access.as_str(), "" | "none")
    }
}

pub type Site = Object<SiteSpec>;

impl Validate for Site {
    fn validate_spec(&self, invalid: Invalid) -> Result<(), ResourceError> {
        if self.spec.edge && self.spec.ha {
            return Err(invalid(
                "spec.ha",
                "an edge site cannot have HA enabled; drop one of edge/ha".into(),
            ));
        }
        Ok(())
    }
}

/// A namespace has exactly one Site.
impl Singleton for Site {
    fn exactly_one(mut found: Vec<Self>) -> Result<Self, ResourceError> {
        match found.len() {
            0 => Err(ResourceError::NoSite),
            1 => Ok(found.remove(0)),
            _ => Err(ResourceError::SeveralSites(
                found.into_iter().map(|site| site.metadata.name).collect(),
            )),
        }
    }
}

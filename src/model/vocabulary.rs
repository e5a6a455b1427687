//! The words a site's resources imply, as types: a router's mode and the role of the links it
//! makes, parsed once from the Site and used everywhere else.

use std::fmt;

use serde::Serialize;

/// Interior routers accept and make links; edge routers only link to interior ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterMode {
    Interior,
    Edge,
}

impl RouterMode {
    /// The mode of a Site whose `spec.edge` is `edge`.
    pub fn from_edge(edge: bool) -> RouterMode {
        if edge {
            RouterMode::Edge
        } else {
            RouterMode::Interior
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouterMode::Interior => "interior",
            RouterMode::Edge => "edge",
        }
    }

    /// The role of the links this router dials: edge routers dial `edge` endpoints, interior
    /// routers `inter-router` ones.
    pub fn link_role(self) -> LinkRole {
        match self {
            RouterMode::Interior => LinkRole::InterRouter,
            RouterMode::Edge => LinkRole::Edge,
        }
    }
}

impl fmt::Display for RouterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role of a link connection, and the name of the Link endpoint and RouterAccess role
/// that serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkRole {
    InterRouter,
    Edge,
}

impl LinkRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRole::InterRouter => "inter-router",
            LinkRole::Edge => "edge",
        }
    }
}

impl fmt::Display for LinkRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_name_their_link_roles_as_skupper_does() {
        assert_eq!(RouterMode::from_edge(true).link_role().as_str(), "edge");
        assert_eq!(
            RouterMode::from_edge(false).link_role().as_str(),
            "inter-router"
        );
        assert_eq!(
            serde_json::to_value(LinkRole::InterRouter).unwrap(),
            "inter-router"
        );
        assert_eq!(serde_json::to_value(RouterMode::Edge).unwrap(), "edge");
    }
}

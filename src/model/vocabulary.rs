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

    /// The role of a router `connection` that is a link; None for other connections (normal,
    /// and `inter-router-data`, the second connection of one interior link).
    pub fn of_connection(role: &str) -> Option<LinkRole> {
        match role {
            "inter-router" => Some(LinkRole::InterRouter),
            "edge" => Some(LinkRole::Edge),
            _ => None,
        }
    }
}

impl fmt::Display for LinkRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a link is, as its router reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    Connected,
    Connecting,
    Failed,
    /// The router has no connector for the Link (it cannot dial it).
    NotOnRouter,
    /// The router did not answer.
    Unknown,
}

/// Whether a listener's routing key has a connector reachable in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    Reachable,
    /// None yet: connections wait (bounded) in the forwarder.
    Pending,
    /// The router does not answer.
    Unknown,
}

macro_rules! display_as_serialized {
    ($($type:ty),*) => {$(
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(word)) => f.write_str(&word),
                    _ => unreachable!("unit variants serialize to their names"),
                }
            }
        }
    )*};
}

display_as_serialized!(LinkState, PeerState);

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
        assert_eq!(LinkState::NotOnRouter.to_string(), "not-on-router");
        assert_eq!(PeerState::Reachable.to_string(), "reachable");
    }
}

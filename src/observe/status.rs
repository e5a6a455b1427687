//! What `network status`, the console and the metrics show: the model's views with record ids
//! turned into the names a person knows (a site by its name, a link by both ends), ready to
//! print or serialize. Pure: the clock is an argument.

use std::collections::BTreeMap;

use serde::Serialize;

use super::network::{ConnectionView, EndpointView, Network};
use super::records::{RecordId, Timestamp};

/// Ended connections kept in the status besides the open ones, newest first: enough to see
/// what just happened without the list growing with the age of the collector.
pub const ENDED_CONNECTIONS_SHOWN: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    pub sites: Vec<SiteStatus>,
    pub links: Vec<LinkStatus>,
    pub services: Vec<ServiceStatus>,
    /// Open connections, then the most recently ended ones.
    pub connections: Vec<ConnectionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    pub id: String,
    /// The site whose router was asked.
    pub here: bool,
    /// The site's name, or its id when its SITE record has not said it yet.
    pub name: String,
    pub namespace: Option<String>,
    pub platform: Option<String>,
    pub version: Option<String>,
    pub routers: Vec<RouterStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStatus {
    pub name: String,
    pub mode: Option<String>,
    pub version: Option<String>,
}

/// Whether a link carries traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    Down,
    /// The router has not said (or said something else).
    Unknown,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    pub name: String,
    /// The site that dials the link.
    pub from_site: String,
    /// The site that accepts it; unknown until the link has been up once.
    pub to_site: Option<String>,
    pub role: Option<String>,
    pub cost: Option<u64>,
    pub state: LinkState,
    /// Bytes the dialling router sent and received on it.
    pub bytes_out: u64,
    pub bytes_in: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub routing_key: String,
    /// A connector for the key is live somewhere, so a listener's connections reach a
    /// service.
    pub reachable: bool,
    pub listeners: Vec<Endpoint>,
    pub connectors: Vec<Endpoint>,
    pub open_connections: usize,
    /// Connections known to the collector, open and ended.
    pub connections: usize,
    /// HTTP requests observed on them.
    pub requests: usize,
    /// Client → service, and service → client, over those connections.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// A listener or connector and its site.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub site: String,
    pub site_id: Option<String>,
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    pub id: String,
    pub routing_key: Option<String>,
    /// The listener's site, and the site of the connector that served it.
    pub from_site: Option<String>,
    pub to_site: Option<String>,
    /// `host:port` of the client, as the listener saw it.
    pub client: Option<String>,
    pub open: bool,
    /// µs since the epoch, as vanflow gives it.
    pub start_time: Option<u64>,
    /// Until it ended, or until now.
    pub duration_seconds: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Client's first byte to the first byte back, µs.
    pub latency_us: Option<u64>,
    pub error: Option<String>,
}

impl NetworkStatus {
    pub fn of(network: &Network, now: Timestamp) -> Self {
        let sites = network.sites();
        let names: BTreeMap<&RecordId, &str> = sites
            .iter()
            .filter_map(|s| Some((&s.id, s.name.as_deref()?)))
            .collect();
        let site_name = |id: &RecordId| names.get(id).map_or(id.0.clone(), |n| n.to_string());
        let named = |id: &Option<RecordId>| id.as_ref().map(site_name);
        let endpoint = |e: EndpointView| Endpoint {
            site: named(&e.site).unwrap_or_else(|| "unknown".into()),
            site_id: e.site.map(|id| id.0),
            name: e.name,
            host: e.host,
            port: e.port,
        };

        let links = network
            .links()
            .into_iter()
            .map(|l| LinkStatus {
                name: l.name.unwrap_or_else(|| l.id.0.clone()),
                from_site: named(&l.from_site).unwrap_or_else(|| "unknown".into()),
                to_site: named(&l.to_site),
                role: l.role.map(|r| r.as_str().to_string()),
                cost: l.cost,
                state: match l.status.as_ref().map(|s| s.as_str()) {
                    Some("up") => LinkState::Up,
                    Some("down") => LinkState::Down,
                    _ => LinkState::Unknown,
                },
                bytes_out: l.octets,
                bytes_in: l.octets_reverse,
            })
            .collect();

        let services = network
            .services()
            .into_iter()
            .map(|s| ServiceStatus {
                routing_key: s.routing_key,
                reachable: s.reachable,
                listeners: s.listeners.into_iter().map(endpoint).collect(),
                connectors: s.connectors.into_iter().map(endpoint).collect(),
                open_connections: s.open_connections,
                connections: s.connections,
                requests: s.requests,
                bytes_sent: s.octets,
                bytes_received: s.octets_reverse,
            })
            .collect();

        let (open, mut ended): (Vec<ConnectionView>, Vec<ConnectionView>) =
            network.connections().into_iter().partition(|c| c.open);
        ended.sort_by_key(|c| std::cmp::Reverse(c.end));
        ended.truncate(ENDED_CONNECTIONS_SHOWN);
        let connections = open
            .into_iter()
            .chain(ended)
            .map(|c| ConnectionStatus {
                id: c.id.0,
                routing_key: c.routing_key,
                from_site: named(&c.from_site),
                to_site: named(&c.to_site),
                client: c.client_host.map(|h| match c.client_port {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                }),
                open: c.open,
                start_time: c.start.map(|t| t.0),
                duration_seconds: c.start.map(|start| {
                    let end = if c.open { now } else { c.end.unwrap_or(now) };
                    end.0.saturating_sub(start.0) as f64 / 1e6
                }),
                bytes_sent: c.octets,
                bytes_received: c.octets_reverse,
                latency_us: c
                    .latency
                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                error: c.error,
            })
            .collect();

        let sites = sites
            .into_iter()
            .map(|s| SiteStatus {
                here: false,
                name: s.name.unwrap_or_else(|| s.id.0.clone()),
                id: s.id.0,
                namespace: s.namespace,
                platform: s.platform,
                version: s.version,
                routers: s
                    .routers
                    .into_iter()
                    .map(|r| RouterStatus {
                        name: r.name.unwrap_or(r.id.0),
                        mode: r.mode.map(|m| m.as_str().to_string()),
                        version: r.version,
                    })
                    .collect(),
            })
            .collect();

        Self {
            sites,
            links,
            services,
            connections,
        }
    }
}

impl NetworkStatus {
    /// The name of the site of router `router_id` (vanflow names routers `<area>/<id>`).
    pub fn site_of_router(&self, router_id: &str) -> Option<&str> {
        self.sites
            .iter()
            .find(|site| {
                site.routers.iter().any(|r| {
                    r.name.split_once('/').map_or(r.name.as_str(), |(_, id)| id) == router_id
                })
            })
            .map(|site| site.name.as_str())
    }

    /// Says which site asked, and shows its listeners at the address their clients use:
    /// vansite's router listens on a loopback port behind each listener's forwarder, and its
    /// LISTENER record says that port. `forwarded` maps a router port to the listener's own
    /// host and port. (Other sites' forwarded listeners keep their router port: only the
    /// site itself knows the mapping.)
    pub fn seen_from(&mut self, site_id: &str, forwarded: &BTreeMap<u16, (String, u16)>) {
        for site in &mut self.sites {
            site.here = site.id == site_id;
        }
        let listeners = self.services.iter_mut().flat_map(|s| &mut s.listeners);
        for listener in listeners.filter(|l| l.site_id.as_deref() == Some(site_id)) {
            let router_port = listener.port.as_deref().and_then(|p| p.parse().ok());
            if let Some((host, port)) = router_port.and_then(|p: u16| forwarded.get(&p)) {
                listener.host = Some(host.clone());
                listener.port = Some(port.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observe::network::tests::{run1, T0};

    /// The status of capture run 1 (two sites, one link, four services, 14 echo connections),
    /// compared with `tests/golden/network-status.json` (`UPDATE_GOLDEN=1` rewrites it).
    #[test]
    fn status_of_two_sites_names_sites_everywhere() {
        let status = NetworkStatus::of(&run1(), T0.after(Duration::from_secs(60)));
        let rendered = serde_json::to_string_pretty(&status).unwrap() + "\n";
        crate::golden::assert_golden("tests/golden/network-status.json", &rendered);

        assert_eq!(status.links[0].from_site, "east");
        assert_eq!(status.links[0].to_site.as_deref(), Some("west"));
        assert_eq!(status.links[0].state, LinkState::Up);
        let echo = status
            .services
            .iter()
            .find(|s| s.routing_key == "echo")
            .unwrap();
        assert_eq!(echo.listeners[0].site, "west");
        assert_eq!(echo.connectors[0].site, "east");
        assert!(status.connections.iter().all(|c| !c.open));
    }

    #[test]
    fn the_asking_site_shows_its_listeners_at_their_forwarders_port() {
        let mut status = NetworkStatus::of(&run1(), T0);
        let west = "29a23db9-dff4-4072-8a39-7815e3e666b3";
        // West's `echo` listener: the router listens on 25910 behind a forwarder on 8080.
        let forwarded = BTreeMap::from([(25910, ("0.0.0.0".to_string(), 8080))]);
        status.seen_from(west, &forwarded);
        let here: Vec<_> = status
            .sites
            .iter()
            .filter(|s| s.here)
            .map(|s| &s.name)
            .collect();
        assert_eq!(here, ["west"]);
        let echo = status
            .services
            .iter()
            .find(|s| s.routing_key == "echo")
            .unwrap();
        assert_eq!(echo.listeners[0].port.as_deref(), Some("8080"));
        assert_eq!(echo.listeners[0].host.as_deref(), Some("0.0.0.0"));
        // A connector is never behind a forwarder, whatever its port.
        assert_eq!(echo.connectors[0].port.as_deref(), Some("25911"));
    }
}

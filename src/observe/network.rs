//! The network as vanflow describes it: a pure model fed with decoded messages per source,
//! and the views vansite shows (sites, links, services, connections).
//!
//! Record life (`reference/vanflow.md` §1.6, §3.3): records are partial updates merged by
//! identity; `endTime` ends one. Identities repeat after a router restarts, so a record that
//! comes back with another startTime is a new object, and when a source's ROUTER record comes
//! back with a new startTime, that source's records from before are gone (the restarted router
//! never ends them). A source silent for [`SOURCE_TIMEOUT`] is lost with all its records: a
//! killed router sends nothing final. Time is an argument everywhere (`now`), never read here.

use std::collections::BTreeMap;
use std::time::Duration;

use super::records::{
    Attributes, LinkRole, OperStatus, Record, RecordId, RecordType, RouterMode, Timestamp,
};
use super::wire::{Beacon, SourceId, VanflowMessage};

/// A source that sent no HEARTBEAT or RECORD for this long is lost (Skupper's collectors
/// use the same; heartbeats come every 2 s).
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time after discovery before the first heartbeat is due: subscriptions to a remote
/// router's addresses take a while to propagate (Skupper grants the same).
pub const DISCOVERY_GRACE: Duration = Duration::from_secs(30);

/// What the collector should do after a message: the protocol's steps, decided here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A new (or returning) source: receive from its `address` and `address.flows`.
    Subscribe(Beacon),
    /// The source is heard for the first time since discovery, so it sees the subscriptions:
    /// ask it for all its records by sending FLUSH to this `direct` address.
    Flush(String),
}

#[derive(Debug, Clone)]
struct Source {
    beacon: Beacon,
    discovered: Timestamp,
    last_heard: Option<Timestamp>,
    lost: bool,
}

impl Source {
    fn deadline(&self) -> Timestamp {
        let grace = self.discovered.after(DISCOVERY_GRACE).after(SOURCE_TIMEOUT);
        match self.last_heard {
            Some(heard) => grace.max(heard.after(SOURCE_TIMEOUT)),
            None => grace,
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    source: SourceId,
    kind: RecordType,
    attributes: Attributes,
    /// Its source was lost, or restarted without ending it.
    lost: bool,
}

impl Stored {
    /// Still there: not ended by its router, not lost with its source.
    fn live(&self) -> bool {
        !self.lost && self.attributes.end_time.is_none()
    }
}

/// The model: sources and every record they sent.
#[derive(Debug, Clone, Default)]
pub struct Network {
    sources: BTreeMap<SourceId, Source>,
    records: BTreeMap<RecordId, Stored>,
}

impl Network {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one message that arrived on the addresses of source `from` (a BEACON arrives on
    /// the shared `mc/sfe.all` and is from the source it announces; one announcing another id
    /// is ignored). Records from a source that was never announced are dropped: a collector
    /// listens only to announced sources.
    pub fn apply(
        &mut self,
        from: &SourceId,
        message: VanflowMessage,
        now: Timestamp,
    ) -> Option<Next> {
        match message {
            VanflowMessage::Beacon(beacon) if beacon.id == *from => self.beacon(beacon, now),
            VanflowMessage::Beacon(_) => None,
            VanflowMessage::Heartbeat(_) => self.heard(from, now),
            VanflowMessage::Record(records) => {
                let next = self.heard(from, now);
                if self.sources.contains_key(from) {
                    for record in records {
                        self.record(from, record);
                    }
                }
                next
            }
            // A request to a source, never from one.
            VanflowMessage::Flush => None,
        }
    }

    /// Loses every source silent past its deadline, with its records; returns them.
    pub fn expire(&mut self, now: Timestamp) -> Vec<SourceId> {
        let expired: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.lost && now >= s.deadline())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(source) = self.sources.get_mut(id) {
                source.lost = true;
            }
            self.lose_records(id, |_| true);
        }
        expired
    }

    fn beacon(&mut self, beacon: Beacon, now: Timestamp) -> Option<Next> {
        match self.sources.get_mut(&beacon.id) {
            Some(source) if !source.lost => {
                // Beacons repeat every 10 s; addresses could change with a new process.
                source.beacon = beacon;
                None
            }
            _ => {
                self.sources.insert(
                    beacon.id.clone(),
                    Source {
                        beacon: beacon.clone(),
                        discovered: now,
                        last_heard: None,
                        lost: false,
                    },
                );
                Some(Next::Subscribe(beacon))
            }
        }
    }

    /// A heartbeat or record: the source is alive. The first one since discovery (or since it
    /// was lost) means it sees our subscriptions, so it is time to flush.
    fn heard(&mut self, from: &SourceId, now: Timestamp) -> Option<Next> {
        let source = self.sources.get_mut(from)?;
        let first = source.last_heard.is_none() || source.lost;
        source.last_heard = Some(now);
        source.lost = false;
        first.then(|| Next::Flush(source.beacon.direct.clone()))
    }

    fn record(&mut self, from: &SourceId, record: Record) {
        let Record {
            kind,
            identity,
            attributes,
        } = record;
        let restarted_at = match (kind, self.records.get(&identity)) {
            (RecordType::Router, Some(old)) if is_new_object(old, kind, &attributes) => {
                attributes.start_time
            }
            _ => None,
        };
        match self.records.get_mut(&identity) {
            Some(old) if !is_new_object(old, kind, &attributes) => {
                old.attributes.merge(attributes);
                old.source = from.clone();
                old.lost = false;
            }
            _ => {
                self.records.insert(
                    identity.clone(),
                    Stored {
                        source: from.clone(),
                        kind,
                        attributes,
                        lost: false,
                    },
                );
            }
        }
        if let Some(start) = restarted_at {
            // The router restarted: what it had before is gone, whether or not the new
            // process re-uses the identities. Records of the new process start after it.
            self.lose_records(from, |r| r.attributes.start_time.is_none_or(|t| t < start));
        }
    }

    fn lose_records(&mut self, source: &SourceId, which: impl Fn(&Stored) -> bool) {
        for record in self.records.values_mut() {
            if record.source == *source && which(record) {
                record.lost = true;
            }
        }
    }

    fn get(&self, id: &RecordId, kind: RecordType) -> Option<&Stored> {
        self.records.get(id).filter(|r| r.kind == kind)
    }

    fn live(&self, kind: RecordType) -> impl Iterator<Item = (&RecordId, &Stored)> {
        self.records
            .iter()
            .filter(move |(_, r)| r.kind == kind && r.live())
    }

    /// The site of a router (ROUTER.parent), if both are known.
    fn site_of_router(&self, router: &RecordId) -> Option<RecordId> {
        let parent = self
            .get(router, RecordType::Router)?
            .attributes
            .parent
            .clone()?;
        self.get(&parent, RecordType::Site).map(|_| parent)
    }

    /// The site of a record whose parent is a router (LINK, LISTENER, CONNECTOR, ...).
    fn site_of_child(&self, record: &Stored) -> Option<RecordId> {
        self.site_of_router(record.attributes.parent.as_ref()?)
    }

    /// Live sites with their live routers, by name.
    pub fn sites(&self) -> Vec<SiteView> {
        let mut sites: Vec<SiteView> = self
            .live(RecordType::Site)
            .map(|(id, site)| {
                let a = &site.attributes;
                let mut routers: Vec<RouterView> = self
                    .live(RecordType::Router)
                    .filter(|(_, r)| r.attributes.parent.as_ref() == Some(id))
                    .map(|(rid, r)| RouterView {
                        id: rid.clone(),
                        name: r.attributes.name.clone(),
                        mode: r.attributes.mode.clone(),
                        version: r.attributes.build_version.clone(),
                        hostname: r.attributes.hostname.clone(),
                    })
                    .collect();
                routers.sort_by(|a, b| a.name.cmp(&b.name));
                SiteView {
                    id: id.clone(),
                    name: a.name.clone(),
                    namespace: a.namespace.clone(),
                    platform: a.platform.clone(),
                    version: a.build_version.clone(),
                    routers,
                }
            })
            .collect();
        sites.sort_by(|a, b| a.name.cmp(&b.name));
        sites
    }

    /// Live links, from the dialling router to the one offering the link access.
    pub fn links(&self) -> Vec<LinkView> {
        let mut links: Vec<LinkView> = self
            .live(RecordType::Link)
            .map(|(id, link)| {
                let a = &link.attributes;
                // LINK.peer is the other router's ROUTER_ACCESS; its parent is that router.
                let to_router = a
                    .peer
                    .as_ref()
                    .and_then(|peer| self.get(peer, RecordType::RouterAccess))
                    .filter(|access| access.live())
                    .and_then(|access| access.attributes.parent.clone());
                LinkView {
                    id: id.clone(),
                    name: a.name.clone(),
                    from_router: a.parent.clone(),
                    from_site: self.site_of_child(link),
                    to_site: to_router.as_ref().and_then(|r| self.site_of_router(r)),
                    to_router,
                    cost: a.link_cost,
                    status: a.oper_status.clone(),
                    role: a.role.clone(),
                    octets: a.octets.unwrap_or(0),
                    octets_reverse: a.octets_reverse.unwrap_or(0),
                }
            })
            .collect();
        links.sort_by(|a, b| (&a.from_site, &a.name).cmp(&(&b.from_site, &b.name)));
        links
    }

    /// Live listeners (or connectors) with where they are.
    fn endpoints(&self, kind: RecordType) -> Vec<EndpointView> {
        let mut endpoints: Vec<EndpointView> = self
            .live(kind)
            .map(|(id, r)| {
                let a = &r.attributes;
                EndpointView {
                    id: id.clone(),
                    site: self.site_of_child(r),
                    name: a.name.clone(),
                    routing_key: a.van_address.clone(),
                    host: a.dest_host.clone(),
                    port: a.dest_port.clone(),
                    protocol: a.protocol.clone(),
                }
            })
            .collect();
        endpoints.sort_by(|a, b| (&a.routing_key, &a.site).cmp(&(&b.routing_key, &b.site)));
        endpoints
    }

    pub fn listeners(&self) -> Vec<EndpointView> {
        self.endpoints(RecordType::Listener)
    }

    pub fn connectors(&self) -> Vec<EndpointView> {
        self.endpoints(RecordType::Connector)
    }

    /// Every TCP connection known, open or ended, oldest first.
    pub fn connections(&self) -> Vec<ConnectionView> {
        let mut connections: Vec<ConnectionView> = self
            .records
            .iter()
            .filter(|(_, r)| r.kind == RecordType::BiflowTport)
            .map(|(id, c)| {
                let a = &c.attributes;
                let listener = a
                    .parent
                    .as_ref()
                    .and_then(|l| self.get(l, RecordType::Listener));
                let connector = a
                    .connector
                    .as_ref()
                    .and_then(|c| self.get(c, RecordType::Connector));
                ConnectionView {
                    id: id.clone(),
                    routing_key: listener.and_then(|l| l.attributes.van_address.clone()),
                    from_site: listener.and_then(|l| self.site_of_child(l)),
                    to_site: connector.and_then(|c| self.site_of_child(c)),
                    client_host: a.source_host.clone(),
                    client_port: a.source_port.clone(),
                    open: c.live(),
                    start: a.start_time,
                    end: a.end_time,
                    octets: a.octets.unwrap_or(0),
                    octets_reverse: a.octets_reverse.unwrap_or(0),
                    latency: a.latency,
                    process_latency: a.process_latency,
                    error: a
                        .error_connector_side
                        .clone()
                        .or_else(|| a.error_listener_side.clone()),
                }
            })
            .collect();
        connections.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        connections
    }

    /// Every HTTP request the routers observed (BIFLOW_APP), with the routing key of the
    /// connection that carried it.
    pub fn requests(&self) -> Vec<RequestView> {
        let mut requests: Vec<RequestView> = self
            .records
            .iter()
            .filter(|(_, r)| r.kind == RecordType::BiflowApp)
            .map(|(id, r)| {
                let a = &r.attributes;
                let listener = a
                    .parent
                    .as_ref()
                    .and_then(|c| self.get(c, RecordType::BiflowTport))
                    .and_then(|c| c.attributes.parent.as_ref())
                    .and_then(|l| self.get(l, RecordType::Listener));
                RequestView {
                    id: id.clone(),
                    routing_key: listener.and_then(|l| l.attributes.van_address.clone()),
                    protocol: a.protocol.clone(),
                    method: a.method.clone(),
                    result: a.result.clone(),
                    ended: a.end_time.is_some(),
                    latency: a.latency,
                }
            })
            .collect();
        requests.sort_by(|a, b| a.id.cmp(&b.id));
        requests
    }

    /// Services by routing key: every key a live listener or connector has.
    pub fn services(&self) -> Vec<ServiceView> {
        let mut services: BTreeMap<String, ServiceView> = BTreeMap::new();
        for listener in self.listeners() {
            if let Some(key) = listener.routing_key.clone() {
                service(&mut services, &key).listeners.push(listener);
            }
        }
        for connector in self.connectors() {
            if let Some(key) = connector.routing_key.clone() {
                let s = service(&mut services, &key);
                s.reachable = true;
                s.connectors.push(connector);
            }
        }
        for connection in self.connections() {
            let Some(s) = connection
                .routing_key
                .as_ref()
                .and_then(|k| services.get_mut(k))
            else {
                continue;
            };
            s.connections += 1;
            if connection.open {
                s.open_connections += 1;
            }
            s.octets += connection.octets;
            s.octets_reverse += connection.octets_reverse;
        }
        for request in self.requests() {
            if let Some(s) = request
                .routing_key
                .as_ref()
                .and_then(|k| services.get_mut(k))
            {
                s.requests += 1;
            }
        }
        services.into_values().collect()
    }
}

fn service<'a>(services: &'a mut BTreeMap<String, ServiceView>, key: &str) -> &'a mut ServiceView {
    services
        .entry(key.to_string())
        .or_insert_with(|| ServiceView {
            routing_key: key.to_string(),
            listeners: Vec::new(),
            connectors: Vec::new(),
            reachable: false,
            open_connections: 0,
            connections: 0,
            requests: 0,
            octets: 0,
            octets_reverse: 0,
        })
}

/// Whether an update is for another object with the same identity: another type, or another
/// startTime (the router restarted and its counter reached this identity again).
fn is_new_object(old: &Stored, kind: RecordType, update: &Attributes) -> bool {
    old.kind != kind
        || matches!(
            (old.attributes.start_time, update.start_time),
            (Some(a), Some(b)) if a != b
        )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteView {
    /// The site id (`SKUPPER_SITE_ID`).
    pub id: RecordId,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub platform: Option<String>,
    /// The Skupper version the site says it runs.
    pub version: Option<String>,
    pub routers: Vec<RouterView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterView {
    pub id: RecordId,
    /// `<area>/<router id>`, e.g. `0/west-…`.
    pub name: Option<String>,
    pub mode: Option<RouterMode>,
    /// The router's version.
    pub version: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub id: RecordId,
    pub name: Option<String>,
    /// The router that dials (has the `connector`).
    pub from_router: Option<RecordId>,
    pub from_site: Option<RecordId>,
    /// The router that accepted (has the `listener`), once the link has been up.
    pub to_router: Option<RecordId>,
    pub to_site: Option<RecordId>,
    pub cost: Option<u64>,
    pub status: Option<OperStatus>,
    pub role: Option<LinkRole>,
    /// Bytes sent and received by the dialling router on this link.
    pub octets: u64,
    pub octets_reverse: u64,
}

/// A listener or a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub id: RecordId,
    pub site: Option<RecordId>,
    pub name: Option<String>,
    pub routing_key: Option<String>,
    /// Listener: bind host; connector: target host.
    pub host: Option<String>,
    pub port: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionView {
    pub id: RecordId,
    /// The listener's routing key.
    pub routing_key: Option<String>,
    /// The listener's site, and the site of the connector that served it.
    pub from_site: Option<RecordId>,
    pub to_site: Option<RecordId>,
    pub client_host: Option<String>,
    pub client_port: Option<String>,
    /// Neither ended nor lost with its router.
    pub open: bool,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Bytes client → service, and service → client.
    pub octets: u64,
    pub octets_reverse: u64,
    /// Listener side: the client's first byte → the first byte back.
    pub latency: Option<Duration>,
    /// Connector side: the first byte to the service → the first byte back.
    pub process_latency: Option<Duration>,
    pub error: Option<String>,
}

/// An HTTP request (or response) the listener's router observed on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub id: RecordId,
    pub routing_key: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`.
    pub protocol: Option<String>,
    pub method: Option<String>,
    /// The response status code, e.g. `200`.
    pub result: Option<String>,
    pub ended: bool,
    /// The request to the start of the response.
    pub latency: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub routing_key: String,
    pub listeners: Vec<EndpointView>,
    pub connectors: Vec<EndpointView>,
    /// A live connector exists somewhere (its router is heard from), so connections to a
    /// listener of this key reach a service.
    pub reachable: bool,
    pub connections: usize,
    pub open_connections: usize,
    /// HTTP requests observed on its connections (listeners with an HTTP observer).
    pub requests: usize,
    /// Over all its known connections, open and ended.
    pub octets: u64,
    pub octets_reverse: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::observe::wire::decode;

    const WEST: &str = "29a23db9-dff4-4072-8a39-7815e3e666b3";
    const EAST: &str = "68745fc4-5769-4467-badb-f8bdd1a987a2";
    const A: &str = "w2x5z:0";
    const B: &str = "IIKRr:0";
    /// Router A's first heartbeat in the capture: the scenario's clock starts there.
    pub(crate) const T0: Timestamp = Timestamp(1_796_071_395_631_521);

    fn id(s: &str) -> RecordId {
        RecordId(s.into())
    }

    fn source(s: &str) -> SourceId {
        SourceId(s.into())
    }

    /// The source a captured message came from, as a collector knows it from the receiver it
    /// arrived on, or the announced id for `mc/sfe.all`.
    fn source_of(to: &str, message: &VanflowMessage) -> SourceId {
        if let VanflowMessage::Beacon(b) = message {
            return b.id.clone();
        }
        SourceId::of_address(to).expect("a vanflow address")
    }

    /// Feeds the capture files numbered `from..=to` in order, 100 ms apart; returns what the
    /// model asked the collector to do.
    fn feed(network: &mut Network, from: u32, to: u32, mut now: Timestamp) -> Vec<Next> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vanflow");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut steps = Vec::new();
        for path in files {
            let name = path.file_name().unwrap().to_str().unwrap();
            let n: u32 = name[..2].parse().unwrap();
            if !(from..=to).contains(&n) {
                continue;
            }
            let decoded = decode(&std::fs::read(&path).unwrap()).unwrap();
            if decoded.message == VanflowMessage::Flush {
                // File 05 is the collector's own request to router A.
                continue;
            }
            let from = source_of(decoded.to.as_deref().unwrap(), &decoded.message);
            steps.extend(network.apply(&from, decoded.message, now));
            now = now.after(Duration::from_millis(100));
        }
        steps
    }

    /// Capture run 1 (files 01–26): both routers, the FLUSH answers and all the traffic.
    pub(crate) fn run1() -> Network {
        let mut network = Network::new();
        feed(&mut network, 1, 26, T0);
        network
    }

    fn service<'a>(services: &'a [ServiceView], key: &str) -> &'a ServiceView {
        services
            .iter()
            .find(|s| s.routing_key == key)
            .unwrap_or_else(|| panic!("no service {key}"))
    }

    #[test]
    fn discovery_subscribes_then_flushes_once_heard() {
        let mut network = Network::new();
        let steps = feed(&mut network, 1, 6, T0);
        let subscribed: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Next::Subscribe(b) => Some(b.address.as_str()),
                Next::Flush(_) => None,
            })
            .collect();
        assert_eq!(subscribed, ["mc/sfe.w2x5z:0", "mc/sfe.IIKRr:0"]);
        let flushed: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Next::Flush(direct) => Some(direct.as_str()),
                Next::Subscribe(_) => None,
            })
            .collect();
        // Once per source: B's RECORD (file 06) after its heartbeat asks for nothing more.
        assert_eq!(flushed, ["sfe.w2x5z:0", "sfe.IIKRr:0"]);
    }

    #[test]
    fn two_sites_with_their_routers() {
        let sites = run1().sites();
        let names: Vec<_> = sites.iter().map(|s| s.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["east", "west"]);
        let east = &sites[0];
        assert_eq!(east.id, id(EAST));
        assert_eq!(east.namespace.as_deref(), Some("east"));
        assert_eq!(east.platform.as_deref(), Some("linux"));
        assert_eq!(east.version.as_deref(), Some("2.1.1"));
        assert_eq!(east.routers.len(), 1);
        assert_eq!(east.routers[0].id, id(B));
        assert_eq!(east.routers[0].mode, Some(RouterMode::Interior));
        assert_eq!(east.routers[0].version.as_deref(), Some("3.5.1"));
        let west = &sites[1];
        assert_eq!(west.platform.as_deref(), Some("podman"));
        assert_eq!(west.routers[0].name.as_deref(), Some("0/RA"));
    }

    #[test]
    fn one_link_from_east_to_west() {
        let links = run1().links();
        assert_eq!(links.len(), 1);
        let link = &links[0];
        assert_eq!(link.name.as_deref(), Some("link-to-west"));
        assert_eq!(link.from_router, Some(id(B)));
        assert_eq!(link.from_site, Some(id(EAST)));
        assert_eq!(link.to_router, Some(id(A)));
        assert_eq!(link.to_site, Some(id(WEST)));
        assert_eq!(link.cost, Some(1));
        assert_eq!(link.status, Some(OperStatus::Up));
        assert_eq!(link.role, Some(LinkRole::InterRouter));
        // The last update seen (file 09) after the flush answer (07).
        assert_eq!((link.octets, link.octets_reverse), (5501, 6814));
    }

    #[test]
    fn services_before_the_nobody_listener_is_deleted() {
        let mut network = Network::new();
        feed(&mut network, 1, 12, T0);
        let services = network.services();
        let keys: Vec<_> = services.iter().map(|s| s.routing_key.as_str()).collect();
        assert_eq!(keys, ["dead", "echo", "nobody", "web"]);

        let nobody = service(&services, "nobody");
        assert!(!nobody.reachable);
        assert_eq!(nobody.listeners.len(), 1);
        assert_eq!(nobody.listeners[0].site, Some(id(WEST)));
        assert_eq!(nobody.listeners[0].port.as_deref(), Some("25914"));
        assert!(nobody.connectors.is_empty());

        let echo = service(&services, "echo");
        assert!(echo.reachable);
        assert_eq!(echo.listeners[0].site, Some(id(WEST)));
        assert_eq!(echo.connectors[0].site, Some(id(EAST)));
        assert_eq!(echo.connectors[0].host.as_deref(), Some("127.0.0.1"));
        assert_eq!(echo.connectors[0].port.as_deref(), Some("25911"));
        // Files 11 and 12 opened two echo connections, neither ended yet.
        assert_eq!(echo.open_connections, 2);
        assert_eq!((echo.octets, echo.octets_reverse), (7000, 7000));
    }

    #[test]
    fn http_requests_on_the_web_listener() {
        let network = run1();
        let requests = network.requests();
        assert!(!requests.is_empty(), "the capture has BIFLOW_APP records");
        for request in &requests {
            assert_eq!(request.routing_key.as_deref(), Some("web"), "{request:?}");
        }
        let done = requests.iter().find(|r| r.ended).expect("an ended request");
        assert_eq!(done.method.as_deref(), Some("GET"), "{done:?}");
        assert_eq!(done.result.as_deref(), Some("200"), "{done:?}");
        assert_eq!(service(&network.services(), "web").requests, requests.len());
        assert_eq!(service(&network.services(), "echo").requests, 0);
    }

    #[test]
    fn services_at_the_end_of_the_run() {
        let services = run1().services();
        let keys: Vec<_> = services.iter().map(|s| s.routing_key.as_str()).collect();
        // `nobody` was deleted (file 18); `clash` was created (16) and has no connector.
        assert_eq!(keys, ["clash", "dead", "echo", "web"]);
        assert!(!service(&services, "clash").reachable);

        let echo = service(&services, "echo");
        assert_eq!(echo.open_connections, 0);
        // 5,000 + 22,000 + 12 × 6,000 sent; 5,000 + 18,000 + 12 × 6,000 back (the long
        // connection's last octetsReverse is in its flush answer, file 21).
        assert_eq!(echo.connections, 14);
        assert_eq!((echo.octets, echo.octets_reverse), (99_000, 95_000));

        let dead = service(&services, "dead");
        assert!(
            dead.reachable,
            "a connector exists, even if its target refuses"
        );
        assert_eq!((dead.connections, dead.octets), (1, 0));
    }

    #[test]
    fn ended_connection_keeps_its_bytes_and_latencies() {
        let connections = run1().connections();
        let first = connections.iter().find(|c| c.id == id("w2x5z:6")).unwrap();
        assert!(!first.open);
        assert_eq!(first.end, Some(Timestamp(1_796_071_399_186_791)));
        assert_eq!((first.octets, first.octets_reverse), (5000, 5000));
        assert_eq!(first.latency, Some(Duration::from_micros(50548)));
        assert_eq!(first.process_latency, Some(Duration::from_micros(50250)));
        assert_eq!(first.routing_key.as_deref(), Some("echo"));
        assert_eq!(first.from_site, Some(id(WEST)));
        assert_eq!(first.to_site, Some(id(EAST)));
        assert_eq!(first.client_port.as_deref(), Some("50664"));

        let refused = connections.iter().find(|c| c.id == id("w2x5z:8")).unwrap();
        assert!(!refused.open);
        assert_eq!(
            refused.error.as_deref(),
            Some("proton:io (Connection refused - on connect 127.0.0.1:25913)")
        );
    }

    fn heartbeat(source: &str, now: Timestamp) -> VanflowMessage {
        VanflowMessage::Heartbeat(crate::observe::wire::Heartbeat {
            id: SourceId(source.into()),
            now,
        })
    }

    #[test]
    fn a_silent_source_is_lost_with_its_records() {
        let mut network = run1();
        // Both were discovered at about T0: whatever they sent, the grace holds for a minute.
        assert!(network.expire(T0.after(Duration::from_secs(59))).is_empty());
        // A is heard at T0+50 s, B not after its last record (T0+0.8 s).
        let a_heard = T0.after(Duration::from_secs(50));
        assert_eq!(
            network.apply(&source(A), heartbeat(A, a_heard), a_heard),
            None
        );

        assert_eq!(
            network.expire(T0.after(Duration::from_secs(61))),
            [source(B)]
        );
        let names: Vec<_> = network
            .sites()
            .into_iter()
            .map(|s| s.name.unwrap())
            .collect();
        assert_eq!(names, ["west"]);
        // B's link and connectors went with it: nothing is reachable any more.
        assert!(network.links().is_empty());
        assert!(network.services().iter().all(|s| !s.reachable));

        assert!(network
            .expire(a_heard.after(SOURCE_TIMEOUT - Duration::from_micros(1)))
            .is_empty());
        assert_eq!(network.expire(a_heard.after(SOURCE_TIMEOUT)), [source(A)]);
        assert!(network.sites().is_empty());
        assert!(network.services().is_empty());
        // Ended connections keep what they carried; nothing is open.
        let connections = network.connections();
        assert_eq!(connections.len(), 16);
        assert!(connections.iter().all(|c| !c.open));
    }

    #[test]
    fn a_lost_source_that_comes_back_is_flushed_and_live_again() {
        let mut network = Network::new();
        feed(&mut network, 1, 8, T0);
        let later = T0.after(Duration::from_secs(120));
        assert_eq!(network.expire(later).len(), 2);
        assert!(network.sites().is_empty());

        // Its next heartbeat: the records it has are re-sent on request.
        assert_eq!(
            network.apply(&source(A), heartbeat(A, later), later),
            Some(Next::Flush("sfe.w2x5z:0".into()))
        );
        // The same records with the same startTimes: the same objects, live again.
        feed(&mut network, 8, 8, later);
        let names: Vec<_> = network
            .sites()
            .into_iter()
            .map(|s| s.name.unwrap())
            .collect();
        assert_eq!(names, ["west"]);
    }

    #[test]
    fn a_restarted_router_replaces_what_it_had() {
        let mut network = run1();
        let restart = Timestamp(1_796_071_500_000_000);
        let record = |kind, identity: &str, attributes| Record {
            kind,
            identity: id(identity),
            attributes,
        };
        // A restarted: the same identities from 0, new startTimes; `w2x5z:2` is now `web`.
        network.apply(
            &source(A),
            VanflowMessage::Record(vec![
                record(
                    RecordType::Router,
                    A,
                    Attributes {
                        parent: Some(id(WEST)),
                        start_time: Some(restart),
                        name: Some("0/RA".into()),
                        ..Default::default()
                    },
                ),
                record(
                    RecordType::Listener,
                    "w2x5z:2",
                    Attributes {
                        parent: Some(id(A)),
                        start_time: Some(restart.after(Duration::from_millis(1))),
                        van_address: Some("web".into()),
                        ..Default::default()
                    },
                ),
            ]),
            T0.after(Duration::from_secs(10)),
        );
        let listeners = network.listeners();
        let keys: Vec<_> = listeners
            .iter()
            .map(|l| (l.id.as_str(), l.routing_key.as_deref().unwrap()))
            .collect();
        // echo, dead, web and clash of the old process are gone; the new `w2x5z:2` is web.
        assert_eq!(keys, [("w2x5z:2", "web")]);
        // The SITE record came from A before the restart and was not re-sent yet.
        assert!(network
            .sites()
            .iter()
            .all(|s| s.name.as_deref() != Some("west")));
        // B's records are untouched.
        assert_eq!(network.connectors().len(), 3);
    }

    #[test]
    fn records_from_an_unannounced_source_are_dropped() {
        let mut network = Network::new();
        feed(&mut network, 7, 8, T0);
        assert!(network.sites().is_empty());
    }

    #[test]
    fn a_beacon_for_another_id_is_ignored() {
        let mut network = Network::new();
        let decoded = decode(
            &std::fs::read(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/vanflow/01-BEACON-router-A.bin"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(network.apply(&source(B), decoded.message, T0), None);
    }
}

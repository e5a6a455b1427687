//! The router's state: configured entities, running listeners and connectors, linked peers, and
//! which addresses are reachable where. Every change recomputes reachability, tells the peers
//! (distance-vector advertisements with split horizon) and opens or closes tcpListener sockets,
//! because a real tcpListener only accepts while a tcpConnector for its address is reachable
//! (a multi-address one: for any of its listenerAddresses).
//!
//! A new connection goes where the real router's balanced forwarder sends it
//! (`src/router_core/forwarder.c` `qdr_forward_balanced_CT`): see [`pick_balanced`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::tls::TlsConfig;

use crate::config::Entity;
use crate::mux::Opener;

/// Farther than this many hops is unreachable (stops count-to-infinity between stand-ins).
const MAX_HOPS: u32 = 8;

/// The capacity of a tcpConnector's link: the real TCP adaptor opens the connector's core
/// connection with a link capacity of 5 (`tcp_adaptor.c` `TL_open_core_connection`). With that
/// many connections open through it, the connector is no longer eligible.
pub const TCP_CONNECTOR_CAPACITY: usize = 5;

/// An inter-router or edge connection's link capacity when `linkCapacity` is not set
/// (`src/adaptors/amqp/server_config.c`: 0 means 250).
pub const DEFAULT_LINK_CAPACITY: usize = 250;

/// How far a router is: the sum of the link costs along the path (what the real router calls
/// the router's cost) and the number of links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Distance {
    pub cost: u32,
    pub hops: u32,
}

/// What a router tells a peer over the control stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Advertisement {
    /// Router id → distance from the advertising router (itself at 0).
    pub routers: BTreeMap<String, Distance>,
    /// Address → the routers that have a destination for it (a tcpConnector, a collector's
    /// receiving link on a vanflow address, or the router's own vanflow `sfe.<id>`, consumed
    /// in-process), as the real router's mobile-address sync tells which routers hold an
    /// address.
    pub addresses: BTreeMap<String, BTreeSet<String>>,
    /// Vanflow address → hops to its nearest consumer (collectors' receiving links), so that
    /// vanflow messages go where they are wanted, as the real routers' multicast addresses do.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, u32>,
}

/// What goes to a peer over the control stream.
#[derive(Debug, Clone)]
pub enum PeerMessage {
    Advertise(Advertisement),
    Vanflow(crate::vanflow::Frame),
}

/// Closes a connection when a value is sent: `true` for a management force-close (the peer
/// gets `amqp:connection:forced`), `false` for a plain close (an expired TLS ordinal).
pub type Closer = watch::Sender<Option<bool>>;

/// A linked peer router.
pub struct Peer {
    pub router_id: String,
    pub role: String,
    pub dir: &'static str,
    pub host: String,
    /// The SASL EXTERNAL user: the client certificate's subject on links this router accepted
    /// ([`crate::tls::peer_subject`]); none on links it dialled, as proton's client side has
    /// no SASL user.
    pub user: Option<String>,
    /// The sslProfile ordinal its TLS session was made with.
    pub tls_ordinal: Option<u64>,
    /// The listener that accepted it (none when this router dialled).
    pub listener: Option<String>,
    /// Closes the link.
    pub close: Closer,
    /// The identity of its `inter-router-data` connection row (the peer's key is the other);
    /// none for the 2 s after management closed it, until it is dialled again.
    pub data_id: Option<u64>,
    pub opened_at: Instant,
    pub opener: Opener,
    pub control: mpsc::UnboundedSender<PeerMessage>,
    pub learned: Advertisement,
    pub last_sent: Option<Advertisement>,
    /// The link's cost: the larger of the two ends' configured `cost`, as the real router takes
    /// the peer's `qd.inter-router-cost` when it is higher than its own (`amqp_adaptor.c`).
    pub cost: u32,
    /// This end's link capacity (`linkCapacity`, 250 by default).
    pub capacity: usize,
    /// The ROUTER_ACCESS record of the listener that took this link (vanflow linkCount).
    pub access: Option<String>,
}

impl Peer {
    /// An edge link: on the interior it stands for the edge's destinations, on the edge for the
    /// whole network, as one local link does in the real router (the edge address proxy).
    pub fn is_edge(&self) -> bool {
        self.role == "edge"
    }
}

/// A tcpConnector's target.
#[derive(Clone)]
pub struct TcpTarget {
    /// The tcpConnector's name, for log lines.
    pub name: String,
    pub host: String,
    pub port: String,
    /// A TLS client to the backend when the tcpConnector has an sslProfile (a new session per
    /// connection, with what the profile holds then).
    pub tls: Option<Arc<TlsConfig>>,
}

/// A running tcpConnector.
pub struct TcpConnectorState {
    pub address: String,
    pub target: TcpTarget,
    /// Connections open through it now: the real router's count of open streams moved off the
    /// connector's link (`open_moved_streams`), which the balanced forwarder weighs.
    pub open: Arc<AtomicUsize>,
    /// The real router's `connectionsOpened` / `connectionsClosed`: opened starts at 1, the
    /// connector's own egress-dispatch connection ("for legacy compatibility",
    /// `TL_setup_connector`); each connection to the backend counts once opened and once
    /// closed, a failed one too.
    pub opened: Arc<AtomicU64>,
    pub closed: Arc<AtomicU64>,
    /// Creation order (the order of the real router's local links for the address).
    pub seq: u64,
}

/// Where a new stream for an address goes.
pub enum RouteTo {
    Local(TcpTarget),
    Peer(Opener),
}

/// A chosen destination, counted as open on its path until the stream ends.
pub struct Route {
    pub to: RouteTo,
    pub open: OpenStream,
}

/// One stream counted against its path while it lives (dropped when the stream ends); one
/// to a local tcpConnector also counts as ended in its `connectionsClosed` when dropped.
pub struct OpenStream {
    open: Arc<AtomicUsize>,
    closed: Option<Arc<AtomicU64>>,
}

impl OpenStream {
    fn new(counter: &Arc<AtomicUsize>) -> OpenStream {
        counter.fetch_add(1, Ordering::Relaxed);
        OpenStream {
            open: Arc::clone(counter),
            closed: None,
        }
    }

    /// A connection of a tcpConnector, counted in its `connectionsOpened` now.
    fn to_connector(connector: &TcpConnectorState) -> OpenStream {
        connector.opened.fetch_add(1, Ordering::Relaxed);
        let mut stream = OpenStream::new(&connector.open);
        stream.closed = Some(Arc::clone(&connector.closed));
        stream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(closed) = &self.closed {
            closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A local link of an address, in the real router's sense: a tcpConnector here, or an edge
/// link that leads to destinations of the address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Local {
    Connector(String),
    Edge(u64),
}

/// One destination as the balanced forwarder weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weighed {
    /// Streams open on its path now (for a remote router: on the link to its next hop).
    pub open: usize,
    /// The path's link capacity: with that many open, the destination is ineligible.
    pub capacity: usize,
    /// 0 for a local link; a remote router's cost.
    pub cost: u32,
}

/// Which destination [`pick_balanced`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Local(usize),
    Remote(usize),
}

/// The real router's choice for a new stream (`qdr_forward_balanced_CT`). Each destination's
/// value is the streams open on its path plus its cost (0 for a local link). Local links come
/// first, in order, and the first with value 0 is taken at once; then the local list rotates by
/// one, so that several local connectors take turns. Otherwise remote routers (in mask-bit
/// order) are weighed too; the smallest value wins, and among equal values the first found (a
/// local one before any remote one). A destination whose open streams reach its capacity is
/// ineligible; the best ineligible one is taken only if nothing is eligible. Returns the choice
/// and whether the local list rotates.
pub fn pick_balanced(locals: &[Weighed], remotes: &[Weighed]) -> Option<(Pick, bool)> {
    let mut eligible: Option<(Pick, u64)> = None;
    let mut ineligible: Option<(Pick, u64)> = None;
    for (index, local) in locals.iter().enumerate() {
        if matches!(eligible, Some((_, 0))) {
            break;
        }
        let value = local.open as u64;
        if local.capacity > local.open {
            if eligible.is_none_or(|(_, best)| best > value) {
                eligible = Some((Pick::Local(index), value));
            }
        } else if ineligible.is_none_or(|(_, best)| best >= value) {
            ineligible = Some((Pick::Local(index), value));
        }
    }
    let local_at_zero = matches!(eligible, Some((_, 0)));
    if !local_at_zero {
        for (index, remote) in remotes.iter().enumerate() {
            let value = remote.open as u64 + u64::from(remote.cost);
            if remote.capacity > remote.open {
                if eligible.is_none_or(|(_, best)| best > value) {
                    eligible = Some((Pick::Remote(index), value));
                }
            } else if ineligible.is_none_or(|(_, best)| best > value) {
                ineligible = Some((Pick::Remote(index), value));
            }
        }
    }
    let rotate = local_at_zero && locals.len() > 1;
    eligible.or(ineligible).map(|(pick, _)| (pick, rotate))
}

/// What the real router counts per address (`router.address` `deliveriesEgress`,
/// `deliveriesTransit`).
#[derive(Debug, Default, Clone, Copy)]
struct AddressStats {
    egress: u64,
    transit: u64,
}

/// A configured entity plus the task that runs it, if any.
pub struct Configured {
    pub entity: Entity,
    pub task: Option<AbortHandle>,
    /// A listener's or connector's TLS configuration, whose update callback goes with it.
    pub tls: Option<Arc<TlsConfig>>,
    /// Connector state, as the real router reports it (connectionStatus / connectionMsg).
    pub status: Option<(String, String)>,
}

pub struct TcpListenerState {
    /// The single address; empty for a multi-address listener.
    pub address: String,
    pub strategy: Strategy,
    /// A multi-address listener's listenerAddresses, in the real router's order: by value,
    /// highest first, and among equal values the newest first (`adaptor_listener.c`).
    pub addresses: Vec<ListenerAddressState>,
    pub accepting: Option<AbortHandle>,
    /// Why the socket could not be opened (the real router's `connectionMsg`): set, the
    /// listener stays closed and is not tried again until its addresses become unreachable
    /// and reachable again (`adaptor_listener.c`, PN_LISTENER_CLOSE with a hard failure).
    pub failed: Option<String>,
    /// A TLS server for its clients when the tcpListener has an sslProfile, set up when the
    /// tcpListener was created and renewed by updates of the profile (deleting the sslProfile
    /// later does not change it).
    pub tls: Option<Arc<TlsConfig>>,
    /// The real router's `connectionsOpened` / `connectionsClosed` counters.
    pub opened: Arc<AtomicU64>,
    pub closed: Arc<AtomicU64>,
}

/// A tcpListener's `multiAddressStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One address, the tcpListener's own `address`.
    None,
    /// The reachable address with the highest value.
    Priority,
    /// A reachable address at random, in proportion to the values.
    Weighted,
}

impl Strategy {
    pub fn parse(text: &str) -> Strategy {
        match text {
            "priority" => Strategy::Priority,
            "weighted" => Strategy::Weighted,
            _ => Strategy::None,
        }
    }
}

/// One listenerAddress of a multi-address tcpListener.
pub struct ListenerAddressState {
    /// The entity's name.
    pub name: String,
    pub address: String,
    /// Priority or weight.
    pub value: i64,
    /// The real router's `connectionsOpened` for this address.
    pub opened: Arc<AtomicU64>,
}

impl TcpListenerState {
    /// Whether the socket should be open: some address of the listener is reachable.
    fn wanted(&self, reachable: &BTreeMap<String, BTreeSet<String>>) -> bool {
        match self.strategy {
            Strategy::None => reachable.contains_key(&self.address),
            _ => self
                .addresses
                .iter()
                .any(|a| reachable.contains_key(&a.address)),
        }
    }

    /// Where a new connection goes, as `qd_adaptor_listener_best_address_incref_LH` picks it:
    /// priority takes the first reachable address (highest value); weighted draws among the
    /// reachable ones in proportion to their values. With nothing reachable (or weights summing
    /// to 0) the first address is taken anyway; the socket is closed then, so only a
    /// connection racing the close gets there.
    fn pick(
        &self,
        reachable: &BTreeMap<String, BTreeSet<String>>,
    ) -> Option<&ListenerAddressState> {
        let is_reachable = |a: &&ListenerAddressState| reachable.contains_key(&a.address);
        let chosen = match self.strategy {
            Strategy::None => None,
            Strategy::Priority => self.addresses.iter().find(is_reachable),
            Strategy::Weighted => {
                let sum: u64 = self
                    .addresses
                    .iter()
                    .filter(is_reachable)
                    .map(|a| a.value.max(0) as u64)
                    .sum();
                if sum == 0 {
                    None
                } else {
                    // As the real router: from the lowest weight up, the first whose partial
                    // sum exceeds the draw.
                    let draw = random_u64() % sum;
                    let mut partial = 0;
                    self.addresses.iter().rev().filter(is_reachable).find(|a| {
                        partial += a.value.max(0) as u64;
                        draw < partial
                    })
                }
            }
        };
        chosen.or_else(|| self.addresses.first())
    }
}

/// A random number from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

/// A `normal` connection to a listener, served by the management agent.
pub struct ManagementConnection {
    pub host: String,
    pub opened_at: Instant,
    pub user: Option<String>,
    pub tls_ordinal: Option<u64>,
    pub listener: String,
    pub close: Closer,
}

#[derive(Default)]
pub struct State {
    /// (short type, name) → entity.
    pub configured: BTreeMap<(String, String), Configured>,
    pub peers: HashMap<u64, Peer>,
    pub tcp_listeners: HashMap<String, TcpListenerState>,
    pub tcp_connectors: HashMap<String, TcpConnectorState>,
    /// Management connections (role normal), for QUERY and UPDATE of `connection`.
    pub management_connections: HashMap<u64, ManagementConnection>,
    /// sslProfiles as the C side holds them, by name.
    pub tls_contexts: BTreeMap<String, crate::tls::TlsContext>,
    next_id: u64,
    /// Per address, its local links in the order the balanced forwarder tries them (rotated as
    /// the real router rotates its list of local links).
    local_order: HashMap<String, Vec<Local>>,
    /// Streams open now through a peer for an address: the real router's
    /// `outstanding_deliveries` per address and next hop.
    peer_streams: HashMap<(u64, String), Arc<AtomicUsize>>,
    /// Router id → mask bit, allocated as the real router does (the lowest free bit; 0 is this
    /// router). Remote routers are weighed in this order.
    mask_bits: BTreeMap<String, usize>,
    address_stats: HashMap<String, AddressStats>,
}

pub struct Router {
    pub id: String,
    pub mode: String,
    /// Vanflow records and timers ([`crate::vanflow`]).
    pub vanflow: crate::vanflow::Vanflow,
    state: Mutex<State>,
}

impl Router {
    pub fn new(id: String, mode: String) -> Arc<Router> {
        Arc::new(Router {
            vanflow: crate::vanflow::Vanflow::new(&id, &mode),
            id,
            mode,
            state: Mutex::new(State::default()),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        let mut state = self.state();
        state.next_id += 1;
        state.next_id
    }

    /// Addresses and routers reachable from here, as advertised to `peer` (split horizon:
    /// nothing learned from `peer` itself). What an edge link leads to is attributed to this
    /// router, as the real router's edge address proxy makes it a local link here.
    fn view_for(&self, state: &State, peer: Option<u64>) -> Advertisement {
        let mut view = Advertisement::default();
        view.routers.insert(self.id.clone(), Distance::default());
        let local_destinations = state
            .tcp_connectors
            .values()
            .map(|connector| connector.address.clone())
            .chain([self.vanflow.direct_address()])
            .chain(self.vanflow.local_subscriptions().into_keys());
        for address in local_destinations {
            view.addresses
                .entry(address)
                .or_default()
                .insert(self.id.clone());
        }
        let others = || state.peers.iter().filter(move |(id, _)| Some(**id) != peer);
        for (_, p) in others() {
            for (id, distance) in &p.learned.routers {
                let distance = Distance {
                    cost: distance.cost.saturating_add(p.cost),
                    hops: distance.hops + 1,
                };
                if distance.hops <= MAX_HOPS {
                    let entry = view.routers.entry(id.clone()).or_insert(distance);
                    *entry = (*entry).min(distance);
                }
            }
        }
        for (_, p) in others() {
            for (address, holders) in &p.learned.addresses {
                let into = view.addresses.entry(address.clone()).or_default();
                if p.is_edge() {
                    into.insert(self.id.clone());
                    continue;
                }
                for holder in holders {
                    if holder != &self.id && view.routers.contains_key(holder) {
                        into.insert(holder.clone());
                    }
                }
            }
        }
        view.addresses.retain(|_, holders| !holders.is_empty());
        view.subscriptions = crate::vanflow::subscriptions_for(self, &state.peers, peer);
        view
    }

    /// Recomputes reachability after any change and acts on it.
    pub fn topology_changed(self: &Arc<Self>) {
        let mut switches = Vec::new();
        {
            let mut state = self.state();
            let ids: Vec<u64> = state.peers.keys().copied().collect();
            for id in ids {
                let view = self.view_for(&state, Some(id));
                let peer = state.peers.get_mut(&id).expect("listed");
                if peer.last_sent.as_ref() != Some(&view) {
                    let _ = peer.control.send(PeerMessage::Advertise(view.clone()));
                    peer.last_sent = Some(view);
                }
            }
            let whole = self.view_for(&state, None);
            allocate_mask_bits(&mut state, &self.id, &whole);
            let State {
                peers,
                peer_streams,
                ..
            } = &mut *state;
            peer_streams.retain(|(peer, _), _| peers.contains_key(peer));
            for (name, listener) in &state.tcp_listeners {
                let wanted = listener.wanted(&whole.addresses);
                let opened = listener.accepting.is_some() || listener.failed.is_some();
                if wanted != opened {
                    switches.push((name.clone(), wanted));
                }
            }
        }
        for (name, on) in switches {
            crate::tcp::set_accepting(self, &name, on);
        }
    }

    /// The address a new connection at tcpListener `name` goes to: its own, or the one its
    /// multi-address strategy picks now (that listenerAddress's `connectionsOpened` counts it).
    pub fn listener_target(&self, name: &str) -> Option<String> {
        let state = self.state();
        let listener = state.tcp_listeners.get(name)?;
        if listener.strategy == Strategy::None {
            return Some(listener.address.clone());
        }
        let reachable = self.view_for(&state, None).addresses;
        let chosen = listener.pick(&reachable)?;
        chosen.opened.fetch_add(1, Ordering::Relaxed);
        Some(chosen.address.clone())
    }

    /// Picks where a new stream for `address` goes, as the real router's balanced forwarder
    /// does ([`pick_balanced`]): local tcpConnectors (and edge links) first, then the remote
    /// routers that have the address, each weighed by the streams open on its path plus its
    /// cost. `from_peer` is never chosen (no loops). The stream counts as open on the chosen
    /// path until the returned [`Route`] is dropped.
    pub fn route(&self, address: &str, from_peer: Option<u64>) -> Option<Route> {
        let mut guard = self.state();
        let state = &mut *guard;
        let mut present: Vec<(u64, Local)> = state
            .tcp_connectors
            .iter()
            .filter(|(_, c)| c.address == address)
            .map(|(name, c)| (c.seq, Local::Connector(name.clone())))
            .collect();
        present.extend(
            state
                .peers
                .iter()
                .filter(|(id, p)| {
                    p.is_edge()
                        && Some(**id) != from_peer
                        && !superseded(state, **id)
                        && p.learned.addresses.contains_key(address)
                })
                .map(|(id, _)| (*id, Local::Edge(*id))),
        );
        present.sort();
        let order = state.local_order.entry(address.to_string()).or_default();
        order.retain(|local| present.iter().any(|(_, p)| p == local));
        for (_, local) in present {
            if !order.contains(&local) {
                order.push(local);
            }
        }
        let order = order.clone();
        let streams_to = |peer: u64| {
            state
                .peer_streams
                .get(&(peer, address.to_string()))
                .map_or(0, |open| open.load(Ordering::Relaxed))
        };
        let locals: Vec<Weighed> = order
            .iter()
            .map(|local| match local {
                Local::Connector(name) => Weighed {
                    open: state.tcp_connectors[name].open.load(Ordering::Relaxed),
                    capacity: TCP_CONNECTOR_CAPACITY,
                    cost: 0,
                },
                Local::Edge(peer) => Weighed {
                    open: streams_to(*peer),
                    capacity: state.peers[peer].capacity,
                    cost: 0,
                },
            })
            .collect();
        let remotes = self.remote_destinations(state, address, from_peer);
        let weighed: Vec<Weighed> = remotes.iter().map(|(_, w)| *w).collect();
        let (pick, rotate) = pick_balanced(&locals, &weighed)?;
        if rotate {
            if let Some(order) = state.local_order.get_mut(address) {
                order.rotate_left(1);
            }
        }
        let stats = state.address_stats.entry(address.to_string()).or_default();
        let peer = match pick {
            Pick::Local(index) => {
                stats.egress += 1;
                match &order[index] {
                    Local::Connector(name) => {
                        let connector = &state.tcp_connectors[name];
                        return Some(Route {
                            to: RouteTo::Local(connector.target.clone()),
                            open: OpenStream::to_connector(connector),
                        });
                    }
                    Local::Edge(peer) => *peer,
                }
            }
            Pick::Remote(index) => {
                stats.transit += 1;
                remotes[index].0
            }
        };
        let counter = state
            .peer_streams
            .entry((peer, address.to_string()))
            .or_default();
        Some(Route {
            to: RouteTo::Peer(state.peers[&peer].opener.clone()),
            open: OpenStream::new(counter),
        })
    }

    /// The remote routers that have a destination for `address`, in mask-bit order, each with
    /// the peer that is its next hop and its weight (streams open to that peer for the address,
    /// the router's cost). Routers reached only through `from_peer` are left out.
    fn remote_destinations(
        &self,
        state: &State,
        address: &str,
        from_peer: Option<u64>,
    ) -> Vec<(u64, Weighed)> {
        let mut best: BTreeMap<&String, (Distance, u64)> = BTreeMap::new();
        for (id, p) in &state.peers {
            if p.is_edge() || Some(*id) == from_peer || superseded(state, *id) {
                continue;
            }
            let Some(holders) = p.learned.addresses.get(address) else {
                continue;
            };
            for holder in holders {
                let Some(distance) = p.learned.routers.get(holder) else {
                    continue;
                };
                let distance = Distance {
                    cost: distance.cost.saturating_add(p.cost),
                    hops: distance.hops + 1,
                };
                if holder == &self.id || distance.hops > MAX_HOPS {
                    continue;
                }
                let candidate = (distance, *id);
                best.entry(holder)
                    .and_modify(|b| *b = (*b).min(candidate))
                    .or_insert(candidate);
            }
        }
        let mut found: Vec<(usize, u64, Weighed)> = best
            .into_iter()
            .map(|(router, (distance, peer))| {
                let open = state
                    .peer_streams
                    .get(&(peer, address.to_string()))
                    .map_or(0, |open| open.load(Ordering::Relaxed));
                let weighed = Weighed {
                    open,
                    capacity: state.peers[&peer].capacity,
                    cost: distance.cost,
                };
                let bit = state.mask_bits.get(router).copied().unwrap_or(usize::MAX);
                (bit, peer, weighed)
            })
            .collect();
        found.sort_by_key(|(bit, _, _)| *bit);
        found.into_iter().map(|(_, peer, w)| (peer, w)).collect()
    }

    /// The `io.skupper.router.connection` entities, as the real router reports them: one
    /// inter-router link shows as an `inter-router` and an `inter-router-data` connection.
    pub fn connections(&self) -> Vec<Map<String, Value>> {
        let state = self.state();
        connection_entries(&state)
            .into_iter()
            .map(|(row, _)| row)
            .collect()
    }

    /// UPDATE of a `connection` with `adminStatus` `deleted`, as
    /// `qdra_connection_update_set_status` (`src/router_core/agent_connection.c`) does it: an
    /// `inter-router` or `edge` connection is never closed by management; any other is closed
    /// (its peer gets `amqp:connection:forced`) and its row comes back with adminStatus
    /// `deleted` and operStatus `closing`. An `inter-router-data` row is answered the same and
    /// disappears, and 2 s later another comes (its dialler redials it); the stand-in carries
    /// a link in one connection, so the link itself and its streams stay.
    pub fn force_close(self: &Arc<Self>, identity: &str) -> ForceClose {
        let state = self.state();
        let Some((mut row, at)) = connection_entries(&state)
            .into_iter()
            .find(|(row, _)| row.get("identity").and_then(Value::as_str) == Some(identity))
        else {
            return ForceClose::NotFound;
        };
        if matches!(
            row.get("role").and_then(Value::as_str),
            Some("inter-router" | "edge")
        ) {
            return ForceClose::Forbidden;
        }
        let closer = match at {
            RowOf::Peer(id) => state.peers.get(&id).map(|p| &p.close),
            RowOf::Management(id) => state.management_connections.get(&id).map(|m| &m.close),
            RowOf::PeerData(_) => None,
        };
        if let Some(closer) = closer {
            closer.send_replace(Some(true));
        }
        if let RowOf::PeerData(peer) = at {
            // The link's data connection: its dialler dials it again 2 s later, as a new
            // connection (`qd_connector_remote_opened`).
            drop(state);
            self.redial_data_connection(peer);
        }
        tracing::info!("[C{identity}] Connection force-closed by request from management");
        row.insert("adminStatus".into(), Value::String("deleted".into()));
        row.insert("operStatus".into(), Value::String("closing".into()));
        ForceClose::Closed(row)
    }

    fn redial_data_connection(self: &Arc<Self>, peer: u64) {
        if let Some(p) = self.state().peers.get_mut(&peer) {
            p.data_id = None;
        }
        let router = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let Some(router) = router.upgrade() else {
                return;
            };
            let id = router.next_id();
            let mut state = router.state();
            if let Some(p) = state.peers.get_mut(&peer) {
                p.data_id = Some(id);
            }
        });
    }

    /// The `connection` row of `identity`.
    pub fn connection(&self, identity: &str) -> Option<Map<String, Value>> {
        self.connections()
            .into_iter()
            .find(|row| row.get("identity").and_then(Value::as_str) == Some(identity))
    }

    /// Closes every connection listener `listener` accepted whose TLS session was made with an
    /// ordinal below `oldest` (`qd_listener.c` `handle_listener_ssl_profile_mgmt_update`, when
    /// an update raised the profile's `oldestValidOrdinal`).
    pub fn close_expired(&self, listener: &str, oldest: u64) {
        let state = self.state();
        let expired = |from: Option<&str>, ordinal: Option<u64>| {
            from == Some(listener) && ordinal.is_some_and(|o| o < oldest)
        };
        for (id, peer) in &state.peers {
            if expired(peer.listener.as_deref(), peer.tls_ordinal) {
                tracing::info!("[C{id}] Closing due to expired TLS ordinal");
                peer.close.send_replace(Some(false));
            }
        }
        for (id, connection) in &state.management_connections {
            if expired(Some(&connection.listener), connection.tls_ordinal) {
                tracing::info!("[C{id}] Closing due to expired TLS ordinal");
                connection.close.send_replace(Some(false));
            }
        }
    }

    /// The `io.skupper.router.router.node` entities: every router known in the network, its
    /// mask bit as `index` and its cost (the sum of link costs on the way).
    pub fn nodes(&self) -> Vec<Map<String, Value>> {
        let state = self.state();
        let view = self.view_for(&state, None);
        view.routers
            .iter()
            .map(|(id, distance)| {
                let (index, next_hop) = if id == &self.id {
                    (0, "(self)".to_string())
                } else {
                    let via = state
                        .peers
                        .values()
                        .filter_map(|p| {
                            p.learned
                                .routers
                                .get(id)
                                .map(|d| (d.cost.saturating_add(p.cost), &p.router_id))
                        })
                        .min()
                        .map(|(_, via)| via.clone())
                        .unwrap_or_default();
                    (state.mask_bits.get(id).copied().unwrap_or_default(), via)
                };
                let row = json!({"id": id, "name": format!("router.node/{id}"), "identity": format!("router.node/{id}"),
                    "type": "io.skupper.router.router.node", "index": index, "cost": distance.cost, "nextHop": next_hop});
                row.as_object().expect("object").clone()
            })
            .collect()
    }

    /// The `io.skupper.router.router.address` entities for the mobile addresses this router
    /// knows, filled in as `src/router_core/agent_address.c` fills them: `key` (also name and
    /// identity) is the hash key, `M` and the address; `distribution` closest for a vanflow
    /// `sfe.<id>` (the treatment its in-process consumer asks for), else that of the
    /// configured `address` prefix matching it, else balanced; `inProcess` 1 for this router's
    /// own `sfe.<id>`; `subscriberCount` the local links (tcpConnectors here, collectors'
    /// receiving links, and an edge link leading to the address); `remoteCount` and
    /// `remoteHostRouters` the remote routers with a destination for it, in mask-bit order;
    /// `watch` whether a tcpListener here watches it. An edge router knows no network-wide
    /// addresses: only those of its tcpConnectors, tcpListeners and vanflow. The vanflow
    /// multicast addresses this router sends to are listed even with no consumer, as the real
    /// router's vanflow links to them make them known.
    pub fn addresses(&self) -> Vec<Map<String, Value>> {
        let state = self.state();
        let view = self.view_for(&state, None);
        let mut watched = BTreeSet::new();
        for listener in state.tcp_listeners.values() {
            match listener.strategy {
                Strategy::None => {
                    watched.insert(listener.address.clone());
                }
                _ => watched.extend(listener.addresses.iter().map(|a| a.address.clone())),
            }
        }
        let receivers = self.vanflow.local_subscriptions();
        let own_direct = self.vanflow.direct_address();
        let mut known: BTreeSet<String> = watched.clone();
        known.extend(state.tcp_connectors.values().map(|c| c.address.clone()));
        known.extend(self.vanflow.multicast_addresses());
        known.insert(own_direct.clone());
        known.extend(receivers.keys().cloned());
        if self.mode != "edge" {
            known.extend(view.addresses.keys().cloned());
        }
        known
            .into_iter()
            .map(|address| {
                let connectors = state
                    .tcp_connectors
                    .values()
                    .filter(|c| c.address == address)
                    .count();
                let edges = state
                    .peers
                    .values()
                    .filter(|p| p.is_edge() && p.learned.addresses.contains_key(&address))
                    .count();
                let receivers = receivers.get(&address).copied().unwrap_or_default();
                let mut remote: Vec<(usize, &String)> = view
                    .addresses
                    .get(&address)
                    .into_iter()
                    .flatten()
                    .filter(|router| *router != &self.id)
                    .map(|router| {
                        let bit = state.mask_bits.get(router).copied().unwrap_or(usize::MAX);
                        (bit, router)
                    })
                    .collect();
                remote.sort();
                let remote: Vec<&String> = remote.into_iter().map(|(_, r)| r).collect();
                let tracked: usize = state
                    .peer_streams
                    .iter()
                    .filter(|((peer, a), _)| {
                        a == &address && state.peers.get(peer).is_some_and(|p| !p.is_edge())
                    })
                    .map(|(_, open)| open.load(Ordering::Relaxed))
                    .sum();
                let stats = state
                    .address_stats
                    .get(&address)
                    .copied()
                    .unwrap_or_default();
                let key = format!("M{address}");
                let row = json!({
                    "name": key, "identity": key, "key": key,
                    "type": "io.skupper.router.router.address",
                    "distribution": distribution(&state, &address),
                    "inProcess": usize::from(address == own_direct),
                    "subscriberCount": connectors + receivers + edges,
                    "remoteCount": remote.len(), "remoteHostRouters": remote,
                    "deliveriesIngress": 0, "deliveriesEgress": stats.egress,
                    "deliveriesTransit": stats.transit, "deliveriesToContainer": 0,
                    "deliveriesFromContainer": 0, "deliveriesEgressRouteContainer": 0,
                    "deliveriesIngressRouteContainer": 0, "deliveriesEgressInterNetwork": 0,
                    "deliveriesIngressInterNetwork": 0, "trackedDeliveries": tracked,
                    "priority": -1, "deliveriesRedirectedToFallback": 0,
                    "watch": watched.contains(&address),
                });
                row.as_object().expect("object").clone()
            })
            .collect()
    }
}

/// Whether peer `id` has a newer link of the same role to the same router. A connector whose
/// sslProfile ordinal was raised dials a second link while the first stays up; the real router
/// moves the router link to the newer connection ("Upgrading connection"), so new streams go
/// over it and the older one only carries what it already had.
fn superseded(state: &State, id: u64) -> bool {
    let Some(peer) = state.peers.get(&id) else {
        return false;
    };
    state
        .peers
        .iter()
        .any(|(other, p)| *other > id && p.router_id == peer.router_id && p.role == peer.role)
}

/// An address's distribution: closest for a router's vanflow `sfe.<id>`, else that of the
/// configured `address` entity whose prefix matches it (the real router's prefix pattern ends
/// at a `.` or `/`), else balanced (the schema's default, and the real router's for an
/// address no entity matches).
fn distribution(state: &State, address: &str) -> String {
    if address.starts_with("sfe.") {
        return "closest".into();
    }
    let matches = |prefix: &str| {
        address
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '/']))
    };
    state
        .configured
        .values()
        .map(|c| &c.entity)
        .filter(|e| e.entity_type == "router.config.address" && !e.str("prefix").is_empty())
        .filter(|e| matches(e.str("prefix")))
        .max_by_key(|e| e.str("prefix").len())
        .map(|e| e.str("distribution"))
        .filter(|d| !d.is_empty())
        .unwrap_or("balanced")
        .to_string()
}

/// Gives every router in `view` a mask bit as the real router's routing module does
/// (`python/skupper_router_internal/router/node.py` `_allocate_maskbit`: the lowest free one,
/// 0 being this router) and frees those of routers gone.
fn allocate_mask_bits(state: &mut State, own_id: &str, view: &Advertisement) {
    state
        .mask_bits
        .retain(|id, _| view.routers.contains_key(id));
    for id in view.routers.keys() {
        if id == own_id || state.mask_bits.contains_key(id) {
            continue;
        }
        let used: BTreeSet<usize> = state.mask_bits.values().copied().collect();
        let bit = (1..).find(|b| !used.contains(b)).expect("a free bit");
        state.mask_bits.insert(id.clone(), bit);
    }
}

/// What [`Router::force_close`] did.
pub enum ForceClose {
    NotFound,
    /// An inter-router or edge connection: the router refuses.
    Forbidden,
    /// Its row as the router answers: adminStatus `deleted`, operStatus `closing`.
    Closed(Map<String, Value>),
}

/// Which connection a row describes.
#[derive(Clone, Copy)]
enum RowOf {
    Peer(u64),
    PeerData(u64),
    Management(u64),
}

/// Every `connection` row, with what it describes. Identities are the connections' ids, as
/// the real router's are its connection numbers.
fn connection_entries(state: &State) -> Vec<(Map<String, Value>, RowOf)> {
    let mut rows = Vec::new();
    for (id, peer) in &state.peers {
        rows.push((peer_row(peer, *id, &peer.role), RowOf::Peer(*id)));
        if let Some(data_id) = peer.data_id.filter(|_| peer.role == "inter-router") {
            let data = peer_row(peer, data_id, "inter-router-data");
            rows.push((data, RowOf::PeerData(*id)));
        }
    }
    for (id, connection) in &state.management_connections {
        let row = ConnectionRow {
            identity: *id,
            role: "normal",
            dir: "in",
            host: &connection.host,
            container: "",
            user: connection.user.as_deref(),
            tls_ordinal: connection.tls_ordinal,
            opened_at: connection.opened_at,
        };
        rows.push((row.map(), RowOf::Management(*id)));
    }
    rows.sort_by_key(|(row, _)| row["identity"].as_str().and_then(|i| i.parse::<u64>().ok()));
    rows
}

fn peer_row(peer: &Peer, identity: u64, role: &str) -> Map<String, Value> {
    ConnectionRow {
        identity,
        role,
        dir: peer.dir,
        host: &peer.host,
        container: &peer.router_id,
        user: peer.user.as_deref(),
        tls_ordinal: peer.tls_ordinal,
        opened_at: peer.opened_at,
    }
    .map()
}

/// One `connection` row's facts.
struct ConnectionRow<'a> {
    identity: u64,
    role: &'a str,
    dir: &'a str,
    host: &'a str,
    /// The peer's container id (a router's id); empty when not known.
    container: &'a str,
    user: Option<&'a str>,
    tls_ordinal: Option<u64>,
    opened_at: Instant,
}

impl ConnectionRow<'_> {
    /// Every column of `qdr_connection_columns` (`agent_connection.c`); what the stand-in does
    /// not know is null.
    fn map(&self) -> Map<String, Value> {
        let container = (!self.container.is_empty()).then_some(self.container);
        let row = json!({
            "name": format!("connection/{}", self.host), "identity": self.identity.to_string(),
            "host": self.host, "localSocket": null, "role": self.role, "protocol": "amqp",
            "dir": self.dir, "container": container, "sasl": "EXTERNAL", "isAuthenticated": true,
            "user": self.user, "isEncrypted": true, "sslProto": "TLSv1.3",
            // What rustls negotiates with the stand-ins' peers (its first TLS 1.3 suite), in
            // OpenSSL's name, and its strength, as the real router reports them.
            "sslCipher": "TLS_AES_256_GCM_SHA384", "properties": {}, "sslSsf": 256, "type": "io.skupper.router.connection", "ssl": true,
            "opened": true, "active": true, "adminStatus": "enabled", "operStatus": "up",
            "uptimeSeconds": self.opened_at.elapsed().as_secs(), "lastDlvSeconds": null,
            "enableProtocolTrace": false, "meshId": null, "tlsOrdinal": self.tls_ordinal,
            "groupCorrelationId": null, "groupOrdinal": null,
        });
        row.as_object().expect("object").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(open: usize) -> Weighed {
        Weighed {
            open,
            capacity: TCP_CONNECTOR_CAPACITY,
            cost: 0,
        }
    }

    fn remote(open: usize, cost: u32) -> Weighed {
        Weighed {
            open,
            capacity: DEFAULT_LINK_CAPACITY,
            cost,
        }
    }

    #[test]
    fn an_idle_local_connector_is_taken_at_once_and_several_take_turns() {
        assert_eq!(
            pick_balanced(&[local(0)], &[remote(0, 1)]),
            Some((Pick::Local(0), false))
        );
        assert_eq!(
            pick_balanced(&[local(0), local(0)], &[]),
            Some((Pick::Local(0), true))
        );
        // The first local link with value 0 ends the search.
        assert_eq!(
            pick_balanced(&[local(1), local(0), local(0)], &[]),
            Some((Pick::Local(1), true))
        );
    }

    #[test]
    fn open_streams_and_cost_decide_between_local_and_remote() {
        // A tie keeps the local connector; a busier one gives way.
        assert_eq!(
            pick_balanced(&[local(1)], &[remote(0, 1)]),
            Some((Pick::Local(0), false))
        );
        assert_eq!(
            pick_balanced(&[local(2)], &[remote(0, 1)]),
            Some((Pick::Remote(0), false))
        );
        // A full local connector is not eligible, whatever the remote cost.
        assert_eq!(
            pick_balanced(&[local(TCP_CONNECTOR_CAPACITY)], &[remote(0, 100)]),
            Some((Pick::Remote(0), false))
        );
        // Nothing eligible: the least busy ineligible one.
        assert_eq!(
            pick_balanced(&[local(6), local(5)], &[]),
            Some((Pick::Local(1), false))
        );
        assert_eq!(pick_balanced(&[], &[]), None);
    }

    #[test]
    fn remote_ties_go_to_the_first_found() {
        assert_eq!(
            pick_balanced(&[], &[remote(0, 1), remote(0, 1)]),
            Some((Pick::Remote(0), false))
        );
        assert_eq!(
            pick_balanced(&[], &[remote(1, 1), remote(0, 1)]),
            Some((Pick::Remote(1), false))
        );
        assert_eq!(
            pick_balanced(&[], &[remote(0, 3), remote(1, 1)]),
            Some((Pick::Remote(1), false))
        );
    }
}

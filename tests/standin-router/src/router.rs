//! The router's state: configured entities, running listeners and connectors, linked peers, and
//! which addresses are reachable where. Every change recomputes reachability, tells the peers
//! (distance-vector advertisements with split horizon) and opens or closes tcpListener sockets,
//! because a real tcpListener only accepts while a tcpConnector for its address is reachable
//! (a multi-address one: for any of its listenerAddresses).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Entity;
use crate::mux::Opener;

/// Farther than this many hops is unreachable (stops count-to-infinity between stand-ins).
const MAX_HOPS: u32 = 8;

/// What a router tells a peer over the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advertisement {
    /// Address → hops to the nearest tcpConnector.
    pub addresses: BTreeMap<String, u32>,
    /// Router id → hops.
    pub routers: BTreeMap<String, u32>,
}

/// A linked peer router.
pub struct Peer {
    pub router_id: String,
    pub role: String,
    pub dir: &'static str,
    pub host: String,
    pub user: String,
    pub opened_at: Instant,
    pub opener: Opener,
    pub control: mpsc::UnboundedSender<Advertisement>,
    pub learned: Advertisement,
    pub last_sent: Option<Advertisement>,
}

/// A tcpConnector's target.
#[derive(Debug, Clone)]
pub struct TcpTarget {
    pub host: String,
    pub port: String,
}

/// Where a new stream for an address goes.
pub enum Route {
    Local(TcpTarget),
    Peer(Opener),
}

/// A configured entity plus the task that runs it, if any.
pub struct Configured {
    pub entity: Entity,
    pub task: Option<AbortHandle>,
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
    fn wanted(&self, reachable: &BTreeMap<String, u32>) -> bool {
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
    fn pick(&self, reachable: &BTreeMap<String, u32>) -> Option<&ListenerAddressState> {
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

#[derive(Default)]
pub struct State {
    /// (short type, name) → entity.
    pub configured: BTreeMap<(String, String), Configured>,
    pub peers: HashMap<u64, Peer>,
    pub tcp_listeners: HashMap<String, TcpListenerState>,
    /// Management connections, for QUERY of `connection`.
    pub management_connections: HashMap<u64, (String, Instant)>,
    next_id: u64,
    round_robin: usize,
}

pub struct Router {
    pub id: String,
    pub mode: String,
    state: Mutex<State>,
}

impl Router {
    pub fn new(id: String, mode: String) -> Arc<Router> {
        Arc::new(Router {
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

    pub fn tcp_connectors(state: &State) -> impl Iterator<Item = &Entity> {
        state
            .configured
            .iter()
            .filter(|((t, _), _)| t == "tcpConnector")
            .map(|(_, c)| &c.entity)
    }

    /// Addresses and routers reachable from here, as advertised to `peer` (split horizon:
    /// nothing learned from `peer` itself).
    fn view_for(&self, state: &State, peer: Option<u64>) -> Advertisement {
        let mut view = Advertisement {
            addresses: BTreeMap::new(),
            routers: BTreeMap::new(),
        };
        view.routers.insert(self.id.clone(), 0);
        for entity in Self::tcp_connectors(state) {
            view.addresses.insert(entity.str("address").to_string(), 0);
        }
        for (id, p) in &state.peers {
            if Some(*id) == peer {
                continue;
            }
            let merge = |into: &mut BTreeMap<String, u32>, from: &BTreeMap<String, u32>| {
                for (key, hops) in from {
                    let hops = hops + 1;
                    if hops <= MAX_HOPS {
                        let entry = into.entry(key.clone()).or_insert(hops);
                        *entry = (*entry).min(hops);
                    }
                }
            };
            merge(&mut view.addresses, &p.learned.addresses);
            merge(&mut view.routers, &p.learned.routers);
        }
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
                    let _ = peer.control.send(view.clone());
                    peer.last_sent = Some(view);
                }
            }
            let reachable = self.view_for(&state, None).addresses;
            for (name, listener) in &state.tcp_listeners {
                let wanted = listener.wanted(&reachable);
                if wanted != listener.accepting.is_some() {
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

    /// Picks where a new stream for `address` goes, sharing streams among every connector of
    /// the address (local or across links) in turn. `from_peer` is never chosen (no loops).
    pub fn route(&self, address: &str, from_peer: Option<u64>) -> Option<Route> {
        let mut state = self.state();
        let mut candidates: Vec<Route> = Self::tcp_connectors(&state)
            .filter(|e| e.str("address") == address)
            .map(|e| {
                Route::Local(TcpTarget {
                    host: e.str("host").to_string(),
                    port: e.str("port").to_string(),
                })
            })
            .collect();
        let mut peers: Vec<(&u64, &Peer)> = state
            .peers
            .iter()
            .filter(|(id, p)| Some(**id) != from_peer && p.learned.addresses.contains_key(address))
            .collect();
        peers.sort_by_key(|(id, _)| **id);
        candidates.extend(
            peers
                .into_iter()
                .map(|(_, p)| Route::Peer(p.opener.clone())),
        );
        if candidates.is_empty() {
            return None;
        }
        state.round_robin = state.round_robin.wrapping_add(1);
        let index = state.round_robin % candidates.len();
        Some(candidates.swap_remove(index))
    }

    /// The `io.skupper.router.connection` entities, as the real router reports them: one
    /// inter-router link shows as an `inter-router` and an `inter-router-data` connection.
    pub fn connections(&self) -> Vec<Map<String, Value>> {
        let state = self.state();
        let mut rows = Vec::new();
        for (id, peer) in &state.peers {
            let roles: &[&str] = if peer.role == "inter-router" {
                &["inter-router", "inter-router-data"]
            } else {
                &[peer.role.as_str()]
            };
            for (n, role) in roles.iter().enumerate() {
                rows.push(connection_row(
                    format!("{id}.{n}"),
                    role,
                    peer.dir,
                    &peer.host,
                    &peer.router_id,
                    &peer.user,
                    peer.opened_at,
                ));
            }
        }
        for (id, (host, opened_at)) in &state.management_connections {
            rows.push(connection_row(
                id.to_string(),
                "normal",
                "in",
                host,
                "",
                "",
                *opened_at,
            ));
        }
        rows
    }

    /// The `io.skupper.router.router.node` entities: every router known in the network.
    pub fn nodes(&self) -> Vec<Map<String, Value>> {
        let state = self.state();
        let view = self.view_for(&state, None);
        view.routers
            .iter()
            .enumerate()
            .map(|(index, (id, hops))| {
                let next_hop = if id == &self.id {
                    "(self)".to_string()
                } else {
                    state
                        .peers
                        .values()
                        .filter_map(|p| p.learned.routers.get(id).map(|h| (h, &p.router_id)))
                        .min()
                        .map(|(_, via)| via.clone())
                        .unwrap_or_default()
                };
                let row = json!({"id": id, "name": format!("router.node/{id}"), "identity": format!("router.node/{id}"),
                    "type": "io.skupper.router.router.node", "index": index, "cost": hops, "nextHop": next_hop});
                row.as_object().expect("object").clone()
            })
            .collect()
    }
}

fn connection_row(
    identity: String,
    role: &str,
    dir: &str,
    host: &str,
    container: &str,
    user: &str,
    opened_at: Instant,
) -> Map<String, Value> {
    let row = json!({
        "identity": identity, "name": format!("connection/{host}"), "type": "io.skupper.router.connection",
        "role": role, "dir": dir, "host": host, "container": container, "opened": true, "operStatus": "up",
        "adminStatus": "enabled", "isAuthenticated": true, "isEncrypted": true, "sasl": "EXTERNAL", "ssl": true,
        "sslProto": "TLSv1.3", "user": user, "uptimeSeconds": opened_at.elapsed().as_secs(), "protocol": "amqp",
    });
    row.as_object().expect("object").clone()
}

//! Vanflow, the router's observability records (skupper-router 3.5.1 `src/vanflow.c`): BEACON
//! to `mc/sfe.all` every 10 s, HEARTBEAT to `mc/sfe.<id>` every 2 s, RECORD messages with the
//! changed attributes of each record at most once a second (to `mc/sfe.<id>`, or
//! `mc/sfe.<id>.flows` for BIFLOW_TPORT), and a full re-send on FLUSH to `sfe.<id>`. A class of
//! records is emitted only while its address has a consumer somewhere in the network; otherwise
//! the changes are dropped, as the router drops them.
//!
//! Between stand-ins (the real routers route the multicast addresses over their links), a
//! router advertises the vanflow addresses with consumers behind it (`Advertisement.subscriptions`)
//! and forwards each vanflow message, as a [`Frame`] on the control stream, to the peers that
//! advertised its address; FLUSH to another router's `sfe.<id>` is flooded. Frames are
//! deduplicated by origin and message number.

pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::router::Router;
pub use wire::Attr;

pub const SITE: u32 = 0;
pub const ROUTER: u32 = 1;
pub const LINK: u32 = 2;
pub const LISTENER: u32 = 4;
pub const CONNECTOR: u32 = 5;
pub const ROUTER_ACCESS: u32 = 15;
pub const BIFLOW_TPORT: u32 = 16;

pub const IDENTITY: u32 = 1;
pub const PARENT: u32 = 2;
pub const START_TIME: u32 = 3;
pub const END_TIME: u32 = 4;
pub const PEER: u32 = 6;
pub const PROCESS: u32 = 7;
pub const LOCATION: u32 = 9;
pub const PROVIDER: u32 = 10;
pub const PLATFORM: u32 = 11;
pub const NAMESPACE: u32 = 12;
pub const MODE: u32 = 13;
pub const SOURCE_HOST: u32 = 14;
pub const DEST_HOST: u32 = 15;
pub const PROTOCOL: u32 = 16;
pub const SOURCE_PORT: u32 = 17;
pub const DEST_PORT: u32 = 18;
pub const VAN_ADDRESS: u32 = 19;
pub const IMAGE_NAME: u32 = 20;
pub const IMAGE_VERSION: u32 = 21;
pub const HOSTNAME: u32 = 22;
pub const OCTETS: u32 = 23;
pub const LATENCY: u32 = 24;
pub const RESULT: u32 = 28;
pub const REASON: u32 = 29;
pub const NAME: u32 = 30;
pub const TRACE: u32 = 31;
pub const BUILD_VERSION: u32 = 32;
pub const LINK_COST: u32 = 33;
pub const FLOW_COUNT_L4: u32 = 40;
pub const LINK_COUNT: u32 = 52;
pub const OPER_STATUS: u32 = 53;
pub const ROLE: u32 = 54;
pub const UP_TIMESTAMP: u32 = 55;
pub const DOWN_TIMESTAMP: u32 = 56;
pub const DOWN_COUNT: u32 = 57;
pub const OCTETS_REVERSE: u32 = 58;
pub const CONNECTOR_REF: u32 = 60;
pub const PROXY_HOST: u32 = 62;
pub const PROXY_PORT: u32 = 63;
pub const ERROR_LISTENER_SIDE: u32 = 64;
pub const ERROR_CONNECTOR_SIDE: u32 = 65;
/// LINK and ROUTER_ACCESS: the sslProfile ordinal of the TLS session in use.
pub const ACTIVE_TLS_ORDINAL: u32 = 66;
pub const HTTP_PROXY: u32 = 67;

/// Where every router sends its BEACONs.
pub const BEACON_ADDRESS: &str = "mc/sfe.all";

/// The router version the stand-in claims (ROUTER buildVersion).
pub const BUILD: &str = "3.5.1";
const RECORDS_PER_MESSAGE: usize = 50;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
const HEARTBEATS_PER_BEACON: u32 = 5;
const EMIT_INTERVAL: Duration = Duration::from_secs(1);
/// A closed connection's final update waits this long (the router's 25 flush ticks).
const END_HOLD: Duration = Duration::from_secs(5);
const MAX_HOPS: u32 = 8;
const SEEN_FOR: Duration = Duration::from_secs(60);

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_us());
    hasher.finish()
}

/// The router's 5-character source: the suffix of a pod-style `HOSTNAME` (a `-` before its last
/// five characters), else random letters, digits and `_`.
pub fn source_from_hostname(hostname: Option<&str>) -> String {
    if let Some(h) = hostname {
        let b = h.as_bytes();
        if b.len() > 6 && b[b.len() - 6] == b'-' {
            return h[h.len() - 5..].to_string();
        }
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Base,
    Flows,
}

struct Record {
    seq: u64,
    record_type: u32,
    class: Class,
    attrs: BTreeMap<u32, Attr>,
    dirty: BTreeSet<u32>,
    ended: bool,
    /// An ended connection's last update is held until then.
    hold_until: Option<Instant>,
    /// Attributes sampled from live counters at each emission.
    counters: Vec<(u32, Arc<AtomicU64>)>,
}

#[derive(Default)]
struct Inner {
    next_record: u64,
    next_message: i64,
    records: HashMap<String, Record>,
    /// What a record stands for (`tcpListener/<name>`, …) → its identity.
    keys: HashMap<String, String>,
    subscribers: HashMap<u64, (String, mpsc::UnboundedSender<Vec<u8>>)>,
    next_subscriber: u64,
    seen: HashMap<(String, u64), Instant>,
    next_frame: u64,
}

/// A vanflow message travelling between stand-ins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// The router (source id and a per-process nonce) that sent it first.
    pub origin: String,
    pub seq: u64,
    pub address: String,
    pub hops: u32,
    /// The message bytes, hex.
    pub message: String,
}

pub struct Vanflow {
    /// `<source>:0`: the ROUTER record, beacon `id`, and the base of every address.
    pub id: String,
    pub source: String,
    origin: String,
    inner: Mutex<Inner>,
}

impl Vanflow {
    /// Creates the ROUTER record (`<source>:0`) as the router does at start.
    pub fn new(router_id: &str, mode: &str) -> Vanflow {
        let hostname = std::env::var("HOSTNAME").ok();
        let source = source_from_hostname(hostname.as_deref());
        let vanflow = Vanflow {
            id: format!("{source}:0"),
            origin: format!("{source}/{:016x}", random_u64()),
            source,
            inner: Mutex::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut attrs = vec![
            (NAME, Attr::Str(format!("0/{router_id}"))),
            (MODE, Attr::Str(mode.to_string())),
            (BUILD_VERSION, Attr::Str(BUILD.to_string())),
        ];
        for (key, var) in [
            (PARENT, "SKUPPER_SITE_ID"),
            (HOSTNAME, "HOSTNAME"),
            (NAMESPACE, "POD_NAMESPACE"),
            (IMAGE_NAME, "APPLICATION_NAME"),
            (IMAGE_VERSION, "VERSION"),
        ] {
            if let Some(value) = env(var) {
                attrs.push((key, Attr::Str(value)));
            }
        }
        vanflow.start(ROUTER, None, None, attrs);
        vanflow
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn base_address(&self) -> String {
        format!("mc/sfe.{}", self.id)
    }

    pub fn flows_address(&self) -> String {
        format!("mc/sfe.{}.flows", self.id)
    }

    pub fn direct_address(&self) -> String {
        format!("sfe.{}", self.id)
    }

    /// The multicast addresses the router sends to (it emits no logs, but the real router
    /// has the address all the same).
    pub fn multicast_addresses(&self) -> [String; 4] {
        [
            BEACON_ADDRESS.to_string(),
            self.base_address(),
            self.flows_address(),
            format!("mc/sfe.{}.logs", self.id),
        ]
    }

    /// Starts a record: `identity` given (SITE's custom one) or `<source>:<n>`; `parent` the
    /// ROUTER unless given. Returns its identity.
    pub fn start(
        &self,
        record_type: u32,
        identity: Option<String>,
        parent: Option<String>,
        attrs: Vec<(u32, Attr)>,
    ) -> String {
        let mut inner = self.inner();
        let seq = inner.next_record;
        inner.next_record += 1;
        let identity = identity.unwrap_or_else(|| format!("{}:{seq}", self.source));
        let mut map: BTreeMap<u32, Attr> = attrs.into_iter().collect();
        let parent = parent
            .or_else(|| (record_type != ROUTER && record_type != SITE).then(|| self.id.clone()));
        if let Some(parent) = parent {
            map.insert(PARENT, Attr::Str(parent));
        }
        map.insert(START_TIME, Attr::Num(now_us()));
        let class = if record_type == BIFLOW_TPORT {
            Class::Flows
        } else {
            Class::Base
        };
        let dirty = map.keys().copied().collect();
        inner.records.insert(
            identity.clone(),
            Record {
                seq,
                record_type,
                class,
                attrs: map,
                dirty,
                ended: false,
                hold_until: None,
                counters: Vec::new(),
            },
        );
        identity
    }

    /// Remembers that `key` (e.g. `tcpListener/<name>`) is record `identity`.
    pub fn bind(&self, key: &str, identity: &str) {
        self.inner()
            .keys
            .insert(key.to_string(), identity.to_string());
    }

    pub fn lookup(&self, key: &str) -> Option<String> {
        self.inner().keys.get(key).cloned()
    }

    pub fn unbind(&self, key: &str) -> Option<String> {
        self.inner().keys.remove(key)
    }

    /// Sets an attribute; a changed value is emitted at the next emission.
    pub fn set(&self, identity: &str, key: u32, value: Attr) {
        let mut inner = self.inner();
        if let Some(record) = inner.records.get_mut(identity) {
            if record.attrs.get(&key) != Some(&value) {
                record.attrs.insert(key, value);
                record.dirty.insert(key);
            }
        }
    }

    /// Adds to a numeric attribute (a missing one counts as 0); returns the new value.
    pub fn add(&self, identity: &str, key: u32, delta: u64) -> u64 {
        let mut inner = self.inner();
        let Some(record) = inner.records.get_mut(identity) else {
            return 0;
        };
        let value = match record.attrs.get(&key) {
            Some(Attr::Num(n)) => n + delta,
            _ => delta,
        };
        record.attrs.insert(key, Attr::Num(value));
        record.dirty.insert(key);
        value
    }

    /// A CONNECTOR's flowCountL4 for a new connection: it starts at 0 and the first connection
    /// makes it 2 (the router's legacy count from 1).
    pub fn connector_connection(&self, identity: &str) {
        let mut inner = self.inner();
        if let Some(record) = inner.records.get_mut(identity) {
            let value = match record.attrs.get(&FLOW_COUNT_L4) {
                Some(Attr::Num(n)) if *n > 0 => n + 1,
                _ => 2,
            };
            record.attrs.insert(FLOW_COUNT_L4, Attr::Num(value));
            record.dirty.insert(FLOW_COUNT_L4);
        }
    }

    /// Binds attribute `key` to a live counter, sampled at each emission.
    pub fn counter(&self, identity: &str, key: u32, counter: Arc<AtomicU64>) {
        if let Some(record) = self.inner().records.get_mut(identity) {
            record.counters.push((key, counter));
        }
    }

    /// Ends a record (endTime); it is forgotten once its last update has gone out.
    pub fn end(&self, identity: &str) {
        let mut inner = self.inner();
        if let Some(record) = inner.records.get_mut(identity) {
            if record.ended {
                return;
            }
            sample(record);
            record.counters.clear();
            record.attrs.insert(END_TIME, Attr::Num(now_us()));
            record.dirty.insert(END_TIME);
            record.ended = true;
            if record.record_type == BIFLOW_TPORT {
                record.hold_until = Some(Instant::now() + END_HOLD);
            }
        }
    }

    /// FLUSH: every live record goes out again with all its attributes.
    pub fn flush(&self) {
        let mut inner = self.inner();
        for record in inner.records.values_mut().filter(|r| !r.ended) {
            record.dirty = record.attrs.keys().copied().collect();
        }
    }

    fn next_message_id(&self) -> i64 {
        let mut inner = self.inner();
        let id = inner.next_message;
        inner.next_message += 1;
        id
    }

    /// The RECORD messages due now; changes of a class whose address has no consumer are
    /// dropped.
    fn due_records(&self, base_wanted: bool, flows_wanted: bool) -> Vec<(String, Vec<u8>)> {
        let now = Instant::now();
        let mut inner = self.inner();
        let mut due: Vec<(bool, u64, String)> = Vec::new();
        for (identity, record) in inner.records.iter_mut() {
            sample(record);
            if record.dirty.is_empty() || record.hold_until.is_some_and(|t| t > now) {
                continue;
            }
            due.push((record.record_type != SITE, record.seq, identity.clone()));
        }
        due.sort();
        let mut base = Vec::new();
        let mut flows = Vec::new();
        for (_, _, identity) in due {
            let record = inner.records.get_mut(&identity).expect("listed");
            let wanted = match record.class {
                Class::Base => base_wanted,
                Class::Flows => flows_wanted,
            };
            let dirty = std::mem::take(&mut record.dirty);
            if wanted {
                let mut attrs = vec![(IDENTITY, Attr::Str(identity.clone()))];
                attrs.extend(
                    dirty
                        .iter()
                        .filter_map(|k| record.attrs.get(k).map(|v| (*k, v.clone()))),
                );
                let map = (record.record_type, attrs);
                match record.class {
                    Class::Base => base.push(map),
                    Class::Flows => flows.push(map),
                }
            }
            if record.ended {
                inner.records.remove(&identity);
            }
        }
        drop(inner);
        let mut messages = Vec::new();
        for (address, maps) in [(self.base_address(), base), (self.flows_address(), flows)] {
            for batch in maps.chunks(RECORDS_PER_MESSAGE) {
                let id = self.next_message_id();
                messages.push((address.clone(), wire::record(id, &address, batch)));
            }
        }
        messages
    }

    /// A local consumer (a collector's receiving link) of `address`.
    pub fn subscribe(&self, address: &str) -> (u64, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner();
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        inner.subscribers.insert(id, (address.to_string(), tx));
        (id, rx)
    }

    pub fn unsubscribe(&self, id: u64) {
        self.inner().subscribers.remove(&id);
    }

    /// The addresses with local consumers, and how many each has.
    pub fn local_subscriptions(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (address, tx) in self.inner().subscribers.values() {
            if !tx.is_closed() {
                *counts.entry(address.clone()).or_default() += 1;
            }
        }
        counts
    }

    fn deliver_local(&self, address: &str, message: &[u8]) {
        for (a, tx) in self.inner().subscribers.values() {
            if a == address {
                let _ = tx.send(message.to_vec());
            }
        }
    }

    /// True the first time a frame is seen.
    fn first_sight(&self, frame: &Frame) -> bool {
        let mut inner = self.inner();
        let now = Instant::now();
        if inner.seen.len() > 4096 {
            inner.seen.retain(|_, t| now.duration_since(*t) < SEEN_FOR);
        }
        inner
            .seen
            .insert((frame.origin.clone(), frame.seq), now)
            .is_none()
    }

    fn frame(&self, address: &str, message: &[u8]) -> Frame {
        let seq = {
            let mut inner = self.inner();
            inner.next_frame += 1;
            inner.next_frame
        };
        Frame {
            origin: self.origin.clone(),
            seq,
            address: address.to_string(),
            hops: 0,
            message: hex(message),
        }
    }
}

/// Takes the live counters' values (a counter still at 0 with no value yet is not sent).
fn sample(record: &mut Record) {
    for (key, counter) in &record.counters {
        let n = counter.load(Ordering::Relaxed);
        let v = Attr::Num(n);
        if record.attrs.get(key) != Some(&v) && (n > 0 || record.attrs.contains_key(key)) {
            record.attrs.insert(*key, v);
            record.dirty.insert(*key);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The vanflow addresses with consumers reachable through this router, with their distance,
/// for the advertisement to `peer` (split horizon).
pub fn subscriptions_for(
    router: &Router,
    peers: &HashMap<u64, crate::router::Peer>,
    peer: Option<u64>,
) -> BTreeMap<String, u32> {
    let mut view: BTreeMap<String, u32> = router
        .vanflow
        .local_subscriptions()
        .into_keys()
        .map(|a| (a, 0))
        .collect();
    for (id, p) in peers {
        if Some(*id) == peer {
            continue;
        }
        for (address, hops) in &p.learned.subscriptions {
            let hops = hops + 1;
            if hops <= MAX_HOPS {
                let entry = view.entry(address.clone()).or_insert(hops);
                *entry = (*entry).min(hops);
            }
        }
    }
    view
}

/// Whether `address` has a consumer here or behind a link.
pub fn has_consumer(router: &Router, address: &str) -> bool {
    if router.vanflow.local_subscriptions().contains_key(address) {
        return true;
    }
    router
        .state()
        .peers
        .values()
        .any(|p| p.learned.subscriptions.contains_key(address))
}

/// Sends a message this router made to `address`.
pub fn send(router: &Arc<Router>, address: &str, message: &[u8]) {
    let frame = router.vanflow.frame(address, message);
    route(router, frame, None);
}

/// Delivers a frame to local consumers and passes it on to the peers that want it (FLUSH
/// requests for other routers go to every peer). `from` is the peer it came from.
pub fn route(router: &Arc<Router>, frame: Frame, from: Option<u64>) {
    if !router.vanflow.first_sight(&frame) {
        return;
    }
    let Some(message) = unhex(&frame.message) else {
        return;
    };
    if frame.address == router.vanflow.direct_address() {
        if is_flush(&message) {
            tracing::debug!("vanflow: FLUSH");
            router.vanflow.flush();
        }
        return;
    }
    router.vanflow.deliver_local(&frame.address, &message);
    if frame.hops >= MAX_HOPS {
        return;
    }
    let direct = !frame.address.starts_with("mc/");
    let forwarded = Frame {
        hops: frame.hops + 1,
        ..frame
    };
    let state = router.state();
    for (id, peer) in &state.peers {
        if Some(*id) == from {
            continue;
        }
        if direct || peer.learned.subscriptions.contains_key(&forwarded.address) {
            let _ = peer
                .control
                .send(crate::router::PeerMessage::Vanflow(forwarded.clone()));
        }
    }
}

/// Whether a message's subject is FLUSH.
pub fn is_flush(message: &[u8]) -> bool {
    wire::header_of(message).and_then(|(_, _, subject)| subject) == Some("FLUSH".into())
}

/// A FLUSH request (or any message) a collector sent to `sfe.<id>`.
pub fn request(router: &Arc<Router>, address: &str, subject: Option<&str>) {
    if subject != Some("FLUSH") {
        return;
    }
    if address == router.vanflow.direct_address() {
        tracing::debug!("vanflow: FLUSH");
        router.vanflow.flush();
        return;
    }
    // Another router's: as a minimal FLUSH message.
    let mut message = vec![0x00, 0x53, 0x73, 0xc0];
    let mut fields = vec![0x40, 0x40];
    fields.push(0xa1);
    fields.push(address.len() as u8);
    fields.extend_from_slice(address.as_bytes());
    fields.extend_from_slice(&[0xa1, 0x05]);
    fields.extend_from_slice(b"FLUSH");
    message.push((fields.len() + 1) as u8);
    message.push(4);
    message.extend_from_slice(&fields);
    send(router, address, &message);
}

/// Runs the router's timers: records every second, heartbeat every 2 s, beacon every 10 s.
pub fn start(router: &Arc<Router>) {
    tracing::info!("vanflow source id {}", router.vanflow.id);
    let router = Arc::clone(router);
    tokio::spawn(async move {
        let mut emit = tokio::time::interval(EMIT_INTERVAL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        let mut beacon_in: Option<u32> = None;
        let vanflow = &router.vanflow;
        loop {
            tokio::select! {
                _ = emit.tick() => {
                    let base = has_consumer(&router, &vanflow.base_address());
                    let flows = has_consumer(&router, &vanflow.flows_address());
                    for (address, message) in vanflow.due_records(base, flows) {
                        send(&router, &address, &message);
                    }
                }
                _ = heartbeat.tick() => {
                    if !has_consumer(&router, BEACON_ADDRESS) {
                        beacon_in = None;
                        continue;
                    }
                    if has_consumer(&router, &vanflow.base_address()) {
                        let id = vanflow.next_message_id();
                        let message = wire::heartbeat(id, &vanflow.id, now_us());
                        send(&router, &vanflow.base_address(), &message);
                    }
                    let due = beacon_in.unwrap_or(0);
                    if due == 0 {
                        let id = vanflow.next_message_id();
                        send(&router, BEACON_ADDRESS, &wire::beacon(id, &vanflow.id));
                        beacon_in = Some(HEARTBEATS_PER_BEACON - 1);
                    } else {
                        beacon_in = Some(due - 1);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids() {
        assert_eq!(
            source_from_hostname(Some("skupper-router-7d4b9-w2x5z")),
            "w2x5z"
        );
        let random = source_from_hostname(Some("east-host"));
        assert_eq!(random.len(), 5);
        assert_eq!(source_from_hostname(None).len(), 5);
        // Exactly six characters is not pod-style (more than six are needed).
        assert_ne!(source_from_hostname(Some("-abcde")), "abcde");
    }

    #[test]
    fn records_go_out_once_then_only_changes() {
        let v = Vanflow::new("r1", "interior");
        let l = v.start(
            LISTENER,
            None,
            None,
            vec![(NAME, Attr::Str("l".into())), (FLOW_COUNT_L4, Attr::Num(0))],
        );
        assert_eq!(l, format!("{}:1", v.source));
        let first = v.due_records(true, true);
        assert_eq!(first.len(), 1);
        assert!(v.due_records(true, true).is_empty());
        v.add(&l, FLOW_COUNT_L4, 1);
        let update = v.due_records(true, true);
        assert_eq!(update.len(), 1);
        assert!(update[0].1.len() < first[0].1.len());
        // Without a consumer the change is dropped.
        v.add(&l, FLOW_COUNT_L4, 1);
        assert!(v.due_records(false, false).is_empty());
        assert!(v.due_records(true, true).is_empty());
        v.flush();
        assert_eq!(v.due_records(true, true).len(), 1);
        v.end(&l);
        assert_eq!(v.due_records(true, true).len(), 1);
        v.flush();
        // ROUTER only.
        let again = v.due_records(true, true);
        assert_eq!(again.len(), 1);
        assert!(!again[0].1.windows(l.len()).any(|w| w == l.as_bytes()));
    }
}

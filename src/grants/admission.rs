//! Which client connections the grant server keeps open. A redemption is one small request, so
//! a connection that is still sending its request after a few seconds, or one of thousands
//! from one address, is not a redeeming site: it is a slow or idle client holding a descriptor.
//!
//! Each connection is admitted under two caps: all connections, and connections from one peer
//! address. At a cap the oldest connection of that scope that is still *reading* its request
//! is closed to make room, so slow and idle clients cannot keep a correct redemption out: it is
//! the newest, and closed last. Connections already being answered are never closed (their
//! redemption may be counted); when every one in scope is being answered, the new one is
//! refused. Besides, each request must be read whole within a deadline (`Limits`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

/// The caps and the request deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, from everyone.
    pub total: usize,
    /// Connections open at once from one address (a NAT may put several sites behind one).
    pub per_peer: usize,
    /// From accepting a connection to having its whole request: TLS handshake, head and body.
    pub request_deadline: Duration,
}

/// Descriptors kept for everything but client connections (listener, files, the runtime).
const RESERVED_DESCRIPTORS: u64 = 64;
const MAX_TOTAL: usize = 4096;
const PER_PEER: usize = 64;
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

impl Limits {
    /// The caps for a process allowed `descriptors` open files: one per connection.
    pub fn for_descriptors(descriptors: u64) -> Limits {
        let room = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(1);
        let total = usize::try_from(room).unwrap_or(usize::MAX).min(MAX_TOTAL);
        Limits {
            total,
            per_peer: PER_PEER.min(total),
            request_deadline: REQUEST_DEADLINE,
        }
    }
}

/// What `admit` decided.
#[derive(Debug)]
pub enum Admitted {
    /// Open it; the ticket holds its place until dropped.
    Open(Ticket),
    /// Every connection in scope is being answered: close the new one.
    Refused,
}

/// The open connections, by accept order (oldest first).
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

/// Which cap a newcomer meets: room is made among its own address's connections, or among all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Peer,
    Total,
}

#[derive(Debug)]
struct Entry {
    peer: IpAddr,
    /// Still reading its request (may be closed to make room).
    reading: bool,
    /// Ends its task, which closes the connection.
    abort: Option<AbortHandle>,
}

/// A connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            table: Mutex::new(Table::default()),
        })
    }

    /// Admits a connection from `peer`, closing the oldest reading one in scope when at a cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admitted {
        let mut table = self.table.lock().expect("admission table");
        let from_peer = table.per_peer.get(&peer).copied().unwrap_or(0);
        let at_cap = if from_peer >= self.limits.per_peer {
            Some(Cap::Peer)
        } else if table.open.len() >= self.limits.total {
            Some(Cap::Total)
        } else {
            None
        };
        if let Some(cap) = at_cap {
            let in_scope = |e: &Entry| cap == Cap::Total || e.peer == peer;
            let oldest_reading = table
                .open
                .iter()
                .find(|(_, e)| e.reading && in_scope(e))
                .map(|(id, _)| *id);
            match oldest_reading {
                Some(id) => {
                    if let Some(entry) = table.remove(id) {
                        tracing::debug!("closing a connection from {} to make room", entry.peer);
                        if let Some(abort) = entry.abort {
                            abort.abort();
                        }
                    }
                }
                None => return Admitted::Refused,
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(
            id,
            Entry {
                peer,
                reading: true,
                abort: None,
            },
        );
        *table.per_peer.entry(peer).or_default() += 1;
        Admitted::Open(Ticket {
            admission: self.clone(),
            id,
        })
    }

    /// How many connections are open.
    pub fn open_count(&self) -> usize {
        self.table.lock().expect("admission table").open.len()
    }

    /// How many connections from `peer` are open.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let table = self.table.lock().expect("admission table");
        table.per_peer.get(&peer).copied().unwrap_or(0)
    }
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(count) = self.per_peer.get_mut(&entry.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&entry.peer);
            }
        }
        Some(entry)
    }
}

impl Ticket {
    /// The task serving the connection, to end when room is needed.
    pub fn serve_with(&self, task: AbortHandle) {
        let mut table = self.admission.table.lock().expect("admission table");
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.abort = Some(task);
        }
    }

    /// The request is read: from now on the connection is not closed to make room.
    pub fn answering(&self) {
        let mut table = self.admission.table.lock().expect("admission table");
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.reading = false;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.admission.table.lock().expect("admission table");
        table.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn limits(total: usize, per_peer: usize) -> Limits {
        Limits {
            total,
            per_peer,
            request_deadline: REQUEST_DEADLINE,
        }
    }

    fn ticket(admitted: Admitted) -> Ticket {
        match admitted {
            Admitted::Open(ticket) => ticket,
            Admitted::Refused => panic!("refused"),
        }
    }

    #[test]
    fn at_a_peers_cap_its_oldest_reading_connection_makes_room() {
        let admission = Admission::new(limits(10, 2));
        let first = ticket(admission.admit(ip(1)));
        let second = ticket(admission.admit(ip(1)));
        let other = ticket(admission.admit(ip(2)));
        let third = ticket(admission.admit(ip(1)));
        // The first (oldest) of that peer is gone; the other peer's is untouched.
        assert_eq!((admission.open_count(), admission.open_from(ip(1))), (3, 2));
        drop(first); // its place was already freed: nothing counted twice
        assert_eq!((admission.open_count(), admission.open_from(ip(1))), (3, 2));
        drop((second, third, other));
        assert_eq!(admission.open_count(), 0);
    }

    #[test]
    fn at_the_total_cap_the_oldest_reading_connection_of_anyone_makes_room() {
        let admission = Admission::new(limits(2, 2));
        let slow = ticket(admission.admit(ip(1)));
        let answering = ticket(admission.admit(ip(2)));
        answering.answering();
        slow.answering();
        // Both are being answered: nothing may be closed for a newcomer.
        assert!(matches!(admission.admit(ip(3)), Admitted::Refused));
        drop(slow);
        let newcomer = ticket(admission.admit(ip(3)));
        let _next = ticket(admission.admit(ip(4)));
        // The newcomer was reading, so it made room; the one being answered stays.
        assert_eq!((admission.open_count(), admission.open_from(ip(3))), (2, 0));
        drop((newcomer, answering));
    }

    #[test]
    fn closing_to_make_room_ends_the_connections_task() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admission = Admission::new(limits(1, 1));
            let slow = ticket(admission.admit(ip(1)));
            let task = tokio::spawn(std::future::pending::<()>());
            slow.serve_with(task.abort_handle());
            let _newcomer = ticket(admission.admit(ip(1)));
            assert!(task.await.unwrap_err().is_cancelled());
        });
    }

    #[test]
    fn caps_fit_the_descriptor_limit() {
        let small = Limits::for_descriptors(1024);
        assert_eq!((small.total, small.per_peer), (960, PER_PEER));
        let unit = Limits::for_descriptors(crate::render::grant_units::GRANT_SERVER_DESCRIPTORS);
        assert_eq!(unit.total, MAX_TOTAL);
        assert_eq!(Limits::for_descriptors(10).total, 1);
    }
}

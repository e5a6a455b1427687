//! A service offered at two sites, and moved, on three test hosts with stand-in routers: a hub
//! whose listeners the clients use, and two sites linked to it that offer the routing keys.
//! Clients keep connecting while a site withdraws its connector: only connections open at
//! that moment may fail. A multi-key listener falls back to its second key and returns.

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{link_sites, running_site, serve_answer, vansite_ok, wait_reachable, Host};
use serde_json::Value;

/// The whole answer of a service that writes one and closes; None when the connection fails
/// or closes without an answer.
fn answer(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn listener_status(host: &Host, name: &str) -> Value {
    let text = vansite_ok(host, &["listener", "status", name, "-o", "json"]);
    serde_json::from_str::<Value>(&text).unwrap()[0].clone()
}

/// Clients connecting one after another, `parallel` at a time, until stopped: counts answers
/// by site, failures, and the most connections open at once while `watch` was set.
struct Clients {
    stop: Arc<AtomicBool>,
    watch: Arc<AtomicBool>,
    open: Arc<AtomicU64>,
    open_while_watched: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<(Vec<String>, u64)>>,
}

impl Clients {
    fn start(addr: &str, parallel: usize) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicU64::new(0));
        let open_while_watched = Arc::new(AtomicU64::new(0));
        let threads = (0..parallel)
            .map(|_| {
                let (addr, stop, watch) = (addr.to_string(), stop.clone(), watch.clone());
                let (open, peak) = (open.clone(), open_while_watched.clone());
                std::thread::spawn(move || {
                    let (mut answers, mut failures) = (Vec::new(), 0);
                    while !stop.load(Ordering::Relaxed) {
                        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                        if watch.load(Ordering::SeqCst) {
                            peak.fetch_max(now, Ordering::SeqCst);
                        }
                        match answer(&addr) {
                            Some(text) => answers.push(text),
                            None => failures += 1,
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    (answers, failures)
                })
            })
            .collect();
        Clients {
            stop,
            watch,
            open,
            open_while_watched,
            threads,
        }
    }

    /// Runs `change` while watching how many connections are open.
    fn during(&self, change: impl FnOnce()) {
        self.open_while_watched
            .store(self.open.load(Ordering::SeqCst), Ordering::SeqCst);
        self.watch.store(true, Ordering::SeqCst);
        change();
        self.watch.store(false, Ordering::SeqCst);
    }

    /// Answers and failures of every client.
    fn finish(self) -> (Vec<String>, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut answers, mut failures) = (Vec::new(), 0);
        for thread in self.threads {
            let (a, f) = thread.join().unwrap();
            answers.extend(a);
            failures += f;
        }
        (
            answers,
            failures,
            self.open_while_watched.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn a_service_moves_between_sites_and_a_multi_key_listener_falls_back() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let hub = running_site("mvh", true);
    let east = running_site("mve", false);
    let west = running_site("mvw", false);
    link_sites(&east, &hub);
    link_sites(&west, &hub);

    // Both sites offer `orders`; the hub's clients reach it on port 8080.
    // Each answer takes a moment, so that connections overlap as under load.
    serve_answer(&east, 9000, "SYSTEM:'sleep 0.2; echo east'");
    serve_answer(&west, 9000, "SYSTEM:'sleep 0.2; echo west'");
    vansite_ok(&east, &["connector", "create", "orders", "9000"]);
    vansite_ok(&west, &["connector", "create", "orders", "9000"]);
    vansite_ok(&hub, &["listener", "create", "orders", "8080"]);
    wait_reachable(&hub, "orders");
    hub.wait_until(
        "orders offered at both sites",
        Duration::from_secs(60),
        |h| {
            listener_status(h, "orders")["offeredAt"]
                .as_array()
                .is_some_and(|at| at.len() == 2)
        },
    );
    let addr = format!("{}:8080", hub.addr());

    // Connections open at the same time are shared between the two sites.
    let clients = Clients::start(&addr, 8);
    std::thread::sleep(Duration::from_secs(3));
    let (answers, failures, _) = clients.finish();
    assert_eq!(failures, 0, "{answers:?}");
    for site in ["east", "west"] {
        assert!(
            answers.iter().any(|a| a == site),
            "no answer from {site}: {answers:?}"
        );
    }

    // East withdraws its connector while clients keep connecting: new connections go west;
    // at most those open at that moment fail.
    let clients = Clients::start(&addr, 8);
    std::thread::sleep(Duration::from_secs(1));
    clients.during(|| {
        let out = vansite_ok(&east, &["connector", "delete", "orders"]);
        assert!(
            out.contains("routing key 'orders' is still offered at "),
            "{out}"
        );
    });
    std::thread::sleep(Duration::from_secs(2));
    let (answers, failures, open_at_change) = clients.finish();
    eprintln!(
        "moving orders: {} answered, {failures} failed, at most {open_at_change} open while the \
         connector was deleted",
        answers.len()
    );
    assert!(
        failures <= open_at_change,
        "{failures} connections failed, {open_at_change} were open while the connector was deleted"
    );
    let clients = Clients::start(&addr, 4);
    std::thread::sleep(Duration::from_secs(2));
    let (answers, failures, _) = clients.finish();
    assert_eq!(failures, 0, "after the move: {answers:?}");
    assert!(
        answers.iter().all(|a| a == "west"),
        "after the move: {answers:?}"
    );
    hub.wait_until("orders offered at one site", Duration::from_secs(30), |h| {
        listener_status(h, "orders")["offeredAt"]
            .as_array()
            .is_some_and(|at| at.len() == 1)
    });

    // A priority listener: `primary` (east) first, `backup` (west) while primary is gone.
    serve_answer(&east, 9001, "SYSTEM:'echo primary'");
    serve_answer(&west, 9001, "SYSTEM:'echo backup'");
    vansite_ok(&east, &["connector", "create", "primary", "9001"]);
    vansite_ok(&west, &["connector", "create", "backup", "9001"]);
    let created = vansite_ok(
        &hub,
        &[
            "listener",
            "create",
            "ha",
            "8081",
            "--routing-key",
            "primary",
            "--routing-key",
            "backup",
        ],
    );
    assert!(
        created.contains("'primary' > 'backup' (priority)"),
        "{created}"
    );
    let ha = format!("{}:8081", hub.addr());
    let takes = |host: &Host, key: &str| {
        listener_status(host, "ha")["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == key)
            .map(|k| k["newConnectionsPercent"].clone())
            .unwrap()
    };
    hub.wait_until(
        "primary taking every new connection",
        Duration::from_secs(60),
        |h| takes(h, "primary") == 100,
    );
    assert_eq!(answer(&ha).as_deref(), Some("primary"));

    let out = vansite_ok(&east, &["connector", "delete", "primary"]);
    assert!(
        out.contains("no site offers routing key 'primary' now"),
        "{out}"
    );
    hub.wait_until("backup taking over", Duration::from_secs(60), |h| {
        takes(h, "backup") == 100
    });
    assert_eq!(answer(&ha).as_deref(), Some("backup"));
    let table = vansite_ok(&hub, &["listener", "status", "ha"]);
    assert!(
        table.contains("ha: key 'primary' offered at nowhere, takes 0% of new connections"),
        "{table}"
    );

    vansite_ok(&east, &["connector", "create", "primary", "9001"]);
    hub.wait_until("primary back", Duration::from_secs(60), |h| {
        takes(h, "primary") == 100
    });
    assert_eq!(answer(&ha).as_deref(), Some("primary"));
}

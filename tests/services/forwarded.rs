//! Plain TCP services: connectors and listeners changed live (the router is never restarted),
//! each listener served by its socket-activated forwarder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{
    in_netns, link_sites, router_identity, running_site, serve_answer, text, vansite_fails,
    vansite_ok, vansite_refuses, wait_reachable, Host,
};
use serde_json::{json, Value};

fn status(host: &Host) -> Value {
    crate::support::site_status(host)
}

/// Sends `data` on a new connection to `addr` and reads back as much (an echo service).
pub(crate) fn echo(addr: &str, data: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let owned = data.to_vec();
    let sender = std::thread::spawn(move || writer.write_all(&owned).unwrap());
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    back
}

/// The whole answer of a service that writes one and closes.
fn answer(addr: &str) -> String {
    answer_kept_open(addr).0
}

/// The whole answer of a service that writes one and closes its side, on a connection this end
/// keeps open (returned with it): the router counts it as open until it is dropped.
fn answer_kept_open(addr: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    (text.trim().to_string(), stream)
}

/// An echo service on the host's loopback, for the rest of the test: every connection gets its
/// bytes back. (socat's PIPE echo blocks for ever on its own pipe once a transfer outgrows it.)
pub(crate) fn serve_echo(host: &Host, port: u16) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    in_netns(host, move || {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        ready_tx.send(()).unwrap();
        for connection in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = connection.try_clone().unwrap();
                let mut writer = &connection;
                let _ = std::io::copy(&mut reader, &mut writer);
                let _ = connection.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    ready.recv().unwrap();
}

/// Changes with every systemd reload: the quadlet generator writes the router's service anew
/// (a new inode) each time the generators run.
fn systemd_reloads(host: &Host) -> String {
    host.ok(&[
        "sh",
        "-c",
        "stat -c %i \"$XDG_RUNTIME_DIR/systemd/generator/vansite-default-router.service\"",
    ])
}

/// The forwarder (`pid`) sees, of the site's files, only the management client certificate it
/// needs, read-only; of the users, only its own.
fn assert_forwarder_sandboxed(host: &Host, pid: &str) {
    let seen = host.ok(&[
        "sh",
        "-c",
        &format!(
            "cd /proc/{pid}/root$HOME && find . -type f | sort; \
             touch .local/share/vansite/default/runtime/certs/skupper-local-client/x 2>&1; \
             cat /proc/{pid}/uid_map"
        ),
    ]);
    let uid = host.ok(&["id", "-u"]);
    let lines: Vec<&str> = seen.lines().map(str::trim).collect();
    let client = "./.local/share/vansite/default/runtime/certs/skupper-local-client";
    assert_eq!(
        lines[..4],
        [
            format!("{client}/ca.crt"),
            format!("{client}/tls.crt"),
            format!("{client}/tls.key"),
            format!(
                "touch: cannot touch '{}/x': Read-only file system",
                &client[2..]
            ),
        ],
        "{seen}"
    );
    let uid_map: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(uid_map, [uid.trim(), uid.trim(), "1"], "{seen}");
    assert_eq!(lines.len(), 5, "{seen}");
}

/// No forwarder unit, file, container or process of vansite's is left on the host.
fn assert_no_forwarders(host: &Host) {
    let left = host.ok(&[
        "sh",
        "-c",
        "find .config/containers/systemd .config/systemd/user 2>/dev/null | grep -- -listener-; \
         ls .local/share/vansite/*/runtime/logs 2>/dev/null | grep listener; \
         podman ps -a --format '{{.Names}}' | grep -- -listener-; \
         pgrep -a -u $(id -u) -f '[v]ansite forward'; \
         systemctl --user list-units --all --plain --no-legend 'vansite-*-listener-*'; true",
    ]);
    assert_eq!(left.trim(), "", "forwarder leftovers on {}", host.name);
}

#[test]
fn a_service_on_one_host_is_reached_from_another_through_the_forwarder() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let a = running_site("sva", true);
    let b = running_site("svb", false);
    link_sites(&b, &a);
    let (a_router, b_router) = (router_identity(&a), router_identity(&b));

    // B offers an echo service; A reaches it at its port 8080 (every interface).
    serve_echo(&b, 9090);
    vansite_ok(&b, &["connector", "create", "echo", "9090"]);
    let reloads_before = systemd_reloads(&a);
    let out = vansite_ok(&a, &["listener", "create", "echo", "8080", "-o", "json"]);
    // Returned with the forwarder running (not merely its socket armed): no client came yet.
    let created: Value = serde_json::from_str(&out).unwrap();
    let unit = "vansite-default-listener-echo.service";
    assert_eq!(created["forwarder"]["unit"], unit, "{created:#}");
    let main_pid = a.ok(&["systemctl", "--user", "show", "-P", "MainPID", unit]);
    assert_ne!(main_pid.trim(), "0", "{unit} runs");
    assert_eq!(created["forwarder"]["mainPid"].to_string(), main_pid.trim());
    // A new forwarder's units are read by systemd when first started: no reload (and no run
    // of every generator) for them.
    assert_eq!(
        systemd_reloads(&a),
        reloads_before,
        "listener create reloaded systemd"
    );
    assert_forwarder_sandboxed(&a, main_pid.trim());
    wait_reachable(&a, "echo");
    let addr = format!("{}:8080", a.addr());

    let ten_mb: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 4093) as u8)
        .collect();
    assert!(echo(&addr, &ten_mb) == ten_mb, "10 MB came back altered");

    let clients: Vec<_> = (0..50u8)
        .map(|n| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let data = vec![n; 64 * 1024];
                assert!(echo(&addr, &data) == data, "client {n} got other bytes");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }

    // Two connectors with one routing key, on both hosts: the router does not take turns
    // between them. A new connection goes to the closest connector with capacity, counting the
    // connections open on each path (skupper-router's balanced forwarding).
    serve_answer(&a, 9091, "SYSTEM:'echo from-a'");
    serve_answer(&b, 9091, "SYSTEM:'echo from-b'");
    vansite_ok(
        &a,
        &[
            "connector",
            "create",
            "who-a",
            "9091",
            "--routing-key",
            "who",
        ],
    );
    vansite_ok(
        &b,
        &[
            "expose",
            "host",
            "127.0.0.1",
            "--address",
            "who",
            "--port",
            "9091",
        ],
    );
    vansite_ok(
        &a,
        &["listener", "create", "who", "8081", "--routing-key", "who"],
    );
    wait_reachable(&a, "who");
    let who = format!("{}:8081", a.addr());
    // Made one after another, every connection reaches A's own connector, on the listener's
    // router.
    let answers: Vec<String> = (0..20).map(|_| answer(&who)).collect();
    assert!(answers.iter().all(|text| text == "from-a"), "{answers:?}");
    // Kept open, connections count against their connector, and B's takes a share. (Retried
    // until A's router knows B's connector.)
    let started = Instant::now();
    loop {
        let held: Vec<(String, TcpStream)> = (0..8).map(|_| answer_kept_open(&who)).collect();
        let answers: Vec<&str> = held.iter().map(|(text, _)| text.as_str()).collect();
        if ["from-a", "from-b"]
            .iter()
            .all(|expected| answers.contains(expected))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{answers:?}");
        drop(held);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        router_identity(&a),
        a_router,
        "adding services restarted A's router"
    );
    assert_eq!(
        router_identity(&b),
        b_router,
        "adding services restarted B's router"
    );

    // A client that connects while A's router restarts is served after it.
    std::thread::scope(|scope| {
        let restart = scope.spawn(|| {
            a.run(&[
                "systemctl",
                "--user",
                "restart",
                "vansite-default-router.service",
            ])
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let served = std::panic::catch_unwind(|| echo(&addr, b"during the restart"));
        if served.as_deref().ok() != Some(b"during the restart".as_slice()) {
            for host in [&a, &b] {
                eprintln!(
                    "=== {}\n{}",
                    host.name,
                    host.ok(&[
                        "sh",
                        "-c",
                        "tail -n 40 .local/share/vansite/default/runtime/logs/*.log"
                    ])
                );
            }
            panic!("not served during the restart");
        }
        eprintln!("served after the restart in {:?}", started.elapsed());
        let restarted = restart.join().unwrap();
        assert!(restarted.status.success(), "{}", text(&restarted));
    });
    assert_ne!(router_identity(&a), a_router, "the router did restart");

    // Removing services does not restart the routers either, and leaves nothing behind.
    let (a_router, b_router) = (router_identity(&a), router_identity(&b));
    for name in ["echo", "who"] {
        vansite_ok(&a, &["listener", "delete", name]);
    }
    vansite_ok(&a, &["connector", "delete", "who-a"]);
    for name in ["echo", "who"] {
        vansite_ok(&b, &["connector", "delete", name]);
    }
    assert_eq!(
        router_identity(&a),
        a_router,
        "removing services restarted A's router"
    );
    assert_eq!(
        router_identity(&b),
        b_router,
        "removing services restarted B's router"
    );
    assert_eq!(status(&a)["services"], json!([]));
    assert!(TcpStream::connect(&addr).is_err(), "the port is released");
    assert_no_forwarders(&a);
    assert_no_forwarders(&b);
}

#[test]
fn bad_input_pending_peers_and_deleting_a_service_in_use() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let host = running_site("svc", false);
    let unprivileged = host.ok(&["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]);
    if unprivileged.trim().parse::<u16>().unwrap() > 80 {
        let stderr = vansite_fails(&host, &["listener", "create", "web", "80"]);
        assert!(stderr.contains("privileged"), "{stderr}");
    }
    serve_echo(&host, 8082);
    let stderr = vansite_fails(
        &host,
        &["listener", "create", "taken", "8082", "--host", "127.0.0.1"],
    );
    assert!(
        stderr.contains("port 8082") && stderr.contains("another port"),
        "{stderr}"
    );
    let stderr = vansite_refuses(
        &host,
        &["listener", "create", "named", "8083", "--host", "localhost"],
    );
    assert!(stderr.contains("not an IP address"), "{stderr}");
    let stderr = vansite_refuses(&host, &["connector", "create", "Bad_Name", "8082"]);
    assert!(stderr.contains("Bad_Name"), "{stderr}");
    let stderr = vansite_refuses(&host, &["listener", "delete", "nothing"]);
    assert!(stderr.contains("no listener named 'nothing'"), "{stderr}");

    // A routing key with no connector yet: allowed, pending; a client waits and is served once
    // the connector comes.
    vansite_ok(
        &host,
        &[
            "listener",
            "create",
            "later",
            "8084",
            "--routing-key",
            "echo",
        ],
    );
    let stderr = vansite_fails(&host, &["listener", "create", "later", "8085"]);
    assert!(stderr.contains("already exists"), "{stderr}");
    let stderr = vansite_fails(&host, &["listener", "create", "other", "8084"]);
    assert!(stderr.contains("port 8084"), "{stderr}");
    let listed: Value = serde_json::from_str(&vansite_ok(
        &host,
        &["listener", "status", "later", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(listed[0]["peer"], "pending", "{listed:#}");
    assert_eq!(listed[0]["forwarderState"], "active/running", "{listed:#}");
    let addr = format!("{}:8084", host.addr());
    let early = std::thread::spawn({
        let addr = addr.clone();
        move || echo(&addr, b"before the connector")
    });
    std::thread::sleep(Duration::from_millis(500));
    vansite_ok(&host, &["connector", "create", "echo", "8082"]);
    assert_eq!(early.join().unwrap(), b"before the connector");
    // A forwarder as an earlier vansite ran it (a quadlet container of the router image, with
    // vansite copied under runtime/forwarder) is made anew as a service by the next change.
    let legacy = ".config/containers/systemd/vansite-default-listener-later.container";
    host.write_file(
        legacy,
        "[Unit]\nDescription=vansite: forwarder of listener later of namespace default to the \
         router\n\n[Container]\nImage=localhost/skupper-router-standin:test\nExec=forward\n",
    );
    host.write_file(".local/share/vansite/default/runtime/forwarder/vansite", "");
    // A connector nothing has used has no open connection (skupper-router's connectionsOpened
    // starts at 1, its egress-dispatch connection), and deleting it ends none.
    vansite_ok(&host, &["connector", "create", "unused", "8099"]);
    let left = host.ok(&[
        "sh",
        "-c",
        &format!("ls {legacy} .local/share/vansite/default/runtime/forwarder 2>&1; true"),
    ]);
    assert_eq!(left.matches("No such file").count(), 2, "{left}");
    let fragment = host.ok(&[
        "systemctl",
        "--user",
        "show",
        "-P",
        "FragmentPath",
        "vansite-default-listener-later.service",
    ]);
    assert!(
        fragment
            .trim()
            .ends_with(".config/systemd/user/vansite-default-listener-later.service"),
        "{fragment}"
    );
    assert_eq!(echo(&addr, b"after the move"), b"after the move");
    let unused: Value = serde_json::from_str(&vansite_ok(
        &host,
        &["connector", "status", "unused", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(unused[0]["activeConnections"], 0, "{unused:#}");
    let out = vansite_ok(&host, &["connector", "delete", "unused"]);
    assert!(!out.contains("ended"), "{out}");
    let table = vansite_ok(&host, &["status"]);
    assert!(
        table.contains("later") && table.contains("reachable"),
        "{table}"
    );

    // Deleting a listener in use ends its connections cleanly (EOF, not a reset).
    let mut open = TcpStream::connect(&addr).unwrap();
    open.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    open.read_exact(&mut byte).unwrap();
    let out = vansite_ok(&host, &["listener", "delete", "later"]);
    assert!(out.contains("ended 1 open connection"), "{out}");
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(open.read_to_end(&mut rest).unwrap(), 0, "a clean end");
    assert_no_forwarders(&host);

    // `debug events`: vansite's commands with how they ended, beside the router's lines and
    // the units' starts and stops;
    // `--follow` prints new ones as they happen.
    let events: Value =
        serde_json::from_str(&vansite_ok(&host, &["debug", "events", "-o", "json"])).unwrap();
    let texts: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    let position = |prefix: &str| {
        texts
            .iter()
            .position(|t| t.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event '{prefix}…' in {texts:#?}"))
    };
    assert!(position("init: done") < position("listener delete later: done"));
    // systemd's side: the router unit started before init said done.
    assert!(position("vansite-default-router.service started") < position("init: done"));
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "router"),
        "{texts:#?}"
    );
    let followed = std::thread::scope(|scope| {
        let follower = scope.spawn(|| {
            let args = [
                "timeout",
                "15",
                crate::support::VANSITE,
                "debug",
                "events",
                "--follow",
            ];
            String::from_utf8_lossy(&host.run(&[&args[..], &["-o", "json"]].concat()).stdout)
                .into_owned()
        });
        std::thread::sleep(Duration::from_secs(3));
        vansite_ok(&host, &["connector", "create", "followed", "9999"]);
        follower.join().unwrap()
    });
    let last = followed.lines().last().unwrap_or_default();
    let last: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {followed}"));
    assert!(
        last["text"]
            .as_str()
            .unwrap()
            .starts_with("connector create followed: done"),
        "{followed}"
    );

    // Deleting the site removes a listener's forwarder with it.
    vansite_ok(
        &host,
        &[
            "listener",
            "create",
            "last",
            "8086",
            "--routing-key",
            "echo",
        ],
    );
    vansite_ok(&host, &["delete"]);
    assert_no_forwarders(&host);
}

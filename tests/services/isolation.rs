//! A listener's clients reach only the router of the site's own user: another user's program
//! that takes the router's port while the router restarts gets no client, `status` says what
//! is wrong, and the listener serves again once the port is free, without a router restart.

use std::process::{Child, Command};
use std::time::Duration;

use crate::forwarded::{echo, serve_echo};
use crate::support::{running_site, vansite, vansite_ok, wait_reachable, Host};

/// Binds 127.0.0.1:PORT and writes "listening", then one line per connection with the number
/// of bytes it received, to LOG.
const SQUATTER: &str = r#"
import socket, sys
port, log = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", port))
s.listen(64)
open(log, "a").write("listening\n")
while True:
    c, _ = s.accept()
    c.settimeout(5)
    got = 0
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            got += len(data)
    except OSError:
        pass
    c.close()
    open(log, "a").write("connection %d\n" % got)
"#;

/// Another user (nobody) running the squatter in the host's network namespace.
struct Squatter {
    child: Child,
    log: std::path::PathBuf,
}

impl Squatter {
    fn start(host: &Host, port: u16) -> Squatter {
        let log = std::env::temp_dir().join(format!("vansite-squatter-{}", std::process::id()));
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", host.user()))
            .args([
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ])
            .args(["/usr/bin/python3", "-c", SQUATTER, &port.to_string()])
            .arg(&log)
            .spawn()
            .unwrap();
        let squatter = Squatter { child, log };
        host.wait_until("the squatter listening", Duration::from_secs(10), |_| {
            squatter.lines().iter().any(|l| l == "listening")
        });
        squatter
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The bytes each connection brought, in order.
    fn connections(&self) -> Vec<u64> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("connection ")?.parse().ok())
            .collect()
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn router_unit(host: &Host, verb: &str) {
    host.ok(&[
        "systemctl",
        "--user",
        verb,
        "vansite-default-router.service",
    ]);
}

/// The router's process: the same before and after means it was not restarted.
fn router_main_pid(host: &Host) -> String {
    host.ok(&[
        "systemctl",
        "--user",
        "show",
        "-p",
        "MainPID",
        "vansite-default-router.service",
    ])
}

#[test]
fn another_user_on_the_router_port_gets_no_client_and_the_listener_recovers() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let host = running_site("svq", false);
    serve_echo(&host, 9190);
    vansite_ok(&host, &["connector", "create", "echo", "9190"]);
    vansite_ok(&host, &["listener", "create", "echo", "8190"]);
    wait_reachable(&host, "echo");
    let listed: serde_json::Value = serde_json::from_str(&vansite_ok(
        &host,
        &["listener", "status", "echo", "-o", "json"],
    ))
    .unwrap();
    let router_port = listed[0]["routerPort"].as_u64().unwrap() as u16;
    let range = host.ok(&["cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
    let bounds: Vec<u16> = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    // Below the range or above it: the first port is taken from a random offset.
    assert!(
        !(bounds[0]..=bounds[1]).contains(&router_port),
        "router port {router_port} is in the ephemeral range {range}"
    );
    let addr = format!("{}:8190", host.addr());
    assert_eq!(echo(&addr, b"before"), b"before");

    // The router restarts, and another user takes its port in between.
    router_unit(&host, "stop");
    let squatter = Squatter::start(&host, router_port);
    router_unit(&host, "start");

    // Both status commands say the router cannot listen, naming the port.
    let port_text = format!("127.0.0.1:{router_port}");
    host.wait_until("listener status unhealthy", Duration::from_secs(60), |h| {
        let out = vansite(h, &["listener", "status", "echo", "-o", "json"]);
        out.status.code() == Some(3) && String::from_utf8_lossy(&out.stderr).contains(&port_text)
    });
    let out = vansite(&host, &["listener", "status", "echo", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = listed[0]["routerError"].as_str().unwrap_or_default();
    assert!(error.contains("Address already in use"), "{listed:#}");
    let status = vansite(&host, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{text}");
    assert!(text.contains(&port_text), "{text}");

    // A client now waits: the forwarder reaches the squatter's socket, sees it is not its
    // user's, and hands it nothing. Once the squatter is gone, the forwarder re-creates the
    // tcpListener and the waiting client is served, without a router restart.
    let waiting = std::thread::spawn({
        let addr = addr.clone();
        move || echo(&addr, b"during")
    });
    host.wait_until(
        "the forwarder refusing the squatter",
        Duration::from_secs(30),
        |_| !squatter.connections().is_empty(),
    );
    let log = host.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/logs/listener-echo.log",
    ]);
    assert!(
        log.contains(&format!(
            "port {router_port} is held by a socket of uid 65534"
        )),
        "{log}"
    );
    let router_pid = router_main_pid(&host);
    let seen = squatter.connections();
    squatter.stop();
    assert!(
        seen.iter().all(|bytes| *bytes == 0),
        "client bytes reached the squatter: {seen:?}"
    );
    assert_eq!(waiting.join().unwrap(), b"during");
    assert_eq!(echo(&addr, b"after"), b"after");
    vansite_ok(&host, &["status"]);
    vansite_ok(&host, &["listener", "status", "echo"]);
    let again = router_main_pid(&host);
    assert_eq!(router_pid, again, "the router was restarted");
}

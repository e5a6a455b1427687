//! The test host itself: two isolated hosts, each with a real systemd user manager on a real
//! session bus, the real quadlet generator and rootless podman. A quadlet `.container` running
//! the stand-in router image becomes a unit through the generator and is started over D-Bus;
//! tearing the hosts down leaves no process of theirs behind.

mod support;

use std::time::Duration;

use support::{standin_image_tar, Host, STANDIN_IMAGE};

const PROBE_QUADLET: &str = "\
[Unit]
Description=test host probe: the stand-in router under quadlet

[Container]
Image=localhost/skupper-router-standin:test
Pull=never
Network=host
UserNS=keep-id
Volume=%h/probe:/etc/skupper-router/config:z
Environment=QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json
Environment=QDROUTERD_CONF_TYPE=json

[Service]
Restart=on-failure

[Install]
WantedBy=default.target
";

/// A router whose tcpListener opens only because its address has a (local) tcpConnector:
/// the port accepting proves the container runs the stand-in on this configuration.
fn probe_config(port: u16) -> String {
    format!(
        r#"[
  ["router", {{"id": "probe", "mode": "interior"}}],
  ["tcpConnector", {{"name": "connector/probe", "host": "127.0.0.1", "port": "9", "address": "probe"}}],
  ["tcpListener", {{"name": "listener/probe", "host": "0.0.0.0", "port": "{port}", "address": "probe"}}]
]"#
    )
}

fn accepts_on(host: &Host, address: &str, port: u16) -> bool {
    let probe = format!("exec 3<>/dev/tcp/{address}/{port}");
    host.run(&["bash", "-c", &probe]).status.success()
}

#[test]
fn two_hosts_run_a_quadlet_container_started_over_dbus_and_leave_nothing() {
    if support::skip_without_test_host() {
        return;
    }
    let tar = standin_image_tar();
    let hosts = [Host::up("quad1", false), Host::up("quad2", true)];
    let users: Vec<String> = hosts.iter().map(Host::user).collect();
    for (index, host) in hosts.iter().enumerate() {
        let port = 18631 + index as u16;
        host.load_standin_image(&tar);
        host.write_file("probe/skrouterd.json", &probe_config(port));
        host.write_file(".config/containers/systemd/probe.container", PROBE_QUADLET);

        // The real generator turns the file into a unit when the manager reloads.
        host.manager_call("Reload", &[]);
        let unit = host.ok(&[
            "systemctl",
            "--user",
            "show",
            "-p",
            "LoadState,UnitFileState,SourcePath",
            "probe.service",
        ]);
        assert!(unit.contains("LoadState=loaded"), "{unit}");
        assert!(unit.contains("UnitFileState=generated"), "{unit}");
        assert!(
            unit.contains("SourcePath=") && unit.contains("probe.container"),
            "{unit}"
        );

        let job = host.manager_call("StartUnit", &["ss", "probe.service", "replace"]);
        assert!(job.contains("/org/freedesktop/systemd1/job/"), "{job}");
        host.wait_until("probe.service active", Duration::from_secs(60), |h| {
            h.run(&["systemctl", "--user", "is-active", "probe.service"])
                .stdout
                .starts_with(b"active")
        });
        let containers = host.ok(&["podman", "ps", "--format", "{{.Names}} {{.Image}}"]);
        assert!(
            containers.contains(&format!("systemd-probe {STANDIN_IMAGE}")),
            "{containers}"
        );

        // The router in the container honours its configuration, on the host's network.
        let address = host.addr();
        host.wait_until(
            "the probe's tcpListener accepting",
            Duration::from_secs(30),
            |h| accepts_on(h, &address, port),
        );
    }
    // A host with its own network namespace is reachable at its own address from outside,
    // and a test can cut it off and bring it back.
    let netns_host = (hosts[1].addr(), 18632);
    let reach = || {
        std::net::TcpStream::connect_timeout(
            &format!("{}:{}", netns_host.0, netns_host.1)
                .parse()
                .unwrap(),
            Duration::from_secs(2),
        )
    };
    assert!(
        reach().is_ok(),
        "host quad2's address {} not reachable",
        netns_host.0
    );
    hosts[1].cut();
    assert!(reach().is_err(), "quad2 still reachable after cut");
    hosts[1].heal();
    assert!(reach().is_ok(), "quad2 not reachable after heal");

    for host in &hosts {
        let output = host.down();
        assert!(output.status.success(), "{}", support::text(&output));
    }
    for user in &users {
        let left = Host::leftover_processes(user);
        assert!(
            left.is_empty(),
            "processes of {user} left after teardown:\n{left}"
        );
    }
}

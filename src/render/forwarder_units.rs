//! The units of one Listener's forwarder: `<name>.socket` holds the Listener's port, and
//! `<name>.service` runs `vansite forward` on the host network, as the user, in a systemd
//! sandbox that shows it only vansite's executable and the management client certificate
//! (`quadlet::Sandbox`). Starting the socket first and the service after (Requires/After) gives
//! the service the socket as `LISTEN_FDS`. Both are plain units: a new forwarder starts in
//! milliseconds, without podman, and without a systemd reload (`ops::apply`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::quadlet::{Install, Sandbox, Service, ServiceFile, SocketFile, Unit};
use crate::render::unit_names;

use super::CONNECTION_OPEN_FILES;

/// What a forwarder's units depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderSpec {
    pub namespace: String,
    pub listener: String,
    /// The Listener's own address, held by the socket unit.
    pub bind: SocketAddr,
    /// The router's loopback tcpListener.
    pub router: SocketAddr,
    /// Its name, the router's local management listener, and the directory of the local
    /// management client certificate: the forwarder re-opens the tcpListener when the router
    /// could not bind its port (`forward::repair`).
    pub tcp_listener: String,
    pub management: SocketAddr,
    pub management_credentials: PathBuf,
    /// How long a client waits for the router before a clean close.
    pub wait: Duration,
    /// The vansite executable the service runs (absolute).
    pub executable: PathBuf,
    pub log_file: PathBuf,
}

/// `vansite-<ns>-listener-<name>`: the stem of both unit files.
pub fn forwarder_unit_name(namespace: &str, listener: &str) -> String {
    super::unit_names::forwarder(namespace, listener)
}

/// Whether a socket unit's text is one [`forwarder_units`] rendered for this listener of this
/// namespace: its description says so, where the file name alone could be another
/// namespace's (`vansite-a-listener-b-listener-c` is listener `b-listener-c` of namespace `a`
/// or `c` of `a-listener-b`).
pub fn is_forwarder_socket(text: &str, namespace: &str, listener: &str) -> bool {
    let ending = format!(" of {}", what(namespace, listener));
    text.lines()
        .any(|line| line.starts_with("Description=") && line.ends_with(&ending))
}

fn what(namespace: &str, listener: &str) -> String {
    format!("listener {listener} of namespace {namespace}")
}

pub fn forwarder_units(spec: &ForwarderSpec) -> (SocketFile, ServiceFile) {
    let name = forwarder_unit_name(&spec.namespace, &spec.listener);
    let socket_unit = format!("{name}.socket");
    let socket = SocketFile {
        name: name.clone(),
        unit: Unit {
            description: Some(format!(
                "vansite: port {} of {}",
                spec.bind,
                what(&spec.namespace, &spec.listener)
            )),
            ..Unit::default()
        },
        listen_stream: vec![spec.bind.to_string()],
        install: Install {
            wanted_by: vec![unit_names::SOCKETS_TARGET.into()],
        },
    };
    let service = ServiceFile {
        unit: Unit {
            description: Some(format!(
                "vansite: forwarder of {} to the router",
                what(&spec.namespace, &spec.listener)
            )),
            requires: vec![socket_unit.clone()],
            after: vec![socket_unit],
            ..Unit::default()
        },
        exec_start: vec![
            spec.executable.display().to_string(),
            "forward".into(),
            "--router".into(),
            spec.router.to_string(),
            "--wait".into(),
            spec.wait.as_secs().to_string(),
            "--management".into(),
            spec.management.to_string(),
            "--management-credentials".into(),
            spec.management_credentials.display().to_string(),
            "--tcp-listener".into(),
            spec.tcp_listener.clone(),
        ],
        no_new_privileges: true,
        sandbox: Some(Sandbox {
            read_only_paths: vec![spec.executable.clone(), spec.management_credentials.clone()],
        }),
        service: Service {
            limit_nofile: Some(CONNECTION_OPEN_FILES),
            ..Service::restarting_with_log(&spec.log_file)
        },
        // Started with the user's manager, warm: the first client waits for nothing.
        install: Install {
            wanted_by: vec![unit_names::DEFAULT_TARGET.into()],
        },
        name,
    };
    (socket, service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespace: &str, listener: &str, bind: &str) -> ForwarderSpec {
        ForwarderSpec {
            namespace: namespace.into(),
            listener: listener.into(),
            bind: bind.parse().unwrap(),
            router: "127.0.0.1:41000".parse().unwrap(),
            tcp_listener: format!("listener/{listener}"),
            management: "127.0.0.1:5671".parse().unwrap(),
            management_credentials: "/opt/certs/skupper-local-client".into(),
            wait: Duration::from_secs(30),
            executable: "/usr/bin/vansite".into(),
            log_file: format!("/tmp/listener-{listener}.log").into(),
        }
    }

    // The units as a whole: golden files in tests/quadlet_generator.rs, systemd itself in the
    // services tests.
    #[test]
    fn an_ipv6_address_is_held_in_brackets() {
        let socket = forwarder_units(&spec("default", "web", "[::]:8080"))
            .0
            .render()
            .unwrap();
        assert!(socket.contains("ListenStream=[::]:8080\n"), "{socket}");
    }

    #[test]
    fn a_socket_tells_which_namespace_it_serves() {
        let (socket, service) = forwarder_units(&spec("a-listener-b", "c", "0.0.0.0:8080"));
        assert_eq!(socket.file_name(), "vansite-a-listener-b-listener-c.socket");
        let text = socket.render().unwrap();
        assert!(is_forwarder_socket(&text, "a-listener-b", "c"), "{text}");
        assert!(!is_forwarder_socket(&text, "a", "b-listener-c"), "{text}");
        assert!(!is_forwarder_socket(
            &service.render().unwrap(),
            "a-listener-b",
            "c"
        ));
    }
}

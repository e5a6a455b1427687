//! The units of one Listener's forwarder: `<name>.socket`, a plain systemd unit that holds the
//! Listener's port, and `<name>.container`, a quadlet running `vansite forward` (the bundle)
//! inside the router image, on the host network, as the user. Starting the socket first and
//! the container after (Requires/After) gives the container the socket as `LISTEN_FDS`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::quadlet::{Container, Install, QuadletFile, Service, SocketFile, Unit, Volume};

use super::{CONNECTION_OPEN_FILES, SERVICE_ULIMITS};
use crate::forward::bundle::MOUNT_POINT;

/// Label naming the Listener a forwarder container serves.
pub const LISTENER_LABEL: &str = "io.vansite.listener";
/// Label naming the site's namespace (the router container has it too).
pub const NAMESPACE_LABEL: &str = "io.vansite.namespace";

/// Where the management client certificate appears inside the forwarder container.
const MANAGEMENT_CREDENTIALS: &str = "/opt/vansite-management";

/// What a forwarder's units depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderSpec {
    pub namespace: String,
    pub listener: String,
    /// The Listener's own address, held by the socket unit.
    pub bind: SocketAddr,
    /// The router's loopback tcpListener.
    pub router: SocketAddr,
    /// Its name, the router's local management listener, and the host directory of the local
    /// management client certificate: the forwarder re-opens the tcpListener when the router
    /// could not bind its port (`forward::repair`).
    pub tcp_listener: String,
    pub management: SocketAddr,
    pub management_credentials: PathBuf,
    /// How long a client waits for the router before a clean close.
    pub wait: Duration,
    /// The site's router image: already pulled, so starting a forwarder pulls nothing.
    pub image: String,
    pub uid: u32,
    pub gid: u32,
    /// Host directory of the bundle (`bundle::prepare`), and the command that runs it.
    pub bundle_dir: PathBuf,
    pub command: Vec<String>,
    pub log_file: PathBuf,
}

/// `vansite-<ns>-listener-<name>`: the stem of both unit files, and the container's name.
pub fn forwarder_unit_name(namespace: &str, listener: &str) -> String {
    super::unit_names::forwarder(namespace, listener)
}

pub fn forwarder_units(spec: &ForwarderSpec) -> (SocketFile, QuadletFile) {
    let name = forwarder_unit_name(&spec.namespace, &spec.listener);
    let socket_unit = format!("{name}.socket");
    let what = format!("listener {} of namespace {}", spec.listener, spec.namespace);
    let socket = SocketFile {
        name: name.clone(),
        unit: Unit {
            description: Some(format!("vansite: port {} of {what}", spec.bind)),
            ..Unit::default()
        },
        listen_stream: vec![spec.bind.to_string()],
        install: Install {
            wanted_by: vec!["sockets.target".into()],
        },
    };
    let (entrypoint, arguments) = spec
        .command
        .split_first()
        .expect("the bundle's command names an executable");
    let mut exec = arguments.to_vec();
    exec.extend([
        "forward".to_string(),
        "--router".into(),
        spec.router.to_string(),
        "--wait".into(),
        spec.wait.as_secs().to_string(),
        "--management".into(),
        spec.management.to_string(),
        "--management-credentials".into(),
        MANAGEMENT_CREDENTIALS.into(),
        "--tcp-listener".into(),
        spec.tcp_listener.clone(),
    ]);
    let container = QuadletFile {
        unit: Unit {
            description: Some(format!("vansite: forwarder of {what} to the router")),
            requires: vec![socket_unit.clone()],
            after: vec![socket_unit],
            ..Unit::default()
        },
        container: Container {
            volumes: vec![
                Volume {
                    host_path: spec.bundle_dir.clone(),
                    container_path: MOUNT_POINT.into(),
                    options: vec!["ro".into(), "z".into()],
                },
                Volume {
                    host_path: spec.management_credentials.clone(),
                    container_path: MANAGEMENT_CREDENTIALS.into(),
                    options: vec!["ro".into(), "z".into()],
                },
            ],
            labels: vec![
                (NAMESPACE_LABEL.into(), spec.namespace.clone()),
                (LISTENER_LABEL.into(), spec.listener.clone()),
            ],
            // Whatever the image's own entry point, the forwarder runs alone.
            podman_args: vec![format!("--entrypoint={entrypoint}"), SERVICE_ULIMITS.into()],
            exec,
            ..Container::on_host_network_as(&name, &spec.image, spec.uid, spec.gid)
        },
        service: Service {
            limit_nofile: Some(CONNECTION_OPEN_FILES),
            ..Service::restarting_with_log(&spec.log_file)
        },
        install: Install {
            wanted_by: vec!["default.target".into()],
        },
        name,
    };
    (socket, container)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The units as a whole: golden files and the real generator in tests/quadlet_generator.rs.
    #[test]
    fn an_ipv6_address_is_held_in_brackets() {
        let spec = ForwarderSpec {
            namespace: "default".into(),
            listener: "web".into(),
            bind: "[::]:8080".parse().unwrap(),
            router: "127.0.0.1:41000".parse().unwrap(),
            tcp_listener: "listener/web".into(),
            management: "127.0.0.1:5671".parse().unwrap(),
            management_credentials: "/opt/certs/skupper-local-client".into(),
            wait: Duration::from_secs(30),
            image: "quay.io/skupper/skupper-router:3.5.1".into(),
            uid: 1000,
            gid: 1000,
            bundle_dir: "/opt/bundle".into(),
            command: vec!["/opt/vansite/vansite".into()],
            log_file: "/tmp/listener-web.log".into(),
        };
        let socket = forwarder_units(&spec).0.render().unwrap();
        assert!(socket.contains("ListenStream=[::]:8080\n"), "{socket}");
    }
}

//! The grant server's systemd user units: `vansite-<ns>-grants.socket` (ListenStream=<port>,
//! enabled in sockets.target so it listens from boot when the user lingers) and
//! `vansite-<ns>-grants.service` (the vansite binary's hidden `grant-server` command, started
//! by the socket on the first connection). Plain unit files in `$XDG_CONFIG_HOME/systemd/user/`,
//! written with the same unit syntax as the quadlets.

use std::path::PathBuf;

use crate::quadlet::{Install, QuadletError, ServiceFile, SocketFile, Unit};

/// `vansite-<ns>-grants`: the stem of both units.
pub fn grant_unit_name(namespace: &str) -> String {
    super::unit_names::grant_server(namespace)
}

pub fn socket_unit(namespace: &str) -> String {
    format!("{}.socket", grant_unit_name(namespace))
}

/// Both of the grant server's units.
pub fn unit_names(namespace: &str) -> [String; 2] {
    [socket_unit(namespace), service_unit(namespace)]
}

pub fn service_unit(namespace: &str) -> String {
    format!("{}.service", grant_unit_name(namespace))
}

/// What the units are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantUnitSpec {
    pub namespace: String,
    pub site_name: String,
    pub port: u16,
    /// The vansite binary the service runs (absolute).
    pub executable: PathBuf,
    /// The site directory (absolute), passed to the server so it needs no XDG environment.
    pub site_dir: PathBuf,
}

/// The `.socket` unit's text: the port, enabled in sockets.target.
pub fn render_socket(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    SocketFile {
        name: grant_unit_name(&spec.namespace),
        unit: Unit {
            description: Some(format!(
                "vansite: grant server socket of site {} (namespace {})",
                spec.site_name, spec.namespace
            )),
            ..Unit::default()
        },
        listen_stream: vec![spec.port.to_string()],
        install: Install {
            wanted_by: vec!["sockets.target".into()],
        },
    }
    .render()
}

/// The `.service` unit's text: vansite's hidden `grant-server` command for this site.
pub fn render_service(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    let socket = vec![socket_unit(&spec.namespace)];
    ServiceFile {
        name: grant_unit_name(&spec.namespace),
        unit: Unit {
            description: Some(format!(
                "vansite: grant server of site {} (namespace {})",
                spec.site_name, spec.namespace
            )),
            after: socket.clone(),
            requires: socket,
            ..Unit::default()
        },
        exec_start: vec![
            spec.executable.display().to_string(),
            "-n".into(),
            spec.namespace.clone(),
            "-v".into(),
            "grant-server".into(),
            "--site-dir".into(),
            spec.site_dir.display().to_string(),
        ],
        no_new_privileges: true,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_name_the_binary_site_dir_and_port() {
        let spec = GrantUnitSpec {
            namespace: "west".into(),
            site_name: "west".into(),
            port: 9090,
            executable: "/opt/van site/vansite".into(),
            site_dir: "/home/u/.local/share/vansite/west".into(),
        };
        assert_eq!(
            render_socket(&spec).unwrap(),
            "[Unit]\nDescription=vansite: grant server socket of site west (namespace west)\n\n\
             [Socket]\nListenStream=9090\n\n[Install]\nWantedBy=sockets.target\n"
        );
        let service = render_service(&spec).unwrap();
        assert!(
            service.contains(
                "After=vansite-west-grants.socket\nRequires=vansite-west-grants.socket\n"
            ),
            "{service}"
        );
        assert!(
            service.contains(
                "ExecStart=\"/opt/van site/vansite\" -n west -v grant-server --site-dir /home/u/.local/share/vansite/west\n"
            ),
            "{service}"
        );
    }
}

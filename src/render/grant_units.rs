//! The grant server's systemd user units: `vansite-<ns>-grants.socket` (ListenStream=<port>,
//! enabled in sockets.target so it listens from boot when the user lingers) and
//! `vansite-<ns>-grants.service` (the vansite binary's hidden `grant-server` command, started
//! by the socket on the first connection), as `activated_units` renders such pairs.

use std::path::PathBuf;

use super::activated_units::ActivatedSpec;
use crate::quadlet::QuadletError;

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

/// The grant server's descriptor limit (`LimitNOFILE=`): one per client connection, and it
/// sizes its connection caps from the limit it gets (`grants::admission`).
pub const GRANT_SERVER_DESCRIPTORS: u64 = 8192;

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
    /// Its log (`runtime/logs/grant-server.log`).
    pub log_file: PathBuf,
}

impl GrantUnitSpec {
    fn activated(&self) -> ActivatedSpec {
        ActivatedSpec {
            stem: grant_unit_name(&self.namespace),
            role: "grant server",
            command: "grant-server",
            listen: self.port.to_string(),
            namespace: self.namespace.clone(),
            site_name: self.site_name.clone(),
            executable: self.executable.clone(),
            site_dir: self.site_dir.clone(),
            log_file: self.log_file.clone(),
            limit_nofile: Some(GRANT_SERVER_DESCRIPTORS),
        }
    }
}

/// The `.socket` unit's text: the port (every address), enabled in sockets.target.
pub fn render_socket(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    spec.activated().render_socket()
}

/// The `.service` unit's text: vansite's hidden `grant-server` command for this site.
pub fn render_service(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    spec.activated().render_service()
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
            log_file: "/home/u/.local/share/vansite/west/runtime/logs/grant-server.log".into(),
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
        // Its log beside the router's, and room for thousands of clients.
        assert!(
            service.contains(
                "StandardError=append:/home/u/.local/share/vansite/west/runtime/logs/grant-server.log\n\
                 LimitNOFILE=8192\n"
            ),
            "{service}"
        );
    }
}

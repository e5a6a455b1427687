//! The web console's systemd user units: `vansite-<ns>-console.socket` listens on
//! 127.0.0.1:<port> only (the console is for this host's user), and
//! `vansite-<ns>-console.service` runs the hidden `console-server` command on the first
//! connection, as `activated_units` renders such pairs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::activated_units::ActivatedSpec;
use super::unit_names;
use crate::quadlet::QuadletError;

/// The only address the console listens on.
pub const CONSOLE_ADDRESS: Ipv4Addr = Ipv4Addr::LOCALHOST;

pub fn socket_unit(namespace: &str) -> String {
    format!("{}.socket", unit_names::console(namespace))
}

pub fn service_unit(namespace: &str) -> String {
    format!("{}.service", unit_names::console(namespace))
}

/// What the units are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUnitSpec {
    pub namespace: String,
    pub site_name: String,
    pub port: u16,
    /// The vansite binary the service runs (absolute).
    pub executable: PathBuf,
    /// The site directory (absolute).
    pub site_dir: PathBuf,
    /// Its log (`runtime/logs/console.log`).
    pub log_file: PathBuf,
}

impl ConsoleUnitSpec {
    fn activated(&self) -> ActivatedSpec {
        ActivatedSpec {
            stem: unit_names::console(&self.namespace),
            role: "web console",
            command: "console-server",
            listen: format!("{CONSOLE_ADDRESS}:{}", self.port),
            namespace: self.namespace.clone(),
            site_name: self.site_name.clone(),
            executable: self.executable.clone(),
            site_dir: self.site_dir.clone(),
            log_file: self.log_file.clone(),
            limit_nofile: None,
        }
    }

    pub fn render_socket(&self) -> Result<String, QuadletError> {
        self.activated().render_socket()
    }

    pub fn render_service(&self) -> Result<String, QuadletError> {
        self.activated().render_service()
    }
}

/// The port a socket unit rendered by [`ConsoleUnitSpec::render_socket`] listens on: the
/// console keeps its port when `vansite console` runs again without `--port`.
pub fn port_of(socket_unit_text: &str) -> Option<u16> {
    let prefix = format!("ListenStream={CONSOLE_ADDRESS}:");
    socket_unit_text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str, rendered: &str) {
        crate::golden::assert_golden(&format!("tests/golden/console-units/{name}"), rendered);
    }

    /// The units as `tests/golden/console-units/` holds them (`UPDATE_GOLDEN=1` rewrites):
    /// loopback only, the hidden command with the site directory.
    #[test]
    fn units_listen_on_loopback_and_run_the_console_server() {
        let spec = ConsoleUnitSpec {
            namespace: "west".into(),
            site_name: "west".into(),
            port: 8010,
            executable: "/opt/van site/vansite".into(),
            site_dir: "/home/u/.local/share/vansite/west".into(),
            log_file: "/home/u/.local/share/vansite/west/runtime/logs/console.log".into(),
        };
        let socket = spec.render_socket().unwrap();
        golden("vansite-west-console.socket", &socket);
        golden(
            "vansite-west-console.service",
            &spec.render_service().unwrap(),
        );
        assert_eq!(socket_unit("west"), "vansite-west-console.socket");
        assert_eq!(service_unit("west"), "vansite-west-console.service");
        assert_eq!(port_of(&socket), Some(8010));
        assert_eq!(port_of("[Socket]\nListenStream=8010\n"), None);
    }
}

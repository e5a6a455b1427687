//! The two plain systemd user units of a vansite process started by its socket (the grant
//! server, the console): `<stem>.socket` holds the port (enabled in sockets.target, so it
//! listens from boot when the user lingers) and `<stem>.service` runs one of the vansite
//! binary's hidden commands on the first connection. Written to `$XDG_CONFIG_HOME/systemd/user/`
//! with the same unit syntax as the quadlets.

use std::path::PathBuf;

use crate::quadlet::{
    Install, QuadletError, Service, ServiceFile, SocketFile, StandardStream, Unit,
};
use crate::render::unit_names;

/// What both units are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivatedSpec {
    /// `vansite-<ns>-<part>`: the name of both units.
    pub stem: String,
    /// What the process is, for the descriptions ("grant server", "console").
    pub role: &'static str,
    /// The hidden command the service runs (`grant-server`, `console-server`).
    pub command: &'static str,
    /// `ListenStream=`: a port (every address) or `ADDRESS:PORT`.
    pub listen: String,
    pub namespace: String,
    pub site_name: String,
    /// The vansite binary the service runs (absolute).
    pub executable: PathBuf,
    /// The site directory (absolute), passed to the process so it needs no XDG environment.
    pub site_dir: PathBuf,
    /// Where its output goes (appended), as the router's: readable without a journal.
    pub log_file: PathBuf,
    /// `LimitNOFILE=` for a process that holds a descriptor per client.
    pub limit_nofile: Option<u64>,
}

impl ActivatedSpec {
    pub fn socket_unit(&self) -> String {
        format!("{}.socket", self.stem)
    }

    /// The `.socket` unit's text: the listening address, enabled in sockets.target.
    pub fn render_socket(&self) -> Result<String, QuadletError> {
        SocketFile {
            name: self.stem.clone(),
            unit: Unit {
                description: Some(format!(
                    "vansite: {} socket of site {} (namespace {})",
                    self.role, self.site_name, self.namespace
                )),
                ..Unit::default()
            },
            listen_stream: vec![self.listen.clone()],
            install: Install {
                wanted_by: vec![unit_names::SOCKETS_TARGET.into()],
            },
        }
        .render()
    }

    /// The `.service` unit's text: vansite's hidden command for this site.
    pub fn render_service(&self) -> Result<String, QuadletError> {
        let socket = vec![self.socket_unit()];
        ServiceFile {
            name: self.stem.clone(),
            unit: Unit {
                description: Some(format!(
                    "vansite: {} of site {} (namespace {})",
                    self.role, self.site_name, self.namespace
                )),
                after: socket.clone(),
                requires: socket,
                ..Unit::default()
            },
            exec_start: vec![
                self.executable.display().to_string(),
                "-n".into(),
                self.namespace.clone(),
                "-v".into(),
                self.command.into(),
                "--site-dir".into(),
                self.site_dir.display().to_string(),
            ],
            no_new_privileges: true,
            sandbox: None,
            service: Service {
                standard_output: Some(StandardStream::Append(self.log_file.clone())),
                standard_error: Some(StandardStream::Append(self.log_file.clone())),
                limit_nofile: self.limit_nofile,
                ..Service::default()
            },
            install: Install::default(),
        }
        .render()
    }
}

//! The grant server's systemd user units: `vansite-<ns>-grants.socket` (ListenStream=<port>,
//! enabled in sockets.target so it listens from boot when the user lingers) and
//! `vansite-<ns>-grants.service` (the vansite binary's hidden `grant-server` command, started
//! by the socket on the first connection). Plain unit files in `$XDG_CONFIG_HOME/systemd/user/`,
//! written with the same unit syntax as the quadlets.

use std::path::PathBuf;

use crate::quadlet::syntax::{self, Target};
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

/// The `.socket` unit's text.
pub fn render_socket(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    let mut out = String::new();
    let description = format!(
        "vansite: grant server socket of site {} (namespace {})",
        spec.site_name, spec.namespace
    );
    syntax::write_section(
        &mut out,
        "Unit",
        &[(
            "Description",
            syntax::single("Description", &description, Target::Setting)?,
        )],
    );
    syntax::write_section(
        &mut out,
        "Socket",
        &[("ListenStream", spec.port.to_string())],
    );
    syntax::write_section(
        &mut out,
        "Install",
        &[("WantedBy", "sockets.target".to_string())],
    );
    Ok(out)
}

/// The `.service` unit's text.
pub fn render_service(spec: &GrantUnitSpec) -> Result<String, QuadletError> {
    let mut out = String::new();
    let description = format!(
        "vansite: grant server of site {} (namespace {})",
        spec.site_name, spec.namespace
    );
    let socket = vec![socket_unit(&spec.namespace)];
    syntax::write_section(
        &mut out,
        "Unit",
        &[
            (
                "Description",
                syntax::single("Description", &description, Target::Setting)?,
            ),
            ("Requires", syntax::unit_names("Requires", &socket)?),
            ("After", syntax::unit_names("After", &socket)?),
        ],
    );
    let command = [
        spec.executable.display().to_string(),
        "-n".into(),
        spec.namespace.clone(),
        // Each redemption and refusal logged (never a code) in the journal.
        "-v".into(),
        "grant-server".into(),
        "--site-dir".into(),
        spec.site_dir.display().to_string(),
    ];
    syntax::write_section(
        &mut out,
        "Service",
        &[
            (
                "ExecStart",
                syntax::words("ExecStart", &command, Target::CommandLine)?,
            ),
            ("NoNewPrivileges", "yes".into()),
        ],
    );
    Ok(out)
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
                "Requires=vansite-west-grants.socket\nAfter=vansite-west-grants.socket\n"
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

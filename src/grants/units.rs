//! The grant server's systemd user units: `vansite-<ns>-grants.socket` (ListenStream=<port>,
//! enabled in sockets.target so it listens from boot when the user lingers) and
//! `vansite-<ns>-grants.service` (the vansite binary's hidden `grant-server` command, started
//! by the socket on the first connection). Plain unit files in `$XDG_CONFIG_HOME/systemd/user/`,
//! written with the same unit syntax as the quadlets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::platform::systemd::{ActiveState, JobResult, LoadState, UserManager};
use crate::quadlet::syntax::{self, Target};
use crate::store::{files, Paths};

use super::GrantError;

/// Bound on systemd jobs for the grant units (they start in milliseconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// `vansite-<ns>-grants`: the stem of both units.
pub fn grant_unit_name(namespace: &str) -> String {
    format!("vansite-{namespace}-grants")
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
pub fn render_socket(spec: &GrantUnitSpec) -> Result<String, Error> {
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
pub fn render_service(spec: &GrantUnitSpec) -> Result<String, Error> {
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

/// Writes the units (reloading systemd when they changed) and makes sure the socket listens.
/// `restart_server`: stop a running server so the next connection starts one that reads the
/// current certificate. Returns the socket unit's name.
pub async fn ensure_running(
    manager: &UserManager,
    paths: &Paths,
    spec: &GrantUnitSpec,
    restart_server: bool,
    progress: &dyn Fn(&str),
) -> Result<String, Error> {
    let dir = paths.systemd_user_dir();
    let socket = socket_unit(&spec.namespace);
    let service = service_unit(&spec.namespace);
    files::create_dir(&dir, 0o755).map_err(Error::file("cannot create", &dir))?;
    let mut changed = false;
    for (unit, text) in [
        (&socket, render_socket(spec)?),
        (&service, render_service(spec)?),
    ] {
        let path = dir.join(unit);
        changed |= files::write_atomic(&path, text.as_bytes(), files::PUBLIC)
            .map_err(Error::file("cannot write", &path))?;
    }
    enable_socket(&dir, &socket)?;
    if changed {
        progress("reloading systemd (grant server units)");
        manager.reload().await?;
    }
    let server_state = manager.unit_state(&service).await?;
    if (changed || restart_server) && server_state.active_state != ActiveState::Inactive {
        progress(&format!(
            "stopping {service} (it starts again on the next connection)"
        ));
        manager.stop(&service, JOB_TIMEOUT).await?;
    }
    let socket_state = manager.unit_state(&socket).await?;
    let result = if changed && socket_state.active_state == ActiveState::Active {
        progress(&format!("restarting {socket}"));
        manager.restart(&socket, JOB_TIMEOUT).await?
    } else {
        progress(&format!("starting {socket}"));
        manager.start(&socket, JOB_TIMEOUT).await?
    };
    let state = manager.unit_state(&socket).await?;
    if result != JobResult::Done || state.active_state != ActiveState::Active {
        return Err(GrantError::SocketFailed {
            unit: socket,
            port: spec.port,
            state: format!("{state} (job {result:?})"),
        }
        .into());
    }
    Ok(socket)
}

/// What `systemctl --user enable` does for a unit with `WantedBy=sockets.target`.
fn enable_socket(dir: &Path, socket: &str) -> Result<(), Error> {
    let wants = dir.join("sockets.target.wants");
    files::create_dir(&wants, 0o755).map_err(Error::file("cannot create", &wants))?;
    let link = wants.join(socket);
    if std::fs::read_link(&link).is_err() {
        files::remove_if_present(&link).map_err(Error::file("cannot replace", &link))?;
        std::os::unix::fs::symlink(Path::new("..").join(socket), &link)
            .map_err(Error::file("cannot create", &link))?;
    }
    Ok(())
}

/// Stops the grant units and removes their files (`vansite delete`). Returns what was removed.
pub async fn remove(
    manager: &UserManager,
    paths: &Paths,
    namespace: &str,
) -> Result<Vec<String>, Error> {
    let dir = paths.systemd_user_dir();
    let mut removed = Vec::new();
    for unit in [socket_unit(namespace), service_unit(namespace)] {
        let state = manager.unit_state(&unit).await?;
        if state.load_state == LoadState::Loaded && state.active_state != ActiveState::Inactive {
            manager.stop(&unit, JOB_TIMEOUT).await?;
            removed.push(format!("unit {unit} (stopped)"));
        }
    }
    let socket = socket_unit(namespace);
    let mut files_removed = false;
    for path in [
        dir.join("sockets.target.wants").join(&socket),
        dir.join(&socket),
        dir.join(service_unit(namespace)),
    ] {
        if files::remove_if_present(&path).map_err(Error::file("cannot remove", &path))? {
            removed.push(path.display().to_string());
            files_removed = true;
        }
    }
    if files_removed {
        manager.reload().await?;
    }
    Ok(removed)
}

/// The grant server's units as `vansite status` shows them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantServerStatus {
    pub socket: String,
    /// `active/listening` (or `active/running` while a server runs) when it accepts redemptions.
    pub socket_state: String,
    /// `inactive/dead` between connections is normal: the socket starts it.
    pub service_state: String,
    pub port: Option<u16>,
}

/// None when this site never issued a token (no socket unit file).
pub async fn status(
    manager: &UserManager,
    paths: &Paths,
    namespace: &str,
    port: Option<u16>,
) -> Result<Option<GrantServerStatus>, Error> {
    let socket = socket_unit(namespace);
    if !paths.systemd_user_dir().join(&socket).exists() {
        return Ok(None);
    }
    let words = |state: crate::platform::systemd::UnitState| {
        let active = match state.active_state {
            ActiveState::Other(word) => word,
            known => format!("{known:?}").to_lowercase(),
        };
        format!("{active}/{}", state.sub_state)
    };
    let socket_state = words(manager.unit_state(&socket).await?);
    let service_state = words(manager.unit_state(&service_unit(namespace)).await?);
    Ok(Some(GrantServerStatus {
        socket,
        socket_state,
        service_state,
        port,
    }))
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

//! The grant server's units on the host: written, enabled in sockets.target and started
//! (`ensure_running`, for `token issue`), removed (`remove`, for `delete`), and their state
//! (`status`). The units themselves are rendered by `render::grant_units`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::grants::GrantError;
use crate::platform::systemd::{ActiveState, JobResult, LoadState, UserManager};
use crate::render::grant_units::{
    render_service, render_socket, service_unit, socket_unit, GrantUnitSpec,
};
use crate::store::{files, Paths};

/// Bound on systemd jobs for the grant units (they start in milliseconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

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

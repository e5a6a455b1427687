//! The grant server's units on the host, beside the apply (which writes and starts them from
//! the plan): removed (`remove`, when the site has no grant server or is deleted), and their
//! state (`status`). The units themselves are rendered by `render::grant_units`.

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::platform::systemd::{ActiveState, LoadState, UserManager};
use crate::render::grant_units::{service_unit, socket_unit};
use crate::store::{files, Paths};

/// Bound on systemd jobs for the grant units (they start in milliseconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

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

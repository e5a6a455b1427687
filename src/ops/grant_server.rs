//! The grant server's units on the host, beside the apply (which writes and starts them from
//! the plan): removed (`remove`, when the site has no grant server or is deleted), and their
//! state (`status`). The units themselves are rendered by `render::grant_units`.

use serde::Serialize;

use crate::error::Error;
use crate::platform::systemd::{ActiveState, UserManager};
use crate::render::grant_units::{grant_unit_name, service_unit, socket_unit};
use crate::store::Paths;

/// Stops the grant units and removes their files (`vansite delete`). Returns what was removed.
pub async fn remove(
    manager: &UserManager,
    paths: &Paths,
    namespace: &str,
) -> Result<Vec<String>, Error> {
    super::activated::remove(manager, paths, &grant_unit_name(namespace)).await
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

//! The grant server's units on the host, beside the apply (which writes and starts them from
//! the plan): removed (`remove`, when the site has no grant server or is deleted), and their
//! state (`status`). The units themselves are rendered by `render::grant_units`.

use serde::Serialize;

use crate::error::Error;
use crate::platform::systemd::{ActiveState, UnitState, UserManager};
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
    /// Tokens that can still be redeemed at this port.
    pub redeemable_tokens: usize,
    /// Why tokens cannot be redeemed, and the fix; makes the site unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// None when this site never issued a token (no socket unit file). `redeemable_tokens`: the
/// grants whose tokens name this port and can still be redeemed.
pub async fn status(
    manager: &UserManager,
    paths: &Paths,
    namespace: &str,
    port: Option<u16>,
    redeemable_tokens: usize,
) -> Result<Option<GrantServerStatus>, Error> {
    let socket = socket_unit(namespace);
    if !paths.systemd_user_dir().join(&socket).exists() {
        return Ok(None);
    }
    let words = |state: &UnitState| {
        let active = match &state.active_state {
            ActiveState::Other(word) => word.clone(),
            known => format!("{known:?}").to_lowercase(),
        };
        format!("{active}/{}", state.sub_state)
    };
    let service = service_unit(namespace);
    let (socket_state, service_state) =
        tokio::try_join!(manager.unit_state(&socket), manager.unit_state(&service))?;
    let service_state = words(&service_state);
    Ok(Some(GrantServerStatus {
        problem: socket_problem(
            &socket,
            (&socket_state.active_state, &socket_state.sub_state),
            port,
            redeemable_tokens,
        ),
        socket_state: words(&socket_state),
        socket,
        service_state,
        port,
        redeemable_tokens,
    }))
}

/// Why the grant server's socket cannot take redemptions, with the fix: failed, or not
/// listening while tokens wait to be redeemed.
fn socket_problem(
    socket: &str,
    (active_state, sub_state): (&ActiveState, &str),
    port: Option<u16>,
    redeemable_tokens: usize,
) -> Option<String> {
    let port = port.map_or("its port".to_string(), |p| format!("port {p}"));
    match active_state {
        ActiveState::Active | ActiveState::Activating | ActiveState::Reloading => None,
        ActiveState::Failed => Some(format!(
            "grant server socket {socket} failed ({sub_state}), so no token issued for {port} can be \
             redeemed: `systemctl --user reset-failed {socket} && systemctl --user restart \
             {socket}` (if it fails again, another program holds {port}: `ss -ltnp` shows which)"
        )),
        _ if redeemable_tokens > 0 => Some(format!(
            "grant server socket {socket} is not listening ({sub_state}) while {redeemable_tokens} \
             token(s) for {port} wait to be redeemed: `systemctl --user restart {socket}`"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKET: &str = "vansite-west-grants.socket";

    #[test]
    fn a_failed_socket_is_a_problem_and_an_idle_one_only_while_tokens_wait() {
        let failed = socket_problem(SOCKET, (&ActiveState::Failed, "failed"), Some(9090), 0)
            .expect("failed is a problem");
        assert!(
            failed.contains("port 9090")
                && failed.contains("systemctl --user reset-failed vansite-west-grants.socket"),
            "{failed}"
        );
        let stopped = (&ActiveState::Inactive, "dead");
        assert_eq!(socket_problem(SOCKET, stopped, Some(9090), 0), None);
        let waiting = socket_problem(SOCKET, stopped, Some(9090), 2).expect("tokens wait");
        assert!(
            waiting.contains("2 token(s)")
                && waiting.contains("`systemctl --user restart vansite-west-grants.socket`"),
            "{waiting}"
        );
        let listening = (&ActiveState::Active, "listening");
        assert_eq!(socket_problem(SOCKET, listening, Some(9090), 2), None);
    }
}

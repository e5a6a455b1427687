//! The units of vansite's socket-activated processes (the grant server, the console) on the
//! host: made to listen, and removed. Rendered by `render::activated_units`.

use std::time::Duration;

use crate::error::Error;
use crate::platform::activation::SocketFailed;
use crate::platform::systemd::{ActiveState, JobResult, LoadState, UserManager};
use crate::render::unit_names;
use crate::store::{files, Paths};

/// Bound on systemd jobs for these units (they start in milliseconds).
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// A socket-activated server's units, as [`start_socket`] needs them.
pub struct ServerUnits<'a> {
    /// The server, in words ("grant server", "console").
    pub role: &'static str,
    pub socket: &'a str,
    pub service: &'a str,
    pub port: u16,
    /// How to choose another port, when this one is taken.
    pub fix: &'static str,
}

/// Makes the socket listen. `renew`: the units (or what the server reads at start) changed,
/// so a running service stops (the next connection starts one that reads them) and the
/// socket restarts (it may listen elsewhere now).
pub async fn start_socket(
    manager: &UserManager,
    units: &ServerUnits<'_>,
    renew: bool,
) -> Result<(), Error> {
    if renew {
        stop_if_running(manager, units.service).await?;
    }
    let state = manager.unit_state(units.socket).await?;
    let running = state.active_state == ActiveState::Active;
    let result = match (running, renew) {
        (true, false) => return Ok(()),
        (true, true) => manager.restart(units.socket, JOB_TIMEOUT).await?,
        (false, _) => manager.start(units.socket, JOB_TIMEOUT).await?,
    };
    let state = manager.unit_state(units.socket).await?;
    if result != JobResult::Done || state.active_state != ActiveState::Active {
        return Err(SocketFailed {
            role: units.role,
            unit: units.socket.to_string(),
            port: units.port,
            state: format!("{state} (job {result:?})"),
            fix: units.fix,
        }
        .into());
    }
    Ok(())
}

/// Makes the timer wait for its next run; `renew`: its units changed, so it starts again.
pub async fn start_timer(manager: &UserManager, timer: &str, renew: bool) -> Result<(), Error> {
    let state = manager.unit_state(timer).await?;
    let result = match (state.active_state == ActiveState::Active, renew) {
        (true, false) => return Ok(()),
        (true, true) => manager.restart(timer, JOB_TIMEOUT).await?,
        (false, _) => manager.start(timer, JOB_TIMEOUT).await?,
    };
    if result != JobResult::Done {
        let state = manager.unit_state(timer).await?;
        return Err(Error::UnitFailed {
            unit: timer.to_string(),
            state: format!("{state} (job {result:?})"),
        });
    }
    Ok(())
}

/// Stops `unit` when it is loaded and not inactive; whether it did.
async fn stop_if_running(manager: &UserManager, unit: &str) -> Result<bool, Error> {
    let state = manager.unit_state(unit).await?;
    if state.load_state == LoadState::Loaded && state.active_state != ActiveState::Inactive {
        manager.stop(unit, JOB_TIMEOUT).await?;
        return Ok(true);
    }
    Ok(false)
}

/// What starts a vansite service unit: the unit of the same stem beside it, enabled in its
/// target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `<stem>.socket`, in sockets.target (the grant server, the console).
    Socket,
    /// `<stem>.timer`, in timers.target (the certificate renewal).
    Timer,
}

impl Trigger {
    fn suffix(self) -> &'static str {
        match self {
            Trigger::Socket => "socket",
            Trigger::Timer => "timer",
        }
    }

    /// The target it is enabled in.
    fn target(self) -> &'static str {
        match self {
            Trigger::Socket => unit_names::SOCKETS_TARGET,
            Trigger::Timer => unit_names::TIMERS_TARGET,
        }
    }
}

/// Stops `<stem>.socket` and `<stem>.service` and removes their files (and the socket's
/// enablement). Returns what was removed.
pub async fn remove(
    manager: &UserManager,
    paths: &Paths,
    stem: &str,
) -> Result<Vec<String>, Error> {
    remove_triggered(manager, paths, stem, Trigger::Socket).await
}

/// Stops `<stem>.<trigger>` and `<stem>.service` and removes their files (and the trigger's
/// enablement). Returns what was removed.
pub async fn remove_triggered(
    manager: &UserManager,
    paths: &Paths,
    stem: &str,
    trigger: Trigger,
) -> Result<Vec<String>, Error> {
    let dir = paths.systemd_user_dir();
    let (trigger_unit, service) = (
        format!("{stem}.{}", trigger.suffix()),
        format!("{stem}.service"),
    );
    let mut removed = Vec::new();
    for unit in [&trigger_unit, &service] {
        if stop_if_running(manager, unit).await? {
            removed.push(format!("unit {unit} (stopped)"));
        }
    }
    let mut files_removed = false;
    for path in [
        unit_names::enablement_link(&dir, trigger.target(), &trigger_unit),
        dir.join(&trigger_unit),
        dir.join(&service),
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

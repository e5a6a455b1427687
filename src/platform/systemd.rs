//! The user's systemd manager over D-Bus: reload (reruns the quadlet generator), start, stop and
//! restart units waiting for their jobs, unit state, and the linger check.
//!
//! Waiting for a job is race-free as org.freedesktop.systemd1(5) prescribes: the connection
//! subscribes once (the manager sends job signals only to subscribed clients, for as long as
//! they stay connected), the JobRemoved match is registered before the method call, and the
//! signal is matched on the job path the call returned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};
use zbus_systemd::systemd1::ManagerProxy;

/// How often `wait_for_state` looks at the unit again.
const STATE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where logind records users whose manager starts at boot (`loginctl enable-linger`).
const LINGER_DIR: &str = "/var/lib/systemd/linger";

/// The D-Bus error systemd returns for a unit that has no unit file.
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error(
        "cannot reach your systemd user manager (session bus from DBUS_SESSION_BUS_ADDRESS, else \
         $XDG_RUNTIME_DIR/bus): {source}. vansite runs rootless units of the user who runs it: \
         run it in that user's login session (sudo and su give no user bus; use `machinectl shell \
         USER@` or log in as USER), or on a host without login sessions start the user's manager \
         at boot with `loginctl enable-linger USER` and set XDG_RUNTIME_DIR=/run/user/$(id -u)"
    )]
    NoUserBus {
        #[source]
        source: zbus::Error,
    },
    #[error("unit {unit} not found: no unit file (for a quadlet, check that the file exists and that the generator accepted it)")]
    NoSuchUnit { unit: String },
    #[error("{operation} {unit}: {source}")]
    Call {
        operation: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("{operation} {unit}: no answer from systemd within {timeout:?}")]
    TimedOut {
        operation: &'static str,
        unit: String,
        timeout: Duration,
    },
    #[error("{unit} did not reach the awaited state within {timeout:?} (last: {last})")]
    StateNotReached {
        unit: String,
        timeout: Duration,
        last: Box<UnitState>,
    },
}

/// How a job ended, from JobRemoved's `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    /// The unit's own start/stop timeout (TimeoutStartSec=) expired.
    Timeout,
    Failed,
    /// A unit this one requires failed.
    Dependency,
    Skipped,
    /// A result newer systemd versions added (e.g. `invalid`, `assert`, `unsupported`).
    Other(String),
}

impl JobResult {
    fn from_signal(result: &str) -> JobResult {
        match result {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            other => JobResult::Other(other.to_string()),
        }
    }
}

/// The unit's LoadState.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    Loaded,
    /// No unit file: for a generated unit, the quadlet file is missing or was rejected.
    NotFound,
    BadSetting,
    Error,
    Masked,
    Other(String),
}

impl LoadState {
    fn from_property(state: &str) -> LoadState {
        match state {
            "loaded" => LoadState::Loaded,
            "not-found" => LoadState::NotFound,
            "bad-setting" => LoadState::BadSetting,
            "error" => LoadState::Error,
            "masked" => LoadState::Masked,
            other => LoadState::Other(other.to_string()),
        }
    }
}

/// The unit's ActiveState.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Other(String),
}

impl ActiveState {
    fn from_property(state: &str) -> ActiveState {
        match state {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            other => ActiveState::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for LoadState {
    /// systemd's own word (`loaded`, `not-found`, ...), as `systemctl` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoadState::Loaded => "loaded",
            LoadState::NotFound => "not-found",
            LoadState::BadSetting => "bad-setting",
            LoadState::Error => "error",
            LoadState::Masked => "masked",
            LoadState::Other(word) => word,
        })
    }
}

impl std::fmt::Display for ActiveState {
    /// systemd's own word (`active`, `failed`, ...), as `systemctl` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Other(word) => word,
        })
    }
}

/// A snapshot of a unit's state as `systemctl --user show` would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    pub load_state: LoadState,
    /// Why loading failed (D-Bus error name and message), when it did.
    pub load_error: Option<(String, String)>,
    pub active_state: ActiveState,
    /// Type-specific, e.g. `running`, `exited`, `dead`, `auto-restart`.
    pub sub_state: String,
    /// `generated` for quadlet units (they cannot be enabled), else e.g. `enabled`, `static`.
    pub unit_file_state: String,
    /// The file the unit was generated from (the quadlet file), if any.
    pub source_path: Option<PathBuf>,
    /// Service units only: Service.Result (`success`, `exit-code`, `signal`, `timeout`, ...).
    pub service_result: Option<String>,
    /// Service units only, and only while the service has a main process.
    pub main_pid: Option<u32>,
    /// Service units only: how often systemd restarted it (Restart=) since it was last started
    /// by hand. A quadlet container is recreated on each restart, so podman's own count stays 0.
    pub restarts: Option<u32>,
    /// When the unit last became active, and last became inactive (stopped or failed), by the
    /// wall clock; `None` when it never did since the manager started.
    pub active_since: Option<SystemTime>,
    pub inactive_since: Option<SystemTime>,
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.load_state, self.active_state, self.sub_state
        )?;
        if let Some(result) = &self.service_result {
            write!(f, " result={result}")?;
        }
        Ok(())
    }
}

/// systemd's µs since the epoch, 0 meaning never.
const SYSTEMD_SERVICE: &str = "org.freedesktop.systemd1";
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// The properties of one D-Bus interface, by name, as `GetAll` returned them.
struct Properties(HashMap<String, OwnedVariant>);

impl Properties {
    fn take<T>(&mut self, name: &str) -> zbus::Result<T>
    where
        T: TryFrom<OwnedVariant>,
        T::Error: Into<zbus::Error>,
    {
        let value = self
            .0
            .remove(name)
            .ok_or_else(|| zbus::Error::Failure(format!("the manager sent no property {name}")))?;
        T::try_from(value).map_err(Into::into)
    }
}

fn wall_clock(micros: u64) -> Option<SystemTime> {
    (micros != 0).then(|| UNIX_EPOCH + Duration::from_micros(micros))
}

/// A long-lived, subscribed connection to the user's systemd manager.
pub struct UserManager {
    connection: Connection,
    manager: ManagerProxy<'static>,
}

impl UserManager {
    /// Connects to the user bus and subscribes to the manager's job signals.
    pub async fn connect() -> Result<UserManager, SystemdError> {
        let connection = Connection::session()
            .await
            .map_err(|source| SystemdError::NoUserBus { source })?;
        let manager = ManagerProxy::new(&connection)
            .await
            .map_err(|source| SystemdError::NoUserBus { source })?;
        manager
            .subscribe()
            .await
            .map_err(|source| SystemdError::NoUserBus { source })?;
        Ok(UserManager {
            connection,
            manager,
        })
    }

    /// The manager's systemd version, e.g. `252 (252.39-1~deb12u1)`.
    pub async fn version(&self) -> Result<String, SystemdError> {
        self.manager
            .version()
            .await
            .map_err(|source| call_error("read Version of", "the user manager", source))
    }

    /// `daemon-reload`: reruns the generators (quadlet) and reloads all units. Returns after
    /// the generators ran, so generated units can be loaded right away.
    pub async fn reload(&self) -> Result<(), SystemdError> {
        self.manager
            .reload()
            .await
            .map_err(|source| call_error("reload", "the user manager", source))
    }

    /// Whether the manager holds `unit` in memory (`GetUnit`), loaded from a file or not;
    /// unlike [`UserManager::unit_state`], asking does not load it.
    pub async fn is_loaded(&self, unit: &str) -> Result<bool, SystemdError> {
        match self.manager.get_unit(unit.to_string()).await {
            Ok(_) => Ok(true),
            Err(zbus::Error::MethodError(name, _, _)) if name.as_str() == NO_SUCH_UNIT => Ok(false),
            Err(source) => Err(call_error("look up", unit, source)),
        }
    }

    /// Starts `unit` and waits (at most `timeout`) for the start job to finish. A job still
    /// running at the timeout goes on in systemd; only the waiting ends.
    pub async fn start(&self, unit: &str, timeout: Duration) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Start, unit, timeout).await
    }

    /// Stops `unit` and waits (at most `timeout`) for the stop job to finish.
    pub async fn stop(&self, unit: &str, timeout: Duration) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Stop, unit, timeout).await
    }

    /// Restarts (or starts) `unit` and waits (at most `timeout`) for the job to finish.
    pub async fn restart(&self, unit: &str, timeout: Duration) -> Result<JobResult, SystemdError> {
        self.run_job(JobKind::Restart, unit, timeout).await
    }

    async fn run_job(
        &self,
        kind: JobKind,
        unit: &str,
        timeout: Duration,
    ) -> Result<JobResult, SystemdError> {
        let operation = kind.operation();
        let wait = async {
            // Registered before the call, so the job's JobRemoved cannot be missed.
            let mut removed_jobs = self
                .manager
                .receive_job_removed()
                .await
                .map_err(|source| call_error(operation, unit, source))?;
            let mode = "replace".to_string();
            let call = match kind {
                JobKind::Start => self.manager.start_unit(unit.to_string(), mode).await,
                JobKind::Stop => self.manager.stop_unit(unit.to_string(), mode).await,
                JobKind::Restart => self.manager.restart_unit(unit.to_string(), mode).await,
            };
            let job = call.map_err(|source| call_error(operation, unit, source))?;
            while let Some(signal) = removed_jobs.next().await {
                let args = signal
                    .args()
                    .map_err(|source| call_error(operation, unit, source))?;
                if args.job == job {
                    return Ok(JobResult::from_signal(&args.result));
                }
            }
            // The stream ends only when the connection is gone.
            Err(call_error(
                operation,
                unit,
                zbus::Error::Failure("connection to the user manager closed".into()),
            ))
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SystemdError::TimedOut {
                operation,
                unit: unit.to_string(),
                timeout,
            })?
    }

    /// Forgets a unit's failed state and restart count (`systemctl --user reset-failed`), so
    /// a removed unit leaves no record behind. A unit systemd does not know is not an error.
    pub async fn reset_failed(&self, unit: &str) -> Result<(), SystemdError> {
        match self.manager.reset_failed_unit(unit.to_string()).await {
            Ok(()) => Ok(()),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == NO_SUCH_UNIT
                    || name.as_str() == "org.freedesktop.systemd1.LoadFailed" =>
            {
                Ok(())
            }
            Err(source) => Err(call_error("reset the failed state of", unit, source)),
        }
    }

    /// The unit's current state. A unit without a unit file is reported with
    /// `LoadState::NotFound` (not as an error): "not installed" is a state too.
    pub async fn unit_state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let operation = "read the state of";
        let failed = |source| call_error(operation, unit, source);
        let path = self
            .manager
            .load_unit(unit.to_string())
            .await
            .map_err(failed)?;
        // One GetAll per interface rather than a call per property: a status reads several
        // units, and each round trip to the manager counts.
        let mut unit_properties = self
            .properties(&path, UNIT_INTERFACE)
            .await
            .map_err(failed)?;
        let load_state = LoadState::from_property(
            &unit_properties
                .take::<String>("LoadState")
                .map_err(failed)?,
        );
        let (error_name, error_message): (String, String) =
            unit_properties.take("LoadError").map_err(failed)?;
        let source_path: String = unit_properties.take("SourcePath").map_err(failed)?;
        let mut state = UnitState {
            name: unit.to_string(),
            load_error: (!error_name.is_empty()).then_some((error_name, error_message)),
            active_state: ActiveState::from_property(
                &unit_properties
                    .take::<String>("ActiveState")
                    .map_err(failed)?,
            ),
            sub_state: unit_properties.take("SubState").map_err(failed)?,
            unit_file_state: unit_properties.take("UnitFileState").map_err(failed)?,
            source_path: (!source_path.is_empty()).then(|| PathBuf::from(source_path)),
            service_result: None,
            main_pid: None,
            restarts: None,
            active_since: wall_clock(
                unit_properties
                    .take("ActiveEnterTimestamp")
                    .map_err(failed)?,
            ),
            inactive_since: wall_clock(
                unit_properties
                    .take("InactiveEnterTimestamp")
                    .map_err(failed)?,
            ),
            load_state,
        };
        if unit.ends_with(".service") && state.load_state == LoadState::Loaded {
            let mut service = self
                .properties(&path, SERVICE_INTERFACE)
                .await
                .map_err(failed)?;
            state.service_result = Some(service.take("Result").map_err(failed)?);
            let main_pid: u32 = service.take("MainPID").map_err(failed)?;
            state.main_pid = (main_pid != 0).then_some(main_pid);
            state.restarts = Some(service.take("NRestarts").map_err(failed)?);
        }
        Ok(state)
    }

    /// Every property of one interface of the object at `path`, in one call (uncached: several
    /// are declared constant, which a cache would freeze across reloads).
    async fn properties(
        &self,
        path: &OwnedObjectPath,
        interface: &'static str,
    ) -> zbus::Result<Properties> {
        let proxy = PropertiesProxy::builder(&self.connection)
            .destination(SYSTEMD_SERVICE)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let all = proxy
            .get_all(InterfaceName::from_static_str_unchecked(interface))
            .await?;
        Ok(Properties(all))
    }

    /// Waits (at most `timeout`) until the unit's state satisfies `reached`, e.g. active or
    /// failed after a start whose job finished early (Type=notify containers report ready
    /// before a bad configuration makes them exit). Polls: final states are what matters here,
    /// and polling cannot miss one the way a late-registered signal match could.
    pub async fn wait_for_state(
        &self,
        unit: &str,
        reached: impl Fn(&UnitState) -> bool,
        timeout: Duration,
    ) -> Result<UnitState, SystemdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let state = self.unit_state(unit).await?;
            if reached(&state) {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SystemdError::StateNotReached {
                    unit: unit.to_string(),
                    timeout,
                    last: Box::new(state),
                });
            }
            tokio::time::sleep(STATE_POLL_INTERVAL).await;
        }
    }
}

#[derive(Clone, Copy)]
enum JobKind {
    Start,
    Stop,
    Restart,
}

impl JobKind {
    fn operation(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
        }
    }
}

fn call_error(operation: &'static str, unit: &str, source: zbus::Error) -> SystemdError {
    match &source {
        zbus::Error::MethodError(name, _, _) if name.as_str() == NO_SUCH_UNIT => {
            SystemdError::NoSuchUnit {
                unit: unit.to_string(),
            }
        }
        _ => SystemdError::Call {
            operation,
            unit: unit.to_string(),
            source,
        },
    }
}

/// Whether `user`'s manager starts at boot without a login (`loginctl enable-linger`), by the
/// file logind keeps for it, as Skupper checks it. Without linger, the site stops at logout.
pub fn linger_enabled(user: &str) -> bool {
    !user.is_empty() && !user.contains('/') && Path::new(LINGER_DIR).join(user).exists()
}

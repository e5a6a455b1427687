//! The user's podman service (libpod REST API on `$XDG_RUNTIME_DIR/podman/podman.sock`) through
//! the `podman-api` crate: what vansite asks about the router container.
//!
//! The socket is started on demand as the user unit `podman.socket` (shipped by podman's
//! packages), which socket-activates `podman.service`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use podman_api::Podman;

use crate::platform::systemd::{JobResult, SystemdError, UserManager};

/// The user unit that listens on the API socket and starts the service on the first request.
const SOCKET_UNIT: &str = "podman.socket";

/// Bound on starting `podman.socket` (it only binds a socket; no image pulls involved).
const SOCKET_START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error(
        "starting the podman API socket ({SOCKET_UNIT}) failed: {source}. Is podman installed \
         (its package ships the user unit {SOCKET_UNIT})?"
    )]
    SocketStart {
        #[source]
        source: SystemdError,
    },
    #[error(
        "starting the podman API socket ({SOCKET_UNIT}) ended with {result:?}; see \
         `systemctl --user status {SOCKET_UNIT}`"
    )]
    SocketJob { result: JobResult },
    #[error(
        "the podman API service does not answer on {}: {source}; see `systemctl --user status \
         podman.socket podman.service`",
        socket.display()
    )]
    NoAnswer {
        socket: PathBuf,
        #[source]
        source: podman_api::Error,
    },
    #[error("podman: {operation} {name}: {source}")]
    Api {
        operation: &'static str,
        name: String,
        #[source]
        source: podman_api::Error,
    },
}

/// What vansite shows and checks about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// podman's state: `created`, `running`, `exited`, `stopped`, `paused`, ...
    pub status: String,
    /// None when the container never started.
    pub started_at: Option<SystemTime>,
    /// The main process's exit code (meaningful once it exited).
    pub exit_code: Option<i32>,
    /// podman's own restart count (its --restart policy). Quadlet containers are recreated on
    /// every systemd restart, so for them this stays 0: see systemd's `UnitState::restarts`.
    pub restart_count: u32,
    /// The image as the container was created from it (name, else id).
    pub image: String,
}

/// A client of the user's podman service.
pub struct PodmanService {
    api: Podman,
}

impl PodmanService {
    /// Connects to the user's podman API socket, starting `podman.socket` through `manager`
    /// when nothing answers there yet.
    pub async fn connect(manager: &UserManager) -> Result<PodmanService, PodmanError> {
        let socket = socket_path();
        let api = Podman::unix(&socket);
        if socket.exists() && api.ping().await.is_ok() {
            return Ok(PodmanService { api });
        }
        // Also when a stale socket file is left: starting the unit binds it afresh.
        let result = manager
            .start(SOCKET_UNIT, SOCKET_START_TIMEOUT)
            .await
            .map_err(|source| PodmanError::SocketStart { source })?;
        if result != JobResult::Done {
            return Err(PodmanError::SocketJob { result });
        }
        // The first request activates podman.service behind the socket.
        api.ping()
            .await
            .map_err(|source| PodmanError::NoAnswer { socket, source })?;
        Ok(PodmanService { api })
    }

    /// The container named `name`, or None when there is none.
    pub async fn container_info(&self, name: &str) -> Result<Option<ContainerInfo>, PodmanError> {
        let inspected = match self.api.containers().get(name).inspect().await {
            Ok(inspected) => inspected,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(source) => {
                return Err(PodmanError::Api {
                    operation: "inspect container",
                    name: name.to_string(),
                    source,
                })
            }
        };
        let state = inspected.state.as_ref();
        Ok(Some(ContainerInfo {
            id: inspected.id.unwrap_or_default(),
            status: state
                .and_then(|state| state.status.clone())
                .unwrap_or_default(),
            // podman reports "never" as the zero time, 0001-01-01.
            started_at: state
                .and_then(|state| state.started_at)
                .filter(|started| started.timestamp() > 0)
                .map(SystemTime::from),
            exit_code: state.and_then(|state| state.exit_code),
            restart_count: inspected
                .restart_count
                .and_then(|count| u32::try_from(count).ok())
                .unwrap_or(0),
            image: inspected
                .image_name
                .filter(|image| !image.is_empty())
                .or(inspected.image)
                .unwrap_or_default(),
        }))
    }

    /// Removes the container named `name`, stopping it first if it runs; fine if there is none.
    pub async fn remove_container(&self, name: &str) -> Result<(), PodmanError> {
        match self.api.containers().get(name).remove().await {
            Err(error) if is_not_found(&error) => Ok(()),
            result => result.map_err(|source| PodmanError::Api {
                operation: "remove container",
                name: name.to_string(),
                source,
            }),
        }
    }

    /// Whether the image `reference` (name or id) is in the user's local storage.
    pub async fn image_present(&self, reference: &str) -> Result<bool, PodmanError> {
        self.api
            .images()
            .get(reference)
            .exists()
            .await
            .map_err(|source| PodmanError::Api {
                operation: "look up image",
                name: reference.to_string(),
                source,
            })
    }
}

/// `$XDG_RUNTIME_DIR/podman/podman.sock`, where podman's user units put the socket.
fn socket_path() -> PathBuf {
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", rustix::process::getuid())));
    runtime_dir.join("podman/podman.sock")
}

fn is_not_found(error: &podman_api::Error) -> bool {
    matches!(error, podman_api::Error::Fault { code, .. } if code.as_u16() == 404)
}

//! Podman quadlet `.container` files: a typed model of the keys vansite uses, rendered with
//! systemd's quoting for the quadlet generator of a given Podman release (keys that release
//! does not know are rewritten into older equivalents or refused, as quadlet would otherwise
//! skip the whole file), and the plain units beside them (`.socket`, `.service`, `.timer`). Pure,
//! except `version::detect_generator_version`.

mod model;
mod service;
mod socket;
/// Unit-file syntax, shared with the plain units (`.socket`, `.service`).
mod syntax;
mod timer;
pub mod version;

pub use model::{
    Container, Install, LogDriver, Notify, PullPolicy, QuadletFile, Restart, Service,
    StandardStream, Unit, UserNs, Volume,
};
pub use service::{Sandbox, ServiceFile};
pub use socket::SocketFile;
pub use timer::TimerFile;
pub use version::PodmanVersion;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuadletError {
    #[error(
        "podman {version} is older than 4.4, the first release with quadlet, which vansite \
         needs to run the router as a systemd unit; install podman ≥ 4.4 (packaged e.g. in \
         Debian 13, Ubuntu 24.04, RHEL 9.4 and later)"
    )]
    PodmanTooOld { version: PodmanVersion },
    #[error("quadlet key {key}={value} needs podman ≥ {since}; this host's quadlet is {version}")]
    KeyTooNew {
        key: &'static str,
        value: String,
        since: PodmanVersion,
        version: PodmanVersion,
    },
    #[error("cannot write {key}={value:?} in a quadlet file: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
}

//! vansite's error type, and the one place that turns an error into a message for a person.
//! Each module keeps its own typed errors whose messages already say what to do next; this
//! enum gathers them and adds the site-level ones.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::console::ConsoleError;
use crate::forward::ForwardError;
use crate::grants::GrantError;
use crate::model::ResourceError;
use crate::plan::link::LinkError;
use crate::plan::PlanError;
use crate::platform::activation::SocketFailed;
use crate::platform::podman::PodmanError;
use crate::platform::systemd::SystemdError;
use crate::quadlet::version::DetectError;
use crate::quadlet::QuadletError;
use crate::render::certs::CertError;
use crate::router::management::ManagementError;
use crate::settings::SettingsError;
use crate::store::PathsError;
use crate::store::StoreError;
use crate::tokens::redeem::RedeemError;
use crate::tokens::TokenError;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNHEALTHY: u8 = 3;

/// vansite's exit codes and what each means: the one source for `--help` (`exit_status_text`)
/// and the man pages' EXIT STATUS section.
pub const EXIT_CODES: [(u8, &str); 4] = [
    (0, "success"),
    (EXIT_FAILED, "the operation failed (doctor: a check failed)"),
    (EXIT_USAGE, "bad usage"),
    (EXIT_UNHEALTHY, "the site exists but is not healthy"),
];

/// `EXIT_CODES` as one line for `--help`.
pub fn exit_status_text() -> String {
    let codes: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("{code} {meaning}"))
        .collect();
    format!("Exit status: {}.", codes.join(", "))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Paths(#[from] PathsError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Management(#[from] ManagementError),
    #[error(
        "cannot read the network from the site's router: {0}; check the router with `vansite status`"
    )]
    Network(#[from] crate::observe::collector::CollectorError),
    #[error(transparent)]
    Resources(Box<ResourceError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error(transparent)]
    Quadlet(#[from] QuadletError),
    #[error(transparent)]
    Generator(#[from] DetectError),
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error(transparent)]
    Grants(#[from] GrantError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error(transparent)]
    Socket(#[from] SocketFailed),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot redeem the token: {0}")]
    Redeem(#[from] RedeemError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a site already exists in namespace '{namespace}' with {differences}; \
         run `vansite -n {namespace} delete` first to create it anew, or choose another namespace with -n"
    )]
    SiteConflict {
        namespace: String,
        differences: String,
    },
    #[error(
        "the router of namespace '{namespace}' did not start: {unit} is {state}.\n\
         The router's last log lines ({}):\n{log_tail}\n\
         Fix the cause, then run `vansite -n {namespace} init` again.",
        log.display()
    )]
    RouterFailed {
        namespace: String,
        unit: String,
        state: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error(
        "the router of namespace '{namespace}' is not answering after {seconds}s ({unit} is {state}); \
         see {} and `systemctl --user status {unit}`, or wait longer with --timeout",
        log.display()
    )]
    RouterTimeout {
        namespace: String,
        unit: String,
        state: String,
        seconds: u64,
        log: PathBuf,
    },
    #[error("{unit} did not start: {state}; `journalctl --user -u {unit}` says why")]
    UnitFailed { unit: String, state: String },
    #[error("doctor: {} failed (see the fixes above)", .0.join(", "))]
    ChecksFailed(Vec<String>),
    #[error("site '{namespace}' is not healthy: {}", problems.join("; "))]
    Unhealthy {
        namespace: String,
        problems: Vec<String>,
    },
}

impl From<ResourceError> for Error {
    fn from(error: ResourceError) -> Error {
        Error::Resources(Box::new(error))
    }
}

impl Error {
    pub fn file(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::File { what, path, source }
    }

    /// The exit code, one of `EXIT_CODES`.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_)
            | Error::Plan(PlanError::Invalid(_))
            | Error::SiteConflict { .. }
            | Error::Grants(
                GrantError::BadDuration { .. }
                | GrantError::UnknownHost { .. }
                | GrantError::GrantExists { .. },
            ) => ExitCode::from(EXIT_USAGE),
            Error::Unhealthy { .. } => ExitCode::from(EXIT_UNHEALTHY),
            _ => ExitCode::from(EXIT_FAILED),
        }
    }
}

/// The message for a person: the error, then each underlying cause not already in it.
pub fn report(error: &Error) -> String {
    let mut message = format!("error: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(&format!("\n  caused by: {text}"));
        }
        source = cause.source();
    }
    message
}

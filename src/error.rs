//! vansite's error type, and the one place that turns an error into a message for a person.
//! Each module keeps its own typed errors whose messages already say what to do next; this
//! enum gathers them and adds the site-level ones.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::console::ConsoleError;
use crate::forward::ForwardError;
use crate::grants::GrantError;
use crate::input::InputError;
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

/// What kind of failure an error is: the one rule that gives every error its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The operation was tried and did not succeed: the host, the network, the router or the
    /// site's saved state is why, not what the person typed.
    Failed,
    /// What the person gave is wrong: an option, a name (of a namespace, a link, a
    /// listener, ...) that is invalid or names nothing, a file that is not what it should be.
    /// Changing the command or its input fixes it.
    Usage,
    /// The site exists but is not healthy (`status`).
    Unhealthy,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::Failed, Failure::Usage, Failure::Unhealthy];

    pub fn code(self) -> u8 {
        match self {
            Failure::Failed => 1,
            Failure::Usage => 2,
            Failure::Unhealthy => 3,
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Failure::Failed => "the operation failed (doctor: a check failed)",
            Failure::Usage => {
                "bad usage or bad input: a wrong option, an invalid name or one that names \
                 nothing, an unreadable, too large or malformed file"
            }
            Failure::Unhealthy => "the site exists but is not healthy",
        }
    }
}

/// vansite's exit codes and what each means: the one source for `--help` (`exit_status_text`),
/// the man pages' EXIT STATUS section and the README.
pub fn exit_codes() -> Vec<(u8, &'static str)> {
    let mut codes = vec![(0, "success")];
    codes.extend(Failure::ALL.map(|failure| (failure.code(), failure.meaning())));
    codes
}

/// `exit_codes` as one line for `--help`.
pub fn exit_status_text() -> String {
    let codes: Vec<String> = exit_codes()
        .iter()
        .map(|(code, meaning)| format!("{code} {meaning}"))
        .collect();
    format!("Exit status: {}.", codes.join("; "))
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
    #[error(transparent)]
    Input(#[from] InputError),
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

    /// What kind of failure this is; every variant is classified here (no catch-all), so
    /// that a new error gets its exit code by decision, not by default.
    pub fn failure(&self) -> Failure {
        use Failure::{Failed, Usage};
        match self {
            Error::Usage(_) | Error::SiteConflict { .. } | Error::Input(_) => Usage,
            Error::Resources(error) => resource_failure(error),
            Error::Settings(error) => match error {
                SettingsError::Invalid { .. } => Usage,
                SettingsError::Read { .. } => Failed,
            },
            Error::Store(error) => match error {
                StoreError::NoSite { .. } => Usage,
                // Not there yet: the running command that makes it has not finished.
                StoreError::BeingMade { .. } => Failed,
                // The site is there but broken, by a kill: what it says to run repairs it.
                StoreError::NotInitialised { .. }
                | StoreError::File { .. }
                | StoreError::Serialize(_)
                | StoreError::Read { .. }
                | StoreError::Invalid { .. } => Failed,
            },
            Error::Token(_) => Usage,
            Error::Redeem(error) => match error {
                RedeemError::BadUrl { .. } | RedeemError::BadCa(_) => Usage,
                RedeemError::Unreachable { .. }
                | RedeemError::Timeout { .. }
                | RedeemError::UntrustedServer { .. }
                | RedeemError::Tls { .. }
                | RedeemError::Http { .. }
                | RedeemError::Refused { .. }
                | RedeemError::BadAnswer { .. } => Failed,
            },
            Error::Link(error) => match error {
                LinkError::SelfLink { .. }
                | LinkError::NameTaken { .. }
                | LinkError::AlreadyLinked { .. }
                | LinkError::NoEndpoint { .. }
                | LinkError::NotFound { .. } => Usage,
                LinkError::ServerNotTrusted { .. }
                | LinkError::ClientRefused { .. }
                | LinkError::NotARouter { .. } => Failed,
            },
            Error::Plan(error) => match error {
                PlanError::Invalid(_) | PlanError::DuplicateEntityName { .. } => Usage,
                PlanError::Certs(error) => cert_failure(error),
                PlanError::Quadlet(error) => quadlet_failure(error),
            },
            Error::Certs(error) => cert_failure(error),
            Error::Quadlet(error) => quadlet_failure(error),
            Error::Grants(error) => match error {
                GrantError::EdgeSite { .. }
                | GrantError::NoLinkAccess { .. }
                | GrantError::NoHost { .. }
                | GrantError::UnknownHost { .. }
                | GrantError::BadDuration { .. }
                | GrantError::GrantExists { .. } => Usage,
                GrantError::NotActivated
                | GrantError::ServerCertificate { .. }
                | GrantError::IssueLink { .. }
                | GrantError::Io(_) => Failed,
            },
            Error::Unhealthy { .. } => Failure::Unhealthy,
            Error::Paths(_)
            | Error::Management(_)
            | Error::Network(_)
            | Error::Generator(_)
            | Error::Systemd(_)
            | Error::Podman(_)
            | Error::Forward(_)
            | Error::Console(_)
            | Error::Socket(_)
            | Error::File { .. }
            | Error::RouterFailed { .. }
            | Error::RouterTimeout { .. }
            | Error::UnitFailed { .. }
            | Error::ChecksFailed(_) => Failed,
        }
    }

    /// The exit code: `failure`'s.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.failure().code())
    }
}

/// Every resource error is about what the person gave (a file, a name, a field), except a
/// resource that cannot be written out.
fn resource_failure(error: &ResourceError) -> Failure {
    match error {
        ResourceError::Serialize { .. } => Failure::Failed,
        ResourceError::Yaml { .. }
        | ResourceError::Document { .. }
        | ResourceError::UnknownKind { .. }
        | ResourceError::InDocument { .. }
        | ResourceError::Shape { .. }
        | ResourceError::Invalid { .. }
        | ResourceError::NoSite
        | ResourceError::SeveralSites(_)
        | ResourceError::WrongNamespace { .. }
        | ResourceError::Duplicate(_)
        | ResourceError::MissingReference { .. }
        | ResourceError::PortInUse { .. } => Failure::Usage,
    }
}

/// A Secret the person gave is input; a CA or certificate vansite cannot make is a failure.
fn cert_failure(error: &CertError) -> Failure {
    match error {
        CertError::Secret { .. } => Failure::Usage,
        CertError::Generate { .. } | CertError::BadCa { .. } => Failure::Failed,
    }
}

/// A value a unit cannot hold came from a resource; a podman too old is the host's.
fn quadlet_failure(error: &QuadletError) -> Failure {
    match error {
        QuadletError::InvalidValue { .. } => Failure::Usage,
        QuadletError::PodmanTooOld { .. } | QuadletError::KeyTooNew { .. } => Failure::Failed,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The same kind of mistake gets the same code, whichever command makes it.
    #[test]
    fn one_rule_for_exit_codes() {
        let usage = [
            Error::Usage("no listener named 'nosuch'".into()),
            Error::Link(LinkError::NotFound {
                name: "nosuch".into(),
                present: Vec::new(),
            }),
            Error::Store(StoreError::NoSite {
                namespace: "west".into(),
                present: Vec::new(),
            }),
            Error::Input(InputError::NotText {
                name: "x".into(),
                expected: "YAML",
            }),
            Error::Resources(Box::new(ResourceError::Yaml {
                place: Default::default(),
                message: "unclosed bracket".into(),
            })),
            Error::Token(TokenError::Empty {
                source_name: "x".into(),
            }),
            Error::Grants(GrantError::UnknownHost {
                host: "x".into(),
                known: Vec::new(),
            }),
        ];
        for error in usage {
            assert_eq!(error.failure(), Failure::Usage, "{error}");
        }
        let failed = [
            Error::Redeem(RedeemError::Timeout {
                server: "the grant server",
                addr: "x".into(),
            }),
            Error::UnitFailed {
                unit: "u".into(),
                state: "failed".into(),
            },
            Error::ChecksFailed(vec!["podman".into()]),
        ];
        for error in failed {
            assert_eq!(error.failure(), Failure::Failed, "{error}");
        }
        let unhealthy = Error::Unhealthy {
            namespace: "west".into(),
            problems: Vec::new(),
        };
        assert_eq!(unhealthy.failure().code(), 3);
        assert_eq!(
            exit_codes()
                .iter()
                .map(|(code, _)| *code)
                .collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }
}

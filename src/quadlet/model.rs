//! The sections of a `.container` quadlet file, with typed fields for the keys vansite uses,
//! and their rendering for one Podman release.

use std::path::PathBuf;

use super::syntax::{self, Target};
use super::{PodmanVersion, QuadletError};

/// Podman 4.5 added `UserNS=` and `LogDriver=` (before, quadlet always ran
/// `--log-driver passthrough`).
const USERNS_AND_LOGDRIVER_SINCE: PodmanVersion = PodmanVersion::new(4, 5, 0);
/// Podman 4.6 added `Pull=`.
const PULL_SINCE: PodmanVersion = PodmanVersion::new(4, 6, 0);
/// Podman 5.0 added `Notify=healthy`.
const NOTIFY_HEALTHY_SINCE: PodmanVersion = PodmanVersion::new(5, 0, 0);

/// One `<name>.container` file; systemd runs it as `<name>.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuadletFile {
    pub name: String,
    pub unit: Unit,
    pub container: Container,
    pub service: Service,
    pub install: Install,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unit {
    pub description: Option<String>,
    /// URIs (`https:`, `man:`…).
    pub documentation: Vec<String>,
    pub after: Vec<String>,
    pub wants: Vec<String>,
    pub requires: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    pub container_name: Option<String>,
    pub image: String,
    pub pull: Option<PullPolicy>,
    /// `host`, `none`, a podman network name, or a sibling `x.network` quadlet.
    pub network: Option<String>,
    pub user_ns: Option<UserNs>,
    /// Numeric, as Podman 4.4's quadlet reads `User=`/`Group=` only as numbers.
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub volumes: Vec<Volume>,
    /// Name/value pairs; quadlet keeps the last value of a repeated name.
    pub environment: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub log_driver: Option<LogDriver>,
    pub notify: Option<Notify>,
    /// Further `podman run` arguments, one word each.
    pub podman_args: Vec<String>,
    /// The command and arguments; empty runs the image's own.
    pub exec: Vec<String>,
}

/// A host directory bind-mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub host_path: PathBuf,
    pub container_path: String,
    /// Mount options such as `z`, `ro`.
    pub options: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
    Newer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserNs {
    /// The user's own uid/gid inside the container, so files it writes stay the user's.
    KeepId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogDriver {
    /// The container's stdout/stderr are the service's: `StandardOutput=` decides where they go.
    Passthrough,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// The container itself sends sd_notify READY (`Notify=true`).
    Container,
    /// Ready when the health check first passes (`Notify=healthy`, Podman ≥ 5.0).
    Healthy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    pub restart: Option<Restart>,
    pub timeout_start_sec: Option<u32>,
    pub standard_output: Option<StandardStream>,
    pub standard_error: Option<StandardStream>,
    /// Commands run before the container, one word list each.
    pub exec_start_pre: Vec<Vec<String>>,
    /// `LimitNOFILE=`: open descriptors allowed (soft and hard), for processes that hold one
    /// or more per client connection: podman, conmon and (with podman's `--ulimit=host`) the
    /// container. systemd lowers it to the most the manager may give when it is more
    /// (`setrlimit_closest`), so a high value never fails the start.
    pub limit_nofile: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    No,
    OnFailure,
    Always,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StandardStream {
    /// Appended to a file (created if missing; its directory must exist).
    Append(PathBuf),
    Journal,
    Null,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
}

type Entries = Vec<(&'static str, String)>;

impl QuadletFile {
    pub fn file_name(&self) -> String {
        format!("{}.container", self.name)
    }

    pub fn service_name(&self) -> String {
        format!("{}.service", self.name)
    }

    /// The file's text for the quadlet generator of `podman`: keys newer than that release are
    /// rewritten as `PodmanArgs=` where Podman has an equivalent flag, else refused.
    pub fn render(&self, podman: PodmanVersion) -> Result<String, QuadletError> {
        if podman < PodmanVersion::FLOOR {
            return Err(QuadletError::PodmanTooOld { version: podman });
        }
        syntax::unit_names("name", std::slice::from_ref(&self.name))?;
        let mut out = String::new();
        syntax::write_section(&mut out, "Unit", &self.unit.entries()?);
        syntax::write_section(&mut out, "Container", &self.container.entries(podman)?);
        syntax::write_section(&mut out, "Service", &self.service.entries()?);
        syntax::write_section(&mut out, "Install", &self.install.entries()?);
        Ok(out)
    }
}

impl Unit {
    pub(super) fn entries(&self) -> Result<Entries, QuadletError> {
        let mut entries = Entries::new();
        if let Some(description) = &self.description {
            let value = syntax::single("Description", description, Target::Setting)?;
            entries.push(("Description", value));
        }
        if !self.documentation.is_empty() {
            for uri in &self.documentation {
                if uri.chars().any(char::is_whitespace) {
                    return Err(QuadletError::InvalidValue {
                        key: "Documentation".into(),
                        value: uri.clone(),
                        reason: "a URI has no whitespace".into(),
                    });
                }
            }
            let value = syntax::words("Documentation", &self.documentation, Target::Setting)?;
            entries.push(("Documentation", value));
        }
        for (key, names) in [
            ("After", &self.after),
            ("Wants", &self.wants),
            ("Requires", &self.requires),
        ] {
            if !names.is_empty() {
                entries.push((key, syntax::unit_names(key, names)?));
            }
        }
        Ok(entries)
    }
}

impl Container {
    /// A container of vansite's on the host's network, running as the host user `uid:gid`
    /// (keep-id), so the files it shares with vansite stay the user's.
    pub fn on_host_network_as(name: &str, image: &str, uid: u32, gid: u32) -> Container {
        Container {
            container_name: Some(name.to_string()),
            image: image.to_string(),
            network: Some("host".into()),
            user_ns: Some(UserNs::KeepId),
            user: Some(uid),
            group: Some(gid),
            log_driver: Some(LogDriver::Passthrough),
            ..Container::default()
        }
    }

    fn entries(&self, podman: PodmanVersion) -> Result<Entries, QuadletError> {
        let command_line = |key: &str, value: &str| syntax::single(key, value, Target::CommandLine);
        let mut entries = Entries::new();
        // Keys this release lacks, as the equivalent `podman run` flags.
        let mut downgraded_args = Vec::new();

        if let Some(name) = &self.container_name {
            entries.push(("ContainerName", command_line("ContainerName", name)?));
        }
        entries.push(("Image", command_line("Image", &self.image)?));
        if let Some(pull) = self.pull {
            if podman >= PULL_SINCE {
                entries.push(("Pull", pull.as_str().to_string()));
            } else {
                downgraded_args.push(format!("--pull={}", pull.as_str()));
            }
        }
        if let Some(network) = &self.network {
            entries.push(("Network", command_line("Network", network)?));
        }
        if let Some(UserNs::KeepId) = self.user_ns {
            if podman >= USERNS_AND_LOGDRIVER_SINCE {
                entries.push(("UserNS", "keep-id".to_string()));
            } else {
                downgraded_args.push("--userns=keep-id".to_string());
            }
        }
        if let Some(user) = self.user {
            entries.push(("User", user.to_string()));
        }
        if let Some(group) = self.group {
            entries.push(("Group", group.to_string()));
        }
        for volume in &self.volumes {
            entries.push(("Volume", command_line("Volume", &volume.to_spec()?)?));
        }
        for (name, value) in &self.environment {
            let pair = name_value_pair("Environment", name, value)?;
            entries.push(("Environment", pair));
        }
        for (name, value) in &self.labels {
            entries.push(("Label", name_value_pair("Label", name, value)?));
        }
        if let Some(LogDriver::Passthrough) = self.log_driver {
            // Before 4.5 quadlet always passed `--log-driver passthrough`: nothing to write.
            if podman >= USERNS_AND_LOGDRIVER_SINCE {
                entries.push(("LogDriver", "passthrough".to_string()));
            }
        }
        match self.notify {
            None => {}
            Some(Notify::Container) => entries.push(("Notify", "true".to_string())),
            Some(Notify::Healthy) if podman >= NOTIFY_HEALTHY_SINCE => {
                entries.push(("Notify", "healthy".to_string()))
            }
            Some(Notify::Healthy) => {
                return Err(QuadletError::KeyTooNew {
                    key: "Notify",
                    value: "healthy".into(),
                    since: NOTIFY_HEALTHY_SINCE,
                    version: podman,
                })
            }
        }
        downgraded_args.extend(self.podman_args.iter().cloned());
        if !downgraded_args.is_empty() {
            let args = syntax::words("PodmanArgs", &downgraded_args, Target::CommandLine)?;
            entries.push(("PodmanArgs", args));
        }
        if !self.exec.is_empty() {
            entries.push((
                "Exec",
                syntax::words("Exec", &self.exec, Target::CommandLine)?,
            ));
        }
        Ok(entries)
    }
}

/// `NAME=value` as one word: quadlet splits the line into words, then each at its first `=`.
fn name_value_pair(key: &str, name: &str, value: &str) -> Result<String, QuadletError> {
    if name.is_empty() || name.contains('=') || name.chars().any(char::is_whitespace) {
        return Err(QuadletError::InvalidValue {
            key: key.to_string(),
            value: name.to_string(),
            reason: "a name is non-empty, without `=` or whitespace".into(),
        });
    }
    syntax::words(key, &[format!("{name}={value}")], Target::CommandLine)
}

impl Volume {
    /// `HOST:CONTAINER[:OPTIONS]`; quadlet splits at `:`, so the paths may not contain one.
    fn to_spec(&self) -> Result<String, QuadletError> {
        let host = self.host_path.to_str().filter(|path| path.starts_with('/'));
        let invalid = |value: &str, reason: &str| QuadletError::InvalidValue {
            key: "Volume".into(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let host = host.ok_or_else(|| {
            invalid(
                &self.host_path.display().to_string(),
                "the host path must be absolute UTF-8",
            )
        })?;
        for path in [host, &self.container_path] {
            if path.contains(':') || !path.starts_with('/') {
                return Err(invalid(path, "paths are absolute, without `:`"));
            }
        }
        let mut spec = format!("{host}:{}", self.container_path);
        if !self.options.is_empty() {
            spec.push(':');
            spec.push_str(&self.options.join(","));
        }
        Ok(spec)
    }
}

impl PullPolicy {
    fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
            PullPolicy::Newer => "newer",
        }
    }
}

impl Service {
    /// Restarted when it fails, its output (the container's, passed through) appended to `log`:
    /// there is not always a journal, and vansite shows the last lines when a start fails.
    pub fn restarting_with_log(log: &std::path::Path) -> Service {
        Service {
            restart: Some(Restart::OnFailure),
            standard_output: Some(StandardStream::Append(log.to_path_buf())),
            standard_error: Some(StandardStream::Append(log.to_path_buf())),
            ..Service::default()
        }
    }

    pub(super) fn entries(&self) -> Result<Entries, QuadletError> {
        let mut entries = Entries::new();
        if let Some(restart) = self.restart {
            let value = match restart {
                Restart::No => "no",
                Restart::OnFailure => "on-failure",
                Restart::Always => "always",
            };
            entries.push(("Restart", value.to_string()));
        }
        if let Some(seconds) = self.timeout_start_sec {
            entries.push(("TimeoutStartSec", seconds.to_string()));
        }
        for (key, stream) in [
            ("StandardOutput", &self.standard_output),
            ("StandardError", &self.standard_error),
        ] {
            if let Some(stream) = stream {
                entries.push((key, stream.to_value(key)?));
            }
        }
        for command in &self.exec_start_pre {
            let line = syntax::words("ExecStartPre", command, Target::CommandLine)?;
            entries.push(("ExecStartPre", line));
        }
        if let Some(limit) = self.limit_nofile {
            entries.push(("LimitNOFILE", limit.to_string()));
        }
        Ok(entries)
    }
}

impl StandardStream {
    fn to_value(&self, key: &str) -> Result<String, QuadletError> {
        Ok(match self {
            StandardStream::Append(path) => {
                let path = path
                    .to_str()
                    .filter(|p| p.starts_with('/'))
                    .ok_or_else(|| QuadletError::InvalidValue {
                        key: key.to_string(),
                        value: path.display().to_string(),
                        reason: "the file path must be absolute UTF-8".into(),
                    })?;
                format!("append:{}", syntax::single(key, path, Target::Setting)?)
            }
            StandardStream::Journal => "journal".to_string(),
            StandardStream::Null => "null".to_string(),
        })
    }
}

impl Install {
    pub(super) fn entries(&self) -> Result<Entries, QuadletError> {
        let mut entries = Entries::new();
        if !self.wanted_by.is_empty() {
            entries.push(("WantedBy", syntax::unit_names("WantedBy", &self.wanted_by)?));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> QuadletFile {
        QuadletFile {
            name: "demo".into(),
            unit: Unit::default(),
            container: Container {
                image: "localhost/demo:1".into(),
                ..Container::default()
            },
            service: Service::default(),
            install: Install::default(),
        }
    }

    const V4_4: PodmanVersion = PodmanVersion::new(4, 4, 0);
    const V4_5: PodmanVersion = PodmanVersion::new(4, 5, 0);
    const V5_4: PodmanVersion = PodmanVersion::new(5, 4, 2);

    #[test]
    fn below_the_floor_is_refused_with_what_to_do() {
        let error = minimal().render(PodmanVersion::new(4, 3, 1)).unwrap_err();
        assert_eq!(
            error,
            QuadletError::PodmanTooOld {
                version: PodmanVersion::new(4, 3, 1)
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("podman 4.3.1 is older than 4.4"),
            "{message}"
        );
        assert!(message.contains("install podman ≥ 4.4"), "{message}");
    }

    #[test]
    fn userns_and_pull_become_podman_args_before_their_release() {
        let mut file = minimal();
        file.container.user_ns = Some(UserNs::KeepId);
        file.container.pull = Some(PullPolicy::Never);
        file.container.podman_args = vec!["--stop-timeout=5".into()];

        let old = file.render(V4_4).unwrap();
        assert!(!old.contains("UserNS=") && !old.contains("Pull="), "{old}");
        assert!(
            old.contains("PodmanArgs=--pull=never --userns=keep-id --stop-timeout=5\n"),
            "{old}"
        );

        let middle = file.render(V4_5).unwrap();
        assert!(middle.contains("UserNS=keep-id\n"), "{middle}");
        assert!(
            middle.contains("PodmanArgs=--pull=never --stop-timeout=5\n"),
            "{middle}"
        );

        let new = file.render(V5_4).unwrap();
        assert!(new.contains("Pull=never\nUserNS=keep-id\n"), "{new}");
        assert!(new.contains("PodmanArgs=--stop-timeout=5\n"), "{new}");
    }

    #[test]
    fn passthrough_logging_is_implicit_before_4_5() {
        let mut file = minimal();
        file.container.log_driver = Some(LogDriver::Passthrough);
        assert!(!file.render(V4_4).unwrap().contains("LogDriver"));
        assert!(file
            .render(V4_5)
            .unwrap()
            .contains("LogDriver=passthrough\n"));
    }

    #[test]
    fn notify_healthy_is_refused_before_5_0_naming_key_and_versions() {
        let mut file = minimal();
        file.container.notify = Some(Notify::Healthy);
        let error = file.render(PodmanVersion::new(4, 9, 4)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "quadlet key Notify=healthy needs podman ≥ 5.0.0; this host's quadlet is 4.9.4"
        );
        assert!(file.render(V5_4).unwrap().contains("Notify=healthy\n"));
        file.container.notify = Some(Notify::Container);
        assert!(file.render(V4_4).unwrap().contains("Notify=true\n"));
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        let mut file = minimal();
        file.unit.description = Some("demo at 100%".into());
        file.container.environment = vec![
            ("GREETING".into(), "hello world".into()),
            ("PRICE".into(), "$5 for 10%".into()),
        ];
        file.container.labels = vec![("note".into(), r#"say "hi""#.into())];
        file.container.volumes = vec![Volume {
            host_path: "/home/a b/data".into(),
            container_path: "/data".into(),
            options: vec!["z".into(), "ro".into()],
        }];
        file.container.exec = vec!["/bin/sh".into(), "-c".into(), r"echo a\b".into()];
        let text = file.render(V5_4).unwrap();
        assert_eq!(
            text,
            "[Unit]\nDescription=demo at 100%%\n\n\
             [Container]\nImage=localhost/demo:1\nVolume=/home/a b/data:/data:z,ro\n\
             Environment=\"GREETING=hello world\"\nEnvironment=\"PRICE=$$5 for 10%%\"\n\
             Label=\"note=say \\\"hi\\\"\"\nExec=/bin/sh -c \"echo a\\\\b\"\n"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let mut file = minimal();
        file.container.environment = vec![("A=B".into(), "x".into())];
        assert!(matches!(
            file.render(V5_4),
            Err(QuadletError::InvalidValue { key, .. }) if key == "Environment"
        ));

        let mut file = minimal();
        file.unit.description = Some("two\nlines".into());
        assert!(file.render(V5_4).is_err());

        let mut file = minimal();
        file.container.volumes = vec![Volume {
            host_path: "relative".into(),
            container_path: "/x".into(),
            options: vec![],
        }];
        assert!(file.render(V5_4).is_err());

        let mut file = minimal();
        file.service.standard_output = Some(StandardStream::Append("log".into()));
        assert!(file.render(V5_4).is_err());

        let mut file = minimal();
        file.name = "has space".into();
        assert!(file.render(V5_4).is_err());
    }
}

//! A plain systemd `.service` unit (in `$XDG_CONFIG_HOME/systemd/user/`, not a quadlet), for a
//! vansite process systemd starts directly, such as the grant server its socket activates.
//! Same syntax rules as the quadlet files.

use std::path::PathBuf;

use super::syntax::{self, Target};
use super::{Install, QuadletError, Service, Unit};

/// `<name>.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFile {
    pub name: String,
    pub unit: Unit,
    /// `ExecStart=`: the program (absolute) and its arguments.
    pub exec_start: Vec<String>,
    /// `NoNewPrivileges=yes`.
    pub no_new_privileges: bool,
    /// The host as the process sees it; None: as its user sees it.
    pub sandbox: Option<Sandbox>,
    /// The rest of `[Service]`, as a quadlet's (restart, output, limits).
    pub service: Service,
    /// Empty for a service only its socket or timer starts.
    pub install: Install,
}

/// A process that needs little of the host and faces the network: systemd shows it a host
/// where the whole file system is read-only, every home directory (and `/run/user`) is an
/// empty tmpfs except `read_only_paths`, `/tmp` is its own, and it can open only IP, Unix and
/// netlink sockets. A user manager builds that view in a user namespace of its own
/// (`PrivateUsers=yes`: the user's uid maps to itself, every other uid to the overflow uid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// Files and directories (absolute) it reads, bound read-only at their own paths.
    pub read_only_paths: Vec<PathBuf>,
}

impl Sandbox {
    fn entries(&self) -> Result<Vec<(&'static str, String)>, QuadletError> {
        let mut entries = vec![
            // Explicit: systemd 252's user manager skips the settings below without it.
            ("PrivateUsers", "yes".to_string()),
            ("ProtectSystem", "strict".into()),
            ("ProtectHome", "tmpfs".into()),
            ("PrivateTmp", "yes".into()),
            (
                "RestrictAddressFamilies",
                "AF_UNIX AF_INET AF_INET6 AF_NETLINK".into(),
            ),
        ];
        for path in &self.read_only_paths {
            let invalid = |reason: &str| QuadletError::InvalidValue {
                key: "BindReadOnlyPaths".into(),
                value: path.to_string_lossy().into_owned(),
                reason: reason.into(),
            };
            let path = path
                .to_str()
                .ok_or_else(|| invalid("the path is not UTF-8"))?;
            if path.contains(':') {
                return Err(invalid("systemd reads ':' as SOURCE:DESTINATION"));
            }
            // `-`: a path gone missing does not stop the start; the process then says what.
            let value = syntax::words("BindReadOnlyPaths", &[format!("-{path}")], Target::Setting)?;
            entries.push(("BindReadOnlyPaths", value));
        }
        Ok(entries)
    }
}

impl ServiceFile {
    pub fn file_name(&self) -> String {
        format!("{}.service", self.name)
    }

    pub fn render(&self) -> Result<String, QuadletError> {
        syntax::unit_names("name", std::slice::from_ref(&self.name))?;
        let mut service = vec![(
            "ExecStart",
            syntax::words("ExecStart", &self.exec_start, Target::CommandLine)?,
        )];
        if self.no_new_privileges {
            service.push(("NoNewPrivileges", "yes".into()));
        }
        if let Some(sandbox) = &self.sandbox {
            service.extend(sandbox.entries()?);
        }
        service.extend(self.service.entries()?);
        let mut out = String::new();
        syntax::write_section(&mut out, "Unit", &self.unit.entries()?);
        syntax::write_section(&mut out, "Service", &service);
        let install = self.install.entries()?;
        if !install.is_empty() {
            syntax::write_section(&mut out, "Install", &install);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_service_unit_with_a_quoted_command() {
        let file = ServiceFile {
            name: "vansite-west-grants".into(),
            unit: Unit {
                description: Some("grant server".into()),
                requires: vec!["vansite-west-grants.socket".into()],
                ..Unit::default()
            },
            exec_start: vec!["/opt/van site/vansite".into(), "grant-server".into()],
            no_new_privileges: true,
            sandbox: None,
            service: Service {
                limit_nofile: Some(4096),
                ..Service::default()
            },
            install: Install::default(),
        };
        assert_eq!(file.file_name(), "vansite-west-grants.service");
        assert_eq!(
            file.render().unwrap(),
            "[Unit]\nDescription=grant server\nRequires=vansite-west-grants.socket\n\n\
             [Service]\nExecStart=\"/opt/van site/vansite\" grant-server\nNoNewPrivileges=yes\nLimitNOFILE=4096\n"
        );
    }

    #[test]
    fn a_sandboxed_service_binds_its_paths_read_only_and_is_installed() {
        let file = ServiceFile {
            name: "vansite-west-listener-db".into(),
            unit: Unit::default(),
            exec_start: vec!["/usr/bin/vansite".into(), "forward".into()],
            no_new_privileges: true,
            sandbox: Some(Sandbox {
                read_only_paths: vec!["/usr/bin/vansite".into(), "/home/u/my certs".into()],
            }),
            service: Service::default(),
            install: Install {
                wanted_by: vec!["default.target".into()],
            },
        };
        assert_eq!(
            file.render().unwrap(),
            "[Service]\nExecStart=/usr/bin/vansite forward\nNoNewPrivileges=yes\n\
             PrivateUsers=yes\nProtectSystem=strict\nProtectHome=tmpfs\nPrivateTmp=yes\n\
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
             BindReadOnlyPaths=-/usr/bin/vansite\nBindReadOnlyPaths=\"-/home/u/my certs\"\n\n\
             [Install]\nWantedBy=default.target\n"
        );
    }
}

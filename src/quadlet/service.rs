//! A plain systemd `.service` unit (in `$XDG_CONFIG_HOME/systemd/user/`, not a quadlet), for a
//! vansite process systemd starts directly, such as the grant server its socket activates.
//! Same syntax rules as the quadlet files.

use super::syntax::{self, Target};
use super::{QuadletError, Service, Unit};

/// `<name>.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFile {
    pub name: String,
    pub unit: Unit,
    /// `ExecStart=`: the program (absolute) and its arguments.
    pub exec_start: Vec<String>,
    /// `NoNewPrivileges=yes`.
    pub no_new_privileges: bool,
    /// The rest of `[Service]`, as a quadlet's (restart, output, limits).
    pub service: Service,
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
        service.extend(self.service.entries()?);
        let mut out = String::new();
        syntax::write_section(&mut out, "Unit", &self.unit.entries()?);
        syntax::write_section(&mut out, "Service", &service);
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
            service: Service {
                limit_nofile: Some(4096),
                ..Service::default()
            },
        };
        assert_eq!(file.file_name(), "vansite-west-grants.service");
        assert_eq!(
            file.render().unwrap(),
            "[Unit]\nDescription=grant server\nRequires=vansite-west-grants.socket\n\n\
             [Service]\nExecStart=\"/opt/van site/vansite\" grant-server\nNoNewPrivileges=yes\nLimitNOFILE=4096\n"
        );
    }
}

//! A plain systemd `.socket` unit (written to `$XDG_CONFIG_HOME/systemd/user/`, not a quadlet):
//! systemd binds the port and hands it to the service of the same name, so the port is held
//! even while that service starts, restarts or is replaced. Same syntax rules as the quadlet
//! files, since systemd reads both.

use super::syntax::{self, Target};
use super::{Install, QuadletError, Unit};

/// `<name>.socket`: activates `<name>.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketFile {
    pub name: String,
    pub unit: Unit,
    /// `ListenStream=` values: `ADDRESS:PORT` (an IP literal; systemd resolves no names).
    pub listen_stream: Vec<String>,
    pub install: Install,
}

impl SocketFile {
    pub fn file_name(&self) -> String {
        format!("{}.socket", self.name)
    }

    pub fn render(&self) -> Result<String, QuadletError> {
        syntax::unit_names("name", std::slice::from_ref(&self.name))?;
        let mut socket = Vec::new();
        for address in &self.listen_stream {
            let value = syntax::single("ListenStream", address, Target::Setting)?;
            socket.push(("ListenStream", value));
        }
        let mut out = String::new();
        syntax::write_section(&mut out, "Unit", &self.unit.entries()?);
        syntax::write_section(&mut out, "Socket", &socket);
        syntax::write_section(&mut out, "Install", &self.install.entries()?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_socket_unit() {
        let file = SocketFile {
            name: "vansite-default-listener-web".into(),
            unit: Unit {
                description: Some("port 100%".into()),
                ..Unit::default()
            },
            listen_stream: vec!["0.0.0.0:8080".into()],
            install: Install {
                wanted_by: vec!["sockets.target".into()],
            },
        };
        assert_eq!(file.file_name(), "vansite-default-listener-web.socket");
        assert_eq!(
            file.render().unwrap(),
            "[Unit]\nDescription=port 100%%\n\n[Socket]\nListenStream=0.0.0.0:8080\n\n\
             [Install]\nWantedBy=sockets.target\n"
        );
        let mut bad = file;
        bad.listen_stream = vec![" 1.2.3.4:5".into()];
        assert!(bad.render().is_err());
    }
}

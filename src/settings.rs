//! vansite's own settings, `$XDG_CONFIG_HOME/vansite/config.toml`. Every key is optional;
//! command-line options override them.
//!
//! ```toml
//! namespace = "default"                                   # -n/--namespace
//! router_image = "quay.io/skupper/skupper-router:3.5.1"   # --router-image
//! grant_port = 9090                                       # the grant server's port
//! console_port = 8010                                     # the web console's (127.0.0.1)
//! renew_certificates = false                              # a daily timer per site renews
//!                                                         # certificates 30 days before expiry
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::render::router_unit::DEFAULT_ROUTER_IMAGE;

/// The Skupper release whose formats vansite writes (router metadata, `site` entity).
pub const SKUPPER_VERSION: &str = "2.2.1";

/// How a site's router runs (`init --platform`; the doc comments are its help). Only podman
/// exists so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// Rootless podman: the router is a quadlet container under the systemd user manager
    Podman,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub namespace: String,
    pub router_image: String,
    pub grant_port: u16,
    pub console_port: u16,
    pub renew_certificates: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "default".into(),
            router_image: DEFAULT_ROUTER_IMAGE.into(),
            grant_port: 9090,
            console_port: 8010,
            renew_certificates: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Settings {
    /// Reads the settings file; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::parse(&text).map_err(|message| SettingsError::Invalid {
                path: path.to_path_buf(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(source) => Err(SettingsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn parse(text: &str) -> Result<Settings, String> {
        let settings: Settings =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        crate::model::check_name(&settings.namespace)
            .map_err(|problem| format!("namespace: {problem}"))?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_defaults() {
        let settings = Settings::parse("router_image = \"localhost/router:test\"\n").unwrap();
        assert_eq!(settings.router_image, "localhost/router:test");
        assert_eq!(settings.namespace, "default");
        assert_eq!(settings.grant_port, 9090);
        assert_eq!(settings.console_port, 8010);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        assert!(Settings::parse("router-image = \"x\"\n")
            .unwrap_err()
            .contains("router-image"));
        assert!(Settings::parse("grant_port = \"high\"\n").is_err());
        // A namespace becomes a directory name: one that is no RFC 1123 label is refused.
        let error = Settings::parse("namespace = \"../../tmp\"\n").unwrap_err();
        assert!(
            error.starts_with("namespace: '../../tmp' is not a valid name"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_the_defaults() {
        let settings = Settings::load(Path::new("/nonexistent/vansite/config.toml")).unwrap();
        assert_eq!(settings, Settings::default());
    }
}

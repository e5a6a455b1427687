//! The site on disk: where its resources, runtime files and units live (DESIGN.md "Layout on
//! the host"), its lock, atomic files, and loading/saving its resources and certificates.

mod events;
pub mod files;
pub mod lock;
pub mod resources;

pub use events::RecordedEvent;

pub use lock::SiteLock;
pub use resources::StoreError;

use std::path::PathBuf;

/// The user's base directories, resolved once from the XDG environment.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `$XDG_DATA_HOME/vansite`
    pub data: PathBuf,
    /// `$XDG_CONFIG_HOME`
    pub config_home: PathBuf,
    /// `$XDG_RUNTIME_DIR`
    pub runtime_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find the home directory (HOME is not set)")]
    NoHome,
    #[error(
        "XDG_RUNTIME_DIR is not set: vansite needs the user session that systemd --user runs in"
    )]
    NoRuntimeDir,
}

impl Paths {
    pub fn from_env() -> Result<Paths, PathsError> {
        let base = directories::BaseDirs::new().ok_or(PathsError::NoHome)?;
        let runtime_dir = base
            .runtime_dir()
            .ok_or(PathsError::NoRuntimeDir)?
            .to_path_buf();
        Ok(Paths {
            data: base.data_dir().join("vansite"),
            config_home: base.config_dir().to_path_buf(),
            runtime_dir,
        })
    }

    pub fn site(&self, namespace: &str) -> SiteDir {
        SiteDir {
            namespace: namespace.to_string(),
            root: self.data.join(namespace),
        }
    }

    /// Where quadlet reads a rootless user's units.
    pub fn quadlet_dir(&self) -> PathBuf {
        self.config_home.join("containers/systemd")
    }

    /// Where plain (non-quadlet) user units live.
    pub fn systemd_user_dir(&self) -> PathBuf {
        self.config_home.join("systemd/user")
    }

    /// vansite's own settings file.
    pub fn settings_file(&self) -> PathBuf {
        self.config_home.join("vansite/config.toml")
    }

    /// Takes the site's lock, telling the person through `progress` if it has to wait.
    pub fn lock(&self, namespace: &str, progress: &dyn Fn(&str)) -> Result<SiteLock, StoreError> {
        let path = self.lock_file(namespace);
        SiteLock::acquire(&path, || {
            progress(&format!(
                "waiting for another vansite command on namespace '{namespace}'"
            ))
        })
        .map_err(StoreError::file("cannot lock", path))
    }

    pub fn lock_file(&self, namespace: &str) -> PathBuf {
        self.runtime_dir
            .join("vansite")
            .join(format!("{namespace}.lock"))
    }

    /// The namespaces that have a site (saved resources with a Site), sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.data)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .filter(|name| self.site(name).has_saved_site())
            .collect();
        names.sort();
        names
    }
}

/// One namespace's directory: `$XDG_DATA_HOME/vansite/<namespace>/`.
#[derive(Debug, Clone)]
pub struct SiteDir {
    pub namespace: String,
    pub root: PathBuf,
}

impl SiteDir {
    /// Skupper v2 YAML, one file per object: the site's source of truth.
    pub fn resources(&self) -> PathBuf {
        self.root.join("resources")
    }

    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime")
    }

    /// Mounted into the router container as its config directory.
    pub fn router_config_dir(&self) -> PathBuf {
        self.runtime().join("router")
    }

    pub fn router_config(&self) -> PathBuf {
        self.router_config_dir().join("skrouterd.json")
    }

    /// Leaf certificates, `<name>/{ca.crt,tls.crt,tls.key}`; mounted into the router container.
    pub fn certs(&self) -> PathBuf {
        self.runtime().join("certs")
    }

    /// The site's CAs, never mounted into a container.
    pub fn issuers(&self) -> PathBuf {
        self.runtime().join("issuers")
    }

    /// The CAs of the incoming links this site issued, one directory per link; never mounted.
    pub fn link_issuers(&self) -> PathBuf {
        self.runtime().join("link-issuers")
    }

    /// The CAs `certs rotate --ca` replaced, trusted beside their successors.
    pub fn prior_issuers(&self) -> PathBuf {
        self.runtime().join("prior-issuers")
    }

    /// The grants' state (redemptions, expiry) and their locks, `<uid>.json` and `<uid>.lock`.
    pub fn grants(&self) -> PathBuf {
        self.runtime().join("grants")
    }

    /// The web console's access token (0600), made by the first `vansite console`.
    pub fn console_token(&self) -> PathBuf {
        self.runtime().join("console.token")
    }

    pub fn router_log(&self) -> PathBuf {
        self.runtime().join("logs/router.log")
    }

    /// Where earlier versions copied vansite, its loader and its libraries to run forwarders
    /// in containers of the router image; an apply removes it.
    pub fn legacy_forwarder_bundle(&self) -> PathBuf {
        self.runtime().join("forwarder")
    }

    pub fn grant_server_log(&self) -> PathBuf {
        self.runtime().join("logs/grant-server.log")
    }

    pub fn console_log(&self) -> PathBuf {
        self.runtime().join("logs/console.log")
    }

    pub fn forwarder_log(&self, listener: &str) -> PathBuf {
        self.runtime().join(format!("logs/listener-{listener}.log"))
    }

    pub fn exists(&self) -> bool {
        self.root.exists()
    }

    /// The marker of a change under way (`ops::apply::journal`): the command, written before
    /// its first effect and removed once its resources are saved or it was undone.
    pub fn journal(&self) -> PathBuf {
        self.root.join(".applying")
    }

    /// The command whose change was cut short, if one was.
    pub fn interrupted_command(&self) -> Option<String> {
        std::fs::read_to_string(self.journal()).ok()
    }
}

//! The router's quadlet: one skupper-router container per namespace, on the host's network,
//! running as the user (so the files it shares with vansite stay the user's), its output
//! appended to a log file that vansite can show when the router fails.

use std::path::PathBuf;

use super::{CONNECTION_OPEN_FILES, SERVICE_ULIMITS};
use crate::quadlet::{Container, Install, QuadletFile, Service, Unit, Volume};
use crate::render::unit_names;

/// The image vansite runs unless told otherwise.
pub const DEFAULT_ROUTER_IMAGE: &str = "quay.io/skupper/skupper-router:3.5.1";

/// Where the image's router looks for its configuration and certificates.
const CONFIG_DIR_IN_CONTAINER: &str = "/etc/skupper-router/config";
pub const CERTS_DIR_IN_CONTAINER: &str = "/etc/skupper-router/runtime/certs";
const SSL_PROFILE_BASE_PATH: &str = "/etc/skupper-router";

/// First start may pull the image, longer than systemd's default 90 s.
const START_TIMEOUT_SEC: u32 = 300;

/// What the router unit depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterUnitSpec {
    pub namespace: String,
    pub site_id: String,
    pub site_name: String,
    pub image: String,
    /// The user's uid/gid, also used inside the container.
    pub uid: u32,
    pub gid: u32,
    /// The namespace's site directory (`$XDG_DATA_HOME/vansite/<ns>`).
    pub site_dir: PathBuf,
    /// Receives the router's stdout and stderr; its directory must exist before the unit starts.
    pub log_file: PathBuf,
}

/// `vansite-<ns>-router`: the quadlet file's stem, the service's and the container's name.
pub fn router_unit_name(namespace: &str) -> String {
    super::unit_names::router(namespace)
}

/// The router's quadlet file (`vansite-<ns>-router.container`).
pub fn router_quadlet(spec: &RouterUnitSpec) -> QuadletFile {
    let name = router_unit_name(&spec.namespace);
    let runtime = spec.site_dir.join("runtime");
    QuadletFile {
        unit: Unit {
            description: Some(format!(
                "vansite: Skupper router of site {} (namespace {})",
                spec.site_name, spec.namespace
            )),
            ..Unit::default()
        },
        container: Container {
            volumes: vec![
                Volume {
                    host_path: runtime.join("router"),
                    container_path: CONFIG_DIR_IN_CONTAINER.into(),
                    options: vec!["z".into()],
                },
                Volume {
                    host_path: runtime.join("certs"),
                    container_path: CERTS_DIR_IN_CONTAINER.into(),
                    options: vec!["z".into()],
                },
            ],
            environment: [
                ("APPLICATION_NAME", "skupper-router".to_string()),
                (
                    "QDROUTERD_CONF",
                    format!("{CONFIG_DIR_IN_CONTAINER}/skrouterd.json"),
                ),
                ("QDROUTERD_CONF_TYPE", "json".to_string()),
                ("SKUPPER_SITE_ID", spec.site_id.clone()),
                ("SSL_PROFILE_BASE_PATH", SSL_PROFILE_BASE_PATH.to_string()),
            ]
            .map(|(name, value)| (name.to_string(), value))
            .to_vec(),
            labels: [
                ("application", "skupper-v2".to_string()),
                ("skupper.io/v2-component", "router".to_string()),
                ("skupper.io/site-id", spec.site_id.clone()),
                ("io.vansite.namespace", spec.namespace.clone()),
            ]
            .map(|(name, value)| (name.to_string(), value))
            .to_vec(),
            podman_args: vec![SERVICE_ULIMITS.into()],
            ..Container::on_host_network_as(&name, &spec.image, spec.uid, spec.gid)
        },
        service: Service {
            timeout_start_sec: Some(START_TIMEOUT_SEC),
            limit_nofile: Some(CONNECTION_OPEN_FILES),
            ..Service::restarting_with_log(&spec.log_file)
        },
        install: Install {
            wanted_by: vec![unit_names::DEFAULT_TARGET.into()],
        },
        name,
    }
}

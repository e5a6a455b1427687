//! `vansite delete`: stop the services' forwarders, the grant server and the router, remove their
//! units, containers and every file of the site (grants and their state included).
//! Safe to run again after a partial delete: each step is skipped when already done.

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::podman::PodmanService;
use crate::quadlet::router::router_unit_name;
use crate::systemd::{ActiveState, LoadState, UserManager};

use super::{files, Paths};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOutcome {
    pub namespace: String,
    /// What was stopped or removed, in words (`unit X (stopped)`, a path, `container X`).
    pub removed: Vec<String>,
}

pub async fn delete(
    paths: &Paths,
    namespace: &str,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<DeleteOutcome, Error> {
    let manager = UserManager::connect().await?;
    let _lock = paths.lock(namespace, progress)?;
    let site_dir = paths.site(namespace);
    let name = router_unit_name(namespace);
    let unit = format!("{name}.service");
    let quadlet_file = paths.quadlet_dir().join(format!("{name}.container"));
    let grant_socket = paths
        .systemd_user_dir()
        .join(crate::grants::units::socket_unit(namespace));
    if !site_dir.exists() && !quadlet_file.exists() && !grant_socket.exists() {
        return Err(Error::NoSite {
            namespace: namespace.to_string(),
            present: paths.namespaces(),
        });
    }
    let mut removed = super::services::remove_all_forwarders(paths, namespace, &manager).await?;
    let state = manager.unit_state(&unit).await?;
    if state.load_state == LoadState::Loaded && state.active_state != ActiveState::Inactive {
        progress(&format!("stopping {unit}"));
        manager.stop(&unit, timeout).await?;
        removed.push(format!("unit {unit} (stopped)"));
    }
    if files::remove_if_present(&quadlet_file)
        .map_err(Error::file("cannot remove", &quadlet_file))?
    {
        removed.push(quadlet_file.display().to_string());
        manager.reload().await?;
    }
    removed.extend(crate::grants::units::remove(&manager, paths, namespace).await?);
    // Quadlet containers are removed when their unit stops; this covers a unit that never ran
    // its stop (a killed manager, a container started by hand under the same name).
    let podman = PodmanService::connect(&manager).await?;
    if podman.container_info(&name).await?.is_some() {
        podman.remove_container(&name).await?;
        removed.push(format!("container {name}"));
    }
    if files::remove_if_present(&site_dir.root)
        .map_err(Error::file("cannot remove", &site_dir.root))?
    {
        removed.push(site_dir.root.display().to_string());
    }
    Ok(DeleteOutcome {
        namespace: namespace.to_string(),
        removed,
    })
}

//! `vansite delete`: stop the console, the services' forwarders, the grant server and the
//! router, remove their units (and systemd's records of them), the container, every file of
//! the site and its lock (`ops::apply::SiteSession::delete`). Safe to run again after a
//! partial delete.

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::ops::apply::SiteSession;
use crate::render::forwarder_units::forwarder_unit_name;
use crate::render::router_unit::router_unit_name;

use crate::store::Paths;

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
    let session = SiteSession::open(paths, namespace, progress).await?;
    let quadlet_file = paths
        .quadlet_dir()
        .join(format!("{}.container", router_unit_name(namespace)));
    let grant_socket = paths
        .systemd_user_dir()
        .join(crate::render::grant_units::socket_unit(namespace));
    let console_socket = paths
        .systemd_user_dir()
        .join(crate::render::console_units::socket_unit(namespace));
    let forwarder_prefix = forwarder_unit_name(namespace, "");
    let has_forwarders = std::fs::read_dir(paths.systemd_user_dir())
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&forwarder_prefix)
        });
    if !session.site_dir.exists()
        && !quadlet_file.exists()
        && !grant_socket.exists()
        && !console_socket.exists()
        && !has_forwarders
    {
        return Err(crate::store::StoreError::NoSite {
            namespace: namespace.to_string(),
            present: paths.namespaces(),
        }
        .into());
    }
    let removed = session.delete(timeout, progress).await?;
    Ok(DeleteOutcome {
        namespace: namespace.to_string(),
        removed,
    })
}

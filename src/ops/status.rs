//! `vansite status`: the site's identity and mode from its resources, its router unit from
//! systemd (state, main process, start), its container's id from the file quadlet's podman
//! writes, and everything the router knows over one management connection. podman's REST
//! service is asked only for `--containers`: it starts through its socket on demand, which
//! costs more than all the rest together. Broken is a state to report, not an error to hide.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::Error;
use crate::grants::grant_port;
use crate::ops::grant_server::{self as units, GrantServerStatus};
use crate::ops::token;
use crate::platform::podman::{PodmanError, PodmanService};
use crate::platform::systemd::{ActiveState, UserManager};
use crate::render::router_unit::router_unit_name;

use super::expiry::{self, ExpiryReport, ExpiryState};
use super::link::{
    link_statuses, IncomingLink, LinkStatus, NetworkRouter, RouterView, MANAGEMENT_TIMEOUT,
};
use super::services::{services_status, ServiceStatus, ServicesView};
use super::{rfc3339, unix_seconds};
use crate::model::RouterMode;
use crate::model::SiteResources;
use crate::ops::apply::{journal, local_port, with_site_management};
use crate::plan::ROUTER_IMAGE_ANNOTATION;
use crate::router::management::ManagementError;
use crate::store::{Paths, SiteDir, SiteLock};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    pub namespace: String,
    pub site: SiteInfo,
    pub router: RouterInfo,
    /// The grant server's units, once the site issued a token.
    pub grant_server: Option<GrantServerStatus>,
    /// Listeners and connectors, with their forwarders' and the router's state.
    pub services: Vec<ServiceStatus>,
    /// Every namespace of this user that has a site.
    pub namespaces: Vec<String>,
    /// The command that was interrupted midway, when one was (`.applying`).
    pub interrupted: Option<String>,
    /// The site's links, as its router reports them.
    pub links: Vec<LinkStatus>,
    /// The site's certificate that expires first (issuers, router, links, services).
    pub soonest_expiry: Option<ExpiryReport>,
    /// Links other sites made to this one; empty when the router does not answer.
    pub incoming_links: Vec<IncomingLink>,
    /// The routers reachable in the network (this one included), from the router's
    /// `router.node` entities; empty when the router does not answer.
    pub network: Vec<NetworkRouter>,
    pub healthy: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteInfo {
    pub name: String,
    pub id: String,
    pub mode: RouterMode,
    pub management_port: u16,
    pub link_access: Vec<Endpoint>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub role: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterInfo {
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub image: String,
    pub log: String,
    /// The unit's main process (podman's conmon, which lives as long as the container).
    pub main_pid: Option<u32>,
    /// While the unit runs.
    pub container: Option<ContainerStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    /// From the container-id file quadlet's `podman run --cidfile` writes; None without one.
    pub id: Option<String>,
    /// When the unit last became active (RFC 3339, UTC): a quadlet container is created anew
    /// on every start, so this is when the running container started.
    pub started_at: Option<String>,
    /// podman's own state of the container (`running`, `exited`, ...), only when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podman_status: Option<String>,
}

/// What `status` asks beyond systemd, the site's files and the router.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusRequest {
    /// Also podman's view of the router's container.
    pub containers: bool,
}

pub async fn status(
    paths: &Paths,
    namespace: &str,
    request: StatusRequest,
) -> Result<SiteStatus, Error> {
    let site_dir = paths.site(namespace);
    // A journal is a sign of an interrupted command only when no command runs.
    let interrupted =
        SiteLock::unless_held(&paths.lock_file(namespace), || journal::read(&site_dir)).flatten();
    let Some(resources) = site_dir.load_resources()? else {
        return Err(paths.no_site(namespace).into());
    };
    let mut problems = Vec::new();
    if let Some(command) = &interrupted {
        problems.push(format!(
            "an earlier `vansite {command}` was interrupted: the host may hold part of that \
             change; the next vansite command that changes this site (e.g. `vansite -n \
             {namespace} init`) takes it back"
        ));
    }
    let name = router_unit_name(namespace);
    let unit = format!("{name}.service");
    // The router is asked while systemd is: both are round trips to other processes, and a
    // router that does not run refuses the connection at once (its answer is then unused).
    let router_unit = async {
        let manager = UserManager::connect().await?;
        let state = manager.unit_state(&unit).await?;
        Ok::<_, Error>((manager, state))
    };
    let (router_unit, answers) = tokio::join!(router_unit, router_answers(&site_dir, &resources));
    let (manager, state) = router_unit?;
    if state.active_state != ActiveState::Active || state.sub_state != "running" {
        problems.push(format!(
            "router unit {unit} is {}/{}",
            state.active_state, state.sub_state
        ));
    }
    let running = state.active_state == ActiveState::Active;
    let mut container = running.then(|| ContainerStatus {
        name: name.clone(),
        id: read_container_id(&paths.runtime_dir, &name),
        started_at: state.active_since.map(rfc3339),
        podman_status: None,
    });
    if request.containers {
        match podman_status(&manager, &name).await {
            Ok(Some(podman)) => {
                if podman != "running" {
                    problems.push(format!("router container {name} is {podman}"));
                }
                if let Some(container) = &mut container {
                    container.podman_status = Some(podman);
                }
            }
            Ok(None) => problems.push(format!("router container {name} does not exist")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let now = unix_seconds(SystemTime::now());
    let soonest_expiry =
        expiry::soonest(&expiry::site_certificates(&site_dir)).map(|cert| cert.report(now));
    if let Some(expired) = soonest_expiry
        .as_ref()
        .filter(|e| e.state == ExpiryState::Expired)
    {
        problems.push(format!(
            "certificate {} expired at {}: run `vansite doctor` for the fix",
            expired.certificate, expired.not_after
        ));
    }
    let redeemable = token::redeemable_tokens(&site_dir, &resources)?;
    let grant_server = units::status(
        &manager,
        paths,
        namespace,
        grant_port(&resources),
        redeemable,
    )
    .await?;
    problems.extend(grant_server.as_ref().and_then(|g| g.problem.clone()));
    let view = if running {
        answers.map_err(|e| format!("the router's management does not answer: {e}"))
    } else {
        Err("the router is not running".to_string())
    };
    if let (Err(why), true) = (&view, running) {
        problems.push(why.clone());
    }
    let (services, service_problems) = services_status(
        &manager,
        &site_dir,
        &resources,
        view.as_ref().ok().map(|(services, _)| services),
    )
    .await?;
    problems.extend(service_problems);
    let view = view.map(|(_, links)| links);
    let links = link_statuses(&resources, view.as_ref().map_err(String::as_str));
    let network = view.as_ref().map(RouterView::network).unwrap_or_default();
    let incoming_links = view
        .as_ref()
        .map(RouterView::incoming_links)
        .unwrap_or_default();
    let site = &resources.site;
    Ok(SiteStatus {
        namespace: namespace.to_string(),
        site: SiteInfo {
            name: site.metadata.name.clone(),
            id: site.metadata.uid.clone(),
            mode: resources.router_mode(),
            management_port: local_port(&resources),
            link_access: resources
                .link_endpoints()
                .into_iter()
                .map(|(role, port)| Endpoint { role, port })
                .collect(),
        },
        router: RouterInfo {
            unit,
            load_state: state.load_state.to_string(),
            active_state: state.active_state.to_string(),
            sub_state: state.sub_state.clone(),
            image: site
                .metadata
                .annotations
                .get(ROUTER_IMAGE_ANNOTATION)
                .cloned()
                .unwrap_or_default(),
            log: site_dir.router_log().display().to_string(),
            main_pid: state.main_pid,
            container,
        },
        grant_server,
        services,
        namespaces: paths.namespaces(),
        interrupted,
        links,
        soonest_expiry,
        incoming_links,
        network,
        healthy: problems.is_empty(),
        problems,
    })
}

/// Everything `status` asks the router, over one management connection.
async fn router_answers(
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Result<(ServicesView, RouterView), ManagementError> {
    with_site_management(site_dir, resources, MANAGEMENT_TIMEOUT, async |client| {
        Ok((
            ServicesView::query(client).await?,
            RouterView::query(client).await?,
        ))
    })
    .await
}

/// podman's state of the container named `name`, None when podman has no such container.
async fn podman_status(manager: &UserManager, name: &str) -> Result<Option<String>, PodmanError> {
    let podman = PodmanService::connect(manager).await?;
    Ok(podman.container_info(name).await?.map(|info| info.status))
}

/// The id in `<runtime dir>/<unit>.cid`, which quadlet's `podman run --cidfile=%t/%N.cid`
/// writes when it creates the container and its `podman rm --cidfile` removes.
fn read_container_id(runtime_dir: &Path, unit_name: &str) -> Option<String> {
    let id = std::fs::read_to_string(runtime_dir.join(format!("{unit_name}.cid"))).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723)),
            "2000-02-29T01:02:03Z"
        );
    }
}

//! `vansite status`: the site's identity and mode from its resources, its router unit from
//! systemd, its container from podman. Broken is a state to report, not an error to hide.

use std::time::SystemTime;

use serde::Serialize;

use crate::error::Error;
use crate::grants::grant_port;
use crate::ops::grant_server::{self as units, GrantServerStatus};
use crate::ops::token;
use crate::platform::podman::PodmanService;
use crate::platform::systemd::{ActiveState, UserManager};
use crate::render::router_unit::router_unit_name;

use super::expiry::{self, ExpiryReport, ExpiryState};
use super::link::{link_statuses, IncomingLink, LinkStatus, NetworkRouter, RouterView};
use super::services::{services_status, ServiceStatus};
use super::{rfc3339, unix_seconds};
use crate::model::RouterMode;
use crate::ops::apply::{journal, local_port};
use crate::plan::ROUTER_IMAGE_ANNOTATION;
use crate::store::Paths;

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
    pub container: Option<ContainerStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub id: String,
    pub status: String,
    /// RFC 3339, UTC.
    pub started_at: Option<String>,
}

pub async fn status(paths: &Paths, namespace: &str) -> Result<SiteStatus, Error> {
    let site_dir = paths.site(namespace);
    let interrupted = journal::read(&site_dir);
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
    let manager = UserManager::connect().await?;
    let name = router_unit_name(namespace);
    let unit = format!("{name}.service");
    let state = manager.unit_state(&unit).await?;
    if state.active_state != ActiveState::Active || state.sub_state != "running" {
        problems.push(format!(
            "router unit {unit} is {}/{}",
            state.active_state, state.sub_state
        ));
    }
    let container = match PodmanService::connect(&manager).await {
        Ok(podman) => match podman.container_info(&name).await {
            Ok(Some(info)) => {
                if info.status != "running" {
                    problems.push(format!("router container {name} is {}", info.status));
                }
                Some(ContainerStatus {
                    name: name.clone(),
                    id: info.id,
                    status: info.status,
                    started_at: info.started_at.map(rfc3339),
                })
            }
            Ok(None) => {
                problems.push(format!("router container {name} does not exist"));
                None
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
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
    let (services, service_problems) = services_status(&manager, &site_dir, &resources).await?;
    problems.extend(service_problems);
    let view = if state.active_state == ActiveState::Active {
        RouterView::query(&site_dir, &resources)
            .await
            .map_err(|e| format!("the router's management does not answer: {e}"))
    } else {
        Err("the router is not running".to_string())
    };
    if let (Err(why), ActiveState::Active) = (&view, &state.active_state) {
        problems.push(why.clone());
    }
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

//! `vansite init`: make this host a running Skupper site, or bring an existing one back to
//! running. Every decision is rendered from the resources first (certificates, skrouterd.json,
//! the router's quadlet); the files are written atomically, the resources last (they are the
//! commit point: a killed init leaves no Site, and the next init starts clean); then systemd
//! is asked to (re)start the router, and init waits until the router answers management.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::certs;
use crate::error::Error;
use crate::quadlet::router::{router_quadlet, RouterUnitSpec};
use crate::quadlet::version::detect_generator_version;
use crate::resources::{
    check_name, ObjectMeta, RouterAccess, RouterAccessRole, RouterAccessSpec, Site, SiteResources,
    SiteSpec, LOCAL_ROUTER_ACCESS,
};
use crate::router::config::{render, RenderContext};
use crate::router::management::{ClientTls, ManagementClient};
use crate::settings::{Platform, SKUPPER_VERSION};
use crate::systemd::{ActiveState, JobResult, UserManager};

use super::status::router_mode;
use super::{files, Paths, SiteDir};

/// Annotation on the Site recording the router image vansite runs for it.
pub const ROUTER_IMAGE_ANNOTATION: &str = "vansite.io/router-image";
const LOCAL_PORT: u16 = 5671;
const INTER_ROUTER_PORT: u16 = 55671;
const EDGE_PORT: u16 = 45671;
/// Bound on stopping a router that failed to start.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many ports above a default are tried when it is taken.
const PORT_SEARCH: u16 = 100;

/// What the person asked for. `None` means "not given": an existing site keeps its value.
#[derive(Debug, Clone)]
pub struct InitRequest {
    pub namespace: String,
    pub platform: Platform,
    pub name: Option<String>,
    pub edge: Option<bool>,
    pub link_access: Option<bool>,
    pub hosts: Vec<String>,
    pub router_image: Option<String>,
    /// The image when neither the request nor the existing site names one.
    pub default_router_image: String,
    pub timeout: Duration,
}

/// What init did, for the person.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    pub namespace: String,
    pub site_name: String,
    pub site_id: String,
    pub edge: bool,
    pub created: bool,
    pub restarted: bool,
    pub unit: String,
    pub management_port: u16,
    /// (role, port) of each link access endpoint.
    pub link_access: Vec<(String, u16)>,
    pub linger: bool,
}

pub async fn init(
    paths: &Paths,
    request: InitRequest,
    progress: &dyn Fn(&str),
) -> Result<InitOutcome, Error> {
    match request.platform {
        // The only one so far: the router unit below is a podman quadlet.
        Platform::Podman => {}
    }
    check_name(&request.namespace)
        .map_err(|problem| Error::Usage(format!("namespace: {problem} (an RFC 1123 label)")))?;
    if request.edge == Some(true) && request.link_access == Some(true) {
        return Err(Error::Usage(
            "an edge site cannot accept links: drop --enable-link-access, or use --router-mode interior".into(),
        ));
    }
    // Everything that can refuse before a file is written does so here: the podman floor, the bus.
    let podman = detect_generator_version()?;
    let manager = UserManager::connect().await?;
    let site_dir = paths.site(&request.namespace);
    let _lock = paths.lock(&request.namespace, progress)?;

    let existing = site_dir.load_resources()?;
    let created = existing.is_none();
    let resources = match existing {
        Some(current) => reconcile(current, &request)?,
        None => {
            // A Site-less directory is what a killed init leaves: start it over.
            files::remove_if_present(&site_dir.root)
                .map_err(Error::file("cannot clean", &site_dir.root))?;
            new_site(paths, &request)?
        }
    };
    files::remove_leftover_temps(&site_dir.root)
        .map_err(Error::file("cannot clean", &site_dir.root))?;

    progress("writing certificates and router configuration");
    let mut changed = site_dir.save_certificates(&certs::site_certificates(
        &resources,
        &site_dir.load_certificates()?,
    )?)?;
    let context = render_context(&resources);
    let config = site_dir.router_config();
    files::create_dir(&site_dir.router_config_dir(), files::PRIVATE_DIR)
        .map_err(Error::file("cannot create", site_dir.router_config_dir()))?;
    changed |= files::write_atomic(
        &config,
        render(&resources, &context).as_bytes(),
        files::PUBLIC,
    )
    .map_err(Error::file("cannot write", &config))?;

    let spec = RouterUnitSpec {
        namespace: request.namespace.clone(),
        site_id: resources.site.metadata.uid.clone(),
        site_name: resources.site_name().to_string(),
        image: resources.site.metadata.annotations[ROUTER_IMAGE_ANNOTATION].clone(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        site_dir: site_dir.root.clone(),
        log_file: site_dir.router_log(),
    };
    let unit_file = router_quadlet(&spec);
    let unit_text = unit_file.render(podman)?;
    let quadlet_dir = paths.quadlet_dir();
    files::create_dir(&quadlet_dir, 0o755).map_err(Error::file("cannot create", &quadlet_dir))?;
    let quadlet_path = quadlet_dir.join(unit_file.file_name());
    let unit_changed = files::write_atomic(&quadlet_path, unit_text.as_bytes(), files::PUBLIC)
        .map_err(Error::file("cannot write", &quadlet_path))?;
    let log = site_dir.router_log();
    if let Some(dir) = log.parent() {
        files::create_dir(dir, files::PRIVATE_DIR).map_err(Error::file("cannot create", dir))?;
    }
    site_dir.save_resources(&resources)?;

    let unit = unit_file.service_name();
    let mut state = manager.unit_state(&unit).await?;
    if unit_changed || state.load_state != crate::systemd::LoadState::Loaded {
        progress("reloading systemd (quadlet generator)");
        manager.reload().await?;
        state = manager.unit_state(&unit).await?;
    }
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let running = state.active_state == ActiveState::Active;
    let restarted = running && (changed || unit_changed);
    let job = if restarted {
        progress(&format!("restarting {unit}"));
        Some(manager.restart(&unit, request.timeout).await?)
    } else if !running {
        progress(&format!("starting {unit}"));
        Some(manager.start(&unit, request.timeout).await?)
    } else {
        None
    };
    let management_port = local_port(&resources);
    let failed = |state: String| Error::RouterFailed {
        namespace: request.namespace.clone(),
        unit: unit.clone(),
        state,
        log: log.clone(),
        log_tail: log_tail(&log, log_start),
    };
    let started = async {
        if let Some(result) = job.filter(|r| *r != JobResult::Done) {
            let state = manager.unit_state(&unit).await?;
            return Err(failed(format!("{state} (job {result:?})")));
        }
        progress("waiting for the router to answer");
        wait_until_answering(
            &manager,
            &unit,
            &site_dir,
            management_port,
            request.timeout,
            &failed,
            |state| Error::RouterTimeout {
                namespace: request.namespace.clone(),
                unit: unit.clone(),
                state,
                seconds: request.timeout.as_secs(),
                log: log.clone(),
            },
        )
        .await
    };
    if let Err(error) = started.await {
        // Left alone, systemd would restart a router that cannot start forever; the site's
        // files stay, so the next init (with the cause fixed) starts it again.
        let _ = manager.stop(&unit, STOP_TIMEOUT).await;
        return Err(error);
    }

    let user = std::env::var("USER").unwrap_or_default();
    Ok(InitOutcome {
        namespace: request.namespace.clone(),
        site_name: resources.site_name().to_string(),
        site_id: resources.site.metadata.uid.clone(),
        edge: resources.is_edge(),
        created,
        restarted,
        unit,
        management_port,
        link_access: link_endpoints(&resources),
        linger: crate::systemd::linger_enabled(&user),
    })
}

/// The router is up when its unit is active and its management listener answers (TLS, SASL
/// EXTERNAL, AMQP open): the same path every later live change takes. A unit that fails or
/// is restarted by systemd meanwhile (its restart count grows) is a failed start.
pub(crate) async fn wait_until_answering(
    manager: &UserManager,
    unit: &str,
    site_dir: &SiteDir,
    port: u16,
    timeout: Duration,
    failed: impl Fn(String) -> Error,
    timed_out: impl Fn(String) -> Error,
) -> Result<(), Error> {
    let tls = ClientTls::from_dir(site_dir.certs().join("skupper-local-client"))?;
    let deadline = Instant::now() + timeout;
    let restarts_at_start = manager.unit_state(unit).await?.restarts;
    loop {
        let state = manager.unit_state(unit).await?;
        let broken = matches!(
            state.active_state,
            ActiveState::Failed | ActiveState::Inactive
        ) || state.sub_state == "auto-restart"
            || state.restarts > restarts_at_start;
        if broken {
            return Err(failed(state.to_string()));
        }
        if state.active_state == ActiveState::Active {
            if let Ok(client) =
                ManagementClient::connect("127.0.0.1", port, &tls, Duration::from_secs(2)).await
            {
                let _ = client.close().await;
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(timed_out(state.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A new site's resources: the Site, the local management access, and link access if asked.
fn new_site(paths: &Paths, request: &InitRequest) -> Result<SiteResources, Error> {
    let name = match &request.name {
        Some(name) => name.clone(),
        None => default_site_name(),
    };
    check_name(&name)
        .map_err(|problem| Error::Usage(format!("site name: {problem} (an RFC 1123 label)")))?;
    let taken = ports_of_other_sites(paths, &request.namespace);
    let edge = request.edge.unwrap_or(false);
    let mut site = Site {
        metadata: ObjectMeta::named(&name),
        spec: SiteSpec {
            edge,
            ..SiteSpec::default()
        },
    };
    site.metadata.uid = uuid::Uuid::new_v4().to_string();
    let image = request
        .router_image
        .clone()
        .unwrap_or_else(|| request.default_router_image.clone());
    site.metadata
        .annotations
        .insert(ROUTER_IMAGE_ANNOTATION.into(), image);
    let local_port = free_port("127.0.0.1", LOCAL_PORT, &taken)?;
    let mut accesses = vec![RouterAccess {
        metadata: ObjectMeta::named(LOCAL_ROUTER_ACCESS),
        spec: RouterAccessSpec {
            roles: vec![RouterAccessRole {
                name: "normal".into(),
                port: local_port,
            }],
            tls_credentials: "skupper-local-server".into(),
            issuer: "skupper-local-ca".into(),
            bind_host: "127.0.0.1".into(),
            ..RouterAccessSpec::default()
        },
    }];
    if request.link_access.unwrap_or(false) {
        site.spec.link_access = "default".into();
        let mut taken = taken.clone();
        taken.insert(local_port);
        let inter_router = free_port("0.0.0.0", INTER_ROUTER_PORT, &taken)?;
        taken.insert(inter_router);
        let edge_port = free_port("0.0.0.0", EDGE_PORT, &taken)?;
        let mut hosts = request.hosts.clone();
        let hostname = host_name();
        if !hosts.contains(&hostname) {
            hosts.push(hostname);
        }
        accesses.push(RouterAccess {
            metadata: ObjectMeta::named(&name),
            spec: RouterAccessSpec {
                roles: vec![
                    RouterAccessRole {
                        name: "inter-router".into(),
                        port: inter_router,
                    },
                    RouterAccessRole {
                        name: "edge".into(),
                        port: edge_port,
                    },
                ],
                tls_credentials: name.clone(),
                issuer: "skupper-site-ca".into(),
                subject_alternative_names: hosts,
                ..RouterAccessSpec::default()
            },
        });
    } else if !request.hosts.is_empty() {
        return Err(Error::Usage(
            "--host names this host for sites that link to it: add --enable-link-access".into(),
        ));
    }
    let resources = accesses
        .into_iter()
        .map(crate::resources::Resource::RouterAccess);
    let all = std::iter::once(crate::resources::Resource::Site(site))
        .chain(resources)
        .collect();
    Ok(SiteResources::new(&request.namespace, all)?)
}

/// An existing site: options given explicitly must match it (init does not silently reshape
/// a site that may already have links); only the router image may change (an upgrade).
fn reconcile(mut current: SiteResources, request: &InitRequest) -> Result<SiteResources, Error> {
    let mut differences = Vec::new();
    if let Some(name) = request.name.as_ref().filter(|n| *n != current.site_name()) {
        differences.push(format!("name '{}' (asked: '{name}')", current.site_name()));
    }
    if let Some(edge) = request.edge.filter(|e| *e != current.is_edge()) {
        differences.push(format!(
            "router mode {} (asked: {})",
            router_mode(current.is_edge()),
            router_mode(edge)
        ));
    }
    let has_access = current.site.spec.link_access_enabled();
    if let Some(access) = request.link_access.filter(|a| *a != has_access) {
        let word = |on: bool| if on { "enabled" } else { "disabled" };
        differences.push(format!(
            "link access {} (asked: {})",
            word(has_access),
            word(access)
        ));
    }
    if !request.hosts.is_empty() {
        let current_hosts = current
            .router_access(current.site_name())
            .map(|a| a.spec.subject_alternative_names.clone())
            .unwrap_or_default();
        if request.hosts.iter().any(|h| !current_hosts.contains(h)) {
            let current_hosts = match current_hosts.is_empty() {
                true => "none".to_string(),
                false => current_hosts.join(", "),
            };
            differences.push(format!(
                "hosts {current_hosts} (asked: {})",
                request.hosts.join(", ")
            ));
        }
    }
    if !differences.is_empty() {
        return Err(Error::SiteConflict {
            namespace: request.namespace.clone(),
            differences: differences.join(", "),
        });
    }
    let annotations = &mut current.site.metadata.annotations;
    match (
        &request.router_image,
        annotations.contains_key(ROUTER_IMAGE_ANNOTATION),
    ) {
        (Some(image), _) => {
            annotations.insert(ROUTER_IMAGE_ANNOTATION.into(), image.clone());
        }
        (None, false) => {
            annotations.insert(
                ROUTER_IMAGE_ANNOTATION.into(),
                request.default_router_image.clone(),
            );
        }
        (None, true) => {}
    }
    Ok(current)
}

/// What `skrouterd.json` is rendered with for this site.
pub fn render_context(resources: &SiteResources) -> RenderContext {
    RenderContext {
        site_id: resources.site.metadata.uid.clone(),
        router_id: router_id(&resources.site),
        skupper_version: SKUPPER_VERSION.into(),
        platform: "podman".into(),
    }
}

/// Unique in the network and stable across restarts (Skupper uses name + start time).
fn router_id(site: &Site) -> String {
    let short: String = site
        .metadata
        .uid
        .chars()
        .filter(|c| *c != '-')
        .take(8)
        .collect();
    format!("{}-{short}", site.metadata.name)
}

pub fn local_port(resources: &SiteResources) -> u16 {
    resources
        .router_access(LOCAL_ROUTER_ACCESS)
        .and_then(|a| a.spec.roles.first())
        .map(|r| r.port)
        .unwrap_or(LOCAL_PORT)
}

pub fn link_endpoints(resources: &SiteResources) -> Vec<(String, u16)> {
    resources
        .router_access(resources.site_name())
        .map(|a| {
            a.spec
                .roles
                .iter()
                .map(|r| (r.name.clone(), r.effective_port()))
                .collect()
        })
        .unwrap_or_default()
}

/// Ports recorded by the user's other sites: their routers may be stopped right now, so a
/// probe alone would not see them.
fn ports_of_other_sites(paths: &Paths, namespace: &str) -> BTreeSet<u16> {
    paths
        .namespaces()
        .into_iter()
        .filter(|ns| ns != namespace)
        .filter_map(|ns| paths.site(&ns).load_resources().ok().flatten())
        .flat_map(|set| set.router_accesses.into_iter())
        .flat_map(|a| a.spec.roles.into_iter().map(|r| r.effective_port()))
        .collect()
}

/// `preferred`, or the next port that is free to bind and not taken by another site.
fn free_port(bind: &str, preferred: u16, taken: &BTreeSet<u16>) -> Result<u16, Error> {
    (preferred..preferred.saturating_add(PORT_SEARCH))
        .find(|port| !taken.contains(port) && std::net::TcpListener::bind((bind, *port)).is_ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "ports {preferred} to {} on {bind} are all in use or taken by other sites; free one of them",
                preferred.saturating_add(PORT_SEARCH - 1)
            ))
        })
}

fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The host's short name as an RFC 1123 label (what `hostname -s` gives, lower-cased).
fn default_site_name() -> String {
    let short = host_name()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let label: String = short
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-').to_string();
    if label.is_empty() {
        "site".into()
    } else {
        label
    }
}

/// The router's log lines written since `from` (this start), the last 20 of them.
fn log_tail(log: &std::path::Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let recent = String::from_utf8_lossy(text.get(from as usize..).unwrap_or(&text));
    let lines: Vec<&str> = recent.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        "  (nothing: the container may not have started at all)".into()
    } else {
        tail.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_skipped() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let chosen = free_port("127.0.0.1", port, &BTreeSet::new()).unwrap();
        assert_ne!(chosen, port);
        let recorded: BTreeSet<u16> = [chosen].into();
        assert_ne!(
            free_port("127.0.0.1", port, &recorded).unwrap(),
            chosen,
            "ports of other sites are skipped too"
        );
    }

    #[test]
    fn router_ids_are_stable_and_unique() {
        let mut site = Site {
            metadata: ObjectMeta::named("west"),
            spec: SiteSpec::default(),
        };
        site.metadata.uid = "6f1c2a3b-0000-4000-8000-000000000000".into();
        assert_eq!(router_id(&site), "west-6f1c2a3b");
    }
}

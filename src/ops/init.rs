//! `vansite init`: make this host a running Skupper site, or bring an existing one back to
//! running. A new site's resources are made here (names, ports, the image); an existing
//! site's must match what was asked (init does not reshape a site: `site update` does). Then
//! the one apply (`ops::apply`) renders and writes everything, starts the router and waits
//! until it answers management; a new site that cannot start is removed again.

use std::time::Duration;

use crate::error::Error;
use crate::grants::grant_port;
use crate::model::{
    check_name, ObjectMeta, Resource, RouterAccess, RouterAccessRole, RouterAccessSpec, RouterMode,
    Site, SiteResources, SiteSpec, LOCAL_ROUTER_ACCESS,
};
use crate::ops::apply::{local_port, ApplyOptions, RouterChange, SiteSession};
use crate::ops::ports::{
    default_grant_port, free_port, ports_of_other_sites, site_ports, SitePort, EDGE_PORT,
    INTER_ROUTER_PORT, MANAGEMENT_PORT,
};
use crate::plan::ROUTER_IMAGE_ANNOTATION;
use crate::quadlet::version::detect_runtime;
use crate::render::certs::LeafRenewal;
use crate::render::router_unit::router_unit_name;
use crate::settings::Platform;

use crate::store::{files, Paths};

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
    /// `grant_port` from the settings: where the grant server's port is picked from.
    pub default_grant_port: u16,
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
    /// What the apply did to the router.
    pub router: RouterChange,
    pub unit: String,
    pub management_port: u16,
    /// (role, port) of each link access endpoint.
    pub link_access: Vec<(String, u16)>,
    /// Every port the site takes (the grant server's as `token issue` will pick it, for a
    /// site that accepts links and has none yet), each with its default.
    pub ports: Vec<SitePort>,
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
    // Everything that can refuse before a file is written does so here: what runs the units
    // (the same verdict as `doctor`'s), the bus. Both at once: each waits on other programs.
    let user_unit_dir = paths.systemd_user_dir();
    let runtime = tokio::task::spawn_blocking(move || detect_runtime(Some(&user_unit_dir)));
    let session = SiteSession::open(paths, &request.namespace, progress);
    let (runtime, session) = tokio::join!(runtime, session);
    runtime.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let mut session = session?;
    let site_dir = session.site_dir.clone();
    let created = session.saved.is_none();
    let target = match session.saved.clone() {
        Some(current) => reconcile(current, &request)?,
        None => {
            // A Site-less directory is what a killed init leaves: start it over.
            files::remove_if_present(&site_dir.root)
                .map_err(Error::file("cannot clean", &site_dir.root))?;
            new_site(paths, &request)?
        }
    };
    progress("writing certificates, router configuration and units");
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: true,
        timeout: request.timeout,
    };
    let applied = session.apply(target, "init", options, progress).await?;
    outcome(
        &session,
        &request.namespace,
        created,
        applied.router,
        request.default_grant_port,
    )
}

/// `vansite site update`: what is given changes. A new router image restarts the router; if
/// it does not start, the apply puts the previous image back (and restarts it again).
#[derive(Debug, Clone)]
pub struct SiteUpdate {
    pub namespace: String,
    pub router_image: Option<String>,
    /// As [`InitRequest::default_grant_port`].
    pub default_grant_port: u16,
    pub timeout: Duration,
}

pub async fn update(
    paths: &Paths,
    request: SiteUpdate,
    progress: &dyn Fn(&str),
) -> Result<InitOutcome, Error> {
    detect_runtime(Some(&paths.systemd_user_dir()))?;
    let mut session = SiteSession::open(paths, &request.namespace, progress).await?;
    let mut target = session.resources()?.clone();
    if let Some(image) = &request.router_image {
        if image.trim().is_empty() {
            return Err(Error::Usage(
                "--router-image: give an image reference".into(),
            ));
        }
        target
            .site
            .metadata
            .annotations
            .insert(ROUTER_IMAGE_ANNOTATION.into(), image.clone());
    }
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: true,
        timeout: request.timeout,
    };
    let applied = session
        .apply(target, "site update", options, progress)
        .await?;
    outcome(
        &session,
        &request.namespace,
        false,
        applied.router,
        request.default_grant_port,
    )
}

/// What init (or site update) did, for the person.
fn outcome(
    session: &SiteSession,
    namespace: &str,
    created: bool,
    router: RouterChange,
    grant_default: u16,
) -> Result<InitOutcome, Error> {
    let resources = session.resources()?;
    let user = std::env::var("USER").unwrap_or_default();
    let mut ports = site_ports(resources, local_port(resources), grant_default);
    if !resources.link_endpoints().is_empty() && grant_port(resources).is_none() {
        let grants = default_grant_port(&session.paths, namespace, grant_default)?;
        ports.push(SitePort {
            purpose: "grant server".into(),
            port: grants,
            default: grant_default,
        });
    }
    Ok(InitOutcome {
        namespace: namespace.to_string(),
        site_name: resources.site_name().to_string(),
        site_id: resources.site.metadata.uid.clone(),
        edge: resources.is_edge(),
        created,
        restarted: matches!(router, RouterChange::Restarted { .. }),
        router,
        unit: format!("{}.service", router_unit_name(namespace)),
        management_port: local_port(resources),
        link_access: resources.link_endpoints(),
        ports,
        linger: crate::platform::systemd::linger_enabled(&user),
    })
}

/// A new site's resources: the Site, the local management access, and link access if asked.
fn new_site(paths: &Paths, request: &InitRequest) -> Result<SiteResources, Error> {
    let name = match &request.name {
        Some(name) => name.clone(),
        None => default_site_name(),
    };
    check_name(&name)
        .map_err(|problem| Error::Usage(format!("site name: {problem} (an RFC 1123 label)")))?;
    let mut site = Site {
        metadata: ObjectMeta::named(&name),
        spec: SiteSpec {
            edge: request.edge.unwrap_or(false),
            ..SiteSpec::default()
        },
    };
    if request.link_access.unwrap_or(false) {
        site.spec.link_access = "default".into();
    } else if !request.hosts.is_empty() {
        return Err(Error::Usage(
            "--host names this host for sites that link to it: add --enable-link-access".into(),
        ));
    }
    let image = request
        .router_image
        .clone()
        .unwrap_or_else(|| request.default_router_image.clone());
    let objects = with_host_defaults(
        paths,
        &request.namespace,
        vec![Resource::Site(site)],
        &request.hosts,
        &image,
    )?;
    Ok(SiteResources::new(&request.namespace, objects)?)
}

/// The Secret (certificate) of the link access `init` adds.
const LINK_ACCESS_CREDENTIALS: &str = "skupper-site-server";

/// Completes a site's objects for this host, as Skupper's non-kube sites do: the Site gets an
/// id and the router image to run (when it has none), a `skupper-local` RouterAccess for
/// management (when missing), and, when the Site accepts links and no RouterAccess takes them,
/// one named after the site for `hosts` and this host's name. Ports are the defaults, or the
/// next free ones that no other site of this user records.
pub fn with_host_defaults(
    paths: &Paths,
    namespace: &str,
    mut objects: Vec<Resource>,
    hosts: &[String],
    default_image: &str,
) -> Result<Vec<Resource>, Error> {
    let mut taken = ports_of_other_sites(paths, namespace);
    for object in &objects {
        if let Resource::RouterAccess(access) = object {
            taken.extend(access.spec.roles.iter().map(|r| r.effective_port()));
        }
    }
    let Some(site) = objects.iter_mut().find_map(|o| match o {
        Resource::Site(site) => Some(site),
        _ => None,
    }) else {
        return Ok(objects);
    };
    if site.metadata.uid.is_empty() {
        site.metadata.uid = uuid::Uuid::new_v4().to_string();
    }
    site.metadata
        .annotations
        .entry(ROUTER_IMAGE_ANNOTATION.into())
        .or_insert_with(|| default_image.to_string());
    let name = site.metadata.name.clone();
    let accepts_links = site.spec.link_access_enabled() && !site.spec.edge;
    let has = |wanted: &dyn Fn(&RouterAccess) -> bool| {
        objects
            .iter()
            .any(|o| matches!(o, Resource::RouterAccess(a) if wanted(a)))
    };
    let mut added = Vec::new();
    if !has(&|a| a.metadata.name == LOCAL_ROUTER_ACCESS) {
        let local_port = free_port("127.0.0.1", MANAGEMENT_PORT, &taken)?;
        taken.insert(local_port);
        added.push(RouterAccess {
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
        });
    }
    if accepts_links && !has(&|a| a.accepts_links()) {
        let inter_router = free_port("0.0.0.0", INTER_ROUTER_PORT, &taken)?;
        taken.insert(inter_router);
        let edge_port = free_port("0.0.0.0", EDGE_PORT, &taken)?;
        let mut hosts = hosts.to_vec();
        let hostname = host_name();
        if !hosts.contains(&hostname) {
            hosts.push(hostname);
        }
        added.push(RouterAccess {
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
                // Skupper's name for a site's link access Secret. Its sslProfile takes the
                // Secret's name, which leaves the site's name to the site entity (the router
                // refuses two entities of one name, and consoles show the site by it).
                tls_credentials: LINK_ACCESS_CREDENTIALS.into(),
                issuer: "skupper-site-ca".into(),
                subject_alternative_names: hosts,
                ..RouterAccessSpec::default()
            },
        });
    }
    objects.extend(added.into_iter().map(Resource::RouterAccess));
    Ok(objects)
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
            current.router_mode(),
            RouterMode::from_edge(edge)
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
    let image = current
        .site
        .metadata
        .annotations
        .get(ROUTER_IMAGE_ANNOTATION)
        .cloned();
    if let (Some(asked), Some(image)) = (&request.router_image, &image) {
        if asked != image {
            differences.push(format!(
                "router image {image} (asked: {asked}; `vansite site update --router-image \
                 {asked}` changes it)"
            ));
        }
    }
    if !differences.is_empty() {
        return Err(Error::SiteConflict {
            namespace: request.namespace.clone(),
            differences: differences.join(", "),
        });
    }
    if image.is_none() {
        let image = request
            .router_image
            .clone()
            .unwrap_or_else(|| request.default_router_image.clone());
        current
            .site
            .metadata
            .annotations
            .insert(ROUTER_IMAGE_ANNOTATION.into(), image);
    }
    Ok(current)
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

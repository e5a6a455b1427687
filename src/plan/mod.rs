//! Pure decisions: what the host must hold for a site's resources (the [`HostPlan`]: files,
//! units, router entities), and what a change does to the running router (`router`).
//! Nothing here touches the host; `ops::apply` carries a plan out.

pub mod link;
pub mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::grants::grant_port;
use crate::model::{SiteResources, LOCAL_ROUTER_ACCESS, ROUTER_PORT_ANNOTATION};
use crate::quadlet::version::PodmanVersion;
use crate::render::certs::{self, LeafRenewal, SiteCertificates};
use crate::render::forwarder_units::{forwarder_units, ForwarderSpec};
use crate::render::grant_units::{
    render_service, render_socket, service_unit, socket_unit, GrantUnitSpec,
};
use crate::render::renewal_units::{renewal_units, RenewalSpec};
use crate::render::router_config::{
    listener_name, multi_key_listener_name, render, router_entities, RenderContext, CERTS_PATH,
    LOOPBACK,
};
use crate::render::router_unit::{router_quadlet, RouterUnitSpec, CERTS_DIR_IN_CONTAINER};
use crate::render::unit_names;
use crate::router::entity::{EntityType, RouterEntity};
use crate::settings::SKUPPER_VERSION;
use crate::store::SiteDir;
use router::Renewal;

/// Annotation on the Site recording the router image vansite runs for it.
pub const ROUTER_IMAGE_ANNOTATION: &str = "vansite.io/router-image";
/// The management port when the site has no local RouterAccess (never for sites vansite made).
const DEFAULT_LOCAL_PORT: u16 = 5671;
/// How long a forwarder's client waits for the router (restart, no reachable connector).
pub const FORWARDER_WAIT: Duration = Duration::from_secs(30);

/// Why resources cannot be planned for this host; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Certs(#[from] crate::render::certs::CertError),
    #[error(transparent)]
    Quadlet(#[from] crate::quadlet::QuadletError),
    #[error(
        "the router's configuration would name two entities '{name}' (a {first} and a \
         {second}), and the router refuses a name used twice, whatever the types; rename one \
         of the resources they come from (a Link names its connector, a Secret its sslProfile, \
         a RouterAccess its listeners '<name>-<role>')"
    )]
    DuplicateEntityName {
        name: String,
        first: EntityType,
        second: EntityType,
    },
}

/// What a plan depends on besides the resources: where things go on this host, and who runs them.
#[derive(Debug, Clone)]
pub struct HostContext {
    pub site_dir: SiteDir,
    /// `~/.config/containers/systemd`
    pub quadlet_dir: PathBuf,
    /// `~/.config/systemd/user`
    pub systemd_user_dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub podman: PodmanVersion,
    /// The vansite binary the forwarders', grant server's and renewal timer's units run
    /// (absolute).
    pub executable: PathBuf,
    /// The settings ask for the certificate renewal timer.
    pub renew_certificates: bool,
}

/// One file a plan writes: its whole content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: String,
}

impl PlannedFile {
    /// Its file name: for a unit file, the unit's name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A listener's forwarder: a socket unit holding the port, a service splicing it to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderPlan {
    pub listener: String,
    /// `vansite-<ns>-listener-<name>`: the stem of both units.
    pub unit: String,
    pub socket: PlannedFile,
    pub service: PlannedFile,
    /// `default.target.wants/<service>`, what `systemctl enable` makes.
    pub enabled_link: PathBuf,
}

/// Everything the host holds for one site's resources.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub certificates: SiteCertificates,
    /// `skrouterd.json`.
    pub router_config: PlannedFile,
    /// Its entities with certificate paths as the file has them (for the restart decision).
    pub config_entities: Vec<RouterEntity>,
    /// The entities a running router takes live, with paths as the container sees them.
    pub live_entities: Vec<RouterEntity>,
    /// The entities fixed at the router's start, never changed through management.
    pub fixed: BTreeSet<(EntityType, String)>,
    /// sslProfiles whose certificate files this plan changes, and how: the router read the
    /// old files, so a running one is told to read them again.
    pub renewed_profiles: BTreeMap<String, Renewal>,
    pub router_unit: PlannedFile,
    /// `vansite-<ns>-router.service`.
    pub router_service: String,
    pub forwarders: Vec<ForwarderPlan>,
    /// Once the site issued a token: the grant server's socket and service units.
    pub grant_server: Option<GrantServerPlan>,
    /// When the settings ask for it: the certificate renewal timer and its service.
    pub renewal: Option<RenewalPlan>,
}

/// The certificate renewal's plain units, the timer enabled in timers.target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalPlan {
    pub service: PlannedFile,
    pub timer: PlannedFile,
    /// `timers.target.wants/<timer>`, what `systemctl enable` makes.
    pub enabled_link: PathBuf,
    pub timer_unit: String,
    pub service_unit: String,
}

/// The grant server's plain units: a socket holding its port (enabled in sockets.target, so
/// it listens from boot when the user lingers) and the service it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantServerPlan {
    pub socket: PlannedFile,
    pub service: PlannedFile,
    /// `sockets.target.wants/<socket>`, what `systemctl enable` makes.
    pub enabled_link: PathBuf,
    pub socket_unit: String,
    pub service_unit: String,
    pub port: u16,
}

/// What `skrouterd.json` is rendered with for this site.
pub fn render_context(resources: &SiteResources) -> RenderContext {
    let site = &resources.site;
    let short: String = site
        .metadata
        .uid
        .chars()
        .filter(|c| *c != '-')
        .take(8)
        .collect();
    RenderContext {
        site_id: site.metadata.uid.clone(),
        // Unique in the network and stable across restarts (Skupper uses name + start time).
        router_id: format!("{}-{short}", site.metadata.name),
        skupper_version: SKUPPER_VERSION.into(),
        platform: "podman".into(),
    }
}

/// The entities a running router takes live for `resources` (paths as the container sees
/// them), and the fixed ones, by type and name, that a live change never touches.
pub fn live_entities(
    resources: &SiteResources,
) -> (Vec<RouterEntity>, BTreeSet<(EntityType, String)>) {
    let in_container = router_entities(
        resources,
        &render_context(resources),
        CERTS_DIR_IN_CONTAINER,
    );
    (
        router::live_entities(&in_container),
        router::fixed_names(&in_container),
    )
}

/// The router image a site runs (its annotation; init always sets one).
pub fn router_image(resources: &SiteResources) -> &str {
    resources
        .site
        .metadata
        .annotations
        .get(ROUTER_IMAGE_ANNOTATION)
        .map(String::as_str)
        .unwrap_or_default()
}

/// Renders everything the host must hold for `resources`. `existing` certificates are kept
/// where still valid (CAs always) unless `renewal` says otherwise, so planning twice gives
/// the same files.
pub fn plan(
    resources: &SiteResources,
    host: &HostContext,
    existing: &SiteCertificates,
    renewal: LeafRenewal,
) -> Result<HostPlan, PlanError> {
    let context = render_context(resources);
    let config_entities = router_entities(resources, &context, CERTS_PATH);
    check_unique_names(&config_entities)?;
    let (certificates, renewed_profiles) =
        certificate_changes(resources, &config_entities, existing, renewal)?;
    let (live_entities, fixed) = live_entities(resources);
    let site_dir = &host.site_dir;
    let unit = router_quadlet(&RouterUnitSpec {
        namespace: site_dir.namespace.clone(),
        site_id: resources.site.metadata.uid.clone(),
        site_name: resources.site_name().to_string(),
        image: router_image(resources).to_string(),
        uid: host.uid,
        gid: host.gid,
        site_dir: site_dir.root.clone(),
        log_file: site_dir.router_log(),
    });
    let forwarders = forwarded_listeners(resources)?
        .iter()
        .map(|listener| forwarder_plan(resources, host, listener))
        .collect::<Result<_, _>>()?;
    let grant_server = grant_port(resources)
        .map(|port| grant_server_plan(resources, host, port))
        .transpose()?;
    let renewal = host
        .renew_certificates
        .then(|| renewal_plan(resources, host))
        .transpose()?;
    Ok(HostPlan {
        grant_server,
        renewal,
        certificates,
        router_config: PlannedFile {
            path: site_dir.router_config(),
            contents: render(resources, &context),
        },
        live_entities,
        fixed,
        renewed_profiles,
        config_entities,
        router_unit: PlannedFile {
            path: host.quadlet_dir.join(unit.file_name()),
            contents: unit.render(host.podman)?,
        },
        router_service: unit.service_name(),
        forwarders,
    })
}

/// The router refuses a configuration (and a CREATE) whose entities share a name, whatever
/// their types: `name` is one unique attribute of every entity (its schema's `validate_add`).
fn check_unique_names(entities: &[RouterEntity]) -> Result<(), PlanError> {
    let mut seen: BTreeMap<&str, EntityType> = BTreeMap::new();
    for entity in entities.iter().filter(|e| !e.name().is_empty()) {
        if let Some(first) = seen.insert(entity.name(), entity.entity_type) {
            return Err(PlanError::DuplicateEntityName {
                name: entity.name().to_string(),
                first,
                second: entity.entity_type,
            });
        }
    }
    Ok(())
}

/// The entities of `skrouterd.json` for `resources`, with paths as the file has them.
pub fn config_entities(resources: &SiteResources) -> Vec<RouterEntity> {
    router_entities(resources, &render_context(resources), CERTS_PATH)
}

/// The certificates `resources` need (see [`certs::site_certificates`]) and the sslProfiles
/// of `config_entities` whose files they change, with how.
pub fn certificate_changes(
    resources: &SiteResources,
    config_entities: &[RouterEntity],
    existing: &SiteCertificates,
    renewal: LeafRenewal,
) -> Result<(SiteCertificates, BTreeMap<String, Renewal>), PlanError> {
    let certificates = certs::site_certificates(resources, existing, renewal)?;
    let renewed = config_entities
        .iter()
        .filter(|e| e.entity_type == EntityType::SslProfile)
        .filter_map(|e| {
            let name = e.name();
            let renewal =
                router::renewal(existing.certs.get(name)?, certificates.certs.get(name)?)?;
            Some((name.to_string(), renewal))
        })
        .collect();
    Ok((certificates, renewed))
}

fn renewal_plan(resources: &SiteResources, host: &HostContext) -> Result<RenewalPlan, PlanError> {
    let spec = RenewalSpec {
        namespace: host.site_dir.namespace.clone(),
        site_name: resources.site_name().to_string(),
        executable: host.executable.clone(),
    };
    let (service, timer) = renewal_units(&spec)?;
    let stem = unit_names::certificate_renewal(&spec.namespace);
    let timer_unit = format!("{stem}.timer");
    let service_unit = format!("{stem}.service");
    let dir = &host.systemd_user_dir;
    Ok(RenewalPlan {
        service: PlannedFile {
            path: dir.join(&service_unit),
            contents: service,
        },
        timer: PlannedFile {
            path: dir.join(&timer_unit),
            contents: timer,
        },
        enabled_link: unit_names::enablement_link(dir, unit_names::TIMERS_TARGET, &timer_unit),
        timer_unit,
        service_unit,
    })
}

fn grant_server_plan(
    resources: &SiteResources,
    host: &HostContext,
    port: u16,
) -> Result<GrantServerPlan, PlanError> {
    let namespace = &host.site_dir.namespace;
    let spec = GrantUnitSpec {
        namespace: namespace.clone(),
        site_name: resources.site_name().to_string(),
        port,
        executable: host.executable.clone(),
        site_dir: host.site_dir.root.clone(),
        log_file: host.site_dir.grant_server_log(),
    };
    let (socket_unit, service_unit) = (socket_unit(namespace), service_unit(namespace));
    Ok(GrantServerPlan {
        socket: PlannedFile {
            path: host.systemd_user_dir.join(&socket_unit),
            contents: render_socket(&spec)?,
        },
        service: PlannedFile {
            path: host.systemd_user_dir.join(&service_unit),
            contents: render_service(&spec)?,
        },
        enabled_link: unit_names::enablement_link(
            &host.systemd_user_dir,
            unit_names::SOCKETS_TARGET,
            &socket_unit,
        ),
        socket_unit,
        service_unit,
        port,
    })
}

/// What a forwarder serves: a Listener's or a MultiKeyListener's port, spliced to the
/// router's loopback tcpListener at `router_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedListener {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub router_port: Option<u16>,
    /// The router's tcpListener of it.
    pub entity: String,
}

/// Every Listener and MultiKeyListener of the site, as its forwarder sees it. Both kinds
/// share the forwarders' unit names, so one name may not be both.
pub fn forwarded_listeners(resources: &SiteResources) -> Result<Vec<ForwardedListener>, PlanError> {
    let mut all: Vec<ForwardedListener> = resources
        .listeners
        .iter()
        .map(|l| ForwardedListener {
            name: l.metadata.name.clone(),
            host: l.spec.host.clone(),
            port: l.spec.port,
            router_port: l.router_port(),
            entity: listener_name(&l.metadata.name),
        })
        .collect();
    for listener in &resources.multi_key_listeners {
        let name = &listener.metadata.name;
        if all.iter().any(|l| l.name == *name) {
            return Err(PlanError::Invalid(format!(
                "Listener {name} and MultiKeyListener {name}: on a host each is served by \
                 forwarder units named after it, so one name cannot be both; rename one"
            )));
        }
        all.push(ForwardedListener {
            name: name.clone(),
            host: listener.spec.host.clone(),
            port: listener.spec.port,
            router_port: listener.router_port(),
            entity: multi_key_listener_name(name),
        });
    }
    Ok(all)
}

fn forwarder_plan(
    resources: &SiteResources,
    host: &HostContext,
    listener: &ForwardedListener,
) -> Result<ForwarderPlan, PlanError> {
    let name = &listener.name;
    let router_port = listener.router_port.ok_or_else(|| {
        PlanError::Invalid(format!(
            "listener {name} has no {ROUTER_PORT_ANNOTATION} annotation; vansite adds one when \
             it applies the listener (delete it and apply it again)"
        ))
    })?;
    let site_dir = &host.site_dir;
    let loopback: IpAddr = LOOPBACK.parse().expect("an IP");
    let spec = ForwarderSpec {
        namespace: site_dir.namespace.clone(),
        listener: name.clone(),
        bind: bind_address(&listener.host, listener.port)?,
        router: SocketAddr::new(loopback, router_port),
        tcp_listener: listener.entity.clone(),
        management: SocketAddr::new(loopback, local_port(resources)),
        management_credentials: site_dir.certs().join(certs::LOCAL_CLIENT),
        wait: FORWARDER_WAIT,
        executable: host.executable.clone(),
        log_file: site_dir.forwarder_log(name),
    };
    let (socket, service) = forwarder_units(&spec);
    Ok(ForwarderPlan {
        listener: name.clone(),
        unit: service.name.clone(),
        socket: PlannedFile {
            path: host.systemd_user_dir.join(socket.file_name()),
            contents: socket.render()?,
        },
        enabled_link: unit_names::enablement_link(
            &host.systemd_user_dir,
            unit_names::DEFAULT_TARGET,
            &service.file_name(),
        ),
        service: PlannedFile {
            path: host.systemd_user_dir.join(service.file_name()),
            contents: service.render()?,
        },
    })
}

/// Where router tcpListener ports are chosen from: at or above this, below the kernel's
/// ephemeral range (`net.ipv4.ip_local_port_range`).
pub const ROUTER_PORT_BASE: u16 = 20000;
/// The lowest port a router tcpListener takes when the ephemeral range starts at or below
/// [`ROUTER_PORT_BASE`].
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// A port for a router's loopback tcpListener, outside the kernel's `ephemeral` range (from
/// `ip_local_port_range`), or None when every candidate is `unusable`.
///
/// Why outside that range: the router listens on the port only while the listener's service
/// is reachable, and between a restart and its bind the port is free. A port in the ephemeral
/// range can then be taken by any outgoing connection as its source port, by accident, and the
/// router's bind fails for good; below the range only a program binding it on purpose can take
/// it (the forwarder refuses such a socket: `forward::owner`). The candidates are
/// [`ROUTER_PORT_BASE`] up to the range's start (from 1024 when the range starts lower), then
/// above the range's end; the scan starts `offset` into them, so that the sites of different
/// users do not all try the same ports first.
pub fn choose_router_port(
    ephemeral: std::ops::RangeInclusive<u16>,
    offset: u16,
    unusable: impl Fn(u16) -> bool,
) -> Option<u16> {
    let low_start = if *ephemeral.start() > ROUTER_PORT_BASE {
        ROUTER_PORT_BASE
    } else {
        FIRST_UNPRIVILEGED_PORT
    };
    let below = low_start..(*ephemeral.start()).max(low_start);
    let above = ephemeral.end().saturating_add(1).max(low_start)..=u16::MAX;
    let candidates: Vec<u16> = below
        .chain(above)
        .filter(|port| !ephemeral.contains(port))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let start = usize::from(offset) % candidates.len();
    candidates[start..]
        .iter()
        .chain(&candidates[..start])
        .copied()
        .find(|port| !unusable(*port))
}

/// The router's management port: the local RouterAccess's `normal` role.
pub fn local_port(resources: &SiteResources) -> u16 {
    resources
        .router_access(LOCAL_ROUTER_ACCESS)
        .and_then(|a| a.spec.roles.first())
        .map(|r| r.port)
        .unwrap_or(DEFAULT_LOCAL_PORT)
}

/// The socket address systemd binds for a listener: an IP literal (systemd resolves no names).
pub fn bind_address(host: &str, port: u16) -> Result<SocketAddr, PlanError> {
    let ip: IpAddr = host.parse().map_err(|_| {
        PlanError::Invalid(format!(
            "listener host '{host}' is not an IP address: give the address to listen on, e.g. \
             0.0.0.0 (every interface), 127.0.0.1 (this host only) or ::"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{all, LINK_AND_SECRET, SITE};

    #[test]
    fn entity_names_are_unique_across_types() {
        let access = "apiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {name: west}\n\
                      spec:\n  roles: [{name: inter-router, port: 55671}]\n  tlsCredentials: west\n";
        let site = |link: &str| {
            SiteResources::new("default", all(&[SITE, access, link])).expect("valid resources")
        };
        // The site entity is named after the site, or after the router when the site's name
        // is taken (here by the link access's sslProfile, named after its Secret).
        let site_entity = |resources: &SiteResources| {
            let entities = config_entities(resources);
            check_unique_names(&entities).expect("unique names");
            let site = entities.iter().find(|e| e.entity_type == EntityType::Site);
            site.unwrap().name().to_string()
        };
        let own_secret = access.replace("tlsCredentials: west", "tlsCredentials: west-server");
        let resources =
            SiteResources::new("default", all(&[SITE, &own_secret, LINK_AND_SECRET])).unwrap();
        assert_eq!(site_entity(&resources), "west");
        let resources = site(LINK_AND_SECRET);
        assert_eq!(
            site_entity(&resources),
            render_context(&resources).router_id
        );

        // A Link named like the link access's Secret: its connector would take the name.
        let clash = LINK_AND_SECRET.replace(
            "kind: Link\nmetadata:\n  name: my-token",
            "kind: Link\nmetadata:\n  name: west",
        );
        let entities = config_entities(&site(&clash));
        let refused = check_unique_names(&entities).unwrap_err();
        assert!(
            matches!(
                &refused,
                PlanError::DuplicateEntityName { name, first: EntityType::SslProfile, second: EntityType::Connector }
                    if name == "west"
            ),
            "{refused}"
        );
    }

    #[test]
    fn router_ports_are_chosen_outside_the_ephemeral_range() {
        let taken = [20000, 20001, 20003];
        let unusable = |port: u16| taken.contains(&port);
        assert_eq!(choose_router_port(32768..=60999, 0, unusable), Some(20002));
        // Starting further in, and wrapping around to the ports above the range.
        assert_eq!(
            choose_router_port(32768..=60999, 12768, unusable),
            Some(61000)
        );
        let last = (32768 - 20000) + (65535 - 61000);
        assert_eq!(
            choose_router_port(32768..=60999, last, unusable),
            Some(65535)
        );
        assert_eq!(
            choose_router_port(32768..=60999, last + 1, unusable),
            Some(20002)
        );
        // A range that starts low: from 1024 below it.
        assert_eq!(choose_router_port(10000..=65535, 0, |_| false), Some(1024));
        assert_eq!(choose_router_port(1024..=65535, 7, |_| false), None);
        for offset in [0, 1, 999, 30000, u16::MAX] {
            let port = choose_router_port(32768..=60999, offset, |_| false).unwrap();
            assert!(!(32768..=60999).contains(&port) && port >= ROUTER_PORT_BASE);
        }
        assert_eq!(choose_router_port(32768..=60999, 0, |_| true), None);
    }
}

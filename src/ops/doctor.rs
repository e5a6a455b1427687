//! `vansite doctor`: is this host ready to run a site? Each check looks at the same thing the
//! site operations use (the quadlet generator search path, the user bus, the podman service,
//! the linger file, the site's resources and certificates) and says OK, WARN or FAIL with the
//! fix. Every check is bounded in time: a host without network gets a WARN, not a hang.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::grants::grant_port;
use crate::model::SiteResources;
use crate::ops::apply::local_port;
use crate::ops::expiry::{self, ExpiryState};
use crate::ops::unix_seconds;
use crate::plan::ROUTER_IMAGE_ANNOTATION;
use crate::platform::podman::PodmanService;
use crate::platform::systemd::{linger_enabled, ActiveState, UserManager};
use crate::quadlet::version::{
    check_runtime, detect_generator_version, podman_binary_version, removes_stale_cidfiles,
    service_drop_in_dirs, DetectError, PodmanVersion,
};
use crate::render::certs;
use crate::render::forwarder_units::forwarder_unit_name;
use crate::render::grant_units;
use crate::render::router_unit::router_unit_name;
use crate::router::management::{ClientTls, ManagementClient};
use crate::store::{Paths, PathsError, SiteDir};

/// Bound on reaching the user bus and the podman service (which may be socket-started).
const SERVICE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on resolving and connecting to an image registry.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on asking the site's router over management whether it holds the site's ports.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Clock differences below this are file-system and certificate rounding, not a wrong clock.
const CLOCK_SLACK: i64 = 60;
/// A CA expiring within this many seconds gets a warning.
/// Rootless podman maps a container's uids into the user's subordinate range: 65536 covers
/// every uid an image may use.
const FULL_SUBID_RANGE: u64 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One check's result: what was found, and what to do when it is not OK.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub result: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            result: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            result: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            result: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub namespace: String,
    pub user: String,
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.result == Verdict::Fail)
            .map(|c| c.name)
            .collect()
    }
}

pub struct DoctorRequest {
    pub namespace: String,
    /// The image to check; else the site's, else `default_router_image`.
    pub router_image: Option<String>,
    pub default_router_image: String,
}

/// Runs every check, in the order a person would fix things. Without the user's session
/// directories (`paths`), that is a failed check and the site's own checks see no site.
pub async fn doctor(paths: Result<&Paths, &PathsError>, request: DoctorRequest) -> DoctorReport {
    let uid = rustix::process::getuid().as_raw();
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| uid.to_string());
    let site_dir = paths.ok().map(|paths| paths.site(&request.namespace));
    let site = site_dir
        .as_ref()
        .and_then(|dir| dir.load_resources().ok().flatten());
    let mut checks = Vec::new();
    if let Err(error) = paths {
        checks.push(Check::fail(
            "user session",
            error.to_string(),
            format!(
                "run vansite in {user}'s login session; after sudo/su use `machinectl shell {user}@`"
            ),
        ));
    }
    checks.extend([
        check_podman(paths.ok().map(|p| p.systemd_user_dir()).as_deref()),
        check_generator(),
        check_cgroup_v2(Path::new("/sys/fs/cgroup/cgroup.controllers")),
        check_user_namespaces(Path::new("/proc/sys/user/max_user_namespaces")),
        check_subordinate_ids("subuid", Path::new("/etc/subuid"), &user, uid),
        check_subordinate_ids("subgid", Path::new("/etc/subgid"), &user, uid),
    ]);
    let manager = match tokio::time::timeout(SERVICE_TIMEOUT, UserManager::connect()).await {
        Ok(Ok(manager)) => {
            checks.push(Check::ok(
                "user bus",
                "the systemd user manager answers on the session bus",
            ));
            Some(manager)
        }
        Ok(Err(error)) => {
            checks.push(no_bus(&user, error.to_string()));
            None
        }
        Err(_) => {
            checks.push(no_bus(
                &user,
                format!(
                    "the systemd user manager did not answer on the session bus within {}s",
                    SERVICE_TIMEOUT.as_secs()
                ),
            ));
            None
        }
    };
    checks.push(check_linger(&user));
    let image = request
        .router_image
        .clone()
        .or_else(|| {
            site.as_ref()
                .and_then(|s| s.site.metadata.annotations.get(ROUTER_IMAGE_ANNOTATION))
                .cloned()
        })
        .unwrap_or(request.default_router_image);
    checks.push(check_image(manager.as_ref(), &image).await);
    let site_dir = site_dir.as_ref().zip(site.as_ref());
    checks.push(check_ports(manager.as_ref(), &request.namespace, site_dir).await);
    if let Some((_, site)) = site_dir {
        checks.push(check_socket_ports(manager.as_ref(), &request.namespace, site).await);
    }
    checks.push(check_clock(site_dir.map(|(dir, _)| dir)));
    if let Some((dir, _)) = site_dir {
        checks.push(check_certificates(dir));
    }
    DoctorReport {
        namespace: request.namespace,
        user,
        checks,
    }
}

/// podman's release against what the generator's units need: the same verdict as `init`'s
/// ([`check_runtime`]); a missing generator is the generator check's failure.
fn check_podman(user_unit_dir: Option<&Path>) -> Check {
    const NAME: &str = "podman";
    let version = match podman_binary_version() {
        Ok(version) => version,
        Err(reason) => {
            return Check::fail(
                NAME,
                format!("no usable podman: {reason}"),
                "install podman ≥ 4.4 (e.g. `sudo dnf install podman`)",
            )
        }
    };
    let cidfile_removed = removes_stale_cidfiles(&service_drop_in_dirs(user_unit_dir));
    match check_runtime(detect_generator_version(), Ok(version), cidfile_removed) {
        Ok(runtime) if !runtime.cidfile_workaround => Check::ok(NAME, format!("podman {version}")),
        Ok(runtime) => Check::warn(
            NAME,
            format!(
                "podman {version} is older than {} under quadlet {}: it runs vansite's units \
                 only because a drop-in removes the container-id files it leaves behind",
                PodmanVersion::FLOOR,
                runtime.generator
            ),
            "install podman ≥ 4.4 with its own quadlet",
        ),
        Err(
            error @ (DetectError::OldPodman { .. }
            | DetectError::PodmanTooOld(_)
            | DetectError::NoPodman(_)),
        ) => Check::fail(
            NAME,
            error.to_string(),
            "install podman ≥ 4.4 (RHEL ≥ 9.2, Fedora ≥ 37, Debian ≥ 13, Ubuntu ≥ 24.04)",
        ),
        // No usable generator (its own check says so): podman alone.
        Err(_) if version >= PodmanVersion::FLOOR => Check::ok(NAME, format!("podman {version}")),
        Err(_) => Check::fail(
            NAME,
            format!(
                "podman {version} is older than {}, the first release with quadlet",
                PodmanVersion::FLOOR
            ),
            "install podman ≥ 4.4 (RHEL ≥ 9.2, Fedora ≥ 37, Debian ≥ 13, Ubuntu ≥ 24.04)",
        ),
    }
}

fn check_generator() -> Check {
    const NAME: &str = "quadlet generator";
    match detect_generator_version() {
        Ok(version) if version >= PodmanVersion::FLOOR => Check::ok(
            NAME,
            format!("quadlet {version} runs as a systemd user generator"),
        ),
        Ok(version) => Check::fail(
            NAME,
            format!("quadlet {version} is older than {}", PodmanVersion::FLOOR),
            "install podman ≥ 4.4",
        ),
        Err(error) => Check::fail(
            NAME,
            "systemd finds no quadlet generator, so it would never run the router's unit",
            error.to_string(),
        ),
    }
}

fn check_cgroup_v2(controllers: &Path) -> Check {
    const NAME: &str = "cgroup v2";
    match std::fs::read_to_string(controllers) {
        Ok(list) => Check::ok(
            NAME,
            format!("unified hierarchy (controllers: {})", list.trim()),
        ),
        Err(error) => Check::fail(
            NAME,
            format!(
                "{} cannot be read ({error}): this host uses cgroup v1, which quadlet's units do not run under",
                controllers.display()
            ),
            "boot with cgroup v2: add systemd.unified_cgroup_hierarchy=1 to the kernel command line \
             (`sudo grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1`) and reboot",
        ),
    }
}

/// Unprivileged user namespaces, from `limit` (`user.max_user_namespaces`): rootless podman
/// runs the router in one, and systemd builds each forwarder's sandbox in one.
fn check_user_namespaces(limit: &Path) -> Check {
    const NAME: &str = "user namespaces";
    let fix = "allow them: `sudo sysctl -w user.max_user_namespaces=15000`, and the same line \
               in /etc/sysctl.d/99-vansite.conf to keep it";
    match std::fs::read_to_string(limit).map(|text| text.trim().parse::<u64>()) {
        Ok(Ok(0)) => Check::fail(
            NAME,
            format!(
                "{} is 0: rootless podman cannot run the router, nor systemd the forwarders' \
                 sandboxes",
                limit.display()
            ),
            fix,
        ),
        Ok(Ok(count)) => Check::ok(NAME, format!("up to {count} per user")),
        Ok(Err(_)) | Err(_) => Check::fail(
            NAME,
            format!(
                "{} cannot be read: this kernel may lack user namespaces, which rootless podman \
                 and the forwarders' sandboxes need",
                limit.display()
            ),
            fix,
        ),
    }
}

/// The user's subordinate ids in `file` (`NAME_OR_UID:START:COUNT` lines), as rootless podman
/// needs them to map the container's users.
fn check_subordinate_ids(name: &'static str, file: &Path, user: &str, uid: u32) -> Check {
    let flag = if name == "subuid" {
        "--add-subuids"
    } else {
        "--add-subgids"
    };
    let fix = format!(
        "give {user} a range no other user has: `sudo usermod {flag} 100000-165535 {user}` \
         (pick a free range), then `podman system migrate`"
    );
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            return Check::fail(
                name,
                format!("cannot read {}: {error}", file.display()),
                fix,
            )
        }
    };
    let uid = uid.to_string();
    let count: u64 = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let _start: u64 = fields.next()?.parse().ok()?;
            let count: u64 = fields.next()?.parse().ok()?;
            (owner == user || owner == uid).then_some(count)
        })
        .sum();
    let path = file.display();
    match count {
        0 => Check::fail(
            name,
            format!("{user} has no range in {path}: rootless podman cannot start containers"),
            fix,
        ),
        n if n < FULL_SUBID_RANGE => Check::warn(
            name,
            format!("{user} has {n} ids in {path}: images using higher ids fail to start"),
            fix,
        ),
        n => Check::ok(name, format!("{user} has {n} ids in {path}")),
    }
}

fn no_bus(user: &str, reason: String) -> Check {
    Check::fail(
        "user bus",
        reason,
        format!(
            "log in as {user} (a login session starts the user manager) or run \
             `sudo loginctl enable-linger {user}`; after sudo/su use `machinectl shell {user}@` so \
             that XDG_RUNTIME_DIR and the bus are set"
        ),
    )
}

fn check_linger(user: &str) -> Check {
    const NAME: &str = "linger";
    if linger_enabled(user) {
        Check::ok(
            NAME,
            format!("{user}'s user manager starts at boot, so the site does too"),
        )
    } else {
        Check::fail(
            NAME,
            format!(
                "linger is off for {user}: the site's units stop at logout and do not start at boot"
            ),
            format!("loginctl enable-linger {user}"),
        )
    }
}

async fn check_image(manager: Option<&UserManager>, image: &str) -> Check {
    const NAME: &str = "router image";
    let Some(manager) = manager else {
        return Check::warn(
            NAME,
            format!("{image}: not checked, podman's service is reached over the user bus"),
            "fix the user bus first",
        );
    };
    let present = tokio::time::timeout(SERVICE_TIMEOUT, async {
        PodmanService::connect(manager)
            .await?
            .image_present(image)
            .await
    })
    .await;
    match present {
        Ok(Ok(true)) => Check::ok(NAME, format!("{image} is in the user's image storage")),
        Ok(Ok(false)) => image_pullable(image).await,
        Ok(Err(error)) => Check::fail(
            NAME,
            format!("{image}: cannot ask podman: {error}"),
            "see `systemctl --user status podman.socket`",
        ),
        Err(_) => Check::warn(
            NAME,
            format!(
                "{image}: podman did not answer within {}s",
                SERVICE_TIMEOUT.as_secs()
            ),
            "see `systemctl --user status podman.socket podman.service`",
        ),
    }
}

/// An image that is not present yet: init pulls it when the router first starts. Without
/// pulling (which would download it), the best offline evidence is whether its registry
/// accepts a connection.
async fn image_pullable(image: &str) -> Check {
    const NAME: &str = "router image";
    let load = format!(
        "on a host with network: `podman pull {image} && podman save -o router.tar {image}`; \
         here: `podman load -i router.tar`; or choose another image with --router-image"
    );
    let Some(registry) = registry_of(image) else {
        return Check::fail(
            NAME,
            format!("{image} is not present, and a localhost/ image cannot be pulled"),
            load,
        );
    };
    let address = if registry.contains(':') {
        registry.to_string()
    } else {
        format!("{registry}:443")
    };
    let reach = tokio::time::timeout(REGISTRY_TIMEOUT, tokio::net::TcpStream::connect(&address));
    match reach.await {
        Ok(Ok(_)) => Check::ok(
            NAME,
            format!(
                "{image} is not present; its registry {registry} accepts connections, so init \
                 pulls it (not tried here)"
            ),
        ),
        Ok(Err(error)) => Check::warn(
            NAME,
            format!("{image} is not present and its registry {registry} is unreachable: {error}"),
            load,
        ),
        Err(_) => Check::warn(
            NAME,
            format!(
                "{image} is not present and its registry {registry} did not answer within {}s",
                REGISTRY_TIMEOUT.as_secs()
            ),
            load,
        ),
    }
}

/// The registry an image is pulled from (`docker.io` for unqualified names, as podman's
/// default short-name handling resolves them on RHEL), or None for local-only images.
fn registry_of(image: &str) -> Option<&str> {
    match image.split_once('/') {
        Some(("localhost", _)) => None,
        Some((first, _)) if first.contains('.') || first.contains(':') => Some(first),
        _ => Some("docker.io"),
    }
}

/// The site's router listens on its management port (loopback) and its link access ports
/// (all addresses). A taken port is fine when this site's router holds it, which it proves
/// by answering management with the site's own client certificate.
async fn check_ports(
    manager: Option<&UserManager>,
    namespace: &str,
    site: Option<(&SiteDir, &SiteResources)>,
) -> Check {
    const NAME: &str = "ports";
    let Some((site_dir, site)) = site else {
        return Check::ok(
            NAME,
            format!("no site in namespace '{namespace}' yet: init picks free ports"),
        );
    };
    let management = local_port(site);
    let mut ports = vec![("management".to_string(), "127.0.0.1", management)];
    ports.extend(
        site.link_endpoints()
            .into_iter()
            .map(|(role, port)| (role, "0.0.0.0", port)),
    );
    let taken: Vec<String> = ports
        .iter()
        .filter(|(_, address, port)| TcpListener::bind((*address, *port)).is_err())
        .map(|(role, _, port)| format!("{role} {port}"))
        .collect();
    let all: Vec<String> = ports
        .iter()
        .map(|(role, _, port)| format!("{role} {port}"))
        .collect();
    if taken.is_empty() {
        return Check::ok(
            NAME,
            format!("{} free (the router is not running)", all.join(", ")),
        );
    }
    let unit = format!("{}.service", router_unit_name(namespace));
    let router_active = match manager {
        Some(manager) => manager
            .unit_state(&unit)
            .await
            .is_ok_and(|state| state.active_state == ActiveState::Active),
        None => false,
    };
    if router_active && router_answers(site_dir, management).await {
        return Check::ok(
            NAME,
            format!("{} held by this site's router", all.join(", ")),
        );
    }
    let probes: Vec<String> = taken
        .iter()
        .filter_map(|t| t.rsplit(' ').next())
        .map(|port| format!("`ss -ltnp 'sport = :{port}'`"))
        .collect();
    Check::fail(
        NAME,
        format!(
            "{} in use, and not by this site's router ({unit} is {})",
            taken.join(", "),
            if router_active {
                "active but does not answer"
            } else {
                "not running"
            }
        ),
        format!(
            "find the program with {} and stop it; or `vansite -n {namespace} delete` and init \
             again, which picks free ports (sites linked to this one then need a new token)",
            probes.join(", ")
        ),
    )
}

/// The ports the site's own sockets listen on (the grant server's, each listener's): free, or
/// held by that socket unit; else who holds them, when this user may see it.
async fn check_socket_ports(
    manager: Option<&UserManager>,
    namespace: &str,
    site: &SiteResources,
) -> Check {
    const NAME: &str = "service ports";
    let mut sockets: Vec<(String, u16, String)> = grant_port(site)
        .map(|port| {
            (
                "grant server".to_string(),
                port,
                grant_units::socket_unit(namespace),
            )
        })
        .into_iter()
        .collect();
    sockets.extend(site.listener_ports().map(|(name, port, _)| {
        (
            format!("listener {name}"),
            port,
            format!("{}.socket", forwarder_unit_name(namespace, name)),
        )
    }));
    if sockets.is_empty() {
        return Check::ok(NAME, "no grant server or listener ports yet");
    }
    let mut fine = Vec::new();
    let mut problems = Vec::new();
    for (what, port, unit) in sockets {
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            fine.push(format!("{what} {port} free"));
            continue;
        }
        let held = match manager {
            Some(manager) => manager
                .unit_state(&unit)
                .await
                .is_ok_and(|state| state.active_state == ActiveState::Active),
            None => false,
        };
        if held {
            fine.push(format!("{what} {port} held by {unit}"));
        } else {
            let holder = port_holder(port).unwrap_or_else(|| {
                format!("another program (`ss -ltnp 'sport = :{port}'` names it)")
            });
            problems.push(format!("{what} {port} is held by {holder}, not {unit}"));
        }
    }
    if problems.is_empty() {
        return Check::ok(NAME, fine.join(", "));
    }
    Check::fail(
        NAME,
        problems.join("; "),
        "stop that program, or move the service: `vansite listener update NAME --port PORT`, \
         `vansite token issue --port PORT`",
    )
}

/// The program listening on TCP `port`, as `comm (pid N)`, when this user can see it (its own
/// processes): the socket's inode from /proc/net/tcp{,6}, then the process holding it.
fn port_holder(port: u16) -> Option<String> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = fields.get(3) == Some(&"0A");
                    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|process| {
            let pid = process.file_name().to_string_lossy().into_owned();
            pid.parse::<u32>().ok()?;
            let holds = std::fs::read_dir(process.path().join("fd"))
                .ok()?
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| {
                    inodes
                        .iter()
                        .any(|inode| target.as_os_str() == inode.as_str())
                });
            let comm = std::fs::read_to_string(process.path().join("comm")).ok()?;
            holds.then(|| format!("{} (pid {pid})", comm.trim()))
        })
}

async fn router_answers(site_dir: &SiteDir, port: u16) -> bool {
    let Ok(tls) = ClientTls::from_dir(site_dir.certs().join("skupper-local-client")) else {
        return false;
    };
    match ManagementClient::connect("127.0.0.1", port, &tls, MANAGEMENT_TIMEOUT).await {
        Ok(client) => {
            let _ = client.close().await;
            true
        }
        Err(_) => false,
    }
}

/// Offline, vansite cannot compare the clock with a time source. What it can tell: the clock
/// is not behind timestamps it knows were real (the site CA's start, the site's files, this
/// program's file). A clock that runs fast, or a little
/// slow, goes unnoticed: that is what chronyd or systemd-timesyncd are for.
fn check_clock(site_dir: Option<&SiteDir>) -> Check {
    const NAME: &str = "clock";
    let now = unix_seconds(SystemTime::now());
    let keep_synced = "keep a time service running (`timedatectl set-ntp true`, or chronyd), \
                       then check `timedatectl`";
    let mut references: Vec<(String, i64)> = Vec::new();
    if let Ok(program) = std::env::current_exe() {
        if let Some(time) = modified(&program) {
            references.push((program.display().to_string(), time));
        }
    }
    if let Some(site_dir) = site_dir {
        if let Ok(entries) = std::fs::read_dir(site_dir.resources()) {
            for entry in entries.flatten() {
                if let Some(time) = modified(&entry.path()) {
                    references.push((entry.path().display().to_string(), time));
                }
            }
        }
        let ca = site_dir.issuers().join("skupper-site-ca/tls.crt");
        if let Some((not_before, _)) = std::fs::read_to_string(&ca)
            .ok()
            .and_then(|pem| certs::validity(&pem).ok())
        {
            references.push(("the site CA's start".into(), not_before));
        }
    }
    if let Some((what, time)) = references
        .iter()
        .filter(|(_, time)| now + CLOCK_SLACK < *time)
        .max_by_key(|(_, time)| *time)
    {
        return Check::fail(
            NAME,
            format!(
                "the clock ({}) is behind {what} ({}): certificates issued now would not be valid \
                 yet for other sites",
                utc(now),
                utc(*time)
            ),
            keep_synced,
        );
    }
    let against = if site_dir.is_some() {
        "this program's file, the site's files and its CA"
    } else {
        "this program's file"
    };
    Check::ok(
        NAME,
        format!(
            "{} is not behind {against} (offline, vansite cannot compare it with a time source)",
            utc(now)
        ),
    )
}

/// Every certificate of the site: one expired fails, one within 30 days warns; each with
/// the way to a new one.
fn check_certificates(site_dir: &SiteDir) -> Check {
    const NAME: &str = "certificates";
    let now = unix_seconds(SystemTime::now());
    let all = expiry::site_certificates(site_dir);
    let Some(first) = expiry::soonest(&all) else {
        return Check::ok(NAME, "the site has no certificates yet");
    };
    let namespace = &site_dir.namespace;
    let fix = |certificate: &str| {
        if certificate.starts_with("issuers/") {
            format!(
                "the site's CA ({certificate}): `vansite -n {namespace} revoke-access --yes` \
                 makes a new one (incoming links and tokens end; issue new tokens)"
            )
        } else if let Some(link) = certificate
            .strip_prefix("link-issuers/")
            .and_then(|rest| rest.split('/').next())
        {
            format!(
                "the CA of incoming link '{link}' ({certificate}): issue the other site a new \
                 token (`vansite -n {namespace} token issue FILE`), then `vansite -n {namespace} \
                 link revoke {link}`"
            )
        } else {
            format!(
                "{certificate}: `vansite -n {namespace} certs rotate` issues again what vansite \
                 issued (`renew_certificates = true` in ~/.config/vansite/config.toml does it \
                 daily); a certificate you gave (a Secret, --tls-cert, a link's credentials) \
                 needs a new one from where it came"
            )
        }
    };
    match first.state(now) {
        ExpiryState::Expired => Check::fail(
            NAME,
            format!("{} expired at {}", first.certificate, utc(first.not_after)),
            fix(&first.certificate),
        ),
        ExpiryState::Soon => Check::warn(
            NAME,
            format!(
                "{} expires at {} (in {} days)",
                first.certificate,
                utc(first.not_after),
                first.days_left(now)
            ),
            fix(&first.certificate),
        ),
        ExpiryState::Valid => Check::ok(
            NAME,
            format!(
                "{} certificates; the first to expire is {} at {}",
                all.len(),
                first.certificate,
                utc(first.not_after)
            ),
        ),
    }
}

fn modified(path: &Path) -> Option<i64> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(unix_seconds)
}

fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{seconds}s since 1970"))
}

/// The report as a table for a person: one line per check, the fix below a line that is not OK.
pub fn table(report: &DoctorReport) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for check in &report.checks {
        text.push_str(&format!(
            "{:<5} {:<width$}  {}\n",
            check.result.to_string(),
            check.name,
            check.detail
        ));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("{:<5} {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let count = |verdict| report.checks.iter().filter(|c| c.result == verdict).count();
    text.push_str(&format!(
        "{} OK, {} WARN, {} FAIL\n",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_holding_a_port_is_named_when_it_is_the_users_own() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let holder = port_holder(port).expect("this process holds it");
        assert!(
            holder.ends_with(&format!("(pid {})", std::process::id())),
            "{holder}"
        );
        drop(held);
        assert_eq!(port_holder(port), None);
    }

    fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("vansite-doctor-{name}-{}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn subordinate_ids_by_name_or_uid() {
        let file = temp_file(
            "subuid",
            "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\n",
        );
        assert_eq!(
            check_subordinate_ids("subuid", &file, "alice", 1000).result,
            Verdict::Ok
        );
        let few = check_subordinate_ids("subuid", &file, "carol", 1001);
        assert_eq!(few.result, Verdict::Warn, "{few:?}");
        let none = check_subordinate_ids("subgid", &file, "dave", 1002);
        assert_eq!(none.result, Verdict::Fail);
        assert!(none.fix.unwrap().contains("usermod --add-subgids"));
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn user_namespaces_turned_off_fail_with_the_fix() {
        let file = temp_file("userns", "0\n");
        let off = check_user_namespaces(&file);
        assert_eq!(off.result, Verdict::Fail, "{off:?}");
        assert!(off.fix.unwrap().contains("user.max_user_namespaces"));
        std::fs::write(&file, "63445\n").unwrap();
        assert_eq!(check_user_namespaces(&file).result, Verdict::Ok);
        std::fs::remove_file(&file).unwrap();
        let absent = check_user_namespaces(Path::new("/nonexistent/max_user_namespaces"));
        assert_eq!(absent.result, Verdict::Fail);
    }

    #[test]
    fn cgroup_v1_fails_with_the_fix() {
        let check = check_cgroup_v2(Path::new("/nonexistent/cgroup.controllers"));
        assert_eq!(check.result, Verdict::Fail);
        assert!(check.fix.unwrap().contains("unified_cgroup_hierarchy"));
    }

    #[test]
    fn registries_of_image_references() {
        assert_eq!(
            registry_of("quay.io/skupper/skupper-router:3.5.1"),
            Some("quay.io")
        );
        assert_eq!(
            registry_of("registry.local:5000/router"),
            Some("registry.local:5000")
        );
        assert_eq!(registry_of("skupper-router"), Some("docker.io"));
        assert_eq!(registry_of("library/router:1"), Some("docker.io"));
        assert_eq!(registry_of("localhost/skupper-router-standin:test"), None);
    }

    #[test]
    fn table_shows_fixes_and_counts() {
        let report = DoctorReport {
            namespace: "default".into(),
            user: "alice".into(),
            checks: vec![
                Check::ok("cgroup v2", "unified"),
                Check::fail("linger", "off", "loginctl enable-linger alice"),
            ],
        };
        let text = table(&report);
        assert!(text.contains("FAIL  linger"), "{text}");
        assert!(text.contains("fix: loginctl enable-linger alice"), "{text}");
        assert!(text.ends_with("1 OK, 0 WARN, 1 FAIL\n"), "{text}");
        assert_eq!(report.failed(), ["linger"]);
    }
}

//! `vansite debug dump FILE`: one gzipped tarball with what a support request needs about a
//! site: versions, its resources, `skrouterd.json`, public certificates, unit files and states,
//! the router's log tail, management queries, and `status` / `link status` as JSON. Nothing
//! secret goes in: resources as `get` prints them (no keys, codes or ids), certificates
//! without their keys, no grant state and no console token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::model::SiteResources;
use crate::ops::apply::site_management;
use crate::ops::{link, manifest, network, status};
use crate::plan::ROUTER_IMAGE_ANNOTATION;
use crate::platform::systemd::UserManager;
use crate::quadlet::version::podman_binary_version;
use crate::render::unit_names;
use crate::store::{files, Paths, SiteDir};

/// Lines of the router's log that go in.
const LOG_TAIL_LINES: usize = 500;
/// The router entity types whose QUERY goes in.
const QUERIED: [&str; 9] = [
    "router",
    "listener",
    "connector",
    "sslProfile",
    "tcpListener",
    "tcpConnector",
    "connection",
    "router.node",
    "router.address",
];

/// What a dump holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpOutcome {
    pub file: PathBuf,
    /// The archive's entries, in order.
    pub entries: Vec<String>,
    /// What could not be gathered (the router not answering, a missing file), and why.
    pub missing: Vec<String>,
}

/// Entries gathered in memory, then written at once (a failed dump leaves no file).
#[derive(Default)]
struct Archive {
    entries: Vec<(String, Vec<u8>)>,
    missing: Vec<String>,
}

impl Archive {
    fn add(&mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), contents.into()));
    }

    fn add_json(&mut self, name: &str, value: &impl Serialize) {
        let text = serde_json::to_string_pretty(value).expect("serialisable");
        self.add(name, text + "\n");
    }

    /// A file of the host, or a note of why it is not there.
    fn add_file(&mut self, name: String, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => self.add(name, bytes),
            Err(e) => self
                .missing
                .push(format!("{name}: {}: {e}", path.display())),
        }
    }
}

pub async fn dump(paths: &Paths, namespace: &str, file: &Path) -> Result<DumpOutcome, Error> {
    let site_dir = paths.site(namespace);
    let resources = paths.load_site(namespace)?;
    let mut archive = Archive::default();

    archive.add_json("versions.json", &versions(&resources).await);
    let portable = manifest::get(paths, namespace, None, None, false)?;
    let documents: Vec<String> = portable
        .iter()
        .map(|r| r.to_yaml().map(|yaml| format!("---\n{yaml}")))
        .collect::<Result<_, _>>()?;
    archive.add("resources.yaml", documents.concat());
    archive.add_file("router/skrouterd.json".into(), &site_dir.router_config());
    archive.add("router/log-tail.txt", log_tail(&site_dir.router_log()));
    add_public_certificates(&mut archive, &site_dir);
    add_units(&mut archive, paths, &site_dir, &resources).await;
    add_management(&mut archive, &site_dir, &resources).await;
    match status::status(paths, namespace, status::StatusRequest { containers: true }).await {
        Ok(status) => archive.add_json("status.json", &status),
        Err(e) => archive.missing.push(format!("status.json: {e}")),
    }
    match link::status(paths, namespace, None).await {
        Ok(links) => archive.add_json("link-status.json", &links),
        Err(e) => archive.missing.push(format!("link-status.json: {e}")),
    }
    match network::status(paths, namespace).await {
        Ok(network) => archive.add_json("network-status.json", &network),
        Err(e) => archive.missing.push(format!("network-status.json: {e}")),
    }
    if !archive.missing.is_empty() {
        archive.add("missing.txt", archive.missing.join("\n") + "\n");
    }
    write_archive(file, namespace, &archive.entries)?;
    Ok(DumpOutcome {
        file: file.to_path_buf(),
        entries: archive.entries.into_iter().map(|(name, _)| name).collect(),
        missing: archive.missing,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    vansite: &'static str,
    podman: Option<String>,
    systemd: Option<String>,
    router_image: String,
    os: Option<String>,
    kernel: String,
}

async fn versions(resources: &SiteResources) -> Versions {
    let systemd = match UserManager::connect().await {
        Ok(manager) => manager.version().await.ok(),
        Err(_) => None,
    };
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|name| name.trim_matches('"').to_string())
        });
    let uname = rustix::system::uname();
    Versions {
        vansite: env!("CARGO_PKG_VERSION"),
        podman: podman_binary_version().ok().map(|v| v.to_string()),
        systemd,
        router_image: resources
            .site
            .metadata
            .annotations
            .get(ROUTER_IMAGE_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        os,
        kernel: uname.release().to_string_lossy().into_owned(),
    }
}

/// The last lines of the router's log (it may be missing: the router never ran).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n") + "\n"
}

/// `ca.crt` and `tls.crt` of every certificate and issuer: never `tls.key`.
fn add_public_certificates(archive: &mut Archive, site_dir: &SiteDir) {
    for (kind, dir) in [("certs", site_dir.certs()), ("issuers", site_dir.issuers())] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            for file in ["ca.crt", "tls.crt"] {
                archive.add_file(format!("{kind}/{name}/{file}"), &dir.join(&name).join(file));
            }
        }
    }
}

/// The site's units (router, forwarders, grant server, console): their files (directory and name)
/// and the units systemd knows from them.
fn site_units(
    paths: &Paths,
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> (Vec<(PathBuf, String)>, Vec<String>) {
    let namespace = &site_dir.namespace;
    let forwarders = resources
        .listener_ports()
        .map(|(name, ..)| unit_names::forwarder(namespace, name));
    let grants = unit_names::grant_server(namespace);
    let mut files: Vec<(PathBuf, String)> = vec![(
        paths.quadlet_dir(),
        format!("{}.container", unit_names::router(namespace)),
    )];
    let mut units = vec![format!("{}.service", unit_names::router(namespace))];
    for stem in forwarders {
        files.push((paths.quadlet_dir(), format!("{stem}.container")));
        files.push((paths.systemd_user_dir(), format!("{stem}.socket")));
        units.extend([format!("{stem}.socket"), format!("{stem}.service")]);
    }
    // Socket-activated servers, once the site has them.
    for stem in [grants, unit_names::console(namespace)] {
        if paths
            .systemd_user_dir()
            .join(format!("{stem}.socket"))
            .exists()
        {
            for suffix in ["socket", "service"] {
                files.push((paths.systemd_user_dir(), format!("{stem}.{suffix}")));
                units.push(format!("{stem}.{suffix}"));
            }
        }
    }
    (files, units)
}

/// The site's unit files and their states.
async fn add_units(
    archive: &mut Archive,
    paths: &Paths,
    site_dir: &SiteDir,
    resources: &SiteResources,
) {
    let (files, units) = site_units(paths, site_dir, resources);
    for (dir, name) in files {
        archive.add_file(format!("units/{name}"), &dir.join(&name));
    }
    let Ok(manager) = UserManager::connect().await else {
        archive.missing.push("units/states.txt: no user bus".into());
        return;
    };
    let mut states = String::new();
    for unit in units {
        match manager.unit_state(&unit).await {
            Ok(state) => states.push_str(&format!(
                "{unit} {}/{} ({})\n",
                state.active_state, state.sub_state, state.load_state
            )),
            Err(e) => states.push_str(&format!("{unit} unknown: {e}\n")),
        }
    }
    archive.add("units/states.txt", states);
}

/// QUERY of each entity type vansite uses, as the router answers it.
async fn add_management(archive: &mut Archive, site_dir: &SiteDir, resources: &SiteResources) {
    let connected = site_management(site_dir, resources, Duration::from_secs(3)).await;
    let mut client = match connected {
        Ok(client) => client,
        Err(e) => {
            archive
                .missing
                .push(format!("management/: the router does not answer: {e}"));
            return;
        }
    };
    for entity_type in QUERIED {
        match client.query(entity_type, &[]).await {
            Ok(rows) => archive.add_json(&format!("management/{entity_type}.json"), &rows),
            Err(e) => archive
                .missing
                .push(format!("management/{entity_type}.json: {e}")),
        }
    }
    let _ = client.close().await;
}

/// Writes the entries as `vansite-<namespace>-dump/<name>` in a gzipped tar, atomically and
/// private to the user (0600: it describes the site's setup).
fn write_archive(file: &Path, namespace: &str, entries: &[(String, Vec<u8>)]) -> Result<(), Error> {
    let mut bytes = Vec::new();
    {
        let encoder = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::default());
        let mut builder = tar::Builder::new(encoder);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        for (name, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(now);
            header.set_cksum();
            builder
                .append_data(
                    &mut header,
                    format!("vansite-{namespace}-dump/{name}"),
                    contents.as_slice(),
                )
                .map_err(Error::file("cannot write", file))?;
        }
        let encoder = builder
            .into_inner()
            .map_err(Error::file("cannot write", file))?;
        encoder
            .finish()
            .and_then(|out| out.flush())
            .map_err(Error::file("cannot write", file))?;
    }
    files::write_atomic(file, &bytes, files::SECRET).map_err(Error::file("cannot write", file))?;
    Ok(())
}

/// Where an event of `debug events` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// A vansite command that changed the site (its event log).
    Vansite,
    /// The router's log.
    Router,
    /// systemd: when one of the site's units last started or stopped.
    Unit,
}

/// One line of `debug events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteEvent {
    /// RFC 3339, UTC, to the microsecond: events sort by it.
    pub time: String,
    pub source: EventSource,
    pub text: String,
}

/// Router log lines below warning that still say something happened to the site: a link or
/// connection coming or going, a listener opening or closing, the router starting or stopping.
const NOTABLE_ROUTER_INFO: [&str; 8] = [
    "Connection Opened",
    "Connection Closed",
    "Creating listener",
    "accepting",
    "connected",
    "link",
    "running",
    "shutting down",
];

/// `debug events`: vansite's commands, the router's notable log lines and the last start and
/// stop of each of the site's units, oldest first.
pub async fn events(paths: &Paths, namespace: &str) -> Result<Vec<SiteEvent>, Error> {
    let resources = paths.load_site(namespace)?;
    let site_dir = paths.site(namespace);
    let units = unit_events(paths, &site_dir, &resources).await;
    let vansite = site_dir.recorded_events().into_iter().map(|e| SiteEvent {
        time: e.time,
        source: EventSource::Vansite,
        text: format!("{}: {}", e.command, e.outcome),
    });
    let log = std::fs::read_to_string(site_dir.router_log()).unwrap_or_default();
    let router = log.lines().filter_map(router_event);
    let mut all: Vec<SiteEvent> = vansite.chain(router).chain(units).collect();
    all.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(all)
}

/// What systemd remembers of each unit: when it last became active and inactive (and how it
/// ended, and its automatic restarts). Nothing when the user bus does not answer.
async fn unit_events(
    paths: &Paths,
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Vec<SiteEvent> {
    let Ok(manager) = UserManager::connect().await else {
        return Vec::new();
    };
    let (_, units) = site_units(paths, site_dir, resources);
    let mut events = Vec::new();
    for unit in units {
        let Ok(state) = manager.unit_state(&unit).await else {
            continue;
        };
        let event = |time: SystemTime, text: String| SiteEvent {
            time: chrono::DateTime::<chrono::Utc>::from(time)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            source: EventSource::Unit,
            text,
        };
        if let Some(time) = state.active_since {
            let restarts = match state.restarts {
                Some(n) if n > 0 => format!(" (restarted by systemd {n} time(s))"),
                _ => String::new(),
            };
            events.push(event(time, format!("{unit} started{restarts}")));
        }
        if let Some(time) = state.inactive_since {
            let how = match state.service_result.as_deref() {
                Some("success") | None => String::new(),
                Some(result) => format!(" ({result})"),
            };
            events.push(event(time, format!("{unit} stopped{how}")));
        }
    }
    events
}

/// A router log line as an event, when it is one: the real router's
/// `2026-12-01 03:52:54.836755 +0000 TCP_ADAPTOR (error) text` and the stand-in's
/// `2026-12-01T04:10:56.916888Z  WARN target: text`, at warning or above, or notable.
fn router_event(line: &str) -> Option<SiteEvent> {
    let (time, level, text) = real_router_line(line).or_else(|| standin_line(line))?;
    let serious = matches!(level, "warning" | "error" | "critical" | "WARN" | "ERROR");
    if !serious && !NOTABLE_ROUTER_INFO.iter().any(|n| text.contains(n)) {
        return None;
    }
    Some(SiteEvent {
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        source: EventSource::Router,
        text: text.to_string(),
    })
}

type LogLine<'a> = (chrono::DateTime<chrono::Utc>, &'a str, &'a str);

fn real_router_line(line: &str) -> Option<LogLine<'_>> {
    // Date, time and offset are the first three fields; then the module and `(level)`.
    let mut fields = line.splitn(6, ' ');
    let (date, clock, offset) = (fields.next()?, fields.next()?, fields.next()?);
    let time = chrono::DateTime::parse_from_str(
        &format!("{date} {clock} {offset}"),
        "%Y-%m-%d %H:%M:%S%.f %z",
    )
    .ok()?;
    let _module = fields.next()?;
    let level = fields.next()?.strip_prefix('(')?.strip_suffix(')')?;
    let text = fields.next().unwrap_or_default();
    Some((time.with_timezone(&chrono::Utc), level, text))
}

fn standin_line(line: &str) -> Option<LogLine<'_>> {
    let (stamp, rest) = line.split_once(' ')?;
    let time = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    let rest = rest.trim_start();
    let (level, rest) = rest.split_once(' ')?;
    let text = rest.split_once(": ").map_or(rest, |(_, text)| text);
    Some((time.with_timezone(&chrono::Utc), level, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_log_lines_of_both_routers_become_events_when_they_matter() {
        let real = router_event(
            "2026-12-01 03:52:54.836826 +0100 TCP_ADAPTOR (error) tcpListener Lx TLS configuration \
             failed: Not found: sslProfile 'missing' not found",
        )
        .unwrap();
        assert_eq!(real.time, "2026-12-01T02:52:54.836826Z");
        assert_eq!(
            real.text,
            "tcpListener Lx TLS configuration failed: Not found: sslProfile 'missing' not found"
        );
        let standin = router_event(
            "2026-12-01T04:10:56.916921Z  INFO skrouterd_standin: router vm-2a2e814f (interior) running",
        )
        .unwrap();
        assert_eq!(standin.time, "2026-12-01T04:10:56.916921Z");
        assert_eq!(standin.text, "router vm-2a2e814f (interior) running");
        let warning = router_event(
            "2026-12-01T04:10:57.000001Z  WARN skrouterd_standin::tcp: tcpConnector db: TLS handshake failed",
        )
        .unwrap();
        assert_eq!(warning.text, "tcpConnector db: TLS handshake failed");

        // Routine lines and podman's own lines (no time stamp) are not events.
        assert_eq!(
            router_event("2026-12-01 03:52:54.836826 +0000 AGENT (info) Created tcpConnector x"),
            None
        );
        assert_eq!(router_event("Trying to pull localhost/none:1..."), None);
    }
}

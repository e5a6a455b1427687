//! Everything the command line prints on stdout: tables and sentences for a person, JSON or
//! YAML for scripts (`--output`), and the views those are made of. Nothing else in vansite
//! writes to stdout; progress and errors go to stderr.

use std::path::Path;

/// `print!` that ends the program quietly when the reader went away (`vansite status | head`),
/// as `cat` ends, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

/// `println!`, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => { emit(format_args!("{}\n", format_args!($($arg)*))) };
}

fn emit(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("vansite: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

use serde::Serialize;

use crate::grants::TokenFormat;
use crate::model::StrategyKind;
use crate::observe::{self, status::NetworkStatus};
use crate::ops::access;
use crate::ops::console::ConsoleOutcome;
use crate::ops::debug::{DumpOutcome, SiteEvent};
use crate::ops::delete;
use crate::ops::doctor::{self, DoctorReport};
use crate::ops::expiry::ExpiryReport;
use crate::ops::init::InitOutcome;
use crate::ops::link::{self, Applied, CreateOutcome, IncomingLink, LinkStatus, LinksReport};
use crate::ops::ports::SitePort;
use crate::ops::services::{ServiceChange, ServiceInfo, ServiceKind, ServiceStatus};
use crate::ops::status::{Endpoint, SiteInfo, SiteStatus};
use crate::ops::token::{self, GrantInfo, IssueOutcome};

use crate::model::{LinkRole, Resource, RouterMode};
use crate::ops::apply::{FileAction, Preview, RouterChange};
use crate::ops::manifest::{ManifestOutcome, ObjectChange};

use super::args::{write_completion, ManifestFormat, OutputFormat};

/// What `init` did.
pub fn print_init(format: OutputFormat, outcome: InitOutcome) {
    print_data(format, &SiteInitialised::from(outcome), describe_init);
}

/// The site, as `status` shows it.
pub fn print_status(format: OutputFormat, status: &SiteStatus) {
    print_data(format, status, status_table);
}

/// What `delete` removed.
pub fn print_delete(format: OutputFormat, outcome: &delete::DeleteOutcome) {
    print_data(format, outcome, describe_delete);
}

/// The host checks of `doctor`.
pub fn print_doctor(format: OutputFormat, report: &DoctorReport) {
    print_data(format, report, doctor::table);
}

/// What `token issue` wrote.
pub fn print_token_issued(format: OutputFormat, outcome: IssueOutcome) {
    print_data(format, &TokenIssued::from(outcome), describe_issue);
}

/// What `link create` (`token redeem`) did.
pub fn print_link_created(format: OutputFormat, outcome: CreateOutcome) {
    print_data(format, &LinkCreated::from(outcome), describe_link_create);
}

/// What `link delete` did.
pub fn print_link_deleted(format: OutputFormat, outcome: &link::DeleteOutcome) {
    print_data(format, outcome, describe_link_delete);
}

/// `link revoke`.
pub fn print_link_revoked(format: OutputFormat, outcome: &access::LinkRevoked) {
    print_data(format, outcome, |outcome| {
        let mut text = format!(
            "Incoming link '{}' revoked: its credentials are no longer trusted ({}).\n",
            outcome.link,
            outcome.router.describe()
        );
        if !outcome.still_trusted.is_empty() {
            text.push_str(&format!(
                "The router cannot close one link alone: the links still trusted ({}) reconnect \
                 within seconds.\n",
                outcome.still_trusted.join(", ")
            ));
        }
        text
    });
}

/// What `revoke-access` is about to break, for the person to confirm.
pub fn describe_access_to_revoke(namespace: &str, planned: &access::AccessToRevoke) -> String {
    format!(
        "revoke-access on site '{namespace}' creates a new site CA and server certificate:\n\
         - incoming links stop working and stay down: {}\n\
         - tokens not yet redeemed are refused (AccessGrants removed): {}\n\
         - links this site made to other sites are not affected; tokens issued afterwards work.",
        joined_or(&planned.links, "none"),
        joined_or(&planned.grants, "none")
    )
}

/// `revoke-access`.
pub fn print_access_revoked(format: OutputFormat, outcome: &access::AccessRevoked) {
    print_data(format, outcome, |outcome| {
        format!(
            "Access to site '{}' revoked: new site CA and server certificate ({}).\n\
             Incoming links ended: {}\nGrants removed: {}\n\
             Issue new tokens with `vansite token issue FILE`.\n",
            outcome.namespace,
            outcome.router.describe(),
            joined_or(&outcome.links, "none"),
            joined_or(&outcome.grants, "none")
        )
    });
}

/// `certs list`.
pub fn print_certificates(format: OutputFormat, certificates: &[ExpiryReport]) {
    print_data(format, &certificates, |certificates| {
        let rows: Vec<Vec<String>> = certificates
            .iter()
            .map(|c| {
                vec![
                    c.certificate.clone(),
                    c.not_after.clone(),
                    c.days_left.to_string(),
                    c.state.as_str().into(),
                ]
            })
            .collect();
        columns(&["CERTIFICATE", "NOT AFTER", "DAYS LEFT", "STATE"], &rows)
    });
}

/// `token list`.
pub fn print_grants(format: OutputFormat, grants: &[GrantInfo]) {
    print_data(format, &grants, |grants| {
        let rows: Vec<Vec<String>> = grants
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    format!("{}/{}", g.redemptions_used, g.redemptions_allowed),
                    g.expiration_time.clone().unwrap_or_else(|| "-".into()),
                    format!(
                        "{}:{}",
                        g.host.as_deref().unwrap_or("-"),
                        g.port.map_or("-".into(), |p| p.to_string())
                    ),
                    g.state.as_str().into(),
                ]
            })
            .collect();
        columns(
            &["NAME", "REDEEMED", "EXPIRES", "HOST:PORT", "STATE"],
            &rows,
        )
    });
}

/// `token revoke`.
pub fn print_grant_revoked(format: OutputFormat, outcome: &token::GrantRevoked) {
    print_data(format, outcome, |outcome| {
        format!(
            "AccessGrant '{}' revoked: its token is refused from now on. Links it already made \
             ({} redemption(s)) stay; `vansite link revoke NAME` ends one.\n",
            outcome.name, outcome.redemptions_used
        )
    });
}

/// `certs rotate`.
pub fn print_rotated(format: OutputFormat, outcome: &access::Rotated) {
    print_data(format, outcome, |outcome| {
        if outcome.renewed.is_empty() {
            return "No certificate needed renewing.\n".into();
        }
        let cas = if outcome.cas.is_empty() {
            String::new()
        } else {
            format!(
                "New CAs: {} (the old ones stay trusted until the next `certs rotate --ca`)\n",
                outcome.cas.join(", ")
            )
        };
        let rows: Vec<Vec<String>> = outcome
            .renewed
            .iter()
            .map(|r| vec![r.certificate.clone(), r.not_after.clone()])
            .collect();
        format!(
            "{cas}Renewed ({}):\n{}",
            outcome.router.describe(),
            columns(&["CERTIFICATE", "NOT AFTER"], &rows)
        )
    });
}

/// `link status`.
pub fn print_links(format: OutputFormat, report: &LinksReport) {
    print_data(format, report, |report| {
        format!(
            "Links created from this site:\n{}\nCurrent links from other sites:\n{}",
            links_table(&report.outgoing),
            incoming_table(&report.incoming)
        )
    });
}

fn incoming_table(links: &[IncomingLink]) -> String {
    if links.is_empty() {
        return "No links from other sites: `vansite token issue FILE` makes a token for one.\n"
            .into();
    }
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            vec![
                l.name.clone().unwrap_or_else(|| "-".into()),
                l.from_site.clone().unwrap_or_else(|| "-".into()),
                l.remote_router.clone(),
                l.role.to_string(),
                l.since.clone().unwrap_or_else(|| "-".into()),
                l.from.clone(),
            ]
        })
        .collect();
    columns(
        &["NAME", "SITE", "REMOTE ROUTER", "ROLE", "SINCE", "FROM"],
        &rows,
    )
}

pub fn print_network_status(format: OutputFormat, status: &NetworkStatus) {
    print_data(format, status, |status| {
        format!(
            "Sites:\n{}\nLinks (from the site that dials to the site that accepts):\n{}\nServices:\n{}",
            network_sites_table(&status.sites),
            network_links_table(&status.links),
            network_services_table(&status.services),
        )
    });
}

fn network_sites_table(sites: &[observe::status::SiteStatus]) -> String {
    let rows: Vec<Vec<String>> = sites
        .iter()
        .map(|s| {
            let routers: Vec<String> = s
                .routers
                .iter()
                .map(|r| match &r.mode {
                    Some(mode) => format!("{} ({mode})", r.name),
                    None => r.name.clone(),
                })
                .collect();
            vec![
                s.name.clone(),
                or_dash(&s.platform),
                or_dash(&s.namespace),
                or_dash(&s.version),
                routers.join(", "),
            ]
        })
        .collect();
    columns(
        &["NAME", "PLATFORM", "NAMESPACE", "VERSION", "ROUTERS"],
        &rows,
    )
}

fn network_links_table(links: &[observe::status::LinkStatus]) -> String {
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            vec![
                l.from_site.clone(),
                or_dash(&l.to_site),
                or_dash(&l.role),
                l.cost.map_or("-".into(), |c| c.to_string()),
                l.state.as_str().into(),
                l.bytes_out.to_string(),
                l.bytes_in.to_string(),
            ]
        })
        .collect();
    columns(
        &[
            "FROM",
            "TO",
            "ROLE",
            "COST",
            "STATE",
            "BYTES OUT",
            "BYTES IN",
        ],
        &rows,
    )
}

fn network_services_table(services: &[observe::status::ServiceStatus]) -> String {
    let place = |e: &observe::status::Endpoint| match (&e.host, &e.port) {
        (Some(host), Some(port)) => format!("{} {host}:{port}", e.site),
        _ => e.site.clone(),
    };
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let listeners: Vec<String> = s.listeners.iter().map(place).collect();
            let connectors: Vec<String> = s.connectors.iter().map(place).collect();
            vec![
                s.routing_key.clone(),
                if s.reachable { "yes" } else { "no" }.into(),
                joined_or(&listeners, "-"),
                joined_or(&connectors, "-"),
                s.open_connections.to_string(),
                s.connections.to_string(),
                s.bytes_sent.to_string(),
                s.bytes_received.to_string(),
            ]
        })
        .collect();
    columns(
        &[
            "ROUTING KEY",
            "REACHABLE",
            "LISTENERS",
            "CONNECTORS",
            "OPEN",
            "CONNECTIONS",
            "BYTES SENT",
            "BYTES RECEIVED",
        ],
        &rows,
    )
}

fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// `items` joined by commas, or `empty` when there are none.
fn joined_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.into()
    } else {
        items.join(", ")
    }
}

/// `link generate` without a file: the Link and Secret, as YAML.
pub fn print_generated_link(yaml: &str) {
    out!("{yaml}");
}

/// `link generate`: the name the new incoming link has here, on stderr.
pub fn generated_link_issued(link: &str, namespace: &str) {
    eprintln!(
        "Incoming link '{link}' issued: `vansite -n {namespace} link status` shows it once the \
         other site links, `vansite -n {namespace} link revoke {link}` ends it."
    );
}

/// `link generate FILE`: where they went, on stderr (stdout stays empty).
pub fn generated_link_written(file: &Path) {
    eprintln!("Link and Secret written to {}: apply them on the other site (`vansite link create {}`, or `skupper link apply`/`kubectl apply -f`).", file.display(), file.display());
}

/// `completion SHELL`.
pub fn print_completion(shell: clap_complete::Shell) {
    write_completion(shell, &mut std::io::stdout());
}

/// A listener or connector `created`, `updated` or `deleted`.
pub fn print_service_change(format: OutputFormat, change: &ServiceChange, verb: &str) {
    print_data(format, change, |change| {
        let info = &change.info;
        let kind = match (info.kind, &info.strategy) {
            (ServiceKind::Listener, None) => "Listener",
            (ServiceKind::Listener, Some(_)) => "Listener (multi-key)",
            (ServiceKind::Connector, _) => "Connector",
        };
        let mut text = format!(
            "{kind} '{}' {verb}: routing key {}, {}:{}\n",
            info.name,
            keys_text(info),
            info.host,
            info.port
        );
        if verb != "deleted" {
            if let Some(tls) = tls_text(info) {
                text.push_str(&format!("  {tls}\n"));
            }
        }
        if !change.live {
            text.push_str(&format!("  ({})\n", change.router.describe()));
        }
        if let Some(forwarder) = &change.forwarder {
            let pid = forwarder
                .main_pid
                .map(|pid| format!(", pid {pid}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  forwarder {} running{pid}: clients are served now, without waiting for its \
                 container to start\n",
                forwarder.unit
            ));
        }
        if let Some(n) = change.ended_connections.filter(|n| *n > 0) {
            text.push_str(&format!("  ended {n} open connection(s)\n"));
        }
        match change.still_offered_at.as_deref() {
            Some([]) => text.push_str(&format!(
                "  no site offers routing key {} now: its listeners stop accepting\n",
                keys_text(info)
            )),
            Some(at) => text.push_str(&format!(
                "  routing key {} is still offered at {}: new connections go there\n",
                keys_text(info),
                at.join(", ")
            )),
            None => {}
        }
        text
    });
}

/// `'db'`, or a multi-key listener's keys: `'a' > 'b' (priority)`, `'a'=1, 'b'=2 (weighted)`.
fn keys_text(info: &ServiceInfo) -> String {
    match (&info.routing_key, &info.strategy) {
        (_, Some(strategy)) => {
            let keys: Vec<String> = strategy
                .keys
                .iter()
                .map(|k| match strategy.kind {
                    StrategyKind::Priority => format!("'{}'", k.key),
                    StrategyKind::Weighted => format!("'{}'={}", k.key, k.value),
                })
                .collect();
            let separator = match strategy.kind {
                StrategyKind::Priority => " > ",
                StrategyKind::Weighted => ", ",
            };
            format!("{} ({})", keys.join(separator), strategy.kind.as_str())
        }
        (Some(key), None) => format!("'{key}'"),
        (None, None) => "-".into(),
    }
}

/// What a person needs to know of a service's TLS: which CA to trust or verify with.
fn tls_text(info: &ServiceInfo) -> Option<String> {
    let tls = info.tls.as_ref()?;
    let ca = tls.ca_file.as_deref();
    Some(match info.kind {
        ServiceKind::Listener => {
            let trust = match ca {
                Some(ca) => format!("clients trust {ca}"),
                None => "clients trust the issuer of its certificate".into(),
            };
            let required = if tls.client_certificate {
                ", and present a certificate signed by it"
            } else {
                ""
            };
            format!(
                "TLS with '{}' (ends at the router): {trust}{required}",
                tls.credentials
            )
        }
        ServiceKind::Connector => format!(
            "TLS to the service with '{}': verified with {}{}{}",
            tls.credentials,
            ca.unwrap_or("its CA"),
            if tls.verify_hostname == Some(true) {
                ", its certificate must name the host"
            } else {
                ""
            },
            if tls.client_certificate {
                "; the router presents a client certificate"
            } else {
                ""
            },
        ),
    })
}

/// What `apply -f` / `delete -f` did, kubectl's way (`listener/db configured`), or its plan.
pub fn print_manifest(format: OutputFormat, outcome: &ManifestOutcome) {
    print_data(format, outcome, describe_manifest);
}

fn describe_manifest(outcome: &ManifestOutcome) -> String {
    let mut text = String::new();
    let dry = if outcome.plan.is_some() {
        " (dry run)"
    } else {
        ""
    };
    for object in &outcome.objects {
        let change = match object.change {
            ObjectChange::Created => "created",
            ObjectChange::Configured => "configured",
            ObjectChange::Unchanged => "unchanged",
            ObjectChange::Deleted => "deleted",
            ObjectChange::NotFound => "not found (nothing to delete)",
        };
        text.push_str(&format!(
            "{}/{} {change}{dry}\n",
            object.kind.to_ascii_lowercase(),
            object.name
        ));
    }
    for skipped in &outcome.skipped {
        text.push_str(&format!("{skipped} skipped (not for a host site)\n"));
    }
    if let Some(router) = &outcome.router {
        text.push_str(&format!("Router: {}.\n", router.describe()));
    }
    if let Some(plan) = &outcome.plan {
        text.push_str(&describe_preview(plan));
    }
    text
}

fn describe_preview(plan: &Preview) -> String {
    let mut text = String::from("Plan:\n");
    text.push_str("  resources:\n");
    for change in &plan.resources {
        text.push_str(&format!("    {change}\n"));
    }
    if plan.resources.is_empty() {
        text.push_str("    (no change)\n");
    }
    text.push_str("  files:\n");
    for file in &plan.files {
        let action = match file.action {
            FileAction::Create => "create",
            FileAction::Update => "update",
            FileAction::Remove => "remove",
        };
        text.push_str(&format!("    {action} {}\n", file.path.display()));
    }
    text.push_str("  units:\n");
    for unit in &plan.units {
        text.push_str(&format!("    {unit}\n"));
    }
    let router = match &plan.router {
        RouterChange::Live { operations } if operations.is_empty() => "unchanged".to_string(),
        RouterChange::Live { operations } => {
            format!("changed live (no restart): {}", operations.join(", "))
        }
        RouterChange::Started => "started (it is not running)".into(),
        RouterChange::Restarted { reasons } => format!("restarted: {}", reasons.join(", ")),
        other => other.describe(),
    };
    text.push_str(&format!("  router: {router}\n"));
    text
}

/// `get`: the resources as one YAML stream, or a JSON array.
pub fn print_resources(
    format: ManifestFormat,
    resources: &[Resource],
) -> Result<(), crate::error::Error> {
    match format {
        ManifestFormat::Yaml => {
            for resource in resources {
                out!("---\n{}", resource.to_yaml()?);
            }
        }
        ManifestFormat::Json => {
            let mut all = Vec::new();
            for resource in resources {
                let value: serde_json::Value = serde_saphyr::from_str(&resource.to_yaml()?)
                    .expect("vansite's own YAML reads back");
                all.push(value);
            }
            outln!(
                "{}",
                serde_json::to_string_pretty(&all).expect("serialisable")
            );
        }
    }
    Ok(())
}

/// `debug events`: a table, or JSON/YAML; following, one event per line so that each new one
/// can be read as it comes.
pub fn print_events(format: OutputFormat, events: &[SiteEvent], following: bool) {
    let line = |e: &SiteEvent| {
        format!(
            "{}  {:<7}  {}\n",
            e.time,
            format!("{:?}", e.source).to_lowercase(),
            e.text
        )
    };
    match (format, following) {
        (OutputFormat::Table, _) => {
            if events.is_empty() && !following {
                outln!("No events yet.");
            }
            out!("{}", events.iter().map(line).collect::<String>());
        }
        (OutputFormat::Json, true) => {
            for event in events {
                outln!("{}", serde_json::to_string(event).expect("serialisable"));
            }
        }
        (OutputFormat::Yaml, true) => {
            for event in events {
                out!(
                    "---\n{}",
                    serde_saphyr::to_string(event).expect("serialisable")
                );
            }
        }
        (_, false) => print_data(format, &events, |_| String::new()),
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// `debug dump FILE`: where it went and what it holds.
pub fn print_dump(format: OutputFormat, outcome: &DumpOutcome) {
    print_data(format, outcome, |outcome| {
        let mut text = format!(
            "Wrote {} ({} entries, no secrets): attach it to the support request.\n",
            outcome.file.display(),
            outcome.entries.len()
        );
        for missing in &outcome.missing {
            text.push_str(&format!("  not included: {missing}\n"));
        }
        text
    });
}

/// `console`: with `--print-url`, the URL alone (for scripts and copying).
pub fn print_console(format: OutputFormat, outcome: &ConsoleOutcome) {
    print_data(format, outcome, |outcome| {
        if outcome.opened {
            format!(
                "Opened the console of site {} in your browser.\n",
                outcome.site_name
            )
        } else if outcome.with_token {
            format!("{}\n", outcome.url)
        } else {
            format!(
                "The console of site {} listens on {} ({}).\nIts URL with the access token: \
                 `vansite console --print-url`; to open it in your browser: `vansite console \
                 --open`.\n",
                outcome.site_name, outcome.url, outcome.unit
            )
        }
    });
}

/// `listener list` / `connector list`.
pub fn print_services(format: OutputFormat, infos: &[ServiceInfo]) {
    print_data(format, &infos, |infos| info_table(infos));
}

/// `listener status` / `connector status`.
pub fn print_service_statuses(format: OutputFormat, all: &[ServiceStatus]) {
    print_data(format, &all, |all| status_table_of_services(all));
}

/// Prints data as `format` asks: a table for a person, or JSON/YAML for scripts.
fn print_data<T: Serialize>(format: OutputFormat, data: &T, table: impl FnOnce(&T) -> String) {
    match format {
        OutputFormat::Table => out!("{}", table(data)),
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(data).expect("serialisable")
        ),
        OutputFormat::Yaml => out!("{}", serde_saphyr::to_string(data).expect("serialisable")),
    }
}

/// What `token issue` did, as it is printed. The grant's code is in the token file only.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenIssued {
    /// The AccessGrant's name, also the token's.
    name: String,
    /// Where the token was written; text, since a path that is not UTF-8 cannot be serialised.
    file: String,
    format: TokenFormat,
    /// Where the token is redeemed.
    url: String,
    redemptions_allowed: u32,
    /// RFC 3339.
    expiration_time: String,
    /// The grant server's socket unit.
    grant_server_socket: String,
}

impl From<IssueOutcome> for TokenIssued {
    fn from(outcome: IssueOutcome) -> Self {
        TokenIssued {
            name: outcome.grant_name,
            file: outcome.file.display().to_string(),
            format: outcome.format,
            url: outcome.url,
            redemptions_allowed: outcome.redemptions_allowed,
            expiration_time: outcome.expiration_time,
            grant_server_socket: outcome.socket_unit,
        }
    }
}

fn describe_issue(outcome: &TokenIssued) -> String {
    let (kind, redeem) = match outcome.format {
        TokenFormat::V2 => (
            "AccessToken",
            "`vansite link create FILE` on a host, or `skupper token redeem FILE` on a cluster",
        ),
        TokenFormat::V1 => (
            "v1 token-claim",
            "a Skupper v1 site (`skupper link create FILE`) or `vansite link create FILE`",
        ),
    };
    let uses = match outcome.redemptions_allowed {
        1 => "once".to_string(),
        n => format!("{n} times"),
    };
    format!(
        "{kind} '{}' written to {}.\n  url:          {}\n  redeemable:   {uses}, until {}\n  grant server: {} (systemctl --user status {})\nRedeem it with {redeem}.\n",
        outcome.name,
        outcome.file,
        outcome.url,
        outcome.expiration_time,
        outcome.grant_server_socket,
        outcome.grant_server_socket,
    )
}

fn info_table(infos: &[ServiceInfo]) -> String {
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                keys_text(i),
                format!("{}:{}", i.host, i.port),
                tls_column(i),
            ]
        })
        .collect();
    columns(&["NAME", "ROUTING KEY", "ADDRESS", "TLS"], &rows)
}

fn tls_column(info: &ServiceInfo) -> String {
    match &info.tls {
        None => "-".into(),
        Some(tls) if tls.client_certificate => format!("{} (client cert)", tls.credentials),
        Some(tls) => tls.credentials.clone(),
    }
}

fn status_table_of_services(all: &[ServiceStatus]) -> String {
    let unknown = || "-".to_string();
    let offered = |at: &Option<Vec<String>>| match at {
        None => unknown(),
        Some(at) if at.is_empty() => "nowhere".into(),
        Some(at) => at.join(","),
    };
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                format!("{:?}", s.info.kind).to_lowercase(),
                s.info.name.clone(),
                keys_text(&s.info),
                format!("{}:{}", s.info.host, s.info.port),
                tls_column(&s.info),
                s.forwarder_state
                    .as_ref()
                    .map(|f| format!("{f} (socket {})", s.socket_state.as_deref().unwrap_or("?")))
                    .unwrap_or_else(unknown),
                match (s.in_router, s.peer) {
                    _ if s.router_error.is_some() => "router not listening".into(),
                    (None, _) => "router not answering".into(),
                    (Some(false), _) => "missing in router".into(),
                    (Some(true), Some(peer)) => peer.to_string(),
                    (Some(true), None) => "in router".into(),
                },
                if s.keys.is_empty() {
                    offered(&s.offered_at)
                } else {
                    "(per key)".into()
                },
                s.active_connections
                    .map(|n| n.to_string())
                    .unwrap_or_else(unknown),
            ]
        })
        .collect();
    let mut text = columns(
        &[
            "KIND",
            "NAME",
            "ROUTING KEY",
            "ADDRESS",
            "TLS",
            "FORWARDER",
            "PEER",
            "OFFERED AT",
            "CONNECTIONS",
        ],
        &rows,
    );
    for status in all {
        for key in &status.keys {
            let share = key
                .new_connections_percent
                .map_or_else(unknown, |p| format!("{p}%"));
            text.push_str(&format!(
                "{}: key '{}' offered at {}, takes {share} of new connections\n",
                status.info.name,
                key.key,
                offered(&key.offered_at)
            ));
        }
        if let Some(tls) = tls_text(&status.info) {
            text.push_str(&format!("{}: {tls}\n", status.info.name));
        }
        for problem in &status.problems {
            text.push_str(&format!("problem: {problem}\n"));
        }
    }
    text
}

/// Left-aligned columns, two spaces apart; "(none)" for no rows.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", text.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn describe_applied(applied: Applied) -> &'static str {
    match applied {
        Applied::Live => "applied to the running router, no restart",
        Applied::Restarted => "the router was restarted to apply it",
        Applied::RouterNotRunning => "the router is not running: it applies it when it starts",
    }
}

/// `Note: ...` lines, one a note.
fn note_lines(notes: &[String]) -> String {
    notes.iter().map(|note| format!("Note: {note}\n")).collect()
}

/// What `link create` (`token redeem`) did, as it is printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkCreated {
    namespace: String,
    /// What the file held, in words ("an AccessToken", "a Link and its Secret", ...).
    from: &'static str,
    links: Vec<CreatedLink>,
    /// The name of the Secret the links use (its keys stay in the site's files).
    secret: String,
    applied: Applied,
    notes: Vec<String>,
}

/// One new link, named as `link status` names its fields.
#[derive(Debug, Serialize)]
struct CreatedLink {
    name: String,
    role: LinkRole,
    /// The `host:port` this site dials.
    endpoint: String,
}

impl From<CreateOutcome> for LinkCreated {
    fn from(outcome: CreateOutcome) -> Self {
        let links = outcome
            .links
            .into_iter()
            .zip(outcome.endpoints)
            .map(|(name, endpoint)| CreatedLink {
                name,
                role: outcome.role,
                endpoint,
            })
            .collect();
        LinkCreated {
            namespace: outcome.namespace,
            from: outcome.from,
            links,
            secret: outcome.secret,
            applied: outcome.applied,
            notes: outcome.notes,
        }
    }
}

fn describe_link_create(outcome: &LinkCreated) -> String {
    let mut text = format!(
        "Linked site of namespace '{}' with {} ({}):\n",
        outcome.namespace,
        outcome.from,
        describe_applied(outcome.applied)
    );
    for link in &outcome.links {
        text.push_str(&format!(
            "  link {}: {} to {}\n",
            link.name, link.role, link.endpoint
        ));
    }
    text.push_str(&note_lines(&outcome.notes));
    text.push_str(&format!(
        "See whether it is connected with `vansite -n {} link status`.\n",
        outcome.namespace
    ));
    text
}

fn describe_link_delete(outcome: &link::DeleteOutcome) -> String {
    format!(
        "Link '{}' removed from the site of namespace '{}' ({}).\n{}",
        outcome.link,
        outcome.namespace,
        describe_applied(outcome.applied),
        note_lines(&outcome.notes)
    )
}

fn describe_delete(outcome: &delete::DeleteOutcome) -> String {
    let mut text = format!("Deleted the site of namespace '{}':\n", outcome.namespace);
    for item in &outcome.removed {
        text.push_str(&format!("  removed {item}\n"));
    }
    text
}

fn links_table(statuses: &[LinkStatus]) -> String {
    if statuses.is_empty() {
        return "No links: create one with `vansite link create FILE`.\n".into();
    }
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.state.to_string(),
                or_dash(&s.remote_router),
                or_dash(&s.since),
                s.endpoint.clone(),
                or_dash(&s.last_error),
            ]
        })
        .collect();
    columns(
        &[
            "NAME",
            "STATE",
            "REMOTE ROUTER",
            "SINCE",
            "ENDPOINT",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// What `init` did, as it is printed; `site` is the same object `status` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SiteInitialised {
    namespace: String,
    site: SiteInfo,
    /// A new site; false: an existing one, brought to running.
    created: bool,
    /// The running router was restarted to take a changed configuration.
    restarted: bool,
    /// What happened to the router: unchanged, started, restarted (with why), live changes.
    router: RouterChange,
    router_unit: String,
    /// Every port the site takes, each with the default it was picked from (they differ when
    /// the default was in use or another site's): management, link access, the grant server.
    ports: Vec<SitePort>,
    /// Whether the user's manager, and so the router, starts at boot.
    linger: bool,
}

impl From<InitOutcome> for SiteInitialised {
    fn from(outcome: InitOutcome) -> Self {
        SiteInitialised {
            namespace: outcome.namespace,
            site: SiteInfo {
                name: outcome.site_name,
                id: outcome.site_id,
                mode: RouterMode::from_edge(outcome.edge),
                management_port: outcome.management_port,
                link_access: outcome
                    .link_access
                    .into_iter()
                    .map(|(role, port)| Endpoint { role, port })
                    .collect(),
            },
            created: outcome.created,
            restarted: outcome.restarted,
            router: outcome.router,
            router_unit: outcome.unit,
            ports: outcome.ports,
            linger: outcome.linger,
        }
    }
}

/// `role port, role port`, as `init` and `status` print link access.
fn endpoints_text(endpoints: &[Endpoint]) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} {}", e.role, e.port))
        .collect();
    endpoints.join(", ")
}

fn describe_init(outcome: &SiteInitialised) -> String {
    let verb = match (outcome.created, &outcome.router) {
        (true, _) => "created and running".to_string(),
        (false, RouterChange::Restarted { reasons }) => format!(
            "running (restarted: it could not change {} live)",
            reasons.join(", ")
        ),
        (false, RouterChange::Started) => "running (started)".into(),
        (false, RouterChange::Live { operations }) if !operations.is_empty() => {
            format!("running (changed live: {})", operations.join(", "))
        }
        (false, _) => "running (unchanged)".into(),
    };
    let site = &outcome.site;
    let mut text = format!(
        "Site '{}' in namespace '{}' is {verb}.\n  id:         {}\n  mode:       {}\n  router:     {} \
         (systemctl --user status {})\n",
        site.name, outcome.namespace, site.id, site.mode, outcome.router_unit, outcome.router_unit
    );
    text.push_str(&ports_text(&outcome.ports));
    if !outcome.linger {
        text.push_str(
            "Note: the router starts at boot only if your user manager does: run `loginctl enable-linger $USER`.\n",
        );
    }
    text
}

/// The ports a site takes, one a line, saying which is not its default and where other sites
/// must reach it.
fn ports_text(ports: &[SitePort]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            let address = match p.purpose.as_str() {
                "management" => format!("127.0.0.1:{}", p.port),
                _ => p.port.to_string(),
            };
            let note = match (p.purpose.as_str(), p.port == p.default) {
                ("management", true) => "this host only".to_string(),
                ("management", false) => format!("this host only; {} was taken", p.default),
                ("grant server", true) => "other sites redeem tokens here".to_string(),
                ("grant server", false) => {
                    format!("other sites redeem tokens here; {} was taken", p.default)
                }
                (_, true) => "other sites link here".to_string(),
                (_, false) => format!("other sites link here; {} was taken", p.default),
            };
            vec![format!("  {}", p.purpose), address, note]
        })
        .collect();
    format!(
        "Ports:\n{}",
        columns(&["", "", ""], &rows)
            .split_once('\n')
            .map_or("", |(_, rows)| rows)
    )
}

fn status_table(status: &SiteStatus) -> String {
    let router = &status.router;
    let mut rows = vec![
        ("namespace", status.namespace.clone()),
        ("site", format!("{} ({})", status.site.name, status.site.id)),
        ("mode", status.site.mode.to_string()),
        (
            "router unit",
            format!(
                "{} {}/{}",
                router.unit, router.active_state, router.sub_state
            ),
        ),
        ("router image", router.image.clone()),
    ];
    if let Some(container) = &router.container {
        let since = container
            .started_at
            .as_deref()
            .map(|s| format!(", started {s}"))
            .unwrap_or_default();
        let id: String = container
            .id
            .as_deref()
            .unwrap_or("(no id file)")
            .chars()
            .take(12)
            .collect();
        let podman = container
            .podman_status
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        let pid = router
            .main_pid
            .map(|pid| format!(", pid {pid}"))
            .unwrap_or_default();
        rows.push((
            "container",
            format!("{} {id}{podman}{pid}{since}", container.name),
        ));
    }
    rows.push((
        "management",
        format!("127.0.0.1:{}", status.site.management_port),
    ));
    if !status.site.link_access.is_empty() {
        rows.push(("link access", endpoints_text(&status.site.link_access)));
    }
    if let Some(grants) = &status.grant_server {
        let port = grants
            .port
            .map(|p| format!(" port {p},"))
            .unwrap_or_default();
        rows.push((
            "grant server",
            format!(
                "{}{port} socket {}, server {}, {} token(s) redeemable (`vansite token list`)",
                grants.socket, grants.socket_state, grants.service_state, grants.redeemable_tokens
            ),
        ));
    }
    for link in &status.links {
        let detail = match (&link.remote_router, &link.since, &link.last_error) {
            (Some(remote), Some(since), _) => format!("to {remote} since {since}"),
            (_, _, Some(error)) => error.clone(),
            _ => String::new(),
        };
        rows.push((
            "link",
            format!("{} {} {} {detail}", link.name, link.endpoint, link.state)
                .trim_end()
                .to_string(),
        ));
    }
    for link in &status.incoming_links {
        let since = link.since.as_deref().unwrap_or("-");
        rows.push((
            "linked from",
            format!("{} ({}) since {since}", link.remote_router, link.role),
        ));
    }
    if !status.network.is_empty() {
        let routers: Vec<&str> = status.network.iter().map(|r| r.id.as_str()).collect();
        rows.push((
            "network",
            format!(
                "{} routers: {} (sites and services: `vansite network status`)",
                routers.len(),
                routers.join(", ")
            ),
        ));
    }
    if let Some(expiry) = &status.soonest_expiry {
        let days = match expiry.days_left {
            d if d < 0 => "expired".to_string(),
            d => format!("in {d} days"),
        };
        rows.push((
            "certificates",
            format!(
                "soonest expiry {} ({days}): {}",
                expiry.not_after, expiry.certificate
            ),
        ));
    }
    rows.push(("namespaces", status.namespaces.join(", ")));
    let services = if status.services.is_empty() {
        String::new()
    } else {
        format!("\n{}", status_table_of_services(&status.services))
    };
    rows.push((
        "health",
        if status.healthy {
            "ok".into()
        } else {
            status.problems.join("; ")
        },
    ));
    let table: String = rows
        .iter()
        .map(|(key, value)| format!("{key:<13}{value}\n"))
        .collect();
    table + &services
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_init() -> InitOutcome {
        InitOutcome {
            namespace: "west".into(),
            site_name: "west-site".into(),
            site_id: "5f0c7e1a-2b3c-4d5e-8f90-123456789abc".into(),
            edge: false,
            created: true,
            restarted: false,
            router: crate::ops::apply::RouterChange::Started,
            unit: "vansite-west.service".into(),
            management_port: 5671,
            link_access: vec![("inter-router".into(), 55672), ("edge".into(), 45671)],
            ports: vec![
                SitePort {
                    purpose: "management".into(),
                    port: 5671,
                    default: 5671,
                },
                SitePort {
                    purpose: "inter-router".into(),
                    port: 55672,
                    default: 55671,
                },
                SitePort {
                    purpose: "edge".into(),
                    port: 45671,
                    default: 45671,
                },
                SitePort {
                    purpose: "grant server".into(),
                    port: 9090,
                    default: 9090,
                },
            ],
            linger: false,
        }
    }

    fn sample_issue() -> IssueOutcome {
        IssueOutcome {
            grant_name: "west-site-ab12cd34".into(),
            url: "https://west.example:9090/0d1e2f3a-4b5c-6d7e-8f90-abcdef012345".into(),
            expiration_time: "2025-01-01T12:15:00Z".into(),
            redemptions_allowed: 3,
            file: "/home/u/west.token".into(),
            format: TokenFormat::V2,
            socket_unit: "vansite-west-grants.socket".into(),
        }
    }

    fn sample_link_create() -> CreateOutcome {
        CreateOutcome {
            namespace: "east".into(),
            from: "an AccessToken",
            links: vec!["west-site-ab12cd34".into()],
            secret: "west-site-ab12cd34".into(),
            endpoints: vec!["west.example:55671".into()],
            role: LinkRole::InterRouter,
            applied: Applied::Restarted,
            notes: vec![
                "the router's management did not answer (timeout), so the router was \
                         restarted to use the link"
                    .into(),
            ],
        }
    }

    fn sample_link_delete() -> link::DeleteOutcome {
        link::DeleteOutcome {
            namespace: "east".into(),
            link: "west-site-ab12cd34".into(),
            removed_secret: None,
            applied: Applied::Live,
            notes: vec!["the Secret stays: link-b uses it".into()],
        }
    }

    fn sample_delete() -> delete::DeleteOutcome {
        delete::DeleteOutcome {
            namespace: "west".into(),
            removed: vec![
                "unit vansite-west.service (stopped)".into(),
                "/home/u/.local/share/vansite/west".into(),
            ],
        }
    }

    fn json<T: Serialize>(data: &T) -> serde_json::Value {
        serde_json::to_value(data).unwrap()
    }

    #[test]
    fn init_output_has_the_site_as_status_shows_it() {
        assert_eq!(
            json(&SiteInitialised::from(sample_init())),
            serde_json::json!({
                "namespace": "west",
                "site": {
                    "name": "west-site",
                    "id": "5f0c7e1a-2b3c-4d5e-8f90-123456789abc",
                    "mode": "interior",
                    "managementPort": 5671,
                    "linkAccess": [
                        {"role": "inter-router", "port": 55672},
                        {"role": "edge", "port": 45671},
                    ],
                },
                "created": true,
                "restarted": false,
                "router": {"action": "started"},
                "routerUnit": "vansite-west.service",
                // Which ports were picked, and from which defaults, for scripts too.
                "ports": [
                    {"purpose": "management", "port": 5671, "default": 5671},
                    {"purpose": "inter-router", "port": 55672, "default": 55671},
                    {"purpose": "edge", "port": 45671, "default": 45671},
                    {"purpose": "grant server", "port": 9090, "default": 9090},
                ],
                "linger": false,
            })
        );
    }

    #[test]
    fn token_issue_output_names_the_file_not_the_code() {
        assert_eq!(
            json(&TokenIssued::from(sample_issue())),
            serde_json::json!({
                "name": "west-site-ab12cd34",
                "file": "/home/u/west.token",
                "format": "v2",
                "url": "https://west.example:9090/0d1e2f3a-4b5c-6d7e-8f90-abcdef012345",
                "redemptionsAllowed": 3,
                "expirationTime": "2025-01-01T12:15:00Z",
                "grantServerSocket": "vansite-west-grants.socket",
            })
        );
        let v1 = IssueOutcome {
            format: TokenFormat::V1,
            ..sample_issue()
        };
        assert_eq!(json(&TokenIssued::from(v1))["format"], "v1");
    }

    #[test]
    fn link_create_output_pairs_each_link_with_its_endpoint() {
        assert_eq!(
            json(&LinkCreated::from(sample_link_create())),
            serde_json::json!({
                "namespace": "east",
                "from": "an AccessToken",
                "links": [{
                    "name": "west-site-ab12cd34",
                    "role": "inter-router",
                    "endpoint": "west.example:55671",
                }],
                "secret": "west-site-ab12cd34",
                "applied": "restarted",
                "notes": [
                    "the router's management did not answer (timeout), so the router was \
                     restarted to use the link",
                ],
            })
        );
    }

    #[test]
    fn link_delete_output_says_how_the_router_took_it() {
        assert_eq!(
            json(&sample_link_delete()),
            serde_json::json!({
                "namespace": "east",
                "link": "west-site-ab12cd34",
                "removedSecret": null,
                "applied": "live",
                "notes": ["the Secret stays: link-b uses it"],
            })
        );
        let not_running = link::DeleteOutcome {
            removed_secret: Some("west-site-ab12cd34".into()),
            applied: Applied::RouterNotRunning,
            ..sample_link_delete()
        };
        let value = json(&not_running);
        assert_eq!(value["removedSecret"], "west-site-ab12cd34");
        assert_eq!(value["applied"], "router-not-running");
    }

    #[test]
    fn delete_output_lists_what_was_removed() {
        assert_eq!(
            json(&sample_delete()),
            serde_json::json!({
                "namespace": "west",
                "removed": [
                    "unit vansite-west.service (stopped)",
                    "/home/u/.local/share/vansite/west",
                ],
            })
        );
    }

    #[test]
    fn yaml_output_reads_back_as_the_json_output() {
        fn same<T: Serialize>(data: T) {
            let yaml = serde_saphyr::to_string(&data).unwrap();
            let read: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(read, json(&data), "{yaml}");
        }
        same(SiteInitialised::from(sample_init()));
        same(TokenIssued::from(sample_issue()));
        same(LinkCreated::from(sample_link_create()));
        same(sample_link_delete());
        same(sample_delete());
    }

    /// The default output is the text these commands printed before they had --output.
    #[test]
    fn text_output_is_unchanged() {
        assert_eq!(
            describe_init(&SiteInitialised::from(sample_init())),
            "Site 'west-site' in namespace 'west' is created and running.
  id:         5f0c7e1a-2b3c-4d5e-8f90-123456789abc
  mode:       interior
  router:     vansite-west.service (systemctl --user status vansite-west.service)
Ports:
  management    127.0.0.1:5671  this host only
  inter-router  55672           other sites link here; 55671 was taken
  edge          45671           other sites link here
  grant server  9090            other sites redeem tokens here
Note: the router starts at boot only if your user manager does: run `loginctl enable-linger $USER`.
"
        );
        assert_eq!(
            describe_issue(&TokenIssued::from(sample_issue())),
            "AccessToken 'west-site-ab12cd34' written to /home/u/west.token.
  url:          https://west.example:9090/0d1e2f3a-4b5c-6d7e-8f90-abcdef012345
  redeemable:   3 times, until 2025-01-01T12:15:00Z
  grant server: vansite-west-grants.socket (systemctl --user status vansite-west-grants.socket)
Redeem it with `vansite link create FILE` on a host, or `skupper token redeem FILE` on a cluster.
"
        );
        assert_eq!(
            describe_link_create(&LinkCreated::from(sample_link_create())),
            "Linked site of namespace 'east' with an AccessToken (the router was restarted to apply it):
  link west-site-ab12cd34: inter-router to west.example:55671
Note: the router's management did not answer (timeout), so the router was restarted to use the link
See whether it is connected with `vansite -n east link status`.
"
        );
        assert_eq!(
            describe_link_delete(&sample_link_delete()),
            "Link 'west-site-ab12cd34' removed from the site of namespace 'east' (applied to the \
             running router, no restart).\nNote: the Secret stays: link-b uses it\n"
        );
        assert_eq!(
            describe_delete(&sample_delete()),
            "Deleted the site of namespace 'west':\n  removed unit vansite-west.service (stopped)\n  \
             removed /home/u/.local/share/vansite/west\n"
        );
    }
}

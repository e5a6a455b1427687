//! The command line: clap definitions, and the dispatch from a parsed command to the site
//! operations. Output formats and exit codes are decided here, nowhere else.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::settings::Settings;
use crate::site::init::{self, InitOutcome, InitRequest};
use crate::site::link::{self, Applied, CreateOutcome, CreateRequest, LinkStatus};
use crate::site::status::{self, SiteStatus};
use crate::site::{delete, Paths};

#[derive(Debug, Parser)]
#[command(
    name = "vansite",
    version,
    about = "Join this host to a Skupper network: a rootless site run by podman and systemd",
    long_about = "vansite turns a Linux host into a Skupper site without Kubernetes: it writes the \
site's resources (Skupper v2 YAML), certificates and router configuration, runs the \
skupper-router as a quadlet container under your systemd user manager, and links the site to \
others with the same token and link formats as Skupper's cluster sites.",
    after_help = "Exit status: 0 success, 1 the operation failed, 2 bad usage, 3 the site exists but is not healthy."
)]
pub struct Cli {
    /// The site to act on: several sites can live side by side, one per namespace
    #[arg(
        short,
        long,
        global = true,
        env = "VANSITE_NAMESPACE",
        value_name = "NAME"
    )]
    pub namespace: Option<String>,

    /// More output on stderr (-v: progress, -vv: debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the site (resources, certificates, router config, router unit) and start its router
    Init(InitArgs),
    /// Show the site: its identity, mode, and the router unit's state
    Status(StatusArgs),
    /// Stop the site's router and remove every unit and file the site created
    Delete(DeleteArgs),
    /// Link this site to others, remove links, see them
    #[command(subcommand)]
    Link(LinkCommand),
    /// Redeem tokens that other sites issued
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Link to another site with a file it issued: an AccessToken (redeemed at its grant
    /// server), a Link with its Secret (`skupper link generate`), or a Skupper v1 token.
    /// The running router gets the link without a restart.
    Create(LinkCreateArgs),
    /// Remove a link: from the running router first, then from the site's files
    Delete(LinkDeleteArgs),
    /// Show links: connected or not, the remote router, since when, the last error
    Status(LinkStatusArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Redeem a token and link to the site that issued it (the same as `vansite link create`)
    Redeem(LinkCreateArgs),
}

#[derive(Debug, Args)]
pub struct LinkCreateArgs {
    /// The token or link file (`-` reads standard input)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,

    /// Name of the link and its Secret [default: the name in the file]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The link's cost: the router prefers links of lower cost [default: the file's, else 1]
    #[arg(long, value_name = "COST")]
    pub cost: Option<i64>,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct LinkDeleteArgs {
    /// The link to remove
    #[arg(value_name = "NAME")]
    pub name: String,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct LinkStatusArgs {
    /// Only this link
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouterMode {
    /// A full router: accepts and makes links
    Interior,
    /// A leaf router: links to interior sites only, cannot accept links
    Edge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ingress {
    /// No link access: this site only makes links
    None,
    /// Accept links on this host's own ports (inter-router 55671, edge 45671, or the next free)
    Host,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// How the router runs; only podman exists so far
    #[arg(long, default_value = "podman", value_name = "PLATFORM")]
    pub platform: String,

    /// The site's name in the network [default: this host's short name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// interior sites accept and make links; edge sites only link to interior ones
    #[arg(long, value_enum, value_name = "MODE")]
    pub router_mode: Option<RouterMode>,

    /// Let other sites link to this one (the same as --ingress host)
    #[arg(long, conflicts_with = "ingress")]
    pub enable_link_access: bool,

    /// How other sites reach this one to link
    #[arg(long, value_enum, value_name = "INGRESS")]
    pub ingress: Option<Ingress>,

    /// A name or address other sites use to reach this host (repeatable); each goes into the
    /// site's server certificate
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// The router image [default: the settings file's router_image, else the tested skupper-router release]
    #[arg(long, value_name = "IMAGE")]
    pub router_image: Option<String>,

    /// How long to wait for the router to be running (seconds)
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// How long to wait for the router to stop (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a positive number of seconds")),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
    }
}

/// Runs the parsed command. Data goes to stdout, progress and errors to stderr.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let paths = Paths::from_env()?;
    let settings = Settings::load(&paths.settings_file())?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| settings.namespace.clone());
    let progress = |message: &str| tracing::info!("{message}");
    match cli.command {
        Command::Init(args) => {
            let request = InitRequest {
                namespace,
                platform: args.platform,
                name: args.name,
                edge: args.router_mode.map(|m| m == RouterMode::Edge),
                link_access: if args.enable_link_access {
                    Some(true)
                } else {
                    args.ingress.map(|i| i == Ingress::Host)
                },
                hosts: args.hosts,
                router_image: args.router_image,
                default_router_image: settings.router_image,
                timeout: args.timeout,
            };
            let outcome = init::init(&paths, request, &progress).await?;
            print!("{}", describe_init(&outcome));
            Ok(())
        }
        Command::Status(args) => {
            let status = status::status(&paths, &namespace).await?;
            print_data(args.output, &status, status_table);
            if status.healthy {
                Ok(())
            } else {
                Err(Error::Unhealthy {
                    namespace,
                    problems: status.problems,
                })
            }
        }
        Command::Link(LinkCommand::Create(args)) | Command::Token(TokenCommand::Redeem(args)) => {
            let (text, source_name) = read_token_file(&args.file)?;
            let request = CreateRequest {
                namespace,
                text,
                source_name,
                name: args.name,
                cost: args.cost,
                timeout: args.timeout,
            };
            let outcome = link::create(&paths, request, &progress).await?;
            print!("{}", describe_link_create(&outcome));
            Ok(())
        }
        Command::Link(LinkCommand::Delete(args)) => {
            let outcome =
                link::delete(&paths, &namespace, &args.name, args.timeout, &progress).await?;
            println!(
                "Link '{}' removed from the site of namespace '{}' ({}).",
                outcome.link,
                outcome.namespace,
                describe_applied(outcome.applied)
            );
            for note in outcome.notes {
                println!("Note: {note}");
            }
            Ok(())
        }
        Command::Link(LinkCommand::Status(args)) => {
            let statuses = link::status(&paths, &namespace, args.name.as_deref()).await?;
            print_data(args.output, &statuses, |s| links_table(s));
            Ok(())
        }
        Command::Delete(args) => {
            let outcome = delete::delete(&paths, &namespace, args.timeout, &progress).await?;
            println!("Deleted the site of namespace '{}':", outcome.namespace);
            for item in outcome.removed {
                println!("  removed {item}");
            }
            Ok(())
        }
    }
}

/// Prints what a data command found: a table for people, or JSON / YAML for scripts.
fn print_data<T: serde::Serialize>(format: OutputFormat, data: &T, table: impl Fn(&T) -> String) {
    match format {
        OutputFormat::Table => print!("{}", table(data)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(data).expect("serialisable")
        ),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(data).expect("serialisable")),
    }
}

/// The file's text and its name for messages (`-` is standard input).
fn read_token_file(path: &std::path::Path) -> Result<(String, String), Error> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(Error::file("cannot read", "<stdin>"))?;
        return Ok((text, "<stdin>".into()));
    }
    let bytes = std::fs::read(path).map_err(Error::file("cannot read", path))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Usage(format!(
            "{} is not a text file: expected a token or link in YAML",
            path.display()
        ))
    })?;
    Ok((text, path.display().to_string()))
}

fn describe_applied(applied: Applied) -> &'static str {
    match applied {
        Applied::Live => "applied to the running router, no restart",
        Applied::Restarted => "the router was restarted to apply it",
        Applied::RouterNotRunning => "the router is not running: it applies it when it starts",
    }
}

fn describe_link_create(outcome: &CreateOutcome) -> String {
    let mut text = format!(
        "Linked site of namespace '{}' with {} ({}):\n",
        outcome.namespace,
        outcome.from,
        describe_applied(outcome.applied)
    );
    for (link, endpoint) in outcome.links.iter().zip(&outcome.endpoints) {
        text.push_str(&format!("  link {link}: {} to {endpoint}\n", outcome.role));
    }
    for note in &outcome.notes {
        text.push_str(&format!("Note: {note}\n"));
    }
    text.push_str(&format!(
        "See whether it is connected with `vansite -n {} link status`.\n",
        outcome.namespace
    ));
    text
}

fn links_table(statuses: &[LinkStatus]) -> String {
    if statuses.is_empty() {
        return "No links: create one with `vansite link create FILE`.\n".into();
    }
    let rows: Vec<[String; 6]> = statuses
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.state.to_string(),
                s.remote_router.clone().unwrap_or_else(|| "-".into()),
                s.since.clone().unwrap_or_else(|| "-".into()),
                s.endpoint.clone(),
                s.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "REMOTE ROUTER",
        "SINCE",
        "ENDPOINT",
        "LAST ERROR",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

fn describe_init(outcome: &InitOutcome) -> String {
    let verb = match (outcome.created, outcome.restarted) {
        (true, _) => "created and running",
        (false, true) => "running (restarted with the new configuration)",
        (false, false) => "running (unchanged)",
    };
    let mode = if outcome.edge { "edge" } else { "interior" };
    let mut text = format!(
        "Site '{}' in namespace '{}' is {verb}.\n  id:         {}\n  mode:       {mode}\n  router:     {} \
         (systemctl --user status {})\n  management: 127.0.0.1:{}\n",
        outcome.site_name, outcome.namespace, outcome.site_id, outcome.unit, outcome.unit, outcome.management_port
    );
    if !outcome.link_access.is_empty() {
        let endpoints: Vec<String> = outcome
            .link_access
            .iter()
            .map(|(role, port)| format!("{role} {port}"))
            .collect();
        text.push_str(&format!("  link access: {}\n", endpoints.join(", ")));
    }
    if !outcome.linger {
        text.push_str(
            "Note: the router starts at boot only if your user manager does: run `loginctl enable-linger $USER`.\n",
        );
    }
    text
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
        let id: String = container.id.chars().take(12).collect();
        rows.push((
            "container",
            format!("{} {id} {}{since}", container.name, container.status),
        ));
    }
    rows.push((
        "management",
        format!("127.0.0.1:{}", status.site.management_port),
    ));
    if !status.site.link_access.is_empty() {
        let endpoints: Vec<String> = status
            .site
            .link_access
            .iter()
            .map(|e| format!("{} {}", e.role, e.port))
            .collect();
        rows.push(("link access", endpoints.join(", ")));
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
    if !status.network.is_empty() {
        let routers: Vec<&str> = status.network.iter().map(|r| r.id.as_str()).collect();
        rows.push((
            "network",
            format!("{} routers: {}", routers.len(), routers.join(", ")),
        ));
    }
    rows.push(("namespaces", status.namespaces.join(", ")));
    rows.push((
        "health",
        if status.healthy {
            "ok".into()
        } else {
            status.problems.join("; ")
        },
    ));
    rows.iter()
        .map(|(key, value)| format!("{key:<13}{value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ingress_and_link_access_are_one_choice() {
        let err = Cli::try_parse_from([
            "vansite",
            "init",
            "--enable-link-access",
            "--ingress",
            "none",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let cli = Cli::try_parse_from([
            "vansite", "-n", "west", "init", "--host", "a", "--host", "10.0.0.1",
        ])
        .unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("west"));
        let Command::Init(init) = cli.command else {
            panic!("init")
        };
        assert_eq!(init.hosts, ["a", "10.0.0.1"]);
        assert!(Cli::try_parse_from(["vansite", "init", "--timeout", "0"]).is_err());
    }
}

//! The command line: clap definitions, and the dispatch from a parsed command to the site
//! operations. Output formats and exit codes are decided here, nowhere else.

use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::doctor::{self, DoctorRequest};
use crate::error::Error;
use crate::forward::proxy;
use crate::grants::issue::{self, GenerateRequest, IssueOutcome, IssueRequest};
use crate::grants::{self, TokenFormat};
use crate::progress::Progress;
use crate::settings::Settings;
use crate::site::init::{self, InitOutcome, InitRequest};
use crate::site::link::{self, Applied, CreateOutcome, CreateRequest, LinkStatus};
use crate::site::services::{
    self, ServiceChange, ServiceInfo, ServiceKind, ServiceRequest, ServiceStatus,
};
use crate::site::status::{self, Endpoint, SiteInfo, SiteStatus};
use crate::site::{delete, files, Paths, SiteDir};

#[derive(Debug, Parser)]
#[command(
    name = "vansite",
    version,
    about = "Join this host to a Skupper network: a rootless site run by podman and systemd",
    long_about = "vansite turns a Linux host into a Skupper site without Kubernetes: it writes the \
site's resources (Skupper v2 YAML), certificates and router configuration, runs the \
skupper-router as a quadlet container under your systemd user manager, and links the site to \
others with the same token and link formats as Skupper's cluster sites.",
    after_help = crate::error::exit_status_text()
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
    /// Check that this host can run a site: podman, quadlet, cgroups, ids, bus, linger, image,
    /// ports, clock
    #[command(
        long_about = "Check that this host can run a site, and say how to fix what it cannot: \
the podman version and the quadlet generator, cgroup v2, the user's subordinate uid/gid \
ranges, the systemd user manager on the session bus, linger (units start at boot only with \
it), the router image (present, or its registry reachable; nothing is pulled), the site's \
ports (free, or held by the site's own router) and the clock (offline, only against \
timestamps vansite knows). Each check is OK, WARN or FAIL; the exit status is 1 when one fails."
    )]
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, ...) for vansite
    #[command(
        long_about = "Print a shell completion script for vansite on stdout. Packages install \
them already; by hand: `vansite completion bash > ~/.local/share/bash-completion/completions/vansite`."
    )]
    Completion(CompletionArgs),
    /// Tokens: issue them for other sites to link here, redeem theirs to link there
    #[command(subcommand)]
    Token(TokenCommand),
    /// Links between this site and others
    #[command(subcommand)]
    Link(LinkCommand),
    /// The grant server (started by its systemd socket unit, not by hand)
    #[command(hide = true)]
    GrantServer(GrantServerArgs),
    /// Reach a service of the network here: a local port forwarded to the routing key's connectors
    #[command(subcommand)]
    Listener(ListenerCommand),
    /// Offer a service of this host (or one it reaches) to the network under a routing key
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Offer a host's service to the network, as Skupper's tutorials write it (a connector)
    #[command(subcommand)]
    Expose(ExposeCommand),
    /// The forwarder of one listener (run by its systemd unit, not by hand)
    #[command(hide = true)]
    Forward(ForwardArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Record an AccessGrant and write the token another site redeems with it (Skupper's
    /// `token issue`); starts this site's grant server
    #[command(visible_alias = "create")]
    Issue(TokenIssueArgs),
    /// Redeem a token and link to the site that issued it (the same as `vansite link create`)
    Redeem(LinkCreateArgs),
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Write a static Link and its Secret that another site applies to link to this one (no
    /// grant server involved; the client certificate inside never expires before 5 years)
    Generate(LinkGenerateArgs),
    /// Link to another site with a file it issued: an AccessToken (redeemed at its grant
    /// server), a Link with its Secret (`skupper link generate`), or a Skupper v1 token.
    /// The running router gets the link without a restart.
    Create(LinkCreateArgs),
    /// Remove a link: from the running router first, then from the site's files
    Delete(LinkDeleteArgs),
    /// Show links: connected or not, the remote router, since when, the last error
    Status(LinkStatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFileFormat {
    /// A Skupper v2 AccessToken (`skupper token redeem`, `vansite link create`)
    V2,
    /// A Skupper v1 token-claim Secret, redeemed with the v1 claims protocol
    V1,
}

#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// Where to write the token (it holds the grant's code: keep it private)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,

    /// The grant's name (also the token's) [default: <site>-<random>]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// How many times the token can be redeemed
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub redemptions: u32,

    /// How long the token can be redeemed, as a Go duration (15m, 1h30m, 90s)
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub expiration_window: String,

    /// The host other sites reach this one by, one of the names given to `init --host`
    /// [default: the first of them]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// The grant server's port [default: the port it already uses, else grant_port from the
    /// settings file, else 9090]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// The token's format
    #[arg(long, value_enum, default_value = "v2")]
    pub format: TokenFileFormat,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LinkGenerateArgs {
    /// Where to write the Link and Secret (YAML) [default: standard output]
    #[arg(value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,

    /// The Link's and Secret's name [default: link-<site>]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The host the remote site dials, one of the names given to `init --host` [default: the
    /// first of them]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct GrantServerArgs {
    /// The site's directory (the unit passes it, so the server needs no XDG environment)
    #[arg(long, value_name = "DIR")]
    pub site_dir: std::path::PathBuf,

    /// Listen here instead of on the socket systemd passes (debugging, benchmarks)
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<std::net::SocketAddr>,

    /// Exit after this many seconds without a connection (0: never); the socket unit starts
    /// the server again on the next one
    #[arg(long, default_value = "600", value_name = "SECONDS")]
    pub idle_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Listen on PORT here and forward each connection to the connectors of the routing key
    Create(ListenerCreateArgs),
    /// The site's listeners
    List(OutputArgs),
    /// The listeners with their forwarder units and whether a connector is reachable
    Status(ServiceStatusArgs),
    /// Stop the listener's forwarder (open connections end cleanly) and remove it
    Delete(ServiceDeleteArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Offer HOST:PORT to the network under the routing key
    Create(ConnectorCreateArgs),
    /// The site's connectors
    List(OutputArgs),
    /// The connectors and whether the running router has them
    Status(ServiceStatusArgs),
    /// Withdraw the connector (connections through it end)
    Delete(ServiceDeleteArgs),
}

#[derive(Debug, Subcommand)]
pub enum ExposeCommand {
    /// `expose host HOST --address A --port P`: the same as `connector create A P --host HOST`
    Host(ExposeHostArgs),
}

#[derive(Debug, Args)]
pub struct ListenerCreateArgs {
    /// The listener's name (an RFC 1123 label)
    pub name: String,
    /// The port clients connect to on this host (systemd holds it)
    pub port: u16,
    /// The routing key of the connectors to reach [default: NAME]
    #[arg(long, value_name = "KEY")]
    pub routing_key: Option<String>,
    /// The IP address to listen on [default: 0.0.0.0, every interface]
    #[arg(long, value_name = "BIND")]
    pub host: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ConnectorCreateArgs {
    /// The connector's name (an RFC 1123 label)
    pub name: String,
    /// The service's port
    pub port: u16,
    /// The routing key listeners use to reach it [default: NAME]
    #[arg(long, value_name = "KEY")]
    pub routing_key: Option<String>,
    /// Where the service runs, as the router resolves it [default: localhost]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ExposeHostArgs {
    /// Where the service runs
    pub host: String,
    /// The routing key, and the connector's name
    #[arg(long, value_name = "ADDRESS")]
    pub address: String,
    /// The service's port
    #[arg(long, value_name = "PORT")]
    pub port: u16,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ServiceStatusArgs {
    /// Only this one
    pub name: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServiceDeleteArgs {
    pub name: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The router's tcpListener (a loopback address)
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub router: std::net::SocketAddr,
    /// How long a client waits for the router before a clean close (seconds)
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = parse_seconds)]
    pub wait: Duration,
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

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LinkDeleteArgs {
    /// The link to remove
    #[arg(value_name = "NAME")]
    pub name: String,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
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

    #[command(flatten)]
    pub output: OutputArgs,
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
pub struct DoctorArgs {
    /// The router image to check [default: the site's, else the settings file's router_image]
    #[arg(long, value_name = "IMAGE")]
    pub router_image: Option<String>,

    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// How long to wait for the router to stop (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a positive number of seconds")),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
    }
}

/// Runs the parsed command. Data goes to stdout, progress and errors to stderr.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let command = match cli.command {
        // The forwarder runs in a container: no home, no session, no settings.
        Command::Forward(args) => {
            return Ok(proxy::serve(proxy::inherited_listener()?, args.router, args.wait).await?);
        }
        Command::Completion(args) => {
            write_completion(args.shell, &mut std::io::stdout());
            return Ok(());
        }
        _ if rustix::process::geteuid().is_root() => {
            // Root sites need the system manager, /etc/containers/systemd and /var/lib: not built yet.
            return Err(Error::Usage(
                "vansite runs rootless: run it as the user who will own the site (root sites are not supported yet)"
                    .into(),
            ));
        }
        Command::GrantServer(args) => {
            // Needs no XDG environment: systemd starts it with the site directory.
            let site_dir = SiteDir {
                namespace: cli.namespace.unwrap_or_else(|| "default".into()),
                root: args.site_dir,
            };
            let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
            return Ok(grants::server::run(site_dir, args.listen, idle).await?);
        }
        Command::Doctor(args) => return run_doctor(cli.namespace, args).await,
        command => command,
    };
    let paths = Paths::from_env()?;
    let settings = Settings::load(&paths.settings_file())?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| settings.namespace.clone());
    let steps = Progress::on_stderr(cli.verbose);
    let progress = |message: &str| steps.step(message);
    match command {
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
            print_data(
                args.output.output,
                &SiteInitialised::from(outcome),
                describe_init,
            );
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
            print_data(
                args.output.output,
                &LinkCreated::from(outcome),
                describe_link_create,
            );
            Ok(())
        }
        Command::Link(LinkCommand::Delete(args)) => {
            let outcome =
                link::delete(&paths, &namespace, &args.name, args.timeout, &progress).await?;
            print_data(args.output.output, &outcome, describe_link_delete);
            Ok(())
        }
        Command::Link(LinkCommand::Status(args)) => {
            let statuses = link::status(&paths, &namespace, args.name.as_deref()).await?;
            print_data(args.output, &statuses, |s| links_table(s));
            Ok(())
        }
        Command::Delete(args) => {
            let outcome = delete::delete(&paths, &namespace, args.timeout, &progress).await?;
            print_data(args.output.output, &outcome, describe_delete);
            Ok(())
        }
        Command::Token(TokenCommand::Issue(args)) => {
            let request = IssueRequest {
                namespace,
                file: args.file,
                name: args.name,
                redemptions: args.redemptions,
                expiration_window: args.expiration_window,
                host: args.host,
                port: args.port,
                default_port: settings.grant_port,
                format: match args.format {
                    TokenFileFormat::V2 => TokenFormat::V2,
                    TokenFileFormat::V1 => TokenFormat::V1,
                },
            };
            let outcome = issue::issue(&paths, request, &progress).await?;
            print_data(
                args.output.output,
                &TokenIssued::from(outcome),
                describe_issue,
            );
            Ok(())
        }
        Command::Link(LinkCommand::Generate(args)) => {
            let request = GenerateRequest {
                namespace,
                name: args.name,
                host: args.host,
            };
            let yaml = issue::generate_link(&paths, &request)?.to_yaml_stream()?;
            match args.file.filter(|f| f.as_os_str() != "-") {
                Some(file) => {
                    let file =
                        std::path::absolute(&file).map_err(Error::file("cannot resolve", &file))?;
                    files::write_atomic(&file, yaml.as_bytes(), files::SECRET)
                        .map_err(Error::file("cannot write", &file))?;
                    eprintln!("Link and Secret written to {}: apply them on the other site (`vansite link create {}`, or `skupper link apply`/`kubectl apply -f`).", file.display(), file.display());
                }
                None => print!("{yaml}"),
            }
            Ok(())
        }
        Command::Listener(command) => {
            let action = ServiceAction::from(command);
            run_service(&paths, &namespace, ServiceKind::Listener, action, &progress).await
        }
        Command::Connector(command) => {
            let action = ServiceAction::from(command);
            run_service(
                &paths,
                &namespace,
                ServiceKind::Connector,
                action,
                &progress,
            )
            .await
        }
        Command::Expose(ExposeCommand::Host(args)) => {
            let request = ServiceRequest {
                kind: ServiceKind::Connector,
                name: args.address.clone(),
                port: args.port,
                routing_key: Some(args.address),
                host: Some(args.host),
            };
            let change = services::create(&paths, &namespace, request, &progress).await?;
            print_change(&change, "created", args.output.output)
        }
        Command::Doctor(_)
        | Command::Completion(_)
        | Command::GrantServer(_)
        | Command::Forward(_) => {
            unreachable!("run handles them first: they must work without a user session")
        }
    }
}

/// `doctor` works without a user session too: a missing one is what it reports then.
async fn run_doctor(namespace: Option<String>, args: DoctorArgs) -> Result<(), Error> {
    let paths = Paths::from_env();
    let settings = match &paths {
        Ok(paths) => Settings::load(&paths.settings_file())?,
        Err(_) => Settings::default(),
    };
    let request = DoctorRequest {
        namespace: namespace.unwrap_or(settings.namespace),
        router_image: args.router_image,
        default_router_image: settings.router_image,
    };
    let report = doctor::doctor(paths.as_ref(), request).await;
    print_data(args.output, &report, doctor::table);
    match report.failed() {
        failed if failed.is_empty() => Ok(()),
        failed => Err(Error::ChecksFailed(
            failed.into_iter().map(String::from).collect(),
        )),
    }
}

/// Writes the completion script for `shell`, generated from these clap definitions.
pub fn write_completion(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "vansite", out);
}

/// Prints data as `format` asks: a table for a person, or JSON/YAML for scripts.
fn print_data<T: Serialize>(format: OutputFormat, data: &T, table: impl FnOnce(&T) -> String) {
    match format {
        OutputFormat::Table => print!("{}", table(data)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(data).expect("serialisable")
        ),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(data).expect("serialisable")),
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

/// What a `listener` or `connector` subcommand asks, whichever the kind: both kinds are
/// served by the same operations.
enum ServiceAction {
    Create {
        name: String,
        port: u16,
        routing_key: Option<String>,
        host: Option<String>,
        output: OutputFormat,
    },
    List(OutputFormat),
    Status(Option<String>, OutputFormat),
    Delete(String, OutputFormat),
}

impl From<ListenerCommand> for ServiceAction {
    fn from(command: ListenerCommand) -> Self {
        match command {
            ListenerCommand::Create(a) => ServiceAction::Create {
                name: a.name,
                port: a.port,
                routing_key: a.routing_key,
                host: a.host,
                output: a.output.output,
            },
            ListenerCommand::List(a) => ServiceAction::List(a.output),
            ListenerCommand::Status(a) => ServiceAction::Status(a.name, a.output.output),
            ListenerCommand::Delete(a) => ServiceAction::Delete(a.name, a.output.output),
        }
    }
}

impl From<ConnectorCommand> for ServiceAction {
    fn from(command: ConnectorCommand) -> Self {
        match command {
            ConnectorCommand::Create(a) => ServiceAction::Create {
                name: a.name,
                port: a.port,
                routing_key: a.routing_key,
                host: a.host,
                output: a.output.output,
            },
            ConnectorCommand::List(a) => ServiceAction::List(a.output),
            ConnectorCommand::Status(a) => ServiceAction::Status(a.name, a.output.output),
            ConnectorCommand::Delete(a) => ServiceAction::Delete(a.name, a.output.output),
        }
    }
}

async fn run_service(
    paths: &Paths,
    namespace: &str,
    kind: ServiceKind,
    action: ServiceAction,
    progress: &dyn Fn(&str),
) -> Result<(), Error> {
    match action {
        ServiceAction::Create {
            name,
            port,
            routing_key,
            host,
            output,
        } => {
            let request = ServiceRequest {
                kind,
                name,
                port,
                routing_key,
                host,
            };
            let change = services::create(paths, namespace, request, progress).await?;
            print_change(&change, "created", output)
        }
        ServiceAction::List(output) => {
            print_data(output, &services::list(paths, namespace, kind)?, |infos| {
                info_table(infos)
            });
            Ok(())
        }
        ServiceAction::Status(name, output) => {
            let all = services::status(paths, namespace, kind, name.as_deref()).await?;
            print_data(output, &all, |all| status_table_of_services(all));
            Ok(())
        }
        ServiceAction::Delete(name, output) => {
            let change = services::delete(paths, namespace, kind, &name, progress).await?;
            print_change(&change, "deleted", output)
        }
    }
}

fn print_change(change: &ServiceChange, verb: &str, format: OutputFormat) -> Result<(), Error> {
    print_data(format, change, |change| {
        let info = &change.info;
        let kind = match info.kind {
            ServiceKind::Listener => "Listener",
            ServiceKind::Connector => "Connector",
        };
        let mut text = format!(
            "{kind} '{}' {verb}: routing key '{}', {}:{}\n",
            info.name, info.routing_key, info.host, info.port
        );
        if !change.live {
            text.push_str("  (the router is not running: it takes the change when it starts)\n");
        }
        if let Some(n) = change.ended_connections.filter(|n| *n > 0) {
            text.push_str(&format!("  ended {n} open connection(s)\n"));
        }
        text
    });
    Ok(())
}

fn info_table(infos: &[ServiceInfo]) -> String {
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.routing_key.clone(),
                format!("{}:{}", i.host, i.port),
            ]
        })
        .collect();
    columns(&["NAME", "ROUTING KEY", "ADDRESS"], &rows)
}

fn status_table_of_services(all: &[ServiceStatus]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            let unknown = || "-".to_string();
            vec![
                format!("{:?}", s.info.kind).to_lowercase(),
                s.info.name.clone(),
                s.info.routing_key.clone(),
                format!("{}:{}", s.info.host, s.info.port),
                s.forwarder_state
                    .as_ref()
                    .map(|f| format!("{f} (socket {})", s.socket_state.as_deref().unwrap_or("?")))
                    .unwrap_or_else(unknown),
                match (s.in_router, s.peer) {
                    (None, _) => "router not answering".into(),
                    (Some(false), _) => "missing in router".into(),
                    (Some(true), Some(peer)) => peer.into(),
                    (Some(true), None) => "in router".into(),
                },
                s.active_connections
                    .map(|n| n.to_string())
                    .unwrap_or_else(unknown),
            ]
        })
        .collect();
    columns(
        &[
            "KIND",
            "NAME",
            "ROUTING KEY",
            "ADDRESS",
            "FORWARDER",
            "PEER",
            "CONNECTIONS",
        ],
        &rows,
    )
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
    role: &'static str,
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
    router_unit: String,
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
                mode: status::router_mode(outcome.edge),
                management_port: outcome.management_port,
                link_access: outcome
                    .link_access
                    .into_iter()
                    .map(|(role, port)| Endpoint { role, port })
                    .collect(),
            },
            created: outcome.created,
            restarted: outcome.restarted,
            router_unit: outcome.unit,
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
    let verb = match (outcome.created, outcome.restarted) {
        (true, _) => "created and running",
        (false, true) => "running (restarted with the new configuration)",
        (false, false) => "running (unchanged)",
    };
    let site = &outcome.site;
    let mut text = format!(
        "Site '{}' in namespace '{}' is {verb}.\n  id:         {}\n  mode:       {}\n  router:     {} \
         (systemctl --user status {})\n  management: 127.0.0.1:{}\n",
        site.name, outcome.namespace, site.id, site.mode, outcome.router_unit, outcome.router_unit, site.management_port
    );
    if !site.link_access.is_empty() {
        text.push_str(&format!(
            "  link access: {}\n",
            endpoints_text(&site.link_access)
        ));
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
                "{}{port} socket {}, server {}",
                grants.socket, grants.socket_state, grants.service_state
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
    if !status.network.is_empty() {
        let routers: Vec<&str> = status.network.iter().map(|r| r.id.as_str()).collect();
        rows.push((
            "network",
            format!("{} routers: {}", routers.len(), routers.join(", ")),
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

    fn sample_init() -> InitOutcome {
        InitOutcome {
            namespace: "west".into(),
            site_name: "west-site".into(),
            site_id: "5f0c7e1a-2b3c-4d5e-8f90-123456789abc".into(),
            edge: false,
            created: true,
            restarted: false,
            unit: "vansite-west.service".into(),
            management_port: 5671,
            link_access: vec![("inter-router".into(), 55671), ("edge".into(), 45671)],
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
            role: "inter-router",
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
                        {"role": "inter-router", "port": 55671},
                        {"role": "edge", "port": 45671},
                    ],
                },
                "created": true,
                "restarted": false,
                "routerUnit": "vansite-west.service",
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
  management: 127.0.0.1:5671
  link access: inter-router 55671, edge 45671
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

    #[test]
    fn commands_that_change_the_site_take_output() {
        let output_of = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["vansite"], args].concat()).unwrap();
            match cli.command {
                Command::Init(a) => a.output.output,
                Command::Delete(a) => a.output.output,
                Command::Token(TokenCommand::Issue(a)) => a.output.output,
                Command::Token(TokenCommand::Redeem(a)) => a.output.output,
                Command::Link(LinkCommand::Create(a)) => a.output.output,
                Command::Link(LinkCommand::Delete(a)) => a.output.output,
                other => panic!("not a command under test: {other:?}"),
            }
        };
        assert_eq!(output_of(&["init"]), OutputFormat::Table);
        assert_eq!(output_of(&["init", "-o", "json"]), OutputFormat::Json);
        assert_eq!(
            output_of(&["delete", "--output", "yaml"]),
            OutputFormat::Yaml
        );
        assert_eq!(
            output_of(&["token", "create", "t.yaml", "-o", "json"]),
            OutputFormat::Json
        );
        assert_eq!(
            output_of(&["token", "redeem", "t.yaml", "-o", "yaml"]),
            OutputFormat::Yaml
        );
        assert_eq!(
            output_of(&["link", "create", "-", "-o", "json"]),
            OutputFormat::Json
        );
        assert_eq!(
            output_of(&["link", "delete", "west", "-o", "json"]),
            OutputFormat::Json
        );
    }
}

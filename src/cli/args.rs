//! The command line's clap types: `Cli`, its `Command`s and their arguments. Man pages and
//! shell completions are generated from these (`xtask`), so they are the whole command line:
//! no dispatch and no printing here.

use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::ops::services::ServiceKind;
use crate::settings::Platform;

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
        value_name = "NAME",
        value_parser = rfc1123_name
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
    /// Stop the site's router and remove every unit and file the site created; with -f, remove
    /// only the resources the files name
    Delete(DeleteArgs),
    /// Make the site what Skupper YAML says: Site, Link, Secret, Listener, Connector,
    /// MultiKeyListener, RouterAccess, AccessToken, AccessGrant, Certificate (kubectl habits)
    #[command(
        long_about = "Make the site what Skupper YAML says, as `kubectl apply -f` and `skupper \
system apply -f` do: each document (Site, Link with its Secret, Secret, Listener, Connector, \
MultiKeyListener, RouterAccess, AccessToken, AccessGrant, Certificate) replaces the site's object of the same kind and name. \
A Site builds the site from nothing when there is none. An AccessToken is redeemed once and kept \
as a Link and Secret. Documents of other API groups are skipped; Kubernetes-only kinds and fields \
are refused, and one refused document refuses the whole input: nothing is applied. The same \
input applied twice changes nothing. Changes go to the running router live where it allows; a \
change it cannot take live (site name, mode, router image) restarts it, and the output says so."
    )]
    Apply(ApplyArgs),
    /// Print the site's resources as YAML that `vansite apply -f` (or kubectl) takes
    Get(GetArgs),
    /// Change the site itself (its router image)
    #[command(subcommand)]
    Site(SiteCommand),
    /// Check that this host can run a site: podman, quadlet, cgroups, ids, bus, linger, image,
    /// ports, clock, certificates
    #[command(
        long_about = "Check that this host can run a site, and say how to fix what it cannot: \
the podman version and the quadlet generator, cgroup v2, user namespaces, the user's \
subordinate uid/gid ranges, the systemd user manager on the session bus, linger (units start at boot only with \
it), the router image (present, or its registry reachable; nothing is pulled), the site's \
ports (free, or held by the site's own router), the clock (offline, only against \
timestamps vansite knows) and the site's certificates (WARN within 30 days of the first \
expiry, FAIL once one has expired). Each check is OK, WARN or FAIL; the exit status is 1 when \
one fails."
    )]
    Doctor(DoctorArgs),
    /// See the whole network through this site's router: sites, links, services
    #[command(subcommand)]
    Network(NetworkCommand),
    /// The network in a browser, and Prometheus /metrics: served on 127.0.0.1 for this user,
    /// with a secret token (--print-url, --open)
    #[command(
        long_about = "The network in a web page: sites and links as a picture, services with \
their listeners and connectors per site and whether they are reachable, and live TCP \
connections with bytes, duration and latency; it updates by itself, and what needs attention \
(a site no longer heard from, a link not connected, a service without a connector) stands \
out. The same server answers Prometheus at /metrics (Skupper's network observer's metric \
names: skupper_site_info, skupper_site_links_total, skupper_connections_opened_total, \
skupper_sent_bytes_total, ...).\n\n\
It listens on 127.0.0.1 only, through a systemd user socket unit (vansite-<namespace>-console.socket): \
nothing runs until a browser connects, and the server exits again after 10 minutes without \
requests. Everything it serves is in the vansite binary (no network access needed). Access \
takes the site's console token: `--print-url` prints the URL with it \
(http://127.0.0.1:PORT/?token=...), `--open` opens that URL in your browser; for /metrics \
send it as `Authorization: Bearer <token>` (or ?token=). Keep the URL private. \
`vansite delete` removes the console with the site."
    )]
    Console(ConsoleArgs),
    /// The console's server (started by its systemd socket unit, not by hand)
    #[command(hide = true)]
    ConsoleServer(ServerArgs),
    /// What a support request needs: a dump of the site, without secrets
    #[command(subcommand)]
    Debug(DebugCommand),
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
    /// End every incoming link and every unredeemed token: a new site CA and server
    /// certificate (Skupper v1's `revoke-access`); this site's own links stay up
    #[command(
        long_about = "End all access to this site, with Skupper v1's meaning: the site gets a new \
CA and a new server certificate, every incoming link's credentials stop working (their \
connections close and cannot come back), and every AccessGrant is removed, so tokens not yet \
redeemed are refused. Links this site made to others are untouched. Tokens issued afterwards \
work. Asks before doing it on a terminal; elsewhere give --yes."
    )]
    RevokeAccess(RevokeAccessArgs),
    /// The site's certificates: when they expire, and issuing them again
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The grant server (started by its systemd socket unit, not by hand)
    #[command(hide = true)]
    GrantServer(ServerArgs),
    /// Reach a service of the network here: a local port forwarded to the routing key's connectors
    #[command(subcommand)]
    Listener(ServiceCommand<ListenerKind>),
    /// Offer a service of this host (or one it reaches) to the network under a routing key
    #[command(subcommand)]
    Connector(ServiceCommand<ConnectorKind>),
    /// Offer a host's service to the network, as Skupper's tutorials write it (a connector)
    #[command(subcommand)]
    Expose(ExposeCommand),
    /// The forwarder of one listener (run by its systemd unit, not by hand)
    #[command(hide = true)]
    Forward(ForwardArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML file, a directory of them, or - for standard input (repeatable; a file may hold
    /// several documents separated by ---)
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,

    /// Print what would change (resources, files, units, the router) and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// How long to wait for the router when it (re)starts (seconds)
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Only objects of this kind (site, link, listener, connector, secret, ...)
    #[arg(value_name = "KIND")]
    pub kind: Option<String>,

    /// Only the object of this name
    #[arg(value_name = "NAME", requires = "kind")]
    pub name: Option<String>,

    /// Include private keys and token codes (left out otherwise)
    #[arg(long)]
    pub show_secrets: bool,

    /// Output format
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: ManifestFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    /// One YAML stream, documents separated by ---
    Yaml,
    /// A JSON array of the objects
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Change the site's router image: the router restarts with it, and goes back to the
    /// previous image if the new one does not start
    Update(SiteUpdateArgs),
}

#[derive(Debug, Args)]
pub struct SiteUpdateArgs {
    /// The router image to run
    #[arg(long, value_name = "IMAGE")]
    pub router_image: Option<String>,

    /// How long to wait for the router to be running (seconds)
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Record an AccessGrant and write the token another site redeems with it (Skupper's
    /// `token issue`); starts this site's grant server
    #[command(visible_alias = "create")]
    Issue(TokenIssueArgs),
    /// Redeem a token and link to the site that issued it (the same as `vansite link create`)
    Redeem(LinkCreateArgs),
    /// The site's AccessGrants: redemptions used and allowed, expiry, the host and port their
    /// tokens name, and whether they can still be redeemed
    List(OutputArgs),
    /// Remove an AccessGrant: its token is refused from then on (404 No such claim); links it
    /// already made stay (`vansite link revoke` ends those)
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The AccessGrant, as `vansite token list` names it
    #[arg(value_name = "NAME", value_parser = rfc1123_name)]
    pub name: String,

    #[command(flatten)]
    pub output: OutputArgs,
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
    Delete(LinkNameArgs),
    /// Show links: those created from this site (connected or not, the remote router, since
    /// when, the last error) and those other sites made to it (their name here, from which
    /// site and router, role, since)
    Status(LinkStatusArgs),
    /// End one incoming link: the credentials this site issued for it (a redeemed token, a
    /// generated link) stop working; every other link stays
    #[command(
        long_about = "End one incoming link, named as `vansite link status` lists links from \
other sites (or as `link generate` and the grant server named it). Each link this site issues \
has a CA of its own, which the router's link listeners trust; revoking removes it from their \
trust and renews them live. The router cannot close a single router-to-router connection, so \
every incoming link reconnects once (about 2 seconds later); the revoked one is refused from \
then on, even after its router restarts."
    )]
    Revoke(LinkNameArgs),
}

#[derive(Debug, Args)]
pub struct RevokeAccessArgs {
    /// Do it without asking (needed when not on a terminal)
    #[arg(long, short)]
    pub yes: bool,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Every certificate the site keeps and when it expires, soonest first
    List(OutputArgs),
    /// Issue the site's certificates again from the same CAs: the running router takes them
    /// without a restart and links stay connected
    #[command(
        long_about = "Issue again every certificate vansite issued for the site (the link \
listeners' server certificate, the management certificates, services' certificates, the grant \
server's) from the same CAs. The running router reads the new files through sslProfile \
updates: open connections and links stay up, new ones use the new certificates. With --ca, \
the site's CAs are replaced as well: each new CA's certificates are sent with the new CA signed \
by the old one, and trust files hold both, so other sites' links, tokens not yet redeemed and \
the running router keep verifying them; the old CAs stay trusted until the next \
`certs rotate --ca`. With --expiring, only those within 30 days of expiry (what the renewal timer runs when \
`renew_certificates = true` is set in ~/.config/vansite/config.toml)."
    )]
    Rotate(CertsRotateArgs),
}

#[derive(Debug, Args)]
pub struct CertsRotateArgs {
    /// Only certificates within 30 days of expiry
    #[arg(long, conflicts_with = "ca")]
    pub expiring: bool,

    /// New CAs too (site, local, service, grant server); each old one stays trusted beside
    /// its successor until the next `certs rotate --ca`, so links and tokens keep working
    #[arg(long)]
    pub ca: bool,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
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
    #[arg(long, value_name = "NAME", value_parser = rfc1123_name)]
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
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
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
    #[arg(long, value_name = "NAME", value_parser = rfc1123_name)]
    pub name: Option<String>,

    /// The host the remote site dials, one of the names given to `init --host` [default: the
    /// first of them]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The port on 127.0.0.1 [default: the port the console already has, else console_port
    /// from the settings file, else 8010]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Print the URL with the access token (the URL is a secret: keep it private)
    #[arg(long)]
    pub print_url: bool,

    /// Open the URL with the access token in your browser (xdg-open)
    #[arg(long)]
    pub open: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The hidden commands of the socket-activated servers (grant server, console).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The site's directory (the unit passes it, so the server needs no XDG environment)
    #[arg(long, value_name = "DIR")]
    pub site_dir: std::path::PathBuf,

    /// Listen here instead of on the socket systemd passes (debugging, benchmarks)
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<std::net::SocketAddr>,

    /// Exit after this many seconds without a connection (grant server) or request (console)
    /// (0: never); the socket unit starts the server again on the next one
    #[arg(long, default_value = "600", value_name = "SECONDS")]
    pub idle_timeout: u64,
}

/// `listener …` and `connector …`: one shape for both kinds of service. `K` is the kind, with
/// the help texts where the two differ.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand<K: ServiceKindArgs> {
    #[command(about = K::TEXT.create)]
    Create(ServiceCreateArgs<K>),
    #[command(about = K::TEXT.list)]
    List(OutputArgs),
    #[command(about = K::TEXT.status)]
    Status(ServiceStatusArgs),
    #[command(about = K::TEXT.update)]
    Update(ServiceUpdateArgs<K>),
    #[command(about = K::TEXT.delete)]
    Delete(ServiceDeleteArgs),
}

/// `listener update` / `connector update`: what is given changes, live.
#[derive(Debug, Args)]
pub struct ServiceUpdateArgs<K: ServiceKindArgs> {
    #[arg(help = K::TEXT.name, value_parser = rfc1123_name)]
    pub name: String,
    /// A new port
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    #[arg(long, value_name = "KEY", help = K::TEXT.update_routing_key)]
    pub routing_key: Vec<String>,
    #[arg(long, value_name = K::TEXT.host_value, help = K::TEXT.update_host)]
    pub host: Option<String>,
    #[command(flatten)]
    pub options: K::Options,
    /// Plain TCP again: drop the service's TLS
    #[arg(long, conflicts_with_all = ["tls_credentials", "tls_cert", "tls_key", "tls_ca"])]
    pub no_tls: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `listener create` / `connector create`.
#[derive(Debug, Args)]
pub struct ServiceCreateArgs<K: ServiceKindArgs> {
    #[arg(help = K::TEXT.name, value_parser = rfc1123_name)]
    pub name: String,
    #[arg(help = K::TEXT.port)]
    pub port: u16,
    #[arg(long, value_name = "KEY", help = K::TEXT.routing_key)]
    pub routing_key: Vec<String>,
    #[arg(long, value_name = K::TEXT.host_value, help = K::TEXT.host)]
    pub host: Option<String>,
    #[command(flatten)]
    pub options: K::Options,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A kind of service on the command line: which kind the operations are asked about, the
/// texts of its subcommands where listeners and connectors differ, and its own options.
pub trait ServiceKindArgs {
    const KIND: ServiceKind;
    const TEXT: ServiceText;
    /// The options only this kind has, the same for `create` and `update`.
    type Options: Args + std::fmt::Debug;
}

/// The help texts of one kind's subcommands and of its `create` arguments.
#[derive(Debug)]
pub struct ServiceText {
    pub create: &'static str,
    pub list: &'static str,
    pub status: &'static str,
    pub update: &'static str,
    pub delete: &'static str,
    pub name: &'static str,
    pub port: &'static str,
    pub routing_key: &'static str,
    pub update_routing_key: &'static str,
    /// `--host`, with the kind's default host.
    pub host: &'static str,
    /// `--host` of `update`.
    pub update_host: &'static str,
    pub host_value: &'static str,
}

/// `listener …`: a network service reachable here.
#[derive(Debug)]
pub struct ListenerKind;

impl ServiceKindArgs for ListenerKind {
    const KIND: ServiceKind = ServiceKind::Listener;
    const TEXT: ServiceText = ServiceText {
        create:
            "Listen on PORT here and forward each connection to the connectors of the routing key",
        list: "The site's listeners",
        status: "The listeners with their forwarder units, where their keys are offered and \
                 which key new connections take",
        update: "Change a listener's port, address, keys or TLS, live (its forwarder moves)",
        delete: "Stop the listener's forwarder (open connections end cleanly) and remove it",
        name: "The listener's name (an RFC 1123 label)",
        port: "The port clients connect to on this host (systemd holds it)",
        routing_key: "The routing key of the connectors to reach [default: NAME]; give it again \
                      for more keys (a multi-key listener, in priority order)",
        update_routing_key: "New routing keys (repeat for several, in priority order)",
        host: "The IP address to listen on [default: 0.0.0.0, every interface]",
        update_host: "A new IP address to listen on",
        host_value: "BIND",
    };
    type Options = ListenerOptions;
}

/// `connector …`: a service of this host (or one it reaches) offered to the network.
#[derive(Debug)]
pub struct ConnectorKind;

impl ServiceKindArgs for ConnectorKind {
    const KIND: ServiceKind = ServiceKind::Connector;
    const TEXT: ServiceText = ServiceText {
        create: "Offer HOST:PORT to the network under the routing key",
        list: "The site's connectors",
        status: "The connectors, whether the running router has them and where else their key \
                 is offered",
        update: "Change a connector's host, port, routing key or TLS, live",
        delete: "Withdraw the connector (connections through it end)",
        name: "The connector's name (an RFC 1123 label)",
        port: "The service's port",
        routing_key: "The routing key listeners use to reach it [default: NAME]",
        update_routing_key: "A new routing key",
        host: "Where the service runs, as the router resolves it [default: localhost]",
        update_host: "Where the service runs now",
        host_value: "HOST",
    };
    type Options = ConnectorOptions;
}

/// A listener's own options. TLS ends at the router: the forwarder passes the client's TLS
/// bytes through untouched.
#[derive(Debug, Args)]
pub struct ListenerOptions {
    /// How a listener with several keys chooses: the first reachable key (priority), or among
    /// the reachable keys in proportion to their weights (weighted)
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<StrategyArg>,
    /// A routing key and its weight (`KEY=N`; repeat; implies --strategy weighted)
    #[arg(long, value_name = "KEY=N", value_parser = parse_weight)]
    pub weight: Vec<(String, u32)>,
    /// Clients speak TLS: present the Secret NAME's certificate, or one vansite issues from the
    /// site's skupper-service-ca for the listener's host
    #[arg(long, value_name = "NAME")]
    pub tls_credentials: Option<String>,
    /// The certificate (PEM) to present to clients; stored as a Secret [default name:
    /// NAME-tls]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The CA (PEM) that client certificates must be signed by (with --require-client-cert)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Clients must present a certificate signed by the credentials' CA (`=false` to stop)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub require_client_cert: Option<bool>,
    /// The router's protocol observer for this listener's traffic
    #[arg(long, value_name = "OBSERVER", value_parser = ["auto", "none", "http1", "http2"])]
    pub observer: Option<String>,
}

/// A connector's own options.
#[derive(Debug, Args)]
pub struct ConnectorOptions {
    /// Speak TLS to the service: verify it with the Secret NAME's ca.crt (without such a
    /// Secret, with the site's skupper-service-ca)
    #[arg(long, value_name = "NAME")]
    pub tls_credentials: Option<String>,
    /// The CA (PEM) that signed the service's certificate; stored as a Secret [default name:
    /// NAME-tls]
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) to present to the service (implies --use-client-cert)
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Present the credentials' certificate to the service (`=false` to stop)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub use_client_cert: Option<bool>,
    /// The service's certificate must name HOST (`=false` to stop) [default: false, as Skupper]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub verify_hostname: Option<bool>,
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Priority,
    Weighted,
}

fn parse_weight(text: &str) -> Result<(String, u32), String> {
    let (key, weight) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not KEY=N"))?;
    let weight = weight
        .parse::<u32>()
        .map_err(|_| format!("'{weight}' in '{text}' is not a whole number"))?;
    Ok((key.to_string(), weight))
}

#[derive(Debug, Subcommand)]
pub enum ExposeCommand {
    /// `expose host HOST --address A --port P`: the same as `connector create A P --host HOST`
    Host(ExposeHostArgs),
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

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Every site of the network (name, platform, namespace), which sites are linked to which
    /// (direction, cost, up or down) and every service (where its listeners and connectors
    /// are, whether it is reachable, connections and bytes), from the routers' own records
    #[command(
        long_about = "Every site of the network (name, platform, namespace), which sites are \
linked to which (direction, cost, up or down) and every service: where its listeners and \
connectors are, whether a listener's connections reach a connector, connections open and bytes \
carried. It asks every router of the network, through this site's router, for its vanflow \
records (the same records Skupper's console reads), so it works from any site whichever way \
the links point. Takes a second or two: the routers answer within their heartbeat."
    )]
    Status(OutputArgs),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Write a .tar.gz for a support request: versions, resources (as `get` prints them),
    /// skrouterd.json, public certificates, unit files and states, the router's log tail,
    /// management queries, status, link status and network status. No private key, token code or
    /// password.
    Dump(DebugDumpArgs),
    /// What happened to the site, oldest first: vansite's commands (and how they ended), the
    /// router's notable log lines (links, listeners, warnings and errors) and when each of the
    /// site's units last started and stopped
    Events(DebugEventsArgs),
}

#[derive(Debug, Args)]
pub struct DebugEventsArgs {
    /// Keep printing new events as they happen (Ctrl-C to stop); JSON and YAML print one
    /// event per line
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DebugDumpArgs {
    /// Where to write the archive (mode 0600)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
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
    #[arg(value_parser = rfc1123_name)]
    pub name: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServiceDeleteArgs {
    #[arg(value_parser = rfc1123_name)]
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
    /// The router's local management listener, to re-open the tcpListener when the router could
    /// not bind its port
    #[arg(long, value_name = "ADDRESS:PORT", requires_all = ["management_credentials", "tcp_listener"])]
    pub management: Option<std::net::SocketAddr>,
    /// The directory of the management client certificate (ca.crt, tls.crt, tls.key)
    #[arg(long, value_name = "DIR", requires = "management")]
    pub management_credentials: Option<std::path::PathBuf>,
    /// The name of the router's tcpListener
    #[arg(long, value_name = "NAME", requires = "management")]
    pub tcp_listener: Option<String>,
}
#[derive(Debug, Args)]
pub struct LinkCreateArgs {
    /// The token or link file (`-` reads standard input)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,

    /// Name of the link and its Secret [default: the name in the file]
    #[arg(long, value_name = "NAME", value_parser = rfc1123_name)]
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
pub struct LinkNameArgs {
    /// The link, as `vansite link status` names it
    #[arg(value_name = "NAME", value_parser = rfc1123_name)]
    pub name: String,

    /// How long to wait for the router if it has to be restarted (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LinkStatusArgs {
    /// Only this link: a Link's name, or the id of a router linked to this one
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
    #[arg(long, value_enum, default_value = "podman", value_name = "PLATFORM")]
    pub platform: Platform,

    /// The site's name in the network [default: this host's short name]
    #[arg(long, value_name = "NAME", value_parser = rfc1123_name)]
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
    /// Also ask podman for its view of the router's container (slower: podman's service
    /// starts on demand)
    #[arg(long)]
    pub containers: bool,

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
    /// Remove only the resources these YAML files name (a Site among them: the whole site);
    /// a file, a directory of them, or - (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,

    /// With -f: print what would change and change nothing
    #[arg(long, requires = "files")]
    pub dry_run: bool,

    /// How long to wait for the router to stop (seconds)
    #[arg(long, default_value = "120", value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// A namespace or a resource's name: an RFC 1123 label, as Skupper's, refused before any path
/// is built or any lookup made with it (`-n ../../tmp` is no directory to look in).
fn rfc1123_name(text: &str) -> Result<String, String> {
    crate::model::check_name(text).map(|()| text.to_string())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a positive number of seconds")),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
    }
}

/// Writes the completion script for `shell`, generated from these clap definitions.
pub fn write_completion(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "vansite", out);
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

    /// `--platform` is podman unless told, and nothing else is accepted.
    #[test]
    fn the_platform_is_podman() {
        let platform = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["vansite", "init"], args].concat())?;
            let Command::Init(init) = cli.command else {
                panic!("init")
            };
            Ok::<_, clap::Error>(init.platform)
        };
        assert_eq!(platform(&[]).unwrap(), Platform::Podman);
        assert_eq!(
            platform(&["--platform", "podman"]).unwrap(),
            Platform::Podman
        );
        let err = platform(&["--platform", "docker"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(
            message.contains("'docker'") && message.contains("[possible values: podman]"),
            "{message}"
        );
    }

    /// `listener` and `connector` have one shape, each kind with its own texts.
    #[test]
    fn listeners_and_connectors_share_one_shape() {
        let parsed = |args: &[&str]| {
            Cli::try_parse_from([&["vansite"], args].concat())
                .unwrap()
                .command
        };
        let Command::Listener(ServiceCommand::Create(listener)) =
            parsed(&["listener", "create", "web", "8080", "--host", "127.0.0.1"])
        else {
            panic!("listener create")
        };
        assert_eq!(
            (
                listener.name.as_str(),
                listener.port,
                listener.host.as_deref()
            ),
            ("web", 8080, Some("127.0.0.1"))
        );
        let Command::Connector(ServiceCommand::Delete(connector)) =
            parsed(&["connector", "delete", "db", "-o", "json"])
        else {
            panic!("connector delete")
        };
        assert_eq!(connector.name, "db");
        assert_eq!(connector.output.output, OutputFormat::Json);

        /// `create`'s about, and `--host`'s help and value name.
        fn create_texts(kind: &str) -> [String; 3] {
            let command = Cli::command();
            let create = command
                .find_subcommand(kind)
                .and_then(|c| c.find_subcommand("create"))
                .unwrap();
            let host = create
                .get_arguments()
                .find(|a| a.get_id() == "host")
                .unwrap();
            [
                create.get_about().unwrap().to_string(),
                host.get_help().unwrap().to_string(),
                host.get_value_names().unwrap()[0].to_string(),
            ]
        }
        assert_eq!(
            create_texts("listener"),
            [
                "Listen on PORT here and forward each connection to the connectors of the routing key",
                "The IP address to listen on [default: 0.0.0.0, every interface]",
                "BIND",
            ]
        );
        assert_eq!(
            create_texts("connector"),
            [
                "Offer HOST:PORT to the network under the routing key",
                "Where the service runs, as the router resolves it [default: localhost]",
                "HOST",
            ]
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

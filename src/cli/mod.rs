//! The command line: `args` holds the clap definitions, this module the dispatch from a parsed
//! command to the site operations, and `output` everything printed on stdout.

mod output;

pub mod args;

pub use args::{Cli, Command};

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::forward::proxy;
use crate::forward::repair::ListenerRepair;
use crate::grants::{self, TokenFormat};
use crate::input;
use crate::model::StrategyKind;
use crate::ops::access;
use crate::ops::apply::ApplyOptions;
use crate::ops::console::{self, ConsoleRequest};
use crate::ops::debug;
use crate::ops::delete;
use crate::ops::doctor::{self, DoctorRequest};
use crate::ops::init::{self, InitRequest, SiteUpdate};
use crate::ops::link::{self, CreateRequest};
use crate::ops::manifest::{self, Input, ManifestRequest};
use crate::ops::network;
use crate::ops::ports;
use crate::ops::services::{
    self, ServiceKind, ServiceRequest, ServiceSettings, TlsMaterial, TlsSetting,
};
use crate::ops::status;
use crate::ops::token::{self, GenerateRequest, IssueRequest};
use crate::progress::Progress;
use crate::render::certs::LeafRenewal;
use crate::settings::Settings;
use crate::store::{files, Paths, SiteDir};

use args::{
    CertsCommand, ConnectorOptions, DebugCommand, DoctorArgs, ExposeCommand, Ingress, LinkCommand,
    ListenerOptions, NetworkCommand, RouterMode, ServerArgs, ServiceCommand, ServiceKindArgs,
    SiteCommand, StrategyArg, TokenCommand, TokenFileFormat,
};

/// Runs the parsed command. Data goes to stdout, progress and errors to stderr.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let command = match cli.command {
        // The forwarder runs in a sandbox that hides the home directory: no session, no
        // settings, only its arguments and the socket systemd passed.
        Command::Forward(args) => {
            let repair = args
                .management
                .zip(args.management_credentials)
                .zip(args.tcp_listener)
                .map(|((management, credentials), entity)| ListenerRepair {
                    management,
                    credentials,
                    entity,
                });
            let router = proxy::RouterListener {
                addr: args.router,
                wait: args.wait,
                repair,
            };
            return Ok(proxy::serve(proxy::inherited_listener()?, router).await?);
        }
        Command::Completion(args) => {
            output::print_completion(args.shell);
            return Ok(());
        }
        _ if rustix::process::geteuid().is_root() => {
            // Root sites need the system manager, /etc/containers/systemd and /var/lib: not built yet.
            return Err(Error::Usage(
                "vansite runs rootless: run it as the user who will own the site (root sites are not supported yet)"
                    .into(),
            ));
        }
        // Need no XDG environment: systemd starts them with the site directory.
        Command::GrantServer(args) => {
            let (site_dir, idle) = server_site(cli.namespace, &args);
            let trusted_dir = site_dir.clone();
            let trust: grants::server::TrustIssued = std::sync::Arc::new(move || {
                let site_dir = trusted_dir.clone();
                Box::pin(async move {
                    let renewed = crate::ops::apply::renew_certificates(&site_dir)
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::info!("router renewed: {}", renewed.join(", "));
                    Ok(())
                })
            });
            return Ok(grants::server::run(site_dir, args.listen, idle, trust).await?);
        }
        Command::ConsoleServer(args) => {
            let (site_dir, idle) = server_site(cli.namespace, &args);
            return console::serve(site_dir, args.listen, idle).await;
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
                default_grant_port: settings.grant_port,
                timeout: args.timeout,
            };
            let outcome = init::init(&paths, request, &progress).await?;
            output::print_init(args.output.output, outcome);
            Ok(())
        }
        Command::Status(args) => {
            let request = status::StatusRequest {
                containers: args.containers,
            };
            let status = status::status(&paths, &namespace, request).await?;
            output::print_status(args.output, &status);
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
            let file = input::read_text(&args.file, "a token or link in YAML")?;
            let request = CreateRequest {
                namespace,
                text: file.text,
                source_name: file.name,
                name: args.name,
                cost: args.cost,
                timeout: args.timeout,
            };
            let outcome = link::create(&paths, request, &progress).await?;
            output::print_link_created(args.output.output, outcome);
            Ok(())
        }
        Command::Link(LinkCommand::Delete(args)) => {
            let outcome =
                link::delete(&paths, &namespace, &args.name, args.timeout, &progress).await?;
            output::print_link_deleted(args.output.output, &outcome);
            Ok(())
        }
        Command::Link(LinkCommand::Status(args)) => {
            let statuses = link::status(&paths, &namespace, args.name.as_deref()).await?;
            output::print_links(args.output, &statuses);
            Ok(())
        }
        Command::Link(LinkCommand::Revoke(args)) => {
            let outcome =
                access::revoke_link(&paths, &namespace, &args.name, args.timeout, &progress)
                    .await?;
            output::print_link_revoked(args.output.output, &outcome);
            Ok(())
        }
        Command::RevokeAccess(args) => {
            if !args.yes {
                let planned = access::access_to_revoke(&paths, &namespace)?;
                confirm(&output::describe_access_to_revoke(&namespace, &planned))?;
            }
            let outcome =
                access::revoke_access(&paths, &namespace, args.timeout, &progress).await?;
            output::print_access_revoked(args.output.output, &outcome);
            Ok(())
        }
        Command::Certs(CertsCommand::List(args)) => {
            output::print_certificates(args.output, &access::list(&paths, &namespace)?);
            Ok(())
        }
        Command::Certs(CertsCommand::Rotate(args)) => {
            let rotation = match (args.expiring, args.ca) {
                (true, _) => access::Rotation::Due,
                (false, true) => access::Rotation::WithCas,
                (false, false) => access::Rotation::All,
            };
            let outcome =
                access::rotate(&paths, &namespace, rotation, args.timeout, &progress).await?;
            output::print_rotated(args.output.output, &outcome);
            Ok(())
        }
        Command::Delete(args) if !args.files.is_empty() => {
            let request = ManifestRequest {
                namespace,
                inputs: args.files.iter().map(|f| Input::parse(f)).collect(),
                dry_run: args.dry_run,
                options: ApplyOptions {
                    renewal: LeafRenewal::WhenDue,
                    start_router: false,
                    timeout: args.timeout,
                },
                default_router_image: settings.router_image,
                default_grant_port: settings.grant_port,
            };
            let outcome = manifest::delete(&paths, request, &progress).await?;
            output::print_manifest(args.output.output, &outcome);
            Ok(())
        }
        Command::Delete(args) => {
            let outcome = delete::delete(&paths, &namespace, args.timeout, &progress).await?;
            output::print_delete(args.output.output, &outcome);
            Ok(())
        }
        Command::Apply(args) => {
            let default_grant_port =
                ports::default_grant_port(&paths, &namespace, settings.grant_port)?;
            let request = ManifestRequest {
                namespace,
                inputs: args.files.iter().map(|f| Input::parse(f)).collect(),
                dry_run: args.dry_run,
                options: ApplyOptions {
                    renewal: LeafRenewal::WhenDue,
                    start_router: true,
                    timeout: args.timeout,
                },
                default_router_image: settings.router_image,
                default_grant_port,
            };
            let outcome = manifest::apply(&paths, request, &progress).await?;
            output::print_manifest(args.output.output, &outcome);
            Ok(())
        }
        Command::Get(args) => {
            let resources = manifest::get(
                &paths,
                &namespace,
                args.kind.as_deref(),
                args.name.as_deref(),
                args.show_secrets,
            )?;
            output::print_resources(args.output, &resources)
        }
        Command::Site(SiteCommand::Update(args)) => {
            let request = SiteUpdate {
                namespace,
                router_image: args.router_image,
                default_grant_port: settings.grant_port,
                timeout: args.timeout,
            };
            let outcome = init::update(&paths, request, &progress).await?;
            output::print_init(args.output.output, outcome);
            Ok(())
        }
        Command::Token(TokenCommand::Issue(args)) => {
            let default_port = ports::default_grant_port(&paths, &namespace, settings.grant_port)?;
            let request = IssueRequest {
                namespace,
                file: args.file,
                name: args.name,
                redemptions: args.redemptions,
                expiration_window: args.expiration_window,
                host: args.host,
                port: args.port,
                default_port,
                format: match args.format {
                    TokenFileFormat::V2 => TokenFormat::V2,
                    TokenFileFormat::V1 => TokenFormat::V1,
                },
            };
            let outcome = token::issue(&paths, request, &progress).await?;
            output::print_token_issued(args.output.output, outcome);
            Ok(())
        }
        Command::Token(TokenCommand::List(args)) => {
            output::print_grants(args.output, &token::list(&paths, &namespace)?);
            Ok(())
        }
        Command::Token(TokenCommand::Revoke(args)) => {
            let outcome = token::revoke(&paths, &namespace, &args.name, &progress).await?;
            output::print_grant_revoked(args.output.output, &outcome);
            Ok(())
        }
        Command::Link(LinkCommand::Generate(args)) => {
            let request = GenerateRequest {
                namespace,
                name: args.name,
                host: args.host,
            };
            let issued = token::generate_link(&paths, &request, &progress).await?;
            let yaml = issued.bundle.to_yaml_stream()?;
            output::generated_link_issued(&issued.link, &request.namespace);
            match args.file.filter(|f| f.as_os_str() != "-") {
                Some(file) => {
                    let file =
                        std::path::absolute(&file).map_err(Error::file("cannot resolve", &file))?;
                    files::write_atomic(&file, yaml.as_bytes(), files::SECRET)
                        .map_err(Error::file("cannot write", &file))?;
                    output::generated_link_written(&file);
                }
                None => output::print_generated_link(&yaml),
            }
            Ok(())
        }
        Command::Listener(command) => run_service(&paths, &namespace, command, &progress).await,
        Command::Connector(command) => run_service(&paths, &namespace, command, &progress).await,
        Command::Expose(ExposeCommand::Host(args)) => {
            let request = ServiceRequest {
                kind: ServiceKind::Connector,
                name: args.address.clone(),
                settings: ServiceSettings {
                    port: Some(args.port),
                    host: Some(args.host),
                    routing_keys: vec![args.address],
                    ..ServiceSettings::default()
                },
            };
            let change = services::create(&paths, &namespace, request, &progress).await?;
            output::print_service_change(args.output.output, &change, "created");
            Ok(())
        }
        Command::Console(args) => {
            let request = ConsoleRequest {
                namespace,
                port: args.port,
                default_port: settings.console_port,
                with_token: args.print_url || args.open,
                open: args.open,
            };
            let outcome = console::console(&paths, request, &progress).await?;
            output::print_console(args.output.output, &outcome);
            Ok(())
        }
        Command::Network(NetworkCommand::Status(args)) => {
            let status = network::status(&paths, &namespace).await?;
            output::print_network_status(args.output, &status);
            Ok(())
        }
        Command::Debug(DebugCommand::Dump(args)) => {
            let file = std::path::absolute(&args.file)
                .map_err(Error::file("cannot resolve", &args.file))?;
            let outcome = debug::dump(&paths, &namespace, &file).await?;
            output::print_dump(args.output.output, &outcome);
            Ok(())
        }
        Command::Debug(DebugCommand::Events(args)) => {
            let mut shown = debug::events(&paths, &namespace).await?;
            output::print_events(args.output.output, &shown, args.follow);
            if !args.follow {
                return Ok(());
            }
            // Until interrupted: every second, what is newer than the last event shown.
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let all = debug::events(&paths, &namespace).await?;
                let last = shown.last().map(|e| e.time.clone()).unwrap_or_default();
                let new: Vec<_> = all.into_iter().filter(|e| e.time > last).collect();
                if !new.is_empty() {
                    output::print_events(args.output.output, &new, true);
                    shown = new;
                }
            }
        }
        Command::Doctor(_)
        | Command::Completion(_)
        | Command::GrantServer(_)
        | Command::ConsoleServer(_)
        | Command::Forward(_) => {
            unreachable!("run handles them first: they must work without a user session")
        }
    }
}

/// A socket-activated server's site (from its unit's arguments) and idle timeout.
fn server_site(namespace: Option<String>, args: &ServerArgs) -> (SiteDir, Option<Duration>) {
    let site_dir = SiteDir {
        namespace: namespace.unwrap_or_else(|| "default".into()),
        root: args.site_dir.clone(),
    };
    let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    (site_dir, idle)
}

/// Asks the person on the terminal to go on after reading `what`; refuses without a terminal.
fn confirm(what: &str) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{what}\nNot on a terminal: give --yes to do it."
        )));
    }
    eprint!("{what}\nType yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(Error::file("cannot read", "standard input"))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Usage("nothing was changed".into()))
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
    output::print_doctor(args.output, &report);
    match report.failed() {
        failed if failed.is_empty() => Ok(()),
        failed => Err(Error::ChecksFailed(
            failed.into_iter().map(String::from).collect(),
        )),
    }
}

/// A `listener` or `connector` subcommand: both kinds are served by the same operations.
async fn run_service<K: ServiceKindArgs>(
    paths: &Paths,
    namespace: &str,
    command: ServiceCommand<K>,
    progress: &dyn Fn(&str),
) -> Result<(), Error>
where
    K::Options: KindOptions,
{
    let kind = K::KIND;
    match command {
        ServiceCommand::Create(args) => {
            let settings = args.options.into_settings(ServiceSettings {
                port: Some(args.port),
                host: args.host,
                routing_keys: args.routing_key,
                ..ServiceSettings::default()
            })?;
            let request = ServiceRequest {
                kind,
                name: args.name,
                settings,
            };
            let change = services::create(paths, namespace, request, progress).await?;
            output::print_service_change(args.output.output, &change, "created");
        }
        ServiceCommand::List(args) => {
            output::print_services(args.output, &services::list(paths, namespace, kind)?);
        }
        ServiceCommand::Status(args) => {
            let all = services::status(paths, namespace, kind, args.name.as_deref()).await?;
            output::print_service_statuses(args.output.output, &all);
            let problems: Vec<String> = all.iter().flat_map(|s| s.problems.clone()).collect();
            if !problems.is_empty() {
                return Err(Error::Unhealthy {
                    namespace: namespace.to_string(),
                    problems,
                });
            }
        }
        ServiceCommand::Update(args) => {
            let mut settings = args.options.into_settings(ServiceSettings {
                port: args.port,
                host: args.host,
                routing_keys: args.routing_key,
                ..ServiceSettings::default()
            })?;
            if args.no_tls {
                settings.tls = Some(TlsSetting::Off);
            }
            let request = ServiceRequest {
                kind,
                name: args.name,
                settings,
            };
            let change = services::update(paths, namespace, request, progress).await?;
            output::print_service_change(args.output.output, &change, "updated");
        }
        ServiceCommand::Delete(args) => {
            let change = services::delete(paths, namespace, kind, &args.name, progress).await?;
            output::print_service_change(args.output.output, &change, "deleted");
        }
    }
    Ok(())
}

/// A kind's own options added to `settings`; TLS files are read here, at the edge.
trait KindOptions {
    fn into_settings(self, settings: ServiceSettings) -> Result<ServiceSettings, Error>;
}

impl KindOptions for ListenerOptions {
    fn into_settings(self, settings: ServiceSettings) -> Result<ServiceSettings, Error> {
        let files = [self.tls_cert, self.tls_key, self.tls_ca];
        Ok(ServiceSettings {
            strategy: self.strategy.map(|strategy| match strategy {
                StrategyArg::Priority => StrategyKind::Priority,
                StrategyArg::Weighted => StrategyKind::Weighted,
            }),
            weights: self.weight,
            tls: tls_setting(self.tls_credentials, files)?,
            require_client_cert: self.require_client_cert,
            observer: self.observer,
            ..settings
        })
    }
}

impl KindOptions for ConnectorOptions {
    fn into_settings(self, settings: ServiceSettings) -> Result<ServiceSettings, Error> {
        let files = [self.tls_cert, self.tls_key, self.tls_ca];
        Ok(ServiceSettings {
            tls: tls_setting(self.tls_credentials, files)?,
            use_client_cert: self.use_client_cert,
            verify_hostname: self.verify_hostname,
            ..settings
        })
    }
}

/// `--tls-credentials` and the TLS files (`--tls-cert`, `--tls-key`, `--tls-ca`), read; None
/// when none is given.
fn tls_setting(
    credentials: Option<String>,
    [cert, key, ca]: [Option<PathBuf>; 3],
) -> Result<Option<TlsSetting>, Error> {
    let read = |path: Option<PathBuf>| -> Result<Option<String>, Error> {
        path.map(|path| Ok(input::read_text(&path, "a PEM file")?.text))
            .transpose()
    };
    let material = TlsMaterial {
        cert: read(cert)?,
        key: read(key)?,
        ca: read(ca)?,
    };
    let material = (material != TlsMaterial::default()).then_some(material);
    Ok(
        (credentials.is_some() || material.is_some()).then_some(TlsSetting::On {
            credentials,
            material,
        }),
    )
}

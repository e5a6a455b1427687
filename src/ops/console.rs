//! `vansite console`: the site's web console, a socket-activated user unit on 127.0.0.1 (it
//! costs nothing until a browser connects; the process exits again when unused): its units
//! written and listening, its token made once, its URL printed or opened. Also the hidden
//! `console-server` that the unit runs, which keeps the network model up to date from the
//! site's router with the vanflow collector while it serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::activated;
use super::apply::{enable, site_router_endpoint, write, SiteSession};
use super::network::forwarded_listeners;
use crate::console::server::{Console, LocalSite, RouterConnection};
use crate::console::token::ConsoleToken;
use crate::console::{server, ConsoleError};
use crate::error::Error;
use crate::model::SiteResources;
use crate::observe::collector;
use crate::observe::network::Network;
use crate::plan::PlannedFile;
use crate::platform::activation::systemd_listener;
use crate::render::console_units::{
    port_of, service_unit, socket_unit, ConsoleUnitSpec, CONSOLE_ADDRESS,
};
use crate::render::unit_names;
use crate::store::{files, Paths, SiteDir, StoreError};

/// The collector's first retry after the router went away (it restarts in seconds); doubled
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the server reads the site's resources again (for its listeners' ports).
const RESOURCES_REREAD: Duration = Duration::from_secs(5);

/// What `vansite console` is asked.
#[derive(Debug, Clone)]
pub struct ConsoleRequest {
    pub namespace: String,
    /// `--port`; else the port the console has, else `default_port`.
    pub port: Option<u16>,
    pub default_port: u16,
    /// Put the token in the URL (`--print-url`, `--open`).
    pub with_token: bool,
    /// Open the URL in the user's browser.
    pub open: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleOutcome {
    /// The console's URL; with `?token=` when asked for.
    pub url: String,
    pub port: u16,
    /// The socket unit that listens.
    pub unit: String,
    #[serde(skip)]
    pub site_name: String,
    #[serde(skip)]
    pub with_token: bool,
    #[serde(skip)]
    pub opened: bool,
}

pub async fn console(
    paths: &Paths,
    request: ConsoleRequest,
    progress: &dyn Fn(&str),
) -> Result<ConsoleOutcome, Error> {
    let session = SiteSession::open(paths, &request.namespace, progress).await?;
    let site_name = session.resources()?.site_name().to_string();
    let namespace = &request.namespace;
    let token = ConsoleToken::load_or_create(&session.site_dir.console_token())?;
    let dir = paths.systemd_user_dir();
    let (socket, service) = (socket_unit(namespace), service_unit(namespace));
    let socket_path = dir.join(&socket);
    let installed_port = std::fs::read_to_string(&socket_path)
        .ok()
        .and_then(|text| port_of(&text));
    let port = request
        .port
        .or(installed_port)
        .unwrap_or(request.default_port);
    let spec = ConsoleUnitSpec {
        namespace: namespace.clone(),
        site_name: site_name.clone(),
        port,
        executable: std::env::current_exe().map_err(Error::file("cannot find", "vansite"))?,
        site_dir: session.site_dir.root.clone(),
        log_file: session.site_dir.console_log(),
    };
    files::create_dir(&dir, 0o755).map_err(Error::file("cannot create", &dir))?;
    let socket_changed = write(&PlannedFile {
        path: socket_path,
        contents: spec.render_socket()?,
    })?;
    let service_changed = write(&PlannedFile {
        path: dir.join(&service),
        contents: spec.render_service()?,
    })?;
    enable(&unit_names::enablement_link(
        &dir,
        unit_names::SOCKETS_TARGET,
        &socket,
    ))?;
    let changed = socket_changed || service_changed;
    if changed {
        progress("reloading systemd");
        session.manager.reload().await?;
    }
    let units = activated::ServerUnits {
        role: "console",
        socket: &socket,
        service: &service,
        port,
        fix: "Choose another with `vansite console --port PORT`, or set console_port in \
              ~/.config/vansite/config.toml",
    };
    activated::start_socket(&session.manager, &units, changed).await?;

    let mut url = format!("http://{CONSOLE_ADDRESS}:{port}/");
    if request.with_token {
        url.push_str(&format!("?token={}", token.reveal()));
    }
    if request.open {
        open_browser(&url)?;
    }
    Ok(ConsoleOutcome {
        url,
        port,
        unit: socket,
        site_name,
        with_token: request.with_token,
        opened: request.open,
    })
}

/// `xdg-open URL`: the user's browser, as the desktop chose it.
fn open_browser(url: &str) -> Result<(), ConsoleError> {
    const PROGRAM: &str = "xdg-open";
    let status = std::process::Command::new(PROGRAM)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| ConsoleError::Browser {
            program: PROGRAM,
            problem: e.to_string(),
        })?;
    if !status.success() {
        return Err(ConsoleError::Browser {
            program: PROGRAM,
            problem: status.to_string(),
        });
    }
    Ok(())
}

/// `vansite console-server`: serves the console on the socket systemd passed (or `listen`)
/// until `idle_timeout` passes without a request, while the collector follows the network.
pub async fn serve(
    site_dir: SiteDir,
    listen: Option<SocketAddr>,
    idle_timeout: Option<Duration>,
) -> Result<(), Error> {
    let listener = match (systemd_listener().map_err(ConsoleError::Io)?, listen) {
        (Some(listener), _) => TcpListener::from_std(listener).map_err(ConsoleError::Io)?,
        (None, Some(address)) => TcpListener::bind(address).await.map_err(ConsoleError::Io)?,
        (None, None) => return Err(ConsoleError::NotActivated.into()),
    };
    let resources = load_resources(&site_dir)?;
    let token = ConsoleToken::load(&site_dir.console_token())?;
    let (publish, network) = watch::channel(Network::new());
    let (router_state, router) = watch::channel(RouterConnection::Connecting);
    let (local_site, local) = watch::channel(local_site_of(&resources));
    let port = listener.local_addr().map_err(ConsoleError::Io)?.port();
    let console = Console::new(local, token, port, network, router);
    let following = tokio::spawn(follow_resources(site_dir.clone(), local_site));
    let collecting = tokio::spawn(collect(site_dir, resources, publish, router_state));
    let served = server::serve(listener, Arc::new(console), idle_timeout).await;
    collecting.abort();
    following.abort();
    Ok(served?)
}

fn load_resources(site_dir: &SiteDir) -> Result<SiteResources, Error> {
    Ok(site_dir
        .load_resources()?
        .ok_or_else(|| StoreError::NoSite {
            namespace: site_dir.namespace.clone(),
            present: Vec::new(),
        })?)
}

fn local_site_of(resources: &SiteResources) -> LocalSite {
    LocalSite {
        name: resources.site_name().to_string(),
        id: resources.site.metadata.uid.clone(),
        forwarded: forwarded_listeners(resources),
    }
}

/// Keeps `local` as the site's resources say while the server runs: listeners come and go.
async fn follow_resources(site_dir: SiteDir, local: watch::Sender<LocalSite>) {
    loop {
        tokio::time::sleep(RESOURCES_REREAD).await;
        match load_resources(&site_dir) {
            Ok(resources) => {
                let now = local_site_of(&resources);
                local.send_if_modified(|old| std::mem::replace(old, now.clone()) != now);
            }
            Err(e) => tracing::warn!("cannot read the site's resources: {e}"),
        }
    }
}

/// Follows the network through the site's router for as long as the process runs: connects,
/// and again after the router restarts or stops, a little later each time it fails.
async fn collect(
    site_dir: SiteDir,
    resources: SiteResources,
    publish: watch::Sender<Network>,
    router: watch::Sender<RouterConnection>,
) {
    let mut retry = RETRY_FIRST;
    loop {
        // The endpoint is read again each time: the router's client certificate may be new.
        let attempt = async {
            let endpoint = site_router_endpoint(&site_dir, &resources)?;
            let mut published = publish.subscribe();
            published.mark_unchanged();
            let connected = async {
                // The collector publishes its first model once it is connected.
                if published.changed().await.is_ok() {
                    router.send_replace(RouterConnection::Connected);
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                result = collector::run(&endpoint, &publish) => result.map_err(Error::from),
                () = connected => unreachable!("pending for ever"),
            }
        };
        let error = match attempt.await {
            Ok(()) => "the router closed the connection".to_string(),
            Err(e) => e.to_string(),
        };
        if *router.borrow() == RouterConnection::Connected {
            retry = RETRY_FIRST;
        }
        tracing::info!("collector: {error}; connecting again in {retry:?}");
        router.send_replace(RouterConnection::Failed { error });
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

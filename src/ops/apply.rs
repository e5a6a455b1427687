//! The one apply: makes the host hold what a site's resources say, for every command.
//!
//! A command opens a [`SiteSession`] (the site's lock, the bus, the saved resources), edits the
//! resources in memory and calls [`SiteSession::apply`] with the result. Apply renders a
//! [`HostPlan`] (pure), then in one order for every operation: marks the site as changing (the
//! journal), stops and removes forwarders no longer wanted, writes certificates, router
//! configuration and unit files, reloads systemd once, brings the router over (live through
//! management, or by a restart only when the change needs one, which it says), starts the
//! forwarders, and saves the resources last, in one atomic step (the commit point).
//!
//! On a failure it converges back to the saved resources (undo), so a change lands whole or
//! not at all. A kill leaves the journal: the next session finds it and converges to the
//! saved resources before doing anything else, removing whatever the killed command had made
//! that no saved resource names. Convergence always compares with what is really there (files
//! on disk, units installed, the router's entities as management reports them), so running it
//! again changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::error::Error;
use crate::model::SiteResources;
use crate::ops::activated::{self, Trigger};
use crate::ops::grant_server;
pub use crate::plan::local_port;
use crate::plan::router::{live_ops, renew_ops, restart_needed_for, LiveOp, Renewal};
use crate::plan::{self, GrantServerPlan, HostContext, HostPlan, PlannedFile};
use crate::platform::podman::PodmanService;
use crate::platform::systemd::{ActiveState, JobResult, LoadState, UserManager};
use crate::quadlet::version::detect_generator_version;
use crate::render::certs::{LeafRenewal, GRANT_SERVER};
use crate::render::console_units;
use crate::render::forwarder_units::{forwarder_unit_name, is_forwarder_socket};
use crate::render::router_config::LOOPBACK;
use crate::render::router_unit::router_unit_name;
use crate::render::unit_names;
use crate::router::entity::{parse_config, EntityType, RouterEntity};
use crate::router::management::{ClientTls, ManagementClient, ManagementError, RouterEndpoint};
use crate::settings::Settings;
use crate::store::{files, Paths, SiteDir, SiteLock};

/// Bound on a forwarder's or the grant server's unit job.
const UNIT_TIMEOUT: Duration = Duration::from_secs(90);
/// A running router gets this long to answer management for a live change.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What an apply did to the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum RouterChange {
    /// Management DELETE/CREATE on the running router, no restart; none when the router
    /// already ran what the resources say.
    Live { operations: Vec<String> },
    /// The router was not running and has been started.
    Started,
    /// Restarted, because a running router cannot take these changes live.
    Restarted { reasons: Vec<String> },
    /// The router is not running (stopped by hand, or never started); the change is in its
    /// files for its next start.
    NotRunning,
    /// The site is gone.
    Removed,
}

impl RouterChange {
    /// How the change reached the router, in a few words.
    pub fn describe(&self) -> String {
        match self {
            RouterChange::Live { operations } if operations.is_empty() => {
                "the router was unchanged".into()
            }
            RouterChange::Live { .. } => "applied to the running router live (no restart)".into(),
            RouterChange::Started => "the router was started".into(),
            RouterChange::Restarted { reasons } => format!(
                "the router was restarted: it cannot change {} live",
                reasons.join(", ")
            ),
            RouterChange::NotRunning => {
                "the router is not running: the change applies when it starts".into()
            }
            RouterChange::Removed => "the router was removed".into(),
        }
    }

    /// Whether a running router took the change without a restart.
    pub fn is_live(&self) -> bool {
        matches!(self, RouterChange::Live { .. })
    }
}

/// How an apply treats the router.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Start the router when it is not running (init, apply -f); otherwise a stopped router
    /// stays stopped and takes the change when it starts.
    pub start_router: bool,
    /// Bound on a router start or restart until it answers management.
    pub timeout: Duration,
    /// Which certificates are issued again (`certs rotate`: all of vansite's leaves).
    pub renewal: LeafRenewal,
}

/// What one apply changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub router: RouterChange,
    /// Whether any file (resources, certificates, configuration, units) changed.
    pub changed: bool,
}

/// One command's hold on a site: the lock, the bus, the saved resources.
pub struct SiteSession {
    pub paths: Paths,
    pub site_dir: SiteDir,
    pub manager: UserManager,
    /// The resources as saved; None when the namespace has no site yet.
    pub saved: Option<SiteResources>,
    _lock: SiteLock,
}

impl SiteSession {
    /// Takes the site's lock and loads its resources. When an earlier command was killed in
    /// the middle of a change, the site is first brought back to its saved resources.
    pub async fn open(
        paths: &Paths,
        namespace: &str,
        progress: &dyn Fn(&str),
    ) -> Result<SiteSession, Error> {
        let manager = UserManager::connect().await?;
        let lock = paths.lock(namespace, progress)?;
        let site_dir = paths.site(namespace);
        files::remove_leftover_temps(&site_dir.root)
            .map_err(Error::file("cannot clean", &site_dir.root))?;
        let saved = site_dir.load_resources()?;
        let mut session = SiteSession {
            paths: paths.clone(),
            site_dir,
            manager,
            saved,
            _lock: lock,
        };
        if let Some(interrupted) = journal::read(&session.site_dir) {
            let options = ApplyOptions {
                renewal: LeafRenewal::WhenDue,
                start_router: false,
                timeout: MANAGEMENT_TIMEOUT,
            };
            match session.saved.clone() {
                // A delete that was cut short is finished: removing was what was asked.
                Some(_) if interrupted == journal::DELETE => {
                    progress("an earlier `vansite delete` was interrupted: finishing it first");
                    session.teardown(UNIT_TIMEOUT, progress).await?;
                    session.saved = None;
                }
                Some(saved) => {
                    progress(&format!(
                        "an earlier `vansite {interrupted}` was interrupted: bringing the site \
                         back to its saved resources first"
                    ));
                    session.converge(&saved, options, progress).await?;
                }
                None => {
                    progress(&format!(
                        "an earlier `vansite {interrupted}` was interrupted before it saved a \
                         site: removing what it left"
                    ));
                    session.teardown(UNIT_TIMEOUT, progress).await?;
                }
            }
            journal::end(&session.site_dir)?;
        }
        Ok(session)
    }

    /// The saved resources, or the error naming the sites there are.
    pub fn resources(&self) -> Result<&SiteResources, Error> {
        self.saved
            .as_ref()
            .ok_or_else(|| self.paths.no_site(&self.site_dir.namespace).into())
    }

    /// Makes the host hold `target` and saves it; on failure puts the host back as the saved
    /// resources say and returns the error. `command` names the change in the journal.
    pub async fn apply(
        &mut self,
        target: SiteResources,
        command: &str,
        options: ApplyOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Applied, Error> {
        // Undone, the router runs again if it ran before (a failed restart stopped it).
        let router_ran = self
            .manager
            .unit_state(&format!(
                "{}.service",
                router_unit_name(&self.site_dir.namespace)
            ))
            .await?
            .active_state
            == ActiveState::Active;
        journal::begin(&self.site_dir, command)?;
        let result: Result<Applied, Error> = async {
            let applied = self.converge(&target, options, progress).await?;
            let saved = self.site_dir.save_resources(&target)?;
            Ok(Applied {
                changed: applied.changed || saved,
                ..applied
            })
        }
        .await;
        match result {
            Ok(applied) => {
                journal::end(&self.site_dir)?;
                self.saved = Some(target);
                self.record(command, &format!("done: {}", applied.router.describe()));
                Ok(applied)
            }
            Err(error) => {
                progress("undoing the change");
                let undo = match self.saved.clone() {
                    Some(saved) => {
                        let options = ApplyOptions {
                            start_router: router_ran,
                            ..options
                        };
                        self.converge(&saved, options, progress).await.map(drop)
                    }
                    None => self.teardown(options.timeout, progress).await.map(drop),
                };
                match &undo {
                    // Undone: nothing is left for the next command to repair.
                    Ok(()) => journal::end(&self.site_dir)?,
                    Err(undo) => tracing::warn!(
                        "undoing the change failed too ({undo}); the next vansite command on \
                         this site tries again"
                    ),
                }
                let undone = match undo {
                    Ok(()) => "undone".to_string(),
                    Err(undo) => format!("undoing failed too: {undo}"),
                };
                self.record(command, &format!("failed: {error}; {undone}"));
                Err(error)
            }
        }
    }

    /// Adds the command to the site's event log (`debug events`); a log that cannot be written
    /// does not fail the command.
    fn record(&self, command: &str, outcome: &str) {
        if let Err(e) = self.site_dir.record_event(command, outcome) {
            tracing::warn!(
                "cannot record the event in {}: {e}",
                self.site_dir.events_log().display()
            );
        }
    }

    /// Removes the site from the host: forwarders, grant server, router, their unit records,
    /// the container, every file of the site and the lock. Returns what was removed.
    pub async fn delete(
        self,
        timeout: Duration,
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, Error> {
        journal::begin(&self.site_dir, journal::DELETE)?;
        // The lock file goes when the session does (`Drop`).
        self.teardown(timeout, progress).await
    }

    fn host_context(&self) -> Result<HostContext, Error> {
        Ok(HostContext {
            site_dir: self.site_dir.clone(),
            quadlet_dir: self.paths.quadlet_dir(),
            systemd_user_dir: self.paths.systemd_user_dir(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            podman: detect_generator_version()?,
            executable: std::env::current_exe().map_err(Error::file("cannot find", "vansite"))?,
            renew_certificates: Settings::load(&self.paths.settings_file())?.renew_certificates,
        })
    }

    /// Brings the host to `target` (files, units, router, forwarders); does not save it.
    async fn converge(
        &self,
        target: &SiteResources,
        options: ApplyOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Applied, Error> {
        let host = self.host_context()?;
        let existing = self.site_dir.load_certificates()?;
        let plan = plan::plan(target, &host, &existing, options.renewal)?;
        let namespace = &self.site_dir.namespace;
        let mut changed = false;
        let mut reload = false;
        // The grant server reads its certificate when it starts: a new one needs a new server.
        let grant_certificate_changed =
            existing.certs.get(GRANT_SERVER) != plan.certificates.certs.get(GRANT_SERVER);
        if plan.grant_server.is_none() {
            let removed = grant_server::remove(&self.manager, &self.paths, namespace).await?;
            changed |= !removed.is_empty();
        }

        // Forwarders no longer wanted go first: their clients end, their ports are free.
        for listener in installed_forwarders(&self.paths, namespace) {
            if !plan.forwarders.iter().any(|f| f.listener == listener) {
                progress(&format!("stopping the forwarder of listener {listener}"));
                reload |= self.remove_forwarder(&listener).await?;
                changed = true;
            } else if self.retire_forwarder_container(&listener).await? {
                reload = true;
                changed = true;
            }
        }
        let bundle = self.site_dir.legacy_forwarder_bundle();
        changed |=
            files::remove_if_present(&bundle).map_err(Error::file("cannot remove", &bundle))?;

        // Files: what the router reads, then the units, synced together (files::WriteSet),
        // each whole before a unit can read it; links to units once the units are there.
        let mut staged = files::WriteSet::default();
        let running_config = std::fs::read_to_string(&plan.router_config.path)
            .ok()
            .and_then(|text| parse_config(&text).ok());
        for dir in [
            self.site_dir.router_config_dir(),
            self.site_dir.runtime().join("logs"),
        ] {
            files::create_dir(&dir, files::PRIVATE_DIR)
                .map_err(Error::file("cannot create", &dir))?;
        }
        changed |= self
            .site_dir
            .stage_certificates(&plan.certificates, &mut staged)?;
        changed |= stage(&mut staged, &plan.router_config)?;
        for dir in [self.paths.quadlet_dir(), self.paths.systemd_user_dir()] {
            files::create_dir(&dir, 0o755).map_err(Error::file("cannot create", &dir))?;
        }
        let router_unit_changed = stage(&mut staged, &plan.router_unit)?;
        // Plain units whose files changed: systemd reads a new one when it first starts it.
        let mut plain_units = PlainUnits::default();
        let mut changed_forwarders = Vec::new();
        for forwarder in &plan.forwarders {
            let files = [&forwarder.socket, &forwarder.service];
            if plain_units.stage(&mut staged, files, &forwarder.enabled_link)? {
                changed_forwarders.push(forwarder.unit.clone());
            }
        }
        let grant_units_changed = match &plan.grant_server {
            Some(grants) => {
                let files = [&grants.socket, &grants.service];
                plain_units.stage(&mut staged, files, &grants.enabled_link)?
            }
            None => false,
        };
        let renewal_units_changed = match &plan.renewal {
            Some(renewal) => {
                let files = [&renewal.timer, &renewal.service];
                plain_units.stage(&mut staged, files, &renewal.enabled_link)?
            }
            None => {
                let stem = unit_names::certificate_renewal(namespace);
                let removed =
                    activated::remove_triggered(&self.manager, &self.paths, &stem, Trigger::Timer)
                        .await?;
                changed |= !removed.is_empty();
                false
            }
        };
        staged
            .commit()
            .map_err(|failed| Error::file("cannot write", &failed.path)(failed.source))?;
        changed |= self
            .site_dir
            .remove_stale_certificates(&plan.certificates)?;
        for link in plain_units.links {
            enable(link)?;
        }
        changed |= router_unit_changed || !plain_units.changed.is_empty();
        reload |= router_unit_changed || self.any_loaded(&plain_units.changed).await?;
        let router_state = self.manager.unit_state(&plan.router_service).await?;
        if reload || router_state.load_state != LoadState::Loaded {
            progress("reloading systemd (quadlet generator)");
            self.manager.reload().await?;
        }

        // The forwarders start while the router changes: a forwarder waits for its router
        // port by itself, and its first client should find it running.
        let forwarders = async {
            for forwarder in &plan.forwarders {
                let restart = changed_forwarders.contains(&forwarder.unit);
                self.start_forwarder(&forwarder.unit, restart).await?;
            }
            Ok::<_, Error>(())
        };
        let router = self.bring_router(
            target,
            &plan,
            running_config,
            router_unit_changed,
            options,
            progress,
        );
        let (router, forwarders) = tokio::join!(router, forwarders);
        let router = router?;
        forwarders?;
        if let Some(grants) = &plan.grant_server {
            self.start_grant_server(grants, grant_units_changed || grant_certificate_changed)
                .await?;
        }
        if let Some(renewal) = &plan.renewal {
            activated::start_timer(&self.manager, &renewal.timer_unit, renewal_units_changed)
                .await?;
        }
        Ok(Applied { router, changed })
    }

    /// Makes the grant server's socket listen; `renew`: its units or certificate changed.
    async fn start_grant_server(&self, grants: &GrantServerPlan, renew: bool) -> Result<(), Error> {
        let units = super::activated::ServerUnits {
            role: "grant server",
            socket: &grants.socket_unit,
            service: &grants.service_unit,
            port: grants.port,
            fix: "Choose another with --port, or set grant_port in ~/.config/vansite/config.toml",
        };
        super::activated::start_socket(&self.manager, &units, renew).await
    }

    /// The router takes the plan: started, restarted when a fixed part changed, else live.
    async fn bring_router(
        &self,
        target: &SiteResources,
        plan: &HostPlan,
        running_config: Option<Vec<RouterEntity>>,
        unit_changed: bool,
        options: ApplyOptions,
        progress: &dyn Fn(&str),
    ) -> Result<RouterChange, Error> {
        let unit = &plan.router_service;
        let state = self.manager.unit_state(unit).await?;
        let running = matches!(
            state.active_state,
            ActiveState::Active | ActiveState::Activating | ActiveState::Reloading
        );
        if !running {
            if !options.start_router {
                return Ok(RouterChange::NotRunning);
            }
            progress(&format!("starting {unit}"));
            self.start_router(target, unit, false, options.timeout)
                .await?;
            return Ok(RouterChange::Started);
        }
        let mut reasons = restart_reasons(plan, running_config.as_deref(), unit_changed);
        if reasons.is_empty() {
            match self.sync_live(target, plan).await {
                Ok(operations) => {
                    if !operations.is_empty() {
                        progress(&format!("router changed live: {}", operations.join(", ")));
                    }
                    return Ok(RouterChange::Live { operations });
                }
                Err(LiveError::Refused(error)) => return Err(error.into()),
                Err(LiveError::Unreachable(reason)) => {
                    reasons.push(format!(
                        "anything while its management does not answer ({reason})"
                    ));
                }
            }
        }
        progress(&format!("restarting {unit}: {}", reasons.join(", ")));
        self.start_router(target, unit, true, options.timeout)
            .await?;
        Ok(RouterChange::Restarted { reasons })
    }

    /// Starts or restarts the router and waits until it answers management; a router that
    /// cannot start is stopped again (left alone, systemd would restart it forever).
    async fn start_router(
        &self,
        target: &SiteResources,
        unit: &str,
        restart: bool,
        timeout: Duration,
    ) -> Result<(), Error> {
        let log = self.site_dir.router_log();
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let namespace = &self.site_dir.namespace;
        let failed = |state: String| Error::RouterFailed {
            namespace: namespace.clone(),
            unit: unit.to_string(),
            state,
            log: log.clone(),
            log_tail: log_tail(&log, log_start),
        };
        let started = async {
            let result = if restart {
                self.manager.restart(unit, timeout).await?
            } else {
                self.manager.start(unit, timeout).await?
            };
            if result != JobResult::Done {
                let state = self.manager.unit_state(unit).await?;
                return Err(failed(format!("{state} (job {result:?})")));
            }
            wait_until_answering(
                &self.manager,
                unit,
                &self.site_dir,
                local_port(target),
                timeout,
                &failed,
                |state| Error::RouterTimeout {
                    namespace: namespace.clone(),
                    unit: unit.to_string(),
                    state,
                    seconds: timeout.as_secs(),
                    log: log.clone(),
                },
            )
            .await
        };
        let result = started.await;
        if result.is_err() {
            let _ = self.manager.stop(unit, UNIT_TIMEOUT).await;
        }
        result
    }

    /// Brings the running router's live entities to the plan's; returns what it did.
    async fn sync_live(
        &self,
        target: &SiteResources,
        plan: &HostPlan,
    ) -> Result<Vec<String>, LiveError> {
        let mut client = self.management(target).await?;
        let result = sync_router_entities(
            &mut client,
            &plan.live_entities,
            &plan.fixed,
            &plan.renewed_profiles,
        )
        .await;
        let _ = client.close().await;
        result
            .map(|ops| ops.iter().map(LiveOp::label).collect())
            .map_err(LiveError::Refused)
    }

    /// A management connection to the site's running router, retried while it starts.
    async fn management(&self, target: &SiteResources) -> Result<ManagementClient, LiveError> {
        let tls = ClientTls::from_dir(
            self.site_dir
                .certs()
                .join(crate::render::certs::LOCAL_CLIENT),
        )
        .map_err(LiveError::Refused)?;
        let port = local_port(target);
        let deadline = Instant::now() + MANAGEMENT_TIMEOUT;
        loop {
            match ManagementClient::connect(LOOPBACK, port, &tls, Duration::from_secs(3)).await {
                Ok(client) => return Ok(client),
                Err(
                    e @ (ManagementError::ConnectionRefused { .. }
                    | ManagementError::Timeout { .. }),
                ) => {
                    if Instant::now() >= deadline {
                        return Err(LiveError::Unreachable(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(LiveError::Unreachable(e.to_string())),
            }
        }
    }

    /// What an apply of `target` would do, without doing any of it: the files it would write
    /// or remove, the units it would stop, and what the router would go through.
    pub async fn preview(&self, target: &SiteResources) -> Result<Preview, Error> {
        let host = self.host_context()?;
        let existing = self.site_dir.load_certificates()?;
        let plan = plan::plan(target, &host, &existing, LeafRenewal::WhenDue)?;
        let mut files = Vec::new();
        let mut note = |path: &Path, action: FileAction| {
            files.push(FileChange {
                path: path.to_path_buf(),
                action,
            })
        };
        for file in std::iter::once(&plan.router_config)
            .chain([&plan.router_unit])
            .chain(plan.forwarders.iter().flat_map(|f| [&f.socket, &f.service]))
            .chain(
                plan.grant_server
                    .iter()
                    .flat_map(|g| [&g.socket, &g.service]),
            )
        {
            match std::fs::read_to_string(&file.path) {
                Ok(text) if text == file.contents => {}
                Ok(_) => note(&file.path, FileAction::Update),
                Err(_) => note(&file.path, FileAction::Create),
            }
        }
        for (dir, wanted, present) in [
            (
                self.site_dir.issuers(),
                &plan.certificates.issuers,
                &existing.issuers,
            ),
            (
                self.site_dir.certs(),
                &plan.certificates.certs,
                &existing.certs,
            ),
        ] {
            for (name, files_of) in wanted {
                match present.get(name) {
                    Some(now) if now == files_of => {}
                    Some(_) => note(&dir.join(name), FileAction::Update),
                    None => note(&dir.join(name), FileAction::Create),
                }
            }
            for name in present.keys().filter(|n| !wanted.contains_key(*n)) {
                if dir == self.site_dir.certs() {
                    note(&dir.join(name), FileAction::Remove);
                }
            }
        }
        let mut units = Vec::new();
        for listener in installed_forwarders(&self.paths, &self.site_dir.namespace) {
            if !plan.forwarders.iter().any(|f| f.listener == listener) {
                let unit = forwarder_unit_name(&self.site_dir.namespace, &listener);
                units.push(format!("stop and remove {unit}.socket and {unit}.service"));
            }
        }
        for forwarder in &plan.forwarders {
            units.push(format!(
                "start {0}.socket and {0}.service (if not running)",
                forwarder.unit
            ));
        }
        let resources = match &self.saved {
            Some(saved) => resource_changes(saved, target),
            None => target
                .to_resources()
                .iter()
                .map(|r| format!("create {}", r.object_ref()))
                .collect(),
        };
        let state = self.manager.unit_state(&plan.router_service).await?;
        let running = matches!(
            state.active_state,
            ActiveState::Active | ActiveState::Activating | ActiveState::Reloading
        );
        let router = if !running {
            RouterChange::Started
        } else {
            let running_config = std::fs::read_to_string(&plan.router_config.path)
                .ok()
                .and_then(|text| parse_config(&text).ok());
            let unit_changed = std::fs::read_to_string(&plan.router_unit.path)
                .map_or(true, |text| text != plan.router_unit.contents);
            let reasons = restart_reasons(&plan, running_config.as_deref(), unit_changed);
            if !reasons.is_empty() {
                RouterChange::Restarted { reasons }
            } else {
                match self.management(target).await {
                    Ok(mut client) => {
                        let ops = planned_live_ops(
                            &mut client,
                            &plan.live_entities,
                            &plan.fixed,
                            &plan.renewed_profiles,
                        )
                        .await;
                        let _ = client.close().await;
                        RouterChange::Live {
                            operations: ops?.iter().map(LiveOp::label).collect(),
                        }
                    }
                    Err(LiveError::Unreachable(reason)) => RouterChange::Restarted {
                        reasons: vec![format!(
                            "anything while its management does not answer ({reason})"
                        )],
                    },
                    Err(LiveError::Refused(error)) => return Err(error.into()),
                }
            }
        };
        Ok(Preview {
            resources,
            files,
            units,
            router,
        })
    }

    /// Stops a forwarder (its connections end with a FIN), removes its files and forgets its
    /// units; true when a unit file was removed (the caller reloads). The socket file goes
    /// last: while it is there, the forwarder is found again (`installed_forwarders`).
    async fn remove_forwarder(&self, listener: &str) -> Result<bool, Error> {
        let unit = forwarder_unit_name(&self.site_dir.namespace, listener);
        let service = format!("{unit}.service");
        self.stop_units(&[service.clone(), format!("{unit}.socket")], UNIT_TIMEOUT)
            .await?;
        let user_dir = self.paths.systemd_user_dir();
        let mut removed = false;
        for path in [
            self.legacy_forwarder_container(&unit),
            unit_names::enablement_link(&user_dir, unit_names::DEFAULT_TARGET, &service),
            user_dir.join(&service),
            user_dir.join(format!("{unit}.socket")),
            self.site_dir.forwarder_log(listener),
        ] {
            removed |=
                files::remove_if_present(&path).map_err(Error::file("cannot remove", &path))?;
        }
        Ok(removed)
    }

    /// The quadlet an earlier vansite ran a forwarder from, in the router's image.
    fn legacy_forwarder_container(&self, unit: &str) -> PathBuf {
        self.paths.quadlet_dir().join(format!("{unit}.container"))
    }

    /// Stops the forwarder of `listener` if an earlier vansite ran it as a quadlet container,
    /// and removes that quadlet (the caller reloads); its socket keeps the port meanwhile, and
    /// the plan's service takes over. True when there was one.
    async fn retire_forwarder_container(&self, listener: &str) -> Result<bool, Error> {
        let unit = forwarder_unit_name(&self.site_dir.namespace, listener);
        let quadlet = self.legacy_forwarder_container(&unit);
        if !quadlet.exists() {
            return Ok(false);
        }
        self.stop_units(&[format!("{unit}.service")], UNIT_TIMEOUT)
            .await?;
        files::remove_if_present(&quadlet).map_err(Error::file("cannot remove", &quadlet))?;
        Ok(true)
    }

    /// Whether systemd holds any of `units` in memory. Only those need a reload to see a new
    /// unit file: a unit it does not hold is read from its file when first started (systemd
    /// notices new files in its unit directories), which spares a new forwarder the reload
    /// and its run of every generator.
    async fn any_loaded(&self, units: &[String]) -> Result<bool, Error> {
        for unit in units {
            if self.manager.is_loaded(unit).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stops each unit that runs, and forgets any failed state it has.
    async fn stop_units(&self, units: &[String], timeout: Duration) -> Result<Vec<String>, Error> {
        let mut stopped = Vec::new();
        for unit in units {
            let state = self.manager.unit_state(unit).await?;
            if state.load_state == LoadState::Loaded && state.active_state != ActiveState::Inactive
            {
                self.manager.stop(unit, timeout).await?;
                stopped.push(format!("unit {unit} (stopped)"));
            }
            self.manager.reset_failed(unit).await?;
        }
        Ok(stopped)
    }

    /// Starts the socket, then the forwarder (warm, so the first client waits for nothing);
    /// a forwarder whose units changed is restarted.
    async fn start_forwarder(&self, unit: &str, changed: bool) -> Result<(), Error> {
        let socket = format!("{unit}.socket");
        let service = format!("{unit}.service");
        if changed {
            // A socket holds its old port until it restarts, and the service holds the socket:
            // the service stops first (its connections end with a FIN).
            self.stop_units(std::slice::from_ref(&service), UNIT_TIMEOUT)
                .await?;
        }
        for (name, restart) in [(&socket, changed), (&service, false)] {
            let state = self.manager.unit_state(name).await?;
            let running = state.active_state == ActiveState::Active;
            let result = if running && !restart {
                continue;
            } else if running {
                self.manager.restart(name, UNIT_TIMEOUT).await?
            } else {
                self.manager.start(name, UNIT_TIMEOUT).await?
            };
            if result != JobResult::Done {
                let state = self.manager.unit_state(name).await?;
                return Err(Error::Usage(format!(
                    "{name} did not start ({state}, job {result:?}); see `systemctl --user status \
                     {name}` and {}",
                    self.site_dir.runtime().join("logs").display()
                )));
            }
        }
        Ok(())
    }

    /// Everything the site put on the host, gone; what was removed, in words.
    async fn teardown(
        &self,
        timeout: Duration,
        progress: &dyn Fn(&str),
    ) -> Result<Vec<String>, Error> {
        let namespace = &self.site_dir.namespace;
        // The console first: it watches the router until the router goes.
        let console = crate::render::unit_names::console(namespace);
        let mut removed = super::activated::remove(&self.manager, &self.paths, &console).await?;
        let mut reload = !removed.is_empty();
        for listener in installed_forwarders(&self.paths, namespace) {
            progress(&format!("stopping the forwarder of listener {listener}"));
            reload |= self.remove_forwarder(&listener).await?;
            removed.push(format!("forwarder of listener {listener}"));
        }
        let name = router_unit_name(namespace);
        let router_service = format!("{name}.service");
        progress(&format!("stopping {router_service}"));
        removed.extend(
            self.stop_units(std::slice::from_ref(&router_service), timeout)
                .await?,
        );
        let quadlet_file = self.paths.quadlet_dir().join(format!("{name}.container"));
        if files::remove_if_present(&quadlet_file)
            .map_err(Error::file("cannot remove", &quadlet_file))?
        {
            removed.push(quadlet_file.display().to_string());
            reload = true;
        }
        let grant_files =
            crate::ops::grant_server::remove(&self.manager, &self.paths, namespace).await?;
        reload |= !grant_files.is_empty();
        removed.extend(grant_files);
        let renewal = crate::render::unit_names::certificate_renewal(namespace);
        removed.extend(
            activated::remove_triggered(&self.manager, &self.paths, &renewal, Trigger::Timer)
                .await?,
        );
        if reload {
            self.manager.reload().await?;
        }
        // After the reload the removed units are gone; forget any record systemd kept.
        let console_units = [
            console_units::socket_unit(namespace),
            console_units::service_unit(namespace),
        ];
        for unit in crate::render::grant_units::unit_names(namespace)
            .into_iter()
            .chain(console_units)
        {
            self.manager.reset_failed(&unit).await?;
        }
        self.manager.reset_failed(&router_service).await?;
        // Quadlet containers are removed when their unit stops; this covers a unit that never
        // ran its stop (a killed manager, a container started by hand under the same name).
        let podman = PodmanService::connect(&self.manager).await?;
        if podman.container_info(&name).await?.is_some() {
            podman.remove_container(&name).await?;
            removed.push(format!("container {name}"));
        }
        let root = &self.site_dir.root;
        if files::remove_if_present(root).map_err(Error::file("cannot remove", root))? {
            removed.push(root.display().to_string());
        }
        // Directories vansite created for this site and no longer holds anything in.
        let user_dir = self.paths.systemd_user_dir();
        let wants_dirs = [
            unit_names::DEFAULT_TARGET,
            unit_names::SOCKETS_TARGET,
            unit_names::TIMERS_TARGET,
        ]
        .map(|target| unit_names::wants_dir(&user_dir, target));
        for dir in wants_dirs.iter().chain([&self.paths.data]) {
            files::remove_dir_if_empty(dir).map_err(Error::file("cannot remove", dir))?;
        }
        Ok(removed)
    }
}

impl Drop for SiteSession {
    /// A namespace without a site keeps no lock file (a delete, or a command that found no
    /// site). Removed while still held: the kernel releases the lock when the file closes.
    fn drop(&mut self) {
        if self.site_dir.root.exists() {
            return;
        }
        let lock_file = self.paths.lock_file(&self.site_dir.namespace);
        let _ = files::remove_if_present(&lock_file);
        if let Some(dir) = lock_file.parent() {
            let _ = files::remove_dir_if_empty(dir);
        }
    }
}

/// What an apply would do (`--dry-run`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// `create|update|delete Kind/name` for each saved resource that changes.
    pub resources: Vec<String>,
    pub files: Vec<FileChange>,
    pub units: Vec<String>,
    pub router: RouterChange,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    pub path: PathBuf,
    pub action: FileAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    Create,
    Update,
    Remove,
}

/// `create|update|delete Kind/name` from `saved` to `target`.
fn resource_changes(saved: &SiteResources, target: &SiteResources) -> Vec<String> {
    let (before, after) = (saved.to_resources(), target.to_resources());
    let mut changes = Vec::new();
    for resource in &after {
        match before
            .iter()
            .find(|b| b.object_ref() == resource.object_ref())
        {
            Some(old) if old == resource => {}
            Some(_) => changes.push(format!("update {}", resource.object_ref())),
            None => changes.push(format!("create {}", resource.object_ref())),
        }
    }
    for resource in &before {
        if !after
            .iter()
            .any(|a| a.object_ref() == resource.object_ref())
        {
            changes.push(format!("delete {}", resource.object_ref()));
        }
    }
    changes
}

/// Why the router must restart for `plan`: a changed unit, or fixed entities that differ
/// from the configuration it runs (`running_config`; None when unreadable).
fn restart_reasons(
    plan: &HostPlan,
    running_config: Option<&[RouterEntity]>,
    unit_changed: bool,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if unit_changed {
        reasons.push("its unit (image or site)".to_string());
    }
    match running_config {
        Some(running) => reasons.extend(restart_needed_for(running, &plan.config_entities)),
        None => reasons.push("its configuration file (missing or unreadable)".into()),
    }
    reasons
}

/// Reads the router's live entities and plans the operations that bring them to `wanted`
/// (never touching the `fixed` ones).
async fn planned_live_ops(
    client: &mut ManagementClient,
    wanted: &[RouterEntity],
    fixed: &BTreeSet<(EntityType, String)>,
    renewed: &BTreeMap<String, Renewal>,
) -> Result<Vec<LiveOp>, ManagementError> {
    let running = running_entities(client, &EntityType::LIVE).await?;
    Ok(live_ops(&running, wanted, fixed, renewed))
}

/// Every entity of `types` the router runs, every attribute included.
async fn running_entities(
    client: &mut ManagementClient,
    types: &[EntityType],
) -> Result<Vec<RouterEntity>, ManagementError> {
    let mut running = Vec::new();
    for &entity_type in types {
        for attributes in client.query(entity_type.as_str(), &[]).await? {
            running.push(RouterEntity {
                entity_type,
                attributes,
            });
        }
    }
    Ok(running)
}

/// Brings a running router's live entities to `wanted` through management: DELETE what is not
/// wanted or differs, then CREATE what is missing, in the order the router accepts. Returns
/// what it did.
pub async fn sync_router_entities(
    client: &mut ManagementClient,
    wanted: &[RouterEntity],
    fixed: &BTreeSet<(EntityType, String)>,
    renewed: &BTreeMap<String, Renewal>,
) -> Result<Vec<LiveOp>, ManagementError> {
    let ops = planned_live_ops(client, wanted, fixed, renewed).await?;
    run_live_ops(client, &ops).await?;
    Ok(ops)
}

/// Carries out `ops` in order on the running router.
async fn run_live_ops(
    client: &mut ManagementClient,
    ops: &[LiveOp],
) -> Result<(), ManagementError> {
    for op in ops {
        match op {
            LiveOp::Delete { entity_type, name } => {
                match client.delete(entity_type.as_str(), name).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
            LiveOp::Create(entity) => {
                client
                    .create(
                        entity.entity_type.as_str(),
                        entity.name(),
                        entity.attributes.clone(),
                    )
                    .await?;
            }
            LiveOp::Renew {
                profile,
                ordinal,
                close_older,
            } => {
                client
                    .update(
                        EntityType::SslProfile.as_str(),
                        profile,
                        LiveOp::renew_attributes(*ordinal, *close_older),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Writes the site's certificate files as its resources and link CAs say, and renews the
/// running router's sslProfiles whose files changed, under the site's lock: for a change of
/// trust made outside a command (the grant server issued a link). Returns what it did to the
/// router. Not a whole apply: nothing else about the site changed, and the grant server runs
/// without the D-Bus session an apply needs.
pub async fn renew_certificates(site_dir: &SiteDir) -> Result<Vec<String>, Error> {
    let paths = Paths::from_env()?;
    // The lock may be held by a command for seconds: wait for it off the async threads.
    let lock_paths = paths.clone();
    let namespace = site_dir.namespace.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_paths.lock(&namespace, &|_| {}))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let resources = site_dir
        .load_resources()?
        .ok_or_else(|| paths.no_site(&site_dir.namespace))?;
    let existing = site_dir.load_certificates()?;
    let config = plan::config_entities(&resources);
    let (certificates, renewed) =
        plan::certificate_changes(&resources, &config, &existing, LeafRenewal::WhenDue)?;
    site_dir.save_certificates(&certificates)?;
    if renewed.is_empty() {
        return Ok(Vec::new());
    }
    let labels = with_site_management(site_dir, &resources, MANAGEMENT_TIMEOUT, async |client| {
        let running = running_entities(client, &[EntityType::SslProfile]).await?;
        let ops = renew_ops(&running, &renewed);
        run_live_ops(client, &ops).await?;
        Ok(ops.iter().map(LiveOp::label).collect())
    })
    .await?;
    Ok(labels)
}

enum LiveError {
    /// Management could not be reached (the reason, for the person).
    Unreachable(String),
    /// The router answered and refused.
    Refused(ManagementError),
}

/// What `systemctl --user enable` does for a unit with `WantedBy=sockets.target`: a link
/// `sockets.target.wants/<unit>` to `../<unit>`.
pub(crate) fn enable(link: &Path) -> Result<(), Error> {
    if std::fs::read_link(link).is_ok() {
        return Ok(());
    }
    let dir = link
        .parent()
        .expect("a link in a target's .wants directory");
    files::create_dir(dir, 0o755).map_err(Error::file("cannot create", dir))?;
    files::remove_if_present(link).map_err(Error::file("cannot replace", link))?;
    let unit = link.file_name().expect("a unit name");
    std::os::unix::fs::symlink(Path::new("..").join(unit), link)
        .map_err(Error::file("cannot create", link))
}

pub(crate) fn write(file: &PlannedFile) -> Result<bool, Error> {
    files::write_atomic(&file.path, file.contents.as_bytes(), files::PUBLIC)
        .map_err(Error::file("cannot write", &file.path))
}

/// The plain units (a forwarder's, the grant server's, the renewal timer's) one apply stages:
/// those whose files changed, and the links that enable them once they are in place.
#[derive(Default)]
struct PlainUnits<'p> {
    changed: Vec<String>,
    links: Vec<&'p Path>,
}

impl<'p> PlainUnits<'p> {
    /// Stages one part's two unit files and notes its link; true when either file changed
    /// (both units are then noted as changed: a unit's name is its file's).
    fn stage(
        &mut self,
        staged: &mut files::WriteSet,
        files: [&PlannedFile; 2],
        link: &'p Path,
    ) -> Result<bool, Error> {
        let mut changed = false;
        for file in files {
            changed |= stage(staged, file)?;
        }
        self.links.push(link);
        if changed {
            self.changed.extend(files.map(PlannedFile::file_name));
        }
        Ok(changed)
    }
}

/// [`write`] into `staged`, for its commit.
fn stage(staged: &mut files::WriteSet, file: &PlannedFile) -> Result<bool, Error> {
    staged
        .write(&file.path, file.contents.as_bytes(), files::PUBLIC)
        .map_err(Error::file("cannot write", &file.path))
}

/// One management connection to the site's router over its local listener, with the site's
/// client certificate, bounded by `timeout`.
pub async fn site_management(
    site_dir: &SiteDir,
    resources: &SiteResources,
    timeout: Duration,
) -> Result<ManagementClient, ManagementError> {
    site_router_endpoint(site_dir, resources)?
        .management(timeout)
        .await
}

/// Runs `work` on one management connection to the site's router ([`site_management`]) and
/// closes it, whatever `work` gave.
pub async fn with_site_management<T>(
    site_dir: &SiteDir,
    resources: &SiteResources,
    timeout: Duration,
    work: impl AsyncFnOnce(&mut ManagementClient) -> Result<T, ManagementError>,
) -> Result<T, ManagementError> {
    let mut client = site_management(site_dir, resources, timeout).await?;
    let result = work(&mut client).await;
    let _ = client.close().await;
    result
}

/// The site router's local listener and the client credentials it takes, for the vanflow
/// collector.
pub fn site_router_endpoint(
    site_dir: &SiteDir,
    resources: &SiteResources,
) -> Result<RouterEndpoint, ManagementError> {
    Ok(RouterEndpoint {
        host: LOOPBACK.to_string(),
        port: local_port(resources),
        tls: ClientTls::from_dir(site_dir.certs().join(crate::render::certs::LOCAL_CLIENT))?,
    })
}

/// The listener names that have forwarder units installed for `namespace`, found by their
/// socket units: written first and removed last.
pub fn installed_forwarders(paths: &Paths, namespace: &str) -> Vec<String> {
    let socket_prefix = forwarder_unit_name(namespace, "");
    let mut names: Vec<String> = std::fs::read_dir(paths.systemd_user_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let listener = file
                .strip_prefix(&socket_prefix)?
                .strip_suffix(".socket")?
                .to_string();
            let text = std::fs::read_to_string(entry.path()).ok()?;
            is_forwarder_socket(&text, namespace, &listener).then_some(listener)
        })
        .collect();
    names.sort();
    names
}

/// The router is up when its unit is active and its management listener answers (TLS, SASL
/// EXTERNAL, AMQP open): the same path every later live change takes. A unit that fails or
/// is restarted by systemd meanwhile (its restart count grows) is a failed start.
pub async fn wait_until_answering(
    manager: &UserManager,
    unit: &str,
    site_dir: &SiteDir,
    port: u16,
    timeout: Duration,
    failed: impl Fn(String) -> Error,
    timed_out: impl Fn(String) -> Error,
) -> Result<(), Error> {
    let tls = ClientTls::from_dir(site_dir.certs().join(crate::render::certs::LOCAL_CLIENT))?;
    let deadline = Instant::now() + timeout;
    let mut state = manager.unit_state(unit).await?;
    let restarts_at_start = state.restarts;
    // The router tells no one when it listens: its port is asked every few ms (refused at
    // once while it is closed: no TLS is begun before TCP connects), systemd less often once
    // the unit is active.
    const PAUSE: Duration = Duration::from_millis(5);
    const PAUSES_PER_STATE: u32 = 10;
    let mut pauses = 0u32;
    loop {
        if pauses > 0 && (pauses == PAUSES_PER_STATE || state.active_state != ActiveState::Active) {
            pauses = 0;
            state = manager.unit_state(unit).await?;
        }
        let broken = matches!(
            state.active_state,
            ActiveState::Failed | ActiveState::Inactive
        ) || state.sub_state == "auto-restart"
            || state.restarts > restarts_at_start;
        if broken {
            return Err(failed(state.to_string()));
        }
        if state.active_state == ActiveState::Active {
            if let Ok(client) =
                ManagementClient::connect(LOOPBACK, port, &tls, Duration::from_secs(2)).await
            {
                let _ = client.close().await;
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(timed_out(state.to_string()));
        }
        tokio::time::sleep(PAUSE).await;
        pauses += 1;
    }
}

/// The router's log lines written since `from` (this start), the last 20 of them.
fn log_tail(log: &Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let recent = String::from_utf8_lossy(text.get(from as usize..).unwrap_or(&text));
    let lines: Vec<&str> = recent.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        "  (nothing: the container may not have started at all)".into()
    } else {
        tail.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A marker that a change is under way: written before the first effect, removed after the
/// resources are saved (or the change undone). Found by the next command, it means a command
/// was killed midway.
pub mod journal {
    use super::*;

    /// What `delete` writes: finished, not undone, when it was cut short.
    pub const DELETE: &str = "delete";

    pub fn begin(site_dir: &SiteDir, command: &str) -> Result<(), Error> {
        files::create_dir(&site_dir.root, files::PRIVATE_DIR)
            .map_err(Error::file("cannot create", &site_dir.root))?;
        let path = site_dir.journal();
        files::write_atomic(&path, command.as_bytes(), files::PUBLIC)
            .map_err(Error::file("cannot write", &path))
            .map(drop)
    }

    pub fn end(site_dir: &SiteDir) -> Result<(), Error> {
        let path = site_dir.journal();
        files::remove_if_present(&path)
            .map_err(Error::file("cannot remove", &path))
            .map(drop)
    }

    /// The command that was interrupted, if one was.
    pub fn read(site_dir: &SiteDir) -> Option<String> {
        site_dir.interrupted_command()
    }
}

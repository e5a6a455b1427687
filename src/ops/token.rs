//! `vansite token issue FILE` (the tutorials' `token create`): record an AccessGrant, make sure
//! the grant server runs, and write the token another site redeems. `vansite token list` and
//! `token revoke NAME`: the grants not yet pruned, and removing one. `vansite link generate`:
//! a static Link + Secret, no server involved, trusted by the router from then on.
//!
//! Issue checks everything it can before it changes anything: the port (valid, unprivileged,
//! free unless the grant server's socket already listens on it), and the token file (its
//! temporary file is made in its directory up front). Then: the grant's state file, then the
//! certificates, then the resources (the commit point: a grant exists once its AccessGrant
//! file does), then the units, then the token file, renamed into place. A failure before the
//! commit point leaves at most an orphan state file, removed with the next expired grants; a
//! token file that cannot be written after it takes the grant back out.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Error;
use crate::model::{
    check_name, AccessGrant, AccessGrantSpec, AccessToken, AccessTokenSpec, ObjectMeta, Resource,
    Secret, SiteResources,
};
use crate::render::certs::LeafRenewal;
use crate::render::certs::GRANT_SERVER_CA;
use crate::settings::SKUPPER_VERSION;
use crate::store::files::{self, StagedFile};
use crate::store::{Paths, SiteDir};

use crate::grants::bundle::{IssuedLink, LinkAccess, V1_TYPE_LABEL};
use crate::grants::code::{name_suffix, new_code};
use crate::grants::duration::parse_go_duration;
use crate::grants::state::{self, GrantState, LockedState};
use crate::grants::{self, grant_port};
use crate::grants::{
    GrantError, TokenFormat, FORMAT_ANNOTATION, GRANT_PORT_ANNOTATION, HOST_ANNOTATION,
};
use crate::ops::apply::{ApplyOptions, SiteSession};
use crate::ops::services::check_port_free;
use crate::platform::systemd::ActiveState;
use crate::render::grant_units::socket_unit;

/// How a grant change is applied: the router is neither started nor restarted for it.
const GRANT_APPLY: ApplyOptions = ApplyOptions {
    renewal: LeafRenewal::WhenDue,
    start_router: false,
    timeout: Duration::from_secs(120),
};

/// What the person asked for.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub namespace: String,
    /// Where the token is written (0600).
    pub file: PathBuf,
    /// The AccessGrant's name (and the token's); default `<site>-<8 random characters>`.
    pub name: Option<String>,
    /// How many times the token can be redeemed (≥ 1).
    pub redemptions: u32,
    /// A Go duration such as `15m`.
    pub expiration_window: String,
    /// The host in the token's URL and in the Link endpoints; one of the site's names.
    pub host: Option<String>,
    /// The grant server's port; default: the site's current one, else `default_port`.
    pub port: Option<u16>,
    /// `grant_port` from the settings file.
    pub default_port: u16,
    pub format: TokenFormat,
}

/// What issue did, for the person.
#[derive(Debug, Clone)]
pub struct IssueOutcome {
    pub grant_name: String,
    pub url: String,
    /// RFC 3339.
    pub expiration_time: String,
    pub redemptions_allowed: u32,
    pub file: PathBuf,
    pub format: TokenFormat,
    pub socket_unit: String,
}

/// A new AccessGrant (not recorded yet): a fresh uid and code.
pub fn new_grant(
    site_name: &str,
    name: Option<String>,
    redemptions: u32,
    expiration_window: &str,
    format: TokenFormat,
    host: Option<&str>,
    port: u16,
) -> AccessGrant {
    let name = name.unwrap_or_else(|| {
        let prefix: String = site_name.chars().take(54).collect();
        format!("{}-{}", prefix.trim_end_matches('-'), name_suffix(8))
    });
    let mut grant = AccessGrant {
        metadata: ObjectMeta::named(name),
        spec: AccessGrantSpec {
            redemptions_allowed: i64::from(redemptions.max(1)),
            expiration_window: expiration_window.to_string(),
            code: new_code(),
            ..AccessGrantSpec::default()
        },
    };
    grant.metadata.uid = uuid::Uuid::new_v4().to_string();
    if format == TokenFormat::V1 {
        grant
            .metadata
            .annotations
            .insert(FORMAT_ANNOTATION.into(), "v1".into());
    }
    if let Some(host) = host {
        grant
            .metadata
            .annotations
            .insert(HOST_ANNOTATION.into(), host.into());
    }
    grant
        .metadata
        .annotations
        .insert(GRANT_PORT_ANNOTATION.into(), port.to_string());
    grant
}

/// Records `grant` in `resources` and writes its state (expiring `window` after `now`); the
/// caller saves the resources, which commits it. Refuses a name in use by an unexpired grant.
pub fn record_grant(
    site_dir: &SiteDir,
    resources: &mut SiteResources,
    grant: AccessGrant,
    window: Duration,
    now: SystemTime,
) -> Result<AccessGrant, Error> {
    check_name(&grant.metadata.name)
        .map_err(|problem| Error::Usage(format!("--name: {problem} (an RFC 1123 label)")))?;
    if resources
        .access_grants
        .iter()
        .any(|g| g.metadata.name == grant.metadata.name)
    {
        return Err(GrantError::GrantExists {
            name: grant.metadata.name,
        }
        .into());
    }
    let dir = site_dir.grants();
    let mut locked =
        LockedState::lock(&dir, &grant.metadata.uid).map_err(Error::file("cannot lock", &dir))?;
    locked
        .save(GrantState::new(now, window))
        .map_err(Error::file("cannot write", &dir))?;
    resources.access_grants.push(grant.clone());
    Ok(grant)
}

/// Drops grants that have expired (or lost their state) from `resources`, and their state
/// files, and state files no grant names. Returns whether anything was dropped.
pub fn prune_expired(
    site_dir: &SiteDir,
    resources: &mut SiteResources,
    now: SystemTime,
) -> Result<bool, Error> {
    let dir = site_dir.grants();
    let before = resources.access_grants.len();
    let mut kept = Vec::new();
    for grant in std::mem::take(&mut resources.access_grants) {
        let locked = LockedState::lock(&dir, &grant.metadata.uid)
            .map_err(Error::file("cannot read", &dir))?;
        let live = locked.state.as_ref().is_some_and(|s| !s.expired(now));
        drop(locked);
        if live {
            kept.push(grant);
        } else {
            state::remove(&dir, &grant.metadata.uid).map_err(Error::file("cannot remove", &dir))?;
        }
    }
    resources.access_grants = kept;
    let known: Vec<&str> = resources
        .access_grants
        .iter()
        .map(|g| g.metadata.uid.as_str())
        .collect();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let uid = file
            .strip_suffix(".json")
            .or_else(|| file.strip_suffix(".lock"));
        if let Some(uid) = uid.filter(|uid| !known.contains(uid)) {
            state::remove(&dir, uid).map_err(Error::file("cannot remove", &dir))?;
        }
    }
    Ok(resources.access_grants.len() != before)
}

pub async fn issue(
    paths: &Paths,
    request: IssueRequest,
    progress: &dyn Fn(&str),
) -> Result<IssueOutcome, Error> {
    let window = parse_go_duration(&request.expiration_window).map_err(|problem| {
        GrantError::BadDuration {
            text: request.expiration_window.clone(),
            problem,
        }
    })?;
    if request.redemptions == 0 {
        return Err(Error::Usage("--redemptions must be at least 1".into()));
    }
    // Absolute, so the token's directory is never the empty path.
    let file =
        std::path::absolute(&request.file).map_err(Error::file("cannot resolve", &request.file))?;
    let namespace = &request.namespace;
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let site_dir = session.site_dir.clone();
    let before = session.resources()?.clone();
    let host = LinkAccess::of(&before, request.host.as_deref())?.host;
    let current_port = grant_port(&before);
    let port = request
        .port
        .or(current_port)
        .unwrap_or(request.default_port);
    check_grant_port(&session, port, current_port).await?;
    let token_file = stage_token_file(&file)?;
    if let Some(old) = current_port.filter(|old| *old != port) {
        let stranded = redeemable_tokens(&site_dir, &before)?;
        if stranded > 0 {
            progress(&format!(
                "the grant server moves from port {old} to {port}: the {stranded} token(s) \
                 issued for port {old} can no longer be redeemed"
            ));
        }
    }

    let now = SystemTime::now();
    let mut resources = before.clone();
    prune_expired(&site_dir, &mut resources, now)?;
    let grant = new_grant(
        resources.site_name(),
        request.name.clone(),
        request.redemptions,
        &request.expiration_window,
        request.format,
        request.host.as_deref(),
        port,
    );
    let grant = record_grant(&site_dir, &mut resources, grant, window, now)?;
    let state = LockedState::lock(&site_dir.grants(), &grant.metadata.uid)
        .map_err(Error::file("cannot read", site_dir.grants()))?
        .state
        .expect("just written");
    resources
        .site
        .metadata
        .annotations
        .insert(GRANT_PORT_ANNOTATION.into(), port.to_string());
    let target = SiteResources::new(namespace, resources.to_resources())?;

    // The grant server's certificate and units, through the one apply; the grant counts once
    // the resources are saved.
    progress("recording the grant and starting the grant server");
    let command = format!("token issue {}", grant.metadata.name);
    if let Err(error) = session.apply(target, &command, GRANT_APPLY, progress).await {
        remove_state(&site_dir, &grant)?;
        return Err(error);
    }
    let ca_pem = site_dir.load_certificates()?.issuers[GRANT_SERVER_CA]
        .tls_crt
        .clone();
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let (url, token) = match request.format {
        TokenFormat::V2 => {
            let url = format!("https://{url_host}:{port}/{}", grant.metadata.uid);
            (url.clone(), access_token(&grant, url, ca_pem))
        }
        TokenFormat::V1 => {
            let url = format!("https://{url_host}:{port}/{}", grant.metadata.name);
            let claim = v1_claim(&grant, session.resources()?, url.clone(), &state, &ca_pem);
            (url, Resource::Secret(claim))
        }
    };
    let written = token.to_yaml().map_err(Error::from).and_then(|yaml| {
        token_file
            .commit(yaml.as_bytes())
            .map_err(Error::file("cannot write", &file))
    });
    if let Err(error) = written {
        // A grant whose token nobody holds would only wait for its expiry: take it back out.
        progress("the token could not be written: taking the grant back");
        session
            .apply(
                before,
                &format!("{command} (undone)"),
                GRANT_APPLY,
                progress,
            )
            .await?;
        remove_state(&site_dir, &grant)?;
        return Err(error);
    }
    Ok(IssueOutcome {
        grant_name: grant.metadata.name.clone(),
        url,
        expiration_time: state.expiration_time,
        redemptions_allowed: request.redemptions,
        file,
        format: request.format,
        socket_unit: socket_unit(namespace),
    })
}

/// Removes a grant's state (once the grant is out of the saved resources, or never got in).
fn remove_state(site_dir: &SiteDir, grant: &AccessGrant) -> Result<(), Error> {
    let dir = site_dir.grants();
    state::remove(&dir, &grant.metadata.uid).map_err(Error::file("cannot remove", &dir))
}

/// Refuses a port the grant server could not listen on, before anything changes: 0,
/// privileged ports, and ports something else holds. The port its socket listens on now is
/// held by that socket, and is fine.
async fn check_grant_port(
    session: &SiteSession,
    port: u16,
    current: Option<u16>,
) -> Result<(), Error> {
    if port == 0 {
        return Err(Error::Usage(
            "the grant server's port cannot be 0: give --port (1-65535), or set grant_port in \
             ~/.config/vansite/config.toml"
                .into(),
        ));
    }
    if current == Some(port) {
        let socket = socket_unit(&session.site_dir.namespace);
        if session.manager.unit_state(&socket).await?.active_state == ActiveState::Active {
            return Ok(());
        }
    }
    check_port_free(&session.paths, every_address(port))
}

/// Where a socket unit's `ListenStream=PORT` listens: every IPv6 and IPv4 address when the
/// host has IPv6 (systemd's default dual-stack socket), else every IPv4 address.
fn every_address(port: u16) -> SocketAddr {
    if std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).is_ok() {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
    }
}

/// The token file's temporary file, made before anything is recorded: a token that could not
/// be written is refused up front.
fn stage_token_file(file: &Path) -> Result<StagedFile, Error> {
    let refused = |why: String| {
        Error::Usage(format!(
            "cannot write the token to {}: {why}; give a FILE in a directory you can write to",
            file.display()
        ))
    };
    if file.is_dir() {
        return Err(refused("it is a directory".into()));
    }
    StagedFile::create(file, files::SECRET).map_err(|e| refused(e.to_string()))
}

/// How a grant stands, as `token list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantCondition {
    /// Its token can be redeemed.
    Redeemable,
    /// Redeemed as many times as allowed.
    UsedUp,
    /// Past its expiration time (or its state is lost): removed with the next `token issue`.
    Expired,
    /// The grant server listens on another port than its token names.
    PortMoved,
}

impl GrantCondition {
    /// The word the JSON uses too.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantCondition::Redeemable => "redeemable",
            GrantCondition::UsedUp => "used-up",
            GrantCondition::Expired => "expired",
            GrantCondition::PortMoved => "port-moved",
        }
    }
}

/// One AccessGrant as `token list` shows it (never its code).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantInfo {
    pub name: String,
    pub format: TokenFormat,
    pub redemptions_used: u32,
    pub redemptions_allowed: u32,
    /// RFC 3339; None when its state is lost.
    pub expiration_time: Option<String>,
    /// The host its token's URL names; None when the site no longer accepts links.
    pub host: Option<String>,
    /// The port its token's URL names (grants from `apply -f`: the grant server's).
    pub port: Option<u16>,
    pub state: GrantCondition,
}

/// The site's AccessGrants as they stand at `now`.
pub fn grant_infos(
    site_dir: &SiteDir,
    resources: &SiteResources,
    now: SystemTime,
) -> Result<Vec<GrantInfo>, Error> {
    let dir = site_dir.grants();
    let server_port = grant_port(resources);
    resources
        .access_grants
        .iter()
        .map(|grant| {
            let state =
                state::read(&dir, &grant.metadata.uid).map_err(Error::file("cannot read", &dir))?;
            let annotations = &grant.metadata.annotations;
            let allowed = u32::try_from(grant.spec.redemptions_allowed.max(1)).unwrap_or(u32::MAX);
            let used = state.as_ref().map_or(0, |s| s.redemptions);
            let port = annotations
                .get(GRANT_PORT_ANNOTATION)
                .and_then(|p| p.parse().ok())
                .or(server_port);
            let condition = match &state {
                None => GrantCondition::Expired,
                Some(state) if state.expired(now) => GrantCondition::Expired,
                Some(_) if used >= allowed => GrantCondition::UsedUp,
                Some(_) if port != server_port => GrantCondition::PortMoved,
                Some(_) => GrantCondition::Redeemable,
            };
            Ok(GrantInfo {
                name: grant.metadata.name.clone(),
                format: TokenFormat::of(grant),
                redemptions_used: used,
                redemptions_allowed: allowed,
                expiration_time: state.map(|s| s.expiration_time),
                host: LinkAccess::of(
                    resources,
                    annotations.get(HOST_ANNOTATION).map(String::as_str),
                )
                .ok()
                .map(|access| access.host),
                port,
                state: condition,
            })
        })
        .collect()
}

/// How many of the site's tokens can be redeemed now (at the grant server's port).
pub fn redeemable_tokens(site_dir: &SiteDir, resources: &SiteResources) -> Result<usize, Error> {
    Ok(grant_infos(site_dir, resources, SystemTime::now())?
        .iter()
        .filter(|grant| grant.state == GrantCondition::Redeemable)
        .count())
}

/// `vansite token list`: the site's AccessGrants (expired ones stay until the next issue).
pub fn list(paths: &Paths, namespace: &str) -> Result<Vec<GrantInfo>, Error> {
    let resources = paths.load_site(namespace)?;
    grant_infos(&paths.site(namespace), &resources, SystemTime::now())
}

/// What `token revoke` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRevoked {
    pub namespace: String,
    pub name: String,
    /// Redemptions made before it was revoked: the links they made stay (`link revoke`).
    pub redemptions_used: u32,
}

/// `vansite token revoke NAME`: the AccessGrant and its state go; its token is then refused as
/// Skupper refuses an unknown one (404 `No such claim`). Links it already made stay.
pub async fn revoke(
    paths: &Paths,
    namespace: &str,
    name: &str,
    progress: &dyn Fn(&str),
) -> Result<GrantRevoked, Error> {
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let site_dir = session.site_dir.clone();
    let resources = session.resources()?.clone();
    let Some(grant) = resources
        .access_grants
        .iter()
        .find(|g| g.metadata.name == name)
        .cloned()
    else {
        return Err(Error::Usage(format!(
            "site '{namespace}' has no AccessGrant '{name}': `vansite -n {namespace} token list` \
             shows its grants"
        )));
    };
    let used = state::read(&site_dir.grants(), &grant.metadata.uid)
        .ok()
        .flatten()
        .map_or(0, |s| s.redemptions);
    let kept: Vec<Resource> = resources
        .to_resources()
        .into_iter()
        .filter(|r| !matches!(r, Resource::AccessGrant(g) if g.metadata.name == name))
        .collect();
    let target = SiteResources::new(namespace, kept)?;
    progress(&format!("removing AccessGrant '{name}'"));
    session
        .apply(
            target,
            &format!("token revoke {name}"),
            GRANT_APPLY,
            progress,
        )
        .await?;
    remove_state(&site_dir, &grant)?;
    Ok(GrantRevoked {
        namespace: namespace.to_string(),
        name: name.to_string(),
        redemptions_used: used,
    })
}

/// The AccessToken for `grant` (§2.5).
fn access_token(grant: &AccessGrant, url: String, ca_pem: String) -> Resource {
    Resource::AccessToken(AccessToken {
        metadata: ObjectMeta::named(&grant.metadata.name),
        spec: AccessTokenSpec {
            url,
            code: grant.spec.code.clone(),
            ca: ca_pem,
            ..AccessTokenSpec::default()
        },
    })
}

/// The v1 token-claim Secret for `grant` (§3.2).
fn v1_claim(
    grant: &AccessGrant,
    resources: &SiteResources,
    url: String,
    state: &GrantState,
    ca_pem: &str,
) -> Secret {
    let mut claim = Secret {
        metadata: ObjectMeta::named(&grant.metadata.name),
        ..Secret::default()
    };
    claim
        .metadata
        .labels
        .insert(V1_TYPE_LABEL.into(), "token-claim".into());
    let annotations = &mut claim.metadata.annotations;
    annotations.insert("skupper.io/url".into(), url);
    annotations.insert("skupper.io/site-version".into(), SKUPPER_VERSION.into());
    annotations.insert(
        "skupper.io/generated-by".into(),
        resources.site.metadata.uid.clone(),
    );
    annotations.insert(
        "skupper.io/claim-expiration".into(),
        state.expiration_time.clone(),
    );
    claim.insert("password", grant.spec.code.as_bytes());
    claim.insert("ca.crt", ca_pem.as_bytes());
    claim
}

/// What `vansite link generate` asked for.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub namespace: String,
    /// The Link's and Secret's name; default `link-<site name>` (Skupper's).
    pub name: Option<String>,
    pub host: Option<String>,
}

/// A static Link + Secret for this site (Skupper's `link generate`): a client certificate
/// `client-<site name>` signed by a CA of this link's own, which the router trusts from now on
/// (renewed live) until `vansite link revoke`. Returns the link's name here and the bundle.
pub async fn generate_link(
    paths: &Paths,
    request: &GenerateRequest,
    progress: &dyn Fn(&str),
) -> Result<IssuedLink, Error> {
    let name = request.name.clone();
    if let Some(name) = &name {
        check_name(name)
            .map_err(|problem| Error::Usage(format!("--name: {problem} (an RFC 1123 label)")))?;
    }
    let mut session = SiteSession::open(paths, &request.namespace, progress).await?;
    let site_dir = session.site_dir.clone();
    let resources = session.resources()?.clone();
    let access = LinkAccess::of(&resources, request.host.as_deref())?;
    let name = name.unwrap_or_else(|| format!("link-{}", resources.site_name()));
    let issuers = site_dir.load_certificates()?.issuers;
    let server_ca = issuers.get(access.issuer()).ok_or_else(|| {
        Error::Usage(format!(
            "the site has no CA '{}': run `vansite -n {} init` to restore its certificates",
            access.issuer(),
            request.namespace
        ))
    })?;
    let subject = format!("client-{}", resources.site_name());
    let mut issued = grants::issue_link(
        &site_dir,
        &access,
        &server_ca.tls_crt,
        &name,
        &name,
        &subject,
    )?;
    for link in &mut issued.bundle.links {
        link.spec.cost = 1;
    }
    progress(&format!("trusting incoming link '{}'", issued.link));
    let command = format!("link generate {}", issued.link);
    if let Err(error) = session
        .apply(resources, &command, GRANT_APPLY, progress)
        .await
    {
        site_dir
            .remove_issuer(&site_dir.link_issuers(), &issued.link)
            .map_err(Error::from)?;
        return Err(error);
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grant_names_are_valid_and_unique() {
        let a = new_grant("west", None, 1, "15m", TokenFormat::V2, None, 9090);
        let b = new_grant("west", None, 1, "15m", TokenFormat::V2, None, 9090);
        assert!(a.metadata.name.starts_with("west-"));
        check_name(&a.metadata.name).unwrap();
        assert_ne!(a.metadata.name, b.metadata.name);
        assert_ne!(a.metadata.uid, b.metadata.uid);
        assert_ne!(a.spec.code, b.spec.code);
        let long = new_grant(
            &"s".repeat(63),
            None,
            1,
            "1m",
            TokenFormat::V1,
            Some("h"),
            9443,
        );
        check_name(&long.metadata.name).unwrap();
        assert_eq!(TokenFormat::of(&long), TokenFormat::V1);
        assert_eq!(long.metadata.annotations[HOST_ANNOTATION], "h");
    }

    #[test]
    fn a_token_file_that_cannot_be_written_is_refused_up_front() {
        for file in ["/nonexistent/dir/token.yaml", "/tmp"] {
            let error = stage_token_file(Path::new(file)).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("cannot write the token to {file}: ")),
                "{error}"
            );
        }
    }
}

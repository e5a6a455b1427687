//! `vansite apply -f`, `vansite delete -f` and `vansite get`: the site's resources as Skupper
//! YAML, the way `kubectl apply` and `skupper system apply` take them.
//!
//! A stream is read whole and checked before anything happens: kube-only kinds and fields are
//! refused with what a host uses instead, and one refused document refuses the stream. The
//! documents are merged into the saved resources (same kind and name: replaced), completed
//! for this host (a Site's id and management access, a Listener's router port), AccessTokens
//! are redeemed into Link + Secret (once: the same token applied again is not redeemed
//! again), and the result goes through the one apply, so the same stream applied twice
//! changes nothing and restarts nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::grants::code::new_code;
use crate::grants::duration::parse_go_duration;
use crate::grants::state::{GrantState, LockedState};
use crate::grants::{GrantError, GRANT_PORT_ANNOTATION};
use crate::input::{self, InputText};
use crate::model::{parse_documents, AccessToken, Resource, SiteResources, ROUTER_PORT_ANNOTATION};
use crate::ops::apply::{ApplyOptions, Preview, RouterChange, SiteSession};
use crate::ops::init::with_host_defaults;
use crate::ops::services::{check_port_free, RouterPorts};
use crate::plan::{bind_address, forwarded_listeners};
use crate::render::certs::LeafRenewal;
use crate::store::Paths;
use crate::tokens::redeem::redeem_access_token;

/// What `apply -f` and `delete -f` read, for messages about a file that is not it.
const EXPECTED: &str = "Skupper resources in YAML";

/// Skupper's default for an AccessGrant that names no window.
const DEFAULT_EXPIRATION_WINDOW: &str = "15m";

/// Annotations vansite keeps for itself on stored objects; a document that leaves them out
/// keeps the stored ones.
const OWN_ANNOTATION_PREFIX: &str = "vansite.io/";

/// Skupper kinds that only a Kubernetes site can honour, and what a host uses instead.
const KUBE_ONLY_KINDS: [(&str, &str); 3] = [
    (
        "AttachedConnector",
        "a host has no pods to attach to: use a Connector with host and port",
    ),
    (
        "AttachedConnectorBinding",
        "a host has no pods to attach to: use a Connector with host and port",
    ),
    (
        "SecuredAccess",
        "a host takes links through a RouterAccess (or Site linkAccess)",
    ),
];

/// Connector and Listener fields that select pods, and what a host uses instead.
const KUBE_ONLY_FIELDS: [(&str, &str, &str); 4] = [
    (
        "Connector",
        "selector",
        "give spec.host (a host name or address) instead",
    ),
    (
        "Connector",
        "includeNotReadyPods",
        "a host has no pods; leave it out",
    ),
    (
        "Connector",
        "exposePodsByName",
        "a host has no pods; leave it out",
    ),
    (
        "Listener",
        "exposePodsByName",
        "a host has no pods; leave it out",
    ),
];

/// Where documents come from: a file, every YAML file of a directory, or standard input.
#[derive(Debug, Clone)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    pub fn parse(text: &str) -> Input {
        if text == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(text))
        }
    }
}

/// What `apply -f` did to one object, kubectl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectChange {
    Created,
    Configured,
    Unchanged,
    Deleted,
    /// `delete -f` of an object the site does not have.
    NotFound,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOutcome {
    pub kind: &'static str,
    pub name: String,
    pub change: ObjectChange,
}

/// What `apply -f` or `delete -f` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestOutcome {
    pub namespace: String,
    pub objects: Vec<ObjectOutcome>,
    /// Documents read and left alone (other API groups), as `apiVersion kind/name`.
    pub skipped: Vec<String>,
    /// Absent with `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterChange>,
    /// With `--dry-run`: what the apply would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Preview>,
}

#[derive(Debug, Clone)]
pub struct ManifestRequest {
    pub namespace: String,
    pub inputs: Vec<Input>,
    pub dry_run: bool,
    pub options: ApplyOptions,
    /// The router image for a new site whose Site names none.
    pub default_router_image: String,
    /// The grant server's port when an AccessGrant is the site's first.
    pub default_grant_port: u16,
}

/// The documents of every input, checked; refusals of the whole stream are one error.
struct Documents {
    resources: Vec<Resource>,
    skipped: Vec<String>,
}

fn read_inputs(inputs: &[Input]) -> Result<Documents, Error> {
    let mut sources: Vec<InputText> = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin => sources.push(input::read_stdin(EXPECTED)?),
            Input::Path(path) if path.is_dir() => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(Error::file("cannot read", path))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| is_manifest(p))
                    .collect();
                files.sort();
                for file in files {
                    sources.push(input::read_text(&file, EXPECTED)?);
                }
            }
            Input::Path(path) => sources.push(input::read_text(path, EXPECTED)?),
        }
    }
    let mut documents = Documents {
        resources: Vec::new(),
        skipped: Vec::new(),
    };
    let mut refusals = Vec::new();
    for InputText { name: source, text } in &sources {
        refusals.extend(kube_only(text, source));
        let parsed = parse_documents(text, source)?;
        documents.resources.extend(parsed.resources);
        documents.skipped.extend(
            parsed
                .skipped
                .into_iter()
                .filter(|s| !KUBE_ONLY_KINDS.iter().any(|(kind, _)| *kind == s.kind))
                .map(|s| format!("{} {}/{}", s.api_version, s.kind, s.name)),
        );
    }
    if !refusals.is_empty() {
        return Err(Error::Usage(format!(
            "nothing was applied; a host cannot honour:\n  {}",
            refusals.join("\n  ")
        )));
    }
    let mut seen = BTreeSet::new();
    for resource in &documents.resources {
        if !seen.insert(resource.object_ref()) {
            return Err(Error::Usage(format!(
                "{} is given twice in the input; nothing was applied",
                resource.object_ref()
            )));
        }
    }
    Ok(documents)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Kube-only kinds and fields in `text`, one line each naming the document.
fn kube_only(text: &str, source: &str) -> Vec<String> {
    // Unreadable YAML is reported by parse_documents with its position.
    let Ok(documents) = serde_saphyr::from_multiple::<Value>(text) else {
        return Vec::new();
    };
    let mut refusals = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let field = |name: &str| document.get(name).and_then(Value::as_str).unwrap_or("");
        if !field("apiVersion").starts_with("skupper.io/") {
            continue;
        }
        let kind = field("kind");
        let name = document
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let place = format!("{source}, document {}: {kind}/{name}", index + 1);
        if let Some((_, instead)) = KUBE_ONLY_KINDS.iter().find(|(k, _)| *k == kind) {
            refusals.push(format!("{place}: {kind} is Kubernetes only; {instead}"));
        }
        let spec = document.get("spec");
        for (_, field, instead) in KUBE_ONLY_FIELDS.iter().filter(|(k, _, _)| *k == kind) {
            let set = spec.and_then(|s| s.get(*field)).is_some_and(|value| {
                !matches!(value, Value::Null | Value::Bool(false)) && value.as_str() != Some("")
            });
            if set {
                refusals.push(format!(
                    "{place}: spec.{field} is Kubernetes only; {instead}"
                ));
            }
        }
    }
    refusals
}

/// `vansite apply -f`.
pub async fn apply(
    paths: &Paths,
    request: ManifestRequest,
    progress: &dyn Fn(&str),
) -> Result<ManifestOutcome, Error> {
    let documents = read_inputs(&request.inputs)?;
    let namespace = &request.namespace;
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let saved = session.saved.clone();
    let stored = saved
        .as_ref()
        .map(SiteResources::to_resources)
        .unwrap_or_default();

    let (tokens, declared): (Vec<Resource>, Vec<Resource>) = documents
        .resources
        .into_iter()
        .partition(|r| matches!(r, Resource::AccessToken(_)));
    let mut objects = stored.clone();
    let mut outcomes = Vec::new();
    for document in declared {
        let document = carry_own_annotations(document, &stored);
        outcomes.push(upsert(&mut objects, document));
    }
    if !objects.iter().any(|o| matches!(o, Resource::Site(_))) {
        return Err(Error::Usage(format!(
            "namespace '{namespace}' has no site and the input has no Site: add a Site document \
             (kind: Site) or run `vansite -n {namespace} init` first"
        )));
    }
    let mut objects = with_host_defaults(
        paths,
        namespace,
        objects,
        &[],
        &request.default_router_image,
    )?;
    let mut router_ports = RouterPorts::new(paths);
    for object in objects.iter_mut() {
        if matches!(
            object,
            Resource::Listener(_) | Resource::MultiKeyListener(_)
        ) {
            let meta = object.metadata_mut();
            if meta.router_port().is_none() {
                meta.annotations.insert(
                    ROUTER_PORT_ANNOTATION.into(),
                    router_ports.take()?.to_string(),
                );
            }
        }
    }
    prepare_grants(
        &session.site_dir,
        &mut objects,
        &stored,
        request.default_grant_port,
    )?;
    // Checked before a token is spent: the stream without its tokens must be a valid site.
    let mut target = SiteResources::new(namespace, objects.clone())?;
    if let Some(saved) = &saved {
        target.check_strategies_unchanged(saved)?;
    }
    check_listener_ports(paths, saved.as_ref(), &target)?;

    for token in tokens {
        let Resource::AccessToken(token) = token else {
            unreachable!("partitioned")
        };
        outcomes.push(redeem_into(&mut objects, &token, &target, &session, progress).await?);
        target = SiteResources::new(namespace, objects.clone())?;
    }

    let outcome = ManifestOutcome {
        namespace: namespace.clone(),
        objects: outcomes,
        skipped: documents.skipped,
        router: None,
        plan: None,
    };
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: true,
        ..request.options
    };
    outcome
        .finish(
            &mut session,
            target,
            "apply -f",
            options,
            request.dry_run,
            progress,
        )
        .await
}

/// `vansite delete -f`: the named objects leave the site (a Site document: the whole site).
pub async fn delete(
    paths: &Paths,
    request: ManifestRequest,
    progress: &dyn Fn(&str),
) -> Result<ManifestOutcome, Error> {
    let documents = read_inputs(&request.inputs)?;
    let namespace = &request.namespace;
    let mut session = SiteSession::open(paths, namespace, progress).await?;
    let saved = session.resources()?.clone();
    let wanted_gone: Vec<(&'static str, String)> = documents
        .resources
        .iter()
        .map(|r| (r.kind(), r.name().to_string()))
        .collect();
    // Deleting what is not there is done already: said, not refused.
    let stored = saved.to_resources();
    let present =
        |kind: &str, name: &str| stored.iter().any(|s| s.kind() == kind && s.name() == name);
    let mut outcome = ManifestOutcome {
        namespace: namespace.clone(),
        objects: wanted_gone
            .iter()
            .map(|(kind, name)| ObjectOutcome {
                kind,
                name: name.clone(),
                change: if present(kind, name) {
                    ObjectChange::Deleted
                } else {
                    ObjectChange::NotFound
                },
            })
            .collect(),
        skipped: documents.skipped,
        router: None,
        plan: None,
    };
    if wanted_gone.iter().any(|(kind, _)| *kind == "Site") {
        if !request.dry_run {
            progress("the input has the Site: removing the whole site");
            session.delete(request.options.timeout, progress).await?;
            outcome.router = Some(RouterChange::Removed);
        }
        return Ok(outcome);
    }
    // An AccessToken's Link and Secret (named after it) go with it.
    let tokens: Vec<&str> = wanted_gone
        .iter()
        .filter(|(kind, _)| *kind == "AccessToken")
        .map(|(_, name)| name.as_str())
        .collect();
    let kept: Vec<Resource> = stored
        .into_iter()
        .filter(|r| {
            !wanted_gone
                .iter()
                .any(|(k, n)| r.kind() == *k && r.name() == n)
        })
        .filter(|r| match r {
            Resource::Link(link) => !tokens.contains(&link.spec.tls_credentials.as_str()),
            Resource::Secret(secret) => !tokens.contains(&secret.metadata.name.as_str()),
            _ => true,
        })
        .collect();
    for gone in saved.to_resources().iter().filter(|r| {
        !kept.contains(r)
            && !wanted_gone
                .iter()
                .any(|(k, n)| r.kind() == *k && r.name() == n)
    }) {
        outcome.objects.push(ObjectOutcome {
            kind: gone.kind(),
            name: gone.name().to_string(),
            change: ObjectChange::Deleted,
        });
    }
    let target = SiteResources::new(namespace, kept)?;
    let options = ApplyOptions {
        renewal: LeafRenewal::WhenDue,
        start_router: false,
        ..request.options
    };
    outcome
        .finish(
            &mut session,
            target,
            "delete -f",
            options,
            request.dry_run,
            progress,
        )
        .await
}

impl ManifestOutcome {
    /// Applies `target` (or, for a dry run, says what applying it would do) and records how.
    async fn finish(
        mut self,
        session: &mut SiteSession,
        target: SiteResources,
        command: &str,
        options: ApplyOptions,
        dry_run: bool,
        progress: &dyn Fn(&str),
    ) -> Result<ManifestOutcome, Error> {
        if dry_run {
            self.plan = Some(session.preview(&target).await?);
        } else {
            self.router = Some(
                session
                    .apply(target, command, options, progress)
                    .await?
                    .router,
            );
        }
        Ok(self)
    }
}

/// `vansite get [KIND [NAME]]`: the saved resources as one YAML stream; private keys and
/// token codes only when `show_secrets`. Host-specific details (the Site's id, a Listener's
/// router port) are left out, so the stream applies on another host as a new site.
pub fn get(
    paths: &Paths,
    namespace: &str,
    kind: Option<&str>,
    name: Option<&str>,
    show_secrets: bool,
) -> Result<Vec<Resource>, Error> {
    let saved = paths.load_site(namespace)?;
    let kind = kind.map(canonical_kind).transpose()?;
    let selected: Vec<Resource> = saved
        .to_resources()
        .into_iter()
        .filter(|r| kind.is_none_or(|k| r.kind() == k))
        .filter(|r| name.is_none_or(|n| r.name() == n))
        .map(|r| portable(r, show_secrets))
        .collect();
    if selected.is_empty() && (kind.is_some() || name.is_some()) {
        return Err(Error::Usage(format!(
            "namespace '{namespace}' has no {}{}; `vansite -n {namespace} get` lists everything",
            kind.unwrap_or("object"),
            name.map(|n| format!(" named '{n}'")).unwrap_or_default()
        )));
    }
    Ok(selected)
}

/// The kind a person typed (`listener`, `Listeners`, `Listener`), as the resource kind.
fn canonical_kind(text: &str) -> Result<&'static str, Error> {
    let wanted = text.to_ascii_lowercase();
    let wanted = wanted.strip_suffix('s').unwrap_or(&wanted);
    crate::model::KINDS
        .into_iter()
        .find(|k| k.to_ascii_lowercase() == wanted)
        .ok_or_else(|| {
            Error::Usage(format!(
                "unknown kind '{text}': one of {}",
                crate::model::KINDS.join(", ")
            ))
        })
}

/// `resource` without what belongs to this host only, and without secrets unless asked.
fn portable(mut resource: Resource, show_secrets: bool) -> Resource {
    // Ids and a listener's loopback router port belong to this host.
    let meta = resource.metadata_mut();
    meta.uid.clear();
    meta.annotations.remove(ROUTER_PORT_ANNOTATION);
    match resource {
        Resource::Secret(mut o) if !show_secrets => {
            o.data
                .retain(|key, _| !key.ends_with(".key") && key != "password");
            Resource::Secret(o)
        }
        Resource::AccessGrant(mut o) if !show_secrets => {
            o.spec.code.clear();
            Resource::AccessGrant(o)
        }
        Resource::AccessToken(mut o) if !show_secrets => {
            o.spec.code.clear();
            Resource::AccessToken(o)
        }
        other => other,
    }
}

/// A document keeps what vansite recorded on the stored object of the same kind and name
/// (its own annotations, the Site's id) unless it sets them itself.
fn carry_own_annotations(mut document: Resource, stored: &[Resource]) -> Resource {
    let Some(old) = stored
        .iter()
        .find(|s| s.kind() == document.kind() && s.name() == document.name())
    else {
        return document;
    };
    let old = old.metadata().clone();
    let meta = document.metadata_mut();
    for (key, value) in old.annotations {
        if key.starts_with(OWN_ANNOTATION_PREFIX) {
            meta.annotations.entry(key).or_insert(value);
        }
    }
    if meta.uid.is_empty() {
        meta.uid = old.uid;
    }
    document
}

/// Puts `document` in `objects` in place of the object of its kind and name.
fn upsert(objects: &mut Vec<Resource>, document: Resource) -> ObjectOutcome {
    let kind = document.kind();
    let name = document.name().to_string();
    let change = match objects
        .iter()
        .position(|o| o.kind() == kind && o.name() == name)
    {
        Some(index) if objects[index] == document => ObjectChange::Unchanged,
        Some(index) => {
            objects[index] = document;
            ObjectChange::Configured
        }
        None => {
            objects.push(document);
            ObjectChange::Created
        }
    };
    ObjectOutcome { kind, name, change }
}

/// AccessGrants of the input, made servable: a new grant gets an id, a code (unless it names
/// one), Skupper's defaults (one redemption, 15 minutes) and its state (redemptions, expiry);
/// a stored one keeps its id and code. The site gets a grant server port when it has none.
fn prepare_grants(
    site_dir: &crate::store::SiteDir,
    objects: &mut [Resource],
    stored: &[Resource],
    default_port: u16,
) -> Result<(), Error> {
    let now = std::time::SystemTime::now();
    let mut any = false;
    for object in objects.iter_mut() {
        let Resource::AccessGrant(grant) = object else {
            continue;
        };
        any = true;
        let old = stored.iter().find_map(|s| match s {
            Resource::AccessGrant(old) if old.metadata.name == grant.metadata.name => Some(old),
            _ => None,
        });
        if grant.spec.code.is_empty() {
            grant.spec.code = old.map_or_else(new_code, |old| old.spec.code.clone());
        }
        if grant.spec.redemptions_allowed == 0 {
            grant.spec.redemptions_allowed = 1;
        }
        if grant.spec.expiration_window.is_empty() {
            grant.spec.expiration_window = DEFAULT_EXPIRATION_WINDOW.into();
        }
        if old.is_none() {
            if grant.metadata.uid.is_empty() {
                grant.metadata.uid = uuid::Uuid::new_v4().to_string();
            }
            let window = parse_go_duration(&grant.spec.expiration_window).map_err(|problem| {
                GrantError::BadDuration {
                    text: grant.spec.expiration_window.clone(),
                    problem,
                }
            })?;
            let dir = site_dir.grants();
            LockedState::lock(&dir, &grant.metadata.uid)
                .and_then(|mut state| state.save(GrantState::new(now, window)))
                .map_err(Error::file("cannot write the grant's state in", &dir))?;
        }
    }
    if !any {
        return Ok(());
    }
    for object in objects.iter_mut() {
        if let Resource::Site(site) = object {
            if !site.spec.link_access_enabled() {
                return Err(Error::Usage(format!(
                    "an AccessGrant needs a site that accepts links: set spec.linkAccess: \
                     default on Site {}",
                    site.metadata.name
                )));
            }
            site.metadata
                .annotations
                .entry(GRANT_PORT_ANNOTATION.into())
                .or_insert_with(|| default_port.to_string());
        }
    }
    Ok(())
}

/// A Listener whose port is new or moved must find it free (another listener of this user's
/// sites, or another program, may hold it).
fn check_listener_ports(
    paths: &Paths,
    saved: Option<&SiteResources>,
    target: &SiteResources,
) -> Result<(), Error> {
    let before = match saved {
        Some(saved) => forwarded_listeners(saved)?,
        None => Vec::new(),
    };
    for listener in forwarded_listeners(target)? {
        let unchanged = before.iter().any(|old| {
            old.name == listener.name && old.port == listener.port && old.host == listener.host
        });
        if !unchanged {
            check_port_free(paths, bind_address(&listener.host, listener.port)?)?;
        }
    }
    Ok(())
}

/// An AccessToken of the input: redeemed into a Link and Secret named after it, unless the
/// site already holds this same token (then its Link and Secret stay as they are).
async fn redeem_into(
    objects: &mut Vec<Resource>,
    token: &AccessToken,
    site: &SiteResources,
    session: &SiteSession,
    progress: &dyn Fn(&str),
) -> Result<ObjectOutcome, Error> {
    let name = token.metadata.name.clone();
    let already = site
        .access_tokens
        .iter()
        .any(|t| t.metadata.name == name && t.spec == token.spec);
    if already {
        return Ok(ObjectOutcome {
            kind: "AccessToken",
            name,
            change: ObjectChange::Unchanged,
        });
    }
    let kept = crate::ops::link::Redemption::of(&session.site_dir, &token.spec.url);
    let redeem = async { Ok(redeem_access_token(token, &name, site.site_name()).await?) };
    let bundle = kept
        .bundle(&format!("AccessToken {name}"), redeem, progress)
        .await?;
    let mut bundle = bundle.renamed(&name);
    if token.spec.link_cost > 0 {
        bundle = bundle.with_cost(token.spec.link_cost);
    }
    for object in bundle
        .links
        .into_iter()
        .map(Resource::Link)
        .chain([Resource::Secret(bundle.secret)])
    {
        upsert(objects, object);
    }
    let mut recorded = token.clone();
    recorded
        .metadata
        .annotations
        .insert(format!("{OWN_ANNOTATION_PREFIX}redeemed"), "true".into());
    let change = upsert(objects, Resource::AccessToken(recorded)).change;
    Ok(ObjectOutcome {
        kind: "AccessToken",
        name,
        change,
    })
}

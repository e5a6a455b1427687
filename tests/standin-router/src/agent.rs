//! The management agent: applies configuration entities at start-up and management requests
//! (QUERY / READ / CREATE / DELETE, and UPDATE of sslProfile and connection) at run time, with
//! the real router's status codes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::config::{self, Entity};
use crate::links;
use crate::management::{AgentSender, Request, Response};
use crate::python;
use crate::router::{Configured, ForceClose, Router, TcpListenerState};
use crate::schema::{Operation, Schema};
use crate::tcp;
use crate::tls::{self, Side, TlsConfig, Usage};

const PREFIX: &str = "io.skupper.router.";

/// Why a CREATE or DELETE is refused, with the real router's status: what its Python agent
/// checks is a 400 Bad Request; what the C code refuses raises `CError` in the agent, which
/// answers 500 with the error's name and text.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    BadRequest(String),
    /// A ValidationError from the Python agent: 400 with its text as the description, as
    /// `Agent.receive` answers (`BadRequestStatus(str(e))`).
    Invalid(String),
    /// The `qd_error` message, e.g. `Value: Listener for new address does not exist x`.
    CError(String),
}

impl Refusal {
    fn response(&self) -> Response {
        match self {
            Refusal::BadRequest(message) => {
                answer(400, &format!("Bad Request: {message}"), Value::Null)
            }
            Refusal::Invalid(message) => answer(400, message, Value::Null),
            Refusal::CError(message) => answer(500, &format!("CError: {message}"), Value::Null),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadRequest(message) | Refusal::Invalid(message) => f.write_str(message),
            Refusal::CError(message) => write!(f, "CError: {message}"),
        }
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal::BadRequest(message)
    }
}

/// Creates one entity and starts what it runs. Used for the configuration file and for
/// management CREATE alike, so both behave the same.
pub async fn create(
    router: &Arc<Router>,
    agent: &AgentSender,
    mut entity: Entity,
) -> Result<(), Refusal> {
    if entity.name().is_empty() {
        // Nameless entities (router, address, log, site) get one, as the real agent gives them.
        let generated = format!("{}/{}", entity.entity_type, router.next_id());
        entity
            .attributes
            .insert("name".into(), Value::String(generated));
    }
    let key = (entity.entity_type.clone(), entity.name().to_string());
    if let Some(message) = clash(router, &entity) {
        tracing::error!("Error performing CREATE: {message}");
        return Err(Refusal::Invalid(message));
    }
    // An sslProfile's files are not read when it is created (`qd_tls_configure_ssl_profile`
    // only records the paths): a tcpListener, tcpConnector, listener or connector that uses it
    // reads them.
    let problem = match entity.entity_type.as_str() {
        "tcpListener" => config::tcp_listener_problem(&entity),
        "listenerAddress" => {
            let state = router.state();
            let listener = state
                .configured
                .get(&(
                    "tcpListener".to_string(),
                    entity.str("listener").to_string(),
                ))
                .map(|c| &c.entity);
            config::listener_address_problem(&entity, listener)
        }
        _ => None,
    };
    if let Some(message) = problem {
        tracing::error!("cannot create {} '{}': {message}", key.0, key.1);
        return Err(Refusal::CError(message));
    }
    if entity.entity_type == "sslProfile" {
        tls::configure_profile(router, &entity).map_err(|message| {
            tracing::error!("Unable to create sslProfile '{}': {message}", key.1);
            Refusal::CError(message)
        })?;
    }
    let tcp_tls = tcp_tls(router, &entity).inspect_err(|message| {
        tracing::error!("{} {} TLS configuration failed: {message}", key.0, key.1);
    });
    let tcp_tls = tcp_tls.map_err(Refusal::CError)?;
    let started = match entity.entity_type.as_str() {
        "listener" => Some(links::start_listener(router, &entity, agent.clone()).await?),
        "connector" => Some(links::start_connector(router, &entity)?),
        _ => None,
    };
    let (task, tls) = match started {
        Some(started) => (Some(started.task), started.tls),
        None => (None, None),
    };
    router.state().configured.insert(
        key,
        Configured {
            entity: entity.clone(),
            task,
            tls,
            status: None,
        },
    );
    if entity.entity_type == "site" {
        site_record(router, &entity);
    }
    match entity.entity_type.as_str() {
        "tcpListener" => tcp::add_listener(router, &entity, tcp_tls),
        "tcpConnector" => tcp::add_connector(router, &entity, tcp_tls),
        "listenerAddress" => tcp::add_address(router, &entity),
        _ => {}
    }
    Ok(())
}

/// The agent's `validate_add` before it creates anything (`agent.py` `Agent._create`): the
/// ValidationError text if a name is taken by an entity of any type (names are unique across
/// all types), printed as the agent prints its entities.
fn clash(router: &Router, entity: &Entity) -> Option<String> {
    let entity_type = Schema::get().entity_type(&entity.entity_type).ok()?;
    let (clash, other_type, other_name) = {
        let state = router.state();
        state.configured.iter().find_map(|((t, name), c)| {
            entity_type
                .clash(&entity.attributes, t, &c.entity.attributes)
                .map(|clash| (clash, t.clone(), name.clone()))
        })?
    };
    let existing = rows(router, &other_type)
        .into_iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(&other_name))
        .unwrap_or_default();
    Some(clash.message(
        &entity_type.long_name(),
        &python::adapter(&entity.entity_type, &row_of(entity, None)),
        &python::adapter(&other_type, &existing),
    ))
}

/// The SITE record of a `site` entity (`qd_dispatch_configure_site`): identity
/// `SKUPPER_SITE_ID` if set, and the ROUTER record's parent from then on.
fn site_record(router: &Router, entity: &Entity) {
    use crate::vanflow::{self, Attr};
    let mut attrs = Vec::new();
    for (key, attribute) in [
        (vanflow::NAME, "name"),
        (vanflow::BUILD_VERSION, "version"),
        (vanflow::LOCATION, "location"),
        (vanflow::PROVIDER, "provider"),
        (vanflow::PLATFORM, "platform"),
        (vanflow::NAMESPACE, "namespace"),
    ] {
        let value = entity.str(attribute);
        // A nameless site got a generated name, which the router never saw.
        let generated = attribute == "name" && value.starts_with("site/");
        if !value.is_empty() && !generated {
            attrs.push((key, Attr::Str(value.to_string())));
        }
    }
    let custom = std::env::var("SKUPPER_SITE_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let identity = router.vanflow.start(vanflow::SITE, custom, None, attrs);
    let router_id = router.vanflow.id.clone();
    router
        .vanflow
        .set(&router_id, vanflow::PARENT, Attr::Str(identity));
}

/// Sets up the TLS of a tcpListener or tcpConnector that names an sslProfile, reading the
/// profile's files now, as the real router's `qd_dispatch_configure_tcp_listener` /
/// `_connector` call `qd_tls_config` (`src/adaptors/tcp/tcp_adaptor.c`, `src/tls/tls.c`).
/// Err is the `qd_error` text the real router answers with (`Not found: sslProfile 'x' not
/// found`, or a `Configuration:` one).
fn tcp_tls(router: &Router, entity: &Entity) -> Result<Option<Arc<TlsConfig>>, String> {
    let side = match entity.entity_type.as_str() {
        "tcpListener" => Side::Server {
            authenticate_peer: entity.bool("authenticatePeer"),
        },
        "tcpConnector" => Side::Client {
            host: entity.str("host").to_string(),
            verify_hostname: entity.bool("verifyHostname"),
        },
        _ => return Ok(None),
    };
    match entity.str("sslProfile") {
        "" => Ok(None),
        profile => tls::config_for(router, profile, Usage { raw: true, side }).map(Some),
    }
}

/// Deletes one entity; Ok(false) when there is none of that name.
fn delete(router: &Arc<Router>, entity_type: &str, name: &str) -> Result<bool, Refusal> {
    let removed = {
        let mut state = router.state();
        // The real router keeps a multi-address tcpListener while it has addresses
        // (`qd_adaptor_listener_close`).
        let has_addresses = entity_type == "tcpListener"
            && state
                .tcp_listeners
                .get(name)
                .is_some_and(|l| !l.addresses.is_empty());
        if has_addresses
            && state
                .configured
                .contains_key(&(entity_type.into(), name.into()))
        {
            let message =
                format!("Value: listenerAddress entities exist for  multi-address listener {name}");
            tracing::error!("cannot delete tcpListener '{name}': {message}");
            return Err(Refusal::CError(message));
        }
        state
            .configured
            .remove(&(entity_type.to_string(), name.to_string()))
    };
    let Some(configured) = removed else {
        return Ok(false);
    };
    if let Some(task) = configured.task {
        task.abort();
    }
    // A listener or connector no longer follows its sslProfile's updates.
    if let Some(tls) = &configured.tls {
        tls.clear_update();
    }
    if entity_type == "sslProfile" {
        tls::delete_profile(router, name);
    }
    // Its vanflow record ends (LISTENER, CONNECTOR, LINK, ROUTER_ACCESS).
    if let Some(identity) = router.vanflow.unbind(&format!("{entity_type}/{name}")) {
        router.vanflow.end(&identity);
    }
    // A deleted connector's link goes down with it.
    if entity_type == "connector" {
        let host = format!(
            "{}:{}",
            configured.entity.str("host"),
            configured.entity.str("port")
        );
        let mut state = router.state();
        state
            .peers
            .retain(|_, p| !(p.dir == "out" && p.host == host));
    }
    if entity_type == "tcpListener" {
        tcp::remove_listener(router, name);
    }
    if entity_type == "tcpConnector" {
        tcp::remove_connector(router, name);
    }
    if entity_type == "listenerAddress" {
        tcp::remove_address(router, &configured.entity);
    }
    router.topology_changed();
    Ok(true)
}

/// Serves management requests until every sender is gone.
pub async fn run(
    router: Arc<Router>,
    agent: AgentSender,
    mut requests: mpsc::Receiver<(Request, tokio::sync::oneshot::Sender<Response>)>,
) {
    while let Some((request, reply)) = requests.recv().await {
        let response = handle(&router, &agent, request).await;
        let _ = reply.send(response);
    }
}

fn answer(status_code: u16, description: &str, body: Value) -> Response {
    Response {
        status_code,
        status_description: description.to_string(),
        body,
    }
}

async fn handle(router: &Arc<Router>, agent: &AgentSender, request: Request) -> Response {
    let entity_type = match Schema::get().entity_type(&request.entity_type) {
        Ok(t) => t,
        Err(e) => return answer(400, &format!("Bad Request: {e}"), Value::Null),
    };
    let short = entity_type.name.clone();
    let name = request
        .name
        .clone()
        .or_else(|| request.identity.clone())
        .unwrap_or_default();
    match request.operation.as_str() {
        "QUERY" => {
            let wanted: Vec<String> = request.body["attributeNames"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let rows = rows(router, &short);
            let names: Vec<String> = if wanted.is_empty() {
                let mut all: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
                all.sort();
                all.dedup();
                all
            } else {
                wanted
            };
            let results: Vec<Value> = rows
                .iter()
                .map(|row| {
                    Value::Array(
                        names
                            .iter()
                            .map(|n| row.get(n).cloned().unwrap_or(Value::Null))
                            .collect(),
                    )
                })
                .collect();
            answer(
                200,
                "OK",
                json!({"attributeNames": names, "results": results}),
            )
        }
        "READ" => match rows(router, &short)
            .into_iter()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(&name))
        {
            Some(row) => answer(200, "OK", Value::Object(row)),
            None => answer(
                404,
                &format!("Not Found: No entity with name='{name}'"),
                Value::Null,
            ),
        },
        "CREATE" if entity_type.allows("CREATE") => {
            let mut attributes = request.body.as_object().cloned().unwrap_or_default();
            if !name.is_empty() {
                attributes.insert("name".into(), Value::String(name.clone()));
            }
            let validated = match entity_type.validate(&attributes, Operation::Create) {
                Ok(v) => v,
                Err(e) => return answer(400, &format!("Bad Request: {e}"), Value::Null),
            };
            let entity = Entity {
                entity_type: short.clone(),
                attributes: validated,
            };
            match create(router, agent, entity.clone()).await {
                Ok(()) => answer(201, "Created", Value::Object(row_of(&entity, None))),
                Err(refusal) => refusal.response(),
            }
        }
        "DELETE" if entity_type.allows("DELETE") => match delete(router, &short, &name) {
            Ok(true) => answer(204, "No Content", Value::Null),
            Ok(false) => answer(
                404,
                &format!("Not Found: No entity with name='{name}'"),
                Value::Null,
            ),
            Err(refusal) => refusal.response(),
        },
        // The router's C agent serves `connection` itself (`agent_connection.c`).
        "UPDATE" if short == "connection" => update_connection(router, &request),
        "UPDATE" if short == "sslProfile" => update_ssl_profile(router, &name, &request.body),
        "UPDATE" if entity_type.allows("UPDATE") => answer(
            501,
            &format!("Not Implemented: the stand-in does not implement UPDATE of {short}"),
            Value::Null,
        ),
        // The Python agent's `EntityType.allowed`: NotImplementedStatus, with the type's
        // operations (its own, then its bases').
        "CREATE" | "DELETE" | "UPDATE" => answer(
            501,
            &format!(
                "Operation '{}' not implemented for '{PREFIX}{short}' [{}]",
                request.operation,
                entity_type
                    .all_operations()
                    .iter()
                    .map(|o| format!("'{o}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Null,
        ),
        other => answer(501, &format!("Not Implemented: {other}"), Value::Null),
    }
}

/// sslProfile UPDATE as the Python agent does it (`EntityAdapter.update`): attributes that
/// cannot be updated may only repeat their value; the rest are merged into the entity, which
/// keeps the merged attributes from then on (they are set before the C code runs, so even an
/// update the C code refuses shows in READ and QUERY, and the next update merges into it);
/// then `qd_tls_update_ssl_profile` ([`tls::update_profile`]). The C code's refusal sets
/// `qd_error`, which the agent's ctypes check raises as a CError: 500 `CError: Configuration:
/// ...` (the agent's own "sslProfile configuration update failed" is never reached). Success
/// answers 200 with every attribute of the entity.
fn update_ssl_profile(router: &Arc<Router>, name: &str, body: &Value) -> Response {
    let key = ("sslProfile".to_string(), name.to_string());
    let Some(old) = router
        .state()
        .configured
        .get(&key)
        .map(|c| c.entity.clone())
    else {
        return answer(
            404,
            &format!("Not Found: No entity with name='{name}'"),
            Value::Null,
        );
    };
    let body = body.as_object().cloned().unwrap_or_default();
    let entity_type = Schema::get()
        .entity_type("sslProfile")
        .expect("sslProfile is in the schema");
    let mut changes = Map::new();
    for (attribute, value) in body {
        let unchanged = old.attributes.get(&attribute) == Some(&value)
            || (attribute == "type" && value.as_str().is_some_and(|t| t.ends_with("sslProfile")))
            || attribute == "identity" && value.as_str() == Some(name);
        if unchanged {
            continue;
        }
        if !entity_type.updatable(&attribute) {
            let problem = if entity_type.has(&attribute) {
                format!("Cannot update attribute '{attribute}' in UPDATE")
            } else {
                format!("Unknown attribute '{attribute}' for '{PREFIX}sslProfile'")
            };
            return answer(400, &problem, Value::Null);
        }
        changes.insert(attribute, value);
    }
    let changes = match entity_type.validate(&changes, Operation::Update) {
        Ok(changes) => changes,
        Err(e) => return answer(400, &format!("Bad Request: {e}"), Value::Null),
    };
    let mut merged = old;
    merged.attributes.extend(changes);
    if let Some(configured) = router.state().configured.get_mut(&key) {
        configured.entity = merged.clone();
    }
    match tls::update_profile(router, &merged) {
        Ok(()) => answer(200, "OK", Value::Object(row_of(&merged, None))),
        Err(message) => Refusal::CError(message).response(),
    }
}

/// `connection` UPDATE as the C agent does it (`qdra_connection_update_CT`): the connection is
/// named by the `identity` property; the body must set `adminStatus` or
/// `enableProtocolTrace`. `adminStatus` `deleted` closes a normal connection (200 and its
/// row) and is forbidden (403) for inter-router and edge ones. Anything else amiss (no
/// identity, an unknown one, another value) is a 400 with the plain "Bad Request".
fn update_connection(router: &Arc<Router>, request: &Request) -> Response {
    let bad = || answer(400, "Bad Request", Value::Null);
    let (Some(identity), Some(body)) = (request.identity.as_deref(), request.body.as_object())
    else {
        return bad();
    };
    let admin = body.get("adminStatus");
    let trace = body.get("enableProtocolTrace");
    if admin.is_none() && trace.is_none() {
        return bad();
    }
    let Some(mut row) = router.connection(identity) else {
        return bad();
    };
    if let Some(admin) = admin {
        match admin.as_str() {
            Some("deleted") => match router.force_close(identity) {
                ForceClose::Closed(closed) => row = closed,
                ForceClose::Forbidden => {
                    return answer(
                        403,
                        "You are not allowed to perform this operation.",
                        Value::Null,
                    )
                }
                ForceClose::NotFound => return bad(),
            },
            Some("enabled") => {}
            _ => return bad(),
        }
    }
    if let Some(trace) = trace.and_then(Value::as_bool) {
        row.insert("enableProtocolTrace".into(), Value::Bool(trace));
    }
    answer(200, "OK", Value::Object(row))
}

fn row_of(entity: &Entity, status: Option<&(String, String)>) -> Map<String, Value> {
    let mut row = entity.attributes.clone();
    row.insert(
        "type".into(),
        Value::String(format!("{PREFIX}{}", entity.entity_type)),
    );
    row.insert("identity".into(), Value::String(entity.name().to_string()));
    if let Some((status, message)) = status {
        row.insert("connectionStatus".into(), Value::String(status.clone()));
        row.insert("connectionMsg".into(), Value::String(message.clone()));
    }
    row
}

fn rows(router: &Router, short: &str) -> Vec<Map<String, Value>> {
    match short {
        "connection" => router.connections(),
        "router.node" => router.nodes(),
        "router.address" => router.addresses(),
        _ => {
            let state = router.state();
            state
                .configured
                .iter()
                .filter(|((t, _), _)| t == short)
                .map(|((_, name), c)| {
                    let mut row = row_of(&c.entity, c.status.as_ref());
                    if let Some(listener) = state
                        .tcp_listeners
                        .get(name)
                        .filter(|_| short == "tcpListener")
                    {
                        add_listener_status(&mut row, listener);
                    }
                    if let Some(connector) = state
                        .tcp_connectors
                        .get(name)
                        .filter(|_| short == "tcpConnector")
                    {
                        add_counters(&mut row, &connector.opened, &connector.closed);
                    }
                    if short == "listenerAddress" {
                        let opened = state
                            .tcp_listeners
                            .get(c.entity.str("listener"))
                            .and_then(|l| l.addresses.iter().find(|a| &a.name == name))
                            .map_or(0, |a| a.opened.load(Ordering::Relaxed));
                        row.insert("connectionsOpened".into(), Value::from(opened));
                    }
                    row
                })
                .collect()
        }
    }
}

/// A tcpListener's run-time attributes, as the real router reports them: `operStatus` is `up`
/// only while it accepts (a tcpConnector of its address is reachable), `connectionMsg` why
/// it could not listen (else empty), and the counters.
fn add_listener_status(row: &mut Map<String, Value>, listener: &TcpListenerState) {
    let oper_status = if listener.accepting.is_some() {
        "up"
    } else {
        "down"
    };
    row.insert("operStatus".into(), Value::String(oper_status.into()));
    let message = listener.failed.clone().unwrap_or_default();
    row.insert("connectionMsg".into(), Value::String(message));
    add_counters(row, &listener.opened, &listener.closed);
}

/// A tcpListener's or tcpConnector's `connectionsOpened` / `connectionsClosed`.
fn add_counters(row: &mut Map<String, Value>, opened: &AtomicU64, closed: &AtomicU64) {
    for (key, counter) in [("connectionsOpened", opened), ("connectionsClosed", closed)] {
        row.insert(key.into(), Value::from(counter.load(Ordering::Relaxed)));
    }
}

//! AMQP 1.0 management endpoint of the stand-in router (`$management`, as skrouterd and skmanage speak it).
//!
//! Contract with the rest of the stand-in (do not change without updating main.rs):
//! the listener code terminates TLS (client certificate required) and calls
//! `serve_connection(tls_stream, agent)`; each decoded request is sent on `agent`
//! with a oneshot for the response.
//!
//! What the connection handling mirrors from skrouterd's `normal` listener:
//! - SASL with EXTERNAL as the only mechanism (the TLS layer has already checked the client
//!   certificate); ANONYMOUS, PLAIN and the rest are refused with outcome `auth`;
//! - any number of sessions; links whose target is `$management` (also `_local/$management`,
//!   `_topo/0/<id>/$management`, or an anonymous target with `to` = `$management`) carry requests;
//! - reply links: a receiver attached with a dynamic source gets a fresh
//!   `amqp:/_topo/0/skrouterd-standin/temp.<n>` address; one attached with a fixed source address
//!   gets replies whose `reply_to` is that address (replies are routed within the connection);
//! - the response has `to` = request `reply_to`, `correlation_id` = request `correlation_id`
//!   (what both of skrouterd's agents echo), falling back to the request `message_id`;
//!   application-properties `statusCode` (int) and `statusDescription` (string); a request
//!   without `reply_to` is dropped, as the router does.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAcceptor,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::{DeliveryInfo, Sendable};
use fe2o3_amqp::types::definitions::{self, AmqpError, ConnectionError};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Array, Binary, OrderedMap, SimpleValue, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use fe2o3_amqp::{Receiver, Sender};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
// The same AMQP ↔ JSON mapping as vansite's management client: one definition of the wire values.
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use vansite::router::management::{amqp_to_json, json_to_amqp};

use crate::router::Router;
use crate::vanflow::wire::{self, RawFrames, Rewrite};

/// One management request, decoded from the AMQP message's application-properties and body.
#[derive(Debug, Clone)]
pub struct Request {
    /// QUERY, READ, CREATE, UPDATE or DELETE.
    pub operation: String,
    /// The `type` property: a full name (`io.skupper.router.tcpListener`) or a short one.
    pub entity_type: String,
    pub name: Option<String>,
    pub identity: Option<String>,
    /// CREATE/UPDATE: the attribute map. QUERY: `{"attributeNames": [...]}`. Otherwise null.
    pub body: serde_json::Value,
}

/// The answer: statusCode / statusDescription application-properties and a body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status_code: u16,
    pub status_description: String,
    /// QUERY: `{"attributeNames": [...], "results": [[...], ...]}`; CREATE/READ: the entity's attribute map; DELETE: null.
    pub body: serde_json::Value,
}

pub type AgentSender = mpsc::Sender<(Request, oneshot::Sender<Response>)>;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// SASL or AMQP open failed (wrong mechanism, not AMQP, peer went away early).
    #[error("AMQP connection setup failed: {0}")]
    Open(#[from] fe2o3_amqp::connection::OpenError),
}

/// The management node's own type; requests with it address the node, not an entity.
const MANAGEMENT_NODE_TYPE: &str = "org.amqp.management";

/// The router's idle timeout on listeners (skrouterd's default `idleTimeoutSeconds: 16`).
const IDLE_TIMEOUT_MS: u32 = 16_000;

/// How long the router waits for the peer's answer when it closes a connection.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes dynamic reply addresses unique within the process.
static DYNAMIC_SEQ: AtomicU64 = AtomicU64::new(1);

type Reply = Message<Body<Value>>;

/// Reply links of one connection, by address.
#[derive(Default)]
struct Routes {
    by_address: HashMap<String, Vec<(u64, mpsc::Sender<Reply>)>>,
}

type SharedRoutes = Arc<Mutex<Routes>>;

impl Routes {
    fn add(&mut self, address: &str, id: u64, tx: mpsc::Sender<Reply>) {
        self.by_address
            .entry(normalize_address(address).to_string())
            .or_default()
            .push((id, tx));
    }

    fn remove(&mut self, address: &str, id: u64) {
        let key = normalize_address(address);
        if let Some(list) = self.by_address.get_mut(key) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                self.by_address.remove(key);
            }
        }
    }

    fn lookup(&self, address: &str) -> Option<mpsc::Sender<Reply>> {
        self.by_address
            .get(normalize_address(address))
            .and_then(|l| l.iter().find(|(_, tx)| !tx.is_closed()))
            .map(|(_, tx)| tx.clone())
    }
}

/// `amqp:/x`, `/x` and `x` name the same address.
fn normalize_address(a: &str) -> &str {
    let a = a.strip_prefix("amqp:").unwrap_or(a);
    a.trim_start_matches('/')
}

fn is_management_address(a: &str) -> bool {
    let a = normalize_address(a);
    a == "$management" || a.ends_with("/$management")
}

/// SASL acceptor offering only EXTERNAL, like a skrouterd listener with
/// `saslMechanisms: EXTERNAL, authenticatePeer: true`. The identity is the TLS client
/// certificate, which the TLS acceptor has already verified.
#[derive(Debug, Clone, Default)]
pub struct SaslExternalAcceptor;

impl SaslAcceptor for SaslExternalAcceptor {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![Symbol::from("EXTERNAL")])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let code = if init.mechanism.0 == "EXTERNAL" {
            debug!("SASL EXTERNAL accepted");
            SaslCode::Ok
        } else {
            warn!(mechanism = %init.mechanism.0, "SASL mechanism refused (only EXTERNAL is offered)");
            SaslCode::Auth
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        // EXTERNAL has no challenge, so a response is a protocol error.
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Sys,
            additional_data: None,
        })
    }
}

/// Runs one AMQP connection on an accepted TLS stream until the peer closes it or goes away.
/// All tasks it starts end with it.
pub async fn serve_connection<S>(tls_stream: S, agent: AgentSender) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Debug + 'static,
{
    serve_connection_with(tls_stream, agent, None).await
}

/// [`serve_connection`] for a router's `normal` listener: with `router`, collectors' links to
/// the vanflow addresses are served too (`mc/sfe.…` receivers, FLUSH senders to `sfe.<id>`).
pub async fn serve_connection_with<S>(
    tls_stream: S,
    agent: AgentSender,
    router: Option<Arc<Router>>,
) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Debug + 'static,
{
    let (_keep, close) = watch::channel(None);
    serve_connection_until(tls_stream, agent, router, close).await
}

/// [`serve_connection_with`] until a value comes on `close`: the router then closes the
/// connection, with `amqp:connection:forced` for `true` (a management force-close, as
/// `qdr_close_connection_CT` sets it) and without an error for `false` (an expired TLS
/// ordinal: `pn_connection_close`).
pub async fn serve_connection_until<S>(
    tls_stream: S,
    agent: AgentSender,
    router: Option<Arc<Router>>,
    mut close: watch::Receiver<Option<bool>>,
) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Debug + 'static,
{
    // Vanflow messages go out as placeholders that this wrapper turns into the router's bytes.
    let tls_stream = RawFrames::new(tls_stream, Rewrite::None, Rewrite::UnwrapPlaceholders);
    let acceptor = ConnectionAcceptor::builder()
        .container_id("skrouterd-standin")
        .idle_time_out(IDLE_TIMEOUT_MS)
        .sasl_acceptor(SaslExternalAcceptor)
        .build();
    let mut connection = acceptor.accept(tls_stream).await.inspect_err(|e| {
        info!(error = %e, "management connection refused during SASL/open");
    })?;
    debug!("management connection open");

    let routes: SharedRoutes = Arc::default();
    let session_acceptor = SessionAcceptor::new();
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            incoming = connection.next_incoming_session() => {
                let Some(incoming) = incoming else { break };
                match session_acceptor.accept_incoming_session(incoming, &mut connection).await {
                    Ok(session) => {
                        sessions.spawn(serve_session(session, agent.clone(), routes.clone(), router.clone()));
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot accept session");
                        break;
                    }
                }
            }
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        warn!(error = %e, "management session task panicked");
                    }
                }
            }
            forced = crate::links::closed_by(&mut close) => {
                let closing = async {
                    if forced {
                        let error = definitions::Error::new(
                            ConnectionError::ConnectionForced,
                            Some("Connection forced-closed by management request".to_string()),
                            None,
                        );
                        connection.close_with_error(error).await
                    } else {
                        connection.close().await
                    }
                };
                if let Err(e) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await.unwrap_or(Ok(())) {
                    debug!(error = %e, "management connection closed by the router");
                }
                sessions.shutdown().await;
                return Ok(());
            }
        }
    }
    // Connection engine stopped (peer closed or the transport failed): stop what is left.
    sessions.shutdown().await;
    match connection.on_close().await {
        Ok(()) => debug!("management connection closed"),
        Err(e) => debug!(error = %e, "management connection ended"),
    }
    Ok(())
}

async fn serve_session(
    mut session: ListenerSessionHandle,
    agent: AgentSender,
    routes: SharedRoutes,
    router: Option<Arc<Router>>,
) {
    let mut links = JoinSet::new();
    loop {
        tokio::select! {
            attach = session.next_incoming_attach() => {
                let Some(attach) = attach else { break };
                accept_link(attach, &mut session, &agent, &routes, router.as_ref(), &mut links).await;
            }
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    links.shutdown().await;
    let _ = session.on_end().await;
    debug!("management session ended");
}

async fn accept_link(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    agent: &AgentSender,
    routes: &SharedRoutes,
    router: Option<&Arc<Router>>,
    links: &mut JoinSet<()>,
) {
    let link_name = attach.name.clone();
    // Pre-assign the address in case the peer asks for a dynamic source (a reply link).
    let dynamic_address = format!(
        "amqp:/_topo/0/skrouterd-standin/temp.{}",
        DYNAMIC_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let assigned = dynamic_address.clone();
    let acceptor = LinkAcceptor::builder()
        .on_dynamic_source(move |mut source: Source| {
            source.address = Some(assigned.clone());
            Some(source)
        })
        .build();
    match acceptor.accept_incoming_attach(attach, session).await {
        Ok(LinkEndpoint::Receiver(receiver)) => {
            let target = receiver
                .target()
                .as_ref()
                .map(|t| t.address.clone())
                .unwrap_or_default();
            match target {
                Some(t) if router.is_some() && normalize_address(&t).starts_with("sfe.") => {
                    let router = Arc::clone(router.expect("checked"));
                    debug!(link = %link_name, target = %t, "vanflow direct link attached");
                    links.spawn(serve_vanflow_requests(
                        receiver,
                        normalize_address(&t).to_string(),
                        router,
                    ));
                }
                Some(t) if !is_management_address(&t) => {
                    info!(link = %link_name, target = %t, "refusing link to a non-management address");
                    let error = definitions::Error::new(
                        AmqpError::NotFound,
                        Some(format!("the stand-in only serves $management, not {t}")),
                        None,
                    );
                    let _ = receiver.close_with_error(error).await;
                }
                _ => {
                    debug!(link = %link_name, target = ?target, "request link attached");
                    links.spawn(serve_requests(
                        receiver,
                        target.is_none(),
                        agent.clone(),
                        routes.clone(),
                        router.cloned(),
                    ));
                }
            }
        }
        Ok(LinkEndpoint::Sender(sender)) => {
            let address = sender.source().as_ref().and_then(|s| s.address.clone());
            match address {
                Some(address)
                    if router.is_some() && normalize_address(&address).starts_with("mc/sfe.") =>
                {
                    let router = Arc::clone(router.expect("checked"));
                    debug!(link = %link_name, %address, "vanflow subscription attached");
                    links.spawn(serve_vanflow(
                        sender,
                        normalize_address(&address).to_string(),
                        router,
                    ));
                }
                Some(address) => {
                    debug!(link = %link_name, %address, "reply link attached");
                    links.spawn(serve_replies(sender, address, routes.clone()));
                }
                None => {
                    info!(link = %link_name, "refusing a receiving link without source address");
                    let error = definitions::Error::new(
                        AmqpError::InvalidField,
                        Some("source address required (or dynamic: true)".to_string()),
                        None,
                    );
                    let _ = sender.close_with_error(error).await;
                }
            }
        }
        Err(e) => warn!(link = %link_name, error = %e, "cannot accept link"),
    }
}

/// A collector's receiving link on a vanflow multicast address: every vanflow message for it
/// (this router's and, through the links, other routers'), sent pre-settled.
async fn serve_vanflow(mut sender: Sender, address: String, router: Arc<Router>) {
    let (id, mut rx) = router.vanflow.subscribe(&address);
    router.topology_changed();
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { break };
                let body = Binary::from(wire::placeholder(&message));
                let sendable = Sendable::builder()
                    .message(Message::builder().value(body).build())
                    .settled(true)
                    .build();
                if let Err(e) = sender.send(sendable).await {
                    debug!(%address, error = %e, "vanflow link failed");
                    break;
                }
            }
            e = sender.on_detach() => {
                debug!(%address, reason = %e, "vanflow link detached");
                break;
            }
        }
    }
    router.vanflow.unsubscribe(id);
    router.topology_changed();
    let _ = sender.close().await;
}

/// A collector's sending link to `sfe.<id>` (FLUSH requests): each message is accepted; a
/// FLUSH makes that router re-send its records.
async fn serve_vanflow_requests(mut receiver: Receiver, address: String, router: Arc<Router>) {
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "vanflow direct link ended");
                break;
            }
        };
        let info = DeliveryInfo::from(&delivery);
        let message = delivery.into_message();
        if let Err(e) = receiver.accept(info).await {
            debug!(error = %e, "cannot settle vanflow request");
            break;
        }
        let subject = message.properties.as_ref().and_then(|p| p.subject.clone());
        crate::vanflow::request(&router, &address, subject.as_deref());
    }
    let _ = receiver.close().await;
}

/// Forwards replies routed to `address` over the peer's receiving link until it detaches.
async fn serve_replies(mut sender: Sender, address: String, routes: SharedRoutes) {
    static ROUTE_SEQ: AtomicU64 = AtomicU64::new(1);
    let id = ROUTE_SEQ.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Reply>(64);
    routes.lock().expect("routes lock").add(&address, id, tx);
    loop {
        tokio::select! {
            reply = rx.recv() => {
                let Some(reply) = reply else { break };
                if let Err(e) = sender.send(reply).await {
                    debug!(%address, error = %e, "reply link failed");
                    break;
                }
            }
            e = sender.on_detach() => {
                debug!(%address, reason = %e, "reply link detached");
                break;
            }
        }
    }
    routes.lock().expect("routes lock").remove(&address, id);
    let _ = sender.close().await;
}

/// Receives requests, asks the agent, routes each response to the request's `reply_to`.
async fn serve_requests(
    mut receiver: Receiver,
    anonymous: bool,
    agent: AgentSender,
    routes: SharedRoutes,
    router: Option<Arc<Router>>,
) {
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "request link ended");
                break;
            }
        };
        let info = DeliveryInfo::from(&delivery);
        let message = delivery.into_message();
        if let Err(e) = receiver.accept(info).await {
            debug!(error = %e, "cannot settle request");
            break;
        }
        if anonymous {
            let to = message.properties.as_ref().and_then(|p| p.to.clone());
            // Anonymous relay, as the real router does: a vanflow request goes to the
            // router whose direct address it names (Skupper's collectors send FLUSH so).
            if let (Some(router), Some(to)) = (&router, to.as_deref()) {
                if normalize_address(to).starts_with("sfe.") {
                    let subject = message.properties.as_ref().and_then(|p| p.subject.clone());
                    crate::vanflow::request(router, normalize_address(to), subject.as_deref());
                    continue;
                }
            }
            if !to.as_deref().is_some_and(is_management_address) {
                warn!(?to, "dropping a message not addressed to $management");
                continue;
            }
        }
        let Some(reply_to) = message.properties.as_ref().and_then(|p| p.reply_to.clone()) else {
            warn!("dropping a management request without reply_to");
            continue;
        };
        let correlation_id = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_id.clone().or_else(|| p.message_id.clone()));

        let response = match decode_request(&message) {
            Ok(request) => {
                debug!(operation = %request.operation, entity_type = %request.entity_type,
                       name = ?request.name, "management request");
                ask_agent(&agent, request).await
            }
            Err(description) => Response {
                status_code: 400,
                status_description: description,
                body: serde_json::Value::Null,
            },
        };
        debug!(status = response.status_code, description = %response.status_description, "management response");

        let reply = encode_response(response, reply_to.clone(), correlation_id);
        let route = routes.lock().expect("routes lock").lookup(&reply_to);
        match route {
            Some(tx) => {
                if tx.send(reply).await.is_err() {
                    warn!(%reply_to, "reply link went away before the response was sent");
                }
            }
            None => warn!(%reply_to, "no link for the reply address; response dropped"),
        }
    }
    let _ = receiver.close().await;
}

async fn ask_agent(agent: &AgentSender, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    let unavailable = || Response {
        status_code: 500,
        status_description: "management agent unavailable".to_string(),
        body: serde_json::Value::Null,
    };
    if agent.send((request, tx)).await.is_err() {
        return unavailable();
    }
    rx.await.unwrap_or_else(|_| unavailable())
}

fn property_string(app: Option<&ApplicationProperties>, key: &str) -> Option<String> {
    match app?.get(key)? {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

/// Application-properties + body → [`Request`]. QUERY as skmanage sends it (`type` =
/// `org.amqp.management`, `name` = `self`, `entityType` = the queried type) and with `type` set
/// to the queried type are both accepted.
fn decode_request(message: &Message<Body<Value>>) -> Result<Request, String> {
    let app = message.application_properties.as_ref();
    let operation = property_string(app, "operation")
        .ok_or_else(|| "missing application property 'operation'".to_string())?;
    let type_prop = property_string(app, "type");
    let entity_type_prop = property_string(app, "entityType");
    let node_level = type_prop
        .as_deref()
        .is_none_or(|t| t == MANAGEMENT_NODE_TYPE);
    let entity_type = if node_level {
        entity_type_prop.or(type_prop).unwrap_or_default()
    } else {
        type_prop.unwrap_or_default()
    };
    // name/identity on a node-level request name the node itself ("self"), not an entity.
    let (name, identity) = if node_level {
        (None, None)
    } else {
        (
            property_string(app, "name"),
            property_string(app, "identity"),
        )
    };
    let body = match &message.body {
        Body::Value(AmqpValue(v)) => amqp_to_json(v.clone()),
        Body::Empty => serde_json::Value::Null,
        Body::Sequence(_) | Body::Data(_) => {
            return Err("request body must be an amqp-value".to_string())
        }
    };
    Ok(Request {
        operation: operation.to_ascii_uppercase(),
        entity_type,
        name,
        identity,
        body,
    })
}

fn encode_response(
    response: Response,
    reply_to: String,
    correlation_id: Option<MessageId>,
) -> Reply {
    let mut app = ApplicationProperties::default();
    app.insert(
        "statusCode".to_string(),
        SimpleValue::Int(i32::from(response.status_code)),
    );
    app.insert(
        "statusDescription".to_string(),
        SimpleValue::String(response.status_description),
    );
    // The router answers an error or a DELETE with an empty map, never with no body.
    let body = match response.body {
        serde_json::Value::Null => Value::Map(OrderedMap::new()),
        other => json_to_amqp(&other),
    };
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            to: Some(reply_to),
            correlation_id,
            ..Default::default()
        }),
        application_properties: Some(app),
        body: Body::Value(AmqpValue(body)),
        footer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_addresses() {
        assert!(is_management_address("$management"));
        assert!(is_management_address("amqp:/_local/$management"));
        assert!(is_management_address("_topo/0/r1/$management"));
        assert!(!is_management_address("$managementx"));
        assert!(!is_management_address("other"));
    }

    #[test]
    fn sasl_only_external() {
        let mut acceptor = SaslExternalAcceptor;
        assert_eq!(acceptor.mechanisms().0, vec![Symbol::from("EXTERNAL")]);
        for (mechanism, ok) in [("EXTERNAL", true), ("ANONYMOUS", false), ("PLAIN", false)] {
            let init = SaslInit {
                mechanism: Symbol::from(mechanism),
                initial_response: None,
                hostname: None,
            };
            let SaslServerFrame::Outcome(outcome) = acceptor.on_init(init) else {
                panic!("no outcome")
            };
            assert_eq!(matches!(outcome.code, SaslCode::Ok), ok, "{mechanism}");
        }
    }

    #[test]
    fn decode_skmanage_query() {
        let mut app = ApplicationProperties::default();
        for (k, v) in [
            ("operation", "QUERY"),
            ("type", "org.amqp.management"),
            ("name", "self"),
            ("entityType", "io.skupper.router.tcpListener"),
        ] {
            app.insert(k.to_string(), SimpleValue::String(v.to_string()));
        }
        let message = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: None,
            application_properties: Some(app),
            body: Body::Value(AmqpValue(Value::Map(OrderedMap::new()))),
            footer: None,
        };
        let r = decode_request(&message).unwrap();
        assert_eq!(r.operation, "QUERY");
        assert_eq!(r.entity_type, "io.skupper.router.tcpListener");
        assert_eq!(r.name, None);
    }
}

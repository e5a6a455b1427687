//! AMQP 1.0 management client for a running skupper-router (`$management` node).
//!
//! vansite changes a live router (tcpListener, tcpConnector, sslProfile, listener, connector, ...)
//! the way Skupper's own controller and `skmanage` do, instead of rewriting `skrouterd.json` and
//! restarting the router, which would drop every connection.
//!
//! Wire protocol, as the real router speaks it on its `normal` listener (`skupper-local-normal`,
//! 127.0.0.1:5671):
//! - TLS straight away, without the AMQP TLS protocol header (what proton calls `amqps`), with a
//!   client certificate (Skupper's `skupper-local-client`: `ca.crt`, `tls.crt`, `tls.key`);
//! - then SASL EXTERNAL (the router takes the identity from the certificate), with an empty
//!   initial-response and an answer to a possible empty challenge, as proton does; this client
//!   runs that exchange itself because fe2o3-amqp's EXTERNAL profile does neither;
//! - one session, a sender attached to target `$management` and a receiver attached with a
//!   *dynamic* source: the router assigns its address, which every request carries as `reply_to`;
//! - each request has application-properties `operation`, `type`, `name` (and, for QUERY,
//!   `entityType` with `type` = `org.amqp.management`, as skmanage sends them), a `correlation_id`
//!   that the router echoes in its response, and an amqp-value body;
//! - the response has application-properties `statusCode` and `statusDescription`.
//!
//! Connections are opened for one command and closed: the router drops a connection silent for
//! its 16 s idle timeout, and fe2o3 sends its heartbeats only every full timeout (the spec
//! suggests half), so a connection left idle that long would race the router's deadline.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::connection::{ConnectionHandle, OpenError};
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Outcome, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use serde_json::Map as JsonMap;
use serde_json::Value as JsonValue;
use tokio::net::TcpStream;

/// Prefix of the router's entity type names; short names (`tcpListener`) get it prepended.
pub const ENTITY_TYPE_PREFIX: &str = "io.skupper.router.";

/// The management node's own type, used for node-level operations such as QUERY.
const MANAGEMENT_NODE_TYPE: &str = "org.amqp.management";

/// The router's management node address.
const MANAGEMENT_ADDRESS: &str = "$management";

/// Client-side TLS material (PEM): the CA that signed the router's server certificate, and the
/// client certificate and key the router's `normal` listener requires. Leaving both `cert_pem`
/// and `key_pem` empty presents no client certificate.
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientTls {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl ClientTls {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`: the layout of Skupper's
    /// `runtime/certs/skupper-local-client` directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ManagementError> {
        let dir = dir.as_ref();
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| ManagementError::Credentials { path, source })
        };
        Ok(Self {
            ca_pem: read("ca.crt")?,
            cert_pem: read("tls.crt")?,
            key_pem: read("tls.key")?,
        })
    }

    /// Builds the rustls client configuration: trust only `ca_pem` (the router's certificate is
    /// issued by a site-local CA, never by a public one) and present the client certificate.
    fn client_config(&self) -> Result<rustls::ClientConfig, ManagementError> {
        // No client certificate: only for listeners that do not require one (the router's
        // `normal` listener does, and refuses such a client).
        let identity = (!(self.cert_pem.is_empty() && self.key_pem.is_empty())).then(|| {
            crate::tls::Identity {
                cert_pem: &self.cert_pem,
                key_pem: &self.key_pem,
            }
        });
        crate::tls::client_config(&self.ca_pem, identity, crate::tls::Versions::Default)
            .map_err(|e| ManagementError::InvalidCredentials(e.to_string()))
    }
}

/// A router's `normal` listener and the client credentials it takes.
#[derive(Debug, Clone)]
pub struct RouterEndpoint {
    pub host: String,
    pub port: u16,
    pub tls: ClientTls,
}

impl RouterEndpoint {
    pub async fn management(&self, timeout: Duration) -> Result<ManagementClient, ManagementError> {
        ManagementClient::connect(&self.host, self.port, &self.tls, timeout).await
    }
}

/// What went wrong, phrased so that a person knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// A credentials file could not be read.
    #[error("cannot read TLS credentials {}: {source}", path.display())]
    Credentials { path: PathBuf, source: io::Error },

    /// The credentials were read but are unusable.
    #[error("invalid TLS credentials: {0}")]
    InvalidCredentials(String),

    /// Nothing listens at the address (router not running, or another port).
    #[error("connection to {addr} refused: is the router running and listening there?")]
    ConnectionRefused { addr: String, source: io::Error },

    /// Other TCP connect failure (unreachable, bad host name, ...).
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },

    /// A step did not finish in time.
    #[error("timed out after {timeout:?} while {step} ({addr})")]
    Timeout {
        addr: String,
        step: &'static str,
        timeout: Duration,
    },

    /// TLS failed: wrong CA, certificate not accepted by the router, server name mismatch, ...
    #[error("TLS with {addr} failed: {detail}")]
    Tls { addr: String, detail: String },

    /// SASL EXTERNAL was refused (the router did not accept the client's identity).
    #[error("SASL authentication with {addr} failed: {detail}")]
    Sasl { addr: String, detail: String },

    /// The AMQP connection, session or a link failed or was closed by the router.
    #[error("AMQP error with {addr}: {detail}")]
    Amqp { addr: String, detail: String },

    /// The router answered the request with a non-2xx status.
    #[error("router refused {operation} {entity_type} {name}: {status_code} {status_description}")]
    Status {
        operation: String,
        entity_type: String,
        name: String,
        status_code: u16,
        status_description: String,
    },

    /// The router answered with something this client cannot interpret.
    #[error("unexpected management response from {addr}: {detail}")]
    Protocol { addr: String, detail: String },
}

impl ManagementError {
    /// The management status code, if the router answered with an error status.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Status { status_code, .. } => Some(*status_code),
            _ => None,
        }
    }

    /// True when the router said the entity does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }
}

/// Normalises an entity type: `tcpListener` → `io.skupper.router.tcpListener`; names that are
/// already qualified are kept. The router's C agent only recognises full names, so always send
/// those.
pub fn full_entity_type(entity_type: &str) -> String {
    if entity_type.starts_with(ENTITY_TYPE_PREFIX) || entity_type.starts_with("org.amqp.") {
        entity_type.to_string()
    } else {
        format!("{ENTITY_TYPE_PREFIX}{entity_type}")
    }
}

/// A connection to the router's `$management` node. Requests are sent one at a time; every
/// call is bounded by the timeout given to [`ManagementClient::connect`].
pub struct ManagementClient {
    addr: String,
    timeout: Duration,
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
    next_id: u64,
}

impl fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClient")
            .field("addr", &self.addr)
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

/// Distinguishes the link and container names of several clients in one process.
static CLIENT_SEQ: AtomicU64 = AtomicU64::new(1);

impl ManagementClient {
    /// Connects, authenticates and attaches the request and reply links.
    ///
    /// `host` is both where to connect and the TLS server name the router's certificate must
    /// carry (an IP address is checked as an IP; Skupper's `skupper-local-server` certificate has
    /// `127.0.0.1` and `localhost`). `timeout` bounds each step here and each later call.
    pub async fn connect(
        host: &str,
        port: u16,
        tls: &ClientTls,
        timeout: Duration,
    ) -> Result<Self, ManagementError> {
        let (tls_stream, addr) = authenticated_stream(host, port, tls, timeout).await?;
        let timed_out = |step| ManagementError::Timeout {
            addr: addr.clone(),
            step,
            timeout,
        };
        let seq = CLIENT_SEQ.fetch_add(1, Ordering::Relaxed);
        let container_id = format!("vansite-{}-{seq}", std::process::id());

        // Plain AMQP on the authenticated TLS stream (scheme "amqp", no SASL layer left).
        let open = Connection::builder()
            .container_id(container_id.clone())
            .hostname(host)
            .open_with_stream(tls_stream);
        let mut connection = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| timed_out("opening the AMQP connection"))?
            .map_err(|e| classify_open_error(&addr, e))?;

        let amqp = |what: &str, e: &dyn fmt::Display| ManagementError::Amqp {
            addr: addr.clone(),
            detail: format!("{what}: {e}"),
        };

        let setup = async {
            let mut session = Session::begin(&mut connection)
                .await
                .map_err(|e| amqp("beginning a session", &e))?;
            let sender = Sender::attach(
                &mut session,
                format!("{container_id}-request"),
                MANAGEMENT_ADDRESS,
            )
            .await
            .map_err(|e| amqp("attaching the request link to $management", &e))?;
            let receiver = Receiver::builder()
                .name(format!("{container_id}-reply"))
                .source(Source::builder().dynamic(true).build())
                .attach(&mut session)
                .await
                .map_err(|e| amqp("attaching the reply link (dynamic source)", &e))?;
            Ok::<_, ManagementError>((session, sender, receiver))
        };
        let (session, sender, receiver) = match tokio::time::timeout(timeout, setup).await {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => {
                let _ = tokio::time::timeout(timeout, connection.close()).await;
                return Err(e);
            }
            Err(_) => {
                let _ = tokio::time::timeout(timeout, connection.close()).await;
                return Err(timed_out("attaching the management links"));
            }
        };

        let reply_to = match receiver.source().as_ref().and_then(|s| s.address.clone()) {
            Some(a) if !a.is_empty() => a,
            _ => {
                let _ = tokio::time::timeout(timeout, connection.close()).await;
                return Err(ManagementError::Protocol {
                    addr,
                    detail: "the router did not assign an address to the dynamic reply link".into(),
                });
            }
        };
        tracing::debug!(%addr, %reply_to, "management client connected");

        Ok(Self {
            addr,
            timeout,
            connection,
            session,
            sender,
            receiver,
            reply_to,
            next_id: 1,
        })
    }

    /// Where this client is connected (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// QUERY: all entities of `entity_type`, one map per entity. With an empty
    /// `attribute_names` the router returns every attribute of the type (unset ones as null).
    pub async fn query(
        &mut self,
        entity_type: &str,
        attribute_names: &[&str],
    ) -> Result<Vec<JsonMap<String, JsonValue>>, ManagementError> {
        let entity_type = full_entity_type(entity_type);
        // The same properties skmanage sends: the request goes to the management node itself
        // (name "self", type org.amqp.management) and names the queried type in `entityType`.
        let props = [
            ("operation", "QUERY"),
            ("type", MANAGEMENT_NODE_TYPE),
            ("name", "self"),
            ("entityType", entity_type.as_str()),
        ];
        let mut body = OrderedMap::new();
        body.insert(
            Value::String("attributeNames".into()),
            Value::List(
                attribute_names
                    .iter()
                    .map(|n| Value::String((*n).to_string()))
                    .collect(),
            ),
        );
        let reply = self
            .call("QUERY", &entity_type, "", &props, Value::Map(body))
            .await?;
        self.query_rows(reply)
    }

    /// [`query`](Self::query) with every attribute, each row turned into a view by `view`.
    pub async fn query_views<T>(
        &mut self,
        entity_type: &str,
        view: impl Fn(&JsonMap<String, JsonValue>) -> T,
    ) -> Result<Vec<T>, ManagementError> {
        Ok(self
            .query(entity_type, &[])
            .await?
            .iter()
            .map(view)
            .collect())
    }

    /// CREATE an entity named `name` with `attributes`; returns the attributes the router
    /// reports for the new entity.
    pub async fn create(
        &mut self,
        entity_type: &str,
        name: &str,
        attributes: JsonMap<String, JsonValue>,
    ) -> Result<JsonMap<String, JsonValue>, ManagementError> {
        self.write("CREATE", entity_type, name, attributes).await
    }

    /// UPDATE the entity named `name`: the router keeps the attributes `attributes` does not
    /// name. Returns the attributes the router reports afterwards.
    pub async fn update(
        &mut self,
        entity_type: &str,
        name: &str,
        attributes: JsonMap<String, JsonValue>,
    ) -> Result<JsonMap<String, JsonValue>, ManagementError> {
        self.write("UPDATE", entity_type, name, attributes).await
    }

    /// CREATE or UPDATE: both send an attribute map and answer with the entity's.
    async fn write(
        &mut self,
        operation: &'static str,
        entity_type: &str,
        name: &str,
        attributes: JsonMap<String, JsonValue>,
    ) -> Result<JsonMap<String, JsonValue>, ManagementError> {
        let entity_type = full_entity_type(entity_type);
        let props = [
            ("operation", operation),
            ("type", entity_type.as_str()),
            ("name", name),
        ];
        let body = json_to_amqp(&JsonValue::Object(attributes));
        match self
            .call(operation, &entity_type, name, &props, body)
            .await?
        {
            JsonValue::Object(map) => Ok(map),
            JsonValue::Null => Ok(JsonMap::new()),
            other => {
                Err(self.protocol(format!("{operation} answered with a non-map body: {other}")))
            }
        }
    }

    /// DELETE the entity named `name`. A missing entity is an error (`is_not_found()`).
    pub async fn delete(&mut self, entity_type: &str, name: &str) -> Result<(), ManagementError> {
        let entity_type = full_entity_type(entity_type);
        let props = [
            ("operation", "DELETE"),
            ("type", entity_type.as_str()),
            ("name", name),
        ];
        let body = Value::Map(OrderedMap::new());
        self.call("DELETE", &entity_type, name, &props, body)
            .await
            .map(|_| ())
    }

    /// Detaches the links and closes the connection (bounded by the timeout).
    pub async fn close(self) -> Result<(), ManagementError> {
        let Self {
            addr,
            timeout,
            mut connection,
            mut session,
            sender,
            receiver,
            ..
        } = self;
        let work = async {
            let _ = receiver.close().await;
            let _ = sender.close().await;
            let _ = session.end().await;
            connection.close().await
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ManagementError::Amqp {
                addr,
                detail: format!("closing the connection: {e}"),
            }),
            Err(_) => Err(ManagementError::Timeout {
                addr,
                step: "closing the connection",
                timeout,
            }),
        }
    }

    fn protocol(&self, detail: String) -> ManagementError {
        ManagementError::Protocol {
            addr: self.addr.clone(),
            detail,
        }
    }

    /// Turns a QUERY body `{attributeNames: [...], results: [[...], ...]}` into maps.
    fn query_rows(
        &self,
        reply: JsonValue,
    ) -> Result<Vec<JsonMap<String, JsonValue>>, ManagementError> {
        let JsonValue::Object(mut body) = reply else {
            return Err(self.protocol(format!("QUERY answered with a non-map body: {reply}")));
        };
        let names: Vec<String> = match body.remove("attributeNames") {
            Some(JsonValue::Array(names)) => names
                .into_iter()
                .map(|n| match n {
                    JsonValue::String(s) => Ok(s),
                    other => Err(self.protocol(format!("attribute name is not a string: {other}"))),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(self.protocol(format!(
                    "QUERY response has no attributeNames list (got {other:?})"
                )))
            }
        };
        let rows = match body.remove("results") {
            Some(JsonValue::Array(rows)) => rows,
            None | Some(JsonValue::Null) => Vec::new(),
            Some(other) => {
                return Err(self.protocol(format!("QUERY results is not a list: {other}")))
            }
        };
        rows.into_iter()
            .map(|row| match row {
                JsonValue::Array(values) if values.len() == names.len() => {
                    Ok(names.iter().cloned().zip(values).collect())
                }
                other => Err(self.protocol(format!(
                    "QUERY result row does not match the {} attribute names: {other}",
                    names.len()
                ))),
            })
            .collect()
    }

    /// Sends one request and waits for the response with the same correlation id.
    /// Returns the body of a 2xx response; other statuses become [`ManagementError::Status`].
    async fn call(
        &mut self,
        operation: &str,
        entity_type: &str,
        name: &str,
        props: &[(&str, &str)],
        body: Value,
    ) -> Result<JsonValue, ManagementError> {
        let id = format!("vansite-{}", self.next_id);
        self.next_id += 1;

        let mut app = ApplicationProperties::default();
        for (k, v) in props {
            app.insert((*k).to_string(), SimpleValue::String((*v).to_string()));
        }
        // The router echoes `correlation_id` (both its C and Python agents); `message_id` is set
        // to the same value for peers that echo that instead.
        let properties = Properties {
            message_id: Some(MessageId::String(id.clone())),
            reply_to: Some(self.reply_to.clone()),
            correlation_id: Some(MessageId::String(id.clone())),
            ..Default::default()
        };
        let message = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: Some(properties),
            application_properties: Some(app),
            body: Body::Value(AmqpValue(body)),
            footer: None,
        };

        let addr = self.addr.clone();
        let timeout = self.timeout;
        let timed_out = |step| ManagementError::Timeout {
            addr: addr.clone(),
            step,
            timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;

        let outcome = tokio::time::timeout_at(deadline, self.sender.send(message))
            .await
            .map_err(|_| timed_out("sending a management request"))?
            .map_err(|e| ManagementError::Amqp {
                addr: addr.clone(),
                detail: format!("sending {operation} {entity_type}: {e}"),
            })?;
        if !matches!(outcome, Outcome::Accepted(_)) {
            return Err(ManagementError::Amqp {
                addr,
                detail: format!("the router did not accept the {operation} request: {outcome:?}"),
            });
        }

        let reply = loop {
            let delivery = tokio::time::timeout_at(deadline, self.receiver.recv::<Body<Value>>())
                .await
                .map_err(|_| timed_out("waiting for the management response"))?
                .map_err(|e| ManagementError::Amqp {
                    addr: addr.clone(),
                    detail: format!("receiving the {operation} response: {e}"),
                })?;
            let info = DeliveryInfo::from(&delivery);
            let message = delivery.into_message();
            let _ = self.receiver.accept(info).await;
            let cid = message
                .properties
                .as_ref()
                .and_then(|p| p.correlation_id.as_ref());
            if matches!(cid, Some(MessageId::String(c)) if *c == id) {
                break message;
            }
            // A late answer to an earlier request that timed out: not ours.
            tracing::debug!(?cid, expected = %id, "ignoring management response for another request");
        };

        let app = reply.application_properties.as_ref();
        let status = app
            .and_then(|a| a.get("statusCode"))
            .and_then(simple_as_i64)
            .ok_or_else(|| self.protocol("response has no integer statusCode".into()))?;
        let description = match app.and_then(|a| a.get("statusDescription")) {
            Some(SimpleValue::String(s)) => s.clone(),
            Some(SimpleValue::Symbol(s)) => s.0.clone(),
            _ => String::new(),
        };
        let status_code = u16::try_from(status)
            .map_err(|_| self.protocol(format!("statusCode {status} out of range")))?;
        if !(200..300).contains(&status_code) {
            return Err(ManagementError::Status {
                operation: operation.to_string(),
                entity_type: entity_type.to_string(),
                name: name.to_string(),
                status_code,
                status_description: description,
            });
        }
        Ok(match reply.body {
            Body::Value(AmqpValue(v)) => amqp_to_json(v),
            Body::Empty => JsonValue::Null,
            Body::Sequence(seqs) => JsonValue::Array(
                seqs.into_iter()
                    .flat_map(|s| s.0.into_iter().map(amqp_to_json))
                    .collect(),
            ),
            Body::Data(_) => {
                return Err(self.protocol("response body is binary data, not an AMQP value".into()))
            }
        })
    }
}

/// Maps an I/O failure during TLS or SASL: a rustls error (ours, or an alert from the router)
/// is a TLS problem. With TLS 1.3 a refused client certificate only shows on the first read,
/// i.e. during the SASL exchange, as an alert from the router.
/// TCP, TLS with the client certificate, then SASL EXTERNAL: a stream on which AMQP starts
/// next, and the address it reaches (for messages). Management and the vanflow collector both
/// connect this way to the router's `normal` listener.
pub(crate) async fn authenticated_stream(
    host: &str,
    port: u16,
    tls: &ClientTls,
    timeout: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, String), ManagementError> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let config = tls.client_config()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // Checked before connecting so that a bad host gives a clear error. An IP address
    // becomes an IP server name (matched against the certificate's IP SANs).
    let server_name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        ManagementError::Tls {
            addr: addr.clone(),
            detail: format!("{host:?} is not a valid TLS server name: {e}"),
        }
    })?;

    let timed_out = |step| ManagementError::Timeout {
        addr: addr.clone(),
        step,
        timeout,
    };

    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| timed_out("connecting (TCP)"))?
        .map_err(|source| {
            if source.kind() == io::ErrorKind::ConnectionRefused {
                ManagementError::ConnectionRefused {
                    addr: addr.clone(),
                    source,
                }
            } else {
                ManagementError::Connect {
                    addr: addr.clone(),
                    source,
                }
            }
        })?;
    let _ = tcp.set_nodelay(true);

    // TLS straight away (no AMQP TLS header), as the router's listener expects.
    let mut tls_stream = tokio::time::timeout(timeout, connector.connect(server_name, tcp))
        .await
        .map_err(|_| timed_out("TLS handshake"))?
        .map_err(|e| io_failure(&addr, "TLS handshake", e))?;

    // SASL EXTERNAL, done here rather than by fe2o3: fe2o3's EXTERNAL sends no
    // initial-response and cannot answer a challenge, while the router's Cyrus SASL
    // challenges a client-first mechanism that arrives without one. Sending an empty
    // initial-response is what proton and Skupper's Go client do.
    tokio::time::timeout(timeout, sasl_external(&mut tls_stream))
        .await
        .map_err(|_| timed_out("SASL EXTERNAL authentication"))?
        .map_err(|e| match e {
            SaslFailure::Io(e) => io_failure(&addr, "SASL exchange", e),
            SaslFailure::Refused(detail) => ManagementError::Sasl {
                addr: addr.clone(),
                detail,
            },
        })?;

    Ok((tls_stream, addr))
}

fn io_failure(addr: &str, step: &str, e: io::Error) -> ManagementError {
    if let Some(tls) = crate::tls::find_rustls_error(&e) {
        return ManagementError::Tls {
            addr: addr.to_string(),
            detail: describe_rustls_error(tls),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => ManagementError::Tls {
            addr: addr.to_string(),
            detail: format!(
                "the router closed the connection during the {step} ({e}); check that the \
                     client certificate is issued by the CA the router trusts"
            ),
        },
        _ => ManagementError::Amqp {
            addr: addr.to_string(),
            detail: format!("{step}: {e}"),
        },
    }
}

/// Maps fe2o3's AMQP open errors (after TLS and SASL succeeded).
fn classify_open_error(addr: &str, e: OpenError) -> ManagementError {
    if let Some(tls) = crate::tls::find_rustls_error(&e) {
        return ManagementError::Tls {
            addr: addr.to_string(),
            detail: describe_rustls_error(tls),
        };
    }
    ManagementError::Amqp {
        addr: addr.to_string(),
        detail: format!("opening the connection: {e}"),
    }
}

enum SaslFailure {
    Io(io::Error),
    Refused(String),
}

impl From<io::Error> for SaslFailure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// AMQP SASL layer (AMQP 1.0 §5.3) with mechanism EXTERNAL: the identity is the TLS client
/// certificate. Reads exactly the SASL frames, so the stream is left at the AMQP header.
async fn sasl_external<S>(stream: &mut S) -> Result<(), SaslFailure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use fe2o3_amqp::frames::sasl::{Frame, FrameCodec};
    use fe2o3_amqp::types::primitives::Binary;
    use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslResponse};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::{Decoder, Encoder};

    const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
    /// SASL frames are small; the spec's minimum max-frame-size (512) bounds them.
    const MAX_SASL_FRAME: usize = 512;

    async fn send<S: tokio::io::AsyncWrite + Unpin>(
        s: &mut S,
        frame: Frame,
    ) -> Result<(), SaslFailure> {
        let mut body = bytes::BytesMut::new();
        FrameCodec {}
            .encode(frame, &mut body)
            .map_err(|e| SaslFailure::Refused(format!("cannot encode a SASL frame: {e}")))?;
        let size = u32::try_from(body.len() + 4).expect("small frame");
        let mut buf = Vec::with_capacity(body.len() + 4);
        buf.extend_from_slice(&size.to_be_bytes());
        buf.extend_from_slice(&body);
        s.write_all(&buf).await?;
        s.flush().await?;
        Ok(())
    }

    async fn recv<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<Frame, SaslFailure> {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await?;
        let size = u32::from_be_bytes(size) as usize;
        if !(8..=MAX_SASL_FRAME).contains(&size) {
            return Err(SaslFailure::Refused(format!("bad SASL frame size {size}")));
        }
        let mut body = bytes::BytesMut::zeroed(size - 4);
        s.read_exact(&mut body).await?;
        FrameCodec {}
            .decode(&mut body)
            .map_err(|e| SaslFailure::Refused(format!("cannot decode a SASL frame: {e}")))?
            .ok_or_else(|| SaslFailure::Refused("empty SASL frame".into()))
    }

    stream.write_all(&SASL_HEADER).await?;
    stream.flush().await?;
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    if header != SASL_HEADER {
        return Err(SaslFailure::Refused(format!(
            "the peer answered protocol header {header:?}, not AMQP SASL 1.0"
        )));
    }
    match recv(stream).await? {
        Frame::Mechanisms(m) => {
            if !m.sasl_server_mechanisms.0.iter().any(|s| s.0 == "EXTERNAL") {
                let offered: Vec<&str> = m
                    .sasl_server_mechanisms
                    .0
                    .iter()
                    .map(|s| s.0.as_str())
                    .collect();
                return Err(SaslFailure::Refused(format!(
                    "the listener does not offer EXTERNAL (offers {offered:?}): is it the \
                     router's `normal` listener with saslMechanisms EXTERNAL?"
                )));
            }
        }
        other => {
            return Err(SaslFailure::Refused(format!(
                "expected sasl-mechanisms, got {other:?}"
            )))
        }
    }
    send(
        stream,
        Frame::Init(SaslInit {
            mechanism: "EXTERNAL".into(),
            initial_response: Some(Binary::from(Vec::new())),
            hostname: None,
        }),
    )
    .await?;
    // EXTERNAL needs at most one (empty) challenge round.
    for _ in 0..4 {
        match recv(stream).await? {
            Frame::Challenge(_) => {
                send(
                    stream,
                    Frame::Response(SaslResponse {
                        response: Binary::from(Vec::new()),
                    }),
                )
                .await?
            }
            Frame::Outcome(outcome) => {
                return match outcome.code {
                    SaslCode::Ok => Ok(()),
                    code => Err(SaslFailure::Refused(format!(
                        "outcome {code:?}{}",
                        outcome
                            .additional_data
                            .map(|d| format!(" ({})", String::from_utf8_lossy(&d)))
                            .unwrap_or_default()
                    ))),
                }
            }
            other => {
                return Err(SaslFailure::Refused(format!(
                    "unexpected SASL frame {other:?}"
                )))
            }
        }
    }
    Err(SaslFailure::Refused("too many SASL challenges".into()))
}

fn describe_rustls_error(e: &rustls::Error) -> String {
    use rustls::AlertDescription as A;
    let hint = match e {
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            " (the router requires a client certificate)"
        }
        rustls::Error::AlertReceived(A::UnknownCA | A::BadCertificate | A::DecryptError) => {
            " (the router did not accept the client certificate: is it issued by the CA the router trusts?)"
        }
        rustls::Error::InvalidCertificate(_) => {
            " (the router's certificate is not valid for this CA and host name)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

fn simple_as_i64(v: &SimpleValue) -> Option<i64> {
    Some(match v {
        SimpleValue::Byte(n) => i64::from(*n),
        SimpleValue::Short(n) => i64::from(*n),
        SimpleValue::Int(n) => i64::from(*n),
        SimpleValue::Long(n) => *n,
        SimpleValue::Ubyte(n) => i64::from(*n),
        SimpleValue::Ushort(n) => i64::from(*n),
        SimpleValue::Uint(n) => i64::from(*n),
        SimpleValue::Ulong(n) => i64::try_from(*n).ok()?,
        _ => return None,
    })
}

/// JSON → AMQP: integers as long (ulong above i64::MAX), other numbers as double, strings as
/// string, objects as maps with string keys, arrays as lists.
pub fn json_to_amqp(v: &JsonValue) -> Value {
    match v {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(b) => Value::Bool(*b),
        JsonValue::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Long(i)
            } else if let Some(u) = n.as_u64() {
                Value::Ulong(u)
            } else {
                Value::Double(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        JsonValue::String(s) => Value::String(s.clone()),
        JsonValue::Array(a) => Value::List(a.iter().map(json_to_amqp).collect()),
        JsonValue::Object(m) => {
            let mut map = OrderedMap::new();
            for (k, v) in m {
                map.insert(Value::String(k.clone()), json_to_amqp(v));
            }
            Value::Map(map)
        }
    }
}

/// AMQP → JSON, for what the router sends: symbols become strings, timestamps milliseconds,
/// binary a lossy UTF-8 string, described values their value, map keys their string form.
pub fn amqp_to_json(v: Value) -> JsonValue {
    match v {
        Value::Null => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(b),
        Value::Ubyte(n) => n.into(),
        Value::Ushort(n) => n.into(),
        Value::Uint(n) => n.into(),
        Value::Ulong(n) => n.into(),
        Value::Byte(n) => n.into(),
        Value::Short(n) => n.into(),
        Value::Int(n) => n.into(),
        Value::Long(n) => n.into(),
        Value::Float(f) => float_json(f64::from(f.into_inner())),
        Value::Double(f) => float_json(f.into_inner()),
        Value::Char(c) => JsonValue::String(c.to_string()),
        Value::Timestamp(t) => t.milliseconds().into(),
        Value::Uuid(u) => JsonValue::String(uuid_string(u.as_inner())),
        Value::Binary(b) => JsonValue::String(String::from_utf8_lossy(&b).into_owned()),
        Value::String(s) => JsonValue::String(s),
        Value::Symbol(s) => JsonValue::String(s.0),
        Value::List(l) => JsonValue::Array(l.into_iter().map(amqp_to_json).collect()),
        Value::Array(a) => JsonValue::Array(a.0.into_iter().map(amqp_to_json).collect()),
        Value::Map(m) => JsonValue::Object(
            m.into_inner()
                .into_iter()
                .map(|(k, v)| (map_key(k), amqp_to_json(v)))
                .collect(),
        ),
        Value::Described(d) => amqp_to_json(d.value),
        other => JsonValue::String(format!("{other:?}")),
    }
}

fn float_json(f: f64) -> JsonValue {
    serde_json::Number::from_f64(f)
        .map(JsonValue::Number)
        .unwrap_or(JsonValue::Null)
}

fn map_key(k: Value) -> String {
    match amqp_to_json(k) {
        JsonValue::String(s) => s,
        other => other.to_string(),
    }
}

fn uuid_string(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_type_names() {
        assert_eq!(
            full_entity_type("tcpListener"),
            "io.skupper.router.tcpListener"
        );
        assert_eq!(
            full_entity_type("router.node"),
            "io.skupper.router.router.node"
        );
        assert_eq!(
            full_entity_type("io.skupper.router.sslProfile"),
            "io.skupper.router.sslProfile"
        );
        assert_eq!(
            full_entity_type("org.amqp.management"),
            "org.amqp.management"
        );
    }

    /// A SASL server like skrouterd's Cyrus one: EXTERNAL, an empty challenge when the init has
    /// no initial-response, then `outcome`.
    async fn mock_sasl_server(
        mut io: tokio::io::DuplexStream,
        offer: &'static str,
        code: fe2o3_amqp::types::sasl::SaslCode,
    ) -> Option<fe2o3_amqp::types::sasl::SaslInit> {
        use fe2o3_amqp::frames::sasl::{Frame, FrameCodec};
        use fe2o3_amqp::types::primitives::{Array, Symbol};
        use fe2o3_amqp::types::sasl::{SaslChallenge, SaslMechanisms, SaslOutcome};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_util::codec::{Decoder, Encoder};

        async fn send(io: &mut tokio::io::DuplexStream, f: Frame) {
            let mut body = bytes::BytesMut::new();
            FrameCodec {}.encode(f, &mut body).unwrap();
            io.write_all(&((body.len() + 4) as u32).to_be_bytes())
                .await
                .unwrap();
            io.write_all(&body).await.unwrap();
        }
        async fn recv(io: &mut tokio::io::DuplexStream) -> Option<Frame> {
            let mut size = [0u8; 4];
            io.read_exact(&mut size).await.ok()?;
            let mut body = bytes::BytesMut::zeroed(u32::from_be_bytes(size) as usize - 4);
            io.read_exact(&mut body).await.ok()?;
            FrameCodec {}.decode(&mut body).unwrap()
        }

        let mut header = [0u8; 8];
        io.read_exact(&mut header).await.unwrap();
        assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
        io.write_all(&header).await.unwrap();
        let mechanisms = SaslMechanisms {
            sasl_server_mechanisms: Array::from(vec![Symbol::from(offer)]),
        };
        send(&mut io, Frame::Mechanisms(mechanisms)).await;
        let Some(Frame::Init(init)) = recv(&mut io).await else {
            return None;
        };
        send(
            &mut io,
            Frame::Challenge(SaslChallenge {
                challenge: Vec::new().into(),
            }),
        )
        .await;
        assert!(matches!(recv(&mut io).await, Some(Frame::Response(_))));
        send(
            &mut io,
            Frame::Outcome(SaslOutcome {
                code,
                additional_data: None,
            }),
        )
        .await;
        Some(init)
    }

    #[tokio::test]
    async fn sasl_external_answers_a_challenge() {
        use fe2o3_amqp::types::sasl::SaslCode;
        let (mut client, server) = tokio::io::duplex(4096);
        let server = tokio::spawn(mock_sasl_server(server, "EXTERNAL", SaslCode::Ok));
        assert!(sasl_external(&mut client).await.is_ok());
        let init = server.await.unwrap().unwrap();
        assert_eq!(init.mechanism.0, "EXTERNAL");
        // Present but empty, as proton sends it.
        assert_eq!(init.initial_response.map(|b| b.len()), Some(0));

        let (mut client, server) = tokio::io::duplex(4096);
        tokio::spawn(mock_sasl_server(server, "EXTERNAL", SaslCode::Auth));
        assert!(
            matches!(sasl_external(&mut client).await, Err(SaslFailure::Refused(d)) if d.contains("Auth"))
        );

        let (mut client, server) = tokio::io::duplex(4096);
        tokio::spawn(mock_sasl_server(server, "PLAIN", SaslCode::Ok));
        assert!(
            matches!(sasl_external(&mut client).await, Err(SaslFailure::Refused(d)) if d.contains("PLAIN"))
        );
    }

    #[test]
    fn json_amqp_round_trip() {
        let j = serde_json::json!({"host": "0.0.0.0", "port": 9090, "on": true,
                                   "list": [1, "a", null], "nested": {"x": -3}});
        assert_eq!(amqp_to_json(json_to_amqp(&j)), j);
        assert!(matches!(
            json_to_amqp(&serde_json::json!(5)),
            Value::Long(5)
        ));
    }
}

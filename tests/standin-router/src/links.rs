//! AMQP-facing listeners (roles normal / inter-router / edge) and connectors (inter-router /
//! edge) with the real router's TLS rules. A connector redials while its peer is away, with the
//! real router's delays, and reports connectionStatus / connectionMsg as the real one does.
//!
//! An update of their sslProfile (`crate::tls::update_profile`) acts on them as it does in the
//! real router: a listener closes the connections it accepted whose TLS ordinal is below a
//! raised `oldestValidOrdinal` (`qd_listener.c`); a connector closes its connections below it,
//! and on a raised `ordinal` lets its current connections live on without redialling and
//! dials a new one with the new credentials (`qd_connector.c`
//! `handle_connector_ssl_profile_mgmt_update`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::agent::Refusal;
use crate::config::Entity;
use crate::management::{self, AgentSender};
use crate::mux;
use crate::router::{ManagementConnection, Peer, PeerMessage, Router};
use crate::tcp::{self, AsyncStream};
use crate::tls::{self, Side, TlsConfig, Usage};
use crate::vanflow::{self, Attr};

/// A connector's next try after one that never opened (a refused TCP connection, a failed TLS
/// handshake): `try_open_lh` sets the connector's delay to 5 s before each try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// A connector's next try after a connection that had opened dropped
/// (`qd_connector_remote_opened` sets the delay to 2 s).
const RETRY_AFTER_OPEN: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link with nothing heard for this long is dropped (the real router's idleTimeoutSeconds
/// default), so that a cut network is noticed even without a TCP reset.
const IDLE_TIMEOUT: Duration = Duration::from_secs(16);
const HEARTBEAT: Duration = Duration::from_secs(4);

/// First message on the control stream, both ways.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    router_id: String,
    role: String,
    mode: String,
    /// This end's configured `cost` of the link (the real router sends it in the connection
    /// property `qd.inter-router-cost`).
    #[serde(default = "default_cost")]
    cost: u32,
    /// The listening end's ROUTER_ACCESS identity (the real router's `qd.access-id`
    /// connection property), which the dialler's LINK record names as its peer.
    #[serde(default)]
    access_id: Option<String>,
}

fn default_cost() -> u32 {
    1
}

/// What this end's listener or connector says about the link it makes.
#[derive(Debug, Clone, Copy)]
struct LinkConfig {
    cost: u32,
    capacity: usize,
}

impl LinkConfig {
    fn of(entity: &Entity) -> LinkConfig {
        let capacity = match entity.int("linkCapacity") {
            c if c > 0 => c as usize,
            _ => crate::router::DEFAULT_LINK_CAPACITY,
        };
        LinkConfig {
            cost: u32::try_from(entity.int("cost")).unwrap_or(1).max(1),
            capacity,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Control {
    Hello(Hello),
    Advertise(crate::router::Advertisement),
    Heartbeat,
    Vanflow(vanflow::Frame),
}

/// A running listener or connector: its task and its TLS configuration, if it has an
/// sslProfile.
pub struct Started {
    pub task: AbortHandle,
    pub tls: Option<Arc<TlsConfig>>,
}

/// The TLS configuration of a listener or connector naming an sslProfile (`qd_tls_config`);
/// Err is the real router's `qd_error` text, which management answers as a CError.
fn tls_config(
    router: &Router,
    entity: &Entity,
    side: Side,
) -> Result<Option<Arc<TlsConfig>>, Refusal> {
    match entity.str("sslProfile") {
        "" => Ok(None),
        profile => tls::config_for(router, profile, Usage { raw: false, side })
            .map(Some)
            .map_err(Refusal::CError),
    }
}

/// Binds a listener and serves it in a task. Binding errors are returned (the caller decides
/// whether they are fatal).
pub async fn start_listener(
    router: &Arc<Router>,
    entity: &Entity,
    agent: AgentSender,
) -> Result<Started, Refusal> {
    let name = entity.name().to_string();
    let role = entity.str("role").to_string();
    let link = LinkConfig::of(entity);
    let authenticate_peer = entity.bool("authenticatePeer");
    let tls = tls_config(router, entity, Side::Server { authenticate_peer })?;
    if let Some(config) = &tls {
        // `handle_listener_ssl_profile_mgmt_update`: a raised oldestValidOrdinal closes the
        // connections this listener accepted with an older ordinal.
        let (_, oldest) = config.ordinals();
        let oldest = AtomicU64::new(oldest);
        let (weak, name) = (Arc::downgrade(router), name.clone());
        config.on_update(Box::new(move |_, new_oldest| {
            let previous = oldest.load(Ordering::SeqCst);
            if new_oldest > previous {
                tracing::info!("Listeners {name} new oldest valid TLS ordinal: {new_oldest}, previous: {previous}");
                oldest.store(new_oldest, Ordering::SeqCst);
                if let Some(router) = weak.upgrade() {
                    router.close_expired(&name, new_oldest);
                }
            }
        }));
    }
    let host = match entity.str("host") {
        "" => "0.0.0.0",
        h => h,
    };
    let port = entity.str("port");
    let socket = TcpListener::bind(format!("{host}:{port}"))
        .await
        .map_err(|e| {
            Refusal::BadRequest(format!(
                "listener {name}: cannot listen on {host}:{port}: {e}"
            ))
        })?;
    tracing::info!("listener {name}: role {role} listening on {host}:{port}");
    let record = is_link_role(&role).then(|| {
        let identity = router.vanflow.start(
            vanflow::ROUTER_ACCESS,
            None,
            None,
            vec![
                (vanflow::NAME, Attr::Str(name.clone())),
                (vanflow::ROLE, Attr::Str(role.clone())),
                (vanflow::LINK_COUNT, Attr::Num(0)),
            ],
        );
        router.vanflow.bind(&format!("listener/{name}"), &identity);
        identity
    });
    let router = Arc::clone(router);
    let config = tls.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, remote)) = socket.accept().await else {
                continue;
            };
            // As Proton does for every socket (`configure_socket`): without it, management's
            // small request/answer frames wait out the peer's delayed ACK (40 ms each).
            let _ = tcp.set_nodelay(true);
            let (router, role, config, agent, name, record) = (
                Arc::clone(&router),
                role.clone(),
                config.clone(),
                agent.clone(),
                name.clone(),
                record.clone(),
            );
            tokio::spawn(async move {
                let Some(config) = config else {
                    tracing::warn!("listener {name}: plain connection from {remote} refused (this stand-in requires an sslProfile)");
                    return;
                };
                // The session is made with what the profile holds now, and keeps its ordinal.
                let Some((tls, tls_ordinal)) = config.acceptor() else {
                    return;
                };
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::warn!("listener {name}: TLS handshake with {remote} failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let user = tls::peer_subject(stream.get_ref().1.peer_certificates());
                if role == "normal" {
                    let from = Accepted {
                        listener: name,
                        tls_ordinal,
                        user,
                    };
                    serve_management(&router, stream, remote, agent, from).await;
                    return;
                }
                let end = PeerEnd {
                    dialler: false,
                    role,
                    link,
                    host: remote.to_string(),
                    user,
                    record,
                    tls_ordinal: Some(tls_ordinal),
                    listener: Some(name.clone()),
                    connector: None,
                };
                if let Err(e) = run_peer(&router, Box::new(stream), end, None, &mut false).await {
                    tracing::warn!("listener {name}: link from {remote} ended: {e}");
                }
            });
        }
    });
    Ok(Started {
        task: task.abort_handle(),
        tls,
    })
}

/// Who a listener accepted.
struct Accepted {
    listener: String,
    tls_ordinal: u64,
    user: Option<String>,
}

async fn serve_management<S>(
    router: &Arc<Router>,
    stream: S,
    remote: SocketAddr,
    agent: AgentSender,
    from: Accepted,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let id = router.next_id();
    let (close, closed) = watch::channel(None);
    let connection = ManagementConnection {
        host: remote.to_string(),
        opened_at: Instant::now(),
        user: from.user,
        tls_ordinal: Some(from.tls_ordinal),
        listener: from.listener,
        close,
    };
    router.state().management_connections.insert(id, connection);
    let served =
        management::serve_connection_until(stream, agent, Some(Arc::clone(router)), closed).await;
    if let Err(e) = served {
        tracing::debug!("management connection from {remote} ended: {e}");
    }
    router.state().management_connections.remove(&id);
}

/// What a connector's dialers share.
struct Ctor {
    router: Arc<Router>,
    name: String,
    role: String,
    host: String,
    port: String,
    link: LinkConfig,
    record: Option<String>,
    tls: Option<Arc<TlsConfig>>,
}

impl Ctor {
    /// The connector's `connectionMsg` after a failure, worded as
    /// `qd_connector_handle_transport_error` does.
    fn failed(&self, why: &str) -> String {
        format!("Connection to {}:{} failed: {why}", self.host, self.port)
    }

    /// Dial, then TLS (client certificate, server verified per the router's rules) with what
    /// the profile holds now. Returns the stream and its session's TLS ordinal.
    async fn attempt(&self) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, u64), String> {
        let (host, port) = (&self.host, &self.port);
        let tcp = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            TcpStream::connect(format!("{host}:{port}")),
        )
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| format!("connection to {host}:{port} failed: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some((tls, ordinal)) = self.tls.as_ref().and_then(|config| config.connector()) else {
            return Err(
                "this stand-in requires an sslProfile on inter-router connectors".to_string(),
            );
        };
        let stream =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(tls::server_name(host), tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
        Ok((stream, ordinal))
    }
}

/// One of a connector's dialers (the real router's `qd_connector_t`, of which a connector
/// entity has one, and a new one for each raised TLS ordinal).
struct Dialer {
    /// The profile's ordinal when it was made.
    ordinal: u64,
    /// Cleared when it must not dial again (its reconnect timer cancelled).
    reconnect: Arc<AtomicBool>,
    /// Set while it has a connection, or is making one.
    active: Arc<AtomicBool>,
    /// Closes its connection and ends it.
    stop: watch::Sender<bool>,
    task: AbortHandle,
}

impl Dialer {
    fn spawn(ctor: &Arc<Ctor>, tasks: &mut JoinSet<()>, ordinal: u64) -> Dialer {
        let reconnect = Arc::new(AtomicBool::new(true));
        let active = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let task = tasks.spawn(dial(
            Arc::clone(ctor),
            Arc::clone(&reconnect),
            Arc::clone(&active),
            stopped,
        ));
        Dialer {
            ordinal,
            reconnect,
            active,
            stop,
            task,
        }
    }

    /// `qd_connector_close`: no more dialling, and its connection, if any, is closed.
    fn close(&self) {
        self.reconnect.store(false, Ordering::SeqCst);
        self.stop.send_replace(true);
    }
}

/// Runs a connector: a dialer that dials at once and redials while the connector lives; an
/// update of the sslProfile adds and retires dialers (see the module's documentation).
pub fn start_connector(router: &Arc<Router>, entity: &Entity) -> Result<Started, Refusal> {
    let name = entity.name().to_string();
    let role = entity.str("role").to_string();
    let host = entity.str("host").to_string();
    let port = entity.str("port").to_string();
    let link = LinkConfig::of(entity);
    let side = Side::Client {
        host: host.clone(),
        verify_hostname: entity.bool("verifyHostname"),
    };
    let tls = tls_config(router, entity, side)?;
    let (updates_tx, updates) = mpsc::unbounded_channel();
    if let Some(config) = &tls {
        // Only inter-router and edge connectors follow the profile's ordinals.
        if matches!(role.as_str(), "inter-router" | "edge") {
            config.on_update(Box::new(move |ordinal, oldest| {
                let _ = updates_tx.send((ordinal, oldest));
            }));
        }
    }
    let record = is_link_role(&role).then(|| {
        let protocol = if tls.is_some() { "amqps" } else { "amqp" };
        let identity = router.vanflow.start(
            vanflow::LINK,
            None,
            None,
            vec![
                (vanflow::NAME, Attr::Str(name.clone())),
                (vanflow::ROLE, Attr::Str(role.clone())),
                (vanflow::LINK_COST, Attr::Num(u64::from(link.cost))),
                (vanflow::OPER_STATUS, Attr::Str("down".into())),
                (vanflow::DOWN_COUNT, Attr::Num(0)),
                (vanflow::PROTOCOL, Attr::Str(protocol.into())),
                (vanflow::DEST_PORT, Attr::Str(port.clone())),
                (vanflow::OCTETS, Attr::Num(0)),
                (vanflow::OCTETS_REVERSE, Attr::Num(0)),
                (vanflow::HTTP_PROXY, Attr::Str("no".into())),
            ],
        );
        router.vanflow.bind(&format!("connector/{name}"), &identity);
        identity
    });
    let ctor = Arc::new(Ctor {
        router: Arc::clone(router),
        name,
        role,
        host,
        port,
        link,
        record,
        tls: tls.clone(),
    });
    let task = tokio::spawn(supervise(ctor, updates));
    Ok(Started {
        task: task.abort_handle(),
        tls,
    })
}

/// A connector's dialers, and what the profile's updates do to them
/// (`handle_connector_ssl_profile_mgmt_update`). Ends (aborted) when the connector is deleted,
/// and its dialers with it.
async fn supervise(ctor: Arc<Ctor>, mut updates: mpsc::UnboundedReceiver<(u64, u64)>) {
    let (mut ordinal, mut oldest) = ctor.tls.as_ref().map_or((0, 0), |t| t.ordinals());
    let mut tasks = JoinSet::new();
    let mut dialers = vec![Dialer::spawn(&ctor, &mut tasks, ordinal)];
    let mut listening = true;
    loop {
        tokio::select! {
            update = updates.recv(), if listening => {
                let Some((new_ordinal, new_oldest)) = update else {
                    listening = false;
                    continue;
                };
                let name = &ctor.name;
                if new_oldest > oldest {
                    tracing::info!("Connector {name} new oldest valid TLS ordinal: {new_oldest}, previous: {oldest}");
                    dialers.retain(|dialer| {
                        let expired = dialer.ordinal < new_oldest;
                        if expired {
                            dialer.close();
                        }
                        !expired
                    });
                    oldest = new_oldest;
                }
                if new_ordinal > ordinal {
                    tracing::info!("Connector {name} new TLS ordinal: {new_ordinal}, previous: {ordinal}");
                    // Older connections carry on, but are not redialled; a dialer without a
                    // connection goes now.
                    dialers.retain(|dialer| {
                        dialer.reconnect.store(false, Ordering::SeqCst);
                        let active = dialer.active.load(Ordering::SeqCst);
                        if !active {
                            dialer.close();
                        }
                        active
                    });
                    ordinal = new_ordinal;
                    dialers.push(Dialer::spawn(&ctor, &mut tasks, ordinal));
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                dialers.retain(|dialer| !dialer.task.is_finished());
            }
            else => std::future::pending::<()>().await,
        }
    }
}

/// One dialer: dials at once, then again after each failure (5 s) or after its connection,
/// once opened, dropped (2 s), until told to stop.
async fn dial(
    ctor: Arc<Ctor>,
    reconnect: Arc<AtomicBool>,
    active: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let (router, name) = (&ctor.router, &ctor.name);
    let mut delay = Duration::ZERO;
    loop {
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        if !reconnect.load(Ordering::SeqCst) {
            return;
        }
        active.store(true, Ordering::SeqCst);
        delay = RETRY_AFTER_FAILURE;
        // The message stays what it was (the last failure, or the last connection opened).
        set_status(router, name, "CONNECTING", None);
        let attempt = tokio::select! {
            attempt = ctor.attempt() => attempt,
            _ = stop.wait_for(|stopped| *stopped) => {
                active.store(false, Ordering::SeqCst);
                return;
            }
        };
        match attempt {
            Ok((stream, tls_ordinal)) => {
                let end = PeerEnd {
                    dialler: true,
                    role: ctor.role.clone(),
                    link: ctor.link,
                    host: format!("{}:{}", ctor.host, ctor.port),
                    user: None,
                    record: ctor.record.clone(),
                    tls_ordinal: Some(tls_ordinal),
                    listener: None,
                    connector: Some(name.clone()),
                };
                let mut opened = false;
                let ended = run_peer(
                    router,
                    Box::new(stream),
                    end,
                    Some(stop.clone()),
                    &mut opened,
                )
                .await;
                if opened {
                    delay = RETRY_AFTER_OPEN;
                }
                let message = match ended {
                    Ok(()) => "connection closed by peer".to_string(),
                    Err(e) => e,
                };
                tracing::warn!(
                    "connector {name}: link to {}:{} down: {message}",
                    ctor.host,
                    ctor.port
                );
                set_status(router, name, "FAILED", Some(&ctor.failed(&message)));
            }
            Err(message) => {
                tracing::warn!("connector {name}: {message}");
                set_status(router, name, "FAILED", Some(&ctor.failed(&message)));
            }
        }
        active.store(false, Ordering::SeqCst);
        if !reconnect.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// A connector's `connectionStatus`, and its `connectionMsg` when `message` is given (the
/// real router keeps the last one: a failure, or the last connection opened).
fn set_status(router: &Router, name: &str, status: &str, message: Option<&str>) {
    if let Some(c) = router
        .state()
        .configured
        .get_mut(&("connector".to_string(), name.to_string()))
    {
        let message = match (message, c.status.take()) {
            (Some(message), _) => message.to_string(),
            (None, Some((_, kept))) => kept,
            (None, None) => String::new(),
        };
        c.status = Some((status.to_string(), message));
    }
}

fn is_link_role(role: &str) -> bool {
    matches!(role, "inter-router" | "edge" | "inter-edge")
}

/// A link came up or went down: the dialler's LINK record (operStatus, peer, timestamps, down
/// count, the TLS ordinal in use) or the listener's ROUTER_ACCESS record (linkCount, the TLS
/// ordinal in use).
fn link_record(router: &Router, end: &PeerEnd, up: bool, peer: Option<&str>) {
    let Some(identity) = end.record.as_deref() else {
        return;
    };
    let v = &router.vanflow;
    if up {
        if let Some(ordinal) = end.tls_ordinal {
            v.set(identity, vanflow::ACTIVE_TLS_ORDINAL, Attr::Num(ordinal));
        }
    }
    if end.dialler {
        if up {
            if let Some(peer) = peer {
                v.set(identity, vanflow::PEER, Attr::Str(peer.to_string()));
            }
            v.set(identity, vanflow::OPER_STATUS, Attr::Str("up".into()));
            v.set(
                identity,
                vanflow::UP_TIMESTAMP,
                Attr::Num(vanflow::now_us()),
            );
        } else {
            v.set(identity, vanflow::OPER_STATUS, Attr::Str("down".into()));
            v.set(
                identity,
                vanflow::DOWN_TIMESTAMP,
                Attr::Num(vanflow::now_us()),
            );
            v.add(identity, vanflow::DOWN_COUNT, 1);
        }
    } else {
        let count = router
            .state()
            .peers
            .values()
            .filter(|p| p.access.as_deref() == Some(identity))
            .count();
        v.set(identity, vanflow::LINK_COUNT, Attr::Num(count as u64));
    }
}

/// One end of an inter-router or edge link.
struct PeerEnd {
    /// This router dialled (its connector), else a listener accepted.
    dialler: bool,
    role: String,
    link: LinkConfig,
    host: String,
    /// The SASL EXTERNAL user (none on the dialling side).
    user: Option<String>,
    /// The LINK (dialler) or ROUTER_ACCESS (listener) vanflow record.
    record: Option<String>,
    tls_ordinal: Option<u64>,
    /// The listener that accepted it.
    listener: Option<String>,
    /// The connector that dialled it.
    connector: Option<String>,
}

/// One inter-router or edge link, from either end: exchange hellos (the listener refuses a
/// peer whose role differs from its own, as the real router does), then advertise addresses
/// and carry the streams the peer opens until the connection ends, is closed through its
/// [`Peer::close`], or `stop` turns true (its dialer is retired). `opened` is set once the
/// peer's hello came (the AMQP open of the real router).
async fn run_peer(
    router: &Arc<Router>,
    io: Box<dyn AsyncStream>,
    end: PeerEnd,
    mut stop: Option<watch::Receiver<bool>>,
    opened: &mut bool,
) -> Result<(), String> {
    let (dialler, role, link) = (end.dialler, end.role.as_str(), end.link);
    let (opener, mut inbound, driver) = mux::start(io, dialler);
    let control = if dialler {
        opener.open().await.map_err(|e| e.to_string())?
    } else {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.recv())
            .await
            .map_err(|_| "no hello from peer".to_string())?
            .ok_or("peer closed before hello")?
    };
    let (read, mut write) = tokio::io::split(control);
    let mut lines = BufReader::new(read).lines();
    let hello = Control::Hello(Hello {
        router_id: router.id.clone(),
        role: role.to_string(),
        mode: router.mode.clone(),
        cost: link.cost,
        access_id: if dialler { None } else { end.record.clone() },
    });
    write_control(&mut write, &hello).await?;
    let peer_hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
            Ok(Control::Hello(h)) => h,
            _ => return Err("peer sent no hello".into()),
        },
        _ => return Err("peer sent no hello".into()),
    };
    *opened = true;
    if peer_hello.role != role {
        driver.abort();
        return Err(format!(
            "role mismatch: this end is '{role}', peer '{}' is '{}'",
            peer_hello.router_id, peer_hello.role
        ));
    }
    if peer_hello.router_id == router.id {
        driver.abort();
        return Err("link to self refused".into());
    }
    tracing::info!(
        "link up: {role} with router {} ({})",
        peer_hello.router_id,
        end.host
    );

    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<PeerMessage>();
    let (close, mut closed) = watch::channel(None);
    let id = router.next_id();
    let data_id = (role == "inter-router").then(|| router.next_id());
    router.state().peers.insert(
        id,
        Peer {
            router_id: peer_hello.router_id.clone(),
            role: role.to_string(),
            dir: if dialler { "out" } else { "in" },
            host: end.host.clone(),
            user: end.user.clone(),
            tls_ordinal: end.tls_ordinal,
            listener: end.listener.clone(),
            close,
            data_id,
            opened_at: Instant::now(),
            opener,
            control: control_tx,
            learned: crate::router::Advertisement::default(),
            last_sent: None,
            cost: link.cost.max(peer_hello.cost),
            capacity: link.capacity,
            access: if dialler { None } else { end.record.clone() },
        },
    );
    link_record(router, &end, true, peer_hello.access_id.as_deref());
    if let Some(connector) = &end.connector {
        // As `qd_connection_opened` in `amqp_adaptor.c` words it; not an error.
        let message = format!(
            "[C{id}] Connection Opened: dir=out host={} encrypted=TLSv1.3 auth=EXTERNAL \
             user=(null) container_id={}",
            end.host, peer_hello.router_id
        );
        set_status(router, connector, "SUCCESS", Some(&message));
    }
    router.topology_changed();

    let retired = async {
        match &mut stop {
            Some(stop) => {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(retired);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    let result = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => match serde_json::from_str(&line) {
                    Ok(Control::Heartbeat) => last_heard = Instant::now(),
                    Ok(Control::Vanflow(frame)) => {
                        last_heard = Instant::now();
                        vanflow::route(router, frame, Some(id));
                    }
                    Ok(Control::Advertise(advert)) => {
                        last_heard = Instant::now();
                        if let Some(peer) = router.state().peers.get_mut(&id) {
                            peer.learned = advert;
                        }
                        router.topology_changed();
                    }
                    _ => break Err(format!("bad control message: {line}")),
                },
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            },
            Some(message) = control_rx.recv() => {
                let message = match message {
                    PeerMessage::Advertise(advert) => Control::Advertise(advert),
                    PeerMessage::Vanflow(frame) => Control::Vanflow(frame),
                };
                if let Err(e) = write_control(&mut write, &message).await {
                    break Err(e);
                }
            }
            Some(stream) = inbound.recv() => {
                tokio::spawn(tcp::serve_peer_stream(Arc::clone(router), id, stream));
            }
            forced = closed_by(&mut closed) => {
                break Err(if forced {
                    "connection forced-closed by management request".to_string()
                } else {
                    "closed: its TLS ordinal has expired".to_string()
                });
            }
            () = &mut retired => {
                break Err("closed: its connector's TLS ordinal has expired".to_string());
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    break Err(format!("nothing heard from the peer for {}s", IDLE_TIMEOUT.as_secs()));
                }
                if let Err(e) = write_control(&mut write, &Control::Heartbeat).await {
                    break Err(e);
                }
            }
        }
    };
    router.state().peers.remove(&id);
    link_record(router, &end, false, None);
    driver.abort();
    router.topology_changed();
    tracing::info!("link down: {role} with router {}", peer_hello.router_id);
    result
}

/// Waits until `close` says to close a connection; true for a management force-close. A
/// dropped sender (the connection's entry removed) closes too.
pub async fn closed_by(close: &mut watch::Receiver<Option<bool>>) -> bool {
    close
        .wait_for(Option::is_some)
        .await
        .map(|value| *value == Some(true))
        .unwrap_or(false)
}

async fn write_control<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    message: &Control,
) -> Result<(), String> {
    let mut line = serde_json::to_vec(message).expect("serialisable");
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| e.to_string())?;
    write.flush().await.map_err(|e| e.to_string())
}

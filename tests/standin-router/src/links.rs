//! AMQP-facing listeners (roles normal / inter-router / edge) and connectors (inter-router /
//! edge) with the real router's TLS rules. A connector redials with backoff while its peer is
//! away and reports connectionStatus / connectionMsg as the real one does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Entity;
use crate::management::{self, AgentSender};
use crate::mux;
use crate::router::{Peer, PeerMessage, Router};
use crate::tcp::{self, AsyncStream};
use crate::tls::{self, Profile};
use crate::vanflow::{self, Attr};

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
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

fn profile_of(router: &Router, entity: &Entity) -> Result<Option<Profile>, String> {
    let name = entity.str("sslProfile");
    if name.is_empty() {
        return Ok(None);
    }
    let state = router.state();
    let profile = state
        .configured
        .get(&("sslProfile".to_string(), name.to_string()))
        .ok_or_else(|| format!("sslProfile '{name}' not found"))?;
    Profile::load(&profile.entity)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Binds a listener and serves it in a task. Binding errors are returned (the caller decides
/// whether they are fatal).
pub async fn start_listener(
    router: &Arc<Router>,
    entity: &Entity,
    agent: AgentSender,
) -> Result<tokio::task::AbortHandle, String> {
    let name = entity.name().to_string();
    let role = entity.str("role").to_string();
    let link = LinkConfig::of(entity);
    let tls = match profile_of(router, entity)? {
        Some(profile) => Some(TlsAcceptor::from(
            profile
                .server_config(entity.bool("authenticatePeer"))
                .map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let host = match entity.str("host") {
        "" => "0.0.0.0",
        h => h,
    };
    let port = entity.str("port");
    let socket = TcpListener::bind(format!("{host}:{port}"))
        .await
        .map_err(|e| format!("listener {name}: cannot listen on {host}:{port}: {e}"))?;
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
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, remote)) = socket.accept().await else {
                continue;
            };
            let (router, role, tls, agent, name, record) = (
                Arc::clone(&router),
                role.clone(),
                tls.clone(),
                agent.clone(),
                name.clone(),
                record.clone(),
            );
            tokio::spawn(async move {
                let Some(tls) = tls else {
                    tracing::warn!("listener {name}: plain connection from {remote} refused (this stand-in requires an sslProfile)");
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
                let user = peer_subject(stream.get_ref().1.peer_certificates());
                if role == "normal" {
                    serve_management(&router, stream, remote, agent).await;
                } else if let Err(e) = run_peer(
                    &router,
                    Box::new(stream),
                    false,
                    &role,
                    link,
                    remote.to_string(),
                    user,
                    record,
                )
                .await
                {
                    tracing::warn!("listener {name}: link from {remote} ended: {e}");
                }
            });
        }
    });
    Ok(task.abort_handle())
}

async fn serve_management<S>(
    router: &Arc<Router>,
    stream: S,
    remote: SocketAddr,
    agent: AgentSender,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let id = router.next_id();
    router
        .state()
        .management_connections
        .insert(id, (remote.to_string(), Instant::now()));
    if let Err(e) = management::serve_connection_with(stream, agent, Some(Arc::clone(router))).await
    {
        tracing::debug!("management connection from {remote} ended: {e}");
    }
    router.state().management_connections.remove(&id);
}

/// Runs a connector: dial, TLS (client certificate, server verified per the router's rules),
/// link; redial with backoff when the link fails or ends.
pub fn start_connector(
    router: &Arc<Router>,
    entity: &Entity,
) -> Result<tokio::task::AbortHandle, String> {
    let profile = profile_of(router, entity)?;
    let name = entity.name().to_string();
    let role = entity.str("role").to_string();
    let host = entity.str("host").to_string();
    let port = entity.str("port").to_string();
    let link = LinkConfig::of(entity);
    let tls = match &profile {
        Some(p) => Some(TlsConnector::from(
            p.client_config(&host, entity.bool("verifyHostname"))
                .map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let record = is_link_role(&role).then(|| {
        let protocol = if profile.is_some() { "amqps" } else { "amqp" };
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
    let router = Arc::clone(router);
    let task = tokio::spawn(async move {
        let mut backoff = BACKOFF_START;
        loop {
            set_status(&router, &name, "CONNECTING", "");
            let attempt = async {
                let tcp = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    TcpStream::connect(format!("{host}:{port}")),
                )
                .await
                .map_err(|_| "connection timed out".to_string())?
                .map_err(|e| format!("connection to {host}:{port} failed: {e}"))?;
                let _ = tcp.set_nodelay(true);
                let Some(tls) = &tls else {
                    return Err(
                        "this stand-in requires an sslProfile on inter-router connectors"
                            .to_string(),
                    );
                };
                let stream = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    tls.connect(tls::server_name(&host), tcp),
                )
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
                let user = peer_subject(stream.get_ref().1.peer_certificates());
                Ok::<_, String>((stream, user))
            };
            match attempt.await {
                Ok((stream, user)) => {
                    set_status(&router, &name, "SUCCESS", "");
                    backoff = BACKOFF_START;
                    let ended = run_peer(
                        &router,
                        Box::new(stream),
                        true,
                        &role,
                        link,
                        format!("{host}:{port}"),
                        user,
                        record.clone(),
                    )
                    .await;
                    let message = match ended {
                        Ok(()) => "connection closed by peer".to_string(),
                        Err(e) => e,
                    };
                    tracing::warn!("connector {name}: link to {host}:{port} down: {message}");
                    set_status(&router, &name, "FAILED", &message);
                }
                Err(message) => {
                    tracing::warn!("connector {name}: {message}");
                    set_status(&router, &name, "FAILED", &message);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    Ok(task.abort_handle())
}

fn set_status(router: &Router, name: &str, status: &str, message: &str) {
    if let Some(c) = router
        .state()
        .configured
        .get_mut(&("connector".to_string(), name.to_string()))
    {
        c.status = Some((status.to_string(), message.to_string()));
    }
}

fn peer_subject(certs: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> String {
    use x509_parser::prelude::*;
    certs
        .and_then(|c| c.first())
        .and_then(|der| {
            X509Certificate::from_der(der)
                .ok()
                .map(|(_, cert)| cert.subject().to_string())
        })
        .unwrap_or_default()
}

fn is_link_role(role: &str) -> bool {
    matches!(role, "inter-router" | "edge" | "inter-edge")
}

/// A link came up or went down: the dialler's LINK record (operStatus, peer, timestamps, down
/// count) or the listener's ROUTER_ACCESS record (linkCount).
fn link_record(router: &Router, record: Option<&str>, dialler: bool, up: bool, peer: Option<&str>) {
    let Some(identity) = record else { return };
    let v = &router.vanflow;
    if dialler {
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

/// One inter-router or edge link, from either end: exchange hellos (the listener refuses a
/// peer whose role differs from its own, as the real router does), then advertise addresses
/// and carry the streams the peer opens until the connection ends.
#[allow(clippy::too_many_arguments)] // the link's ends and its vanflow record
async fn run_peer(
    router: &Arc<Router>,
    io: Box<dyn AsyncStream>,
    dialler: bool,
    role: &str,
    link: LinkConfig,
    host: String,
    user: String,
    record: Option<String>,
) -> Result<(), String> {
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
        access_id: if dialler { None } else { record.clone() },
    });
    write_control(&mut write, &hello).await?;
    let peer_hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => match serde_json::from_str(&line) {
            Ok(Control::Hello(h)) => h,
            _ => return Err("peer sent no hello".into()),
        },
        _ => return Err("peer sent no hello".into()),
    };
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
        "link up: {role} with router {} ({host})",
        peer_hello.router_id
    );

    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<PeerMessage>();
    let id = router.next_id();
    router.state().peers.insert(
        id,
        Peer {
            router_id: peer_hello.router_id.clone(),
            role: role.to_string(),
            dir: if dialler { "out" } else { "in" },
            host,
            user,
            opened_at: Instant::now(),
            opener,
            control: control_tx,
            learned: crate::router::Advertisement::default(),
            last_sent: None,
            cost: link.cost.max(peer_hello.cost),
            capacity: link.capacity,
            access: if dialler { None } else { record.clone() },
        },
    );
    link_record(
        router,
        record.as_deref(),
        dialler,
        true,
        peer_hello.access_id.as_deref(),
    );
    router.topology_changed();

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
    link_record(router, record.as_deref(), dialler, false, None);
    driver.abort();
    router.topology_changed();
    tracing::info!("link down: {role} with router {}", peer_hello.router_id);
    result
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

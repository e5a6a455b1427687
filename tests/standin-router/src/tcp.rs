//! The TCP adaptor: a connection accepted at a tcpListener of address A is carried to a
//! tcpConnector of address A, here or at a linked site, and connected there. A multi-address
//! tcpListener (`multiAddressStrategy` priority or weighted) picks A among its listenerAddresses
//! for each new connection.
//!
//! A tcpListener or tcpConnector with an sslProfile ends TLS at the router, as the real TCP
//! adaptor does (`src/adaptors/tcp/tcp_adaptor.c`): the listener finishes the handshake with
//! its client before anything is routed (a client that fails it is closed and nothing is
//! carried); the connector verifies the backend, and a backend that fails is a failed
//! connection (the client's is closed). Between routers the bytes go as any others.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Entity;
use crate::mux;
use crate::router::{
    ListenerAddressState, OpenStream, Route, RouteTo, Router, Strategy, TcpConnectorState,
    TcpListenerState, TcpTarget,
};
use crate::tls::{self, TlsConfig};
use crate::vanflow::{self, Attr};

/// A TLS handshake with a client or a backend that takes longer fails.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Registers a tcpListener; its socket opens once its address (one of its listenerAddresses,
/// for a multi-address one) is reachable. `tls` is its TLS server configuration.
pub fn add_listener(router: &Arc<Router>, entity: &Entity, tls: Option<Arc<TlsConfig>>) {
    router.state().tcp_listeners.insert(
        entity.name().to_string(),
        TcpListenerState {
            address: entity.str("address").to_string(),
            strategy: Strategy::parse(entity.str("multiAddressStrategy")),
            addresses: Vec::new(),
            accepting: None,
            failed: None,
            tls,
            opened: Arc::default(),
            closed: Arc::default(),
        },
    );
    if Strategy::parse(entity.str("multiAddressStrategy")) == Strategy::None {
        let identity = endpoint_record(router, vanflow::LISTENER, entity, entity.str("address"));
        router
            .vanflow
            .bind(&format!("tcpListener/{}", entity.name()), &identity);
    }
    router.topology_changed();
}

/// A LISTENER or CONNECTOR record: name, protocol, destHost/Port, vanAddress, flowCountL4 0
/// (a CONNECTOR also process).
fn endpoint_record(router: &Router, record_type: u32, entity: &Entity, address: &str) -> String {
    let mut attrs = vec![
        (vanflow::NAME, Attr::Str(entity.name().to_string())),
        (vanflow::PROTOCOL, Attr::Str("tcp".into())),
        (
            vanflow::DEST_HOST,
            Attr::Str(entity.str("host").to_string()),
        ),
        (
            vanflow::DEST_PORT,
            Attr::Str(entity.str("port").to_string()),
        ),
        (vanflow::VAN_ADDRESS, Attr::Str(address.to_string())),
        (vanflow::FLOW_COUNT_L4, Attr::Num(0)),
    ];
    if record_type == vanflow::CONNECTOR && !entity.str("processId").is_empty() {
        attrs.push((
            vanflow::PROCESS,
            Attr::Str(entity.str("processId").to_string()),
        ));
    }
    router.vanflow.start(record_type, None, None, attrs)
}

/// Registers a tcpConnector, which makes its address reachable. `tls` is its TLS client
/// configuration for the backend.
pub fn add_connector(router: &Arc<Router>, entity: &Entity, tls: Option<Arc<TlsConfig>>) {
    let seq = router.next_id();
    router.state().tcp_connectors.insert(
        entity.name().to_string(),
        TcpConnectorState {
            address: entity.str("address").to_string(),
            target: TcpTarget {
                name: entity.name().to_string(),
                host: entity.str("host").to_string(),
                port: entity.str("port").to_string(),
                tls,
            },
            open: Arc::new(AtomicUsize::new(0)),
            opened: Arc::new(AtomicU64::new(1)),
            closed: Arc::default(),
            seq,
        },
    );
    let identity = endpoint_record(router, vanflow::CONNECTOR, entity, entity.str("address"));
    router
        .vanflow
        .bind(&format!("tcpConnector/{}", entity.name()), &identity);
    router.topology_changed();
}

pub fn remove_connector(router: &Arc<Router>, name: &str) {
    router.state().tcp_connectors.remove(name);
}

pub fn remove_listener(router: &Arc<Router>, name: &str) {
    if let Some(listener) = router.state().tcp_listeners.remove(name) {
        if let Some(task) = listener.accepting {
            task.abort();
        }
    }
}

/// Adds a listenerAddress to its (multi-address) tcpListener, already checked to exist, in
/// the real router's order: before the first address of a value not above its own.
pub fn add_address(router: &Arc<Router>, entity: &Entity) {
    let listener = router
        .state()
        .configured
        .get(&(
            "tcpListener".to_string(),
            entity.str("listener").to_string(),
        ))
        .map(|c| c.entity.clone());
    if let Some(listener) = listener {
        // One LISTENER per address of a multi-address listener.
        let identity = endpoint_record(router, vanflow::LISTENER, &listener, entity.str("address"));
        router
            .vanflow
            .bind(&format!("listenerAddress/{}", entity.name()), &identity);
    }
    {
        let mut state = router.state();
        let Some(listener) = state.tcp_listeners.get_mut(entity.str("listener")) else {
            return;
        };
        let value = entity.int("value");
        let at = listener
            .addresses
            .iter()
            .position(|a| a.value <= value)
            .unwrap_or(listener.addresses.len());
        listener.addresses.insert(
            at,
            ListenerAddressState {
                name: entity.name().to_string(),
                address: entity.str("address").to_string(),
                value,
                opened: Arc::default(),
            },
        );
        tracing::info!(
            "tcpListener {}: address '{}' ({value})",
            entity.str("listener"),
            entity.str("address")
        );
    }
    router.topology_changed();
}

pub fn remove_address(router: &Arc<Router>, entity: &Entity) {
    {
        let mut state = router.state();
        if let Some(listener) = state.tcp_listeners.get_mut(entity.str("listener")) {
            listener.addresses.retain(|a| a.name != entity.name());
        }
    }
    router.topology_changed();
}

/// Opens (binds) or closes a tcpListener's socket. Closing refuses new connections; connections
/// already carried go on.
pub fn set_accepting(router: &Arc<Router>, name: &str, on: bool) {
    let mut state = router.state();
    let Some(entity) = state
        .configured
        .get(&("tcpListener".to_string(), name.to_string()))
        .map(|c| c.entity.clone())
    else {
        return;
    };
    let Some(listener) = state.tcp_listeners.get_mut(name) else {
        return;
    };
    if !on {
        listener.failed = None;
        if let Some(task) = listener.accepting.take() {
            task.abort();
            tracing::info!(
                "tcpListener {name}: no reachable tcpConnector for '{}', not accepting",
                listener_addresses(listener)
            );
        }
        return;
    }
    if listener.accepting.is_some() || listener.failed.is_some() {
        return;
    }
    let host = match entity.str("host") {
        "" => "0.0.0.0",
        h => h,
    };
    let bound = std::net::TcpListener::bind((host, entity.str("port").parse::<u16>().unwrap_or(0)))
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .and_then(TcpListener::from_std);
    match bound {
        Ok(socket) => {
            tracing::info!(
                "tcpListener {name}: accepting on {host}:{} for '{}'",
                entity.str("port"),
                listener_addresses(listener)
            );
            let (opened, closed) = (Arc::clone(&listener.opened), Arc::clone(&listener.closed));
            let tls = listener.tls.clone();
            let router = Arc::clone(router);
            let name = name.to_string();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((client, remote)) = socket.accept().await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    opened.fetch_add(1, Ordering::Relaxed);
                    let closed = Arc::clone(&closed);
                    let Some(address) = router.listener_target(&name) else {
                        // Deleted while this connection was being accepted.
                        closed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (router, tls, name) = (Arc::clone(&router), tls.clone(), name.clone());
                    tokio::spawn(async move {
                        // A new TLS session takes what the sslProfile holds now.
                        let tls = tls.and_then(|config| config.acceptor()).map(|(tls, _)| tls);
                        let client: Box<dyn AsyncStream> = match tls {
                            None => Box::new(client),
                            Some(tls) => {
                                let handshake =
                                    tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(client));
                                match handshake.await {
                                    Ok(Ok(stream)) => Box::new(stream),
                                    Ok(Err(e)) => {
                                        tracing::warn!("tcpListener {name}: TLS handshake with {remote} failed: {e}");
                                        closed.fetch_add(1, Ordering::Relaxed);
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::warn!("tcpListener {name}: TLS handshake with {remote} timed out");
                                        closed.fetch_add(1, Ordering::Relaxed);
                                        return;
                                    }
                                }
                            }
                        };
                        // Let connections that ended just before this one was accepted be
                        // counted as ended first (the real router's core thread takes events
                        // in order).
                        for _ in 0..4 {
                            tokio::task::yield_now().await;
                        }
                        let record = connection_record(&router, &name, &address, remote);
                        let client: Box<dyn AsyncStream> = match &record {
                            Some((_, counts)) => Box::new(Counted::new(client, Arc::clone(counts))),
                            None => client,
                        };
                        let identity = record.as_ref().map(|(identity, _)| identity.as_str());
                        let outcome = carry(router.clone(), address, client, None, identity).await;
                        if let Some((identity, _)) = record {
                            let v = &router.vanflow;
                            if let Err(e) = outcome {
                                v.set(
                                    &identity,
                                    vanflow::ERROR_LISTENER_SIDE,
                                    Attr::Str("delivery-failed (destination unreachable)".into()),
                                );
                                v.set(&identity, vanflow::ERROR_CONNECTOR_SIDE, Attr::Str(e));
                            }
                            v.end(&identity);
                        }
                        closed.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            listener.accepting = Some(task.abort_handle());
        }
        Err(e) => {
            // Proton's condition: "<strerror> - listen on <host>:<port>".
            let reason = e.to_string();
            let reason = reason.split(" (os error").next().unwrap_or_default();
            let message = format!("{reason} - listen on {host}:{}", entity.str("port"));
            tracing::error!(
                "Listener {name}: proactor listener error on {host}:{}: proton:io ({message})",
                entity.str("port")
            );
            listener.failed = Some(message);
        }
    }
}

/// The address, or the listenerAddresses' addresses joined, for log lines.
fn listener_addresses(listener: &TcpListenerState) -> String {
    match listener.strategy {
        Strategy::None => listener.address.clone(),
        _ => listener
            .addresses
            .iter()
            .map(|a| a.address.as_str())
            .collect::<Vec<_>>()
            .join("', '"),
    }
}

/// Byte counts and first-byte times of one client connection, for its BIFLOW_TPORT record.
#[derive(Default)]
pub struct Counts {
    /// Client → service (octets).
    pub read: Arc<AtomicU64>,
    /// Service → client (octetsReverse).
    pub written: Arc<AtomicU64>,
    /// First byte from the client → first byte back to it, µs (0 until known).
    pub latency: Arc<AtomicU64>,
    first_read_us: AtomicU64,
}

/// A BIFLOW_TPORT for a connection accepted at tcpListener `name` for `address`; counts
/// flowCountL4 on its LISTENER.
fn connection_record(
    router: &Router,
    name: &str,
    address: &str,
    remote: std::net::SocketAddr,
) -> Option<(String, Arc<Counts>)> {
    let v = &router.vanflow;
    let listener = v.lookup(&format!("tcpListener/{name}")).or_else(|| {
        let state = router.state();
        let chosen = state
            .tcp_listeners
            .get(name)?
            .addresses
            .iter()
            .find(|a| a.address == address)?
            .name
            .clone();
        drop(state);
        v.lookup(&format!("listenerAddress/{chosen}"))
    })?;
    v.add(&listener, vanflow::FLOW_COUNT_L4, 1);
    let identity = v.start(
        vanflow::BIFLOW_TPORT,
        None,
        Some(listener),
        vec![
            (vanflow::SOURCE_HOST, Attr::Str(remote.ip().to_string())),
            (vanflow::SOURCE_PORT, Attr::Str(remote.port().to_string())),
            (vanflow::OCTETS, Attr::Num(0)),
            (vanflow::OCTETS_REVERSE, Attr::Num(0)),
        ],
    );
    let counts = Arc::new(Counts::default());
    v.counter(&identity, vanflow::OCTETS, Arc::clone(&counts.read));
    v.counter(
        &identity,
        vanflow::OCTETS_REVERSE,
        Arc::clone(&counts.written),
    );
    v.counter(&identity, vanflow::LATENCY, Arc::clone(&counts.latency));
    Some((identity, counts))
}

/// A client stream that counts bytes both ways and measures the listener-side latency.
struct Counted {
    inner: Box<dyn AsyncStream>,
    counts: Arc<Counts>,
}

impl Counted {
    fn new(inner: Box<dyn AsyncStream>, counts: Arc<Counts>) -> Counted {
        Counted { inner, counts }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            let c = &self.counts;
            if c.read.fetch_add(n, Ordering::Relaxed) == 0 {
                c.first_read_us.store(vanflow::now_us(), Ordering::Relaxed);
            }
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            let c = &self.counts;
            if *n > 0 && c.written.fetch_add(*n as u64, Ordering::Relaxed) == 0 {
                let first = c.first_read_us.load(Ordering::Relaxed);
                if first > 0 {
                    let latency = vanflow::now_us().saturating_sub(first).max(1);
                    c.latency.store(latency, Ordering::Relaxed);
                }
            }
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects `client` to a connector of `address` and copies both ways until both sides close.
/// The connection's BIFLOW_TPORT `record` names the CONNECTOR that answered as soon as it
/// answers: the real router merges the connector side into the record during the connection.
async fn carry(
    router: Arc<Router>,
    address: String,
    mut client: Box<dyn AsyncStream>,
    from_peer: Option<u64>,
    record: Option<&str>,
) -> Result<(), String> {
    match open_route(&router, &address, from_peer).await {
        Ok((mut upstream, _open, connector)) => {
            if let (Some(identity), Some(connector)) = (record, connector) {
                router
                    .vanflow
                    .set(identity, vanflow::CONNECTOR_REF, Attr::Str(connector));
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            Ok(())
        }
        Err(e) => {
            tracing::info!("connection for '{address}' failed: {e}");
            Err(e.to_string())
        }
    }
}

/// Opens a stream to where the router sends a new connection for `address`; the returned
/// [`OpenStream`] counts it on that path until dropped.
async fn open_route(
    router: &Arc<Router>,
    address: &str,
    from_peer: Option<u64>,
) -> io::Result<(Box<dyn AsyncStream>, OpenStream, Option<String>)> {
    let Some(Route { to, open }) = router.route(address, from_peer) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no tcpConnector for '{address}'"),
        ));
    };
    let (stream, connector): (Box<dyn AsyncStream>, Option<String>) = match to {
        RouteTo::Local(target) => {
            let record = router
                .vanflow
                .lookup(&format!("tcpConnector/{}", target.name));
            if let Some(identity) = &record {
                router.vanflow.connector_connection(identity);
            }
            (connect_backend(&target).await?, record)
        }
        RouteTo::Peer(opener) => {
            let mut stream = opener.open().await?;
            stream.write_all(format!("{address}\n").as_bytes()).await?;
            let reply = read_line(&mut stream).await?;
            if let Some(reason) = reply.strip_prefix("error ") {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    reason.to_string(),
                ));
            }
            // `ok <CONNECTOR identity>` from a stand-in that knows it.
            let connector = reply
                .strip_prefix("ok ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from);
            (Box::new(stream), connector)
        }
    };
    Ok((stream, open, connector))
}

/// Connects to a tcpConnector's backend, with TLS when the tcpConnector has an sslProfile.
async fn connect_backend(target: &TcpTarget) -> io::Result<Box<dyn AsyncStream>> {
    let (name, host, port) = (&target.name, &target.host, &target.port);
    let stream = TcpStream::connect(format!("{host}:{port}"))
        .await
        .inspect_err(|e| {
            tracing::info!("tcpConnector {name}: cannot connect to {host}:{port}: {e}")
        })?;
    let _ = stream.set_nodelay(true);
    let Some((tls, _)) = target.tls.as_ref().and_then(|config| config.connector()) else {
        return Ok(Box::new(stream));
    };
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tls.connect(tls::server_name(host), stream),
    );
    match handshake.await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::warn!("tcpConnector {name}: TLS handshake with {host}:{port} failed: {e}");
            Err(e)
        }
        Err(_) => {
            tracing::warn!("tcpConnector {name}: TLS handshake with {host}:{port} timed out");
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        }
    }
}

/// A stream opened by a peer: its first line names the address; answer `ok` or `error …`
/// once the far end is connected, then carry bytes.
pub async fn serve_peer_stream(router: Arc<Router>, peer: u64, mut stream: mux::Stream) {
    let Ok(address) = read_line(&mut stream).await else {
        return;
    };
    match open_route(&router, &address, Some(peer)).await {
        Ok((mut upstream, _open, connector)) => {
            let reply = match connector {
                Some(c) => format!("ok {c}\n"),
                None => "ok\n".to_string(),
            };
            if stream.write_all(reply.as_bytes()).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            }
        }
        Err(e) => {
            let _ = stream.write_all(format!("error {e}\n").as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Reads one header line byte by byte, so that nothing after it is consumed.
async fn read_line(stream: &mut mux::Stream) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            return String::from_utf8(line)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        }
        line.push(byte);
        if line.len() > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "header line too long",
            ));
        }
    }
}

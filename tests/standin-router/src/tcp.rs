//! The TCP adaptor: a connection accepted at a tcpListener of address A is carried to a
//! tcpConnector of address A, here or at a linked site, and connected there. A multi-address
//! tcpListener (`multiAddressStrategy` priority or weighted) picks A among its listenerAddresses
//! for each new connection.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Entity;
use crate::mux;
use crate::router::{ListenerAddressState, Route, Router, Strategy, TcpListenerState};

pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Registers a tcpListener; its socket opens once its address (one of its listenerAddresses,
/// for a multi-address one) is reachable.
pub fn add_listener(router: &Arc<Router>, entity: &Entity) {
    router.state().tcp_listeners.insert(
        entity.name().to_string(),
        TcpListenerState {
            address: entity.str("address").to_string(),
            strategy: Strategy::parse(entity.str("multiAddressStrategy")),
            addresses: Vec::new(),
            accepting: None,
            opened: Arc::default(),
            closed: Arc::default(),
        },
    );
    router.topology_changed();
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
        if let Some(task) = listener.accepting.take() {
            task.abort();
            tracing::info!(
                "tcpListener {name}: no reachable tcpConnector for '{}', not accepting",
                listener_addresses(listener)
            );
        }
        return;
    }
    if listener.accepting.is_some() {
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
            let router = Arc::clone(router);
            let name = name.to_string();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = socket.accept().await else {
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
                    let router = Arc::clone(&router);
                    tokio::spawn(async move {
                        carry(router, address, Box::new(client), None).await;
                        closed.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            listener.accepting = Some(task.abort_handle());
        }
        Err(e) => tracing::error!(
            "tcpListener {name}: cannot listen on {host}:{}: {e}",
            entity.str("port")
        ),
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

/// Connects `client` to a connector of `address` and copies both ways until both sides close.
async fn carry(
    router: Arc<Router>,
    address: String,
    mut client: Box<dyn AsyncStream>,
    from_peer: Option<u64>,
) {
    match open_route(&router, &address, from_peer).await {
        Ok(mut upstream) => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => tracing::debug!("no route for '{address}': {e}"),
    }
}

async fn open_route(
    router: &Arc<Router>,
    address: &str,
    from_peer: Option<u64>,
) -> io::Result<Box<dyn AsyncStream>> {
    match router.route(address, from_peer) {
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no tcpConnector for '{address}'"),
        )),
        Some(Route::Local(target)) => {
            let stream = TcpStream::connect(format!("{}:{}", target.host, target.port)).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
        Some(Route::Peer(opener)) => {
            let mut stream = opener.open().await?;
            stream.write_all(format!("{address}\n").as_bytes()).await?;
            let reply = read_line(&mut stream).await?;
            match reply.strip_prefix("error ") {
                Some(reason) => Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    reason.to_string(),
                )),
                None => Ok(Box::new(stream)),
            }
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
        Ok(mut upstream) => {
            if stream.write_all(b"ok\n").await.is_ok() {
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

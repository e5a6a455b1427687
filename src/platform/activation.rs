//! Socket activation for vansite's own servers (the forwarders, the grant server, the
//! console): the listening socket systemd passes to the process its `.socket` unit starts
//! (sd_listen_fds(3)), and accepting on it.

use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A server's socket unit that does not listen after it was started.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {role} cannot listen on port {port}: {unit} is {state}. Is the port used by another \
     program or by another site's {role}? {fix}"
)]
pub struct SocketFailed {
    /// The server, in words ("grant server", "console").
    pub role: &'static str,
    pub unit: String,
    pub port: u16,
    pub state: String,
    /// How to choose another port.
    pub fix: &'static str,
}

/// The first file descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

/// The listening socket systemd passed to this process, if it did (and only to it).
pub fn systemd_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    let count: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Not for processes this one might start.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !for_us || count == 0 {
        return Ok(None);
    }
    // SAFETY: systemd passed fd 3 to this process (LISTEN_PID is ours, LISTEN_FDS ≥ 1) and
    // nothing else in it uses that descriptor; from here on the listener owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(LISTEN_FDS_START) };
    listener.local_addr()?; // fails unless it is a socket
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// The next connection. An accept that fails (out of descriptors and the like) is logged and
/// tried again a little later instead of spinning.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

//! Socket activation for vansite's own servers (the grant server, the console): the listening
//! socket systemd passes to the process its `.socket` unit starts (sd_listen_fds(3)).

use std::os::fd::FromRawFd;

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

//! Per-Listener forwarders: systemd holds each Listener's port (a socket unit) and a small
//! forwarder (vansite's own binary, `vansite forward`, a sandboxed systemd service) carries
//! each client to the router's loopback-only tcpListener. A client that
//! connects while the router restarts, or before the service is reachable, waits (bounded)
//! instead of being refused.

pub mod owner;
pub mod proxy;
pub mod repair;

pub use proxy::ForwardError;

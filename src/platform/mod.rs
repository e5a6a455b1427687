//! The host's service manager and container engine: systemd (D-Bus) and podman.

pub mod podman;
pub mod systemd;

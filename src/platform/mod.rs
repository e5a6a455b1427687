//! The host's service manager and container engine: systemd (D-Bus, socket activation) and
//! podman.

pub mod activation;
pub mod descriptors;
pub mod podman;
pub mod systemd;

//! vansite: join a Linux host to a Skupper network.

pub mod podman;
pub mod router;
pub mod systemd;

//! vansite: join a Linux host to a Skupper network.

pub mod router;
pub mod systemd;

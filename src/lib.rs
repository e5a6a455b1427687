//! vansite: join a Linux host to a Skupper network.

pub mod quadlet;
pub mod router;

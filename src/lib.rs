//! vansite: join a Linux host to a Skupper network.

pub mod certs;
pub mod resources;
pub mod router;
pub mod settings;
pub mod site;

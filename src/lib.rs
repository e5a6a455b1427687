//! vansite: join a Linux host to a Skupper network.
//!
//! The module tree follows DESIGN.md: the site model (`site`: layout, lock, atomic writes,
//! resources on disk, and the operations init/status/delete), pure renderers (`resources`,
//! `certs`, `router::config`, `quadlet`), effects at the edges (`systemd`, `podman`,
//! `router::management`), and the command line (`cli`, `error`, `settings`).

pub mod certs;
pub mod cli;
pub mod error;
pub mod podman;
pub mod quadlet;
pub mod resources;
pub mod router;
pub mod settings;
pub mod site;
pub mod systemd;
pub mod tls;
pub mod tokens;

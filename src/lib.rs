//! vansite: join a Linux host to a Skupper network.
//!
//! The module tree follows DESIGN.md: the site model (`site`: layout, lock, atomic writes,
//! resources on disk, and the operations init/status/delete), pure renderers (`resources`,
//! `certs`, `router::config`, `quadlet`), effects at the edges (`systemd`, `podman`,
//! `router::management`), the issuing side of links (`grants`: tokens, the grant server, static
//! links), the command line (`cli`, `error`, `settings`, `progress`), and the host check (`doctor`).

pub mod certs;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod forward;
pub mod grants;
pub mod ops;
pub mod plan;
pub mod podman;
pub mod progress;
pub mod quadlet;
pub mod resources;
pub mod router;
pub mod settings;
pub mod site;
pub mod systemd;
pub mod tls;
pub mod tokens;

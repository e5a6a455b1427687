//! vansite: join a Linux host to a Skupper network.
//!
//! The module tree follows DESIGN.md, from the bottom up: the Skupper resources (`model`),
//! pure renderers (`render`, `quadlet`) and decisions (`plan`), the site on disk (`store`),
//! effects at the edges (`platform`: systemd and podman; `router`: management; `tokens`: the
//! redeem client; `grants`: the grant server; `forward`: the forwarder; `observe`: vanflow;
//! `console`: the web console), the files a person hands over, read with a size limit (`input`),
//! one error type (`error`), the operations (`ops`: one file per verb, and the one apply), and
//! the command line (`cli`).

pub mod cli;
pub mod console;
pub mod error;
pub mod forward;
#[cfg(test)]
mod golden;
pub mod grants;
pub mod input;
pub mod model;
pub mod observe;
pub mod ops;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod quadlet;
pub mod render;
pub mod router;
pub mod settings;
pub mod store;
pub mod tls;
pub mod tokens;

//! Talking to the skupper-router that vansite runs.

pub mod config;
pub mod live;
pub mod management;

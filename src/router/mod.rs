//! Talking to the skupper-router that vansite runs.

pub mod entity;
pub mod management;
pub mod views;

//! Operations: each command loads the site's resources, edits them and hands the result to
//! the one apply (`apply`).

pub mod apply;
pub mod manifest;

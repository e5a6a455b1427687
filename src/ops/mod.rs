//! Operations, one file per verb: each loads the site's resources, edits them and hands the
//! result to the one apply (`apply`). `doctor` checks the host; `status` reads.

pub mod apply;
pub mod delete;
pub mod doctor;
pub mod grant_server;
pub mod init;
pub mod link;
pub mod manifest;
pub mod services;
pub mod status;
pub mod token;

//! Operations, one file per verb: each loads the site's resources, edits them and hands the
//! result to the one apply (`apply`). `doctor` checks the host; `status` reads.

pub mod access;
pub mod activated;
pub mod apply;
pub mod console;
pub mod debug;
pub mod delete;
pub mod doctor;
pub mod expiry;
pub mod grant_server;
pub mod init;
pub mod link;
pub mod manifest;
pub mod network;
pub mod ports;
pub mod services;
pub mod status;
pub mod token;

/// A time as RFC 3339 in UTC, to the second, as `status` shows times.
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A time as Unix seconds (negative before 1970), as certificate validity is compared.
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

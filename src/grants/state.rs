//! What a grant has used up, kept on disk so that counts and expiry hold across grant-server
//! restarts and between concurrent redemptions: `runtime/grants/<uid>.json` (the AccessGrant
//! status fields Skupper keeps: redemptions, expirationTime; plus the failed attempts), read and
//! changed only while holding an exclusive `flock` on `runtime/grants/<uid>.lock` (a
//! [`SiteLock`], the same kind of lock that serialises commands on a site). The JSON file
//! is replaced atomically (temp + rename), so a crash leaves the old count or the new one; the
//! lock file is never replaced, so every holder locks the same inode.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::{files, SiteLock};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantState {
    /// Successful redemptions so far.
    pub redemptions: u32,
    /// RFC 3339, UTC, milliseconds.
    pub expiration_time: String,
    /// Wrong codes presented so far; each makes the next wrong answer slower.
    #[serde(default)]
    pub failed_attempts: u32,
}

impl GrantState {
    /// A fresh state for a grant issued now, valid for `window`.
    pub fn new(now: SystemTime, window: Duration) -> GrantState {
        GrantState {
            redemptions: 0,
            expiration_time: rfc3339(now + window),
            failed_attempts: 0,
        }
    }

    /// Whether the grant has expired at `now`; an unreadable time counts as expired.
    pub fn expired(&self, now: SystemTime) -> bool {
        match chrono::DateTime::parse_from_rfc3339(&self.expiration_time) {
            Ok(expiration) => SystemTime::from(expiration) <= now,
            Err(_) => true,
        }
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A grant's state under its lock; the lock is released when this is dropped.
pub struct LockedState {
    _lock: SiteLock,
    path: PathBuf,
    /// None when the grant has no state file (never issued here, or removed).
    pub state: Option<GrantState>,
}

impl LockedState {
    /// Waits for the grant's lock, then reads its state. `dir` is `runtime/grants`.
    pub fn lock(dir: &Path, uid: &str) -> io::Result<LockedState> {
        let lock = SiteLock::acquire(&dir.join(format!("{uid}.lock")), || {})?;
        Ok(LockedState {
            _lock: lock,
            state: read(dir, uid)?,
            path: state_path(dir, uid),
        })
    }

    /// Replaces the state file atomically (still under the lock).
    pub fn save(&mut self, state: GrantState) -> io::Result<()> {
        let json = serde_json::to_vec(&state).map_err(io::Error::other)?;
        files::write_atomic(&self.path, &json, files::SECRET)?;
        self.state = Some(state);
        Ok(())
    }
}

/// A grant's state as last saved, without its lock (the file is replaced whole, so a reader
/// sees one save or the next); None when it has none.
pub fn read(dir: &Path, uid: &str) -> io::Result<Option<GrantState>> {
    let path = state_path(dir, uid);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn state_path(dir: &Path, uid: &str) -> PathBuf {
    dir.join(format!("{uid}.json"))
}

/// Removes a grant's state and lock files (when the grant itself is removed).
pub fn remove(dir: &Path, uid: &str) -> io::Result<()> {
    files::remove_if_present(&state_path(dir, uid))?;
    files::remove_if_present(&dir.join(format!("{uid}.lock")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vansite-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn expiry_is_checked_against_the_clock() {
        let now = SystemTime::now();
        let state = GrantState::new(now, Duration::from_secs(60));
        assert!(!state.expired(now));
        assert!(state.expired(now + Duration::from_secs(61)));
        let broken = GrantState {
            expiration_time: "soon".into(),
            ..state
        };
        assert!(broken.expired(now));
    }

    #[test]
    fn concurrent_increments_are_never_lost() {
        let dir = temp_dir("concurrent");
        let mut first = LockedState::lock(&dir, "g").unwrap();
        assert!(first.state.is_none());
        first
            .save(GrantState::new(SystemTime::now(), Duration::from_secs(60)))
            .unwrap();
        drop(first);
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (dir, barrier) = (dir.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..25 {
                        let mut locked = LockedState::lock(&dir, "g").unwrap();
                        let mut state = locked.state.clone().unwrap();
                        state.redemptions += 1;
                        locked.save(state).unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let locked = LockedState::lock(&dir, "g").unwrap();
        assert_eq!(locked.state.as_ref().unwrap().redemptions, 200);
        drop(locked);
        remove(&dir, "g").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}

//! One lock per site: concurrent vansite commands on the same namespace take turns instead of
//! interleaving writes. The lock is an advisory `flock` on a file in the user's runtime
//! directory, released by the kernel when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::files;

pub struct SiteLock {
    _file: File,
    path: PathBuf,
}

impl SiteLock {
    /// Takes the lock, waiting for another command that holds it; `on_wait` is called once
    /// if it has to wait (to tell the person why nothing happens).
    pub fn acquire(path: &Path, on_wait: impl FnOnce()) -> io::Result<SiteLock> {
        if let Some(dir) = path.parent() {
            files::create_dir(dir, files::PRIVATE_DIR)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock()?;
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        Ok(SiteLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` while no command holds the lock at `path`, under a shared lock taken
    /// without waiting, so that none can start meanwhile; None when one holds it. For readers
    /// of what a command leaves midway (its journal), which is no sign of trouble while that
    /// command still runs.
    pub fn unless_held<T>(path: &Path, read: impl FnOnce() -> T) -> Option<T> {
        let Ok(file) = File::open(path) else {
            // No lock file: no command ever ran (or the site is being made anew).
            return Some(read());
        };
        match file.try_lock_shared() {
            Ok(()) => Some(read()),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Error(_)) => Some(read()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let path = std::env::temp_dir().join(format!(
            "vansite-lock-test-{}/site.lock",
            std::process::id()
        ));
        let first = SiteLock::acquire(&path, || panic!("nothing holds it yet")).unwrap();
        let waited = Arc::new(AtomicBool::new(false));
        let (waited_in_thread, path_in_thread) = (Arc::clone(&waited), path.clone());
        let second = std::thread::spawn(move || {
            let _lock = SiteLock::acquire(&path_in_thread, || {
                waited_in_thread.store(true, Ordering::SeqCst)
            })
            .unwrap();
        });
        let start = std::time::Instant::now();
        while !waited.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the second holder never had to wait"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !second.is_finished(),
            "it must not get the lock while the first holds it"
        );
        drop(first);
        second.join().unwrap();
    }

    #[test]
    fn a_reader_skips_what_a_running_command_holds() {
        let path = std::env::temp_dir().join(format!(
            "vansite-lock-test-{}/reader.lock",
            std::process::id()
        ));
        assert_eq!(
            SiteLock::unless_held(&path, || 1),
            Some(1),
            "no lock file yet"
        );
        let held = SiteLock::acquire(&path, || panic!("nothing holds it yet")).unwrap();
        assert_eq!(SiteLock::unless_held(&path, || 2), None);
        drop(held);
        assert_eq!(SiteLock::unless_held(&path, || 3), Some(3));
        // The reader's shared lock is gone with it: a command takes the lock without waiting.
        let _again = SiteLock::acquire(&path, || panic!("the reader kept the lock")).unwrap();
    }
}

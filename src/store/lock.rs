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
}

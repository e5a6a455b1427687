//! Files that are never half-written: each write goes to a temporary file in the same
//! directory, is synced, then renamed over the target, so a crash or a kill leaves either the
//! old file or the new one. Secrets are created with their final mode (0600) from the start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode for private keys and other secrets.
pub const SECRET: u32 = 0o600;
/// Mode for everything else vansite writes.
pub const PUBLIC: u32 = 0o644;
/// Mode for the site's directories (Skupper's are 0755; ours hold private keys).
pub const PRIVATE_DIR: u32 = 0o700;

const TEMP_MARKER: &str = ".vansite-tmp.";

/// Writes `contents` to `path` atomically with `mode`. Returns whether the file changed, so
/// callers can skip reloads and restarts when nothing did.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<bool> {
    if let Ok(existing) = fs::read(path) {
        if existing == contents && mode_of(path) == Some(mode) {
            return Ok(false);
        }
    }
    StagedFile::create(path, mode)?.commit(contents)?;
    Ok(true)
}

/// A file on its way to `target`: its temporary file already made (with its mode) in the
/// target's directory, so that a directory that cannot take it is found before anything else
/// changes, while its content is not known yet. [`StagedFile::commit`] writes, syncs and
/// renames it over the target; dropped uncommitted, the temporary file goes.
#[derive(Debug)]
pub struct StagedFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl StagedFile {
    pub fn create(target: &Path, mode: u32) -> io::Result<StagedFile> {
        let dir = target
            .parent()
            .ok_or_else(|| io::Error::other(format!("{} has no parent", target.display())))?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let temp = dir.join(format!(".{name}{TEMP_MARKER}{}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        let staged = StagedFile {
            temp,
            target: target.to_path_buf(),
            file: Some(file),
        };
        // The mode given to open() is filtered by the umask; set it exactly.
        staged
            .file
            .as_ref()
            .expect("just opened")
            .set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(staged)
    }

    /// Puts `contents` at the target in one step.
    pub fn commit(mut self, contents: &[u8]) -> io::Result<()> {
        let mut file = self.file.take().expect("committed once");
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&self.temp, &self.target)?;
        let dir = self.target.parent().expect("checked in create");
        File::open(dir)?.sync_all()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // After a successful rename the temporary name is gone: nothing to remove.
        let _ = fs::remove_file(&self.temp);
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// Creates `dir` and its missing parents with `mode`.
pub fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// Removes temporary files a killed vansite left under `dir`.
pub fn remove_leftover_temps(dir: &Path) -> io::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_leftover_temps(&path)?;
        } else if entry.file_name().to_string_lossy().contains(TEMP_MARKER) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Puts directory `new` in place of `target` in one step: `renameat2(RENAME_EXCHANGE)` swaps
/// them (the old content then sits at `new`), or a plain rename when `target` does not exist
/// yet. The parent is synced, so the swap survives a crash.
pub fn exchange_dirs(new: &Path, target: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    if target.exists() {
        renameat_with(CWD, new, CWD, target, RenameFlags::EXCHANGE)?;
    } else {
        fs::rename(new, target)?;
    }
    if let Some(parent) = target.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Removes `dir` if it exists and is empty; true if it was removed.
pub fn remove_dir_if_empty(dir: &Path) -> io::Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Removes `path` if it exists; true if something was removed.
pub fn remove_if_present(path: &Path) -> io::Result<bool> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vansite-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_dir(&dir, PRIVATE_DIR).unwrap();
        dir
    }

    #[test]
    fn writes_with_exact_mode_and_reports_change() {
        let dir = temp_dir("mode");
        let key = dir.join("tls.key");
        assert!(write_atomic(&key, b"secret", SECRET).unwrap());
        assert_eq!(mode_of(&key), Some(0o600));
        assert!(
            !write_atomic(&key, b"secret", SECRET).unwrap(),
            "same content: no change"
        );
        assert!(write_atomic(&key, b"other", SECRET).unwrap());
        assert_eq!(fs::read(&key).unwrap(), b"other");
        assert_eq!(mode_of(&dir), Some(0o700));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("tls.key")],
            "no temporary file left"
        );
    }

    #[test]
    fn a_staged_file_is_the_target_once_committed_and_nothing_before() {
        let dir = temp_dir("staged");
        let target = dir.join("west.token");
        let entries = || fs::read_dir(&dir).unwrap().count();
        drop(StagedFile::create(&target, SECRET).unwrap());
        assert_eq!(entries(), 0, "dropped uncommitted: nothing left");
        let staged = StagedFile::create(&target, SECRET).unwrap();
        assert!(!target.exists(), "not there before the commit");
        staged.commit(b"token").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"token");
        assert_eq!(mode_of(&target), Some(0o600));
        assert_eq!(entries(), 1);
        let missing = dir.join("missing").join("west.token");
        assert!(StagedFile::create(&missing, SECRET).is_err());
    }

    #[test]
    fn directories_are_exchanged_whole() {
        let dir = temp_dir("exchange");
        let (old, new) = (dir.join("resources"), dir.join("staged"));
        create_dir(&new, PRIVATE_DIR).unwrap();
        fs::write(new.join("a"), b"1").unwrap();
        exchange_dirs(&new, &old).unwrap();
        assert_eq!(
            fs::read(old.join("a")).unwrap(),
            b"1",
            "first time: a rename"
        );
        create_dir(&new, PRIVATE_DIR).unwrap();
        fs::write(new.join("b"), b"2").unwrap();
        exchange_dirs(&new, &old).unwrap();
        assert!(old.join("b").exists() && !old.join("a").exists());
        assert!(
            new.join("a").exists(),
            "the old content is left at the staging path"
        );
        assert!(!remove_dir_if_empty(&new).unwrap(), "not empty");
        fs::remove_file(new.join("a")).unwrap();
        assert!(remove_dir_if_empty(&new).unwrap());
        assert!(!remove_dir_if_empty(&new).unwrap(), "already gone");
    }

    #[test]
    fn leftover_temps_are_removed() {
        let dir = temp_dir("leftover");
        create_dir(&dir.join("sub"), PRIVATE_DIR).unwrap();
        let leftover = dir
            .join("sub")
            .join(format!(".skrouterd.json{TEMP_MARKER}123"));
        fs::write(&leftover, b"half").unwrap();
        fs::write(dir.join("keep"), b"x").unwrap();
        remove_leftover_temps(&dir).unwrap();
        assert!(!leftover.exists());
        assert!(dir.join("keep").exists());
    }
}

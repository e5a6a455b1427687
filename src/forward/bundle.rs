//! What a forwarder container runs: vansite's own executable together with the dynamic loader
//! and shared libraries it runs with on this host, copied into the site's `runtime/forwarder/`
//! and mounted read-only into the router image that is already pulled.
//!
//! Why this way: the forwarder must run whatever glibc the host and the image have. Started by
//! the host's own loader (`ld.so --library-path`), the binary uses the host's libc inside any
//! image, so no extra image is pulled and the install stays `cargo install` (a static build
//! would need a special toolchain setup for every user). Copies rather than bind mounts of the
//! host's files: SELinux relabelling (`:z`) then touches only vansite's copies, and a glibc
//! update on the host cannot leave a running forwarder with a mismatched loader and libc.
//! A statically linked vansite (no loader) is copied alone and run directly.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::store::files;

/// Where the bundle appears inside the forwarder container.
pub const MOUNT_POINT: &str = "/opt/vansite";
const EXECUTABLE: &str = "vansite";
const LIBRARIES: &str = "lib";
const PT_INTERP: u32 = 3;

/// Copies the running vansite and what it links into `dir`, for [`command_line`].
pub fn prepare(dir: &Path) -> io::Result<()> {
    let exe = fs::canonicalize("/proc/self/exe")?;
    files::create_dir(&dir.join(LIBRARIES), 0o755)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    copy_if_changed(&exe, &dir.join(EXECUTABLE))?;
    let Some(loader) = interpreter(&exe)? else {
        return Ok(());
    };
    for library in mapped_libraries(&exe)? {
        let name = library.file_name().expect("mapped files have names");
        copy_if_changed(&library, &dir.join(LIBRARIES).join(name))?;
    }
    let loader_name = loader_name(&loader)?;
    if !dir.join(LIBRARIES).join(&loader_name).exists() {
        copy_if_changed(
            &fs::canonicalize(&loader)?,
            &dir.join(LIBRARIES).join(&loader_name),
        )?;
    }
    Ok(())
}

/// The command line, as seen inside the container, that starts the vansite [`prepare`] copies;
/// copies nothing.
pub fn command_line() -> io::Result<Vec<String>> {
    let exe = fs::canonicalize("/proc/self/exe")?;
    let in_container = |relative: String| format!("{MOUNT_POINT}/{relative}");
    let Some(loader) = interpreter(&exe)? else {
        return Ok(vec![in_container(EXECUTABLE.into())]);
    };
    Ok(vec![
        in_container(format!("{LIBRARIES}/{}", loader_name(&loader)?)),
        "--library-path".into(),
        in_container(LIBRARIES.into()),
        in_container(EXECUTABLE.into()),
    ])
}

fn loader_name(loader: &str) -> io::Result<String> {
    Ok(Path::new(loader)
        .file_name()
        .ok_or_else(|| io::Error::other(format!("odd ELF interpreter {loader}")))?
        .to_string_lossy()
        .into_owned())
}

/// The ELF program interpreter (`PT_INTERP`) of a 64-bit little-endian executable, if any.
fn interpreter(exe: &Path) -> io::Result<Option<String>> {
    let mut header = Vec::new();
    fs::File::open(exe)?
        .take(64 * 1024)
        .read_to_end(&mut header)?;
    let bad = || {
        io::Error::other(format!(
            "{} is not a 64-bit little-endian ELF file",
            exe.display()
        ))
    };
    let u16_at = |at: usize| {
        header
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |at: usize| {
        header
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        header
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    if header.get(..5) != Some(b"\x7fELF\x02") || header.get(5) != Some(&1) {
        return Err(bad());
    }
    let (phoff, phentsize, phnum) = (
        u64_at(0x20).ok_or_else(bad)?,
        u16_at(0x36).ok_or_else(bad)?,
        u16_at(0x38).ok_or_else(bad)?,
    );
    for index in 0..phnum {
        let entry = phoff + index * phentsize;
        if u32_at(entry).ok_or_else(bad)? != PT_INTERP {
            continue;
        }
        let (offset, size) = (
            u64_at(entry + 8).ok_or_else(bad)?,
            u64_at(entry + 32).ok_or_else(bad)?,
        );
        let path = header.get(offset..offset + size).ok_or_else(bad)?;
        let path = path.split(|b| *b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

/// The shared objects mapped into this process (the loader among them), as real paths.
fn mapped_libraries(exe: &Path) -> io::Result<Vec<PathBuf>> {
    let maps = fs::read_to_string("/proc/self/maps")?;
    let mut found: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with('/') && path.contains(".so"))
        .map(PathBuf::from)
        .filter(|path| path != exe && path.is_file())
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Copies `from` to `to` (atomically, mode 0755) unless `to` already has its size and time.
fn copy_if_changed(from: &Path, to: &Path) -> io::Result<()> {
    let source = fs::metadata(from)?;
    if let Ok(target) = fs::metadata(to) {
        if target.len() == source.len() && target.modified()? == source.modified()? {
            return Ok(());
        }
    }
    let temp = to.with_extension("vansite-copy");
    let result = (|| {
        fs::copy(from, &temp)?;
        let file = fs::File::options().write(true).open(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(0o755))?;
        file.set_modified(source.modified()?)?;
        file.sync_all()?;
        fs::rename(&temp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_runs_like_the_original() {
        let dir = std::env::temp_dir().join(format!("vansite-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        prepare(&dir).unwrap();
        let command = command_line().unwrap();
        assert!(command
            .iter()
            .all(|word| word.starts_with(MOUNT_POINT) || word.starts_with("--")));
        // Run it from the copy, as the container would (with the mount point mapped back).
        let local: Vec<String> = command
            .iter()
            .map(|w| w.replace(MOUNT_POINT, &dir.display().to_string()))
            .collect();
        let output = std::process::Command::new(&local[0])
            .args(&local[1..])
            .arg("--help")
            .output()
            .unwrap();
        // The test binary itself was copied: it answers --help with libtest's usage.
        assert!(output.status.success(), "{output:?}");
        let copied = fs::metadata(dir.join(EXECUTABLE))
            .unwrap()
            .modified()
            .unwrap();
        prepare(&dir).unwrap();
        assert_eq!(
            fs::metadata(dir.join(EXECUTABLE))
                .unwrap()
                .modified()
                .unwrap(),
            copied,
            "a second prepare copies nothing"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Which Podman release's quadlet generator the user manager runs: the keys a quadlet file may
//! use depend on it, not on the `podman` binary (on most hosts both come from one package).
//! Detection is the module's only I/O.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// A Podman release, as far as quadlet keys are concerned (suffixes like `-rhel` or `-dev` are
/// ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodmanVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PodmanVersion {
    /// Podman 4.4, the first release with quadlet: vansite's floor.
    pub const FLOOR: PodmanVersion = PodmanVersion::new(4, 4, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> PodmanVersion {
        PodmanVersion {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for PodmanVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no Podman version in {0:?}: expected something like \"5.4.2\" or \"podman version 4.9.4-rhel\"")]
pub struct ParseVersionError(String);

impl FromStr for PodmanVersion {
    type Err = ParseVersionError;

    /// Accepts `quadlet -version` (`5.4.2`) and `podman --version` (`podman version 4.3.1`)
    /// output: the first word that starts with `MAJOR.MINOR`.
    fn from_str(text: &str) -> Result<PodmanVersion, ParseVersionError> {
        text.split_whitespace()
            .find_map(parse_version_word)
            .ok_or_else(|| ParseVersionError(text.trim().to_string()))
    }
}

fn parse_version_word(word: &str) -> Option<PodmanVersion> {
    let numeric_end = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let mut numbers = word[..numeric_end].split('.');
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    let patch = match numbers.next() {
        Some(patch) => patch.parse().ok()?,
        None => 0,
    };
    Some(PodmanVersion::new(major, minor, patch))
}

/// The directories systemd searches for user generators (systemd.generator(7)).
pub const USER_GENERATOR_DIRS: [&str; 4] = [
    "/run/systemd/user-generators",
    "/etc/systemd/user-generators",
    "/usr/local/lib/systemd/user-generators",
    "/usr/lib/systemd/user-generators",
];

/// Podman installs its quadlet binary into the user generator dirs under this name.
pub const USER_GENERATOR_NAME: &str = "podman-user-generator";

/// Where Podman installs the quadlet binary itself.
pub const QUADLET_BINARY: &str = "/usr/libexec/podman/quadlet";

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "no quadlet generator: no {USER_GENERATOR_NAME} in {dirs} and no {QUADLET_BINARY}; \
         install podman ≥ 4.4 (the first release with quadlet)",
        dirs = USER_GENERATOR_DIRS.join(", ")
    )]
    NoGenerator,
    #[error(
        "{binary} exists but no {USER_GENERATOR_NAME} in {dirs}, so the user manager never runs \
         it; reinstall podman (≥ 4.4) or link it there",
        binary = .0.display(),
        dirs = USER_GENERATOR_DIRS.join(", ")
    )]
    NotAUserGenerator(PathBuf),
    #[error(
        "cannot tell the quadlet generator's version: {generator} has no -version (Podman 4.4) \
         and `podman --version` failed: {reason}",
        generator = .generator.display()
    )]
    Unknown { generator: PathBuf, reason: String },
    #[error("the quadlet generator {generator} printed no version: {source}", generator = .generator.display())]
    Unparsable {
        generator: PathBuf,
        source: ParseVersionError,
    },
}

/// The version of the quadlet generator this host's user manager runs.
pub fn detect_generator_version() -> Result<PodmanVersion, DetectError> {
    let dirs = USER_GENERATOR_DIRS.map(Path::new);
    detect_in(&dirs, Path::new(QUADLET_BINARY), Path::new("podman"))
}

/// `detect_generator_version` with its paths given, for tests. The first generator dir with
/// `podman-user-generator` wins (the order systemd uses); `-version` exists from Podman 4.5, so
/// without it the generator is 4.4 and `podman --version` names the package's release.
pub(crate) fn detect_in(
    generator_dirs: &[&Path],
    quadlet_binary: &Path,
    podman: &Path,
) -> Result<PodmanVersion, DetectError> {
    let Some(generator) = generator_dirs
        .iter()
        .map(|dir| dir.join(USER_GENERATOR_NAME))
        .find(|path| path.exists())
    else {
        return Err(if quadlet_binary.exists() {
            DetectError::NotAUserGenerator(quadlet_binary.to_path_buf())
        } else {
            DetectError::NoGenerator
        });
    };
    // `-version` only prints; a generator without it stops at the unknown flag (exit 2).
    let own = Command::new(&generator).arg("-version").output();
    let text = match own {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        _ => podman_version_text(podman).map_err(|reason| DetectError::Unknown {
            generator: generator.clone(),
            reason,
        })?,
    };
    text.parse()
        .map_err(|source| DetectError::Unparsable { generator, source })
}

/// The release of the `podman` binary on PATH (the one quadlet's units run), from
/// `podman --version`; the error says why there is none.
pub fn podman_binary_version() -> Result<PodmanVersion, String> {
    podman_version_text(Path::new("podman"))?
        .parse()
        .map_err(|e: ParseVersionError| e.to_string())
}

fn podman_version_text(podman: &Path) -> Result<String, String> {
    let output = Command::new(podman)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", podman.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_generator_and_podman_outputs() {
        let cases = [
            ("5.4.2\n", PodmanVersion::new(5, 4, 2)),
            ("4.9.4-rhel", PodmanVersion::new(4, 9, 4)),
            ("podman version 4.3.1\n", PodmanVersion::new(4, 3, 1)),
            ("podman version 5.6.0-dev", PodmanVersion::new(5, 6, 0)),
            ("4.4", PodmanVersion::new(4, 4, 0)),
        ];
        for (text, version) in cases {
            assert_eq!(text.parse::<PodmanVersion>().unwrap(), version, "{text:?}");
        }
        for text in ["", "podman version", "v5", "five.four"] {
            assert!(text.parse::<PodmanVersion>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        assert!(PodmanVersion::new(4, 10, 0) > PodmanVersion::new(4, 9, 4));
        assert!(PodmanVersion::new(5, 0, 0) > PodmanVersion::new(4, 99, 0));
        assert_eq!(PodmanVersion::FLOOR.to_string(), "4.4.0");
    }

    fn script(path: &Path, body: &str) {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vansite-quadlet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("generators")).unwrap();
        dir
    }

    #[test]
    fn asks_the_user_generator_then_podman() {
        let dir = temp_dir("detect");
        let generators = dir.join("generators");
        let podman = dir.join("podman");
        script(&podman, r#"echo "podman version 4.4.1""#);

        let none = detect_in(&[&generators], &dir.join("quadlet"), &podman).unwrap_err();
        assert!(matches!(none, DetectError::NoGenerator), "{none}");
        assert!(none.to_string().contains("install podman ≥ 4.4"), "{none}");

        script(&dir.join("quadlet"), "exit 0");
        let unlinked = detect_in(&[&generators], &dir.join("quadlet"), &podman).unwrap_err();
        assert!(
            matches!(unlinked, DetectError::NotAUserGenerator(_)),
            "{unlinked}"
        );

        let generator = generators.join(USER_GENERATOR_NAME);
        script(&generator, r#"[ "$1" = -version ] && echo 5.2.2"#);
        let found = detect_in(&[&generators], &dir.join("quadlet"), &podman).unwrap();
        assert_eq!(found, PodmanVersion::new(5, 2, 2));

        // Podman 4.4's generator has no -version: the flag parser exits 2.
        script(
            &generator,
            "echo 'flag provided but not defined: -version' >&2; exit 2",
        );
        let fallback = detect_in(&[&generators], &dir.join("quadlet"), &podman).unwrap();
        assert_eq!(fallback, PodmanVersion::new(4, 4, 1));

        let unknown =
            detect_in(&[&generators], &dir.join("quadlet"), &dir.join("no-podman")).unwrap_err();
        assert!(matches!(unknown, DetectError::Unknown { .. }), "{unknown}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The generator installed on this machine (tests/testhost/testhost.sh setup), if any.
    #[test]
    fn detects_this_machines_generator_when_installed() {
        match detect_generator_version() {
            Ok(version) => assert!(version >= PodmanVersion::FLOOR, "{version}"),
            Err(error) => eprintln!("no quadlet generator here: {error}"),
        }
    }
}

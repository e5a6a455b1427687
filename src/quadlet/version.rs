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
    /// Podman 4.4, the first release with quadlet: vansite's floor for the generator, and
    /// for podman itself (see [`check_runtime`]).
    pub const FLOOR: PodmanVersion = PodmanVersion::new(4, 4, 0);
    /// The oldest podman whose service answers the libpod API v4 vansite asks about
    /// containers: the least podman under a newer generator, with the container-id drop-in.
    pub const API_FLOOR: PodmanVersion = PodmanVersion::new(4, 0, 0);

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
    #[error(
        "the quadlet generator is {0}, older than {floor}; install podman ≥ 4.4",
        floor = PodmanVersion::FLOOR
    )]
    OldGenerator(PodmanVersion),
    #[error("no usable podman: {0}; install podman ≥ 4.4 (e.g. `sudo dnf install podman`)")]
    NoPodman(String),
    #[error(
        "podman {podman} is older than {floor}: it never deletes the container-id file \
         (--cidfile) of quadlet {generator}'s units, so the router's unit would start once and \
         every restart would fail ('container id file exists'); install podman ≥ 4.4 with its \
         own quadlet (RHEL ≥ 9.2, Fedora ≥ 37, Debian ≥ 13, Ubuntu ≥ 24.04), or add a drop-in \
         for every user service, ~/.config/systemd/user/service.d/10-cidfile.conf: \
         `[Service]` `ExecStartPre=-/bin/rm -f %t/%N.cid`",
        floor = PodmanVersion::FLOOR
    )]
    OldPodman {
        podman: PodmanVersion,
        generator: PodmanVersion,
    },
    #[error(
        "podman {0} is older than {floor}, whose service API (libpod v4) vansite uses; install \
         podman ≥ 4.4",
        floor = PodmanVersion::API_FLOOR
    )]
    PodmanTooOld(PodmanVersion),
}

/// What runs vansite's units here: quadlet turns vansite's `.container` files into services
/// (its release decides which keys vansite may write), podman runs them (its release must
/// handle what the generator's units ask of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodmanRuntime {
    pub generator: PodmanVersion,
    pub podman: PodmanVersion,
    /// podman < 4.4 under a newer generator: it runs only because a drop-in removes the
    /// container-id files podman leaves behind.
    pub cidfile_workaround: bool,
}

/// Whether this host's generator and podman can run vansite's units (`init` refuses what
/// cannot, `doctor` says the same): the generator ≥ 4.4 (the first with quadlet) and podman
/// ≥ 4.4, whose `podman rm --cidfile` (quadlet's ExecStop) deletes the container-id file
/// that the next start's `podman run --cidfile` must not find. An older podman 4.x under a
/// newer generator runs only with a drop-in that removes that file before each start.
pub fn check_runtime(
    generator: Result<PodmanVersion, DetectError>,
    podman: Result<PodmanVersion, String>,
    cidfile_removed: bool,
) -> Result<PodmanRuntime, DetectError> {
    let generator = generator?;
    if generator < PodmanVersion::FLOOR {
        return Err(DetectError::OldGenerator(generator));
    }
    let podman = podman.map_err(DetectError::NoPodman)?;
    if podman < PodmanVersion::API_FLOOR {
        return Err(DetectError::PodmanTooOld(podman));
    }
    let cidfile_workaround = podman < PodmanVersion::FLOOR;
    if cidfile_workaround && !cidfile_removed {
        return Err(DetectError::OldPodman { podman, generator });
    }
    Ok(PodmanRuntime {
        generator,
        podman,
        cidfile_workaround,
    })
}

/// The directories of drop-ins for every user service (`service.d/`, systemd.unit(5)), the
/// user's own (`user_unit_dir`, `~/.config/systemd/user`, when known) first.
pub fn service_drop_in_dirs(user_unit_dir: Option<&Path>) -> Vec<PathBuf> {
    user_unit_dir
        .into_iter()
        .chain([
            Path::new("/etc/systemd/user"),
            Path::new("/run/systemd/user"),
            Path::new("/usr/local/lib/systemd/user"),
            Path::new("/usr/lib/systemd/user"),
        ])
        .map(|dir| dir.join("service.d"))
        .collect()
}

/// Whether a drop-in in `dirs` removes quadlet's container-id file (`%t/%N.cid`) before a
/// service starts (an `ExecStartPre=` naming it).
pub fn removes_stale_cidfiles(dirs: &[PathBuf]) -> bool {
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "conf"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .any(|text| {
            text.lines().any(|line| {
                let line = line.trim();
                line.starts_with("ExecStartPre=") && line.contains("%t/%N.cid")
            })
        })
}

/// [`check_runtime`] for this host; `user_unit_dir` is `~/.config/systemd/user`.
pub fn detect_runtime(user_unit_dir: Option<&Path>) -> Result<PodmanRuntime, DetectError> {
    // Both ask a program for its version (podman's Go start-up is the slower): at once.
    let (generator, podman) = std::thread::scope(|scope| {
        let podman = scope.spawn(podman_binary_version);
        let generator = detect_generator_version();
        (
            generator,
            podman.join().expect("podman --version does not panic"),
        )
    });
    check_runtime(
        generator,
        podman,
        removes_stale_cidfiles(&service_drop_in_dirs(user_unit_dir)),
    )
}

/// The version of the quadlet generator this host's user manager runs, asked once per process
/// (a command checks the host, then plans for it).
pub fn detect_generator_version() -> Result<PodmanVersion, DetectError> {
    static DETECTED: std::sync::OnceLock<PodmanVersion> = std::sync::OnceLock::new();
    if let Some(version) = DETECTED.get() {
        return Ok(*version);
    }
    let dirs = USER_GENERATOR_DIRS.map(Path::new);
    let version = detect_in(&dirs, Path::new(QUADLET_BINARY), Path::new("podman"))?;
    Ok(*DETECTED.get_or_init(|| version))
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

    #[test]
    fn podman_older_than_its_generator_runs_only_with_the_container_id_drop_in() {
        let v = PodmanVersion::new;
        let runtime = |podman: PodmanVersion, removed: bool| {
            check_runtime(Ok(v(5, 4, 2)), Ok(podman), removed)
        };
        // One release of both: fine, with or without the drop-in.
        let same = runtime(v(4, 9, 4), false).unwrap();
        assert!(!same.cidfile_workaround);
        // Debian 12's podman 4.3.1 under quadlet 5.4.2 (the test hosts): refused without the
        // drop-in, with why and both ways out; accepted, as a workaround, with it.
        let refused = runtime(v(4, 3, 1), false).unwrap_err().to_string();
        for words in [
            "podman 4.3.1 is older than 4.4.0",
            "container id file exists",
            "install podman ≥ 4.4",
            "ExecStartPre=-/bin/rm -f %t/%N.cid",
        ] {
            assert!(refused.contains(words), "{words}: {refused}");
        }
        assert!(runtime(v(4, 3, 1), true).unwrap().cidfile_workaround);
        // Older than the service API vansite uses: no drop-in helps.
        assert!(matches!(
            runtime(v(3, 4, 4), true),
            Err(DetectError::PodmanTooOld(_))
        ));
        assert!(matches!(
            check_runtime(Ok(v(5, 4, 2)), Err("not found".into()), true),
            Err(DetectError::NoPodman(_))
        ));
        assert!(matches!(
            check_runtime(Err(DetectError::NoGenerator), Ok(v(5, 4, 2)), true),
            Err(DetectError::NoGenerator)
        ));
    }

    #[test]
    fn a_drop_in_for_every_service_that_removes_the_container_id_file_is_found() {
        let dir = temp_dir("drop-in");
        let dirs = service_drop_in_dirs(Some(&dir));
        assert!(!removes_stale_cidfiles(&dirs));
        std::fs::create_dir_all(&dirs[0]).unwrap();
        std::fs::write(
            dirs[0].join("10-other.conf"),
            "[Service]\nExecStartPre=/bin/true\n",
        )
        .unwrap();
        std::fs::write(
            dirs[0].join("cid.txt"),
            "ExecStartPre=-/bin/rm -f %t/%N.cid",
        )
        .unwrap();
        assert!(
            !removes_stale_cidfiles(&dirs),
            "only .conf files are drop-ins"
        );
        std::fs::write(
            dirs[0].join("10-cidfile.conf"),
            "[Service]\nExecStartPre=-/bin/rm -f %t/%N.cid\n",
        )
        .unwrap();
        assert!(removes_stale_cidfiles(&dirs));
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

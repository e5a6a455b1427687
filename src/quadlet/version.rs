//! Which Podman release's quadlet generator the user manager runs: the keys a quadlet file may
//! use depend on it, not on the `podman` binary (on most hosts both come from one package).
//! Detection is the module's only I/O: asking the programs, or the versions they printed
//! before ([`VersionCache`]).

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

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
    // Both may ask a program for its version (podman's Go start-up is the slower): at once.
    let (generator, podman) = VersionCache::asking_the_users(|cache| {
        std::thread::scope(|scope| {
            let podman = scope.spawn(|| podman_version(cache, Path::new("podman")));
            let generator = generator_version(cache);
            (
                generator,
                podman.join().expect("podman --version does not panic"),
            )
        })
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
    if let Some(version) = DETECTED_GENERATOR.get() {
        return Ok(*version);
    }
    VersionCache::asking_the_users(generator_version)
}

static DETECTED_GENERATOR: OnceLock<PodmanVersion> = OnceLock::new();

fn generator_version(cache: &VersionCache) -> Result<PodmanVersion, DetectError> {
    if let Some(version) = DETECTED_GENERATOR.get() {
        return Ok(*version);
    }
    let dirs = USER_GENERATOR_DIRS.map(Path::new);
    let version = detect_in(cache, &dirs, Path::new(QUADLET_BINARY), Path::new("podman"))?;
    Ok(*DETECTED_GENERATOR.get_or_init(|| version))
}

/// `detect_generator_version` with its paths given, for tests. The first generator dir with
/// `podman-user-generator` wins (the order systemd uses); `-version` exists from Podman 4.5, so
/// without it the generator is 4.4 and `podman --version` names the package's release.
pub(crate) fn detect_in(
    cache: &VersionCache,
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
    let text = match cache.printed(&generator, "-version") {
        Ok(text) => text,
        Err(_) => cache
            .printed(podman, "--version")
            .map_err(|reason| DetectError::Unknown {
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
    VersionCache::asking_the_users(|cache| podman_version(cache, Path::new("podman")))
}

fn podman_version(cache: &VersionCache, podman: &Path) -> Result<PodmanVersion, String> {
    cache
        .printed(podman, "--version")?
        .parse()
        .map_err(|e: ParseVersionError| e.to_string())
}

/// What programs printed when asked for their version, kept on disk by the identity of each
/// program's file (path, device, inode, size, modification time): a command does not start
/// podman (a Go program, ~90 ms) to ask what it answered before, and a program whose file
/// changed (an upgrade) is asked again. Only answers are kept (a failure is asked again); a
/// cache file that cannot be read or parsed is ignored, one that cannot be written is not
/// kept: it saves time, nothing depends on it.
#[derive(Debug, Default)]
pub struct VersionCache {
    /// None: nowhere to keep it (no home directory).
    file: Option<PathBuf>,
    known: Vec<PrintedVersion>,
    /// Answers learned by this process, for [`VersionCache::save`].
    learned: Mutex<Vec<PrintedVersion>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrintedVersion {
    program: ProgramFile,
    flag: String,
    output: String,
}

/// A program's file as it is now: any upgrade changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgramFile {
    /// Canonical: every symlink to one file is that file.
    path: PathBuf,
    device: u64,
    inode: u64,
    size: u64,
    modified_seconds: i64,
    modified_nanoseconds: i64,
}

impl ProgramFile {
    /// `program` as `Command` would run it: a bare name from PATH.
    fn of(program: &Path) -> Option<ProgramFile> {
        let found = if program.components().count() > 1 {
            program.to_path_buf()
        } else {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| {
                    std::fs::metadata(candidate)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })?
        };
        let path = std::fs::canonicalize(found).ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        Some(ProgramFile {
            path,
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_seconds: meta.mtime(),
            modified_nanoseconds: meta.mtime_nsec(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    versions: Vec<PrintedVersion>,
}

impl VersionCache {
    /// The user's: `~/.cache/vansite/versions.json` (`$XDG_CACHE_HOME`).
    fn of_user() -> VersionCache {
        match directories::BaseDirs::new() {
            Some(base) => VersionCache::at(&base.cache_dir().join("vansite/versions.json")),
            None => VersionCache::default(),
        }
    }

    /// `ask` with the user's cache ([`VersionCache::of_user`]), which then keeps what it learned.
    fn asking_the_users<T>(ask: impl FnOnce(&VersionCache) -> T) -> T {
        let cache = VersionCache::of_user();
        let answer = ask(&cache);
        cache.save();
        answer
    }

    /// The cache kept in `file`; empty when it is missing or not a cache.
    pub fn at(file: &Path) -> VersionCache {
        let known = std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .map(|cache| cache.versions)
            .unwrap_or_default();
        VersionCache {
            file: Some(file.to_path_buf()),
            known,
            learned: Mutex::default(),
        }
    }

    /// What `program flag` prints on stdout, from the cache when the program's file is still
    /// the one that printed it; the error says why there is nothing.
    fn printed(&self, program: &Path, flag: &str) -> Result<String, String> {
        let file = ProgramFile::of(program);
        if let Some(file) = &file {
            let learned = self.learned.lock().expect("not poisoned");
            if let Some(known) = self
                .known
                .iter()
                .chain(learned.iter())
                .find(|k| k.program == *file && k.flag == flag)
            {
                return Ok(known.output.clone());
            }
        }
        let output = Command::new(program)
            .arg(flag)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if let Some(program) = file {
            self.learned
                .lock()
                .expect("not poisoned")
                .push(PrintedVersion {
                    program,
                    flag: flag.to_string(),
                    output: text.clone(),
                });
        }
        Ok(text)
    }

    /// Keeps what was learned, in place of what was known of the same programs.
    pub fn save(&self) {
        let learned = std::mem::take(&mut *self.learned.lock().expect("not poisoned"));
        let Some(file) = self.file.as_ref().filter(|_| !learned.is_empty()) else {
            return;
        };
        let mut versions: Vec<PrintedVersion> = self
            .known
            .iter()
            .filter(|k| {
                !learned
                    .iter()
                    .any(|l| l.program.path == k.program.path && l.flag == k.flag)
            })
            .cloned()
            .collect();
        versions.extend(learned);
        let json = serde_json::to_vec_pretty(&CacheFile { versions }).expect("serialisable");
        let written = file
            .parent()
            .map_or(Ok(()), |dir| crate::store::files::create_dir(dir, 0o700))
            .and_then(|()| crate::store::files::write_atomic(file, &json, 0o644));
        if let Err(e) = written {
            tracing::debug!("cannot keep the versions in {}: {e}", file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let detect_in = |generators: &[&Path], quadlet: &Path, podman: &Path| {
            detect_in(&VersionCache::default(), generators, quadlet, podman)
        };

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

    /// A program that prints `version` and counts how often it was run (in `runs`).
    fn counting_program(path: &Path, runs: &Path, version: &str) {
        // Written beside and renamed over, as a package upgrade replaces a binary.
        let staged = path.with_extension("new");
        script(
            &staged,
            &format!(
                "echo run >> '{}'\necho 'podman version {version}'",
                runs.display()
            ),
        );
        std::fs::rename(&staged, path).unwrap();
    }

    fn runs(file: &Path) -> usize {
        std::fs::read_to_string(file).map_or(0, |text| text.lines().count())
    }

    /// `podman`'s version as one command asks it: through the cache in `file`, then saved.
    fn version_through(file: &Path, podman: &Path) -> Result<PodmanVersion, String> {
        let cache = VersionCache::at(file);
        let version = podman_version(&cache, podman);
        cache.save();
        version
    }

    #[test]
    fn a_version_once_printed_is_kept_until_the_program_file_changes() {
        let dir = temp_dir("cache");
        let (podman, counted, file) =
            (dir.join("podman"), dir.join("runs"), dir.join("cache.json"));
        counting_program(&podman, &counted, "4.9.4");
        let version = || version_through(&file, &podman);
        assert_eq!(version(), Ok(PodmanVersion::new(4, 9, 4)));
        assert_eq!(runs(&counted), 1);
        // Another command: the answer comes from the cache file, podman is not run.
        assert_eq!(version(), Ok(PodmanVersion::new(4, 9, 4)));
        assert_eq!(runs(&counted), 1, "answered from the cache");
        // Through a symlink (another name on PATH for the same file): the same program.
        let link = dir.join("podman-link");
        std::os::unix::fs::symlink(&podman, &link).unwrap();
        let cache = VersionCache::at(&file);
        assert_eq!(
            podman_version(&cache, &link),
            Ok(PodmanVersion::new(4, 9, 4))
        );
        assert_eq!(runs(&counted), 1);
        // An upgrade replaces the file: asked again, and the new answer is kept.
        counting_program(&podman, &counted, "5.4.2");
        assert_eq!(version(), Ok(PodmanVersion::new(5, 4, 2)));
        assert_eq!(runs(&counted), 2);
        assert_eq!(version(), Ok(PodmanVersion::new(5, 4, 2)));
        assert_eq!(runs(&counted), 2);
        let kept = std::fs::read_to_string(&file).unwrap();
        assert!(
            !kept.contains("4.9.4"),
            "the old answer is replaced: {kept}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_cache_is_ignored_and_replaced() {
        let dir = temp_dir("cache-damaged");
        let (podman, counted, file) =
            (dir.join("podman"), dir.join("runs"), dir.join("cache.json"));
        counting_program(&podman, &counted, "4.9.4");
        for damaged in ["{\"versions\": [{\"program\":", "not json", ""] {
            std::fs::write(&file, damaged).unwrap();
            assert_eq!(
                version_through(&file, &podman),
                Ok(PodmanVersion::new(4, 9, 4))
            );
        }
        assert_eq!(runs(&counted), 3, "each damaged cache was ignored");
        let cache = VersionCache::at(&file);
        assert_eq!(
            podman_version(&cache, &podman),
            Ok(PodmanVersion::new(4, 9, 4))
        );
        assert_eq!(runs(&counted), 3, "the last one was replaced by a good one");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failure_is_not_kept() {
        let dir = temp_dir("cache-failure");
        let (generator, counted, file) = (
            dir.join("quadlet"),
            dir.join("runs"),
            dir.join("cache.json"),
        );
        script(
            &generator,
            &format!("echo run >> '{}'\nexit 2", counted.display()),
        );
        for _ in 0..2 {
            let cache = VersionCache::at(&file);
            assert!(cache.printed(&generator, "-version").is_err());
            cache.save();
        }
        assert_eq!(runs(&counted), 2, "asked each time");
        assert!(!file.exists());
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

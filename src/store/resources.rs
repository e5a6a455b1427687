//! Loading and saving a site's resources: Skupper v2 YAML, one `<Kind>-<name>.yaml` file per
//! object, as a user would `kubectl apply` them (and as Skupper's non-kube sites keep them).

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::model::{parse_documents, Resource, ResourceError, SiteResources};
use crate::render::certs::{CertFiles, PriorCa, SiteCertificates};

use super::{files, Paths, SiteDir, SiteLock};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("no site in namespace '{namespace}'{}", namespaces_hint(.present))]
    NoSite {
        namespace: String,
        present: Vec<String>,
    },
    /// A command that makes a site (init, apply -f) was killed before it saved the site's
    /// resources, its commit point: some of its files and units may be on the host.
    #[error(
        "site '{namespace}' was not fully initialised{}; run `vansite -n {namespace} init` again \
         to finish, or `vansite -n {namespace} delete`",
        interrupted_hint(.interrupted)
    )]
    NotInitialised {
        namespace: String,
        /// The command that was interrupted, when its marker is there.
        interrupted: Option<String>,
    },
    /// A command that makes a site is running (it holds the site's lock) and has not saved the
    /// site's resources yet: nothing is wrong, the site is not there yet.
    #[error(
        "site '{namespace}' is being made by a running {}; run this again once it has finished",
        running_hint(.command)
    )]
    BeingMade {
        namespace: String,
        /// The running command, when its journal names it.
        command: Option<String>,
    },
    #[error(transparent)]
    Serialize(Box<ResourceError>),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", dir.display())]
    Invalid {
        dir: std::path::PathBuf,
        source: Box<ResourceError>,
    },
}

impl StoreError {
    /// A [`files::WriteSet`] that could not be written.
    pub fn written(failed: files::WriteFailed) -> StoreError {
        StoreError::File {
            what: "cannot write",
            path: failed.path,
            source: failed.source,
        }
    }

    /// Wraps an I/O error with what was being done to which path.
    pub fn file(
        what: &'static str,
        path: impl Into<std::path::PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::File { what, path, source }
    }
}

fn interrupted_hint(interrupted: &Option<String>) -> String {
    match interrupted {
        Some(command) => format!(" (`vansite {command}` was interrupted)"),
        None => String::new(),
    }
}

fn running_hint(command: &Option<String>) -> String {
    match command {
        Some(command) => format!("`vansite {command}`"),
        None => "vansite command".to_string(),
    }
}

fn namespaces_hint(present: &[String]) -> String {
    match present {
        [] => "; create one with `vansite init`".to_string(),
        names => format!(
            "; sites exist in: {} (choose one with -n)",
            names.join(", ")
        ),
    }
}

impl Paths {
    /// The resources of `namespace`'s site; an error naming the sites there are when it has none.
    pub fn load_site(&self, namespace: &str) -> Result<SiteResources, StoreError> {
        self.site(namespace)
            .load_resources()?
            .ok_or_else(|| self.no_site(namespace))
    }

    /// Why `namespace` has no saved site: a site being made by a running command, one whose
    /// making was cut short, or none at all (naming the sites there are).
    pub fn no_site(&self, namespace: &str) -> StoreError {
        let site_dir = self.site(namespace);
        if site_dir.is_unfinished() {
            let namespace = namespace.to_string();
            // The journal names the command either way; the lock tells whether it still runs.
            return match SiteLock::unless_held(&self.lock_file(&namespace), || ()) {
                None => StoreError::BeingMade {
                    namespace,
                    command: site_dir.interrupted_command(),
                },
                Some(()) => StoreError::NotInitialised {
                    namespace,
                    interrupted: site_dir.interrupted_command(),
                },
            };
        }
        StoreError::NoSite {
            namespace: namespace.to_string(),
            present: self.namespaces(),
        }
    }
}

impl SiteDir {
    /// Whether resources with a Site are saved (the last step of making a site), without
    /// reading them.
    pub fn has_saved_site(&self) -> bool {
        std::fs::read_dir(self.resources())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .any(|path| {
                is_yaml(&path)
                    && path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("Site-"))
            })
    }

    /// Whether a site was being made here and its making was cut short: no Site saved, but
    /// a command's marker, resources, the router's configuration or certificates are there
    /// (the event log alone, which a failed and undone init leaves, is not a site).
    pub fn is_unfinished(&self) -> bool {
        !self.has_saved_site()
            && [
                self.journal(),
                self.resources(),
                self.router_config_dir(),
                self.certs(),
                self.issuers(),
            ]
            .iter()
            .any(|path| path.exists())
    }

    /// The site's resources, or None when the namespace has no Site yet.
    pub fn load_resources(&self) -> Result<Option<SiteResources>, StoreError> {
        let dir = self.resources();
        let mut resources = Vec::new();
        let mut paths: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path: dir, source }),
        };
        paths.sort();
        for path in paths.iter().filter(|p| is_yaml(p)) {
            let text = std::fs::read_to_string(path).map_err(|source| StoreError::Read {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parsed = parse_documents(&text, &name).map_err(|source| StoreError::Invalid {
                dir: dir.clone(),
                source: Box::new(source),
            })?;
            for skipped in parsed.skipped {
                tracing::warn!(
                    "{name}: ignoring {} {} '{}' (not a kind vansite uses)",
                    skipped.api_version,
                    skipped.kind,
                    skipped.name
                );
            }
            resources.extend(parsed.resources);
        }
        if !resources.iter().any(|r| matches!(r, Resource::Site(_))) {
            return Ok(None);
        }
        SiteResources::new(&self.namespace, resources)
            .map(Some)
            .map_err(|source| StoreError::Invalid {
                dir,
                source: Box::new(source),
            })
    }

    /// Replaces the saved resources with `set` in one step (Secrets, AccessGrants and
    /// AccessTokens 0600): the new set is written into a staging directory, then exchanged
    /// with `resources/` by one `renameat2(RENAME_EXCHANGE)`, so a kill at any moment leaves
    /// either the old set or the new one, never a mix. Returns whether anything changed.
    pub fn save_resources(&self, set: &SiteResources) -> Result<bool, StoreError> {
        let dir = self.resources();
        let mut wanted = Vec::new();
        for resource in set.to_resources() {
            let yaml = resource
                .to_yaml()
                .map_err(|e| StoreError::Serialize(Box::new(e)))?;
            // Secrets, and grant codes: readable by the user only (the registry says which).
            let mode = if resource.is_private() {
                files::SECRET
            } else {
                files::PUBLIC
            };
            wanted.push((resource.file_name(), yaml, mode));
        }
        wanted.sort();
        if saved_files(&dir) == wanted {
            return Ok(false);
        }
        let staging = self.resources_staging();
        files::remove_if_present(&staging).map_err(StoreError::file("cannot remove", &staging))?;
        files::create_dir(&staging, files::PRIVATE_DIR)
            .map_err(StoreError::file("cannot create", &staging))?;
        let mut staged = files::WriteSet::default();
        for (name, yaml, mode) in &wanted {
            let path = staging.join(name);
            staged
                .write(&path, yaml.as_bytes(), *mode)
                .map_err(StoreError::file("cannot write", &path))?;
        }
        staged.commit().map_err(StoreError::written)?;
        files::exchange_dirs(&staging, &dir).map_err(StoreError::file("cannot replace", &dir))?;
        // What is left in the staging directory now is the old set.
        files::remove_if_present(&staging).map_err(StoreError::file("cannot remove", &staging))?;
        Ok(true)
    }

    /// Where a save stages the new set; a kill can leave it behind (it is never read).
    fn resources_staging(&self) -> std::path::PathBuf {
        self.root.join(".resources.new")
    }
}

/// The `(file name, text, mode)` of each YAML file in `dir`, sorted.
fn saved_files(dir: &Path) -> Vec<(String, String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found: Vec<(String, String, u32)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| is_yaml(path))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, text, mode))
        })
        .collect();
    found.sort();
    found
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

const CERT_FILES: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

impl SiteDir {
    /// The site's CAs (`runtime/issuers/`) and leaf certificates (`runtime/certs/`) on disk.
    pub fn load_certificates(&self) -> Result<SiteCertificates, StoreError> {
        Ok(SiteCertificates {
            issuers: read_cert_dirs(&self.issuers())?,
            certs: read_cert_dirs(&self.certs())?,
            link_issuers: read_cert_dirs(&self.link_issuers())?,
            prior_issuers: read_prior_issuers(&self.prior_issuers())?,
        })
    }

    /// Writes `set` (keys 0600, directories 0700) and removes leaf directories no longer in it.
    /// CAs are never removed here: links issued by them must keep working until revoked
    /// ([`SiteDir::remove_issuer`]).
    pub fn save_certificates(&self, set: &SiteCertificates) -> Result<bool, StoreError> {
        let mut staged = files::WriteSet::default();
        let changed = self.stage_certificates(set, &mut staged)?;
        staged.commit().map_err(StoreError::written)?;
        Ok(self.remove_stale_certificates(set)? || changed)
    }

    /// [`SiteDir::save_certificates`]'s writes, into `staged` (directories are made now);
    /// whether any file changes.
    pub fn stage_certificates(
        &self,
        set: &SiteCertificates,
        staged: &mut files::WriteSet,
    ) -> Result<bool, StoreError> {
        let mut changed = write_cert_dirs(&self.issuers(), &set.issuers, staged)?;
        changed |= write_cert_dirs(&self.link_issuers(), &set.link_issuers, staged)?;
        changed |= write_prior_issuers(&self.prior_issuers(), &set.prior_issuers, staged)?;
        changed |= write_cert_dirs(&self.certs(), &set.certs, staged)?;
        Ok(changed)
    }

    /// Removes the leaf directories no longer in `set`, once it is written; whether any was.
    pub fn remove_stale_certificates(&self, set: &SiteCertificates) -> Result<bool, StoreError> {
        let mut changed = false;
        for entry in std::fs::read_dir(self.certs())
            .map_err(StoreError::file("cannot read", self.certs()))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !set.certs.contains_key(&name) {
                files::remove_if_present(&entry.path())
                    .map_err(StoreError::file("cannot remove", entry.path()))?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

impl SiteDir {
    /// Writes one CA (`dir` is [`SiteDir::issuers`] or [`SiteDir::link_issuers`]).
    pub fn save_issuer(&self, dir: &Path, name: &str, ca: &CertFiles) -> Result<(), StoreError> {
        let mut staged = files::WriteSet::default();
        write_cert_dirs(
            dir,
            &BTreeMap::from([(name.to_string(), ca.clone())]),
            &mut staged,
        )?;
        staged.commit().map_err(StoreError::written)
    }

    /// Claims a name for a new incoming link's CA: `wanted`, or the first of `wanted-2`,
    /// `wanted-3`, … not yet taken (two sites may redeem tokens of the same name), by
    /// creating its directory, which fails for a name taken meanwhile by a concurrent claim.
    pub fn claim_link_issuer(&self, wanted: &str) -> Result<String, StoreError> {
        let dir = self.link_issuers();
        files::create_dir(&dir, files::PRIVATE_DIR)
            .map_err(StoreError::file("cannot create", &dir))?;
        for n in 1u32.. {
            let name = numbered_name(wanted, n);
            let path = dir.join(&name);
            match std::fs::DirBuilder::new()
                .mode(files::PRIVATE_DIR)
                .create(&path)
            {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(StoreError::File {
                        what: "cannot create",
                        path,
                        source,
                    })
                }
            }
        }
        unreachable!("a name is free before u32 runs out")
    }

    /// Removes one CA and its key: what it signed is no longer trusted once the router's
    /// files are written again. Returns whether it was there.
    pub fn remove_issuer(&self, dir: &Path, name: &str) -> Result<bool, StoreError> {
        let path = dir.join(name);
        files::remove_if_present(&path).map_err(StoreError::file("cannot remove", &path))
    }
}

/// The entries of `dir`; none when it does not exist.
fn subdirectories(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StoreError::File {
            what: "cannot read",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

const PRIOR_FILES: [&str; 2] = ["ca.crt", "cross.crt"];

/// `<dir>/<name>/{ca.crt,cross.crt}`; a directory missing one (a killed write) is left out.
fn read_prior_issuers(dir: &Path) -> Result<BTreeMap<String, PriorCa>, StoreError> {
    let mut found = BTreeMap::new();
    for entry in subdirectories(dir)? {
        let read = |file: &str| std::fs::read_to_string(entry.path().join(file));
        if let (Ok(ca_crt), Ok(cross_crt)) = (read(PRIOR_FILES[0]), read(PRIOR_FILES[1])) {
            found.insert(
                entry.file_name().to_string_lossy().into_owned(),
                PriorCa { ca_crt, cross_crt },
            );
        }
    }
    Ok(found)
}

/// Stages `set` and removes the prior CAs it no longer holds (a later rotation replaced them).
fn write_prior_issuers(
    dir: &Path,
    set: &BTreeMap<String, PriorCa>,
    staged: &mut files::WriteSet,
) -> Result<bool, StoreError> {
    let mut changed = false;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !set.contains_key(&name) {
            changed |= files::remove_if_present(&entry.path())
                .map_err(StoreError::file("cannot remove", entry.path()))?;
        }
    }
    for (name, prior) in set {
        let prior_dir = dir.join(name);
        files::create_dir(&prior_dir, files::PRIVATE_DIR)
            .map_err(StoreError::file("cannot create", &prior_dir))?;
        for (file, content) in PRIOR_FILES.iter().zip([&prior.ca_crt, &prior.cross_crt]) {
            let path = prior_dir.join(file);
            changed |= staged
                .write(&path, content.as_bytes(), files::PUBLIC)
                .map_err(StoreError::file("cannot write", &path))?;
        }
    }
    Ok(changed)
}

/// The longest name a link gets here (an RFC 1123 label: a directory and an OU).
const MAX_LINK_NAME: usize = 63;

/// `wanted` for n = 1, else `wanted-n`, cut to fit [`MAX_LINK_NAME`].
fn numbered_name(wanted: &str, n: u32) -> String {
    if n == 1 {
        return wanted.to_string();
    }
    let suffix = format!("-{n}");
    let stem: String = wanted
        .chars()
        .take(MAX_LINK_NAME.saturating_sub(suffix.len()))
        .collect();
    format!("{}{suffix}", stem.trim_end_matches('-'))
}

fn read_cert_dirs(dir: &Path) -> Result<BTreeMap<String, CertFiles>, StoreError> {
    let mut found = BTreeMap::new();
    for entry in subdirectories(dir)? {
        let path = entry.path();
        let read = |file: &str| std::fs::read_to_string(path.join(file));
        // A directory missing a file (a killed write) is simply not reused.
        if let (Ok(ca_crt), Ok(tls_crt), Ok(tls_key)) =
            (read("ca.crt"), read("tls.crt"), read("tls.key"))
        {
            found.insert(
                entry.file_name().to_string_lossy().into_owned(),
                CertFiles {
                    ca_crt,
                    tls_crt,
                    tls_key,
                },
            );
        }
    }
    Ok(found)
}

/// Stages `<dir>/<name>/{ca.crt,tls.crt,tls.key}` for each of `set`, making the directories.
fn write_cert_dirs(
    dir: &Path,
    set: &BTreeMap<String, CertFiles>,
    staged: &mut files::WriteSet,
) -> Result<bool, StoreError> {
    let mut changed = false;
    for (name, files_of) in set {
        let cert_dir = dir.join(name);
        files::create_dir(&cert_dir, files::PRIVATE_DIR)
            .map_err(StoreError::file("cannot create", &cert_dir))?;
        let contents = [&files_of.ca_crt, &files_of.tls_crt, &files_of.tls_key];
        for (file, content) in CERT_FILES.iter().zip(contents) {
            let path = cert_dir.join(file);
            let mode = if *file == "tls.key" {
                files::SECRET
            } else {
                files::PUBLIC
            };
            changed |= staged
                .write(&path, content.as_bytes(), mode)
                .map_err(StoreError::file("cannot write", &path))?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE_WITH_LINK: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata:
  name: west
spec: {}
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata:
  name: to-east
spec:
  tlsCredentials: to-east
  endpoints:
  - name: inter-router
    host: east.example
    port: "55671"
---
apiVersion: v1
kind: Secret
metadata:
  name: to-east
type: kubernetes.io/tls
data:
  ca.crt: Y2E=
  tls.crt: Y3J0
  tls.key: a2V5
"#;

    fn site_dir(name: &str) -> SiteDir {
        let root =
            std::env::temp_dir().join(format!("vansite-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        SiteDir {
            namespace: "default".into(),
            root,
        }
    }

    fn site_with_link() -> SiteResources {
        let parsed = parse_documents(SITE_WITH_LINK, "test.yaml").unwrap();
        SiteResources::new("default", parsed.resources).unwrap()
    }

    #[test]
    fn a_site_whose_making_was_cut_short_is_named_as_such_and_not_listed_as_a_site() {
        let base =
            std::env::temp_dir().join(format!("vansite-store-unfinished-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let paths = Paths {
            data: base.clone(),
            config_home: base.join("config"),
            runtime_dir: base.join("run"),
        };
        let complete = paths.site("default");
        complete.save_resources(&site_with_link()).unwrap();
        let message = |namespace: &str| paths.load_site(namespace).unwrap_err().to_string();
        assert_eq!(
            message("kt"),
            "no site in namespace 'kt'; sites exist in: default (choose one with -n)"
        );
        // An init killed before it saved the site: its marker and certificates are there.
        let killed = paths.site("kt");
        std::fs::create_dir_all(killed.certs()).unwrap();
        std::fs::write(killed.journal(), "init").unwrap();
        let expected = "site 'kt' was not fully initialised (`vansite init` was interrupted); \
                        run `vansite -n kt init` again to finish, or `vansite -n kt delete`";
        assert_eq!(message("kt"), expected);
        // The same files while a command holds the site's lock: that command is making it now.
        let running = SiteLock::acquire(&paths.lock_file("kt"), || unreachable!()).unwrap();
        assert_eq!(
            message("kt"),
            "site 'kt' is being made by a running `vansite init`; run this again once it has \
             finished"
        );
        drop(running);
        assert_eq!(message("kt"), expected);
        // Resources without a Site (no marker): not a site either, and not listed as one.
        std::fs::remove_file(killed.journal()).unwrap();
        std::fs::create_dir_all(killed.resources()).unwrap();
        let link = SITE_WITH_LINK.split("---").nth(1).unwrap();
        std::fs::write(killed.resources().join("Link-to-east.yaml"), link).unwrap();
        assert!(message("kt").starts_with("site 'kt' was not fully initialised; run"));
        let running = SiteLock::acquire(&paths.lock_file("kt"), || unreachable!()).unwrap();
        assert!(message("kt").starts_with("site 'kt' is being made by a running vansite command;"));
        drop(running);
        assert_eq!(paths.namespaces(), ["default"]);
        // What a failed init leaves after undoing itself (its event) is no site at all.
        let undone = paths.site("gone");
        undone.record_event("init", "failed: …; undone").unwrap();
        assert!(message("gone").starts_with("no site in namespace 'gone'"));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn each_issued_link_claims_a_name_of_its_own() {
        let dir = site_dir("link-names");
        assert_eq!(dir.claim_link_issuer("east").unwrap(), "east");
        assert_eq!(dir.claim_link_issuer("east").unwrap(), "east-2");
        assert_eq!(dir.claim_link_issuer("west").unwrap(), "west");
        let long = "l".repeat(63);
        assert_eq!(dir.claim_link_issuer(&long).unwrap(), long);
        let renamed = dir.claim_link_issuer(&long).unwrap();
        assert_eq!(renamed.len(), 63);
        assert!(renamed.ends_with("-2"));
    }

    #[test]
    fn a_set_staged_by_a_killed_save_is_never_read_and_the_next_save_replaces_it() {
        let dir = site_dir("all-or-nothing");
        let site_only =
            SiteResources::new("default", vec![Resource::Site(site_with_link().site)]).unwrap();
        dir.save_resources(&site_only).unwrap();
        // A save killed before its exchange: the new set is staged, half written.
        let staging = dir.resources_staging();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("Link-to-east.yaml"), "kind: Link").unwrap();
        assert_eq!(dir.load_resources().unwrap(), Some(site_only.clone()));
        let set = site_with_link();
        assert!(dir.save_resources(&set).unwrap());
        assert_eq!(dir.load_resources().unwrap(), Some(set));
        assert!(
            !staging.exists(),
            "the old set is removed after the exchange"
        );
        std::fs::remove_dir_all(&dir.root).unwrap();
    }

    #[test]
    fn a_site_saved_loads_back_and_removed_objects_lose_their_files() {
        let dir = site_dir("round-trip");
        let set = site_with_link();
        assert!(dir.save_resources(&set).unwrap());
        assert!(!dir.save_resources(&set).unwrap(), "nothing changed");
        assert_eq!(dir.load_resources().unwrap(), Some(set.clone()));
        let site_only =
            SiteResources::new("default", vec![Resource::Site(set.site.clone())]).unwrap();
        assert!(dir.save_resources(&site_only).unwrap());
        assert_eq!(dir.load_resources().unwrap(), Some(site_only));
        std::fs::remove_dir_all(&dir.root).unwrap();
    }
}

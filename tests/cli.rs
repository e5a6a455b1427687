//! The command line itself: help on every command, usage errors, and refusing root.

use std::process::Command;

use clap::CommandFactory;
use vansite::cli::Cli;

const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");

/// Every command path, e.g. ["init"], ["link", "create"].
fn command_paths(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut path = prefix.clone();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        command_paths(sub, path, out);
    }
}

#[test]
fn every_command_has_help() {
    let mut paths = Vec::new();
    command_paths(&Cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() >= 3, "{paths:?}");
    for path in paths {
        let output = Command::new(VANSITE)
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{path:?} --help: {output:?}");
        assert!(text.contains("Usage: vansite"), "{path:?} --help:\n{text}");
    }
}

#[test]
fn bad_usage_exits_2_and_root_is_refused() {
    let output = Command::new(VANSITE)
        .args(["init", "--router-mode", "spoke"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interior"));
    if rustix::process::geteuid().is_root() {
        let output = Command::new(VANSITE).arg("status").output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("rootless"),
            "{output:?}"
        );
    }
}

/// A user's environment with no site and no session bus, in a directory of its own: what
/// vansite refuses before it needs either is tested here, as a user (root is refused first,
/// so as root the binary runs as `nobody`).
struct Sandbox {
    home: std::path::PathBuf,
}

impl Sandbox {
    fn new(test: &str) -> Sandbox {
        use std::os::unix::fs::PermissionsExt;
        let home = std::env::temp_dir().join(format!("vansite-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("run")).unwrap();
        for dir in [&home, &home.join("run")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        Sandbox { home }
    }

    /// A file in the sandbox, readable by its user.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.home.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn vansite(&self, args: &[&str]) -> std::process::Output {
        let mut command = if rustix::process::geteuid().is_root() {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                VANSITE,
            ]);
            command
        } else {
            Command::new(VANSITE)
        };
        command
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs vansite, which must exit with `code` and say `says` on stderr; returns stderr.
    fn refuses(&self, args: &[&str], code: i32, says: &str) -> String {
        let output = self.vansite(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "vansite {args:?}: {stderr}"
        );
        assert!(stderr.contains(says), "vansite {args:?}: {stderr}");
        stderr
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// One rule for exit codes: every mistake in what the person gives exits 2, whichever
/// command makes it, before any site is looked up; a sparse 267 MB file and an endless
/// device are refused by size, not read.
#[test]
fn mistakes_in_what_is_given_exit_2() {
    let sandbox = Sandbox::new("mistakes");
    let binary = sandbox.file("binary", b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe");
    let malformed = sandbox.file(
        "link.yaml",
        b"apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata: {name: west}\nspec:\n  \
          endpoints:\n  - name: inter-router\n    host:\n    port: '1'\n",
    );
    let big = sandbox.home.join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(267_000_000)
        .unwrap();
    let big = big.display().to_string();
    let missing = sandbox.home.join("missing.yaml").display().to_string();

    sandbox.refuses(
        &["-n", "../../tmp", "status"],
        2,
        "invalid value '../../tmp' for '--namespace <NAME>'",
    );
    sandbox.refuses(
        &["listener", "delete", "../x"],
        2,
        "'../x' is not a valid name",
    );
    sandbox.refuses(&["link", "delete", "Bad_Name"], 2, "is not a valid name");
    sandbox.refuses(&["status"], 2, "no site in namespace 'default'");
    for command in [&["apply", "-f"][..], &["link", "create"]] {
        fn with<'a>(command: &[&'a str], file: &'a str) -> Vec<&'a str> {
            [command, &[file]].concat()
        }
        sandbox.refuses(&with(command, &binary), 2, "is not a text file");
        sandbox.refuses(&with(command, &big), 2, "is larger than 1 MiB");
        sandbox.refuses(&with(command, "/dev/zero"), 2, "is larger than 1 MiB");
        sandbox.refuses(&with(command, &missing), 2, "cannot read");
        sandbox.refuses(
            &with(command, &malformed),
            2,
            "document 1, line 7: Link/west: field `spec.endpoints[0].host` must be a string, found nothing",
        );
    }
}

/// Log lines carry no colour codes into a pipe or a file.
#[test]
fn no_colour_into_a_pipe() {
    let sandbox = Sandbox::new("colour");
    // A saved site with a document vansite skips: loading it logs a warning.
    let resources = sandbox.home.join(".local/share/vansite/default/resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("Site-west.yaml"),
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: west}\n",
    )
    .unwrap();
    std::fs::write(
        resources.join("Other.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    )
    .unwrap();
    let output = sandbox.vansite(&["-vv", "status"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARN Other.yaml: ignoring"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

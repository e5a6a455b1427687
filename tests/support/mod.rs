//! Support for vansite's real-host tests: isolated test hosts (tests/testhost/testhost.sh: a
//! Linux user each, with its own systemd --user, session bus and rootless podman) and the
//! stand-in router image.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The stand-in router image as tests load it into a host.
pub const STANDIN_IMAGE: &str = "localhost/skupper-router-standin:test";
/// The skupper-router image's settings that the stand-in image copies: it starts the router
/// itself (no Exec= needed) as user 10000.
const STANDIN_IMAGE_CHANGES: [&str; 2] = ["CMD [\"/home/skrouterd/bin/skrouterd\"]", "USER 10000"];

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn testhost_script() -> PathBuf {
    repo_root().join("tests/testhost/testhost.sh")
}

/// The stand-in image's rootfs tar, built by tests/testhost/build-standin-image.sh (the test
/// command runs it first). Building it here too keeps `cargo test` usable on its own.
pub fn standin_image_tar() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_standin_image).clone()
}

fn build_standin_image() -> PathBuf {
    let status = Command::new(repo_root().join("tests/testhost/build-standin-image.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("run build-standin-image.sh");
    assert!(
        status.success(),
        "building the stand-in router image failed"
    );
    target_dir().join("standin-image/standin-image.tar")
}

/// Cargo's target directory: built images, and what tests leave to look at (screenshots).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// True when the calling test cannot run here (test hosts are Linux users, each with its own
/// systemd --user, created by root), after saying so on stderr with the test's name; the
/// test then returns at once. `tests/run.sh`, as root, runs them all.
pub fn skip_without_test_host() -> bool {
    if rustix::process::geteuid().is_root() {
        return false;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    // Written past the test harness's capture, so that a skipped test says so.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test} needs a test host, which only root can create (run tests/run.sh as root)"
    );
    true
}

/// One test host; brought down (every process of its user ended) when dropped.
pub struct Host {
    pub name: String,
}

impl Host {
    /// Brings up host `name` (unique per test: hosts are per-test so tests can run in parallel).
    pub fn up(name: &str, own_netns: bool) -> Host {
        let mut command = Command::new(testhost_script());
        command.args(["up", name]);
        if own_netns {
            command.arg("--netns");
        }
        let output = command.output().expect("run testhost.sh");
        assert!(
            output.status.success(),
            "testhost.sh up {name} failed:\n{}",
            text(&output)
        );
        Host {
            name: name.to_string(),
        }
    }

    pub fn user(&self) -> String {
        format!("vst-{}", self.name)
    }

    /// Runs a command as the host's user inside the host; returns its output, whatever the exit.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, b"")
    }

    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(testhost_script())
            .args(["run", &self.name, "--"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run testhost.sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("wait testhost.sh")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{:?} on {} failed:\n{}",
            args,
            self.name,
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Calls a method of the host's systemd user manager over D-Bus (busctl); returns the reply.
    pub fn manager_call(&self, method: &str, signature_and_args: &[&str]) -> String {
        let mut args = vec![
            "busctl",
            "--user",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            method,
        ];
        args.extend_from_slice(signature_and_args);
        self.ok(&args)
    }

    /// Writes a file as the host's user (`path` relative to its home), creating directories.
    pub fn write_file(&self, path: &str, content: &str) {
        let script = format!("mkdir -p \"$(dirname '{path}')\" && cat > '{path}'");
        let output = self.run_with_input(&["sh", "-c", &script], content.as_bytes());
        assert!(
            output.status.success(),
            "writing {path} on {}: {}",
            self.name,
            text(&output)
        );
    }

    /// Loads the stand-in router image (from `standin_image_tar`) as STANDIN_IMAGE.
    pub fn load_standin_image(&self, tar: &Path) {
        let mut command = Command::new(testhost_script());
        command.args([
            "load-image",
            &self.name,
            &tar.display().to_string(),
            STANDIN_IMAGE,
        ]);
        for change in STANDIN_IMAGE_CHANGES {
            command.args(["--change", change]);
        }
        let output = command.output().expect("run testhost.sh");
        assert!(
            output.status.success(),
            "load-image on {}: {}",
            self.name,
            text(&output)
        );
    }

    /// The host's own address (its network namespace's), or 127.0.0.1.
    pub fn addr(&self) -> String {
        let output = Command::new(testhost_script())
            .args(["addr", &self.name])
            .output()
            .expect("testhost.sh addr");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Cuts the host's network (its veth goes down) / brings it back: only for --netns hosts.
    pub fn cut(&self) {
        self.testhost(&["cut"]);
    }

    pub fn heal(&self) {
        self.testhost(&["heal"]);
    }

    /// Hides system directories from this host only (an empty tmpfs over each, in the host's
    /// own mount namespace): a host without something that is installed machine-wide.
    pub fn hide(&self, dirs: &[&str]) {
        let output = Command::new(testhost_script())
            .args(["hide", &self.name])
            .args(dirs)
            .output()
            .expect("run testhost.sh");
        assert!(
            output.status.success(),
            "testhost.sh hide {} {dirs:?}: {}",
            self.name,
            text(&output)
        );
    }

    /// Turns linger on or off for the host's user the way `loginctl enable-linger` records it
    /// (the file logind keeps; the test runs as root).
    pub fn set_linger(&self, on: bool) {
        let dir = Path::new("/var/lib/systemd/linger");
        let file = dir.join(self.user());
        if on {
            std::fs::create_dir_all(dir).expect("create the linger directory");
            std::fs::write(&file, b"").expect("create the linger file");
        } else if let Err(e) = std::fs::remove_file(&file) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::NotFound,
                "remove {}",
                file.display()
            );
        }
    }

    fn testhost(&self, verb: &[&str]) {
        let output = Command::new(testhost_script())
            .args(verb)
            .arg(&self.name)
            .output()
            .expect("run testhost.sh");
        assert!(
            output.status.success(),
            "testhost.sh {verb:?} {}: {}",
            self.name,
            text(&output)
        );
    }

    /// Polls `check` on this host until it returns true (bounded).
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut(&Host) -> bool) {
        let start = Instant::now();
        while !check(self) {
            assert!(
                start.elapsed() < limit,
                "{what} on {} not reached after {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Processes still owned by the host's user.
    pub fn leftover_processes(user: &str) -> String {
        let output = Command::new("pgrep")
            .args(["-a", "-u", user])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn down(&self) -> Output {
        Command::new(testhost_script())
            .args(["down", &self.name])
            .output()
            .expect("testhost.sh down")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.down();
        // (`down` disables linger in the systemd-PID1 mode too.)
        let _ = std::fs::remove_file(Path::new("/var/lib/systemd/linger").join(self.user()));
    }
}

/// The vansite binary under test.
pub const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");

/// Runs vansite as the host's user; returns its output, whatever the exit.
pub fn vansite(host: &Host, args: &[&str]) -> Output {
    let mut full = vec![VANSITE];
    full.extend_from_slice(args);
    host.run(&full)
}

/// Runs vansite, which must succeed; returns stdout.
pub fn vansite_ok(host: &Host, args: &[&str]) -> String {
    let output = vansite(host, args);
    assert!(
        output.status.success(),
        "vansite {args:?} failed:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The site's `vansite status --output json` (whatever its exit code: unhealthy is a state).
pub fn site_status(host: &Host) -> serde_json::Value {
    let output = vansite(host, &["status", "--output", "json"]);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", text(&output)))
}

/// The router container's identity: the same id and start time mean no restart.
pub fn router_identity(host: &Host) -> serde_json::Value {
    let container = &site_status(host)["router"]["container"];
    assert!(container["id"].is_string(), "{container:#}");
    serde_json::json!([container["id"], container["startedAt"]])
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Compares `actual` with the golden file at `path` (relative to the repository), or rewrites
/// it when `UPDATE_GOLDEN=1` (after an intended change; review the diff).
pub fn assert_golden(path: &str, actual: &str) {
    let path = repo_root().join(path);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from what was rendered (run with UPDATE_GOLDEN=1 if the change is intended):\n{actual}",
        path.display()
    );
}

/// Runs vansite, which must fail; returns stderr.
pub fn vansite_fails(host: &Host, args: &[&str]) -> String {
    let output = vansite(host, args);
    assert!(
        !output.status.success(),
        "vansite {args:?} must fail:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs vansite, which must refuse what it was given (exit 2, bad usage or input); returns
/// stderr.
pub fn vansite_refuses(host: &Host, args: &[&str]) -> String {
    let output = vansite(host, args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "vansite {args:?} must refuse its input:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A test host running a site named as the host, with the stand-in router; with
/// `link_access`, other sites can link to it at its address.
pub fn running_site(name: &str, link_access: bool) -> Host {
    let host = Host::up(name, true);
    host.load_standin_image(&standin_image_tar());
    let addr = host.addr();
    let mut args = vec![
        "init",
        "--name",
        name,
        "--router-image",
        STANDIN_IMAGE,
        "--timeout",
        "120",
    ];
    if link_access {
        args.extend(["--enable-link-access", "--host", &addr]);
    }
    vansite_ok(&host, &args);
    host
}

/// Links `from`'s router to `to`'s inter-router access with a static Link + Secret that `to`
/// generates (no grant server involved).
pub fn link_sites(from: &Host, to: &Host) {
    vansite_ok(to, &["link", "generate", "link.yaml"]);
    from.write_file("link.yaml", &to.ok(&["cat", "link.yaml"]));
    vansite_ok(from, &["link", "create", "link.yaml"]);
}

/// A TCP server on the host's loopback (as its user): `socat` with `fork`, `answer` per
/// connection.
pub fn serve_answer(host: &Host, port: u16, answer: &str) {
    let script = format!(
        "(socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=256 {answer} </dev/null >/dev/null 2>&1 &)"
    );
    host.ok(&["sh", "-c", &script]);
    host.wait_until("the service listening", Duration::from_secs(10), |h| {
        h.run(&["bash", "-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .status
            .success()
    });
}

/// Runs `work` on a thread inside the host's network namespace.
pub fn in_netns(host: &Host, work: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    let netns = std::fs::File::open(format!("/run/netns/{}", host.user())).unwrap();
    std::thread::spawn(move || {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(
            netns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        work();
    })
}

/// `kind` `name` as `status -o json` lists it among the site's services; Null when absent.
pub fn service_status(host: &Host, name: &str, kind: &str) -> serde_json::Value {
    site_status(host)["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && s["kind"] == kind)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

pub fn wait_reachable(host: &Host, listener: &str) {
    host.wait_until(
        &format!("listener {listener} reachable"),
        Duration::from_secs(60),
        |h| service_status(h, listener, "listener")["peer"] == "reachable",
    );
}

/// The `field` of each object of a JSON array, as text (missing or not text: left out).
pub fn texts<'a>(array: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    array
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[field].as_str())
        .collect()
}

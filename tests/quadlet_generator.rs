//! vansite's quadlet files against golden files and against the real quadlet generator
//! (`/usr/libexec/podman/quadlet`, installed by `tests/testhost/testhost.sh setup`): each file
//! the module renders must convert without errors, and the generated `podman run` command must
//! carry every value exactly — the check that vansite's quoting matches quadlet's parser.
//!
//! `UPDATE_GOLDEN=1 cargo test --test quadlet_generator` rewrites the golden files (in units/).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use vansite::quadlet::{
    Container, Install, LogDriver, Notify, PodmanVersion, PullPolicy, QuadletFile, Restart,
    Service, StandardStream, Unit, UserNs, Volume,
};
use vansite::render::forwarder_units::{forwarder_units, ForwarderSpec};
use vansite::render::router_unit::{router_quadlet, RouterUnitSpec, DEFAULT_ROUTER_IMAGE};

const QUADLET: &str = "/usr/libexec/podman/quadlet";
const V4_4: PodmanVersion = PodmanVersion::new(4, 4, 0);
const V5_4: PodmanVersion = PodmanVersion::new(5, 4, 2);
/// Releases where vansite's rendering changes (UserNS/LogDriver 4.5, Pull 4.6, Notify=healthy 5.0).
const RELEASES: [PodmanVersion; 5] = [
    V4_4,
    PodmanVersion::new(4, 5, 0),
    PodmanVersion::new(4, 6, 0),
    PodmanVersion::new(5, 0, 0),
    V5_4,
];

fn router_spec() -> RouterUnitSpec {
    let site_dir = PathBuf::from("/home/alice/.local/share/vansite/default");
    RouterUnitSpec {
        namespace: "default".into(),
        site_id: "0b6c1f3e-5a7d-4c2b-9e8f-1a2b3c4d5e6f".into(),
        site_name: "host1".into(),
        image: DEFAULT_ROUTER_IMAGE.into(),
        uid: 1000,
        gid: 1000,
        log_file: site_dir.join("runtime/logs/router.log"),
        site_dir,
    }
}

fn forwarder_spec() -> ForwarderSpec {
    let site_dir = PathBuf::from("/home/alice/.local/share/vansite/default");
    ForwarderSpec {
        namespace: "default".into(),
        listener: "web".into(),
        bind: "0.0.0.0:8080".parse().unwrap(),
        router: "127.0.0.1:41000".parse().unwrap(),
        tcp_listener: "listener/web".into(),
        management: "127.0.0.1:5671".parse().unwrap(),
        management_credentials: site_dir.join("runtime/certs/skupper-local-client"),
        wait: std::time::Duration::from_secs(30),
        executable: "/usr/bin/vansite".into(),
        log_file: site_dir.join("runtime/logs/listener-web.log"),
    }
}

/// Every key the model has, with values that need quoting or escaping.
fn kitchen_sink() -> QuadletFile {
    QuadletFile {
        name: "sink".into(),
        unit: Unit {
            description: Some(r#"sink: 100% "quoted" \ back"#.into()),
            documentation: vec!["https://example.org/a%20b".into(), "man:podman(1)".into()],
            after: vec!["network-online.target".into()],
            wants: vec!["network-online.target".into()],
            requires: vec!["dbus.socket".into()],
        },
        container: Container {
            container_name: Some("sink".into()),
            image: "localhost/sink:1".into(),
            pull: Some(PullPolicy::Never),
            network: Some("host".into()),
            user_ns: Some(UserNs::KeepId),
            user: Some(1000),
            group: Some(1001),
            volumes: vec![Volume {
                host_path: "/tmp/a b/$x%y".into(),
                container_path: "/data".into(),
                options: vec!["z".into(), "ro".into()],
            }],
            environment: pairs(&[
                ("SPACE", "a b"),
                ("QUOTE", r#"say "hi" it's"#),
                ("BACKSLASH", r"C:\x"),
                ("PERCENT", "100%"),
                ("DOLLAR", "$HOME ${X}"),
                ("EMPTY", ""),
            ]),
            labels: pairs(&[("io.example/note", "two words"), ("plain", "x")]),
            log_driver: Some(LogDriver::Passthrough),
            notify: Some(Notify::Container),
            podman_args: vec!["--stop-timeout=5".into(), "--annotation=a=b c".into()],
            exec: vec!["/bin/sh".into(), "-c".into(), r#"echo "$1" 50% \n"#.into()],
        },
        service: Service {
            restart: Some(Restart::OnFailure),
            timeout_start_sec: Some(300),
            standard_output: Some(StandardStream::Append("/tmp/log dir/out%.log".into())),
            standard_error: Some(StandardStream::Journal),
            exec_start_pre: vec![vec!["/bin/echo".into(), "a b".into(), "$x%".into()]],
            limit_nofile: Some(65536),
        },
        install: Install {
            wanted_by: vec!["default.target".into()],
        },
    }
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The generator's `.service` for one file, after checking it converted cleanly.
fn generate(file: &QuadletFile, text: &str) -> String {
    assert!(
        Path::new(QUADLET).exists(),
        "{QUADLET} missing: run tests/testhost/testhost.sh setup (as root)"
    );
    // Tests run in parallel: a directory per call.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vansite-quadlet-{}-{}-{}",
        file.name,
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file.file_name()), text).unwrap();
    let output = Command::new(QUADLET)
        .args(["-dryrun", "-user"])
        .env("QUADLET_UNIT_DIRS", &dir)
        .output()
        .expect("run quadlet");
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "quadlet failed on\n{text}\nstderr: {stderr}"
    );
    for complaint in ["unsupported", "converting", "rror", "Warning"] {
        assert!(
            !stderr.contains(complaint),
            "quadlet complained about\n{text}\n{stderr}"
        );
    }
    let header = format!("---{}---\n", file.service_name());
    assert!(stdout.starts_with(&header), "{stdout}");
    stdout[header.len()..].to_string()
}

/// The values of `key` in the generated service, verbatim.
fn lines<'a>(service: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    service
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect()
}

/// A command line as systemd executes it: words split and unquoted (the C escapes quadlet
/// writes), `%%` and `$$` back to `%` and `$`.
fn command_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next().expect("escape") {
                        'n' => word.push('\n'),
                        't' => word.push('\t'),
                        other => word.push(other),
                    },
                    _ => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
    words
}

fn assert_has_sequence(args: &[String], expected: &[&str]) {
    assert!(
        args.windows(expected.len()).any(|w| w == expected),
        "{expected:?} not in {args:?}"
    );
}

#[test]
fn router_unit_matches_golden_files() {
    let file = router_quadlet(&router_spec());
    assert_eq!(file.file_name(), "vansite-default-router.container");
    assert_eq!(file.service_name(), "vansite-default-router.service");
    // units/ holds them as the reference units vansite writes.
    support::assert_golden(
        "units/vansite-default-router.container",
        &file.render(V5_4).unwrap(),
    );
    support::assert_golden(
        "units/vansite-default-router.podman-4.4.container",
        &file.render(V4_4).unwrap(),
    );
}

/// The forwarder's units are plain systemd units (no generator); systemd itself runs them in
/// the services tests.
#[test]
fn forwarder_units_match_golden_files() {
    let (socket, service) = forwarder_units(&forwarder_spec());
    support::assert_golden(
        "units/vansite-default-listener-web.socket",
        &socket.render().unwrap(),
    );
    support::assert_golden(
        "units/vansite-default-listener-web.service",
        &service.render().unwrap(),
    );
}

#[test]
fn router_unit_converts_with_the_real_generator_for_every_release() {
    let spec = router_spec();
    let file = router_quadlet(&spec);
    for release in RELEASES {
        let service = generate(&file, &file.render(release).unwrap());
        let exec_start = lines(&service, "ExecStart");
        assert_eq!(exec_start.len(), 1, "{service}");
        let args = command_words(exec_start[0]);
        assert_has_sequence(&args, &["--name", "vansite-default-router"]);
        assert_has_sequence(&args, &["--network", "host"]);
        assert_has_sequence(&args, &["--user", "1000:1000"]);
        // A 4.4 generator passes `--log-driver passthrough` by itself; this 5.4 one cannot.
        if release >= PodmanVersion::new(4, 5, 0) {
            assert_has_sequence(&args, &["--log-driver", "passthrough"]);
            assert_has_sequence(&args, &["--userns", "keep-id"]);
        } else {
            assert_has_sequence(&args, &["--userns=keep-id"]);
        }
        let runtime = "/home/alice/.local/share/vansite/default/runtime";
        assert_has_sequence(
            &args,
            &[
                "-v",
                &format!("{runtime}/router:/etc/skupper-router/config:z"),
            ],
        );
        assert_has_sequence(
            &args,
            &[
                "-v",
                &format!("{runtime}/certs:/etc/skupper-router/runtime/certs:z"),
            ],
        );
        for env in [
            "APPLICATION_NAME=skupper-router",
            "QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json",
            "QDROUTERD_CONF_TYPE=json",
            "SKUPPER_SITE_ID=0b6c1f3e-5a7d-4c2b-9e8f-1a2b3c4d5e6f",
            "SSL_PROFILE_BASE_PATH=/etc/skupper-router",
        ] {
            assert_has_sequence(&args, &["--env", env]);
        }
        for label in [
            "application=skupper-v2",
            "skupper.io/v2-component=router",
            "skupper.io/site-id=0b6c1f3e-5a7d-4c2b-9e8f-1a2b3c4d5e6f",
            "io.vansite.namespace=default",
        ] {
            assert_has_sequence(&args, &["--label", label]);
        }
        assert_eq!(args.last().unwrap(), DEFAULT_ROUTER_IMAGE, "{args:?}");

        let log = format!("append:{}", spec.log_file.display());
        assert_eq!(lines(&service, "StandardOutput"), [log.as_str()]);
        assert_eq!(lines(&service, "StandardError"), [log.as_str()]);
        assert_eq!(lines(&service, "Restart"), ["on-failure"]);
        assert_eq!(lines(&service, "TimeoutStartSec"), ["300"]);
        assert_eq!(lines(&service, "WantedBy"), ["default.target"]);
    }
}

#[test]
fn every_key_and_awkward_value_survives_the_real_generator() {
    let file = kitchen_sink();
    let service = generate(&file, &file.render(V5_4).unwrap());
    let args = command_words(lines(&service, "ExecStart")[0]);
    assert_has_sequence(&args, &["--name", "sink"]);
    assert_has_sequence(&args, &["--pull", "never"]);
    assert_has_sequence(&args, &["--network", "host"]);
    assert_has_sequence(&args, &["--userns", "keep-id"]);
    assert_has_sequence(&args, &["--user", "1000:1001"]);
    assert_has_sequence(&args, &["--sdnotify=container"]);
    assert_has_sequence(&args, &["-v", "/tmp/a b/$x%y:/data:z,ro"]);
    for env in [
        "SPACE=a b",
        r#"QUOTE=say "hi" it's"#,
        r"BACKSLASH=C:\x",
        "PERCENT=100%",
        "DOLLAR=$HOME ${X}",
        "EMPTY=",
    ] {
        assert_has_sequence(&args, &["--env", env]);
    }
    assert_has_sequence(&args, &["--label", "io.example/note=two words"]);
    assert_has_sequence(&args, &["--stop-timeout=5", "--annotation=a=b c"]);
    let tail = &args[args.len() - 4..];
    assert_eq!(
        tail,
        ["localhost/sink:1", "/bin/sh", "-c", r#"echo "$1" 50% \n"#]
    );

    // [Unit] and [Service] pass through untouched.
    assert_eq!(
        lines(&service, "Description"),
        [r#"sink: 100%% "quoted" \ back"#]
    );
    assert_eq!(
        lines(&service, "StandardOutput"),
        ["append:/tmp/log dir/out%%.log"]
    );
    assert_eq!(
        command_words(lines(&service, "ExecStartPre")[0]),
        ["/bin/echo", "a b", "$x%"]
    );
    assert_eq!(lines(&service, "LimitNOFILE"), ["65536"]);
}

#[test]
fn kitchen_sink_renders_for_old_releases_without_newer_keys() {
    let mut file = kitchen_sink();
    file.container.notify = Some(Notify::Healthy);
    let error = file.render(PodmanVersion::new(4, 9, 4)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Notify=healthy needs podman ≥ 5.0.0"),
        "{error}"
    );

    let file = kitchen_sink();
    for release in RELEASES {
        let service = generate(&file, &file.render(release).unwrap());
        let args = command_words(lines(&service, "ExecStart")[0]);
        if release < PodmanVersion::new(4, 6, 0) {
            assert_has_sequence(&args, &["--pull=never"]);
        }
        if release < PodmanVersion::new(4, 5, 0) {
            assert_has_sequence(&args, &["--userns=keep-id"]);
        }
        assert_has_sequence(&args, &["--env", "SPACE=a b"]);
    }
}

//! vansite's systemd and podman modules against a real user manager and a real podman service
//! on a test host (tests/testhost). Each test runs twice: as root it brings up its host and
//! runs this same test binary inside it, as the host's user (`VANSITE_TESTHOST_INNER` set);
//! that inner run does the real work, since the user bus and podman socket are the user's.

mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::{standin_image_tar, text, Host, STANDIN_IMAGE};
use vansite::platform::podman::PodmanService;
use vansite::platform::systemd::{
    linger_enabled, ActiveState, JobResult, LoadState, SystemdError, UnitState, UserManager,
};

/// Set in the inner run: this process is the host's user inside the host.
const INNER: &str = "VANSITE_TESTHOST_INNER";

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A router configuration the stand-in runs with: no listeners, so no ports to collide.
const IDLE_ROUTER_CONFIG: &str = r#"[["router", {"id": "idle", "mode": "interior"}]]"#;

fn inside_host() -> bool {
    std::env::var_os(INNER).is_some()
}

/// Runs test `test` of this binary inside `host` as its user; fails when the inner run fails.
fn run_inside(host: &Host, test: &str) {
    let exe = std::env::current_exe().expect("test binary path");
    let exe = exe.to_str().expect("test binary path is UTF-8");
    let inner = format!("{INNER}=1");
    let output = host.run(&[
        "env",
        &inner,
        "RUST_BACKTRACE=1",
        exe,
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ]);
    assert!(
        output.status.success(),
        "inner run of {test} on {} failed:\n{}",
        host.name,
        text(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("inner run of {test} on {}:\n{stdout}", host.name);
    // A filter matching nothing also succeeds: make sure the test really ran in there.
    assert!(
        stdout.contains("1 passed"),
        "inner run of {test} ran no test:\n{}",
        text(&output)
    );
}

fn block_on<F: Future<Output = ()>>(inner: F) {
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(inner);
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
    std::fs::write(path, content).expect("write file");
}

/// Writes quadlet `<name>.container` running the stand-in with `config` (JSON text).
fn write_standin_quadlet(name: &str, config: &str) -> PathBuf {
    let config_dir = home().join(name);
    write(&config_dir.join("skrouterd.json"), config);
    let quadlet = home().join(format!(".config/containers/systemd/{name}.container"));
    write(
        &quadlet,
        &format!(
            "[Container]\n\
             Image={STANDIN_IMAGE}\n\
             Pull=never\n\
             ContainerName={name}\n\
             Network=host\n\
             Volume={}:/etc/skupper-router/config:z\n\
             Environment=QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json\n\
             Environment=QDROUTERD_CONF_TYPE=json\n",
            config_dir.display()
        ),
    );
    quadlet
}

fn podman_cli(args: &[&str]) -> String {
    let output = std::process::Command::new("podman")
        .args(args)
        .output()
        .expect("run podman");
    assert!(
        output.status.success(),
        "podman {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn is_active(state: &UnitState) -> bool {
    state.active_state == ActiveState::Active
}

#[test]
fn reload_loads_a_new_quadlet_and_jobs_wait_for_start_restart_stop() {
    if support::skip_without_test_host() {
        return;
    }
    if !inside_host() {
        let host = Host::up("csdjob", false);
        host.load_standin_image(&standin_image_tar());
        run_inside(
            &host,
            "reload_loads_a_new_quadlet_and_jobs_wait_for_start_restart_stop",
        );
        return;
    }
    block_on(async {
        let manager = UserManager::connect().await.expect("connect");
        let unit = "csdjob-router.service";
        let quadlet = write_standin_quadlet("csdjob-router", IDLE_ROUTER_CONFIG);
        assert_eq!(
            manager.unit_state(unit).await.unwrap().load_state,
            LoadState::NotFound,
            "the generator has not run yet"
        );

        manager.reload().await.expect("reload");
        let loaded = manager.unit_state(unit).await.unwrap();
        assert_eq!(loaded.load_state, LoadState::Loaded, "{loaded:?}");
        assert_eq!(loaded.unit_file_state, "generated", "{loaded:?}");
        assert_eq!(loaded.source_path.as_deref(), Some(quadlet.as_path()));
        assert_eq!(loaded.active_state, ActiveState::Inactive, "{loaded:?}");

        let started = manager.start(unit, JOB_TIMEOUT).await.expect("start");
        assert_eq!(started, JobResult::Done);
        // Type=notify: the job is done once the container runs, no polling needed.
        let running = manager.unit_state(unit).await.unwrap();
        assert_eq!(running.active_state, ActiveState::Active, "{running:?}");
        assert_eq!(running.sub_state, "running", "{running:?}");
        assert_eq!(running.service_result.as_deref(), Some("success"));
        assert!(running.main_pid.is_some(), "{running:?}");
        assert_eq!(running.restarts, Some(0));

        let restarted = manager.restart(unit, JOB_TIMEOUT).await.expect("restart");
        assert_eq!(restarted, JobResult::Done);
        let after_restart = manager.unit_state(unit).await.unwrap();
        assert!(is_active(&after_restart), "{after_restart:?}");
        assert_ne!(
            after_restart.main_pid, running.main_pid,
            "a new main process"
        );

        let stopped = manager.stop(unit, JOB_TIMEOUT).await.expect("stop");
        assert_eq!(stopped, JobResult::Done);
        let inactive = manager.unit_state(unit).await.unwrap();
        assert_eq!(inactive.active_state, ActiveState::Inactive, "{inactive:?}");
        assert_eq!(inactive.main_pid, None);
    });
}

#[test]
fn failing_units_report_failed_with_their_result() {
    if support::skip_without_test_host() {
        return;
    }
    if !inside_host() {
        let host = Host::up("csdfail", false);
        host.load_standin_image(&standin_image_tar());
        run_inside(&host, "failing_units_report_failed_with_their_result");
        return;
    }
    block_on(async {
        let manager = UserManager::connect().await.expect("connect");
        // A oneshot's start job ends with the process: a failing one fails its job.
        let oneshot = "csdfail-oneshot.service";
        write(
            &home().join(".config/systemd/user").join(oneshot),
            "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 3'\n",
        );
        // A router container refusing its configuration (here: none at all).
        let router = "csdfail-router.service";
        write_standin_quadlet("csdfail-router", "this is not a router configuration");
        manager.reload().await.expect("reload");

        assert_eq!(
            manager.start(oneshot, JOB_TIMEOUT).await.expect("start"),
            JobResult::Failed
        );
        let failed = manager.unit_state(oneshot).await.unwrap();
        assert_eq!(failed.active_state, ActiveState::Failed, "{failed:?}");
        assert_eq!(failed.service_result.as_deref(), Some("exit-code"));

        // Type=notify with conmon: podman reports ready once the container started, so the
        // job may end `done` before the router exits; the unit then turns failed.
        let job = manager.start(router, JOB_TIMEOUT).await.expect("start");
        println!("start job of a router refusing its configuration: {job:?}");
        assert!(
            job == JobResult::Done || job == JobResult::Failed,
            "{job:?}"
        );
        let failed = manager
            .wait_for_state(
                router,
                |state| state.active_state == ActiveState::Failed,
                Duration::from_secs(30),
            )
            .await
            .expect("router unit fails");
        assert_eq!(failed.service_result.as_deref(), Some("exit-code"));
        println!("failed router unit: {failed:?}");

        // With Restart=on-failure (as vansite's router unit has) the unit keeps cycling
        // instead; systemd counts the restarts.
        let looping = "csdfail-looping";
        let quadlet = write_standin_quadlet(looping, "not a configuration either");
        let mut text = std::fs::read_to_string(&quadlet).unwrap();
        text.push_str("[Service]\nRestart=on-failure\nRestartSec=200ms\n");
        write(&quadlet, &text);
        manager.reload().await.expect("reload");
        let unit = format!("{looping}.service");
        manager.start(&unit, JOB_TIMEOUT).await.expect("start");
        let restarting = manager
            .wait_for_state(
                &unit,
                |state| state.restarts.is_some_and(|count| count >= 2),
                Duration::from_secs(30),
            )
            .await
            .expect("restarted twice");
        println!("crash-looping router unit: {restarting:?}");
        // Result is reset while the next attempt starts: NRestarts is the lasting sign.
        assert_eq!(
            manager.stop(&unit, JOB_TIMEOUT).await.unwrap(),
            JobResult::Done
        );

        // Bounded waiting reports the last state seen.
        let not_reached = manager
            .wait_for_state(router, is_active, Duration::from_millis(300))
            .await
            .expect_err("never active");
        assert!(
            matches!(&not_reached, SystemdError::StateNotReached { last, .. }
                if last.active_state == ActiveState::Failed),
            "{not_reached:?}"
        );
    });
}

#[test]
fn missing_units_and_linger() {
    if support::skip_without_test_host() {
        return;
    }
    let host_name = "csdnone";
    let linger_file = PathBuf::from(format!("/var/lib/systemd/linger/vst-{host_name}"));
    if !inside_host() {
        let host = Host::up(host_name, false);
        // As `loginctl enable-linger vst-csdnone` would, for the test user only.
        let _linger = LingerFile::create(&linger_file);
        run_inside(&host, "missing_units_and_linger");
        return;
    }
    block_on(async {
        let manager = UserManager::connect().await.expect("connect");
        let unit = "csdnone-nosuch.service";
        let error = manager
            .start(unit, JOB_TIMEOUT)
            .await
            .expect_err("no such unit");
        assert!(
            matches!(&error, SystemdError::NoSuchUnit { unit: u } if u == unit),
            "{error:?}"
        );
        let error = manager
            .stop(unit, JOB_TIMEOUT)
            .await
            .expect_err("no such unit");
        assert!(
            matches!(&error, SystemdError::NoSuchUnit { .. }),
            "{error:?}"
        );
        let state = manager
            .unit_state(unit)
            .await
            .expect("state of a missing unit");
        assert_eq!(state.load_state, LoadState::NotFound);
        assert_eq!(state.active_state, ActiveState::Inactive);
        let (error_name, _) = state.load_error.expect("load error");
        assert_eq!(error_name, "org.freedesktop.systemd1.NoSuchUnit");
        assert_eq!(state.service_result, None);

        assert!(linger_enabled(&format!("vst-{host_name}")));
        assert!(!linger_enabled("vst-csdnobody"));
    });
}

/// The file `loginctl enable-linger` creates, removed again when dropped.
struct LingerFile(PathBuf);

impl LingerFile {
    fn create(path: &Path) -> LingerFile {
        std::fs::create_dir_all(path.parent().expect("linger dir")).expect("linger dir");
        std::fs::write(path, "").expect("linger file");
        LingerFile(path.to_path_buf())
    }
}

impl Drop for LingerFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// No host needed: a bus address where nothing listens, as under sudo or su.
#[test]
fn without_a_user_bus_connect_says_what_to_do() {
    if support::skip_without_test_host() {
        return;
    }
    if !inside_host() {
        let exe = std::env::current_exe().expect("test binary path");
        let output = std::process::Command::new(exe)
            .args([
                "--exact",
                "without_a_user_bus_connect_says_what_to_do",
                "--nocapture",
            ])
            .env(INNER, "1")
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/vansite-test/bus",
            )
            .output()
            .expect("run test binary");
        assert!(output.status.success(), "{}", text(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
        return;
    }
    block_on(async {
        let error = UserManager::connect().await.err().expect("no bus there");
        assert!(matches!(error, SystemdError::NoUserBus { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("loginctl enable-linger"), "{message}");
        assert!(message.contains("sudo"), "{message}");
    });
}

#[test]
fn podman_socket_on_demand_and_the_router_container() {
    if support::skip_without_test_host() {
        return;
    }
    if !inside_host() {
        let host = Host::up("cpodman", false);
        host.load_standin_image(&standin_image_tar());
        run_inside(&host, "podman_socket_on_demand_and_the_router_container");
        return;
    }
    block_on(async {
        let manager = UserManager::connect().await.expect("connect");
        let runtime_dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").unwrap());
        let socket = runtime_dir.join("podman/podman.sock");
        assert!(!socket.exists(), "a fresh host has no podman socket yet");

        let podman = PodmanService::connect(&manager).await.expect("podman");
        assert!(socket.exists());
        let socket_unit = manager.unit_state("podman.socket").await.unwrap();
        assert!(is_active(&socket_unit), "{socket_unit:?}");
        // Connecting again finds the service answering.
        PodmanService::connect(&manager)
            .await
            .expect("podman again");

        assert!(podman.image_present(STANDIN_IMAGE).await.unwrap());
        assert!(!podman
            .image_present("localhost/no-such-image:1")
            .await
            .unwrap());

        let name = "cpodman-router";
        assert_eq!(podman.container_info(name).await.unwrap(), None);
        write_standin_quadlet(name, IDLE_ROUTER_CONFIG);
        manager.reload().await.expect("reload");
        let before_start = SystemTime::now();
        let unit = "cpodman-router.service";
        assert_eq!(
            manager.start(unit, JOB_TIMEOUT).await.unwrap(),
            JobResult::Done
        );

        let info = podman
            .container_info(name)
            .await
            .unwrap()
            .expect("running container");
        println!("container_info: {info:?}");
        assert_eq!(
            info.id,
            podman_cli(&["inspect", "--format", "{{.Id}}", name])
        );
        assert_eq!(info.status, "running");
        assert_eq!(info.image, STANDIN_IMAGE);
        assert_eq!(info.restart_count, 0);
        let started_at = info.started_at.expect("started");
        // podman's clock granularity: allow a second before the start call.
        assert!(
            started_at + Duration::from_secs(1) >= before_start,
            "{started_at:?} before {before_start:?}"
        );

        // Quadlet containers are removed when their unit stops (--rm).
        assert_eq!(
            manager.stop(unit, JOB_TIMEOUT).await.unwrap(),
            JobResult::Done
        );
        assert_eq!(podman.container_info(name).await.unwrap(), None);

        // Removing a running container, then removing it again.
        assert_eq!(
            manager.start(unit, JOB_TIMEOUT).await.unwrap(),
            JobResult::Done
        );
        assert!(podman.container_info(name).await.unwrap().is_some());
        podman.remove_container(name).await.expect("remove running");
        assert_eq!(podman.container_info(name).await.unwrap(), None);
        podman.remove_container(name).await.expect("remove absent");
        // The unit notices its container is gone.
        let state = manager
            .wait_for_state(unit, |state| !is_active(state), Duration::from_secs(30))
            .await
            .expect("unit no longer active");
        println!("unit after its container was removed: {state:?}");

        // A container that never ran has no start time.
        let created = "cpodman-created";
        podman_cli(&["create", "--name", created, STANDIN_IMAGE]);
        let info = podman
            .container_info(created)
            .await
            .unwrap()
            .expect("created");
        assert_eq!(info.status, "created");
        assert_eq!(info.started_at, None);
        podman
            .remove_container(created)
            .await
            .expect("remove created");
        assert_eq!(podman.container_info(created).await.unwrap(), None);
    });
}

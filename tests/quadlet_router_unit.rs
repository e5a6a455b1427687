//! The router unit on a real host: vansite's quadlet for the stand-in router image goes through
//! the real generator, starts over D-Bus under the user's systemd, and the router's output —
//! including why it refuses a broken configuration — lands in the unit's log file.

mod support;

use std::time::Duration;

use support::{standin_image_tar, Host, STANDIN_IMAGE};
use vansite::quadlet::version::detect_generator_version;
use vansite::render::router_unit::{router_quadlet, RouterUnitSpec};

const PORT: u16 = 18641;

/// A router whose tcpListener opens only when the configuration was applied.
fn valid_config() -> String {
    format!(
        r#"[
  ["router", {{"id": "quadlet-router", "mode": "interior"}}],
  ["tcpConnector", {{"name": "connector/probe", "host": "127.0.0.1", "port": "9", "address": "probe"}}],
  ["tcpListener", {{"name": "listener/probe", "host": "127.0.0.1", "port": "{PORT}", "address": "probe"}}]
]"#
    )
}

/// `sslProfle` is no listener attribute: the router refuses to start.
const BROKEN_CONFIG: &str = r#"[
  ["router", {"id": "quadlet-router", "mode": "interior"}],
  ["listener", {"name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1", "port": 5671,
                "sslProfle": "skupper-local-server"}]
]"#;

fn read(host: &Host, path: &str) -> String {
    String::from_utf8_lossy(&host.run(&["cat", path]).stdout).into_owned()
}

#[test]
fn router_unit_runs_the_router_and_its_output_reaches_the_log_file() {
    if support::skip_without_test_host() {
        return;
    }
    let tar = standin_image_tar();
    let host = Host::up("qrouter", false);
    host.load_standin_image(&tar);

    let home = host.ok(&["sh", "-c", "echo $HOME"]).trim().to_string();
    let uid: u32 = host.ok(&["id", "-u"]).trim().parse().unwrap();
    let gid: u32 = host.ok(&["id", "-g"]).trim().parse().unwrap();
    let site_dir = format!("{home}/.local/share/vansite/default");
    let log_file = format!("{site_dir}/runtime/logs/router.log");
    host.write_file(
        ".local/share/vansite/default/runtime/router/skrouterd.json",
        &valid_config(),
    );
    host.ok(&[
        "mkdir",
        "-p",
        &format!("{site_dir}/runtime/certs"),
        &format!("{site_dir}/runtime/logs"),
    ]);

    let file = router_quadlet(&RouterUnitSpec {
        namespace: "default".into(),
        site_id: "5f0c8a2e-1d3b-4e6f-8a9b-0c1d2e3f4a5b".into(),
        site_name: "qrouter".into(),
        image: STANDIN_IMAGE.into(),
        uid,
        gid,
        site_dir: site_dir.clone().into(),
        log_file: log_file.clone().into(),
    });
    let generator = detect_generator_version().expect("quadlet generator on this machine");
    let text = file.render(generator).unwrap();
    host.write_file(
        &format!(".config/containers/systemd/{}", file.file_name()),
        &text,
    );
    let service = file.service_name();

    host.manager_call("Reload", &[]);
    host.manager_call("StartUnit", &["ss", &service, "replace"]);
    host.wait_until(
        "the router logging that it runs",
        Duration::from_secs(60),
        |h| read(h, &log_file).contains("router quadlet-router (interior) running"),
    );
    let state = host.ok(&["systemctl", "--user", "is-active", &service]);
    assert_eq!(state.trim(), "active");
    let containers = host.ok(&["podman", "ps", "--format", "{{.Names}} {{.Labels}}"]);
    assert!(
        containers.contains("vansite-default-router")
            && containers.contains("io.vansite.namespace:default"),
        "{containers}"
    );
    // It runs as the user (keep-id), on the host's network, with the configuration applied.
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{PORT}");
    host.wait_until("the tcpListener accepting", Duration::from_secs(30), |h| {
        h.run(&["bash", "-c", &probe]).status.success()
    });
    let user = host.ok(&["podman", "top", "vansite-default-router", "huser", "user"]);
    let name = host.user();
    assert!(
        user.lines()
            .any(|line| line.split_whitespace().eq([name.as_str(), name.as_str()])),
        "the router should run as {name} inside and outside:\n{user}"
    );

    // A broken configuration: the router exits non-zero and says why, in the same log file.
    host.write_file(
        ".local/share/vansite/default/runtime/router/skrouterd.json",
        BROKEN_CONFIG,
    );
    host.manager_call("RestartUnit", &["ss", &service, "replace"]);
    host.wait_until(
        "the configuration error in the log file",
        Duration::from_secs(60),
        |h| {
            let log = read(h, &log_file);
            log.contains("configuration error") && log.contains("sslProfle")
        },
    );
    host.wait_until("the unit failing", Duration::from_secs(60), |h| {
        let state = h.run(&["systemctl", "--user", "show", "-p", "Result", &service]);
        let state = String::from_utf8_lossy(&state.stdout).into_owned();
        state.contains("Result=exit-code")
    });
    let log = read(&host, &log_file);
    assert!(
        log.contains("router quadlet-router (interior) running"),
        "the first run's output was appended to, not replaced:\n{log}"
    );
}

//! `vansite init`, `status` and `delete` on real test hosts (own systemd --user, real quadlet
//! generator, rootless podman), with the stand-in router image. Each test uses its own host
//! with its own network namespace, so sites of different tests never compete for ports.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{standin_image_tar, text, vansite, vansite_ok, Host, STANDIN_IMAGE, VANSITE};

fn status_json(host: &Host, namespace: &str) -> Value {
    let output = vansite(host, &["-n", namespace, "status", "--output", "json"]);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", text(&output)))
}

fn init(host: &Host, namespace: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "-n",
        namespace,
        "init",
        "--router-image",
        STANDIN_IMAGE,
        "--timeout",
        "120",
    ];
    args.extend_from_slice(extra);
    vansite_ok(host, &args)
}

fn host_with_image(name: &str) -> Host {
    let host = Host::up(name, true);
    host.load_standin_image(&standin_image_tar());
    host
}

/// No site directory, no quadlet or unit file of vansite's, nor a link enabling one.
fn assert_no_site_files(host: &Host) {
    let left = host.ok(&[
        "sh",
        "-c",
        "ls -A .local/share/vansite 2>/dev/null; \
         find .config/containers/systemd .config/systemd/user 2>/dev/null | grep vansite; true",
    ]);
    assert_eq!(left.trim(), "", "files left by vansite");
}

fn file_text(host: &Host, path: &str) -> String {
    host.ok(&["cat", path])
}

#[test]
fn init_status_delete_leave_nothing_behind() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life1");
    let out = init(
        &host,
        "default",
        &["--name", "west", "--enable-link-access", "--output", "json"],
    );
    let initialised: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("init JSON: {e}\n{out}"));
    assert_eq!(initialised["site"]["name"], "west", "{initialised:#}");
    assert_eq!(initialised["created"], true);
    assert_eq!(initialised["routerUnit"], "vansite-default-router.service");

    let status = status_json(&host, "default");
    assert_eq!(
        initialised["site"], status["site"],
        "init and status show the same site"
    );
    assert_eq!(status["site"]["name"], "west", "{status:#}");
    assert_eq!(status["site"]["mode"], "interior");
    assert_eq!(status["router"]["unit"], "vansite-default-router.service");
    assert_eq!(status["router"]["activeState"], "active", "{status:#}");
    assert_eq!(status["router"]["subState"], "running");
    assert_eq!(status["healthy"], true);
    assert_eq!(status["namespaces"], serde_json::json!(["default"]));
    let roles: Vec<&str> = status["site"]["linkAccess"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["inter-router", "edge"]);
    let site_id = status["site"]["id"].as_str().unwrap().to_string();
    assert_eq!(site_id.len(), 36, "a UUID: {site_id}");
    assert!(host
        .ok(&["podman", "ps", "--format", "{{.Names}}"])
        .contains("vansite-default-router"));

    // The files are Skupper's: resources as v2 YAML, keys private, the router config Skupper's.
    let site_yaml = file_text(
        &host,
        ".local/share/vansite/default/resources/Site-west.yaml",
    );
    assert!(
        site_yaml.contains("apiVersion: skupper.io/v2alpha1") && site_yaml.contains(&site_id),
        "{site_yaml}"
    );
    let key_mode = host.ok(&[
        "stat",
        "-c",
        "%a",
        ".local/share/vansite/default/runtime/certs/skupper-local-server/tls.key",
    ]);
    assert_eq!(key_mode.trim(), "600");
    let dir_mode = host.ok(&[
        "stat",
        "-c",
        "%a",
        ".local/share/vansite/default/runtime/issuers",
    ]);
    assert_eq!(dir_mode.trim(), "700");

    // Human output names the same facts.
    let table = vansite_ok(&host, &["status"]);
    assert!(
        table.contains("west") && table.contains("active"),
        "{table}"
    );

    // Twice is the same site: same id, same CA, router still running.
    let ca_before = file_text(
        &host,
        ".local/share/vansite/default/runtime/issuers/skupper-site-ca/tls.crt",
    );
    init(&host, "default", &[]);
    let again = status_json(&host, "default");
    assert_eq!(again["site"]["id"], site_id.as_str());
    assert_eq!(
        file_text(
            &host,
            ".local/share/vansite/default/runtime/issuers/skupper-site-ca/tls.crt"
        ),
        ca_before
    );
    assert_eq!(again["router"]["activeState"], "active");

    let out = vansite_ok(&host, &["delete", "--output", "json"]);
    let deleted: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("delete JSON: {e}\n{out}"));
    assert_eq!(deleted["namespace"], "default", "{deleted:#}");
    assert!(
        deleted["removed"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "unit vansite-default-router.service (stopped)"
            )),
        "{deleted:#}"
    );
    let unit = host.ok(&[
        "systemctl",
        "--user",
        "show",
        "-p",
        "LoadState",
        "vansite-default-router.service",
    ]);
    assert_eq!(unit.trim(), "LoadState=not-found");
    assert_eq!(
        host.ok(&["podman", "ps", "-a", "--format", "{{.Names}}"])
            .trim(),
        ""
    );
    assert_no_site_files(&host);
    let status = vansite(&host, &["status"]);
    assert!(
        !status.status.success(),
        "status of a deleted site must fail:\n{}",
        text(&status)
    );
}

#[test]
fn two_namespaces_side_by_side() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life2");
    init(&host, "east", &[]);
    init(&host, "north", &["--router-mode", "edge"]);
    let east = status_json(&host, "east");
    let north = status_json(&host, "north");
    assert_eq!(east["namespaces"], serde_json::json!(["east", "north"]));
    assert_eq!(north["site"]["mode"], "edge");
    assert_ne!(east["site"]["id"], north["site"]["id"]);
    assert_ne!(
        east["site"]["managementPort"], north["site"]["managementPort"],
        "each router has its own port"
    );
    for status in [&east, &north] {
        assert_eq!(status["router"]["activeState"], "active", "{status:#}");
    }
    vansite_ok(&host, &["-n", "east", "delete"]);
    let north = status_json(&host, "north");
    assert_eq!(
        north["router"]["activeState"], "active",
        "deleting one site leaves the other running"
    );
    assert_eq!(north["namespaces"], serde_json::json!(["north"]));
}

/// `status` reads systemd and the files quadlet's podman writes: podman's REST service (started
/// through its socket on demand, slower than all the rest together) is asked only for
/// `--containers`. And a reader that goes away early ends vansite quietly.
#[test]
fn status_asks_podman_only_for_containers() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life6");
    init(&host, "default", &[]);
    host.ok(&[
        "systemctl",
        "--user",
        "stop",
        "podman.socket",
        "podman.service",
    ]);
    host.ok(&["systemctl", "--user", "mask", "podman.socket"]);

    let status = status_json(&host, "default");
    assert_eq!(status["healthy"], true, "{status:#}");
    let container = &status["router"]["container"];
    let podman_id = host.ok(&[
        "podman",
        "inspect",
        "--format",
        "{{.Id}}",
        "vansite-default-router",
    ]);
    assert_eq!(container["id"], podman_id.trim(), "{status:#}");
    assert!(
        container.get("podmanStatus").is_none(),
        "podman is not asked: {status:#}"
    );
    let main_pid = host.ok(&[
        "systemctl",
        "--user",
        "show",
        "--property",
        "MainPID",
        "--value",
        "vansite-default-router.service",
    ]);
    assert_eq!(status["router"]["mainPid"].to_string(), main_pid.trim());
    let podman_service = host.run(&["systemctl", "--user", "is-active", "podman.service"]);
    assert_eq!(
        String::from_utf8_lossy(&podman_service.stdout).trim(),
        "inactive",
        "status started podman's service"
    );

    // Asked for podman's view while podman's socket cannot start: unhealthy, and why.
    let output = vansite(&host, &["status", "--containers"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("podman.socket"), "{}", text(&output));
    host.ok(&["systemctl", "--user", "unmask", "podman.socket"]);
    let output = vansite(&host, &["status", "--containers", "--output", "json"]);
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        status["router"]["container"]["podmanStatus"], "running",
        "{status:#}"
    );

    // `| true` has gone before vansite writes: the write fails with EPIPE.
    let piped = host.run(&[
        "bash",
        "-c",
        &format!("{VANSITE} status --output json | true; exit ${{PIPESTATUS[0]}}"),
    ]);
    assert!(piped.status.success(), "{}", text(&piped));
    assert!(!text(&piped).contains("panicked"), "{}", text(&piped));
}

#[test]
fn an_image_that_cannot_start_is_a_failed_init() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life3");
    // Same image, but its command does not exist: the container cannot start.
    let output = host.run(&[
        "podman",
        "tag",
        STANDIN_IMAGE,
        "localhost/not-a-router:test",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let output = host.run(&[
        "sh",
        "-c",
        "podman create --name broken-base localhost/not-a-router:test >/dev/null && \
         podman commit --quiet --change 'CMD [\"/no/such/router\"]' broken-base localhost/not-a-router:test >/dev/null && \
         podman rm broken-base >/dev/null",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let output = vansite(
        &host,
        &[
            "init",
            "--router-image",
            "localhost/not-a-router:test",
            "--timeout",
            "60",
        ],
    );
    assert!(
        !output.status.success(),
        "init with a broken image must fail:\n{}",
        text(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("vansite-default-router.service"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/no/such/router"),
        "the router's own last log lines are shown:\n{stderr}"
    );
    // The next init with a good image recovers the same site.
    init(&host, "default", &[]);
    assert_eq!(
        status_json(&host, "default")["router"]["activeState"],
        "active"
    );
}

#[test]
fn bad_input_and_faults_are_explained() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life4");
    let output = vansite(&host, &["-n", "Not_A_Name", "init"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("'Not_A_Name' is not a valid name") && stderr.contains("lower case"),
        "{stderr}"
    );

    let output = vansite(&host, &["init", "--platform", "docker"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("podman"),
        "{}",
        text(&output)
    );

    // No user bus: say what to do.
    let output = host.run(&[
        "env",
        "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus",
        VANSITE,
        "init",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("enable-linger"), "{stderr}");
    // ... and nothing was left half-made by those failures.
    assert_no_site_files(&host);

    // The default management port is taken by someone else: the site takes the next free one.
    let squatter = host.run(&["sh", "-c", "(socat TCP-LISTEN:5671,bind=127.0.0.1,fork,reuseaddr /dev/null & echo $! > squatter.pid) >/dev/null 2>&1"]);
    assert!(squatter.status.success());
    host.wait_until("the squatter listening", Duration::from_secs(10), |h| {
        h.run(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5671"])
            .status
            .success()
    });
    init(&host, "default", &[]);
    let status = status_json(&host, "default");
    assert_eq!(status["router"]["activeState"], "active");
    assert_ne!(status["site"]["managementPort"], 5671);
    host.run(&["sh", "-c", "kill $(cat squatter.pid)"]);

    // Options that contradict the existing site are refused as bad usage, the site untouched.
    let output = vansite(&host, &["init", "--router-mode", "edge", "--name", "other"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("router mode interior (asked: edge)")
            && stderr.contains("(asked: 'other')")
            && stderr.contains("delete"),
        "{stderr}"
    );
    let unchanged = status_json(&host, "default");
    assert_eq!(unchanged["site"], status["site"]);

    // A stopped router is an unhealthy site: status says why, in YAML too, and exits 3.
    host.ok(&[
        "systemctl",
        "--user",
        "stop",
        "vansite-default-router.service",
    ]);
    let output = vansite(&host, &["status", "--output", "yaml"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let yaml: Value = serde_saphyr::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("status YAML: {e}\n{}", text(&output)));
    assert_eq!(yaml["healthy"], false);
    assert_eq!(yaml["site"], status["site"]);
    assert!(
        yaml["problems"].as_array().is_some_and(|p| !p.is_empty()),
        "{yaml:#}"
    );
    // init brings it back.
    init(&host, "default", &[]);
    assert_eq!(status_json(&host, "default")["healthy"], true);
}

#[test]
fn killed_and_concurrent_commands_do_not_corrupt_the_site() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("life5");
    // Kill init at several points of its work; each next run must recover.
    for delay in ["0.05", "0.2", "0.5", "1"] {
        // Whether it was killed or finished in time, the next command must find a usable site.
        host.run(&[
            "timeout",
            "-s",
            "KILL",
            delay,
            VANSITE,
            "init",
            "--router-image",
            STANDIN_IMAGE,
        ]);
        // Killed before it saved the site: every command says so, and how to go on.
        let marker = host.run(&["test", "-e", ".local/share/vansite/default/.applying"]);
        let saved = host.run(&[
            "sh",
            "-c",
            "ls .local/share/vansite/default/resources/Site-*",
        ]);
        if marker.status.success() && !saved.status.success() {
            for command in [&["status"][..], &["listener", "list"], &["link", "status"]] {
                let out = text(&vansite(&host, command));
                assert!(
                    out.contains("site 'default' was not fully initialised")
                        && out.contains("`vansite -n default init` again")
                        && out.contains("`vansite -n default delete`"),
                    "{command:?} after init was killed at {delay}s: {out}"
                );
            }
        }
    }
    init(&host, "default", &[]);
    let site_id = status_json(&host, "default")["site"]["id"].clone();
    // Concurrent commands on one site take turns on its lock.
    let script = format!(
        "{v} init --router-image {i} >a.out 2>&1 & a=$!; {v} init --router-image {i} >b.out 2>&1 & b=$!; \
         {v} status >c.out 2>&1 & c=$!; wait $a && wait $b && wait $c",
        v = VANSITE,
        i = STANDIN_IMAGE
    );
    let output = host.run(&["bash", "-c", &script]);
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output),
        host.ok(&["sh", "-c", "cat a.out b.out c.out"])
    );
    let status = status_json(&host, "default");
    assert_eq!(status["site"]["id"], site_id);
    assert_eq!(status["router"]["activeState"], "active");
    // A command's journal while that command runs (it holds the site's lock) is no
    // interruption; once nothing holds the lock, it is one.
    let journal = ".local/share/vansite/default/.applying";
    host.write_file(journal, "init");
    let held = host.run(&[
        "sh",
        "-c",
        &format!("flock \"$XDG_RUNTIME_DIR/vansite/default.lock\" {VANSITE} status -o json"),
    ]);
    assert!(held.status.success(), "{}", text(&held));
    let free = vansite(&host, &["status", "-o", "json"]);
    assert_eq!(free.status.code(), Some(3), "{}", text(&free));
    assert!(
        text(&free).contains("`vansite init` was interrupted"),
        "{}",
        text(&free)
    );
    host.ok(&["rm", journal]);
}

//! `vansite doctor` on real test hosts: OK on a host that runs a site, FAIL with the fix when
//! linger is off or the quadlet generator is missing (hidden from that host alone), and init
//! refusing on such a host.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{standin_image_tar, text, Host, STANDIN_IMAGE};

const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");

fn vansite(host: &Host, args: &[&str]) -> std::process::Output {
    let mut full = vec![VANSITE];
    full.extend_from_slice(args);
    host.run(&full)
}

/// The doctor's checks by name, and the whole output for messages.
fn doctor_json(host: &Host, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec!["doctor", "--output", "json"];
    args.extend_from_slice(extra);
    let output = vansite(host, &args);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON: {e}\n{}", text(&output)));
    (output, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
fn doctor_is_ok_on_a_host_running_a_site() {
    if support::skip_without_test_host() {
        return;
    }
    let host = Host::up("pk1", true);
    host.load_standin_image(&standin_image_tar());
    host.set_linger(true);
    let init = vansite(
        &host,
        &[
            "init",
            "--router-image",
            STANDIN_IMAGE,
            "--enable-link-access",
            "--timeout",
            "120",
        ],
    );
    assert!(init.status.success(), "init: {}", text(&init));
    // Piped stderr: no spinner, no progress lines (only -v shows them).
    assert!(
        init.stderr.is_empty(),
        "init wrote to a pipe: {}",
        text(&init)
    );

    let (output, report) = doctor_json(&host, &[]);
    assert!(output.status.success(), "doctor: {}", text(&output));
    for name in [
        "quadlet generator",
        "cgroup v2",
        "user namespaces",
        "subuid",
        "subgid",
        "user bus",
        "linger",
        "router image",
        "ports",
        "clock",
        "certificates",
    ] {
        assert_eq!(check(&report, name)["result"], "OK", "{name}: {report:#}");
    }
    // The test host's podman binary is Debian 12's 4.3.1 under a 5.4.2 quadlet: a WARN, honestly.
    let podman = &check(&report, "podman")["result"];
    assert!(podman == "OK" || podman == "WARN", "{report:#}");
    let ports = check(&report, "ports")["detail"].as_str().unwrap();
    assert!(ports.contains("held by this site's router"), "{ports}");

    let table = vansite(&host, &["doctor"]);
    let table_text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{}", text(&table));
    assert!(table_text.contains("OK    linger"), "{table_text}");
    assert!(table_text.contains(" 0 FAIL"), "{table_text}");
    let yaml = vansite(&host, &["doctor", "-o", "yaml"]);
    assert!(
        String::from_utf8_lossy(&yaml.stdout).contains("result: OK"),
        "{}",
        text(&yaml)
    );
    // Expiry everywhere: a service certificate that ends in 5 days is the site's first to
    // expire; status shows it and doctor warns, naming it (a warning keeps exit status 0).
    let status: Value = serde_json::from_slice(&vansite(&host, &["status", "-o", "json"]).stdout)
        .expect("status JSON");
    assert_eq!(status["soonestExpiry"]["state"], "valid", "{status:#}");
    host.ok(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "web.key",
        "-out",
        "web.crt",
        "-days",
        "5",
        "-subj",
        "/CN=localhost",
    ]);
    let created = vansite(
        &host,
        &[
            "listener",
            "create",
            "web",
            "8443",
            "--tls-cert",
            "web.crt",
            "--tls-key",
            "web.key",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let status: Value = serde_json::from_slice(&vansite(&host, &["status", "-o", "json"]).stdout)
        .expect("status JSON");
    let soonest = &status["soonestExpiry"];
    assert_eq!(
        soonest["certificate"], "certs/web-tls/tls.crt",
        "{status:#}"
    );
    assert_eq!(soonest["state"], "soon", "{status:#}");
    // Five days from when openssl made it, read within the same second or just after.
    let five_days = [4, 5];
    assert!(
        five_days.contains(&soonest["daysLeft"].as_i64().unwrap()),
        "{status:#}"
    );
    let status_table = String::from_utf8_lossy(&vansite(&host, &["status"]).stdout).into_owned();
    assert!(status_table.contains("certificates"), "{status_table}");
    let (output, report) = doctor_json(&host, &[]);
    assert!(
        output.status.success(),
        "a warning is not a failure: {}",
        text(&output)
    );
    let certificates = check(&report, "certificates");
    assert_eq!(certificates["result"], "WARN", "{report:#}");
    let detail = certificates["detail"].as_str().unwrap();
    assert!(
        detail.contains("certs/web-tls/tls.crt")
            && (detail.contains("in 4 days") || detail.contains("in 5 days")),
        "{detail}"
    );

    // Renewal: with `renew_certificates = true` a daily timer runs `certs rotate --expiring`,
    // which renews what vansite issued and is due (here the management client certificate,
    // re-signed by the site's local CA to end in 5 days), not the user's own certificate.
    let runtime = ".local/share/vansite/default/runtime";
    let expire_local_client = format!(
        "set -e; cd {runtime}; \
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout lc.key \
           -subj /CN=127.0.0.1 -out lc.csr 2>/dev/null; \
         printf 'subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1\\n\
extendedKeyUsage=serverAuth,clientAuth\\n' > lc.ext; \
         openssl x509 -req -in lc.csr -CA issuers/skupper-local-ca/tls.crt \
           -CAkey issuers/skupper-local-ca/tls.key -days 5 -extfile lc.ext -out lc.crt 2>/dev/null; \
         mv lc.crt certs/skupper-local-client/tls.crt; mv lc.key certs/skupper-local-client/tls.key; \
         rm lc.csr lc.ext"
    );
    let days_left = |certificate: &str| -> i64 {
        let listed: Value =
            serde_json::from_slice(&vansite(&host, &["certs", "list", "-o", "json"]).stdout)
                .expect("certs list JSON");
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["certificate"] == certificate)
            .unwrap_or_else(|| panic!("{certificate} in {listed:#}"))["daysLeft"]
            .as_i64()
            .unwrap()
    };
    host.ok(&["sh", "-c", &expire_local_client]);
    // Five days from now, read within the same second or just after.
    assert!((4..=5).contains(&days_left("certs/skupper-local-client/tls.crt")));
    host.write_file(".config/vansite/config.toml", "renew_certificates = true\n");
    let rotated = vansite(&host, &["certs", "rotate", "--expiring", "-o", "json"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let rotated: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let renewed: Vec<&str> = support::texts(&rotated["renewed"], "certificate");
    assert_eq!(
        renewed,
        ["skupper-local-client"],
        "only what is due: {rotated:#}"
    );
    assert!(days_left("certs/skupper-local-client/tls.crt") > 1000);
    assert_eq!(
        host.ok(&[
            "systemctl",
            "--user",
            "is-active",
            "vansite-default-certs.timer"
        ])
        .trim(),
        "active"
    );
    // What the timer starts, once more with a certificate due.
    host.ok(&["sh", "-c", &expire_local_client]);
    host.ok(&[
        "systemctl",
        "--user",
        "start",
        "vansite-default-certs.service",
    ]);
    let mut state = String::new();
    host.wait_until(
        "the renewal service ran to its end",
        Duration::from_secs(60),
        |host| {
            state = host.ok(&[
                "systemctl",
                "--user",
                "show",
                "-p",
                "ActiveState,Result",
                "vansite-default-certs.service",
            ]);
            state.contains("ActiveState=inactive") || state.contains("ActiveState=failed")
        },
    );
    assert!(state.contains("Result=success"), "{state}");
    assert!(days_left("certs/skupper-local-client/tls.crt") > 1000);
    let status: Value = serde_json::from_slice(&vansite(&host, &["status", "-o", "json"]).stdout)
        .expect("status JSON");
    assert_eq!(
        status["healthy"], true,
        "the router takes the new certificates: {status:#}"
    );
    assert!(
        five_days.contains(&days_left("certs/web-tls/tls.crt")),
        "the user's own is left alone"
    );
    // The setting gone, the next apply removes the timer; back, it returns.
    let timer_file = ".config/systemd/user/vansite-default-certs.timer";
    let timer_exists = |host: &Host| host.run(&["test", "-e", timer_file]).status.success();
    for (setting, present) in [("false", false), ("true", true)] {
        host.write_file(
            ".config/vansite/config.toml",
            &format!("renew_certificates = {setting}\n"),
        );
        let rotated = vansite(&host, &["certs", "rotate", "--expiring"]);
        assert!(rotated.status.success(), "{}", text(&rotated));
        assert_eq!(
            timer_exists(&host),
            present,
            "renew_certificates = {setting}"
        );
    }

    // On a terminal (script(1) gives delete one), the steps show as a spinner line.
    let delete = format!("env TERM=xterm {VANSITE} delete");
    let on_tty = host.run(&["script", "-qec", &delete, "/dev/null"]);
    let transcript = String::from_utf8_lossy(&on_tty.stdout);
    assert!(on_tty.status.success(), "{}", text(&on_tty));
    assert!(
        transcript.contains("stopping vansite-default-router.service"),
        "{transcript}"
    );
    assert!(transcript.contains("Deleted the site"), "{transcript}");
    assert!(!timer_exists(&host), "delete removes the renewal timer");
}

#[test]
fn doctor_fails_without_linger_or_quadlet_generator() {
    if support::skip_without_test_host() {
        return;
    }
    let host = Host::up("pk2", true);
    host.set_linger(false);
    let (output, report) = doctor_json(&host, &["--router-image", "localhost/nothing:here"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let linger = check(&report, "linger");
    assert_eq!(linger["result"], "FAIL", "{report:#}");
    assert_eq!(
        linger["fix"], "loginctl enable-linger vst-pk2",
        "{report:#}"
    );
    assert_eq!(
        check(&report, "quadlet generator")["result"],
        "OK",
        "{report:#}"
    );
    // A local-only image that is absent cannot be pulled: FAIL, with how to load it.
    let image = check(&report, "router image");
    assert_eq!(image["result"], "FAIL", "{report:#}");
    assert!(
        image["fix"].as_str().unwrap().contains("podman load"),
        "{report:#}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("linger") && stderr.contains("failed"),
        "{stderr}"
    );

    // The test host's podman 4.3.1 runs quadlet 5.4.2's units only thanks to its drop-in that
    // removes the container-id file podman < 4.4 leaves behind: without it, doctor fails
    // podman and init refuses, both saying why and how to go on, before anything is written.
    let podman = check(&report, "podman");
    if podman["result"] == "WARN" {
        assert!(
            podman["detail"].as_str().unwrap().contains("drop-in"),
            "{report:#}"
        );
        let drop_in = ".config/systemd/user/service.d/10-cidfile.conf";
        let kept = host.ok(&["cat", drop_in]);
        host.ok(&["rm", drop_in]);
        let (output, report) = doctor_json(&host, &["--router-image", "localhost/nothing:here"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let podman = check(&report, "podman");
        assert_eq!(podman["result"], "FAIL", "{report:#}");
        let init = vansite(&host, &["init", "--router-image", STANDIN_IMAGE]);
        assert!(!init.status.success(), "{}", text(&init));
        let stderr = String::from_utf8_lossy(&init.stderr);
        for said in [
            podman["detail"].as_str().unwrap(),
            "container id file exists",
            "install podman ≥ 4.4",
            "%t/%N.cid",
        ] {
            assert!(stderr.contains(said), "{said}: {stderr}");
        }
        let left = host.ok(&["sh", "-c", "ls -A .local/share/vansite 2>/dev/null; true"]);
        assert_eq!(left.trim(), "", "init left files behind");
        host.write_file(drop_in, &kept);
    }

    // The generator is installed machine-wide; hide it (and podman's libexec) from this host.
    host.hide(&["/usr/lib/systemd/user-generators", "/usr/libexec/podman"]);
    host.set_linger(true);
    let (output, report) = doctor_json(&host, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let generator = check(&report, "quadlet generator");
    assert_eq!(generator["result"], "FAIL", "{report:#}");
    assert!(
        generator["fix"]
            .as_str()
            .unwrap()
            .contains("install podman"),
        "{report:#}"
    );
    assert_eq!(check(&report, "linger")["result"], "OK", "{report:#}");
    let table = String::from_utf8_lossy(&vansite(&host, &["doctor"]).stdout).into_owned();
    assert!(table.contains("FAIL  quadlet generator"), "{table}");

    // init refuses the same way, before it writes anything.
    let output = vansite(&host, &["init", "--router-image", STANDIN_IMAGE]);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no quadlet generator") && stderr.contains("podman ≥ 4.4"),
        "{stderr}"
    );
    let left = host.ok(&[
        "sh",
        "-c",
        "ls -A .local/share/vansite .config/containers/systemd 2>/dev/null; true",
    ]);
    assert_eq!(left.trim(), "", "init left files behind");
}

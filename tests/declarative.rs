//! The declarative core end to end on test hosts with stand-in routers: a site built from one
//! YAML stream with `apply -f`, the same stream again changing nothing, a refused document
//! changing nothing, `get` and `delete -f`, updates applied live, a router image that does not
//! start rolled back, and commands killed at many moments leaving a site the next command
//! converges.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{router_identity, standin_image_tar, text, vansite, vansite_ok, Host, STANDIN_IMAGE};

const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");

fn status(host: &Host) -> Value {
    support::site_status(host)
}

/// Every file vansite keeps for the site (resources, runtime, units) with its digest, except
/// logs and the lock: what "nothing changed" compares.
fn site_files(host: &Host) -> String {
    host.ok(&[
        "sh",
        "-c",
        "find .local/share/vansite .config/containers/systemd .config/systemd/user -type f \
         ! -path '*/logs/*' ! -path '*/service.d/*' 2>/dev/null | sort | xargs -r sha256sum",
    ])
}

fn host_with_image(name: &str) -> Host {
    let host = Host::up(name, true);
    host.load_standin_image(&standin_image_tar());
    host
}

/// An echo server on the host's loopback at `port`, as the host's user, for the rest of the test.
fn serve_echo(host: &Host, port: u16) {
    let script = format!(
        "(socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr SYSTEM:'cat' </dev/null >/dev/null 2>&1 &)"
    );
    host.ok(&["sh", "-c", &script]);
}

/// Sends a line through `port` on the host and reads it back.
fn echoes(host: &Host, port: u16) -> bool {
    let output = host.run(&[
        "sh",
        "-c",
        &format!("printf 'ping\\n' | timeout 5 socat -t 2 - TCP:127.0.0.1:{port}"),
    ]);
    String::from_utf8_lossy(&output.stdout).contains("ping")
}

fn wait_echo(host: &Host, port: u16, what: &str) {
    host.wait_until(what, Duration::from_secs(60), |h| echoes(h, port));
}

const SITE_STREAM: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata:
  name: west
  annotations:
    vansite.io/router-image: localhost/skupper-router-standin:test
spec: {}
---
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata:
  name: backend
spec:
  routingKey: backend
  host: 127.0.0.1
  port: 9090
---
apiVersion: skupper.io/v2alpha1
kind: Listener
metadata:
  name: backend
spec:
  routingKey: backend
  host: 127.0.0.1
  port: 18080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: not-for-a-host
"#;

#[test]
fn one_yaml_stream_makes_a_site_and_applying_it_again_changes_nothing() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("decl1");
    serve_echo(&host, 9090);
    host.write_file("site.yaml", SITE_STREAM);

    // A plan first: nothing is made.
    let plan = vansite_ok(
        &host,
        &["apply", "-f", "site.yaml", "--dry-run", "-o", "json"],
    );
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["plan"]["router"]["action"], "started", "{plan:#}");
    assert!(
        plan["plan"]["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("create Listener/backend")),
        "{plan:#}"
    );
    assert_eq!(site_files(&host).trim(), "", "a dry run writes nothing");

    // The stream builds the site from nothing; the listener reaches the connector.
    let applied = vansite_ok(&host, &["apply", "-f", "site.yaml", "-o", "json"]);
    let applied: Value = serde_json::from_str(&applied).unwrap();
    assert_eq!(applied["router"]["action"], "started", "{applied:#}");
    assert_eq!(
        applied["skipped"],
        json!(["apps/v1 Deployment/not-for-a-host"]),
        "{applied:#}"
    );
    wait_echo(&host, 18080, "the listener reaching the connector");
    assert_eq!(status(&host)["site"]["name"], "west");

    // The same stream again: every object unchanged, no file touched, no restart.
    let (files, identity) = (site_files(&host), router_identity(&host));
    let again = vansite_ok(&host, &["apply", "-f", "site.yaml", "-o", "json"]);
    let again: Value = serde_json::from_str(&again).unwrap();
    for object in again["objects"].as_array().unwrap() {
        assert_eq!(object["change"], "unchanged", "{again:#}");
    }
    assert_eq!(again["router"], json!({"action": "live", "operations": []}));
    assert_eq!(site_files(&host), files);
    assert_eq!(router_identity(&host), identity);

    // One refused document (kube only) refuses the stream: the site stays byte for byte.
    host.write_file(
        "more.yaml",
        &format!(
            "{}---\napiVersion: skupper.io/v2alpha1\nkind: AttachedConnector\nmetadata:\n  name: pods\n\
             spec:\n  port: 80\n  selector: app=db\n  siteNamespace: other\n",
            SITE_STREAM.replace("port: 18080", "port: 18081")
        ),
    );
    let refused = vansite(&host, &["apply", "-f", "more.yaml"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("AttachedConnector/pods")
            && stderr.contains("Connector with host and port"),
        "{stderr}"
    );
    assert_eq!(site_files(&host), files, "a refused stream changes nothing");

    // A MultiKeyListener whose first key has no connector anywhere falls back to the next
    // key that is reachable; added live.
    host.write_file(
        "multi.yaml",
        "apiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata:\n  name: either\n\
         spec:\n  host: 127.0.0.1\n  port: 18090\n  strategy:\n    priority:\n      \
         routingKeys: [nowhere, backend]\n",
    );
    vansite_ok(&host, &["apply", "-f", "multi.yaml"]);
    wait_echo(
        &host,
        18090,
        "the multi-key listener reaching its reachable key",
    );
    assert_eq!(
        router_identity(&host),
        identity,
        "no restart for a new listener"
    );
    vansite_ok(&host, &["delete", "-f", "multi.yaml"]);
    assert!(!echoes(&host, 18090), "the multi-key listener is gone");

    // A changed field goes to the running router live: the listener moves to another port.
    host.write_file(
        "moved.yaml",
        &SITE_STREAM.replace("port: 18080", "port: 18081"),
    );
    let moved = vansite_ok(&host, &["apply", "-f", "moved.yaml", "-o", "json"]);
    let moved: Value = serde_json::from_str(&moved).unwrap();
    assert!(
        moved["objects"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "Listener", "name": "backend", "change": "configured"})),
        "{moved:#}"
    );
    wait_echo(&host, 18081, "the listener at its new port");
    assert!(!echoes(&host, 18080), "the old port is closed");
    assert_eq!(
        router_identity(&host),
        identity,
        "no restart for a live change"
    );

    // `get` gives a stream that applies: no keys, no host-only details.
    let exported = vansite_ok(&host, &["get", "-o", "yaml"]);
    assert!(exported.contains("kind: Listener"), "{exported}");
    assert!(!exported.contains("router-port"), "{exported}");
    assert!(!exported.contains("tls.key"), "{exported}");
    let one = vansite_ok(&host, &["get", "listener", "backend", "-o", "json"]);
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one[0]["spec"]["port"], 18081, "{one:#}");

    // `listener update` is the same change by verb; back to 18080, still live.
    vansite_ok(&host, &["listener", "update", "backend", "--port", "18080"]);
    wait_echo(&host, 18080, "the listener back at 18080");
    assert_eq!(router_identity(&host), identity);

    // delete -f of the services: they go, the site stays.
    host.write_file(
        "services.yaml",
        SITE_STREAM
            .split("---\n")
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join("---\n")
            .as_str(),
    );
    vansite_ok(&host, &["delete", "-f", "services.yaml"]);
    assert!(!echoes(&host, 18080), "the listener is gone");
    let services = status(&host)["services"].clone();
    assert_eq!(services, json!([]), "{services:#}");
    let left = host.ok(&[
        "sh",
        "-c",
        "ls .config/containers/systemd .config/systemd/user",
    ]);
    assert!(!left.contains("listener"), "forwarder units left: {left}");

    // delete -f of the Site: the whole site goes, and nothing of it is left.
    vansite_ok(&host, &["delete", "-f", "site.yaml"]);
    assert_eq!(site_files(&host).trim(), "", "files left");
    let records = host.ok(&[
        "sh",
        "-c",
        "systemctl --user list-units --all --plain --no-legend 'vansite-*'; \
         ls -A $XDG_RUNTIME_DIR/vansite .local/share/vansite 2>/dev/null; \
         find .config/containers/systemd .config/systemd/user -mindepth 1 \
           ! -path '*/service.d*' 2>/dev/null; true",
    ]);
    // The test host's unit directories held only its drop-in (service.d) before the site: not
    // even the empty `<target>.wants` directories the site's enablement links needed are left.
    assert_eq!(
        records.trim(),
        "",
        "unit records, locks or directories left"
    );
}

#[test]
fn a_router_image_that_does_not_start_is_rolled_back() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("decl2");
    vansite_ok(
        &host,
        &["init", "--router-image", STANDIN_IMAGE, "--timeout", "120"],
    );
    // init does not silently change the image of a site.
    let refused = vansite(&host, &["init", "--router-image", "localhost/none:1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("site update --router-image"),
        "{}",
        text(&refused)
    );
    // site update does, and goes back when the new image cannot run.
    let failed = vansite(
        &host,
        &[
            "site",
            "update",
            "--router-image",
            "localhost/none:1",
            "--timeout",
            "60",
        ],
    );
    assert!(!failed.status.success(), "{}", text(&failed));
    let after = status(&host);
    assert_eq!(after["healthy"], true, "{after:#}");
    assert_eq!(after["router"]["image"], STANDIN_IMAGE, "{after:#}");
    let unit = host.ok(&[
        "cat",
        ".config/containers/systemd/vansite-default-router.container",
    ]);
    assert!(unit.contains(STANDIN_IMAGE), "{unit}");
}

/// `status` finds the site healthy (exit 0): every unit running, every service in the router,
/// no command interrupted.
fn healthy(host: &Host) -> Result<(), String> {
    let output = vansite(host, &["status", "-o", "json"]);
    match output.status.success() {
        true => Ok(()),
        false => Err(text(&output)),
    }
}

/// Runs `args` killed after each of `delays` (seconds); after each kill, `status` must say what
/// happened and `recover` (a command) must succeed and leave `check` true.
fn kill_at_many_moments(
    host: &Host,
    delays: &[&str],
    args: &[&str],
    recover: &[&str],
    check: &dyn Fn(&Host) -> Result<(), String>,
) {
    for delay in delays {
        let mut command = vec!["timeout", "-s", "KILL", delay, VANSITE];
        command.extend_from_slice(args);
        let killed = host.run(&command);
        let status_out = vansite(host, &["status", "-o", "json"]);
        let status: Value = serde_json::from_slice(&status_out.stdout).unwrap_or(Value::Null);
        if killed.status.code() == Some(137) {
            // Killed: status says so when the change was under way.
            if let Some(command) = status["interrupted"].as_str() {
                assert!(
                    status["problems"].to_string().contains("interrupted"),
                    "{status:#}"
                );
                assert!(!command.is_empty());
            }
        }
        let output = vansite(host, recover);
        assert!(
            output.status.success(),
            "after a kill at {delay}s, `{}` failed:\n{}",
            recover.join(" "),
            text(&output)
        );
        if let Err(problem) = check(host) {
            panic!(
                "after a kill at {delay}s and `{}`: {problem}",
                recover.join(" ")
            );
        }
    }
}

#[test]
fn commands_killed_at_any_moment_leave_a_site_the_next_command_converges() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("decl3");
    vansite_ok(
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
    serve_echo(&host, 9091);
    vansite_ok(&host, &["connector", "create", "kc", "9091"]);

    // listener create, killed: the next create (or delete) works, and a listener exists
    // exactly when its resource does.
    let listener_consistent = |h: &Host| -> Result<(), String> {
        let listed = vansite_ok(h, &["listener", "list", "-o", "json"]);
        let listed: Value = serde_json::from_str(&listed).unwrap();
        let exists = listed.as_array().unwrap().iter().any(|l| l["name"] == "kl");
        let units = h.ok(&[
            "sh",
            "-c",
            "ls .config/containers/systemd .config/systemd/user",
        ]);
        let serving = h
            .run(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/18600"])
            .status
            .success();
        if exists != units.contains("listener-kl") || exists != serving {
            return Err(format!(
                "listed: {exists}, units: {units}, port open: {serving}"
            ));
        }
        let temps = h.ok(&[
            "sh",
            "-c",
            "find .local/share/vansite -name '*vansite-tmp*'",
        ]);
        if !temps.trim().is_empty() {
            return Err(format!("temporary files left: {temps}"));
        }
        Ok(())
    };
    let delays = ["0.3", "0.6", "0.9", "1.25", "1.8", "3"];
    for delay in delays {
        kill_at_many_moments(
            &host,
            &[delay],
            &[
                "listener",
                "create",
                "kl",
                "18600",
                "--host",
                "127.0.0.1",
                "--routing-key",
                "kc",
            ],
            &["init"],
            &listener_consistent,
        );
        // Whatever the kill left, deleting by name and creating again both work.
        let listed = vansite_ok(&host, &["listener", "list", "-o", "json"]);
        if listed.contains("\"kl\"") {
            vansite_ok(&host, &["listener", "delete", "kl"]);
        }
        listener_consistent(&host).unwrap();
    }
    vansite_ok(
        &host,
        &[
            "listener",
            "create",
            "kl",
            "18600",
            "--host",
            "127.0.0.1",
            "--routing-key",
            "kc",
        ],
    );
    wait_echo(&host, 18600, "the listener after the kills");

    // link create from a static link, killed: the next link create converges; the router
    // never dials a link no resource names.
    vansite_ok(
        &host,
        &[
            "-n",
            "east",
            "init",
            "--router-image",
            STANDIN_IMAGE,
            "--timeout",
            "120",
        ],
    );
    vansite_ok(&host, &["link", "generate", "static.yaml"]);
    let link_consistent = |h: &Host| -> Result<(), String> {
        let links = vansite_ok(h, &["-n", "east", "link", "status", "-o", "json"]);
        let links: Value = serde_json::from_str(&links).unwrap();
        let config = h.ok(&[
            "cat",
            ".local/share/vansite/east/runtime/router/skrouterd.json",
        ]);
        let names = links["outgoing"].as_array().unwrap().len();
        let connectors = config.matches("\"connector\",").count();
        let resources = h.ok(&["ls", ".local/share/vansite/east/resources"]);
        let secrets = resources.matches("Secret-").count();
        if names != secrets || names != connectors {
            return Err(format!(
                "links {names}, secrets {secrets}, router connectors {connectors}: {resources}"
            ));
        }
        Ok(())
    };
    for delay in ["0.2", "0.5", "0.8", "1.2"] {
        kill_at_many_moments(
            &host,
            &[delay],
            &["-n", "east", "link", "create", "static.yaml"],
            &["-n", "east", "init"],
            &link_consistent,
        );
        let links = vansite_ok(&host, &["-n", "east", "link", "status", "-o", "json"]);
        let links: Value = serde_json::from_str(&links).unwrap();
        if let Some(link) = links["outgoing"].as_array().unwrap().first() {
            let name = link["name"].as_str().unwrap().to_string();
            vansite_ok(&host, &["-n", "east", "link", "delete", &name]);
        }
        // Nothing hidden blocks the link being created again; its delete, killed, converges.
        vansite_ok(&host, &["-n", "east", "link", "create", "static.yaml"]);
        let links = vansite_ok(&host, &["-n", "east", "link", "status", "-o", "json"]);
        let name = serde_json::from_str::<Value>(&links).unwrap()["outgoing"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        kill_at_many_moments(
            &host,
            &[delay],
            &["-n", "east", "link", "delete", &name],
            &["-n", "east", "init"],
            &link_consistent,
        );
        let links = vansite_ok(&host, &["-n", "east", "link", "status", "-o", "json"]);
        if links.contains(&name) {
            vansite_ok(&host, &["-n", "east", "link", "delete", &name]);
        }
        let config = host.ok(&[
            "cat",
            ".local/share/vansite/east/runtime/router/skrouterd.json",
        ]);
        assert!(
            !config.contains("\"connector\","),
            "no connector is left once the link is deleted:\n{config}"
        );
    }

    // token issue, killed: the site stays healthy, and a token issued afterwards has its grant
    // server listening.
    for delay in ["0.2", "0.5", "1"] {
        kill_at_many_moments(
            &host,
            &[delay],
            &["token", "issue", "killed.token"],
            &["init"],
            &healthy,
        );
    }
    vansite_ok(&host, &["token", "issue", "east.token"]);
    let status = support::site_status(&host);
    assert!(
        status["grantServer"]["socketState"]
            .as_str()
            .is_some_and(|s| s.starts_with("active")),
        "{status:#}"
    );
}

/// An AccessGrant applied on one host is served by its grant server; the AccessToken for it,
/// applied on another host, is redeemed once and kept as a Link: the two sites link, and the
/// same token applied again changes nothing (a second redemption would be refused: the grant
/// allows one).
#[test]
fn an_access_grant_and_its_access_token_applied_on_two_hosts_link_them() {
    if support::skip_without_test_host() {
        return;
    }
    let west = host_with_image("decl4a");
    let east = host_with_image("decl4b");
    let addr = west.addr();
    let code = "0123456789abcdefghijklmn";
    west.write_file(
        "west.yaml",
        &format!(
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n  annotations:\n    \
             vansite.io/router-image: {STANDIN_IMAGE}\nspec:\n  linkAccess: default\n---\n\
             apiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata:\n  name: west\nspec:\n  \
             roles:\n  - name: inter-router\n  - name: edge\n  tlsCredentials: west\n  issuer: skupper-site-ca\n  \
             subjectAlternativeNames: [{addr}]\n---\n\
             apiVersion: skupper.io/v2alpha1\nkind: AccessGrant\nmetadata:\n  name: for-east\nspec:\n  \
             redemptionsAllowed: 1\n  expirationWindow: 30m\n  code: {code}\n"
        ),
    );
    vansite_ok(&west, &["apply", "-f", "west.yaml"]);
    let grant = vansite_ok(&west, &["get", "accessgrant", "for-east", "-o", "json"]);
    assert!(
        !grant.contains(code),
        "codes only with --show-secrets: {grant}"
    );
    let status = status(&west);
    assert_eq!(
        status["grantServer"]["socketState"]
            .as_str()
            .map(|s| s.starts_with("active")),
        Some(true),
        "{status:#}"
    );
    let port = status["grantServer"]["port"].as_u64().unwrap();
    let uid = west.ok(&[
        "sh",
        "-c",
        "sed -n 's/^  uid: //p' .local/share/vansite/default/resources/AccessGrant-for-east.yaml",
    ]);
    let ca = west.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/issuers/skupper-grant-server-ca/tls.crt",
    ]);
    let indented: String = ca.lines().map(|l| format!("    {l}\n")).collect();
    east.write_file(
        "token.yaml",
        &format!(
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: east\n  annotations:\n    \
             vansite.io/router-image: {STANDIN_IMAGE}\nspec: {{}}\n---\n\
             apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata:\n  name: to-west\nspec:\n  \
             url: https://{addr}:{port}/{}\n  code: {code}\n  ca: |\n{indented}",
            uid.trim()
        ),
    );
    let applied = vansite_ok(&east, &["apply", "-f", "token.yaml", "-o", "json"]);
    let applied: Value = serde_json::from_str(&applied).unwrap();
    assert!(
        applied["objects"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "AccessToken", "name": "to-west", "change": "created"})),
        "{applied:#}"
    );
    east.wait_until("the link to west connected", Duration::from_secs(60), |h| {
        let links = vansite_ok(h, &["link", "status", "-o", "json"]);
        serde_json::from_str::<Value>(&links).unwrap()["outgoing"][0]["connected"] == true
    });
    let identity = router_identity(&east);
    let again = vansite_ok(&east, &["apply", "-f", "token.yaml", "-o", "json"]);
    let again: Value = serde_json::from_str(&again).unwrap();
    for object in again["objects"].as_array().unwrap() {
        assert_eq!(object["change"], "unchanged", "{again:#}");
    }
    assert_eq!(router_identity(&east), identity, "no restart");
}

/// More commands killed at several moments: after each kill, the next command converges and
/// `status` finds the site healthy (every unit running, every service in the router, nothing
/// interrupted); `delete` killed, then run again, leaves nothing.
#[test]
fn other_commands_killed_midway_converge_on_the_next_command() {
    if support::skip_without_test_host() {
        return;
    }
    let host = host_with_image("decl5");
    host.write_file("site.yaml", SITE_STREAM);
    serve_echo(&host, 9090);
    for delay in ["0.3", "0.8", "1.5"] {
        kill_at_many_moments(
            &host,
            &[delay],
            &["apply", "-f", "site.yaml"],
            &["apply", "-f", "site.yaml"],
            &healthy,
        );
        kill_at_many_moments(
            &host,
            &[delay],
            &["connector", "update", "backend", "--port", "9091"],
            &["connector", "update", "backend", "--port", "9090"],
            &healthy,
        );
        kill_at_many_moments(
            &host,
            &[delay],
            &["listener", "delete", "backend"],
            &["apply", "-f", "site.yaml"],
            &healthy,
        );
        wait_echo(&host, 18080, "the listener after the kills");
    }
    for delay in ["0.3", "1"] {
        kill_at_many_moments(
            &host,
            &[delay],
            &["delete"],
            &["apply", "-f", "site.yaml"],
            &healthy,
        );
    }
    // A delete cut short is finished by the next delete; one that finished leaves no site.
    host.run(&["timeout", "-s", "KILL", "1", VANSITE, "delete"]);
    let again = vansite(&host, &["delete"]);
    assert!(
        again.status.success() || String::from_utf8_lossy(&again.stderr).contains("no site"),
        "{}",
        text(&again)
    );
    let left = host.ok(&[
        "sh",
        "-c",
        "find .local/share/vansite .config/containers/systemd -type f 2>/dev/null; \
         ls .config/systemd/user 2>/dev/null | grep vansite; \
         systemctl --user list-units --all --plain --no-legend 'vansite-*'; true",
    ]);
    assert_eq!(left.trim(), "", "left after a killed and a finished delete");
}

/// A `link create` refused after its token was redeemed (this site is already linked to that
/// router) keeps what the redemption returned: once the other link is gone, the same command
/// links without redeeming again, which the single-use token would no longer allow.
#[test]
fn a_token_redeemed_for_a_refused_link_is_kept_for_the_retry() {
    if support::skip_without_test_host() {
        return;
    }
    let west = host_with_image("decl6a");
    let east = host_with_image("decl6b");
    let addr = west.addr();
    vansite_ok(
        &west,
        &[
            "init",
            "--router-image",
            STANDIN_IMAGE,
            "--enable-link-access",
            "--host",
            &addr,
            "--timeout",
            "120",
        ],
    );
    vansite_ok(
        &east,
        &["init", "--router-image", STANDIN_IMAGE, "--timeout", "120"],
    );
    vansite_ok(
        &west,
        &["link", "generate", "static.yaml", "--name", "static"],
    );
    east.write_file("static.yaml", &west.ok(&["cat", "static.yaml"]));
    vansite_ok(&east, &["link", "create", "static.yaml"]);

    vansite_ok(&west, &["token", "issue", "once.token", "--name", "once"]);
    east.write_file("once.token", &west.ok(&["cat", "once.token"]));
    let refused = vansite(&east, &["link", "create", "once.token"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already linked"),
        "{}",
        text(&refused)
    );
    vansite_ok(&east, &["link", "delete", "static"]);
    let retried = vansite(&east, &["-v", "link", "create", "once.token"]);
    assert!(retried.status.success(), "{}", text(&retried));
    assert!(
        String::from_utf8_lossy(&retried.stderr).contains("already redeemed"),
        "{}",
        text(&retried)
    );
    east.wait_until(
        "the link from the kept redemption connected",
        Duration::from_secs(60),
        |h| {
            let links = vansite_ok(h, &["link", "status", "-o", "json"]);
            serde_json::from_str::<Value>(&links).unwrap()["outgoing"][0]["connected"] == true
        },
    );
    let kept = east.ok(&[
        "sh",
        "-c",
        "ls .local/share/vansite/default/runtime/redeemed 2>/dev/null; true",
    ]);
    assert_eq!(
        kept.trim(),
        "",
        "the redemption is forgotten once its link is applied"
    );
}

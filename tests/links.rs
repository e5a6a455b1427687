//! Links between two real test hosts (own systemd --user, rootless podman, own network
//! namespace each), with stand-in routers and real TLS: host A accepts links, host B links to
//! it with the files Skupper hands out, made here exactly as Skupper makes them (a client
//! certificate signed by A's skupper-site-ca, CN = B's site name; A's address and RouterAccess
//! ports as endpoints).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{standin_image_tar, text, Host, STANDIN_IMAGE};
use vansite::model::{Endpoint, Link, LinkSpec, ObjectMeta, Resource};
use vansite::render::certs::{issue, Ca, CertFiles};
use vansite::tokens::link_secret;

const VANSITE: &str = env!("CARGO_BIN_EXE_vansite");
const SITE_DIR: &str = ".local/share/vansite/default";
const LIMIT: Duration = Duration::from_secs(60);
/// A's echo server, behind A's tcpConnector.
const ECHO_PORT: &str = "7777";
/// B's tcpListener for the same address.
const LISTENER_PORT: &str = "7001";
const ADDRESS: &str = "lk-echo";

/// One test host running a vansite site.
struct Site {
    host: Host,
}

impl Site {
    /// Host `name` with site `site_name`; `link_access` lets other sites link to it at the
    /// host's address.
    fn up(name: &str, site_name: &str, link_access: bool) -> Site {
        let host = Host::up(name, true);
        host.load_standin_image(&standin_image_tar());
        let addr = host.addr();
        let site = Site { host };
        let mut args = vec![
            "init",
            "--router-image",
            STANDIN_IMAGE,
            "--timeout",
            "120",
            "--name",
            site_name,
        ];
        if link_access {
            args.extend(["--enable-link-access", "--host", &addr]);
        }
        site.ok(&args);
        site
    }

    fn vansite(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec![VANSITE];
        full.extend_from_slice(args);
        self.host.run(&full)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.vansite(args);
        assert!(
            output.status.success(),
            "vansite {args:?} on {}:\n{}",
            self.host.name,
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs vansite, which must fail; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.vansite(args);
        assert!(
            !output.status.success(),
            "vansite {args:?} on {} should fail:\n{}",
            self.host.name,
            text(&output)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.vansite(args);
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}\n{}", text(&output)))
    }

    fn status(&self) -> Value {
        self.json(&["status", "--output", "json"])
    }

    fn links(&self) -> Vec<Value> {
        self.json(&["link", "status", "--output", "json"])["outgoing"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn file(&self, path: &str) -> String {
        self.host.ok(&["cat", &format!("{SITE_DIR}/{path}")])
    }

    fn router_id(&self) -> String {
        let config: Value =
            serde_json::from_str(&self.file("runtime/router/skrouterd.json")).unwrap();
        config
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[0] == "router")
            .map(|e| e[1]["id"].as_str().unwrap().to_string())
            .unwrap()
    }

    fn site_ca(&self) -> Ca {
        Ca::from_pem(
            "skupper-site-ca",
            &self.file("runtime/issuers/skupper-site-ca/tls.crt"),
            &self.file("runtime/issuers/skupper-site-ca/tls.key"),
        )
        .unwrap()
    }

    /// (role, port) of the site's link access.
    fn link_ports(&self) -> Vec<(String, String)> {
        self.status()["site"]["linkAccess"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["role"].as_str().unwrap().to_string(),
                    e["port"].to_string(),
                )
            })
            .collect()
    }

    /// Every file of the site with its mode and content hash (the router's log aside, which
    /// the router writes on its own), and vansite's units.
    fn snapshot(&self) -> String {
        self.host.ok(&[
            "sh",
            "-c",
            &format!(
                "find {SITE_DIR} .config/containers/systemd -path '*/runtime/logs' -prune -o -printf '%p %m\\n' | sort; \
                 find {SITE_DIR} .config/containers/systemd -path '*/runtime/logs' -prune -o -type f -exec sha256sum {{}} + | sort"
            ),
        ])
    }

    fn write(&self, name: &str, content: &str) -> String {
        self.host.write_file(name, content);
        name.to_string()
    }

    /// An echo server on this host, offered to the network as ADDRESS.
    fn serve_echo(&self) {
        let script = format!(
            "(socat TCP-LISTEN:{ECHO_PORT},bind=127.0.0.1,fork,reuseaddr EXEC:cat & echo $! > echo.pid) >/dev/null 2>&1"
        );
        self.host.ok(&["sh", "-c", &script]);
        self.ok(&[
            "connector",
            "create",
            ADDRESS,
            ECHO_PORT,
            "--host",
            "127.0.0.1",
        ]);
    }

    /// A listener on LISTENER_PORT for ADDRESS.
    fn listen_for_echo(&self) {
        self.ok(&[
            "listener",
            "create",
            ADDRESS,
            LISTENER_PORT,
            "--host",
            "127.0.0.1",
        ]);
    }

    /// Sends a line to `port` on this host and returns what came back.
    fn echo(&self, port: &str, line: &str) -> String {
        let script = format!("echo {line} | timeout 10 socat -t 3 - TCP:127.0.0.1:{port}");
        String::from_utf8_lossy(&self.host.run(&["sh", "-c", &script]).stdout)
            .trim()
            .to_string()
    }

    fn unit(&self, verb: &str) {
        self.host.ok(&[
            "systemctl",
            "--user",
            verb,
            "vansite-default-router.service",
        ]);
    }
}

/// A client certificate for `subject` from `ca`, with `ca_crt` as the CA to trust.
fn credentials(ca: &Ca, subject: &str) -> CertFiles {
    issue(ca, subject, &[]).unwrap()
}

/// What `skupper link generate` prints for a link to `to`: a Secret with the client
/// certificate and `to`'s CA, and a Link with `to`'s address and RouterAccess ports.
fn link_file(to: &Site, name: &str, credentials: &CertFiles) -> String {
    let secret = link_secret(name, credentials);
    let addr = to.host.addr();
    let link = Link {
        metadata: ObjectMeta::named(name),
        spec: LinkSpec {
            endpoints: to
                .link_ports()
                .into_iter()
                .map(|(role, port)| Endpoint {
                    name: role,
                    host: addr.clone(),
                    port,
                    group: "skupper-router".into(),
                })
                .collect(),
            tls_credentials: name.into(),
            cost: 1,
            ..LinkSpec::default()
        },
    };
    [Resource::Secret(secret), Resource::Link(link)]
        .iter()
        .map(|r| format!("---\n{}", r.to_yaml().unwrap()))
        .collect()
}

/// A Skupper v1 connection token for a link to `to` (§3.1).
fn v1_token(to: &Site, credentials: &CertFiles) -> String {
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let ports: std::collections::BTreeMap<String, String> = to.link_ports().into_iter().collect();
    let addr = to.host.addr();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: skupper\n  labels:\n    skupper.io/type: connection-token\n  \
         annotations:\n    inter-router-host: {addr}\n    inter-router-port: \"{}\"\n    edge-host: {addr}\n    \
         edge-port: \"{}\"\n    skupper.io/generated-by: {}\n    skupper.io/site-version: 1.9.6\n\
         type: kubernetes.io/tls\ndata:\n  ca.crt: {}\n  tls.crt: {}\n  tls.key: {}\n",
        ports["inter-router"],
        ports["edge"],
        to.status()["site"]["id"].as_str().unwrap(),
        b64(&credentials.ca_crt),
        b64(&credentials.tls_crt),
        b64(&credentials.tls_key)
    )
}

fn container_identity(site: &Site) -> (Value, Value) {
    let status = site.status();
    let container = &status["router"]["container"];
    (container["id"].clone(), container["startedAt"].clone())
}

fn wait_connected(site: &Site, connected: bool, what: &str) -> Value {
    let mut last = Value::Null;
    site.host.wait_until(what, LIMIT, |_| {
        last = site.links().first().cloned().unwrap_or(Value::Null);
        last["connected"] == connected
    });
    last
}

fn wait_echo(site: &Site, what: &str) {
    site.host
        .wait_until(what, LIMIT, |_| site.echo(LISTENER_PORT, "ping") == "ping");
}

#[test]
fn a_link_comes_up_live_carries_traffic_and_follows_its_peer() {
    if support::skip_without_test_host() {
        return;
    }
    let a = Site::up("lk1a", "west", true);
    let b = Site::up("lk1b", "east", false);
    a.serve_echo();
    b.listen_for_echo();

    let before = container_identity(&b);
    let file = b.write(
        "west.yaml",
        &link_file(&a, "link-west", &credentials(&a.site_ca(), "east")),
    );
    let out = b.ok(&["link", "create", &file]);
    assert!(
        out.contains("no restart") && out.contains("link-west"),
        "{out}"
    );
    let link = wait_connected(&b, true, "link-west connected");
    assert_eq!(link["remoteRouter"], a.router_id().as_str(), "{link:#}");
    assert_eq!(link["state"], "connected");
    // The router's "[Cn] Connection Opened: …" message is not an error.
    assert_eq!(link["lastError"], Value::Null, "{link:#}");
    assert!(
        link["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{link:#}"
    );
    assert_eq!(
        container_identity(&b),
        before,
        "the router was not restarted"
    );
    wait_echo(&b, "traffic from B's tcpListener to A's tcpConnector");

    // Stored as Skupper stores it: Link and Secret resources, the profile directory, the config.
    assert!(b
        .file("resources/Link-link-west.yaml")
        .contains("tlsCredentials: link-west"));
    assert!(b
        .file("resources/Secret-link-west.yaml")
        .contains("kind: Secret"));
    assert!(b
        .file("runtime/certs/link-west-profile/ca.crt")
        .contains("BEGIN CERTIFICATE"));
    assert!(b
        .file("runtime/router/skrouterd.json")
        .contains("\"sslProfile\": \"link-west-profile\""));

    // `vansite status` shows the link and the network.
    let status = b.status();
    assert_eq!(status["links"][0]["name"], "link-west", "{status:#}");
    let network: Vec<&str> = support::texts(&status["network"], "id");
    assert!(
        network.contains(&a.router_id().as_str()) && network.contains(&b.router_id().as_str()),
        "{network:?}"
    );
    let table = b.ok(&["link", "status"]);
    assert!(
        table.contains("link-west") && table.contains("connected"),
        "{table}"
    );
    // A sees the link B made, as an incoming one, in `link status` and `status`.
    let incoming = a.json(&["link", "status", "--output", "json"])["incoming"].clone();
    assert_eq!(
        incoming[0]["remoteRouter"],
        b.router_id().as_str(),
        "{incoming:#}"
    );
    assert_eq!(incoming[0]["role"], "inter-router", "{incoming:#}");
    assert!(incoming[0]["since"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    // `status` says the same without waiting for the network's records to name the site;
    // `since` is worked out from the router's uptime in whole seconds, so it may differ by one.
    let in_status = &a.status()["incomingLinks"][0];
    for field in ["remoteRouter", "role", "from"] {
        assert_eq!(in_status[field], incoming[0][field], "{in_status:#}");
    }
    assert!(in_status["since"].is_string(), "{in_status:#}");
    assert_eq!(incoming[0]["fromSite"], "east", "{incoming:#}");
    let table = a.ok(&["link", "status"]);
    assert!(
        table.contains("Current links from other sites:") && table.contains(&b.router_id()),
        "{table}"
    );

    // The link follows A's router: down while it is stopped, up again when it returns.
    a.unit("stop");
    let down = wait_connected(&b, false, "link-west down while A's router is stopped");
    assert_ne!(down["state"], "connected", "{down:#}");
    a.unit("start");
    let up = wait_connected(&b, true, "link-west up again");
    assert_eq!(up["lastError"], Value::Null, "{up:#}");
    wait_echo(&b, "traffic after A's router came back");

    // Delete: live, then files.
    let out = b.ok(&["link", "delete", "link-west"]);
    assert!(out.contains("no restart"), "{out}");
    assert!(b.links().is_empty());
    let gone = b.host.run(&[
        "test",
        "-e",
        &format!("{SITE_DIR}/runtime/certs/link-west-profile"),
    ]);
    assert!(!gone.status.success(), "the profile directory is removed");
    assert_eq!(container_identity(&b), before, "still no restart");
    b.host
        .wait_until("the listener stops once the link is gone", LIMIT, |_| {
            b.echo(LISTENER_PORT, "ping").is_empty()
        });

    // A Skupper v1 connection token to the same site works the same way.
    let file = b.write(
        "west-v1.yaml",
        &v1_token(&a, &credentials(&a.site_ca(), "east")),
    );
    let out = b.ok(&["token", "redeem", &file, "--name", "west-v1", "--cost", "2"]);
    assert!(out.contains("v1 connection token"), "{out}");
    let link = wait_connected(&b, true, "west-v1 connected");
    assert_eq!(link["remoteRouter"], a.router_id().as_str());
    assert_eq!(link["cost"], 2);
    wait_echo(&b, "traffic over the v1 token's link");
    assert_eq!(container_identity(&b), before, "still no restart");
}

#[test]
fn bad_input_is_explained_and_leaves_the_site_unchanged() {
    if support::skip_without_test_host() {
        return;
    }
    let a = Site::up("lk2a", "north", true);
    let b = Site::up("lk2b", "south", false);
    let good = link_file(&a, "link-north", &credentials(&a.site_ca(), "south"));

    let refused = |site: &Site, name: &str, content: &str, extra: &[&str], expected: &str| {
        let file = site.write(name, content);
        let before = site.snapshot();
        let mut args = vec!["link", "create", file.as_str()];
        args.extend_from_slice(extra);
        let stderr = site.fails(&args);
        assert!(
            stderr.contains(expected),
            "{name}: expected '{expected}' in:\n{stderr}"
        );
        assert!(
            !stderr.contains("PRIVATE KEY") && !stderr.contains("L1qCl2mZ"),
            "{stderr}"
        );
        assert_eq!(site.snapshot(), before, "{name}: the site changed");
    };

    let secret_only = &good[..good.rfind("---\n").unwrap()];
    refused(
        &b,
        "truncated.yaml",
        secret_only,
        &[],
        "which no Link uses (a file cut short?)",
    );
    let mid_quote = good.rfind("port: ").unwrap() + 9;
    refused(
        &b,
        "truncated2.yaml",
        &good[..mid_quote],
        &[],
        "is damaged or is not a token",
    );
    let at = good.find("tls.crt: ").unwrap() + 300;
    let mut tampered = good.clone().into_bytes();
    tampered[at] = if tampered[at] == b'Q' { b'R' } else { b'Q' };
    refused(
        &b,
        "tampered.yaml",
        &String::from_utf8(tampered).unwrap(),
        &[],
        "tls.crt",
    );
    refused(
        &b,
        "site.yaml",
        &b.file("resources/Site-south.yaml"),
        &[],
        "holds Site 'south', not a token or a link",
    );

    // Credentials of another site's CA with A's endpoints: A's server is not of the link's CA.
    let other_site = credentials(&Ca::new("skupper-site-ca").unwrap(), "south");
    refused(
        &b,
        "wrong-ca.yaml",
        &link_file(&a, "link-north", &other_site),
        &[],
        "does not present a certificate of the link's CA",
    );

    // A client certificate that A's CA did not sign.
    let stranger = credentials(&Ca::new("skupper-site-ca").unwrap(), "south");
    let mut foreign = stranger.clone();
    foreign.ca_crt = a.site_ca().cert_pem().to_string();
    refused(
        &b,
        "foreign.yaml",
        &link_file(&a, "link-north", &foreign),
        &[],
        "tls.crt is not signed by ca.crt",
    );

    // A grant server that is not there.
    let token = format!(
        "apiVersion: skupper.io/v2alpha1\nkind: AccessToken\nmetadata: {{name: north}}\nspec:\n  url: https://{}:9/grant\n  \
         code: L1qCl2mZ7D81gbXp3ax4YT0K\n  ca: |\n{}",
        a.host.addr(),
        a.site_ca().cert_pem().lines().map(|l| format!("    {l}\n")).collect::<String>()
    );
    refused(
        &b,
        "token.yaml",
        &token,
        &[],
        "cannot reach the grant server",
    );

    // A's own link, on A itself.
    let own = link_file(&a, "link-self", &credentials(&a.site_ca(), "north"));
    refused(&a, "self.yaml", &own, &[], "made for this same site");
    let own_v1 = v1_token(&a, &credentials(&a.site_ca(), "north"));
    refused(&a, "self-v1.yaml", &own_v1, &[], "made for this same site");
    // A's own AccessToken: refused before it is redeemed.
    a.ok(&["token", "issue", "own.token"]);
    let own_token = a.host.ok(&["cat", "own.token"]);
    refused(&a, "own.token", &own_token, &[], "made for this same site");

    // Duplicates: the same name, or the same endpoint under another name.
    let file = b.write("good.yaml", &good);
    b.ok(&["link", "create", &file]);
    refused(
        &b,
        "again.yaml",
        &good,
        &[],
        "a Link named 'link-north' already exists",
    );
    refused(
        &b,
        "again2.yaml",
        &good,
        &["--name", "other"],
        "already linked to",
    );
    wait_connected(&b, true, "the good link connected");

    // Unknown links are named as such, and refused as bad input (exit 2), as unknown listeners.
    let output = b.vansite(&["link", "delete", "nope"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no link named 'nope'") && stderr.contains("link-north"),
        "{stderr}"
    );
}

/// The whole flow of the tutorials between two hosts, every part vansite's own: host A issues
/// a token (its grant server answers), host B redeems it with `link create`; the link comes up
/// without restarting B's router and a service of A is reached through a listener on B. Then
/// the v1 token-claim and the static `link generate` paths likewise.
#[test]
fn a_token_issued_by_one_host_is_redeemed_by_another_and_services_flow() {
    if support::skip_without_test_host() {
        return;
    }
    let a = Site::up("lk3a", "west", true);
    let b = Site::up("lk3b", "east", false);
    a.serve_echo();
    b.listen_for_echo();

    let before = container_identity(&b);
    let issued = a.json(&["token", "issue", "west.token", "--output", "json"]);
    assert_eq!(issued["format"], "v2", "{issued:#}");
    assert_eq!(issued["redemptionsAllowed"], 1);
    assert!(
        issued["file"].as_str().unwrap().ends_with("/west.token"),
        "{issued:#}"
    );
    let token = a.host.ok(&["cat", "west.token"]);
    assert!(token.contains("kind: AccessToken"), "{token}");
    assert!(
        token.contains(&format!("name: {}", issued["name"].as_str().unwrap())),
        "{token}"
    );
    // A wrong code: A's grant server refuses it, B stays as it was, and the grant is not spent.
    let code = token
        .lines()
        .find_map(|line| line.trim().strip_prefix("code: "))
        .expect("the token has a code");
    let wrong_code: String = code.chars().rev().collect();
    let wrong = b.write("wrong.token", &token.replace(code, &wrong_code));
    let before_wrong = b.snapshot();
    let stderr = b.fails(&["link", "create", &wrong]);
    assert!(stderr.contains("refused the token's code"), "{stderr}");
    assert!(
        !stderr.contains(code) && !stderr.contains(&wrong_code),
        "{stderr}"
    );
    assert_eq!(b.snapshot(), before_wrong, "a refused token changed B");
    let file = b.write("west.token", &token);
    let created = b.json(&["link", "create", &file, "--output", "json"]);
    assert_eq!(created["applied"], "live", "{created:#}");
    assert_eq!(created["from"], "an AccessToken");
    let link = wait_connected(&b, true, "the redeemed link connected");
    assert_eq!(created["links"][0]["name"], link["name"], "{created:#}");
    assert_eq!(link["remoteRouter"], a.router_id().as_str(), "{link:#}");
    assert_eq!(
        container_identity(&b),
        before,
        "the router was not restarted"
    );
    wait_echo(
        &b,
        "traffic from B's listener to A's connector over the redeemed link",
    );
    let link_name = link["name"].as_str().unwrap().to_string();
    let one = b.json(&["link", "status", &link_name, "--output", "json"])["outgoing"].clone();
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one:#}");
    assert_eq!(one[0]["name"], link_name.as_str());
    // A single-use token is used up, and B stays as it was.
    let before_again = b.snapshot();
    let again = b.fails(&["link", "create", &file, "--name", "again"]);
    assert!(again.contains("No such access granted"), "{again}");
    assert_eq!(b.snapshot(), before_again, "a used-up token changed B");
    let deleted = b.json(&["link", "delete", &link_name, "--output", "json"]);
    assert_eq!(deleted["link"], link_name.as_str(), "{deleted:#}");
    assert_eq!(deleted["applied"], "live");

    // A v1 token-claim, redeemed by the v1 claims protocol.
    a.ok(&["token", "issue", "west-v1.yaml", "--format", "v1"]);
    let file = b.write("west-v1.yaml", &a.host.ok(&["cat", "west-v1.yaml"]));
    b.ok(&["link", "create", &file, "--name", "west-v1"]);
    wait_connected(&b, true, "the v1 claim's link connected");
    wait_echo(&b, "traffic over the v1 claim's link");
    b.ok(&["link", "delete", "west-v1"]);

    // A static Link + Secret, no server involved.
    a.ok(&["link", "generate", "west-link.yaml"]);
    let file = b.write("west-link.yaml", &a.host.ok(&["cat", "west-link.yaml"]));
    b.ok(&["link", "create", &file]);
    wait_connected(&b, true, "the static link connected");
    wait_echo(&b, "traffic over the static link");
    assert_eq!(container_identity(&b), before, "still no restart");
}

/// Seconds between two RFC 3339 times (`since` is worked out from the router's uptime in whole
/// seconds, so the same moment may read one second apart).
fn seconds_apart(a: &Value, b: &Value) -> i64 {
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    (time(a) - time(b)).num_seconds().abs()
}

/// The hub's incoming links, as its `link status` names them, by the linking router's id.
fn incoming_names(hub: &Site) -> std::collections::BTreeMap<String, String> {
    hub.json(&["link", "status", "--output", "json"])["incoming"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            (
                l["remoteRouter"].as_str().unwrap_or_default().to_string(),
                l["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Links `spoke` to `hub` with a token the hub issues (`file` on both hosts).
fn link_by_token(hub: &Site, spoke: &Site, file: &str) {
    hub.ok(&["token", "issue", file]);
    let token = spoke.write(file, &hub.host.ok(&["cat", file]));
    spoke.ok(&["link", "create", &token]);
}

/// Two sites link to a hub, one by a token and one by a generated link: each incoming link is
/// named on the hub; revoking one ends it for good (its router restarted or not) while the
/// other carries traffic again within seconds; then `revoke-access` ends the other and the
/// tokens not yet redeemed, and a token issued afterwards works.
#[test]
fn one_incoming_link_is_revoked_then_all_access() {
    if support::skip_without_test_host() {
        return;
    }
    let (hub, east, south) = std::thread::scope(|s| {
        let hub = s.spawn(|| Site::up("lk4h", "hub", true));
        let east = s.spawn(|| Site::up("lk4e", "east", false));
        let south = s.spawn(|| Site::up("lk4s", "south", false));
        (
            hub.join().unwrap(),
            east.join().unwrap(),
            south.join().unwrap(),
        )
    });
    hub.serve_echo();
    for spoke in [&east, &south] {
        spoke.listen_for_echo();
    }
    link_by_token(&hub, &east, "east.token");
    hub.ok(&["link", "generate", "south-link.yaml", "--name", "to-hub"]);
    let file = south.write("south-link.yaml", &hub.host.ok(&["cat", "south-link.yaml"]));
    south.ok(&["link", "create", &file]);
    wait_connected(&east, true, "east linked by its token");
    wait_connected(&south, true, "south linked by its generated link");
    wait_echo(&east, "traffic from east");
    wait_echo(&south, "traffic from south");

    // Each incoming link has a name of its own on the hub.
    let mut names = Default::default();
    hub.host
        .wait_until("the hub names both incoming links", LIMIT, |_| {
            names = incoming_names(&hub);
            names.len() == 2 && names.values().all(|n| !n.is_empty())
        });
    let east_link = names[&east.router_id()].clone();
    let south_link = names[&south.router_id()].clone();
    assert_eq!(south_link, "to-hub", "{names:?}");
    let listed = hub.json(&["certs", "list", "--output", "json"]);
    for link in [&east_link, &south_link] {
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["certificate"] == format!("link-issuers/{link}/tls.crt").as_str()),
            "the link's CA is among the site's certificates: {listed:#}"
        );
    }

    let unknown = hub.fails(&["link", "revoke", "nosuch"]);
    assert!(
        unknown.contains("no incoming link 'nosuch'") && unknown.contains(&east_link),
        "{unknown}"
    );
    let hub_router = container_identity(&hub);
    let revoked = hub.json(&["link", "revoke", &east_link, "--output", "json"]);
    assert_eq!(revoked["link"], east_link.as_str(), "{revoked:#}");
    assert_eq!(revoked["stillTrusted"], serde_json::json!([south_link]));
    assert_eq!(revoked["router"]["action"], "live", "{revoked:#}");
    let operations = revoked["router"]["operations"].to_string();
    assert!(
        operations.contains("(its connections reconnect)"),
        "{revoked:#}"
    );
    assert_eq!(container_identity(&hub), hub_router, "no router restart");
    wait_echo(&south, "south carries traffic again after the revocation");
    wait_connected(&east, false, "east's revoked link is down");
    east.unit("restart");
    std::thread::sleep(Duration::from_secs(8));
    let after_restart = east.links();
    assert_eq!(
        after_restart[0]["connected"], false,
        "a revoked link stays down after its router restarts: {after_restart:#?}"
    );
    assert_eq!(
        incoming_names(&hub).into_values().collect::<Vec<_>>(),
        std::slice::from_ref(&south_link)
    );

    // revoke-access: asks first; incoming links end, the unredeemed token is refused.
    let unused_grant =
        hub.json(&["token", "issue", "unused.token", "--output", "json"])["name"].clone();
    let unused = east.write("unused.token", &hub.host.ok(&["cat", "unused.token"]));
    let before = hub.snapshot();
    let asked = hub.fails(&["revoke-access"]);
    assert!(
        asked.contains("--yes") && asked.contains(&south_link),
        "{asked}"
    );
    assert_eq!(hub.snapshot(), before, "nothing changed without --yes");
    let site_ca = hub.file("runtime/issuers/skupper-site-ca/tls.crt");
    let all = hub.json(&["revoke-access", "--yes", "--output", "json"]);
    assert_eq!(all["links"], serde_json::json!([south_link]), "{all:#}");
    assert!(
        all["grants"].as_array().unwrap().contains(&unused_grant),
        "{all:#}"
    );
    let objects = hub.json(&["get", "--output", "json"]);
    assert!(
        !objects
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "AccessGrant"),
        "no grant is left: {objects:#}"
    );
    assert_ne!(
        hub.file("runtime/issuers/skupper-site-ca/tls.crt"),
        site_ca,
        "a new site CA"
    );
    wait_connected(&south, false, "south's link ended with all access");
    east.ok(&["link", "delete", east.links()[0]["name"].as_str().unwrap()]);
    let refused = east.fails(&["link", "create", &unused]);
    assert!(refused.contains("No such claim"), "{refused}");
    // A token issued afterwards works.
    link_by_token(&hub, &east, "after.token");
    wait_connected(&east, true, "a token issued after revoke-access links");
    wait_echo(&east, "traffic over the new link");
}

/// `certs rotate` on a hub while a transfer runs across a link: the transfer completes, the
/// link never drops, and the hub serves its new certificate from then on.
#[test]
fn certificates_rotate_under_a_running_transfer_without_dropping_the_link() {
    if support::skip_without_test_host() {
        return;
    }
    let (hub, spoke) = std::thread::scope(|s| {
        let hub = s.spawn(|| Site::up("lk5h", "hub", true));
        let spoke = s.spawn(|| Site::up("lk5s", "spoke", false));
        (hub.join().unwrap(), spoke.join().unwrap())
    });
    hub.serve_echo();
    spoke.listen_for_echo();
    link_by_token(&hub, &spoke, "hub.token");
    let link = wait_connected(&spoke, true, "the spoke linked");
    wait_echo(&spoke, "traffic over the link");
    let hub_router = container_identity(&hub);
    let server_cert = hub.file("runtime/certs/skupper-site-server/tls.crt");
    let incoming_from = |hub: &Site| {
        hub.json(&["link", "status", "--output", "json"])["incoming"][0]["from"].clone()
    };
    // The spoke's address and port: a link that reconnected comes from another port.
    let from = incoming_from(&hub);
    assert!(from.is_string(), "{from}");

    // 40 lines, one every 0.2 s, echoed back over the link while the hub rotates.
    spoke.host.ok(&[
        "sh",
        "-c",
        &format!(
            "((for i in $(seq 1 40); do echo line$i; sleep 0.2; done) | timeout 60 socat -t 5 - \
             TCP:127.0.0.1:{LISTENER_PORT} > transfer.out 2>&1; echo done >> transfer.out) \
             >/dev/null 2>&1 &"
        ),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let rotated = hub.json(&["certs", "rotate", "--output", "json"]);
    let renewed: Vec<&str> = support::texts(&rotated["renewed"], "certificate");
    for certificate in [
        "skupper-site-server",
        "skupper-local-server",
        "skupper-local-client",
    ] {
        assert!(renewed.contains(&certificate), "{rotated:#}");
    }
    assert_eq!(rotated["router"]["action"], "live", "{rotated:#}");
    assert!(
        rotated["router"]["operations"]
            .to_string()
            .contains("renew sslProfile/skupper-site-server"),
        "{rotated:#}"
    );
    assert!(
        !rotated["router"]["operations"]
            .to_string()
            .contains("reconnect"),
        "rotation closes nothing: {rotated:#}"
    );
    let new_cert = hub.file("runtime/certs/skupper-site-server/tls.crt");
    assert_ne!(new_cert, server_cert);

    let mut transfer = String::new();
    spoke.host.wait_until("the transfer ends", LIMIT, |host| {
        transfer = host.ok(&["cat", "transfer.out"]);
        transfer.contains("done")
    });
    let lines: Vec<&str> = transfer.lines().filter(|l| l.starts_with("line")).collect();
    assert_eq!(lines.len(), 40, "every line came back: {transfer}");
    let after = spoke.links();
    assert_eq!(after[0]["connected"], true, "{after:#?}");
    assert!(
        seconds_apart(&after[0]["since"], &link["since"]) <= 1,
        "the link never dropped: {after:#?} {link:#}"
    );
    assert_eq!(incoming_from(&hub), from, "the same connection all along");
    assert_eq!(container_identity(&hub), hub_router, "no router restart");

    // New handshakes get the new certificate: the spoke's router restarts and links again,
    // checking the hub's certificate against the CA it was given.
    let port = hub
        .link_ports()
        .into_iter()
        .find(|(role, _)| role == "inter-router")
        .unwrap()
        .1;
    let served = spoke.host.ok(&[
        "sh",
        "-c",
        &format!(
            "openssl s_client -connect {}:{port} </dev/null 2>/dev/null | openssl x509",
            hub.host.addr()
        ),
    ]);
    assert_eq!(
        served.trim(),
        new_cert
            .split_inclusive("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .trim(),
        "the hub serves its new certificate"
    );
    spoke.unit("restart");
    wait_connected(&spoke, true, "the spoke links again to the rotated hub");
    wait_echo(&spoke, "traffic after the rotation");

    // New CAs: the spoke holds only the old site CA and the token below only the old grant
    // server CA, yet both keep working, through the old CAs' signatures on the new ones.
    let before_ca = hub.json(&["token", "issue", "before-ca.token", "--output", "json"]);
    assert!(before_ca["name"].is_string(), "{before_ca:#}");
    let from = incoming_from(&hub);
    let old_site_ca = hub.file("runtime/issuers/skupper-site-ca/tls.crt");
    let rotated = hub.json(&["certs", "rotate", "--ca", "--output", "json"]);
    assert_eq!(
        rotated["cas"],
        serde_json::json!([
            "skupper-site-ca",
            "skupper-local-ca",
            "skupper-service-ca",
            "skupper-grant-server-ca"
        ]),
        "{rotated:#}"
    );
    assert_eq!(rotated["router"]["action"], "live", "{rotated:#}");
    assert!(
        !rotated["router"]["operations"]
            .to_string()
            .contains("reconnect"),
        "{rotated:#}"
    );
    assert_ne!(
        hub.file("runtime/issuers/skupper-site-ca/tls.crt"),
        old_site_ca
    );
    assert_eq!(
        hub.file("runtime/prior-issuers/skupper-site-ca/ca.crt"),
        old_site_ca
    );
    assert_eq!(incoming_from(&hub), from, "the link stayed up");
    assert_eq!(
        hub.status()["healthy"],
        true,
        "management with the new local CA"
    );
    spoke.unit("restart");
    wait_connected(
        &spoke,
        true,
        "the spoke, trusting the old CA, links to the new one",
    );
    wait_echo(&spoke, "traffic after the CA rotation");
    let link_name = spoke.links()[0]["name"].as_str().unwrap().to_string();
    spoke.ok(&["link", "delete", &link_name]);
    let token = spoke.write("before-ca.token", &hub.host.ok(&["cat", "before-ca.token"]));
    spoke.ok(&["link", "create", &token]);
    wait_connected(
        &spoke,
        true,
        "a token issued before the CA rotation still links",
    );
    wait_echo(&spoke, "traffic over the link of the older token");
    assert_eq!(
        container_identity(&hub),
        hub_router,
        "never a router restart"
    );
}

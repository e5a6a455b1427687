//! The issuing side of links on real test hosts: `vansite token issue` starts the
//! socket-activated grant server under the host's systemd --user, and this test process
//! redeems the tokens over real HTTPS (rustls, TLS 1.3, trusting only the token's CA) at the
//! host's network-namespace address, as another host would.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::{
    in_netns, site_status, standin_image_tar, text, vansite, vansite_ok, Host, STANDIN_IMAGE,
};
use vansite::model::{parse_documents, AccessToken, Link, Resource, Secret};

/// A host with a site that accepts links at the host's own address.
fn site_host(name: &str) -> Host {
    let host = Host::up(name, true);
    host.load_standin_image(&standin_image_tar());
    let addr = host.addr();
    vansite_ok(
        &host,
        &[
            "init",
            "--name",
            "west",
            "--enable-link-access",
            "--host",
            &addr,
            "--router-image",
            STANDIN_IMAGE,
            "--timeout",
            "120",
        ],
    );
    host
}

/// Issues a token on `host` (extra options appended) and reads it back.
fn issue(host: &Host, file: &str, extra: &[&str]) -> (String, Vec<Resource>) {
    let mut args = vec!["token", "issue", file];
    args.extend_from_slice(extra);
    let out = vansite_ok(host, &args);
    let yaml = host.ok(&["cat", file]);
    let mode = host.ok(&["stat", "-c", "%a", file]);
    assert_eq!(mode.trim(), "600", "a token holds a code");
    let resources = parse_documents(&yaml, file)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .resources;
    (out, resources)
}

fn access_token(host: &Host, file: &str, extra: &[&str]) -> AccessToken {
    match issue(host, file, extra).1.as_slice() {
        [Resource::AccessToken(token)] => token.clone(),
        other => panic!("not an AccessToken: {other:?}"),
    }
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// POSTs `body` to `url` over HTTPS trusting only `ca_pem`; returns the status and body.
async fn post(
    url: &str,
    ca_pem: &str,
    body: &[u8],
    headers: &[(&str, &str)],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("https://").ok_or("not https")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority.rsplit_once(':').ok_or("no port")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((host, port.parse::<u16>().unwrap()))
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let server_name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Redeems `token` as vansite and Skupper do (headers name and subject, body the code).
async fn redeem(token: &AccessToken, code: &str) -> (u16, String) {
    post(
        &token.spec.url,
        &token.spec.ca,
        code.as_bytes(),
        &[("name", "east-link"), ("subject", "east")],
        TLS13_ONLY,
    )
    .await
    .unwrap_or_else(|e| panic!("redeem {}: {e}", token.spec.url))
}

fn secret_and_link(body: &str) -> (Secret, Link) {
    let parsed = parse_documents(body, "answer").unwrap_or_else(|e| panic!("{e}\n{body}"));
    match parsed.resources.as_slice() {
        [Resource::Secret(secret), Resource::Link(link)] => (secret.clone(), link.clone()),
        other => panic!("not a Secret and a Link: {other:?}"),
    }
}

fn main_pid(host: &Host, unit: &str) -> String {
    host.ok(&["systemctl", "--user", "show", "-p", "MainPID", unit])
}

fn unit_active(host: &Host, unit: &str) -> String {
    let output = host.run(&["systemctl", "--user", "is-active", unit]);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_and_redeemed_over_tls13_exactly_as_skupper() {
    if support::skip_without_test_host() {
        return;
    }
    let host = site_host("gr1");
    let addr = host.addr();
    let token = access_token(&host, "west.token", &[]);
    assert_eq!(token.spec.code.len(), 24);
    assert!(
        token.spec.url.starts_with(&format!("https://{addr}:9090/")),
        "{}",
        token.spec.url
    );
    assert_eq!(
        unit_active(&host, "vansite-default-grants.socket"),
        "active"
    );
    let grant_ca = host.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/issuers/skupper-grant-server-ca/tls.crt",
    ]);
    assert_eq!(
        token.spec.ca, grant_ca,
        "the token trusts the grant server's CA"
    );

    // TLS below 1.3 is refused before any HTTP.
    let tls12 = post(
        &token.spec.url,
        &token.spec.ca,
        b"x",
        &[],
        &[&rustls::version::TLS12],
    )
    .await;
    assert!(tls12.is_err(), "TLS 1.2 accepted: {tls12:?}");

    // A wrong code: 403, nothing used up.
    let (status, body) = redeem(&token, "AAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "Redemption of access token refused\n")
    );

    // The right one: a Secret and a Link to this site; the client certificate chains to the
    // site CA, with CN = subject.
    let (status, body) = redeem(&token, &token.spec.code).await;
    assert_eq!(status, 200, "{body}");
    let (secret, link) = secret_and_link(&body);
    assert_eq!(secret.metadata.name, "east-link");
    assert_eq!(link.spec.tls_credentials, "east-link");
    let endpoint = link.spec.endpoint_for_role("inter-router").unwrap();
    assert_eq!(endpoint.host, addr);
    let status = serde_json::from_str::<serde_json::Value>(&vansite_ok(
        &host,
        &["status", "--output", "json"],
    ))
    .unwrap();
    let inter_router_port = status["site"]["linkAccess"][0]["port"].to_string();
    assert_eq!(endpoint.port, inter_router_port);
    // `active/running` while a server runs, `active/listening` between servers.
    assert!(
        status["grantServer"]["socketState"]
            .as_str()
            .is_some_and(|s| s.starts_with("active/")),
        "{status:#}"
    );
    let site_ca = host.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/issuers/skupper-site-ca/tls.crt",
    ]);
    assert_eq!(
        secret.decoded("ca.crt").unwrap().unwrap(),
        site_ca.as_bytes()
    );
    // The client certificate (CN as Skupper's, OU the link's name here) is signed by the
    // link's own CA, the second certificate of tls.crt, which the site keeps and its router
    // trusts until the link is revoked.
    let crt = secret.decoded("tls.crt").unwrap().unwrap();
    let chain: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&crt)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chain.len(), 2);
    let cert = chain[0].parse_x509().unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "east");
    let ou = cert.subject().iter_organizational_unit().next().unwrap();
    assert_eq!(ou.as_str().unwrap(), "east-link");
    cert.verify_signature(Some(chain[1].parse_x509().unwrap().public_key()))
        .unwrap();
    let link_ca = host.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/link-issuers/east-link/tls.crt",
    ]);
    let (_, kept) = x509_parser::pem::parse_x509_pem(link_ca.as_bytes()).unwrap();
    assert_eq!(
        kept.contents, chain[1].contents,
        "the site keeps the link's CA"
    );
    let trust = host.ok(&[
        "cat",
        ".local/share/vansite/default/runtime/certs/skupper-site-server/ca.crt",
    ]);
    assert!(
        trust.contains(link_ca.trim()) && trust.contains(site_ca.trim()),
        "the link listeners trust it: {trust}"
    );

    // Once only.
    let (status, body) = redeem(&token, &token.spec.code).await;
    assert_eq!((status, body.as_str()), (404, "No such access granted\n"));

    // Expired: No such claim.
    let short = access_token(&host, "short.token", &["--expiration-window", "1s"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = redeem(&short, &short.spec.code).await;
    assert_eq!((status, body.as_str()), (404, "No such claim\n"));

    // v1 token-claim, redeemed with the v1 claims protocol.
    let (_, claim) = issue(
        &host,
        "west-v1.token",
        &["--format", "v1", "--name", "west-claim"],
    );
    let [Resource::Secret(claim)] = claim.as_slice() else {
        panic!("{claim:?}")
    };
    assert_eq!(claim.metadata.labels["skupper.io/type"], "token-claim");
    let url = &claim.metadata.annotations["skupper.io/url"];
    assert_eq!(url, &format!("https://{addr}:9090/west-claim"));
    let password = String::from_utf8(claim.decoded("password").unwrap().unwrap()).unwrap();
    let ca = String::from_utf8(claim.decoded("ca.crt").unwrap().unwrap()).unwrap();
    let (status, body) = post(
        &format!("{url}?site-version=1.9.6"),
        &ca,
        password.as_bytes(),
        &[("skupper-site-name", "east")],
        TLS13_ONLY,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer = parse_documents(&body, "v1").unwrap();
    let [Resource::Secret(connection)] = answer.resources.as_slice() else {
        panic!("{body}")
    };
    assert_eq!(
        connection.metadata.labels["skupper.io/type"],
        "connection-token"
    );
    assert_eq!(connection.metadata.annotations["inter-router-host"], addr);

    // A static link needs no server: Secret link-west, Link link-west with cost 1.
    let generated = vansite_ok(&host, &["link", "generate"]);
    let (secret, link) = secret_and_link(&generated);
    assert_eq!(secret.metadata.name, "link-west");
    assert_eq!(
        (link.metadata.name.as_str(), link.spec.cost),
        ("link-west", 1)
    );

    // A site without link access refuses to issue, saying how to get it.
    let refused = vansite(&host, &["-n", "closed", "token", "issue", "closed.token"]);
    assert!(!refused.status.success());
    vansite_ok(
        &host,
        &[
            "-n",
            "closed",
            "init",
            "--router-image",
            STANDIN_IMAGE,
            "--timeout",
            "120",
        ],
    );
    let refused = vansite(&host, &["-n", "closed", "token", "issue", "closed.token"]);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && message.contains("--enable-link-access"),
        "{}",
        text(&refused)
    );
    assert!(host.run(&["test", "-e", "closed.token"]).status.code() == Some(1));

    // delete stops the grant server and removes its units and state.
    vansite_ok(&host, &["delete"]);
    assert_ne!(
        unit_active(&host, "vansite-default-grants.socket"),
        "active"
    );
    let left = host.ok(&[
        "sh",
        "-c",
        "ls -R .config/systemd/user | grep default-grants; ls .local/share/vansite; true",
    ]);
    assert_eq!(left.trim(), "closed", "left behind: {left}");
    assert!(post(&token.spec.url, &token.spec.ca, b"x", &[], TLS13_ONLY)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_hold_across_server_restarts_and_parallel_redemptions() {
    if support::skip_without_test_host() {
        return;
    }
    let host = site_host("gr2");
    // A two-use grant: one redemption, the server stopped (socket activation starts a new
    // one on the next connection), the second, then used up.
    let token = access_token(
        &host,
        "twice.token",
        &["--redemptions", "2", "--port", "9443"],
    );
    assert!(token.spec.url.contains(":9443/"), "{}", token.spec.url);
    assert_eq!(redeem(&token, &token.spec.code).await.0, 200);
    let pid_before = main_pid(&host, "vansite-default-grants.service");
    host.ok(&[
        "systemctl",
        "--user",
        "stop",
        "vansite-default-grants.service",
    ]);
    assert_eq!(redeem(&token, &token.spec.code).await.0, 200);
    let pid_after = main_pid(&host, "vansite-default-grants.service");
    assert_ne!(pid_before, pid_after, "a new server process answered");
    let (status, body) = redeem(&token, &token.spec.code).await;
    assert_eq!((status, body.as_str()), (404, "No such access granted\n"));

    // Many clients at once on a single-use grant: exactly one succeeds.
    let single = access_token(&host, "single.token", &[]);
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let single = single.clone();
            tokio::spawn(async move { redeem(&single, &single.spec.code).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    statuses.sort();
    let mut expected = vec![404; 11];
    expected.insert(0, 200);
    assert_eq!(statuses, expected);
}

/// What a refused `token issue` must leave as it was: the grant server's socket unit (its file
/// and what it listens on), the site's resources and the grants' state files.
fn grant_footprint(host: &Host) -> String {
    host.ok(&[
        "sh",
        "-c",
        "cat .config/systemd/user/vansite-default-grants.socket; \
         systemctl --user show -p ActiveState -p SubState -p Listen vansite-default-grants.socket; \
         cd .local/share/vansite/default; ls -l --time-style=full-iso resources runtime/grants; \
         cat resources/*",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_issue_changes_nothing_and_earlier_tokens_still_work() {
    if support::skip_without_test_host() {
        return;
    }
    let host = site_host("gr3");
    let first = access_token(&host, "first.token", &[]);
    let before = grant_footprint(&host);
    // A port another program holds: the router's own inter-router port.
    let router_port = site_status(&host)["site"]["linkAccess"][0]["port"].to_string();
    for port in ["0", "22", router_port.as_str()] {
        let refused = vansite(&host, &["token", "issue", "t.token", "--port", port]);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "--port {port}: {}",
            text(&refused)
        );
        assert_eq!(
            grant_footprint(&host),
            before,
            "--port {port} changed the site"
        );
        assert!(host.run(&["test", "-e", "t.token"]).status.code() == Some(1));
    }
    // A directory the token cannot be written to: refused before any grant is recorded.
    host.ok(&["sh", "-c", "mkdir locked && chmod 555 locked"]);
    let refused = vansite(&host, &["token", "issue", "locked/t.token"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("locked/t.token"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        grant_footprint(&host),
        before,
        "an unwritable token file left a grant"
    );
    assert_eq!(host.ok(&["ls", "-A", "locked"]), "");

    // The grant server's own port is taken by its socket, and is fine.
    let second = access_token(&host, "second.token", &["--port", "9090"]);
    assert_eq!(redeem(&first, &first.spec.code).await.0, 200);
    assert_eq!(redeem(&second, &second.spec.code).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_and_revoked_and_a_grant_socket_that_cannot_listen_is_unhealthy() {
    if support::skip_without_test_host() {
        return;
    }
    let host = site_host("gr4");
    let addr = host.addr();
    let kept = access_token(
        &host,
        "kept.token",
        &["--name", "kept", "--redemptions", "2"],
    );
    let revoked = access_token(&host, "revoked.token", &["--name", "revoked"]);
    assert_eq!(redeem(&kept, &kept.spec.code).await.0, 200);

    let listed: serde_json::Value =
        serde_json::from_str(&vansite_ok(&host, &["token", "list", "--output", "json"])).unwrap();
    let grant = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {listed:#}"))
    };
    for (name, used, allowed) in [("kept", 1, 2), ("revoked", 0, 1)] {
        let grant = grant(name);
        assert_eq!(
            (
                &grant["redemptionsUsed"],
                &grant["redemptionsAllowed"],
                &grant["port"],
                &grant["host"],
                &grant["state"]
            ),
            (
                &serde_json::json!(used),
                &serde_json::json!(allowed),
                &serde_json::json!(9090),
                &serde_json::json!(addr),
                &serde_json::json!("redeemable")
            ),
            "{grant:#}"
        );
        assert!(grant["expirationTime"].is_string(), "{grant:#}");
    }
    let table = vansite_ok(&host, &["token", "list"]);
    assert!(
        table.contains("kept") && table.contains("1/2") && table.contains(&format!("{addr}:9090")),
        "{table}"
    );

    // Revoked: Skupper's answer for an unknown claim, its state gone; the other still works.
    let uid_files = |token: &AccessToken| {
        let uid = token.spec.url.rsplit('/').next().unwrap().to_string();
        host.ok(&[
            "sh",
            "-c",
            &format!("ls .local/share/vansite/default/runtime/grants | grep -c {uid}; true"),
        ])
        .trim()
        .to_string()
    };
    assert_eq!(uid_files(&revoked), "2", "a state and a lock file");
    vansite_ok(&host, &["token", "revoke", "revoked"]);
    let (status, body) = redeem(&revoked, &revoked.spec.code).await;
    assert_eq!((status, body.as_str()), (404, "No such claim\n"));
    assert_eq!(uid_files(&revoked), "0");
    let unknown = vansite(&host, &["token", "revoke", "revoked"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("token list"),
        "{}",
        text(&unknown)
    );

    // The socket stopped while a token waits: unhealthy, naming the fix.
    let socket = "vansite-default-grants.socket";
    let unhealthy = |why: &str| {
        let output = vansite(&host, &["status"]);
        assert_eq!(output.status.code(), Some(3), "{why}: {}", text(&output));
        let all = text(&output);
        assert!(
            all.contains(&format!("systemctl --user restart {socket}")),
            "{why}: {all}"
        );
    };
    host.ok(&["systemctl", "--user", "stop", socket]);
    unhealthy("stopped");
    // Failed: another program held its port when it started.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = in_netns(&host, move || {
        let listener = std::net::TcpListener::bind("0.0.0.0:9090").unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        drop(listener);
    });
    held_rx.recv().unwrap();
    let started = host.run(&["systemctl", "--user", "start", socket]);
    assert!(!started.status.success(), "{}", text(&started));
    assert_eq!(unit_active(&host, socket), "failed");
    unhealthy("failed");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    host.ok(&[
        "sh",
        "-c",
        &format!("systemctl --user reset-failed {socket} && systemctl --user restart {socket}"),
    ]);
    vansite_ok(&host, &["status"]);
    assert_eq!(redeem(&kept, &kept.spec.code).await.0, 200);
}

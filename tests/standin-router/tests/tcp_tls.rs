//! TLS on tcpListener and tcpConnector as skupper-router 3.5.1 has it
//! (`src/adaptors/tcp/tcp_adaptor.c`, `src/tls/tls.c`, `src/tls/tls_raw.c`): a tcpListener with
//! an sslProfile is a TLS server (with `authenticatePeer`, a client needs a certificate from the
//! profile's CA); a tcpConnector with one is a TLS client of its backend, verified against the
//! profile's CA and, with `verifyHostname` (the default), by the backend's DNS SANs and CN only;
//! it presents the profile's certificate when there is one. TLS ends at each router: across a
//! link the bytes go as any others. sslProfiles are created and deleted at run time, and their
//! files are read when a tcpListener or tcpConnector uses them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use support::{
    attrs, fixture, free_port, start_site_a, test_dir, tls_echo_roundtrip, tls_echo_server,
    wait_accepting, Ca, San, Standin,
};
use vansite::router::management::ManagementClient;

const LIMIT: Duration = Duration::from_secs(20);

/// Certificates under `dir`: `service` (the tcpListener's, for 127.0.0.1), `client` (a client
/// of it, from the CA the tcpListener trusts), `stranger` (a client certificate from another
/// CA), `backend` (the backend's, `backend_cn` and `backend_sans`)
/// and `router-client` (what the router presents to the backend).
fn issue_certs(dir: &Path, backend_cn: &str, backend_sans: &[San]) {
    let ip = [San::Dns("127.0.0.1"), San::Ip("127.0.0.1")];
    let service_ca = Ca::new("service-ca");
    service_ca.issue(&dir.join("service"), "127.0.0.1", &ip);
    Ca::new("clients-ca").issue(&dir.join("client"), "client", &[]);
    Ca::new("stranger-ca").issue(&dir.join("stranger"), "client", &[]);
    Ca::new("backend-ca").issue(&dir.join("backend"), backend_cn, backend_sans);
    Ca::new("backend-clients-ca").issue(&dir.join("router-client"), "router", &[]);
}

/// The stand-in of tests/fixtures/tcp-tls.json: a TLS tcpListener (authenticatePeer) for
/// address `secure` and a TLS tcpConnector to `backend_host`:`backend_port`. Returns it and its
/// tcpListener's port.
fn start_tls_site(
    dir: &Path,
    log: &str,
    backend_host: &str,
    backend_port: u16,
    verify_hostname: bool,
) -> (Standin, u16) {
    let port = free_port();
    let path = |name: &str| dir.join(name).display().to_string();
    let env = [
        ("CLIENT_CA", path("client")),
        ("SERVICE", path("service")),
        ("BACKEND_CA", path("backend")),
        ("ROUTER_CLIENT", path("router-client")),
        ("LISTEN_PORT", port.to_string()),
        ("BACKEND_HOST", backend_host.to_string()),
        ("BACKEND_PORT", backend_port.to_string()),
        ("VERIFY_HOSTNAME", verify_hostname.to_string()),
    ];
    let standin = Standin::start(&fixture("tcp-tls.json"), &env, dir.join(log));
    standin.wait_for_log("router tls-site (interior) running", LIMIT);
    wait_accepting(port, LIMIT);
    (standin, port)
}

/// A TLS client of the tcpListener at `port` presenting the certificate in `dir/client` (or
/// none), trusting the service's CA.
fn through(port: u16, dir: &Path, client: Option<&str>, len: usize) -> Result<(), String> {
    let trust = dir.join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(dir.join("service/ca.crt"), trust.join("ca.crt")).unwrap();
    tls_echo_roundtrip(port, &trust, client.map(|c| dir.join(c)).as_deref(), len)
}

fn sessions(count: &Arc<AtomicUsize>) -> usize {
    count.load(Ordering::SeqCst)
}

#[test]
fn a_tls_client_reaches_a_tls_backend_through_a_tls_listener_and_connector() {
    let dir = test_dir("tcp-tls-carry");
    issue_certs(&dir, "backend", &[San::Dns("localhost")]);
    // The backend only speaks TLS and demands the router's client certificate.
    let (backend, backend_sessions) =
        tls_echo_server(&dir.join("backend"), Some(&dir.join("router-client")));
    let (standin, port) = start_tls_site(&dir, "router.log", "localhost", backend, true);

    through(port, &dir, Some("client"), 1024 * 1024).unwrap();
    assert_eq!(sessions(&backend_sessions), 1, "{}", standin.log_text());

    // A plain TCP client gets no bytes through.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(b"plain text\r\n\r\n").unwrap();
    let mut back = Vec::new();
    let _ = plain.read_to_end(&mut back);
    assert!(
        !String::from_utf8_lossy(&back).contains("plain text"),
        "{back:?}"
    );
    assert_eq!(sessions(&backend_sessions), 1);
}

#[test]
fn authenticate_peer_refuses_clients_without_a_certificate_from_its_ca() {
    let dir = test_dir("tcp-tls-peer");
    issue_certs(&dir, "backend", &[San::Dns("localhost")]);
    let (backend, backend_sessions) =
        tls_echo_server(&dir.join("backend"), Some(&dir.join("router-client")));
    let (standin, port) = start_tls_site(&dir, "router.log", "localhost", backend, true);

    let no_certificate = through(port, &dir, None, 1024);
    assert!(no_certificate.is_err(), "carried without a certificate");
    standin.wait_for_log("peer sent no certificates", LIMIT);
    let other_ca = through(port, &dir, Some("stranger"), 1024);
    assert!(other_ca.is_err(), "carried with a foreign certificate");
    standin.wait_for_log("UnknownIssuer", LIMIT);
    // Nothing reached the backend.
    assert_eq!(sessions(&backend_sessions), 0);

    through(port, &dir, Some("client"), 1024).unwrap();
    assert_eq!(sessions(&backend_sessions), 1);
}

#[test]
fn verify_hostname_matches_the_dialled_host_against_dns_sans_and_cn_only() {
    let dir = test_dir("tcp-tls-hostname");
    // The dialled host, 127.0.0.1, is in the backend's certificate only as an IP SAN, which
    // the real router ignores.
    issue_certs(
        &dir,
        "backend.example",
        &[San::Dns("other.example"), San::Ip("127.0.0.1")],
    );
    let (backend, backend_sessions) =
        tls_echo_server(&dir.join("backend"), Some(&dir.join("router-client")));
    let (verifying, port) = start_tls_site(&dir, "verifying.log", "127.0.0.1", backend, true);
    let refused = through(port, &dir, Some("client"), 1024);
    assert!(refused.is_err(), "carried to a backend of another name");
    verifying.wait_for_log("certificate not valid for name \"127.0.0.1\"", LIMIT);
    assert_eq!(sessions(&backend_sessions), 0);

    let (_trusting, port) = start_tls_site(&dir, "trusting.log", "127.0.0.1", backend, false);
    through(port, &dir, Some("client"), 64 * 1024).unwrap();
    assert_eq!(sessions(&backend_sessions), 1);

    // A certificate naming the host only in its subject CN is accepted.
    let cn_dir = dir.join("cn-only");
    std::fs::create_dir_all(&cn_dir).unwrap();
    issue_certs(&cn_dir, "127.0.0.1", &[]);
    let (backend, backend_sessions) =
        tls_echo_server(&cn_dir.join("backend"), Some(&cn_dir.join("router-client")));
    let (_cn, port) = start_tls_site(&cn_dir, "cn.log", "127.0.0.1", backend, true);
    through(port, &cn_dir, Some("client"), 1024).unwrap();
    assert_eq!(sessions(&backend_sessions), 1);
}

/// A tcpListener for `address` on `port` using sslProfile `profile`, with authenticatePeer.
fn tls_listener(port: u16, address: &str, profile: &str) -> Map<String, Value> {
    attrs(
        json!({"host": "127.0.0.1", "port": port.to_string(), "address": address,
                 "sslProfile": profile, "authenticatePeer": true}),
    )
}

/// The sslProfile of the tcpListener: the service's certificate, the clients' CA.
fn service_profile(dir: &Path) -> Map<String, Value> {
    let file = |path: &str| dir.join(path).display().to_string();
    attrs(
        json!({"caCertFile": file("client/ca.crt"), "certFile": file("service/tls.crt"),
                 "privateKeyFile": file("service/tls.key")}),
    )
}

async fn refused(
    client: &mut ManagementClient,
    entity: &str,
    attributes: Map<String, Value>,
) -> String {
    let err = client
        .create(entity, "refused", attributes)
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(500), "{err}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_profiles_and_tls_tcp_listeners_are_created_and_deleted_live() {
    let site = start_site_a("tcp-tls-live", LIMIT);
    let dir = site.dir.join("tls");
    issue_certs(&dir, "backend", &[San::Dns("localhost")]);
    let mut client = site.management(LIMIT).await;
    let port = free_port();

    // An sslProfile that does not exist: refused as the real router refuses it.
    let err = refused(
        &mut client,
        "tcpListener",
        tls_listener(port, "echo-a", "live-service"),
    )
    .await;
    assert!(
        err.contains("CError: Not found: sslProfile 'live-service' not found"),
        "{err}"
    );
    let connector =
        attrs(json!({"host": "127.0.0.1", "port": "1", "address": "x", "sslProfile": "nowhere"}));
    let err = refused(&mut client, "tcpConnector", connector).await;
    assert!(err.contains("sslProfile 'nowhere' not found"), "{err}");

    // An sslProfile's files are read when it is used, not when it is created.
    let missing = attrs(
        json!({"caCertFile": "/nowhere/ca.crt", "certFile": "/nowhere/tls.crt",
                               "privateKeyFile": "/nowhere/tls.key"}),
    );
    client
        .create("sslProfile", "missing-files", missing)
        .await
        .unwrap();
    let err = refused(
        &mut client,
        "tcpListener",
        tls_listener(port, "echo-a", "missing-files"),
    )
    .await;
    assert!(
        err.contains(
            "CError: Configuration: Failed to configure TLS caCertFile /nowhere/ca.crt for \
             sslProfile 'missing-files': (-1)"
        ),
        "{err}"
    );
    let ca_only = attrs(json!({"caCertFile": dir.join("client/ca.crt").display().to_string()}));
    client
        .create("sslProfile", "ca-only", ca_only)
        .await
        .unwrap();
    let err = refused(
        &mut client,
        "tcpListener",
        tls_listener(port, "echo-a", "ca-only"),
    )
    .await;
    assert!(
        err.contains("Listener requires a self-identifying certificate (sslProfile: ca-only)"),
        "{err}"
    );

    // The real thing, carried to site A's (plain) echo server.
    client
        .create("sslProfile", "live-service", service_profile(&dir))
        .await
        .unwrap();
    client
        .create(
            "tcpListener",
            "listener/tls",
            tls_listener(port, "echo-a", "live-service"),
        )
        .await
        .unwrap();
    let blocking_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        through(port, &blocking_dir, Some("client"), 256 * 1024).unwrap();
        assert!(through(port, &blocking_dir, None, 1024).is_err());
    })
    .await
    .unwrap();

    // Deleting the sslProfile a tcpListener uses is allowed; the tcpListener keeps the TLS
    // configuration it was created with (as the real router's TcpAdaptorSslProfileDeleteTests
    // check), and nothing new can name the profile.
    client.delete("sslProfile", "live-service").await.unwrap();
    let profiles = client.query("sslProfile", &["name"]).await.unwrap();
    assert!(!profiles.iter().any(|p| p["name"] == json!("live-service")));
    let blocking_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        through(port, &blocking_dir, Some("client"), 64 * 1024).unwrap();
    })
    .await
    .unwrap();
    let err = refused(
        &mut client,
        "tcpListener",
        tls_listener(free_port(), "echo-a", "live-service"),
    )
    .await;
    assert!(err.contains("sslProfile 'live-service' not found"), "{err}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_ends_at_each_router_and_the_link_between_carries_the_bytes() {
    let site = start_site_a("tcp-tls-link", LIMIT);
    let dir = site.dir.join("tls");
    issue_certs(&dir, "backend", &[San::Dns("localhost")]);
    // A backend that only speaks TLS, behind a linked stand-in whose tcpConnector verifies it
    // by name (verifyHostname left at its default) and presents no certificate.
    let (backend, backend_sessions) = tls_echo_server(&dir.join("backend"), None);
    let link = site.dir.join("link");
    site.site_ca.issue(&link, "spoke", &[]);
    let env = [
        ("ROUTER_ID", "spoke".to_string()),
        ("LINK_CERTS", link.display().to_string()),
        ("A_PORT", site.inter_router_port.to_string()),
        ("BACKEND_CA", dir.join("backend").display().to_string()),
        ("SERVICE_PORT", backend.to_string()),
        ("ADDRESS", "secure".to_string()),
    ];
    let spoke = Standin::start(&fixture("spoke-tls.json"), &env, site.dir.join("spoke.log"));

    let mut client = site.management(LIMIT).await;
    client
        .create("sslProfile", "live-service", service_profile(&dir))
        .await
        .unwrap();
    let port = free_port();
    client
        .create(
            "tcpListener",
            "listener/secure",
            tls_listener(port, "secure", "live-service"),
        )
        .await
        .unwrap();
    let blocking_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        // Accepting once the spoke's tcpConnector is known across the link.
        wait_accepting(port, LIMIT);
        through(port, &blocking_dir, Some("client"), 1024 * 1024).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(sessions(&backend_sessions), 1, "{}", spoke.log_text());
    client.close().await.unwrap();
}

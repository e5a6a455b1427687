//! Two stand-in routers configured by hand-written skrouterd.json files (tests/fixtures) link
//! over mutual TLS and carry TCP; the TLS rules of the real router hold.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    echo_roundtrip, echo_server, fixture, free_port, standin_command, test_dir, wait_accepting, Ca,
    San, Standin,
};

const LIMIT: Duration = Duration::from_secs(20);

/// Site A: listens for links; its server certificate has subject CN `site-a` (unless a test
/// names it otherwise) and carries `a_sans`.
struct SiteA {
    standin: Standin,
    site_ca: Ca,
    inter_router_port: u16,
    /// tcpListener at A for address echo-b (served at B).
    echo_b_port: u16,
}

fn start_site_a(dir: &Path, a_sans: &[San]) -> SiteA {
    start_site_a_on(
        dir,
        "site-a",
        a_sans,
        Ca::new("skupper-site-ca"),
        free_port(),
    )
}

fn start_site_a_on(
    dir: &Path,
    server_cn: &str,
    a_sans: &[San],
    site_ca: Ca,
    inter_router_port: u16,
) -> SiteA {
    let certs = dir.join("a-certs");
    site_ca.issue(&certs.join("site-a"), server_cn, a_sans);
    let local_ca = Ca::new("skupper-local-ca");
    local_ca.issue(
        &certs.join("skupper-local-server"),
        "127.0.0.1",
        &[
            San::Dns("127.0.0.1"),
            San::Dns("localhost"),
            San::Ip("127.0.0.1"),
        ],
    );
    let (management_port, echo_b_port) = (free_port(), free_port());
    let env = [
        ("CERTS", certs.display().to_string()),
        ("MANAGEMENT_PORT", management_port.to_string()),
        ("INTER_ROUTER_PORT", inter_router_port.to_string()),
        ("ECHO_SERVER_PORT", echo_server().to_string()),
        ("ECHO_B_PORT", echo_b_port.to_string()),
    ];
    let standin = Standin::start(&fixture("site-a.json"), &env, dir.join("a.log"));
    standin.wait_for_log("router site-a (interior) running", LIMIT);
    SiteA {
        standin,
        site_ca,
        inter_router_port,
        echo_b_port,
    }
}

/// Site B: dials A with the certificates in `link_certs`. Returns it and the port of its
/// tcpListener for address echo-a (served at A).
fn start_site_b(dir: &Path, config: &str, link_certs: &Path, a: &SiteA) -> (Standin, u16) {
    start_site_b_to(
        dir,
        config,
        link_certs,
        &SitePorts {
            inter_router_port: a.inter_router_port,
        },
    )
}

/// Where B dials.
struct SitePorts {
    inter_router_port: u16,
}

fn start_site_b_to(dir: &Path, config: &str, link_certs: &Path, a: &SitePorts) -> (Standin, u16) {
    let echo_a_port = free_port();
    let env = [
        ("LINK_CERTS", link_certs.display().to_string()),
        ("A_HOST", "127.0.0.1".to_string()),
        ("A_PORT", a.inter_router_port.to_string()),
        ("ECHO_SERVER_PORT", echo_server().to_string()),
        ("ECHO_A_PORT", echo_a_port.to_string()),
    ];
    (
        Standin::start(&fixture(config), &env, dir.join("b.log")),
        echo_a_port,
    )
}

/// A DNS SAN for the dialled address, as Skupper issues them (plus the IP SAN).
fn good_server_sans() -> Vec<San> {
    vec![
        San::Dns("127.0.0.1"),
        San::Ip("127.0.0.1"),
        San::Dns("localhost"),
    ]
}

#[test]
fn linked_sites_carry_10mb_both_ways() {
    let dir = test_dir("carry");
    let a = start_site_a(&dir, &good_server_sans());
    a.site_ca.issue(&dir.join("link"), "site-b", &[]);
    let (b, echo_a_port) = start_site_b(&dir, "site-b.json", &dir.join("link"), &a);
    // Each tcpListener opens only once the link is up and the far connector is known.
    wait_accepting(echo_a_port, LIMIT);
    wait_accepting(a.echo_b_port, LIMIT);
    // B's client → B's tcpListener → link → A's tcpConnector → echo server, and back.
    echo_roundtrip(echo_a_port, 10 * 1024 * 1024);
    // A's client → A's tcpListener → link (a stream opened by the listening side) → B.
    echo_roundtrip(a.echo_b_port, 10 * 1024 * 1024);
    let log = b.wait_for_log("link up: inter-router with router site-a", LIMIT);
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_server_trusted_from_another_ca_is_rejected() {
    let dir = test_dir("wrong-server-ca");
    let a = start_site_a(&dir, &good_server_sans());
    Ca::new("another-site-ca").issue(&dir.join("link"), "site-b", &[]);
    let (b, echo_a_port) = start_site_b(&dir, "site-b.json", &dir.join("link"), &a);
    b.wait_for_log("UnknownIssuer", LIMIT);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", echo_a_port)).is_err(),
        "no link, so no tcpListener"
    );
}

#[test]
fn a_client_certificate_from_another_ca_is_rejected() {
    let dir = test_dir("wrong-client-ca");
    let a = start_site_a(&dir, &good_server_sans());
    // B trusts A's CA, but its own certificate comes from elsewhere.
    let link = dir.join("link");
    Ca::new("another-site-ca").issue(&link, "site-b", &[]);
    a.site_ca.trust_only(&link);
    let (_b, echo_a_port) = start_site_b(&dir, "site-b.json", &link, &a);
    let log = a.standin.wait_for_log("TLS handshake with", LIMIT);
    assert!(
        log.contains("UnknownIssuer") || log.contains("invalid peer certificate"),
        "{log}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", echo_a_port)).is_err());
}

#[test]
fn a_peer_without_client_certificate_is_rejected() {
    let dir = test_dir("no-client-cert");
    let a = start_site_a(&dir, &good_server_sans());
    a.site_ca.trust_only(&dir.join("link"));
    let (_b, echo_a_port) = start_site_b(&dir, "site-b-no-client-cert.json", &dir.join("link"), &a);
    let log = a.standin.wait_for_log("TLS handshake with", LIMIT);
    assert!(log.contains("peer sent no certificates"), "{log}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", echo_a_port)).is_err());
}

#[test]
fn a_server_named_only_by_ip_san_is_rejected() {
    let dir = test_dir("ip-san-only");
    // The address B dials (127.0.0.1) is in the certificate only as an IP SAN: the real router
    // ignores IP SANs when it checks the host, so the link must fail.
    let a = start_site_a(&dir, &[San::Ip("127.0.0.1")]);
    a.site_ca.issue(&dir.join("link"), "site-b", &[]);
    let (b, echo_a_port) = start_site_b(&dir, "site-b.json", &dir.join("link"), &a);
    b.wait_for_log("certificate not valid for name \"127.0.0.1\"", LIMIT);
    assert!(std::net::TcpStream::connect(("127.0.0.1", echo_a_port)).is_err());
}

#[test]
fn a_server_named_only_by_its_common_name_is_accepted() {
    let dir = test_dir("cn-only");
    // No SAN at all: the real router falls back to the subject CN, which names the dialled host.
    let a = start_site_a_on(
        &dir,
        "127.0.0.1",
        &[],
        Ca::new("skupper-site-ca"),
        free_port(),
    );
    a.site_ca.issue(&dir.join("link"), "site-b", &[]);
    let (b, echo_a_port) = start_site_b(&dir, "site-b.json", &dir.join("link"), &a);
    b.wait_for_log("link up: inter-router with router site-a", LIMIT);
    wait_accepting(echo_a_port, LIMIT);
    echo_roundtrip(echo_a_port, 1024);
}

#[test]
fn an_unknown_attribute_stops_the_router_with_its_name() {
    let output = standin_command(&fixture("unknown-attribute.json"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown attribute 'sslProfle' for entity type 'listener'"),
        "{stderr}"
    );
}

/// The image reads the configuration as JSON only with `QDROUTERD_CONF_TYPE=json`; by default
/// its launch script names it `/tmp/skrouterd.conf` and the router reads the classic format.
#[test]
fn a_json_configuration_needs_conf_type_json() {
    for conf_type in [None, Some("conf")] {
        let mut command = standin_command(&fixture("site-a.json"));
        match conf_type {
            None => command.env_remove("QDROUTERD_CONF_TYPE"),
            Some(t) => command.env("QDROUTERD_CONF_TYPE", t),
        };
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "Cannot load configuration file /tmp/skrouterd.conf: a JSON configuration read \
                 in the classic conf format"
            ),
            "{stderr}"
        );
    }
}

#[test]
fn a_missing_certificate_file_stops_the_router() {
    let dir = test_dir("missing-cert");
    let output = standin_command(&fixture("site-a.json"))
        .env("CERTS", dir.join("nowhere"))
        .env("MANAGEMENT_PORT", "1")
        .env("INTER_ROUTER_PORT", "1")
        .env("ECHO_SERVER_PORT", "1")
        .env("ECHO_B_PORT", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("skupper-local-server/ca.crt"), "{stderr}");
}

#[test]
fn a_connector_redials_until_its_peer_appears() {
    let dir = test_dir("redial");
    // B starts first and dials a port where nothing listens yet.
    let site_ca = Ca::new("skupper-site-ca");
    site_ca.issue(&dir.join("link"), "site-b", &[]);
    let inter_router_port = free_port();
    let placeholder = SitePorts { inter_router_port };
    let (b, echo_a_port) = start_site_b_to(&dir, "site-b.json", &dir.join("link"), &placeholder);
    b.wait_for_log("Connection refused", LIMIT);
    // A appears on that port later, with a server certificate from the CA B trusts.
    let a = start_site_a_on(
        &dir,
        "site-a",
        &good_server_sans(),
        site_ca,
        inter_router_port,
    );
    wait_accepting(echo_a_port, LIMIT);
    echo_roundtrip(echo_a_port, 64 * 1024);
    drop(a);
    // When A goes away the link drops, and B's tcpListener stops accepting.
    support::wait_refusing(echo_a_port, LIMIT);
}

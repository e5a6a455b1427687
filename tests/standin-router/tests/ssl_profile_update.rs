//! sslProfile UPDATE, trust bundles and TLS ordinals as skupper-router 3.5.1 has them
//! (`src/tls/tls.c` `qd_tls_update_ssl_profile`, `src/adaptors/amqp/qd_listener.c`,
//! `qd_connector.c`, `python/skupper_router_internal/management/agent.py`), and management's
//! force-close of a connection (`src/router_core/agent_connection.c`).
//!
//! A hub (tests/fixtures/tls-hub.json) takes inter-router links on a listener whose sslProfile
//! `links` trusts a bundle of client CAs; spokes (tests/fixtures/spoke.json) dial it with
//! certificates from one CA or another. An UPDATE re-reads the profile's files: new handshakes
//! use them, open links stay unless `oldestValidOrdinal` passes the ordinal they were made
//! with; then they are closed, and those still trusted come back 2 s later.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::DnType;
use serde_json::{json, Map, Value};
use support::{
    echo_roundtrip, echo_server, fixture, free_port, test_dir, wait_accepting, write_bundle, Ca,
    RawManagement, San, Standin,
};

const LIMIT: Duration = Duration::from_secs(20);

/// The hub and the CAs of its world.
struct Hub {
    standin: Standin,
    dir: PathBuf,
    link_port: u16,
    management_port: u16,
    /// Issues the hub's link server certificate; spokes trust it.
    server_ca: Ca,
    /// The client CAs the hub's `links` profile trusts at start (a bundle of both).
    ca1: Ca,
    ca2: Ca,
}

impl Hub {
    /// The `links` profile's directory (ca.crt, tls.crt, tls.key).
    fn links_dir(&self) -> PathBuf {
        self.dir.join("hub/links")
    }

    /// A management connection (the `management` listener, profile `local`).
    async fn management(&self) -> RawManagement {
        RawManagement::connect(self.management_port, &self.dir.join("client"))
            .await
            .unwrap()
    }
}

fn start_hub(name: &str) -> Hub {
    let dir = test_dir(name);
    let certs = dir.join("hub");
    let local_ca = Ca::new("local-ca");
    let local_sans = [San::Dns("127.0.0.1"), San::Ip("127.0.0.1")];
    local_ca.issue(&certs.join("local"), "127.0.0.1", &local_sans);
    local_ca.issue(&dir.join("client"), "client", &local_sans);
    let (server_ca, ca1, ca2) = (Ca::new("server-ca"), Ca::new("ca-1"), Ca::new("ca-2"));
    let link_sans = [San::Dns("127.0.0.1"), San::Ip("127.0.0.1")];
    server_ca.issue(&certs.join("links"), "hub", &link_sans);
    write_bundle(&certs.join("links"), &[&ca1, &ca2]);
    let (management_port, link_port) = (free_port(), free_port());
    let env = [
        ("CERTS", certs.display().to_string()),
        ("MANAGEMENT_PORT", management_port.to_string()),
        ("LINK_PORT", link_port.to_string()),
        ("ECHO_PORT", echo_server().to_string()),
    ];
    let standin = Standin::start(&fixture("tls-hub.json"), &env, dir.join("hub.log"));
    standin.wait_for_log("router hub (interior) running", LIMIT);
    Hub {
        standin,
        dir,
        link_port,
        management_port,
        server_ca,
        ca1,
        ca2,
    }
}

/// A spoke dialling the hub with a certificate from `ca` (subject `O=vansite-tests, CN=<id>`);
/// its tcpListener on `echo_port` reaches the hub's echo server over the link.
struct Spoke {
    standin: Standin,
    echo_port: u16,
}

fn start_spoke(hub: &Hub, id: &str, ca: &Ca) -> Spoke {
    let link = hub.dir.join(format!("link-{id}"));
    let subject = [
        (DnType::OrganizationName, "vansite-tests"),
        (DnType::CommonName, id),
    ];
    ca.issue_dn(&link, &subject, &[]);
    hub.server_ca.trust_only(&link);
    let echo_port = free_port();
    let env = [
        ("ROUTER_ID", id.to_string()),
        ("MODE", "interior".to_string()),
        ("ROLE", "inter-router".to_string()),
        ("LINK_CERTS", link.display().to_string()),
        ("A_PORT", hub.link_port.to_string()),
        ("LINK_COST", "1".to_string()),
        ("ADDRESS", format!("service-{id}")),
        ("SERVICE_PORT", echo_server().to_string()),
        ("LISTEN_ADDRESS", "echo".to_string()),
        ("LISTEN_PORT", echo_port.to_string()),
    ];
    let log = hub.dir.join(format!("{id}.log"));
    Spoke {
        standin: Standin::start(&fixture("spoke.json"), &env, log),
        echo_port,
    }
}

/// The hub's inter-router connections by the spoke's router id.
type Links = BTreeMap<String, Map<String, Value>>;

async fn links(management: &mut RawManagement) -> Links {
    let attributes = ["identity", "role", "dir", "container", "tlsOrdinal", "user"];
    management
        .query("connection", &attributes)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row["role"] == json!("inter-router"))
        .map(|row| (row["container"].as_str().unwrap_or("").to_string(), row))
        .collect()
}

/// Polls the hub's links until `done` holds for them (bounded).
async fn wait_links(
    management: &mut RawManagement,
    what: &str,
    done: impl Fn(&Links) -> bool,
) -> Links {
    let start = Instant::now();
    loop {
        let links = links(management).await;
        if done(&links) {
            return links;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what}: not so after {LIMIT:?}: {links:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ordinal_of(links: &Links, spoke: &str) -> Option<u64> {
    links.get(spoke).and_then(|row| row["tlsOrdinal"].as_u64())
}

fn identity_of(links: &Links, spoke: &str) -> String {
    links[spoke]["identity"].as_str().unwrap().to_string()
}

/// Waits (bounded) until `spoke`'s log shows that the hub refused its client certificate,
/// `times` times in all. With TLS 1.3 the client's handshake is over before the server has
/// checked its certificate: the refusal shows as the connection closing before the peer's
/// hello (the real router's AMQP open).
fn wait_refused(spoke: &Spoke, times: usize) {
    let start = Instant::now();
    loop {
        let log = spoke.standin.log_text();
        let refused = log
            .lines()
            .filter(|line| line.contains("TLS handshake with") || line.contains("no hello"))
            .count();
        if refused >= times {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "no refused handshake ({times}) in the spoke's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn echo_through(spoke: &Spoke) -> impl FnOnce() + Send + 'static {
    let port = spoke.echo_port;
    move || {
        wait_accepting(port, LIMIT);
        echo_roundtrip(port, 64 * 1024);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_bundle_trusts_the_clients_of_each_of_its_cas() {
    let hub = start_hub("bundle");
    let mut management = hub.management().await;
    let one = start_spoke(&hub, "spoke-1", &hub.ca1);
    let two = start_spoke(&hub, "spoke-2", &hub.ca2);
    let stranger = start_spoke(&hub, "stranger", &Ca::new("ca-3"));
    let linked = wait_links(&mut management, "both spokes linked", |l| {
        l.contains_key("spoke-1") && l.contains_key("spoke-2")
    })
    .await;
    // The SASL EXTERNAL user is the client certificate's subject as proton prints it (RFC
    // 2253: the last RDN first, no spaces; rcgen writes the CN first, so it comes last, as
    // `openssl x509 -noout -subject -nameopt RFC2253` shows it); the link's TLS session has
    // the profile's ordinal.
    assert_eq!(
        linked["spoke-1"]["user"],
        json!("O=vansite-tests,CN=spoke-1")
    );
    assert_eq!(
        linked["spoke-2"]["user"],
        json!("O=vansite-tests,CN=spoke-2")
    );
    assert_eq!(ordinal_of(&linked, "spoke-1"), Some(0));
    assert_eq!(linked["spoke-1"]["dir"], json!("in"));
    blocking(echo_through(&one)).await;
    blocking(echo_through(&two)).await;
    // A client from a CA outside the bundle is refused.
    blocking(move || wait_refused(&stranger, 1)).await;
    assert!(!links(&mut management).await.contains_key("stranger"));
    let log = hub.standin.wait_for_log("TLS handshake with", LIMIT);
    assert!(log.contains("UnknownIssuer"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawing_a_ca_from_the_bundle_keeps_open_links_and_refuses_new_ones() {
    let hub = start_hub("withdraw");
    let mut management = hub.management().await;
    let one = start_spoke(&hub, "spoke-1", &hub.ca1);
    let _two = start_spoke(&hub, "spoke-2", &hub.ca2);
    let before = wait_links(&mut management, "both spokes linked", |l| {
        l.contains_key("spoke-1") && l.contains_key("spoke-2")
    })
    .await;

    // The bundle loses CA 1; the router reads the file again on UPDATE, not before.
    write_bundle(&hub.links_dir(), &[&hub.ca2]);
    let answer = management
        .update("sslProfile", "links", json!({"ordinal": 1}))
        .await;
    assert_eq!((answer.status, answer.description.as_str()), (200, "OK"));
    // The whole entity comes back, the attributes not given kept.
    assert_eq!(answer.body["ordinal"], json!(1));
    assert_eq!(answer.body["name"], json!("links"));
    let ca_file = hub.links_dir().join("ca.crt").display().to_string();
    assert_eq!(answer.body["caCertFile"], json!(ca_file));

    // A new client from CA 1 is refused; one from CA 2 links with the new ordinal.
    let late_one = start_spoke(&hub, "late-1", &hub.ca1);
    let _late_two = start_spoke(&hub, "late-2", &hub.ca2);
    let after = wait_links(&mut management, "late-2 linked", |l| {
        l.contains_key("late-2")
    })
    .await;
    assert_eq!(ordinal_of(&after, "late-2"), Some(1));
    blocking(move || wait_refused(&late_one, 1)).await;
    // The link spoke-1 made before stays, with its ordinal, and still carries traffic.
    let after = links(&mut management).await;
    assert!(!after.contains_key("late-1"), "{after:#?}");
    assert_eq!(
        identity_of(&after, "spoke-1"),
        identity_of(&before, "spoke-1")
    );
    assert_eq!(ordinal_of(&after, "spoke-1"), Some(0));
    blocking(echo_through(&one)).await;
    assert!(!one.standin.log_text().contains("link down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn raising_the_oldest_valid_ordinal_closes_older_links_and_trusted_spokes_come_back() {
    let hub = start_hub("oldest");
    let mut management = hub.management().await;
    let one = start_spoke(&hub, "spoke-1", &hub.ca1);
    let two = start_spoke(&hub, "spoke-2", &hub.ca2);
    let before = wait_links(&mut management, "both spokes linked", |l| {
        l.contains_key("spoke-1") && l.contains_key("spoke-2")
    })
    .await;
    let old_two = identity_of(&before, "spoke-2");

    write_bundle(&hub.links_dir(), &[&hub.ca2]);
    let updated = Instant::now();
    let answer = management
        .update(
            "sslProfile",
            "links",
            json!({"ordinal": 2, "oldestValidOrdinal": 2}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["oldestValidOrdinal"], json!(2));

    // Both links were made with ordinal 0: both are closed. spoke-2 is still trusted and
    // redials 2 s after its link dropped (`qd_connector_remote_opened`); spoke-1 is not.
    let gone = wait_links(&mut management, "the old links closed", |l| {
        !l.contains_key("spoke-1")
            && l.get("spoke-2")
                .is_none_or(|r| r["identity"] != json!(old_two))
    })
    .await;
    assert!(updated.elapsed() < Duration::from_millis(1500), "{gone:#?}");
    let back = wait_links(&mut management, "spoke-2 back", |l| {
        l.contains_key("spoke-2")
    })
    .await;
    let waited = updated.elapsed();
    assert!(
        waited >= Duration::from_millis(1800),
        "spoke-2 came back after {waited:?}, before the router's 2 s redial delay"
    );
    assert_eq!(ordinal_of(&back, "spoke-2"), Some(2));
    assert_ne!(identity_of(&back, "spoke-2"), old_two);
    blocking(echo_through(&two)).await;
    two.standin.wait_for_log("link down", LIMIT);

    // spoke-1's handshakes are refused now, and it keeps trying (every 5 s): trusted again,
    // it comes back, with the ordinal of the profile then.
    let one = blocking(move || {
        wait_refused(&one, 1);
        one
    })
    .await;
    assert!(!links(&mut management).await.contains_key("spoke-1"));
    write_bundle(&hub.links_dir(), &[&hub.ca1, &hub.ca2]);
    let answer = management
        .update("sslProfile", "links", json!({"ordinal": 3}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let back = wait_links(&mut management, "spoke-1 back", |l| {
        l.contains_key("spoke-1")
    })
    .await;
    assert_eq!(ordinal_of(&back, "spoke-1"), Some(3));
    // oldestValidOrdinal stayed 2: spoke-2's link of ordinal 2 stays.
    assert_eq!(ordinal_of(&back, "spoke-2"), Some(2));
    blocking(echo_through(&one)).await;
}

/// The certificate the hub's link listener presents to a new TLS client now.
fn presented_certificate(hub: &Hub) -> Vec<u8> {
    use std::sync::Arc;
    support::install_crypto();
    let client = hub.dir.join("probe");
    hub.ca2.issue(&client, "probe", &[]);
    let (chain, key) = support::identity_in(&client);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pem_der(
            &hub.server_ca.pem(),
        )))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", hub.link_port)).unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).unwrap();
    }
    connection.peer_certificates().unwrap()[0].to_vec()
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn file_der(path: &Path) -> Vec<u8> {
    pem_der(&std::fs::read_to_string(path).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_server_certificate_is_presented_to_new_handshakes_and_open_links_stay() {
    let hub = start_hub("renew");
    let mut management = hub.management().await;
    let two = start_spoke(&hub, "spoke-2", &hub.ca2);
    let before = wait_links(&mut management, "spoke-2 linked", |l| {
        l.contains_key("spoke-2")
    })
    .await;
    let old_certificate = file_der(&hub.links_dir().join("tls.crt"));

    // New certificate and key written over the old files, as a renewal does.
    let renewed = hub.dir.join("renewed");
    let sans = [San::Dns("127.0.0.1"), San::Ip("127.0.0.1")];
    hub.server_ca.issue(&renewed, "hub-renewed", &sans);
    for file in ["tls.crt", "tls.key"] {
        std::fs::copy(renewed.join(file), hub.links_dir().join(file)).unwrap();
    }
    let new_certificate = file_der(&renewed.join("tls.crt"));
    // The router read the files when the listener was made: until an UPDATE, the old ones.
    let hub = blocking(move || {
        assert_eq!(presented_certificate(&hub), old_certificate);
        hub
    })
    .await;
    let answer = management
        .update("sslProfile", "links", json!({"ordinal": 1}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let hub = blocking(move || {
        assert_eq!(presented_certificate(&hub), new_certificate);
        hub
    })
    .await;

    // The link made before stays, with its ordinal.
    let late = start_spoke(&hub, "late-2", &hub.ca2);
    let after = wait_links(&mut management, "late-2 linked", |l| {
        l.contains_key("late-2")
    })
    .await;
    assert_eq!(ordinal_of(&after, "late-2"), Some(1));
    assert_eq!(
        identity_of(&after, "spoke-2"),
        identity_of(&before, "spoke-2")
    );
    assert_eq!(ordinal_of(&after, "spoke-2"), Some(0));
    blocking(echo_through(&two)).await;
    blocking(echo_through(&late)).await;
    assert!(!two.standin.log_text().contains("link down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_the_router_cannot_apply_fails_and_the_old_configuration_stays() {
    let hub = start_hub("refused-update");
    let mut management = hub.management().await;
    let _two = start_spoke(&hub, "spoke-2", &hub.ca2);
    wait_links(&mut management, "spoke-2 linked", |l| {
        l.contains_key("spoke-2")
    })
    .await;

    // A certificate file the router cannot use: the C code refuses, which the Python agent
    // reports as a CError.
    let garbage = hub.dir.join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let garbage = garbage.display().to_string();
    let answer = management
        .update(
            "sslProfile",
            "links",
            json!({"certFile": garbage, "ordinal": 1}),
        )
        .await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(
        answer.description,
        format!(
            "CError: Configuration: Failed to configure TLS certFile '{garbage}' from sslProfile 'links'"
        )
    );
    // New links still get the old certificate and ordinal.
    let _late = start_spoke(&hub, "late-2", &hub.ca2);
    let after = wait_links(&mut management, "late-2 linked", |l| {
        l.contains_key("late-2")
    })
    .await;
    assert_eq!(ordinal_of(&after, "late-2"), Some(0));
    // The agent merged the attributes into its entity before the C code refused them, and
    // keeps them: the next update merges into those.
    let profile = management
        .query("sslProfile", &["name", "certFile", "ordinal"])
        .await
        .unwrap()
        .into_iter()
        .find(|row| row["name"] == json!("links"))
        .unwrap();
    assert_eq!(profile["certFile"], json!(garbage));
    assert_eq!(profile["ordinal"], json!(1));

    // An ordinal below oldestValidOrdinal is refused before any file is read.
    let answer = management
        .update("sslProfile", "links", json!({"oldestValidOrdinal": 5}))
        .await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(
        answer.description,
        "CError: Configuration: ordinal must be >= oldestValidOrdinal (sslProfile 'links')"
    );
    let after = links(&mut management).await;
    assert_eq!(ordinal_of(&after, "spoke-2"), Some(0));
    assert_eq!(ordinal_of(&after, "late-2"), Some(0));

    // Good files and an ordinal that fits: the update goes through (with the oldest valid
    // ordinal 5 kept from the refused one), and the links of ordinal 0 are closed and made
    // again.
    let good = hub.links_dir().join("tls.crt").display().to_string();
    let answer = management
        .update(
            "sslProfile",
            "links",
            json!({"certFile": good, "ordinal": 5}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["oldestValidOrdinal"], json!(5));
    wait_links(&mut management, "the links made again", |l| {
        ordinal_of(l, "spoke-2") == Some(5) && ordinal_of(l, "late-2") == Some(5)
    })
    .await;

    // A profile nothing uses yet: its files are not read, on CREATE or on UPDATE.
    let spare = json!({"certFile": garbage, "privateKeyFile": garbage, "caCertFile": garbage});
    let props = [
        ("operation", "CREATE"),
        ("type", "io.skupper.router.sslProfile"),
        ("name", "spare"),
    ];
    let answer = management.request(&props, spare).await.unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = management
        .update("sslProfile", "spare", json!({"ordinal": 1}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Ordinals are checked on CREATE too.
    let props = [
        ("operation", "CREATE"),
        ("type", "io.skupper.router.sslProfile"),
        ("name", "backwards"),
    ];
    let body = json!({"ordinal": 1, "oldestValidOrdinal": 2});
    let answer = management.request(&props, body).await.unwrap();
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(
        answer.description,
        "CError: Configuration: ordinal must be >= oldestValidOrdinal (sslProfile 'backwards')"
    );
    // Attributes that UPDATE cannot change.
    let answer = management
        .update("sslProfile", "links", json!({"uidFormat": "cn"}))
        .await;
    assert_eq!(
        (answer.status, answer.description.as_str()),
        (400, "Cannot update attribute 'uidFormat' in UPDATE")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_connection_closes_a_normal_one_and_is_refused_for_a_link() {
    let hub = start_hub("admin-delete");
    let mut management = hub.management().await;
    let two = start_spoke(&hub, "spoke-2", &hub.ca2);
    let linked = wait_links(&mut management, "spoke-2 linked", |l| {
        l.contains_key("spoke-2")
    })
    .await;
    let normal = |rows: &[Map<String, Value>]| -> Vec<String> {
        rows.iter()
            .filter(|row| row["role"] == json!("normal"))
            .map(|row| row["identity"].as_str().unwrap().to_string())
            .collect()
    };
    let attributes = ["identity", "role", "user", "tlsOrdinal"];
    let own = normal(&management.query("connection", &attributes).await.unwrap());
    let mut victim = hub.management().await;
    let rows = management.query("connection", &attributes).await.unwrap();
    let victim_id = normal(&rows)
        .into_iter()
        .find(|id| !own.contains(id))
        .expect("the second management connection");
    let victim_row = rows
        .iter()
        .find(|r| r["identity"] == json!(victim_id))
        .unwrap();
    assert_eq!(victim_row["user"], json!("CN=client"));
    assert_eq!(victim_row["tlsOrdinal"], json!(0));

    // A normal connection is closed; the answer is its row, now deleted and closing.
    let answer = management
        .update_identity("connection", &victim_id, json!({"adminStatus": "deleted"}))
        .await;
    assert_eq!((answer.status, answer.description.as_str()), (200, "OK"));
    assert_eq!(answer.body["identity"], json!(victim_id));
    assert_eq!(answer.body["adminStatus"], json!("deleted"));
    assert_eq!(answer.body["operStatus"], json!("closing"));
    assert_eq!(answer.body["role"], json!("normal"));
    let start = Instant::now();
    while victim.query("connection", &["identity"]).await.is_ok() {
        assert!(start.elapsed() < LIMIT, "the connection was not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    while normal(&management.query("connection", &attributes).await.unwrap()).contains(&victim_id) {
        assert!(
            start.elapsed() < LIMIT,
            "the closed connection is still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An inter-router connection is never closed by management.
    let link = identity_of(&linked, "spoke-2");
    let answer = management
        .update_identity("connection", &link, json!({"adminStatus": "deleted"}))
        .await;
    assert_eq!(
        (answer.status, answer.description.as_str()),
        (403, "You are not allowed to perform this operation.")
    );
    assert_eq!(answer.body, json!({}));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(identity_of(&links(&mut management).await, "spoke-2"), link);
    assert!(!two.standin.log_text().contains("link down"));

    // Its data connection may be closed: it is dialled again 2 s later, as a new connection.
    let data = |rows: &[Map<String, Value>]| -> Option<String> {
        rows.iter()
            .find(|row| row["role"] == json!("inter-router-data"))
            .map(|row| row["identity"].as_str().unwrap().to_string())
    };
    let rows = management.query("connection", &attributes).await.unwrap();
    let old_data = data(&rows).expect("a data connection");
    let closed = Instant::now();
    let answer = management
        .update_identity("connection", &old_data, json!({"adminStatus": "deleted"}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["role"], json!("inter-router-data"));
    assert_eq!(answer.body["operStatus"], json!("closing"));
    let rows = management.query("connection", &attributes).await.unwrap();
    assert_eq!(data(&rows), None, "{rows:?}");
    let new_data = loop {
        let rows = management.query("connection", &attributes).await.unwrap();
        if let Some(id) = data(&rows) {
            break id;
        }
        assert!(closed.elapsed() < LIMIT, "no new data connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(closed.elapsed() >= Duration::from_millis(1800));
    assert_ne!(new_data, old_data);
    assert_eq!(identity_of(&links(&mut management).await, "spoke-2"), link);

    // The C agent's plain Bad Request: no identity (a name is not enough), an unknown one,
    // nothing to update, a value it does not know.
    for answer in [
        management
            .update(
                "connection",
                "connection/x",
                json!({"adminStatus": "deleted"}),
            )
            .await,
        management
            .update_identity("connection", "999999", json!({"adminStatus": "deleted"}))
            .await,
        management
            .update_identity("connection", &link, json!({"host": "x"}))
            .await,
        management
            .update_identity("connection", &link, json!({"adminStatus": "paused"}))
            .await,
    ] {
        assert_eq!(
            (answer.status, answer.description.as_str()),
            (400, "Bad Request")
        );
    }
    // A type without UPDATE: the Python agent's NotImplementedStatus.
    let answer = management
        .update("listener", "hub-inter-router", json!({"port": "1"}))
        .await;
    assert_eq!(answer.status, 501, "{answer:?}");
    assert_eq!(
        answer.description,
        "Operation 'UPDATE' not implemented for 'io.skupper.router.listener' ['CREATE', 'DELETE', 'READ']"
    );
}

/// A spoke of tests/fixtures/tls-spoke.json, with a management listener (the hub's `local`
/// certificates, so the hub's management client reaches it too).
fn start_managed_spoke(hub: &Hub, id: &str, ca: &Ca) -> (Spoke, u16) {
    let link = hub.dir.join(format!("link-{id}"));
    ca.issue(&link, id, &[]);
    hub.server_ca.trust_only(&link);
    let (management_port, echo_port) = (free_port(), free_port());
    let env = [
        ("ROUTER_ID", id.to_string()),
        (
            "LOCAL_CERTS",
            hub.dir.join("hub/local").display().to_string(),
        ),
        ("LINK_CERTS", link.display().to_string()),
        ("MANAGEMENT_PORT", management_port.to_string()),
        ("HUB_PORT", hub.link_port.to_string()),
        ("ECHO_PORT", echo_port.to_string()),
    ];
    let log = hub.dir.join(format!("{id}.log"));
    let standin = Standin::start(&fixture("tls-spoke.json"), &env, log);
    standin.wait_for_log(&format!("router {id} (interior) running"), LIMIT);
    (Spoke { standin, echo_port }, management_port)
}

/// The spoke's outgoing inter-router connections: (identity, tlsOrdinal).
async fn outgoing(management: &mut RawManagement) -> Vec<(String, u64)> {
    let attributes = ["identity", "role", "dir", "tlsOrdinal", "user"];
    let rows = management.query("connection", &attributes).await.unwrap();
    rows.iter()
        .filter(|row| row["role"] == json!("inter-router") && row["dir"] == json!("out"))
        .map(|row| {
            // proton's client side has no SASL user.
            assert_eq!(row["user"], Value::Null, "{row:?}");
            let identity = row["identity"].as_str().unwrap().to_string();
            (identity, row["tlsOrdinal"].as_u64().unwrap())
        })
        .collect()
}

async fn wait_outgoing(
    management: &mut RawManagement,
    what: &str,
    done: impl Fn(&[u64]) -> bool,
) -> Vec<(String, u64)> {
    let start = Instant::now();
    loop {
        let links = outgoing(management).await;
        let mut ordinals: Vec<u64> = links.iter().map(|(_, o)| *o).collect();
        ordinals.sort();
        if done(&ordinals) {
            return links;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what}: not so after {LIMIT:?}: {links:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_dials_a_new_link_for_a_raised_ordinal_before_the_old_one_goes() {
    let hub = start_hub("connector-side");
    let (spoke, port) = start_managed_spoke(&hub, "spoke-2", &hub.ca2);
    let mut management = RawManagement::connect(port, &hub.dir.join("client"))
        .await
        .unwrap();
    let first = wait_outgoing(&mut management, "linked", |o| o == [0]).await;

    // A raised ordinal: a second link with the new credentials, the first staying up (it is
    // not redialled when it drops).
    let answer = management
        .update("sslProfile", "link-profile", json!({"ordinal": 1}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let both = wait_outgoing(&mut management, "a second link", |o| o == [0, 1]).await;
    assert!(both.contains(&first[0]), "{both:?}");
    let mut hub_management = hub.management().await;
    let start = Instant::now();
    while hub_management
        .query("connection", &["role", "container"])
        .await
        .unwrap()
        .iter()
        .filter(|row| row["role"] == json!("inter-router") && row["container"] == json!("spoke-2"))
        .count()
        != 2
    {
        assert!(start.elapsed() < LIMIT, "the hub does not see both links");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocking(echo_through(&spoke)).await;

    // oldestValidOrdinal 1: the link of ordinal 0 goes, and is not made again.
    let answer = management
        .update(
            "sslProfile",
            "link-profile",
            json!({"oldestValidOrdinal": 1}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let left = wait_outgoing(&mut management, "the old link closed", |o| o == [1]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(outgoing(&mut management).await, left);
    blocking(echo_through(&spoke)).await;

    // Both at once: the link goes and a new one is dialled at once (a new dialer has no
    // delay).
    let updated = Instant::now();
    let answer = management
        .update(
            "sslProfile",
            "link-profile",
            json!({"ordinal": 2, "oldestValidOrdinal": 2}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_outgoing(&mut management, "the new link", |o| o == [2]).await;
    assert!(
        updated.elapsed() < Duration::from_millis(1500),
        "the new link took {:?}",
        updated.elapsed()
    );
    blocking(echo_through(&spoke)).await;
}

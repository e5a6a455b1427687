//! TLS services end to end on two linked test hosts with stand-in routers: a TLS client
//! reaches a TLS listener (client certificates required) on one host, whose connections the
//! routers carry to a TLS connector on the other, which speaks TLS (mutual, hostname checked)
//! to a TLS-only backend. Every change is live: neither router restarts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{
    in_netns, link_sites, router_identity, running_site, vansite_fails, vansite_ok, wait_reachable,
    Host,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde_json::Value;
use vansite::render::certs::{issue, Ca, CertFiles};

const SITE_DIR: &str = ".local/share/vansite/default";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem) {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A TLS-only echo service on the host's loopback: it presents `server` and accepts only
/// clients with a certificate from `client_ca`.
fn serve_tls_echo(host: &Host, port: u16, server: &CertFiles, client_ca: &str) {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(client_ca), provider())
        .build()
        .unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certificates(&server.tls_crt), key(&server.tls_key))
            .unwrap(),
    );
    let (ready_tx, ready) = std::sync::mpsc::channel();
    in_netns(host, move || {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        ready_tx.send(()).unwrap();
        for socket in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, socket);
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = tls.read(&mut buffer) {
                    if tls
                        .write_all(&buffer[..n])
                        .and_then(|_| tls.flush())
                        .is_err()
                    {
                        break;
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    ready.recv().unwrap();
}

/// Sends `data` over TLS to `addr` (trusting `ca_pem`, checking the name `server_name`,
/// presenting `client` if given) and reads as much back.
fn tls_echo(
    addr: &str,
    server_name: &str,
    ca_pem: &str,
    client: Option<&CertFiles>,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let config = match client {
        Some(client) => builder
            .with_client_auth_cert(certificates(&client.tls_crt), key(&client.tls_key))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(data).map_err(|e| format!("write: {e}"))?;
    tls.flush().map_err(|e| format!("flush: {e}"))?;
    let mut back = vec![0u8; data.len()];
    tls.read_exact(&mut back)
        .map_err(|e| format!("read: {e}"))?;
    Ok(back)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn file(host: &Host, path: &str) -> String {
    host.ok(&["cat", path])
}

/// A router change that was made live.
fn assert_live(change: &Value) {
    assert_eq!(change["router"]["action"], "live", "{change}");
}

/// Waits until a TLS round trip through `addr` works (or fails) as `works` says.
fn wait_tls(host: &Host, what: &str, works: bool, attempt: impl Fn() -> Result<Vec<u8>, String>) {
    host.wait_until(what, Duration::from_secs(60), |_| {
        attempt().is_ok() == works
    });
}

#[test]
fn a_tls_client_reaches_a_tls_only_backend_through_tls_listener_and_connector() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let a = running_site("tla", true);
    let b = running_site("tlb", false);
    link_sites(&b, &a);
    let identities = || (router_identity(&a), router_identity(&b));
    let before = identities();

    // A's backend speaks only TLS and wants the router's client certificate.
    let backend_ca = Ca::new("backend-ca").unwrap();
    let backend = issue(&backend_ca, "localhost", &["localhost".into()]).unwrap();
    let clients_ca = Ca::new("router-clients").unwrap();
    let router_client = issue(&clients_ca, "router", &[]).unwrap();
    serve_tls_echo(&a, 9443, &backend, clients_ca.cert_pem());
    a.write_file("backend-ca.pem", backend_ca.cert_pem());
    a.write_file("client.pem", &router_client.tls_crt);
    a.write_file("client.key", &router_client.tls_key);
    let connector = json(&vansite_ok(
        &a,
        &[
            "connector",
            "create",
            "secure",
            "9443",
            "--tls-ca",
            "backend-ca.pem",
            "--tls-cert",
            "client.pem",
            "--tls-key",
            "client.key",
            "--verify-hostname",
            "-o",
            "json",
        ],
    ));
    assert_live(&connector);
    let tls = &connector["info"]["tls"];
    assert_eq!(
        (
            &tls["credentials"],
            &tls["clientCertificate"],
            &tls["verifyHostname"]
        ),
        (
            &Value::from("secure-tls"),
            &Value::from(true),
            &Value::from(true)
        ),
        "{connector}"
    );
    let key_mode = a.ok(&[
        "stat",
        "-c",
        "%a",
        &format!("{SITE_DIR}/runtime/certs/secure-tls/tls.key"),
    ]);
    assert_eq!(key_mode.trim(), "600");

    // B's clients need a certificate from B's service CA: a Certificate the user applies.
    b.write_file(
        "app-client.yaml",
        "apiVersion: skupper.io/v2alpha1\nkind: Certificate\nmetadata: {name: app-client}\n\
         spec: {ca: skupper-service-ca, subject: app, client: true}\n",
    );
    vansite_ok(&b, &["apply", "-f", "app-client.yaml"]);
    let listener = json(&vansite_ok(
        &b,
        &[
            "listener",
            "create",
            "secure",
            "8443",
            "--tls-credentials",
            "secure-server",
            "--require-client-cert",
            "-o",
            "json",
        ],
    ));
    assert_live(&listener);
    let ca_file = listener["info"]["tls"]["caFile"]
        .as_str()
        .unwrap()
        .to_string();
    let human = vansite_ok(&b, &["listener", "status", "secure"]);
    assert!(
        human.contains(&format!("clients trust {ca_file}")),
        "{human}"
    );
    let ca_pem = file(&b, &ca_file);
    let app_dir = format!("{SITE_DIR}/runtime/certs/app-client");
    let app = CertFiles {
        ca_crt: ca_pem.clone(),
        tls_crt: file(&b, &format!("{app_dir}/tls.crt")),
        tls_key: file(&b, &format!("{app_dir}/tls.key")),
    };
    wait_reachable(&b, "secure");

    let addr = format!("{}:8443", b.addr());
    let data: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 251) as u8).collect();
    let round_trip =
        |client: Option<&CertFiles>| tls_echo(&addr, "localhost", &ca_pem, client, &data);
    wait_tls(&b, "a TLS round trip", true, || round_trip(Some(&app)));
    assert_eq!(round_trip(Some(&app)).unwrap(), data);

    // Without a client certificate, or with one of another CA, the listener refuses.
    assert!(
        round_trip(None).is_err(),
        "no client certificate must be refused"
    );
    let stranger = issue(&Ca::new("stranger").unwrap(), "app", &[]).unwrap();
    assert!(
        round_trip(Some(&stranger)).is_err(),
        "a stranger's certificate must be refused"
    );

    // The backend's certificate names localhost only: dialled as 127.0.0.1 the hostname check
    // fails (the router ignores IP SANs); without the check it works again.
    let moved = json(&vansite_ok(
        &a,
        &[
            "connector",
            "update",
            "secure",
            "--host",
            "127.0.0.1",
            "-o",
            "json",
        ],
    ));
    assert_live(&moved);
    wait_tls(&b, "the hostname check refusing 127.0.0.1", false, || {
        round_trip(Some(&app))
    });
    vansite_ok(
        &a,
        &["connector", "update", "secure", "--verify-hostname=false"],
    );
    wait_tls(&b, "TLS without the hostname check", true, || {
        round_trip(Some(&app))
    });

    let status = json(&vansite_ok(
        &b,
        &["listener", "status", "secure", "-o", "json"],
    ));
    let keys = &status[0]["keys"];
    assert_eq!(keys[0]["key"], "secure", "{status}");
    assert_eq!(keys[0]["newConnectionsPercent"], 100, "{status}");
    assert_eq!(
        keys[0]["offeredAt"],
        Value::from(vec![a_router_id(&a)]),
        "the key is offered at A's router"
    );

    // Files given for a Secret that is not vansite's are refused; nothing changes.
    let refused = vansite_fails(
        &b,
        &[
            "listener",
            "update",
            "secure",
            "--tls-credentials",
            "app-client",
            "--tls-cert",
            "x",
            "--tls-key",
            "y",
        ],
    );
    assert!(refused.contains("cannot read"), "{refused}");

    assert_eq!(identities(), before, "no router was restarted");

    // A support dump of A holds what support needs and none of A's secrets: no private key
    // (its own, the connector's client key given as a file, the link's), no token code.
    vansite_ok(&a, &["token", "issue", "token.yaml"]);
    let code = file(&a, "token.yaml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("code: ").map(str::to_string))
        .expect("the token's code");
    vansite_ok(&a, &["debug", "dump", "dump.tar.gz"]);
    let listing = a.ok(&["tar", "-tzf", "dump.tar.gz"]);
    for entry in [
        "versions.json",
        "resources.yaml",
        "router/skrouterd.json",
        "router/log-tail.txt",
        "certs/secure-tls/tls.crt",
        "units/vansite-default-router.container",
        "units/states.txt",
        "management/tcpConnector.json",
        "management/connection.json",
        "status.json",
        "link-status.json",
        "network-status.json",
    ] {
        assert!(
            listing.contains(&format!("vansite-default-dump/{entry}")),
            "{entry} in:\n{listing}"
        );
    }
    let contents = a.ok(&["tar", "-xzOf", "dump.tar.gz"]);
    assert!(
        !contents.contains("PRIVATE KEY"),
        "a private key in the dump"
    );
    assert!(!contents.contains(&code), "the token's code in the dump");
    assert!(!contents.contains(router_client.tls_key.lines().nth(1).unwrap()));
    assert!(
        contents.contains("secure-tls"),
        "the connector is described"
    );
    assert_eq!(a.ok(&["stat", "-c", "%a", "dump.tar.gz"]).trim(), "600");

    // Deleting the services removes their certificates, Secrets and router profiles.
    vansite_ok(&b, &["listener", "delete", "secure"]);
    vansite_ok(&a, &["connector", "delete", "secure"]);
    for (host, name) in [
        (&b, "secure-server"),
        (&a, "secure-tls"),
        (&a, "secure-tls-profile"),
    ] {
        let left = host.run(&["test", "-e", &format!("{SITE_DIR}/runtime/certs/{name}")]);
        assert!(!left.status.success(), "{name} left on {}", host.name);
    }
    let config = file(&a, &format!("{SITE_DIR}/runtime/router/skrouterd.json"));
    assert!(!config.contains("secure-tls"), "{config}");
    let objects = vansite_ok(&a, &["get", "-o", "json"]);
    assert!(!objects.contains("secure-tls"), "{objects}");
    assert_eq!(identities(), before, "no router was restarted");
}

/// The id of `host`'s router, as other routers name it.
fn a_router_id(host: &Host) -> String {
    let status = crate::support::site_status(host);
    status["network"]
        .as_array()
        .and_then(|routers| routers.iter().find(|r| r["nextHop"] == "(self)"))
        .and_then(|router| router["id"].as_str())
        .unwrap_or_else(|| panic!("this router in {status}"))
        .to_string()
}

//! Shared by the stand-in's tests: certificates made with rcgen, free ports, stand-in processes
//! started from hand-written configuration files, and a byte-checking echo server.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use vansite::router::management::{ClientTls, ManagementClient};

/// A CA that issues server and client certificates into a directory holding
/// `ca.crt`, `tls.crt` and `tls.key`, Skupper's layout.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

pub enum San {
    Dns(&'static str),
    Ip(&'static str),
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// Issues a certificate usable for both server and client auth, as Skupper's are.
    pub fn issue(&self, dir: &Path, common_name: &str, sans: &[San]) {
        self.issue_dn(dir, &[(DnType::CommonName, common_name)], sans);
    }

    /// [`Ca::issue`] with a subject of several attributes, in the order given.
    pub fn issue_dn(&self, dir: &Path, subject: &[(DnType, &str)], sans: &[San]) {
        let mut params = CertificateParams::default();
        for (attribute, value) in subject {
            params.distinguished_name.push(attribute.clone(), *value);
        }
        params.subject_alt_names = sans
            .iter()
            .map(|san| match san {
                San::Dns(d) => SanType::DnsName((*d).try_into().unwrap()),
                San::Ip(ip) => SanType::IpAddress(ip.parse().unwrap()),
            })
            .collect();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        self.trust_only(dir);
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    }

    /// Only the CA certificate: a profile that trusts this CA but has no identity of its own.
    pub fn trust_only(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.crt"), self.issuer.pem()).unwrap();
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// Writes `dir/ca.crt` as a bundle of the certificates of `cas`, in that order.
pub fn write_bundle(dir: &Path, cas: &[&Ca]) {
    std::fs::create_dir_all(dir).unwrap();
    let bundle: String = cas.iter().map(|ca| ca.pem()).collect();
    std::fs::write(dir.join("ca.crt"), bundle).unwrap();
}

/// A management client that sends any request and returns the router's answer as it is
/// (status code, description, body), over mutual TLS and SASL EXTERNAL as the router's `normal`
/// listener takes them. For what vansite's client does not send: UPDATE, and requests naming
/// an entity by `identity`.
pub struct RawManagement {
    connection: fe2o3_amqp::connection::ConnectionHandle<()>,
    sender: fe2o3_amqp::Sender,
    receiver: fe2o3_amqp::Receiver,
    reply_to: String,
    next_id: u64,
    _session: fe2o3_amqp::session::SessionHandle<()>,
}

/// A management answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: i64,
    pub description: String,
    pub body: serde_json::Value,
}

impl RawManagement {
    /// Connects to 127.0.0.1:`port` with the certificate in `client` (tls.crt, tls.key),
    /// trusting the CA in `client`/ca.crt.
    pub async fn connect(port: u16, client: &Path) -> Result<RawManagement, String> {
        use fe2o3_amqp::sasl_profile::SaslProfile;
        use fe2o3_amqp::types::messaging::Source;
        install_crypto();
        let (chain, key) = identity_in(client);
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots_in(client))
            .with_client_auth_cert(chain, key)
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut connection = fe2o3_amqp::Connection::builder()
            .container_id(format!("raw-{}", std::process::id()))
            .scheme("amqps")
            .alt_tls_establishment(true)
            .domain("127.0.0.1")
            .rustls_connector(connector)
            .sasl_profile(SaslProfile::External)
            .open_with_stream(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut session = fe2o3_amqp::Session::begin(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let sender = fe2o3_amqp::Sender::attach(&mut session, "raw-request", "$management")
            .await
            .map_err(|e| e.to_string())?;
        let receiver = fe2o3_amqp::Receiver::builder()
            .name("raw-reply")
            .source(Source::builder().dynamic(true).build())
            .attach(&mut session)
            .await
            .map_err(|e| e.to_string())?;
        let reply_to = receiver
            .source()
            .as_ref()
            .and_then(|s| s.address.clone())
            .ok_or("no reply address")?;
        Ok(RawManagement {
            connection,
            sender,
            receiver,
            reply_to,
            next_id: 1,
            _session: session,
        })
    }

    /// Sends a request with application properties `props` and `body`; Err if the connection
    /// fails or no answer comes within 10 s.
    pub async fn request(
        &mut self,
        props: &[(&str, &str)],
        body: serde_json::Value,
    ) -> Result<Answer, String> {
        use fe2o3_amqp::link::delivery::DeliveryInfo;
        use fe2o3_amqp::types::messaging::{
            AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
        };
        use fe2o3_amqp::types::primitives::{SimpleValue, Value};
        use vansite::router::management::{amqp_to_json, json_to_amqp};
        let id = format!("raw-{}", self.next_id);
        self.next_id += 1;
        let mut app = ApplicationProperties::default();
        for (key, value) in props {
            app.insert(key.to_string(), SimpleValue::String(value.to_string()));
        }
        let message = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: Some(Properties {
                message_id: Some(MessageId::String(id.clone())),
                correlation_id: Some(MessageId::String(id.clone())),
                reply_to: Some(self.reply_to.clone()),
                ..Default::default()
            }),
            application_properties: Some(app),
            body: Body::Value(AmqpValue(json_to_amqp(&body))),
            footer: None,
        };
        let exchange = async {
            self.sender.send(message).await.map_err(|e| e.to_string())?;
            loop {
                let delivery = self
                    .receiver
                    .recv::<Body<Value>>()
                    .await
                    .map_err(|e| e.to_string())?;
                let info = DeliveryInfo::from(&delivery);
                let reply = delivery.into_message();
                let _ = self.receiver.accept(info).await;
                let ours = reply
                    .properties
                    .as_ref()
                    .and_then(|p| p.correlation_id.as_ref())
                    == Some(&MessageId::String(id.clone()));
                if ours {
                    return Ok::<_, String>(reply);
                }
            }
        };
        let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no answer within 10s".to_string())??;
        let app = reply.application_properties.as_ref();
        let status = match app.and_then(|a| a.get("statusCode")) {
            Some(SimpleValue::Int(n)) => i64::from(*n),
            Some(SimpleValue::Long(n)) => *n,
            Some(SimpleValue::Uint(n)) => i64::from(*n),
            other => return Err(format!("no statusCode: {other:?}")),
        };
        let description = match app.and_then(|a| a.get("statusDescription")) {
            Some(SimpleValue::String(s)) => s.clone(),
            _ => String::new(),
        };
        let body = match reply.body {
            Body::Value(AmqpValue(value)) => amqp_to_json(value),
            _ => serde_json::Value::Null,
        };
        Ok(Answer {
            status,
            description,
            body,
        })
    }

    /// UPDATE of the entity named `name`.
    pub async fn update(
        &mut self,
        entity_type: &str,
        name: &str,
        body: serde_json::Value,
    ) -> Answer {
        self.update_by(entity_type, "name", name, body).await
    }

    /// UPDATE of the entity whose identity is `identity` (how `connection` is named).
    pub async fn update_identity(
        &mut self,
        entity_type: &str,
        identity: &str,
        body: serde_json::Value,
    ) -> Answer {
        self.update_by(entity_type, "identity", identity, body)
            .await
    }

    /// UPDATE of the entity whose `key` (name or identity) is `value`.
    async fn update_by(
        &mut self,
        entity_type: &str,
        key: &str,
        value: &str,
        body: serde_json::Value,
    ) -> Answer {
        let entity_type = format!("io.skupper.router.{entity_type}");
        let props = [
            ("operation", "UPDATE"),
            ("type", &entity_type),
            (key, value),
        ];
        self.request(&props, body).await.unwrap()
    }

    /// The rows of `entity_type` with `attributes` (all when empty).
    pub async fn query(
        &mut self,
        entity_type: &str,
        attributes: &[&str],
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
        let entity_type = format!("io.skupper.router.{entity_type}");
        let props = [
            ("operation", "QUERY"),
            ("type", "org.amqp.management"),
            ("name", "self"),
            ("entityType", &entity_type),
        ];
        let body = serde_json::json!({ "attributeNames": attributes });
        let answer = self.request(&props, body).await?;
        if answer.status != 200 {
            return Err(format!("{} {}", answer.status, answer.description));
        }
        let names: Vec<String> = answer.body["attributeNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        Ok(answer.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row.as_array())
            .map(|row| names.iter().cloned().zip(row.iter().cloned()).collect())
            .collect())
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.connection.close().await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The stand-in on `config` as the router image runs it for vansite (whose router unit sets
/// `QDROUTERD_CONF_TYPE=json`: without it the configuration is read in the classic format).
pub fn standin_command(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skrouterd-standin"));
    command
        .env("QDROUTERD_CONF", config)
        .env("QDROUTERD_CONF_TYPE", "json");
    command
}

/// A running stand-in; killed on drop. Its stderr goes to a log file the test can read.
pub struct Standin {
    child: Child,
    pub log: PathBuf,
}

impl Standin {
    pub fn start(config: &Path, env: &[(&str, String)], log: PathBuf) -> Standin {
        let mut command = standin_command(config);
        // Each stand-in draws its own vanflow source, as routers on separate hosts have: a
        // pod-style HOSTNAME shared by all would give them one.
        command
            .env_remove("HOSTNAME")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Standin {
            child: command.spawn().unwrap(),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (bounded), returning the whole log.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < limit,
                "'{needle}' not in the stand-in's log after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its vanflow source id (`<source>:0`, the `id` of its BEACONs), as it logs it at start.
    pub fn vanflow_id(&self, limit: Duration) -> String {
        const LOGGED: &str = "vanflow source id ";
        let log = self.wait_for_log(LOGGED, limit);
        let (_, rest) = log.split_once(LOGGED).expect("awaited");
        rest.split_whitespace().next().expect("an id").to_string()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `port` accepts a connection (bounded); a tcpListener opens only once its
/// address has a reachable connector.
pub fn wait_accepting(port: u16, limit: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing accepts on port {port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `port` refuses connections (bounded).
pub fn wait_refusing(port: u16, limit: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < limit,
            "port {port} still accepts after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An echo server on a free port, in a thread per connection; returns the port.
pub fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
                let _ = writer.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Sends `len` bytes of a pseudo-random pattern through `port` to an echo server and checks
/// that exactly the same bytes come back: both directions, intact.
pub fn echo_roundtrip(port: u16, len: usize) {
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut received = Vec::with_capacity(len);
    stream.read_to_end(&mut received).unwrap();
    sender.join().unwrap();
    assert_eq!(received.len(), data.len(), "byte count through port {port}");
    assert!(
        received == data,
        "bytes through port {port} differ from those sent"
    );
}

/// A server that answers every connection with `tag` and closes; returns its port.
pub fn tag_server(tag: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(tag.as_bytes());
        }
    });
    port
}

/// Connects to `port` and reads everything the far end sends.
pub fn read_all_from(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// A running stand-in of site A and what its management needs.
pub struct Site {
    pub standin: Standin,
    pub client_tls: ClientTls,
    pub management_port: u16,
    pub echo_server_port: u16,
    /// Where site A takes links, and the CA its link server certificate comes from.
    pub inter_router_port: u16,
    pub site_ca: Ca,
    /// The test's directory (certificates, logs).
    pub dir: PathBuf,
}

/// Site A of tests/fixtures/site-a.json, alone: its tcpConnector for `echo-a` is local.
/// Management answers on `management_port` to `client_tls` (skupper-local-client).
pub fn start_site_a(name: &str, limit: Duration) -> Site {
    let dir = std::env::temp_dir().join(format!("standin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = dir.join("certs");
    let site_ca = Ca::new("skupper-site-ca");
    site_ca.issue(&certs.join("site-a"), "site-a", &[San::Dns("127.0.0.1")]);
    let local_ca = Ca::new("skupper-local-ca");
    let server_sans = [
        San::Dns("127.0.0.1"),
        San::Dns("localhost"),
        San::Ip("127.0.0.1"),
    ];
    local_ca.issue(
        &certs.join("skupper-local-server"),
        "127.0.0.1",
        &server_sans,
    );
    local_ca.issue(
        &certs.join("skupper-local-client"),
        "127.0.0.1",
        &server_sans,
    );
    let (management_port, echo_server_port) = (free_port(), echo_server());
    let inter_router_port = free_port();
    let env = [
        ("CERTS", certs.display().to_string()),
        ("MANAGEMENT_PORT", management_port.to_string()),
        ("INTER_ROUTER_PORT", inter_router_port.to_string()),
        ("ECHO_SERVER_PORT", echo_server_port.to_string()),
        ("ECHO_B_PORT", free_port().to_string()),
    ];
    let standin = Standin::start(&fixture("site-a.json"), &env, dir.join("router.log"));
    standin.wait_for_log("router site-a (interior) running", limit);
    let client_tls = ClientTls::from_dir(certs.join("skupper-local-client")).unwrap();
    Site {
        standin,
        client_tls,
        management_port,
        echo_server_port,
        inter_router_port,
        site_ca,
        dir,
    }
}

/// Installs rustls's process-wide crypto provider for the tests' own TLS clients and servers.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The certificate chain and key of a directory written by [`Ca::issue`].
pub fn identity_in(
    dir: &Path,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
    (chain, key)
}

/// The CA certificate of a directory written by [`Ca::issue`] or [`Ca::trust_only`], as roots.
pub fn roots_in(dir: &Path) -> std::sync::Arc<rustls::RootCertStore> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    std::sync::Arc::new(roots)
}

/// A TLS-only echo server (rustls) presenting the certificate in `dir`; with `client_ca` it
/// demands a client certificate from the CA in that directory. Returns its port and the number
/// of TLS sessions it has completed.
pub fn tls_echo_server(
    dir: &Path,
    client_ca: Option<&Path>,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    install_crypto();
    let (chain, key) = identity_in(dir);
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder(roots_in(ca))
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let config = std::sync::Arc::new(builder.with_single_cert(chain, key).unwrap());
    let sessions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counted = std::sync::Arc::clone(&sessions);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, counted) = (
                std::sync::Arc::clone(&config),
                std::sync::Arc::clone(&counted),
            );
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                if tls.conn.complete_io(&mut tls.sock).is_err() {
                    return;
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, sessions)
}

/// A TLS client of 127.0.0.1:`port` that trusts the CA in `ca_dir` and presents the
/// certificate in `client` if given. Sends `len` bytes of a pattern in steps and checks that
/// each comes back (an echo service behind); Err if the handshake, a read or a write fails or
/// other bytes come back.
pub fn tls_echo_roundtrip(
    port: u16,
    ca_dir: &Path,
    client: Option<&Path>,
    len: usize,
) -> Result<(), String> {
    install_crypto();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots_in(ca_dir));
    let config = match client {
        Some(dir) => {
            let (chain, key) = identity_in(dir);
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for chunk in data.chunks(16 * 1024) {
        tls.write_all(chunk).map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; chunk.len()];
        tls.read_exact(&mut back)
            .map_err(|e| format!("read: {e}"))?;
        if back != chunk {
            return Err("other bytes came back".into());
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

/// A stand-in `router_id` (tests/fixtures/spoke.json) linked to `site` at link cost `cost`,
/// with a tcpConnector for `address` to 127.0.0.1:`service_port`. Returns once its link is up.
pub fn start_spoke(
    site: &Site,
    router_id: &str,
    cost: u32,
    address: &str,
    service_port: u16,
    limit: Duration,
) -> Standin {
    let spoke = Spoke {
        router_id,
        edge: false,
        link_port: site.inter_router_port,
        cost,
        address,
        service_port,
        listen: (&format!("unused/{router_id}"), free_port()),
    };
    spoke.start(site, limit)
}

/// A stand-in of tests/fixtures/spoke.json.
pub struct Spoke<'a> {
    pub router_id: &'a str,
    /// An edge router with an edge link; else an interior one with an inter-router link.
    pub edge: bool,
    /// Where site A takes the link.
    pub link_port: u16,
    pub cost: u32,
    /// Its tcpConnector's address, to 127.0.0.1:`service_port`.
    pub address: &'a str,
    pub service_port: u16,
    /// Its tcpListener's address and port.
    pub listen: (&'a str, u16),
}

impl Spoke<'_> {
    /// Starts it with a link certificate from `site`'s CA; returns once its link is up.
    pub fn start(&self, site: &Site, limit: Duration) -> Standin {
        let id = self.router_id;
        let link = site.dir.join(format!("link-{id}"));
        site.site_ca.issue(&link, id, &[]);
        let (mode, role) = if self.edge {
            ("edge", "edge")
        } else {
            ("interior", "inter-router")
        };
        let env = [
            ("ROUTER_ID", id.to_string()),
            ("MODE", mode.to_string()),
            ("ROLE", role.to_string()),
            ("LINK_CERTS", link.display().to_string()),
            ("A_PORT", self.link_port.to_string()),
            ("LINK_COST", self.cost.to_string()),
            ("ADDRESS", self.address.to_string()),
            ("SERVICE_PORT", self.service_port.to_string()),
            ("LISTEN_ADDRESS", self.listen.0.to_string()),
            ("LISTEN_PORT", self.listen.1.to_string()),
        ];
        let spoke = Standin::start(
            &fixture("spoke.json"),
            &env,
            site.dir.join(format!("{id}.log")),
        );
        spoke.wait_for_log(&format!("link up: {role} with router site-a"), limit);
        spoke
    }
}

/// Connects to `port` and reads until the far end has finished sending, but keeps the
/// connection open (its writing side too): the stream stays open in the router until dropped.
pub fn read_and_hold(port: u16) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    (text, stream)
}

/// A JSON object's attributes, for a management CREATE.
pub fn attrs(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().expect("an object").clone()
}

/// `router.address` rows by key.
pub type Rows = std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// The `router.address` rows by key, with the attributes `names` (all if empty).
pub async fn addresses(client: &mut ManagementClient, names: &[&str]) -> Rows {
    client
        .query("router.address", names)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row["key"].as_str().unwrap().to_string(), row))
        .collect()
}

impl Site {
    /// A management connection to the site's router, as vansite makes one.
    pub async fn management(&self, limit: Duration) -> ManagementClient {
        ManagementClient::connect("127.0.0.1", self.management_port, &self.client_tls, limit)
            .await
            .unwrap()
    }
}

/// A fresh directory for one test's files.
pub fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("standin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

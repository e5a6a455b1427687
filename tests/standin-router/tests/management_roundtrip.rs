//! vansite's management client against the stand-in's AMQP management server, over mutual TLS
//! and SASL EXTERNAL, with a small in-memory agent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Map, Value as Json};
use skrouterd_standin::management::{serve_connection, AgentSender, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use vansite::router::management::{ClientTls, ManagementClient, ManagementError};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// (certificate PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    // As Skupper issues skupper-local-server/-client: hosts as DNS SANs, IPs also as IP SANs.
    params.subject_alt_names = vec![
        SanType::DnsName("127.0.0.1".try_into().unwrap()),
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: ClientTls,
    foreign_client: ClientTls,
}

fn pki() -> Pki {
    let local = ca("skupper-local-ca");
    let other = ca("some-other-ca");
    let server = leaf(&local, "127.0.0.1", true);
    let (cert, key) = leaf(&local, "127.0.0.1", false);
    let (fcert, fkey) = leaf(&other, "127.0.0.1", false);
    Pki {
        ca_pem: local.pem.clone(),
        server,
        client: ClientTls {
            ca_pem: local.pem.clone().into_bytes(),
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
        },
        foreign_client: ClientTls {
            ca_pem: local.pem.clone().into_bytes(),
            cert_pem: fcert.into_bytes(),
            key_pem: fkey.into_bytes(),
        },
    }
}

/// A listener like skrouterd's `normal` one: TLS (client certificate required, from the local
/// CA), then the AMQP connection goes to `serve_connection`. `live` counts running connections.
struct Server {
    port: u16,
    live: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

async fn start_server(pki: &Pki, agent: AgentSender) -> Server {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let live = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (l, s) = (live.clone(), served.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let (acceptor, agent, live, served) =
                (acceptor.clone(), agent.clone(), l.clone(), s.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::info!("TLS refused: {e}");
                        return;
                    }
                };
                live.fetch_add(1, Ordering::SeqCst);
                let result = serve_connection(tls, agent).await;
                tracing::info!("connection ended: {result:?}");
                live.fetch_sub(1, Ordering::SeqCst);
                served.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server { port, live, served }
}

/// In-memory agent: CREATE 201 (400 without name or when it exists), QUERY 200, READ 200/404,
/// DELETE 204/404, anything else 501.
fn start_agent() -> AgentSender {
    let (tx, mut rx) = mpsc::channel::<(Request, tokio::sync::oneshot::Sender<Response>)>(16);
    tokio::spawn(async move {
        let mut table: BTreeMap<(String, String), Map<String, Json>> = BTreeMap::new();
        while let Some((req, reply)) = rx.recv().await {
            let ty = if req.entity_type.contains('.') {
                req.entity_type.clone()
            } else {
                format!("io.skupper.router.{}", req.entity_type)
            };
            let answer = |code: u16, desc: &str, body: Json| Response {
                status_code: code,
                status_description: desc.to_string(),
                body,
            };
            let name = req.name.clone().or(req.identity.clone());
            let response = match req.operation.as_str() {
                "CREATE" => match name {
                    None => answer(400, "Bad Request: no name", Json::Null),
                    Some(name) if table.contains_key(&(ty.clone(), name.clone())) => {
                        answer(400, &format!("Bad Request: {name} exists"), Json::Null)
                    }
                    Some(name) => {
                        let mut attrs = req.body.as_object().cloned().unwrap_or_default();
                        attrs.insert("name".into(), json!(name));
                        attrs.insert("identity".into(), json!(name));
                        attrs.insert("type".into(), json!(ty));
                        table.insert((ty.clone(), name), attrs.clone());
                        answer(201, "Created", Json::Object(attrs))
                    }
                },
                "QUERY" => {
                    let rows: Vec<&Map<String, Json>> = table
                        .iter()
                        .filter(|((t, _), _)| *t == ty)
                        .map(|(_, v)| v)
                        .collect();
                    let mut names: Vec<String> = req.body["attributeNames"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if names.is_empty() {
                        names = rows.iter().flat_map(|r| r.keys().cloned()).collect();
                        names.sort();
                        names.dedup();
                    }
                    let results: Vec<Json> = rows
                        .iter()
                        .map(|r| {
                            Json::Array(
                                names
                                    .iter()
                                    .map(|n| r.get(n).cloned().unwrap_or(Json::Null))
                                    .collect(),
                            )
                        })
                        .collect();
                    answer(
                        200,
                        "OK",
                        json!({"attributeNames": names, "results": results}),
                    )
                }
                "READ" => match name.and_then(|n| table.get(&(ty.clone(), n))) {
                    Some(attrs) => answer(200, "OK", Json::Object(attrs.clone())),
                    None => answer(404, "Not Found", Json::Null),
                },
                "DELETE" => match name.and_then(|n| table.remove(&(ty.clone(), n))) {
                    Some(_) => answer(204, "No Content", Json::Null),
                    None => answer(404, "Not Found: No entity with that name", Json::Null),
                },
                other => answer(501, &format!("Not Implemented: {other}"), Json::Null),
            };
            let _ = reply.send(response);
        }
    });
    tx
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn setup() -> (Pki, Server) {
    init_tracing();
    let pki = pki();
    let server = start_server(&pki, start_agent()).await;
    (pki, server)
}

async fn wait_no_live_connections(server: &Server) {
    for _ in 0..100 {
        if server.live.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "connections still being served: {}",
        server.live.load(Ordering::SeqCst)
    );
}

fn attrs(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn create_query_delete_roundtrip() {
    let (pki, server) = setup().await;
    let mut client = ManagementClient::connect("127.0.0.1", server.port, &pki.client, TIMEOUT)
        .await
        .expect("connect");

    let created = client
        .create(
            "tcpListener",
            "backend",
            attrs(json!({"host": "0.0.0.0", "port": "9090", "address": "backend", "enabled": true, "n": 3})),
        )
        .await
        .expect("create");
    assert_eq!(created["name"], json!("backend"));
    assert_eq!(created["type"], json!("io.skupper.router.tcpListener"));

    let all = client.query("tcpListener", &[]).await.expect("query");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["port"], json!("9090"));
    assert_eq!(all[0]["address"], json!("backend"));
    assert_eq!(all[0]["enabled"], json!(true));
    assert_eq!(all[0]["n"], json!(3));

    // Full type names work as well, and attributeNames selects columns.
    let some = client
        .query("io.skupper.router.tcpListener", &["name", "port"])
        .await
        .expect("query with attribute names");
    assert_eq!(
        some,
        vec![attrs(json!({"name": "backend", "port": "9090"}))]
    );
    assert!(client.query("tcpConnector", &[]).await.unwrap().is_empty());

    client
        .delete("tcpListener", "backend")
        .await
        .expect("delete");
    assert!(client.query("tcpListener", &[]).await.unwrap().is_empty());

    let err = client.delete("tcpListener", "backend").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    match &err {
        ManagementError::Status {
            status_code,
            status_description,
            operation,
            name,
            ..
        } => {
            assert_eq!(*status_code, 404);
            assert!(status_description.starts_with("Not Found"));
            assert_eq!(operation, "DELETE");
            assert_eq!(name, "backend");
        }
        other => panic!("expected a status error, got {other:?}"),
    }

    // A 400 comes back typed too, and the client stays usable after errors.
    client
        .create("tcpListener", "dup", Map::new())
        .await
        .unwrap();
    let err = client
        .create("tcpListener", "dup", Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(400), "{err}");
    assert_eq!(
        client.query("tcpListener", &["name"]).await.unwrap().len(),
        1
    );

    client.close().await.expect("close");
    wait_no_live_connections(&server).await;
    assert_eq!(server.served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_clients_at_once() {
    let (pki, server) = setup().await;
    let mut a = ManagementClient::connect("127.0.0.1", server.port, &pki.client, TIMEOUT)
        .await
        .unwrap();
    let mut b = ManagementClient::connect("localhost", server.port, &pki.client, TIMEOUT)
        .await
        .unwrap();
    let work = |mut c: ManagementClient, prefix: &'static str| async move {
        for i in 0..10 {
            c.create(
                "tcpConnector",
                &format!("{prefix}-{i}"),
                attrs(json!({"host": "h", "port": "1"})),
            )
            .await
            .unwrap();
        }
        c
    };
    let (ra, rb) = tokio::join!(work(a, "a"), work(b, "b"));
    a = ra;
    b = rb;
    assert_eq!(a.query("tcpConnector", &["name"]).await.unwrap().len(), 20);
    for i in 0..10 {
        b.delete("tcpConnector", &format!("a-{i}")).await.unwrap();
    }
    assert_eq!(a.query("tcpConnector", &["name"]).await.unwrap().len(), 10);
    a.close().await.unwrap();
    // Dropping without close: the server must notice and clean up too.
    drop(b);
    wait_no_live_connections(&server).await;
    assert_eq!(server.served.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refused_without_client_certificate() {
    let (pki, server) = setup().await;
    let no_cert = ClientTls {
        ca_pem: pki.client.ca_pem.clone(),
        cert_pem: Vec::new(),
        key_pem: Vec::new(),
    };
    let err = ManagementClient::connect("127.0.0.1", server.port, &no_cert, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagementError::Tls { .. }), "{err:?}");
    println!("{err}");
    assert_eq!(server.served.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refused_with_certificate_from_another_ca() {
    let (pki, server) = setup().await;
    let err = ManagementClient::connect("127.0.0.1", server.port, &pki.foreign_client, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagementError::Tls { .. }), "{err:?}");
    println!("{err}");
}

#[tokio::test]
async fn server_certificate_from_unknown_ca_is_refused_by_client() {
    let (pki, server) = setup().await;
    let wrong_trust = ClientTls {
        ca_pem: ca("not-the-router-ca").pem.into_bytes(),
        ..pki.client.clone()
    };
    let err = ManagementClient::connect("127.0.0.1", server.port, &wrong_trust, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagementError::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_reported_with_the_address() {
    init_tracing();
    let pki = pki();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = ManagementClient::connect("127.0.0.1", port, &pki.client, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManagementError::ConnectionRefused { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn client_credentials_from_a_directory() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("vansite-mgmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &pki.client.ca_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &pki.client.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &pki.client.key_pem).unwrap();
    let tls = ClientTls::from_dir(&dir).unwrap();
    assert_eq!(tls.cert_pem, pki.client.cert_pem);
    std::fs::remove_file(dir.join("tls.key")).unwrap();
    let err = ClientTls::from_dir(&dir).unwrap_err();
    assert!(
        matches!(err, ManagementError::Credentials { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tls.key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A raw fe2o3 client over mutual TLS: builds the rustls connector with the client certificate.
fn raw_connector(tls: &ClientTls) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&tls.ca_pem).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(&tls.cert_pem).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn sasl_mechanisms_other_than_external_are_refused() {
    let (pki, server) = setup().await;
    for profile in [
        SaslProfile::Anonymous,
        SaslProfile::from(("guest", "guest")),
    ] {
        let tcp = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let result = Connection::builder()
            .container_id("raw")
            .scheme("amqps")
            .alt_tls_establishment(true)
            .domain("127.0.0.1")
            .rustls_connector(raw_connector(&pki.client))
            .sasl_profile(profile)
            .open_with_stream(tcp)
            .await;
        // fe2o3 gives up by itself when the server does not offer its mechanism (the server
        // offers only EXTERNAL); a client that sends sasl-init anyway gets outcome `auth`.
        match result {
            Err(fe2o3_amqp::connection::OpenError::SaslError { .. }) => {}
            Err(fe2o3_amqp::connection::OpenError::NotImplemented(Some(m)))
                if m.contains("not supported") => {}
            other => panic!("expected a SASL refusal, got {other:?}"),
        }
    }
    wait_no_live_connections(&server).await;
}

/// The forms other clients use: a reply link with a fixed source address, QUERY with `type` set
/// to the entity type (no `entityType`), and only `message_id` set (echoed as correlation_id).
#[tokio::test]
async fn fixed_reply_address_and_type_style_query() {
    let (pki, server) = setup().await;
    let mut vansite = ManagementClient::connect("127.0.0.1", server.port, &pki.client, TIMEOUT)
        .await
        .unwrap();
    vansite
        .create("listener", "l1", attrs(json!({"port": 5672})))
        .await
        .unwrap();

    let tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut connection = Connection::builder()
        .container_id("raw")
        .scheme("amqps")
        .alt_tls_establishment(true)
        .domain("127.0.0.1")
        .rustls_connector(raw_connector(&pki.client))
        .sasl_profile(SaslProfile::External)
        .open_with_stream(tcp)
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "req", "amqp:/_local/$management")
        .await
        .unwrap();
    let mut receiver = Receiver::builder()
        .name("rep")
        .source(Source::builder().address("my-replies").build())
        .attach(&mut session)
        .await
        .unwrap();

    let mut app = ApplicationProperties::default();
    app.insert("operation".into(), SimpleValue::String("QUERY".into()));
    app.insert(
        "type".into(),
        SimpleValue::String("io.skupper.router.listener".into()),
    );
    let mut body = OrderedMap::new();
    body.insert(
        Value::String("attributeNames".into()),
        Value::List(vec![Value::String("port".into())]),
    );
    let request = Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            message_id: Some(MessageId::Ulong(42)),
            reply_to: Some("my-replies".into()),
            ..Default::default()
        }),
        application_properties: Some(app),
        body: Body::Value(AmqpValue(Value::Map(body))),
        footer: None,
    };
    sender.send(request).await.unwrap();
    let delivery = tokio::time::timeout(TIMEOUT, receiver.recv::<Body<Value>>())
        .await
        .unwrap()
        .unwrap();
    receiver
        .accept(DeliveryInfo::from(&delivery))
        .await
        .unwrap();
    let reply = delivery.into_message();
    let props = reply.properties.unwrap();
    assert_eq!(props.correlation_id, Some(MessageId::Ulong(42)));
    assert_eq!(props.to.as_deref(), Some("my-replies"));
    let app = reply.application_properties.unwrap();
    assert_eq!(app.get("statusCode"), Some(&SimpleValue::Int(200)));
    let Body::Value(AmqpValue(Value::Map(map))) = reply.body else {
        panic!("body")
    };
    let results = map.get(&Value::String("results".into())).unwrap();
    assert_eq!(
        results,
        &Value::List(vec![Value::List(vec![Value::Long(5672)])])
    );

    sender.close().await.unwrap();
    receiver.close().await.unwrap();
    session.end().await.unwrap();
    connection.close().await.unwrap();
    vansite.close().await.unwrap();
    wait_no_live_connections(&server).await;
}

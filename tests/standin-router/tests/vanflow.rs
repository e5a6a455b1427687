//! A vanflow collector (fe2o3-amqp, reading the raw sections because the router's message-id is
//! an AMQP long) on site A's `normal` listener: BEACONs of A and of a spoke linked to A, the
//! records after FLUSH, and a BIFLOW_TPORT for one TCP connection. Site A's `router.address`
//! lists the sources' addresses.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message, Properties};
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use serde_json::json;
use skrouterd_standin::vanflow::wire::{
    self, as_str, as_u64, list_items, map_items, sections, RawFrames, Rewrite,
};
use support::{addresses, echo_roundtrip, free_port, start_site_a, Spoke};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(20);

/// One attribute value as it came (numbers must be ulong, keys uint).
#[derive(Debug, Clone, PartialEq)]
enum V {
    S(String),
    N(u64),
}

type Store = HashMap<String, (u64, BTreeMap<u64, V>)>;

/// SASL EXTERNAL by hand (fe2o3 refuses EXTERNAL on a stream it did not encrypt itself).
async fn sasl_external<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    let mut header = [0u8; 8];
    s.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    read_frame(s).await; // sasl-mechanisms
    let mut body = vec![0x00, 0x53, 0x41, 0xc0, 0, 2, 0xa3, 8];
    body.extend_from_slice(b"EXTERNAL");
    body.extend_from_slice(&[0xa0, 0]);
    body[4] = (body.len() - 5) as u8;
    let mut frame = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(&body);
    s.write_all(&frame).await.unwrap();
    let outcome = read_frame(s).await;
    assert_eq!(&outcome[8..11], &[0x00, 0x53, 0x44], "sasl-outcome");
}

async fn read_frame<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.unwrap();
    let mut frame = size.to_vec();
    frame.resize(u32::from_be_bytes(size) as usize, 0);
    s.read_exact(&mut frame[4..]).await.unwrap();
    frame
}

async fn connect(
    port: u16,
    client_dir: &std::path::Path,
) -> (ConnectionHandle<()>, SessionHandle<()>) {
    support::install_crypto();
    let (chain, key) = support::identity_in(client_dir);
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(support::roots_in(client_dir))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    sasl_external(&mut tls).await;
    let stream = RawFrames::new(tls, Rewrite::WrapAsBinary, Rewrite::None);
    let mut connection = Connection::builder()
        .container_id("vanflow-test")
        .open_with_stream(stream)
        .await
        .unwrap();
    let session = Session::begin(&mut connection).await.unwrap();
    (connection, session)
}

/// Receives on `address`, passing each raw message (with the address) to `tx`.
async fn subscribe(
    session: &mut SessionHandle<()>,
    address: &str,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut receiver = Receiver::attach(session, format!("vf-{address}"), address)
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
            if let Body::Value(AmqpValue(Value::Binary(raw))) = delivery.body() {
                let _ = tx.send(raw.to_vec());
            }
        }
    });
}

fn app_properties(message: &[u8]) -> HashMap<String, String> {
    let sections = sections(message).unwrap();
    let (_, map) = sections.iter().find(|(c, _)| *c == 0x74).unwrap();
    let items = map_items(map).unwrap();
    items
        .chunks(2)
        .map(|kv| {
            assert_eq!(kv[0][0], 0xa3, "application-property keys are symbols");
            let value = as_str(kv[1]).unwrap_or_else(|| as_u64(kv[1]).unwrap().to_string());
            (as_str(kv[0]).unwrap(), value)
        })
        .collect()
}

/// Merges a RECORD's maps into `store`, checking the wire types.
fn merge(store: &mut Store, message: &[u8]) {
    let sections = sections(message).unwrap();
    let (_, body) = sections.iter().find(|(c, _)| *c == 0x77).unwrap();
    assert_eq!(body[0], 0xd0, "records in a list32");
    for map in list_items(body).unwrap() {
        assert_eq!(map[0], 0xd1, "each record a map32");
        let items = map_items(map).unwrap();
        let mut attrs = BTreeMap::new();
        for kv in items.chunks(2) {
            assert!(matches!(kv[0][0], 0x43 | 0x52), "uint keys");
            let key = as_u64(kv[0]).unwrap();
            let value = match kv[1][0] {
                0xa1 | 0xb1 => V::S(as_str(kv[1]).unwrap()),
                0x44 | 0x53 | 0x80 => V::N(as_u64(kv[1]).unwrap()),
                0x43 | 0x52 if key == 0 => V::N(as_u64(kv[1]).unwrap()),
                other => panic!("attribute {key}: unexpected type {other:#x}"),
            };
            attrs.insert(key, value);
        }
        let Some(V::S(identity)) = attrs.get(&1).cloned() else {
            panic!("no identity")
        };
        let Some(V::N(record_type)) = attrs.get(&0).cloned() else {
            panic!("no type")
        };
        let entry = store
            .entry(identity)
            .or_insert((record_type, BTreeMap::new()));
        entry.1.extend(attrs);
    }
}

fn find<'a>(
    store: &'a Store,
    record_type: u64,
    key: u64,
    value: &str,
) -> Option<(&'a String, &'a BTreeMap<u64, V>)> {
    store
        .iter()
        .find(|(_, (t, a))| *t == record_type && a.get(&key) == Some(&V::S(value.into())))
        .map(|(id, (_, a))| (id, a))
}

fn s(attrs: &BTreeMap<u64, V>, key: u64) -> Option<&str> {
    match attrs.get(&key) {
        Some(V::S(v)) => Some(v),
        _ => None,
    }
}

fn n(attrs: &BTreeMap<u64, V>, key: u64) -> Option<u64> {
    match attrs.get(&key) {
        Some(V::N(v)) => Some(*v),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_sees_both_routers_records_and_a_connection() {
    let site = start_site_a("vanflow", LIMIT);
    let spoke_listen = free_port();
    let _spoke = Spoke {
        router_id: "spoke-v",
        edge: false,
        link_port: site.inter_router_port,
        cost: 1,
        address: "echo-b",
        service_port: site.echo_server_port,
        listen: ("echo-a", spoke_listen),
    }
    .start(&site, LIMIT);
    let (_connection, mut session) = connect(
        site.management_port,
        &site.dir.join("certs/skupper-local-client"),
    )
    .await;

    // Discovery: beacons of both routers arrive on A.
    let (beacon_tx, mut beacons) = mpsc::unbounded_channel();
    subscribe(&mut session, "mc/sfe.all", beacon_tx).await;
    let mut sources: HashMap<String, HashMap<String, String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sources.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, beacons.recv())
            .await
            .expect("two beacons")
            .unwrap();
        let (id, to, subject) = wire::header_of(&message).unwrap();
        assert!(id.is_some(), "message-id");
        assert_eq!(
            (to.as_deref(), subject.as_deref()),
            (Some("mc/sfe.all"), Some("BEACON"))
        );
        let props = app_properties(&message);
        assert_eq!(props["v"], "1");
        assert_eq!(props["sourceType"], "ROUTER");
        assert!(props["id"].ends_with(":0"));
        sources.insert(props["id"].clone(), props);
    }

    // Subscribe to each source, wait for a heartbeat or record, then FLUSH.
    let (record_tx, mut records) = mpsc::unbounded_channel();
    for props in sources.values() {
        subscribe(&mut session, &props["address"], record_tx.clone()).await;
        subscribe(
            &mut session,
            &format!("{}.flows", props["address"]),
            record_tx.clone(),
        )
        .await;
    }
    let mut store = Store::new();
    let mut heard: HashMap<String, bool> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while heard.len() < sources.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, records.recv())
            .await
            .expect("a heartbeat from each source")
            .unwrap();
        let (_, to, subject) = wire::header_of(&message).unwrap();
        if subject.as_deref() == Some("RECORD") {
            merge(&mut store, &message);
        }
        let to = to.unwrap();
        let source = to
            .trim_start_matches("mc/sfe.")
            .trim_end_matches(".flows")
            .to_string();
        heard.insert(source, true);
    }

    // Site A's router.address knows each BEACON's source: its own in-process, the spoke's at
    // the spoke; and it counts this collector's links as subscribers.
    let a_id = site.standin.vanflow_id(LIMIT);
    let mut client = site.management(LIMIT).await;
    let rows = addresses(&mut client, &[]).await;
    for (id, props) in &sources {
        let direct = &rows[&format!("M{}", props["direct"])];
        let (in_process, hosts) = if *id == a_id {
            (1, json!([]))
        } else {
            (0, json!(["spoke-v"]))
        };
        assert_eq!(direct["inProcess"], json!(in_process), "{id}");
        assert_eq!(direct["remoteHostRouters"], hosts, "{id}");
        for address in [
            props["address"].clone(),
            format!("{}.flows", props["address"]),
        ] {
            assert_eq!(rows[&format!("M{address}")]["subscriberCount"], json!(1));
        }
    }
    assert_eq!(rows["Mmc/sfe.all"]["subscriberCount"], json!(1));
    client.close().await.unwrap();

    for props in sources.values() {
        let mut sender = Sender::attach(
            &mut session,
            format!("flush-{}", props["id"]),
            props["direct"].clone(),
        )
        .await
        .unwrap();
        let message = Message::builder()
            .properties(Properties {
                to: Some(props["direct"].clone()),
                subject: Some("FLUSH".into()),
                ..Default::default()
            })
            .value(Value::Null)
            .build();
        sender.send(Sendable::from(message)).await.unwrap();
    }

    let complete = |store: &Store| {
        find(store, 1, 30, "0/site-a").is_some()
            && find(store, 1, 30, "0/spoke-v").is_some()
            && find(store, 0, 30, "site-a").is_some()
            && find(store, 4, 19, "echo-b").is_some()
            && find(store, 5, 19, "echo-a").is_some()
            && find(store, 15, 30, "site-a-inter-router").is_some()
            && find(store, 2, 30, "link").is_some_and(|(_, a)| s(a, 53) == Some("up"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !complete(&store) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, records.recv()).await {
            Ok(Some(message)) => {
                if wire::header_of(&message).unwrap().2.as_deref() == Some("RECORD") {
                    merge(&mut store, &message);
                }
            }
            _ => panic!("records incomplete after FLUSH: {store:#?}"),
        }
    }
    let (site_id, site_attrs) = find(&store, 0, 30, "site-a").unwrap();
    assert_eq!(s(site_attrs, 11), Some("podman"));
    assert_eq!(s(site_attrs, 12), Some("a"));
    assert_eq!(s(site_attrs, 32), Some("2.2.1"));
    let (a_router, a_attrs) = find(&store, 1, 30, "0/site-a").unwrap();
    assert_eq!(
        s(a_attrs, 2),
        Some(site_id.as_str()),
        "ROUTER.parent = SITE"
    );
    assert_eq!(s(a_attrs, 13), Some("interior"));
    assert_eq!(s(a_attrs, 32), Some("3.5.1"));
    assert!(a_router.ends_with(":0"));
    let a_source = a_router.trim_end_matches(":0").to_string();
    let (access, _) = find(&store, 15, 30, "site-a-inter-router").unwrap();
    let (_, link) = find(&store, 2, 30, "link").unwrap();
    assert_eq!(
        s(link, 6),
        Some(access.as_str()),
        "LINK.peer = A's ROUTER_ACCESS"
    );
    assert_eq!(n(link, 33), Some(1));
    let (listener_b, l_attrs) = find(&store, 4, 19, "echo-b").unwrap();
    assert!(listener_b.starts_with(&format!("{a_source}:")));
    assert_eq!(s(l_attrs, 16), Some("tcp"));
    assert_eq!(s(l_attrs, 30), Some("listener/echo-b"));
    let (connector_a, c_attrs) = find(&store, 5, 19, "echo-a").unwrap();
    let connector_a = connector_a.clone();
    assert_eq!(s(c_attrs, 2), Some(a_router.as_str()));
    let (spoke_listener, _) = find(&store, 4, 19, "echo-a").expect("the spoke's LISTENER");
    let spoke_listener = spoke_listener.clone();

    // One connection through the spoke's listener to A's connector.
    support::wait_accepting(spoke_listen, LIMIT);
    tokio::task::spawn_blocking(move || echo_roundtrip(spoke_listen, 1000))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done = store.values().find(|(t, a)| {
            // (wait_accepting's probe connection is a flow too, with no bytes)
            *t == 16
                && s(a, 2) == Some(spoke_listener.as_str())
                && a.contains_key(&4)
                && n(a, 23) != Some(0)
        });
        if let Some((_, flow)) = done {
            assert_eq!(n(flow, 23), Some(1000), "octets: {flow:?}");
            assert_eq!(n(flow, 58), Some(1000), "octetsReverse");
            assert_eq!(s(flow, 14), Some("127.0.0.1"));
            assert!(s(flow, 17).is_some(), "sourcePort");
            assert!(n(flow, 3).unwrap() <= n(flow, 4).unwrap());
            assert!(n(flow, 24).is_some(), "latency");
            assert_eq!(
                s(flow, 60),
                Some(connector_a.as_str()),
                "connector = A's CONNECTOR"
            );
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, records.recv()).await {
            Ok(Some(message)) => {
                if wire::header_of(&message).unwrap().2.as_deref() == Some("RECORD") {
                    merge(&mut store, &message);
                }
            }
            _ => panic!("no ended BIFLOW_TPORT: {store:#?}"),
        }
    }
}

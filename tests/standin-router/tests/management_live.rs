//! vansite's management client against a running stand-in: a live CREATE of a tcpListener
//! carries traffic without a restart, and a DELETE stops it. Also the QUERYs `vansite status`
//! relies on (connections, router nodes, connectors with their status).

mod support;

use std::time::Duration;

use serde_json::json;
use support::{echo_roundtrip, free_port, wait_accepting, wait_refusing, Site};
use vansite::router::management::ManagementClient;

const LIMIT: Duration = Duration::from_secs(20);

/// A running stand-in and a management client connected to it.
async fn managed_site(name: &str) -> (Site, ManagementClient) {
    let site = support::start_site_a(name, LIMIT);
    let client =
        ManagementClient::connect("127.0.0.1", site.management_port, &site.client_tls, LIMIT)
            .await
            .unwrap();
    (site, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn live_tcp_listener_create_carries_traffic_and_delete_stops_it() {
    let (mut site, mut client) = managed_site("live-create").await;
    let port = free_port();
    let attributes = json!({"host": "127.0.0.1", "port": port.to_string(), "address": "echo-a"});
    let created = client
        .create(
            "tcpListener",
            "listener/live",
            attributes.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    assert_eq!(created["address"], json!("echo-a"));
    tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        echo_roundtrip(port, 1024 * 1024);
    })
    .await
    .unwrap();

    let listeners = client
        .query("tcpListener", &["name", "port", "address"])
        .await
        .unwrap();
    assert!(listeners
        .iter()
        .any(|l| l["name"] == json!("listener/live") && l["port"] == json!(port.to_string())));

    client.delete("tcpListener", "listener/live").await.unwrap();
    tokio::task::spawn_blocking(move || wait_refusing(port, LIMIT))
        .await
        .unwrap();
    let listeners = client.query("tcpListener", &["name"]).await.unwrap();
    assert!(!listeners
        .iter()
        .any(|l| l["name"] == json!("listener/live")));
    // The same router process served it all: nothing was restarted.
    assert!(site.standin.is_running());
    assert!(!site.standin.log_text().contains("shutting down"));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn management_refuses_what_the_router_refuses() {
    let (site, mut client) = managed_site("live-refuse").await;
    let bad = json!({"host": "127.0.0.1", "port": "1", "adress": "x"});
    let err = client
        .create("tcpListener", "bad", bad.as_object().unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(400), "{err}");
    assert!(err.to_string().contains("adress"), "{err}");
    let err = client
        .delete("tcpConnector", "nothing-here")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // The router entity is not creatable at run time: the Python agent's NotImplementedStatus.
    let err = client
        .create("router", "r2", Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(501), "{err}");
    assert!(
        err.to_string()
            .contains("Operation 'CREATE' not implemented for 'io.skupper.router.router' ['READ']"),
        "{err}"
    );
    // Names are unique across all entity types: the agent's validate_add refuses a
    // tcpConnector named as an sslProfile, with the ValidationError's text (a 400).
    let connector = json!({"host": "127.0.0.1", "port": "1", "address": "x"});
    let err = client
        .create(
            "tcpConnector",
            "skupper-local-server",
            connector.as_object().unwrap().clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(400), "{err}");
    assert!(
        err.to_string().contains(
            ": 400 adding TcpConnectorEntity(address=x, host=127.0.0.1, \
             identity=skupper-local-server, name=skupper-local-server, port=1, \
             type=io.skupper.router.tcpConnector, verifyHostname=True) duplicates unique \
             attribute 'name' from existing SslProfileEntity("
        ),
        "{err}"
    );
    assert!(
        client
            .query("tcpConnector", &["name"])
            .await
            .unwrap()
            .iter()
            .all(|c| c["name"] != json!("skupper-local-server")),
        "nothing created"
    );
    // A second tcpConnector of an existing address, created live, is used alongside.
    let connector = json!({"host": "127.0.0.1", "port": site.echo_server_port.to_string(), "address": "echo-a"});
    client
        .create(
            "tcpConnector",
            "connector/second",
            connector.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    let connectors = client.query("tcpConnector", &[]).await.unwrap();
    assert_eq!(
        connectors
            .iter()
            .filter(|c| c["address"] == json!("echo-a"))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_queries_see_links_and_routers() {
    let (_site, mut client) = managed_site("status-query").await;
    // This management connection is itself a `normal` connection.
    let connections = client
        .query("io.skupper.router.connection", &["role", "dir", "host"])
        .await
        .unwrap();
    assert!(
        connections
            .iter()
            .any(|c| c["role"] == json!("normal") && c["dir"] == json!("in")),
        "{connections:?}"
    );
    let nodes = client
        .query("router.node", &["id", "nextHop"])
        .await
        .unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["id"], json!("site-a"));
    // A connector to nowhere reports its failure, as `link status` will show it.
    let dead_port = free_port();
    let link = json!({"role": "inter-router", "host": "127.0.0.1", "port": dead_port.to_string(), "sslProfile": "skupper-site-server"});
    client
        .create(
            "connector",
            "link-nowhere",
            link.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let rows = client
            .query("connector", &["name", "connectionStatus", "connectionMsg"])
            .await
            .unwrap();
        let row = rows
            .iter()
            .find(|r| r["name"] == json!("link-nowhere"))
            .expect("connector listed");
        if row["connectionStatus"] == json!("FAILED") {
            // Worded as skupper-router's `qd_connector_handle_transport_error`.
            let message = row["connectionMsg"].as_str().unwrap_or("");
            let prefix = format!("Connection to 127.0.0.1:{dead_port} failed: ");
            assert!(
                message.starts_with(&prefix) && message.contains("refused"),
                "{row:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "connector never reported a failure: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connectors_of_one_address_share_the_connections() {
    let (_site, mut client) = managed_site("share").await;
    for (name, tag) in [("connector/one", "one"), ("connector/two", "two")] {
        let attributes = json!({"host": "127.0.0.1", "port": support::tag_server(tag).to_string(), "address": "shared"});
        client
            .create(
                "tcpConnector",
                name,
                attributes.as_object().unwrap().clone(),
            )
            .await
            .unwrap();
    }
    let port = free_port();
    let attributes = json!({"host": "127.0.0.1", "port": port.to_string(), "address": "shared"});
    client
        .create(
            "tcpListener",
            "listener/shared",
            attributes.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        (0..10)
            .map(|_| support::read_all_from(port))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for tag in ["one", "two"] {
        assert!(
            answers.iter().filter(|a| *a == tag).count() >= 3,
            "{answers:?}"
        );
    }
}

/// `connectionsOpened` and `connectionsClosed` of tcpConnector `name`.
async fn connector_counters(client: &mut ManagementClient, name: &str) -> (u64, u64) {
    let rows = client
        .query(
            "tcpConnector",
            &["name", "connectionsOpened", "connectionsClosed"],
        )
        .await
        .unwrap();
    let row = rows.iter().find(|r| r["name"] == json!(name)).unwrap();
    let count = |key: &str| {
        row[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {row:?}"))
    };
    (count("connectionsOpened"), count("connectionsClosed"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_connector_counts_its_egress_dispatch_connection_as_opened() {
    let (_site, mut client) = managed_site("connector-counters").await;
    // skupper-router 3.5.1 (`TL_setup_connector`): a new tcpConnector reads 1 opened, 0 closed.
    let (backend, dead) = (support::tag_server("one"), free_port());
    for (name, port, address) in [
        ("connector/one", backend, "one"),
        ("connector/dead", dead, "dead"),
    ] {
        let attributes = json!({"host": "127.0.0.1", "port": port.to_string(), "address": address});
        client
            .create(
                "tcpConnector",
                name,
                attributes.as_object().unwrap().clone(),
            )
            .await
            .unwrap();
        assert_eq!(connector_counters(&mut client, name).await, (1, 0));
    }
    for address in ["one", "dead"] {
        let port = free_port();
        let attributes = json!({"host": "127.0.0.1", "port": port.to_string(), "address": address});
        client
            .create(
                "tcpListener",
                &format!("listener/{address}"),
                attributes.as_object().unwrap().clone(),
            )
            .await
            .unwrap();
        // Each client connection is one opened and, once it ended (a failed one too), one
        // closed: open = opened - closed - 1.
        let clients = tokio::task::spawn_blocking(move || {
            wait_accepting(port, LIMIT);
            for _ in 0..3 {
                support::read_all_from(port);
            }
            3
        })
        .await
        .unwrap();
        let name = format!("connector/{address}");
        let start = std::time::Instant::now();
        loop {
            let (opened, closed) = connector_counters(&mut client, &name).await;
            // The probe of `wait_accepting` is a client too.
            assert!(opened > clients as u64, "{name}: {opened} opened");
            if opened == closed + 1 {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "{name}: {opened} opened, {closed} closed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// As the real router (`adaptor_listener.c`, PN_LISTENER_CLOSE with a hard failure): a
/// tcpListener that cannot bind its port reports operStatus down and the error in
/// connectionMsg, and is not tried again when the port frees up; deleting and creating it
/// again opens it.
#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_listener_that_cannot_bind_says_why_and_stays_closed() {
    let (_site, mut client) = managed_site("bind-failure").await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let attributes = json!({"host": "127.0.0.1", "port": port.to_string(), "address": "echo-a"});
    let attributes = attributes.as_object().unwrap().clone();
    client
        .create("tcpListener", "listener/squatted", attributes.clone())
        .await
        .unwrap();
    let status = |rows: Vec<serde_json::Map<String, serde_json::Value>>| {
        rows.into_iter()
            .find(|row| row["name"] == json!("listener/squatted"))
            .map(|row| (row["operStatus"].clone(), row["connectionMsg"].clone()))
            .unwrap()
    };
    let expected = (
        json!("down"),
        json!(format!(
            "Address already in use - listen on 127.0.0.1:{port}"
        )),
    );
    let columns = ["name", "operStatus", "connectionMsg"];
    assert_eq!(
        status(client.query("tcpListener", &columns).await.unwrap()),
        expected
    );

    // The port frees up, and the router's topology changes: still closed, still the error.
    drop(squatter);
    let other = json!({"host": "127.0.0.1", "port": free_port().to_string(), "address": "echo-a"});
    client
        .create(
            "tcpListener",
            "listener/other",
            other.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || wait_refusing(port, LIMIT))
        .await
        .unwrap();
    assert_eq!(
        status(client.query("tcpListener", &columns).await.unwrap()),
        expected
    );

    client
        .delete("tcpListener", "listener/squatted")
        .await
        .unwrap();
    client
        .create("tcpListener", "listener/squatted", attributes)
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        echo_roundtrip(port, 1024);
    })
    .await
    .unwrap();
    assert_eq!(
        status(client.query("tcpListener", &columns).await.unwrap()),
        (json!("up"), json!(""))
    );
    client.close().await.unwrap();
}

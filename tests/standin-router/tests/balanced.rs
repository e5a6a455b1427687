//! Where a new connection goes when several tcpConnectors offer its address, as skupper-router
//! 3.5.1's balanced forwarder decides (`src/router_core/forwarder.c` `qdr_forward_balanced_CT`):
//! to the destination with the fewest connections open on its path plus its cost. Connections
//! made one after another therefore all go to the same place (a connector on the listener's own
//! router, else the first remote router found at the lowest cost); sharing shows only while
//! connections are open at once.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    attrs, free_port, read_all_from, read_and_hold, start_spoke, tag_server, wait_accepting, Spoke,
};
use vansite::router::management::ManagementClient;

const LIMIT: Duration = Duration::from_secs(20);

/// Waits until site A knows `remote_count` remote routers with a destination for `address`
/// (its `router.address` entity).
async fn wait_remote_count(client: &mut ManagementClient, address: &str, remote_count: u64) {
    let start = Instant::now();
    loop {
        let rows = client
            .query("router.address", &["key", "remoteCount"])
            .await
            .unwrap();
        let key = format!("M{address}");
        let count = rows
            .iter()
            .find(|r| r["key"] == json!(key))
            .and_then(|r| r["remoteCount"].as_u64());
        if count == Some(remote_count) {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{address} known at {count:?} remote routers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tcpListener for `address` on site A; returns its port once it accepts.
async fn listener(client: &mut ManagementClient, address: &str) -> u16 {
    let port = free_port();
    client
        .create(
            "tcpListener",
            &format!("listener/{address}"),
            attrs(json!({"host": "127.0.0.1", "port": port.to_string(), "address": address})),
        )
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || wait_accepting(port, LIMIT))
        .await
        .unwrap();
    port
}

/// `count` connections one after the other, each read to its end and closed.
async fn serial(port: u16, count: usize) -> Vec<String> {
    tokio::task::spawn_blocking(move || (0..count).map(|_| read_all_from(port)).collect())
        .await
        .unwrap()
}

/// `count` connections opened one after the other and all kept open; returns what each read.
/// They are closed when this returns.
async fn held_open(port: u16, count: usize) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let held: Vec<(String, std::net::TcpStream)> =
            (0..count).map(|_| read_and_hold(port)).collect();
        held.into_iter().map(|(answer, _)| answer).collect()
    })
    .await
    .unwrap()
}

/// Lets the router see the end of connections just closed.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_remote_sites_at_equal_cost_serial_connections_stick_open_ones_spread() {
    let site = support::start_site_a("balanced-remote", LIMIT);
    let _b = start_spoke(&site, "site-b", 1, "who", tag_server("from-b"), LIMIT);
    let _c = start_spoke(&site, "site-c", 1, "who", tag_server("from-c"), LIMIT);
    let mut client = site.management(LIMIT).await;
    wait_remote_count(&mut client, "who", 2).await;
    let port = listener(&mut client, "who").await;
    settle().await;

    // One after the other: all to the same site, never taking turns.
    let answers = serial(port, 20).await;
    let first = answers[0].clone();
    assert!(first == "from-b" || first == "from-c", "{answers:?}");
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");

    // Kept open: each open connection counts against its site, so they alternate.
    settle().await;
    let open = held_open(port, 6).await;
    let other = if first == "from-b" {
        "from-c"
    } else {
        "from-b"
    };
    assert_eq!(
        open,
        [&first, other, &first, other, &first, other],
        "{open:?}"
    );

    // Closed again: back to the first site.
    settle().await;
    let answers = serial(port, 10).await;
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cheaper_site_takes_the_serial_connections_and_cost_weighs_against_open_ones() {
    let site = support::start_site_a("balanced-cost", LIMIT);
    let _far = start_spoke(&site, "site-far", 3, "who", tag_server("far"), LIMIT);
    let _near = start_spoke(&site, "site-near", 1, "who", tag_server("near"), LIMIT);
    let mut client = site.management(LIMIT).await;
    wait_remote_count(&mut client, "who", 2).await;
    let port = listener(&mut client, "who").await;
    settle().await;
    assert_eq!(serial(port, 10).await, vec!["near"; 10]);
    // Values (open + cost): near 1, far 3 → near; near 2 → near; near 3 = far 3 → the first
    // found at the lowest mask bit, far (it linked first); then near 3 < far 4 → near.
    settle().await;
    let open = held_open(port, 4).await;
    assert_eq!(open, ["near", "near", "far", "near"], "{open:?}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_on_the_listeners_router_takes_every_serial_connection() {
    let site = support::start_site_a("balanced-local", LIMIT);
    let _b = start_spoke(&site, "site-b", 1, "who", tag_server("from-b"), LIMIT);
    let _c = start_spoke(&site, "site-c", 1, "who", tag_server("from-c"), LIMIT);
    let mut client = site.management(LIMIT).await;
    wait_remote_count(&mut client, "who", 2).await;
    client
        .create(
            "tcpConnector",
            "test/who",
            attrs(json!({"host": "127.0.0.1", "port": tag_server("from-a").to_string(), "address": "who"})),
        )
        .await
        .unwrap();
    let port = listener(&mut client, "who").await;
    settle().await;
    assert_eq!(serial(port, 20).await, vec!["from-a"; 20]);

    // Kept open: the local connector (value = its open connections, no cost) keeps ties with a
    // remote site (open + cost 1), and gives way when it is busier.
    settle().await;
    let open = held_open(port, 6).await;
    assert_eq!(open[..2], ["from-a", "from-a"], "{open:?}");
    assert!(
        open[2] != "from-a" && open[3] != "from-a" && open[2] != open[3],
        "{open:?}"
    );
    assert_eq!(open[4], "from-a", "{open:?}");
    assert_eq!(open[5], open[2], "{open:?}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_link_is_a_local_destination_and_local_destinations_take_turns() {
    let site = support::start_site_a("balanced-edge", LIMIT);
    let mut client = site.management(LIMIT).await;
    let edge_port = free_port();
    client
        .create(
            "listener",
            "edge",
            attrs(json!({"role": "edge", "host": "127.0.0.1", "port": edge_port.to_string(),
                         "sslProfile": "skupper-site-server", "saslMechanisms": "EXTERNAL", "authenticatePeer": true})),
        )
        .await
        .unwrap();
    // An edge router serving `who`, with a tcpListener for `beyond`, served at an interior
    // router linked to site A.
    let beyond_port = free_port();
    let _edge = Spoke {
        router_id: "edge-e",
        edge: true,
        link_port: edge_port,
        cost: 1,
        address: "who",
        service_port: tag_server("from-e"),
        listen: ("beyond", beyond_port),
    }
    .start(&site, LIMIT);
    let _b = start_spoke(&site, "site-b", 1, "beyond", tag_server("from-b"), LIMIT);
    wait_remote_count(&mut client, "beyond", 1).await;

    // From the edge, through its interior router, to the next one.
    let answers = tokio::task::spawn_blocking(move || {
        wait_accepting(beyond_port, LIMIT);
        (0..3)
            .map(|_| read_all_from(beyond_port))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(answers, ["from-b"; 3]);

    // On the interior router the edge's connector is a local destination, not a remote one.
    let rows = client
        .query("router.address", &["key", "subscriberCount", "remoteCount"])
        .await
        .unwrap();
    let who = rows.iter().find(|r| r["key"] == json!("Mwho")).unwrap();
    assert_eq!(
        (&who["subscriberCount"], &who["remoteCount"]),
        (&json!(1), &json!(0))
    );
    let port = listener(&mut client, "who").await;
    assert_eq!(serial(port, 5).await, vec!["from-e"; 5]);

    // With a tcpConnector here too, the two local destinations take turns.
    client
        .create(
            "tcpConnector",
            "test/who",
            attrs(json!({"host": "127.0.0.1", "port": tag_server("from-a").to_string(), "address": "who"})),
        )
        .await
        .unwrap();
    settle().await;
    let answers = serial(port, 6).await;
    assert!(answers.contains(&"from-a".to_string()), "{answers:?}");
    assert!(answers.windows(2).all(|w| w[0] != w[1]), "{answers:?}");
    client.close().await.unwrap();
}

//! QUERY of `io.skupper.router.router.address`, filled in as skupper-router 3.5.1's
//! `src/router_core/agent_address.c` does for mobile addresses: `key` (also `name` and
//! `identity`) `M` + address, `distribution` (balanced for a service), `subscriberCount` the
//! local destinations, `remoteCount` / `remoteHostRouters` the remote routers that have one (in
//! mask-bit order), `watch` for an address a tcpListener watches. Every router's vanflow direct
//! address `sfe.<id>` is one too, held in-process by its router, and a router lists the vanflow
//! multicast addresses it sends to.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use support::{
    addresses, attrs, free_port, read_all_from, read_and_hold, start_spoke, tag_server,
    wait_accepting, Rows,
};
use vansite::router::management::ManagementClient;

const LIMIT: Duration = Duration::from_secs(20);

/// Waits until the rows by key satisfy `ok` (bounded), `what` saying what is awaited; returns
/// them.
async fn wait_rows(client: &mut ManagementClient, what: &str, ok: impl Fn(&Rows) -> bool) -> Rows {
    let start = Instant::now();
    loop {
        let rows = addresses(client, &[]).await;
        if ok(&rows) {
            return rows;
        }
        assert!(start.elapsed() < LIMIT, "never {what}: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the row of `key` satisfies `ok` (bounded); returns it.
async fn wait_row(
    client: &mut ManagementClient,
    key: &str,
    ok: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    let what = format!("{key} as expected");
    let mut rows = wait_rows(client, &what, |rows| rows.get(key).is_some_and(&ok)).await;
    rows.remove(key).expect("awaited")
}

#[tokio::test(flavor = "multi_thread")]
async fn router_address_lists_mobile_addresses_with_their_local_and_remote_destinations() {
    let site = support::start_site_a("router-address", LIMIT);
    let b = start_spoke(&site, "site-b", 1, "who", tag_server("from-b"), LIMIT);
    let _c = start_spoke(&site, "site-c", 1, "who", tag_server("from-c"), LIMIT);
    let mut client =
        ManagementClient::connect("127.0.0.1", site.management_port, &site.client_tls, LIMIT)
            .await
            .unwrap();

    // Served at two remote routers, in the order they became known (their mask bits).
    let who = wait_row(&mut client, "Mwho", |r| r["remoteCount"] == json!(2)).await;
    assert_eq!(who["name"], json!("Mwho"));
    assert_eq!(who["identity"], json!("Mwho"));
    assert_eq!(who["type"], json!("io.skupper.router.router.address"));
    assert_eq!(who["distribution"], json!("balanced"));
    assert_eq!(who["subscriberCount"], json!(0));
    assert_eq!(who["remoteHostRouters"], json!(["site-b", "site-c"]));
    assert_eq!(who["watch"], json!(false));

    let rows = addresses(&mut client, &[]).await;
    // Site A's own tcpConnector (tests/fixtures/site-a.json).
    let echo_a = &rows["Mecho-a"];
    assert_eq!(echo_a["subscriberCount"], json!(1));
    assert_eq!(echo_a["remoteCount"], json!(0));
    assert_eq!(echo_a["remoteHostRouters"], json!([]));
    // Its tcpListener watches an address nobody serves.
    let echo_b = &rows["Mecho-b"];
    assert_eq!(
        (
            &echo_b["subscriberCount"],
            &echo_b["remoteCount"],
            &echo_b["watch"]
        ),
        (&json!(0), &json!(0), &json!(true))
    );

    // The QUERY answers the attributes asked for, and only those.
    let selected = addresses(&mut client, &["key", "remoteCount"]).await;
    assert_eq!(selected.len(), rows.len());
    for row in selected.values() {
        assert_eq!(row.keys().collect::<Vec<_>>(), ["key", "remoteCount"]);
    }

    // A local tcpConnector of the address and a tcpListener for it: every serial connection
    // goes to the local one (deliveriesEgress); one held open beyond a tie goes to site-b
    // (deliveriesTransit), and is tracked while open.
    client
        .create(
            "tcpConnector",
            "test/who",
            attrs(json!({"host": "127.0.0.1", "port": tag_server("from-a").to_string(), "address": "who"})),
        )
        .await
        .unwrap();
    let port = free_port();
    client
        .create(
            "tcpListener",
            "listener/who",
            attrs(json!({"host": "127.0.0.1", "port": port.to_string(), "address": "who"})),
        )
        .await
        .unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        std::thread::sleep(Duration::from_millis(300));
        (0..3).map(|_| read_all_from(port)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(answers, ["from-a"; 3]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answers, held) = tokio::task::spawn_blocking(move || {
        let held: Vec<_> = (0..3).map(|_| read_and_hold(port)).collect();
        let answers: Vec<String> = held.iter().map(|(a, _)| a.clone()).collect();
        (answers, held)
    })
    .await
    .unwrap();
    assert_eq!(answers, ["from-a", "from-a", "from-b"]);
    let who = addresses(&mut client, &[]).await.remove("Mwho").unwrap();
    assert_eq!(who["subscriberCount"], json!(1));
    assert_eq!(who["watch"], json!(true));
    assert_eq!(who["trackedDeliveries"], json!(1));
    assert_eq!(who["deliveriesTransit"], json!(1));
    // The probe of wait_accepting, three serial, two held.
    assert_eq!(who["deliveriesEgress"], json!(6));
    drop(held);

    // A site going away is no longer a remote destination.
    drop(b);
    let who = wait_row(&mut client, "Mwho", |r| r["remoteCount"] == json!(1)).await;
    assert_eq!(who["remoteHostRouters"], json!(["site-c"]));
    assert_eq!(who["subscriberCount"], json!(1));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn router_address_lists_every_routers_vanflow_address_while_it_is_in_the_network() {
    let site = support::start_site_a("router-address-vanflow", LIMIT);
    let b = start_spoke(&site, "site-b", 1, "who", tag_server("from-b"), LIMIT);
    let (a_id, b_id) = (site.standin.vanflow_id(LIMIT), b.vanflow_id(LIMIT));
    assert_ne!(a_id, b_id);
    let mut client = site.management(LIMIT).await;

    // Site B's direct address, learned over the link.
    let b_key = format!("Msfe.{b_id}");
    let b_row = wait_row(&mut client, &b_key, |r| r["remoteCount"] == json!(1)).await;
    assert_eq!(b_row["name"], json!(b_key));
    assert_eq!(b_row["type"], json!("io.skupper.router.router.address"));
    assert_eq!(b_row["distribution"], json!("closest"));
    assert_eq!(b_row["remoteHostRouters"], json!(["site-b"]));
    assert_eq!(
        (&b_row["subscriberCount"], &b_row["inProcess"]),
        (&json!(0), &json!(0))
    );

    let rows = addresses(&mut client, &[]).await;
    // Site A's own direct address, consumed in-process.
    let a_row = &rows[&format!("Msfe.{a_id}")];
    assert_eq!(a_row["distribution"], json!("closest"));
    assert_eq!(a_row["inProcess"], json!(1));
    assert_eq!(a_row["remoteHostRouters"], json!([]));
    assert_eq!(
        (&a_row["subscriberCount"], &a_row["remoteCount"]),
        (&json!(0), &json!(0))
    );
    // The multicast addresses site A sends to (its `mc` prefix is multicast), with no
    // consumer; site B's have none either, so site A does not know them.
    for address in [
        "mc/sfe.all".to_string(),
        format!("mc/sfe.{a_id}"),
        format!("mc/sfe.{a_id}.flows"),
        format!("mc/sfe.{a_id}.logs"),
    ] {
        let row = &rows[&format!("M{address}")];
        assert_eq!(row["distribution"], json!("multicast"), "{address}");
        assert_eq!(
            (
                &row["subscriberCount"],
                &row["remoteCount"],
                &row["inProcess"]
            ),
            (&json!(0), &json!(0), &json!(0)),
            "{address}"
        );
    }
    assert!(!rows.contains_key(&format!("Mmc/sfe.{b_id}")));

    // A router gone from the network takes its address with it.
    drop(b);
    wait_rows(&mut client, &format!("{b_key} gone"), |rows| {
        !rows.contains_key(&b_key)
    })
    .await;
    client.close().await.unwrap();
}

//! Multi-address tcpListeners (`multiAddressStrategy` priority / weighted) and their
//! listenerAddress entities, over management and from the configuration file, as skupper-router
//! 3.5.1 has them (`src/adaptors/adaptor_listener.c`, `tcp/tcp_adaptor.c`, the management
//! agent): which address a new connection goes to, and what the router refuses. Then vansite's
//! own rendering of MultiKeyListeners synced live onto a stand-in.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use support::{
    attrs, fixture, free_port, read_all_from, standin_command, tag_server, wait_accepting,
    wait_refusing, Standin,
};
use vansite::model::{parse_documents, SiteResources};
use vansite::ops::apply::sync_router_entities;
use vansite::plan::router::LiveOp;
use vansite::router::management::{ManagementClient, ManagementError};

const LIMIT: Duration = Duration::from_secs(20);

/// A tcpConnector `test/<address>` (a name vansite's sync leaves alone) to a server that
/// answers every connection with `tag`.
async fn tagged_connector(client: &mut ManagementClient, address: &str, tag: &'static str) {
    let port = tag_server(tag);
    client
        .create(
            "tcpConnector",
            &format!("test/{address}"),
            attrs(json!({"host": "127.0.0.1", "port": port.to_string(), "address": address})),
        )
        .await
        .unwrap();
}

/// A multi-address tcpListener `multiAddress/m` on a free port with `addresses` (address,
/// value); returns the port.
async fn multi_listener(
    client: &mut ManagementClient,
    strategy: &str,
    addresses: &[(&str, i64)],
) -> u16 {
    let port = free_port();
    client
        .create(
            "tcpListener",
            "multiAddress/m",
            attrs(json!({"host": "127.0.0.1", "port": port.to_string(), "multiAddressStrategy": strategy})),
        )
        .await
        .unwrap();
    for (address, value) in addresses {
        client
            .create(
                "listenerAddress",
                &format!("m/{address}"),
                attrs(json!({"address": address, "value": value, "listener": "multiAddress/m"})),
            )
            .await
            .unwrap();
    }
    port
}

/// Opens `count` connections to `port` one after the other and returns what each read.
async fn answers(port: u16, count: usize) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        wait_accepting(port, LIMIT);
        (0..count).map(|_| read_all_from(port)).collect()
    })
    .await
    .unwrap()
}

/// `connectionsOpened` of each listenerAddress, by name.
async fn opened(client: &mut ManagementClient) -> Vec<(String, u64)> {
    let rows = client
        .query("listenerAddress", &["name", "connectionsOpened"])
        .await
        .unwrap();
    let mut counts: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["connectionsOpened"].as_u64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_falls_back_to_the_next_key_and_back() {
    let site = support::start_site_a("mkl-priority", LIMIT);
    let mut client = site.management(LIMIT).await;
    tagged_connector(&mut client, "first", "first").await;
    tagged_connector(&mut client, "second", "second").await;
    // Skupper's values for routingKeys [first, second]: 1 and 0.
    let port = multi_listener(&mut client, "priority", &[("second", 0), ("first", 1)]).await;
    assert_eq!(answers(port, 5).await, vec!["first"; 5]);

    // The first key's connector goes away: every new connection goes to the second key.
    client.delete("tcpConnector", "test/first").await.unwrap();
    assert_eq!(answers(port, 5).await, vec!["second"; 5]);
    // Each address counts its connections (five read, and the probe of `wait_accepting`).
    assert_eq!(
        opened(&mut client).await,
        [("m/first".to_string(), 6), ("m/second".to_string(), 6)]
    );

    // Neither key reachable: the socket closes, as for a plain listener without a connector.
    client.delete("tcpConnector", "test/second").await.unwrap();
    tokio::task::spawn_blocking(move || wait_refusing(port, LIMIT))
        .await
        .unwrap();
    let rows = client
        .query(
            "tcpListener",
            &["name", "operStatus", "multiAddressStrategy"],
        )
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r["name"] == json!("multiAddress/m"))
        .unwrap();
    assert_eq!(row["operStatus"], json!("down"));
    assert_eq!(row["multiAddressStrategy"], json!("priority"));

    // The first key back: it opens again and takes every connection.
    tagged_connector(&mut client, "second", "second").await;
    tagged_connector(&mut client, "first", "first").await;
    assert_eq!(answers(port, 3).await, vec!["first"; 3]);
    client.close().await.unwrap();
}

/// Reads through `port` until the answer is `wanted` (bounded): reachability across a link
/// changes when the link comes up or goes down.
async fn wait_answer(port: u16, wanted: &'static str) {
    tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        loop {
            let got = std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| read_all_from(port));
            if got.as_deref() == Some(wanted) {
                return;
            }
            assert!(start.elapsed() < LIMIT, "still {got:?} through port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
}

/// A key is reachable when a connector for it is anywhere in the network: here a linked site
/// serves the first key, and while the link is up it takes the connections.
#[tokio::test(flavor = "multi_thread")]
async fn priority_follows_a_key_served_across_a_link() {
    let site = support::start_site_a("mkl-network", LIMIT);
    let mut client = site.management(LIMIT).await;
    tagged_connector(&mut client, "local", "local").await;
    // Site B's tcpConnector serves address echo-b (tests/fixtures/site-b.json).
    let port = multi_listener(&mut client, "priority", &[("echo-b", 1), ("local", 0)]).await;
    assert_eq!(answers(port, 2).await, vec!["local"; 2]);

    let link = site.dir.join("link");
    site.site_ca.issue(&link, "site-b", &[]);
    let env = [
        ("LINK_CERTS", link.display().to_string()),
        ("A_HOST", "127.0.0.1".to_string()),
        ("A_PORT", site.inter_router_port.to_string()),
        ("ECHO_SERVER_PORT", tag_server("remote").to_string()),
        ("ECHO_A_PORT", free_port().to_string()),
    ];
    let b = Standin::start(&fixture("site-b.json"), &env, site.dir.join("b.log"));
    wait_answer(port, "remote").await;
    assert_eq!(answers(port, 3).await, vec!["remote"; 3]);

    // The link goes down with site B: back to the local key.
    drop(b);
    wait_answer(port, "local").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_spreads_connections_by_weight() {
    let site = support::start_site_a("mkl-weighted", LIMIT);
    let mut client = site.management(LIMIT).await;
    tagged_connector(&mut client, "heavy", "heavy").await;
    tagged_connector(&mut client, "light", "light").await;
    let port = multi_listener(&mut client, "weighted", &[("heavy", 3), ("light", 1)]).await;
    let got = answers(port, 120).await;
    let heavy = got.iter().filter(|a| *a == "heavy").count();
    let light = got.iter().filter(|a| *a == "light").count();
    assert_eq!(heavy + light, 120, "{got:?}");
    // Expected 90 / 30 (sd 4.7): bounds 6 and 5 sd out, which chance breaks far less than once
    // in a million runs.
    assert!((60..=115).contains(&heavy), "heavy {heavy}, light {light}");
    assert!(light >= 5, "heavy {heavy}, light {light}");

    // Only reachable keys are drawn from.
    client.delete("tcpConnector", "test/heavy").await.unwrap();
    assert_eq!(answers(port, 10).await, vec!["light"; 10]);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn management_refuses_what_the_router_refuses() {
    let site = support::start_site_a("mkl-refuse", LIMIT);
    let mut client = site.management(LIMIT).await;
    let refusal = |result: Result<Map<String, Value>, ManagementError>| {
        let err = result.unwrap_err();
        (err.status_code(), err.to_string())
    };
    let address = |listener: &str| attrs(json!({"address": "a", "value": 1, "listener": listener}));

    // A listenerAddress needs an existing multi-address tcpListener: the router's C code
    // refuses, and its agent answers 500 with the CError.
    let (code, text) = refusal(
        client
            .create("listenerAddress", "x/a", address("multiAddress/none-such"))
            .await,
    );
    assert_eq!(code, Some(500), "{text}");
    assert!(
        text.contains(
            "CError: Value: Listener for new address does not exist multiAddress/none-such"
        ),
        "{text}"
    );
    client
        .create(
            "tcpListener",
            "listener/plain",
            attrs(
                json!({"host": "127.0.0.1", "port": free_port().to_string(), "address": "echo-a"}),
            ),
        )
        .await
        .unwrap();
    let (code, text) = refusal(
        client
            .create("listenerAddress", "x/a", address("listener/plain"))
            .await,
    );
    assert_eq!(code, Some(500), "{text}");
    assert!(
        text.contains("Must not assign new address to non multi-address listener listener/plain"),
        "{text}"
    );
    // The schema's required attributes: 400 from the agent's own check.
    let (code, text) = refusal(
        client
            .create(
                "listenerAddress",
                "x/a",
                attrs(json!({"address": "a", "listener": "listener/plain"})),
            )
            .await,
    );
    assert_eq!(code, Some(400), "{text}");
    assert!(text.contains("value"), "{text}");
    assert!(client
        .query("listenerAddress", &["name"])
        .await
        .unwrap()
        .is_empty());

    // A tcpListener has exactly one of address and multiAddressStrategy.
    for attributes in [
        json!({"host": "127.0.0.1", "port": "1", "address": "a", "multiAddressStrategy": "priority"}),
        json!({"host": "127.0.0.1", "port": "1"}),
        json!({"host": "127.0.0.1", "port": "1", "multiAddressStrategy": "none"}),
    ] {
        let (code, text) = refusal(
            client
                .create("tcpListener", "multiAddress/bad", attrs(attributes))
                .await,
        );
        assert_eq!(code, Some(500), "{text}");
        assert!(
            text.contains(
                "Exactly one of the 'address' or 'multiAddressStrategy' field must be set"
            ),
            "{text}"
        );
    }

    // A multi-address tcpListener is not deleted while it has listenerAddresses, and goes on
    // serving; once they are deleted, it is.
    let port = multi_listener(&mut client, "priority", &[("echo-a", 0)]).await;
    let (code, text) = match client.delete("tcpListener", "multiAddress/m").await {
        Err(err) => (err.status_code(), err.to_string()),
        Ok(()) => panic!("deleted with a listenerAddress left"),
    };
    assert_eq!(code, Some(500), "{text}");
    assert!(
        text.contains("listenerAddress entities exist for  multi-address listener multiAddress/m"),
        "{text}"
    );
    tokio::task::spawn_blocking(move || support::echo_roundtrip(port, 4096))
        .await
        .unwrap();
    client.delete("listenerAddress", "m/echo-a").await.unwrap();
    tokio::task::spawn_blocking(move || wait_refusing(port, LIMIT))
        .await
        .unwrap();
    client
        .delete("tcpListener", "multiAddress/m")
        .await
        .unwrap();
    assert!(site
        .standin
        .log_text()
        .contains("Listener for new address does not exist"));
    client.close().await.unwrap();
}

#[test]
fn configuration_file_takes_addresses_before_their_listener() {
    let dir = std::env::temp_dir().join(format!("standin-mkl-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let env = [
        ("ONE_PORT", tag_server("one").to_string()),
        ("TWO_PORT", tag_server("two").to_string()),
        ("MKL_PORT", port.to_string()),
    ];
    let standin = Standin::start(&fixture("multi-address.json"), &env, dir.join("router.log"));
    standin.wait_for_log("router site-m (interior) running", LIMIT);
    wait_accepting(port, LIMIT);
    for _ in 0..3 {
        assert_eq!(read_all_from(port), "one");
    }
    drop(standin);

    // A listenerAddress for a tcpListener that is not there stops the router.
    let text = std::fs::read_to_string(fixture("multi-address.json"))
        .unwrap()
        .replace(
            r#""listener": "multiAddress/m"}],
  ["listenerAddress", {"name": "m/one""#,
            r#""listener": "multiAddress/x"}],
  ["listenerAddress", {"name": "m/one""#,
        );
    let broken = dir.join("broken.json");
    std::fs::write(&broken, text).unwrap();
    let output = standin_command(&broken)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listenerAddress 'm/two': Value: Listener for new address does not exist multiAddress/x"),
        "{stderr}"
    );
}

/// A site with the fixture router's own accesses (their listeners and sslProfiles are fixed:
/// a live sync leaves them alone) and `documents`.
const SITE: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata: {name: west}\nspec: {}\n\
---\napiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {name: skupper-local}\n\
spec: {roles: [{name: normal, port: 1}], tlsCredentials: skupper-local-server, bindHost: 127.0.0.1}\n\
---\napiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata: {name: site-a}\n\
spec: {roles: [{name: inter-router, port: 2}], tlsCredentials: skupper-site-server}\n";

fn site_with(documents: &str) -> SiteResources {
    let mut all = parse_documents(SITE, "site").unwrap().resources;
    all.extend(parse_documents(documents, "test").unwrap().resources);
    SiteResources::new("default", all).unwrap()
}

/// A Connector of routing key `key` to a server that answers every connection with `tag`.
fn tagged_connector_document(key: &str, tag: &'static str) -> String {
    format!(
        "---\napiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata: {{name: {key}}}\n\
         spec: {{routingKey: {key}, host: 127.0.0.1, port: {}}}\n",
        tag_server(tag)
    )
}

fn multi_key_listener(port: u16, strategy: &str) -> String {
    format!(
        "---\napiVersion: skupper.io/v2alpha1\nkind: MultiKeyListener\nmetadata: {{name: db}}\n\
         spec: {{host: 127.0.0.1, port: {port}, strategy: {strategy}}}\n"
    )
}

/// What vansite's live sync does to the router for `set`: (deleted, created) `type/name`s.
async fn sync(client: &mut ManagementClient, set: &SiteResources) -> (Vec<String>, Vec<String>) {
    let (wanted, fixed) = vansite::plan::live_entities(set);
    let ops = sync_router_entities(client, &wanted, &fixed, &BTreeMap::new())
        .await
        .unwrap();
    let (mut deleted, mut created) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            LiveOp::Delete { entity_type, name } => deleted.push(format!("{entity_type}/{name}")),
            LiveOp::Create(entity) => created.push(entity.label()),
            // Nothing here renews an sslProfile.
            LiveOp::Renew { .. } => {}
        }
    }
    (deleted, created)
}

/// vansite's MultiKeyListener, rendered and synced live: created in an order the router takes,
/// changed (keys reordered; a new port, which replaces the tcpListener and so its addresses),
/// and deleted, listenerAddresses before their tcpListener.
#[tokio::test(flavor = "multi_thread")]
async fn vansite_syncs_multi_key_listeners_live() {
    let site = support::start_site_a("mkl-sync", LIMIT);
    let mut client = site.management(LIMIT).await;
    let connectors = tagged_connector_document("db-primary", "primary")
        + &tagged_connector_document("db-replica", "replica");
    let port = free_port();
    let priority = "{priority: {routingKeys: [db-primary, db-replica]}}";
    let set = site_with(&(connectors.clone() + &multi_key_listener(port, priority)));
    let (deleted, created) = sync(&mut client, &set).await;
    // The fixture's own services are not in this site: they go.
    assert_eq!(
        deleted,
        [
            "tcpListener/listener/echo-b",
            "tcpConnector/connector/echo-a@localhost"
        ]
    );
    assert_eq!(
        created,
        [
            "tcpConnector/connector/db-primary@127.0.0.1",
            "tcpConnector/connector/db-replica@127.0.0.1",
            "tcpListener/multiAddress/db",
            "listenerAddress/db/db-primary",
            "listenerAddress/db/db-replica"
        ]
    );
    assert_eq!(answers(port, 3).await, vec!["primary"; 3]);
    // Nothing to do a second time.
    assert_eq!(sync(&mut client, &set).await, (vec![], vec![]));

    // The keys in the other order: the values change, so both addresses are replaced.
    let reordered = "{priority: {routingKeys: [db-replica, db-primary]}}";
    let set = site_with(&(connectors.clone() + &multi_key_listener(port, reordered)));
    let (deleted, created) = sync(&mut client, &set).await;
    let addresses = [
        "listenerAddress/db/db-primary",
        "listenerAddress/db/db-replica",
    ];
    assert_eq!(deleted, addresses);
    assert_eq!(created, addresses);
    assert_eq!(answers(port, 3).await, vec!["replica"; 3]);

    // A new port: the tcpListener is replaced, its unchanged addresses deleted first and
    // created again after it.
    let new_port = free_port();
    let set = site_with(&(connectors.clone() + &multi_key_listener(new_port, reordered)));
    let (deleted, created) = sync(&mut client, &set).await;
    assert_eq!(
        deleted,
        [
            "listenerAddress/db/db-primary",
            "listenerAddress/db/db-replica",
            "tcpListener/multiAddress/db"
        ]
    );
    assert_eq!(
        created,
        [
            "tcpListener/multiAddress/db",
            "listenerAddress/db/db-primary",
            "listenerAddress/db/db-replica"
        ]
    );
    tokio::task::spawn_blocking(move || wait_refusing(port, LIMIT))
        .await
        .unwrap();
    assert_eq!(answers(new_port, 2).await, vec!["replica"; 2]);

    // Gone: addresses first, then the listener (the router refuses the other order).
    let (deleted, _) = sync(&mut client, &site_with(&connectors)).await;
    assert_eq!(
        deleted,
        [
            "listenerAddress/db/db-primary",
            "listenerAddress/db/db-replica",
            "tcpListener/multiAddress/db"
        ]
    );
    tokio::task::spawn_blocking(move || wait_refusing(new_port, LIMIT))
        .await
        .unwrap();
    assert!(client
        .query("listenerAddress", &["name"])
        .await
        .unwrap()
        .is_empty());
    client.close().await.unwrap();
}

//! Seeing the network from any site: `network status` from the routers' vanflow records, and
//! `link status` naming the site that made an incoming link.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{
    link_sites, running_site, serve_answer, site_status, text, vansite, vansite_ok, wait_reachable,
    Host,
};
use serde_json::Value;

fn network_status(host: &Host) -> Value {
    let output = vansite(host, &["network", "status", "--output", "json"]);
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)))
}

fn find<'a>(items: &'a Value, key: &str, value: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {items:#}"))
}

#[test]
fn every_site_sees_the_whole_network_whichever_way_the_link_points() {
    if crate::support::skip_without_test_host() {
        return;
    }
    let west = running_site("nww", true);
    let east = running_site("nwe", false);
    link_sites(&east, &west);

    // A service offered at east, listened for at west; one connection kept open.
    serve_answer(&east, 9090, "SYSTEM:'echo hello-from-east; sleep 60'");
    vansite_ok(&east, &["connector", "create", "greet", "9090"]);
    vansite_ok(&west, &["listener", "create", "greet", "8080"]);
    wait_reachable(&west, "greet");
    let mut client = TcpStream::connect(format!("{}:8080", west.addr())).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut greeting = [0u8; 16];
    client.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"hello-from-east\n");

    let site = |host: &Host| site_status(host)["site"].clone();
    let (west_site, east_site) = (site(&west), site(&east));
    assert_eq!(
        (&west_site["name"], &east_site["name"]),
        (&"nww".into(), &"nwe".into())
    );

    // East dialled the link, west accepted it: both see the same network.
    for (viewer, status) in [
        ("west", network_status(&west)),
        ("east", network_status(&east)),
    ] {
        let sites = &status["sites"];
        assert_eq!(sites.as_array().unwrap().len(), 2, "{viewer}: {sites:#}");
        for (site, namespace) in [(&west_site, "default"), (&east_site, "default")] {
            let seen = find(sites, "id", site["id"].as_str().unwrap());
            assert_eq!(seen["name"], site["name"], "{viewer}: {seen:#}");
            assert_eq!(seen["platform"], "podman", "{viewer}: {seen:#}");
            assert_eq!(seen["namespace"], namespace, "{viewer}: {seen:#}");
            assert_eq!(seen["routers"][0]["mode"], "interior", "{viewer}: {seen:#}");
        }

        let links = status["links"].as_array().unwrap();
        assert_eq!(links.len(), 1, "{viewer}: {links:#?}");
        assert_eq!(links[0]["fromSite"], east_site["name"], "{viewer}");
        assert_eq!(links[0]["toSite"], west_site["name"], "{viewer}");
        assert_eq!(links[0]["state"], "up", "{viewer}");
        assert_eq!(links[0]["role"], "inter-router", "{viewer}");

        let here = status["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["here"] == true);
        let asked = if viewer == "west" {
            &west_site
        } else {
            &east_site
        };
        assert_eq!(here.unwrap()["id"], asked["id"], "{viewer}");

        let greet = find(&status["services"], "routingKey", "greet");
        assert_eq!(greet["reachable"], true, "{viewer}: {greet:#}");
        assert_eq!(greet["listeners"][0]["site"], west_site["name"], "{viewer}");
        if viewer == "west" {
            // West knows its listener's forwarder; others see the router's port behind it.
            assert_eq!(greet["listeners"][0]["port"], "8080", "{viewer}");
        }
        assert_eq!(
            greet["connectors"][0]["site"], east_site["name"],
            "{viewer}"
        );
        assert_eq!(greet["connectors"][0]["port"], "9090", "{viewer}");
        assert_eq!(greet["openConnections"], 1, "{viewer}: {greet:#}");
        assert_eq!(greet["bytesReceived"], 16, "{viewer}: {greet:#}");

        let connection = find(&status["connections"], "routingKey", "greet");
        assert_eq!(connection["open"], true, "{viewer}");
        assert_eq!(
            connection["fromSite"], west_site["name"],
            "{viewer}: {status:#}"
        );
        assert_eq!(
            connection["toSite"], east_site["name"],
            "{viewer}: {connection:#}"
        );
    }

    // West sees east's link coming in, from east's site by name.
    let links: Value =
        serde_json::from_str(&vansite_ok(&west, &["link", "status", "-o", "json"])).unwrap();
    let incoming = &links["incoming"][0];
    assert_eq!(incoming["fromSite"], "nwe", "{links:#}");
    assert_eq!(incoming["role"], "inter-router", "{links:#}");
    assert!(incoming["since"].is_string(), "{links:#}");
    let table = vansite_ok(&west, &["link", "status"]);
    assert!(table.contains("Current links from other sites:"), "{table}");
    assert!(table.contains("nwe"), "{table}");

    // The table names the sites and marks the service reachable.
    let table = vansite_ok(&east, &["network", "status"]);
    for expected in [
        west_site["name"].as_str().unwrap(),
        east_site["name"].as_str().unwrap(),
        "greet",
        "up",
        "yes",
    ] {
        assert!(table.contains(expected), "{expected} missing:\n{table}");
    }

    // A listener with no connector anywhere stands out as unreachable.
    vansite_ok(&west, &["listener", "create", "nobody", "8081"]);
    let status = network_status(&east);
    let nobody = find(&status["services"], "routingKey", "nobody");
    assert_eq!(nobody["reachable"], false, "{nobody:#}");
    drop(client);
}

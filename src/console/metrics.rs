//! `/metrics`: the network in Prometheus' text format (version 0.0.4), with the names and
//! labels of Skupper's network observer where they overlap (`reference/vanflow.md` §4), and
//! `vansite_` names for what it lacks. Pure: the text is a function of the model.
//!
//! Counters come from the connections the model keeps (it never forgets an ended one), so they
//! only grow while the console's process runs; a new process starts them again, which
//! Prometheus takes as a counter reset.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::observe::network::{ConnectionView, Network};
use crate::observe::records::RecordId;

/// The protocol label of TCP connections (the only ones vansite's routers carry).
const TCP: &str = "tcp";

#[derive(Debug, Clone, Copy)]
enum MetricType {
    Counter,
    Gauge,
}

/// What one connection adds to a flow metric.
type FlowValue = fn(&ConnectionView) -> u64;

/// The metrics of connections, labelled by the listener's site (source), the connector's site
/// (destination) and the routing key, as Skupper's are.
const FLOW_METRICS: [(&str, MetricType, &str, FlowValue); 5] = [
    (
        "skupper_connections_opened_total",
        MetricType::Counter,
        "TCP connections opened, from the listener's site to the connector's.",
        |_| 1,
    ),
    (
        "skupper_connections_closed_total",
        MetricType::Counter,
        "TCP connections closed.",
        |c| u64::from(!c.open),
    ),
    (
        "vansite_connections_open",
        MetricType::Gauge,
        "TCP connections open now.",
        |c| u64::from(c.open),
    ),
    (
        "skupper_sent_bytes_total",
        MetricType::Counter,
        "Bytes from clients to the service.",
        |c| c.octets,
    ),
    (
        "skupper_received_bytes_total",
        MetricType::Counter,
        "Bytes from the service back to clients.",
        |c| c.octets_reverse,
    ),
];

/// Label names and values of one sample, in the order they are written.
type Labels = Vec<(&'static str, String)>;

/// One metric: its samples, each a set of labels and a value.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: BTreeMap<Labels, u64>,
}

impl Family {
    fn new(name: &'static str, kind: MetricType, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            samples: BTreeMap::new(),
        }
    }

    fn add(&mut self, labels: Labels, value: u64) {
        *self.samples.entry(labels).or_default() += value;
    }

    fn write(&self, out: &mut String) {
        let kind = match self.kind {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", self.name, labels.join(","));
        }
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of everything `network` knows.
pub fn render(network: &Network) -> String {
    let sites = network.sites();
    let site_id = |id: &Option<RecordId>| id.as_ref().map_or(String::new(), |id| id.0.clone());
    let site_name = |id: &Option<RecordId>| {
        id.as_ref().map_or(String::new(), |id| {
            sites
                .iter()
                .find(|s| s.id == *id)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| id.0.clone())
        })
    };

    let mut site_info = Family::new(
        "skupper_site_info",
        MetricType::Gauge,
        "A site of the network, by id, name and Skupper version.",
    );
    let mut routers = Family::new(
        "skupper_routers_total",
        MetricType::Gauge,
        "Routers of a site, by mode.",
    );
    for site in &sites {
        let id = site.id.0.clone();
        site_info.add(
            vec![
                ("site_id", id.clone()),
                ("name", site.name.clone().unwrap_or_else(|| id.clone())),
                ("version", site.version.clone().unwrap_or_default()),
            ],
            1,
        );
        for router in &site.routers {
            let mode = router.mode.as_ref().map_or("", |m| m.as_str()).to_string();
            routers.add(vec![("site_id", id.clone()), ("mode", mode)], 1);
        }
    }

    let mut links = Family::new(
        "skupper_site_links_total",
        MetricType::Gauge,
        "Links a site dials, by role and status (up or down).",
    );
    for link in network.links() {
        let role = link.role.as_ref().map_or("unknown", |r| r.as_str());
        let status = link.status.as_ref().map_or("unknown", |s| s.as_str());
        links.add(
            vec![
                ("site_id", site_id(&link.from_site)),
                ("role", role.to_string()),
                ("status", status.to_string()),
            ],
            1,
        );
    }

    let mut listeners = Family::new(
        "skupper_site_listeners_total",
        MetricType::Gauge,
        "Listeners of a site.",
    );
    let mut connectors = Family::new(
        "skupper_site_connectors_total",
        MetricType::Gauge,
        "Connectors of a site.",
    );
    for (family, endpoints) in [
        (&mut listeners, network.listeners()),
        (&mut connectors, network.connectors()),
    ] {
        for endpoint in endpoints {
            family.add(vec![("site_id", site_id(&endpoint.site))], 1);
        }
    }

    let mut reachable = Family::new(
        "vansite_service_reachable",
        MetricType::Gauge,
        "1 when a connector of the routing key is live somewhere, else 0.",
    );
    for service in network.services() {
        reachable.add(
            vec![("routing_key", service.routing_key)],
            u64::from(service.reachable),
        );
    }

    let mut flows: Vec<(Family, FlowValue)> = FLOW_METRICS
        .iter()
        .map(|&(name, kind, help, value)| (Family::new(name, kind, help), value))
        .collect();
    for connection in network.connections() {
        let labels = vec![
            ("source_site_id", site_id(&connection.from_site)),
            ("dest_site_id", site_id(&connection.to_site)),
            ("source_site_name", site_name(&connection.from_site)),
            ("dest_site_name", site_name(&connection.to_site)),
            (
                "routing_key",
                connection.routing_key.clone().unwrap_or_default(),
            ),
            ("protocol", TCP.to_string()),
        ];
        for (family, value) in &mut flows {
            family.add(labels.clone(), value(&connection));
        }
    }

    // Counted when they end, with the status class as Skupper's observer labels them.
    let mut requests = Family::new(
        "skupper_requests_total",
        MetricType::Counter,
        "HTTP requests observed on a listener's connections, by method and status class.",
    );
    for request in network.requests().into_iter().filter(|r| r.ended) {
        let code = match request.result.as_deref().and_then(|r| r.chars().next()) {
            Some(class @ '1'..='5') => format!("{class}xx"),
            _ => "unknown".to_string(),
        };
        requests.add(
            vec![
                ("routing_key", request.routing_key.unwrap_or_default()),
                ("method", request.method.unwrap_or_default()),
                ("code", code),
            ],
            1,
        );
    }

    let mut out = String::new();
    let families = [
        site_info, routers, links, listeners, connectors, reachable, requests,
    ];
    for family in families
        .iter()
        .chain(flows.iter().map(|(family, _)| family))
    {
        family.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::network::tests::run1;

    /// The metrics of capture run 1 (two sites, one link, 16 connections), compared with
    /// `tests/golden/console-metrics.txt` (`UPDATE_GOLDEN=1` rewrites it).
    #[test]
    fn metrics_of_two_sites() {
        let text = render(&run1());
        crate::golden::assert_golden("tests/golden/console-metrics.txt", &text);
        assert!(text.contains(
            "skupper_site_info{site_id=\"29a23db9-dff4-4072-8a39-7815e3e666b3\",name=\"west\",version=\"2.1.1\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "skupper_site_links_total{site_id=\"68745fc4-5769-4467-badb-f8bdd1a987a2\",\
                 role=\"inter-router\",status=\"up\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

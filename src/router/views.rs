//! Typed views of the router's management answers: the attributes vansite reads from a QUERY,
//! parsed once here instead of looked up by name where they are used. Attributes the router
//! leaves unset arrive as null and read as empty or absent.

use serde_json::{Map, Value};

type Row = Map<String, Value>;

fn text(row: &Row, key: &str) -> String {
    match row.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Which TCP adaptor entity a [`TcpEndpointView`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TcpEndpointKind {
    Listener,
    Connector,
}

impl TcpEndpointKind {
    pub const ALL: [TcpEndpointKind; 2] = [TcpEndpointKind::Listener, TcpEndpointKind::Connector];

    /// The management entity type.
    pub fn entity_type(self) -> &'static str {
        match self {
            TcpEndpointKind::Listener => "tcpListener",
            TcpEndpointKind::Connector => "tcpConnector",
        }
    }
}

/// A `tcpListener` or `tcpConnector`, with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEndpointView {
    pub kind: TcpEndpointKind,
    pub name: String,
    /// tcpListener: `up` while a connector of its address is reachable in the network.
    pub oper_status: Option<String>,
    /// tcpListener: why the router could not listen on its port (empty or absent: no failure).
    pub connection_msg: Option<String>,
    pub connections_opened: Option<u64>,
    pub connections_closed: Option<u64>,
}

impl TcpEndpointView {
    pub fn from_row(kind: TcpEndpointKind, row: &Row) -> TcpEndpointView {
        TcpEndpointView {
            kind,
            name: text(row, "name"),
            oper_status: row
                .get("operStatus")
                .and_then(Value::as_str)
                .map(str::to_string),
            connection_msg: row
                .get("connectionMsg")
                .and_then(Value::as_str)
                .filter(|message| !message.is_empty())
                .map(str::to_string),
            connections_opened: row.get("connectionsOpened").and_then(Value::as_u64),
            connections_closed: row.get("connectionsClosed").and_then(Value::as_u64),
        }
    }

    /// Client connections open now, when the router counts them. A tcpConnector's
    /// `connectionsOpened` starts at 1: skupper-router counts the connector's own
    /// `egress-dispatch` core connection there, which is never closed while the connector
    /// lives ("for legacy compatibility", `TL_setup_connector` in `tcp_adaptor.c`).
    pub fn open_connections(&self) -> Option<u64> {
        let uncounted = match self.kind {
            TcpEndpointKind::Listener => 0,
            TcpEndpointKind::Connector => 1,
        };
        self.connections_opened
            .zip(self.connections_closed)
            .map(|(opened, closed)| opened.saturating_sub(closed).saturating_sub(uncounted))
    }
}

/// A `connector` (a link this router dials) and how its connection fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorView {
    pub name: String,
    /// `SUCCESS`, `FAILED`, `CONNECTING`, ...
    pub connection_status: String,
    /// The router's last message about the connection: the last failure, or the last
    /// connection opened (see [`ConnectorView::last_error`]).
    pub connection_message: String,
}

impl ConnectorView {
    pub fn from_row(row: &Row) -> ConnectorView {
        ConnectorView {
            name: text(row, "name"),
            connection_status: text(row, "connectionStatus"),
            connection_message: text(row, "connectionMsg"),
        }
    }

    /// The connector's last connection failure, if its message is one. skupper-router keeps
    /// one message per connector, overwritten by either event: a failure,
    /// `Connection to HOST:PORT failed[: …]` (`qd_connector_handle_transport_error`), or
    /// success, `[Cn] Connection Opened: dir=out …` (`qd_connection_opened`), which is not an
    /// error.
    pub fn last_error(&self) -> Option<&str> {
        let message = self.connection_message.as_str();
        let failure = message
            .strip_prefix("Connection to ")
            .is_some_and(|rest| rest.contains(" failed"));
        failure.then_some(message)
    }
}

/// A `connection` of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionView {
    /// `in` or `out`.
    pub dir: String,
    /// `inter-router`, `edge`, `normal`, ...
    pub role: String,
    /// `host:port` of the other end.
    pub host: String,
    /// The other end's AMQP container id (a router's id, for a link).
    pub container: String,
    pub opened: bool,
    pub uptime_seconds: Option<u64>,
    /// The authenticated identity: with SASL EXTERNAL the peer certificate's subject, as
    /// OpenSSL's RFC 2253 form prints it (`OU=link-a,CN=west`: last RDN first).
    pub user: String,
}

impl ConnectionView {
    /// The OU of the peer certificate's subject: the name this site gave the incoming link
    /// when it issued its credentials (`certs::issue_link_client`).
    pub fn issued_link(&self) -> Option<&str> {
        self.user
            .split(',')
            .find_map(|part| part.trim().strip_prefix("OU="))
            .filter(|name| !name.is_empty())
    }

    pub fn from_row(row: &Row) -> ConnectionView {
        ConnectionView {
            dir: text(row, "dir"),
            role: text(row, "role"),
            host: text(row, "host"),
            container: text(row, "container"),
            opened: row.get("opened").and_then(Value::as_bool).unwrap_or(true),
            uptime_seconds: row.get("uptimeSeconds").and_then(Value::as_u64),
            user: text(row, "user"),
        }
    }
}

/// A `router.node`: a router reachable in the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub cost: i64,
    pub next_hop: String,
}

impl NodeView {
    pub fn from_row(row: &Row) -> NodeView {
        NodeView {
            id: text(row, "id"),
            cost: row.get("cost").and_then(Value::as_i64).unwrap_or_default(),
            next_hop: text(row, "nextHop"),
        }
    }
}

/// A `router.address`: where in the network an address has destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressView {
    /// The router's hash key: `M` and the address for a mobile address (a routing key).
    pub key: String,
    /// Destinations on this router (its tcpConnectors of the address).
    pub subscriber_count: u64,
    /// The ids of the other routers that have a destination for it.
    pub remote_host_routers: Vec<String>,
}

impl AddressView {
    pub fn from_row(row: &Row) -> AddressView {
        AddressView {
            key: text(row, "key"),
            subscriber_count: row
                .get("subscriberCount")
                .and_then(Value::as_u64)
                .unwrap_or_default(),
            remote_host_routers: row
                .get("remoteHostRouters")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The routing key, for a mobile address.
    pub fn routing_key(&self) -> Option<&str> {
        self.key.strip_prefix('M')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn views_read_what_vansite_uses_and_treat_null_as_unset() {
        let tcp = TcpEndpointView::from_row(
            TcpEndpointKind::Listener,
            &row(json!({
                "name": "listener/db", "operStatus": "up", "connectionsOpened": 5, "connectionsClosed": 3
            })),
        );
        assert_eq!(tcp.open_connections(), Some(2));
        assert_eq!(tcp.oper_status.as_deref(), Some("up"));
        let fresh = TcpEndpointView::from_row(
            TcpEndpointKind::Connector,
            &row(json!({"name": "connector/x@h", "operStatus": null})),
        );
        assert_eq!((fresh.open_connections(), fresh.oper_status), (None, None));
        // skupper-router 3.5.1's answer for a new tcpConnector and for one with 2 of its 3
        // client connections ended: the first "opened" is its egress-dispatch connection.
        let connector = |opened: u64, closed: u64| {
            TcpEndpointView::from_row(
                TcpEndpointKind::Connector,
                &row(
                    json!({"name": "connector/db@h", "connectionsOpened": opened, "connectionsClosed": closed}),
                ),
            )
        };
        assert_eq!(connector(1, 0).open_connections(), Some(0));
        assert_eq!(connector(4, 2).open_connections(), Some(1));
        // What skupper-router 3.5.1 answers for a connected link and for a failing one.
        let link = |message: &str| {
            ConnectorView::from_row(&row(json!({"name": "l", "connectionMsg": message})))
        };
        let opened = "[C6] Connection Opened: dir=out host=127.0.0.1:25001 encrypted=TLSv1.3 auth=EXTERNAL user=(null) container_id=hub";
        assert_eq!(link(opened).last_error(), None);
        let failed = "Connection to 127.0.0.1:25001 failed: amqp:connection:framing-error SSL Failure: error:0A000418:SSL routines::tlsv1 alert unknown ca";
        assert_eq!(link(failed).last_error(), Some(failed));
        assert_eq!(link("").last_error(), None);
        let connection = ConnectionView::from_row(&row(json!({
            "dir": "out", "role": "inter-router", "host": "h:55671", "container": null, "uptimeSeconds": 9
        })));
        assert!(connection.opened, "a connection without `opened` is open");
        assert_eq!(connection.issued_link(), None, "no user, no link name");
        // skupper-router 3.5.1 prints the subject as RFC 2253: last RDN first, no spaces.
        let issued = ConnectionView::from_row(&row(json!({"user": "OU=link-a,CN=spokeA"})));
        assert_eq!(issued.issued_link(), Some("link-a"));
        let skuppers = ConnectionView::from_row(&row(json!({"user": "CN=east"})));
        assert_eq!(skuppers.issued_link(), None);
        assert_eq!(connection.container, "");
        assert_eq!(connection.uptime_seconds, Some(9));
        let node = NodeView::from_row(&row(json!({"id": "west", "cost": 1, "nextHop": null})));
        assert_eq!((node.cost, node.next_hop.as_str()), (1, ""));
        let address = AddressView::from_row(&row(json!({
            "key": "Mdb", "subscriberCount": 1, "remoteCount": 1, "remoteHostRouters": ["east"]
        })));
        assert_eq!(address.routing_key(), Some("db"));
        assert_eq!(address.remote_host_routers, ["east"]);
        let router =
            AddressView::from_row(&row(json!({"key": "Reast", "remoteHostRouters": null})));
        assert_eq!((router.routing_key(), router.subscriber_count), (None, 0));
    }
}

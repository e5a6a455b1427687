//! Typed vanflow records (`reference/vanflow.md` §2, §3).
//!
//! On the wire a record is a map from attribute codes (uint) to values (ulong or string). Every
//! map is a *partial update*: its type, its identity, and only the attributes that changed since
//! the router last emitted it. This module turns such a map into a [`Record`] once, with the
//! attributes vansite uses as typed fields, and merges updates attribute by attribute.
//! Attributes vansite does not use are dropped here, whatever their type, so that a newer
//! router adding one cannot break decoding.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Attribute code 0: the record type, in every map.
const RECORD_TYPE: u32 = 0;
/// Attribute code 1: the record identity, in every map.
const IDENTITY: u32 = 1;

/// One attribute value as the wire carries it, before it is given a meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// Any unsigned integer (the router sends ulong for numbers, uint for the record type).
    Number(u64),
    /// A UTF-8 string (the router's str8/str32; references to other records too).
    Text(String),
    /// Any other AMQP type, by name: never sent by skupper-router 3.5.1, kept so that an
    /// unexpected value is an error only for an attribute vansite reads.
    Other(&'static str),
}

impl AttrValue {
    fn kind(&self) -> &'static str {
        match self {
            Self::Number(_) => "unsigned integer",
            Self::Text(_) => "string",
            Self::Other(name) => name,
        }
    }
}

/// A record map as decoded from the wire: attribute code → value.
pub type RecordMap = BTreeMap<u32, AttrValue>;

/// Why a record map is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("vanflow record has no record type (attribute 0)")]
    MissingType,
    #[error("vanflow record of type {0} has no identity (attribute 1)")]
    MissingIdentity(RecordType),
    #[error("vanflow record type code {0} does not fit a uint")]
    TypeOutOfRange(u64),
    #[error("vanflow attribute {code} ({name}) is a {found}, expected {expected}")]
    WrongType {
        code: u32,
        name: &'static str,
        expected: &'static str,
        found: &'static str,
    },
}

/// The record types (`reference/vanflow.md` §2). Types vansite does not model keep their code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    Site,
    Router,
    Link,
    Listener,
    Connector,
    Log,
    RouterAccess,
    /// A TCP connection, from the router of its listener.
    BiflowTport,
    /// An HTTP request or HTTP/2 stream inside a [`RecordType::BiflowTport`].
    BiflowApp,
    /// CONTROLLER, FLOW, PROCESS, IMAGE, ... and codes newer than this table.
    Other(u32),
}

impl RecordType {
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::Site,
            1 => Self::Router,
            2 => Self::Link,
            4 => Self::Listener,
            5 => Self::Connector,
            14 => Self::Log,
            15 => Self::RouterAccess,
            16 => Self::BiflowTport,
            17 => Self::BiflowApp,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Site => f.write_str("SITE"),
            Self::Router => f.write_str("ROUTER"),
            Self::Link => f.write_str("LINK"),
            Self::Listener => f.write_str("LISTENER"),
            Self::Connector => f.write_str("CONNECTOR"),
            Self::Log => f.write_str("LOG"),
            Self::RouterAccess => f.write_str("ROUTER_ACCESS"),
            Self::BiflowTport => f.write_str("BIFLOW_TPORT"),
            Self::BiflowApp => f.write_str("BIFLOW_APP"),
            Self::Other(code) => write!(f, "record type {code}"),
        }
    }
}

/// A record identity: `<source>:<n>` for router-made records, the site id for SITE. Identities
/// repeat when a router restarts (its counter starts again at 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub String);

impl RecordId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point in time, in microseconds since the Unix epoch: the unit of every vanflow time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The wall clock, as vanflow times are (the routers' clocks are wall clocks too).
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
    }

    /// `self + d`, saturating (a far deadline stays far instead of wrapping).
    pub fn after(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(micros))
    }
}

/// LINK operStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperStatus {
    Up,
    Down,
    Other(String),
}

/// ROUTER mode (PROCESS records use the same attribute for other words, kept as `Other`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterMode {
    Interior,
    Edge,
    Standalone,
    Endpoint,
    Other(String),
}

/// LINK and ROUTER_ACCESS role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRole {
    InterRouter,
    Edge,
    InterEdge,
    Other(String),
}

impl OperStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Other(s) => s,
        }
    }
}

impl RouterMode {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Interior => "interior",
            Self::Edge => "edge",
            Self::Standalone => "standalone",
            Self::Endpoint => "endpoint",
            Self::Other(s) => s,
        }
    }
}

impl LinkRole {
    pub fn as_str(&self) -> &str {
        match self {
            Self::InterRouter => "inter-router",
            Self::Edge => "edge",
            Self::InterEdge => "inter-edge",
            Self::Other(s) => s,
        }
    }
}

/// LOG severity (the router emits warning and above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSeverity {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Other(u64),
}

/// How an attribute value becomes a typed field; `None` = the value has the wrong wire type.
trait FromAttr: Sized {
    const EXPECTED: &'static str;
    fn from_attr(value: AttrValue) -> Option<Self>;
}

impl FromAttr for String {
    const EXPECTED: &'static str = "string";
    fn from_attr(value: AttrValue) -> Option<Self> {
        match value {
            AttrValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl FromAttr for u64 {
    const EXPECTED: &'static str = "unsigned integer";
    fn from_attr(value: AttrValue) -> Option<Self> {
        match value {
            AttrValue::Number(n) => Some(n),
            _ => None,
        }
    }
}

impl FromAttr for RecordId {
    const EXPECTED: &'static str = String::EXPECTED;
    fn from_attr(value: AttrValue) -> Option<Self> {
        String::from_attr(value).map(Self)
    }
}

impl FromAttr for Timestamp {
    const EXPECTED: &'static str = "unsigned integer (µs since the epoch)";
    fn from_attr(value: AttrValue) -> Option<Self> {
        u64::from_attr(value).map(Self)
    }
}

/// Latencies are µs on the wire.
impl FromAttr for Duration {
    const EXPECTED: &'static str = "unsigned integer (µs)";
    fn from_attr(value: AttrValue) -> Option<Self> {
        u64::from_attr(value).map(Duration::from_micros)
    }
}

/// LINK httpProxy: `yes` when dialled through a proxy, else `no`.
impl FromAttr for bool {
    const EXPECTED: &'static str = "string yes/no";
    fn from_attr(value: AttrValue) -> Option<Self> {
        String::from_attr(value).map(|s| s == "yes")
    }
}

impl FromAttr for OperStatus {
    const EXPECTED: &'static str = String::EXPECTED;
    fn from_attr(value: AttrValue) -> Option<Self> {
        String::from_attr(value).map(|s| match s.as_str() {
            "up" => Self::Up,
            "down" => Self::Down,
            _ => Self::Other(s),
        })
    }
}

impl FromAttr for RouterMode {
    const EXPECTED: &'static str = String::EXPECTED;
    fn from_attr(value: AttrValue) -> Option<Self> {
        String::from_attr(value).map(|s| match s.as_str() {
            "interior" => Self::Interior,
            "edge" => Self::Edge,
            "standalone" => Self::Standalone,
            "endpoint" => Self::Endpoint,
            _ => Self::Other(s),
        })
    }
}

impl FromAttr for LinkRole {
    const EXPECTED: &'static str = String::EXPECTED;
    fn from_attr(value: AttrValue) -> Option<Self> {
        String::from_attr(value).map(|s| match s.as_str() {
            "inter-router" => Self::InterRouter,
            "edge" => Self::Edge,
            "inter-edge" => Self::InterEdge,
            _ => Self::Other(s),
        })
    }
}

impl FromAttr for LogSeverity {
    const EXPECTED: &'static str = u64::EXPECTED;
    fn from_attr(value: AttrValue) -> Option<Self> {
        u64::from_attr(value).map(|n| match n {
            0 => Self::Debug,
            1 => Self::Info,
            2 => Self::Warning,
            3 => Self::Error,
            4 => Self::Critical,
            _ => Self::Other(n),
        })
    }
}

/// Declares the attributes vansite reads, once: the struct, parsing by code and merging.
macro_rules! attributes {
    ($( $(#[$doc:meta])* $code:literal $name:literal $field:ident : $ty:ty, )*) => {
        /// The attributes of a record that vansite uses (`reference/vanflow.md` §3.1); absent
        /// = not in this update (or never sent for this record).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Attributes {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
        }

        impl Attributes {
            /// Sets the attribute with wire code `code`; codes vansite does not use are ignored.
            fn set(&mut self, code: u32, value: AttrValue) -> Result<(), RecordError> {
                match code {
                    $( $code => {
                        let found = value.kind();
                        self.$field = Some(<$ty as FromAttr>::from_attr(value).ok_or(
                            RecordError::WrongType {
                                code,
                                name: $name,
                                expected: <$ty as FromAttr>::EXPECTED,
                                found,
                            },
                        )?);
                    } )*
                    _ => {}
                }
                Ok(())
            }

            /// Applies a partial update: every attribute present in `update` replaces ours.
            pub fn merge(&mut self, update: Attributes) {
                $( if update.$field.is_some() { self.$field = update.$field; } )*
            }
        }
    };
}

attributes! {
    /// The parent record (ROUTER → SITE, LISTENER → ROUTER, BIFLOW_TPORT → LISTENER, ...).
    2 "parent" parent: RecordId,
    3 "startTime" start_time: Timestamp,
    /// Present = the object is gone (deleted listener, closed connection).
    4 "endTime" end_time: Timestamp,
    /// LINK: the ROUTER_ACCESS of the router it connected to.
    6 "peer" peer: RecordId,
    /// CONNECTOR: the tcpConnector's processId.
    7 "process" process: String,
    11 "platform" platform: String,
    12 "namespace" namespace: String,
    13 "mode" mode: RouterMode,
    /// BIFLOW_TPORT: the client's address.
    14 "sourceHost" source_host: String,
    /// LISTENER: bind host; CONNECTOR: target host.
    15 "destHost" dest_host: String,
    16 "protocol" protocol: String,
    17 "sourcePort" source_port: String,
    /// A string on the wire: the router takes service names as ports too.
    18 "destPort" dest_port: String,
    /// LISTENER, CONNECTOR: the routing key.
    19 "vanAddress" van_address: String,
    20 "imageName" image_name: String,
    21 "imageVersion" image_version: String,
    22 "hostname" hostname: String,
    /// BIFLOW_TPORT: bytes client → service; LINK: bytes sent.
    23 "octets" octets: u64,
    /// BIFLOW_TPORT: listener side, first byte from the client → first byte back.
    24 "latency" latency: Duration,
    27 "method" method: String,
    28 "result" result: String,
    29 "reason" reason: String,
    30 "name" name: String,
    /// BIFLOW_TPORT: routers crossed before the connector's router, `|`-separated.
    31 "trace" trace: String,
    /// ROUTER: router version; SITE: Skupper version.
    32 "buildVersion" build_version: String,
    33 "linkCost" link_cost: u64,
    40 "flowCountL4" flow_count_l4: u64,
    48 "logSeverity" log_severity: LogSeverity,
    49 "logText" log_text: String,
    52 "linkCount" link_count: u64,
    53 "operStatus" oper_status: OperStatus,
    54 "role" role: LinkRole,
    55 "upTimeStamp" up_time: Timestamp,
    56 "downTimeStamp" down_time: Timestamp,
    57 "downCount" down_count: u64,
    /// BIFLOW_TPORT: bytes service → client; LINK: bytes received.
    58 "octetsReverse" octets_reverse: u64,
    /// BIFLOW_TPORT: the CONNECTOR (on another router) that served it.
    60 "connector" connector: RecordId,
    /// BIFLOW_TPORT: connector side, first byte to the service → first byte back.
    61 "processLatency" process_latency: Duration,
    62 "proxyHost" proxy_host: String,
    63 "proxyPort" proxy_port: String,
    64 "errorListenerSide" error_listener_side: String,
    65 "errorConnectorSide" error_connector_side: String,
    67 "httpProxy" http_proxy: bool,
}

/// One record, or one partial update of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordType,
    pub identity: RecordId,
    pub attributes: Attributes,
}

impl Record {
    /// Parses a wire map. The type and identity are required; attributes vansite reads must
    /// have their wire type (as Skupper's own decoder requires); others are ignored.
    pub fn from_map(mut map: RecordMap) -> Result<Self, RecordError> {
        let kind = match map.remove(&RECORD_TYPE) {
            Some(AttrValue::Number(code)) => RecordType::from_code(
                u32::try_from(code).map_err(|_| RecordError::TypeOutOfRange(code))?,
            ),
            Some(other) => {
                return Err(RecordError::WrongType {
                    code: RECORD_TYPE,
                    name: "recordType",
                    expected: "uint",
                    found: other.kind(),
                })
            }
            None => return Err(RecordError::MissingType),
        };
        let identity = match map.remove(&IDENTITY) {
            Some(AttrValue::Text(id)) => RecordId(id),
            Some(other) => {
                return Err(RecordError::WrongType {
                    code: IDENTITY,
                    name: "identity",
                    expected: "string",
                    found: other.kind(),
                })
            }
            None => return Err(RecordError::MissingIdentity(kind)),
        };
        let mut attributes = Attributes::default();
        for (code, value) in map {
            attributes.set(code, value)?;
        }
        Ok(Self {
            kind,
            identity,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(u32, AttrValue)>) -> RecordMap {
        entries.into_iter().collect()
    }

    fn text(s: &str) -> AttrValue {
        AttrValue::Text(s.to_string())
    }

    #[test]
    fn link_map_becomes_typed_attributes() {
        let record = Record::from_map(map(vec![
            (0, AttrValue::Number(2)),
            (1, text("IIKRr:1")),
            (2, text("IIKRr:0")),
            (6, text("w2x5z:1")),
            (33, AttrValue::Number(1)),
            (53, text("up")),
            (54, text("inter-router")),
            (67, text("no")),
        ]))
        .unwrap();
        assert_eq!(record.kind, RecordType::Link);
        assert_eq!(record.identity, RecordId("IIKRr:1".into()));
        let a = &record.attributes;
        assert_eq!(a.parent, Some(RecordId("IIKRr:0".into())));
        assert_eq!(a.peer, Some(RecordId("w2x5z:1".into())));
        assert_eq!(a.link_cost, Some(1));
        assert_eq!(a.oper_status, Some(OperStatus::Up));
        assert_eq!(a.role, Some(LinkRole::InterRouter));
        assert_eq!(a.http_proxy, Some(false));
    }

    #[test]
    fn unknown_record_types_keep_their_code() {
        assert_eq!(RecordType::from_code(7), RecordType::Other(7));
        assert_eq!(RecordType::from_code(16), RecordType::BiflowTport);
    }

    #[test]
    fn unused_attributes_are_ignored_whatever_their_type() {
        // 35 octetRate is unused by vansite; 99 is not in the table at all.
        let record = Record::from_map(map(vec![
            (0, AttrValue::Number(4)),
            (1, text("a:2")),
            (35, AttrValue::Other("bool")),
            (99, text("future")),
        ]))
        .unwrap();
        assert_eq!(record.attributes, Attributes::default());
    }

    #[test]
    fn a_used_attribute_of_the_wrong_type_is_an_error() {
        let err = Record::from_map(map(vec![
            (0, AttrValue::Number(16)),
            (1, text("a:6")),
            (23, text("5000")),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            RecordError::WrongType {
                code: 23,
                name: "octets",
                expected: "unsigned integer",
                found: "string"
            }
        );
    }

    #[test]
    fn type_and_identity_are_required() {
        assert_eq!(
            Record::from_map(map(vec![(1, text("a:1"))])),
            Err(RecordError::MissingType)
        );
        assert_eq!(
            Record::from_map(map(vec![(0, AttrValue::Number(4))])),
            Err(RecordError::MissingIdentity(RecordType::Listener))
        );
        assert!(matches!(
            Record::from_map(map(vec![(0, text("4")), (1, text("a:1"))])),
            Err(RecordError::WrongType { code: 0, .. })
        ));
    }

    #[test]
    fn merge_replaces_only_what_the_update_carries() {
        let mut base = Attributes {
            name: Some("echo".into()),
            octets: Some(5000),
            latency: Some(Duration::from_micros(50548)),
            ..Default::default()
        };
        base.merge(Attributes {
            octets: Some(7000),
            end_time: Some(Timestamp(1_796_071_399_186_791)),
            ..Default::default()
        });
        assert_eq!(base.name.as_deref(), Some("echo"));
        assert_eq!(base.octets, Some(7000));
        assert_eq!(base.latency, Some(Duration::from_micros(50548)));
        assert_eq!(base.end_time, Some(Timestamp(1_796_071_399_186_791)));
    }
}

//! Decoding one vanflow message: the bytes of an AMQP 1.0 bare message (the payload of one
//! transfer) → [`Decoded`] (`reference/vanflow.md` §1.3, §1.4).
//!
//! Why not fe2o3-amqp's `Message`: skupper-router sends its message-id as an AMQP `long`
//! (smalllong `0x55` up to 127, then `0x81`), which is not one of the types AMQP allows for a
//! message-id (ulong, uuid, binary, string). fe2o3-amqp-types 0.18 decodes `Properties` with a
//! typed `MessageId` whose decoder accepts only those four format codes, so the whole message
//! fails to decode (`serde_amqp` error "Invalid format code"), and `Receiver::recv` returns a
//! `MessageDecode` error for *every* message the router sends: there is no lenient mode and no
//! way to get the raw bytes back from that error. The test
//! `fe2o3_message_decoding_rejects_the_routers_long_message_id` keeps this true (it fails
//! the day fe2o3 accepts it). So this module splits the sections itself and decodes each one
//! as an untyped `serde_amqp::Value`, then reads the few fields vanflow uses.

use std::collections::BTreeMap;
use std::fmt;

use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;

use super::records::{AttrValue, Record, RecordError, RecordMap, Timestamp};

/// Section descriptors (AMQP 1.0 §3.2), by code and by name.
const PROPERTIES: (u64, &str) = (0x73, "amqp:properties:list");
const APPLICATION_PROPERTIES: (u64, &str) = (0x74, "amqp:application-properties:map");
const AMQP_VALUE: (u64, &str) = (0x77, "amqp:amqp-value:*");

/// A vanflow source: a router (`<source>:0`) or a Skupper controller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub String);

impl SourceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The source whose records arrive on `address` (`mc/sfe.<id>`, `.flows`, `.logs`,
    /// `.heartbeats`); `None` for `mc/sfe.all`, where each BEACON names its own source.
    pub fn of_address(address: &str) -> Option<Self> {
        let rest = address.strip_prefix("mc/sfe.")?;
        if rest == "all" {
            return None;
        }
        let id = [".flows", ".logs", ".heartbeats"]
            .iter()
            .find_map(|suffix| rest.strip_suffix(suffix))
            .unwrap_or(rest);
        Some(Self(id.to_string()))
    }

    /// The source whose FLUSH address (`sfe.<id>`) the router lists as `Msfe.<id>` in its
    /// `router.address` table: every router of the network has one.
    pub fn of_direct_address_key(key: &str) -> Option<Self> {
        key.strip_prefix("Msfe.").map(|id| Self(id.to_string()))
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// BEACON `sourceType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceType {
    Router,
    Controller,
    Other(String),
}

/// A BEACON: a source announcing itself and its addresses on `mc/sfe.all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// Protocol version (`v`), 1.
    pub version: u32,
    pub source_type: SourceType,
    pub id: SourceId,
    /// Where its records go (`mc/sfe.<id>`; flows on `.flows`, logs on `.logs`).
    pub address: String,
    /// Where it takes FLUSH requests (`sfe.<id>`).
    pub direct: String,
}

impl Beacon {
    /// What a router's BEACON says, for a router found another way (its FLUSH address in
    /// the routing table) before its next beacon, which may be 10 s away.
    pub fn router(id: SourceId) -> Self {
        Self {
            version: 1,
            source_type: SourceType::Router,
            address: format!("mc/sfe.{id}"),
            direct: format!("sfe.{id}"),
            id,
        }
    }

    /// The addresses to receive from: records, and flows (routers) or heartbeats
    /// (controllers).
    pub fn addresses(&self) -> [String; 2] {
        let second = match self.source_type {
            SourceType::Controller => "heartbeats",
            SourceType::Router | SourceType::Other(_) => "flows",
        };
        [self.address.clone(), format!("{}.{second}", self.address)]
    }
}

/// A HEARTBEAT: the source is alive (every 2 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: SourceId,
    /// The source's clock.
    pub now: Timestamp,
}

/// What a vanflow message says, by subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VanflowMessage {
    Beacon(Beacon),
    Heartbeat(Heartbeat),
    /// Partial record updates, in the order sent (not sorted).
    Record(Vec<Record>),
    /// A collector's request that the source re-send all its live records.
    Flush,
}

/// A message-id as sent. skupper-router's is `Long` (a per-router counter, shared by all its
/// messages, with gaps: not usable to detect loss); the others are AMQP's legal types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageId {
    Long(i64),
    Ulong(u64),
    Uuid([u8; 16]),
    Binary(Vec<u8>),
    String(String),
}

/// A decoded message with the properties a collector may want to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub message_id: Option<MessageId>,
    /// The address it was sent to.
    pub to: Option<String>,
    pub message: VanflowMessage,
}

/// Why bytes are not a vanflow message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("AMQP message truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("unknown AMQP format code {code:#04x} at byte {offset}")]
    FormatCode { code: u8, offset: usize },
    #[error("expected an AMQP message section at byte {offset}")]
    NotASection { offset: usize },
    #[error("cannot decode the AMQP {section} section: {detail}")]
    Codec {
        section: &'static str,
        detail: String,
    },
    #[error("the {section} section is {found}, expected {expected}")]
    SectionShape {
        section: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("{field} is {found}, expected {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("vanflow message has no subject")]
    NoSubject,
    #[error("unknown vanflow subject {0:?}")]
    UnknownSubject(String),
    #[error("{subject} has no application property {name:?}")]
    MissingProperty {
        subject: &'static str,
        name: &'static str,
    },
    #[error("record {index} of a RECORD message: {source}")]
    Record { index: usize, source: RecordError },
}

/// Decodes the bytes of one bare message (the sections of one transfer's payload).
pub fn decode(bytes: &[u8]) -> Result<Decoded, WireError> {
    let mut properties = None;
    let mut application_properties = None;
    let mut value = None;
    let mut offset = 0;
    while offset < bytes.len() {
        let len = encoded_len(bytes, offset)?;
        let section = &bytes[offset..offset + len];
        let Value::Described(described) = decode_value(section, "message")? else {
            return Err(WireError::NotASection { offset });
        };
        let Described {
            descriptor,
            value: v,
        } = *described;
        if is(&descriptor, PROPERTIES) {
            properties = Some(v);
        } else if is(&descriptor, APPLICATION_PROPERTIES) {
            application_properties = Some(v);
        } else if is(&descriptor, AMQP_VALUE) {
            value = Some(v);
        }
        // Header, annotations, data, sequence and footer carry nothing for vanflow; the
        // router sends none of them.
        offset += len;
    }

    let (message_id, to, subject) = match properties {
        Some(p) => read_properties(p)?,
        None => (None, None, None),
    };
    let props = match application_properties {
        Some(Value::Map(map)) => string_keys(map)?,
        Some(other) => {
            return Err(WireError::SectionShape {
                section: "application-properties",
                expected: "a map",
                found: type_name(&other),
            })
        }
        None => BTreeMap::new(),
    };
    let message = match subject.as_deref() {
        Some("BEACON") => VanflowMessage::Beacon(beacon(&props)?),
        Some("HEARTBEAT") => VanflowMessage::Heartbeat(heartbeat(&props)?),
        Some("RECORD") => VanflowMessage::Record(records(value)?),
        Some("FLUSH") => VanflowMessage::Flush,
        Some(other) => return Err(WireError::UnknownSubject(other.to_string())),
        None => return Err(WireError::NoSubject),
    };
    Ok(Decoded {
        message_id,
        to,
        message,
    })
}

fn is(descriptor: &Descriptor, (code, name): (u64, &str)) -> bool {
    match descriptor {
        Descriptor::Code(c) => *c == code,
        Descriptor::Name(n) => n.0 == name,
    }
}

fn decode_value(bytes: &[u8], section: &'static str) -> Result<Value, WireError> {
    serde_amqp::from_slice(bytes).map_err(|e| WireError::Codec {
        section,
        detail: e.to_string(),
    })
}

/// The size of the AMQP value encoded at `offset` (AMQP 1.0 §1.6: the format code says how
/// wide a fixed value is, or how many bytes hold the size of a variable one).
fn encoded_len(bytes: &[u8], offset: usize) -> Result<usize, WireError> {
    let truncated = WireError::Truncated { offset };
    let code = *bytes.get(offset).ok_or(truncated.clone())?;
    let size_at = |width: usize| -> Result<usize, WireError> {
        let raw = bytes
            .get(offset + 1..offset + 1 + width)
            .ok_or(truncated.clone())?;
        Ok(raw.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)))
    };
    let len = match code {
        // A described value: the constructor, the descriptor, then the value.
        0x00 => {
            let descriptor = encoded_len(bytes, offset + 1)?;
            1 + descriptor + encoded_len(bytes, offset + 1 + descriptor)?
        }
        0x40..=0x45 => 1,
        0x50..=0x56 => 2,
        0x60..=0x61 => 3,
        0x70..=0x74 => 5,
        0x80..=0x84 => 9,
        0x94 | 0x98 => 17,
        0xa0..=0xa3 | 0xc0 | 0xc1 | 0xe0 => 2 + size_at(1)?,
        0xb0..=0xb3 | 0xd0 | 0xd1 | 0xf0 => 5 + size_at(4)?,
        _ => return Err(WireError::FormatCode { code, offset }),
    };
    if offset + len > bytes.len() {
        return Err(truncated);
    }
    Ok(len)
}

type PropertiesFields = (Option<MessageId>, Option<String>, Option<String>);

/// Reads message-id (field 0), to (2) and subject (3) from the properties list.
fn read_properties(properties: Value) -> Result<PropertiesFields, WireError> {
    let Value::List(fields) = properties else {
        return Err(WireError::SectionShape {
            section: "properties",
            expected: "a list",
            found: type_name(&properties),
        });
    };
    let mut fields = fields.into_iter();
    let message_id = match fields.next() {
        None | Some(Value::Null) => None,
        Some(Value::Long(n)) => Some(MessageId::Long(n)),
        Some(Value::Ulong(n)) => Some(MessageId::Ulong(n)),
        Some(Value::Uuid(u)) => Some(MessageId::Uuid(*u.as_inner())),
        Some(Value::Binary(b)) => Some(MessageId::Binary(b.into_vec())),
        Some(Value::String(s)) => Some(MessageId::String(s)),
        Some(other) => {
            return Err(WireError::FieldType {
                field: "message-id",
                expected: "long, ulong, uuid, binary or string",
                found: type_name(&other),
            })
        }
    };
    let _user_id = fields.next();
    let to = optional_string(fields.next(), "to")?;
    let subject = optional_string(fields.next(), "subject")?;
    Ok((message_id, to, subject))
}

fn optional_string(value: Option<Value>, field: &'static str) -> Result<Option<String>, WireError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(WireError::FieldType {
            field,
            expected: "a string",
            found: type_name(&other),
        }),
    }
}

/// Application properties by name: the router's keys are symbols, Skupper's Go code sends
/// strings; both are accepted.
fn string_keys(map: OrderedMap<Value, Value>) -> Result<BTreeMap<String, Value>, WireError> {
    map.into_iter()
        .map(|(k, v)| match k {
            Value::Symbol(s) => Ok((s.0, v)),
            Value::String(s) => Ok((s, v)),
            other => Err(WireError::FieldType {
                field: "application-properties key",
                expected: "a symbol or string",
                found: type_name(&other),
            }),
        })
        .collect()
}

fn property<'a>(
    props: &'a BTreeMap<String, Value>,
    subject: &'static str,
    name: &'static str,
) -> Result<&'a Value, WireError> {
    props
        .get(name)
        .ok_or(WireError::MissingProperty { subject, name })
}

fn string_property(
    props: &BTreeMap<String, Value>,
    subject: &'static str,
    name: &'static str,
) -> Result<String, WireError> {
    match property(props, subject, name)? {
        Value::String(s) => Ok(s.clone()),
        other => Err(WireError::FieldType {
            field: name,
            expected: "a string",
            found: type_name(other),
        }),
    }
}

fn number_property(
    props: &BTreeMap<String, Value>,
    subject: &'static str,
    name: &'static str,
) -> Result<u64, WireError> {
    let value = property(props, subject, name)?;
    unsigned(value).ok_or_else(|| WireError::FieldType {
        field: name,
        expected: "an unsigned integer",
        found: type_name(value),
    })
}

/// Any AMQP unsigned integer: the router's `v` is uint and `now` ulong (Skupper's decoder
/// requires exactly those); a narrower encoder's choice costs nothing to accept.
fn unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Ubyte(n) => Some(u64::from(*n)),
        Value::Ushort(n) => Some(u64::from(*n)),
        Value::Uint(n) => Some(u64::from(*n)),
        Value::Ulong(n) => Some(*n),
        _ => None,
    }
}

fn beacon(props: &BTreeMap<String, Value>) -> Result<Beacon, WireError> {
    const S: &str = "BEACON";
    let version = number_property(props, S, "v")?;
    let source_type = match string_property(props, S, "sourceType")?.as_str() {
        "ROUTER" => SourceType::Router,
        "CONTROLLER" => SourceType::Controller,
        other => SourceType::Other(other.to_string()),
    };
    Ok(Beacon {
        version: u32::try_from(version).map_err(|_| WireError::FieldType {
            field: "v",
            expected: "a uint",
            found: format!("ulong {version}"),
        })?,
        source_type,
        id: SourceId(string_property(props, S, "id")?),
        address: string_property(props, S, "address")?,
        direct: string_property(props, S, "direct")?,
    })
}

fn heartbeat(props: &BTreeMap<String, Value>) -> Result<Heartbeat, WireError> {
    const S: &str = "HEARTBEAT";
    Ok(Heartbeat {
        id: SourceId(string_property(props, S, "id")?),
        now: Timestamp(number_property(props, S, "now")?),
    })
}

/// A RECORD body: an amqp-value list of maps with uint keys.
fn records(body: Option<Value>) -> Result<Vec<Record>, WireError> {
    let maps = match body {
        Some(Value::List(maps)) => maps,
        Some(other) => {
            return Err(WireError::SectionShape {
                section: "RECORD amqp-value",
                expected: "a list of maps",
                found: type_name(&other),
            })
        }
        None => {
            return Err(WireError::SectionShape {
                section: "RECORD amqp-value",
                expected: "a list of maps",
                found: "no body".into(),
            })
        }
    };
    maps.into_iter()
        .enumerate()
        .map(|(index, map)| {
            record_map(map).and_then(|m| {
                Record::from_map(m).map_err(|source| WireError::Record { index, source })
            })
        })
        .collect()
}

fn record_map(value: Value) -> Result<RecordMap, WireError> {
    let Value::Map(map) = value else {
        return Err(WireError::SectionShape {
            section: "RECORD amqp-value",
            expected: "a list of maps",
            found: format!("a list holding {}", type_name(&value)),
        });
    };
    map.into_iter()
        .map(|(k, v)| {
            let Value::Uint(code) = k else {
                return Err(WireError::FieldType {
                    field: "record attribute key",
                    expected: "a uint",
                    found: type_name(&k),
                });
            };
            let value = match v {
                Value::String(s) => AttrValue::Text(s),
                other => match unsigned(&other) {
                    Some(n) => AttrValue::Number(n),
                    None => AttrValue::Other(amqp_type(&other)),
                },
            };
            Ok((code, value))
        })
        .collect()
}

/// The AMQP type of a value, for error messages.
fn amqp_type(value: &Value) -> &'static str {
    match value {
        Value::Described(_) => "described value",
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Ubyte(_) => "ubyte",
        Value::Ushort(_) => "ushort",
        Value::Uint(_) => "uint",
        Value::Ulong(_) => "ulong",
        Value::Byte(_) => "byte",
        Value::Short(_) => "short",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Decimal32(_) => "decimal32",
        Value::Decimal64(_) => "decimal64",
        Value::Decimal128(_) => "decimal128",
        Value::Char(_) => "char",
        Value::Timestamp(_) => "timestamp",
        Value::Uuid(_) => "uuid",
        Value::Binary(_) => "binary",
        Value::String(_) => "string",
        Value::Symbol(_) => "symbol",
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Array(_) => "array",
    }
}

fn type_name(value: &Value) -> String {
    format!("an AMQP {}", amqp_type(value))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::observe::records::{OperStatus, RecordId, RecordType};

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vanflow")
    }

    /// The bytes of the capture file whose name starts with `prefix` ("07-").
    fn fixture(prefix: &str) -> Vec<u8> {
        let mut found = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix));
        let path = found
            .next()
            .unwrap_or_else(|| panic!("no fixture {prefix}*"));
        std::fs::read(path).unwrap()
    }

    fn records_of(prefix: &str) -> Vec<Record> {
        match decode(&fixture(prefix)).unwrap().message {
            VanflowMessage::Record(records) => records,
            other => panic!("{prefix}: expected RECORD, got {other:?}"),
        }
    }

    fn id(s: &str) -> RecordId {
        RecordId(s.into())
    }

    #[test]
    fn every_capture_decodes_with_the_subject_in_its_name() {
        let mut count = 0;
        for entry in std::fs::read_dir(fixture_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let decoded =
                decode(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let subject = name.split('-').nth(1).unwrap();
            let matches = match (&decoded.message, subject) {
                (VanflowMessage::Beacon(_), "BEACON") => true,
                (VanflowMessage::Heartbeat(_), "HEARTBEAT") => true,
                (VanflowMessage::Flush, "FLUSH") => true,
                (VanflowMessage::Record(r), "RECORD") => !r.is_empty(),
                _ => false,
            };
            assert!(matches, "{name}: decoded as {:?}", decoded.message);
            count += 1;
        }
        assert_eq!(count, 32);
    }

    #[test]
    fn beacon_of_router_a() {
        let decoded = decode(&fixture("01-")).unwrap();
        assert_eq!(decoded.message_id, Some(MessageId::Long(0)));
        assert_eq!(decoded.to.as_deref(), Some("mc/sfe.all"));
        assert_eq!(
            decoded.message,
            VanflowMessage::Beacon(Beacon {
                version: 1,
                source_type: SourceType::Router,
                id: SourceId("w2x5z:0".into()),
                address: "mc/sfe.w2x5z:0".into(),
                direct: "sfe.w2x5z:0".into(),
            })
        );
    }

    #[test]
    fn heartbeat_of_router_a() {
        let decoded = decode(&fixture("03-")).unwrap();
        assert_eq!(decoded.message_id, Some(MessageId::Long(1)));
        assert_eq!(
            decoded.message,
            VanflowMessage::Heartbeat(Heartbeat {
                id: SourceId("w2x5z:0".into()),
                now: Timestamp(1_796_071_395_631_521),
            })
        );
    }

    #[test]
    fn flush_request_has_no_message_id() {
        let decoded = decode(&fixture("05-")).unwrap();
        assert_eq!(decoded.message_id, None);
        assert_eq!(decoded.to.as_deref(), Some("sfe.w2x5z:0"));
        assert_eq!(decoded.message, VanflowMessage::Flush);
    }

    #[test]
    fn message_ids_in_long_form() {
        // B's counter crosses 127: smalllong 0x55 → long 0x81, same type.
        let ids: Vec<_> = ["27-", "28-", "29-", "32-"]
            .iter()
            .map(|f| decode(&fixture(f)).unwrap().message_id)
            .collect();
        assert_eq!(ids, [127, 128, 129, 143].map(|n| Some(MessageId::Long(n))));
        let VanflowMessage::Beacon(beacon) = decode(&fixture("32-")).unwrap().message else {
            panic!("32 is a BEACON");
        };
        assert_eq!(beacon.id, SourceId("IIKRr:0".into()));
        assert_eq!(beacon.direct, "sfe.IIKRr:0");
        let VanflowMessage::Heartbeat(hb) = decode(&fixture("29-")).unwrap().message else {
            panic!("29 is a HEARTBEAT");
        };
        assert_eq!(hb.now, Timestamp(1_796_071_480_406_792));
        let link = &records_of("28-")[0];
        assert_eq!(link.kind, RecordType::Link);
        assert_eq!(link.attributes.octets, Some(34075));
        assert_eq!(link.attributes.octets_reverse, Some(27366));
    }

    #[test]
    fn flush_answer_of_router_a_in_order() {
        let records = records_of("08-");
        let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordType::Site,
                RecordType::Router,
                RecordType::RouterAccess,
                RecordType::Listener,
                RecordType::Listener,
                RecordType::Listener,
                RecordType::Listener
            ]
        );
        let site = &records[0];
        assert_eq!(site.identity, id("29a23db9-dff4-4072-8a39-7815e3e666b3"));
        assert_eq!(site.attributes.platform.as_deref(), Some("podman"));
        assert_eq!(site.attributes.name.as_deref(), Some("west"));
        assert_eq!(site.attributes.build_version.as_deref(), Some("2.1.1"));

        let listener = &records[3];
        assert_eq!(listener.identity, id("w2x5z:2"));
        let a = &listener.attributes;
        assert_eq!(a.parent, Some(id("w2x5z:0")));
        assert_eq!(a.start_time, Some(Timestamp(1_796_071_376_373_468)));
        assert_eq!(a.dest_host.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.protocol.as_deref(), Some("tcp"));
        assert_eq!(a.dest_port.as_deref(), Some("25910"));
        assert_eq!(a.van_address.as_deref(), Some("echo"));
        assert_eq!(a.name.as_deref(), Some("echo"));
        assert_eq!(a.flow_count_l4, Some(0));
    }

    #[test]
    fn link_of_router_b() {
        let link = &records_of("07-")[0];
        assert_eq!(link.kind, RecordType::Link);
        let a = &link.attributes;
        assert_eq!(a.parent, Some(id("IIKRr:0")));
        assert_eq!(a.peer, Some(id("w2x5z:1")));
        assert_eq!(a.link_cost, Some(1));
        assert_eq!(a.oper_status, Some(OperStatus::Up));
        assert_eq!(a.down_count, Some(0));
        assert_eq!(a.octets, Some(4058));
        assert_eq!(a.http_proxy, Some(false));
    }

    #[test]
    fn tcp_connection_begin_with_bytes_and_latency() {
        let records = records_of("11-");
        assert_eq!(records.len(), 1);
        let tport = &records[0];
        assert_eq!(tport.kind, RecordType::BiflowTport);
        assert_eq!(tport.identity, id("w2x5z:6"));
        let a = &tport.attributes;
        assert_eq!(a.parent, Some(id("w2x5z:2")));
        assert_eq!(a.connector, Some(id("IIKRr:2")));
        assert_eq!(a.source_port.as_deref(), Some("50664"));
        assert_eq!(a.octets, Some(5000));
        assert_eq!(a.octets_reverse, Some(5000));
        assert_eq!(a.latency, Some(Duration::from_micros(50548)));
        assert_eq!(a.trace.as_deref(), Some("0/RA"));
        assert_eq!(a.end_time, None);
    }

    #[test]
    fn refused_connection_carries_both_errors() {
        let a = &records_of("17-")[0].attributes;
        assert!(a.end_time.is_some());
        assert_eq!(
            a.error_listener_side.as_deref(),
            Some("delivery-failed (destination unreachable)")
        );
        assert_eq!(
            a.error_connector_side.as_deref(),
            Some("proton:io (Connection refused - on connect 127.0.0.1:25913)")
        );
    }

    #[test]
    fn http_requests_and_their_connection_in_one_message() {
        let records = records_of("14-");
        let app: Vec<_> = records
            .iter()
            .filter(|r| r.kind == RecordType::BiflowApp)
            .collect();
        assert_eq!(app.len(), 2);
        assert_eq!(app[0].attributes.parent, Some(id("w2x5z:9")));
        assert_eq!(app[0].attributes.method.as_deref(), Some("GET"));
        assert_eq!(app[0].attributes.result.as_deref(), Some("200"));
        assert_eq!(app[1].attributes.method.as_deref(), Some("POST"));
        assert_eq!(app[1].attributes.octets, Some(300));
    }

    #[test]
    fn one_attribute_changes_encoding_between_updates() {
        // octets 250 is smallulong (0x53), 450 is ulong (0x80): both are numbers.
        assert_eq!(records_of("24-")[0].attributes.octets, Some(250));
        assert_eq!(records_of("25-")[0].attributes.octets, Some(450));
    }

    #[test]
    fn log_record() {
        let log = &records_of("31-")[0];
        assert_eq!(log.kind, RecordType::Log);
        assert_eq!(
            log.attributes.log_severity,
            Some(crate::observe::records::LogSeverity::Error)
        );
        assert!(log
            .attributes
            .log_text
            .as_deref()
            .unwrap()
            .starts_with("LOG_TCP_ADAPTOR: Listener clash"));
    }

    /// Application properties with string keys, as Skupper's Go code sends them.
    #[test]
    fn string_keyed_application_properties() {
        let symbol_keyed = fixture("03-");
        // Rewrite the three sym8 keys (0xa3) of the application-properties map as str8 (0xa1):
        // the same length, so the section sizes stay right.
        let app_start = 42;
        let mut bytes = symbol_keyed.clone();
        for key in [&b"\xa3\x01v"[..], b"\xa3\x03now", b"\xa3\x02id"] {
            let at = app_start
                + bytes[app_start..]
                    .windows(key.len())
                    .position(|w| w == key)
                    .unwrap();
            bytes[at] = 0xa1;
        }
        assert_ne!(bytes, symbol_keyed);
        assert_eq!(
            decode(&bytes).unwrap().message,
            decode(&symbol_keyed).unwrap().message
        );
    }

    #[test]
    fn truncated_and_unknown_input_are_errors() {
        let bytes = fixture("10-");
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[0xff]),
            Err(WireError::FormatCode { code: 0xff, .. })
        ));
    }

    #[test]
    fn record_keys_must_be_uint() {
        // File 10's map keys: 0x43 (uint0) and 0x52 (smalluint). Make key 1 a smallulong.
        let mut bytes = fixture("10-");
        let key = bytes.windows(3).position(|w| w == b"\x52\x01\xa1").unwrap();
        bytes[key] = 0x53;
        assert!(matches!(
            decode(&bytes),
            Err(WireError::FieldType {
                field: "record attribute key",
                ..
            })
        ));
    }

    /// Why this module decodes sections itself (see the module comment): fe2o3-amqp's message
    /// decoder refuses the router's `long` message-id, in both encodings. When this fails,
    /// fe2o3 has become lenient and its `Receiver` could deliver vanflow messages directly.
    #[test]
    fn fe2o3_message_decoding_rejects_the_routers_long_message_id() {
        use fe2o3_amqp::types::messaging::message::DecodeIntoMessage;
        use fe2o3_amqp::types::messaging::Body;
        for file in ["01-", "28-"] {
            let bytes = fixture(file);
            let result = <Body<Value> as DecodeIntoMessage>::decode_message_from_reader(
                serde_amqp::read::SliceReader::new(&bytes),
            );
            let err = result.expect_err(file);
            assert!(
                err.to_string().contains("Invalid format code"),
                "{file}: {err}"
            );
        }
        // The FLUSH request (null message-id) decodes: it is only the id's type.
        let bytes = fixture("05-");
        assert!(
            <Body<Value> as DecodeIntoMessage>::decode_message_from_reader(
                serde_amqp::read::SliceReader::new(&bytes)
            )
            .is_ok()
        );
    }
}

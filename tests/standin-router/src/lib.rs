//! A stand-in for the skupper-router image, for vansite's tests only (never shipped).
//!
//! It honours the image contract (`$QDROUTERD_CONF`, `${VARS}` expansion, refusal of what the
//! real router refuses), the real router's TLS rules, TCP carried between tcpListener and
//! tcpConnector across links, and the AMQP management operations vansite uses. Between
//! stand-ins it speaks its own protocol (see `mux`), not AMQP.

pub mod agent;
pub mod config;
pub mod links;
pub mod management;
pub mod mux;
pub mod python;
pub mod router;
pub mod schema;
pub mod tcp;
pub mod tls;
pub mod vanflow;

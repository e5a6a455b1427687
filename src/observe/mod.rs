//! Observing the network through vanflow (`reference/vanflow.md`): the records every router
//! emits about itself (site, router, links, listeners, connectors) and about the traffic it
//! carries (TCP connections, HTTP requests).
//!
//! `wire` decodes one AMQP message, `records` gives the records their types, `network` is the
//! pure model fed with them (sites, links, services, connections); the effects (an AMQP client
//! subscribed to the routers) stay outside it.

pub mod amqp;
pub mod collector;
pub mod network;
pub mod records;
pub mod status;
pub mod wire;

//! Services end to end on test hosts with stand-in routers, in one test binary so that its
//! tests run side by side: plain TCP listeners and connectors with their forwarders, TLS on
//! both ends, a service offered at two sites and moved, and the network seen from any site.

#[path = "../support/mod.rs"]
mod support;

mod capacity;
mod forwarded;
mod isolation;
mod moves;
mod network;
mod tls;

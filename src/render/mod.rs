//! Pure renderers: the router's configuration (`router_config`), certificates (`certs`), and
//! the units vansite writes (the router's and the forwarders' quadlets, the socket-activated
//! grant server and console, the certificate renewal timer).

pub mod activated_units;
pub mod certs;
pub mod console_units;
pub mod forwarder_units;
pub mod grant_units;
pub mod renewal_units;
pub mod router_config;
pub mod router_unit;
pub mod unit_names;

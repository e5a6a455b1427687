//! Pure renderers: the router's configuration (`router_config`), certificates (`certs`), and
//! the units vansite writes (the router's quadlet, the forwarders' sandboxed services, the
//! socket-activated grant server and console, the certificate renewal timer).

pub mod activated_units;
pub mod certs;
pub mod console_units;
pub mod forwarder_units;
pub mod grant_units;
pub mod renewal_units;
pub mod router_config;
pub mod router_unit;
pub mod unit_names;

/// Open descriptors (soft and hard, `LimitNOFILE=`) of the units whose processes carry
/// connections, the router and the forwarders: two per connection (the forwarder: client and
/// router; the router: its client and the far side), so hundreds of thousands rather than the
/// 1024 a user service gets by default. systemd's own default hard limit (since v240), which
/// a user manager can grant; where it cannot, systemd gives the most it can
/// (`setrlimit_closest`) instead of failing the start.
pub const CONNECTION_OPEN_FILES: u64 = 524_288;

/// The router's container takes its service's limits (podman's `--ulimit=host`): podman's
/// default or containers.conf's `default_ulimits` (often 1024) would cap
/// [`CONNECTION_OPEN_FILES`].
pub const SERVICE_ULIMITS: &str = "--ulimit=host";

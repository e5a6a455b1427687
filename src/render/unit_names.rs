//! Every unit vansite writes is `vansite-<namespace>-<part>`, so that a user's units of one site
//! sort together and never meet another site's: the names are built here and nowhere else.
//! So are the targets their `[Install]` sections name and the links `systemctl enable` would
//! make for them, so that a unit's `WantedBy=` and its link cannot disagree.

use std::path::{Path, PathBuf};

/// What a user manager starts at its own start (the router, the forwarders).
pub const DEFAULT_TARGET: &str = "default.target";
/// What socket units are enabled in (the forwarders', the grant server's, the console's ports).
pub const SOCKETS_TARGET: &str = "sockets.target";
/// What timer units are enabled in (the certificate renewal).
pub const TIMERS_TARGET: &str = "timers.target";

/// The directory of `unit_dir` that enables units in `target`: `<target>.wants`.
pub fn wants_dir(unit_dir: &Path, target: &str) -> PathBuf {
    unit_dir.join(format!("{target}.wants"))
}

/// The link `systemctl enable` makes for `unit` (a file name) installed in `target`.
pub fn enablement_link(unit_dir: &Path, target: &str, unit: &str) -> PathBuf {
    wants_dir(unit_dir, target).join(unit)
}

/// The stem of the router's quadlet, service and container.
pub fn router(namespace: &str) -> String {
    site_unit(namespace, "router")
}

/// The stem of one listener's forwarder units (`.socket`, `.service`).
pub fn forwarder(namespace: &str, listener: &str) -> String {
    site_unit(namespace, &format!("listener-{listener}"))
}

/// The stem of the grant server's units (`.socket`, `.service`).
pub fn grant_server(namespace: &str) -> String {
    site_unit(namespace, "grants")
}

/// The stem of the web console's units (`.socket`, `.service`).
pub fn console(namespace: &str) -> String {
    site_unit(namespace, "console")
}

/// The stem of the certificate renewal units (`.timer`, `.service`).
pub fn certificate_renewal(namespace: &str) -> String {
    site_unit(namespace, "certs")
}

fn site_unit(namespace: &str, part: &str) -> String {
    format!("vansite-{namespace}-{part}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_carry_the_namespace_and_the_part() {
        assert_eq!(super::router("west"), "vansite-west-router");
        assert_eq!(super::forwarder("west", "db"), "vansite-west-listener-db");
        assert_eq!(super::grant_server("west"), "vansite-west-grants");
        assert_eq!(super::console("west"), "vansite-west-console");
        assert_eq!(
            super::enablement_link(
                std::path::Path::new("/u"),
                super::TIMERS_TARGET,
                "vansite-west-certs.timer"
            ),
            std::path::Path::new("/u/timers.target.wants/vansite-west-certs.timer")
        );
        assert_eq!(super::certificate_renewal("west"), "vansite-west-certs");
    }
}

//! The certificate renewal timer, opt-in (`renew_certificates = true` in vansite's settings):
//! `vansite-<ns>-certs.timer` starts `vansite-<ns>-certs.service` daily, which runs
//! `vansite -n <ns> certs rotate --expiring`: certificates within 30 days of expiry are
//! issued again and the running router takes them without dropping a link. Plain user units.

use std::path::PathBuf;

use crate::quadlet::{Install, QuadletError, Service, ServiceFile, TimerFile, Unit};

use super::unit_names;

/// What both units are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalSpec {
    pub namespace: String,
    pub site_name: String,
    /// The vansite binary the service runs (absolute).
    pub executable: PathBuf,
}

/// `(service, timer)` unit texts.
pub fn renewal_units(spec: &RenewalSpec) -> Result<(String, String), QuadletError> {
    let stem = unit_names::certificate_renewal(&spec.namespace);
    let what = format!(
        "certificate renewal of site {} (namespace {})",
        spec.site_name, spec.namespace
    );
    let service = ServiceFile {
        name: stem.clone(),
        unit: Unit {
            description: Some(format!("vansite: {what}")),
            ..Unit::default()
        },
        exec_start: vec![
            spec.executable.display().to_string(),
            "-n".into(),
            spec.namespace.clone(),
            "certs".into(),
            "rotate".into(),
            "--expiring".into(),
        ],
        no_new_privileges: true,
        sandbox: None,
        service: Service::default(),
        install: Install::default(),
    };
    let timer = TimerFile {
        name: stem,
        unit: Unit {
            description: Some(format!("vansite: daily {what}")),
            ..Unit::default()
        },
        on_calendar: "daily".into(),
        // A fleet of hosts set up together does not renew in the same minute.
        randomized_delay_seconds: 3600,
        persistent: true,
        install: Install {
            wanted_by: vec![unit_names::TIMERS_TARGET.into()],
        },
    };
    Ok((service.render()?, timer.render()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_timer_runs_certs_rotate_expiring() {
        let (service, timer) = renewal_units(&RenewalSpec {
            namespace: "west".into(),
            site_name: "west".into(),
            executable: "/usr/bin/vansite".into(),
        })
        .unwrap();
        assert!(
            service.contains("ExecStart=/usr/bin/vansite -n west certs rotate --expiring\n"),
            "{service}"
        );
        assert!(timer.contains("OnCalendar=daily\n"), "{timer}");
        assert!(timer.contains("WantedBy=timers.target\n"), "{timer}");
    }
}

//! A plain systemd `.timer` unit (in `$XDG_CONFIG_HOME/systemd/user/`, beside the `.service`
//! of the same name it starts). Same syntax rules as the other units.

use super::syntax::{self, Target};
use super::{Install, QuadletError, Unit};

/// `<name>.timer`: starts `<name>.service` on a calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerFile {
    pub name: String,
    pub unit: Unit,
    /// `OnCalendar=`, a systemd calendar expression (`daily`).
    pub on_calendar: String,
    /// `RandomizedDelaySec=`: spreads the hosts of a fleet over this many seconds.
    pub randomized_delay_seconds: u32,
    /// `Persistent=yes`: a run missed while the user manager was down happens at its start.
    pub persistent: bool,
    pub install: Install,
}

impl TimerFile {
    pub fn file_name(&self) -> String {
        format!("{}.timer", self.name)
    }

    pub fn render(&self) -> Result<String, QuadletError> {
        syntax::unit_names("name", std::slice::from_ref(&self.name))?;
        let mut timer = vec![(
            "OnCalendar",
            syntax::single("OnCalendar", &self.on_calendar, Target::Setting)?,
        )];
        if self.randomized_delay_seconds > 0 {
            timer.push((
                "RandomizedDelaySec",
                self.randomized_delay_seconds.to_string(),
            ));
        }
        if self.persistent {
            timer.push(("Persistent", "yes".into()));
        }
        let mut out = String::new();
        syntax::write_section(&mut out, "Unit", &self.unit.entries()?);
        syntax::write_section(&mut out, "Timer", &timer);
        syntax::write_section(&mut out, "Install", &self.install.entries()?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_timer_unit() {
        let file = TimerFile {
            name: "vansite-west-certs".into(),
            unit: Unit {
                description: Some("renew".into()),
                ..Unit::default()
            },
            on_calendar: "daily".into(),
            randomized_delay_seconds: 3600,
            persistent: true,
            install: Install {
                wanted_by: vec!["timers.target".into()],
            },
        };
        assert_eq!(file.file_name(), "vansite-west-certs.timer");
        assert_eq!(
            file.render().unwrap(),
            "[Unit]\nDescription=renew\n\n[Timer]\nOnCalendar=daily\nRandomizedDelaySec=3600\n\
             Persistent=yes\n\n[Install]\nWantedBy=timers.target\n"
        );
    }
}

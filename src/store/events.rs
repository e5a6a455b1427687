//! The site's own event log, `runtime/logs/events.jsonl`: one JSON line per command that
//! changed the site (what, when, and how it ended), appended, so that `vansite debug events`
//! can show vansite's actions beside the router's. It holds no secret: commands and outcomes
//! only.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::SiteDir;

/// One command that changed the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// RFC 3339, UTC, to the microsecond.
    pub time: String,
    /// `vansite <command>` as the user gave it, e.g. `listener create db`.
    pub command: String,
    /// `done: …` or `failed: …`.
    pub outcome: String,
}

impl SiteDir {
    pub fn events_log(&self) -> std::path::PathBuf {
        self.runtime().join("logs/events.jsonl")
    }

    /// Appends one event (one `write` of one line: whole or absent, even with several writers).
    pub fn record_event(&self, command: &str, outcome: &str) -> std::io::Result<()> {
        let event = RecordedEvent {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            command: command.to_string(),
            outcome: outcome.to_string(),
        };
        let line = serde_json::to_string(&event).expect("serialisable") + "\n";
        let path = self.events_log();
        super::files::create_dir(
            path.parent().expect("a file in logs/"),
            super::files::PRIVATE_DIR,
        )?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(line.as_bytes())
    }

    /// The recorded events, oldest first; a damaged line (a crash mid-write) is skipped.
    pub fn recorded_events(&self) -> Vec<RecordedEvent> {
        std::fs::read_to_string(self.events_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_and_read_back_in_order_skipping_damaged_lines() {
        let root = std::env::temp_dir().join(format!("vansite-events-{}", std::process::id()));
        let site = SiteDir {
            namespace: "west".into(),
            root: root.clone(),
        };
        site.record_event("init", "done: the router was started")
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(site.events_log())
            .unwrap()
            .write_all(b"{\"time\": \"2026-")
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(site.events_log())
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        site.record_event("listener create db", "failed: port 80 is privileged")
            .unwrap();
        let events = site.recorded_events();
        let commands: Vec<&str> = events.iter().map(|e| e.command.as_str()).collect();
        assert_eq!(commands, ["init", "listener create db"]);
        assert!(events[0].time < events[1].time && events[0].time.ends_with('Z'));
        std::fs::remove_dir_all(root).unwrap();
    }
}

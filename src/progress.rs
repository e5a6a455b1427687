//! Progress of long operations (starting the router, which may pull its image; waiting for a
//! unit or a link) on stderr: a spinner on a terminal (plain lines on one without cursor
//! control, TERM unset or dumb), nothing when stderr is piped, log lines with -v. The operations report steps through a `&dyn Fn(&str)` callback; this is
//! the one place that decides how a step is shown.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    shown: Shown,
}

enum Shown {
    Spinner(ProgressBar),
    /// A terminal that cannot redraw a line.
    Lines,
    /// Through tracing: printed with -v only.
    Log,
}

impl Progress {
    /// A spinner when stderr is a terminal and no -v was given (-v logs each step as a line
    /// instead, through tracing); otherwise steps go to tracing only, which prints nothing
    /// without -v.
    pub fn on_stderr(verbose: u8) -> Progress {
        let shown = if verbose > 0 || !std::io::stderr().is_terminal() {
            Shown::Log
        } else {
            // indicatif hides itself where it cannot move the cursor (TERM unset or dumb).
            let spinner = ProgressBar::new_spinner();
            if spinner.is_hidden() {
                Shown::Lines
            } else {
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("valid template"),
                );
                spinner.enable_steady_tick(Duration::from_millis(120));
                Shown::Spinner(spinner)
            }
        };
        Progress { shown }
    }

    /// Shows `message` as the current step.
    pub fn step(&self, message: &str) {
        match &self.shown {
            Shown::Spinner(spinner) => spinner.set_message(message.to_string()),
            Shown::Lines => eprintln!("{message}..."),
            Shown::Log => tracing::info!("{message}"),
        }
    }
}

impl Drop for Progress {
    /// The spinner line is removed, so that results and errors start on a clean line.
    fn drop(&mut self) {
        if let Shown::Spinner(spinner) = &self.shown {
            spinner.finish_and_clear();
        }
    }
}

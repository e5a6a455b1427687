//! Progress of long operations (starting the router, which may pull its image; waiting for a
//! unit or a link) on stderr: a spinner on a terminal, nothing when stderr is piped, plain
//! lines with -v. The operations report steps through a `&dyn Fn(&str)` callback; this is
//! the one place that decides how a step is shown.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when stderr is a terminal and no -v was given (-v logs each step as a line
    /// instead, through tracing); otherwise steps go to tracing only, which prints nothing
    /// without -v.
    pub fn on_stderr(verbose: u8) -> Progress {
        let spinner = (verbose == 0 && std::io::stderr().is_terminal()).then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Progress { spinner }
    }

    /// Shows `message` as the current step.
    pub fn step(&self, message: &str) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(message.to_string()),
            None => tracing::info!("{message}"),
        }
    }
}

impl Drop for Progress {
    /// The spinner line is removed, so that results and errors start on a clean line.
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

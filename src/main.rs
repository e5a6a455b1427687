use std::process::ExitCode;

use clap::Parser;
use vansite::cli::{self, Cli, Command};
use vansite::error;

/// Colours only for a person at a terminal: never into a pipe or a log file (a journal, a
/// redirected `-vv`), and never when NO_COLOR (<https://no-color.org>) is set to anything.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANSITE_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .without_time()
        .init();
    // The grant server handshakes with many clients at once: it gets every core.
    let mut builder = match cli.command {
        Command::GrantServer(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error::report(&e));
            e.exit_code()
        }
    }
}

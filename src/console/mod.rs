//! The web console (`vansite console`): a page showing the network (sites and links as a
//! picture, services, live connections) and Prometheus `/metrics`, served on 127.0.0.1 by a
//! socket-activated process (`vansite console-server`, hidden). Everything the page needs is
//! embedded in the binary. Access takes the site's console token (`token`).

pub mod metrics;
pub mod server;
pub mod token;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "cannot read the console's token {}: {source}; `vansite console` creates it",
        path.display()
    )]
    ReadToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the console's token {} is not valid; remove it and run `vansite console` for a new one",
        path.display()
    )]
    BadToken { path: PathBuf },
    #[error("cannot write the console's token {}: {source}", path.display())]
    WriteToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no listening socket: `vansite console-server` is started by its systemd socket unit \
         (LISTEN_FDS), or given --listen ADDRESS"
    )]
    NotActivated,
    #[error(
        "cannot open a browser ({program}: {problem}); open the URL that `vansite console \
         --print-url` prints yourself"
    )]
    Browser {
        program: &'static str,
        problem: String,
    },
    #[error("console: {0}")]
    Io(#[from] std::io::Error),
}

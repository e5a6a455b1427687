//! `skrouterd-standin`: run with `$QDROUTERD_CONF` and `$QDROUTERD_CONF_TYPE` (as the image's
//! launch script is) or `-c FILE` (as `skrouterd -c` is run). Exits non-zero, with the reason
//! on stderr, on any configuration the real router would refuse.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use skrouterd_standin::config::{self, Source};
use skrouterd_standin::{agent, router::Router, tls};
use tokio::sync::mpsc;

fn config_source() -> Option<Source> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-c" || arg == "--config" {
            return args.next().map(|path| Source::router_file(path.into()));
        }
    }
    let conf_type = std::env::var("QDROUTERD_CONF_TYPE").ok();
    std::env::var_os("QDROUTERD_CONF")
        .map(|path| Source::launch_script(PathBuf::from(path), conf_type.as_deref()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STANDIN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    tls::install_crypto_provider();
    let Some(source) = config_source() else {
        eprintln!("skrouterd-standin: no configuration: set QDROUTERD_CONF or pass -c FILE");
        return ExitCode::from(1);
    };
    let entities = match config::load(&source) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skrouterd-standin: configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    let router_entity = entities.iter().find(|e| e.entity_type == "router");
    let id = router_entity
        .map(|r| r.str("id").to_string())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("standin-{}", std::process::id()));
    let mode = router_entity
        .map(|r| r.str("mode").to_string())
        .unwrap_or_else(|| "standalone".into());
    let router = Router::new(id.clone(), mode.clone());
    skrouterd_standin::vanflow::start(&router);
    let (agent_tx, agent_rx) = mpsc::channel(64);
    tokio::spawn(agent::run(Arc::clone(&router), agent_tx.clone(), agent_rx));
    // In the real router's order (`config.py` `configure_dispatch`): sslProfiles first, which
    // the others refer to; connectors, listeners, tcpListeners, tcpConnectors and
    // listenerAddresses last, in that order, so a listenerAddress finds its tcpListener.
    let rank = |entity_type: &str| match entity_type {
        "sslProfile" => 0,
        "connector" => 2,
        "listener" => 3,
        "tcpListener" => 4,
        "tcpConnector" => 5,
        "listenerAddress" => 6,
        _ => 1,
    };
    let mut ordered = entities;
    ordered.sort_by_key(|e| rank(&e.entity_type));
    for entity in ordered {
        let what = format!("{} '{}'", entity.entity_type, entity.name());
        if let Err(e) = agent::create(&router, &agent_tx, entity).await {
            eprintln!("skrouterd-standin: cannot start {what}: {e}");
            return ExitCode::from(1);
        }
    }
    tracing::info!("router {id} ({mode}) running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("router {id} shutting down");
    ExitCode::SUCCESS
}

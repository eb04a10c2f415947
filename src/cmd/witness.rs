//! `witness --listen ADDR`: the witness on a third host, stopped by SIGTERM or SIGINT,
//! with `READY=1` for systemd once it listens.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::witness::WitnessConfig;

pub async fn run(config_path: &Path, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let config = WitnessConfig::load(config_path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    tracing::info!(
        "witness {} listening on {address}: GET /{} with the bearer token; {} checks of the primary, each within {}",
        config.name,
        crate::witness::ENDPOINT,
        config.checks.len(),
        humantime::format_duration(config.timeout)
    );
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd we are ready: {e}");
    }
    crate::witness::server::serve(&config, listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

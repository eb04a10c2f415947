//! `witness --listen ADDR`: the witness on a third host, stopped by SIGTERM or SIGINT
//! (without waiting for idle or half-sent clients), with `READY=1` for systemd once it
//! listens.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

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
    let shutdown = super::shutdown_signal()?;
    tracing::info!(
        "witness {} listening on {address}: GET /{} with the bearer token; {} checks of the primary, each within {}",
        config.name,
        crate::witness::ENDPOINT,
        config.checks.len(),
        humantime::format_duration(config.timeout)
    );
    let limits = &config.limits;
    tracing::info!(
        "limits: {} connections at once, a request head within {}, {} requests a second per client after a burst of {}",
        limits.max_connections,
        humantime::format_duration(limits.header_timeout),
        limits.requests_per_second,
        limits.request_burst
    );
    super::notify_ready();
    crate::witness::server::serve(&config, listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

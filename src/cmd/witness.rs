//! `witness --listen ADDR`: the witness on a third host, stopped by SIGTERM or SIGINT
//! (without waiting for idle or half-sent clients), with `READY=1` for systemd once it
//! listens; with `[metrics]`, its Prometheus endpoint on a listener of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::witness::WitnessConfig;
use crate::metrics::{MetricsServer, WitnessMetrics};

pub async fn run(
    config_path: &Path,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let config = WitnessConfig::load(config_path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
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
    let metrics = Arc::new(WitnessMetrics::new());
    // Served (with `[metrics]`) until this function returns.
    let _metrics_server =
        MetricsServer::start_configured(config.metrics.as_ref(), metrics.registry()).await?;
    crate::systemd::Notifier::from_env().ready();
    crate::witness::server::serve_observed(&config, listener, metrics, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

//! `witness --listen ADDR`: the witness on a third host, stopped by SIGTERM or SIGINT
//! (without waiting for idle or half-sent clients), with `READY=1` for systemd once it
//! listens; with `[metrics]`, its Prometheus endpoint on a listener of its own.

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
    let metrics = std::sync::Arc::new(crate::metrics::WitnessMetrics::new());
    // The metrics server stops when this function returns (the sender is dropped).
    let (_metrics_running, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(served) = &config.metrics {
        crate::metrics::start(served.listen, metrics.registry(), async {
            let _ = metrics_stopped.await;
        })
        .await?;
    }
    super::notify_ready();
    crate::witness::server::serve_observed(&config, listener, metrics, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

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
use crate::serve;
use crate::witness::server::descriptors_elsewhere;

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
        "witness {} listening on {address}: GET /{} with the bearer token{}; {} checks of the primary, each within {}",
        config.name,
        crate::witness::ENDPOINT,
        if config.tls.is_some() {
            ", over TLS"
        } else {
            ""
        },
        config.checks.len(),
        humantime::format_duration(config.timeout)
    );
    log_limits(&config);
    let metrics = Arc::new(WitnessMetrics::new());
    // Served (with `[metrics]`) until this function returns.
    let _metrics_server =
        MetricsServer::start_configured(config.metrics.as_ref(), metrics.registry()).await?;
    crate::systemd::Notifier::from_env().ready();
    crate::witness::server::serve_observed(&config, listener, metrics, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The limits in force: the connection cap as the open-file limit leaves it.
fn log_limits(config: &WitnessConfig) {
    let limits = &config.limits;
    let descriptors = serve::descriptor_limit();
    let cap = serve::connection_cap(
        limits.max_connections,
        descriptors,
        descriptors_elsewhere(config),
    );
    tracing::info!(
        "limits: {cap} connections at once ({} per client; open-file limit {}), a request head within {}, an answer read within {}, {} requests a second per client after a burst of {}",
        limits.max_connections_per_client,
        descriptors.map_or("none".to_string(), |d| d.to_string()),
        humantime::format_duration(limits.header_timeout),
        humantime::format_duration(limits.write_timeout),
        limits.requests_per_second,
        limits.request_burst
    );
}

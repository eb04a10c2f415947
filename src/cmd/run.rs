//! `run`: the daemon, stopped by SIGTERM or SIGINT, with `READY=1` for systemd.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    let ready = || {
        // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
            tracing::warn!("cannot tell systemd we are ready: {e}");
        }
    };
    crate::daemon::run(config, shutdown, ready).await?;
    Ok(ExitCode::SUCCESS)
}

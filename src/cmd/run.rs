//! `run`: the daemon, stopped by SIGTERM or SIGINT, with `READY=1` for systemd.

use std::process::ExitCode;

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::daemon::run(config, super::shutdown_signal()?, super::notify_ready).await?;
    Ok(ExitCode::SUCCESS)
}

//! `run`: the daemon, stopped by SIGTERM or SIGINT, telling systemd `READY=1`, its
//! status and that its loop is alive (the watchdog).

use std::process::ExitCode;

use crate::config::Config;
use crate::shutdown::Shutdown;

pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let notifier = crate::systemd::Notifier::from_env();
    crate::daemon::run(config, shutdown, notifier).await?;
    Ok(ExitCode::SUCCESS)
}

//! One file per command. Each takes the parsed command line, loads the config and calls
//! into the library; [`dispatch`] picks the command.

mod check_config;
mod pause;
mod promote_now;
mod rejoin;
mod reset;
mod run;
mod smoke_test;
mod status;
mod switchover;
mod witness;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::UsageError;

/// Runs the command `cli` names and returns its exit code; errors carry theirs
/// ([`crate::error::exit_code_for`]).
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.promote_now && cli.command.is_some() {
        return Err(UsageError("--promote-now is not used with a command".to_string()).into());
    }
    if cli.promote_now {
        return promote_now::run(&load(&cli.config)?, cli.yes, cli.dry_run).await;
    }
    // Every command but `witness` runs on the standby's config; a witness host has its
    // own, smaller one.
    let config = || load(&cli.config);
    match cli.command {
        None | Some(Command::Run) => run::run(config()?).await,
        Some(Command::CheckConfig { witness: false }) => check_config::run(&config()?),
        Some(Command::CheckConfig { witness: true }) => check_config::witness(&cli.config),
        Some(Command::Status { json }) => status::run(&config()?, json),
        Some(Command::SmokeTest { json, no_notify }) => {
            smoke_test::run(&config()?, json, !no_notify).await
        }
        Some(Command::Pause { duration, reason }) => {
            pause::pause(&config()?, duration.map(Into::into), reason).await
        }
        Some(Command::Resume) => pause::resume(&config()?).await,
        Some(Command::Reset { yes }) => reset::run(&config()?, yes),
        Some(Command::Rejoin { yes, dry_run }) => rejoin::run(&config()?, yes, dry_run).await,
        Some(Command::Switchover { yes, dry_run }) => {
            switchover::run(&config()?, yes, dry_run).await
        }
        Some(Command::Witness { listen }) => witness::run(&cli.config, listen).await,
    }
}

/// Resolves on SIGTERM or SIGINT: the shutdown passed to the long-running commands.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Tells systemd we are ready (`READY=1`); outside systemd `NOTIFY_SOCKET` is unset and
/// this does nothing.
fn notify_ready() {
    crate::systemd::Notifier::from_env().ready();
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

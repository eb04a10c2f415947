//! One file per command. Each takes the parsed command line, loads the config and calls
//! into the library; [`dispatch`] picks the command. The commands that run long or
//! change the pair (the daemon, the witness, `--promote-now`, `switchover`, `rejoin`)
//! get the stop signal ([`Shutdown::on_signals`]); the others change nothing, or one
//! file atomically, and end at once on Ctrl-C as any program does.

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
use crate::shutdown::Shutdown;

/// Runs the command `cli` names and returns its exit code; errors carry theirs
/// ([`crate::error::exit_code_for`]).
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.promote_now && cli.command.is_some() {
        return Err(UsageError("--promote-now is not used with a command".to_string()).into());
    }
    if cli.promote_now {
        let config = load(&cli.config)?;
        return promote_now::run(&config, cli.yes, cli.dry_run, Shutdown::on_signals()?).await;
    }
    // Every command but `witness` runs on the standby's config; a witness host has its
    // own, smaller one.
    let config = || load(&cli.config);
    match cli.command {
        None | Some(Command::Run) => run::run(config()?, Shutdown::on_signals()?).await,
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
        Some(Command::Reset { yes }) => reset::run(&config()?, yes).await,
        Some(Command::Rejoin { yes, dry_run }) => {
            rejoin::run(&config()?, yes, dry_run, Shutdown::on_signals()?).await
        }
        Some(Command::Switchover { yes, dry_run }) => {
            switchover::run(&config()?, yes, dry_run, Shutdown::on_signals()?).await
        }
        Some(Command::Witness { listen }) => {
            let shutdown = Shutdown::on_signals()?;
            witness::run(&cli.config, listen, async move { shutdown.wait().await }).await
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

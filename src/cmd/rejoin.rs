//! `rejoin [--yes] [--dry-run]`, on the old primary once it is repaired: become the
//! peer's caught-up replica ([`crate::rejoin`]).
//!
//! The promotion lock is held for the whole run (not for a dry run, which changes
//! nothing), so a rejoin never races a promotion on this host. The pre-checks run every
//! time, a resume too; a refusal changes nothing (exit 3).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::alert::Alerter;
use crate::config::Config;
use crate::error::{Refused, UsageError};
use crate::rejoin::Rejoin;
use crate::store::StateDir;

/// The longest the command waits for alerts, all of them together.
const ALERT_WAIT: Duration = Duration::from_secs(10);

pub async fn run(config: &Config, yes: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    let scrubber = crate::secret::Scrubber::new(config.secrets());
    let alerter = Alerter::start(&config.node.name, config, scrubber)?.with_wait_budget(ALERT_WAIT);
    let rejoin = Rejoin::new(config, alerter.clone())?;
    let store = StateDir::new(config.state_dir());
    let _lock = if dry_run {
        None
    } else {
        let holder = format!("pid {} (rejoin)", std::process::id());
        Some(store.lock_promotion(&holder)?)
    };
    let checked = rejoin.precheck().await?;
    if let Some(refusal) = rejoin.refusal(&checked) {
        if !dry_run {
            alerter.send(&rejoin.refused_alert(&checked));
            flush(&alerter).await;
        }
        return Err(Refused(refusal).into());
    }
    let last = store.load_rejoin()?;
    if dry_run {
        print!("{}", rejoin.plan(&checked, last.as_ref()).await);
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        confirm(config)?;
    }
    let mut journal = rejoin.opening(last, &checked);
    let outcome = rejoin.run(&mut journal).await;
    print!("{}", journal.render());
    flush(&alerter).await;
    outcome.map(|()| ExitCode::SUCCESS)
}

async fn flush(alerter: &Alerter) {
    let undelivered = alerter.flush(ALERT_WAIT).await;
    if !undelivered.none() {
        eprintln!("warning: {undelivered}");
    }
}

fn confirm(config: &Config) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(UsageError(
            "rejoin needs --yes when stdin is not a terminal (nobody to ask)".to_string(),
        )
        .into());
    }
    print!(
        "Rejoin {} to its peer? This stops {} unit(s), makes its database read-only and points its replication at the peer. Type 'yes': ",
        config.node.name,
        config.apps.units.len(),
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(Refused("not confirmed; nothing was changed".to_string()).into());
    }
    Ok(())
}

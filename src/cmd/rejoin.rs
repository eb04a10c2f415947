//! `rejoin [--yes] [--dry-run]`, on the old primary once it is repaired: become the
//! peer's caught-up replica ([`crate::rejoin`]). The pre-checks run every time, a resume
//! too; a refusal changes nothing (exit 3). The dry run takes no lock and changes
//! nothing.

use std::process::ExitCode;

use crate::config::Config;
use crate::edges::Edges;
use crate::error::Refused;
use crate::journal::Outcome;
use crate::journal::rejoin::RejoinOutcome;
use crate::procedure::{confirm, print_preview};
use crate::rejoin::Rejoin;
use crate::shutdown::Shutdown;

pub async fn run(
    config: &Config,
    yes: bool,
    dry_run: bool,
    shutdown: Shutdown,
) -> anyhow::Result<ExitCode> {
    let edges = Edges::command(config, shutdown)?;
    let rejoin = Rejoin::new(&edges)?;
    if dry_run {
        return plan(&edges, &rejoin).await;
    }
    if !yes {
        confirm(
            "rejoin",
            &format!(
                "Rejoin {} to its peer? This stops {} unit(s), makes its database read-only and points its replication at the peer.",
                config.node.name,
                config.apps.units.len(),
            ),
        )?;
    }
    let result = crate::rejoin::rejoin(&edges).await;
    let (journal, interrupted) = crate::procedure::command_ran(&edges, result).await?;
    print!("{}", journal.render());
    edges.flush_alerts().await;
    crate::procedure::command_ended(
        "rejoin",
        "failover-watchdog rejoin --yes",
        &journal,
        interrupted,
    )
}

/// The dry run: the pre-checks, then every step with its targets and what they look
/// like now; a journal a real run would resume is said.
async fn plan(edges: &Edges, rejoin: &Rejoin<'_>) -> anyhow::Result<ExitCode> {
    // An unreadable journal stops the dry run as it would the rejoin, first.
    let last = edges.store.load_rejoin()?;
    let checked = rejoin.precheck().await?;
    if let Some(refusal) = rejoin
        .refusal(&checked)
        .or_else(|| rejoin.rebuild_refusal(&checked))
    {
        return Err(Refused(refusal).into());
    }
    println!(
        "Rejoin plan for {} (dry run: nothing is changed)\nChecks passed: the peer is the writable primary (gtid_binlog_pos {}); this host (gtid_current_pos {}) has no transaction it lacks.",
        edges.config.node.name, checked.peer.gtid_binlog_pos, checked.own.gtid_current_pos,
    );
    match &checked.binlogs {
        Ok(Some((file, _))) => {
            println!("The peer still has the binary logs this host needs (its oldest is {file}).")
        }
        Ok(None) => println!("The peer keeps no binary logs."),
        Err(e) => println!(
            "Whether the peer still has the binary logs this host needs cannot be read ({e}); catch_up will tell."
        ),
    }
    let resumed = last.as_ref().filter(|j| j.outcome != Outcome::Done);
    if let Some(journal) = resumed {
        println!(
            "A {} rejoin (started {}) is in the journal: rejoin resumes it at step {}.",
            RejoinOutcome::from(journal.outcome).as_str(),
            journal.started_at,
            journal
                .next_step()
                .or(journal.failed_step().map(|s| s.name))
                .map_or("-", |s| s.as_str())
        );
    }
    print_preview(rejoin, resumed).await;
    Ok(ExitCode::SUCCESS)
}

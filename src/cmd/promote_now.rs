//! `--promote-now [--yes] [--dry-run]`: the daemon's promotion, once, without detection.
//!
//! The dry run prints every step with its concrete targets and what each target looks
//! like now, from read-only checks; it changes nothing.

use std::process::ExitCode;

use crate::config::Config;
use crate::detect::lag_guard;
use crate::edges::Edges;
use crate::error::{Refused, UsageError};
use crate::journal::{Journal, Outcome, StepName, Trigger};
use crate::procedure::{confirm, print_preview};
use crate::promote::{self, Failover};
use crate::shutdown::Shutdown;
use crate::status::LiveState;

pub async fn run(
    config: &Config,
    yes: bool,
    dry_run: bool,
    shutdown: Shutdown,
) -> anyhow::Result<ExitCode> {
    let edges = Edges::command(config, shutdown)?;
    let store = &edges.store;
    let in_journal = store.load_journal()?;
    if let Some(journal) = &in_journal
        && journal.outcome == Outcome::Done
    {
        return Err(Refused(format!(
            "{} was already promoted at {}; failback is manual, then clear the state as the README describes",
            config.node.name,
            journal.finished_at.unwrap_or(journal.started_at)
        ))
        .into());
    }
    if dry_run {
        return dry_run_plan(&edges, in_journal.as_ref()).await;
    }
    // Only a new promotion: a resumed one made this host writable itself.
    if in_journal.is_none() {
        promote::not_the_primary(&edges).await?;
    }
    // The lag guard holds the daemon; an operator may go on, knowingly.
    let live = store.load_live::<LiveState>().ok().flatten();
    let seen = live.as_ref().and_then(|l| l.replication_seen.as_ref());
    if let Err(risk) = lag_guard(seen, config.replica.max_lag) {
        eprintln!("warning: {risk}; promoting now may lose what the standby never received");
        if !yes {
            return Err(UsageError(
                "despite this risk, a promotion needs --yes on the command line".to_string(),
            )
            .into());
        }
    }
    if !yes {
        confirm(
            "--promote-now",
            &format!(
                "Promote {} now? This stops replication, makes its database writable, starts {} unit(s) and points {} DNS record(s) here.",
                config.node.name,
                config.apps.units.len(),
                config.dns.records.len()
            ),
        )?;
    }
    let result = promote::promote(
        &edges,
        Trigger::Manual,
        "requested by an operator with --promote-now",
        // The daemon's last reading of the primary, if it ran here.
        live.and_then(|l| l.primary_last_seen),
    )
    .await;
    // Alerts are queued; give them what is left of the wait before the process ends.
    let (journal, interrupted) = crate::procedure::command_ran(&edges, result).await?;
    let report = crate::status::gather(store, &config.probe, jiff::Timestamp::now())?;
    print!("{}", report.render());
    edges.flush_alerts().await;
    let name = format!("{} promotion", journal.record.trigger.as_str());
    let again = match journal.record.trigger {
        Trigger::Switchover => "failover-watchdog switchover --yes",
        _ => "failover-watchdog --promote-now --yes",
    };
    crate::procedure::command_ended(&name, again, &journal, interrupted)
}

/// Prints the plan and the read-only checks; exit 1 when a check fails.
async fn dry_run_plan(edges: &Edges, journal: Option<&Journal>) -> anyhow::Result<ExitCode> {
    println!(
        "Promotion plan for {} (dry run: nothing is changed)",
        edges.config.node.name
    );
    if let Some(journal) = journal {
        println!(
            "A {} promotion ({} trigger, started {}) is in the journal: --promote-now resumes it at step {}.",
            if journal.outcome == Outcome::Halted {
                "halted"
            } else {
                "running or interrupted"
            },
            journal.record.trigger.as_str(),
            journal.started_at,
            journal
                .next_step()
                .or(journal.failed_step().map(|s| s.name))
                .map_or("-", StepName::as_str)
        );
    }
    let failover = Failover {
        edges,
        trigger: Trigger::Manual,
        reason: String::new(),
        primary_last_seen: None,
    };
    let mut failed = print_preview(&failover, journal).await;
    if journal.is_none()
        && let Err(refused) = promote::not_the_primary(edges).await
    {
        failed += 1;
        println!(" CHECK FAILED: {}", refused.0);
    }
    if failed == 0 {
        println!("All read-only checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{failed} read-only check(s) failed: a promotion now would likely halt")
    }
}

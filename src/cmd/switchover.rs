//! `switchover [--yes] [--dry-run]`, run on the standby: the pre-checks, the
//! confirmation, then the switchover's steps on the engine ([`crate::switchover`]). A
//! switchover in the journal (interrupted or halted) is resumed without the pre-checks:
//! the pair is already mid-way.
//!
//! The dry run prints every step with its concrete targets and runs only the read-only
//! pre-checks; it changes nothing.

use std::process::ExitCode;

use crate::config::{Config, ConfigError};
use crate::edges::Edges;
use crate::error::Refused;
use crate::journal::{Journal, Outcome, StepName, Trigger};
use crate::procedure::{RunError, confirm, print_preview};
use crate::shutdown::Shutdown;
use crate::switchover::{PreCheck, Switchover, pre_checks};

pub async fn run(
    config: &Config,
    yes: bool,
    dry_run: bool,
    shutdown: Shutdown,
) -> anyhow::Result<ExitCode> {
    let Some(peer) = &config.peer else {
        return Err(ConfigError {
            file: config.path.clone(),
            key: Some("peer".to_string()),
            line_col: None,
            problem: "switchover needs a [peer] table naming the primary's database".to_string(),
        }
        .into());
    };
    let edges = Edges::command(config, shutdown)?;
    let journal = edges.store.load_journal()?;
    let resume = match &journal {
        None => false,
        Some(j) if j.record.trigger == Trigger::Switchover && j.outcome != Outcome::Done => true,
        Some(j) => return Err(Refused(journal_in_the_way(j)).into()),
    };
    if dry_run {
        return plan(&edges, journal.as_ref()).await;
    }
    if resume {
        println!("A switchover is in the journal: resuming it (the pre-checks are for a new one).");
    } else {
        // The journal is written before the fence: state_dir must exist.
        edges.store.ensure()?;
        refuse_on_failed_checks(&pre_checks(&edges).await)?;
    }
    if !yes {
        confirm(
            "switchover",
            &format!(
                "Switch over from {peer} to {}? This fences {peer} (its writes refused until this host is writable), promotes this host and makes {peer} replicate from it.",
                config.node.name,
                peer = peer.name
            ),
        )?;
    }
    let result = crate::switchover::switch_over(&edges).await;
    let (journal, interrupted) = crate::procedure::command_ran(&edges, result).await?;
    edges.flush_alerts().await;
    let report = crate::status::gather(&edges.store, &config.probe, jiff::Timestamp::now())?;
    print!("{}", report.render());
    if let Some(drill) = &journal.record.switchover {
        println!("drill: {}", drill.summary());
    }
    crate::procedure::command_ended(
        "switchover",
        "failover-watchdog switchover --yes",
        &journal,
        interrupted,
    )
}

/// Prints the pre-checks; refused (exit 3, nothing changed) when one failed.
fn refuse_on_failed_checks(checks: &[PreCheck]) -> Result<(), Refused> {
    print_checks(checks);
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|c| c.result.as_ref().err().map(|e| format!("{}: {e}", c.what)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Refused(format!(
        "a pre-check failed, nothing was changed: {}",
        failed.join("; ")
    )))
}

/// Why a journal that is not a switchover's stops one, and what to do.
fn journal_in_the_way(journal: &Journal) -> String {
    match (journal.record.trigger, journal.outcome) {
        (Trigger::Switchover, _) => format!(
            "this host already switched over at {}: it is the primary; to switch back, run `switchover` on the other host once it is a healthy standby",
            journal.finished_at.unwrap_or(journal.started_at)
        ),
        (trigger, Outcome::Done) => format!(
            "this host was promoted ({} trigger) at {}: it is the primary; rejoin the old primary (`rejoin` there) and switch over from there",
            trigger.as_str(),
            journal.finished_at.unwrap_or(journal.started_at)
        ),
        (trigger, _) => format!(
            "a {} promotion is in the journal (started {}, not finished): finish it with --promote-now first",
            trigger.as_str(),
            journal.started_at
        ),
    }
}

fn print_checks(checks: &[PreCheck]) {
    for check in checks {
        match &check.result {
            Ok(found) => println!("     pre-check ok: {}: {found}", check.what),
            Err(problem) => println!("     PRE-CHECK FAILED: {}: {problem}", check.what),
        }
    }
}

/// The dry run: the plan with its targets, then the pre-checks; exit 1 when one fails.
async fn plan(edges: &Edges, journal: Option<&Journal>) -> anyhow::Result<ExitCode> {
    let switchover = Switchover::new(edges).map_err(|e: RunError| anyhow::anyhow!(e))?;
    println!(
        "Switchover plan for {} (dry run: nothing is changed)",
        edges.config.node.name
    );
    if let Some(journal) = journal {
        println!(
            "A switchover (started {}) is in the journal: `switchover` resumes it at step {}.",
            journal.started_at,
            journal
                .next_step()
                .or(journal.failed_step().map(|s| s.name))
                .map_or("-", StepName::as_str)
        );
    }
    print_preview(&switchover, journal).await;
    if journal.is_some() {
        println!("Pre-checks skipped: they are for a new switchover.");
        return Ok(ExitCode::SUCCESS);
    }
    let checks = pre_checks(edges).await;
    print_checks(&checks);
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    if failed == 0 {
        println!("All pre-checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{failed} pre-check(s) failed: a switchover now would be refused")
    }
}

//! `switchover [--yes] [--dry-run]`, run on the standby: the pre-checks, the
//! confirmation, then the switchover journal run by the promoter
//! ([`crate::switchover`] has the steps). A switchover in the journal (interrupted or
//! halted) is resumed without the pre-checks: the pair is already mid-way.
//!
//! The dry run prints every step with its concrete targets and runs only the read-only
//! pre-checks; it changes nothing.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::alert::Alerter;
use crate::config::{Config, ConfigError};
use crate::error::{Refused, UsageError};
use crate::journal::{Journal, Outcome, StepName, Trigger};
use crate::pair::Database;
use crate::promote::Promoter;
use crate::status::StatusReport;
use crate::store::StateDir;
use crate::switchover::{PreCheck, pre_checks};

/// The longest the command waits for alerts, all of them together.
const ALERT_WAIT: Duration = Duration::from_secs(10);

pub async fn run(config: &Config, yes: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    let Some(peer) = &config.peer else {
        return Err(ConfigError {
            file: config.path.clone(),
            key: Some("peer".to_string()),
            line_col: None,
            problem: "switchover needs a [peer] table naming the primary's database".to_string(),
        }
        .into());
    };
    let store = StateDir::new(config.state_dir());
    let journal = store.load_journal()?;
    let resume = match &journal {
        None => false,
        Some(j) if j.trigger == Trigger::Switchover && j.outcome != Outcome::Promoted => true,
        Some(j) => return Err(Refused(journal_in_the_way(j)).into()),
    };
    if dry_run {
        return plan(config, journal.as_ref()).await;
    }
    if resume {
        println!("A switchover is in the journal: resuming it (the pre-checks are for a new one).");
    } else {
        // The journal is written before the fence: state_dir must exist.
        store.ensure()?;
        let checks = pre_checks(config).await;
        print_checks(&checks);
        let failed: Vec<String> = checks
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| format!("{}: {e}", c.what)))
            .collect();
        if !failed.is_empty() {
            return Err(Refused(format!(
                "a pre-check failed, nothing was changed: {}",
                failed.join("; ")
            ))
            .into());
        }
    }
    if !yes {
        confirm(config, &peer.name)?;
    }
    let scrubber = crate::secret::Scrubber::new(config.secrets());
    let alerter = Alerter::start(&config.node.name, config, scrubber)?.with_wait_budget(ALERT_WAIT);
    let promoter = Promoter::new(config, alerter.clone())?;
    let result = promoter
        .promote(
            Trigger::Switchover,
            &format!(
                "planned switchover from {} requested by an operator",
                peer.name
            ),
            None,
            || false,
        )
        .await;
    let undelivered = alerter.flush(ALERT_WAIT).await;
    if !undelivered.none() {
        eprintln!("warning: {undelivered}");
    }
    let journal = result?;
    let report = StatusReport::gather(&store, &config.probe, jiff::Timestamp::now())?;
    print!("{}", report.render());
    if let Some(drill) = &journal.switchover {
        println!("drill: {}", drill.summary());
    }
    Ok(match journal.outcome {
        Outcome::Promoted => ExitCode::SUCCESS,
        Outcome::Halted | Outcome::Running => ExitCode::FAILURE,
    })
}

/// Why a journal that is not a switchover's stops one, and what to do.
fn journal_in_the_way(journal: &Journal) -> String {
    match (journal.trigger, journal.outcome) {
        (Trigger::Switchover, _) => format!(
            "this host already switched over at {}: it is the primary; to switch back, run `switchover` on the other host once it is a healthy standby",
            journal.finished_at.unwrap_or(journal.started_at)
        ),
        (trigger, Outcome::Promoted) => format!(
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

fn confirm(config: &Config, peer: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(UsageError(
            "switchover needs --yes when stdin is not a terminal (nobody to ask)".to_string(),
        )
        .into());
    }
    print!(
        "Switch over from {peer} to {}? This fences {peer} (its writes refused until this host is writable), promotes this host and makes {peer} replicate from it. Type 'yes': ",
        config.node.name
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(Refused("not confirmed; nothing was changed".to_string()).into());
    }
    Ok(())
}

/// The dry run: the plan with its targets, then the pre-checks; exit 1 when one fails.
async fn plan(config: &Config, journal: Option<&Journal>) -> anyhow::Result<ExitCode> {
    let (Some(peer), Some(p)) = (Database::peer(config), config.peer.as_ref()) else {
        return Ok(ExitCode::FAILURE);
    };
    let local = Database::local(config);
    println!(
        "Switchover plan for {} (dry run: nothing is changed)",
        config.node.name
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
    let units = if config.apps.units.is_empty() {
        "(no units)".to_string()
    } else {
        config.apps.units.join(", ")
    };
    let records: Vec<String> = config
        .dns
        .records
        .iter()
        .map(|r| format!("{} {} -> {}", r.name, r.record_type, r.content))
        .collect();
    for (n, line) in [
        format!(
            "fence_primary: on {} SET GLOBAL read_only = ON (running writes get {}), end its client connections, read @@gtid_binlog_pos",
            peer.describe(),
            humantime::format_duration(p.write_drain_timeout)
        ),
        format!(
            "catch_up: on {} MASTER_GTID_WAIT(that position, {}); if it cannot, read_only = OFF on the peer again and stop: nothing changed",
            local.describe(),
            humantime::format_duration(p.switchover_timeout)
        ),
        format!(
            "stop_replica: stop replication on {}{}",
            local.describe(),
            if config.replica.reset_replica {
                ", RESET SLAVE ALL"
            } else {
                ""
            }
        ),
        format!(
            "make_writable: SET GLOBAL read_only = OFF on {} (no fence_command: the primary is fenced already)",
            local.describe()
        ),
        format!("start_apps: systemctl start, in order: {units}"),
        format!(
            "update_dns: via {}: {}",
            config.dns.api_base,
            records.join(", ")
        ),
        format!(
            "rejoin_peer: on {} CHANGE MASTER TO {} as {} with GTID, START SLAVE, confirmed running",
            peer.describe(),
            config.replica.connect_address,
            p.replication_user
        ),
        "notify: the closing alert with the drill record".to_string(),
    ]
    .iter()
    .enumerate()
    {
        println!(" {}. {line}", n + 1);
    }
    if journal.is_some() {
        println!("Pre-checks skipped: they are for a new switchover.");
        return Ok(ExitCode::SUCCESS);
    }
    let checks = pre_checks(config).await;
    print_checks(&checks);
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    if failed == 0 {
        println!("All pre-checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} pre-check(s) failed: a switchover now would be refused.");
        Ok(ExitCode::FAILURE)
    }
}

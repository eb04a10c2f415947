//! `--promote-now [--yes] [--dry-run]`: the daemon's promotion, once, without detection.
//!
//! The dry run prints every step with its concrete targets and what each target looks
//! like now, from read-only checks; it changes nothing.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::alert::Alerter;
use crate::config::Config;
use crate::detect::lag_guard;
use crate::error::{Refused, UsageError};
use crate::journal::{Journal, Outcome, StepName, StepStatus, Trigger};
use crate::promote::Promoter;
use crate::retry::Failure;
use crate::status::{LiveState, StatusReport};
use crate::store::StateDir;
use crate::systemd;

/// The longest the command waits for alerts, all of them together.
const ALERT_WAIT: Duration = Duration::from_secs(10);

pub async fn run(config: &Config, yes: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    let store = StateDir::new(config.state_dir());
    if let Some(journal) = store.load_journal()?
        && journal.outcome == Outcome::Promoted
    {
        return Err(Refused(format!(
            "{} was already promoted at {}; failback is manual, then clear the state as the README describes",
            config.node.name,
            journal.finished_at.unwrap_or(journal.started_at)
        ))
        .into());
    }
    // A dead Telegram must not hold the operator's terminal: every wait for an alert
    // together stays within ALERT_WAIT; what is not delivered is said, and logged.
    let scrubber = crate::secret::Scrubber::new(config.secrets());
    let alerter = Alerter::start(&config.node.name, config, scrubber)?.with_wait_budget(ALERT_WAIT);
    let promoter = Promoter::new(config, alerter.clone())?;
    if dry_run {
        return dry_run_plan(config, &promoter, store.load_journal()?.as_ref()).await;
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
        confirm(config)?;
    }
    let journal = promoter
        .promote(
            Trigger::Manual,
            "requested by an operator with --promote-now",
            // The daemon's last reading of the primary, if it ran here.
            live.and_then(|l| l.primary_last_seen),
            || false,
        )
        .await?;
    let report = StatusReport::gather(&store, &config.probe, jiff::Timestamp::now())?;
    print!("{}", report.render());
    // Alerts are queued; give them what is left of the wait before the process ends.
    let undelivered = alerter.flush(ALERT_WAIT).await;
    if !undelivered.none() {
        eprintln!("warning: {undelivered}");
    }
    Ok(match journal.outcome {
        Outcome::Promoted => ExitCode::SUCCESS,
        Outcome::Halted | Outcome::Running => ExitCode::FAILURE,
    })
}

fn confirm(config: &Config) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(UsageError(
            "--promote-now needs --yes when stdin is not a terminal (nobody to ask)".to_string(),
        )
        .into());
    }
    print!(
        "Promote {} now? This stops replication, makes its database writable, starts {} unit(s) and points {} DNS record(s) here. Type 'yes': ",
        config.node.name,
        config.apps.units.len(),
        config.dns.records.len()
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(Refused("not confirmed; nothing was changed".to_string()).into());
    }
    Ok(())
}

/// Prints the plan and the read-only checks; exit 1 when a check fails.
async fn dry_run_plan(
    config: &Config,
    promoter: &Promoter,
    journal: Option<&Journal>,
) -> anyhow::Result<ExitCode> {
    println!(
        "Promotion plan for {} (dry run: nothing is changed)",
        config.node.name
    );
    if let Some(journal) = journal {
        println!(
            "A {} promotion ({} trigger, started {}) is in the journal: --promote-now resumes it at step {}.",
            if journal.outcome == Outcome::Halted {
                "halted"
            } else {
                "running or interrupted"
            },
            journal.trigger.as_str(),
            journal.started_at,
            journal
                .next_step()
                .or(journal.failed_step().map(|s| s.name))
                .map_or("-", StepName::as_str)
        );
    }
    let mut plan = Plan { journal, failed: 0 };
    plan.stop_replica(config, promoter).await;
    plan.make_writable(config, promoter).await;
    plan.start_apps(config).await;
    plan.update_dns(config, promoter).await;
    match &config.telegram {
        Some(t) => println!(
            " 5. notify: the closing alert to Telegram chat {} via {}",
            t.chat_id, t.api_url
        ),
        None => println!(" 5. notify: the closing alert to the log (no [telegram] configured)"),
    }
    if plan.failed == 0 {
        println!("All read-only checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} read-only check(s) failed: a promotion now would likely halt.",
            plan.failed
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The dry run's steps, each printed with what its targets look like now.
struct Plan<'a> {
    journal: Option<&'a Journal>,
    /// Read-only checks that failed so far.
    failed: usize,
}

impl Plan<'_> {
    /// A step the journal has done is not run again: show what it did, check nothing.
    fn already_done(&self, step: StepName) -> bool {
        match self.journal.and_then(|j| j.step(step)) {
            Some(record) if record.status == StepStatus::Done => {
                println!(
                    "     already done: {}",
                    record.detail.as_deref().unwrap_or("")
                );
                true
            }
            _ => false,
        }
    }

    fn check(&mut self, ok: bool, text: String) {
        if !ok {
            self.failed += 1;
        }
        println!("     {} {text}", if ok { "now:" } else { "CHECK FAILED:" });
    }

    async fn stop_replica(&mut self, config: &Config, promoter: &Promoter) {
        let r = &config.replica;
        println!(
            " 1. stop_replica: on {} stop the IO thread, wait up to {} for everything received to be applied (MASTER_GTID_WAIT), STOP SLAVE{}",
            promoter.replica().describe(),
            humantime::format_duration(r.apply_timeout),
            if r.reset_replica {
                ", RESET SLAVE ALL"
            } else {
                ""
            }
        );
        if self.already_done(StepName::StopReplica) {
            return;
        }
        match promoter.replica().status().await {
            Ok(Some(status)) => match &status.sql_error {
                Some(error) => self.check(false, error.to_string()),
                None => self.check(true, status.summary()),
            },
            Ok(None) => self.check(
                false,
                format!(
                    "no replication connection {:?} on the replica",
                    r.connection_name
                ),
            ),
            Err(e) => self.check(false, format!("{e:#}")),
        }
    }

    async fn make_writable(&mut self, config: &Config, promoter: &Promoter) {
        println!(
            " 2. make_writable: SET GLOBAL read_only = OFF on {}:{}, then read it back",
            config.replica.host, config.replica.port
        );
        if self.already_done(StepName::MakeWritable) {
            return;
        }
        match promoter.replica().read_only().await {
            Ok(read_only) => self.check(
                true,
                format!("read_only = {}", if read_only { "ON" } else { "OFF" }),
            ),
            Err(e) => self.check(false, format!("{e:#}")),
        }
    }

    async fn start_apps(&mut self, config: &Config) {
        println!(
            " 3. start_apps: systemctl start, in order: {} (each within {})",
            if config.apps.units.is_empty() {
                "(no units)".to_string()
            } else {
                config.apps.units.join(", ")
            },
            humantime::format_duration(config.apps.start_timeout)
        );
        if self.already_done(StepName::StartApps) {
            return;
        }
        for unit in &config.apps.units {
            match systemd::active_state(unit, Duration::from_secs(10)).await {
                Ok(state) => self.check(true, format!("{unit} is {state}")),
                Err(e) => self.check(false, format!("{unit}: {e:#}")),
            }
        }
    }

    async fn update_dns(&mut self, config: &Config, promoter: &Promoter) {
        println!(" 4. update_dns: via {}", config.dns.api_base);
        let done = self.already_done(StepName::UpdateDns);
        for record in &config.dns.records {
            println!(
                "     {} {} in zone {} -> {}",
                record.name, record.record_type, record.zone_id, record.content
            );
            if done {
                continue;
            }
            match promoter
                .cloudflare()
                .find_record(&record.zone_id, &record.name, &record.record_type)
                .await
            {
                Ok(found) => self.check(
                    true,
                    format!(
                        "{} (id {}, ttl {}, proxied {})",
                        found.content, found.id, found.ttl, found.proxied
                    ),
                ),
                Err(Failure::Fatal(e) | Failure::Transient { error: e, .. }) => {
                    self.check(false, format!("{e:#}"))
                }
            }
        }
    }
}

//! The promotion driver: runs the journal's steps against the edges. The daemon and
//! `--promote-now` both call [`Promoter::promote`]; there is no second copy.
//!
//! Order of business for every step: mark it running and persist the journal, run it
//! within its deadline, mark it done or failed and persist again. A failed step halts the
//! promotion and leaves every later step undone, so DNS never moves to a standby whose
//! database is not writable. Alerts go through the queue and never block a step.

use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::future::join_all;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::alert::Alerter;
use crate::cloudflare::Cloudflare;
use crate::config::{Config, DnsRecordConfig};
use crate::crashpoint;
use crate::error::Refused;
use crate::fence;
use crate::journal::{DnsChange, Journal, Outcome, PrimarySeen, StepName, StepStatus, Trigger};
use crate::probe::human_duration;
use crate::replica::Replica;
use crate::retry::{Backoff, retry_until};
use crate::shell;
use crate::store::StateDir;
use crate::systemd;

/// `make_writable` is two statements; it gets this long.
const MAKE_WRITABLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for `stop_replica` beyond `apply_timeout`: connecting, stopping, resetting.
const STOP_REPLICA_SLACK: Duration = Duration::from_secs(30);
/// How long `notify` waits for the closing alert: room for the alert queued before it
/// (the opening one) and its own delivery budget.
const NOTIFY_TIMEOUT: Duration =
    Duration::from_secs(2 * crate::alert::DELIVERY_BUDGET.as_secs() + 5);

/// Everything a promotion talks to.
#[derive(Clone)]
pub struct Promoter {
    config: Config,
    store: StateDir,
    replica: Replica,
    cloudflare: Cloudflare,
    alerter: Alerter,
}

impl Promoter {
    pub fn new(config: &Config, alerter: Alerter) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("failover-watchdog/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            config: config.clone(),
            store: StateDir::new(config.state_dir()),
            replica: Replica::new(&config.replica),
            cloudflare: Cloudflare::new(
                http,
                config.dns.api_base.clone(),
                config.dns.api_token.clone(),
            ),
            alerter,
        })
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn cloudflare(&self) -> &Cloudflare {
        &self.cloudflare
    }

    /// Runs (or resumes) the promotion. `reason` says why, in words, for the journal and
    /// the opening alert; `primary_last_seen` is where the primary was when last read,
    /// for the data-loss accounting. `stop_requested` is checked between steps: a daemon asked to
    /// stop leaves the rest for its next start. Returns the journal as it ends.
    ///
    /// Refused (exit 3) when a promotion already finished, or another process holds the
    /// lock. An automatic promotion does not take up a halted one: that is an operator's
    /// call, with `--promote-now`.
    pub async fn promote(
        &self,
        trigger: Trigger,
        reason: &str,
        primary_last_seen: Option<PrimarySeen>,
        stop_requested: impl Fn() -> bool,
    ) -> anyhow::Result<Journal> {
        let holder = format!(
            "pid {} ({} promotion) since {}",
            std::process::id(),
            match trigger {
                Trigger::Automatic => "the daemon's automatic",
                Trigger::Manual => "a --promote-now",
            },
            Timestamp::now()
        );
        let _lock = self.store.lock_promotion(&holder)?;
        let node = &self.config.node.name;
        let mut journal = match self.store.load_journal()? {
            None => {
                let mut journal = Journal::new(node, trigger, reason, Timestamp::now());
                journal.primary_last_seen = primary_last_seen;
                self.pre_promote(&journal).await?;
                self.alerter
                    .send(&format!("🚨 promoting {node} to primary: {reason}"));
                journal
            }
            Some(journal) if journal.outcome == Outcome::Promoted => {
                return Err(anyhow!(Refused(format!(
                    "{node} was already promoted at {} ({:?} trigger); after a failback, clear it with the procedure in the README",
                    journal.finished_at.unwrap_or(journal.started_at),
                    journal.trigger
                ))));
            }
            Some(mut journal) if journal.outcome == Outcome::Halted => {
                if trigger == Trigger::Automatic {
                    return Err(anyhow!(Refused(
                        "a halted promotion is in the journal; an operator retries it with --promote-now".to_string()
                    )));
                }
                let failed = journal.failed_step().map_or("?", |s| s.name.as_str());
                tracing::warn!("retrying the halted promotion from step {failed}");
                self.alerter.send(&format!(
                    "🔁 retrying the halted promotion of {node} from step {failed} (by an operator)"
                ));
                journal.retry_halted();
                journal
            }
            Some(journal) => {
                let step = journal.next_step().map_or("the end", StepName::as_str);
                tracing::warn!("resuming the interrupted promotion at step {step}");
                self.alerter.send(&format!(
                    "🔁 resuming the interrupted promotion of {node} at step {step}"
                ));
                journal
            }
        };
        self.store.save_journal(&journal)?;

        while let Some(step) = journal.next_step() {
            if stop_requested() {
                tracing::warn!("stopping before step {step}; the next start resumes there");
                return Ok(journal);
            }
            journal.begin(step, Timestamp::now());
            self.store.save_journal(&journal)?;
            tracing::info!("step {step}: started");
            crashpoint::reached(&format!("before:{step}"));
            let started = Instant::now();
            let result = self.run_step(step, &mut journal).await;
            crashpoint::reached(&format!("after:{step}"));
            match result {
                Ok(detail) => {
                    tracing::info!(
                        "step {step}: done in {} ms: {detail}",
                        started.elapsed().as_millis()
                    );
                    journal.finish(step, detail, Timestamp::now());
                    self.store.save_journal(&journal)?;
                }
                Err(error) => {
                    let error = format!("{error:#}");
                    journal.fail(step, error.clone(), Timestamp::now());
                    self.store.save_journal(&journal)?;
                    if step == StepName::Notify {
                        tracing::error!("the closing alert was not delivered: {error}");
                    } else {
                        tracing::error!("step {step} failed, promotion halted: {error}");
                        self.alerter.send(&halted_alert(&journal, step, &error));
                        self.hook(
                            "on_failure",
                            &self.config.promotion.on_failure,
                            &journal,
                            Some(step),
                        )
                        .await;
                    }
                }
            }
        }
        if journal.outcome == Outcome::Promoted {
            self.hook(
                "post_promote",
                &self.config.promotion.post_promote,
                &journal,
                None,
            )
            .await;
        }
        Ok(journal)
    }

    /// The `pre_promote` hook, before a new promotion's first step: a non-zero exit (or
    /// a hook that cannot run) stops the promotion before anything is changed.
    async fn pre_promote(&self, journal: &Journal) -> anyhow::Result<()> {
        let Some(command) = &self.config.promotion.pre_promote else {
            return Ok(());
        };
        let env = command_env(journal, None);
        let timeout = self.config.promotion.hook_timeout;
        match shell::run(
            "pre_promote",
            command,
            &env,
            timeout,
            &self.config.secret_values(),
        )
        .await
        {
            Ok(done) if done.success() => Ok(()),
            Ok(done) => {
                Err(PrePromoteRefused(format!("{}: {}", done.describe(), done.tail)).into())
            }
            Err(e) => Err(PrePromoteRefused(format!("{e:#}")).into()),
        }
    }

    /// Runs `post_promote` or `on_failure`; a failure is logged and alerted, nothing more.
    async fn hook(
        &self,
        name: &str,
        command: &Option<String>,
        journal: &Journal,
        step: Option<StepName>,
    ) {
        let Some(command) = command else { return };
        let env = command_env(journal, step);
        let timeout = self.config.promotion.hook_timeout;
        let problem =
            match shell::run(name, command, &env, timeout, &self.config.secret_values()).await {
                Ok(done) if done.success() => return,
                Ok(done) => format!("{}: {}", done.describe(), done.tail),
                Err(e) => format!("{e:#}"),
            };
        tracing::error!("the {name} hook failed: {problem}");
        self.alerter
            .send(&format!("⚠️ the {name} hook failed: {problem}"));
    }

    /// `make_writable`: fence the old primary, then `read_only = OFF` here.
    async fn make_writable(&self, journal: &mut Journal) -> anyhow::Result<String> {
        let env = command_env(journal, Some(StepName::MakeWritable));
        let fence = fence::fence_old_primary(&self.config, &env).await;
        journal.fence = Some(fence.clone());
        if !fence.ok {
            if self.config.promotion.require_fence {
                anyhow::bail!(
                    "fencing the old primary failed and require_fence is set, so nothing was made writable: {}",
                    fence.summary()
                );
            }
            tracing::error!(
                "fencing the old primary failed; going on: {}",
                fence.summary()
            );
            self.alerter.send(&format!(
                "⚠️ fencing the old primary failed; the promotion goes on (require_fence is off): {}",
                fence.summary()
            ));
        }
        let writable = self.replica.make_writable().await?;
        Ok(format!("fence: {}; {writable}", fence.summary()))
    }

    async fn run_step(&self, step: StepName, journal: &mut Journal) -> anyhow::Result<String> {
        let deadline = match step {
            StepName::StopReplica => self.config.replica.apply_timeout + STOP_REPLICA_SLACK,
            // Fencing first: the database (connect, then its own timeout), the command.
            StepName::MakeWritable => {
                MAKE_WRITABLE_TIMEOUT
                    + self.config.probe.timeout
                    + 2 * self.config.promotion.fence_timeout
            }
            StepName::StartApps => {
                self.config.apps.start_timeout * (self.config.apps.units.len().max(1) as u32)
            }
            StepName::UpdateDns => self.config.dns.update_timeout,
            StepName::Notify => NOTIFY_TIMEOUT,
        };
        let work = async {
            match step {
                StepName::StopReplica => {
                    let (positions, detail) = self.replica.stop_after_applying().await?;
                    journal.gtid = Some(positions);
                    Ok(detail)
                }
                StepName::MakeWritable => self.make_writable(journal).await,
                StepName::StartApps => self.start_apps().await,
                StepName::UpdateDns => self.point_dns_at_standby(journal).await,
                StepName::Notify => {
                    self.alerter
                        .send_and_confirm(&closing_alert(journal), NOTIFY_TIMEOUT)
                        .await
                        .map_err(|e| anyhow!("closing alert: {e}"))?;
                    Ok("closing alert delivered".to_string())
                }
            }
        };
        tokio::time::timeout(deadline, work).await.map_err(|_| {
            anyhow!(
                "step {step} did not finish within {}",
                humantime::format_duration(deadline)
            )
        })?
    }

    async fn start_apps(&self) -> anyhow::Result<String> {
        let units = &self.config.apps.units;
        for unit in units {
            systemd::start_unit(unit, self.config.apps.start_timeout)
                .await
                .with_context(|| format!("starting {unit}"))?;
            tracing::info!("{unit} is active");
        }
        Ok(if units.is_empty() {
            "no units configured".to_string()
        } else {
            format!("active: {}", units.join(", "))
        })
    }

    /// Every record at once; each is found, changed and read back with retries inside
    /// the step's deadline.
    async fn point_dns_at_standby(&self, journal: &mut Journal) -> anyhow::Result<String> {
        let deadline = Instant::now() + self.config.dns.update_timeout;
        let results = join_all(
            self.config
                .dns
                .records
                .iter()
                .map(|record| self.point_record(record, deadline)),
        )
        .await;
        let mut errors = Vec::new();
        let mut done = Vec::new();
        for (record, result) in self.config.dns.records.iter().zip(results) {
            match result {
                Ok(mut change) => {
                    // A resumed step sees the record already moved; keep what it was before.
                    if let Some(earlier) = journal
                        .dns_changes
                        .iter()
                        .find(|c| c.record_id == change.record_id)
                    {
                        change.previous_content = earlier.previous_content.clone();
                    }
                    done.push(format!(
                        "{} {} -> {} (was {})",
                        change.name, change.record_type, change.content, change.previous_content
                    ));
                    journal
                        .dns_changes
                        .retain(|c| c.record_id != change.record_id);
                    journal.dns_changes.push(change);
                }
                Err(e) => errors.push(format!("{} {}: {e:#}", record.name, record.record_type)),
            }
        }
        if errors.is_empty() {
            Ok(done.join("; "))
        } else {
            Err(anyhow!("{}", errors.join("; ")))
        }
    }

    async fn point_record(
        &self,
        record: &DnsRecordConfig,
        deadline: Instant,
    ) -> anyhow::Result<DnsChange> {
        let cf = &self.cloudflare;
        let (zone, name, kind, target) = (
            &record.zone_id,
            &record.name,
            &record.record_type,
            &record.content,
        );
        let found = retry_until(
            &format!("finding {name} {kind}"),
            deadline,
            Backoff::API,
            || cf.find_record(zone, name, kind),
        )
        .await?;
        if found.content != *target {
            retry_until(
                &format!("updating {name} {kind}"),
                deadline,
                Backoff::API,
                || cf.set_content(zone, &found.id, target),
            )
            .await?;
        }
        let read_back = retry_until(
            &format!("reading back {name} {kind}"),
            deadline,
            Backoff::API,
            || cf.get_record(zone, &found.id),
        )
        .await?;
        if read_back.content != *target {
            anyhow::bail!("read back {} instead of {target}", read_back.content);
        }
        Ok(DnsChange {
            name: name.clone(),
            record_type: kind.clone(),
            zone_id: zone.clone(),
            record_id: found.id,
            previous_content: found.content,
            content: read_back.content,
        })
    }
}

/// A `pre_promote` hook said no (or could not run): nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("the pre_promote hook stopped the promotion before its first step: {0}")]
pub struct PrePromoteRefused(pub String);

/// What operator commands are told, as `FAILOVER_*` environment variables.
fn command_env(journal: &Journal, step: Option<StepName>) -> Vec<(&'static str, String)> {
    let gtid = journal.gtid.clone().unwrap_or_default();
    vec![
        ("FAILOVER_NODE", journal.node.clone()),
        ("FAILOVER_TRIGGER", journal.trigger.as_str().to_string()),
        ("FAILOVER_REASON", journal.reason.clone()),
        (
            "FAILOVER_STEP",
            step.map_or(String::new(), |s| s.as_str().to_string()),
        ),
        ("FAILOVER_GTID_RECEIVED", gtid.received),
        ("FAILOVER_GTID_APPLIED", gtid.applied),
        (
            "FAILOVER_PRIMARY_LAST_SEEN_GTID",
            journal
                .primary_last_seen
                .as_ref()
                .map_or(String::new(), |p| p.gtid.clone()),
        ),
    ]
}

/// The alert sent when a step fails.
fn halted_alert(journal: &Journal, step: StepName, error: &str) -> String {
    let undone: Vec<&str> = journal
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Pending)
        .map(|s| s.name.as_str())
        .collect();
    format!(
        "🛑 promotion HALTED at step {step}: {error}\nNot done: {}.\nTrigger: {}. Fix the cause, then retry with `failover-watchdog --promote-now --yes`.",
        if undone.is_empty() {
            "nothing".to_string()
        } else {
            undone.join(", ")
        },
        trigger_word(journal.trigger)
    )
}

fn trigger_word(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Automatic => "automatic",
        Trigger::Manual => "manual (--promote-now)",
    }
}

/// The closing alert: outcome, trigger, each step with its duration, GTID positions.
pub fn closing_alert(journal: &Journal) -> String {
    let mut text = format!(
        "✅ PROMOTED: this standby is now the primary.\nTrigger: {}. Why: {}\n",
        trigger_word(journal.trigger),
        journal.reason
    );
    for step in journal.steps.iter().filter(|s| s.name != StepName::Notify) {
        let took = journal
            .step_duration(step.name)
            .map_or("-".to_string(), human_duration);
        text.push_str(&format!(
            "• {} {} in {took}: {}\n",
            step.name,
            step.status.as_str(),
            step.detail.as_deref().unwrap_or("")
        ));
    }
    if let Some(accounting) = journal.accounting() {
        text.push_str(&format!("Data: {accounting}\n"));
    }
    text.push_str("Failback is manual: see the README's failback procedure.");
    text
}

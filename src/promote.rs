//! The promotion driver: runs the journal's steps against the edges. The daemon and
//! `--promote-now` both call [`Promoter::promote`]; there is no second copy.
//!
//! Order of business for every step: mark it running and persist the journal, run it
//! within its deadline, mark it done or failed and persist again. A failed step halts the
//! promotion and leaves every later step undone, so DNS never moves to a standby whose
//! database is not writable. Alerts go through the queue and never block a step.
//! Every step's detail and error is scrubbed of every configured secret before the
//! journal records it (and so before `status`, the log and the HALTED alert show it).

use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::future::join_all;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::alert::{Alert, Alerter};
use crate::cloudflare::Cloudflare;
use crate::config::{Config, DnsRecordConfig};
use crate::crashpoint;
use crate::error::Refused;
use crate::fence;
use crate::journal::{DnsChange, Journal, Outcome, PrimarySeen, StepName, Trigger};
use crate::replica::Replica;
use crate::retry::{Backoff, retry_until};
use crate::secret::Scrubber;
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
    /// Every step's detail and error goes through it before the journal keeps it.
    scrubber: Scrubber,
}

impl Promoter {
    pub fn new(config: &Config, alerter: Alerter) -> anyhow::Result<Self> {
        let scrubber = Scrubber::new(config.secrets());
        Ok(Self {
            config: config.clone(),
            store: StateDir::new(config.state_dir()),
            replica: Replica::new(&config.replica),
            cloudflare: Cloudflare::new(
                config.dns.api_base.clone(),
                config.dns.api_token.clone(),
                scrubber.clone(),
            )?,
            alerter,
            scrubber,
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
    /// for the data-loss accounting. `stop_requested` is checked between steps: a daemon
    /// asked to stop lets the running step finish, journals it, and leaves the rest for
    /// its next start. Returns the journal as it ends.
    ///
    /// Refused (exit 3) when a promotion already finished, or another process holds the
    /// lock. An automatic promotion does not take up a halted one: that is an operator's
    /// call, with `--promote-now`. A journal that cannot be written halts the promotion
    /// before its next step ([`PromoteError::Journal`]), alerted and handed to
    /// `on_failure` like any halted step.
    pub async fn promote(
        &self,
        trigger: Trigger,
        reason: &str,
        primary_last_seen: Option<PrimarySeen>,
        stop_requested: impl Fn() -> bool,
    ) -> Result<Journal, PromoteError> {
        let holder = format!(
            "pid {} ({} promotion) since {}",
            std::process::id(),
            match trigger {
                Trigger::Automatic => "the daemon's automatic",
                Trigger::Manual => "a --promote-now",
                Trigger::Switchover => "a switchover",
            },
            Timestamp::now()
        );
        let _lock = self.store.lock_promotion(&holder).map_err(|e| {
            if e.is::<crate::store::LockHeld>() {
                PromoteError::Refused(e)
            } else {
                PromoteError::State(e)
            }
        })?;
        let mut journal = self.opening(trigger, reason, primary_last_seen).await?;
        if let Err(e) = self.store.save_journal(&journal) {
            let step = journal.next_step().unwrap_or(StepName::StopReplica);
            return Err(self.halt_unrecorded(&mut journal, step, e).await);
        }

        while let Some(step) = journal.next_step() {
            if stop_requested() {
                tracing::warn!("stopping before step {step}; the next start resumes there");
                return Ok(journal);
            }
            if let Some(end) = self.run_journalled(step, &mut journal).await {
                return end;
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

    /// Runs one step between two journal writes: begin and save, run, finish or fail
    /// (alerted, `on_failure` run) and save. `Some` ends the promotion here: a journal
    /// that cannot be written halts it before the next step.
    async fn run_journalled(
        &self,
        step: StepName,
        journal: &mut Journal,
    ) -> Option<Result<Journal, PromoteError>> {
        journal.begin(step, Timestamp::now());
        if let Err(e) = self.store.save_journal(journal) {
            return Some(Err(self.halt_unrecorded(journal, step, e).await));
        }
        tracing::info!("step {step}: started");
        crashpoint::reached(&format!("before:{step}"));
        let started = Instant::now();
        let result = self.run_step(step, journal).await;
        crashpoint::reached(&format!("after:{step}"));
        match result {
            Ok(detail) => {
                let detail = self.scrubber.scrub(&detail);
                tracing::info!(
                    "step {step}: done in {} ms: {detail}",
                    started.elapsed().as_millis()
                );
                journal.finish(step, detail, Timestamp::now());
            }
            Err(error) if matches!(step, StepName::FencePrimary | StepName::CatchUp) => {
                let error = self.scrubber.scrub(&format!("{error:#}"));
                return Some(Err(self.abandon_switchover(journal, step, error).await));
            }
            Err(error) => {
                let error = self.scrubber.scrub(&format!("{error:#}"));
                journal.fail(step, error.clone(), Timestamp::now());
                if step == StepName::RejoinPeer {
                    tracing::error!("the old primary does not replicate from here: {error}");
                } else if step == StepName::Notify {
                    tracing::error!("the closing alert was not delivered: {error}");
                } else {
                    self.halted(journal, step, &error).await;
                }
            }
        }
        let Err(e) = self.store.save_journal(journal) else {
            return None;
        };
        Some(if journal.outcome == Outcome::Halted {
            // Halted and alerted already; the file still says the step runs.
            Err(PromoteError::Journal {
                step,
                error: format!("{e:#}"),
            })
        } else if step == StepName::Notify {
            // Everything serves and the team was told: a resumed `notify` would only say
            // it again.
            tracing::error!("the promotion is done but cannot be recorded: {e:#}");
            Ok(journal.clone())
        } else {
            Err(self.halt_unrecorded(journal, step, e).await)
        })
    }

    /// The journal to run: a new one (after `pre_promote`, with the opening alert), a
    /// halted one an operator retries, or an interrupted one resumed; or a refusal.
    async fn opening(
        &self,
        trigger: Trigger,
        reason: &str,
        primary_last_seen: Option<PrimarySeen>,
    ) -> Result<Journal, PromoteError> {
        let node = &self.config.node.name;
        match self.store.load_journal().map_err(PromoteError::State)? {
            None => {
                let mut journal = Journal::new(node, trigger, reason, Timestamp::now());
                journal.primary_last_seen = primary_last_seen;
                self.pre_promote(&journal).await?;
                self.alerter.send(&Alert::Promoting {
                    trigger,
                    reason: reason.to_string(),
                });
                Ok(journal)
            }
            Some(journal) if journal.outcome == Outcome::Promoted => {
                Err(PromoteError::Refused(anyhow!(Refused(format!(
                    "{node} was already promoted at {} ({:?} trigger); after a failback, clear it with the procedure in the README",
                    journal.finished_at.unwrap_or(journal.started_at),
                    journal.trigger
                )))))
            }
            Some(mut journal) if journal.outcome == Outcome::Halted => {
                if trigger == Trigger::Automatic {
                    return Err(PromoteError::Refused(anyhow!(Refused(
                        "a halted promotion is in the journal; an operator retries it with --promote-now".to_string()
                    ))));
                }
                let failed = journal
                    .failed_step()
                    .map_or(StepName::StopReplica, |s| s.name);
                tracing::warn!("retrying the halted promotion from step {failed}");
                self.alerter.send(&Alert::RetryingHalted { step: failed });
                journal.retry_halted();
                Ok(journal)
            }
            Some(journal) => {
                match journal.next_step() {
                    Some(step) => {
                        tracing::warn!("resuming the interrupted promotion at step {step}");
                        self.alerter.send(&Alert::Resuming { step });
                    }
                    None => tracing::warn!("resuming the interrupted promotion at its end"),
                }
                Ok(journal)
            }
        }
    }

    /// A switchover's `fence_primary` or `catch_up` failed: nothing here has changed, so
    /// the fence is undone (the primary writable again), the journal archived (this host
    /// is a standby as before) and the team told. When the fence cannot be undone, the
    /// switchover halts instead, loudly: the primary refuses writes until someone acts.
    async fn abandon_switchover(
        &self,
        journal: &mut Journal,
        step: StepName,
        error: String,
    ) -> PromoteError {
        tracing::error!("step {step} failed, abandoning the switchover: {error}");
        match crate::switchover::undo_fence(&self.config).await {
            Ok(undone) => {
                tracing::info!("fence undone: {undone}");
                let archived = self.store.archive_journal(Timestamp::now());
                let why = format!("step {step} failed: {error}; {undone}");
                self.alerter
                    .send(&Alert::SwitchoverAbandoned { why: why.clone() });
                PromoteError::Abandoned(match archived {
                    Ok(path) => format!(
                        "switchover abandoned, nothing changed: {why}; the journal is archived as {}",
                        path.map_or("-".to_string(), |p| p.display().to_string())
                    ),
                    Err(e) => format!(
                        "switchover abandoned, nothing changed: {why}; but the journal could not be archived ({e:#}): move it aside before the next switchover"
                    ),
                })
            }
            Err(undo) => {
                let error = self.scrubber.scrub(&format!(
                    "{error}; undoing the fence FAILED too, so the peer's database still refuses writes: SET GLOBAL read_only = OFF on it, or retry with `switchover`: {undo:#}"
                ));
                journal.fail(step, error.clone(), Timestamp::now());
                self.halted(journal, step, &error).await;
                let _ = self.store.save_journal(journal);
                PromoteError::Journal { step, error }
            }
        }
    }

    /// The journal cannot be written at `step`: the promotion halts here, before its next
    /// step, as a failed step would: alerted (Telegram needs no disk), `on_failure` run,
    /// and one more try to record it. The file keeps what was last written, so
    /// `--promote-now` resumes from there once the disk is back.
    async fn halt_unrecorded(
        &self,
        journal: &mut Journal,
        step: StepName,
        error: anyhow::Error,
    ) -> PromoteError {
        let error = self.scrubber.scrub(&format!(
            "the promotion journal cannot be written, so the promotion stops before its next step: {error:#}"
        ));
        journal.fail(step, error.clone(), Timestamp::now());
        self.halted(journal, step, &error).await;
        if self.store.save_journal(journal).is_ok() {
            tracing::info!("the halted promotion is recorded after all");
        }
        PromoteError::Journal { step, error }
    }

    /// A step failed and the promotion halted there: say so, alert, run `on_failure`.
    async fn halted(&self, journal: &Journal, step: StepName, error: &str) {
        tracing::error!("step {step} failed, promotion halted: {error}");
        self.alerter.send(&Alert::halted(journal, step, error));
        self.hook(
            "on_failure",
            &self.config.promotion.on_failure,
            journal,
            Some(step),
        )
        .await;
    }

    /// The `pre_promote` hook, before a new promotion's first step: a non-zero exit (or
    /// a hook that cannot run) stops the promotion before anything is changed.
    async fn pre_promote(&self, journal: &Journal) -> Result<(), PrePromoteRefused> {
        let Some(command) = &self.config.promotion.pre_promote else {
            return Ok(());
        };
        let env = command_env(journal, None);
        let timeout = self.config.promotion.hook_timeout;
        match shell::run("pre_promote", command, &env, timeout, &self.scrubber).await {
            Ok(done) if done.success() => Ok(()),
            Ok(done) => Err(PrePromoteRefused(format!(
                "{}: {}",
                done.describe(),
                done.tail
            ))),
            Err(e) => Err(PrePromoteRefused(format!("{e:#}"))),
        }
    }

    /// Runs `post_promote` or `on_failure`; a failure is logged and alerted, nothing more.
    async fn hook(
        &self,
        name: &'static str,
        command: &Option<String>,
        journal: &Journal,
        step: Option<StepName>,
    ) {
        let Some(command) = command else { return };
        let env = command_env(journal, step);
        let timeout = self.config.promotion.hook_timeout;
        let problem = match shell::run(name, command, &env, timeout, &self.scrubber).await {
            Ok(done) if done.success() => return,
            Ok(done) => format!("{}: {}", done.describe(), done.tail),
            Err(e) => format!("{e:#}"),
        };
        tracing::error!("the {name} hook failed: {problem}");
        self.alerter.send(&Alert::HookFailed {
            hook: name,
            problem,
        });
    }

    /// `make_writable`: fence the old primary, then `read_only = OFF` here. A switchover
    /// fenced the primary in `fence_primary` and is about to make it replicate from
    /// here: no `fence_command`, no second fence.
    async fn make_writable(&self, journal: &mut Journal) -> anyhow::Result<String> {
        if journal.trigger == Trigger::Switchover {
            let writable = self.replica.make_writable().await?;
            return Ok(format!(
                "fence: none here (the primary was fenced by fence_primary and is about to replicate from this host: no fence_command); {writable}"
            ));
        }
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
            self.alerter.send(&Alert::FenceFailed {
                summary: fence.summary(),
            });
        }
        let writable = self.replica.make_writable().await?;
        Ok(format!("fence: {}; {writable}", fence.summary()))
    }

    /// How long `step` may take before it fails.
    fn step_deadline(&self, step: StepName) -> Duration {
        match step {
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
            StepName::FencePrimary => crate::switchover::fence_deadline(&self.config),
            StepName::CatchUp => crate::switchover::catch_up_deadline(&self.config),
            StepName::RejoinPeer => crate::switchover::rejoin_deadline(&self.config),
        }
    }

    /// The longest a whole promotion may take: every step's deadline (a switchover's,
    /// which has the most) and every hook's (`pre_promote`, then `on_failure` or
    /// `post_promote`). systemd's watchdog is stretched by this much while one runs.
    pub fn longest(&self) -> Duration {
        StepName::SWITCHOVER
            .iter()
            .map(|step| self.step_deadline(*step))
            .sum::<Duration>()
            + 2 * self.config.promotion.hook_timeout
    }

    async fn run_step(&self, step: StepName, journal: &mut Journal) -> anyhow::Result<String> {
        let deadline = self.step_deadline(step);
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
                StepName::FencePrimary => {
                    crate::switchover::fence_primary(&self.config, journal).await
                }
                StepName::CatchUp => crate::switchover::catch_up(&self.config, journal).await,
                StepName::RejoinPeer => crate::switchover::rejoin_peer(&self.config).await,
                StepName::Notify => {
                    let alert = Alert::Promoted(Box::new(journal.clone()));
                    match self.alerter.send_and_confirm(&alert, NOTIFY_TIMEOUT).await {
                        Ok(()) => Ok(match &journal.switchover {
                            // `status` shows the drill with the step.
                            Some(drill) => format!("closing alert delivered; {}", drill.summary()),
                            None => "closing alert delivered".to_string(),
                        }),
                        // Kept whole in the journal: the team may have to read it there.
                        Err(e) => Err(anyhow!(
                            "closing alert {e}; it said:\n{}",
                            self.alerter.render(&alert)
                        )),
                    }
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
        if !record.points_at(&found.content) {
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
        if !record.points_at(&read_back.content) {
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

/// Why a promotion did not run, or stopped. Each says what it is, so the daemon halts,
/// holds or follows another promoter accordingly, and the command line picks the exit
/// code ([`PromoteError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Nothing was done: a promotion already finished, a halted one waits for an
    /// operator, or another process holds the promotion lock. Exit 3.
    #[error("{0:#}")]
    Refused(anyhow::Error),
    /// The `pre_promote` hook said no before anything changed.
    #[error(transparent)]
    PrePromote(#[from] PrePromoteRefused),
    /// `state_dir` could not be read or locked: nothing was done.
    #[error("{0:#}")]
    State(anyhow::Error),
    /// The journal could not be written at `step`: the promotion halted there, alerted.
    #[error("promotion halted at step {step}: {error}")]
    Journal { step: StepName, error: String },
    /// A switchover could not fence or catch up: the fence was undone, the journal
    /// archived, nothing changed. Exit 1.
    #[error("{0}")]
    Abandoned(String),
}

impl PromoteError {
    /// The exit code of a command that ends on this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            PromoteError::Refused(_) => 3,
            PromoteError::PrePromote(_)
            | PromoteError::State(_)
            | PromoteError::Journal { .. }
            | PromoteError::Abandoned(_) => 1,
        }
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

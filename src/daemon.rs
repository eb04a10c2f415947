//! The daemon: runs rounds when the decision core ([`crate::decide`]) schedules them and
//! executes what it says. Shutdown is passed in as a future.
//!
//! This loop decides nothing. Each round it observes (the primary's checks and the
//! self-checks, the replica's replication, the pause marker, the journal), hands the
//! observations to [`Decider`] as an event, and executes the actions it gets back in
//! order; the asking ones (the witnesses, the last look, the promotion) come back as the
//! next event. The last action of each is the next round ([`Schedule`]): when it runs,
//! how long its checks and witnesses may take, and how often to read this host's own
//! replica until then (each look another event, which may bring the round forward).
//!
//! Metrics (`[metrics]`) follow from here without a decision of their own: the live
//! state each time it is saved, the replica each time it is read, a promotion when it
//! ends; the server runs on its own task and never holds the loop.
//!
//! Shutdown: a round in progress is dropped (it only reads), but a promotion in progress
//! is not: the promoter finishes the running step, journals it and stops before the next
//! one, and the next start resumes there.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::cadence::Schedule;
use crate::config::Config;
use crate::decide::{
    Action, Decider, Event, JournalAtStart, Level, Now, PauseMarker, PromotionEnd, ReplicaReading,
    Replication, Round,
};
use crate::edges::Edges;
use crate::journal::{Journal, Outcome, Trigger};
use crate::metrics::MetricsServer;
use crate::probe::Prober;
use crate::procedure::RunError;
use crate::shutdown::Shutdown;
use crate::status::{LiveState, Pause};
use crate::systemd::Notifier;
use crate::witness::Said;
use crate::witness::client::Witnesses;
use feed::MetricsFeed;

mod feed;

/// How long the daemon waits for queued alerts when it stops.
const FLUSH_ON_STOP: Duration = Duration::from_secs(5);

/// Runs the daemon until `shutdown` is asked for, telling systemd through `notifier`:
/// `READY=1` once the daemon holds its lock and knows its journal, before an interrupted
/// promotion is resumed (so the start timeout cannot kill a long resume); `WATCHDOG=1`
/// and its state after every round the loop completes (a wedged loop is restarted);
/// a watchdog stretched over a promotion's longest time while one runs.
///
/// Stopping: a round in progress is dropped (it only reads), but a promotion in progress
/// is not: the engine finishes the running step, journals it and stops before the next
/// one, and the next start resumes there.
pub async fn run(config: Config, shutdown: Shutdown, notifier: Notifier) -> anyhow::Result<()> {
    let edges = Edges::daemon(&config, shutdown)?;
    let store = &edges.store;
    store.ensure()?;
    // One daemon per state_dir, and `reset` waits until it is stopped.
    let _daemon_lock = store.lock_daemon(&format!(
        "pid {} (daemon) since {}",
        std::process::id(),
        Timestamp::now()
    ))?;
    let started = Instant::now();
    // Nothing the last run learned is kept: see `Decider::new`.
    let decider = Decider::new(
        config.decider_settings(),
        std::process::id(),
        now_since(started),
    );
    let metrics = MetricsFeed::new(edges.alerter.clone(), decider.live());
    // Served (with `[metrics]`) until this function returns.
    let _metrics_server =
        MetricsServer::start_configured(config.metrics.as_ref(), metrics.registry()).await?;
    let watchdog = notifier
        .watchdog()
        .map(|unit| unit.max(loop_bound(&config)));
    let mut daemon = Daemon {
        schedule: decider.schedule(),
        prober: Prober::new(&config.probe)?,
        witnesses: Witnesses::new(&config.probe.witnesses, edges.scrubber.clone())?,
        decider,
        metrics,
        edges: edges.clone(),
        started,
        notifier,
        watchdog,
    };
    let result = daemon.run().await;
    if edges.shutdown.requested() {
        tracing::info!("stopping");
    }
    let undelivered = edges.alerter.flush(FLUSH_ON_STOP).await;
    if !undelivered.none() {
        tracing::warn!("stopping with {undelivered}");
    }
    result
}

/// The daemon's edges and its decision core.
struct Daemon {
    edges: Edges,
    prober: Prober,
    /// Asked on a round that would fail; `None` without `[[probe.witnesses]]`.
    witnesses: Option<Witnesses>,
    decider: Decider,
    /// Follows the live state; the server (when `[metrics]` is set) only encodes it.
    metrics: MetricsFeed,
    /// The monotonic clock the core's `since_start` counts from.
    started: Instant,
    notifier: Notifier,
    /// The watchdog timeout between rounds, when systemd watches us: the unit's
    /// `WatchdogSec=`, at least [`loop_bound`].
    watchdog: Option<Duration>,
    /// The next round, as the core last scheduled it.
    schedule: Schedule,
}

impl Daemon {
    async fn run(&mut self) -> anyhow::Result<()> {
        let journal = match self.edges.store.load_journal() {
            Ok(None) => JournalAtStart::None,
            Ok(Some(journal)) => match journal.outcome {
                Outcome::Running => JournalAtStart::Running,
                Outcome::Halted => JournalAtStart::Halted,
                Outcome::Done => JournalAtStart::Promoted {
                    at: journal.finished_at.unwrap_or(journal.started_at),
                },
            },
            Err(e) => JournalAtStart::Unreadable(format!("{e:#}")),
        };
        self.notifier.ready();
        if let Some(timeout) = self.watchdog {
            self.notifier.set_watchdog(timeout);
        }
        let actions = self.decider.start(journal, self.now());
        self.execute(actions).await?;
        if self.decider.watches() {
            self.warn_about_the_heartbeat().await;
            self.warn_about_the_witnesses().await;
        }

        self.say_the_cadence();
        let shutdown = self.edges.shutdown.clone();
        // When the replica is next read, while the schedule asks for it.
        let mut look_at: Option<Instant> = None;
        while !shutdown.requested() {
            let round_at = self.started + self.schedule.at;
            look_at = self
                .schedule
                .watch_every
                .map(|every| look_at.unwrap_or_else(|| Instant::now() + every))
                .filter(|at| *at < round_at);
            let within = self.schedule.checks_within;
            let event = tokio::select! {
                _ = shutdown.wait() => break,
                round = async {
                    tokio::time::sleep_until(round_at).await;
                    self.observe(within).await
                } => Event::Round(round),
                glance = async {
                    tokio::time::sleep_until(look_at.unwrap_or(round_at)).await;
                    self.read_replication(self.edges.config.probe.timeout).await
                }, if look_at.is_some() => {
                    look_at = None;
                    Event::ReplicaWatched(glance)
                },
            };
            let round = matches!(event, Event::Round(_));
            self.execute_from(event).await?;
            if round {
                self.notifier.alive(&status_line(self.decider.live()));
            }
        }
        Ok(())
    }

    /// The cadence, once at start.
    fn say_the_cadence(&self) {
        let probe = &self.edges.config.probe;
        let watch = self.edges.config.decider_settings().cadence().watch_every();
        let between = watch.map_or(
            "; nothing between rounds (suspect_interval = interval)".to_string(),
            |every| {
                format!(
                    "; between calm rounds the replica is read every {}",
                    humantime::format_duration(every)
                )
            },
        );
        tracing::info!(
            node = %self.edges.config.node.name,
            "watching the primary: {} checks every {}, every {} while it is in doubt, promotion after {} failed rounds{between}",
            probe.checks.len(),
            humantime::format_duration(probe.interval),
            humantime::format_duration(probe.suspect_interval),
            probe.failures_before_promotion
        );
    }

    /// One round's observations: everything at once, each within `within`.
    async fn observe(&self, within: Duration) -> Round {
        let (report, replication, pair) = tokio::join!(
            self.prober.run_round_within(within),
            async {
                if self.decider.wants_replication() {
                    self.read_replication(within).await
                } else {
                    Replication::NotRead
                }
            },
            crate::pair::observe(&self.edges)
        );
        Round {
            report,
            replication,
            pause: match self.edges.store.load_pause::<Pause>() {
                Ok(None) => PauseMarker::Absent,
                Ok(Some(pause)) => PauseMarker::Present(pause),
                Err(e) => PauseMarker::Unreadable(format!("{e:#}")),
            },
            journal: match self.edges.store.load_journal() {
                Ok(journal) => Some(journal.map(|j| j.outcome)),
                Err(e) => {
                    tracing::error!("{e:#}");
                    None
                }
            },
            pair,
        }
    }

    /// Feeds `event` to the core and executes what it says, feeding the answers of the
    /// asking actions back until nothing is left to ask.
    async fn execute_from(&mut self, event: Event) -> anyhow::Result<()> {
        let actions = self.decider.handle(event, self.now());
        self.execute(actions).await
    }

    async fn execute(&mut self, actions: Vec<Action>) -> anyhow::Result<()> {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let answer = match action {
                Action::Log(level, text) => {
                    match level {
                        Level::Info => tracing::info!("{text}"),
                        Level::Warn => tracing::warn!("{text}"),
                        Level::Error => tracing::error!("{text}"),
                    }
                    None
                }
                Action::Alert(alert) => {
                    self.edges.alerter.send(&alert);
                    None
                }
                Action::SaveLive => {
                    if let Err(e) = self.edges.store.save_live(self.decider.live()) {
                        tracing::warn!("cannot write the live state: {e:#}");
                    }
                    self.metrics.live(self.decider.live());
                    None
                }
                Action::RemovePause => {
                    if let Err(e) = self.edges.store.remove_pause() {
                        tracing::warn!("{e:#}");
                    }
                    None
                }
                Action::AskWitnesses { within } => {
                    Some(Event::WitnessesAnswered(match &self.witnesses {
                        Some(witnesses) => witnesses.ask_all_within(within).await,
                        None => Vec::new(),
                    }))
                }
                Action::NextRound(schedule) => {
                    self.schedule = schedule;
                    None
                }
                Action::TakeLastLook => Some(Event::LastLook(self.prober.run_round().await)),
                // Stopping: no promotion starts now; one in the journal resumes next time.
                Action::Promote { .. } if self.edges.shutdown.requested() => {
                    Some(Event::PromotionEnded(PromotionEnd::NotStarted))
                }
                Action::Promote {
                    reason,
                    primary_last_seen,
                } => Some(Event::PromotionEnded(
                    self.promote(&reason, primary_last_seen).await,
                )),
                Action::StopApps(units) => Some(Event::AppsStopped(self.stop_apps(&units).await)),
                Action::FenceSelf { units, why } => Some(Event::SelfFenced {
                    result: self.fence_self(&units).await,
                    why,
                }),
                Action::ArchivePromotion => {
                    Some(Event::PromotionArchived(self.archive_promotion()))
                }
                Action::Exit(error) => {
                    self.edges.alerter.flush(FLUSH_ON_STOP).await;
                    anyhow::bail!(error);
                }
            };
            if let Some(event) = answer {
                let actions = self.decider.handle(event, self.now());
                queue.extend(actions);
            }
        }
        Ok(())
    }

    fn now(&self) -> Now {
        now_since(self.started)
    }

    /// The automatic promotion, on the engine; systemd's watchdog waits as long as it
    /// may (a promotion is no wedged loop).
    async fn promote(
        &mut self,
        reason: &str,
        primary_last_seen: Option<crate::journal::PrimarySeen>,
    ) -> PromotionEnd {
        if let Some(timeout) = self.watchdog {
            self.notifier
                .set_watchdog(timeout + crate::takeover::longest(&self.edges.config));
        }
        let result =
            crate::promote::promote(&self.edges, Trigger::Automatic, reason, primary_last_seen)
                .await;
        if let Some(timeout) = self.watchdog {
            self.notifier.set_watchdog(timeout);
        }
        self.metrics.promotion_ended(Trigger::Automatic, &result);
        promotion_end(result)
    }

    /// A demoted host's application units, stopped in reverse start order; every unit
    /// is tried, the failures are returned together.
    async fn stop_apps(&self, units: &[String]) -> Result<(), String> {
        let mut problems = Vec::new();
        for unit in units.iter().rev() {
            match crate::systemd::stop_unit(unit, self.edges.config.apps.start_timeout).await {
                Ok(()) => tracing::info!("{unit} stopped"),
                Err(e) => problems.push(format!("{unit}: {e:#}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// This host is writable while DNS points elsewhere: its database made read-only
    /// (read back), then its units stopped, the last started first. A database that
    /// cannot be fenced is the failure; the units are stopped all the same.
    async fn fence_self(&self, units: &[String]) -> Result<(), String> {
        let fenced = self
            .edges
            .own
            .set_read_only(true)
            .await
            .map_err(|e| format!("read_only = ON: {e:#}"));
        if fenced.is_ok() {
            tracing::warn!("this host's database is read-only now: it is not serving");
        }
        let stopped = self.stop_apps(units).await;
        match (fenced, stopped) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }

    /// Archives the finished promotion as `reset` does, under the promotion lock.
    fn archive_promotion(&self) -> Result<String, String> {
        let holder = format!("pid {} (daemon, re-arming)", std::process::id());
        let store = &self.edges.store;
        let _lock = store
            .lock_promotion(&holder)
            .map_err(|e| format!("{e:#}"))?;
        match store.archive_journal(Timestamp::now()) {
            Ok(Some(path)) => Ok(path.display().to_string()),
            Ok(None) => Ok("nothing (no journal left)".to_string()),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// The replica's replication (a local read), within `within`.
    async fn read_replication(&self, within: Duration) -> Replication {
        let read = tokio::time::timeout(within, self.edges.own.replica_status()).await;
        self.metrics.replication(match &read {
            Ok(Ok(status)) => status.as_ref(),
            _ => None,
        });
        match read {
            Ok(Ok(Some(status))) => Replication::Read(ReplicaReading {
                replicating: status.replicating(),
                lag_seconds: status.seconds_behind,
                summary: status.summary(),
                io_connected: status.io_connected(),
                io_problem: match &status.io_error {
                    Some(error) => format!("{}: {}", status.io_running, error.message),
                    None => status.io_running.clone(),
                },
                gtid_io_pos: status.gtid_io_pos.clone(),
                heartbeats: status.received_heartbeats,
                heartbeat_period: status.heartbeat_period,
            }),
            Ok(Ok(None)) => Replication::Unreadable(format!(
                "no replication connection {:?} on the replica",
                self.edges.config.replica.connection_name
            )),
            Ok(Err(e)) => {
                Replication::Unreadable(format!("cannot read the replica's status: {e:#}"))
            }
            Err(_) => Replication::Unreadable(format!(
                "the replica did not answer within {}",
                humantime::format_duration(within)
            )),
        }
    }

    /// Replication silence is only evidence when heartbeats come well within its window:
    /// warn at start when they do not.
    async fn warn_about_the_heartbeat(&self) {
        if !self.edges.config.probe.confirm_with_replication {
            return;
        }
        let probe = &self.edges.config.probe;
        let Replication::Read(reading) = self.read_replication(probe.timeout).await else {
            return;
        };
        let rule = self.edges.config.probe.heartbeat_rule();
        if let Some(problem) = rule.problem(reading.heartbeat_period) {
            tracing::warn!("the replica's {problem}");
        }
    }

    /// A witness that cannot be asked counts as not agreeing, so a wrong URL or token
    /// would quietly block every automatic promotion: ask each once at start and say so.
    async fn warn_about_the_witnesses(&self) {
        let Some(witnesses) = &self.witnesses else {
            return;
        };
        for report in witnesses.ask_all().await {
            match report.said {
                Said::NoAnswer => tracing::warn!(
                    "witness {} did not answer at start ({}); until it does, it counts as not agreeing that the primary is down",
                    report.name,
                    report.detail
                ),
                Said::Down => tracing::warn!(
                    "witness {} answers, and cannot reach the primary ({})",
                    report.name,
                    report.detail
                ),
                Said::Up => tracing::info!(
                    "witness {} answers and reaches the primary ({})",
                    report.name,
                    report.detail
                ),
            }
        }
    }
}

/// The longest the loop may go between two completed rounds when nothing is wrong: the
/// interval, then a round (the checks, the witnesses within half an interval, a last
/// look), with room to spare. systemd's watchdog is never set shorter.
fn loop_bound(config: &Config) -> Duration {
    4 * config.probe.interval + 2 * config.probe.timeout
}

/// `STATUS=` for `systemctl status`: what the daemon thinks, and the cadence while the
/// primary is in doubt.
fn status_line(live: &LiveState) -> String {
    let last = live
        .last_probe
        .as_ref()
        .map_or("none yet".to_string(), |round| round.at.to_string());
    match &live.cadence {
        Some(cadence) if cadence.pace == crate::cadence::Pace::Suspect => format!(
            "{}: {}; last round {last}",
            live.state,
            cadence.re_probing(live.consecutive_failures, live.failures_before_promotion)
        ),
        _ => format!(
            "{}: {} of {} failed rounds; last round {last}",
            live.state, live.consecutive_failures, live.failures_before_promotion,
        ),
    }
}

fn now_since(started: Instant) -> Now {
    Now {
        wall: Timestamp::now(),
        since_start: started.elapsed(),
    }
}

/// How the engine's answer reads to the core.
fn promotion_end(result: Result<Journal, RunError>) -> PromotionEnd {
    match result {
        Ok(journal) => PromotionEnd::Ran(journal.outcome),
        Err(RunError::Held(why)) => PromotionEnd::HeldByPrePromote(why),
        Err(RunError::Journal { step, error, .. }) => {
            PromotionEnd::JournalFailed(format!("at step {step}: {error}"))
        }
        Err(RunError::Refused(e)) if e.is::<crate::store::LockHeld>() => {
            PromotionEnd::Busy(format!("{e:#}"))
        }
        Err(e @ (RunError::Refused(_) | RunError::State(_) | RunError::Abandoned(_))) => {
            PromotionEnd::Refused(format!("{e:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::{Cadence, CadenceSettings};
    use crate::state::State;

    #[test]
    fn the_status_line_says_the_cadence_while_the_primary_is_in_doubt() {
        let mut cadence = Cadence::new(
            CadenceSettings {
                interval: Duration::from_secs(60),
                suspect_interval: Duration::from_secs(5),
                timeout: Duration::from_secs(10),
                failures_before_promotion: 5,
                witness_timeout: None,
            },
            Duration::ZERO,
        );
        let mut live = LiveState {
            cadence: Some(cadence.shown(None)),
            ..LiveState::fresh(State::Monitoring, 5, 1, Timestamp::UNIX_EPOCH)
        };
        assert_eq!(
            status_line(&live),
            "monitoring: 0 of 5 failed rounds; last round none yet"
        );
        cadence.doubt("a round failed", Duration::ZERO, Timestamp::UNIX_EPOCH);
        live.state = State::Suspect;
        live.consecutive_failures = 2;
        live.cadence = Some(cadence.shown(None));
        assert_eq!(
            status_line(&live),
            "suspect: re-probing every 5 s, 2 of 5 failed; last round none yet"
        );
    }
}

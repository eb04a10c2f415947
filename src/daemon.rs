//! The daemon: probe every `interval`, count failed rounds, promote once at the threshold,
//! then stay up in state `promoted`. Shutdown is passed in as a future.
//!
//! This is the driver around the pure pieces: [`crate::detect`] decides (the failure
//! count and the lag guard), the prober and the promoter do the I/O, [`crate::store`]
//! keeps the live state for `status`. Before an automatic promotion, in order: the pause,
//! the lag guard, then a last look at the primary.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use tokio::time::MissedTickBehavior;

use crate::alert::Alerter;
use crate::config::Config;
use crate::detect::{Detector, ReplicationSeen, RoundOutcome, Transition, lag_guard};
use crate::journal::{Journal, Outcome, PrimarySeen, Trigger};
use crate::probe::{Prober, RoundReport};
use crate::promote::{PrePromoteRefused, Promoter};
use crate::status::{LiveState, Pause};
use crate::store::StateDir;
use crate::verdict::{ReplicaHears, SilenceTracker, Verdict, confirm_with_witnesses, judge};
use crate::witness::Said;
use crate::witness::client::Witnesses;

/// What the daemon is doing between rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Watching the primary; promotes at the threshold.
    Monitoring,
    /// Promoted: keeps probing for `status`, never promotes again.
    Promoted,
    /// A promotion halted: an operator decides (`--promote-now` retries it).
    Halted,
}

/// Runs the daemon until `shutdown` resolves. `ready` is called once the first round is
/// about to start (systemd's `READY=1`).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let store = StateDir::new(config.state_dir());
    store.ensure()?;
    // One daemon per state_dir, and `reset` waits until it is stopped.
    let _daemon_lock = store.lock_daemon(&format!(
        "pid {} (daemon) since {}",
        std::process::id(),
        Timestamp::now()
    ))?;
    let alerter = Alerter::start(&config.node.name, config.telegram.as_ref())?;
    let mut watch = Watch {
        promoter: Promoter::new(&config, alerter.clone())?,
        prober: Prober::new(&config.probe)?,
        witnesses: Witnesses::new(&config.probe.witnesses)?,
        detector: Detector::new(config.probe.failures_before_promotion),
        live: starting_live_state(&store, &config),
        stop: Arc::new(AtomicBool::new(false)),
        mode: Mode::Monitoring,
        pause_logged: false,
        split_brain_alerted: None,
        silence: SilenceTracker::default(),
        verdict_by_witnesses: false,
        started: tokio::time::Instant::now(),
        alerter: alerter.clone(),
        store,
        config,
    };
    watch.mode = watch.starting_mode().await?;
    watch.warn_about_the_heartbeat().await;
    watch.warn_about_the_witnesses().await;

    let config = &watch.config;
    tracing::info!(
        node = %config.node.name,
        "watching the primary: {} checks every {}, promotion after {} failed rounds",
        config.probe.checks.len(),
        humantime::format_duration(config.probe.interval),
        config.probe.failures_before_promotion
    );
    ready();
    let mut ticker = tokio::time::interval(config.probe.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let round = tokio::select! {
            _ = &mut shutdown => break,
            round = async { ticker.tick().await; watch.prober.run_round().await } => round,
        };
        watch.on_round(round).await?;
    }
    watch.stop.store(true, Ordering::Relaxed);
    tracing::info!("stopping");
    alerter.flush(std::time::Duration::from_secs(5)).await;
    Ok(())
}

/// The daemon's state between rounds.
struct Watch {
    config: Config,
    store: StateDir,
    promoter: Promoter,
    prober: Prober,
    /// Asked on a round that would fail; `None` without `[[probe.witnesses]]`.
    witnesses: Option<Witnesses>,
    alerter: Alerter,
    detector: Detector,
    /// What `status` reads; kept here and saved after every change.
    live: LiveState,
    mode: Mode,
    /// Set on shutdown: a promotion stops before its next step.
    stop: Arc<AtomicBool>,
    pause_logged: bool,
    /// When the split-brain alert last went out, while the old primary answers.
    split_brain_alerted: Option<tokio::time::Instant>,
    /// When the replica last heard from the primary.
    silence: SilenceTracker,
    /// The last verdict was decided by the witnesses' vote.
    verdict_by_witnesses: bool,
    /// The daemon's start, the silence tracker's clock.
    started: tokio::time::Instant,
}

impl Watch {
    /// A journal decides where we start; one that cannot be read stops us (no blind
    /// promotion, no blind refusal). An interrupted promotion is resumed at once.
    async fn starting_mode(&mut self) -> anyhow::Result<Mode> {
        let Some(journal) = self.store.load_journal()? else {
            return Ok(Mode::Monitoring);
        };
        Ok(match journal.outcome {
            Outcome::Promoted => {
                tracing::info!(
                    "this node was promoted at {}; not monitoring for promotion",
                    journal.finished_at.unwrap_or(journal.started_at)
                );
                Mode::Promoted
            }
            Outcome::Halted => {
                tracing::warn!(
                    "a halted promotion is in the journal; waiting for an operator (--promote-now retries it)"
                );
                Mode::Halted
            }
            Outcome::Running => {
                self.save("promoting", None);
                let stop = self.stop.clone();
                let journal = self
                    .promoter
                    .promote(Trigger::Automatic, &journal.reason, None, || {
                        stop.load(Ordering::Relaxed)
                    })
                    .await?;
                mode_after(&journal)
            }
        })
    }

    async fn on_round(&mut self, mut round: RoundReport) -> anyhow::Result<()> {
        let verdict = self.judge(&mut round).await;
        let outcome = match &verdict {
            Verdict::Ok => self.detector.on_round(true),
            Verdict::Failed(_) => self.detector.on_round(false),
            Verdict::Inconclusive(_) | Verdict::Degraded(_) => self.detector.hold(),
        };
        if self.mode == Mode::Monitoring {
            self.on_verdict_change(&verdict, !round.witnesses.is_empty());
        }
        self.live.verdict = Some(verdict.clone());
        if let Some(gtid) = round.primary_gtid() {
            self.live.primary_last_seen = Some(PrimarySeen {
                gtid: gtid.to_string(),
                at: round.at,
            });
        }
        if self.mode == Mode::Promoted {
            self.watch_for_split_brain(&round);
        }
        if self.mode == Mode::Monitoring {
            log_transition(outcome.transition, &round, &self.config);
            if round.ok
                && let Some(reason) = self.live.held.take()
            {
                tracing::info!(
                    "the primary answers again; automatic promotion is armed again (it was held: {reason})"
                );
                self.alerter
                    .send("✅ the primary answers again; automatic promotion is armed again.");
            }
        }
        let paused = active_pause(&self.store, &self.alerter);
        if self.mode == Mode::Monitoring && outcome.threshold_reached && self.live.held.is_none() {
            match &paused {
                Some(pause) if !self.pause_logged => {
                    tracing::warn!(
                        "the primary failed {} rounds, but automatic promotion is paused{}",
                        outcome.consecutive_failures,
                        pause
                            .reason
                            .as_ref()
                            .map_or(String::new(), |r| format!(": {r}"))
                    );
                    self.pause_logged = true;
                }
                Some(_) => {}
                None => return self.on_threshold(outcome, round, &verdict).await,
            }
        } else if !outcome.threshold_reached {
            self.pause_logged = false;
        }
        let state = match (self.mode, &paused) {
            (Mode::Promoted, _) => "promoted",
            (Mode::Halted, _) => "halted",
            (Mode::Monitoring, _) if self.live.held.is_some() => "halted",
            (Mode::Monitoring, None) if matches!(verdict, Verdict::Inconclusive(_)) => "isolated",
            (Mode::Monitoring, None) if matches!(verdict, Verdict::Degraded(_)) => "degraded",
            (Mode::Monitoring, Some(_)) => "paused",
            (Mode::Monitoring, None) if outcome.consecutive_failures > 0 => "suspect",
            (Mode::Monitoring, None) => "monitoring",
        };
        self.save(state, Some(round));
        Ok(())
    }

    /// The threshold is reached and nothing is paused: the lag guard, a last look, then
    /// the promotion.
    async fn on_threshold(
        &mut self,
        outcome: RoundOutcome,
        round: RoundReport,
        verdict: &Verdict,
    ) -> anyhow::Result<()> {
        if let Err(risk) = lag_guard(
            self.live.replication_seen.as_ref(),
            self.config.replica.max_lag,
        ) {
            tracing::error!(
                "the primary failed {} rounds, but automatic promotion is held: {risk}",
                outcome.consecutive_failures
            );
            self.alerter.send(&format!(
                "🛑 NOT promoting automatically: the primary failed {} rounds in a row, but {risk}. Promoting now could lose what the standby never received. If you accept that: failover-watchdog --promote-now --yes",
                outcome.consecutive_failures
            ));
            self.live.held = Some(risk);
            self.save("halted", Some(round));
            return Ok(());
        }

        // A last look right before the first step: a primary that answers now is not
        // dead, whatever the rounds before said.
        let last_look = self.prober.run_round().await;
        if last_look.ok {
            tracing::warn!(
                "the primary recovered at the last moment (it failed {} rounds, then answered the last look): not promoting",
                outcome.consecutive_failures
            );
            self.alerter.send(&format!(
                "✋ the primary recovered at the last moment: it failed {} rounds in a row, then answered the last look before promotion. Not promoting; watching it again.",
                outcome.consecutive_failures
            ));
            self.detector.on_round(true);
            self.save("monitoring", Some(last_look));
            return Ok(());
        }

        let why = match verdict {
            Verdict::Failed(why) => why.clone(),
            other => other.name().to_string(),
        };
        let reason = format!(
            "the primary failed {} consecutive probe rounds ({why}), and the last look ({})",
            outcome.consecutive_failures,
            last_look.failures()
        );
        self.save("promoting", Some(last_look));
        let stop = self.stop.clone();
        let result = self
            .promoter
            .promote(
                Trigger::Automatic,
                &reason,
                self.live.primary_last_seen.clone(),
                || stop.load(Ordering::Relaxed),
            )
            .await;
        self.mode = match result {
            Ok(journal) => mode_after(&journal),
            Err(e) if e.is::<PrePromoteRefused>() => {
                // Held like the lag guard: once, until the primary answers again.
                tracing::error!("{e:#}");
                self.alerter
                    .send(&format!("🛑 NOT promoting automatically: {e:#}"));
                self.live.held = Some(format!("{e:#}"));
                self.save("halted", None);
                return Ok(());
            }
            Err(e) => {
                // Refused: a --promote-now got there first, or finished already.
                tracing::error!("automatic promotion not run: {e:#}");
                self.store
                    .load_journal()?
                    .as_ref()
                    .map_or(Mode::Monitoring, mode_after)
            }
        };
        let state = match self.mode {
            Mode::Promoted => "promoted",
            Mode::Halted => "halted",
            Mode::Monitoring => "monitoring",
        };
        // The last look stays the last probe shown.
        self.save(state, None);
        Ok(())
    }

    /// After promotion the old primary is still probed: if anything of it answers, two
    /// nodes may take writes. Alert at once and then every `split_brain_alert_every`
    /// while it stays up, louder when its database is writable. Never touch DNS or
    /// stop anything: that is an operator's call.
    fn watch_for_split_brain(&mut self, round: &RoundReport) {
        let back = round.checks.iter().any(|c| c.ok);
        if !back {
            if self.split_brain_alerted.take().is_some() {
                tracing::warn!("the old primary is unreachable again");
            }
            return;
        }
        let every = self.config.promotion.split_brain_alert_every;
        if self
            .split_brain_alerted
            .is_some_and(|at| at.elapsed() < every)
        {
            return;
        }
        self.split_brain_alerted = Some(tokio::time::Instant::now());
        let text = match round.primary_writable() {
            Some(true) => format!(
                "🚨🚨 SPLIT BRAIN: the old primary is back ({}) and its database is WRITABLE: two databases can take writes. DNS stays on this standby and nothing is stopped automatically. Fence it now (SET GLOBAL read_only = ON, stop its application), then follow the failback runbook.",
                round.answers()
            ),
            writable => format!(
                "⚠️ the old primary is back ({}); its database is {}. DNS stays on this standby. Keep it out of service and follow the failback runbook.",
                round.answers(),
                if writable == Some(false) {
                    "read-only"
                } else {
                    "not reachable by the mysql check"
                }
            ),
        };
        tracing::error!("{text}");
        self.alerter.send(&text);
    }

    /// The replica's replication state, read once a round (bounded by the probe
    /// timeout): for the lag guard (kept while the primary is healthy) and for whether
    /// the replica still hears from the primary.
    async fn read_replication(&self) -> (ReplicationSeen, ReplicaHears) {
        let at = Timestamp::now();
        let read =
            tokio::time::timeout(self.config.probe.timeout, self.promoter.replica().status()).await;
        let unreadable = |detail: String| {
            let seen = ReplicationSeen {
                at,
                replicating: false,
                lag_seconds: None,
                detail: detail.clone(),
            };
            (seen, ReplicaHears::Nothing(detail))
        };
        match read {
            Ok(Ok(Some(status))) => {
                let seen = ReplicationSeen {
                    at,
                    replicating: status.replicating(),
                    lag_seconds: status.seconds_behind,
                    detail: status.summary(),
                };
                let hears = if status.io_connected() {
                    ReplicaHears::Connected {
                        gtid_io_pos: status.gtid_io_pos.clone(),
                        heartbeats: status.received_heartbeats,
                    }
                } else {
                    ReplicaHears::Nothing(format!(
                        "the replica's IO thread is not connected ({}{})",
                        status.io_running,
                        match status.io_error.as_ref().map_or("", |e| e.message.as_str()) {
                            "" => String::new(),
                            error => format!(": {error}"),
                        }
                    ))
                };
                (seen, hears)
            }
            Ok(Ok(None)) => unreadable(format!(
                "no replication connection {:?} on the replica",
                self.config.replica.connection_name
            )),
            Ok(Err(e)) => unreadable(format!("cannot read the replica's status: {e:#}")),
            Err(_) => unreadable("the replica did not answer within the probe timeout".to_string()),
        }
    }

    /// Replication silence is only evidence when heartbeats come well within it: warn
    /// at start when they do not.
    async fn warn_about_the_heartbeat(&self) {
        if !self.config.probe.confirm_with_replication || self.mode != Mode::Monitoring {
            return;
        }
        let silence = self.config.probe.replication_silence;
        let read =
            tokio::time::timeout(self.config.probe.timeout, self.promoter.replica().status()).await;
        let Ok(Ok(Some(status))) = read else { return };
        let period: f64 = status.heartbeat_period.map_or(0.0, |p| p.as_secs_f64());
        if period <= 0.0 || period > silence.as_secs_f64() / 2.0 {
            tracing::warn!(
                "the replica's heartbeat period is {period} s: with replication_silence {}, a quiet primary looks silent. Set it well under, e.g. CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}",
                humantime::format_duration(silence),
                (silence.as_secs_f64() / 4.0).max(1.0).floor()
            );
        }
    }

    /// The round's verdict, from the primary's checks, the standby's self-checks, what
    /// the replica hears and, for a round that would fail, the witnesses' vote (their
    /// answers are kept in the round, for `status`).
    async fn judge(&mut self, round: &mut RoundReport) -> Verdict {
        if self.mode != Mode::Monitoring {
            // Promoted or halted: replication is over; only the checks matter (the
            // split-brain watch).
            return judge(round.ok, &round.failures(), None, None);
        }
        let (seen, hears) = self.read_replication().await;
        if round.ok {
            self.live.replication_seen = Some(seen);
        }
        let replication = self.config.probe.confirm_with_replication.then(|| {
            self.silence.heard_within(
                &hears,
                self.started.elapsed(),
                self.config.probe.replication_silence,
            )
        });
        let verdict = judge(
            round.ok,
            &round.failures(),
            round.self_check_failures().as_deref(),
            replication,
        );
        match &self.witnesses {
            Some(witnesses) if matches!(verdict, Verdict::Failed(_)) => {
                round.witnesses = witnesses.ask_all().await;
                confirm_with_witnesses(verdict, &round.witnesses)
            }
            _ => verdict,
        }
    }

    /// A witness that cannot be asked counts as not agreeing, so a wrong URL or token
    /// would quietly block every automatic promotion: ask each once at start and say so.
    async fn warn_about_the_witnesses(&self) {
        let Some(witnesses) = &self.witnesses else {
            return;
        };
        if self.mode != Mode::Monitoring {
            return;
        }
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

    /// Logs (and for some, alerts) when the verdict changes kind. A verdict the
    /// witnesses' vote decided is a kind of its own: "the replica still hears the
    /// primary" and "a witness still reaches it" are different news.
    fn on_verdict_change(&mut self, verdict: &Verdict, by_witnesses: bool) {
        let before = self.live.verdict.as_ref().map_or("ok", Verdict::name);
        let before_by_witnesses = std::mem::replace(&mut self.verdict_by_witnesses, by_witnesses);
        if (before, before_by_witnesses) == (verdict.name(), by_witnesses) {
            return;
        }
        match verdict {
            Verdict::Inconclusive(why) if by_witnesses => {
                tracing::error!("the primary looks down, but not promoting: {why}");
                self.alerter.send(&format!(
                    "🛑 the primary looks down, but NOT promoting: {why}. Automatic promotion needs a majority of observers: check the witnesses, or promote by hand (failover-watchdog --promote-now) if the primary is really down."
                ));
            }
            Verdict::Inconclusive(why) => {
                tracing::warn!("the standby may be isolated; not counting rounds: {why}")
            }
            Verdict::Degraded(why) => {
                tracing::warn!("degraded, not promoting: {why}");
                self.alerter.send(&format!(
                    "⚠️ degraded: {why}. Not promoting: the primary is alive."
                ));
            }
            Verdict::Ok | Verdict::Failed(_) => {}
        }
        match before {
            "inconclusive" if before_by_witnesses => {
                tracing::info!("no longer short of a majority: {}", verdict.name())
            }
            "inconclusive" => {
                tracing::info!("the standby can reach its self-checks again");
                self.alerter.send(
                    "📶 the standby was cut off from its own self-checks (isolated) and can talk again; it did not count those rounds against the primary.",
                );
            }
            "degraded" => tracing::info!("no longer degraded: {}", verdict.name()),
            _ => {}
        }
    }

    /// Updates and saves the live state for `status`.
    fn save(&mut self, state: &str, round: Option<RoundReport>) {
        self.live.state = state.to_string();
        self.live.consecutive_failures = self.detector.consecutive_failures();
        if round.is_some() {
            self.live.last_probe = round;
        }
        self.live.updated_at = Timestamp::now();
        if let Err(e) = self.store.save_live(&self.live) {
            tracing::warn!("cannot write the live state: {e:#}");
        }
    }
}

/// A fresh live state, keeping what the last run learned about the primary and the
/// replica: the primary may be dead by the time we are back.
fn starting_live_state(store: &StateDir, config: &Config) -> LiveState {
    let before = store.load_live::<LiveState>().ok().flatten();
    LiveState {
        state: "monitoring".to_string(),
        consecutive_failures: 0,
        failures_before_promotion: config.probe.failures_before_promotion,
        last_probe: None,
        updated_at: Timestamp::now(),
        pid: std::process::id(),
        primary_last_seen: before.as_ref().and_then(|b| b.primary_last_seen.clone()),
        replication_seen: before.as_ref().and_then(|b| b.replication_seen.clone()),
        held: None,
        verdict: None,
    }
}

fn mode_after(journal: &Journal) -> Mode {
    match journal.outcome {
        Outcome::Promoted => Mode::Promoted,
        Outcome::Halted => Mode::Halted,
        // Stopped between steps on shutdown: the next start resumes.
        Outcome::Running => Mode::Monitoring,
    }
}

fn log_transition(transition: Option<Transition>, round: &RoundReport, config: &Config) {
    let threshold = config.probe.failures_before_promotion;
    match transition {
        None => {}
        Some(Transition::FirstFailure) => {
            tracing::warn!(
                "primary check failed (1 of {threshold}): {}",
                round.failures()
            );
        }
        Some(Transition::Recovered { after_failures }) => {
            tracing::info!("primary recovered after {after_failures} failed rounds");
        }
        Some(Transition::ThresholdReached) => {
            tracing::error!(
                "primary failed {threshold} rounds in a row: {}",
                round.failures()
            );
        }
    }
}

fn active_pause(store: &StateDir, alerter: &Alerter) -> Option<Pause> {
    match store.load_pause::<Pause>() {
        Ok(Some(pause)) if pause.active_at(Timestamp::now()) => Some(pause),
        Ok(Some(_)) => {
            tracing::info!("the pause has run out; automatic promotion is on again");
            alerter.send("▶️ the timed pause has run out; automatic promotion is on again.");
            if let Err(e) = store.remove_pause() {
                tracing::warn!("{e:#}");
            }
            None
        }
        Ok(None) => None,
        Err(e) => {
            // An unreadable pause marker errs on the side of not promoting.
            tracing::error!("{e:#}; treating automatic promotion as paused");
            Some(Pause {
                since: Timestamp::now(),
                until: None,
                reason: Some("unreadable pause marker".into()),
            })
        }
    }
}

//! The daemon: probe every `interval`, count failed rounds, promote once at the threshold,
//! then stay up in state `promoted`. Shutdown is passed in as a future.
//!
//! This is the driver around the pure pieces: [`crate::detect`] decides, the prober and
//! the promoter do the I/O, [`crate::store`] keeps the live state for `status`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use tokio::time::MissedTickBehavior;

use crate::alert::Alerter;
use crate::config::Config;
use crate::detect::{Detector, Transition};
use crate::journal::{Outcome, PrimarySeen, Trigger};
use crate::probe::{Prober, RoundReport};
use crate::promote::Promoter;
use crate::status::{LiveState, Pause};
use crate::store::StateDir;

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
    let promoter = Promoter::new(&config, alerter.clone())?;
    let prober = Prober::new(&config.probe)?;
    let mut detector = Detector::new(config.probe.failures_before_promotion);
    // Carried over a restart: the primary may be dead by the time we are back.
    let mut primary_last_seen = store
        .load_live::<LiveState>()
        .ok()
        .flatten()
        .and_then(|live| live.primary_last_seen);

    let stop = Arc::new(AtomicBool::new(false));
    let mut shutdown = std::pin::pin!(shutdown);

    // A journal decides where we start; one that cannot be read stops us (no blind
    // promotion, no blind refusal).
    let mut mode = match store.load_journal()? {
        None => Mode::Monitoring,
        Some(journal) => match journal.outcome {
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
                write_live(
                    &store,
                    "promoting",
                    &detector,
                    &config,
                    None,
                    primary_last_seen.clone(),
                );
                let journal = promoter
                    .promote(Trigger::Automatic, &journal.reason, None, || {
                        stop.load(Ordering::Relaxed)
                    })
                    .await?;
                mode_after(&journal)
            }
        },
    };

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
    let mut pause_logged = false;

    loop {
        let round = tokio::select! {
            _ = &mut shutdown => break,
            round = async { ticker.tick().await; prober.run_round().await } => round,
        };
        let outcome = detector.on_round(round.ok);
        if let Some(gtid) = round.primary_gtid() {
            primary_last_seen = Some(PrimarySeen {
                gtid: gtid.to_string(),
                at: round.at,
            });
        }
        if mode == Mode::Monitoring {
            log_transition(outcome.transition, &round, &config);
        }
        let paused = active_pause(&store);
        if mode == Mode::Monitoring && outcome.threshold_reached {
            if let Some(pause) = &paused {
                if !pause_logged {
                    tracing::warn!(
                        "the primary failed {} rounds, but automatic promotion is paused{}",
                        outcome.consecutive_failures,
                        pause
                            .reason
                            .as_ref()
                            .map_or(String::new(), |r| format!(": {r}"))
                    );
                    pause_logged = true;
                }
            } else {
                // A last look right before the first step: a primary that answers now is
                // not dead, whatever the rounds before said.
                let last_look = prober.run_round().await;
                if last_look.ok {
                    tracing::warn!(
                        "the primary recovered at the last moment (it failed {} rounds, then answered the last look): not promoting",
                        outcome.consecutive_failures
                    );
                    alerter.send(&format!(
                        "✋ the primary recovered at the last moment: it failed {} rounds in a row, then answered the last look before promotion. Not promoting; watching it again.",
                        outcome.consecutive_failures
                    ));
                    detector.on_round(true);
                    write_live(
                        &store,
                        "monitoring",
                        &detector,
                        &config,
                        Some(last_look),
                        primary_last_seen.clone(),
                    );
                    continue;
                }
                let reason = format!(
                    "the primary failed {} consecutive probe rounds and the last look ({})",
                    outcome.consecutive_failures,
                    last_look.failures()
                );
                write_live(
                    &store,
                    "promoting",
                    &detector,
                    &config,
                    Some(round.clone()),
                    primary_last_seen.clone(),
                );
                match promoter
                    .promote(
                        Trigger::Automatic,
                        &reason,
                        primary_last_seen.clone(),
                        || stop.load(Ordering::Relaxed),
                    )
                    .await
                {
                    Ok(journal) => mode = mode_after(&journal),
                    Err(e) => {
                        // Refused: a --promote-now got there first, or finished already.
                        tracing::error!("automatic promotion not run: {e:#}");
                        mode = match store.load_journal()? {
                            Some(j) => mode_after(&j),
                            None => Mode::Monitoring,
                        };
                    }
                }
            }
        } else {
            pause_logged = false;
        }
        let state = match (mode, &paused) {
            (Mode::Promoted, _) => "promoted",
            (Mode::Halted, _) => "halted",
            (Mode::Monitoring, Some(_)) => "paused",
            (Mode::Monitoring, None) if outcome.consecutive_failures > 0 => "suspect",
            (Mode::Monitoring, None) => "monitoring",
        };
        write_live(
            &store,
            state,
            &detector,
            &config,
            Some(round),
            primary_last_seen.clone(),
        );
    }
    stop.store(true, Ordering::Relaxed);
    tracing::info!("stopping");
    alerter.flush(std::time::Duration::from_secs(5)).await;
    Ok(())
}

fn mode_after(journal: &crate::journal::Journal) -> Mode {
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

fn active_pause(store: &StateDir) -> Option<Pause> {
    match store.load_pause::<Pause>() {
        Ok(Some(pause)) if pause.active_at(Timestamp::now()) => Some(pause),
        Ok(Some(_)) => {
            tracing::info!("the pause has run out; automatic promotion is on again");
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

fn write_live(
    store: &StateDir,
    state: &str,
    detector: &Detector,
    config: &Config,
    round: Option<RoundReport>,
    primary_last_seen: Option<PrimarySeen>,
) {
    let live = LiveState {
        state: state.to_string(),
        consecutive_failures: detector.consecutive_failures(),
        failures_before_promotion: config.probe.failures_before_promotion,
        last_probe: round,
        updated_at: Timestamp::now(),
        pid: std::process::id(),
        primary_last_seen,
    };
    if let Err(e) = store.save_live(&live) {
        tracing::warn!("cannot write the live state: {e:#}");
    }
}

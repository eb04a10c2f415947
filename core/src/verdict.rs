//! A round's verdict: is the primary really down? Pure: no I/O, times passed in.
//!
//! A round whose primary checks fail only counts as **failed** when nothing says
//! otherwise:
//! - **inconclusive** (the standby is `isolated`): one of the standby's own
//!   `self_checks` (targets that are not the primary) failed too, so the standby's own
//!   network is in doubt;
//! - **degraded**: the replica still hears from the primary (its IO thread is connected
//!   and a transaction or a heartbeat arrived since the last round), so the primary is
//!   alive whatever its other checks say.
//!
//! Replication silence confirms a failure once it lasts longer than its window
//! ([`silence_window`]: `replication_silence`, or by default three of the replica's own
//! heartbeat periods). Silence still younger than that ([`Silence::Young`]) neither proves
//! the primary alive nor confirms it dead: the round fails and counts, but the decision
//! core waits for confirmation before it promotes. A primary that hangs is so caught
//! within the window, not two intervals late.
//!
//! With witnesses, a round that would fail is put to a vote
//! ([`confirm_with_witnesses`]): it stays **failed** only when a majority of observers
//! (the standby and every configured witness) saw the primary down and no witness
//! reaches it. A witness that reaches the primary makes the round **degraded** (the
//! primary is alive); too few agreeing observers make it **inconclusive**.
//!
//! Only a failed round grows the failure count. A degraded round is proof of life and
//! starts it again; an inconclusive one proves nothing and leaves it where it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::witness::{Said, WitnessReport};

/// What one round says about the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "snake_case")]
pub enum Verdict {
    /// The primary answered.
    Ok,
    /// The primary is down, as far as the standby can tell.
    Failed(String),
    /// The standby cannot tell: its own self-checks fail.
    Inconclusive(String),
    /// The primary's checks fail, but replication shows it alive.
    Degraded(String),
}

impl Verdict {
    /// The verdict's name, as `status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Failed(_) => "failed",
            Verdict::Inconclusive(_) => "inconclusive",
            Verdict::Degraded(_) => "degraded",
        }
    }
}

/// What the replica said this round about hearing from the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaHears {
    /// Not asked (`confirm_with_replication = false`).
    NotAsked,
    /// The replica could not be read, or its IO thread is not connected.
    Nothing(String),
    /// The IO thread is connected; these are its counters.
    Connected {
        gtid_io_pos: crate::gtid::GtidPosition,
        heartbeats: u64,
    },
}

/// How long the replica must hear nothing before its silence confirms a failed round:
/// `replication_silence` when set; else a few of the replica's own heartbeat periods
/// (`Slave_heartbeat_period`, as read this round); else, with heartbeats off or unknown,
/// two intervals.
pub fn silence_window(
    configured: Option<Duration>,
    heartbeat_period: Option<Duration>,
    interval: Duration,
) -> Duration {
    configured.unwrap_or_else(|| {
        heartbeat_period.map_or(replication_silence_without_heartbeats(interval), |period| {
            period * HEARTBEATS_OF_SILENCE
        })
    })
}

/// `probe.replication_silence`, unset: this many of the replica's own heartbeat periods
/// (`Slave_heartbeat_period`, read each round) without a word from the primary. Three:
/// one late heartbeat is no evidence, three missing in a row are.
pub const HEARTBEATS_OF_SILENCE: u32 = 3;

/// `probe.replication_silence`, unset, with the replica's heartbeats off (period 0) or
/// unreadable: two rounds without a word from the primary.
pub fn replication_silence_without_heartbeats(interval: Duration) -> Duration {
    interval * 2
}

/// What the heartbeat rule needs of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRule {
    /// `probe.replication_silence`, when set.
    pub configured: Option<Duration>,
    pub interval: Duration,
    pub failures_before_promotion: u32,
}

impl HeartbeatRule {
    /// The one heartbeat rule (the daemon warns by it at start, the smoke test fails by
    /// it): silence is only evidence when heartbeats come well within its window (two
    /// per window at least), and a derived window should not hold a promotion past the
    /// rounds it takes to reach the threshold. `Some` says what is wrong and the fix.
    pub fn problem(&self, heartbeat_period: Option<Duration>) -> Option<String> {
        let detection = self.interval * self.failures_before_promotion.max(1);
        let Some(period) = heartbeat_period else {
            return Some(format!(
                "heartbeat period not set (0.000): a quiet primary looks silent; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}",
                suggested_period(self.configured.unwrap_or(detection))
            ));
        };
        match self.configured {
            Some(silence) if period * 2 > silence => Some(format!(
                "heartbeat period {:.3} s is not well under replication_silence {}: a quiet primary would look dead; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}, or leave replication_silence unset",
                period.as_secs_f64(),
                humantime::format_duration(silence),
                suggested_period(silence)
            )),
            None if period * HEARTBEATS_OF_SILENCE > detection => Some(format!(
                "heartbeat period {:.3} s is not well under replication_silence (derived: {} heartbeats): replication would confirm a dead primary only after {}, later than the {} it takes to reach the threshold; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}",
                period.as_secs_f64(),
                HEARTBEATS_OF_SILENCE,
                humantime::format_duration(period * HEARTBEATS_OF_SILENCE),
                humantime::format_duration(detection),
                suggested_period(detection)
            )),
            _ => None,
        }
    }
}

/// A heartbeat period that fits four times into `window`, in MariaDB's seconds.
fn suggested_period(window: Duration) -> String {
    let seconds = (window.as_secs_f64() / 4.0).max(0.5);
    format!("{seconds:.1}")
}

/// What the replica's silence says this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// Something (a transaction or a heartbeat) arrived since the last reading: the
    /// primary is alive.
    Heard,
    /// Nothing arrived since the last reading, for less than the window: too young to
    /// confirm anything yet, too old to prove the primary alive.
    Young { since: Duration, window: Duration },
    /// The IO thread is down, or nothing arrived for longer than the window.
    Confirmed(String),
}

/// Remembers when the replica last received anything from the primary.
#[derive(Debug, Clone, Default)]
pub struct SilenceTracker {
    last: Option<(crate::gtid::GtidPosition, u64)>,
    last_change: Option<Duration>,
    /// The last reading was taken in a round whose primary checks failed.
    last_in_a_failed_round: bool,
}

impl SilenceTracker {
    /// Feeds this round's reading at `now` (time since any fixed start), taken in a
    /// round whose primary checks failed or not, and says what the silence means
    /// against `window`.
    ///
    /// Something new proves the primary alive only when the reading before was itself
    /// taken while its checks failed: then it arrived after the failure began. In the
    /// first failed round it may have arrived just before a hang, so it only restarts
    /// the clock.
    pub fn observe(
        &mut self,
        reading: &ReplicaHears,
        now: Duration,
        window: Duration,
        round_failed: bool,
    ) -> Silence {
        let baseline_failed = std::mem::replace(&mut self.last_in_a_failed_round, round_failed);
        let ReplicaHears::Connected {
            gtid_io_pos,
            heartbeats,
        } = reading
        else {
            self.last = None;
            self.last_change = None;
            return Silence::Confirmed(match reading {
                ReplicaHears::Nothing(why) => why.clone(),
                _ => "replication not asked".to_string(),
            });
        };
        let value = (gtid_io_pos.clone(), *heartbeats);
        if self.last.as_ref() != Some(&value) {
            // The first reading proves nothing about arrival: it starts the clock.
            let first = self.last.is_none();
            self.last = Some(value);
            self.last_change = Some(now);
            if !first && baseline_failed {
                return Silence::Heard;
            }
        }
        let since = now.saturating_sub(self.last_change.unwrap_or(now));
        if since > window {
            Silence::Confirmed(format!(
                "nothing arrived from the primary for {} (no transaction, no heartbeat)",
                tenths(since)
            ))
        } else {
            Silence::Young { since, window }
        }
    }
}

/// A duration to the tenth of a second, for reasons.
fn tenths(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64 / 100 * 100))
}

/// The round's verdict. `primary_failures` describes the failed primary checks;
/// `self_check_failures` the failed self-checks (`None`: none configured or all fine);
/// `replication` what the replica's silence says (`None`: not asked). Young silence
/// still fails the round (it counts), but does not confirm it: see [`Silence::Young`].
pub fn judge(
    primary_ok: bool,
    primary_failures: &str,
    self_check_failures: Option<&str>,
    replication: Option<&Silence>,
) -> Verdict {
    if primary_ok {
        return Verdict::Ok;
    }
    if let Some(failures) = self_check_failures {
        return Verdict::Inconclusive(format!(
            "the primary's checks failed ({primary_failures}), but so did the standby's own self-checks ({failures}): the standby may be the one cut off"
        ));
    }
    match replication {
        Some(Silence::Heard) => Verdict::Degraded(format!(
            "the primary's checks failed ({primary_failures}), but the replica still hears from it"
        )),
        Some(Silence::Young { since, window }) => Verdict::Failed(format!(
            "{primary_failures}; replication confirms nothing new {} (silence proves the primary down after {})",
            if since.as_millis() < 100 {
                "yet".to_string()
            } else {
                format!("for {}", tenths(*since))
            },
            humantime::format_duration(*window)
        )),
        Some(Silence::Confirmed(silence)) => Verdict::Failed(format!(
            "{primary_failures}; replication confirms: {silence}"
        )),
        None => Verdict::Failed(primary_failures.to_string()),
    }
}

/// Puts a failed round to the witnesses' vote; any other verdict passes unchanged.
///
/// The observers are the standby and every witness asked. The round stays failed only
/// when more than half of them saw the primary down and none reaches it: a witness that
/// did not answer counts as not agreeing, and one that reaches the primary proves it
/// alive, however the others voted (promoting then would make two primaries).
pub fn confirm_with_witnesses(verdict: Verdict, witnesses: &[WitnessReport]) -> Verdict {
    let Verdict::Failed(why) = verdict else {
        return verdict;
    };
    if witnesses.is_empty() {
        return Verdict::Failed(why);
    }
    let observers = witnesses.len() + 1;
    let agreeing = 1 + witnesses.iter().filter(|w| w.said == Said::Down).count();
    let said = witnesses
        .iter()
        .map(WitnessReport::describe)
        .collect::<Vec<_>>()
        .join("; ");
    let reaching: Vec<&str> = witnesses
        .iter()
        .filter(|w| w.said == Said::Up)
        .map(|w| w.name.as_str())
        .collect();
    if !reaching.is_empty() {
        return Verdict::Degraded(format!(
            "the standby sees the primary down ({why}), but witness {} still reaches it: {said}",
            reaching.join(" and ")
        ));
    }
    if agreeing * 2 > observers {
        Verdict::Failed(format!(
            "{why}; witnesses confirm: {agreeing} of {observers} observers saw the primary down ({said})"
        ))
    } else {
        Verdict::Inconclusive(format!(
            "the standby sees the primary down ({why}), but only {agreeing} of {observers} observers do, not a majority ({said}): the standby may be the one cut off"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(2);

    fn connected(pos: &str, heartbeats: u64) -> ReplicaHears {
        ReplicaHears::Connected {
            gtid_io_pos: crate::gtid::GtidPosition::parse(pos).unwrap(),
            heartbeats,
        }
    }

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn heartbeats_or_transactions_keep_the_primary_heard_and_silence_grows_young_then_confirmed() {
        let mut tracker = SilenceTracker::default();
        // The first reading proves nothing about arrival: it starts the clock.
        assert_eq!(
            tracker.observe(&connected("0-1-5", 10), at(0), S, true),
            Silence::Young {
                since: at(0),
                window: S
            }
        );
        assert_eq!(
            tracker.observe(&connected("0-1-5", 11), at(1), S, true),
            Silence::Heard
        );
        assert_eq!(
            tracker.observe(&connected("0-1-6", 11), at(3), S, true),
            Silence::Heard
        );
        // Nothing new, but not for longer than the window: young.
        assert_eq!(
            tracker.observe(&connected("0-1-6", 11), at(5), S, true),
            Silence::Young {
                since: at(2),
                window: S
            }
        );
        let Silence::Confirmed(silent) = tracker.observe(&connected("0-1-6", 11), at(6), S, true)
        else {
            panic!("confirmed expected");
        };
        assert!(
            silent.contains("nothing arrived from the primary for 3s"),
            "{silent}"
        );
    }

    #[test]
    fn a_disconnected_io_thread_is_silence_at_once() {
        let mut tracker = SilenceTracker::default();
        tracker.observe(&connected("0-1-5", 10), at(0), S, false);
        let Silence::Confirmed(err) = tracker.observe(
            &ReplicaHears::Nothing("IO thread Connecting".into()),
            at(1),
            S,
            true,
        ) else {
            panic!("confirmed expected");
        };
        assert!(err.contains("Connecting"));
        // Reconnected: the clock starts again from the first new reading.
        assert!(matches!(
            tracker.observe(&connected("0-1-5", 10), at(2), S, true),
            Silence::Young { .. }
        ));
    }

    #[test]
    fn news_in_the_first_failed_round_may_predate_the_failure_and_proves_nothing() {
        let mut tracker = SilenceTracker::default();
        tracker.observe(&connected("0-1-5", 10), at(0), S, false);
        // A heartbeat arrived, then the primary hung: the first failed round sees it.
        assert_eq!(
            tracker.observe(&connected("0-1-5", 11), at(1), S, true),
            Silence::Young {
                since: at(0),
                window: S
            }
        );
        // Something new while the checks had already failed: alive.
        assert_eq!(
            tracker.observe(&connected("0-1-5", 12), at(2), S, true),
            Silence::Heard
        );
    }

    #[test]
    fn the_window_is_three_heartbeats_unless_configured_and_two_intervals_without_heartbeats() {
        let ms = Duration::from_millis;
        assert_eq!(silence_window(None, Some(ms(500)), at(1)), ms(1500));
        assert_eq!(silence_window(Some(at(7)), Some(ms(500)), at(1)), at(7));
        assert_eq!(silence_window(None, None, at(60)), at(120));
    }

    #[test]
    fn the_heartbeat_rule_wants_two_heartbeats_per_window_and_no_later_confirmation() {
        let ms = Duration::from_millis;
        let rule = |configured| HeartbeatRule {
            configured,
            interval: at(1),
            failures_before_promotion: 3,
        };
        assert_eq!(rule(None).problem(Some(ms(500))), None);
        assert_eq!(rule(None).problem(Some(at(1))), None);
        assert_eq!(rule(Some(at(2))).problem(Some(at(1))), None);
        let slow = rule(Some(at(2))).problem(Some(at(5))).unwrap();
        assert!(
            slow.contains("not well under replication_silence 2s"),
            "{slow}"
        );
        let late = rule(None).problem(Some(at(5))).unwrap();
        assert!(
            late.contains("only after 15s, later than the 3s it takes"),
            "{late}"
        );
        let off = rule(None).problem(None).unwrap();
        assert!(off.contains("heartbeat period not set"), "{off}");
    }

    #[test]
    fn the_verdict_follows_the_evidence() {
        let silent = Silence::Confirmed("IO thread Connecting".into());
        assert_eq!(judge(true, "", Some("x"), Some(&silent)), Verdict::Ok);
        assert_eq!(judge(false, "tcp refused", None, None).name(), "failed");
        let isolated = judge(
            false,
            "tcp refused",
            Some("gateway unreachable"),
            Some(&silent),
        );
        assert_eq!(isolated.name(), "inconclusive");
        let degraded = judge(false, "http 503", None, Some(&Silence::Heard));
        assert_eq!(degraded.name(), "degraded");
        let Verdict::Failed(reason) = judge(false, "tcp refused", None, Some(&silent)) else {
            panic!("failed expected");
        };
        assert!(
            reason.contains("replication confirms: IO thread Connecting"),
            "{reason}"
        );
        // Young silence: the round fails (it counts); the core waits for confirmation.
        let young = Silence::Young {
            since: Duration::from_millis(1000),
            window: Duration::from_millis(1500),
        };
        let Verdict::Failed(reason) = judge(false, "tcp timed out", None, Some(&young)) else {
            panic!("failed expected");
        };
        assert!(
            reason.contains(
                "replication confirms nothing new for 1s (silence proves the primary down after 1s 500ms)"
            ),
            "{reason}"
        );
    }

    fn witness(name: &str, said: Said) -> WitnessReport {
        WitnessReport {
            name: name.into(),
            said,
            detail: match said {
                Said::Down => "tcp failed".into(),
                Said::Up => "all 2 checks passed".into(),
                Said::NoAnswer => "connection refused".into(),
            },
            duration_ms: 3,
        }
    }

    /// (what the witnesses said, the verdict): the majority and the veto.
    #[test]
    fn witnesses_vote_by_majority_and_one_that_reaches_the_primary_keeps_it_alive() {
        use Said::*;
        let cases: &[(&[Said], &str)] = &[
            (&[], "failed"),
            (&[Down], "failed"),
            (&[NoAnswer], "inconclusive"),
            (&[Up], "degraded"),
            (&[Down, Down], "failed"),
            (&[Down, NoAnswer], "failed"),
            (&[NoAnswer, NoAnswer], "inconclusive"),
            // One of two reaches the primary: it is alive, whatever the majority says.
            (&[Down, Up], "degraded"),
            (&[Up, Up], "degraded"),
            (&[Down, NoAnswer, NoAnswer], "inconclusive"),
            (&[Down, Down, NoAnswer], "failed"),
        ];
        for (said, want) in cases {
            let witnesses: Vec<WitnessReport> = said
                .iter()
                .enumerate()
                .map(|(i, s)| witness(&format!("w{i}"), *s))
                .collect();
            let verdict = confirm_with_witnesses(Verdict::Failed("tcp refused".into()), &witnesses);
            assert_eq!(verdict.name(), *want, "{said:?}: {verdict:?}");
        }
    }

    #[test]
    fn the_vote_explains_itself() {
        let Verdict::Failed(why) = confirm_with_witnesses(
            Verdict::Failed("tcp refused".into()),
            &[witness("ams1", Said::Down), witness("nyc1", Said::NoAnswer)],
        ) else {
            panic!("failed expected");
        };
        assert_eq!(
            why,
            "tcp refused; witnesses confirm: 2 of 3 observers saw the primary down (ams1 saw it down (tcp failed); nyc1 did not answer (connection refused))"
        );
        let Verdict::Degraded(why) = confirm_with_witnesses(
            Verdict::Failed("tcp refused".into()),
            &[witness("ams1", Said::Down), witness("nyc1", Said::Up)],
        ) else {
            panic!("degraded expected");
        };
        assert!(
            why.contains("witness nyc1 still reaches it") && why.contains("ams1 saw it down"),
            "{why}"
        );
        // Not a failed round: the witnesses do not change it.
        let degraded = Verdict::Degraded("replica hears".into());
        assert_eq!(
            confirm_with_witnesses(degraded.clone(), &[witness("ams1", Said::Down)]),
            degraded
        );
    }
}

//! A round's verdict: is the primary really down? Pure: no I/O, times passed in.
//!
//! A round whose primary checks fail only counts as **failed** when nothing says
//! otherwise:
//! - **inconclusive** (the standby is `isolated`): one of the standby's own
//!   `self_checks` (targets that are not the primary) failed too, so the standby's own
//!   network is in doubt;
//! - **degraded**: the replica still hears from the primary (its IO thread is connected
//!   and a transaction or a heartbeat arrived within `replication_silence`), so the
//!   primary is alive whatever its other checks say.
//!
//! With witnesses, a round that would fail is put to a vote
//! ([`confirm_with_witnesses`]): it stays **failed** only when a majority of observers
//! (the standby and every configured witness) saw the primary down and no witness
//! reaches it. A witness that reaches the primary makes the round **degraded** (the
//! primary is alive); too few agreeing observers make it **inconclusive**.
//!
//! Only a failed round grows the failure count; inconclusive and degraded rounds leave
//! it where it is.

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
        gtid_io_pos: String,
        heartbeats: u64,
    },
}

/// Remembers when the replica last received anything from the primary.
#[derive(Debug, Clone, Default)]
pub struct SilenceTracker {
    last: Option<(String, u64)>,
    last_change: Option<Duration>,
}

impl SilenceTracker {
    /// Feeds this round's reading at `now` (time since any fixed start) and says
    /// whether the primary was heard from within `silence`.
    pub fn heard_within(
        &mut self,
        reading: &ReplicaHears,
        now: Duration,
        silence: Duration,
    ) -> Result<(), String> {
        let ReplicaHears::Connected {
            gtid_io_pos,
            heartbeats,
        } = reading
        else {
            self.last = None;
            self.last_change = None;
            return match reading {
                ReplicaHears::Nothing(why) => Err(why.clone()),
                _ => Err("replication not asked".to_string()),
            };
        };
        let value = (gtid_io_pos.clone(), *heartbeats);
        if self.last.as_ref() != Some(&value) {
            // The first reading proves nothing about arrival: it starts the clock.
            if self.last.is_some() {
                self.last_change = Some(now);
            } else {
                self.last_change.get_or_insert(now);
            }
            self.last = Some(value);
        }
        let since = now.saturating_sub(self.last_change.unwrap_or(now));
        if since > silence {
            Err(format!(
                "nothing arrived from the primary for {} (no transaction, no heartbeat)",
                humantime::format_duration(Duration::from_secs(since.as_secs()))
            ))
        } else {
            Ok(())
        }
    }
}

/// The round's verdict. `primary_failures` describes the failed primary checks;
/// `self_check_failures` the failed self-checks (`None`: none configured or all fine);
/// `replication` whether the replica heard from the primary (`None`: not asked).
pub fn judge(
    primary_ok: bool,
    primary_failures: &str,
    self_check_failures: Option<&str>,
    replication: Option<Result<(), String>>,
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
        Some(Ok(())) => Verdict::Degraded(format!(
            "the primary's checks failed ({primary_failures}), but the replica still hears from it"
        )),
        Some(Err(silence)) => Verdict::Failed(format!(
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
            gtid_io_pos: pos.into(),
            heartbeats,
        }
    }

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn heartbeats_or_transactions_keep_the_primary_heard() {
        let mut tracker = SilenceTracker::default();
        assert!(
            tracker
                .heard_within(&connected("0-1-5", 10), at(0), S)
                .is_ok()
        );
        assert!(
            tracker
                .heard_within(&connected("0-1-5", 11), at(1), S)
                .is_ok()
        );
        assert!(
            tracker
                .heard_within(&connected("0-1-6", 11), at(3), S)
                .is_ok()
        );
        // Nothing new for longer than the silence window.
        assert!(
            tracker
                .heard_within(&connected("0-1-6", 11), at(5), S)
                .is_ok()
        );
        let silent = tracker
            .heard_within(&connected("0-1-6", 11), at(6), S)
            .unwrap_err();
        assert!(
            silent.contains("nothing arrived from the primary for 3s"),
            "{silent}"
        );
    }

    #[test]
    fn a_disconnected_io_thread_is_silence_at_once() {
        let mut tracker = SilenceTracker::default();
        tracker
            .heard_within(&connected("0-1-5", 10), at(0), S)
            .unwrap();
        let err = tracker
            .heard_within(
                &ReplicaHears::Nothing("IO thread Connecting".into()),
                at(1),
                S,
            )
            .unwrap_err();
        assert!(err.contains("Connecting"));
        // Reconnected: the clock starts again from the first new reading.
        assert!(
            tracker
                .heard_within(&connected("0-1-5", 10), at(2), S)
                .is_ok()
        );
    }

    #[test]
    fn the_verdict_follows_the_evidence() {
        assert_eq!(
            judge(true, "", Some("x"), Some(Err("y".into()))),
            Verdict::Ok
        );
        assert_eq!(judge(false, "tcp refused", None, None).name(), "failed");
        let isolated = judge(
            false,
            "tcp refused",
            Some("gateway unreachable"),
            Some(Err("silent".into())),
        );
        assert_eq!(isolated.name(), "inconclusive");
        let degraded = judge(false, "http 503", None, Some(Ok(())));
        assert_eq!(degraded.name(), "degraded");
        let Verdict::Failed(reason) = judge(
            false,
            "tcp refused",
            None,
            Some(Err("IO thread Connecting".into())),
        ) else {
            panic!("failed expected");
        };
        assert!(
            reason.contains("replication confirms: IO thread Connecting"),
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

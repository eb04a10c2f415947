//! Detection: counting consecutive failed probe rounds. Pure: no I/O, no clock.
//!
//! The daemon feeds each round's verdict to [`Detector::on_round`] and gets back what
//! to log (a [`Transition`], only when something changed, so the log says "first failure",
//! "recovered", "threshold reached" once and not every round) and whether the threshold
//! has been reached.

/// A change worth one log line (and, for the threshold, an action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The first failed round after a healthy one.
    FirstFailure,
    /// A healthy round after `after_failures` failed ones (below or above the threshold).
    Recovered { after_failures: u32 },
    /// The failed round that reached `failures_before_promotion`.
    ThresholdReached,
}

/// What one round did to the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Failed rounds in a row, this one included.
    pub consecutive_failures: u32,
    /// Set only when the state changed.
    pub transition: Option<Transition>,
    /// True while the count is at or above the threshold.
    pub threshold_reached: bool,
}

/// The consecutive-failure counter.
#[derive(Debug, Clone)]
pub struct Detector {
    threshold: u32,
    consecutive_failures: u32,
}

impl Detector {
    /// A counter that reports the threshold after `failures_before_promotion` (>= 1)
    /// failed rounds in a row.
    pub fn new(failures_before_promotion: u32) -> Self {
        Self {
            threshold: failures_before_promotion.max(1),
            consecutive_failures: 0,
        }
    }

    /// Failed rounds in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// A round that proves nothing either way (inconclusive, degraded): the count stays
    /// where it is, and nothing is reached.
    pub fn hold(&self) -> RoundOutcome {
        RoundOutcome {
            consecutive_failures: self.consecutive_failures,
            transition: None,
            threshold_reached: false,
        }
    }

    /// A round that proves the primary alive though its checks fail (degraded): the
    /// count starts again, quietly (the primary did not "recover"; its checks still
    /// fail).
    pub fn alive(&mut self) -> RoundOutcome {
        self.consecutive_failures = 0;
        self.hold()
    }

    /// Feeds one round's verdict.
    pub fn on_round(&mut self, round_ok: bool) -> RoundOutcome {
        let before = self.consecutive_failures;
        let transition = if round_ok {
            self.consecutive_failures = 0;
            (before > 0).then_some(Transition::Recovered {
                after_failures: before,
            })
        } else {
            self.consecutive_failures = before.saturating_add(1);
            if self.consecutive_failures == self.threshold {
                Some(Transition::ThresholdReached)
            } else if before == 0 {
                Some(Transition::FirstFailure)
            } else {
                None
            }
        };
        RoundOutcome {
            consecutive_failures: self.consecutive_failures,
            transition,
            threshold_reached: self.consecutive_failures >= self.threshold,
        }
    }
}

/// The replica as the daemon last saw it while the primary was healthy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationSeen {
    pub at: jiff::Timestamp,
    /// Both replication threads running, no error.
    pub replicating: bool,
    /// `Seconds_Behind_Master`, when the server reported one.
    pub lag_seconds: Option<u64>,
    /// A one-line summary (threads, position, lag) or the error reading it.
    pub detail: String,
}

/// The lag guard: may an automatic promotion go on, given the replica's last state seen
/// while the primary was healthy? `Err` says why not, with the figures.
pub fn lag_guard(
    seen: Option<&ReplicationSeen>,
    max_lag: std::time::Duration,
) -> Result<(), String> {
    let Some(seen) = seen else {
        return Err("the replica's state was never read while the primary was healthy since this daemon started, so whether it has the primary's last transactions is unknown (a reading from before proves nothing: the standby may have been down while the primary took writes)".to_string());
    };
    if !seen.replicating {
        return Err(format!(
            "the replica was not replicating when last seen with a healthy primary ({}): {}",
            seen.at, seen.detail
        ));
    }
    match seen.lag_seconds {
        Some(lag) if lag > max_lag.as_secs() => Err(format!(
            "the replica was {lag} s behind the primary at {} (max_lag {} s): {}",
            seen.at,
            max_lag.as_secs(),
            seen.detail
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_guard_refuses_a_stopped_lagging_or_unknown_replica() {
        let max = std::time::Duration::from_secs(30);
        let seen = |replicating, lag| ReplicationSeen {
            at: jiff::Timestamp::UNIX_EPOCH,
            replicating,
            lag_seconds: lag,
            detail: "IO thread Yes".into(),
        };
        assert!(lag_guard(Some(&seen(true, Some(0))), max).is_ok());
        assert!(lag_guard(Some(&seen(true, Some(30))), max).is_ok());
        let lagging = lag_guard(Some(&seen(true, Some(31))), max).unwrap_err();
        assert!(
            lagging.contains("31 s behind") && lagging.contains("max_lag 30 s"),
            "{lagging}"
        );
        assert!(
            lag_guard(Some(&seen(false, None)), max)
                .unwrap_err()
                .contains("not replicating")
        );
        assert!(lag_guard(None, max).unwrap_err().contains("never read"));
    }

    /// Runs a sequence of verdicts ('.' ok, 'x' failed) and returns the outcomes.
    fn run(threshold: u32, rounds: &str) -> Vec<RoundOutcome> {
        let mut detector = Detector::new(threshold);
        rounds
            .chars()
            .map(|c| detector.on_round(c == '.'))
            .collect()
    }

    #[test]
    fn threshold_is_reached_on_the_nth_consecutive_failure_and_logged_once() {
        let outcomes = run(3, "xxxxx");
        let reached: Vec<bool> = outcomes.iter().map(|o| o.threshold_reached).collect();
        assert_eq!(reached, [false, false, true, true, true]);
        let transitions: Vec<_> = outcomes.iter().map(|o| o.transition).collect();
        assert_eq!(
            transitions,
            [
                Some(Transition::FirstFailure),
                None,
                Some(Transition::ThresholdReached),
                None,
                None
            ]
        );
    }

    #[test]
    fn one_good_round_resets_the_count() {
        let outcomes = run(3, "xx.xx.xx.");
        assert!(outcomes.iter().all(|o| !o.threshold_reached));
        assert_eq!(
            outcomes[2].transition,
            Some(Transition::Recovered { after_failures: 2 })
        );
        assert_eq!(outcomes[3].consecutive_failures, 1);
        assert_eq!(outcomes[3].transition, Some(Transition::FirstFailure));
    }

    #[test]
    fn threshold_of_one_fires_on_the_first_failure() {
        let outcomes = run(1, "x");
        assert!(outcomes[0].threshold_reached);
        assert_eq!(outcomes[0].transition, Some(Transition::ThresholdReached));
    }

    #[test]
    fn healthy_rounds_log_nothing() {
        assert!(
            run(5, ".....")
                .iter()
                .all(|o| o.transition.is_none() && o.consecutive_failures == 0)
        );
    }

    #[test]
    fn zero_threshold_is_treated_as_one() {
        assert!(run(0, "x")[0].threshold_reached);
    }
}

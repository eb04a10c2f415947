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
//! Only a failed round grows the failure count; inconclusive and degraded rounds leave
//! it where it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

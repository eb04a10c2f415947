//! What `status` shows, and the live state the daemon leaves for it each round.
//!
//! `status` runs in its own process, so everything it shows comes from `state_dir`: the
//! daemon's live state (written each round), the promotion journal and the pause marker.
//! [`StatusReport::gather`] combines them; the state is derived, never stored twice: a
//! journal decides `promoting` / `promoted` / `halted`, then a pause, then the daemon's
//! own view. Every state name comes from [`State`].

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::detect::ReplicationSeen;
use crate::journal::{Journal, Outcome, PrimarySeen};
use crate::probe::{RoundReport, human_duration};
use crate::state::State;
use crate::store::StateDir;
use crate::verdict::Verdict;
use crate::witness::Said;

/// The daemon's view, written to `state_dir` after every round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveState {
    /// What the daemon decided last.
    pub state: State,
    pub consecutive_failures: u32,
    pub failures_before_promotion: u32,
    pub last_probe: Option<RoundReport>,
    pub updated_at: Timestamp,
    /// The daemon's process id.
    pub pid: u32,
    /// The primary's GTID position when a `mysql` check last read it.
    #[serde(default)]
    pub primary_last_seen: Option<PrimarySeen>,
    /// The replica's state when last read with a healthy primary (for the lag guard).
    #[serde(default)]
    pub replication_seen: Option<ReplicationSeen>,
    /// Why the lag guard holds automatic promotion, while it does.
    #[serde(default)]
    pub held: Option<String>,
    /// The last round's verdict, with its reason.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// An operator's pause of automatic promotion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pause {
    pub since: Timestamp,
    /// `None`: until `resume`.
    pub until: Option<Timestamp>,
    pub reason: Option<String>,
}

impl Pause {
    /// Whether the pause still holds at `now`.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub state: State,
    pub consecutive_failures: u32,
    pub failures_before_promotion: u32,
    pub last_probe: Option<RoundReport>,
    pub promotion: Option<Journal>,
    pub paused: Option<Pause>,
    /// Why automatic promotion is held by the lag guard (state `halted`, no journal).
    pub held: Option<String>,
    /// The replica's state when last read with a healthy primary.
    pub replication_seen: Option<ReplicationSeen>,
    /// The last round's verdict (`ok`, `failed`, `inconclusive`, `degraded`) and why.
    pub verdict: Option<Verdict>,
    /// When the daemon last wrote its live state; `None` if it never ran here.
    pub daemon_updated_at: Option<Timestamp>,
    pub daemon_pid: Option<u32>,
}

impl StatusReport {
    pub fn gather(
        store: &StateDir,
        failures_before_promotion: u32,
        now: Timestamp,
    ) -> anyhow::Result<Self> {
        let live: Option<LiveState> = store.load_live()?;
        let journal = store.load_journal()?;
        let pause: Option<Pause> = store.load_pause()?.filter(|p: &Pause| p.active_at(now));
        let state = derive_state(journal.as_ref(), pause.as_ref(), live.as_ref());
        Ok(Self {
            state,
            consecutive_failures: live.as_ref().map_or(0, |l| l.consecutive_failures),
            failures_before_promotion: live
                .as_ref()
                .map_or(failures_before_promotion, |l| l.failures_before_promotion),
            last_probe: live.as_ref().and_then(|l| l.last_probe.clone()),
            promotion: journal,
            paused: pause,
            held: live.as_ref().and_then(|l| l.held.clone()),
            replication_seen: live.as_ref().and_then(|l| l.replication_seen.clone()),
            verdict: live.as_ref().and_then(|l| l.verdict.clone()),
            daemon_updated_at: live.as_ref().map(|l| l.updated_at),
            daemon_pid: live.as_ref().map(|l| l.pid),
        })
    }

    /// The text form of `status`.
    pub fn render(&self) -> String {
        let mut out = format!("state: {}\n", self.state);
        out.push_str(&format!(
            "consecutive failures: {} of {}\n",
            self.consecutive_failures, self.failures_before_promotion
        ));
        match (&self.daemon_updated_at, &self.daemon_pid) {
            (Some(at), Some(pid)) => out.push_str(&format!(
                "daemon: pid {pid}, last wrote its state at {at}\n"
            )),
            _ => out.push_str("daemon: no live state yet (has `failover-watchdog run` started?)\n"),
        }
        if let Some(pause) = &self.paused {
            out.push_str(&format!(
                "paused since {} until {}{}\n",
                pause.since,
                pause.until.map_or("resume".to_string(), |u| u.to_string()),
                pause
                    .reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(": {r}"))
            ));
        }
        match &self.verdict {
            Some(Verdict::Ok) | None => {}
            Some(
                verdict @ (Verdict::Failed(why)
                | Verdict::Inconclusive(why)
                | Verdict::Degraded(why)),
            ) => {
                out.push_str(&format!("last verdict: {}: {why}\n", verdict.name()));
            }
        }
        if let Some(held) = &self.held {
            out.push_str(&format!(
                "automatic promotion HELD by the lag guard: {held}\n"
            ));
        }
        if let Some(seen) = &self.replication_seen {
            out.push_str(&format!(
                "replica when last seen with a healthy primary ({}): {}\n",
                seen.at, seen.detail
            ));
        }
        match &self.last_probe {
            None => out.push_str("last probe: none yet\n"),
            Some(round) => {
                out.push_str(&format!(
                    "last probe: {} {}\n",
                    round.at,
                    if round.ok { "ok" } else { "FAILED" }
                ));
                for check in &round.checks {
                    out.push_str(&format!(
                        "  {:<5} {:<40} {:<6} {} ({} ms)\n",
                        check.kind,
                        check.target,
                        if check.ok { "ok" } else { "FAILED" },
                        check.detail,
                        check.duration_ms
                    ));
                }
                for witness in &round.witnesses {
                    out.push_str(&format!(
                        "  witness {:<38} {:<6} {} ({} ms)\n",
                        witness.name,
                        match witness.said {
                            Said::Down => "DOWN",
                            Said::Up => "UP",
                            Said::NoAnswer => "silent",
                        },
                        witness.detail,
                        witness.duration_ms
                    ));
                }
            }
        }
        match &self.promotion {
            None => out.push_str("promotion: none\n"),
            Some(j) => {
                out.push_str(&format!(
                    "promotion: {}, trigger {}, started {}{}\n  why: {}\n",
                    derive_state(Some(j), None, None),
                    j.trigger.as_str(),
                    j.started_at,
                    j.finished_at
                        .map_or(String::new(), |f| format!(", finished {f}")),
                    j.reason
                ));
                for step in &j.steps {
                    let took = j
                        .step_duration(step.name)
                        .map_or(String::new(), |d| format!(" in {}", human_duration(d)));
                    out.push_str(&format!(
                        "  {:<14} {:<8}{took} {}{}\n",
                        step.name.as_str(),
                        step.status.as_str(),
                        step.detail.as_deref().unwrap_or(""),
                        step.error
                            .as_ref()
                            .map_or(String::new(), |e| format!("ERROR: {e}"))
                    ));
                }
                if let Some(g) = &j.gtid {
                    out.push_str(&format!(
                        "  gtid: received {}, applied {}, current {}\n",
                        g.received, g.applied, g.current
                    ));
                }
                if let Some(accounting) = j.accounting() {
                    out.push_str(&format!("  data: {accounting}\n"));
                }
            }
        }
        out
    }
}

/// The state, from the most decisive source down.
pub fn derive_state(
    journal: Option<&Journal>,
    pause: Option<&Pause>,
    live: Option<&LiveState>,
) -> State {
    match journal.map(|j| j.outcome) {
        Some(Outcome::Running) => State::Promoting,
        Some(Outcome::Promoted) => State::Promoted,
        Some(Outcome::Halted) => State::Halted,
        None if pause.is_some() => State::Paused,
        // Without a journal, the daemon's own view; a promotion it speaks of is gone
        // (archived by `reset`).
        None => live
            .map(|l| l.state)
            .filter(|s| {
                matches!(
                    s,
                    State::Monitoring
                        | State::Suspect
                        | State::Halted
                        | State::Isolated
                        | State::Degraded
                )
            })
            .unwrap_or(State::Monitoring),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Trigger;

    fn live(state: State) -> LiveState {
        LiveState {
            state,
            consecutive_failures: 2,
            failures_before_promotion: 5,
            last_probe: None,
            updated_at: Timestamp::UNIX_EPOCH,
            pid: 1,
            primary_last_seen: None,
            replication_seen: None,
            held: None,
            verdict: None,
        }
    }

    #[test]
    fn the_journal_outranks_a_pause_which_outranks_the_live_state() {
        let mut journal = Journal::new("n", Trigger::Manual, "r", Timestamp::UNIX_EPOCH);
        let pause = Pause {
            since: Timestamp::UNIX_EPOCH,
            until: None,
            reason: None,
        };
        assert_eq!(
            derive_state(None, None, Some(&live(State::Suspect))),
            State::Suspect
        );
        assert_eq!(
            derive_state(None, Some(&pause), Some(&live(State::Suspect))),
            State::Paused
        );
        assert_eq!(
            derive_state(Some(&journal), Some(&pause), None),
            State::Promoting
        );
        journal.outcome = Outcome::Halted;
        assert_eq!(derive_state(Some(&journal), None, None), State::Halted);
        journal.outcome = Outcome::Promoted;
        assert_eq!(
            derive_state(Some(&journal), None, Some(&live(State::Monitoring))),
            State::Promoted
        );
        assert_eq!(derive_state(None, None, None), State::Monitoring);
        // A live state that speaks of a promotion the journal no longer has.
        assert_eq!(
            derive_state(None, None, Some(&live(State::Promoted))),
            State::Monitoring
        );
    }

    #[test]
    fn a_timed_pause_ends_at_its_time() {
        let t = |s| Timestamp::from_second(s).unwrap();
        let pause = Pause {
            since: t(0),
            until: Some(t(100)),
            reason: Some("maintenance".into()),
        };
        assert!(pause.active_at(t(99)));
        assert!(!pause.active_at(t(100)));
    }
}

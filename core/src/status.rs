//! What `status` shows, and the live state the daemon leaves for it each round.
//!
//! `status` runs in its own process, so everything it shows comes from `state_dir`: the
//! daemon's live state (written each round), the promotion journal and the pause marker.
//! [`StatusReport::gather`] combines them; the state is derived, never stored twice: a
//! journal decides `promoting` / `promoted` / `halted`, then a pause, then the daemon's
//! own view. Every state name comes from [`State`].
//!
//! The live state is what the daemon last wrote, not proof that it still runs: `status`
//! also says whether its pid is a running process (asked by the binary crate's
//! `status::gather`) and whether its last round is stale ([`stale_after`]). What to say
//! from that is decided here, by [`StatusReport::derive`].

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cadence::CadenceShown;
use crate::detect::ReplicationSeen;
use crate::journal::{Journal, Outcome, PrimarySeen, RejoinJournal};
use crate::report::RoundReport;
use crate::role::Role;
use crate::state::State;
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
    /// This host's role as its own database said in the last round (only with `[peer]`).
    #[serde(default)]
    pub role: Option<Role>,
    /// The cadence of rounds in force and the detection window it gives.
    #[serde(default)]
    pub cadence: Option<CadenceShown>,
}

impl LiveState {
    /// A daemon's view before its first round: `state`, nothing read yet.
    pub fn fresh(state: State, failures_before_promotion: u32, pid: u32, at: Timestamp) -> Self {
        LiveState {
            state,
            consecutive_failures: 0,
            failures_before_promotion,
            last_probe: None,
            updated_at: at,
            pid,
            primary_last_seen: None,
            replication_seen: None,
            held: None,
            verdict: None,
            role: None,
            cadence: None,
        }
    }
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

/// The daemon's last round may be this many intervals (plus a probe timeout) old before
/// `status` and the smoke test call it stale.
pub const STALE_ROUNDS: u32 = 3;

/// How old the daemon's live state may be before it is stale: [`STALE_ROUNDS`] intervals
/// plus a probe timeout (a round takes at most that).
pub fn stale_after(interval: Duration, timeout: Duration) -> Duration {
    interval * STALE_ROUNDS + timeout
}

/// What `status` goes by: the files in `state_dir` and whether the live state's pid runs.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub live: Option<LiveState>,
    pub journal: Option<Journal>,
    pub pause: Option<Pause>,
    /// Whether the live state's pid is a running process.
    pub pid_running: bool,
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub state: State,
    /// This host's role in its pair (`primary`, `standby`, `unknown`), as the daemon
    /// last read it from its own database; `unknown` without `[peer]` or before a round.
    pub role: Role,
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
    /// Whether `daemon_pid` is a running process: `false` when the daemon exited (or
    /// never ran here), whatever `state` says.
    pub daemon_running: bool,
    /// Whether the live state is older than [`stale_after`]: the daemon does no rounds.
    pub daemon_stale: bool,
    /// The cadence of rounds in force (calm or suspect, every how long, since when and
    /// why) and the detection window it gives, as the daemon last saved it.
    pub cadence: Option<CadenceShown>,
    /// The last `rejoin` on this host, if any.
    pub rejoin: Option<RejoinJournal>,
    /// How old the live state may be, for the text form.
    #[serde(skip)]
    stale_after: Duration,
}

impl StatusReport {
    /// What `status` says, from what was read at `now`. No I/O.
    pub fn derive(
        observed: Observed,
        failures_before_promotion: u32,
        stale_after: Duration,
        now: Timestamp,
    ) -> Self {
        let Observed {
            live,
            journal,
            pause,
            pid_running,
        } = observed;
        let pause = pause.filter(|p| p.active_at(now));
        let state = derive_state(journal.as_ref(), pause.as_ref(), live.as_ref());
        let daemon_stale = live.as_ref().is_some_and(|l| {
            Duration::try_from(now.duration_since(l.updated_at)).is_ok_and(|age| age > stale_after)
        });
        Self {
            state,
            role: live.as_ref().and_then(|l| l.role).unwrap_or(Role::Unknown),
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
            daemon_running: live.is_some() && pid_running,
            daemon_stale,
            cadence: live.as_ref().and_then(|l| l.cadence.clone()),
            rejoin: None,
            stale_after,
        }
    }

    /// The text form of `status`.
    pub fn render(&self) -> String {
        let mut out = format!("state: {}\nrole: {}\n", self.state, self.role);
        out.push_str(&format!(
            "consecutive failures: {} of {}\n",
            self.consecutive_failures, self.failures_before_promotion
        ));
        if let Some(cadence) = &self.cadence {
            self.render_cadence(cadence, &mut out);
        }
        match (&self.daemon_updated_at, &self.daemon_pid) {
            (Some(at), Some(pid)) if !self.daemon_running => out.push_str(&format!(
                "daemon: NOT RUNNING (pid {pid} exited; last wrote its state at {at}): nothing watches the primary; the state shown is the one it left\n"
            )),
            (Some(at), Some(pid)) if self.daemon_stale => out.push_str(&format!(
                "daemon: pid {pid}, last wrote its state at {at}: STALE, no round for longer than {} ({STALE_ROUNDS} intervals and a probe timeout): is it hung?\n",
                humantime::format_duration(self.stale_after)
            )),
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
            Some(round) => render_round(round, &mut out),
        }
        match &self.promotion {
            None => out.push_str("promotion: none\n"),
            Some(journal) => render_journal(journal, &mut out),
        }
        if let Some(rejoin) = &self.rejoin {
            out.push_str(&rejoin.render());
        }
        out
    }
}

impl StatusReport {
    /// The cadence in force and the detection window it gives.
    fn render_cadence(&self, cadence: &CadenceShown, out: &mut String) {
        let line = cadence.line(self.consecutive_failures, self.failures_before_promotion);
        match (&cadence.since, &cadence.why) {
            (Some(since), Some(why)) => {
                out.push_str(&format!("cadence: {line} (since {since}: {why})\n"));
            }
            _ => out.push_str(&format!("cadence: {line}\n")),
        }
        let watch = cadence.watch_seconds.map_or(String::new(), |every| {
            format!(
                "; between calm rounds the replica is read every {}",
                crate::cadence::short(std::time::Duration::from_secs_f64(every))
            )
        });
        out.push_str(&format!(
            "detection window: {}{watch}\n",
            cadence.window_line()
        ));
    }
}

/// The last round: each check, each witness's answer.
fn render_round(round: &RoundReport, out: &mut String) {
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

/// The promotion: why, each step, the GTID positions and what was lost or saved.
fn render_journal(j: &Journal, out: &mut String) {
    out.push_str(&format!(
        "promotion: {}, trigger {}, started {}{}\n  why: {}\n",
        derive_state(Some(j), None, None),
        j.record.trigger.as_str(),
        j.started_at,
        j.finished_at
            .map_or(String::new(), |f| format!(", finished {f}")),
        j.record.reason
    ));
    for step in &j.steps {
        out.push_str(&step.render_line(14));
    }
    if let Some(g) = &j.record.gtid {
        out.push_str(&format!(
            "  gtid: received {}, applied {}, current {}\n",
            g.received, g.applied, g.current
        ));
    }
    if let Some(accounting) = j.accounting() {
        out.push_str(&format!("  data: {accounting}\n"));
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
        Some(Outcome::Done) => State::Promoted,
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
                        | State::Serving
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
            consecutive_failures: 2,
            ..LiveState::fresh(state, 5, 1, Timestamp::UNIX_EPOCH)
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
        journal.outcome = Outcome::Done;
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

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    /// A report at `now` (seconds) of a daemon that last wrote at 1000, with an interval
    /// of 10 s and a timeout of 5 s: stale after 35 s.
    fn report(pid_running: bool, now: i64) -> StatusReport {
        let observed = Observed {
            live: Some(LiveState {
                pid: 812,
                updated_at: at(1000),
                ..live(State::Monitoring)
            }),
            pid_running,
            ..Observed::default()
        };
        StatusReport::derive(observed, 5, Duration::from_secs(35), at(now))
    }

    #[test]
    fn status_with_a_dead_pid_says_the_daemon_is_not_running() {
        let report = report(false, 1010);
        assert_eq!(report.state, State::Monitoring, "the state list is fixed");
        assert!(!report.daemon_running);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["daemon_running"], false);
        assert_eq!(json["daemon_pid"], 812);
        assert!(json.get("stale_after").is_none());
        let text = report.render();
        assert!(
            text.contains(
                "daemon: NOT RUNNING (pid 812 exited; last wrote its state at 1970-01-01T00:16:40Z)"
            ),
            "{text}"
        );
    }

    #[test]
    fn status_says_when_a_running_daemon_is_stale() {
        let fresh = report(true, 1035);
        assert!(fresh.daemon_running && !fresh.daemon_stale);
        assert!(
            fresh
                .render()
                .contains("daemon: pid 812, last wrote its state at 1970-01-01T00:16:40Z\n"),
            "{}",
            fresh.render()
        );
        let stale = report(true, 1036);
        assert!(stale.daemon_running && stale.daemon_stale);
        assert_eq!(serde_json::to_value(&stale).unwrap()["daemon_stale"], true);
        assert!(
            stale
                .render()
                .contains("STALE, no round for longer than 35s"),
            "{}",
            stale.render()
        );
    }

    #[test]
    fn without_a_live_state_no_daemon_runs_and_none_is_stale() {
        let report = StatusReport::derive(
            Observed {
                pid_running: true,
                ..Observed::default()
            },
            5,
            Duration::from_secs(35),
            at(1000),
        );
        assert!(!report.daemon_running && !report.daemon_stale);
        assert!(report.render().contains("daemon: no live state yet"));
    }

    #[test]
    fn status_shows_the_cadence_in_force_and_the_detection_window() {
        use crate::cadence::{Cadence, CadenceSettings};
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
        cadence.heard_period(Some(Duration::from_secs(5)));
        cadence.doubt(
            "the replica's IO thread lost the primary (Connecting)",
            Duration::ZERO,
            at(990),
        );
        let observed = Observed {
            live: Some(LiveState {
                updated_at: at(1000),
                cadence: Some(cadence.shown(Some(Duration::from_secs(15)))),
                ..live(State::Suspect)
            }),
            pid_running: true,
            ..Observed::default()
        };
        let report = StatusReport::derive(observed, 5, Duration::from_secs(200), at(1001));
        let text = report.render();
        assert!(
            text.contains(
                "cadence: suspect: re-probing every 5 s, 2 of 5 failed (since 1970-01-01T00:16:30Z: the replica's IO thread lost the primary (Connecting))\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "detection window: a dead primary within 21 s, a silent one within 52 s; between calm rounds the replica is read every 1 s\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["cadence"]["pace"], "suspect");
        assert_eq!(json["cadence"]["every_seconds"], 5.0);
        assert_eq!(json["cadence"]["interval_seconds"], 60.0);
        assert_eq!(json["cadence"]["suspect_interval_seconds"], 5.0);
        assert_eq!(json["cadence"]["watch_seconds"], 1.0);
        assert_eq!(json["cadence"]["detection_window"]["dead_seconds"], 21.0);
        assert_eq!(json["cadence"]["detection_window"]["silent_seconds"], 52.0);
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

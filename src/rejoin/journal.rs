//! The rejoin journal (`state_dir/rejoin.json`): the six steps of a `rejoin`, where each
//! stands, and the positions it found and reached. Pure: [`crate::store`] persists it
//! (atomically, like the promotion journal), [`crate::rejoin`] runs the steps.
//!
//! Its own type, not the promotion's [`crate::journal::Journal`]: the steps differ and
//! a rejoin never is a promotion. It shares [`StepStatus`] so both read the same way.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::journal::{StepRecord, StepStatus};
use crate::replica::display_gtid;

/// The version of the file's layout; another one is refused, naming the file.
pub const REJOIN_JOURNAL_VERSION: u32 = 1;

/// A step of `rejoin`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejoinStep {
    /// `systemctl stop` each `[apps] units`, in reverse order.
    StopApps,
    /// `SET GLOBAL read_only = ON`, read back.
    MakeReadOnly,
    /// Point this host's replication at the peer with GTID, and start it.
    Replicate,
    /// Wait until both threads run and the peer's position is applied.
    CatchUp,
    /// Archive this host's promotion journal, as `reset` does.
    ClearPromotion,
    /// The closing alert.
    Notify,
}

impl RejoinStep {
    pub const ALL: [RejoinStep; 6] = [
        RejoinStep::StopApps,
        RejoinStep::MakeReadOnly,
        RejoinStep::Replicate,
        RejoinStep::CatchUp,
        RejoinStep::ClearPromotion,
        RejoinStep::Notify,
    ];

    /// The name used in the journal, `status`, crash points and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RejoinStep::StopApps => "stop_apps",
            RejoinStep::MakeReadOnly => "make_read_only",
            RejoinStep::Replicate => "replicate",
            RejoinStep::CatchUp => "catch_up",
            RejoinStep::ClearPromotion => "clear_promotion",
            RejoinStep::Notify => "notify",
        }
    }
}

impl std::fmt::Display for RejoinStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the rejoin stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejoinOutcome {
    /// Under way, or killed: the next `rejoin` resumes it.
    Running,
    /// Every step done: this host is the peer's caught-up replica.
    Rejoined,
    /// A step failed; the next `rejoin` retries from it.
    Failed,
}

impl RejoinOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RejoinOutcome::Running => "running",
            RejoinOutcome::Rejoined => "rejoined",
            RejoinOutcome::Failed => "failed",
        }
    }
}

/// One step's record, kept as a promotion's are.
pub type RejoinStepRecord = StepRecord<RejoinStep>;

/// `state_dir/rejoin.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejoinJournal {
    pub version: u32,
    /// This host.
    pub node: String,
    /// The peer it rejoins (`[peer] name`).
    pub peer: String,
    /// The replication source it is pointed at, `host:port`.
    pub source: String,
    pub outcome: RejoinOutcome,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// This host's `@@gtid_current_pos` when the rejoin started.
    pub own_position: String,
    /// The peer's `@@gtid_binlog_pos` that `catch_up` waited for and reached.
    pub caught_up_to: Option<String>,
    pub steps: Vec<RejoinStepRecord>,
}

impl RejoinJournal {
    /// A new rejoin, every step pending.
    pub fn new(
        node: &str,
        peer: &str,
        source: &str,
        own_position: &str,
        now: Timestamp,
    ) -> RejoinJournal {
        RejoinJournal {
            version: REJOIN_JOURNAL_VERSION,
            node: node.to_string(),
            peer: peer.to_string(),
            source: source.to_string(),
            outcome: RejoinOutcome::Running,
            started_at: now,
            finished_at: None,
            own_position: own_position.to_string(),
            caught_up_to: None,
            steps: RejoinStep::ALL
                .into_iter()
                .map(RejoinStepRecord::pending)
                .collect(),
        }
    }

    /// Whether the file describes a rejoin: the six steps, once each, in order.
    pub fn validate(&self) -> Result<(), String> {
        let found: Vec<RejoinStep> = self.steps.iter().map(|s| s.name).collect();
        if found == RejoinStep::ALL {
            return Ok(());
        }
        let names = |steps: &[RejoinStep]| {
            steps
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "its steps are [{}], not [{}]",
            names(&found),
            names(&RejoinStep::ALL)
        ))
    }

    pub fn step(&self, name: RejoinStep) -> Option<&RejoinStepRecord> {
        self.steps.iter().find(|s| s.name == name)
    }

    fn step_mut(&mut self, name: RejoinStep) -> &mut RejoinStepRecord {
        // `validate` and `new` guarantee every step is there.
        let index = RejoinStep::ALL
            .iter()
            .position(|s| *s == name)
            .unwrap_or_default();
        &mut self.steps[index]
    }

    /// The step to run next: the first one not done (a failed one is retried). `None`
    /// once the rejoin is over.
    pub fn next_step(&self) -> Option<RejoinStep> {
        self.steps
            .iter()
            .find(|s| s.status != StepStatus::Done)
            .map(|s| s.name)
    }

    /// Takes up a failed or interrupted rejoin again.
    pub fn resume(&mut self) {
        self.outcome = RejoinOutcome::Running;
        self.finished_at = None;
    }

    pub fn begin(&mut self, name: RejoinStep, now: Timestamp) {
        self.step_mut(name).begin(now);
    }

    pub fn finish(&mut self, name: RejoinStep, detail: String, now: Timestamp) {
        self.step_mut(name).finish(detail, now);
        if self.next_step().is_none() {
            self.outcome = RejoinOutcome::Rejoined;
            self.finished_at = Some(now);
        }
    }

    pub fn fail(&mut self, name: RejoinStep, error: String, now: Timestamp) {
        self.step_mut(name).fail(error, now);
        self.outcome = RejoinOutcome::Failed;
        self.finished_at = Some(now);
    }

    /// How long a finished step took (its last attempt).
    pub fn step_duration(&self, name: RejoinStep) -> Option<Duration> {
        self.step(name)?.duration()
    }

    /// From the start to `now`, or to the end once it is over.
    pub fn took(&self, now: Timestamp) -> Duration {
        let end = self.finished_at.unwrap_or(now);
        Duration::try_from(end.duration_since(self.started_at)).unwrap_or_default()
    }

    /// The text form, as `status` and the command show it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "rejoin: {}, to {} ({}), started {}{}\n  position before: {}\n",
            self.outcome.as_str(),
            self.peer,
            self.source,
            self.started_at,
            self.finished_at
                .map_or(String::new(), |f| format!(", finished {f}")),
            display_gtid(&self.own_position),
        );
        for step in &self.steps {
            out.push_str(&step.render_line(16));
        }
        if let Some(reached) = &self.caught_up_to {
            out.push_str(&format!("  caught up to: {}\n", display_gtid(reached)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn steps_run_in_order_and_the_last_one_ends_the_rejoin() {
        let mut journal = RejoinJournal::new("a", "b", "h:1", "0-1-5", at(0));
        assert_eq!(journal.validate(), Ok(()));
        for (i, step) in RejoinStep::ALL.into_iter().enumerate() {
            assert_eq!(journal.next_step(), Some(step));
            journal.begin(step, at(i as i64));
            assert_eq!(journal.outcome, RejoinOutcome::Running);
            journal.finish(step, format!("did {step}"), at(i as i64 + 1));
        }
        assert_eq!(journal.next_step(), None);
        assert_eq!(journal.outcome, RejoinOutcome::Rejoined);
        assert_eq!(journal.took(at(100)), Duration::from_secs(6));
        assert_eq!(
            journal.step_duration(RejoinStep::CatchUp),
            Some(Duration::from_secs(1))
        );
        let text = journal.render();
        assert!(text.starts_with("rejoin: rejoined, to b (h:1)"), "{text}");
        assert!(
            text.contains("catch_up         done     in 1.0 s did catch_up"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_step_is_the_next_one_and_a_resume_retries_it() {
        let mut journal = RejoinJournal::new("a", "b", "h:1", "", at(0));
        journal.begin(RejoinStep::StopApps, at(0));
        journal.finish(RejoinStep::StopApps, "ok".into(), at(1));
        journal.begin(RejoinStep::MakeReadOnly, at(1));
        journal.fail(RejoinStep::MakeReadOnly, "denied".into(), at(2));
        assert_eq!(journal.outcome, RejoinOutcome::Failed);
        assert_eq!(journal.next_step(), Some(RejoinStep::MakeReadOnly));
        assert!(journal.render().contains("ERROR: denied"));
        journal.resume();
        journal.begin(RejoinStep::MakeReadOnly, at(3));
        let record = journal.step(RejoinStep::MakeReadOnly).unwrap();
        assert_eq!((record.attempts, record.error.clone()), (2, None));
        assert_eq!(journal.outcome, RejoinOutcome::Running);
    }

    #[test]
    fn a_journal_without_its_six_steps_does_not_validate() {
        let mut journal = RejoinJournal::new("a", "b", "h:1", "", at(0));
        journal.steps.pop();
        let problem = journal.validate().unwrap_err();
        assert!(problem.contains("clear_promotion]"), "{problem}");
    }
}

//! The rejoin journal (`state_dir/rejoin.json`): the six steps of a `rejoin`, where each
//! stands, and the positions it found and reached ([`RejoinRecord`]). The file keeps the
//! shape it always had ([`RejoinFile`]). Every failed step halts the rejoin; the next
//! `rejoin` retries it (a failed `catch_up` from `replicate`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::generic::{Journal, Outcome, Policy, Procedure, StepRecord};
use crate::gtid::GtidPosition;

/// The version of the file's layout; another one is refused, naming the file.
pub const REJOIN_JOURNAL_VERSION: u32 = 1;

/// The rejoin procedure, as its journal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {}

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

/// What a rejoin's journal records besides its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejoinRecord {
    /// The peer it rejoins (`[peer] name`).
    pub peer: String,
    /// The replication source it is pointed at, `host:port`.
    pub source: String,
    /// This host's `@@gtid_current_pos` when the rejoin started.
    pub own_position: GtidPosition,
    /// The peer's `@@gtid_binlog_pos` that `catch_up` waited for and reached.
    pub caught_up_to: Option<GtidPosition>,
}

/// How `outcome` reads in `rejoin.json`.
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

impl From<Outcome> for RejoinOutcome {
    fn from(outcome: Outcome) -> RejoinOutcome {
        match outcome {
            Outcome::Running => RejoinOutcome::Running,
            Outcome::Done => RejoinOutcome::Rejoined,
            Outcome::Halted => RejoinOutcome::Failed,
        }
    }
}

/// `rejoin.json`, field for field as it always was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejoinFile {
    pub version: u32,
    pub node: String,
    pub peer: String,
    pub source: String,
    pub outcome: RejoinOutcome,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub own_position: GtidPosition,
    pub caught_up_to: Option<GtidPosition>,
    pub steps: Vec<StepRecord<RejoinStep>>,
}

impl Procedure for Rejoin {
    type Step = RejoinStep;
    type Record = RejoinRecord;
    type File = RejoinFile;
    const NAME: &'static str = "rejoin";
    const FILE: &'static str = "rejoin.json";
    const VERSION: u32 = REJOIN_JOURNAL_VERSION;

    fn steps(_: &RejoinRecord) -> &'static [RejoinStep] {
        &RejoinStep::ALL
    }

    /// Every failure stops the rejoin where it is; the next `rejoin` retries the step.
    fn policy(_: &RejoinRecord, _: RejoinStep) -> Policy<RejoinStep> {
        Policy::Halt
    }

    /// A failed `catch_up` is retried from `replicate`: what made replication fail (a
    /// wrong replication password, a conflicting row) may have been fixed, and the
    /// channel must be set up and started again for the fix to count.
    fn retry_from(_: &RejoinRecord, failed: RejoinStep) -> RejoinStep {
        match failed {
            RejoinStep::CatchUp => RejoinStep::Replicate,
            step => step,
        }
    }

    fn to_file(j: &Journal<Rejoin>) -> RejoinFile {
        RejoinFile {
            version: j.version,
            node: j.node.clone(),
            peer: j.record.peer.clone(),
            source: j.record.source.clone(),
            outcome: j.outcome.into(),
            started_at: j.started_at,
            finished_at: j.finished_at,
            own_position: j.record.own_position.clone(),
            caught_up_to: j.record.caught_up_to.clone(),
            steps: j.steps.clone(),
        }
    }

    fn from_file(f: RejoinFile) -> Journal<Rejoin> {
        Journal {
            version: f.version,
            node: f.node,
            started_at: f.started_at,
            finished_at: f.finished_at,
            outcome: match f.outcome {
                RejoinOutcome::Running => Outcome::Running,
                RejoinOutcome::Rejoined => Outcome::Done,
                RejoinOutcome::Failed => Outcome::Halted,
            },
            steps: f.steps,
            record: RejoinRecord {
                peer: f.peer,
                source: f.source,
                own_position: f.own_position,
                caught_up_to: f.caught_up_to,
            },
        }
    }
}

impl Journal<Rejoin> {
    /// A new rejoin of this host (`node`) to `peer` at `source`, every step pending.
    pub fn rejoin(
        node: &str,
        peer: &str,
        source: &str,
        own_position: GtidPosition,
        now: Timestamp,
    ) -> Journal<Rejoin> {
        let record = RejoinRecord {
            peer: peer.to_string(),
            source: source.to_string(),
            own_position,
            caught_up_to: None,
        };
        Journal::start(node, record, now)
    }

    /// The text form, as `status` and the command show it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "rejoin: {}, to {} ({}), started {}{}\n  position before: {}\n",
            RejoinOutcome::from(self.outcome).as_str(),
            self.record.peer,
            self.record.source,
            self.started_at,
            self.finished_at
                .map_or(String::new(), |f| format!(", finished {f}")),
            self.record.own_position,
        );
        for step in &self.steps {
            out.push_str(&step.render_line(16));
        }
        if let Some(reached) = &self.record.caught_up_to {
            out.push_str(&format!("  caught up to: {reached}\n"));
        }
        out
    }
}

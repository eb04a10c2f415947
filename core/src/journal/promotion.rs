//! The promotion journal (`promotion.json`): a promotion's five steps, or a planned
//! switchover's eight ([`StepName::for_trigger`]), and what the promotion records
//! besides them ([`PromotionRecord`]: why it started, the GTID positions, the DNS
//! changes, the fence, a switchover's drill record). The file keeps the shape it always
//! had ([`PromotionFile`]). Pure data.
//!
//! What a failed step means ([`Promotion::policy`]): a switchover that cannot fence or
//! catch up undoes the fence (nothing has changed here yet); a failed `rejoin_peer` goes
//! on (DNS has moved already; `rejoin` fixes the old primary); a failed closing alert
//! leaves the promotion complete (it serves); every other failure halts, so DNS never
//! moves to a standby whose database is not writable.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::generic::{Journal, Outcome, Policy, Procedure, StepRecord};
use crate::gtid::GtidPosition;

/// The journal format version; a journal with another version is refused, not guessed at.
pub const JOURNAL_VERSION: u32 = 1;

/// The promotion procedure (automatic, `--promote-now`, or a switchover), as its journal
/// sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {}

/// The steps of a promotion or a switchover, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// Switchover only: the primary made read-only, its writes drained, its clients cut,
    /// its final position read.
    FencePrimary,
    /// Switchover only: wait until this host has applied the fenced primary's final
    /// position; when it cannot, the fence is undone and the switchover abandoned.
    CatchUp,
    /// Stop the replica once everything it received is applied.
    StopReplica,
    /// `SET GLOBAL read_only = OFF`, read back.
    MakeWritable,
    /// `systemctl start` each application unit, in order.
    StartApps,
    /// Point every DNS record at the standby.
    UpdateDns,
    /// Switchover only: the old primary replicates from this host, confirmed. A
    /// failure does not halt (DNS has moved already): `notify` says to run `rejoin`.
    RejoinPeer,
    /// The closing alert.
    Notify,
}

impl StepName {
    /// A promotion's steps (automatic or `--promote-now`), in order.
    pub const PROMOTION: [StepName; 5] = [
        StepName::StopReplica,
        StepName::MakeWritable,
        StepName::StartApps,
        StepName::UpdateDns,
        StepName::Notify,
    ];

    /// A switchover's steps: the promotion's, between fencing and catching up first and
    /// rejoining the old primary last.
    pub const SWITCHOVER: [StepName; 8] = [
        StepName::FencePrimary,
        StepName::CatchUp,
        StepName::StopReplica,
        StepName::MakeWritable,
        StepName::StartApps,
        StepName::UpdateDns,
        StepName::RejoinPeer,
        StepName::Notify,
    ];

    /// The steps a journal started by `trigger` has, in order.
    pub fn for_trigger(trigger: Trigger) -> &'static [StepName] {
        match trigger {
            Trigger::Automatic | Trigger::Manual => &Self::PROMOTION,
            Trigger::Switchover => &Self::SWITCHOVER,
        }
    }

    /// The name used in the journal, `status` and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::FencePrimary => "fence_primary",
            StepName::CatchUp => "catch_up",
            StepName::RejoinPeer => "rejoin_peer",
            StepName::StopReplica => "stop_replica",
            StepName::MakeWritable => "make_writable",
            StepName::StartApps => "start_apps",
            StepName::UpdateDns => "update_dns",
            StepName::Notify => "notify",
        }
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What started the promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The daemon, after `failures_before_promotion` failed rounds.
    Automatic,
    /// An operator, with `--promote-now`.
    Manual,
    /// An operator, with `switchover`: planned, the primary fenced and caught up first.
    Switchover,
}

impl Trigger {
    /// The name used in the journal and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Automatic => "automatic",
            Trigger::Manual => "manual",
            Trigger::Switchover => "switchover",
        }
    }
}

/// The replica's GTID positions as `stop_replica` found and left them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtidPositions {
    /// `Gtid_IO_Pos` once the IO thread stopped: everything received from the primary.
    pub received: GtidPosition,
    /// `@@gtid_slave_pos` once applied: everything the standby executed from the primary.
    pub applied: GtidPosition,
    /// `@@gtid_current_pos` after the replica was stopped.
    pub current: GtidPosition,
}

impl GtidPositions {
    /// What was lost or saved, in words: whether everything received was applied, and
    /// whether the standby had received what the primary had when it was last seen.
    pub fn accounting(&self, primary_last_seen: Option<&PrimarySeen>) -> String {
        let applied = if self.applied.covers(&self.received) {
            format!("everything received ({}) was applied", self.received)
        } else {
            format!(
                "received {} but applied only {}",
                self.received, self.applied
            )
        };
        let seen = match primary_last_seen {
            None => "the primary's position was never read (no mysql check answered): whether it had more cannot be told".to_string(),
            Some(seen) if self.received.covers(&seen.gtid) => format!(
                "the primary's last position seen ({} at {}) was received: nothing it had then was lost",
                seen.gtid, seen.at
            ),
            Some(seen) => format!(
                "the primary had {} at {} but the standby received only {}: those transactions may exist only on the old primary (`rejoin` there names them before it changes anything)",
                seen.gtid, seen.at, self.received
            ),
        };
        format!("{applied}; {seen}")
    }
}

/// What fencing the old primary did (in `make_writable`, before `read_only = OFF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRecord {
    /// What happened to the old primary's database.
    pub database: String,
    /// What the `fence_command` did, if one is configured.
    pub command: Option<String>,
    /// False when something that was tried failed.
    pub ok: bool,
}

impl FenceRecord {
    /// One line for the step's detail and alerts.
    pub fn summary(&self) -> String {
        match &self.command {
            Some(command) => format!("{}; {command}", self.database),
            None => self.database.clone(),
        }
    }
}

/// The primary's GTID position as the standby last read it, while it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimarySeen {
    /// The primary's `@@gtid_binlog_pos`.
    pub gtid: GtidPosition,
    pub at: Timestamp,
}

/// One DNS record's change, kept for the failback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsChange {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub zone_id: String,
    pub record_id: String,
    /// What it pointed to before (the old primary's address, for failback).
    pub previous_content: String,
    pub content: String,
}

/// A switchover's drill record: when the primary was fenced and at which position,
/// when this host had applied it, took writes and had DNS, and whether anything was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRecord {
    /// When `read_only = ON` was sent to the primary: writes are refused from here.
    pub fenced_at: Option<Timestamp>,
    /// The primary's `@@gtid_binlog_pos` once fenced: nothing commits after it.
    pub final_position: Option<GtidPosition>,
    /// Client connections ended on the primary after its writes drained.
    pub killed_connections: usize,
    /// When this host had applied `final_position`.
    pub caught_up_at: Option<Timestamp>,
    /// This host's `@@gtid_slave_pos` once caught up.
    pub applied_position: Option<GtidPosition>,
    /// When `make_writable` finished: writes are taken again, here.
    pub writable_at: Option<Timestamp>,
    /// When `update_dns` finished: every record points here.
    pub dns_at: Option<Timestamp>,
    /// Whether a transaction of the primary is missing here: `Some(false)` once the
    /// applied position covers the final one.
    pub lost: Option<bool>,
}

impl SwitchoverRecord {
    /// How long the database refused writes: fence to writable.
    pub fn writes_refused(&self) -> Option<std::time::Duration> {
        span(self.fenced_at?, self.writable_at?)
    }

    /// How long until DNS pointed here: fence to DNS.
    pub fn dns_after(&self) -> Option<std::time::Duration> {
        span(self.fenced_at?, self.dns_at?)
    }

    /// The drill in one line, for `status`, the closing alert and the command's output.
    pub fn summary(&self) -> String {
        let took = |d: Option<std::time::Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.3} s", d.as_secs_f64()))
        };
        let position = |p: &Option<GtidPosition>| {
            p.as_ref()
                .map_or("(not read)".to_string(), GtidPosition::to_string)
        };
        let lost = match self.lost {
            Some(false) => "nothing lost",
            Some(true) => "TRANSACTIONS MISSING here",
            None => "loss not yet known",
        };
        format!(
            "writes refused for {} (fence to writable), DNS here after {}; primary's final position {}, applied here {}: {lost}",
            took(self.writes_refused()),
            took(self.dns_after()),
            position(&self.final_position),
            position(&self.applied_position),
        )
    }
}

fn span(from: Timestamp, to: Timestamp) -> Option<std::time::Duration> {
    std::time::Duration::try_from(to.duration_since(from)).ok()
}

/// What a promotion's journal records besides its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionRecord {
    pub trigger: Trigger,
    /// Why the promotion started, in words (failed checks, or "requested by operator").
    pub reason: String,
    pub gtid: Option<GtidPositions>,
    pub dns_changes: Vec<DnsChange>,
    /// Where the primary was when last seen, for the data-loss accounting.
    pub primary_last_seen: Option<PrimarySeen>,
    /// What fencing the old primary did.
    pub fence: Option<FenceRecord>,
    /// A switchover's drill record; `None` for a promotion.
    pub switchover: Option<SwitchoverRecord>,
}

impl PromotionRecord {
    /// A new promotion's record: why, and nothing learned yet.
    pub fn new(trigger: Trigger, reason: &str) -> PromotionRecord {
        PromotionRecord {
            trigger,
            reason: reason.to_string(),
            gtid: None,
            dns_changes: Vec::new(),
            primary_last_seen: None,
            fence: None,
            switchover: (trigger == Trigger::Switchover).then(SwitchoverRecord::default),
        }
    }
}

/// How `outcome` reads in `promotion.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionOutcome {
    /// Steps are still to run (or a process running them was killed).
    Running,
    /// Every step up to `update_dns` is done: the standby serves.
    Promoted,
    /// A step failed; later steps were left undone.
    Halted,
}

/// `promotion.json`, field for field as it always was.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionFile {
    pub version: u32,
    pub node: String,
    pub trigger: Trigger,
    pub reason: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: PromotionOutcome,
    pub steps: Vec<StepRecord<StepName>>,
    pub gtid: Option<GtidPositions>,
    #[serde(default)]
    pub dns_changes: Vec<DnsChange>,
    #[serde(default)]
    pub primary_last_seen: Option<PrimarySeen>,
    #[serde(default)]
    pub fence: Option<FenceRecord>,
    #[serde(default)]
    pub switchover: Option<SwitchoverRecord>,
}

impl Procedure for Promotion {
    type Step = StepName;
    type Record = PromotionRecord;
    type File = PromotionFile;
    const NAME: &'static str = "promotion";
    const FILE: &'static str = "promotion.json";
    const VERSION: u32 = JOURNAL_VERSION;

    fn steps(record: &PromotionRecord) -> &'static [StepName] {
        StepName::for_trigger(record.trigger)
    }

    fn kind(record: &PromotionRecord) -> &'static str {
        record.trigger.as_str()
    }

    fn policy(_: &PromotionRecord, step: StepName) -> Policy<StepName> {
        match step {
            StepName::FencePrimary | StepName::CatchUp => Policy::Undo(&[StepName::FencePrimary]),
            StepName::RejoinPeer => Policy::GoOn,
            StepName::Notify => Policy::Complete,
            StepName::StopReplica
            | StepName::MakeWritable
            | StepName::StartApps
            | StepName::UpdateDns => Policy::Halt,
        }
    }

    fn to_file(j: &Journal<Promotion>) -> PromotionFile {
        let r = j.record.clone();
        PromotionFile {
            version: j.version,
            node: j.node.clone(),
            trigger: r.trigger,
            reason: r.reason,
            started_at: j.started_at,
            finished_at: j.finished_at,
            outcome: match j.outcome {
                Outcome::Running => PromotionOutcome::Running,
                Outcome::Done => PromotionOutcome::Promoted,
                Outcome::Halted => PromotionOutcome::Halted,
            },
            steps: j.steps.clone(),
            gtid: r.gtid,
            dns_changes: r.dns_changes,
            primary_last_seen: r.primary_last_seen,
            fence: r.fence,
            switchover: r.switchover,
        }
    }

    fn from_file(f: PromotionFile) -> Journal<Promotion> {
        Journal {
            version: f.version,
            node: f.node,
            started_at: f.started_at,
            finished_at: f.finished_at,
            outcome: match f.outcome {
                PromotionOutcome::Running => Outcome::Running,
                PromotionOutcome::Promoted => Outcome::Done,
                PromotionOutcome::Halted => Outcome::Halted,
            },
            steps: f.steps,
            record: PromotionRecord {
                trigger: f.trigger,
                reason: f.reason,
                gtid: f.gtid,
                dns_changes: f.dns_changes,
                primary_last_seen: f.primary_last_seen,
                fence: f.fence,
                switchover: f.switchover,
            },
        }
    }

    /// A switchover's drill record takes the times writes and DNS came back here.
    fn on_finish(record: &mut PromotionRecord, step: StepName, now: Timestamp) {
        if let Some(drill) = &mut record.switchover {
            match step {
                StepName::MakeWritable => drill.writable_at = Some(now),
                StepName::UpdateDns => drill.dns_at = Some(now),
                _ => {}
            }
        }
    }
}

impl Journal<Promotion> {
    /// A new promotion (or switchover) with every step of its trigger pending.
    pub fn new(node: &str, trigger: Trigger, reason: &str, now: Timestamp) -> Self {
        Journal::start(node, PromotionRecord::new(trigger, reason), now)
    }

    /// The trigger, for the many readers that branch on it.
    pub fn trigger(&self) -> Trigger {
        self.record.trigger
    }

    /// The data-loss accounting, once `stop_replica` has recorded the positions.
    pub fn accounting(&self) -> Option<String> {
        self.record
            .gtid
            .as_ref()
            .map(|g| g.accounting(self.record.primary_last_seen.as_ref()))
    }

    /// Whether a switchover's `rejoin_peer` failed: the old primary needs `rejoin`.
    pub fn peer_not_rejoined(&self) -> bool {
        self.step(StepName::RejoinPeer)
            .is_some_and(|s| s.status == super::generic::StepStatus::Failed)
    }
}

//! The promotion journal: what a promotion has done, step by step. Pure data.
//!
//! The journal is the single source of truth for a promotion. The driver
//! ([`crate::promote`]) asks it for the [`Journal::next_step`], marks the step
//! [`begin`](Journal::begin) / [`finish`](Journal::finish) / [`fail`](Journal::fail),
//! and persists it (write, fsync, rename: [`crate::store`]) after every change. Because
//! a step is only ever skipped when the journal says `done`, a promotion that was killed
//! resumes at the step it was in and never runs a finished step twice.
//!
//! A planned switchover ([`Trigger::Switchover`]) is journalled the same way, with its
//! own steps around the promotion's ([`StepName::for_trigger`]) and its drill record
//! ([`SwitchoverRecord`]).
//!
//! Nothing here does I/O or reads a clock: times are passed in.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The journal format version; a journal with another version is refused, not guessed at.
pub const JOURNAL_VERSION: u32 = 1;

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

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl StepStatus {
    /// The name used in the journal and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
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

/// Where the promotion as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Steps are still to run (or a process running them was killed).
    Running,
    /// Every step up to `update_dns` is done: the standby serves.
    Promoted,
    /// A step failed; later steps were left undone.
    Halted,
}

/// One step's record: of a promotion's [`StepName`]s, or another journal's own steps
/// (`rejoin`'s), kept and shown the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord<N = StepName> {
    pub name: N,
    pub status: StepStatus,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Times the step was started (more than one after a resume or a retry by hand).
    pub attempts: u32,
    /// What the step did, in words (shown in `status` and the closing alert).
    pub detail: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl<N> StepRecord<N> {
    /// A step not started yet.
    pub fn pending(name: N) -> Self {
        Self {
            name,
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            attempts: 0,
            detail: None,
            error: None,
        }
    }

    /// Started (again): running, one more attempt, the last error cleared.
    pub fn begin(&mut self, now: Timestamp) {
        self.status = StepStatus::Running;
        self.started_at = Some(now);
        self.finished_at = None;
        self.attempts += 1;
        self.error = None;
    }

    /// Done, with what it did.
    pub fn finish(&mut self, detail: String, now: Timestamp) {
        self.status = StepStatus::Done;
        self.finished_at = Some(now);
        self.detail = Some(detail);
    }

    /// Failed, with why.
    pub fn fail(&mut self, error: String, now: Timestamp) {
        self.status = StepStatus::Failed;
        self.finished_at = Some(now);
        self.error = Some(error);
    }

    /// How long its last attempt took, once finished.
    pub fn duration(&self) -> Option<std::time::Duration> {
        let span = self.finished_at?.duration_since(self.started_at?);
        std::time::Duration::try_from(span).ok()
    }
}

impl<N: std::fmt::Display> StepRecord<N> {
    /// One line of `status`: name (padded to `width`), status, time taken, detail or
    /// error.
    pub fn render_line(&self, width: usize) -> String {
        let took = self.duration().map_or(String::new(), |d| {
            format!(" in {}", crate::probe::human_duration(d))
        });
        format!(
            "  {:<width$} {:<8}{took} {}{}\n",
            self.name.to_string(),
            self.status.as_str(),
            self.detail.as_deref().unwrap_or(""),
            self.error
                .as_ref()
                .map_or(String::new(), |e| format!("ERROR: {e}"))
        )
    }
}

/// The replica's GTID positions as `stop_replica` found and left them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtidPositions {
    /// `Gtid_IO_Pos` once the IO thread stopped: everything received from the primary.
    pub received: String,
    /// `@@gtid_slave_pos` once applied: everything the standby executed from the primary.
    pub applied: String,
    /// `@@gtid_current_pos` after the replica was stopped.
    pub current: String,
}

impl GtidPositions {
    /// What was lost or saved, in words: whether everything received was applied, and
    /// whether the standby had received what the primary had when it was last seen.
    pub fn accounting(&self, primary_last_seen: Option<&PrimarySeen>) -> String {
        let shown = |pos: &str| {
            if pos.is_empty() {
                "(empty)".to_string()
            } else {
                pos.to_string()
            }
        };
        let applied = if crate::gtid::covers(&self.applied, &self.received) {
            format!(
                "everything received ({}) was applied",
                shown(&self.received)
            )
        } else {
            format!(
                "received {} but applied only {}",
                shown(&self.received),
                shown(&self.applied)
            )
        };
        let seen = match primary_last_seen {
            None => "the primary's position was never read (no mysql check answered): whether it had more cannot be told".to_string(),
            Some(seen) if crate::gtid::covers(&self.received, &seen.gtid) => format!(
                "the primary's last position seen ({} at {}) was received: nothing it had then was lost",
                shown(&seen.gtid),
                seen.at
            ),
            Some(seen) => format!(
                "the primary had {} at {} but the standby received only {}: those transactions may exist only on the old primary (`rejoin` there names them before it changes anything)",
                shown(&seen.gtid),
                seen.at,
                shown(&self.received)
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
    pub gtid: String,
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
    pub final_position: Option<String>,
    /// Client connections ended on the primary after its writes drained.
    pub killed_connections: usize,
    /// When this host had applied `final_position`.
    pub caught_up_at: Option<Timestamp>,
    /// This host's `@@gtid_slave_pos` once caught up.
    pub applied_position: Option<String>,
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
        let position = |p: &Option<String>| {
            p.as_deref()
                .map_or("(not read)", crate::replica::display_gtid)
                .to_string()
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

/// The whole promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u32,
    pub node: String,
    pub trigger: Trigger,
    /// Why the promotion started, in words (failed checks, or "requested by operator").
    pub reason: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
    pub gtid: Option<GtidPositions>,
    #[serde(default)]
    pub dns_changes: Vec<DnsChange>,
    /// Where the primary was when last seen, for the data-loss accounting.
    #[serde(default)]
    pub primary_last_seen: Option<PrimarySeen>,
    /// What fencing the old primary did.
    #[serde(default)]
    pub fence: Option<FenceRecord>,
    /// A switchover's drill record; `None` for a promotion.
    #[serde(default)]
    pub switchover: Option<SwitchoverRecord>,
}

impl Journal {
    /// A new promotion (or switchover) with every step of its trigger pending.
    pub fn new(node: &str, trigger: Trigger, reason: &str, now: Timestamp) -> Self {
        Self {
            version: JOURNAL_VERSION,
            node: node.to_string(),
            trigger,
            reason: reason.to_string(),
            started_at: now,
            finished_at: None,
            outcome: Outcome::Running,
            steps: StepName::for_trigger(trigger)
                .iter()
                .map(|&name| StepRecord::pending(name))
                .collect(),
            gtid: None,
            dns_changes: Vec::new(),
            primary_last_seen: None,
            fence: None,
            switchover: (trigger == Trigger::Switchover).then(SwitchoverRecord::default),
        }
    }

    /// The data-loss accounting, once `stop_replica` has recorded the positions.
    pub fn accounting(&self) -> Option<String> {
        self.gtid
            .as_ref()
            .map(|g| g.accounting(self.primary_last_seen.as_ref()))
    }

    /// The step to run next: the first one not `done` (a failed `rejoin_peer` is passed:
    /// it does not halt). `None` once the promotion is over or halted (a halted promotion
    /// is only taken up again by [`Journal::retry_halted`]).
    pub fn next_step(&self) -> Option<StepName> {
        if self.outcome != Outcome::Running {
            return None;
        }
        self.steps
            .iter()
            .find(|s| {
                s.status != StepStatus::Done
                    && !(s.name == StepName::RejoinPeer && s.status == StepStatus::Failed)
            })
            .map(|s| s.name)
    }

    /// The step that was running when a process died, if any: a resume says so.
    pub fn interrupted_step(&self) -> Option<StepName> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Running)
            .map(|s| s.name)
    }

    /// Whether `steps` describes the promotion: the steps of its trigger
    /// ([`StepName::for_trigger`]), once each, in that order. [`Journal::new`] makes such a journal; one read from disk is
    /// checked with this before it is used (`crate::store`), because a journal without
    /// its steps would look like a promotion with nothing left to do, or, halted, like
    /// one with nothing that failed.
    pub fn validate(&self) -> Result<(), String> {
        let expected = StepName::for_trigger(self.trigger);
        let found: Vec<StepName> = self.steps.iter().map(|s| s.name).collect();
        if found == expected {
            return Ok(());
        }
        let missing: Vec<StepName> = expected
            .iter()
            .copied()
            .filter(|name| !found.contains(name))
            .collect();
        let unexpected: Vec<StepName> = found
            .iter()
            .copied()
            .filter(|name| !expected.contains(name))
            .collect();
        let repeated: Vec<StepName> = expected
            .iter()
            .copied()
            .filter(|name| found.iter().filter(|f| *f == name).count() > 1)
            .collect();
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("{} missing", step_names(&missing)));
        }
        if !unexpected.is_empty() {
            problems.push(format!("{} not one of its steps", step_names(&unexpected)));
        }
        if !repeated.is_empty() {
            problems.push(format!("{} more than once", step_names(&repeated)));
        }
        if problems.is_empty() {
            problems.push("out of order".to_string());
        }
        let found = if found.is_empty() {
            "it has no steps".to_string()
        } else {
            format!(
                "its steps are [{}]: {}",
                step_names(&found),
                problems.join(", ")
            )
        };
        Err(format!(
            "{found}; a {} journal has exactly these {}, in this order: {}",
            self.trigger.as_str(),
            match expected.len() {
                5 => "five".to_string(),
                8 => "eight".to_string(),
                n => n.to_string(),
            },
            step_names(expected)
        ))
    }

    /// The record of `step`; `None` only in a journal that fails [`Journal::validate`].
    pub fn step(&self, step: StepName) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name == step)
    }

    fn step_mut(&mut self, step: StepName) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.name == step)
    }

    /// Marks `step` as running. (A step without a record, in a journal that fails
    /// [`Journal::validate`], is left as it is: the driver only begins [`Journal::next_step`].)
    pub fn begin(&mut self, step: StepName, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.begin(now);
        }
    }

    /// Marks `step` as done. The promotion is over once `notify` is done. A switchover's
    /// drill record takes the times writes and DNS came back here.
    pub fn finish(&mut self, step: StepName, detail: String, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.finish(detail, now);
        }
        if let Some(drill) = &mut self.switchover {
            match step {
                StepName::MakeWritable => drill.writable_at = Some(now),
                StepName::UpdateDns => drill.dns_at = Some(now),
                _ => {}
            }
        }
        if step == StepName::Notify {
            self.outcome = Outcome::Promoted;
            self.finished_at = Some(now);
        }
    }

    /// Marks `step` as failed. Every step but `notify` and `rejoin_peer` halts the
    /// promotion; a failed closing alert does not undo a promotion that is already
    /// serving, and an old primary that does not replicate yet is `rejoin`'s to fix
    /// (`notify` runs next and says so).
    pub fn fail(&mut self, step: StepName, error: String, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.fail(error, now);
        }
        if step == StepName::RejoinPeer {
            return;
        }
        self.finished_at = Some(now);
        self.outcome = if step == StepName::Notify {
            Outcome::Promoted
        } else {
            Outcome::Halted
        };
    }

    /// Takes a halted promotion up again (an operator's `--promote-now` after fixing the
    /// cause): the failed step runs again, finished steps stay finished.
    pub fn retry_halted(&mut self) {
        if self.outcome == Outcome::Halted {
            self.outcome = Outcome::Running;
            self.finished_at = None;
        }
    }

    /// The step that failed, if the promotion is halted.
    pub fn failed_step(&self) -> Option<&StepRecord> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Failed && s.name != StepName::RejoinPeer)
    }

    /// Whether a switchover's `rejoin_peer` failed: the old primary needs `rejoin`.
    pub fn peer_not_rejoined(&self) -> bool {
        self.step(StepName::RejoinPeer)
            .is_some_and(|s| s.status == StepStatus::Failed)
    }

    /// How long a finished step took.
    pub fn step_duration(&self, step: StepName) -> Option<std::time::Duration> {
        self.step(step)?.duration()
    }
}

/// "stop_replica, make_writable", for messages.
fn step_names(names: &[StepName]) -> String {
    names
        .iter()
        .map(|name| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// Drives a journal the way the driver does, with each step's result given.
    fn drive(journal: &mut Journal, results: &[Result<(), &str>]) -> Vec<StepName> {
        let mut ran = Vec::new();
        let mut results = results.iter();
        let mut now = 0;
        while let Some(step) = journal.next_step() {
            journal.begin(step, t(now));
            now += 1;
            ran.push(step);
            match results.next().expect("a result for every step run") {
                Ok(()) => journal.finish(step, "ok".into(), t(now)),
                Err(e) => journal.fail(step, e.to_string(), t(now)),
            }
        }
        ran
    }

    #[test]
    fn a_promotion_runs_every_step_in_order_then_is_promoted() {
        let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
        let ran = drive(&mut journal, &[Ok(()); 5]);
        assert_eq!(ran, StepName::PROMOTION);
        assert_eq!(journal.outcome, Outcome::Promoted);
        assert!(journal.finished_at.is_some());
        assert_eq!(
            journal.step_duration(StepName::StopReplica),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(journal.next_step(), None);
    }

    #[test]
    fn a_failed_step_halts_and_leaves_later_steps_pending() {
        let mut journal = Journal::new("standby", Trigger::Manual, "operator", t(0));
        let ran = drive(&mut journal, &[Ok(()), Err("read_only still ON")]);
        assert_eq!(ran, [StepName::StopReplica, StepName::MakeWritable]);
        assert_eq!(journal.outcome, Outcome::Halted);
        let failed = journal.failed_step().unwrap();
        assert_eq!(failed.name, StepName::MakeWritable);
        assert_eq!(failed.error.as_deref(), Some("read_only still ON"));
        for later in [StepName::StartApps, StepName::UpdateDns, StepName::Notify] {
            assert_eq!(journal.step(later).unwrap().status, StepStatus::Pending);
        }
    }

    #[test]
    fn a_halted_promotion_retried_reruns_only_the_failed_step_and_later() {
        let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
        drive(&mut journal, &[Ok(()), Ok(()), Err("unit failed")]);
        journal.retry_halted();
        let ran = drive(&mut journal, &[Ok(()), Ok(()), Ok(())]);
        assert_eq!(
            ran,
            [StepName::StartApps, StepName::UpdateDns, StepName::Notify]
        );
        assert_eq!(journal.step(StepName::StartApps).unwrap().attempts, 2);
        assert_eq!(journal.step(StepName::StopReplica).unwrap().attempts, 1);
        assert_eq!(journal.outcome, Outcome::Promoted);
    }

    #[test]
    fn a_failed_closing_alert_does_not_halt_a_serving_promotion() {
        let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
        drive(
            &mut journal,
            &[Ok(()), Ok(()), Ok(()), Ok(()), Err("telegram down")],
        );
        assert_eq!(journal.outcome, Outcome::Promoted);
        assert_eq!(
            journal.step(StepName::Notify).unwrap().status,
            StepStatus::Failed
        );
    }

    #[test]
    fn a_process_killed_mid_step_resumes_at_that_step() {
        let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
        journal.begin(StepName::StopReplica, t(0));
        journal.finish(StepName::StopReplica, "ok".into(), t(1));
        journal.begin(StepName::MakeWritable, t(1));
        // The process dies here; the journal on disk says make_writable is running.
        let reloaded: Journal =
            serde_json::from_str(&serde_json::to_string(&journal).unwrap()).unwrap();
        assert_eq!(reloaded.interrupted_step(), Some(StepName::MakeWritable));
        assert_eq!(reloaded.next_step(), Some(StepName::MakeWritable));
    }

    /// The bug: with `"steps": []` the dry run panicked in `step()` and a running
    /// promotion had no next step, so the daemon stayed `promoting` for ever.
    #[test]
    fn a_journal_without_its_five_steps_fails_validation_and_panics_nowhere() {
        let whole = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
        assert_eq!(whole.validate(), Ok(()));

        let mut empty = whole.clone();
        empty.steps.clear();
        let err = empty.validate().unwrap_err();
        assert!(err.starts_with("it has no steps"), "{err}");
        assert!(
            err.contains("stop_replica, make_writable, start_apps, update_dns, notify"),
            "{err}"
        );
        // Every reader of a step copes with its absence.
        assert_eq!(empty.step(StepName::StopReplica), None);
        assert_eq!(empty.step_duration(StepName::StopReplica), None);
        empty.begin(StepName::StopReplica, t(1));
        empty.fail(StepName::StopReplica, "x".into(), t(2));
        assert!(empty.steps.is_empty());

        let mut swapped = whole.clone();
        swapped.steps.swap(1, 2);
        let err = swapped.validate().unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        assert!(
            err.contains("[stop_replica, start_apps, make_writable, update_dns, notify]"),
            "{err}"
        );

        let mut repeated = whole.clone();
        repeated.steps[4] = repeated.steps[0].clone();
        let err = repeated.validate().unwrap_err();
        assert!(
            err.contains("notify missing, stop_replica more than once"),
            "{err}"
        );
    }

    #[test]
    fn the_accounting_says_whether_anything_was_lost() {
        let positions = |received: &str, applied: &str| GtidPositions {
            received: received.into(),
            applied: applied.into(),
            current: applied.into(),
        };
        let seen = |gtid: &str| PrimarySeen {
            gtid: gtid.into(),
            at: t(0),
        };
        let all = positions("0-1-10", "0-1-10").accounting(Some(&seen("0-1-9")));
        assert!(
            all.contains("everything received (0-1-10) was applied"),
            "{all}"
        );
        assert!(all.contains("nothing it had then was lost"), "{all}");
        let behind = positions("0-1-7", "0-1-7").accounting(Some(&seen("0-1-9")));
        assert!(
            behind.contains("the primary had 0-1-9") && behind.contains("received only 0-1-7"),
            "{behind}"
        );
        let unapplied = positions("0-1-10", "0-1-8").accounting(None);
        assert!(unapplied.contains("applied only 0-1-8"), "{unapplied}");
        assert!(unapplied.contains("never read"), "{unapplied}");
    }

    #[test]
    fn a_switchover_has_its_own_eight_steps_and_promotions_keep_their_five() {
        for trigger in [Trigger::Automatic, Trigger::Manual] {
            let journal = Journal::new("standby", trigger, "why", t(0));
            let names: Vec<StepName> = journal.steps.iter().map(|s| s.name).collect();
            assert_eq!(names, StepName::PROMOTION);
            assert_eq!(journal.switchover, None);
        }
        let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
        assert_eq!(journal.validate(), Ok(()));
        assert_eq!(journal.switchover, Some(SwitchoverRecord::default()));
        let ran = drive(&mut journal, &[Ok(()); 8]);
        assert_eq!(ran, StepName::SWITCHOVER);
        assert_eq!(journal.outcome, Outcome::Promoted);
        assert_eq!(
            serde_json::to_value(Trigger::Switchover).unwrap(),
            "switchover"
        );

        // A promotion's five steps are not a switchover's journal, nor the other way.
        let mut short = journal.clone();
        short
            .steps
            .retain(|s| StepName::PROMOTION.contains(&s.name));
        let err = short.validate().unwrap_err();
        assert!(
            err.contains("fence_primary, catch_up, rejoin_peer missing"),
            "{err}"
        );
        assert!(
            err.contains("a switchover journal has exactly these eight"),
            "{err}"
        );
        let mut promotion = Journal::new("standby", Trigger::Manual, "why", t(0));
        promotion.steps = journal.steps.clone();
        let err = promotion.validate().unwrap_err();
        assert!(
            err.contains("fence_primary, catch_up, rejoin_peer not one of its steps"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_rejoin_peer_does_not_halt_and_notify_still_runs() {
        let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
        let ran = drive(
            &mut journal,
            &[
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Err("IO thread not running"),
                Ok(()),
            ],
        );
        assert_eq!(ran, StepName::SWITCHOVER);
        assert_eq!(journal.outcome, Outcome::Promoted);
        assert!(journal.peer_not_rejoined());
        assert!(journal.failed_step().is_none());
        // A failed fence halts like any step before DNS.
        let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
        drive(&mut journal, &[Err("peer down")]);
        assert_eq!(journal.outcome, Outcome::Halted);
    }

    #[test]
    fn the_drill_record_times_writes_and_dns_from_the_fence() {
        let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
        let drill = journal.switchover.as_mut().unwrap();
        drill.fenced_at = Some(t(10));
        drill.final_position = Some("0-1-42".into());
        drill.applied_position = Some("0-1-42".into());
        drill.lost = Some(false);
        journal.finish(StepName::MakeWritable, "ok".into(), t(11));
        journal.finish(StepName::UpdateDns, "ok".into(), t(13));
        let drill = journal.switchover.as_ref().unwrap();
        assert_eq!(
            drill.writes_refused(),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(drill.dns_after(), Some(std::time::Duration::from_secs(3)));
        let summary = drill.summary();
        assert!(
            summary.contains("writes refused for 1.000 s")
                && summary.contains("DNS here after 3.000 s")
                && summary.contains("final position 0-1-42, applied here 0-1-42: nothing lost"),
            "{summary}"
        );
        // A promotion has no drill record to fill in.
        let mut promotion = Journal::new("standby", Trigger::Manual, "why", t(0));
        promotion.finish(StepName::MakeWritable, "ok".into(), t(1));
        assert_eq!(promotion.switchover, None);
    }

    #[test]
    fn step_names_serialize_as_the_spec_names_them() {
        let names: Vec<String> = StepName::PROMOTION
            .iter()
            .map(|s| {
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "stop_replica",
                "make_writable",
                "start_apps",
                "update_dns",
                "notify"
            ]
        );
        assert!(
            StepName::PROMOTION
                .iter()
                .all(|s| names.contains(&s.as_str().to_string()))
        );
    }
}

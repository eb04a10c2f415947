//! The journal's transitions, driven the way the runner drives them, for the
//! promotion's and the rejoin's steps.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use jiff::Timestamp;

use super::*;
use crate::gtid::GtidPosition;

fn pos(text: &str) -> GtidPosition {
    GtidPosition::parse(text).unwrap()
}

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
    assert_eq!(journal.outcome, Outcome::Done);
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
    assert_eq!(journal.outcome, Outcome::Done);
}

#[test]
fn a_failed_closing_alert_does_not_halt_a_serving_promotion() {
    let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
    drive(
        &mut journal,
        &[Ok(()), Ok(()), Ok(()), Ok(()), Err("telegram down")],
    );
    assert_eq!(journal.outcome, Outcome::Done);
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
        received: pos(received),
        applied: pos(applied),
        current: pos(applied),
    };
    let seen = |gtid: &str| PrimarySeen {
        gtid: pos(gtid),
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
        assert_eq!(journal.record.switchover, None);
    }
    let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
    assert_eq!(journal.validate(), Ok(()));
    assert_eq!(journal.record.switchover, Some(SwitchoverRecord::default()));
    let ran = drive(&mut journal, &[Ok(()); 8]);
    assert_eq!(ran, StepName::SWITCHOVER);
    assert_eq!(journal.outcome, Outcome::Done);
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
    assert_eq!(journal.outcome, Outcome::Done);
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
    let drill = journal.record.switchover.as_mut().unwrap();
    drill.fenced_at = Some(t(10));
    drill.final_position = Some(pos("0-1-42"));
    drill.applied_position = Some(pos("0-1-42"));
    drill.lost = Some(false);
    journal.finish(StepName::MakeWritable, "ok".into(), t(11));
    journal.finish(StepName::UpdateDns, "ok".into(), t(13));
    let drill = journal.record.switchover.as_ref().unwrap();
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
    assert_eq!(promotion.record.switchover, None);
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

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

#[test]
fn rejoin_steps_run_in_order_and_the_last_one_ends_the_rejoin() {
    let mut journal = RejoinJournal::rejoin("a", "b", "h:1", pos("0-1-5"), at(0));
    assert_eq!(journal.validate(), Ok(()));
    for (i, step) in RejoinStep::ALL.into_iter().enumerate() {
        assert_eq!(journal.next_step(), Some(step));
        journal.begin(step, at(i as i64));
        assert_eq!(journal.outcome, Outcome::Running);
        journal.finish(step, format!("did {step}"), at(i as i64 + 1));
    }
    assert_eq!(journal.next_step(), None);
    assert_eq!(journal.outcome, Outcome::Done);
    assert_eq!(journal.took(at(100)), std::time::Duration::from_secs(6));
    assert_eq!(
        journal.step_duration(RejoinStep::CatchUp),
        Some(std::time::Duration::from_secs(1))
    );
    let text = journal.render();
    assert!(text.starts_with("rejoin: rejoined, to b (h:1)"), "{text}");
    assert!(
        text.contains("catch_up         done     in 1.0 s did catch_up"),
        "{text}"
    );
}

#[test]
fn a_failed_rejoin_step_halts_it_and_a_retry_runs_that_step_again() {
    let mut journal = RejoinJournal::rejoin("a", "b", "h:1", pos(""), at(0));
    journal.begin(RejoinStep::StopApps, at(0));
    journal.finish(RejoinStep::StopApps, "ok".into(), at(1));
    journal.begin(RejoinStep::MakeReadOnly, at(1));
    journal.fail(RejoinStep::MakeReadOnly, "denied".into(), at(2));
    assert_eq!(journal.outcome, Outcome::Halted);
    assert_eq!(
        journal.failed_step().map(|s| s.name),
        Some(RejoinStep::MakeReadOnly)
    );
    assert!(journal.render().contains("ERROR: denied"));
    assert!(journal.render().starts_with("rejoin: failed"));
    journal.retry_halted();
    assert_eq!(journal.next_step(), Some(RejoinStep::MakeReadOnly));
    journal.begin(RejoinStep::MakeReadOnly, at(3));
    let record = journal.step(RejoinStep::MakeReadOnly).unwrap();
    assert_eq!((record.attempts, record.error.clone()), (2, None));
    assert_eq!(journal.outcome, Outcome::Running);
}

#[test]
fn a_rejoin_journal_without_its_six_steps_does_not_validate() {
    let mut journal = RejoinJournal::rejoin("a", "b", "h:1", pos(""), at(0));
    journal.steps.pop();
    let problem = journal.validate().unwrap_err();
    assert!(problem.contains("clear_promotion]"), "{problem}");
    assert!(
        problem.contains("a rejoin journal has exactly these six"),
        "{problem}"
    );
}

/// The bug: a journal whose outcome was `running` while every step was done was
/// accepted; the daemon sat in `promoting` silently and the commands exited 1 saying
/// nothing.
#[test]
fn a_running_journal_with_every_step_done_is_refused() {
    let mut journal = Journal::new("standby", Trigger::Automatic, "primary down", t(0));
    drive(&mut journal, &[Ok(()); 5]);
    journal.outcome = Outcome::Running;
    let problem = journal.validate().unwrap_err();
    assert!(problem.contains("no step is left to run"), "{problem}");
}

#[test]
fn outcomes_that_contradict_the_steps_are_refused() {
    let fresh = Journal::new("standby", Trigger::Manual, "operator", t(0));
    assert_eq!(fresh.validate(), Ok(()));
    let mut promoted_early = fresh.clone();
    promoted_early.outcome = Outcome::Done;
    assert!(
        promoted_early
            .validate()
            .unwrap_err()
            .contains("steps are pending")
    );
    let mut halted_clean = fresh.clone();
    halted_clean.outcome = Outcome::Halted;
    assert!(
        halted_clean
            .validate()
            .unwrap_err()
            .contains("no step failed")
    );
    let mut skipped = fresh.clone();
    skipped.steps[2].status = StepStatus::Done;
    assert!(
        skipped
            .validate()
            .unwrap_err()
            .contains("a step after a pending one has started")
    );
    let mut two_running = fresh;
    two_running.steps[0].status = StepStatus::Running;
    two_running.steps[1].status = StepStatus::Running;
    assert!(
        two_running
            .validate()
            .unwrap_err()
            .contains("more than one step")
    );
}

#[test]
fn both_journals_keep_their_files_shape() {
    let mut journal = Journal::new("standby", Trigger::Switchover, "planned", t(0));
    drive(&mut journal, &[Ok(()); 8]);
    let json = serde_json::to_value(&journal).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "version",
        "node",
        "trigger",
        "reason",
        "started_at",
        "finished_at",
        "outcome",
        "steps",
        "gtid",
        "dns_changes",
        "primary_last_seen",
        "fence",
        "switchover",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    assert_eq!(json["outcome"], "promoted");
    let back: Journal = serde_json::from_value(json).unwrap();
    assert_eq!(back, journal);

    let mut rejoin = RejoinJournal::rejoin("a", "b", "h:1", pos("0-1-5"), at(0));
    rejoin.fail(RejoinStep::StopApps, "x".into(), at(1));
    let json = serde_json::to_value(&rejoin).unwrap();
    assert_eq!(json["outcome"], "failed");
    assert_eq!(json["own_position"], "0-1-5");
    assert_eq!(json["peer"], "b");
    let back: RejoinJournal = serde_json::from_value(json).unwrap();
    assert_eq!(back, rejoin);
}

/// Issue 18, item 9: a rejoin whose `catch_up` failed (a wrong replication password, a
/// conflicting row) failed the same way forever once the cause was fixed, because
/// `replicate` was done and never ran again.
#[test]
fn a_rejoin_failed_at_catch_up_is_retried_from_replicate() {
    let mut journal = RejoinJournal::rejoin("a", "b", "h:1", pos(""), at(0));
    for step in [
        RejoinStep::StopApps,
        RejoinStep::MakeReadOnly,
        RejoinStep::Replicate,
    ] {
        journal.begin(step, at(1));
        journal.finish(step, "ok".into(), at(2));
    }
    journal.begin(RejoinStep::CatchUp, at(3));
    journal.fail(RejoinStep::CatchUp, "IO thread error 1045".into(), at(4));
    journal.retry_halted();
    assert_eq!(journal.next_step(), Some(RejoinStep::Replicate));
    assert_eq!(journal.outcome, Outcome::Running);
    let status = |step| journal.step(step).unwrap().status;
    assert_eq!(status(RejoinStep::MakeReadOnly), StepStatus::Done);
    assert_eq!(status(RejoinStep::Replicate), StepStatus::Pending);
    assert_eq!(status(RejoinStep::CatchUp), StepStatus::Pending);
    assert_eq!(journal.step(RejoinStep::Replicate).unwrap().attempts, 1);
    journal
        .validate()
        .expect("a retried journal is saved before it runs: valid");
    // Any other failed step is retried itself.
    let mut journal = RejoinJournal::rejoin("a", "b", "h:1", pos(""), at(0));
    journal.begin(RejoinStep::StopApps, at(1));
    journal.fail(RejoinStep::StopApps, "unit".into(), at(2));
    journal.retry_halted();
    assert_eq!(journal.next_step(), Some(RejoinStep::StopApps));
}

#[test]
fn an_interrupted_step_halts_the_procedure_whatever_its_policy() {
    let mut journal = Journal::new("s", Trigger::Switchover, "planned", t(0));
    journal.begin(StepName::FencePrimary, t(1));
    journal.finish(StepName::FencePrimary, "fenced".into(), t(2));
    journal.begin(StepName::CatchUp, t(3));
    journal.interrupt(StepName::CatchUp, "interrupted".into(), t(4));
    assert_eq!(journal.outcome, Outcome::Halted);
    assert_eq!(
        journal.failed_step().map(|s| s.name),
        Some(StepName::CatchUp)
    );
}

//! Every transition of the decision core, as a story of rounds. No sleeps, no I/O:
//! time is a number of seconds handed in with each event.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use super::*;
use crate::report::CheckReport;
use crate::role::Role;
use crate::witness::Said;

const THRESHOLD: u32 = 3;

fn settings() -> Settings {
    Settings {
        failures_before_promotion: THRESHOLD,
        interval: Duration::from_secs(1),
        // The suspect cadence is the calm one: the cadence's own tests are in
        // `cadence_tests.rs`.
        suspect_interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        witness_timeout: Duration::from_millis(900),
        max_lag: Duration::from_secs(30),
        split_brain_alert_every: Duration::from_secs(60),
        confirm_with_replication: true,
        replication_silence: None,
        witnesses: false,
        stop_when_demoted: true,
        units: vec!["app.service".into()],
        peer_name: Some("peer-db".into()),
        fence_when_not_serving: true,
    }
}

fn now(secs: u64) -> Now {
    Now {
        wall: Timestamp::from_second(1_800_000_000 + secs as i64).unwrap(),
        since_start: Duration::from_secs(secs),
    }
}

fn check(kind: &str, ok: bool) -> CheckReport {
    CheckReport {
        kind: kind.into(),
        target: "primary:3306".into(),
        ok,
        detail: if ok { "answered" } else { "connection refused" }.into(),
        duration_ms: 1,
        gtid_binlog_pos: None,
        read_only: None,
    }
}

fn report(ok: bool, secs: u64) -> RoundReport {
    RoundReport {
        at: now(secs).wall,
        ok,
        checks: vec![check("tcp", ok)],
        self_checks: Vec::new(),
        witnesses: Vec::new(),
    }
}

/// A replica whose IO thread is connected and has received `heartbeats` so far.
fn connected(heartbeats: u64) -> Replication {
    Replication::Read(ReplicaReading {
        replicating: true,
        lag_seconds: Some(0),
        summary: "IO thread Yes, SQL thread Yes, 0 s behind".into(),
        io_connected: true,
        io_problem: String::new(),
        gtid_io_pos: crate::gtid::GtidPosition::parse("0-1-42").unwrap(),
        heartbeats,
        heartbeat_period: Some(Duration::from_millis(500)),
    })
}

/// A replica whose IO thread lost the primary.
fn disconnected() -> Replication {
    Replication::Read(ReplicaReading {
        replicating: false,
        lag_seconds: None,
        summary: "IO thread Connecting, SQL thread Yes".into(),
        io_connected: false,
        io_problem: "Connecting: error reconnecting to master".into(),
        gtid_io_pos: crate::gtid::GtidPosition::parse("0-1-42").unwrap(),
        heartbeats: 7,
        heartbeat_period: Some(Duration::from_millis(500)),
    })
}

/// A decider and its clock; each round is one second after the last.
struct Story {
    decider: Decider,
    secs: u64,
    heartbeats: u64,
    pause: PauseMarker,
    journal: Option<Option<Outcome>>,
}

impl Story {
    fn new(settings: Settings) -> Story {
        let mut decider = Decider::new(settings, 42, now(0));
        decider.start(JournalAtStart::None, now(0));
        Story {
            decider,
            secs: 0,
            heartbeats: 0,
            pause: PauseMarker::Absent,
            journal: Some(None),
        }
    }

    fn round_with(&mut self, report_ok: bool, replication: Replication) -> Vec<Action> {
        self.paired_round(report_ok, replication, None)
    }

    fn paired_round(
        &mut self,
        report_ok: bool,
        replication: Replication,
        pair: Option<Box<PairReading>>,
    ) -> Vec<Action> {
        self.secs += 1;
        let round = Round {
            report: report(report_ok, self.secs),
            replication,
            pause: self.pause.clone(),
            journal: self.journal,
            pair,
        };
        self.decider.handle(Event::Round(round), now(self.secs))
    }

    /// A healthy round: the primary answers, a heartbeat arrived.
    fn healthy(&mut self) -> Vec<Action> {
        self.heartbeats += 2;
        self.round_with(true, connected(self.heartbeats))
    }

    /// The primary is dead: its checks fail and the replica lost it.
    fn dead(&mut self) -> Vec<Action> {
        self.round_with(false, disconnected())
    }

    fn event(&mut self, event: Event) -> Vec<Action> {
        self.decider.handle(event, now(self.secs))
    }

    fn state(&self) -> State {
        self.decider.state()
    }

    fn failures(&self) -> u32 {
        self.decider.live().consecutive_failures
    }
}

fn alerts(actions: &[Action]) -> Vec<&Alert> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Alert(alert) => Some(alert),
            _ => None,
        })
        .collect()
}

fn logs(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(_, text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn asks_last_look(actions: &[Action]) -> bool {
    actions.last() == Some(&Action::TakeLastLook)
}

fn promotes(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        Action::Promote { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

/// Healthy rounds, then the primary dies: after the threshold, a last look that fails,
/// then the promotion. Returns the reason it gives.
fn promote_after_death(story: &mut Story) -> String {
    story.healthy();
    story.healthy();
    assert!(!asks_last_look(&story.dead()));
    assert_eq!(story.state(), State::Suspect);
    assert!(!asks_last_look(&story.dead()));
    let actions = story.dead();
    assert!(asks_last_look(&actions), "{actions:?}");
    let actions = story.event(Event::LastLook(report(false, story.secs)));
    assert_eq!(story.state(), State::Promoting);
    promotes(&actions).expect("a promotion").to_string()
}

#[test]
fn healthy_rounds_keep_monitoring_and_save_each_round() {
    let mut story = Story::new(settings());
    for _ in 0..3 {
        let actions = story.healthy();
        assert_eq!(actions[..1], [Action::SaveLive]);
        assert!(
            matches!(actions[1..], [Action::NextRound(_)]),
            "{actions:?}"
        );
        assert_eq!(story.state(), State::Monitoring);
    }
    assert!(story.decider.live().replication_seen.is_some());
}

#[test]
fn threshold_reached_takes_a_last_look_then_promotes() {
    let mut story = Story::new(settings());
    let reason = promote_after_death(&mut story);
    assert!(reason.contains("3 consecutive probe rounds"), "{reason}");
    assert!(reason.contains("replication confirms"), "{reason}");
    // The last look failed the same way as the rounds: said once, not twice.
    assert_eq!(reason.matches("tcp primary:3306").count(), 1, "{reason}");
}

#[test]
fn the_last_look_finding_the_primary_alive_cancels_the_promotion() {
    let mut story = Story::new(settings());
    story.healthy();
    story.dead();
    story.dead();
    assert!(asks_last_look(&story.dead()));
    let actions = story.event(Event::LastLook(report(true, story.secs)));
    assert!(promotes(&actions).is_none());
    assert_eq!(
        alerts(&actions),
        [&Alert::LastLookAnswered {
            failures: THRESHOLD
        }]
    );
    assert_eq!(story.state(), State::Monitoring);
    assert_eq!(story.failures(), 0);
}

#[test]
fn promoted_the_daemon_never_promotes_again() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    story.event(Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)));
    assert_eq!(story.state(), State::Promoted);
    story.journal = Some(Some(Outcome::Done));
    for _ in 0..10 {
        let actions = story.dead();
        assert!(promotes(&actions).is_none() && !asks_last_look(&actions));
        assert_eq!(story.state(), State::Promoted);
    }
    // Replication is over.
    assert!(!story.decider.wants_replication());
}

#[test]
fn a_halted_promotion_waits_for_an_operator_and_follows_the_journal_when_one_acts() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    story.event(Event::PromotionEnded(PromotionEnd::Ran(Outcome::Halted)));
    assert_eq!(story.state(), State::Halted);
    story.journal = Some(Some(Outcome::Halted));
    for _ in 0..5 {
        let actions = story.dead();
        assert!(promotes(&actions).is_none() && !asks_last_look(&actions));
        assert_eq!(story.state(), State::Halted);
    }
    // An operator's --promote-now finishes it.
    story.journal = Some(Some(Outcome::Done));
    let actions = story.dead();
    assert!(logs(&actions).iter().any(|l| l.contains("following it")));
    assert_eq!(story.state(), State::Promoted);
}

#[test]
fn a_journal_that_cannot_be_written_halts_once_and_never_loops() {
    // Regression: a full state_dir mid-promotion made the daemon retry (and alert
    // "resuming") every round, because the file still says `running`.
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    let actions = story.event(Event::PromotionEnded(PromotionEnd::JournalFailed(
        "No space left on device".into(),
    )));
    assert!(logs(&actions)[0].contains("journal cannot be written"));
    assert_eq!(story.state(), State::Halted);
    // The file says what was last written: running.
    story.journal = Some(Some(Outcome::Running));
    for _ in 0..7 {
        let actions = story.dead();
        assert!(promotes(&actions).is_none(), "{actions:?}");
        assert!(alerts(&actions).is_empty(), "{actions:?}");
        assert_eq!(story.state(), State::Halted);
    }
    // Space is back and an operator finished it.
    story.journal = Some(Some(Outcome::Done));
    story.dead();
    assert_eq!(story.state(), State::Promoted);
}

#[test]
fn a_promotion_run_by_another_promoter_is_followed_through_its_journal() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    let busy = story.event(Event::PromotionEnded(PromotionEnd::Busy(
        "a --promote-now holds the lock".into(),
    )));
    assert!(alerts(&busy).is_empty(), "{busy:?}");
    story.journal = Some(Some(Outcome::Running));
    let round = story.dead();
    assert_eq!(story.state(), State::Promoting);
    assert!(
        promotes(&round).is_some(),
        "tries to take it up: the lock tells whether anyone still runs it"
    );
    story.event(Event::PromotionEnded(PromotionEnd::Busy("still".into())));
    story.journal = Some(Some(Outcome::Done));
    story.dead();
    assert_eq!(story.state(), State::Promoted);
}

/// Issue 19, item 7: a root-owned lock file kept the service user's daemon from
/// promoting, and it only logged it every round: a missed failover. A refusal to start
/// a promotion the daemon decided on is alerted.
#[test]
fn a_promotion_that_cannot_start_is_alerted_not_only_logged() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    let refused = story.event(Event::PromotionEnded(PromotionEnd::Refused(
        "cannot open the lock file /state/promotion.lock: Permission denied".into(),
    )));
    let said = alerts(&refused);
    let Some(Alert::PromotionNotStarted { why }) = said.first() else {
        panic!("{refused:?}");
    };
    assert!(why.contains("Permission denied"), "{why}");
}

/// Issue 18, item 8: a command interrupted after the new side was writable left a
/// `running` journal nobody ran; the daemon sat in `promoting`. It takes it up.
#[test]
fn a_running_journal_nobody_runs_is_taken_up_by_the_daemon() {
    let mut story = Story::new(settings());
    story.healthy();
    story.journal = Some(Some(Outcome::Running));
    let first = story.healthy();
    assert_eq!(story.state(), State::Promoting);
    let reason = promotes(&first).expect("taken up");
    assert!(reason.contains("taking up"), "{reason}");
}

#[test]
fn a_pause_holds_the_promotion_and_resume_lets_it_go() {
    let mut story = Story::new(settings());
    story.pause = PauseMarker::Present(Pause {
        since: now(0).wall,
        until: None,
        reason: Some("kernel upgrade".into()),
    });
    story.healthy();
    assert_eq!(story.state(), State::Paused);
    let mut logged = 0;
    for _ in 0..6 {
        let actions = story.dead();
        assert!(!asks_last_look(&actions));
        logged += logs(&actions)
            .iter()
            .filter(|l| l.contains("automatic promotion is paused: kernel upgrade"))
            .count();
        assert_eq!(story.state(), State::Paused);
    }
    assert_eq!(logged, 1, "the hold is logged once per streak");
    // `resume` removed the marker.
    story.pause = PauseMarker::Absent;
    assert!(asks_last_look(&story.dead()));
}

#[test]
fn a_timed_pause_running_out_is_announced_removed_and_promotion_is_armed() {
    let mut story = Story::new(settings());
    story.pause = PauseMarker::Present(Pause {
        since: now(0).wall,
        until: Some(now(2).wall),
        reason: None,
    });
    story.healthy();
    assert_eq!(story.state(), State::Paused);
    let actions = story.healthy();
    assert_eq!(alerts(&actions), [&Alert::PauseRanOut]);
    assert!(actions.contains(&Action::RemovePause));
    assert_eq!(story.state(), State::Monitoring);
}

#[test]
fn an_unreadable_pause_marker_errs_on_the_side_of_not_promoting() {
    let mut story = Story::new(settings());
    story.pause = PauseMarker::Unreadable("pause.json: not JSON".into());
    story.healthy();
    for _ in 0..5 {
        assert!(!asks_last_look(&story.dead()));
    }
    assert_eq!(story.state(), State::Paused);
}

#[test]
fn the_lag_guard_holds_once_then_rearms_when_the_primary_answers() {
    let mut story = Story::new(settings());
    // The replica was seen stopped while the primary was healthy.
    let stopped = Replication::Read(ReplicaReading {
        replicating: false,
        lag_seconds: None,
        summary: "IO thread No, SQL thread No".into(),
        io_connected: false,
        io_problem: "No".into(),
        gtid_io_pos: crate::gtid::GtidPosition::parse("0-1-42").unwrap(),
        heartbeats: 0,
        heartbeat_period: None,
    });
    story.round_with(true, stopped);
    story.dead();
    story.dead();
    let actions = story.dead();
    let [Alert::HeldByLagGuard { failures: 3, risk }] = alerts(&actions)[..] else {
        panic!("{actions:?}");
    };
    assert!(risk.contains("not replicating"), "{risk}");
    assert!(!asks_last_look(&actions));
    assert_eq!(story.state(), State::Halted);
    for _ in 0..3 {
        let actions = story.dead();
        assert!(alerts(&actions).is_empty() && !asks_last_look(&actions));
        assert_eq!(story.state(), State::Halted);
    }
    // The primary answers again: armed, and said so.
    let actions = story.healthy();
    assert_eq!(alerts(&actions), [&Alert::Rearmed]);
    assert_eq!(story.state(), State::Monitoring);
    assert!(story.decider.live().held.is_none());
}

#[test]
fn a_lagging_replica_holds_the_promotion() {
    let mut story = Story::new(settings());
    let lagging = Replication::Read(ReplicaReading {
        lag_seconds: Some(31),
        ..match connected(1) {
            Replication::Read(r) => r,
            _ => unreachable!(),
        }
    });
    story.round_with(true, lagging);
    story.dead();
    story.dead();
    let actions = story.dead();
    assert!(matches!(
        alerts(&actions)[..],
        [Alert::HeldByLagGuard { .. }]
    ));
}

#[test]
fn the_pre_promote_hook_refusing_holds_like_the_lag_guard() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    let actions = story.event(Event::PromotionEnded(PromotionEnd::HeldByPrePromote(
        "the pre_promote hook stopped the promotion: exit 1".into(),
    )));
    assert!(matches!(
        alerts(&actions)[..],
        [Alert::HeldByPrePromote { .. }]
    ));
    assert_eq!(story.state(), State::Halted);
    for _ in 0..3 {
        assert!(!asks_last_look(&story.dead()));
    }
    assert_eq!(alerts(&story.healthy()), [&Alert::Rearmed]);
}

#[test]
fn an_isolated_standby_counts_nothing_and_says_when_it_can_talk_again() {
    let mut story = Story::new(settings());
    story.healthy();
    story.dead();
    for _ in 0..6 {
        story.secs += 1;
        let mut round = report(false, story.secs);
        round.self_checks = vec![check("tcp", false)];
        let actions = story.decider.handle(
            Event::Round(Round {
                report: round,
                replication: disconnected(),
                pause: PauseMarker::Absent,
                journal: Some(None),
                pair: None,
            }),
            now(story.secs),
        );
        assert!(!asks_last_look(&actions));
        assert_eq!(story.state(), State::Isolated);
        assert_eq!(story.failures(), 1, "held where it was");
    }
    let actions = story.healthy();
    assert_eq!(alerts(&actions), [&Alert::Reconnected]);
    assert_eq!(story.state(), State::Monitoring);
}

#[test]
fn replication_that_is_alive_makes_a_failing_round_degraded_alerted_once() {
    let mut story = Story::new(settings());
    story.healthy();
    // The first failed round: what arrived since the healthy one may predate the
    // failure, so it proves nothing yet; the round counts.
    story.heartbeats += 2;
    story.round_with(false, connected(story.heartbeats));
    assert_eq!(story.state(), State::Suspect);
    assert_eq!(story.failures(), 1);
    let mut degraded_alerts = 0;
    for _ in 0..6 {
        story.heartbeats += 2;
        let actions = story.round_with(false, connected(story.heartbeats));
        degraded_alerts += alerts(&actions)
            .iter()
            .filter(|a| matches!(a, Alert::Degraded { .. }))
            .count();
        assert!(!asks_last_look(&actions));
        assert_eq!(story.state(), State::Degraded);
        assert_eq!(story.failures(), 0, "proof of life breaks the streak");
    }
    assert_eq!(degraded_alerts, 1);
    let Some(Verdict::Degraded(why)) = &story.decider.live().verdict else {
        panic!("degraded expected");
    };
    assert!(why.contains("replica still hears"), "{why}");
    let actions = story.healthy();
    assert!(
        logs(&actions).contains(&"no longer degraded: ok"),
        "{actions:?}"
    );
}

#[test]
fn news_in_the_first_failed_round_does_not_hide_a_hang_right_after_a_heartbeat() {
    let mut story = Story::new(settings());
    story.healthy();
    // A heartbeat arrived, then the primary hung: the first failed round sees it.
    story.heartbeats += 1;
    let last = story.heartbeats;
    story.round_with(false, connected(last));
    assert_eq!(story.failures(), 1);
    story.round_with(false, connected(last));
    assert_eq!(story.failures(), 2);
    let actions = story.round_with(false, connected(last));
    assert!(asks_last_look(&actions), "{actions:?}");
}

#[test]
fn a_hung_primary_counts_from_the_first_silent_round_and_promotes_once_silence_is_confirmed() {
    // SIGSTOP: the checks time out, the IO thread stays connected, and nothing arrives.
    // With heartbeats every 500 ms, silence confirms after 1.5 s; the young rounds before
    // that count, so the promotion comes at the threshold, not two intervals late.
    let mut story = Story::new(settings());
    story.healthy();
    story.healthy();
    let hung = story.heartbeats;
    // Round 1: nothing new since the last reading, silence 1 s: young, counted.
    let actions = story.round_with(false, connected(hung));
    assert_eq!(story.failures(), 1);
    assert_eq!(story.state(), State::Suspect);
    assert!(!asks_last_look(&actions));
    // Round 2: 2 s of silence: confirmed.
    story.round_with(false, connected(hung));
    assert_eq!(story.failures(), 2);
    let actions = story.round_with(false, connected(hung));
    assert!(asks_last_look(&actions), "{actions:?}");
}

#[test]
fn young_silence_at_the_threshold_waits_for_confirmation() {
    // Heartbeats every 5 s: silence confirms only after 15 s, later than the threshold.
    let mut story = Story::new(settings());
    let slow = |heartbeats| match connected(heartbeats) {
        Replication::Read(r) => Replication::Read(ReplicaReading {
            heartbeat_period: Some(Duration::from_secs(5)),
            ..r
        }),
        other => other,
    };
    story.round_with(true, slow(1));
    story.round_with(true, slow(2));
    let mut waited = 0;
    let mut rounds = 0;
    loop {
        let actions = story.round_with(false, slow(2));
        rounds += 1;
        waited += logs(&actions)
            .iter()
            .filter(|l| l.contains("waiting for replication silence"))
            .count();
        if asks_last_look(&actions) {
            break;
        }
        assert_eq!(story.state(), State::Suspect);
        assert!(rounds < 30, "never confirmed");
    }
    assert_eq!(waited, 1, "the wait is logged once");
    // Last reading with news at 2 s; confirmed once more than 15 s passed.
    assert_eq!(story.secs, 18);
}

#[test]
fn a_witness_that_reaches_the_primary_makes_it_degraded() {
    let mut story = Story::new(Settings {
        witnesses: true,
        ..settings()
    });
    story.healthy();
    let actions = story.dead();
    assert_eq!(actions.last(), Some(&Action::AskWitnesses { within: None }));
    let answers = vec![witness("ams1", Said::Down), witness("nyc1", Said::Up)];
    let actions = story.event(Event::WitnessesAnswered(answers));
    let [Alert::Degraded { why }] = alerts(&actions)[..] else {
        panic!("{actions:?}");
    };
    assert!(why.contains("witness nyc1 still reaches it"), "{why}");
    assert_eq!(story.state(), State::Degraded);
    assert_eq!(story.failures(), 0);
    // The answers are kept for `status`.
    assert_eq!(
        story
            .decider
            .live()
            .last_probe
            .as_ref()
            .unwrap()
            .witnesses
            .len(),
        2
    );
}

#[test]
fn degraded_by_replication_then_by_a_witness_is_news_but_not_the_end_of_degraded() {
    // Regression: the log said "no longer degraded: degraded".
    let mut story = Story::new(Settings {
        witnesses: true,
        ..settings()
    });
    story.healthy();
    // Failed rounds in which replication goes on: the first counts (after the vote),
    // the next is degraded.
    for _ in 0..2 {
        story.heartbeats += 2;
        if story.round_with(false, connected(story.heartbeats)).last()
            == Some(&Action::AskWitnesses { within: None })
        {
            story.event(Event::WitnessesAnswered(vec![witness("nyc1", Said::Down)]));
        }
    }
    assert_eq!(story.state(), State::Degraded);
    story.dead();
    let actions = story.event(Event::WitnessesAnswered(vec![witness("nyc1", Said::Up)]));
    assert!(matches!(alerts(&actions)[..], [Alert::Degraded { .. }]));
    assert!(
        !logs(&actions)
            .iter()
            .any(|l| l.contains("no longer degraded")),
        "{actions:?}"
    );
}

#[test]
fn no_majority_of_observers_is_isolated_and_alerted_once() {
    let mut story = Story::new(Settings {
        witnesses: true,
        ..settings()
    });
    story.healthy();
    let mut not_a_majority = 0;
    for _ in 0..5 {
        assert_eq!(
            story.dead().last(),
            Some(&Action::AskWitnesses { within: None })
        );
        let actions = story.event(Event::WitnessesAnswered(vec![witness(
            "ams1",
            Said::NoAnswer,
        )]));
        not_a_majority += alerts(&actions)
            .iter()
            .filter(|a| matches!(a, Alert::NotAMajority { .. }))
            .count();
        assert!(!asks_last_look(&actions));
        assert_eq!(story.state(), State::Isolated);
    }
    assert_eq!(not_a_majority, 1);
    assert_eq!(story.failures(), 0);
}

#[test]
fn a_majority_of_observers_lets_the_count_grow_to_the_promotion() {
    let mut story = Story::new(Settings {
        witnesses: true,
        ..settings()
    });
    story.healthy();
    for round in 1..=THRESHOLD {
        story.dead();
        let actions = story.event(Event::WitnessesAnswered(vec![
            witness("ams1", Said::Down),
            witness("nyc1", Said::NoAnswer),
        ]));
        assert_eq!(asks_last_look(&actions), round == THRESHOLD, "{actions:?}");
    }
    let actions = story.event(Event::LastLook(report(false, story.secs)));
    let reason = promotes(&actions).unwrap();
    assert!(
        reason.contains("witnesses confirm: 2 of 3 observers"),
        "{reason}"
    );
}

#[test]
fn the_old_primary_back_after_promotion_is_alerted_at_once_then_every_period() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    story.event(Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)));
    story.journal = Some(Some(Outcome::Done));
    let back = |story: &mut Story, writable: bool| {
        story.secs += 1;
        let mut round = report(true, story.secs);
        round.checks.push(CheckReport {
            read_only: Some(!writable),
            ..check("mysql", true)
        });
        story.decider.handle(
            Event::Round(Round {
                report: round,
                replication: Replication::NotRead,
                pause: PauseMarker::Absent,
                journal: story.journal,
                pair: None,
            }),
            now(story.secs),
        )
    };
    let first = back(&mut story, true);
    let [
        Alert::OldPrimaryBack {
            writable: Some(true),
            ..
        },
    ] = alerts(&first)[..]
    else {
        panic!("{first:?}");
    };
    assert!(logs(&first).iter().any(|l| l.contains("SPLIT BRAIN")));
    // Not again within split_brain_alert_every (60 s)...
    for _ in 1..60 {
        assert!(alerts(&back(&mut story, true)).is_empty());
    }
    // ...then again while it stays up.
    assert_eq!(alerts(&back(&mut story, true)).len(), 1);
    // Gone, then back: at once.
    story.dead();
    assert_eq!(alerts(&back(&mut story, false)).len(), 1);
    assert_eq!(story.state(), State::Promoted);
}

#[test]
fn a_promotion_the_stopping_daemon_did_not_start_is_decided_again_later() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    let actions = story.event(Event::PromotionEnded(PromotionEnd::NotStarted));
    assert!(logs(&actions)[0].contains("not started"));
    assert_eq!(story.state(), State::Suspect);
    // Had it not stopped after all, the next round would decide again.
    assert!(asks_last_look(&story.dead()));
}

#[test]
fn an_interrupted_promotion_is_resumed_at_start() {
    let mut decider = Decider::new(settings(), 42, now(0));
    let actions = decider.start(JournalAtStart::Running, now(0));
    assert!(promotes(&actions).is_some(), "{actions:?}");
    assert_eq!(decider.state(), State::Promoting);
    // Stopped again between steps (a shutdown): still promoting.
    decider.handle(
        Event::PromotionEnded(PromotionEnd::Ran(Outcome::Running)),
        now(1),
    );
    assert_eq!(decider.state(), State::Promoting);
    decider.handle(
        Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)),
        now(2),
    );
    assert_eq!(decider.state(), State::Promoted);
}

#[test]
fn a_promoted_or_halted_journal_at_start_decides_the_mode() {
    let mut decider = Decider::new(settings(), 42, now(0));
    decider.start(JournalAtStart::Promoted { at: now(0).wall }, now(0));
    assert_eq!(decider.state(), State::Promoted);
    assert!(!decider.watches());
    let mut decider = Decider::new(settings(), 42, now(0));
    decider.start(JournalAtStart::Halted, now(0));
    assert_eq!(decider.state(), State::Halted);
}

#[test]
fn an_unreadable_journal_at_start_alerts_once_then_exits() {
    let mut decider = Decider::new(settings(), 42, now(0));
    let actions = decider.start(
        JournalAtStart::Unreadable("/var/lib/x/promotion.json: not JSON".into()),
        now(0),
    );
    assert!(matches!(
        alerts(&actions)[..],
        [Alert::JournalUnreadable { .. }]
    ));
    assert!(matches!(actions.last(), Some(Action::Exit(e)) if e.contains("promotion.json")));
}

/// The bug (issue 18, item 11): a standby stopped while the primary took 100 writes,
/// then started again after the primary died, reloaded its last reading ("replicating,
/// 0 s behind") and promoted without the writes. A daemon starts knowing nothing: its
/// lag guard holds, saying why, until it has seen the primary healthy itself.
#[test]
fn a_stale_standby_restarted_after_a_double_failure_holds_instead_of_promoting() {
    let mut story = Story::new(settings());
    assert!(story.decider.live().replication_seen.is_none());
    assert!(story.decider.live().primary_last_seen.is_none());
    let mut actions = Vec::new();
    for _ in 0..THRESHOLD {
        actions = story.dead();
    }
    assert!(
        !asks_last_look(&actions) && promotes(&actions).is_none(),
        "{actions:?}"
    );
    let held = alerts(&actions);
    let Some(Alert::HeldByLagGuard { risk, .. }) = held.first() else {
        panic!("{actions:?}");
    };
    assert!(risk.contains("since this daemon started"), "{risk}");
    assert_eq!(story.state(), State::Halted);
    // Once it has seen the primary healthy itself, a dead primary is promoted again.
    story.healthy();
    assert_eq!(story.state(), State::Monitoring);
    story.healthy();
    for _ in 0..THRESHOLD - 1 {
        story.dead();
    }
    assert!(asks_last_look(&story.dead()));
}

#[test]
fn answers_nobody_asked_for_are_ignored_and_said() {
    let mut story = Story::new(settings());
    let actions = story.event(Event::LastLook(report(false, 0)));
    assert!(promotes(&actions).is_none());
    assert!(logs(&actions)[0].contains("internal"));
}

fn witness(name: &str, said: Said) -> WitnessReport {
    WitnessReport {
        name: name.into(),
        said,
        detail: "tcp failed".into(),
        duration_ms: 3,
    }
}

// ---- The pair ------------------------------------------------------------------------

fn as_primary(peer: PeerDb) -> Option<Box<PairReading>> {
    Some(Box::new(PairReading {
        role: Role::Primary,
        detail: "read_only OFF, no replication connection".into(),
        read_only: Some(false),
        caught_up: false,
        apps_running: Vec::new(),
        peer,
        drift: Vec::new(),
        semi_sync_fell_back: false,
        dns: DnsReading::PointsHere,
    }))
}

fn as_standby(caught_up: bool, apps_running: &[&str]) -> Option<Box<PairReading>> {
    Some(Box::new(PairReading {
        role: Role::Standby,
        detail: "read_only ON, IO thread Yes, SQL thread Yes".into(),
        read_only: Some(true),
        caught_up,
        apps_running: apps_running.iter().map(|u| u.to_string()).collect(),
        peer: PeerDb::NotRead,
        drift: Vec::new(),
        semi_sync_fell_back: false,
        dns: DnsReading::NotRead,
    }))
}

fn standby_db(replicating: bool, lag: u64) -> PeerDb {
    PeerDb::Read(PeerReading {
        writable: false,
        replicating,
        lag_seconds: replicating.then_some(lag),
        summary: "IO thread Yes, SQL thread Yes".into(),
    })
}

fn writable_peer() -> PeerDb {
    PeerDb::Read(PeerReading {
        writable: true,
        replicating: false,
        lag_seconds: None,
        summary: "no replication connection".into(),
    })
}

fn kinds(actions: &[Action]) -> Vec<&'static str> {
    alerts(actions).iter().map(|a| a.kind()).collect()
}

#[test]
fn a_primary_never_promotes_however_its_checks_of_the_peer_fail() {
    let mut story = Story::new(settings());
    for _ in 0..10 {
        let actions = story.paired_round(false, disconnected(), as_primary(standby_db(true, 0)));
        assert!(!asks_last_look(&actions) && promotes(&actions).is_none());
        assert_eq!(story.failures(), 0);
        assert_eq!(story.state(), State::Serving);
    }
    assert_eq!(story.decider.live().role, Some(Role::Primary));
}

#[test]
fn a_primary_alerts_once_per_change_of_its_standbys_health() {
    let mut story = Story::new(settings());
    let quiet = story.paired_round(true, Replication::NotRead, as_primary(standby_db(true, 0)));
    assert!(kinds(&quiet).is_empty(), "{quiet:?}");
    let stopped = story.paired_round(true, Replication::NotRead, as_primary(standby_db(false, 0)));
    assert_eq!(kinds(&stopped), ["standby_not_replicating"]);
    let again = story.paired_round(true, Replication::NotRead, as_primary(standby_db(false, 0)));
    assert!(kinds(&again).is_empty(), "said once: {again:?}");
    let lagging = story.paired_round(true, Replication::NotRead, as_primary(standby_db(true, 31)));
    assert_eq!(kinds(&lagging), ["standby_lagging"]);
    let unreadable = story.paired_round(
        true,
        Replication::NotRead,
        as_primary(PeerDb::Unreadable("refused".into())),
    );
    assert_eq!(kinds(&unreadable), ["standby_not_replicating"]);
    let healthy = story.paired_round(true, Replication::NotRead, as_primary(standby_db(true, 30)));
    assert_eq!(
        kinds(&healthy),
        ["standby_healthy"],
        "30 s is within max_lag"
    );
}

#[test]
fn two_primaries_are_alerted_at_once_then_every_period() {
    let mut story = Story::new(settings());
    let first = story.paired_round(true, Replication::NotRead, as_primary(writable_peer()));
    assert_eq!(kinds(&first), ["two_primaries"]);
    assert!(logs(&first).iter().any(|l| l.contains("TWO PRIMARIES")));
    // At 1 s a round, the next alert is due 60 rounds after the first.
    for _ in 0..59 {
        let quiet = story.paired_round(true, Replication::NotRead, as_primary(writable_peer()));
        assert!(kinds(&quiet).is_empty(), "{quiet:?}");
    }
    let again = story.paired_round(true, Replication::NotRead, as_primary(writable_peer()));
    assert_eq!(
        kinds(&again),
        ["two_primaries"],
        "after split_brain_alert_every"
    );
    let over = story.paired_round(true, Replication::NotRead, as_primary(standby_db(true, 0)));
    assert_eq!(kinds(&over), ["standby_healthy"]);
}

#[test]
fn a_promoted_host_watches_the_peers_database_instead_of_its_checks() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    story.event(Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)));
    story.journal = Some(Some(Outcome::Done));
    // The old primary answers its checks, as a healthy standby of ours does.
    let rejoined = story.paired_round(true, Replication::NotRead, as_primary(standby_db(true, 0)));
    assert!(kinds(&rejoined).is_empty(), "{rejoined:?}");
    assert_eq!(story.state(), State::Promoted);
    // Its database unreadable: the check-based split-brain watch is the fallback.
    let fallback = story.paired_round(
        true,
        Replication::NotRead,
        as_primary(PeerDb::Unreadable("denied".into())),
    );
    assert_eq!(
        kinds(&fallback),
        ["standby_not_replicating", "old_primary_back"]
    );
}

#[test]
fn a_demoted_host_stops_its_units_and_alerts_once() {
    let mut story = Story::new(settings());
    let actions = story.paired_round(true, connected(2), as_standby(true, &["app.service"]));
    assert!(actions.contains(&Action::StopApps(vec!["app.service".into()])));
    let alerted = story.event(Event::AppsStopped(Err("exit 5".into())));
    assert_eq!(kinds(&alerted), ["demoted"]);
    let retried = story.paired_round(true, connected(4), as_standby(true, &["app.service"]));
    assert!(retried.contains(&Action::StopApps(vec!["app.service".into()])));
    assert!(kinds(&story.event(Event::AppsStopped(Ok(())))).is_empty());

    let mut off = settings();
    off.stop_when_demoted = false;
    let mut story = Story::new(off);
    let actions = story.paired_round(true, connected(2), as_standby(true, &["app.service"]));
    assert!(!actions.iter().any(|a| matches!(a, Action::StopApps(_))));
}

#[test]
fn a_promoted_host_that_is_a_healthy_standby_again_rearms() {
    let mut story = Story::new(settings());
    promote_after_death(&mut story);
    story.event(Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)));
    story.journal = Some(Some(Outcome::Done));
    let behind = story.paired_round(true, Replication::NotRead, as_standby(false, &[]));
    assert!(
        !behind.contains(&Action::ArchivePromotion),
        "not caught up yet"
    );
    let caught_up = story.paired_round(true, Replication::NotRead, as_standby(true, &[]));
    assert!(caught_up.contains(&Action::ArchivePromotion));
    let failed = story.event(Event::PromotionArchived(Err("locked".into())));
    assert!(kinds(&failed).is_empty());
    assert_eq!(story.state(), State::Promoted, "tried again next round");
    let done = story.event(Event::PromotionArchived(Ok("/state/journal.1.json".into())));
    assert_eq!(kinds(&done), ["rearmed_as_standby"]);
    assert_eq!(story.state(), State::Monitoring);
    story.journal = Some(None);
    assert!(story.decider.wants_replication());
    // Armed again: a dead primary is promoted.
    promote_after_death(&mut story);
}

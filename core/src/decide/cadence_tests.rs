//! The cadence's transitions in the decision core, as stories of rounds at the shipped
//! defaults (interval 60 s, suspect interval 5 s, timeout 10 s, 5 failures): when the
//! pace turns suspect (a failed round, the replica losing the primary or falling
//! silent), how rounds are counted at the suspect cadence, and when it is calm again.
//! Time is a number of seconds handed in with each event.

use super::*;
use crate::cadence::Pace;
use crate::pairwatch::{DnsReading, PairReading, PeerDb};
use crate::report::CheckReport;
use crate::witness::Said;

const S: fn(u64) -> Duration = Duration::from_secs;

fn settings() -> Settings {
    Settings {
        failures_before_promotion: 5,
        interval: S(60),
        suspect_interval: S(5),
        timeout: S(10),
        witness_timeout: S(20),
        max_lag: S(30),
        split_brain_alert_every: S(900),
        confirm_with_replication: true,
        replication_silence: None,
        witnesses: false,
        stop_when_demoted: false,
        units: Vec::new(),
        peer_name: None,
        fence_when_not_serving: true,
    }
}

fn at(secs: u64) -> Now {
    Now {
        wall: Timestamp::from_second(1_800_000_000 + secs as i64).unwrap(),
        since_start: S(secs),
    }
}

fn report(ok: bool, secs: u64) -> RoundReport {
    RoundReport {
        at: at(secs).wall,
        ok,
        checks: vec![CheckReport {
            kind: "mysql".into(),
            target: "watchdog@primary:3306".into(),
            ok,
            detail: if ok {
                "SELECT 1 answered"
            } else {
                "no answer within 5s"
            }
            .into(),
            duration_ms: 5,
            gtid_binlog_pos: None,
            read_only: None,
        }],
        self_checks: Vec::new(),
        witnesses: Vec::new(),
    }
}

fn reading(io_connected: bool, heartbeats: u64) -> Replication {
    Replication::Read(ReplicaReading {
        replicating: io_connected,
        lag_seconds: io_connected.then_some(0),
        summary: "a summary".into(),
        io_connected,
        io_problem: if io_connected {
            String::new()
        } else {
            "Connecting: error reconnecting to master".into()
        },
        gtid_io_pos: crate::gtid::GtidPosition::parse("0-1-42").unwrap(),
        heartbeats,
        heartbeat_period: Some(S(5)),
    })
}

struct Story {
    decider: Decider,
}

impl Story {
    fn new(settings: Settings) -> Story {
        let mut decider = Decider::new(settings, 7, at(0));
        decider.start(JournalAtStart::None, at(0));
        Story { decider }
    }

    /// A round at `secs` whose checks pass or fail, the replica as `replication`.
    fn round(&mut self, secs: u64, ok: bool, replication: Replication) -> Vec<Action> {
        let round = Round {
            report: report(ok, secs),
            replication,
            pause: PauseMarker::Absent,
            journal: Some(None),
            pair: None,
        };
        self.decider.handle(Event::Round(round), at(secs))
    }

    fn glance(&mut self, secs: u64, replication: Replication) -> Vec<Action> {
        self.decider
            .handle(Event::ReplicaWatched(replication), at(secs))
    }

    fn pace(&self) -> Pace {
        self.decider.live().cadence.as_ref().unwrap().pace
    }
}

/// The schedule an event's actions end with.
fn next(actions: &[Action]) -> Schedule {
    match actions.last() {
        Some(Action::NextRound(schedule)) => *schedule,
        other => panic!("no NextRound last: {other:?} in {actions:?}"),
    }
}

/// Each check of a calm round: the whole timeout.
const CALM: Duration = Duration::from_secs(10);
/// Each check of a suspect round: the suspect interval.
const SUSPECT: Duration = Duration::from_secs(5);

fn logs(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(_, text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn calm_rounds_run_every_interval_and_watch_the_replica_in_between() {
    let mut story = Story::new(settings());
    assert_eq!(story.decider.schedule().at, S(0), "the first round at once");
    let schedule = next(&story.round(0, true, reading(true, 1)));
    assert_eq!(
        schedule,
        Schedule {
            at: S(60),
            checks_within: CALM,
            watch_every: Some(S(1)),
        }
    );
    // A look that finds the replica hearing the primary changes nothing.
    assert_eq!(next(&story.glance(1, reading(true, 2))), schedule);
    assert_eq!(next(&story.round(60, true, reading(true, 14))).at, S(120));
    assert_eq!(story.pace(), Pace::Calm);
}

#[test]
fn suspect_is_entered_on_a_failed_round() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let actions = story.round(60, false, reading(true, 1));
    assert_eq!(
        next(&actions),
        Schedule {
            at: S(65),
            checks_within: SUSPECT,
            watch_every: None,
        }
    );
    assert!(
        logs(&actions).iter().any(|l| l.starts_with(
            "suspect: re-probing every 5 s until the primary answers or fails 5 rounds"
        )),
        "{actions:?}"
    );
    assert_eq!(story.pace(), Pace::Suspect);
    assert_eq!(story.decider.state(), State::Suspect);
}

#[test]
fn suspect_is_entered_on_a_lost_io_thread_and_the_next_round_runs_at_once() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.glance(1, reading(true, 1));
    let actions = story.glance(13, reading(false, 2));
    assert_eq!(
        next(&actions),
        Schedule {
            at: S(13),
            checks_within: SUSPECT,
            watch_every: None,
        }
    );
    assert!(actions.contains(&Action::SaveLive), "status shows it");
    let cadence = story.decider.live().cadence.clone().unwrap();
    assert_eq!(cadence.pace, Pace::Suspect);
    assert!(
        cadence
            .why
            .unwrap()
            .contains("the replica's IO thread lost the primary (Connecting"),
    );
    // No round has failed yet.
    assert_eq!(story.decider.live().consecutive_failures, 0);
}

#[test]
fn a_loss_at_the_first_look_after_a_round_that_heard_the_primary_is_a_doubt() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let schedule = next(&story.glance(1, reading(false, 1)));
    assert_eq!((schedule.at, schedule.watch_every), (S(1), None));
    assert_eq!(story.pace(), Pace::Suspect);
}

#[test]
fn suspect_is_entered_when_the_replica_falls_silent() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.glance(1, reading(true, 2));
    // Two heartbeat periods (10 s) and more without a word.
    assert!(
        next(&story.glance(11, reading(true, 2)))
            .watch_every
            .is_some()
    );
    let schedule = next(&story.glance(12, reading(true, 2)));
    assert_eq!((schedule.at, schedule.watch_every), (S(12), None));
    assert_eq!(story.pace(), Pace::Suspect);
}

#[test]
fn rounds_are_counted_at_the_suspect_cadence_and_the_decision_says_so() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.glance(1, reading(true, 1));
    assert_eq!(next(&story.glance(2, reading(false, 1))).at, S(2));
    // Rounds every 5 s from there; each fails at once (connection refused).
    let mut due = 2;
    for failed in 1..5 {
        let actions = story.round(due, false, reading(false, 1));
        assert_eq!(story.decider.live().consecutive_failures, failed);
        due = next(&actions).at.as_secs();
        assert_eq!(due, 2 + 5 * u64::from(failed));
    }
    let actions = story.round(due, false, reading(false, 1));
    assert_eq!(actions.last(), Some(&Action::TakeLastLook));
    let actions = story
        .decider
        .handle(Event::LastLook(report(false, due)), at(due));
    let Some(Action::Promote { reason, .. }) =
        actions.iter().find(|a| matches!(a, Action::Promote { .. }))
    else {
        panic!("no promotion: {actions:?}");
    };
    assert!(
        reason.contains(
            "decided at the suspect pace (every 5 s), 20 s after the first doubt (the replica's IO thread lost the primary"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("detection window: a dead primary within 21 s, a silent one within 52 s"),
        "{reason}"
    );
}

#[test]
fn a_good_round_clears_the_doubt_and_the_pace_is_calm_again() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.round(60, false, reading(true, 1));
    story.round(65, false, reading(true, 1));
    let actions = story.round(70, true, reading(true, 3));
    assert_eq!(
        next(&actions),
        Schedule {
            at: S(130),
            checks_within: CALM,
            watch_every: Some(S(1)),
        }
    );
    assert!(
        logs(&actions).contains(&"calm: probing every 60 s again (the primary answers)"),
        "{actions:?}"
    );
    assert_eq!(story.pace(), Pace::Calm);
    assert_eq!(story.decider.live().consecutive_failures, 0);
}

#[test]
fn a_replica_stopped_for_good_costs_one_suspect_round_not_one_per_look() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.glance(1, reading(true, 1));
    assert_eq!(next(&story.glance(2, reading(false, 1))).at, S(2));
    // The primary answers: its replication is broken, not the primary.
    assert_eq!(next(&story.round(2, true, reading(false, 1))).at, S(62));
    for secs in 3..20 {
        let schedule = next(&story.glance(secs, reading(false, 1)));
        assert_eq!(schedule.at, S(62), "at {secs}");
    }
    // It hears the primary again, then loses it: a new reason.
    story.glance(20, reading(true, 5));
    assert_eq!(next(&story.glance(21, reading(false, 5))).at, S(21));
}

#[test]
fn proof_of_life_and_a_paused_threshold_are_calm() {
    // Degraded: the replica still hears the primary after its checks failed.
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    story.round(60, false, reading(true, 1));
    assert_eq!(story.pace(), Pace::Suspect);
    story.round(65, false, reading(true, 2));
    assert_eq!(story.decider.state(), State::Degraded);
    assert_eq!(story.pace(), Pace::Calm);

    // Paused: the count reaches the threshold; nothing to hurry for.
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let paused = Pause {
        since: at(0).wall,
        until: None,
        reason: None,
    };
    let mut secs = 60;
    for _ in 0..5 {
        let round = Round {
            report: report(false, secs),
            replication: reading(false, 1),
            pause: PauseMarker::Present(paused.clone()),
            journal: Some(None),
            pair: None,
        };
        let actions = story.decider.handle(Event::Round(round), at(secs));
        secs = next(&actions).at.as_secs();
    }
    assert_eq!(story.decider.state(), State::Paused);
    assert_eq!(story.pace(), Pace::Calm);
    assert_eq!(
        secs,
        80 + 60,
        "the fifth round at 80, the next a minute later"
    );
}

#[test]
fn the_lag_guard_holding_is_calm_and_the_last_look_answering_too() {
    // Never read with a healthy primary: the lag guard holds at the threshold.
    let mut story = Story::new(settings());
    let mut secs = 0;
    for _ in 0..5 {
        secs = next(&story.round(secs, false, reading(false, 1)))
            .at
            .as_secs();
    }
    assert_eq!(story.decider.state(), State::Halted);
    assert_eq!(story.pace(), Pace::Calm);

    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let mut secs = 60;
    for _ in 0..5 {
        let actions = story.round(secs, false, reading(false, 1));
        if let Some(Action::NextRound(schedule)) = actions.last() {
            secs = schedule.at.as_secs();
        }
    }
    let actions = story
        .decider
        .handle(Event::LastLook(report(true, secs)), at(secs));
    assert_eq!(story.pace(), Pace::Calm);
    assert_eq!(next(&actions).checks_within, CALM);
}

#[test]
fn witnesses_get_half_a_suspect_round_and_their_own_timeout_once_that_fell_short() {
    let mut story = Story::new(Settings {
        witnesses: true,
        ..settings()
    });
    story.round(0, true, reading(true, 1));
    let half = Some(Duration::from_millis(2500));
    // Asked only on a round that would fail: the primary is in doubt.
    let actions = story.round(60, false, reading(false, 1));
    assert_eq!(actions.last(), Some(&Action::AskWitnesses { within: half }));
    let down = |name: &str| WitnessReport {
        name: name.into(),
        said: Said::Down,
        detail: "mysql failed".into(),
        duration_ms: 40,
    };
    let silent = |name: &str| WitnessReport {
        name: name.into(),
        said: Said::NoAnswer,
        detail: "no answer within 2.5s".into(),
        duration_ms: 2500,
    };
    let answered = story.decider.handle(
        Event::WitnessesAnswered(vec![down("ams1"), silent("nyc1")]),
        at(62),
    );
    assert_eq!(next(&answered).checks_within, Duration::from_millis(2500));
    let actions = story.round(65, false, reading(false, 1));
    assert_eq!(actions.last(), Some(&Action::AskWitnesses { within: half }));
    story.decider.handle(
        Event::WitnessesAnswered(vec![silent("ams1"), silent("nyc1")]),
        at(68),
    );
    assert_eq!(story.decider.state(), State::Isolated);
    assert_eq!(story.pace(), Pace::Suspect);
    // Their own timeout from now on.
    let actions = story.round(70, false, reading(false, 1));
    assert_eq!(actions.last(), Some(&Action::AskWitnesses { within: None }));
    story.decider.handle(
        Event::WitnessesAnswered(vec![down("ams1"), down("nyc1")]),
        at(79),
    );
    story.round(80, true, reading(true, 3));
    assert_eq!(story.decider.schedule().checks_within, CALM);
    let actions = story.round(140, false, reading(false, 3));
    assert_eq!(
        actions.last(),
        Some(&Action::AskWitnesses { within: half }),
        "cut to fit again once calm"
    );
}

#[test]
fn after_a_promotion_rounds_are_calm_and_the_replica_is_not_watched() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let mut secs = 60;
    for _ in 0..5 {
        if let Some(Action::NextRound(schedule)) =
            story.round(secs, false, reading(false, 1)).last()
        {
            secs = schedule.at.as_secs();
        }
    }
    story
        .decider
        .handle(Event::LastLook(report(false, secs)), at(secs));
    let ended = story.decider.handle(
        Event::PromotionEnded(PromotionEnd::Ran(Outcome::Done)),
        at(secs + 30),
    );
    let schedule = next(&ended);
    assert_eq!(schedule.watch_every, None);
    assert_eq!(schedule.checks_within, CALM);
    let round = Round {
        report: report(false, secs + 30),
        replication: Replication::NotRead,
        pause: PauseMarker::Absent,
        journal: Some(Some(Outcome::Done)),
        pair: None,
    };
    let after = story.decider.handle(Event::Round(round), at(secs + 30));
    assert_eq!(story.decider.state(), State::Promoted);
    assert_eq!(next(&after).at, S(secs + 90));
    assert_eq!(
        next(&story.glance(secs + 31, reading(false, 1))).at,
        S(secs + 90)
    );
}

#[test]
fn the_live_state_shows_the_cadence_and_the_window() {
    let mut story = Story::new(settings());
    story.round(0, true, reading(true, 1));
    let cadence = story.decider.live().cadence.clone().unwrap();
    assert_eq!(cadence.line(0, 5), "calm: probing every 60 s");
    assert_eq!(cadence.watch_seconds, Some(1.0));
    assert_eq!(cadence.detection_window.dead_seconds, 21.0);
    assert_eq!(cadence.detection_window.silent_seconds, Some(52.0));
    story.round(60, false, reading(true, 1));
    story.round(65, false, reading(true, 1));
    let cadence = story.decider.live().cadence.clone().unwrap();
    assert_eq!(
        cadence.line(2, 5),
        "suspect: re-probing every 5 s, 2 of 5 failed"
    );
    assert!(cadence.since.is_some());
}

/// This host's own database, down: role unknown, nothing read.
fn own_database_down() -> Option<Box<PairReading>> {
    Some(Box::new(PairReading {
        role: Role::Unknown,
        detail: "its database did not answer: connection refused".into(),
        read_only: None,
        caught_up: false,
        apps_running: Vec::new(),
        peer: PeerDb::NotRead,
        drift: Vec::new(),
        semi_sync_fell_back: false,
        dns: DnsReading::NotRead,
    }))
}

/// A crashed old primary whose daemon runs: while its database is down, rounds come at
/// the suspect interval, so a writable return is fenced within 5 s at the defaults, not
/// up to a calm minute later. The pace stays calm: the peer is not in doubt. Without
/// `fence_when_not_serving` nothing hurries.
#[test]
fn a_host_whose_own_database_is_down_looks_again_at_the_suspect_interval() {
    for (fence, after) in [(true, S(65)), (false, S(120))] {
        let mut story = Story::new(Settings {
            fence_when_not_serving: fence,
            ..settings()
        });
        story.round(0, true, reading(true, 1));
        let mut round = |secs: u64, pair: Option<Box<PairReading>>| {
            let round = Round {
                report: report(true, secs),
                replication: reading(true, 1),
                pause: PauseMarker::Absent,
                journal: Some(None),
                pair,
            };
            next(&story.decider.handle(Event::Round(round), at(secs)))
        };
        let schedule = round(60, own_database_down());
        assert_eq!(schedule.at, after, "fence_when_not_serving = {fence}");
        assert_eq!(schedule.checks_within, CALM, "a calm round's bounds");
        let again = schedule.at.as_secs();
        assert_eq!(round(again, as_standby_reading()).at, S(again + 60));
        assert_eq!(story.pace(), Pace::Calm);
    }
}

fn as_standby_reading() -> Option<Box<PairReading>> {
    Some(Box::new(PairReading {
        role: Role::Standby,
        detail: "read_only ON, IO thread Yes, SQL thread Yes".into(),
        read_only: Some(true),
        caught_up: true,
        apps_running: Vec::new(),
        peer: PeerDb::NotRead,
        drift: Vec::new(),
        semi_sync_fell_back: false,
        dns: DnsReading::NotRead,
    }))
}

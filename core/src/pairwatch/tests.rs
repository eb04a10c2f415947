//! The pair watch's rules, round by round: who alerts what, how often, and when a host
//! fences itself.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use super::*;
use crate::report::CheckReport;

fn settings() -> PairSettings {
    PairSettings {
        peer_name: "peer-db".into(),
        split_brain_alert_every: Duration::from_secs(10),
        max_lag: Duration::from_secs(30),
        stop_when_demoted: true,
        fence_when_not_serving: true,
        units: vec!["php-fpm.service".into(), "app.service".into()],
    }
}

fn reading(role: Role, read_only: Option<bool>, peer: PeerDb) -> PairReading {
    PairReading {
        role,
        detail: "what the database said".into(),
        read_only,
        caught_up: false,
        apps_running: Vec::new(),
        peer,
        drift: Vec::new(),
        semi_sync_fell_back: false,
        dns: DnsReading::PointsHere,
    }
}

fn primary(peer: PeerDb) -> PairReading {
    reading(Role::Primary, Some(false), peer)
}

fn peer(writable: bool, replicating: bool) -> PeerDb {
    PeerDb::Read(PeerReading {
        writable,
        replicating,
        lag_seconds: replicating.then_some(0),
        summary: "its replication".into(),
    })
}

/// A round whose checks of the peer all answer (a live old primary).
fn answering() -> RoundReport {
    RoundReport {
        at: jiff::Timestamp::UNIX_EPOCH,
        ok: true,
        checks: vec![CheckReport {
            kind: "tcp".into(),
            target: "peer:3306".into(),
            ok: true,
            detail: "connected".into(),
            duration_ms: 1,
            gtid_binlog_pos: None,
            read_only: Some(false),
        }],
        self_checks: Vec::new(),
        witnesses: Vec::new(),
    }
}

const SERVING: Standing = Standing {
    promoted: false,
    procedure_in_hand: false,
};
const PROMOTED: Standing = Standing {
    promoted: true,
    procedure_in_hand: false,
};

fn kinds(actions: &[PairAction]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| match a {
            PairAction::Alert(alert) => Some(alert.kind()),
            _ => None,
        })
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn two_writable_databases_are_two_primaries_for_the_writable_host() {
    let mut watch = PairWatch::new(settings());
    let first = watch.observe(&primary(peer(true, false)), &answering(), SERVING, secs(0));
    assert_eq!(kinds(&first), ["two_primaries"]);
    let quiet = watch.observe(&primary(peer(true, false)), &answering(), SERVING, secs(5));
    assert!(kinds(&quiet).is_empty(), "{quiet:?}");
    let again = watch.observe(&primary(peer(true, false)), &answering(), SERVING, secs(10));
    assert_eq!(
        kinds(&again),
        ["two_primaries"],
        "every split_brain_alert_every"
    );
}

/// The bug (issue 18, item 1): a host that had just become a healthy standby again (or
/// an old primary fenced by a switchover) sent SPLIT BRAIN about the rightful primary.
#[test]
fn a_host_whose_database_is_read_only_is_never_half_of_a_split_brain() {
    let mut watch = PairWatch::new(settings());
    for role in [Role::Standby, Role::Unknown] {
        let mut read_only = reading(role, Some(true), peer(true, false));
        read_only.caught_up = true;
        for (i, standing) in [SERVING, PROMOTED].into_iter().enumerate() {
            let actions = watch.observe(&read_only, &answering(), standing, secs(i as u64 * 100));
            let said = kinds(&actions);
            assert!(
                !said.contains(&"two_primaries") && !said.contains(&"old_primary_back"),
                "{role}: {actions:?}"
            );
        }
    }
}

/// The bug (issue 18, item 4): a primary whose own MariaDB was just killed alerted "the
/// old primary is back" about its healthy standby, from its checks.
#[test]
fn the_check_based_watch_runs_only_for_a_writable_promoted_host_that_cannot_read_the_peer() {
    let mut watch = PairWatch::new(settings());
    let own_dead = reading(Role::Unknown, None, PeerDb::NotRead);
    assert!(kinds(&watch.observe(&own_dead, &answering(), PROMOTED, secs(0))).is_empty());
    let unreadable = primary(PeerDb::Unreadable("refused".into()));
    let actions = watch.observe(&unreadable, &answering(), PROMOTED, secs(1));
    assert_eq!(
        kinds(&actions),
        ["standby_not_replicating", "old_primary_back"]
    );
    let readable = primary(peer(false, true));
    let actions = watch.observe(&readable, &answering(), PROMOTED, secs(100));
    assert_eq!(kinds(&actions), ["standby_healthy"]);
}

/// The bug (issue 18, item 4): flipping a database between writable and replicating
/// every 2 s gave 8 TWO PRIMARIES and 8 "healthy again" in 30 s with a 10 s period.
#[test]
fn a_database_flapping_between_writable_and_replicating_is_told_at_most_once_a_period() {
    let mut watch = PairWatch::new(settings());
    let mut told = Vec::new();
    for tick in 0..15u64 {
        let writable = tick % 2 == 0;
        let actions = watch.observe(
            &primary(peer(writable, !writable)),
            &answering(),
            SERVING,
            secs(tick * 2),
        );
        told.extend(kinds(&actions));
    }
    let two = told.iter().filter(|k| **k == "two_primaries").count();
    let healthy = told.iter().filter(|k| **k == "standby_healthy").count();
    assert!((1..=3).contains(&two), "{told:?}");
    assert!((1..=3).contains(&healthy), "{told:?}");
}

/// The bug (issue 18, item 4): a promoted host said "the standby does not replicate"
/// when the old primary came back read-only; it waits to be rejoined.
#[test]
fn an_old_primary_back_read_only_after_a_promotion_waits_for_rejoin() {
    let mut watch = PairWatch::new(settings());
    let waiting = watch.observe(
        &primary(peer(false, false)),
        &answering(),
        PROMOTED,
        secs(0),
    );
    assert_eq!(kinds(&waiting), ["old_primary_waiting"]);
    let mut other = PairWatch::new(settings());
    let stopped = other.observe(&primary(peer(false, false)), &answering(), SERVING, secs(0));
    assert_eq!(kinds(&stopped), ["standby_not_replicating"]);
}

#[test]
fn drift_and_a_semi_sync_fallback_are_told_once_per_change() {
    let mut watch = PairWatch::new(settings());
    let mut standby = reading(Role::Standby, Some(true), PeerDb::NotRead);
    standby.drift = vec!["replication.heartbeat_period: the channel has 30.000 s".into()];
    let first = watch.observe(&standby, &answering(), SERVING, secs(0));
    assert_eq!(kinds(&first), ["replication_drift"]);
    assert!(kinds(&watch.observe(&standby, &answering(), SERVING, secs(1))).is_empty());
    standby.drift.clear();
    assert_eq!(
        kinds(&watch.observe(&standby, &answering(), SERVING, secs(2))),
        ["replication_matches"]
    );

    let mut fell_back = primary(peer(false, true));
    fell_back.semi_sync_fell_back = true;
    let said = kinds(&watch.observe(&fell_back, &answering(), SERVING, secs(3)));
    assert!(said.contains(&"semi_sync_fell_back"), "{said:?}");
    assert!(
        !kinds(&watch.observe(&fell_back, &answering(), SERVING, secs(4)))
            .contains(&"semi_sync_fell_back")
    );
    fell_back.semi_sync_fell_back = false;
    assert!(
        kinds(&watch.observe(&fell_back, &answering(), SERVING, secs(5)))
            .contains(&"semi_sync_back")
    );
}

fn fences(actions: &[PairAction]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, PairAction::FenceSelf { .. }))
}

/// Issue 18, item 12: an old primary back writable while DNS points at its peer fences
/// itself, whatever the peer's state; never under a procedure, never on a DNS reading
/// that failed.
#[test]
fn a_writable_host_dns_does_not_point_at_fences_itself() {
    let mut watch = PairWatch::new(settings());
    let mut back = primary(PeerDb::Unreadable("the new primary is down too".into()));
    back.dns = DnsReading::Elsewhere("app.example.com A -> 203.0.113.20".into());
    let actions = watch.observe(&back, &answering(), SERVING, secs(0));
    let Some(PairAction::FenceSelf { units, why }) = actions
        .iter()
        .find(|a| matches!(a, PairAction::FenceSelf { .. }))
    else {
        panic!("{actions:?}");
    };
    assert_eq!(units, &settings().units);
    assert!(why.contains("203.0.113.20"), "{why}");
    let told = watch.fenced_self(why, Ok(()));
    assert_eq!(kinds(&told), ["not_serving"]);
    assert!(watch.fenced_self(why, Ok(())).is_empty(), "said once");

    let in_hand = Standing {
        promoted: false,
        procedure_in_hand: true,
    };
    assert!(!fences(&watch.observe(
        &back,
        &answering(),
        in_hand,
        secs(1)
    )));
    for dns in [
        DnsReading::PointsHere,
        DnsReading::Unreadable("HTTP 500".into()),
        DnsReading::NotRead,
    ] {
        let mut here = back.clone();
        here.dns = dns;
        assert!(!fences(&watch.observe(
            &here,
            &answering(),
            SERVING,
            secs(2)
        )));
    }
    let read_only = PairReading {
        read_only: Some(true),
        role: Role::Unknown,
        ..back.clone()
    };
    assert!(!fences(&watch.observe(
        &read_only,
        &answering(),
        SERVING,
        secs(3)
    )));

    let mut off = settings();
    off.fence_when_not_serving = false;
    let mut watch = PairWatch::new(off);
    let first = watch.observe(&back, &answering(), SERVING, secs(0));
    assert!(!fences(&first));
    assert!(kinds(&first).contains(&"not_serving"));
    assert!(!kinds(&watch.observe(&back, &answering(), SERVING, secs(1))).contains(&"not_serving"));
}

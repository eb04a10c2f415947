//! The whole way there and back on the real pair, both daemons running with mirrored
//! configs, under a write load that follows the writable server and records every
//! acknowledged write: kill -9 the primary → automatic promotion → restart the old
//! primary → `rejoin` on it → `switchover` on it → the original roles again. Then the
//! round trip must have left the pair as strong as it found it: the same channel and
//! semi-sync sides, a hung and a dead primary caught as fast as before, no false split
//! brain; and an old primary that comes back writable fences itself.

use std::time::{Duration, Instant};

use failover_watchdog_rig::writer::{self, Writer};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_cycle_ends_in_the_original_roles_with_every_acknowledged_write() {
    let mut rig = stage().await;
    rig.write_config(&rig.pair_config());
    let host = rig.primary_host();
    let standby = rig.spawn_daemon();
    let primary = host.spawn_daemon();
    rig.wait_for_status("the standby's role", Duration::from_secs(30), |s| {
        s["role"] == "standby" && s["state"] == "monitoring"
    })
    .await;
    wait_for_host_status(&host, "the primary's role", |s| s["role"] == "primary").await;
    let strength = pair_strength(&rig).await;
    let hung_before = hang_detected_in(&rig).await;
    let writer = Writer::start([&rig.db.primary, &rig.db.replica], 1);
    writer
        .wait_for_acks(100, Duration::from_secs(30))
        .await
        .unwrap();

    // 1. The primary's database dies; the standby's daemon promotes it on its own.
    rig.db.primary.kill9();
    let killed = Instant::now();
    rig.wait_for_status("the automatic promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted" && s["role"] == "primary"
    })
    .await;
    let promoted_before = killed.elapsed();
    assert!(rig.dns_points_at_standby());
    let before = writer.acked();
    writer
        .wait_for_acks(before + 100, Duration::from_secs(30))
        .await
        .expect("writes go on, to the promoted standby");

    // 2. The old primary comes back the way a crashed semi-sync primary should (read-only;
    //    what no replica acknowledged is dropped at recovery), and rejoins.
    rig.db.primary.start_again_as_replica().await.unwrap();
    let rejoin = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoin.code, Some(0), "rejoin: {rejoin:?}");
    wait_for_host_status(&host, "the rejoined host's role", |s| {
        s["role"] == "standby"
    })
    .await;

    // 3. Back to the original roles, planned, on the old primary.
    let switchover = host.run(&["switchover", "--yes"]).await;
    assert_eq!(switchover.code, Some(0), "switchover: {switchover:?}");
    let before = writer.acked();
    writer
        .wait_for_acks(before + 100, Duration::from_secs(30))
        .await
        .expect("writes go on, to the original primary");

    // Both daemons show their roles; the standby re-armed itself (its promotion archived,
    // its units stopped) without anyone running `reset`.
    let status = wait_for_host_status(&host, "the original primary's role", |s| {
        s["role"] == "primary" && s["state"] == "promoted"
    })
    .await;
    assert_eq!(status["promotion"]["trigger"], "switchover", "{status:#}");
    let status = rig
        .wait_for_status("the standby re-armed", Duration::from_secs(60), |s| {
            s["role"] == "standby" && s["state"] == "monitoring" && s["promotion"].is_null()
        })
        .await;
    assert_eq!(status["consecutive_failures"], 0, "{status:#}");
    wait_for_alert(&rig, NODE, "healthy standby again").await;
    assert!(UNITS.iter().all(|u| !rig.systemctl.is_active(u)));
    assert!(UNITS.iter().all(|u| host.systemctl.is_active(u)));

    // DNS points at the original primary, which the replica replicates from again.
    for id in [&rig.records.app, &rig.records.www] {
        assert_eq!(rig.dns(id), OLD_PRIMARY_ADDRESS);
    }
    let replication = rig.db.replica_status().await.unwrap();
    assert_eq!(
        replication.get("Master_Port").map(String::as_str),
        Some(rig.db.primary.port().to_string().as_str()),
        "{replication:?}"
    );
    assert_eq!(rig.db.replica.global_var("read_only").await.unwrap(), "1");
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");

    // Every acknowledged write is on the final primary.
    let acks = writer.stop().await;
    let lost = writer::missing_on(&acks, &rig.db.primary).await.unwrap();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are missing on the final primary: {:?}",
        lost.len(),
        acks.len(),
        &lost[..lost.len().min(20)]
    );
    // 4. The round trip left the pair as strong as it found it (issue 18): the same
    //    channel settings and semi-sync sides, no false alarm once healthy, a hung and a
    //    dead primary caught as fast as before.
    assert_eq!(pair_strength(&rig).await, strength);
    let healthy_from = rig.telegram.messages().len();
    let hung_after = hang_detected_in(&rig).await;
    assert!(
        hung_after <= hung_before * 2 + Duration::from_secs(2),
        "a hung primary took {hung_after:?} to be confirmed, {hung_before:?} before the cycle"
    );
    rig.db.primary.kill9();
    let killed = Instant::now();
    rig.wait_for_status("the second promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted" && s["role"] == "primary"
    })
    .await;
    let promoted_after = killed.elapsed();
    assert!(
        promoted_after <= promoted_before * 2 + Duration::from_secs(2),
        "the second promotion took {promoted_after:?}, the first {promoted_before:?}"
    );
    let false_alarms: Vec<String> = rig.telegram.messages()[healthy_from..]
        .iter()
        .map(|m| m.text.clone())
        .filter(|t| t.contains("SPLIT BRAIN") || t.contains("TWO PRIMARIES"))
        .collect();
    assert!(false_alarms.is_empty(), "{false_alarms:?}");

    // 5. The old primary comes back writable (no `read_only` in its my.cnf) while DNS
    //    points at its peer: its own daemon fences it (issue 18, item 12).
    rig.db.primary.start_again_writable().await.unwrap();
    let started = Instant::now();
    loop {
        if rig.db.primary.global_var("read_only").await.ok().as_deref() == Some("1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the old primary was not fenced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fenced_in = started.elapsed();
    eprintln!(
        "cycle: first promotion {promoted_before:?}, second {promoted_after:?}; a hung primary confirmed in {hung_before:?} before, {hung_after:?} after; the returning old primary read-only {fenced_in:?} after its start"
    );
    wait_for_alert(&rig, PRIMARY_NODE, "fenced itself").await;
    assert!(UNITS.iter().all(|u| !host.systemctl.is_active(u)));
    let _ = (standby.stop().await, primary.stop().await);
}

/// What makes the pair strong, read from both servers: each one's semi-sync sides, and
/// the standby's channel settings.
async fn pair_strength(rig: &Stage) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, db) in [("primary", &rig.db.primary), ("standby", &rig.db.replica)] {
        for var in [
            "rpl_semi_sync_master_enabled",
            "rpl_semi_sync_slave_enabled",
        ] {
            found.push((format!("{name} {var}"), db.global_var(var).await.unwrap()));
        }
    }
    let channel = rig.db.replica_status().await.unwrap();
    for column in [
        "Slave_heartbeat_period",
        "Connect_Retry",
        "Master_SSL_Allowed",
        "Master_SSL_Verify_Server_Cert",
        "Master_SSL_CA_File",
    ] {
        let value = channel.get(column).cloned().unwrap_or_default();
        found.push((format!("standby's channel {column}"), value));
    }
    found
}

/// How long the standby's daemon takes to confirm a hung primary (SIGSTOP): the rounds
/// fail and replication confirms the silence. Automatic promotion is paused meanwhile,
/// and the primary thawed and healthy again before it returns.
async fn hang_detected_in(rig: &Stage) -> Duration {
    let paused = rig.run(&["pause", "--reason", "measuring detection"]).await;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    rig.db.primary.sigstop();
    let frozen = Instant::now();
    rig.wait_for_status("a confirmed hang", Duration::from_secs(60), |s| {
        s["verdict"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replication confirms"))
    })
    .await;
    let took = frozen.elapsed();
    rig.db.primary.sigcont();
    rig.wait_for_status(
        "the primary answering again",
        Duration::from_secs(30),
        |s| s["last_probe"]["ok"] == true,
    )
    .await;
    let resumed = rig.run(&["resume"]).await;
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    took
}

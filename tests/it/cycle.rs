//! The whole way there and back on the real pair, both daemons running with mirrored
//! configs, under a write load that follows the writable server and records every
//! acknowledged write: kill -9 the primary → automatic promotion → restart the old
//! primary → `rejoin` on it → `switchover` on it → the original roles again.

use std::collections::BTreeSet;
use std::time::Duration;

use failover_watchdog_rig::writer::Writer;

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
    let writer = Writer::start([&rig.db.primary, &rig.db.replica], 1);
    writer
        .wait_for_acks(100, Duration::from_secs(30))
        .await
        .unwrap();

    // 1. The primary's database dies; the standby's daemon promotes it on its own.
    rig.db.primary.kill9();
    rig.wait_for_status("the automatic promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted" && s["role"] == "primary"
    })
    .await;
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
    let on_primary: BTreeSet<u64> = rig
        .db
        .primary
        .app_write_ids()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<u64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !on_primary.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are missing on the final primary: {:?}",
        lost.len(),
        acks.len(),
        &lost[..lost.len().min(20)]
    );
    let _ = (standby.stop().await, primary.stop().await);
}

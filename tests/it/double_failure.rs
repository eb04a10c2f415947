//! Two failures in a row (issue 18, item 11): the standby goes down, the primary takes
//! writes the standby never receives, the primary dies; then the standby comes back.

use std::time::Duration;

use crate::support::*;

/// The bug: at its start the daemon reloaded its last reading of the replica
/// ("replicating, 0 s behind", from before it went down), its lag guard trusted it, and
/// it promoted 1.7 s later without the 100 writes, the PROMOTED alert saying "nothing it
/// had then was lost". A reading from before this daemon started proves nothing: it
/// holds, says why, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_standby_restarted_after_a_double_failure_holds_and_says_why() {
    let mut rig = stage().await;
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true && !s["replication_seen"].is_null()
    })
    .await;
    let _ = daemon.stop().await;
    rig.db.replica.kill9();
    // A semi-sync primary waits out its timeout for the missing replica, then goes on.
    rig.db
        .primary
        .execute("SET GLOBAL rpl_semi_sync_master_timeout = 100")
        .await
        .unwrap();
    for id in 0..100 {
        rig.db
            .primary
            .execute(&format!(
                "INSERT INTO app.writes (id, payload) VALUES ({}, 'never replicated')",
                8000 + id
            ))
            .await
            .unwrap();
    }
    rig.db.primary.kill9();
    rig.db.replica.start_again().await.unwrap();

    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("the lag guard holding", Duration::from_secs(30), |s| {
            !s["held"].is_null()
        })
        .await;
    let held = status["held"].as_str().unwrap();
    assert!(held.contains("since this daemon started"), "{status:#}");
    assert_eq!(status["state"], "halted", "{status:#}");
    assert!(status["promotion"].is_null(), "{status:#}");
    let alert = wait_for_alert(&rig, NODE, "NOT promoting automatically").await;
    assert!(alert.contains("since this daemon started"), "{alert}");
    assert_eq!(
        rig.replica_read_only().await,
        "1",
        "nothing was made writable"
    );
    assert!(rig.systemctl.started().is_empty());
    assert_eq!(rig.cloudflare.patch_count(), 0);
    let (_, log) = daemon.stop().await;
    assert!(!log.contains("step stop_replica"), "{log}");
}

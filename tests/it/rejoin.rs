//! The way back, first half: after the standby was promoted and the old primary came
//! back (kill -9, restarted writable), `rejoin` on the old primary makes it the new
//! primary's caught-up replica; it refuses, changing nothing, when the old primary holds
//! a transaction the new one lacks; a killed rejoin resumes.

use std::time::Duration;

use failover_watchdog::crashpoint;

use crate::support::*;

const STEPS: [&str; 6] = [
    "stop_apps",
    "make_read_only",
    "replicate",
    "catch_up",
    "clear_promotion",
    "notify",
];

/// The standby promoted by an operator on a pair config, then the old primary killed
/// and started again (writable, not replicating); the old primary's host.
async fn promoted_and_old_primary_back() -> (Stage, Host) {
    let mut rig = stage().await;
    rig.write_config(&rig.pair_config());
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let promoted = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(promoted.code, Some(0), "{promoted:?}");
    rig.db.primary.kill9();
    rig.db.primary.start_again().await.unwrap();
    // The rig starts it as a semi-sync primary again: `rejoin` turns that side off (a
    // replica would wait for acknowledgements nobody sends).
    let host = rig.primary_host();
    (rig, host)
}

/// The rejoin journal's steps as `status --json` shows them: (name, status).
fn rejoin_steps(status: &serde_json::Value) -> Vec<(String, String)> {
    status["rejoin"]["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn all_done() -> Vec<(String, String)> {
    STEPS
        .iter()
        .map(|s| (s.to_string(), "done".to_string()))
        .collect()
}

/// The old primary as a rejoin leaves it: read-only, both threads running from the new
/// primary's port, the row written there present.
async fn assert_rejoined(rig: &Stage, row: u64) {
    let old = &rig.db.primary;
    assert_eq!(old.global_var("read_only").await.unwrap(), "1");
    let replication = old.slave_status().await.unwrap().expect("replicating");
    assert_eq!(
        replication["Master_Port"],
        rig.db.replica.port().to_string()
    );
    assert_eq!(replication["Slave_IO_Running"], "Yes", "{replication:?}");
    assert_eq!(replication["Slave_SQL_Running"], "Yes", "{replication:?}");
    assert!(
        old.app_write_ids().await.unwrap().contains(&row),
        "the row written on the new primary arrived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejoin_makes_the_old_primary_a_caught_up_replica_of_the_new_one() {
    let (rig, host) = promoted_and_old_primary_back().await;
    rig.db
        .replica
        .execute("INSERT INTO app.writes (id, payload) VALUES (9001, 'on the new primary')")
        .await
        .unwrap();

    // Neither the dry run nor a rejoin without --yes and without a terminal changes
    // anything.
    let plan = host.run(&["rejoin", "--dry-run"]).await;
    assert_eq!(plan.code, Some(0), "{plan:?}");
    for expected in [
        "stop_apps",
        "app.service, php-fpm.service",
        "make_read_only",
        "read_only = OFF",
        "replicate",
        &format!("MASTER_PORT = {}", rig.db.replica.port()),
        "catch_up",
        "clear_promotion",
        "notify",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks {expected:?}:\n{}",
            plan.stdout
        );
    }
    let unconfirmed = host.run(&["rejoin"]).await;
    assert_eq!(unconfirmed.code, Some(2), "{unconfirmed:?}");
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert!(rig.db.primary.slave_status().await.unwrap().is_none());
    assert!(host.systemctl.stopped().is_empty());
    assert!(!host.state_dir().join("rejoin.json").exists());

    let rejoined = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoined.code, Some(0), "{rejoined:?}");
    assert_rejoined(&rig, 9001).await;
    let reversed: Vec<&str> = UNITS.iter().rev().copied().collect();
    assert_eq!(host.systemctl.stopped(), reversed);
    let status = host.status().await;
    assert_eq!(status["rejoin"]["outcome"], "rejoined", "{status:#}");
    assert_eq!(rejoin_steps(&status), all_done());
    // The command waits for its alerts before it exits.
    let alert = rig
        .telegram
        .messages()
        .into_iter()
        .find(|m| m.text.contains("REJOINED"))
        .expect("the rejoined alert was sent");
    assert!(
        alert.text.contains(&format!("[{PRIMARY_NODE}]")) && alert.text.contains("catch_up"),
        "{}",
        alert.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejoin_refuses_an_old_primary_holding_a_transaction_the_new_one_lacks() {
    let (rig, host) = promoted_and_old_primary_back().await;
    let old = &rig.db.primary;
    old.execute("INSERT INTO app.writes (id, payload) VALUES (7001, 'errant')")
        .await
        .unwrap();
    let errant = old.global_var("gtid_binlog_pos").await.unwrap();

    let refused = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(refused.code, Some(3), "{refused:?}");
    for expected in [
        errant.as_str(),
        "mysql-bin.0",
        "mariadb-binlog --start-position=",
        "RESET MASTER",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "the refusal lacks {expected:?}: {}",
            refused.stderr
        );
    }
    // Nothing changed.
    assert_eq!(old.global_var("read_only").await.unwrap(), "0");
    assert!(old.slave_status().await.unwrap().is_none());
    assert!(host.systemctl.stopped().is_empty());
    assert!(!host.state_dir().join("rejoin.json").exists());
    let alerts = rig.telegram.messages();
    assert!(
        alerts
            .iter()
            .any(|m| m.text.contains("rejoin REFUSED") && m.text.contains(&errant)),
        "{alerts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejoin_killed_after_replicate_resumes_there_and_finishes() {
    let (rig, host) = promoted_and_old_primary_back().await;
    let killed = host
        .command(&["rejoin", "--yes"])
        .env(crashpoint::ENV, "after:replicate")
        .output()
        .await
        .unwrap();
    assert_eq!(
        killed.status.code(),
        None,
        "killed at the crash point (a build with test-seams): {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let status = host.status().await;
    assert_eq!(status["rejoin"]["outcome"], "running", "{status:#}");
    let expected: Vec<(String, String)> = STEPS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = match i {
                0 | 1 => "done",
                2 => "running",
                _ => "pending",
            };
            (s.to_string(), state.to_string())
        })
        .collect();
    assert_eq!(rejoin_steps(&status), expected);

    rig.db
        .replica
        .execute("INSERT INTO app.writes (id, payload) VALUES (9002, 'meanwhile')")
        .await
        .unwrap();
    let resumed = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert_rejoined(&rig, 9002).await;
    let status = host.status().await;
    assert_eq!(rejoin_steps(&status), all_done());
    let attempts = |step: usize| status["rejoin"]["steps"][step]["attempts"].as_u64();
    assert_eq!(attempts(0), Some(1), "stop_apps is not run again");
    assert_eq!(attempts(2), Some(2), "replicate is run again");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejoin_needs_a_peer_table_and_a_peer_that_is_the_writable_primary() {
    let rig = stage().await;
    let no_peer = rig.run(&["rejoin", "--yes"]).await;
    assert_eq!(no_peer.code, Some(78), "{no_peer:?}");
    assert!(no_peer.stderr.contains("peer"), "{}", no_peer.stderr);

    // Before any promotion the primary's peer is the standby: read-only, replicating.
    let host = rig.primary_host();
    let refused = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stderr.contains("is not the writable primary"),
        "{}",
        refused.stderr
    );
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert!(rig.db.primary.slave_status().await.unwrap().is_none());
    assert!(host.systemctl.stopped().is_empty());
}

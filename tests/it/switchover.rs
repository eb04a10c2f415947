//! `switchover`: on the real pair, under an application's writes; the fence undone
//! when the standby cannot catch up; a killed switchover resumed; refusals and the dry
//! run changing nothing.

use std::time::Duration;

use failover_watchdog::crashpoint;
use failover_watchdog_rig::writer::{self, Writer};
use serde_json::Value;

use crate::support::*;

/// A stage whose standby's config has `[peer]`: a mirrored pair.
async fn pair() -> Stage {
    let rig = stage().await;
    rig.write_config(&rig.pair_config());
    rig
}

fn journal_exists(rig: &Stage) -> bool {
    rig.state_dir().join("promotion.json").exists()
}

/// The old primary is read-only and replicates from the standby's database, running.
async fn primary_replicates_from_standby(rig: &Stage) {
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "1");
    let status = rig.db.primary.slave_status().await.unwrap();
    let status = status.expect("the old primary has a replication connection");
    assert_eq!(
        status["Master_Port"],
        rig.db.replica.port().to_string(),
        "{status:?}"
    );
    assert_eq!(status["Slave_IO_Running"], "Yes", "{status:?}");
    assert_eq!(status["Slave_SQL_Running"], "Yes", "{status:?}");
}

/// Nothing changed: the primary writable, the standby a read-only running replica of
/// it, DNS where it was, no journal.
async fn nothing_changed(rig: &Stage) {
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert_eq!(rig.replica_read_only().await, "1");
    let replica = rig.db.replica_status().await.unwrap();
    assert_eq!(replica["Slave_IO_Running"], "Yes", "{replica:?}");
    assert_eq!(replica["Slave_SQL_Running"], "Yes", "{replica:?}");
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);
    assert!(!journal_exists(rig), "no journal is left");
}

fn drill(status: &Value) -> &Value {
    &status["promotion"]["switchover"]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_under_write_load_loses_no_acknowledged_write() {
    let rig = pair().await;
    let writer = Writer::start([&rig.db.primary, &rig.db.replica], 1_000_000);
    writer
        .wait_for_acks(200, Duration::from_secs(30))
        .await
        .unwrap();

    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("nothing lost"), "{}", run.stdout);
    let before = writer.acked();
    writer
        .wait_for_acks(before + 200, Duration::from_secs(30))
        .await
        .unwrap();
    let acks = writer.stop().await;

    primary_replicates_from_standby(&rig).await;
    assert_eq!(rig.replica_read_only().await, "0");
    assert!(rig.dns_points_at_standby());
    let missing = writer::missing_on(&acks, &rig.db.replica).await.unwrap();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(
        acks.iter().any(|a| a.port == rig.db.primary.port())
            && acks.last().unwrap().port == rig.db.replica.port(),
        "writes went to the primary, then to the new one"
    );

    let status = rig.status().await;
    assert_eq!(status["promotion"]["trigger"], "switchover");
    assert_eq!(status["promotion"]["outcome"], "promoted");
    assert_eq!(drill(&status)["lost"], false, "{status:#}");
    for time in ["fenced_at", "caught_up_at", "writable_at", "dns_at"] {
        assert!(drill(&status)[time].is_string(), "{time}: {status:#}");
    }
    assert_eq!(
        drill(&status)["final_position"],
        drill(&status)["applied_position"]
    );
    let alert = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(
        alert
            .iter()
            .any(|m| m.text.contains("SWITCHED OVER") && m.text.contains("nothing lost")),
        "{alert:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_that_cannot_catch_up_undoes_the_fence_and_changes_nothing() {
    let rig = stage().await;
    rig.write_config(&format!(
        "{}switchover_timeout = \"2s\"\n",
        rig.pair_config()
    ));
    // The replica's SQL thread waits for this lock: the rows reach it, unapplied.
    let blocker = hold_the_relay_log(&rig, 3).await;

    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("switchover abandoned, nothing changed"),
        "{}",
        run.stderr
    );
    drop(blocker);
    nothing_changed(&rig).await;
    let archived = std::fs::read_dir(rig.state_dir())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("promotion."));
    assert!(archived, "the abandoned journal is archived");
    let alerts = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(
        alerts
            .iter()
            .any(|m| m.text.contains("switchover ABANDONED")),
        "{alerts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_killed_after_make_writable_resumes_and_finishes() {
    let rig = pair().await;
    let output = rig
        .command(&["switchover", "--yes"])
        .env(crashpoint::ENV, "after:make_writable")
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        None,
        "killed at the crash point: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = rig.status().await;
    assert_eq!(status["promotion"]["outcome"], "running");

    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("resuming"), "{}", run.stdout);
    let status = rig.status().await;
    let done: Vec<(String, String)> = steps(&status);
    assert_eq!(done, all_switchover_steps("done"), "{status:#}");
    primary_replicates_from_standby(&rig).await;
    assert!(rig.dns_points_at_standby());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_killed_after_the_fence_is_resumed_by_the_daemon_at_its_start() {
    let rig = pair().await;
    let output = rig
        .command(&["switchover", "--yes"])
        .env(crashpoint::ENV, "after:fence_primary")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), None, "killed at the crash point");
    assert_eq!(
        rig.db.primary.global_var("read_only").await.unwrap(),
        "1",
        "left fenced"
    );
    // The host reboots: the daemon finds the running journal and finishes it.
    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("the resumed switchover", Duration::from_secs(60), |s| {
            s["promotion"]["outcome"] == "promoted"
        })
        .await;
    assert_eq!(status["promotion"]["trigger"], "switchover", "{status:#}");
    assert_eq!(steps(&status), all_switchover_steps("done"), "{status:#}");
    primary_replicates_from_standby(&rig).await;
    assert!(rig.dns_points_at_standby());
    let (_, log) = daemon.stop().await;
    assert!(log.contains("resuming"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pre_check_refuses_and_changes_nothing() {
    let rig = pair().await;
    rig.db.replica.execute("STOP SLAVE").await.unwrap();
    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.contains("this host is a standby") && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    rig.db.replica.execute("START SLAVE").await.unwrap();
    rig.db
        .wait_replica_running(Duration::from_secs(10))
        .await
        .unwrap();
    nothing_changed(&rig).await;

    // Without [peer] there is nothing to switch over from: a config error naming it.
    rig.write_config(&rig.config());
    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(78), "{run:?}");
    assert!(run.stderr.contains("peer"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let rig = pair().await;
    // As the daemon leaves it once it has run: the promotion_plan check wants it.
    std::fs::create_dir_all(rig.state_dir()).unwrap();
    let run = rig.run(&["switchover", "--dry-run"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    for step in all_switchover_steps("") {
        assert!(run.stdout.contains(&step.0), "{}: {}", step.0, run.stdout);
    }
    assert!(
        run.stdout.contains(&format!(
            "CHANGE MASTER TO 127.0.0.1:{}",
            rig.db.replica.port()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("All pre-checks passed"),
        "{}",
        run.stdout
    );
    nothing_changed(&rig).await;
    assert!(rig.telegram.messages().is_empty());
}

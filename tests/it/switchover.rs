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

/// `switchover --yes` started in the background, its output collected.
fn spawn_switchover(rig: &Stage) -> tokio::process::Child {
    rig.command(&["switchover", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGINT to `child`, as Ctrl-C at the operator's terminal; then its output.
async fn interrupt(child: tokio::process::Child) -> Run {
    let pid = child.id().expect("it runs") as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it ends within 30 s of SIGINT")
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Waits until the journal says `step` runs.
async fn wait_for_step_running(rig: &Stage, step: &'static str) {
    rig.wait_for_status(step, Duration::from_secs(30), |s| {
        steps(s)
            .iter()
            .any(|(name, state)| name == step && state == "running")
    })
    .await;
}

/// Runs `switchover --yes` killed at `crash_at` (a crash point).
async fn crashed_switchover(rig: &Stage, crash_at: &str) {
    let output = rig
        .command(&["switchover", "--yes"])
        .env(crashpoint::ENV, crash_at)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), None, "killed at {crash_at}");
}

fn archived_journals(rig: &Stage) -> usize {
    std::fs::read_dir(rig.state_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("promotion.")
                && !["promotion.lock", "promotion.json"].contains(&name.as_str())
        })
        .count()
}

/// Issue 18, item 8: Ctrl-C during the catch-up exited 130, printed nothing, and left
/// both databases read-only with `status` saying `promoting`. Before this host is
/// writable a stop cuts the wait short, undoes the fence and says so.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_catch_up_undoes_the_fence_and_says_so() {
    let rig = stage().await;
    rig.write_config(&format!(
        "{}switchover_timeout = \"120s\"\n",
        rig.pair_config()
    ));
    // The replica's SQL thread waits for this lock: catch_up waits with it.
    let blocker = hold_the_relay_log(&rig, 3).await;
    let child = spawn_switchover(&rig);
    wait_for_step_running(&rig, "catch_up").await;
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "1");

    let started = tokio::time::Instant::now();
    let run = interrupt(child).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the catch-up was cut short, not waited out: {:?}",
        started.elapsed()
    );
    assert_eq!(run.code, Some(130), "{run:?}");
    assert!(
        run.stderr.contains("interrupted")
            && run.stderr.contains("switchover abandoned, nothing changed")
            && run.stderr.contains("read_only = OFF again"),
        "{}",
        run.stderr
    );
    assert_eq!(archived_journals(&rig), 1, "the journal is archived");
    drop(blocker);
    nothing_changed(&rig).await;
    let alerts = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(
        alerts.iter().any(|m| m
            .text
            .contains("switchover ABANDONED (stopped by an operator)")),
        "{alerts:?}"
    );
}

/// Issue 18, item 8, the other half: a stop once this host has begun to take over
/// lets the switchover finish (stopping there would leave neither side writable), and
/// says so.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_past_the_point_of_no_return_finishes_the_switchover_and_says_so() {
    let rig = pair().await;
    // update_dns retries these for a few seconds: long enough to be interrupted in.
    rig.cloudflare.inject(vec![
        failover_watchdog_rig::cloudflare::Fault::Status(503);
        8
    ]);
    let child = spawn_switchover(&rig);
    wait_for_step_running(&rig, "update_dns").await;
    let run = interrupt(child).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("past its point of no return")
            && run.stderr.contains("it was finished"),
        "{}",
        run.stderr
    );
    let status = rig.status().await;
    assert_eq!(steps(&status), all_switchover_steps("done"), "{status:#}");
    assert!(rig.dns_points_at_standby());
    primary_replicates_from_standby(&rig).await;
}

/// Issue 18, item 7: a switchover whose fence failed and whose undo failed (the primary
/// died between the pre-checks and the fence) halted, and the daemon then stayed
/// `halted` when the primary really was dead. Now it is abandoned all the same, loudly,
/// and the daemon promotes this host.
#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_whose_fence_and_undo_fail_stands_in_no_failovers_way() {
    let mut rig = pair().await;
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    crashed_switchover(&rig, "before:fence_primary").await;
    rig.db.primary.kill9();

    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("switchover abandoned, but undoing it FAILED")
            && run.stderr.contains("stands in the way of no failover"),
        "{}",
        run.stderr
    );
    assert!(!journal_exists(&rig), "archived");
    wait_for_alert(&rig, NODE, "undoing the fence FAILED").await;

    let status = rig
        .wait_for_status("the failover", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(status["promotion"]["trigger"], "automatic", "{status:#}");
    assert_eq!(rig.replica_read_only().await, "0");
    daemon.stop().await;
}

/// Issue 18, item 7: a `[peer]` account without `READ_ONLY ADMIN` fenced nothing, could
/// not undo, and halted saying the peer "still refuses writes" while it took them. The
/// pre-checks now refuse it; and a fence that failed is undone only after reading that
/// there is something to undo.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_account_that_cannot_fence_is_refused_and_a_failed_fence_is_never_claimed() {
    let rig = pair().await;
    crashed_switchover(&rig, "before:fence_primary").await;
    rig.db
        .primary
        .execute("REVOKE READ_ONLY ADMIN ON *.* FROM 'failover'@'%'")
        .await
        .unwrap();

    // Resumed (no pre-checks): the fence fails and there is nothing to undo.
    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("switchover abandoned, nothing changed")
            && run
                .stderr
                .contains("read_only is OFF: it takes writes, nothing to undo"),
        "{}",
        run.stderr
    );
    nothing_changed(&rig).await;

    // A new one: the pre-checks read the account's grants first.
    let run = rig.run(&["switchover", "--yes"]).await;
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.contains("the [peer] account's grants")
            && run
                .stderr
                .contains("lacks READ_ONLY ADMIN for SET GLOBAL read_only"),
        "{}",
        run.stderr
    );
    nothing_changed(&rig).await;
}

/// Issue 18, item 8: `reset --yes` archived a switchover journal whose fence was on,
/// leaving both databases read-only. It is refused while the fenced peer is read-only,
/// saying what to run; once the fence is off, reset archives it.
#[tokio::test(flavor = "multi_thread")]
async fn reset_refuses_to_archive_a_switchover_whose_fence_is_on() {
    let rig = pair().await;
    crashed_switchover(&rig, "after:fence_primary").await;
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "1");

    let run = rig.run(&["reset", "--yes"]).await;
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.contains("read_only = ON there now")
            && run.stderr.contains("failover-watchdog switchover --yes")
            && run.stderr.contains("SET GLOBAL read_only = OFF"),
        "{}",
        run.stderr
    );
    assert!(journal_exists(&rig), "kept");

    rig.db
        .primary
        .execute("SET GLOBAL read_only = OFF")
        .await
        .unwrap();
    let run = rig.run(&["reset", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!journal_exists(&rig));
}

/// Issue 18, item 6: a `[peer]` that is this host's own database (here through a relay,
/// so no config check can tell) is refused by the pre-checks, naming both server ids.
#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_whose_peer_is_this_hosts_own_database_is_refused_naming_both() {
    let rig = stage().await;
    let own = std::net::SocketAddr::from(([127, 0, 0, 1], rig.db.replica.port()));
    let link = failover_watchdog_rig::link::Link::start(own).await.unwrap();
    let peer = rig.peer_table_for_standby().replace(
        &format!("port = {}", rig.db.primary.port()),
        &format!("port = {}", link.port()),
    );
    rig.write_config(&format!("{}{peer}", rig.config()));
    std::fs::create_dir_all(rig.state_dir()).unwrap();

    for args in [&["switchover", "--dry-run"][..], &["switchover", "--yes"]] {
        let run = rig.run(args).await;
        assert_ne!(run.code, Some(0), "{args:?}: {run:?}");
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(
            said.contains("PRE-CHECK FAILED: the peer is another server")
                && said.contains("has server_id 2, the same as this host's own"),
            "{args:?}: {said}"
        );
    }
    assert!(!journal_exists(&rig));
    assert_eq!(rig.replica_read_only().await, "1");
}

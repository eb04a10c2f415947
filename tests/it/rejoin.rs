//! The way back, first half: after the standby was promoted and the old primary came
//! back (kill -9, restarted writable), `rejoin` on the old primary makes it the new
//! primary's caught-up replica; it refuses, changing nothing, when the old primary holds
//! a transaction the new one lacks; a killed rejoin resumes.

use std::time::Duration;

use failover_watchdog::crashpoint;
use failover_watchdog_rig::mariadb;

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

/// The old primary host's `[peer]` table (the last of its config) with `extra` keys.
fn with_peer_keys(host: &Host, extra: &str) {
    host.write_config(&format!("{}{extra}\n", host.config()));
}

/// The archived rejoin journals in the host's state directory.
fn archived_rejoins(host: &Host) -> Vec<String> {
    std::fs::read_dir(host.state_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("rejoin.") && name != "rejoin.json")
        .collect()
}

/// Issue 18, item 6: a `[peer]` that is this host's own database (through a relay, so
/// no config check can tell): `rejoin --dry-run` said the checks pass and `rejoin --yes`
/// made the only primary read-only. Both are refused, naming both server ids, and
/// nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn rejoin_against_this_hosts_own_database_is_refused_naming_both() {
    let rig = stage().await;
    let host = rig.primary_host();
    let own = std::net::SocketAddr::from(([127, 0, 0, 1], rig.db.primary.port()));
    let link = failover_watchdog_rig::link::Link::start(own).await.unwrap();
    let standby = rig.db.replica.port();
    // Its [peer] (the last table) names the standby's port: the relay instead.
    let config = host.config();
    let at = config.rfind("[peer]").unwrap();
    let peer = config[at..].replace(
        &format!("port = {standby}"),
        &format!("port = {}", link.port()),
    );
    host.write_config(&format!("{}{peer}", &config[..at]));

    for args in [&["rejoin", "--dry-run"][..], &["rejoin", "--yes"]] {
        let run = host.run(args).await;
        assert_eq!(run.code, Some(3), "{args:?}: {run:?}");
        assert!(
            run.stderr
                .contains("has server_id 1, the same as this host's own")
                && run.stderr.contains("Nothing was changed"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert!(rig.db.primary.slave_status().await.unwrap().is_none());
    assert!(host.systemctl.stopped().is_empty());
    assert!(!host.state_dir().join("rejoin.json").exists());
}

/// Issue 18, item 9: a rejoin whose `catch_up` failed (a wrong replication password)
/// waited out the whole `catch_up_timeout`, then failed the same way for ever once the
/// password was fixed, because `replicate` was done and never ran again. It fails at
/// once, and the next run sets replication up again before it waits.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejoin_whose_catch_up_failed_fails_at_once_and_is_retried_from_replicate() {
    let (rig, host) = promoted_and_old_primary_back().await;
    with_peer_keys(&host, "catch_up_timeout = \"120s\"");
    let password = host.dir.join("replication.password");
    let right = std::fs::read_to_string(&password).unwrap();
    std::fs::write(&password, "not-the-password\n").unwrap();

    let started = tokio::time::Instant::now();
    let failed = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed at once, not after catch_up_timeout: {:?}",
        started.elapsed()
    );
    assert!(
        failed.stderr.contains("the rejoin halted at step catch_up")
            && failed.stderr.contains("IO thread error 1045"),
        "{}",
        failed.stderr
    );

    std::fs::write(&password, right).unwrap();
    rig.db
        .replica
        .execute("INSERT INTO app.writes (id, payload) VALUES (9003, 'meanwhile')")
        .await
        .unwrap();
    let rejoined = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoined.code, Some(0), "{rejoined:?}");
    assert_rejoined(&rig, 9003).await;
    let status = host.status().await;
    assert_eq!(status["rejoin"]["outcome"], "rejoined", "{status:#}");
    let attempts = |step: usize| status["rejoin"]["steps"][step]["attempts"].as_u64();
    assert_eq!(attempts(1), Some(1), "make_read_only is not run again");
    assert_eq!(attempts(2), Some(2), "replicate is run again");
    assert_eq!(attempts(3), Some(2));
}

/// Issue 18, item 13: a primary that purged the binary logs the old primary needs made
/// `rejoin` fail with MariaDB's error 1236 and advise "fix the cause, then run rejoin
/// again", which cannot help. The pre-checks find it before anything changes, and say
/// the host must be rebuilt from a backup of the primary, and how; where they cannot
/// read the primary's binary logs, `catch_up` fails at once on 1236 with the same
/// advice.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejoin_against_a_primary_that_purged_what_it_needs_says_to_rebuild_from_a_backup() {
    use mysql_async::prelude::Queryable;
    let (rig, host) = promoted_and_old_primary_back().await;
    let mut new_primary = rig.db.replica.root_conn().await.unwrap();
    for id in [9101, 9102] {
        new_primary
            .exec_drop(
                "INSERT INTO app.writes (id, payload) VALUES (?, 'after the failover')",
                (id,),
            )
            .await
            .unwrap();
        new_primary.query_drop("FLUSH BINARY LOGS").await.unwrap();
    }
    let row: mysql_async::Row = new_primary
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    let current: String = row.get("File").unwrap();
    new_primary
        .query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
        .await
        .unwrap();

    let refused = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(refused.code, Some(3), "{refused:?}");
    for expected in [
        "no longer has the binary logs this host needs",
        "error 1236",
        "Nothing was changed",
        "rebuilt from a backup of the primary",
        "mariadb-backup --backup",
        "SET GLOBAL gtid_slave_pos",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert!(host.systemctl.stopped().is_empty());
    wait_for_alert(&rig, PRIMARY_NODE, "rejoin IMPOSSIBLE").await;

    // The peer's account may not read the binary logs: replication finds out instead.
    new_primary
        .query_drop("REVOKE BINLOG MONITOR ON *.* FROM 'failover'@'%'")
        .await
        .unwrap();
    with_peer_keys(&host, "catch_up_timeout = \"120s\"");
    let started = tokio::time::Instant::now();
    let failed = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        failed.stderr.contains("IO thread error 1236")
            && failed.stderr.contains("rejoin cannot help")
            && failed.stderr.contains("mariadb-backup --backup"),
        "{}",
        failed.stderr
    );
    let alerts = rig.telegram.messages();
    assert_eq!(
        alerts
            .iter()
            .filter(|m| m.text.contains("rejoin IMPOSSIBLE"))
            .count(),
        2,
        "{alerts:?}"
    );
}

/// Issue 18: a finished rejoin's journal was replaced by the next `rejoin`, losing the
/// drill history. It is archived as `rejoin.<time>.json`; `status` shows the last one.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_rejoin_is_archived_not_replaced_and_status_shows_it() {
    let (_rig, host) = promoted_and_old_primary_back().await;
    let rejoined = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoined.code, Some(0), "{rejoined:?}");
    assert!(!host.state_dir().join("rejoin.json").exists());
    let archived = archived_rejoins(&host);
    assert_eq!(archived.len(), 1, "{archived:?}");
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.state_dir().join(&archived[0])).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["outcome"], "rejoined");
    let status = host.status().await;
    assert_eq!(status["rejoin"]["outcome"], "rejoined", "{status:#}");
    assert_eq!(rejoin_steps(&status), all_done());
}

/// Issue 18, item 8: a stop during a one-shot command must leave a journal that says
/// what happened, never a `running` one nobody runs. Ctrl-C during `catch_up` cuts the
/// wait short and halts the rejoin there (exit 130, the step's error saying so); the
/// next `rejoin` takes it up.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_rejoins_catch_up_halts_it_and_the_next_run_takes_it_up() {
    let (rig, host) = promoted_and_old_primary_back().await;
    with_peer_keys(&host, "catch_up_timeout = \"120s\"");
    // The replication account may hold one connection, and this test holds it: the old
    // primary's IO thread retries (error 1226, which waiting may mend), and catch_up
    // waits with it.
    rig.db
        .replica
        .execute("ALTER USER 'repl'@'%' WITH MAX_USER_CONNECTIONS 1")
        .await
        .unwrap();
    let held = rig
        .db
        .replica
        .conn(mariadb::REPL_USER, mariadb::REPL_PASSWORD)
        .await
        .unwrap();
    rig.db
        .replica
        .execute("INSERT INTO app.writes (id, payload) VALUES (9004, 'held')")
        .await
        .unwrap();

    let child = host
        .command(&["rejoin", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_host_status(&host, "catch_up running", |s| {
        rejoin_steps(s)
            .get(3)
            .is_some_and(|(_, state)| state == "running")
    })
    .await;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it ends within 30 s of SIGINT")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("the rejoin halted at step catch_up: interrupted")
            && stderr.contains("failover-watchdog rejoin --yes"),
        "{stderr}"
    );
    let status = host.status().await;
    assert_eq!(status["rejoin"]["outcome"], "failed", "{status:#}");

    drop(held);
    let rejoined = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoined.code, Some(0), "{rejoined:?}");
    assert_rejoined(&rig, 9004).await;
}

/// Issue 18, item 9, the other cause: a row the old primary has unlogged conflicts with
/// one the new primary wrote (error 1062 on the SQL thread, while `catch_up` waited on
/// the position): the rejoin waited out the whole `catch_up_timeout`. It fails at once,
/// and once the row is dealt with the next run redoes `replicate` and finishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejoin_whose_catch_up_meets_a_conflicting_row_fails_at_once() {
    use mysql_async::prelude::Queryable;
    let (rig, host) = promoted_and_old_primary_back().await;
    with_peer_keys(&host, "catch_up_timeout = \"120s\"");
    let mut old = rig.db.primary.root_conn().await.unwrap();
    old.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
    old.query_drop("INSERT INTO app.writes (id, payload) VALUES (9005, 'unlogged here')")
        .await
        .unwrap();
    rig.db
        .replica
        .execute("INSERT INTO app.writes (id, payload) VALUES (9005, 'on the new primary')")
        .await
        .unwrap();

    let started = tokio::time::Instant::now();
    let failed = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed at once, not after catch_up_timeout: {:?}",
        started.elapsed()
    );
    assert!(
        failed.stderr.contains("SQL thread error 1062"),
        "{}",
        failed.stderr
    );

    old.query_drop("DELETE FROM app.writes WHERE id = 9005")
        .await
        .unwrap();
    let rejoined = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoined.code, Some(0), "{rejoined:?}");
    assert_rejoined(&rig, 9005).await;
}

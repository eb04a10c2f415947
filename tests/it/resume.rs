//! Crash safety: a promotion killed at any point resumes at the step it was in, never
//! repeating a finished step and never skipping one; an unreadable journal stops us.

use std::time::Duration;

use failover_watchdog::crashpoint;
use failover_watchdog::journal::{Journal, Trigger};
use mysql_async::prelude::Queryable;

use crate::support::*;

const STEPS: [&str; 5] = [
    "stop_replica",
    "make_writable",
    "start_apps",
    "update_dns",
    "notify",
];

/// Runs `--promote-now --yes` with a crash point set; the process must die at it.
async fn promote_now_crashing_at(rig: &Stage, point: &str) {
    let output = rig
        .command(&["--promote-now", "--yes"])
        .env(crashpoint::ENV, point)
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        None,
        "{point}: the process should have been killed there; a binary built without the \
         `test-seams` feature (Cargo.toml's dev-dependency on this package turns it on) \
         ignores {}. stderr: {}",
        crashpoint::ENV,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// For every step, a crash just after the journal says it started (nothing done) and
/// just after its work is done (the journal not yet updated). The next run resumes at
/// that step: earlier steps are not run again, and re-running the step is harmless.
#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_killed_inside_any_step_resumes_there_and_finishes() {
    for (index, step) in STEPS.iter().enumerate() {
        for point in ["before", "after"] {
            let case = format!("{point}:{step}");
            let rig = stage().await;
            promote_now_crashing_at(&rig, &case).await;

            let status = rig.status().await;
            assert_eq!(status["state"], "promoting", "{case}: {status:#}");
            let before = steps(&status);
            for (i, (name, state)) in before.iter().enumerate() {
                let expected = match i.cmp(&index) {
                    std::cmp::Ordering::Less => "done",
                    std::cmp::Ordering::Equal => "running",
                    std::cmp::Ordering::Greater => "pending",
                };
                assert_eq!(state, expected, "{case}: step {name}");
            }

            let run = rig.run(&["--promote-now", "--yes"]).await;
            assert_eq!(run.code, Some(0), "{case}: {run:?}");
            assert!(
                run.stderr.contains(&format!(
                    "resuming the interrupted promotion at step {step}"
                )),
                "{case}: {}",
                run.stderr
            );
            let status = rig.status().await;
            assert_eq!(status["state"], "promoted", "{case}");
            assert_eq!(steps(&status), all_steps("done"), "{case}");
            for (i, name) in STEPS.iter().enumerate() {
                let attempts = status["promotion"]["steps"][i]["attempts"]
                    .as_u64()
                    .unwrap();
                assert_eq!(
                    attempts,
                    if i == index { 2 } else { 1 },
                    "{case}: attempts of {name}"
                );
            }
            // The end state is the same whatever the crash point.
            assert_eq!(rig.replica_read_only().await, "0", "{case}");
            assert!(
                rig.db.replica.slave_status().await.unwrap().is_none(),
                "{case}"
            );
            assert!(rig.dns_points_at_standby(), "{case}");
            assert_eq!(
                rig.cloudflare.patch_count(),
                2,
                "{case}: a record was patched twice"
            );
            assert!(UNITS.iter().all(|u| rig.systemctl.is_active(u)), "{case}");
            if *step != "start_apps" {
                assert_eq!(
                    rig.systemctl.started(),
                    UNITS,
                    "{case}: units started again"
                );
            }
            let messages = rig
                .telegram
                .wait_for_messages(3, Duration::from_secs(10))
                .await;
            assert!(
                messages.iter().any(|m| m.text.contains("PROMOTED")),
                "{case}: {messages:?}"
            );
            assert!(
                messages.iter().any(|m| m.text.contains(&format!(
                    "resuming the interrupted promotion of {NODE} at step {step}"
                ))),
                "{case}: {messages:?}"
            );
        }
    }
}

/// The daemon itself is killed with SIGKILL while `stop_replica` waits for a relay log
/// that cannot be applied yet (a table locked on the replica). Started again, it
/// resumes at `stop_replica`, and every relayed row reaches the promoted standby.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_killed_while_the_relay_log_is_applied_resumes_and_loses_nothing() {
    let mut rig = stage().await;
    let mut blocker = hold_the_relay_log(&rig, 50).await;

    let mut daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.kill9();
    wait_for_stop_replica_running(&rig).await;
    daemon.kill9().await;
    let status = rig.status().await;
    assert_eq!(status["state"], "promoting");
    assert_eq!(
        rig.replica_read_only().await,
        "1",
        "nothing writable before the relay log is applied"
    );

    blocker.query_drop("UNLOCK TABLES").await.unwrap();
    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("the resumed promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(status["promotion"]["steps"][0]["attempts"], 2);
    assert_eq!(status["promotion"]["trigger"], "automatic");
    let ids = rig.db.replica.app_write_ids().await.unwrap();
    assert_eq!(
        ids,
        (1..=50).collect::<Vec<u64>>(),
        "every relayed row is on the standby"
    );
    let gtid = &status["promotion"]["gtid"];
    assert_eq!(gtid["received"], gtid["applied"]);
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        log.contains("resuming the interrupted promotion at step stop_replica"),
        "{log}"
    );
}

/// A journal that cannot be read is never taken for "no promotion" nor for "promoted":
/// every command that needs it fails naming the file, and the daemon does not start.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_journal_stops_the_daemon_and_names_the_file() {
    let rig = stage().await;
    std::fs::create_dir_all(rig.state_dir()).unwrap();
    for garbage in [
        "{\"version\": 1, \"steps\": [",
        "not json",
        "{\"version\": 99}",
    ] {
        std::fs::write(rig.state_dir().join("promotion.json"), garbage).unwrap();
        for args in [&["run"][..], &["--promote-now", "--yes"], &["status"]] {
            let run = rig.run(args).await;
            assert_eq!(run.code, Some(1), "{args:?} with {garbage:?}: {run:?}");
            assert!(
                run.stderr.contains("promotion.json"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.systemctl.calls().is_empty());
}

/// The bug: a journal whose `steps` are missing made `--promote-now --dry-run` panic
/// (exit 101) and, still `running`, left the daemon "resuming at step the end" and
/// `promoting` for ever. Now it is an unreadable journal like any other: every command
/// that needs it fails naming the file and the problem, and nothing is changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_without_its_steps_is_an_error_naming_the_file_not_a_panic() {
    let rig = stage().await;
    std::fs::create_dir_all(rig.state_dir()).unwrap();
    // A journal this build would write, the promotion under way, its steps gone.
    let mut journal = serde_json::to_value(Journal::new(
        NODE,
        Trigger::Automatic,
        "the primary is down",
        jiff::Timestamp::now(),
    ))
    .unwrap();
    assert_eq!(journal["outcome"], "running");
    journal["steps"] = serde_json::json!([]);
    std::fs::write(
        rig.state_dir().join("promotion.json"),
        serde_json::to_vec_pretty(&journal).unwrap(),
    )
    .unwrap();

    for args in [
        &["--promote-now", "--dry-run"][..],
        &["--promote-now", "--yes"],
        &["run"],
        &["status"],
    ] {
        let run = rig.run(args).await;
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("promotion.json") && run.stderr.contains("it has no steps"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.systemctl.calls().is_empty());
    assert_eq!(rig.cloudflare.patch_count(), 0);
}

/// The relay log cannot be applied in time (a table locked on the replica): the
/// promotion halts in `stop_replica` with the positions, and nothing is made writable.
#[tokio::test(flavor = "multi_thread")]
async fn an_apply_timeout_halts_before_anything_is_writable() {
    let rig = stage().await;
    rig.write_config(
        &rig.config()
            .replace("apply_timeout = \"20s\"", "apply_timeout = \"2s\""),
    );
    let mut blocker = rig.db.replica.root_conn().await.unwrap();
    blocker
        .query_drop("LOCK TABLES app.writes WRITE")
        .await
        .unwrap();
    rig.db
        .primary
        .execute("INSERT INTO app.writes (id, payload) VALUES (1, 'relayed, not applied')")
        .await
        .unwrap();

    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    let error = status["promotion"]["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("not applied within apply_timeout (2s)"),
        "{error}"
    );
    assert!(
        error.contains("received 0-1-") && error.contains("nothing was made writable"),
        "{error}"
    );
    assert_eq!(rig.replica_read_only().await, "1");
    assert_eq!(rig.cloudflare.patch_count(), 0);
    blocker.query_drop("UNLOCK TABLES").await.unwrap();
}

/// Issue 18, item 10: a journal whose outcome is `running` while every step is done was
/// accepted: the daemon sat in `promoting` without a word and the commands exited 1
/// with no message. It is refused like every other inconsistency, naming the file and
/// the problem, by the daemon and every command that reads it; a rejoin journal the
/// same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_journal_with_every_step_done_is_refused_naming_the_file() {
    let rig = stage().await;
    rig.write_config(&rig.pair_config());
    std::fs::create_dir_all(rig.state_dir()).unwrap();
    let now = jiff::Timestamp::now();
    let mut journal = Journal::new(NODE, Trigger::Manual, "an operator", now);
    for step in failover_watchdog::journal::StepName::PROMOTION {
        journal.begin(step, now);
        journal.finish(step, "done".into(), now);
    }
    let mut file = serde_json::to_value(&journal).unwrap();
    assert_eq!(file["outcome"], "promoted");
    file["outcome"] = serde_json::json!("running");
    std::fs::write(
        rig.state_dir().join("promotion.json"),
        serde_json::to_vec_pretty(&file).unwrap(),
    )
    .unwrap();

    for args in [
        &["--promote-now", "--yes"][..],
        &["--promote-now", "--dry-run"],
        &["switchover", "--yes"],
        &["status"],
        &["run"],
    ] {
        let run = rig.run(args).await;
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("promotion.json")
                && run
                    .stderr
                    .contains("its outcome is running, yet no step is left to run"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.systemctl.calls().is_empty());
    assert_eq!(rig.cloudflare.patch_count(), 0);

    // The rejoin journal, on the other host.
    let host = rig.primary_host();
    std::fs::create_dir_all(host.state_dir()).unwrap();
    let mut rejoin = failover_watchdog::journal::RejoinJournal::rejoin(
        PRIMARY_NODE,
        NODE,
        "127.0.0.1:1",
        Default::default(),
        now,
    );
    for step in failover_watchdog::journal::RejoinStep::ALL {
        rejoin.begin(step, now);
        rejoin.finish(step, "done".into(), now);
    }
    let mut file = serde_json::to_value(&rejoin).unwrap();
    file["outcome"] = serde_json::json!("running");
    std::fs::write(
        host.state_dir().join("rejoin.json"),
        serde_json::to_vec_pretty(&file).unwrap(),
    )
    .unwrap();
    for args in [
        &["rejoin", "--yes"][..],
        &["rejoin", "--dry-run"],
        &["status"],
    ] {
        let run = host.run(args).await;
        assert_ne!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("rejoin.json")
                && run
                    .stderr
                    .contains("its outcome is running, yet no step is left to run"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
}

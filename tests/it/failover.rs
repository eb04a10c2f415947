//! The daemon's story: the primary dies (or hangs, or stutters) and the standby takes
//! over, or rightly does not.

use std::time::Duration;

use failover_watchdog_rig::mariadb::WriteLoad;

use crate::support::*;

/// The primary is killed with SIGKILL while clients write to it. The standby must be
/// promoted, keep every write the primary acknowledged, and take over DNS, units and
/// alerts; a record not in the config stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn primary_killed_under_write_load_is_replaced_by_the_standby() {
    let mut rig = stage().await;
    let load = WriteLoad::start(&rig.db.primary);
    load.wait_for_acks(200, Duration::from_secs(30))
        .await
        .unwrap();
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy first round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true && s["state"] == "monitoring"
    })
    .await;

    rig.db.primary.kill9();
    let acked = load.stop().await;
    assert!(acked.len() >= 200);

    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    assert_eq!(status["promotion"]["trigger"], "automatic");
    let gtid = &status["promotion"]["gtid"];
    assert_eq!(gtid["received"], gtid["applied"], "{status:#}");
    let seen = status["promotion"]["primary_last_seen"]["gtid"]
        .as_str()
        .unwrap();
    assert!(
        seen.starts_with("0-1-"),
        "the primary's position was tracked: {status:#}"
    );

    // No acknowledged write lost.
    let on_standby = rig.db.replica.app_write_ids().await.unwrap();
    let missing: Vec<u64> = acked
        .iter()
        .filter(|id| !on_standby.contains(id))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes missing on the standby: {missing:?}",
        missing.len()
    );

    // The standby is writable and no longer replicates.
    assert_eq!(rig.replica_read_only().await, "0");
    assert!(
        rig.db.replica.slave_status().await.unwrap().is_none(),
        "RESET SLAVE ALL expected"
    );

    // DNS points at the standby; ttl and proxied kept; the unrelated record untouched.
    let app = rig.cloudflare.record(&rig.records.app).unwrap();
    assert_eq!(
        (app.content.as_str(), app.ttl, app.proxied),
        (STANDBY_ADDRESS, 300, true)
    );
    let www = rig.cloudflare.record(&rig.records.www).unwrap();
    assert_eq!(
        (www.content.as_str(), www.ttl, www.proxied),
        (STANDBY_ADDRESS, 120, false)
    );
    assert_eq!(rig.dns(&rig.records.unrelated), UNRELATED_ADDRESS);
    assert_eq!(
        status["promotion"]["dns_changes"][0]["previous_content"],
        OLD_PRIMARY_ADDRESS
    );

    // Units started in order.
    assert_eq!(rig.systemctl.started(), UNITS);

    // Alerts: the opening one, then the closing one, both naming the node.
    let messages = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(messages.len() >= 2, "{messages:?}");
    assert!(
        messages[0].text.contains(NODE) && messages[0].text.contains("promoting"),
        "{:?}",
        messages[0]
    );
    assert!(
        messages[0].text.contains("3 consecutive probe rounds"),
        "{:?}",
        messages[0]
    );
    let closing = &messages.last().unwrap().text;
    assert!(
        closing.contains(NODE) && closing.contains("PROMOTED"),
        "{closing}"
    );
    for step in ["stop_replica", "make_writable", "start_apps", "update_dns"] {
        assert!(closing.contains(step), "{step} missing in {closing}");
    }
    // The data-loss accounting: the primary's last position seen was received.
    assert!(
        closing.contains("nothing it had then was lost"),
        "{closing}"
    );
    assert!(closing.contains("everything received"), "{closing}");
    assert!(messages.iter().all(|m| m.chat_id == CHAT_ID));

    // The daemon stays up, promoted, and stops cleanly; it never promotes twice.
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("primary failed 3 rounds in a row"), "{log}");
    assert_eq!(
        log.matches("primary check failed (1 of 3)").count(),
        1,
        "first failure logged once: {log}"
    );
    assert_eq!(rig.cloudflare.patch_count(), 2);
    for secret in [
        CF_TOKEN,
        TG_TOKEN,
        failover_watchdog_rig::mariadb::FAILOVER_PASSWORD,
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// A primary frozen with SIGSTOP still accepts TCP connections but answers nothing:
/// the checks' timeout must fail the rounds and the standby takes over.
#[tokio::test(flavor = "multi_thread")]
async fn primary_hung_with_sigstop_is_replaced_by_the_standby() {
    let rig = stage().await;
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy first round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.sigstop();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    rig.db.primary.sigcont();
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    // Stopping a semi-sync replica makes MariaDB reach for the frozen primary first;
    // the wait for it was shortened for the stop only: the setting is as it was.
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    let kill_timeout: Option<u64> = mysql_async::prelude::Queryable::query_first(
        &mut replica,
        "SELECT @@global.rpl_semi_sync_slave_kill_conn_timeout",
    )
    .await
    .unwrap();
    assert_eq!(kill_timeout, Some(5));
    // The fence treats the frozen database as not answering, within the probe timeout.
    let fence = status["promotion"]["fence"]["database"].as_str().unwrap();
    assert!(fence.contains("did not answer within 500ms"), "{fence}");
    assert_eq!(rig.dns(&rig.records.app), STANDBY_ADDRESS);
    assert_eq!(rig.replica_read_only().await, "0");
    let (_, log) = daemon.stop().await;
    assert!(log.contains("no answer within 500ms"), "{log}");
}

/// A primary that stalls again and again, each time for less than the detection window
/// (3 rounds of 1 s), must never be replaced: failures are counted only in a row.
#[tokio::test(flavor = "multi_thread")]
async fn primary_stalling_briefly_and_repeatedly_is_never_replaced() {
    let rig = stage().await;
    // The failure count alone is under test: replication's evidence (which would call
    // these stalls "degraded" and count nothing) is off.
    rig.write_config(&without_replication_evidence(&rig.config()));
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy first round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    let mut max_failures = 0;
    for _ in 0..4 {
        // The stall and the pause between stalls are the scenario, not a race fix.
        rig.db.primary.sigstop();
        tokio::time::sleep(Duration::from_millis(1700)).await;
        max_failures =
            max_failures.max(rig.status().await["consecutive_failures"].as_u64().unwrap());
        rig.db.primary.sigcont();
        rig.wait_for_status("a recovery", Duration::from_secs(10), |s| {
            s["consecutive_failures"] == 0
        })
        .await;
    }
    let status = rig.status().await;
    assert_eq!(status["state"], "monitoring", "{status:#}");
    assert!(status["promotion"].is_null());
    assert!(
        max_failures >= 1,
        "the stalls were never seen: the test proves nothing"
    );
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.systemctl.started().is_empty());
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(log.contains("primary recovered after"), "{log}");
}

/// The standby had stopped receiving (its IO thread stopped, semi-sync off) while the
/// primary went on committing. The lag guard holds the automatic promotion and says
/// why; an operator's `--promote-now --yes` goes on, warned, and the closing alert and
/// `status` say plainly what the old primary may alone have.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_stopped_replicating_holds_the_automatic_promotion() {
    use mysql_async::prelude::Queryable;
    let mut rig = stage().await;
    let mut primary = rig.db.primary.root_conn().await.unwrap();
    primary
        .query_drop("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
        .await
        .unwrap();
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    replica.query_drop("STOP SLAVE IO_THREAD").await.unwrap();
    for id in 1..=5u64 {
        primary
            .exec_drop(
                "INSERT INTO app.writes (id, payload) VALUES (?, 'primary only')",
                (id,),
            )
            .await
            .unwrap();
    }
    drop(primary);

    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true && !s["replication_seen"].is_null()
    })
    .await;
    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("the lag guard", Duration::from_secs(30), |s| {
            s["state"] == "halted"
        })
        .await;
    assert!(
        status["promotion"].is_null(),
        "held, not started: {status:#}"
    );
    let held = status["held"].as_str().unwrap();
    assert!(held.contains("not replicating"), "{held}");
    let alert = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert!(
        alert[0].text.contains("NOT promoting automatically"),
        "{alert:?}"
    );
    assert!(
        alert[0].text.contains("IO thread No"),
        "the figures: {alert:?}"
    );
    assert_eq!(rig.replica_read_only().await, "1");
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));

    // The operator decides to go on: warned, and it needs --yes.
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("warning: the replica was not replicating"),
        "{}",
        run.stderr
    );
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted");
    let seen = status["promotion"]["primary_last_seen"]["gtid"]
        .as_str()
        .unwrap()
        .to_string();
    let received = status["promotion"]["gtid"]["received"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(seen, received, "{status:#}");
    let messages = rig.telegram.messages();
    let closing = &messages.last().unwrap().text;
    assert!(
        closing.contains(&format!("the primary had {seen}")),
        "{closing}"
    );
    assert!(
        closing.contains("may exist only on the old primary"),
        "{closing}"
    );
    let text = rig.run(&["status"]).await.stdout;
    assert!(text.contains("may exist only on the old primary"), "{text}");
}

/// The primary answers once (so the replica's state is known), then fails exactly the
/// threshold of rounds and answers the last look taken right before the first step:
/// no promotion, an alert, back to monitoring.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_answers_the_last_look_is_not_replaced() {
    let rig = stage().await;
    let health = failover_watchdog_rig::health::ScriptedHealth::start(&[200, 503, 503, 503], 200)
        .await
        .unwrap();
    // Only the scripted endpoint speaks for the primary (its MariaDB, replicating all
    // along, would make this "degraded").
    rig.write_config(&without_replication_evidence(&rig.config_with_checks(
        &format!(
            "\n[[probe.checks]]\ntype = \"http\"\nurl = \"{}\"\n",
            health.url()
        ),
    )));
    let daemon = rig.spawn_daemon();
    let messages = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(20))
        .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].text.contains("recovered at the last moment"),
        "{:?}",
        messages[0]
    );
    let status = rig
        .wait_for_status("monitoring again", Duration::from_secs(20), |s| {
            s["state"] == "monitoring" && s["last_probe"]["ok"] == true
        })
        .await;
    assert!(status["promotion"].is_null(), "{status:#}");
    assert!(
        health.requests() >= 4,
        "three failed rounds and the last look"
    );
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.systemctl.calls().is_empty());
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(log.contains("primary failed 3 rounds in a row"), "{log}");
    assert!(log.contains("recovered at the last moment"), "{log}");
}

/// The config with `confirm_with_replication = false`.
fn without_replication_evidence(config: &str) -> String {
    config.replacen(
        "fail_when = \"any\"",
        "fail_when = \"any\"\nconfirm_with_replication = false",
        1,
    )
}

/// The calm cadence is a minute, the suspect one a second: the config of the two
/// stories below.
fn a_minute_calm_a_second_suspect(config: &str) -> String {
    let config = config.replace(
        "interval = \"1s\"",
        "interval = \"60s\"\nsuspect_interval = \"1s\"",
    );
    assert!(
        config.contains("suspect_interval"),
        "the stage's config changed"
    );
    config
}

/// Killed between two calm rounds a minute apart, the primary is decided within
/// seconds: the standby's replica loses its connection at once, the look at it between
/// rounds makes the pace suspect, and the three rounds run a second apart.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_primary_is_decided_at_the_suspect_cadence_not_a_calm_interval_later() {
    let mut rig = stage().await;
    rig.write_config(&a_minute_calm_a_second_suspect(&rig.config()));
    let daemon = rig.spawn_daemon();
    let calm = rig
        .wait_for_status("a healthy first round", Duration::from_secs(20), |s| {
            s["last_probe"]["ok"] == true
        })
        .await;
    assert_eq!(calm["cadence"]["pace"], "calm", "{calm:#}");
    assert_eq!(calm["cadence"]["every_seconds"], 60.0);
    assert_eq!(calm["cadence"]["watch_seconds"], 0.2);

    rig.db.primary.kill9();
    let killed = tokio::time::Instant::now();
    let status = loop {
        let status = rig.status().await;
        if status["state"] == "promoted" {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no promotion: {status:#}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The window: a look (200 ms) and two more rounds a second apart, then the promotion.
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "decided {:?} after the kill, the calm interval is a minute",
        killed.elapsed()
    );
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    let reason = status["promotion"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("decided at the suspect pace (every 1 s)")
            && reason.contains("the replica's IO thread lost the primary"),
        "{reason}"
    );
    let (_, log) = daemon.stop().await;
    assert!(log.contains("suspect: re-probing every 1 s"), "{log}");
}

/// Frozen (SIGSTOP), the primary keeps its replica's connection open and silent: the
/// look between calm rounds notices two heartbeats missing, and the suspect rounds,
/// each check cut at the cadence, decide it within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_primary_is_noticed_between_calm_rounds_and_decided_within_seconds() {
    let rig = stage().await;
    rig.write_config(&a_minute_calm_a_second_suspect(&rig.config()));
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy first round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true && s["cadence"]["detection_window"]["silent_seconds"].is_f64()
    })
    .await;
    rig.db.primary.sigstop();
    let stopped = tokio::time::Instant::now();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(40), |s| {
            s["state"] == "promoted"
        })
        .await;
    let took = stopped.elapsed();
    rig.db.primary.sigcont();
    assert!(
        took < Duration::from_secs(20),
        "decided {took:?} after the primary froze, the calm interval is a minute"
    );
    let reason = status["promotion"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("decided at the suspect pace (every 1 s)")
            && reason.contains("nothing arrived from the primary for"),
        "{reason}"
    );
    let (_, log) = daemon.stop().await;
    assert!(log.contains("no answer within 500ms"), "{log}");
}

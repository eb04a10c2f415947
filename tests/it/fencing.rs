//! Fencing the old primary, the split-brain watch after promotion, and the hooks.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::support::*;

fn with_promotion(rig: &Stage, table: &str) {
    rig.write_config(&format!("{}\n[promotion]\n{table}\n", rig.config()));
}

/// The old primary still answers at promotion time, and its probe account may fence
/// it: it is set read-only, its clients are cut off, the fence command runs with the
/// promotion's facts. Afterwards the daemon reports the old primary back, read-only.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_old_primary_is_fenced_before_the_standby_is_writable() {
    let rig = stage().await;
    let mut root = rig.db.primary.root_conn().await.unwrap();
    root.query_drop("GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS ON *.* TO 'watchdog'@'%'")
        .await
        .unwrap();
    let mut application = rig.db.primary.root_conn().await.unwrap();
    let marker = rig.dir.path().join("fenced");
    with_promotion(
        &rig,
        &format!(
            "fence_command = \"echo $FAILOVER_NODE $FAILOVER_STEP > '{}'\"\nsplit_brain_alert_every = \"1h\"",
            marker.display()
        ),
    );

    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        rig.db.primary.global_var("read_only").await.unwrap(),
        "1",
        "the old primary is read-only"
    );
    assert!(
        application.query_drop("SELECT 1").await.is_err(),
        "its clients were cut off"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("{NODE} make_writable\n")
    );
    let status = rig.status().await;
    let fence = &status["promotion"]["fence"];
    assert_eq!(fence["ok"], true, "{status:#}");
    assert!(
        fence["database"]
            .as_str()
            .unwrap()
            .contains("set read_only = ON"),
        "{fence}"
    );
    assert_eq!(rig.replica_read_only().await, "0");

    let daemon = rig.spawn_daemon();
    let messages = rig
        .telegram
        .wait_for_messages(3, Duration::from_secs(20))
        .await;
    let back = messages
        .iter()
        .find(|m| m.text.contains("old primary is back"))
        .expect("an alert");
    assert!(
        back.text.contains("read-only") && !back.text.contains("SPLIT BRAIN"),
        "{back:?}"
    );
    daemon.stop().await;
    assert!(rig.dns_points_at_standby());
}

/// Fencing fails (the probe account may not set read_only) and require_fence is off:
/// the promotion goes on with an alert. The old primary, back and writable, then draws
/// the loud split-brain alert again and again; DNS stays, nothing is stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_writable_old_primary_after_promotion_draws_repeated_split_brain_alerts() {
    let rig = stage().await;
    with_promotion(&rig, "split_brain_alert_every = \"2s\"");
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["promotion"]["fence"]["ok"], false, "{status:#}");
    let sent = rig.telegram.messages();
    assert!(
        sent.iter()
            .any(|m| m.text.contains("fencing the old primary failed")),
        "{sent:?}"
    );

    let daemon = rig.spawn_daemon();
    let messages = rig
        .telegram
        .wait_for_messages(sent.len() + 2, Duration::from_secs(30))
        .await;
    let split: Vec<_> = messages
        .iter()
        .filter(|m| m.text.contains("SPLIT BRAIN"))
        .collect();
    assert!(split.len() >= 2, "repeated while it stays up: {messages:?}");
    assert!(split[0].text.contains("WRITABLE"), "{:?}", split[0]);
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(rig.dns_points_at_standby());
    assert_eq!(rig.cloudflare.patch_count(), 2, "DNS never moved back");
    assert_eq!(
        rig.systemctl
            .calls()
            .iter()
            .filter(|c| c.starts_with("stop"))
            .count(),
        0
    );
}

/// require_fence: a fence command that fails halts the promotion before the standby is
/// writable; the on_failure hook learns which step failed; post_promote does not run.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fence_halts_when_required_and_on_failure_runs() {
    let rig = stage().await;
    let failed_step = rig.dir.path().join("failed-step");
    let post = rig.dir.path().join("post");
    with_promotion(
        &rig,
        &format!(
            "fence_command = \"echo the power API said no; exit 3\"\nrequire_fence = true\non_failure = \"echo $FAILOVER_STEP > '{}'\"\npost_promote = \"touch '{}'\"",
            failed_step.display(),
            post.display()
        ),
    );
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    let error = status["promotion"]["steps"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("require_fence") && error.contains("the power API said no"),
        "{error}"
    );
    assert_eq!(rig.replica_read_only().await, "1", "nothing made writable");
    assert_eq!(
        std::fs::read_to_string(&failed_step).unwrap(),
        "make_writable\n"
    );
    assert!(!post.exists());
    assert!(
        run.stderr.contains("fence_command: the power API said no"),
        "output logged: {}",
        run.stderr
    );
}

/// pre_promote says no: nothing changes. Once it agrees, the promotion runs and
/// post_promote gets the GTID positions.
#[tokio::test(flavor = "multi_thread")]
async fn pre_promote_can_stop_a_promotion_and_post_promote_runs_after() {
    let rig = stage().await;
    let allow = rig.dir.path().join("allow-promotion");
    let post = rig.dir.path().join("post");
    with_promotion(
        &rig,
        &format!(
            "pre_promote = \"test -e '{}'\"\npost_promote = \"echo $FAILOVER_TRIGGER $FAILOVER_GTID_RECEIVED > '{}'\"",
            allow.display(),
            post.display()
        ),
    );
    let refused = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("pre_promote hook stopped the promotion"),
        "{}",
        refused.stderr
    );
    assert!(rig.status().await["promotion"].is_null());
    assert_eq!(rig.replica_read_only().await, "1");

    std::fs::write(&allow, "").unwrap();
    rig.db
        .primary
        .execute("INSERT INTO app.writes (id, payload) VALUES (1, 'x')")
        .await
        .unwrap();
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let received = rig.status().await["promotion"]["gtid"]["received"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(&post).unwrap(),
        format!("manual {received}\n")
    );
}

/// The primary dies, the daemon promotes the standby, then the old primary is started
/// again, writable: the split-brain alert goes out at once, DNS stays on the standby.
#[tokio::test(flavor = "multi_thread")]
async fn the_old_primary_restarted_after_promotion_draws_the_split_brain_alert() {
    let mut rig = stage().await;
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.kill9();
    rig.wait_for_status("the promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted"
    })
    .await;
    let before = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await
        .len();

    rig.db.primary.start_again().await.unwrap();
    let messages = rig
        .telegram
        .wait_for_messages(before + 1, Duration::from_secs(20))
        .await;
    let alert = messages.last().unwrap();
    assert!(
        alert.text.contains("SPLIT BRAIN") && alert.text.contains("WRITABLE"),
        "{alert:?}"
    );
    assert!(rig.dns_points_at_standby());
    assert_eq!(rig.cloudflare.patch_count(), 2);
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(log.contains("SPLIT BRAIN"), "{log}");
}

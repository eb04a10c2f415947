//! No false positives: the standby checks itself, and replication confirms the failure
//! before a round counts against the primary.

use std::time::Duration;

use failover_watchdog_rig::health::ScriptedHealth;

use crate::support::*;

/// The standby loses its own view of the world (its self-check target goes away) as the
/// primary goes quiet: rounds are inconclusive, the state is `isolated`, nothing counts
/// and nothing is promoted. Once the standby can talk again it says so, and a primary
/// that is really down is then replaced.
#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_standby_never_promotes_and_recovers() {
    let mut rig = stage().await;
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = gateway.local_addr().unwrap();
    rig.write_config(&format!(
        "{}\n[[probe.self_checks]]\ntype = \"tcp\"\naddress = \"{address}\"\n",
        rig.config()
    ));
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;

    drop(gateway);
    rig.db.primary.kill9();
    let isolated = rig
        .wait_for_status("isolated", Duration::from_secs(20), |s| {
            s["state"] == "isolated"
        })
        .await;
    assert_eq!(
        isolated["verdict"]["verdict"], "inconclusive",
        "{isolated:#}"
    );
    // Five more rounds at 1 s: more than the threshold of 3, none counted.
    let later = five_more_rounds(&rig, &isolated).await;
    assert_eq!(later["state"], "isolated", "{later:#}");
    assert!(later["promotion"].is_null(), "{later:#}");
    assert!(
        later["consecutive_failures"].as_u64().unwrap() < 3,
        "{later:#}"
    );
    assert_eq!(rig.replica_read_only().await, "1");

    // The standby can talk again; the primary is still dead: it is replaced.
    let _gateway = std::net::TcpListener::bind(address).unwrap();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(30), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert!(
        status["promotion"]["reason"]
            .as_str()
            .unwrap()
            .contains("replication confirms"),
        "{status:#}"
    );
    let messages = rig
        .telegram
        .wait_for_messages(3, Duration::from_secs(10))
        .await;
    assert!(
        messages.iter().any(|m| m.text.contains("can talk again")),
        "{messages:?}"
    );
    daemon.stop().await;
}

/// The primary's web check fails while its MariaDB goes on replicating to the standby:
/// the primary is alive, so the state is `degraded`, an alert goes out once, and nothing
/// is promoted. When the primary then dies for real, replication goes silent too and
/// the standby takes over.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_web_check_while_replication_lives_is_degraded_not_a_failover() {
    let mut rig = stage().await;
    let web = ScriptedHealth::start(&[200], 503).await.unwrap();
    let checks = format!(
        "\n[[probe.checks]]\ntype = \"http\"\nurl = \"{}\"\n{}",
        web.url(),
        rig.primary_checks()
    );
    rig.write_config(&rig.config_with_checks(&checks));
    let daemon = rig.spawn_daemon();
    let degraded = rig
        .wait_for_status("degraded", Duration::from_secs(20), |s| {
            s["state"] == "degraded"
        })
        .await;
    let later = five_more_rounds(&rig, &degraded).await;
    assert_eq!(later["state"], "degraded", "{later:#}");
    assert_eq!(later["consecutive_failures"], 0);
    assert!(later["promotion"].is_null());
    let reason = later["verdict"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 503") && reason.contains("replica still hears"),
        "{reason}"
    );
    let alerts = rig.telegram.messages();
    assert_eq!(
        alerts
            .iter()
            .filter(|m| m.text.contains("degraded"))
            .count(),
        1,
        "once: {alerts:?}"
    );

    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(30), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(steps(&status), all_steps("done"));
    daemon.stop().await;
}

/// Paused, the daemon keeps probing but does not promote, however long the primary is
/// down; resumed, it does. Both are announced.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_watchdog_waits_for_resume_to_promote() {
    let mut rig = stage().await;
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    let paused = rig.run(&["pause", "--reason", "kernel upgrade"]).await;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    let alert = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert!(
        alert[0].text.contains("paused") && alert[0].text.contains("kernel upgrade"),
        "{alert:?}"
    );

    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("well past the threshold", Duration::from_secs(30), |s| {
            s["consecutive_failures"].as_u64().unwrap_or(0) >= 5
        })
        .await;
    assert_eq!(status["state"], "paused", "{status:#}");
    assert!(status["promotion"].is_null());
    assert_eq!(rig.replica_read_only().await, "1");

    let resumed = rig.run(&["resume"]).await;
    assert_eq!(resumed.code, Some(0));
    rig.wait_for_status("the promotion", Duration::from_secs(30), |s| {
        s["state"] == "promoted"
    })
    .await;
    let messages = rig.telegram.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.text.contains("resumed by an operator")),
        "{messages:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_pause_runs_out_by_itself() {
    let rig = stage().await;
    let daemon = rig.spawn_daemon();
    let paused = rig.run(&["pause", "--for", "2s"]).await;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    rig.wait_for_status("paused", Duration::from_secs(10), |s| {
        s["state"] == "paused"
    })
    .await;
    let status = rig
        .wait_for_status("the pause's end", Duration::from_secs(20), |s| {
            s["state"] == "monitoring" && s["paused"].is_null()
        })
        .await;
    assert!(status["promotion"].is_null());
    let messages = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(
        messages
            .iter()
            .any(|m| m.text.contains("timed pause has run out")),
        "{messages:?}"
    );
    daemon.stop().await;
}

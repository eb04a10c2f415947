//! Both hosts of a pair, each with its daemon and a mirrored config (`[peer]`): each
//! reads its role from its own database and acts by it.

use std::time::Duration;

use crate::support::*;
use mysql_async::prelude::Queryable;

/// The standby's daemon and the primary's, both with `[peer]`, once each shows its role.
async fn pair() -> (Stage, Host, Daemon, Daemon) {
    pair_with("").await
}

/// [`pair`], the standby's `[peer]` table ending with `peer_keys`.
async fn pair_with(peer_keys: &str) -> (Stage, Host, Daemon, Daemon) {
    let rig = stage().await;
    rig.write_config(&format!("{}{peer_keys}", rig.pair_config()));
    let host = rig.primary_host();
    let standby = rig.spawn_daemon();
    let primary = host.spawn_daemon();
    rig.wait_for_status("the standby's role", Duration::from_secs(30), |s| {
        s["role"] == "standby" && s["state"] == "monitoring"
    })
    .await;
    wait_for_host_status(&host, "the primary's role", |s| {
        s["role"] == "primary" && s["state"] == "serving"
    })
    .await;
    (rig, host, standby, primary)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_never_promotes_and_alerts_when_its_standby_is_gone() {
    let (mut rig, host, standby, primary) = pair().await;
    rig.db.replica.kill9();
    let alert = wait_for_alert(&rig, PRIMARY_NODE, "does not replicate").await;
    assert!(alert.contains("standby-test"), "{alert}");
    // Its checks of the peer fail round after round: more than the threshold of 3.
    let status = host.status().await;
    let since: jiff::Timestamp = status["last_probe"]["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let status = wait_for_host_status(&host, "five more rounds", |s| {
        s["last_probe"]["at"]
            .as_str()
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .is_some_and(|at| at.duration_since(since).as_secs() >= 5)
    })
    .await;
    assert_eq!(status["state"], "serving", "{status:#}");
    assert_eq!(status["consecutive_failures"], 0, "{status:#}");
    assert!(status["promotion"].is_null(), "{status:#}");
    assert_eq!(
        rig.db.primary.global_var("read_only").await.unwrap(),
        "0",
        "still the writable primary"
    );
    let (_, log) = primary.stop().await;
    assert!(!log.contains("promoting"), "{log}");
    drop(standby);
}

/// What a person does by hand to make the replica a second primary.
async fn second_primary(rig: &Stage) {
    for statement in [
        "STOP SLAVE",
        "RESET SLAVE ALL",
        "SET GLOBAL read_only = OFF",
    ] {
        rig.db.replica.execute(statement).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_primaries_are_alerted_by_both_daemons() {
    // Without fencing itself, the host DNS does not point at only alerts (the next test).
    let (rig, host, standby, primary) = pair_with("fence_when_not_serving = false\n").await;
    second_primary(&rig).await;
    let from_primary = wait_for_alert(&rig, PRIMARY_NODE, "TWO PRIMARIES").await;
    assert!(from_primary.contains("standby-test"), "{from_primary}");
    let from_standby = wait_for_alert(&rig, NODE, "TWO PRIMARIES").await;
    assert!(from_standby.contains("primary-test"), "{from_standby}");
    rig.wait_for_status("the replica's new role", Duration::from_secs(30), |s| {
        s["role"] == "primary" && s["state"] == "serving"
    })
    .await;
    // Neither changed anything: an operator decides.
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert_eq!(rig.db.replica.global_var("read_only").await.unwrap(), "0");
    assert!(host.systemctl.stopped().is_empty());
    let _ = (standby.stop().await, primary.stop().await);
}

/// Issue 18, item 12: a host whose database is writable while every DNS record points
/// at its peer is not the primary the world uses: it fences itself (read-only, units
/// stopped) within a round, and says so; the primary DNS points at keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_writable_host_dns_does_not_point_at_fences_itself() {
    let (rig, host, standby, primary) = pair().await;
    let shim = &rig.systemctl;
    for unit in UNITS {
        shim.set_active(unit, true);
    }
    second_primary(&rig).await;
    let fenced = wait_for_alert(&rig, NODE, "fenced itself").await;
    assert!(fenced.contains(OLD_PRIMARY_ADDRESS), "{fenced}");
    assert_eq!(rig.db.replica.global_var("read_only").await.unwrap(), "1");
    assert_eq!(
        shim.stopped(),
        UNITS
            .iter()
            .rev()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
    );
    // The primary DNS points at was never touched.
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    assert!(host.systemctl.stopped().is_empty());
    let _ = (standby.stop().await, primary.stop().await);
}

/// Issue 18, item 12: after a failover the new primary dies too, and the old primary
/// comes back writable. Before, it served writes without the new primary's last
/// transactions and nothing alerted; now it fences itself, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_primary_back_while_the_new_primary_is_dead_fences_itself_and_says_so() {
    let (mut rig, host, standby, primary) = pair().await;
    drop(standby);
    // The failover happened: DNS points at the standby; then the standby died.
    for id in [&rig.records.app, &rig.records.www] {
        rig.cloudflare.set_content(id, STANDBY_ADDRESS);
    }
    rig.db.replica.kill9();
    let alert = wait_for_alert(&rig, PRIMARY_NODE, "fenced itself").await;
    assert!(alert.contains(STANDBY_ADDRESS), "{alert}");
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "1");
    assert_eq!(
        host.systemctl.stopped(),
        UNITS
            .iter()
            .rev()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
    );
    let _ = primary.stop().await;
}

/// Issue 18, item 2: a channel that lost its declared heartbeat (MariaDB's default of
/// 30 s, as a `CHANGE MASTER` without it leaves) is alerted by the standby's daemon and
/// fails the smoke test, naming the setting.
#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_drifts_from_the_config_is_alerted_and_fails_the_smoke_test() {
    let (rig, _host, standby, primary) = pair().await;
    for statement in [
        "STOP SLAVE",
        "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = 30",
        "START SLAVE",
    ] {
        rig.db.replica.execute(statement).await.unwrap();
    }
    let alert = wait_for_alert(&rig, NODE, "contradict the config").await;
    assert!(alert.contains("replication.heartbeat_period"), "{alert}");
    let smoke = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    assert_eq!(smoke.code, Some(1), "{smoke:?}");
    let report: serde_json::Value = serde_json::from_str(&smoke.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "replication")
        .unwrap();
    assert_eq!(check["result"], "fail", "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("replication.heartbeat_period"),
        "{check:#}"
    );
    let _ = (standby.stop().await, primary.stop().await);
}

/// Issue 18, item 14: a semi-sync primary that fell back to asynchronous (its standby
/// stopped acknowledging) says so, and says when it runs semi-sync again.
#[tokio::test(flavor = "multi_thread")]
async fn a_semi_sync_fallback_is_said_by_the_primary() {
    let (rig, _host, standby, primary) = pair().await;
    let mut old = rig.db.primary.root_conn().await.unwrap();
    old.query_drop("SET GLOBAL rpl_semi_sync_master_timeout = 200")
        .await
        .unwrap();
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    replica.query_drop("STOP SLAVE IO_THREAD").await.unwrap();
    rig.db
        .primary
        .execute("INSERT INTO app.writes (id, payload) VALUES (9001, 'unacknowledged')")
        .await
        .unwrap();
    wait_for_alert(&rig, PRIMARY_NODE, "fell back to asynchronous").await;
    replica.query_drop("START SLAVE IO_THREAD").await.unwrap();
    rig.db
        .primary
        .execute("INSERT INTO app.writes (id, payload) VALUES (9002, 'acknowledged')")
        .await
        .unwrap();
    wait_for_alert(&rig, PRIMARY_NODE, "semi-sync runs again").await;
    let _ = (standby.stop().await, primary.stop().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_host_stops_its_application_units() {
    let (rig, host, standby, primary) = pair().await;
    assert!(UNITS.iter().all(|u| host.systemctl.is_active(u)));
    // Demote the primary by hand: read-only, replicating from the replica.
    let mut conn = rig.db.primary.root_conn().await.unwrap();
    conn.query_drop("SET GLOBAL read_only = ON").await.unwrap();
    conn.query_drop("SET GLOBAL gtid_slave_pos = @@global.gtid_current_pos")
        .await
        .unwrap();
    rig.db
        .primary
        .replicate_from(&rig.db.replica)
        .await
        .unwrap();
    let alert = wait_for_alert(&rig, PRIMARY_NODE, "standby again").await;
    assert!(alert.contains("were stopped"), "{alert}");
    wait_for_host_status(&host, "the demoted host's role", |s| s["role"] == "standby").await;
    let stopped = host.systemctl.stopped();
    assert_eq!(
        stopped,
        UNITS
            .iter()
            .rev()
            .map(|u| u.to_string())
            .collect::<Vec<_>>(),
        "in reverse start order"
    );
    assert!(UNITS.iter().all(|u| !host.systemctl.is_active(u)));
    let _ = (standby.stop().await, primary.stop().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smoke_test_on_the_primary_of_a_pair_checks_nothing_and_says_why() {
    let rig = stage().await;
    rig.write_config(&rig.pair_config());
    let host = rig.primary_host();
    let run = host.run(&["smoke-test"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("primary-test is the primary of its pair")
            && run.stdout.contains("standby-test"),
        "{run:?}"
    );
    assert!(
        rig.telegram.messages().is_empty(),
        "no monthly report from the primary"
    );
    // The standby's own smoke test still runs its checks.
    let run = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(!report["checks"].as_array().unwrap().is_empty(), "{run:?}");
}

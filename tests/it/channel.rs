//! The replication channel as configuration: every `CHANGE MASTER` of `rejoin` and
//! `switchover` sets up what `[replication]` declares (a round trip used to come back on
//! MariaDB's 30 s heartbeat), and its literals are right under any `sql_mode`: a
//! replication password with quotes and backslashes works on servers whose `sql_mode`
//! has `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES`, and no piece of it reaches any output.

use std::time::Duration;

use failover_watchdog::mariadb::Quoting;
use failover_watchdog_rig::mariadb::{self, MariaDb};

use crate::support::*;

/// Quotes, a double quote, backslashes, one before a quote: each piece a syntax error
/// or a wrong password when written for the wrong quoting.
const PASSWORD: &str = r#"Plum'Tree "Quark" \Vex\'Moo"#;
/// Pieces of [`PASSWORD`] that must show nowhere.
const PIECES: [&str; 4] = ["Plum", "Quark", "Vex", "Moo"];

/// The channel settings the tests declare: neither MariaDB's defaults nor the rig's.
fn declared(config: &str) -> String {
    let rig = "heartbeat_period = \"1s\"\n";
    assert!(config.contains(rig), "{config}");
    config.replace(rig, "heartbeat_period = \"2s\"\nconnect_retry = \"3s\"\n")
}

const SQL_MODE: &str = "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES,ANSI_QUOTES";

async fn no_backslash_escapes(server: &MariaDb) {
    server
        .execute(&format!("SET GLOBAL sql_mode = '{SQL_MODE}'"))
        .await
        .unwrap();
}

/// `server`'s channel runs from `source_port` with the declared settings.
async fn channel_as_declared(server: &MariaDb, source_port: u16) {
    let status = server
        .slave_status()
        .await
        .unwrap()
        .expect("a replication connection");
    for (column, value) in [
        ("Master_Port", source_port.to_string()),
        ("Slave_IO_Running", "Yes".to_string()),
        ("Slave_SQL_Running", "Yes".to_string()),
        ("Slave_heartbeat_period", "2.000".to_string()),
        ("Connect_Retry", "3".to_string()),
        ("Master_SSL_Allowed", "No".to_string()),
    ] {
        assert_eq!(
            status[column],
            value,
            "{column} on {}: {status:?}",
            server.name()
        );
    }
}

fn assert_no_piece(what: &str, text: &str) {
    for piece in PIECES {
        assert!(!text.contains(piece), "{what} shows {piece:?}:\n{text}");
    }
}

/// The bug: `CHANGE MASTER` escaped the password's quote with a backslash, which a
/// server in `NO_BACKSLASH_ESCAPES` reads as a backslash that ends the string, and its
/// syntax error, quoting the statement from inside the password, went to stderr,
/// `rejoin.json`, `status` and the alerts.
#[tokio::test(flavor = "multi_thread")]
async fn a_replication_password_with_quotes_works_where_backslashes_do_not_escape() {
    let mut rig = stage().await;
    rig.write_config(&declared(&rig.pair_config()));
    rig.db
        .primary
        .execute(&format!(
            "ALTER USER '{}'@'%' IDENTIFIED BY {}",
            mariadb::REPL_USER,
            Quoting::BackslashEscapes.literal(PASSWORD)
        ))
        .await
        .unwrap();
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    std::fs::write(
        rig.dir.path().join("replication.password"),
        format!("{PASSWORD}\n"),
    )
    .unwrap();
    for server in [&rig.db.primary, &rig.db.replica] {
        no_backslash_escapes(server).await;
    }
    let promoted = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(promoted.code, Some(0), "{promoted:?}");
    rig.db.primary.kill9();
    rig.db.primary.start_again_as_replica().await.unwrap();
    no_backslash_escapes(&rig.db.primary).await;
    let host = rig.primary_host();
    host.write_config(&declared(&host.config()));

    let rejoin = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoin.code, Some(0), "rejoin: {rejoin:?}");
    channel_as_declared(&rig.db.primary, rig.db.replica.port()).await;
    let switchover = host.run(&["switchover", "--yes"]).await;
    assert_eq!(switchover.code, Some(0), "switchover: {switchover:?}");
    channel_as_declared(&rig.db.replica, rig.db.primary.port()).await;

    for (what, run) in [("rejoin", &rejoin), ("switchover", &switchover)] {
        assert_no_piece(what, &format!("{}{}", run.stdout, run.stderr));
    }
    assert_no_piece("the standby's status", &rig.status().await.to_string());
    assert_no_piece("the primary's status", &host.status().await.to_string());
    for message in rig.telegram.messages() {
        assert_no_piece("an alert", &message.text);
    }
}

/// The round trip's second half set no heartbeat, so the channel came back on
/// MariaDB's 30 s: `rejoin` and the switchover's `rejoin_peer` apply `[replication]`.
#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_is_lost_no_more_rejoin_and_switchover_apply_the_declared_channel() {
    let mut rig = stage().await;
    rig.write_config(&declared(&rig.pair_config()));
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let promoted = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(promoted.code, Some(0), "{promoted:?}");
    rig.db.primary.kill9();
    rig.db.primary.start_again_as_replica().await.unwrap();
    let host = rig.primary_host();
    host.write_config(&declared(&host.config()));

    let plan = host.run(&["rejoin", "--dry-run"]).await;
    assert_eq!(plan.code, Some(0), "{plan:?}");
    assert!(
        plan.stdout
            .contains("MASTER_CONNECT_RETRY = 3, MASTER_HEARTBEAT_PERIOD = 2, MASTER_SSL = 0"),
        "{}",
        plan.stdout
    );
    let rejoin = host.run(&["rejoin", "--yes"]).await;
    assert_eq!(rejoin.code, Some(0), "rejoin: {rejoin:?}");
    channel_as_declared(&rig.db.primary, rig.db.replica.port()).await;
    let switchover = host.run(&["switchover", "--yes"]).await;
    assert_eq!(switchover.code, Some(0), "switchover: {switchover:?}");
    channel_as_declared(&rig.db.replica, rig.db.primary.port()).await;
}

//! The stage (rig/src/stage.rs) for this build's binary.

pub use failover_watchdog_rig::stage::*;

use std::time::Duration;

use tokio::time::Instant;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_failover-watchdog");

/// A fresh stage: a MariaDB pair, the stand-ins, the shim and a config for [`BIN`].
pub async fn stage() -> Stage {
    Stage::start(std::path::Path::new(BIN)).await
}

/// Waits until the daemon has probed five more times (1 s interval) after `status`:
/// more rounds than the threshold of 3.
pub async fn five_more_rounds(rig: &Stage, status: &serde_json::Value) -> serde_json::Value {
    let round_at = |s: &serde_json::Value| -> jiff::Timestamp {
        s["last_probe"]["at"].as_str().unwrap().parse().unwrap()
    };
    let since = round_at(status);
    rig.wait_for_status(
        "five more rounds",
        std::time::Duration::from_secs(30),
        |s| round_at(s).duration_since(since).as_secs() >= 5,
    )
    .await
}

/// Rows relayed to the standby but not yet applied: a table locked on the replica holds
/// its SQL thread, so `stop_replica` waits until the returned connection unlocks it.
/// Each row is acknowledged once the replica has it (semi-sync), not once applied.
pub async fn hold_the_relay_log(rig: &Stage, rows: u64) -> mysql_async::Conn {
    use mysql_async::prelude::Queryable;
    let mut blocker = rig.db.replica.root_conn().await.unwrap();
    blocker
        .query_drop("LOCK TABLES app.writes WRITE")
        .await
        .unwrap();
    let mut primary = rig.db.primary.root_conn().await.unwrap();
    for id in 1..=rows {
        primary
            .exec_drop(
                "INSERT INTO app.writes (id, payload) VALUES (?, 'relayed')",
                (id,),
            )
            .await
            .unwrap();
    }
    blocker
}

/// Waits until the journal says `stop_replica` is running (and waiting).
pub async fn wait_for_stop_replica_running(rig: &Stage) -> serde_json::Value {
    rig.wait_for_status(
        "stop_replica running",
        std::time::Duration::from_secs(30),
        |s| {
            steps(s)
                .first()
                .is_some_and(|(_, state)| state == "running")
        },
    )
    .await
}

/// Polls the other host's `status --json` until `done` holds; fails after 30 s.
pub async fn wait_for_host_status(
    host: &Host,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = host.status().await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a Telegram message from `node` that contains `text`.
pub async fn wait_for_alert(rig: &Stage, node: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let prefix = format!("[{node}] ");
    loop {
        let messages = rig.telegram.messages();
        if let Some(m) = messages
            .iter()
            .find(|m| m.text.starts_with(&prefix) && m.text.contains(text))
        {
            return m.text.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no alert from {node} with {text:?}; sent: {:#?}",
            messages.iter().map(|m| &m.text).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The standby's own MariaDB: read its replication state, stop it once everything it
//! received is applied, make it writable. The only module that sends SQL to the replica.
//!
//! Columns of `SHOW ALL SLAVES STATUS` are read by name: their order varies between
//! MariaDB versions. The multi-source connection is chosen with
//! `default_master_connection`, bound as a parameter, so the statements that follow
//! (`STOP SLAVE`, `RESET SLAVE ALL`, `MASTER_GTID_WAIT`) act on the configured connection.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use crate::config::ReplicaConfig;
use crate::journal::GtidPositions;

/// One replication connection's state, from `SHOW ALL SLAVES STATUS`.
#[derive(Debug, Clone, Default)]
pub struct ReplicationStatus {
    columns: HashMap<String, String>,
}

impl ReplicationStatus {
    /// A column's value by name; "" when NULL or absent.
    pub fn get(&self, column: &str) -> &str {
        self.columns.get(column).map_or("", String::as_str)
    }

    pub fn io_running(&self) -> &str {
        self.get("Slave_IO_Running")
    }

    pub fn sql_running(&self) -> &str {
        self.get("Slave_SQL_Running")
    }

    /// Everything received from the primary.
    pub fn gtid_io_pos(&self) -> &str {
        self.get("Gtid_IO_Pos")
    }

    /// The SQL thread's error, if it stopped on one.
    pub fn sql_error(&self) -> Option<String> {
        let errno = self.get("Last_SQL_Errno");
        (!errno.is_empty() && errno != "0")
            .then(|| format!("SQL thread error {errno}: {}", self.get("Last_SQL_Error")))
    }

    /// A one-line summary for logs and the dry run.
    pub fn summary(&self) -> String {
        format!(
            "source {}:{}, IO thread {}, SQL thread {}, received {}, {} s behind",
            self.get("Master_Host"),
            self.get("Master_Port"),
            self.io_running(),
            self.sql_running(),
            display_gtid(self.gtid_io_pos()),
            match self.get("Seconds_Behind_Master") {
                "" => "?",
                s => s,
            }
        )
    }
}

/// Shows an empty GTID position as such, not as nothing.
pub fn display_gtid(pos: &str) -> &str {
    if pos.is_empty() { "(empty)" } else { pos }
}

/// The replica's MariaDB.
#[derive(Debug, Clone)]
pub struct Replica {
    config: ReplicaConfig,
}

impl Replica {
    pub fn new(config: &ReplicaConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// `user@host:port`, connection name: for the plan and logs.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{} (replication connection {:?})",
            self.config.user, self.config.host, self.config.port, self.config.connection_name
        )
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let opts = crate::mysql::opts(
            &self.config.host,
            self.config.port,
            &self.config.user,
            &self.config.password,
        );
        let mut conn = Conn::new(opts)
            .await
            .with_context(|| format!("cannot connect to the replica {}", self.describe()))?;
        conn.exec_drop(
            "SET @@session.default_master_connection = ?",
            (self.config.connection_name.as_str(),),
        )
        .await
        .context("cannot select the replication connection")?;
        Ok(conn)
    }

    /// The configured connection's status, `None` when it does not exist (never set up,
    /// or already reset).
    pub async fn status(&self) -> anyhow::Result<Option<ReplicationStatus>> {
        let mut conn = self.connect().await?;
        let status = read_status(&mut conn, &self.config.connection_name).await;
        let _ = conn.disconnect().await;
        status
    }

    /// `@@global.read_only`.
    pub async fn read_only(&self) -> anyhow::Result<bool> {
        let mut conn = self.connect().await?;
        let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
        let _ = conn.disconnect().await;
        Ok(value == Some(1))
    }

    /// `SHOW GRANTS`: the replica user's grants as MariaDB prints them, its own, its
    /// enabled roles' and PUBLIC's. Read-only, for the smoke test. The lines can hold
    /// the password hash (`IDENTIFIED BY PASSWORD '*...'`): never print them.
    pub async fn grants(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.connect().await?;
        let grants: Vec<String> = conn.query("SHOW GRANTS").await.context("SHOW GRANTS")?;
        let _ = conn.disconnect().await;
        Ok(grants)
    }

    /// The `stop_replica` step: stop the IO thread, wait until everything received is
    /// applied (at most `apply_timeout`), stop the replica and, when configured, `RESET
    /// SLAVE ALL`. A SQL thread error or the timeout fails the step. Idempotent: a
    /// connection already stopped is waited on the same way; one already reset is done.
    pub async fn stop_after_applying(&self) -> anyhow::Result<(GtidPositions, String)> {
        let mut conn = self.connect().await?;
        let name = self.config.connection_name.clone();
        let Some(status) = read_status(&mut conn, &name).await? else {
            let positions = read_positions(&mut conn, "").await?;
            return Ok((
                positions,
                format!("no replication connection {name:?}: already stopped and reset"),
            ));
        };
        if let Some(error) = status.sql_error() {
            bail!(
                "the replica's SQL thread stopped with an error; nothing was made writable: {error}"
            );
        }
        conn.query_drop("STOP SLAVE IO_THREAD")
            .await
            .context("STOP SLAVE IO_THREAD")?;
        // Read again: once the IO thread is stopped, Gtid_IO_Pos is final.
        let status = read_status(&mut conn, &name)
            .await?
            .ok_or_else(|| anyhow!("the replication connection {name:?} vanished"))?;
        let received = status.gtid_io_pos().to_string();
        tracing::info!(
            "replica IO thread stopped; received up to {}",
            display_gtid(&received)
        );

        self.wait_until_applied(&mut conn, &received).await?;

        conn.query_drop("STOP SLAVE").await.context("STOP SLAVE")?;
        let mut detail = format!("received {} and applied it", display_gtid(&received));
        if self.config.reset_replica {
            conn.query_drop("RESET SLAVE ALL")
                .await
                .context("RESET SLAVE ALL")?;
            detail.push_str("; RESET SLAVE ALL done");
        }
        let positions = read_positions(&mut conn, &received).await?;
        let _ = conn.disconnect().await;
        Ok((positions, detail))
    }

    async fn wait_until_applied(&self, conn: &mut Conn, received: &str) -> anyhow::Result<()> {
        if received.is_empty() {
            return Ok(());
        }
        let name = &self.config.connection_name;
        let deadline = Instant::now() + self.config.apply_timeout;
        let mut started_sql_thread = false;
        loop {
            // Short waits, so a SQL thread error is seen at once rather than at timeout.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let slice = remaining.min(Duration::from_secs(1));
            let reached: Option<i64> = conn
                .exec_first(
                    "SELECT MASTER_GTID_WAIT(?, ?)",
                    (received, slice.as_secs_f64()),
                )
                .await
                .context("MASTER_GTID_WAIT")?;
            if reached == Some(0) {
                return Ok(());
            }
            let status = read_status(conn, name)
                .await?
                .ok_or_else(|| anyhow!("the replication connection {name:?} vanished"))?;
            if let Some(error) = status.sql_error() {
                bail!(
                    "the replica's SQL thread stopped with an error before applying everything received ({}); nothing was made writable: {error}",
                    display_gtid(received)
                );
            }
            if status.sql_running() != "Yes" && !started_sql_thread {
                tracing::warn!(
                    "the replica's SQL thread was stopped; starting it to apply the relay log"
                );
                conn.query_drop("START SLAVE SQL_THREAD")
                    .await
                    .context("START SLAVE SQL_THREAD")?;
                started_sql_thread = true;
            }
            if Instant::now() >= deadline {
                let applied: Option<String> =
                    conn.query_first("SELECT @@global.gtid_slave_pos").await?;
                bail!(
                    "the relay log was not applied within apply_timeout ({}): received {}, applied {}; nothing was made writable",
                    humantime::format_duration(self.config.apply_timeout),
                    display_gtid(received),
                    display_gtid(applied.as_deref().unwrap_or(""))
                );
            }
        }
    }

    /// The `make_writable` step: `SET GLOBAL read_only = OFF`, then read it back.
    pub async fn make_writable(&self) -> anyhow::Result<String> {
        let mut conn = self.connect().await?;
        conn.query_drop("SET GLOBAL read_only = OFF")
            .await
            .context("SET GLOBAL read_only = OFF")?;
        let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
        let _ = conn.disconnect().await;
        if value != Some(0) {
            bail!("read_only is still {value:?} after SET GLOBAL read_only = OFF");
        }
        Ok("read_only = OFF (read back)".to_string())
    }
}

async fn read_status(conn: &mut Conn, name: &str) -> anyhow::Result<Option<ReplicationStatus>> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW ALL SLAVES STATUS")
        .await
        .context("SHOW ALL SLAVES STATUS")?;
    for row in rows {
        let columns: HashMap<String, String> = row
            .columns_ref()
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let value = match row.as_ref(i) {
                    Some(mysql_async::Value::Bytes(bytes)) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    Some(mysql_async::Value::Int(n)) => n.to_string(),
                    Some(mysql_async::Value::UInt(n)) => n.to_string(),
                    _ => String::new(),
                };
                (column.name_str().into_owned(), value)
            })
            .collect();
        if columns.get("Connection_name").map(String::as_str) == Some(name) {
            return Ok(Some(ReplicationStatus { columns }));
        }
    }
    Ok(None)
}

async fn read_positions(conn: &mut Conn, received: &str) -> anyhow::Result<GtidPositions> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .query_first("SELECT @@global.gtid_slave_pos, @@global.gtid_current_pos")
        .await
        .context("reading the GTID positions")?;
    let (applied, current) = row.unwrap_or_default();
    Ok(GtidPositions {
        received: received.to_string(),
        applied: applied.unwrap_or_default(),
        current: current.unwrap_or_default(),
    })
}

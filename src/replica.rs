//! The standby's own MariaDB: read its replication state, stop it once everything it
//! received is applied, make it writable. The only module that sends SQL to the replica.
//!
//! A connection's row of `SHOW ALL SLAVES STATUS` is read here once, by column name
//! (their order varies between MariaDB versions), into a typed [`ReplicaStatus`]: every
//! other module reads the struct, never a column. The multi-source connection is chosen with
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

/// One replication connection's state, from its row of `SHOW ALL SLAVES STATUS`, read
/// once by [`ReplicaStatus::from_columns`]. Text columns are "" when NULL or absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Master_Host`.
    pub source_host: String,
    /// `Master_Port`.
    pub source_port: Option<u16>,
    /// `Slave_IO_Running` as the server says it: "Yes", "Connecting" or "No".
    pub io_running: String,
    /// `Slave_SQL_Running`: "Yes" or "No".
    pub sql_running: String,
    /// The IO thread's last error; `None` when its errno is 0 or empty.
    pub io_error: Option<ThreadError>,
    /// The SQL thread's last error (it stopped on it); `None` when its errno is 0 or empty.
    pub sql_error: Option<ThreadError>,
    /// `Seconds_Behind_Master`; `None` when NULL (a thread not running) or not a number.
    pub seconds_behind: Option<u64>,
    /// `Using_Gtid`: "No", "Slave_Pos" or "Current_Pos".
    pub using_gtid: String,
    /// `Gtid_IO_Pos`: everything received from the primary.
    pub gtid_io_pos: String,
    /// `Slave_received_heartbeats`; 0 when absent or not a number.
    pub received_heartbeats: u64,
    /// `Slave_heartbeat_period`; `None` when 0 (heartbeats off), absent or not a number.
    pub heartbeat_period: Option<Duration>,
}

/// A replication thread's last error (`Last_IO_Errno`/`Last_IO_Error`, or the SQL's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadError {
    /// "IO" or "SQL".
    pub thread: &'static str,
    /// As the server shows it: never empty nor "0" (a number that does not parse is
    /// still an error, not hidden).
    pub errno: String,
    pub message: String,
}

impl std::fmt::Display for ThreadError {
    /// "SQL thread error 1062: Duplicate entry ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} thread error {}: {}",
            self.thread, self.errno, self.message
        )
    }
}

impl ReplicaStatus {
    /// Reads the row's columns by name (`get` is `None` for NULL or absent); their order
    /// varies between MariaDB versions. Pure, and total: a column that is missing or does
    /// not parse gives the field's "unknown", never a panic.
    pub fn from_columns(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |column: &str| {
            get(column)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let number = |column: &str| text(column).parse::<u64>().ok();
        let thread_error = |thread: &'static str| {
            let errno = text(&format!("Last_{thread}_Errno"));
            (!errno.is_empty() && errno != "0").then(|| ThreadError {
                thread,
                errno,
                message: text(&format!("Last_{thread}_Error")),
            })
        };
        Self {
            source_host: text("Master_Host"),
            source_port: text("Master_Port").parse().ok(),
            io_running: text("Slave_IO_Running"),
            sql_running: text("Slave_SQL_Running"),
            io_error: thread_error("IO"),
            sql_error: thread_error("SQL"),
            seconds_behind: number("Seconds_Behind_Master"),
            using_gtid: text("Using_Gtid"),
            gtid_io_pos: text("Gtid_IO_Pos"),
            received_heartbeats: number("Slave_received_heartbeats").unwrap_or(0),
            heartbeat_period: text("Slave_heartbeat_period")
                .parse::<f64>()
                .ok()
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                .filter(|period| !period.is_zero()),
        }
    }

    /// The IO thread is connected to the primary.
    pub fn io_connected(&self) -> bool {
        self.io_running == "Yes"
    }

    /// Both threads running and no SQL thread error: the replica follows the primary.
    pub fn replicating(&self) -> bool {
        self.io_connected() && self.sql_running == "Yes" && self.sql_error.is_none()
    }

    /// A one-line summary for logs and the dry run.
    pub fn summary(&self) -> String {
        format!(
            "source {}:{}, IO thread {}, SQL thread {}, received {}, {} s behind",
            self.source_host,
            self.source_port
                .map_or(String::new(), |port| port.to_string()),
            self.io_running,
            self.sql_running,
            display_gtid(&self.gtid_io_pos),
            self.seconds_behind
                .map_or("?".to_string(), |seconds| seconds.to_string())
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
        let mut conn = crate::mysql::connect(
            &self.config.host,
            self.config.port,
            &self.config.user,
            &self.config.password,
            &self.config.tls,
        )
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
    pub async fn status(&self) -> anyhow::Result<Option<ReplicaStatus>> {
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
        if let Some(error) = &status.sql_error {
            bail!(
                "the replica's SQL thread stopped with an error; nothing was made writable: {error}"
            );
        }
        // A semi-sync replica whose IO thread stops first connects to its primary to kill
        // the dump thread there, and waits for a primary that does not answer: 2 s
        // measured with the default rpl_semi_sync_slave_kill_conn_timeout (5), 1 s at
        // its least useful value (0 means no limit). Cut it for this stop, then restore.
        let kill_timeout: Option<u64> = conn
            .query_first("SELECT @@global.rpl_semi_sync_slave_kill_conn_timeout")
            .await
            .ok()
            .flatten();
        if kill_timeout.is_some_and(|t| t > 1)
            && let Err(e) = conn
                .query_drop("SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1")
                .await
        {
            tracing::debug!("cannot shorten rpl_semi_sync_slave_kill_conn_timeout: {e}");
        }
        let stopped = conn.query_drop("STOP SLAVE IO_THREAD").await;
        if let Some(timeout) = kill_timeout.filter(|t| *t > 1) {
            let restore = format!("SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = {timeout}");
            if let Err(e) = conn.query_drop(restore).await {
                tracing::warn!(
                    "cannot restore rpl_semi_sync_slave_kill_conn_timeout = {timeout}: {e}"
                );
            }
        }
        stopped.context("STOP SLAVE IO_THREAD")?;
        // Read again: once the IO thread is stopped, Gtid_IO_Pos is final.
        let status = read_status(&mut conn, &name)
            .await?
            .ok_or_else(|| anyhow!("the replication connection {name:?} vanished"))?;
        let received = status.gtid_io_pos;
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
            if let Some(error) = &status.sql_error {
                bail!(
                    "the replica's SQL thread stopped with an error before applying everything received ({}); nothing was made writable: {error}",
                    display_gtid(received)
                );
            }
            if status.sql_running != "Yes" && !started_sql_thread {
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

pub(crate) async fn read_status(
    conn: &mut Conn,
    name: &str,
) -> anyhow::Result<Option<ReplicaStatus>> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW ALL SLAVES STATUS")
        .await
        .context("SHOW ALL SLAVES STATUS")?;
    for row in rows {
        let columns: HashMap<String, String> = row
            .columns_ref()
            .iter()
            .enumerate()
            .filter_map(|(i, column)| {
                let value = column_text(row.as_ref(i)?)?;
                Some((column.name_str().into_owned(), value))
            })
            .collect();
        if columns.get("Connection_name").map(String::as_str) == Some(name) {
            return Ok(Some(ReplicaStatus::from_columns(|column| {
                columns.get(column).cloned()
            })));
        }
    }
    Ok(None)
}

/// A status column's value as text; `None` for NULL.
fn column_text(value: &mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    match value {
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(n) => Some(n.to_string()),
        Value::Double(n) => Some(n.to_string()),
        Value::NULL | Value::Date(..) | Value::Time(..) => None,
    }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A healthy replica's row as MariaDB 10.11 shows it (the columns we read, and some
    /// we do not, under their 10.11 names; text protocol, so every value is text).
    fn healthy() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("Connection_name", "primary"),
            ("Slave_IO_State", "Waiting for master to send event"),
            ("Master_Host", "primary.example"),
            ("Master_User", "repl"),
            ("Master_Port", "3306"),
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Last_Errno", "0"),
            ("Last_Error", ""),
            ("Seconds_Behind_Master", "0"),
            ("Last_IO_Errno", "0"),
            ("Last_IO_Error", ""),
            ("Last_SQL_Errno", "0"),
            ("Last_SQL_Error", ""),
            ("Using_Gtid", "Slave_Pos"),
            ("Gtid_IO_Pos", "0-1-42"),
            ("Slave_received_heartbeats", "17"),
            ("Slave_heartbeat_period", "5.000"),
            ("Gtid_Slave_Pos", "0-1-42"),
        ])
    }

    /// The row with `changes`; a `None` value is a NULL.
    fn row_with(changes: &[(&str, Option<&str>)]) -> ReplicaStatus {
        let mut row: HashMap<&str, Option<&str>> =
            healthy().into_iter().map(|(k, v)| (k, Some(v))).collect();
        row.extend(changes.iter().copied());
        ReplicaStatus::from_columns(|column| row.get(column).copied().flatten().map(String::from))
    }

    #[test]
    fn a_healthy_row_reads_into_every_field() {
        let status = row_with(&[]);
        assert_eq!(
            status,
            ReplicaStatus {
                source_host: "primary.example".into(),
                source_port: Some(3306),
                io_running: "Yes".into(),
                sql_running: "Yes".into(),
                io_error: None,
                sql_error: None,
                seconds_behind: Some(0),
                using_gtid: "Slave_Pos".into(),
                gtid_io_pos: "0-1-42".into(),
                received_heartbeats: 17,
                heartbeat_period: Some(Duration::from_secs(5)),
            }
        );
        assert!(status.io_connected() && status.replicating());
        assert_eq!(
            status.summary(),
            "source primary.example:3306, IO thread Yes, SQL thread Yes, received 0-1-42, 0 s behind"
        );
    }

    #[test]
    fn thread_errors_are_read_with_their_number_and_text() {
        let status = row_with(&[
            ("Slave_IO_Running", Some("Connecting")),
            ("Last_IO_Errno", Some("2003")),
            ("Last_IO_Error", Some("error reconnecting to master")),
            ("Slave_SQL_Running", Some("No")),
            ("Last_SQL_Errno", Some("1062")),
            ("Last_SQL_Error", Some("Duplicate entry '1'")),
        ]);
        let io = status.io_error.as_ref().unwrap();
        assert_eq!(io.message, "error reconnecting to master");
        assert_eq!(
            io.to_string(),
            "IO thread error 2003: error reconnecting to master"
        );
        assert_eq!(
            status.sql_error.as_ref().unwrap().to_string(),
            "SQL thread error 1062: Duplicate entry '1'"
        );
        assert!(!status.io_connected() && !status.replicating());
        // The SQL thread's error alone stops it from replicating.
        let stopped_on_error = row_with(&[("Last_SQL_Errno", Some("1062"))]);
        assert!(stopped_on_error.io_connected() && !stopped_on_error.replicating());
    }

    #[test]
    fn nulls_and_numbers_that_do_not_parse_are_unknown_not_zero_and_never_panic() {
        let status = row_with(&[
            ("Master_Port", Some("port")),
            ("Seconds_Behind_Master", None),
            ("Slave_received_heartbeats", Some("many")),
            ("Slave_heartbeat_period", Some("-1")),
            ("Last_SQL_Errno", Some("x")),
            ("Last_SQL_Error", None),
        ]);
        assert_eq!(status.source_port, None);
        assert_eq!(status.seconds_behind, None);
        assert_eq!(status.received_heartbeats, 0);
        assert_eq!(status.heartbeat_period, None);
        // An errno we cannot read is still an error, not hidden.
        assert_eq!(
            status.sql_error.as_ref().unwrap().to_string(),
            "SQL thread error x: "
        );
        assert!(status.summary().ends_with("received 0-1-42, ? s behind"));
        for period in ["0.000", "", "NaN", "inf", "soon"] {
            let status = row_with(&[("Slave_heartbeat_period", Some(period))]);
            assert_eq!(status.heartbeat_period, None, "{period:?}");
        }
        let status = row_with(&[("Slave_heartbeat_period", Some("0.500"))]);
        assert_eq!(status.heartbeat_period, Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_row_without_our_columns_reads_as_nothing_known() {
        let status = ReplicaStatus::from_columns(|_| None);
        assert_eq!(status, ReplicaStatus::default());
        assert!(!status.io_connected() && !status.replicating());
        assert_eq!(
            status.summary(),
            "source :, IO thread , SQL thread , received (empty), ? s behind"
        );
    }
}

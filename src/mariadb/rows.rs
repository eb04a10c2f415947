//! Reading what a server answers: a replication connection's row of `SHOW ALL SLAVES
//! STATUS` (by column name, into [`ReplicaStatus`]), a database's state in one query,
//! a column of any row as text. Never a panic on what a server sent.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::gtid::GtidPosition;
use crate::replication::{ReplicaStatus, SemiSync};

/// What a database says of itself, read in one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbState {
    /// `@@server_id`: how replication tells servers apart; two servers of a pair never
    /// share one, so the peer having this host's is the peer being this host.
    pub server_id: u32,
    /// The server's version (major, minor): what its privileges mean changed over time.
    pub version: (u16, u16),
    pub read_only: bool,
    /// `@@gtid_binlog_pos`: the last transaction in its binary log, per domain.
    pub gtid_binlog_pos: GtidPosition,
    /// `@@gtid_current_pos`: the last transaction it has, logged or replicated.
    pub gtid_current_pos: GtidPosition,
    /// `@@gtid_slave_pos`: the last transaction it applied as a replica.
    pub gtid_slave_pos: GtidPosition,
    /// The replication connection, `None` when there is none.
    pub replica: Option<ReplicaStatus>,
    /// Its semi-sync sides.
    pub semi_sync: SemiSync,
}

/// A position the server gave for `what`, typed; a malformed one is an error naming it.
pub(super) fn position(what: &str, text: Option<String>) -> anyhow::Result<GtidPosition> {
    GtidPosition::parse(text.as_deref().unwrap_or_default())
        .map_err(|e| anyhow!("the server's {what}: {e}"))
}

/// Its server id, read_only flag, three GTID positions and the replication connection
/// `name`.
pub(super) async fn read_state(conn: &mut Conn, name: &str) -> anyhow::Result<DbState> {
    type Row = (
        Option<u64>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .query_first(
            "SELECT @@global.server_id, @@global.read_only, @@global.gtid_binlog_pos, \
             @@global.gtid_current_pos, @@global.gtid_slave_pos",
        )
        .await?;
    let (server_id, read_only, binlog, current, slave) = row.unwrap_or_default();
    let server_id = server_id
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| anyhow!("the server's @@server_id is {server_id:?}, not a server id"))?;
    let (major, minor, _) = conn.server_version();
    Ok(DbState {
        server_id,
        version: (major, minor),
        read_only: read_only == Some(1),
        gtid_binlog_pos: position("@@gtid_binlog_pos", binlog)?,
        gtid_current_pos: position("@@gtid_current_pos", current)?,
        gtid_slave_pos: position("@@gtid_slave_pos", slave)?,
        replica: read_status(conn, name).await?,
        semi_sync: read_semi_sync(conn).await,
    })
}

/// Its semi-sync sides; what cannot be read is `None` (a server built without them).
async fn read_semi_sync(conn: &mut Conn) -> SemiSync {
    let sides: Option<(Option<i64>, Option<i64>)> = conn
        .query_first(
            "SELECT @@global.rpl_semi_sync_master_enabled, @@global.rpl_semi_sync_slave_enabled",
        )
        .await
        .ok()
        .flatten();
    let status: Option<(String, String)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
        .await
        .ok()
        .flatten();
    let (master, slave) = sides.unwrap_or_default();
    SemiSync {
        master_enabled: master.map(|v| v != 0),
        slave_enabled: slave.map(|v| v != 0),
        master_active: status.map(|(_, value)| value.eq_ignore_ascii_case("ON")),
    }
}

/// The replication connection `name`'s status; `None` when there is none.
pub(super) async fn read_status(
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
            return ReplicaStatus::from_columns(|column| columns.get(column).cloned())
                .map(Some)
                .map_err(|e| anyhow!(e));
        }
    }
    Ok(None)
}

/// A column of a row by name, as text; `None` when absent, NULL or not text.
pub(super) fn column(row: &mysql_async::Row, name: &str) -> Option<String> {
    column_text(&row.get_opt::<mysql_async::Value, _>(name)?.ok()?)
}

/// A value as text; `None` for NULL, dates and times.
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

/// `@@gtid_slave_pos` and `@@gtid_current_pos`, typed.
pub(super) async fn applied_and_current(
    conn: &mut Conn,
) -> anyhow::Result<(GtidPosition, GtidPosition)> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .query_first("SELECT @@global.gtid_slave_pos, @@global.gtid_current_pos")
        .await
        .context("reading the GTID positions")?;
    let (applied, current) = row.unwrap_or_default();
    Ok((
        position("@@gtid_slave_pos", applied)?,
        position("@@gtid_current_pos", current)?,
    ))
}

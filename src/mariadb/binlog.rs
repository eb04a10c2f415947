//! Where a transaction lies in a server's binary logs: the file from `SHOW BINARY LOGS`
//! and each file's starting position (`BINLOG_GTID_POS(file, 4)`), then its GTID
//! event's position from `SHOW BINLOG EVENTS IN file`. Reads only.

use anyhow::Context;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::connect::Quoting;
use super::rows::{self, column};
use crate::gtid::{self, Gtid, GtidPosition};

/// Where a transaction lies in a database's binary logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogSpot {
    /// The file, and the position of the transaction's GTID event in it.
    At { file: String, position: u64 },
    /// The file; its GTID event lies past the scan bound.
    InFile(String),
    /// No binary log holds it any more (purged).
    Purged,
}

/// Where `gtid` lies, reading at most `scan_bound` events of the file that holds it
/// (past it, the file only).
pub(super) async fn locate(
    conn: &mut Conn,
    gtid: Gtid,
    scan_bound: u32,
) -> anyhow::Result<BinlogSpot> {
    let logs: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("SHOW BINARY LOGS")?;
    let mut files: Vec<(String, GtidPosition)> = Vec::new();
    for name in logs.iter().filter_map(|row| column(row, "Log_name")) {
        let start: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (name.as_str(),))
            .await
            .with_context(|| format!("BINLOG_GTID_POS({name}, 4)"))?;
        let start = rows::position(&format!("BINLOG_GTID_POS({name}, 4)"), start.flatten())?;
        files.push((name, start));
    }
    let Some(file) = gtid::binlog_file_holding(&files, gtid) else {
        return Ok(BinlogSpot::Purged);
    };
    let quoting = Quoting::of_session(conn)
        .await
        .context("reading @@SESSION.sql_mode")?;
    let events: Vec<mysql_async::Row> = conn
        .query(format!(
            "SHOW BINLOG EVENTS IN {} LIMIT {scan_bound}",
            quoting.literal(file)
        ))
        .await
        .with_context(|| format!("SHOW BINLOG EVENTS IN {file}"))?;
    let found = events.iter().find_map(|row| {
        let is_gtid = column(row, "Event_type").is_some_and(|t| t == "Gtid");
        let names = column(row, "Info")
            .and_then(|info| gtid::gtid_of_event(&info))
            .is_some_and(|g| g.domain == gtid.domain && g.sequence == gtid.sequence);
        if is_gtid && names {
            column(row, "Pos").and_then(|pos| pos.parse().ok())
        } else {
            None
        }
    });
    Ok(match found {
        Some(position) => BinlogSpot::At {
            file: file.to_string(),
            position,
        },
        None => BinlogSpot::InFile(file.to_string()),
    })
}

//! Where a transaction lies in a server's binary logs: the file from `SHOW BINARY LOGS`
//! and each file's starting position (`BINLOG_GTID_POS(file, 4)`), then its GTID
//! event's position from `SHOW BINLOG EVENTS IN file`; and where the oldest binary log
//! starts (what a replica must have, at least, to replicate from it). Reads only.

use anyhow::Context;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::connect::Quoting;
use super::rows::{self, column};
use crate::gtid::{self, Gtid, GtidPosition};

/// Where a transaction lies in a database's binary logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogSpot {
    /// The file, the position of the transaction's GTID event in it, and its GTID as
    /// the event names it (its server id is only known from here).
    At {
        file: String,
        position: u64,
        gtid: Gtid,
    },
    /// The file; its GTID event lies past the scan bound.
    InFile(String),
    /// The file that would hold it was read whole and has no such event: the
    /// transaction was never logged here (applied as a replica without
    /// `log_slave_updates`).
    NotInFile(String),
    /// No binary log holds it any more (purged).
    Purged,
}

/// Every binary log, oldest first, with the GTID position it starts at.
async fn files(conn: &mut Conn) -> anyhow::Result<Vec<(String, GtidPosition)>> {
    let logs: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("SHOW BINARY LOGS")?;
    let mut files = Vec::new();
    for name in logs.iter().filter_map(|row| column(row, "Log_name")) {
        files.push(start_of(conn, name).await?);
    }
    Ok(files)
}

/// A binary log's name and the GTID position it starts at.
async fn start_of(conn: &mut Conn, name: String) -> anyhow::Result<(String, GtidPosition)> {
    let start: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (name.as_str(),))
        .await
        .with_context(|| format!("BINLOG_GTID_POS({name}, 4)"))?;
    let start = rows::position(&format!("BINLOG_GTID_POS({name}, 4)"), start.flatten())?;
    Ok((name, start))
}

/// The oldest binary log and the GTID position it starts at; `None` without any.
pub(super) async fn oldest(conn: &mut Conn) -> anyhow::Result<Option<(String, GtidPosition)>> {
    let logs: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("SHOW BINARY LOGS")?;
    match logs.iter().find_map(|row| column(row, "Log_name")) {
        Some(name) => Ok(Some(start_of(conn, name).await?)),
        None => Ok(None),
    }
}

/// Where the transaction with `sequence` in `domain` lies, reading at most `scan_bound`
/// events of the file that holds it (past it, the file only).
pub(super) async fn locate(
    conn: &mut Conn,
    (domain, sequence): (u32, u64),
    scan_bound: u32,
) -> anyhow::Result<BinlogSpot> {
    let files = files(conn).await?;
    let Some(file) = gtid::binlog_file_holding(&files, (domain, sequence)) else {
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
        let gtid = column(row, "Info")
            .and_then(|info| gtid::gtid_of_event(&info))
            .filter(|g| g.domain == domain && g.sequence == sequence)?;
        let position = column(row, "Pos").and_then(|pos| pos.parse().ok())?;
        is_gtid.then_some((position, gtid))
    });
    let read_whole = events.len() < scan_bound as usize;
    Ok(match found {
        Some((position, gtid)) => BinlogSpot::At {
            file: file.to_string(),
            position,
            gtid,
        },
        None if read_whole => BinlogSpot::NotInFile(file.to_string()),
        None => BinlogSpot::InFile(file.to_string()),
    })
}

//! Stopping a replica once everything it received is applied (the `stop_replica`
//! step), waiting for a position (`MASTER_GTID_WAIT`, the one wait this program
//! makes; [`catch_up`] waits in slices, watching the replication threads), and the
//! semi-sync sides of a host that becomes a replica.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use super::rows;
use crate::gtid::GtidPosition;
use crate::journal::GtidPositions;
use crate::replication::{ReplicaStatus, ThreadError};

/// Stop the IO thread, wait until everything received is applied (at most
/// `apply_timeout`), stop the replica and, when `reset`, `RESET SLAVE ALL`. Returns the
/// positions it left and what it did, in words.
pub(super) async fn stop_after_applying(
    conn: &mut Conn,
    name: &str,
    apply_timeout: Duration,
    reset: bool,
) -> anyhow::Result<(GtidPositions, String)> {
    let Some(status) = rows::read_status(conn, name).await? else {
        let (applied, current) = rows::applied_and_current(conn).await?;
        let positions = GtidPositions {
            received: GtidPosition::empty(),
            applied,
            current,
        };
        return Ok((
            positions,
            format!("no replication connection {name:?}: already stopped and reset"),
        ));
    };
    if let Some(error) = &status.sql_error {
        bail!("the replica's SQL thread stopped with an error; nothing was made writable: {error}");
    }
    stop_io_thread(conn).await?;
    // Read again: once the IO thread is stopped, Gtid_IO_Pos is final.
    let status = rows::read_status(conn, name)
        .await?
        .ok_or_else(|| anyhow!("the replication connection {name:?} vanished"))?;
    let received = status.gtid_io_pos;
    tracing::info!("replica IO thread stopped; received up to {received}");

    wait_until_applied(conn, name, &received, apply_timeout).await?;

    conn.query_drop("STOP SLAVE").await.context("STOP SLAVE")?;
    let mut detail = format!("received {received} and applied it");
    if reset {
        conn.query_drop("RESET SLAVE ALL")
            .await
            .context("RESET SLAVE ALL")?;
        detail.push_str("; RESET SLAVE ALL done");
    }
    let (applied, current) = rows::applied_and_current(conn).await?;
    let positions = GtidPositions {
        received,
        applied,
        current,
    };
    Ok((positions, detail))
}

/// `STOP SLAVE IO_THREAD`, quickly even on a semi-sync replica of a dead primary.
///
/// A semi-sync replica whose IO thread stops first connects to its primary to kill the
/// dump thread there, and waits for a primary that does not answer: 2 s measured with
/// the default rpl_semi_sync_slave_kill_conn_timeout (5), 1 s at its least useful value
/// (0 means no limit). It is cut for this stop, then restored.
async fn stop_io_thread(conn: &mut Conn) -> anyhow::Result<()> {
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
            tracing::warn!("cannot restore rpl_semi_sync_slave_kill_conn_timeout = {timeout}: {e}");
        }
    }
    stopped.context("STOP SLAVE IO_THREAD")
}

/// Waits in short slices, so a SQL thread error is seen at once rather than at timeout;
/// starts a stopped SQL thread once, to apply the relay log.
async fn wait_until_applied(
    conn: &mut Conn,
    name: &str,
    received: &GtidPosition,
    apply_timeout: Duration,
) -> anyhow::Result<()> {
    if received.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + apply_timeout;
    let mut started_sql_thread = false;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        if wait_for_position(conn, received, slice).await? {
            return Ok(());
        }
        let status = rows::read_status(conn, name)
            .await?
            .ok_or_else(|| anyhow!("the replication connection {name:?} vanished"))?;
        if let Some(error) = &status.sql_error {
            bail!(
                "the replica's SQL thread stopped with an error before applying everything received ({received}); nothing was made writable: {error}"
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
            let (applied, _) = rows::applied_and_current(conn).await?;
            bail!(
                "the relay log was not applied within apply_timeout ({}): received {received}, applied {applied}; nothing was made writable",
                humantime::format_duration(apply_timeout),
            );
        }
    }
}

/// How a watched wait for a position ended ([`super::Server::catch_up`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaughtUp {
    /// The position is applied (and, when asked, both threads run).
    Yes,
    /// A thread's error that waiting cannot mend ([`ReplicaStatus::fatal_error`]).
    Failed(ThreadError),
    /// The replication connection does not exist.
    NoConnection,
    /// Not by the timeout; the last status read.
    TimedOut(Box<ReplicaStatus>),
}

/// How long one slice of a watched wait lasts: a thread's error is seen within it.
const SLICE: Duration = Duration::from_secs(1);

/// Waits until `position` is applied, at most `timeout`, in slices of [`SLICE`], reading
/// the replication connection `name` after each: a thread's error that waiting cannot
/// mend ends the wait at once, where one `MASTER_GTID_WAIT` would wait out the whole
/// timeout. `threads_must_run`: done only once both threads run too (a replica just
/// pointed at its primary, whose position may be applied already while its IO thread
/// cannot log in).
pub(super) async fn catch_up(
    conn: &mut Conn,
    name: &str,
    position: &GtidPosition,
    timeout: Duration,
    threads_must_run: bool,
) -> anyhow::Result<CaughtUp> {
    let deadline = Instant::now() + timeout;
    loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(SLICE);
        let reached = position.is_empty() || wait_for_position(conn, position, slice).await?;
        let Some(status) = rows::read_status(conn, name).await? else {
            return Ok(CaughtUp::NoConnection);
        };
        if let Some(error) = status.fatal_error() {
            return Ok(CaughtUp::Failed(error.clone()));
        }
        let running = status.io_running == "Yes" && status.sql_running == "Yes";
        if reached && (running || !threads_must_run) {
            return Ok(CaughtUp::Yes);
        }
        if Instant::now() >= deadline {
            return Ok(CaughtUp::TimedOut(Box::new(status)));
        }
        if reached {
            // Only the threads are awaited: no MASTER_GTID_WAIT paces the loop.
            tokio::time::sleep(slice.min(Duration::from_millis(200))).await;
        }
    }
}

/// `MASTER_GTID_WAIT(position, timeout)`: true once applied, false when `timeout` ran out.
pub(super) async fn wait_for_position(
    conn: &mut Conn,
    position: &GtidPosition,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let reached: Option<i64> = conn
        .exec_first(
            "SELECT MASTER_GTID_WAIT(?, ?)",
            (position.canonical(), timeout.as_secs_f64()),
        )
        .await
        .context("MASTER_GTID_WAIT")?;
    Ok(reached == Some(0))
}

/// A host becoming a replica: its semi-sync primary side off, its replica side on (read
/// when its IO thread starts). With `replication.semi_sync` always; without it only for
/// a former semi-sync primary, which would otherwise wait, on the first transaction it
/// applies, for an acknowledgement no replica sends (`rpl_semi_sync_master_timeout`),
/// with a `STOP SLAVE` meanwhile waiting too. Needs `REPLICATION MASTER ADMIN`; without
/// it the round's check says the sides drift, so a failure here is a warning.
pub(super) async fn become_semi_sync_replica(conn: &mut Conn, on: &str, configured: bool) {
    let master_on: Option<i64> = conn
        .query_first("SELECT @@global.rpl_semi_sync_master_enabled")
        .await
        .ok()
        .flatten();
    if !configured && master_on != Some(1) {
        return;
    }
    for statement in [
        "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
        "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
    ] {
        if let Err(e) = conn.query_drop(statement).await {
            tracing::warn!("{statement} on {on}, which becomes a replica: {e}");
        }
    }
}

/// A host becoming the primary, with `replication.semi_sync`: its semi-sync primary
/// side on, without waiting while no replica is connected
/// (`rpl_semi_sync_master_wait_no_slave = OFF`: a new primary whose standby is gone
/// must not stall its first commits), its replica side off. What failed, in words.
pub(super) async fn become_semi_sync_primary(conn: &mut Conn) -> Result<(), String> {
    let mut failed = Vec::new();
    for statement in [
        "SET GLOBAL rpl_semi_sync_master_wait_no_slave = OFF",
        "SET GLOBAL rpl_semi_sync_master_enabled = ON",
        "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
    ] {
        if let Err(e) = conn.query_drop(statement).await {
            failed.push(format!("{statement}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

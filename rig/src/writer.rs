//! An application writing through a switchover: one autocommit `INSERT` after another as
//! [`APP_USER`] (no `READ_ONLY ADMIN`, so a read-only server refuses it), to whichever
//! server of the pair takes writes: the last one that did, else the other. Every error is
//! retried (on the other server, with a fresh id, since an unacknowledged write may or
//! may not have committed); every acknowledged write is recorded with its server's port
//! and the time, so a test can check each is on the final primary and measure the
//! longest time with no acknowledged write ([`longest_gap`]): how long writes were
//! refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts};

use crate::mariadb::{APP_DB, APP_PASSWORD, APP_TABLE, APP_USER, MariaDb};

/// How long a connection attempt may take before the other server is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one `INSERT` may take before it counts as refused (a semi-sync wait on a
/// fenced primary could otherwise hold the writer).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause after a refused write before the next try: the retry pace of an
/// application, so a refusing pair is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    /// The port of the server that acknowledged it.
    pub port: u16,
    pub at: Instant,
}

/// The writer, running until [`Writer::stop`] (or dropped).
#[derive(Debug)]
pub struct Writer {
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    /// Starts writing to `servers` (the primary first), ids from `first_id` up.
    pub fn start(servers: [&MariaDb; 2], first_id: u64) -> Writer {
        let targets = servers.map(|s| (s.port(), s.opts(APP_USER, APP_PASSWORD)));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write_loop(targets, first_id, acks.clone(), stop.clone()));
        Writer {
            acks,
            stop,
            task: Some(task),
        }
    }

    /// How many writes were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acks.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Waits until `n` writes are acknowledged, or fails after `timeout`.
    pub async fn wait_for_acks(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.acked() < n {
            if started.elapsed() > timeout {
                bail!(
                    "{} writes acknowledged in {timeout:?}, wanted {n}",
                    self.acked()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Stops writing (a write in flight is abandoned, not counted) and returns every
    /// acknowledged write in order.
    pub async fn stop(mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(WRITE_TIMEOUT + Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        std::mem::take(&mut *self.acks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The longest time between two acknowledged writes (zero with fewer than two).
pub fn longest_gap(acks: &[Ack]) -> Duration {
    acks.windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default()
}

/// The acknowledged writes `server` does not hold, in the order they were acknowledged:
/// none when no acknowledged write was lost.
pub async fn missing_on(acks: &[Ack], server: &MariaDb) -> anyhow::Result<Vec<u64>> {
    let held: std::collections::BTreeSet<u64> = server.app_write_ids().await?.into_iter().collect();
    Ok(acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !held.contains(id))
        .collect())
}

async fn write_loop(
    targets: [(u16, Opts); 2],
    first_id: u64,
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
) {
    let mut conns: [Option<Conn>; 2] = [None, None];
    let mut current = 0;
    let mut id = first_id;
    while !stop.load(Ordering::SeqCst) {
        let (port, opts) = &targets[current];
        if conns[current].is_none() {
            conns[current] = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts.clone()))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let written = match conns[current].as_mut() {
            None => false,
            Some(conn) => {
                let insert = conn.exec_drop(
                    format!("INSERT INTO {APP_DB}.{APP_TABLE} (id, payload) VALUES (?, 'w')"),
                    (id,),
                );
                matches!(
                    tokio::time::timeout(WRITE_TIMEOUT, insert).await,
                    Ok(Ok(()))
                )
            }
        };
        if written {
            if let Ok(mut acks) = acks.lock() {
                acks.push(Ack {
                    id,
                    port: *port,
                    at: Instant::now(),
                });
            }
        } else {
            // A refused write: the connection may be dead (killed by a fence); the other
            // server is tried next.
            conns[current] = None;
            current = 1 - current;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        id += 1;
    }
}

//! The MariaDB edge: the only module that sends SQL, to any of the servers this program
//! talks to: this host's own database (through the `[replica]` account), the peer's
//! (`[peer]`), the old primary being fenced and the primary's `mysql` checks (the check's
//! account). Every server is a [`Server`], made from the config, and every exchange goes
//! through its one connect path.
//!
//! The deadline rule: connecting (the TCP connect and the handshake) is bounded by the
//! server's connect timeout (the probe timeout: a database that does not answer its
//! handshake within it counts as not answering, as it does for detection). Every
//! exchange as a whole is bounded by [`STATEMENTS`] beyond that, plus whatever wait the
//! exchange is for (`MASTER_GTID_WAIT`'s own timeout, the relay log's `apply_timeout`),
//! so no statement can hang a caller whose server stops answering mid-way. Callers may
//! bound an exchange tighter still (a step's deadline, a round's timeout).
//!
//! What a server answers is read into typed values: GTID positions ([`GtidPosition`]; a
//! malformed one is an error naming it, never a panic), a replication connection's row
//! ([`ReplicaStatus`], read by column name in [`rows`]). The connection options (TCP
//! only, the account, TLS as the config says) and what a failed connection means are
//! [`connect`]'s; every literal in a statement is written for the session's `sql_mode`
//! ([`Quoting`]), and the one statement that carries a secret (`CHANGE MASTER`, built by
//! [`channel`] with every setting of `[replication]`) never passes the server's message
//! on whole.

mod apply;
mod binlog;
pub mod channel;
pub mod connect;
mod rows;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::config::{ChannelConfig, Config, TlsConfig};
use crate::gtid::GtidPosition;
use crate::journal::GtidPositions;
use crate::replication::ReplicaStatus;
use crate::secret::Secret;
pub use apply::CaughtUp;
pub use binlog::BinlogSpot;
pub use connect::{ConnectError, Quoting};
pub use rows::DbState;
use rows::position;

/// What an exchange may take beyond connecting and the wait it is for: a few statements.
pub const STATEMENTS: Duration = Duration::from_secs(30);

/// A MariaDB server, with the account we act on it with.
#[derive(Debug, Clone)]
pub struct Server {
    /// "this host's database", "the peer's database (nyc1)", for messages.
    label: String,
    host: String,
    port: u16,
    user: String,
    password: Secret,
    /// The replication connection statements act on (`[replica] connection_name`; the
    /// same on both hosts of a mirrored pair).
    connection_name: String,
    /// How long connecting (and the handshake) may take.
    connect_timeout: Duration,
    /// How we reach it (the TLS keys of its table).
    tls: TlsConfig,
    /// `[replication]`: what a channel pointed from this server is set up with; `None`
    /// for a server only checked (the primary's `mysql` checks).
    channel: Option<ChannelConfig>,
}

/// What the primary's `mysql` check read: it answered `SELECT 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// What it had committed at that moment.
    pub gtid_binlog_pos: GtidPosition,
    pub read_only: bool,
}

/// What fencing a primary did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// Client connections ended after `read_only = ON`.
    pub killed: usize,
    /// `@@gtid_binlog_pos` once fenced: nothing commits after it.
    pub final_position: GtidPosition,
}

impl Server {
    /// This host's own MariaDB, through the `[replica]` account.
    pub fn own(config: &Config) -> Server {
        let r = &config.replica;
        Server {
            label: "this host's database".to_string(),
            host: r.host.clone(),
            port: r.port,
            user: r.user.clone(),
            password: r.password.clone(),
            connection_name: r.connection_name.clone(),
            connect_timeout: config.probe.timeout,
            tls: r.tls.clone(),
            channel: Some(config.replication.clone()),
        }
    }

    /// The peer's MariaDB, through the `[peer]` account; `None` without `[peer]`.
    pub fn peer(config: &Config) -> Option<Server> {
        let p = config.peer.as_ref()?;
        Some(Server {
            label: format!("the peer's database ({})", p.name),
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            password: p.password.clone(),
            connection_name: config.replica.connection_name.clone(),
            connect_timeout: config.probe.timeout,
            tls: p.tls.clone(),
            channel: Some(config.replication.clone()),
        })
    }

    /// The old primary's MariaDB as a promotion fences it: through the first `mysql`
    /// check's account; `None` without one.
    pub fn old_primary(config: &Config) -> Option<Server> {
        let (host, port, user, password, tls) = config.primary_database()?;
        let mut server = Server::checked(host, port, user, password, tls, config.probe.timeout);
        server.label = format!("the old primary's database ({host}:{port})");
        Some(server)
    }

    /// A server a `mysql` check probes, within `timeout`.
    pub fn checked(
        host: &str,
        port: u16,
        user: &str,
        password: &Secret,
        tls: &TlsConfig,
        timeout: Duration,
    ) -> Server {
        Server {
            label: "the database".to_string(),
            host: host.to_string(),
            port,
            user: user.to_string(),
            password: password.clone(),
            connection_name: String::new(),
            connect_timeout: timeout,
            tls: tls.clone(),
            channel: None,
        }
    }

    /// "the peer's database (nyc1) watchdog@198.51.100.10:3306".
    pub fn describe(&self) -> String {
        format!("{} {}@{}:{}", self.label, self.user, self.host, self.port)
    }

    /// "the old primary's database (198.51.100.10:3306)", for the fence record.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The one connect path: TCP (and TLS, as its table says) to the server within the
    /// connect timeout, the replication connection selected as the session's default.
    async fn connect(&self) -> anyhow::Result<Conn> {
        let connect =
            connect::connect(&self.host, self.port, &self.user, &self.password, &self.tls);
        let mut conn = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| Unreachable::Timeout {
                server: self.describe(),
                within: self.connect_timeout,
            })?
            .map_err(|error| Unreachable::Refused {
                server: self.describe(),
                error,
            })?;
        if !self.connection_name.is_empty() {
            conn.exec_drop(
                "SET @@session.default_master_connection = ?",
                (self.connection_name.as_str(),),
            )
            .await
            .context("cannot select the replication connection")?;
        }
        Ok(conn)
    }

    /// One exchange: connect, `work`, disconnect; all within the deadline rule, with
    /// `wait` for what the exchange waits on by design.
    async fn exchange<T, F>(
        &self,
        wait: Duration,
        work: impl FnOnce(Conn) -> F,
    ) -> anyhow::Result<T>
    where
        F: Future<Output = anyhow::Result<(Conn, T)>>,
    {
        let limit = self.connect_timeout + STATEMENTS + wait;
        let run = async {
            let conn = self.connect().await?;
            let (conn, value) = work(conn).await?;
            // A server that hangs up first is no failure of the exchange.
            let _ = conn.disconnect().await;
            Ok(value)
        };
        tokio::time::timeout(limit, run).await.map_err(|_| {
            anyhow!(
                "{} did not finish an exchange within {}",
                self.describe(),
                humantime::format_duration(limit)
            )
        })?
    }

    /// Whether TLS to this server works as its table says, for the smoke test: `None`
    /// when TLS is off, or the server does not answer or refuses the account (not
    /// TLS's doing); else what was found, `Err` naming the TLS problem.
    pub async fn check_tls(&self) -> Option<Result<String, String>> {
        if self.tls.mode == crate::config::TlsMode::Disabled {
            return None;
        }
        let connect =
            connect::connect(&self.host, self.port, &self.user, &self.password, &self.tls);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(conn)) => {
                let _ = conn.disconnect().await;
                Some(Ok(format!(
                    "{} reached with tls {}",
                    self.label,
                    self.tls.mode.as_str()
                )))
            }
            Ok(Err(e)) if e.is_tls() => Some(Err(format!("{}: {e}", self.label))),
            _ => None,
        }
    }

    /// The `mysql` check: `SELECT 1`, what it has committed, whether it takes writes (no
    /// privilege needed). Errors are the server's, for the check's detail.
    pub async fn ping(&self) -> anyhow::Result<Ping> {
        self.exchange(Duration::ZERO, |mut conn| async move {
            type Row = (i64, Option<String>, Option<i64>);
            let row: Option<Row> = conn
                .query_first("SELECT 1, @@global.gtid_binlog_pos, @@global.read_only")
                .await?;
            match row {
                Some((1, gtid, read_only)) => {
                    let gtid_binlog_pos = position("@@gtid_binlog_pos", gtid)?;
                    let ping = Ping {
                        gtid_binlog_pos,
                        read_only: read_only.is_some_and(|r| r != 0),
                    };
                    Ok((conn, ping))
                }
                other => bail!("SELECT 1 returned {other:?}"),
            }
        })
        .await
    }

    /// Its server id, read_only flag, GTID positions and replication, in one exchange.
    pub async fn state(&self) -> anyhow::Result<DbState> {
        let name = self.connection_name.clone();
        self.exchange(Duration::ZERO, |mut conn| async move {
            let state = rows::read_state(&mut conn, &name).await?;
            Ok((conn, state))
        })
        .await
        .with_context(|| format!("reading {}", self.describe()))
    }

    /// The configured replication connection's status, `None` when it does not exist
    /// (never set up, or already reset).
    pub async fn replica_status(&self) -> anyhow::Result<Option<ReplicaStatus>> {
        let name = self.connection_name.clone();
        self.exchange(Duration::ZERO, |mut conn| async move {
            let status = rows::read_status(&mut conn, &name).await?;
            Ok((conn, status))
        })
        .await
    }

    /// `@@global.read_only`.
    pub async fn read_only(&self) -> anyhow::Result<bool> {
        self.exchange(Duration::ZERO, |mut conn| async move {
            let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
            Ok((conn, value == Some(1)))
        })
        .await
    }

    /// `SHOW GRANTS`: the account's grants as MariaDB prints them, its own, its enabled
    /// roles' and PUBLIC's. Read-only, for the smoke test. The lines can hold the
    /// password hash (`IDENTIFIED BY PASSWORD '*...'`): never print them.
    pub async fn grants(&self) -> anyhow::Result<Vec<String>> {
        self.exchange(Duration::ZERO, |mut conn| async move {
            let grants: Vec<String> = conn.query("SHOW GRANTS").await.context("SHOW GRANTS")?;
            Ok((conn, grants))
        })
        .await
    }

    /// `SET GLOBAL read_only`, read back.
    pub async fn set_read_only(&self, on: bool) -> anyhow::Result<()> {
        let on_what = self.describe();
        self.exchange(Duration::ZERO, |mut conn| async move {
            let statement = format!("SET GLOBAL read_only = {}", if on { "ON" } else { "OFF" });
            conn.query_drop(&statement)
                .await
                .with_context(|| format!("{statement} on {on_what}"))?;
            let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
            if value != Some(i64::from(on)) {
                bail!("read_only is {value:?} on {on_what} after {statement}");
            }
            Ok((conn, ()))
        })
        .await
    }

    /// The `make_writable` step: `SET GLOBAL read_only = OFF`, read back; with
    /// `replication.semi_sync`, the semi-sync sides of a primary (a failure there is
    /// said, not fatal: the promotion must finish, and the round's check alerts it).
    pub async fn make_writable(&self) -> anyhow::Result<String> {
        let semi_sync = self.semi_sync();
        self.exchange(Duration::ZERO, |mut conn| async move {
            conn.query_drop("SET GLOBAL read_only = OFF")
                .await
                .context("SET GLOBAL read_only = OFF")?;
            let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
            if value != Some(0) {
                bail!("read_only is still {value:?} after SET GLOBAL read_only = OFF");
            }
            let mut detail = "read_only = OFF (read back)".to_string();
            if semi_sync {
                match apply::become_semi_sync_primary(&mut conn).await {
                    Ok(()) => detail.push_str("; semi-sync primary side on"),
                    Err(e) => {
                        tracing::warn!("the semi-sync sides of the new primary: {e}");
                        detail.push_str(&format!("; the semi-sync sides could not be set: {e}"));
                    }
                }
            }
            Ok((conn, detail))
        })
        .await
    }

    /// Whether both hosts run semi-sync (`replication.semi_sync`).
    fn semi_sync(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.semi_sync)
    }

    /// Fences a primary: `read_only = ON` (which waits at most `drain` for the writes
    /// committing now: `lock_wait_timeout`), then every client connection ended but
    /// ours, the server's own threads and its replicas' (a replica still catching up
    /// must get the last transactions), then the final position read. After it nothing
    /// commits there but from an account that may write through read_only (`READ_ONLY
    /// ADMIN`, `SUPER`), which an application must not use.
    pub async fn fence(&self, drain: Duration) -> anyhow::Result<Fenced> {
        let on_what = self.describe();
        self.exchange(drain, |mut conn| async move {
            let wait = drain.as_secs().max(1);
            conn.query_drop(format!("SET SESSION lock_wait_timeout = {wait}"))
                .await
                .context("SET SESSION lock_wait_timeout")?;
            conn.query_drop("SET GLOBAL read_only = ON")
                .await
                .with_context(|| format!("SET GLOBAL read_only = ON on {on_what}"))?;
            let ids: Vec<u64> = conn
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE ID <> CONNECTION_ID() AND USER <> 'system user' \
                     AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID')",
                )
                .await
                .context("listing the client connections")?;
            let mut killed = 0;
            for id in ids {
                // One that ended meanwhile is fine ("Unknown thread id").
                if conn.exec_drop("KILL CONNECTION ?", (id,)).await.is_ok() {
                    killed += 1;
                }
            }
            let position: Option<String> = conn
                .query_first("SELECT @@global.gtid_binlog_pos")
                .await
                .context("reading @@gtid_binlog_pos")?;
            let final_position = rows::position("@@gtid_binlog_pos", position)?;
            Ok((
                conn,
                Fenced {
                    killed,
                    final_position,
                },
            ))
        })
        .await
    }

    /// The `stop_replica` step: stop the IO thread, wait until everything received is
    /// applied (at most `apply_timeout`), stop the replica and, when `reset`, `RESET
    /// SLAVE ALL`. A SQL thread error or the timeout fails the step. Safe to repeat: a
    /// connection already stopped is waited on the same way; one already reset is done.
    pub async fn stop_after_applying(
        &self,
        apply_timeout: Duration,
        reset: bool,
    ) -> anyhow::Result<(GtidPositions, String)> {
        let name = self.connection_name.clone();
        self.exchange(apply_timeout, |mut conn| async move {
            let stopped =
                apply::stop_after_applying(&mut conn, &name, apply_timeout, reset).await?;
            Ok((conn, stopped))
        })
        .await
    }

    /// Points this database's replication at `source_host:source_port` with GTID and
    /// starts it: `STOP SLAVE`, `gtid_slave_pos` set to what it has
    /// (`@@gtid_current_pos`, so a former primary starts after its own last
    /// transaction), `CHANGE MASTER TO … MASTER_USE_GTID = slave_pos`, `START SLAVE`.
    /// Safe to repeat. Does not wait for it to run.
    pub async fn replicate_from(
        &self,
        source_host: &str,
        source_port: u16,
        user: &str,
        password: &Secret,
    ) -> anyhow::Result<()> {
        let on = self.describe();
        let source = channel::Source {
            host: source_host,
            port: source_port,
            user,
            password,
        };
        self.exchange(Duration::ZERO, |mut conn| async move {
            apply::become_semi_sync_replica(&mut conn, &on, self.semi_sync()).await;
            conn.query_drop("STOP SLAVE")
                .await
                .with_context(|| format!("STOP SLAVE on {on}"))?;
            let current: Option<String> = conn
                .query_first("SELECT @@global.gtid_current_pos")
                .await
                .context("reading @@gtid_current_pos")?;
            conn.exec_drop(
                "SET GLOBAL gtid_slave_pos = ?",
                (current.unwrap_or_default(),),
            )
            .await
            .with_context(|| format!("SET GLOBAL gtid_slave_pos on {on}"))?;
            if let Some(not_applied) = self.point_at(&mut conn, &source, &on).await? {
                tracing::warn!("{not_applied} ({on})");
            }
            conn.query_drop("START SLAVE")
                .await
                .with_context(|| format!("START SLAVE on {on}"))?;
            Ok((conn, ()))
        })
        .await
    }

    /// The `CHANGE MASTER` of [`Self::replicate_from`] with every setting of
    /// `[replication]`, its literals written as this session reads them (its
    /// `sql_mode`). The server's error about it is never passed on whole: it may quote
    /// the statement, password included. What this server cannot take (a retry count)
    /// is said, for a warning.
    async fn point_at(
        &self,
        conn: &mut Conn,
        source: &channel::Source<'_>,
        on: &str,
    ) -> anyhow::Result<Option<String>> {
        let quoting = Quoting::of_session(conn)
            .await
            .context("reading @@SESSION.sql_mode")?;
        let (major, minor, _) = conn.server_version();
        let Some(settings) = &self.channel else {
            bail!("{on} is not one of the pair's servers: no replication is pointed from it");
        };
        let statement = channel::change_master(
            &self.connection_name,
            source,
            settings,
            quoting,
            (major, minor),
        );
        conn.query_drop(statement).await.map_err(|e| {
            anyhow!(connect::secret_statement_error(
                &format!("CHANGE MASTER TO {}:{} on {on}", source.host, source.port),
                &e
            ))
        })?;
        Ok(channel::not_applied(settings, (major, minor)))
    }

    /// Waits until this database has applied `position` (`MASTER_GTID_WAIT`), at most
    /// `timeout`; false when it has not by then.
    pub async fn wait_for_position(
        &self,
        position: &GtidPosition,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        if position.is_empty() {
            return Ok(true);
        }
        self.exchange(timeout, |mut conn| async move {
            let reached = apply::wait_for_position(&mut conn, position, timeout).await?;
            Ok((conn, reached))
        })
        .await
    }

    /// Waits until this database's replication has applied `position`, at most
    /// `timeout`, watching its threads: a thread's error that waiting cannot mend ends
    /// the wait at once ([`CaughtUp::Failed`]). `threads_must_run`: done only once both
    /// threads run too.
    pub async fn catch_up(
        &self,
        position: &GtidPosition,
        timeout: Duration,
        threads_must_run: bool,
    ) -> anyhow::Result<CaughtUp> {
        let name = self.connection_name.clone();
        self.exchange(timeout, |mut conn| async move {
            let ended =
                apply::catch_up(&mut conn, &name, position, timeout, threads_must_run).await?;
            Ok((conn, ended))
        })
        .await
        .with_context(|| format!("waiting for {} to apply {position}", self.describe()))
    }

    /// The oldest binary log this database keeps and the GTID position it starts at
    /// (`BINLOG_GTID_POS(file, 4)`): a replica that has less than that in a domain needs
    /// transactions purged here. `None` without binary logs. Reads only.
    pub async fn oldest_binlog(&self) -> anyhow::Result<Option<(String, GtidPosition)>> {
        self.exchange(Duration::ZERO, |mut conn| async move {
            let oldest = binlog::oldest(&mut conn).await?;
            Ok((conn, oldest))
        })
        .await
        .with_context(|| format!("reading the binary logs of {}", self.describe()))
    }

    /// Where the transaction with `sequence` in `domain` lies in this database's binary
    /// logs, reading at most `scan_bound` events of the file that holds it. Reads only.
    pub async fn locate_in_binlog(
        &self,
        (domain, sequence): (u32, u64),
        scan_bound: u32,
    ) -> anyhow::Result<BinlogSpot> {
        let on_what = self.describe();
        self.exchange(Duration::ZERO, |mut conn| async move {
            let spot = binlog::locate(&mut conn, (domain, sequence), scan_bound)
                .await
                .with_context(|| {
                    format!(
                        "looking for sequence {sequence} of domain {domain} in the binary logs of {on_what}"
                    )
                })?;
            Ok((conn, spot))
        })
        .await
    }
}

/// A server we could not open a session with. Only a TLS failure proves it answered
/// ([`ConnectError::is_tls`]); otherwise it counts as not answering.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// No handshake within the connect timeout (a dead or hung host).
    #[error("{server} did not answer within {}", humantime::format_duration(*within))]
    Timeout { server: String, within: Duration },
    /// The connection or the handshake failed (refused, reset, denied, TLS).
    #[error("cannot connect to {server}: {error}")]
    Refused { server: String, error: ConnectError },
}

/// `CHANGE MASTER ['name'] TO …` as [`Server::replicate_from`] sends it to a MariaDB
/// 10.11 in its default `sql_mode`, for `rejoin --dry-run` (with a stand-in password).
pub fn change_master_shown(config: &Config, host: &str, port: u16, user: &str) -> String {
    let password = Secret::inline("[redacted]");
    let source = channel::Source {
        host,
        port,
        user,
        password: &password,
    };
    channel::change_master(
        &config.replica.connection_name,
        &source,
        &config.replication,
        Quoting::BackslashEscapes,
        (10, 11),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_position_from_a_server_is_an_error_naming_it() {
        let error = position("@@gtid_binlog_pos", Some("0-1-x".into())).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("@@gtid_binlog_pos") && text.contains("0-1-x"),
            "{text}"
        );
        assert_eq!(
            position("@@gtid_binlog_pos", None).unwrap(),
            GtidPosition::empty()
        );
    }
}

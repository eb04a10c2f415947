//! The two databases of a pair, as the role watch, `rejoin` and `switchover` act on
//! them: this host's own MariaDB (through the `[replica]` account) and the peer's
//! (through the `[peer]` account). Every SQL statement those paths send lives here, each
//! safe to repeat, each exchange bounded by the caller's deadline or the connect timeout.
//!
//! The pure reading of what the figures mean (roles, errant transactions) is in
//! [`crate::role`] and [`crate::gtid`]; this module only talks.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::channel::{self, ChannelConfig, Source};
use crate::config::{Config, TlsConfig};
use crate::decide::{PairReading, PeerDb, PeerReading};
use crate::gtid::{self, Gtid};
use crate::replica::{ReplicaStatus, read_status};
use crate::role::{self, Role};
use crate::secret::Secret;

/// A MariaDB of the pair, with the account we act on it with.
#[derive(Debug, Clone)]
pub struct Database {
    /// "this host's database" or the peer's name, for messages.
    label: String,
    host: String,
    port: u16,
    user: String,
    password: Secret,
    /// The replication connection this host's replication uses (`[replica]
    /// connection_name`; the same on both hosts of a mirrored pair).
    connection_name: String,
    /// How long connecting (and the handshake) may take.
    connect_timeout: Duration,
    /// How we reach it (`[replica]`'s or `[peer]`'s TLS keys).
    tls: TlsConfig,
    /// `[replication]`: what every channel pointed from here is set up with.
    channel: ChannelConfig,
}

/// What a database says of itself, read in one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbState {
    pub read_only: bool,
    /// `@@gtid_binlog_pos`: the last transaction in its binary log, per domain.
    pub gtid_binlog_pos: String,
    /// `@@gtid_current_pos`: the last transaction it has, logged or replicated.
    pub gtid_current_pos: String,
    /// `@@gtid_slave_pos`: the last transaction it applied as a replica.
    pub gtid_slave_pos: String,
    /// The replication connection, `None` when there is none.
    pub replica: Option<ReplicaStatus>,
}

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

/// What fencing a primary did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// Client connections ended after `read_only = ON`.
    pub killed: usize,
    /// `@@gtid_binlog_pos` once fenced: nothing commits after it.
    pub final_position: String,
}

impl Database {
    /// This host's own MariaDB, through the `[replica]` account.
    pub fn local(config: &Config) -> Database {
        let r = &config.replica;
        Database {
            label: "this host's database".to_string(),
            host: r.host.clone(),
            port: r.port,
            user: r.user.clone(),
            password: r.password.clone(),
            connection_name: r.connection_name.clone(),
            connect_timeout: config.probe.timeout,
            tls: r.tls.clone(),
            channel: config.replication.clone(),
        }
    }

    /// The peer's MariaDB, through the `[peer]` account; `None` without `[peer]`.
    pub fn peer(config: &Config) -> Option<Database> {
        let p = config.peer.as_ref()?;
        Some(Database {
            label: format!("the peer's database ({})", p.name),
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            password: p.password.clone(),
            connection_name: config.replica.connection_name.clone(),
            connect_timeout: config.probe.timeout,
            tls: p.tls.clone(),
            channel: config.replication.clone(),
        })
    }

    /// "the peer's database (primary-nyc1) watchdog@198.51.100.10:3306".
    pub fn describe(&self) -> String {
        format!("{} {}@{}:{}", self.label, self.user, self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection, within the connect timeout, with the replication connection
    /// selected as the session's default.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let connect =
            crate::mysql::connect(&self.host, self.port, &self.user, &self.password, &self.tls);
        let mut conn = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                anyhow!(
                    "{} did not answer within {}",
                    self.describe(),
                    humantime::format_duration(self.connect_timeout)
                )
            })?
            .with_context(|| format!("cannot connect to {}", self.describe()))?;
        conn.exec_drop(
            "SET @@session.default_master_connection = ?",
            (self.connection_name.as_str(),),
        )
        .await
        .context("cannot select the replication connection")?;
        Ok(conn)
    }

    /// Its read_only flag, GTID positions and replication, in one exchange.
    pub async fn state(&self) -> anyhow::Result<DbState> {
        let mut conn = self.connect().await?;
        let state = read_state(&mut conn, &self.connection_name)
            .await
            .with_context(|| format!("reading {}", self.describe()));
        let _ = conn.disconnect().await;
        state
    }

    /// `SET GLOBAL read_only`, read back.
    pub async fn set_read_only(&self, on: bool) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        let statement = format!("SET GLOBAL read_only = {}", if on { "ON" } else { "OFF" });
        conn.query_drop(&statement)
            .await
            .with_context(|| format!("{statement} on {}", self.describe()))?;
        let value: Option<i64> = conn.query_first("SELECT @@global.read_only").await?;
        let _ = conn.disconnect().await;
        if value != Some(i64::from(on)) {
            bail!(
                "read_only is {value:?} on {} after {statement}",
                self.describe()
            );
        }
        Ok(())
    }

    /// Fences a primary for a planned switchover: `read_only = ON` (which waits at most
    /// `drain` for the writes committing now: `lock_wait_timeout`), then every client
    /// connection but ours and the replicas' ended, then the final position read. After
    /// it nothing commits there but from an account that may write through read_only
    /// (`READ_ONLY ADMIN`, `SUPER`), which an application must not use.
    pub async fn fence(&self, drain: Duration) -> anyhow::Result<Fenced> {
        let mut conn = self.connect().await?;
        let wait = drain.as_secs().max(1);
        conn.query_drop(format!("SET SESSION lock_wait_timeout = {wait}"))
            .await
            .context("SET SESSION lock_wait_timeout")?;
        conn.query_drop("SET GLOBAL read_only = ON")
            .await
            .with_context(|| format!("SET GLOBAL read_only = ON on {}", self.describe()))?;
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
        let _ = conn.disconnect().await;
        Ok(Fenced {
            killed,
            final_position: position.unwrap_or_default(),
        })
    }

    /// Points this database's replication at `source_host:source_port` with GTID and
    /// starts it: `STOP SLAVE`, `gtid_slave_pos` set to what it has
    /// (`@@gtid_current_pos`, so a former primary starts after its own last
    /// transaction), `CHANGE MASTER TO … MASTER_USE_GTID = slave_pos` with every
    /// setting of `[replication]` ([`channel::change_master`]), `START SLAVE`. Safe to
    /// repeat. Does not wait for it to run. What the server cannot take (a retry count
    /// it takes only at start) is logged as a warning.
    pub async fn replicate_from(
        &self,
        source_host: &str,
        source_port: u16,
        user: &str,
        password: &Secret,
    ) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        let on = self.describe();
        // A former primary still acting as a semi-sync primary waits, on the first
        // transaction it applies, for an acknowledgement no replica sends
        // (rpl_semi_sync_master_timeout), and a STOP SLAVE meanwhile waits with it.
        // Needs REPLICATION MASTER ADMIN; without it the wait is only slower.
        let semi_sync: Option<i64> = conn
            .query_first("SELECT @@global.rpl_semi_sync_master_enabled")
            .await
            .ok()
            .flatten();
        // It used semi-sync as a primary, so it acknowledges as a replica (read when
        // its IO thread starts below).
        if semi_sync == Some(1) {
            for statement in [
                "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
                "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
            ] {
                if let Err(e) = conn.query_drop(statement).await {
                    tracing::warn!("{statement} on {on}, which becomes a replica: {e}");
                }
            }
        }
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
        if let Some(not_applied) = self
            .point_at(&mut conn, source_host, source_port, user, password)
            .await?
        {
            tracing::warn!("{not_applied} ({on})");
        }
        conn.query_drop("START SLAVE")
            .await
            .with_context(|| format!("START SLAVE on {on}"))?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// The `CHANGE MASTER` of [`Self::replicate_from`], its literals written as this
    /// session reads them (its `sql_mode`). The server's error about it is never passed
    /// on whole: it may quote the statement, password included.
    async fn point_at(
        &self,
        conn: &mut Conn,
        host: &str,
        port: u16,
        user: &str,
        password: &Secret,
    ) -> anyhow::Result<Option<String>> {
        let quoting = crate::mysql::Quoting::of_session(conn)
            .await
            .context("reading @@SESSION.sql_mode")?;
        let (major, minor, _) = conn.server_version();
        let source = Source {
            host,
            port,
            user,
            password,
        };
        let statement = channel::change_master(
            &self.connection_name,
            &source,
            &self.channel,
            quoting,
            (major, minor),
        );
        conn.query_drop(statement).await.map_err(|e| {
            anyhow!(crate::mysql::secret_statement_error(
                &format!("CHANGE MASTER TO {host}:{port} on {}", self.describe()),
                &e
            ))
        })?;
        Ok(channel::not_applied(&self.channel, (major, minor)))
    }

    /// Waits until this database has applied `position` (`MASTER_GTID_WAIT`), at most
    /// `timeout`; false when it has not by then.
    pub async fn wait_for_position(
        &self,
        position: &str,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        if position.is_empty() {
            return Ok(true);
        }
        let mut conn = self.connect().await?;
        let reached: Option<i64> = conn
            .exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (position, timeout.as_secs_f64()),
            )
            .await
            .context("MASTER_GTID_WAIT")?;
        let _ = conn.disconnect().await;
        Ok(reached == Some(0))
    }

    /// Where `gtid` lies in this database's binary logs: the file from `SHOW BINARY
    /// LOGS` and each file's starting position (`BINLOG_GTID_POS(file, 4)`), then its
    /// GTID event's position from `SHOW BINLOG EVENTS IN file`, reading at most
    /// `scan_bound` events (past it, the file only). Reads only.
    pub async fn locate_in_binlog(
        &self,
        gtid: Gtid,
        scan_bound: u32,
    ) -> anyhow::Result<BinlogSpot> {
        let mut conn = self.connect().await?;
        let spot = locate(&mut conn, gtid, scan_bound).await.with_context(|| {
            format!(
                "looking for {gtid} in the binary logs of {}",
                self.describe()
            )
        });
        let _ = conn.disconnect().await;
        spot
    }
}

async fn locate(conn: &mut Conn, gtid: Gtid, scan_bound: u32) -> anyhow::Result<BinlogSpot> {
    let logs: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context("SHOW BINARY LOGS")?;
    let mut files = Vec::new();
    for name in logs.iter().filter_map(|row| column(row, "Log_name")) {
        let start: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (name.as_str(),))
            .await
            .with_context(|| format!("BINLOG_GTID_POS({name}, 4)"))?;
        files.push((name, start.flatten().unwrap_or_default()));
    }
    let Some(file) = gtid::binlog_file_holding(&files, gtid.domain, gtid.sequence) else {
        return Ok(BinlogSpot::Purged);
    };
    let quoting = crate::mysql::Quoting::of_session(conn)
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

/// A column of a server's answer as text; `None` when absent, NULL or not text, never
/// a panic on what the server sent.
fn column(row: &mysql_async::Row, name: &str) -> Option<String> {
    match row.get_opt::<mysql_async::Value, _>(name)?.ok()? {
        mysql_async::Value::Bytes(bytes) => String::from_utf8(bytes).ok(),
        mysql_async::Value::Int(n) => Some(n.to_string()),
        mysql_async::Value::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One round's reading of the pair for the decision core (`None` without `[peer]`):
/// this host's role from its own database; while it is a standby, which application
/// units run (a demoted host stops them); while it is the primary, its standby's
/// database. Each read is bounded by the probe timeout.
pub async fn observe(config: &Config) -> Option<Box<PairReading>> {
    let peer = config.peer.as_ref()?;
    let within = config.probe.timeout;
    let local = Database::local(config);
    let (role, detail, caught_up) = match bounded(within, local.state()).await {
        Ok(state) => {
            let role = role::derive(state.read_only, state.replica.as_ref(), Some(peer));
            let caught_up =
                role == Role::Standby && state.replica.as_ref().is_some_and(role::caught_up);
            (role, describe_state(&state), caught_up)
        }
        Err(e) => (Role::Unknown, format!("{e:#}"), false),
    };
    let mut apps_running = Vec::new();
    if role == Role::Standby && config.apps.stop_when_demoted {
        for unit in &config.apps.units {
            if let Ok(state) = crate::systemd::active_state(unit, within).await
                && matches!(state.as_str(), "active" | "activating" | "reloading")
            {
                apps_running.push(unit.clone());
            }
        }
    }
    let peer = match (role, Database::peer(config)) {
        (Role::Primary, Some(db)) => match bounded(within, db.state()).await {
            Ok(state) => PeerDb::Read(PeerReading {
                writable: !state.read_only,
                replicating: state
                    .replica
                    .as_ref()
                    .is_some_and(ReplicaStatus::replicating),
                lag_seconds: state.replica.as_ref().and_then(|r| r.seconds_behind),
                summary: describe_state(&state),
            }),
            Err(e) => PeerDb::Unreadable(format!("{e:#}")),
        },
        _ => PeerDb::NotRead,
    };
    Some(Box::new(PairReading {
        role,
        detail,
        caught_up,
        apps_running,
        peer,
    }))
}

/// `read_only`, the binlog position and the replication, in one line.
fn describe_state(state: &DbState) -> String {
    format!(
        "read_only {}, binlog at {}, {}",
        if state.read_only { "ON" } else { "OFF" },
        crate::replica::display_gtid(&state.gtid_binlog_pos),
        state.replica.as_ref().map_or(
            "no replication connection".to_string(),
            ReplicaStatus::summary
        )
    )
}

async fn bounded<T>(
    within: Duration,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| anyhow!("no answer within {}", humantime::format_duration(within)))?
}

async fn read_state(conn: &mut Conn, connection_name: &str) -> anyhow::Result<DbState> {
    type Row = (Option<i64>, Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = conn
        .query_first(
            "SELECT @@global.read_only, @@global.gtid_binlog_pos, \
             @@global.gtid_current_pos, @@global.gtid_slave_pos",
        )
        .await?;
    let (read_only, binlog, current, slave) = row.unwrap_or_default();
    Ok(DbState {
        read_only: read_only == Some(1),
        gtid_binlog_pos: binlog.unwrap_or_default(),
        gtid_current_pos: current.unwrap_or_default(),
        gtid_slave_pos: slave.unwrap_or_default(),
        replica: read_status(conn, connection_name).await?,
    })
}

/// `CHANGE MASTER ['name'] TO …` as [`Database::replicate_from`] sends it to a server
/// of MariaDB 10.11 in its default `sql_mode`, for `rejoin --dry-run` (with a stand-in
/// password).
pub(crate) fn change_master(
    config: &Config,
    host: &str,
    port: u16,
    user: &str,
    password: &Secret,
) -> String {
    let source = Source {
        host,
        port,
        user,
        password,
    };
    channel::change_master(
        &config.replica.connection_name,
        &source,
        &config.replication,
        crate::mysql::Quoting::BackslashEscapes,
        (10, 11),
    )
}

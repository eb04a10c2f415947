//! `rejoin`: a repaired former primary becomes its peer's caught-up replica.
//!
//! First the pre-checks ([`precheck`]), each run (a resume too), changing nothing: the
//! peer answers, is another server than this host's own ([`crate::peer::identity`]) and
//! is the writable primary; this host has no transaction the peer lacks
//! ([`crate::gtid::errant`]; when it has, the refusal names each range and where this
//! host's binary logs hold it); the peer still has the binary logs this host needs
//! ([`crate::gtid::purged`]; when it does not, only a rebuild from a backup helps, and
//! the refusal says how). Then six steps, a procedure ([`Rejoin`]) on the one engine,
//! journalled in `state_dir/rejoin.json` around each one, each safe to repeat, so a
//! killed `rejoin` resumes where it was: `stop_apps`, `make_read_only`, `replicate`,
//! `catch_up`, `clear_promotion`, `notify`. A failed step stops the rejoin, alerted; the
//! next run retries it (a failed `catch_up` from `replicate`). `catch_up` fails at once
//! on a replication error that waiting cannot mend, and a stop cuts it short; a stop
//! halts the rejoin where it is. A finished journal is archived as
//! `rejoin.<time>.json`, so every rejoin is kept.
//!
//! The engine holds the promotion lock for the whole run, the pre-checks included, so a
//! rejoin never races a promotion on this host. Every SQL statement is the MariaDB
//! edge's.

use std::cell::Cell;
use std::time::Duration;

use anyhow::{anyhow, bail};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::alert::Alert;
use crate::config::{ConfigError, PeerConfig};
use crate::edges::Edges;
use crate::gtid::{self, ErrantRange, GtidPosition, Purged};
use crate::journal::{Outcome, Rejoin as RejoinKind, RejoinJournal, RejoinStep};
use crate::mariadb::{BinlogSpot, CaughtUp, DbState, Server};
use crate::peer;
use crate::procedure::{OnStop, Preview, RunError, Runner, Steps};
use crate::replication::BINLOG_PURGED_ERRNO;
use crate::report::human_duration;
use crate::role::{self, Role};
use crate::systemd;

/// The most binlog events read to find where an errant range starts; past it the
/// refusal names the file only.
pub const BINLOG_SCAN_BOUND: u32 = 100_000;
/// The longest the closing alert may take to be delivered.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `make_read_only`, `replicate` and `clear_promotion` may take: each is
/// a few statements, or a rename.
const SHORT_STEP: Duration = Duration::from_secs(30);

/// What the pre-checks read, and what they found this host has that the peer lacks.
#[derive(Debug, Clone)]
pub struct Checked {
    pub own: DbState,
    pub peer: DbState,
    /// Empty when the rejoin may go on.
    pub errant: Vec<Errant>,
    /// What the peer's binary logs still hold for this host: its oldest log and the
    /// domains whose transactions this host needs and it purged (empty: none); `Err`
    /// when they could not be read (the rejoin goes on; `catch_up` would say).
    pub binlogs: Result<Option<(String, Vec<Purged>)>, String>,
}

/// A range of transactions only this host has, and where its binary logs hold it.
#[derive(Debug, Clone)]
pub struct Errant {
    pub range: ErrantRange,
    /// Where the range's first transaction is; the error when it could not be read.
    pub spot: Result<BinlogSpot, String>,
}

/// The rejoin of this host to its `[peer]`.
pub struct Rejoin<'a> {
    edges: &'a Edges,
    peer: &'a PeerConfig,
    peer_db: &'a Server,
    /// `catch_up` met replication's error 1236 (binary logs purged on the peer): its
    /// halt says that only a rebuild helps.
    needs_rebuild: Cell<bool>,
}

/// Runs (or resumes) the rejoin under the promotion lock, its pre-checks first.
pub async fn rejoin(edges: &Edges) -> Result<RejoinJournal, RunError> {
    let rejoin = Rejoin::new(edges).map_err(RunError::State)?;
    let holder = format!("pid {} (rejoin)", std::process::id());
    Runner::new(edges).run(&rejoin, &holder).await
}

impl<'a> Rejoin<'a> {
    /// A config error naming `peer` when the config has no `[peer]` table.
    pub fn new(edges: &'a Edges) -> anyhow::Result<Rejoin<'a>> {
        match (&edges.config.peer, &edges.peer) {
            (Some(peer), Some(peer_db)) => Ok(Rejoin {
                edges,
                peer,
                peer_db,
                needs_rebuild: Cell::new(false),
            }),
            _ => Err(ConfigError {
                file: edges.config.path.clone(),
                key: Some("peer".to_string()),
                line_col: None,
                problem: "rejoin needs a [peer] table naming the other host of the pair (the primary to rejoin)".to_string(),
            }
            .into()),
        }
    }

    /// `host:port` of the peer, as this host's replication names it.
    fn source(&self) -> String {
        format!("{}:{}", self.peer.host, self.peer.port)
    }

    /// The read-only pre-checks: both databases answer, the peer is another server and
    /// the writable primary (else refused), what this host has that the peer lacks, and
    /// what the peer's binary logs no longer hold of what this host needs.
    pub async fn precheck(&self) -> anyhow::Result<Checked> {
        let (peer, own) = tokio::join!(self.peer_db.state(), self.edges.own.state());
        let (peer, own) = (peer?, own?);
        let own_name = self.edges.own.describe();
        peer::identity(&own, &own_name, &peer, &self.peer.name).map_err(crate::error::Refused)?;
        let role = role::derive(peer.read_only, peer.replica.as_ref(), None);
        if role != Role::Primary {
            return Err(crate::error::Refused(format!(
                "the peer {} is not the writable primary (read_only {}, {}): rejoin makes this host its replica, so it needs one; nothing was changed",
                self.peer.name,
                if peer.read_only { "ON" } else { "OFF" },
                peer.replica
                    .as_ref()
                    .map_or("not replicating".to_string(), |r| r.summary())
            ))
            .into());
        }
        let ranges = gtid::errant(
            &own.gtid_current_pos,
            &peer.gtid_current_pos,
            &peer.gtid_slave_pos,
        );
        let mut errant = Vec::new();
        for range in ranges {
            let spot = self
                .edges
                .own
                .locate_in_binlog(range.first_sequence(), BINLOG_SCAN_BOUND)
                .await
                .map_err(|e| format!("{e:#}"));
            errant.push(Errant { range, spot });
        }
        let binlogs = match self.peer_db.oldest_binlog().await {
            Ok(oldest) => {
                Ok(oldest.map(|(file, start)| (file, gtid::purged(&own.gtid_current_pos, &start))))
            }
            Err(e) => Err(format!("{e:#}")),
        };
        Ok(Checked {
            own,
            peer,
            errant,
            binlogs,
        })
    }

    /// Why only a rebuild helps, when the peer purged what this host needs.
    pub fn purged(&self, checked: &Checked) -> Option<String> {
        let Ok(Some((file, purged))) = &checked.binlogs else {
            return None;
        };
        (!purged.is_empty()).then(|| {
            let domains: Vec<String> = purged
                .iter()
                .map(|p| {
                    format!(
                        "domain {}: this host has {}, {file} starts after {}",
                        p.domain,
                        p.have.map_or("nothing of it".to_string(), |g| g.to_string()),
                        p.starts_after
                    )
                })
                .collect();
            format!(
                "the primary {} no longer has the binary logs this host needs: its oldest, {file}, starts past this host's position ({}); the transactions in between exist in none of them, so replication would stop on MariaDB's error 1236",
                self.peer.name,
                domains.join("; ")
            )
        })
    }

    /// The refusal for errant transactions: each range, where to read it, what to do.
    /// `None` when there are none.
    pub fn refusal(&self, checked: &Checked) -> Option<String> {
        if checked.errant.is_empty() {
            return None;
        }
        let mut text = format!(
            "this host ({}) has transactions its peer {} lacks; rejoining would lose them or stop replication on a conflict. Nothing was changed.\n",
            self.edges.config.node.name, self.peer.name
        );
        for line in errant_lines(&checked.errant) {
            text.push_str(&format!("  {line}\n"));
        }
        let ranges: Vec<ErrantRange> = checked.errant.iter().map(|e| e.range.clone()).collect();
        text.push_str(&format!(
            "What to do: read them (the lines above, in this host's binary log directory, the later files too); re-apply on the primary {peer} by hand what must be kept, or decide to discard them. Then make this host match the primary: rebuild it from a backup of the primary, or undo them here by hand (in a session with SET SESSION sql_log_bin = 0) and reset its GTID state with RESET MASTER; SET GLOBAL gtid_slave_pos = '{keep}'; (RESET MASTER deletes this host's binary logs: read them first). Then run rejoin again.",
            peer = self.peer.name,
            keep = discard_position(&checked.own.gtid_current_pos, &ranges).canonical(),
        ));
        Some(text)
    }

    /// The refusal when the peer purged what this host needs: why, and how to rebuild.
    pub fn rebuild_refusal(&self, checked: &Checked) -> Option<String> {
        self.purged(checked).map(|why| {
            format!(
                "{why}. Nothing was changed. This host must be rebuilt from a backup of the primary: {}",
                rebuild_how(&self.peer.name)
            )
        })
    }

    /// The pre-checks, refused (and alerted) when this host has errant transactions or
    /// the peer purged what it needs.
    async fn checked(&self) -> Result<Checked, RunError> {
        let checked = self.precheck().await.map_err(|e| {
            if e.is::<crate::error::Refused>() {
                RunError::Refused(e)
            } else {
                RunError::State(e)
            }
        })?;
        if let Some(refusal) = self.refusal(&checked) {
            self.edges.alerter.send(&Alert::RejoinRefused {
                peer: self.peer.name.clone(),
                errant: errant_lines(&checked.errant),
            });
            return Err(RunError::refused(refusal));
        }
        if let (Some(why), Some(refusal)) = (self.purged(&checked), self.rebuild_refusal(&checked))
        {
            self.edges.alerter.send(&Alert::RejoinNeedsRebuild {
                peer: self.peer.name.clone(),
                why,
                how: rebuild_how(&self.peer.name),
            });
            return Err(RunError::refused(refusal));
        }
        if let Err(e) = &checked.binlogs {
            tracing::warn!(
                "cannot read the peer's binary logs to see whether it still has what this host needs (catch_up will tell): {e}"
            );
        }
        Ok(checked)
    }
}

impl Steps for Rejoin<'_> {
    type Kind = RejoinKind;

    fn name(&self) -> &'static str {
        "rejoin"
    }

    fn plan(&self) -> &'static [RejoinStep] {
        &RejoinStep::ALL
    }

    /// The pre-checks (every run), then the last journal when it is not finished (a
    /// failed step is retried, a killed one resumed), else a new one.
    async fn open(&self, last: Option<RejoinJournal>) -> Result<RejoinJournal, RunError> {
        let checked = self.checked().await?;
        Ok(match last {
            Some(mut journal) if journal.outcome != Outcome::Done => {
                journal.retry_halted();
                journal
            }
            _ => RejoinJournal::rejoin(
                &self.edges.config.node.name,
                &self.peer.name,
                &self.source(),
                checked.own.gtid_current_pos,
                Timestamp::now(),
            ),
        })
    }

    fn deadline(&self, step: RejoinStep) -> Duration {
        let apps = &self.edges.config.apps;
        match step {
            RejoinStep::StopApps => {
                apps.start_timeout * (apps.units.len().max(1) as u32) + Duration::from_secs(5)
            }
            RejoinStep::CatchUp => self.peer.catch_up_timeout + SHORT_STEP,
            RejoinStep::Notify => NOTIFY_TIMEOUT + Duration::from_secs(5),
            RejoinStep::MakeReadOnly | RejoinStep::Replicate | RejoinStep::ClearPromotion => {
                SHORT_STEP
            }
        }
    }

    async fn preview(&self, step: RejoinStep) -> Preview {
        self.preview_step(step).await
    }

    async fn run(&self, step: RejoinStep, journal: &mut RejoinJournal) -> anyhow::Result<String> {
        let own = &self.edges.own;
        match step {
            RejoinStep::StopApps => stop_apps(&self.edges.config).await,
            RejoinStep::MakeReadOnly => {
                own.set_read_only(true).await?;
                Ok(format!("read_only = ON on {}, read back", own.describe()))
            }
            RejoinStep::Replicate => {
                let p = self.peer;
                own.replicate_from(
                    &p.host,
                    p.port,
                    &p.replication_user,
                    &p.replication_password,
                )
                .await?;
                Ok(format!(
                    "replicating from {} as {} with MASTER_USE_GTID = slave_pos",
                    self.source(),
                    p.replication_user
                ))
            }
            RejoinStep::CatchUp => {
                let (reached, detail) = self.catch_up().await?;
                journal.record.caught_up_to = Some(reached);
                Ok(detail)
            }
            RejoinStep::ClearPromotion => self.clear_promotion(),
            RejoinStep::Notify => self.notify(journal).await,
        }
    }

    /// A stop halts the rejoin where it is (the pair serves from the peer all along):
    /// the journal says so, and the next `rejoin` takes it up.
    fn on_stop(&self, _journal: &RejoinJournal) -> OnStop<RejoinStep> {
        OnStop::Halt
    }

    /// `catch_up` only waits: a stop cuts it short.
    fn interruptible(&self, step: RejoinStep) -> bool {
        step == RejoinStep::CatchUp
    }

    async fn halted(&self, _journal: &RejoinJournal, step: RejoinStep, error: &str) {
        let alert = if self.needs_rebuild.get() {
            Alert::RejoinNeedsRebuild {
                peer: self.peer.name.clone(),
                why: error.to_string(),
                how: rebuild_how(&self.peer.name),
            }
        } else if step != RejoinStep::Notify {
            Alert::RejoinFailed {
                step,
                error: error.to_string(),
            }
        } else {
            return;
        };
        self.edges.alerter.send(&alert);
    }

    /// The finished journal is archived as `rejoin.<time>.json`: the next rejoin starts
    /// a journal of its own and every drill stays on record (`status` shows the last).
    async fn finished(&self, _journal: &RejoinJournal) {
        match self.edges.store.archive::<RejoinKind>(Timestamp::now()) {
            Ok(Some(kept)) => tracing::info!("the rejoin's journal is kept as {}", kept.display()),
            Ok(None) => {}
            Err(e) => tracing::warn!("the finished rejoin's journal stays as it is: {e:#}"),
        }
    }
}

impl Rejoin<'_> {
    /// Waits until both replication threads run and the peer's position read now is
    /// applied, within `catch_up_timeout`, in short slices: a replication error that
    /// waiting cannot mend (a refused login, a conflicting row) fails at once, and
    /// error 1236 (the peer purged what this host needs) says that only a rebuild helps.
    async fn catch_up(&self) -> anyhow::Result<(GtidPosition, String)> {
        let started = Instant::now();
        let timeout = self.peer.catch_up_timeout;
        let target = self.peer_db.state().await?.gtid_binlog_pos;
        let local = &self.edges.own;
        let ended = local.catch_up(&target, timeout, true).await?;
        match ended {
            CaughtUp::Yes => {}
            CaughtUp::Failed(error) if error.errno == BINLOG_PURGED_ERRNO => {
                self.needs_rebuild.set(true);
                bail!(
                    "replication from {} stopped with {error}: the primary no longer has the binary logs this host needs, so rejoin cannot help. Rebuild this host from a backup of the primary: {}",
                    self.source(),
                    rebuild_how(&self.peer.name)
                );
            }
            CaughtUp::Failed(error) => bail!(
                "replication from {} failed: {error}. Fix the cause, then run rejoin again: it sets up replication again (replicate) before it waits",
                self.source()
            ),
            CaughtUp::NoConnection => bail!(
                "{} has no replication connection {:?}: run rejoin again to redo `replicate`",
                local.describe(),
                self.edges.config.replica.connection_name
            ),
            CaughtUp::TimedOut(status) => bail!(
                "not caught up with the peer's {target} within {}: this host has {} ({})",
                humantime::format_duration(timeout),
                local.state().await?.gtid_current_pos,
                status.summary()
            ),
        }
        let detail = format!(
            "caught up with the peer's {} in {}",
            if target.is_empty() {
                "(empty) position".to_string()
            } else {
                target.to_string()
            },
            human_duration(started.elapsed())
        );
        Ok((target, detail))
    }

    /// Archives this host's promotion journal as `reset` does (the engine holds the
    /// promotion lock).
    fn clear_promotion(&self) -> anyhow::Result<String> {
        Ok(match self.edges.store.archive_journal(Timestamp::now())? {
            Some(kept) => format!(
                "this host's promotion journal archived as {}",
                kept.display()
            ),
            None => "no promotion journal on this host".to_string(),
        })
    }

    async fn notify(&self, journal: &RejoinJournal) -> anyhow::Result<String> {
        let alerter = &self.edges.alerter;
        let alert = Alert::Rejoined(Box::new(journal.clone()));
        alerter
            .send_and_confirm(&alert, NOTIFY_TIMEOUT)
            .await
            .map_err(|e| {
                anyhow!(
                    "the closing alert {e}; the rejoin itself is done. It said:\n{}",
                    alerter.render(&alert)
                )
            })?;
        Ok("closing alert delivered".to_string())
    }

    async fn preview_step(&self, step: RejoinStep) -> Preview {
        let config = &self.edges.config;
        match step {
            RejoinStep::StopApps => {
                let units: Vec<String> = config.apps.units.iter().rev().cloned().collect();
                let mut preview = Preview::new(format!(
                    "systemctl stop, in order: {} (each within {})",
                    if units.is_empty() {
                        "(no units)".to_string()
                    } else {
                        units.join(", ")
                    },
                    humantime::format_duration(config.apps.start_timeout)
                ));
                for unit in &units {
                    preview = preview.now(Ok(systemd::active_state(unit, Duration::from_secs(10))
                        .await
                        .map_or_else(
                            |e| format!("{unit} is unknown ({e:#})"),
                            |s| format!("{unit} is {s}"),
                        )));
                }
                preview
            }
            RejoinStep::MakeReadOnly => {
                let preview = Preview::new(format!(
                    "SET GLOBAL read_only = ON on {}, then read it back",
                    self.edges.own.describe()
                ));
                preview.now(match self.edges.own.read_only().await {
                    Ok(on) => Ok(format!("read_only = {}", if on { "ON" } else { "OFF" })),
                    Err(e) => Err(format!("{e:#}")),
                })
            }
            RejoinStep::Replicate => self.preview_replicate().await,
            RejoinStep::CatchUp => Preview::new(format!(
                "wait until both replication threads run and the peer's gtid_binlog_pos read then is applied (MASTER_GTID_WAIT), within {}",
                humantime::format_duration(self.peer.catch_up_timeout)
            )),
            RejoinStep::ClearPromotion => Preview::new(format!(
                "archive {} as promotion.<time>.json, as reset does",
                self.edges.store.journal_path().display()
            ))
            .now(Ok(if self.edges.store.journal_path().exists() {
                "a promotion journal is there".to_string()
            } else {
                "no promotion journal: nothing to do".to_string()
            })),
            RejoinStep::Notify => Preview::new(match &config.telegram {
                Some(t) => format!(
                    "the closing alert to Telegram chat {} via {}{}",
                    t.chat_id,
                    t.api_url,
                    if config.webhooks.is_empty() {
                        ""
                    } else {
                        " and every webhook"
                    }
                ),
                None => {
                    "the closing alert to the configured channels (the log when none)".to_string()
                }
            }),
        }
    }

    async fn preview_replicate(&self) -> Preview {
        let config = &self.edges.config;
        let statement = crate::mariadb::change_master_shown(
            config,
            &self.peer.host,
            self.peer.port,
            &self.peer.replication_user,
        );
        let preview = Preview::new(format!(
            "on this host's database STOP SLAVE; SET GLOBAL gtid_slave_pos = @@gtid_current_pos; {statement}; START SLAVE"
        ));
        preview.now(match self.edges.own.replica_status().await {
            Ok(replica) => {
                Ok(replica.map_or("no replication connection".to_string(), |r| r.summary()))
            }
            Err(e) => Err(format!("{e:#}")),
        })
    }
}

/// `systemctl stop` each unit, the last started first.
async fn stop_apps(config: &crate::config::Config) -> anyhow::Result<String> {
    let units = &config.apps.units;
    if units.is_empty() {
        return Ok("no units configured".to_string());
    }
    for unit in units.iter().rev() {
        systemd::stop_unit(unit, config.apps.start_timeout).await?;
    }
    let stopped: Vec<&str> = units.iter().rev().map(String::as_str).collect();
    Ok(format!("stopped {}", stopped.join(", ")))
}

/// One line per errant range: the GTIDs, the file and position, the command to read it.
fn errant_lines(errant: &[Errant]) -> Vec<String> {
    errant
        .iter()
        .map(|e| match &e.spot {
            Ok(BinlogSpot::At {
                file,
                position,
                gtid,
            }) => format!(
                "{}: in {file} from position {position}; read with: mariadb-binlog --start-position={position} {file}",
                e.range.shown(Some(*gtid))
            ),
            Ok(BinlogSpot::InFile(file)) => format!(
                "{}: in {file} (its position lies past the first {BINLOG_SCAN_BOUND} events); read with: mariadb-binlog {file}",
                e.range
            ),
            Ok(BinlogSpot::NotInFile(file)) => format!(
                "{}: its first transaction is in none of this host's binary logs ({file}, where it would be, was read whole: it was applied here without being logged, log_slave_updates off); read {file} and the later files with mariadb-binlog, and compare the data by hand",
                e.range
            ),
            Ok(BinlogSpot::Purged) => format!(
                "{}: no binary log on this host holds it any more (purged); compare the data by hand",
                e.range
            ),
            Err(why) => format!("{}: where it lies is unknown: {why}", e.range),
        })
        .collect()
}

/// How to rebuild this host from a backup of the primary `peer`, for a rejoin that
/// cannot catch up by replication.
pub fn rebuild_how(peer: &str) -> String {
    format!(
        "1. on {peer}: mariadb-backup --backup --target-dir=/var/backups/rebuild --user=<an account with RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR>, then mariadb-backup --prepare --target-dir=/var/backups/rebuild; \
         2. copy that directory here; stop MariaDB here, move its data directory aside, mariadb-backup --copy-back --target-dir=<the copy>, chown -R mysql:mysql the data directory, and start MariaDB with read_only = ON (its application units stopped); \
         3. the backup's GTID position is the third field of xtrabackup_binlog_info (mariadb_backup_binlog_info in newer releases) in the backup directory: here run RESET MASTER; SET GLOBAL gtid_slave_pos = '<that position>'; \
         4. run failover-watchdog rejoin --yes again: it replicates from {peer} from that position"
    )
}

/// The `gtid_slave_pos` this host may be given once the errant ranges are undone: its
/// own position, with each errant domain cut back to what the peer has of it (dropped
/// when the peer has nothing of it).
pub fn discard_position(own_current: &GtidPosition, errant: &[ErrantRange]) -> GtidPosition {
    GtidPosition::from_gtids(own_current.gtids().filter_map(|gtid| {
        match errant.iter().find(|e| e.domain == gtid.domain) {
            Some(range) => range.peer_has,
            None => Some(gtid),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str) -> GtidPosition {
        GtidPosition::parse(text).unwrap()
    }

    #[test]
    fn the_position_to_discard_to_keeps_clean_domains_and_cuts_errant_ones() {
        let errant = gtid::errant(
            &pos("0-1-10,1-1-4,2-3-7"),
            &pos("0-2-12,2-3-7"),
            &pos("0-1-8"),
        );
        assert_eq!(
            discard_position(&pos("0-1-10,1-1-4,2-3-7"), &errant).canonical(),
            "0-1-8,2-3-7"
        );
        assert_eq!(discard_position(&pos("0-1-10"), &[]).canonical(), "0-1-10");
    }

    #[test]
    fn each_errant_line_names_the_range_and_where_to_read_it() {
        let range = gtid::errant(&pos("0-1-12"), &pos("0-1-9"), &pos("")).remove(0);
        let with = |spot| Errant {
            range: range.clone(),
            spot,
        };
        let lines = errant_lines(&[
            with(Ok(BinlogSpot::At {
                file: "mysql-bin.000003".into(),
                position: 4711,
                gtid: "0-1-10".parse().unwrap(),
            })),
            with(Ok(BinlogSpot::InFile("mysql-bin.000004".into()))),
            with(Ok(BinlogSpot::Purged)),
            with(Err("access denied".into())),
        ]);
        assert_eq!(
            lines[0],
            "0-1-10..0-1-12: in mysql-bin.000003 from position 4711; read with: mariadb-binlog --start-position=4711 mysql-bin.000003"
        );
        assert!(
            lines[1].contains("in mysql-bin.000004 (its position lies past the first 100000 events); read with: mariadb-binlog mysql-bin.000004"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("purged"), "{}", lines[2]);
        assert!(lines[3].ends_with("unknown: access denied"), "{}", lines[3]);
    }

    /// Issue 18, item 4: "past the first 100000 events" was said of a tiny binary log
    /// where the transaction was simply not found.
    #[test]
    fn a_transaction_not_in_a_binary_log_read_whole_is_not_said_to_lie_past_the_bound() {
        let range = gtid::errant(&pos("0-2-6"), &pos("0-3-9"), &pos("")).remove(0);
        let lines = errant_lines(&[Errant {
            range,
            spot: Ok(BinlogSpot::NotInFile("mysql-bin.000001".into())),
        }]);
        assert!(!lines[0].contains("100000"), "{}", lines[0]);
        assert!(
            lines[0].starts_with("sequences 1..6 of domain 0, the last 0-2-6: its first transaction is in none of this host's binary logs (mysql-bin.000001, where it would be, was read whole"),
            "{}",
            lines[0]
        );
    }

    /// Issue 18, item 13: a primary that purged the binary logs this host needs was met
    /// with "fix the cause, then run rejoin again"; the advice is a rebuild, and how.
    #[test]
    fn the_rebuild_advice_says_how_and_which_position_to_set() {
        let how = rebuild_how("nyc1");
        for expected in [
            "on nyc1: mariadb-backup --backup",
            "mariadb-backup --prepare",
            "--copy-back",
            "xtrabackup_binlog_info",
            "SET GLOBAL gtid_slave_pos = '<that position>'",
            "rejoin --yes again",
        ] {
            assert!(how.contains(expected), "{expected}: {how}");
        }
    }
}

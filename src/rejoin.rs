//! `rejoin`: a repaired former primary becomes its peer's caught-up replica.
//!
//! First the pre-checks, each run (a resume too), changing nothing: the peer answers
//! and is the writable primary, and this host has no transaction the peer lacks
//! ([`crate::gtid::errant`]; when it has, the refusal names each range and where this
//! host's binary logs hold it). Then six steps, journalled in `state_dir/rejoin.json`
//! ([`journal::RejoinJournal`]) around each one, each safe to repeat, so a killed
//! `rejoin` resumes where it was: `stop_apps`, `make_read_only`, `replicate`,
//! `catch_up`, `clear_promotion`, `notify`. A failed step stops the rejoin, alerted;
//! the next run retries it.
//!
//! The caller ([`crate::cmd`]) holds the promotion lock for the whole run, so a rejoin
//! never races a promotion on this host. Every SQL statement is in [`crate::pair`].

pub mod journal;

use std::time::Duration;

use anyhow::{anyhow, bail};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::alert::{Alert, Alerter};
use crate::config::{Config, ConfigError, PeerConfig};
use crate::crashpoint;
use crate::error::Refused;
use crate::gtid::{self, ErrantRange};
use crate::journal::StepStatus;
use crate::pair::{BinlogSpot, Database, DbState};
use crate::probe::human_duration;
use crate::replica::display_gtid;
use crate::role::{self, Role};
use crate::secret::Scrubber;
use crate::store::StateDir;
use crate::systemd;

pub use journal::{RejoinJournal, RejoinOutcome, RejoinStep};

/// The most binlog events read to find where an errant range starts; past it the
/// refusal names the file only.
pub const BINLOG_SCAN_BOUND: u32 = 100_000;
/// The longest the closing alert may take to be delivered.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `catch_up` looks whether the replication threads run.
const THREADS_POLL: Duration = Duration::from_millis(200);
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
    config: &'a Config,
    peer: &'a PeerConfig,
    store: StateDir,
    alerter: Alerter,
    scrubber: Scrubber,
    local: Database,
    peer_db: Database,
}

impl<'a> Rejoin<'a> {
    /// A config error naming `peer` when the config has no `[peer]` table.
    pub fn new(config: &'a Config, alerter: Alerter) -> anyhow::Result<Rejoin<'a>> {
        let missing = || {
            ConfigError {
            file: config.path.clone(),
            key: Some("peer".to_string()),
            line_col: None,
            problem: "rejoin needs a [peer] table naming the other host of the pair (the primary to rejoin)".to_string(),
        }
        };
        let peer = config.peer.as_ref().ok_or_else(missing)?;
        let peer_db = Database::peer(config).ok_or_else(missing)?;
        Ok(Rejoin {
            config,
            peer,
            store: StateDir::new(config.state_dir()),
            alerter,
            scrubber: Scrubber::new(config.secrets()),
            local: Database::local(config),
            peer_db,
        })
    }

    /// `host:port` of the peer, as this host's replication names it.
    fn source(&self) -> String {
        format!("{}:{}", self.peer.host, self.peer.port)
    }

    /// The read-only pre-checks: both databases answer, the peer is the writable
    /// primary (else refused), and what this host has that the peer lacks.
    pub async fn precheck(&self) -> anyhow::Result<Checked> {
        let peer = self.peer_db.state().await?;
        let role = role::derive(peer.read_only, peer.replica.as_ref(), None);
        if role != Role::Primary {
            return Err(Refused(format!(
                "the peer {} is not the writable primary (read_only {}, {}): rejoin makes this host its replica, so it needs one; nothing was changed",
                self.peer.name,
                if peer.read_only { "ON" } else { "OFF" },
                peer.replica
                    .as_ref()
                    .map_or("not replicating".to_string(), |r| r.summary())
            ))
            .into());
        }
        let own = self.local.state().await?;
        let ranges = gtid::errant(
            &own.gtid_current_pos,
            &peer.gtid_current_pos,
            &peer.gtid_slave_pos,
        )
        .map_err(|problem| anyhow!("cannot compare the GTID positions: {problem}"))?;
        let mut errant = Vec::new();
        for range in ranges {
            let spot = self
                .local
                .locate_in_binlog(range.first_gtid(), BINLOG_SCAN_BOUND)
                .await
                .map_err(|e| format!("{e:#}"));
            errant.push(Errant { range, spot });
        }
        Ok(Checked { own, peer, errant })
    }

    /// The refusal for errant transactions: each range, where to read it, what to do.
    /// `None` when there are none.
    pub fn refusal(&self, checked: &Checked) -> Option<String> {
        if checked.errant.is_empty() {
            return None;
        }
        let mut text = format!(
            "this host ({}) has transactions its peer {} lacks; rejoining would lose them or stop replication on a conflict. Nothing was changed.\n",
            self.config.node.name, self.peer.name
        );
        for line in errant_lines(&checked.errant) {
            text.push_str(&format!("  {line}\n"));
        }
        let ranges: Vec<ErrantRange> = checked.errant.iter().map(|e| e.range.clone()).collect();
        text.push_str(&format!(
            "What to do: read them (the lines above, in this host's binary log directory, the later files too); re-apply on the primary {peer} by hand what must be kept, or decide to discard them. Then make this host match the primary: rebuild it from a backup of the primary, or undo them here by hand (in a session with SET SESSION sql_log_bin = 0) and reset its GTID state with RESET MASTER; SET GLOBAL gtid_slave_pos = '{keep}'; (RESET MASTER deletes this host's binary logs: read them first). Then run rejoin again.",
            peer = self.peer.name,
            keep = discard_position(&checked.own.gtid_current_pos, &ranges),
        ));
        Some(text)
    }

    /// The alert for the refusal.
    pub fn refused_alert(&self, checked: &Checked) -> Alert {
        Alert::RejoinRefused {
            peer: self.peer.name.clone(),
            errant: errant_lines(&checked.errant),
        }
    }

    /// The journal to run: the last one when it is not finished (a failed step is
    /// retried, a killed one resumed), else a new one.
    pub fn opening(&self, last: Option<RejoinJournal>, checked: &Checked) -> RejoinJournal {
        match last {
            Some(mut journal) if journal.outcome != RejoinOutcome::Rejoined => {
                journal.resume();
                journal
            }
            _ => RejoinJournal::new(
                &self.config.node.name,
                &self.peer.name,
                &self.source(),
                &checked.own.gtid_current_pos,
                Timestamp::now(),
            ),
        }
    }

    /// Runs every step not done yet, saving the journal around each. A failed step is
    /// recorded, alerted and returned as the error.
    pub async fn run(&self, journal: &mut RejoinJournal) -> anyhow::Result<()> {
        while let Some(step) = journal.next_step() {
            journal.begin(step, Timestamp::now());
            self.store.save_rejoin(journal)?;
            crashpoint::reached(&format!("before:{step}"));
            let done = match tokio::time::timeout(self.deadline(step), self.run_step(step, journal))
                .await
            {
                Ok(done) => done,
                Err(_) => Err(anyhow!(
                    "step {step} did not finish within {}",
                    humantime::format_duration(self.deadline(step))
                )),
            };
            crashpoint::reached(&format!("after:{step}"));
            match done {
                Ok(detail) => {
                    journal.finish(step, detail, Timestamp::now());
                    self.store.save_rejoin(journal)?;
                }
                Err(error) => {
                    let error = self.scrubber.scrub(&format!("{error:#}"));
                    journal.fail(step, error.clone(), Timestamp::now());
                    let saved = self.store.save_rejoin(journal);
                    if step != RejoinStep::Notify {
                        self.alerter.send(&Alert::RejoinFailed {
                            step,
                            error: error.clone(),
                        });
                    }
                    saved?;
                    bail!("rejoin stopped: step {step} failed: {error}");
                }
            }
        }
        Ok(())
    }

    fn deadline(&self, step: RejoinStep) -> Duration {
        match step {
            RejoinStep::StopApps => {
                self.config.apps.start_timeout * (self.config.apps.units.len().max(1) as u32)
                    + Duration::from_secs(5)
            }
            RejoinStep::CatchUp => self.peer.catch_up_timeout + SHORT_STEP,
            RejoinStep::Notify => NOTIFY_TIMEOUT + Duration::from_secs(5),
            RejoinStep::MakeReadOnly | RejoinStep::Replicate | RejoinStep::ClearPromotion => {
                SHORT_STEP
            }
        }
    }

    async fn run_step(
        &self,
        step: RejoinStep,
        journal: &mut RejoinJournal,
    ) -> anyhow::Result<String> {
        match step {
            RejoinStep::StopApps => self.stop_apps().await,
            RejoinStep::MakeReadOnly => {
                self.local.set_read_only(true).await?;
                Ok(format!(
                    "read_only = ON on {}, read back",
                    self.local.describe()
                ))
            }
            RejoinStep::Replicate => {
                self.local
                    .replicate_from(
                        &self.peer.host,
                        self.peer.port,
                        &self.peer.replication_user,
                        &self.peer.replication_password,
                    )
                    .await?;
                Ok(format!(
                    "replicating from {} as {} with MASTER_USE_GTID = slave_pos",
                    self.source(),
                    self.peer.replication_user
                ))
            }
            RejoinStep::CatchUp => {
                let (reached, detail) = self.catch_up().await?;
                journal.caught_up_to = Some(reached);
                Ok(detail)
            }
            RejoinStep::ClearPromotion => self.clear_promotion(),
            RejoinStep::Notify => {
                let alert = Alert::Rejoined(Box::new(journal.clone()));
                self.alerter
                    .send_and_confirm(&alert, NOTIFY_TIMEOUT)
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "the closing alert {e}; the rejoin itself is done. It said:\n{}",
                            self.alerter.render(&alert)
                        )
                    })?;
                Ok("closing alert delivered".to_string())
            }
        }
    }

    /// `systemctl stop` each unit, the last started first.
    async fn stop_apps(&self) -> anyhow::Result<String> {
        let units = &self.config.apps.units;
        if units.is_empty() {
            return Ok("no units configured".to_string());
        }
        for unit in units.iter().rev() {
            systemd::stop_unit(unit, self.config.apps.start_timeout).await?;
        }
        let stopped: Vec<&str> = units.iter().rev().map(String::as_str).collect();
        Ok(format!("stopped {}", stopped.join(", ")))
    }

    /// Waits until both replication threads run, then until the peer's position read
    /// now is applied, within `catch_up_timeout`. A thread's error fails at once.
    async fn catch_up(&self) -> anyhow::Result<(String, String)> {
        let started = Instant::now();
        let timeout = self.peer.catch_up_timeout;
        let deadline = started + timeout;
        let target = self.peer_db.state().await?.gtid_binlog_pos;
        loop {
            let state = self.local.state().await?;
            let Some(replica) = state.replica else {
                bail!(
                    "{} has no replication connection {:?}: run rejoin again to redo `replicate`",
                    self.local.describe(),
                    self.config.replica.connection_name
                );
            };
            if let Some(error) = replica.sql_error.as_ref().or(replica.io_error.as_ref()) {
                bail!("replication from {} failed: {error}", self.source());
            }
            if replica.io_running == "Yes" && replica.sql_running == "Yes" {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the replication threads do not run after {}: {}",
                    humantime::format_duration(timeout),
                    replica.summary()
                );
            }
            tokio::time::sleep(THREADS_POLL).await;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if !self.local.wait_for_position(&target, left).await? {
            let now = self.local.state().await?;
            let why = now
                .replica
                .as_ref()
                .and_then(|r| r.sql_error.as_ref().or(r.io_error.as_ref()))
                .map_or(String::new(), |e| format!(" ({e})"));
            bail!(
                "not caught up with the peer's {target} within {}: this host has {}{why}",
                humantime::format_duration(timeout),
                now.gtid_current_pos
            );
        }
        let detail = format!(
            "caught up with the peer's {} in {}",
            if target.is_empty() {
                "(empty) position"
            } else {
                &target
            },
            human_duration(started.elapsed())
        );
        Ok((target, detail))
    }

    /// Archives this host's promotion journal as `reset` does (the caller holds the
    /// promotion lock).
    fn clear_promotion(&self) -> anyhow::Result<String> {
        Ok(match self.store.archive_journal(Timestamp::now())? {
            Some(kept) => format!(
                "this host's promotion journal archived as {}",
                kept.display()
            ),
            None => "no promotion journal on this host".to_string(),
        })
    }

    /// The dry run: every step with its concrete targets and what they look like now,
    /// from `checked` and read-only looks; `last` is a journal a real run would resume.
    pub async fn plan(&self, checked: &Checked, last: Option<&RejoinJournal>) -> String {
        let mut out = format!(
            "Rejoin plan for {} (dry run: nothing is changed)\nChecks passed: the peer {} is the writable primary (gtid_binlog_pos {}); this host (gtid_current_pos {}) has no transaction it lacks.\n",
            self.config.node.name,
            self.peer.name,
            display_gtid(&checked.peer.gtid_binlog_pos),
            display_gtid(&checked.own.gtid_current_pos),
        );
        let resumed = last.filter(|j| j.outcome != RejoinOutcome::Rejoined);
        if let Some(journal) = resumed {
            out.push_str(&format!(
                "A {} rejoin (started {}) is in the journal: rejoin resumes it at step {}.\n",
                journal.outcome.as_str(),
                journal.started_at,
                journal.next_step().map_or("-", RejoinStep::as_str)
            ));
        }
        let done = |step: RejoinStep| {
            resumed
                .and_then(|j| j.step(step))
                .filter(|s| s.status == StepStatus::Done)
                .map(|s| format!("     already done: {}\n", s.detail.as_deref().unwrap_or("")))
        };
        let units = &self.config.apps.units;
        out.push_str(&format!(
            " 1. stop_apps: systemctl stop, in order: {} (each within {})\n",
            if units.is_empty() {
                "(no units)".to_string()
            } else {
                units.iter().rev().cloned().collect::<Vec<_>>().join(", ")
            },
            humantime::format_duration(self.config.apps.start_timeout)
        ));
        match done(RejoinStep::StopApps) {
            Some(line) => out.push_str(&line),
            None => out.push_str(&units_now(units).await),
        }
        out.push_str(&format!(
            " 2. make_read_only: SET GLOBAL read_only = ON on {}, then read it back\n",
            self.local.describe()
        ));
        out.push_str(&done(RejoinStep::MakeReadOnly).unwrap_or_else(|| {
            format!(
                "     now: read_only = {}\n",
                if checked.own.read_only { "ON" } else { "OFF" }
            )
        }));
        out.push_str(&format!(
            " 3. replicate: on this host's database STOP SLAVE; SET GLOBAL gtid_slave_pos = @@gtid_current_pos ({}); {}; START SLAVE\n",
            display_gtid(&checked.own.gtid_current_pos),
            crate::pair::change_master(
                self.config,
                &self.peer.host,
                self.peer.port,
                &self.peer.replication_user,
                &crate::secret::Secret::inline("[redacted]"),
            ),
        ));
        out.push_str(&done(RejoinStep::Replicate).unwrap_or_else(|| {
            format!(
                "     now: {}\n",
                checked
                    .own
                    .replica
                    .as_ref()
                    .map_or("no replication connection".to_string(), |r| r.summary())
            )
        }));
        out.push_str(&format!(
            " 4. catch_up: wait until both replication threads run and the peer's gtid_binlog_pos read then (now {}) is applied (MASTER_GTID_WAIT), within {}\n",
            display_gtid(&checked.peer.gtid_binlog_pos),
            humantime::format_duration(self.peer.catch_up_timeout)
        ));
        out.push_str(&done(RejoinStep::CatchUp).unwrap_or_default());
        let promotion = self.store.journal_path();
        out.push_str(&format!(
            " 5. clear_promotion: archive {} as promotion.<time>.json, as reset does\n",
            promotion.display()
        ));
        out.push_str(&done(RejoinStep::ClearPromotion).unwrap_or_else(|| {
            format!(
                "     now: {}\n",
                if promotion.exists() {
                    "a promotion journal is there"
                } else {
                    "no promotion journal: nothing to do"
                }
            )
        }));
        match &self.config.telegram {
            Some(t) => out.push_str(&format!(
                " 6. notify: the closing alert to Telegram chat {} via {}{}\n",
                t.chat_id,
                t.api_url,
                if self.config.webhooks.is_empty() {
                    ""
                } else {
                    " and every webhook"
                }
            )),
            None => out.push_str(
                " 6. notify: the closing alert to the configured channels (the log when none)\n",
            ),
        }
        out
    }
}

/// What each unit is now, last one first, as `stop_apps` would stop them.
async fn units_now(units: &[String]) -> String {
    let mut out = String::new();
    for unit in units.iter().rev() {
        let state = systemd::active_state(unit, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| format!("unknown ({e:#})"));
        out.push_str(&format!("     now: {unit} is {state}\n"));
    }
    out
}

/// One line per errant range: the GTIDs, the file and position, the command to read it.
fn errant_lines(errant: &[Errant]) -> Vec<String> {
    errant
        .iter()
        .map(|e| match &e.spot {
            Ok(BinlogSpot::At { file, position }) => format!(
                "{}: in {file} from position {position}; read with: mariadb-binlog --start-position={position} {file}",
                e.range
            ),
            Ok(BinlogSpot::InFile(file)) => format!(
                "{}: in {file} (its position lies past the first {BINLOG_SCAN_BOUND} events); read with: mariadb-binlog {file}",
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

/// The `gtid_slave_pos` this host may be given once the errant ranges are undone: its
/// own position, with each errant domain cut back to what the peer has of it (dropped
/// when the peer has nothing of it).
pub fn discard_position(own_current: &str, errant: &[ErrantRange]) -> String {
    let Some(own) = gtid::parse_gtids(own_current) else {
        return String::new();
    };
    own.into_iter()
        .filter_map(
            |(domain, gtid)| match errant.iter().find(|e| e.domain == domain) {
                Some(range) => range.peer_has,
                None => Some(gtid),
            },
        )
        .map(|gtid| gtid.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_to_discard_to_keeps_clean_domains_and_cuts_errant_ones() {
        let errant = gtid::errant("0-1-10,1-1-4,2-3-7", "0-2-12,2-3-7", "0-1-8").unwrap();
        assert_eq!(
            discard_position("0-1-10,1-1-4,2-3-7", &errant),
            "0-1-8,2-3-7"
        );
        assert_eq!(discard_position("0-1-10", &[]), "0-1-10");
    }

    #[test]
    fn each_errant_line_names_the_range_and_where_to_read_it() {
        let range = gtid::errant("0-1-12", "0-1-9", "").unwrap().remove(0);
        let with = |spot| Errant {
            range: range.clone(),
            spot,
        };
        let lines = errant_lines(&[
            with(Ok(BinlogSpot::At {
                file: "mysql-bin.000003".into(),
                position: 4711,
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
}

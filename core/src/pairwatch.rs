//! What each host of a pair says about the pair, each round: the decision core's part
//! for roles ([`crate::decide`] hands it the pair's reading and takes its actions).
//! Pure: the readings come in, alerts and actions go out.
//!
//! **Split brain means two writable databases.** A host alerts TWO PRIMARIES only when
//! its own database is writable and not replicating and the peer's is too, both read
//! this round; both hosts see it and both alert. A host whose own database is read-only
//! (or does not answer) is not half of a split brain and never alerts one. Only where
//! the peer's database cannot be read does a promoted host fall back to its checks of
//! the old primary (the check-based watch), and only while its own database is
//! writable. Which host sends what:
//!
//! | this host's database | the peer's database | this host alerts |
//! | --- | --- | --- |
//! | writable, not replicating | writable, not replicating | TWO PRIMARIES, at once, then every `split_brain_alert_every` while it lasts |
//! | writable, not replicating | replicating from here | the standby's health: not replicating, lagging, healthy again (once per change) |
//! | writable, not replicating, after a promotion | read-only, not replicating | the old primary is back read-only: run `rejoin` on it (once) |
//! | writable, not replicating | read-only, not replicating (no promotion here) | the standby does not replicate (once per change) |
//! | writable, not replicating, after a promotion | cannot be read | the standby cannot be read; the check-based watch: the old primary answers its checks (SPLIT BRAIN when its `mysql` check reads it writable), at once then every `split_brain_alert_every` |
//! | read-only, or cannot be read | anything | nothing about the pair |
//!
//! Alerts of one kind are rate-limited: a kind already alerted less than
//! `split_brain_alert_every` ago is held back (and sent then if it still holds), so a
//! database flapping between writable and replicating cannot flood the team.
//!
//! **A returning old primary does not take writes.** A host whose database is writable
//! and not replicating while every DNS record points elsewhere is not the primary the
//! world uses: it makes itself read-only and stops its units (with `[peer]
//! fence_when_not_serving`, on by default), whatever the peer's state, and says so.
//! Never while a procedure runs or halted here (a promotion is writable before its DNS
//! moves).
//!
//! **Drift is said.** This host's channel settings or semi-sync sides that contradict
//! the config, and a primary's semi-sync fallen back to asynchronous, are alerted once
//! per change.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::alert::Alert;
use crate::report::RoundReport;
use crate::role::Role;

/// The pair, as read this round: only with `[peer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairReading {
    /// This host's role, read from its own database (`Unknown` when it did not answer).
    pub role: Role,
    /// One line: what its database said, or why it could not be read.
    pub detail: String,
    /// Its own `read_only`; `None` when its database did not answer.
    pub read_only: Option<bool>,
    /// It replicates from the peer, both threads run, and it is caught up.
    pub caught_up: bool,
    /// The application units that run here; read while this host is a standby, and
    /// when it is writable while DNS points elsewhere.
    pub apps_running: Vec<String>,
    /// The peer's database; read while this host's own database is writable.
    pub peer: PeerDb,
    /// This host's settings that contradict the config: its channel (`[replication]`)
    /// while it replicates, its semi-sync sides (`replication.semi_sync`), each in words.
    pub drift: Vec<String>,
    /// This host is a primary whose semi-sync master side is on but runs asynchronous
    /// (`Rpl_semi_sync_master_status` OFF): no replica acknowledges its commits.
    pub semi_sync_fell_back: bool,
    /// Where the DNS records point; read while this host's database is writable.
    pub dns: DnsReading,
}

/// The peer's database, as this host read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDb {
    NotRead,
    Unreadable(String),
    Read(PeerReading),
}

/// What this host needs of the peer's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReading {
    pub writable: bool,
    /// It has a replication connection and both threads run.
    pub replicating: bool,
    pub lag_seconds: Option<u64>,
    /// One line: its replication, or that it has none.
    pub summary: String,
}

/// Where the DNS records point, as Cloudflare says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsReading {
    NotRead,
    /// At least one record points at this host.
    PointsHere,
    /// Every record points elsewhere: what they point at.
    Elsewhere(String),
    /// They could not be read: nothing is concluded.
    Unreadable(String),
}

/// What the pair watch needs of the config.
#[derive(Debug, Clone)]
pub struct PairSettings {
    /// `[peer] name`, for the alerts about it.
    pub peer_name: String,
    pub split_brain_alert_every: Duration,
    /// The lag that makes a standby "lagging".
    pub max_lag: Duration,
    /// `[apps] stop_when_demoted`.
    pub stop_when_demoted: bool,
    /// `[peer] fence_when_not_serving`.
    pub fence_when_not_serving: bool,
    /// `[apps] units`.
    pub units: Vec<String>,
}

/// Where this host stands, as the decision core knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// This host finished a promotion (its journal says so).
    pub promoted: bool,
    /// A procedure runs here, or halted here: nothing is fenced under it.
    pub procedure_in_hand: bool,
}

/// What the watch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairAction {
    Alert(Alert),
    /// Log this, at warning level (an error when `error`).
    Log {
        error: bool,
        text: String,
    },
    /// Stop these units (a demoted host's).
    StopApps(Vec<String>),
    /// Make this host's database read-only and stop these units: it is not serving.
    FenceSelf {
        units: Vec<String>,
        why: String,
    },
    /// Archive the finished promotion: this host is a healthy standby again.
    ArchivePromotion,
}

/// The kinds of news about the peer, each rate-limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum News {
    TwoPrimaries,
    Unreadable,
    Stopped,
    Lagging,
    OldPrimaryWaiting,
    Healthy,
}

/// The watch and what it remembers between rounds.
#[derive(Debug, Clone)]
pub struct PairWatch {
    settings: PairSettings,
    /// The news last told about the peer.
    told: Option<News>,
    /// When each kind of news was last told (monotonic time since the daemon started).
    told_at: BTreeMap<News, Duration>,
    /// When the check-based watch last alerted, while the old primary answers.
    checks_alerted: Option<Duration>,
    /// The drift last alerted (empty: none).
    drift_alerted: Vec<String>,
    semi_sync_fallback_alerted: bool,
    /// Stopping a demoted host's units was alerted, until none runs.
    demote_alerted: bool,
    /// Fencing itself was alerted, until this host is read-only again.
    self_fence_alerted: bool,
}

impl PairWatch {
    pub fn new(settings: PairSettings) -> PairWatch {
        PairWatch {
            settings,
            told: None,
            told_at: BTreeMap::new(),
            checks_alerted: None,
            drift_alerted: Vec::new(),
            semi_sync_fallback_alerted: false,
            demote_alerted: false,
            self_fence_alerted: false,
        }
    }

    /// The round's reading of the pair; `report` is the round's checks of the peer (for
    /// the check-based watch). `now`: monotonic time since the daemon started.
    pub fn observe(
        &mut self,
        pair: &PairReading,
        report: &RoundReport,
        standing: Standing,
        now: Duration,
    ) -> Vec<PairAction> {
        let mut out = Vec::new();
        self.drift(pair, &mut out);
        let writable = pair.read_only == Some(false) && pair.role == Role::Primary;
        match pair.role {
            Role::Standby => self.as_standby(pair, standing, &mut out),
            Role::Primary => {
                let peer_read = self.watch_the_peer(&pair.peer, standing, now, &mut out);
                if standing.promoted && !peer_read {
                    self.check_based(report, now, &mut out);
                }
            }
            Role::Unknown => {}
        }
        if writable {
            self.fence_if_not_serving(pair, standing, &mut out);
        } else {
            self.self_fence_alerted = false;
        }
        out
    }

    /// A standby: stop a demoted host's units; a promoted host caught up again re-arms.
    fn as_standby(&mut self, pair: &PairReading, standing: Standing, out: &mut Vec<PairAction>) {
        if pair.apps_running.is_empty() {
            self.demote_alerted = false;
        } else if self.settings.stop_when_demoted {
            out.push(PairAction::Log {
                error: false,
                text: format!(
                    "this host is a standby (read-only, replicating from its peer) while its application runs: stopping {}",
                    pair.apps_running.join(", ")
                ),
            });
            out.push(PairAction::StopApps(pair.apps_running.clone()));
        }
        if standing.promoted && pair.caught_up {
            out.push(PairAction::Log {
                error: false,
                text: "this host is a healthy standby again (read-only, replicating from its peer, caught up): archiving its finished promotion".to_string(),
            });
            out.push(PairAction::ArchivePromotion);
        }
    }

    /// This host is writable: what is the peer's database? `false` when it could not be
    /// read (the check-based watch is the fallback).
    fn watch_the_peer(
        &mut self,
        peer: &PeerDb,
        standing: Standing,
        now: Duration,
        out: &mut Vec<PairAction>,
    ) -> bool {
        let name = self.settings.peer_name.clone();
        let (news, alert) = match peer {
            PeerDb::NotRead => return false,
            PeerDb::Unreadable(why) => (
                News::Unreadable,
                Alert::StandbyNotReplicating {
                    peer: name,
                    why: format!("its database cannot be read: {why}"),
                },
            ),
            PeerDb::Read(r) if r.writable && !r.replicating => (
                News::TwoPrimaries,
                Alert::TwoPrimaries {
                    peer: name,
                    detail: r.summary.clone(),
                },
            ),
            PeerDb::Read(r) if !r.replicating && standing.promoted => (
                News::OldPrimaryWaiting,
                Alert::OldPrimaryWaiting {
                    peer: name,
                    detail: r.summary.clone(),
                },
            ),
            PeerDb::Read(r) if !r.replicating => (
                News::Stopped,
                Alert::StandbyNotReplicating {
                    peer: name,
                    why: r.summary.clone(),
                },
            ),
            PeerDb::Read(r)
                if r.lag_seconds
                    .is_some_and(|lag| Duration::from_secs(lag) > self.settings.max_lag) =>
            {
                (
                    News::Lagging,
                    Alert::StandbyLagging {
                        peer: name,
                        lag_seconds: r.lag_seconds.unwrap_or_default(),
                        max_lag: humantime::format_duration(self.settings.max_lag).to_string(),
                    },
                )
            }
            PeerDb::Read(_) => (News::Healthy, Alert::StandbyHealthy { peer: name }),
        };
        self.tell(news, alert, now, out);
        !matches!(peer, PeerDb::Unreadable(_))
    }

    /// Tells `news` when it is news (or, for two primaries, due again), within the rate
    /// of its kind; holds it back otherwise (it is told when due, if it still holds).
    fn tell(&mut self, news: News, alert: Alert, now: Duration, out: &mut Vec<PairAction>) {
        let repeats = news == News::TwoPrimaries;
        if self.told == Some(news) && !repeats {
            return;
        }
        if self.told.is_none() && news == News::Healthy {
            // Healthy from the start: nothing to say.
            self.told = Some(news);
            return;
        }
        let every = self.settings.split_brain_alert_every;
        if self
            .told_at
            .get(&news)
            .is_some_and(|at| now.saturating_sub(*at) < every)
        {
            return;
        }
        self.told = Some(news);
        self.told_at.insert(news, now);
        let text = alert.render("");
        out.push(PairAction::Log {
            error: news == News::TwoPrimaries,
            text: text.trim_start_matches("[] ").replace('\n', " "),
        });
        out.push(PairAction::Alert(alert));
    }

    /// After a promotion, with the peer's database unreadable: if anything of the old
    /// primary answers its checks, two nodes may take writes. Alert at once and then
    /// every `split_brain_alert_every` while it stays up, louder when its database is
    /// writable. Never touch DNS or stop anything: that is an operator's call.
    fn check_based(&mut self, report: &RoundReport, now: Duration, out: &mut Vec<PairAction>) {
        if !report.checks.iter().any(|c| c.ok) {
            if self.checks_alerted.take().is_some() {
                out.push(PairAction::Log {
                    error: false,
                    text: "the old primary is unreachable again".to_string(),
                });
            }
            return;
        }
        let every = self.settings.split_brain_alert_every;
        if self
            .checks_alerted
            .is_some_and(|at| now.saturating_sub(at) < every)
        {
            return;
        }
        self.checks_alerted = Some(now);
        out.extend(old_primary_back(report));
    }

    /// This host's settings that contradict the config, once per change; a primary's
    /// semi-sync fallen back, once per change.
    fn drift(&mut self, pair: &PairReading, out: &mut Vec<PairAction>) {
        if pair.drift != self.drift_alerted {
            let drift = pair.drift.clone();
            out.push(PairAction::Log {
                error: false,
                text: if drift.is_empty() {
                    "the replication settings match the config again".to_string()
                } else {
                    format!(
                        "the replication settings drift from the config: {}",
                        drift.join("; ")
                    )
                },
            });
            out.push(PairAction::Alert(Alert::ReplicationDrift {
                drift: drift.clone(),
            }));
            self.drift_alerted = drift;
        }
        if pair.semi_sync_fell_back != self.semi_sync_fallback_alerted {
            self.semi_sync_fallback_alerted = pair.semi_sync_fell_back;
            out.push(PairAction::Alert(Alert::SemiSyncFellBack {
                fell_back: pair.semi_sync_fell_back,
            }));
        }
    }

    /// Writable while every DNS record points elsewhere: not the primary the world
    /// uses. Fenced (read-only, units stopped) unless a procedure is in hand here or the
    /// config turns it off; said once until this host is read-only again.
    fn fence_if_not_serving(
        &mut self,
        pair: &PairReading,
        standing: Standing,
        out: &mut Vec<PairAction>,
    ) {
        let DnsReading::Elsewhere(target) = &pair.dns else {
            return;
        };
        if standing.procedure_in_hand {
            return;
        }
        let why = format!(
            "this host's database is writable, but every DNS record points elsewhere ({target}): it is not the primary the world uses"
        );
        if !self.settings.fence_when_not_serving {
            if !std::mem::replace(&mut self.self_fence_alerted, true) {
                out.push(PairAction::Alert(Alert::NotServing { why, fenced: false }));
            }
            return;
        }
        out.push(PairAction::FenceSelf {
            units: self.settings.units.clone(),
            why,
        });
    }

    /// The end of [`PairAction::FenceSelf`]: alerted once.
    pub fn fenced_self(&mut self, why: &str, result: Result<(), String>) -> Vec<PairAction> {
        if std::mem::replace(&mut self.self_fence_alerted, true) && result.is_ok() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Err(problem) = &result {
            out.push(PairAction::Log {
                error: true,
                text: format!("fencing this host failed: {problem}"),
            });
        }
        out.push(PairAction::Alert(Alert::NotServing {
            why: match result {
                Ok(()) => why.to_string(),
                Err(problem) => format!("{why}; fencing it FAILED: {problem}"),
            },
            fenced: true,
        }));
        out
    }

    /// The end of [`PairAction::StopApps`]: the demoted host's alert, once.
    pub fn apps_stopped(&mut self, result: Result<(), String>) -> Vec<PairAction> {
        let mut out = Vec::new();
        if let Err(problem) = &result {
            out.push(PairAction::Log {
                error: true,
                text: format!("stopping the application units failed: {problem}"),
            });
        }
        if std::mem::replace(&mut self.demote_alerted, true) {
            return out;
        }
        out.push(PairAction::Alert(Alert::Demoted {
            units: self.settings.units.clone(),
            problem: result.err(),
        }));
        out
    }

    /// A promoted host without `[peer]`: its checks of the old primary are all it has.
    pub fn promoted_without_peer(
        &mut self,
        report: &RoundReport,
        now: Duration,
    ) -> Vec<PairAction> {
        let mut out = Vec::new();
        self.check_based(report, now, &mut out);
        out
    }

    /// This host is a standby again and re-armed: the old primary's watch starts over.
    pub fn rearmed(&mut self) {
        self.checks_alerted = None;
        self.told = None;
    }
}

/// The check-based watch's alert and its log line.
fn old_primary_back(report: &RoundReport) -> Vec<PairAction> {
    let writable = report.primary_writable();
    let text = if writable == Some(true) {
        format!(
            "SPLIT BRAIN: the old primary is back and WRITABLE ({})",
            report.answers()
        )
    } else {
        format!("the old primary is back ({})", report.answers())
    };
    vec![
        PairAction::Log {
            error: writable == Some(true),
            text,
        },
        PairAction::Alert(Alert::OldPrimaryBack {
            writable,
            answers: report.answers(),
        }),
    ]
}

#[cfg(test)]
mod tests;

//! A planned switchover, run on the standby (`switchover`): what is checked before it
//! starts ([`pre_checks`]) and its eight steps as a procedure ([`Switchover`]) on the one
//! engine: `fence_primary` and `catch_up` first, then the promotion's steps (its
//! `make_writable` without a second fence), then `rejoin_peer`, then `notify`. Its
//! journal is the promotion's, with trigger `switchover`.
//!
//! Zero loss rests on the order: the primary is fenced (`read_only = ON`, its running
//! writes drained, its clients cut) and its final `@@gtid_binlog_pos` read before this
//! host stops replicating, and this host is made writable only once it has applied
//! exactly that position. Until then nothing here has changed, so a standby that cannot
//! fence or catch up undoes the fence (the journal's policy for those two steps) and the
//! pair is as it was. A failed `rejoin_peer` goes on: DNS has moved already, and
//! `rejoin` on the old primary finishes the job.
//!
//! A failed planned switchover never stands between a dead primary and its failover:
//! before `stop_replica` begins, a failure or a stop (SIGTERM, SIGINT, which also cuts
//! `catch_up` short) undoes the fence and abandons the switchover, its journal archived,
//! even when the undo fails (the primary died meanwhile, or an account lacks a grant):
//! the alert then says loudly that the primary may be left read-only, and this host is
//! armed again. From `stop_replica` on, an operator's stop lets it finish (stopping there
//! would leave neither side writable); the daemon's stops before its next step and
//! resumes at its next start. Wherever it acts on the peer it checks first that the peer
//! is another server ([`crate::peer`]).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use jiff::Timestamp;

use crate::alert::Alert;
use crate::edges::Edges;
use crate::journal::{Journal, PrimarySeen, Promotion, StepName, StepStatus, Trigger};
use crate::mariadb::{CaughtUp, Server};
use crate::peer;
use crate::procedure::{Abandonment, OnStop, Preview, RunError, Runner, Steps};
use crate::role::{self, Role};
use crate::smoke::Verdict;
use crate::takeover::{self, REJOIN_CONFIRM};

/// How often `rejoin_peer` reads the old primary's replication while it waits.
const POLL: Duration = Duration::from_millis(100);

/// Runs (or resumes) the switchover under the promotion lock.
pub async fn switch_over(edges: &Edges) -> Result<Journal, RunError> {
    resume(edges, Trigger::Switchover).await
}

/// Takes up the switchover in the journal (or starts one) for `by`: the daemon at its
/// start, an operator's `--promote-now`, or `switchover`.
pub async fn resume(edges: &Edges, by: Trigger) -> Result<Journal, RunError> {
    let mut switchover = Switchover::new(edges)?;
    switchover.by = by;
    Runner::new(edges)
        .run(&switchover, &takeover::holder(by))
        .await
}

/// The switchover's steps.
pub struct Switchover<'a> {
    edges: &'a Edges,
    /// The primary to fence and rejoin: the peer.
    peer: &'a Server,
    peer_config: &'a crate::config::PeerConfig,
    /// Who runs it: an operator's `switchover` or `--promote-now`, or the daemon (which
    /// resumes an interrupted one, never a halted one).
    by: Trigger,
}

impl<'a> Switchover<'a> {
    /// Refused as a config error naming `peer` without a `[peer]` table.
    pub fn new(edges: &'a Edges) -> Result<Switchover<'a>, RunError> {
        match (&edges.peer, &edges.config.peer) {
            (Some(peer), Some(peer_config)) => Ok(Switchover {
                edges,
                peer,
                peer_config,
                by: Trigger::Switchover,
            }),
            _ => Err(RunError::State(anyhow!(
                "a switchover needs a [peer] table naming the primary's database"
            ))),
        }
    }
}

impl Steps for Switchover<'_> {
    type Kind = Promotion;

    fn name(&self) -> &'static str {
        "switchover"
    }

    fn plan(&self) -> &'static [StepName] {
        &StepName::SWITCHOVER
    }

    async fn open(&self, last: Option<Journal>) -> Result<Journal, RunError> {
        let reason = format!(
            "planned switchover from {} requested by an operator",
            self.peer_config.name
        );
        let by_daemon = self.by == Trigger::Automatic;
        takeover::open(
            self.edges,
            Trigger::Switchover,
            &reason,
            None,
            last,
            by_daemon,
        )
        .await
    }

    fn deadline(&self, step: StepName) -> Duration {
        takeover::deadline(&self.edges.config, step)
    }

    async fn preview(&self, step: StepName) -> Preview {
        let p = self.peer_config;
        match step {
            StepName::FencePrimary => Preview::new(format!(
                "on {} SET GLOBAL read_only = ON (running writes get {}), end its client connections, read @@gtid_binlog_pos",
                self.peer.describe(),
                humantime::format_duration(p.write_drain_timeout)
            )),
            StepName::CatchUp => Preview::new(format!(
                "on {} MASTER_GTID_WAIT(that position, {}); if it cannot, read_only = OFF on the peer again and stop: nothing changed",
                self.edges.own.describe(),
                humantime::format_duration(p.switchover_timeout)
            )),
            StepName::RejoinPeer => Preview::new(format!(
                "on {} CHANGE MASTER TO {} as {} with GTID, START SLAVE, confirmed running",
                self.peer.describe(),
                self.edges.config.replica.connect_address,
                p.replication_user
            )),
            StepName::Notify => Preview::new("the closing alert with the drill record"),
            step => takeover::preview(self.edges, step).await,
        }
    }

    async fn run(&self, step: StepName, journal: &mut Journal) -> anyhow::Result<String> {
        match step {
            StepName::FencePrimary => self.fence_primary(journal).await,
            StepName::CatchUp => self.catch_up(journal).await,
            // The primary is fenced and about to replicate from here: no second fence,
            // no fence_command.
            StepName::MakeWritable => {
                let writable = self.edges.own.make_writable().await?;
                Ok(format!(
                    "fence: none here (the primary was fenced by fence_primary and is about to replicate from this host: no fence_command); {writable}"
                ))
            }
            StepName::RejoinPeer => self.rejoin_peer().await,
            step => takeover::run_shared(self.edges, step, journal).await,
        }
    }

    /// Undoing `fence_primary`: the peer takes writes again (`read_only = OFF`, read
    /// back). Read first: a fence that failed may have changed nothing, and a peer that
    /// is writable already is said so, not claimed fenced.
    async fn undo(&self, step: StepName, _journal: &Journal) -> anyhow::Result<String> {
        if step != StepName::FencePrimary {
            bail!("step {step} cannot be undone");
        }
        let peer = self.peer;
        let read_only = peer
            .read_only()
            .await
            .with_context(|| format!("reading read_only on {}", peer.describe()))?;
        if !read_only {
            return Ok(format!(
                "{}: read_only is OFF: it takes writes, nothing to undo",
                peer.describe()
            ));
        }
        peer.set_read_only(false).await?;
        Ok(format!("{}: read_only = OFF again", peer.describe()))
    }

    /// Before `stop_replica` begins nothing of this host has changed: a stop undoes the
    /// fence and abandons the switchover. After it, an operator's stop lets it finish
    /// (the pair serves only once this host does); the daemon's leaves the journal for
    /// its next start, as it does a promotion.
    fn on_stop(&self, journal: &Journal) -> OnStop<StepName> {
        let begun = |step| {
            journal
                .step(step)
                .is_some_and(|s| s.status != StepStatus::Pending)
        };
        if !begun(StepName::StopReplica) {
            OnStop::Abandon(&[StepName::FencePrimary])
        } else if self.by == Trigger::Automatic {
            OnStop::Resume
        } else {
            OnStop::Finish
        }
    }

    /// `catch_up` only waits: a stop cuts it short (and undoes the fence).
    fn interruptible(&self, step: StepName) -> bool {
        step == StepName::CatchUp
    }

    async fn halted(&self, journal: &Journal, step: StepName, error: &str) {
        takeover::halted(self.edges, journal, step, error).await;
    }

    async fn abandoned(&self, _journal: &Journal, _step: StepName, end: &Abandonment) {
        self.edges.alerter.send(&Alert::SwitchoverAbandoned {
            why: match end.undone.is_empty() {
                true => end.why.clone(),
                false => format!("{}; {}", end.why, end.undone.join("; ")),
            },
            left: end.left.clone(),
            interrupted: end.interrupted,
        });
    }

    async fn finished(&self, journal: &Journal) {
        takeover::finished(self.edges, journal).await;
    }
}

impl Switchover<'_> {
    /// `fence_primary`: the peer made read-only, its running writes given
    /// `write_drain_timeout`, its clients cut, its final position recorded. Safe to
    /// repeat: a resumed fence reads the same position, and the drill keeps the first
    /// fence's time.
    async fn fence_primary(&self, journal: &mut Journal) -> anyhow::Result<String> {
        peer::another_server(self.edges, self.peer, &self.peer_config.name).await?;
        let drain = self.peer_config.write_drain_timeout;
        let at = Timestamp::now();
        let fenced = self.peer.fence(drain).await?;
        let record = &mut journal.record;
        let drill = record.switchover.get_or_insert_with(Default::default);
        drill.fenced_at.get_or_insert(at);
        drill.final_position = Some(fenced.final_position.clone());
        drill.killed_connections += fenced.killed;
        // The accounting of the promotion's steps compares against this position.
        record.primary_last_seen = Some(PrimarySeen {
            gtid: fenced.final_position.clone(),
            at: Timestamp::now(),
        });
        Ok(format!(
            "{}: read_only = ON (running writes given {}), {} client connection(s) ended; final position {}",
            self.peer.describe(),
            humantime::format_duration(drain),
            fenced.killed,
            fenced.final_position
        ))
    }

    /// `catch_up`: this host applies the fenced primary's final position within
    /// `switchover_timeout`, else fails (and the fence is undone); a replication error
    /// that waiting cannot mend fails it at once.
    async fn catch_up(&self, journal: &mut Journal) -> anyhow::Result<String> {
        let timeout = self.peer_config.switchover_timeout;
        let final_position = journal
            .record
            .switchover
            .as_ref()
            .and_then(|d| d.final_position.clone())
            .context("fence_primary recorded no final position")?;
        let local = &self.edges.own;
        let ended = local.catch_up(&final_position, timeout, false).await?;
        let applied = local.state().await?.gtid_current_pos;
        match ended {
            CaughtUp::Yes => {}
            CaughtUp::Failed(error) => bail!(
                "this host's replication failed before it applied the primary's final position {final_position} (it has {applied}): {error}"
            ),
            CaughtUp::NoConnection => bail!(
                "this host has no replication connection: it cannot apply the primary's final position {final_position}"
            ),
            CaughtUp::TimedOut(_) => bail!(
                "this host did not apply the primary's final position {final_position} within {} (it has {applied})",
                humantime::format_duration(timeout),
            ),
        }
        let lost = !applied.covers(&final_position);
        let drill = journal
            .record
            .switchover
            .get_or_insert_with(Default::default);
        drill.caught_up_at = Some(Timestamp::now());
        drill.applied_position = Some(applied.clone());
        drill.lost = Some(lost);
        if lost {
            bail!(
                "MASTER_GTID_WAIT returned, yet this host has {applied} and the primary's final position is {final_position}"
            );
        }
        Ok(format!(
            "applied the primary's final position {final_position}: this host has {applied}"
        ))
    }

    /// `rejoin_peer`: the old primary replicates from this host (`[replica]
    /// connect_address`) through the `[peer]` replication account, confirmed running
    /// within [`REJOIN_CONFIRM`]. It must be read-only still: a writable one is left
    /// alone.
    async fn rejoin_peer(&self) -> anyhow::Result<String> {
        let (peer, p) = (self.peer, self.peer_config);
        let here = &self.edges.config.replica.connect_address;
        peer::another_server(self.edges, peer, &p.name).await?;
        if !peer.state().await?.read_only {
            bail!(
                "{} is writable: it was fenced by this switchover, so someone made it writable since; not pointing it here (two primaries?). Make it read-only, then run `failover-watchdog rejoin` on it",
                peer.describe()
            );
        }
        peer.replicate_from(
            &here.host,
            here.port,
            &p.replication_user,
            &p.replication_password,
        )
        .await?;
        let deadline = tokio::time::Instant::now() + REJOIN_CONFIRM;
        loop {
            let state = peer.state().await?;
            match &state.replica {
                Some(r) if r.replicating() => {
                    return Ok(format!(
                        "{} replicates from {here}: {}",
                        peer.describe(),
                        r.summary()
                    ));
                }
                replica if tokio::time::Instant::now() >= deadline => {
                    let found = replica
                        .as_ref()
                        .map_or("no replication connection".to_string(), |r| r.summary());
                    bail!(
                        "{} does not replicate from {here} after {}: {found}; run `failover-watchdog rejoin` on it",
                        peer.describe(),
                        humantime::format_duration(REJOIN_CONFIRM),
                    );
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// One pre-check: what was checked, and what was found (`Err` refuses the switchover).
#[derive(Debug, Clone)]
pub struct PreCheck {
    pub what: &'static str,
    pub result: Result<String, String>,
}

/// Every pre-check, read-only, all run even when one fails: this host is a standby of
/// the peer with both replication threads running and lag within `[replica] max_lag`;
/// the peer answers, is another server than this host's own and is the writable
/// primary; the `[peer]` account holds what the fence, its undo and `rejoin_peer` need;
/// the smoke test's `promotion_plan` check passes (units known to systemd, the replica
/// account's privileges, `state_dir` writable, no journal).
pub async fn pre_checks(edges: &Edges) -> Vec<PreCheck> {
    let (local_state, peer_state, plan) = tokio::join!(
        edges.own.state(),
        async {
            match &edges.peer {
                Some(peer) => peer.state().await,
                None => Err(anyhow!("no [peer] configured")),
            }
        },
        crate::smoke::checks::promotion_plan(edges)
    );
    let mut checks = match &local_state {
        Err(e) => vec![PreCheck {
            what: "this host is a standby",
            result: Err(format!("{e:#}")),
        }],
        Ok(state) => standby_checks(edges, state),
    };
    checks.extend(peer_checks(edges, local_state.as_ref().ok(), peer_state).await);
    checks.push(PreCheck {
        what: "the smoke test's promotion_plan",
        result: match plan.verdict {
            Verdict::Pass => Ok(plan.detail),
            Verdict::Fail | Verdict::Skip => Err(plan.detail),
        },
    });
    checks
}

/// The peer's pre-checks: another server, the writable primary, its account's grants.
async fn peer_checks(
    edges: &Edges,
    own: Option<&crate::mariadb::DbState>,
    peer_state: anyhow::Result<crate::mariadb::DbState>,
) -> Vec<PreCheck> {
    let state = match peer_state {
        Ok(state) => state,
        Err(e) => {
            return vec![PreCheck {
                what: "the peer is the writable primary",
                result: Err(format!("{e:#}")),
            }];
        }
    };
    let (Some(peer), Some(config)) = (&edges.peer, &edges.config.peer) else {
        return Vec::new();
    };
    let identity = match own {
        Some(own) => peer::identity(own, &edges.own.describe(), &state, &config.name).map(|()| {
            format!(
                "server_id {} (this host's is {})",
                state.server_id, own.server_id
            )
        }),
        None => Err("this host's database cannot be read to compare server ids".to_string()),
    };
    let primary = match role::derive(state.read_only, state.replica.as_ref(), None) {
        Role::Primary => Ok(format!(
            "writable, not replicating, at {}",
            state.gtid_binlog_pos
        )),
        role => Err(format!(
            "the peer is {role} (read_only {}, replication {})",
            on_off(state.read_only),
            state
                .replica
                .as_ref()
                .map_or("none".to_string(), |r| r.summary())
        )),
    };
    vec![
        PreCheck {
            what: "the peer is another server",
            result: identity,
        },
        PreCheck {
            what: "the peer is the writable primary",
            result: primary,
        },
        PreCheck {
            what: "the [peer] account's grants",
            result: peer::grants(peer, &config.user, state.version).await,
        },
    ]
}

/// This host is a running, caught-up-enough standby of the peer.
fn standby_checks(edges: &Edges, state: &crate::mariadb::DbState) -> Vec<PreCheck> {
    let config = &edges.config;
    let peer = config.peer.as_ref().map(|p| p.source());
    let role = role::derive(state.read_only, state.replica.as_ref(), peer);
    let replica = state.replica.as_ref();
    let standby = match (role, replica) {
        (Role::Standby, Some(r)) if r.replicating() => Ok(format!(
            "{}: read-only, {}",
            edges.own.describe(),
            r.summary()
        )),
        (Role::Standby, Some(r)) => Err(format!(
            "its replication does not run (IO {}, SQL {}): {}",
            r.io_running,
            r.sql_running,
            r.summary()
        )),
        (role, _) => Err(format!(
            "{} is {role} (read_only {}, replication {}), not a read-only replica of the peer",
            edges.own.describe(),
            on_off(state.read_only),
            replica.map_or("none".to_string(), |r| r.summary())
        )),
    };
    let max_lag = config.replica.max_lag;
    let lag = match replica.and_then(|r| r.seconds_behind) {
        Some(lag) if Duration::from_secs(lag) <= max_lag => Ok(format!(
            "{lag} s behind (max_lag {})",
            humantime::format_duration(max_lag)
        )),
        Some(lag) => Err(format!(
            "{lag} s behind, more than max_lag {}",
            humantime::format_duration(max_lag)
        )),
        None => Err("Seconds_Behind_Master is unknown (replication stopped)".into()),
    };
    vec![
        PreCheck {
            what: "this host is a standby",
            result: standby,
        },
        PreCheck {
            what: "lag within [replica] max_lag",
            result: lag,
        },
    ]
}

fn on_off(on: bool) -> &'static str {
    if on { "ON" } else { "OFF" }
}

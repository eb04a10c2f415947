//! A planned switchover, run on the standby (`switchover`): what is checked before it
//! starts, and the steps only a switchover has. The promotion's own steps, the journal
//! and the resume are [`crate::promote`]'s: a switchover is a promotion with trigger
//! [`Trigger::Switchover`](crate::journal::Trigger), whose journal
//! ([`StepName::SWITCHOVER`](crate::journal::StepName)) fences the primary and catches up
//! first, and rejoins the old primary last.
//!
//! Zero loss rests on the order: the primary is fenced (`read_only = ON`, its running
//! writes drained, its clients cut) and its final `@@gtid_binlog_pos` read before this
//! host stops replicating, and this host is made writable only once it has applied
//! exactly that position. Until then nothing here has changed, so a standby that cannot
//! catch up undoes the fence ([`undo_fence`]) and the pair is as it was.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use jiff::Timestamp;

use crate::config::Config;
use crate::journal::{Journal, PrimarySeen};
use crate::pair::Database;
use crate::replica::display_gtid;
use crate::role::{self, Role};
use crate::smoke::Verdict;

/// How long `rejoin_peer` waits for the old primary's replication to run.
pub const REJOIN_CONFIRM: Duration = Duration::from_secs(30);
/// Time for a step beyond its own wait: connecting, a few statements.
pub const STEP_SLACK: Duration = Duration::from_secs(10);
/// How often `rejoin_peer` reads the old primary's replication while it waits.
const POLL: Duration = Duration::from_millis(100);

/// One pre-check: what was checked, and what was found (`Err` refuses the switchover).
#[derive(Debug, Clone)]
pub struct PreCheck {
    pub what: &'static str,
    pub result: Result<String, String>,
}

/// Every pre-check, read-only, all run even when one fails: this host is a standby of
/// the peer with both replication threads running and lag within `[replica] max_lag`;
/// the peer answers and is the writable primary; the smoke test's `promotion_plan`
/// check passes (units known to systemd, the replica account's privileges, `state_dir`
/// writable, no journal).
pub async fn pre_checks(config: &Config) -> Vec<PreCheck> {
    let local = Database::local(config);
    let (local_state, peer_state, plan) = tokio::join!(
        local.state(),
        async {
            match Database::peer(config) {
                Some(peer) => peer.state().await,
                None => Err(anyhow!("no [peer] configured")),
            }
        },
        crate::smoke::checks::promotion_plan(config)
    );
    let mut checks = Vec::new();
    match local_state {
        Err(e) => checks.push(PreCheck {
            what: "this host is a standby",
            result: Err(format!("{e:#}")),
        }),
        Ok(state) => {
            let role = role::derive(
                state.read_only,
                state.replica.as_ref(),
                config.peer.as_ref(),
            );
            let replica = state.replica.as_ref();
            checks.push(PreCheck {
                what: "this host is a standby",
                result: match (role, replica) {
                    (Role::Standby, Some(r)) if r.replicating() => Ok(format!(
                        "{}: read-only, {}",
                        local.describe(),
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
                        local.describe(),
                        if state.read_only { "ON" } else { "OFF" },
                        replica.map_or("none".to_string(), |r| r.summary())
                    )),
                },
            });
            let max_lag = config.replica.max_lag;
            checks.push(PreCheck {
                what: "lag within [replica] max_lag",
                result: match replica.and_then(|r| r.seconds_behind) {
                    Some(lag) if Duration::from_secs(lag) <= max_lag => Ok(format!(
                        "{lag} s behind (max_lag {})",
                        humantime::format_duration(max_lag)
                    )),
                    Some(lag) => Err(format!(
                        "{lag} s behind, more than max_lag {}",
                        humantime::format_duration(max_lag)
                    )),
                    None => Err("Seconds_Behind_Master is unknown (replication stopped)".into()),
                },
            });
        }
    }
    checks.push(PreCheck {
        what: "the peer is the writable primary",
        result: match peer_state {
            Err(e) => Err(format!("{e:#}")),
            Ok(state) => match role::derive(state.read_only, state.replica.as_ref(), None) {
                Role::Primary => Ok(format!(
                    "writable, not replicating, at {}",
                    display_gtid(&state.gtid_binlog_pos)
                )),
                role => Err(format!(
                    "the peer is {role} (read_only {}, replication {})",
                    if state.read_only { "ON" } else { "OFF" },
                    state
                        .replica
                        .as_ref()
                        .map_or("none".to_string(), |r| r.summary())
                )),
            },
        },
    });
    checks.push(PreCheck {
        what: "the smoke test's promotion_plan",
        result: match plan.verdict {
            Verdict::Pass => Ok(plan.detail),
            Verdict::Fail | Verdict::Skip => Err(plan.detail),
        },
    });
    checks
}

/// `fence_primary`: the peer made read-only, its running writes given
/// `write_drain_timeout`, its clients cut, its final position recorded. Safe to repeat:
/// a resumed fence reads the same position, and the drill keeps the first fence's time.
pub async fn fence_primary(config: &Config, journal: &mut Journal) -> anyhow::Result<String> {
    let (peer, drain) = peer(config)?;
    let at = Timestamp::now();
    let fenced = peer.fence(drain).await?;
    let drill = journal.switchover.get_or_insert_with(Default::default);
    drill.fenced_at.get_or_insert(at);
    drill.final_position = Some(fenced.final_position.clone());
    drill.killed_connections += fenced.killed;
    // The accounting of the promotion's steps compares against this position.
    journal.primary_last_seen = Some(PrimarySeen {
        gtid: fenced.final_position.clone(),
        at: Timestamp::now(),
    });
    Ok(format!(
        "{}: read_only = ON (running writes given {}), {} client connection(s) ended; final position {}",
        peer.describe(),
        humantime::format_duration(drain),
        fenced.killed,
        display_gtid(&fenced.final_position)
    ))
}

/// `catch_up`: this host applies the fenced primary's final position within
/// `switchover_timeout`, else fails (and the driver undoes the fence).
pub async fn catch_up(config: &Config, journal: &mut Journal) -> anyhow::Result<String> {
    let timeout = config
        .peer
        .as_ref()
        .map(|p| p.switchover_timeout)
        .context("no [peer] configured")?;
    let final_position = journal
        .switchover
        .as_ref()
        .and_then(|d| d.final_position.clone())
        .context("fence_primary recorded no final position")?;
    let local = Database::local(config);
    let reached = local.wait_for_position(&final_position, timeout).await?;
    let state = local.state().await?;
    if !reached {
        bail!(
            "this host did not apply the primary's final position {} within {} (it has {})",
            display_gtid(&final_position),
            humantime::format_duration(timeout),
            display_gtid(&state.gtid_current_pos)
        );
    }
    let applied = state.gtid_current_pos;
    let lost = !crate::gtid::covers(&applied, &final_position);
    let drill = journal.switchover.get_or_insert_with(Default::default);
    drill.caught_up_at = Some(Timestamp::now());
    drill.applied_position = Some(applied.clone());
    drill.lost = Some(lost);
    if lost {
        bail!(
            "MASTER_GTID_WAIT returned, yet this host has {} and the primary's final position is {}",
            display_gtid(&applied),
            display_gtid(&final_position)
        );
    }
    Ok(format!(
        "applied the primary's final position {}: this host has {}",
        display_gtid(&final_position),
        display_gtid(&applied)
    ))
}

/// Undoes `fence_primary`: the peer takes writes again (`read_only = OFF`, read back).
pub async fn undo_fence(config: &Config) -> anyhow::Result<String> {
    let (peer, _) = peer(config)?;
    peer.set_read_only(false).await?;
    Ok(format!("{}: read_only = OFF again", peer.describe()))
}

/// `rejoin_peer`: the old primary replicates from this host (`[replica]
/// connect_address`) through the `[peer]` replication account, confirmed running within
/// [`REJOIN_CONFIRM`]. It must be read-only still: a writable one is left alone.
pub async fn rejoin_peer(config: &Config) -> anyhow::Result<String> {
    let (peer, _) = peer(config)?;
    let p = config.peer.as_ref().context("no [peer] configured")?;
    let here = &config.replica.connect_address;
    let before = peer.state().await?;
    if !before.read_only {
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
                    "{} does not replicate from {here} after {}: {}; run `failover-watchdog rejoin` on it",
                    peer.describe(),
                    humantime::format_duration(REJOIN_CONFIRM),
                    found
                );
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// The longest `fence_primary` may take: connecting, then the drain.
pub fn fence_deadline(config: &Config) -> Duration {
    config.probe.timeout
        + config
            .peer
            .as_ref()
            .map_or(Duration::ZERO, |p| p.write_drain_timeout)
        + STEP_SLACK
}

/// The longest `catch_up` may take: `switchover_timeout` and a little.
pub fn catch_up_deadline(config: &Config) -> Duration {
    config.probe.timeout
        + config
            .peer
            .as_ref()
            .map_or(Duration::ZERO, |p| p.switchover_timeout)
        + STEP_SLACK
}

/// The longest `rejoin_peer` may take.
pub fn rejoin_deadline(config: &Config) -> Duration {
    2 * config.probe.timeout + REJOIN_CONFIRM + STEP_SLACK
}

fn peer(config: &Config) -> anyhow::Result<(Database, Duration)> {
    let drain = config
        .peer
        .as_ref()
        .map(|p| p.write_drain_timeout)
        .context("no [peer] configured")?;
    let peer = Database::peer(config).context("no [peer] configured")?;
    Ok((peer, drain))
}

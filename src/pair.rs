//! One round's reading of the pair for the decision core ([`observe`]): this host's role
//! from its own database, while it is a standby which application units run, while it
//! is the primary its standby's database. Every statement is the MariaDB edge's
//! ([`crate::mariadb`]); what the figures mean (roles) is the core's ([`crate::role`]).

use std::time::Duration;

use anyhow::anyhow;

use crate::decide::{PairReading, PeerDb, PeerReading};
use crate::edges::Edges;
use crate::mariadb::DbState;
use crate::replication::ReplicaStatus;
use crate::role::{self, Role};

/// One round's reading of the pair for the decision core (`None` without `[peer]`):
/// this host's role from its own database; while it is a standby, which application
/// units run (a demoted host stops them); while it is the primary, its standby's
/// database. Each read is bounded by the probe timeout.
pub async fn observe(edges: &Edges) -> Option<Box<PairReading>> {
    let config = &edges.config;
    let peer = config.peer.as_ref()?;
    let within = config.probe.timeout;
    let (role, detail, caught_up) = match bounded(within, edges.own.state()).await {
        Ok(state) => {
            let role = role::derive(state.read_only, state.replica.as_ref(), Some(peer.source()));
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
    let peer = match (role, &edges.peer) {
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
        state.gtid_binlog_pos,
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

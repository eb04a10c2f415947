//! One round's reading of the pair for the decision core ([`observe`]): this host's own
//! database (its role, what of its settings drifts from the config, a primary's
//! semi-sync), while it is a standby which application units run, while it is writable
//! the peer's database and where DNS points. Every statement is the MariaDB edge's
//! ([`crate::mariadb`]); what the figures mean is the core's ([`crate::role`],
//! [`crate::pairwatch`]).

use std::time::Duration;

use anyhow::anyhow;

use crate::config::Config;
use crate::decide::{DnsReading, PairReading, PeerDb, PeerReading};
use crate::edges::Edges;
use crate::mariadb::DbState;
use crate::replication::ReplicaStatus;
use crate::retry::Failure;
use crate::role::{self, Role};

/// One round's reading of the pair for the decision core (`None` without `[peer]`).
/// Each read is bounded by the probe timeout.
pub async fn observe(edges: &Edges) -> Option<Box<PairReading>> {
    let config = &edges.config;
    let peer = config.peer.as_ref()?;
    let within = config.probe.timeout;
    let own = bounded(within, edges.own.state()).await;
    let (role, detail) = match &own {
        Ok(state) => (
            role::derive(state.read_only, state.replica.as_ref(), Some(peer.source())),
            describe_state(state),
        ),
        Err(e) => (Role::Unknown, format!("{e:#}")),
    };
    let state = own.as_ref().ok();
    let writable = state.is_some_and(|s| !s.read_only);
    let (peer, dns) = tokio::join!(
        async {
            match (&edges.peer, writable) {
                (Some(db), true) => read_peer(bounded(within, db.state()).await),
                _ => PeerDb::NotRead,
            }
        },
        async {
            if role == Role::Primary {
                dns_reading(edges).await
            } else {
                DnsReading::NotRead
            }
        }
    );
    Some(Box::new(PairReading {
        role,
        detail,
        read_only: state.map(|s| s.read_only),
        caught_up: role == Role::Standby
            && state.is_some_and(|s| s.replica.as_ref().is_some_and(role::caught_up)),
        apps_running: apps_running(config, role).await,
        peer,
        drift: state.map_or_else(Vec::new, |s| drift(config, role, s)),
        semi_sync_fell_back: role == Role::Primary
            && state.is_some_and(|s| s.semi_sync.fell_back()),
        dns,
    }))
}

/// The peer's database as this writable host needs it.
fn read_peer(state: anyhow::Result<DbState>) -> PeerDb {
    match state {
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
    }
}

/// A standby's application units that run (a demoted host stops them).
async fn apps_running(config: &Config, role: Role) -> Vec<String> {
    let mut running = Vec::new();
    if role != Role::Standby || !config.apps.stop_when_demoted {
        return running;
    }
    for unit in &config.apps.units {
        if let Ok(state) = crate::systemd::active_state(unit, config.probe.timeout).await
            && matches!(state.as_str(), "active" | "activating" | "reloading")
        {
            running.push(unit.clone());
        }
    }
    running
}

/// What of this host's settings contradicts the config: a standby's channel
/// (`[replication]`), and with `replication.semi_sync` the side of its role.
pub fn drift(config: &Config, role: Role, state: &DbState) -> Vec<String> {
    let mut found = Vec::new();
    if role == Role::Standby
        && let Some(replica) = &state.replica
    {
        let channel = crate::mariadb::channel::drift(&config.replication, &replica.channel);
        found.extend(channel.iter().map(ToString::to_string));
    }
    if config.replication.semi_sync {
        let (variable, value) = match role {
            Role::Primary => (
                "rpl_semi_sync_master_enabled",
                state.semi_sync.master_enabled,
            ),
            Role::Standby => ("rpl_semi_sync_slave_enabled", state.semi_sync.slave_enabled),
            Role::Unknown => return found,
        };
        if value != Some(true) {
            found.push(format!(
                "replication.semi_sync: this {role}'s {variable} is {}, the config says ON",
                value.map_or("unknown", |on| if on { "ON" } else { "OFF" })
            ));
        }
    }
    found
}

/// Where the DNS records point: here when any of them does (its `content` is this
/// host's address); elsewhere only when every one was read and none does.
async fn dns_reading(edges: &Edges) -> DnsReading {
    let within = edges.config.probe.timeout;
    let mut elsewhere = Vec::new();
    for record in &edges.config.dns.records {
        let found = tokio::time::timeout(
            within,
            edges
                .cloudflare
                .find_record(&record.zone_id, &record.name, &record.record_type),
        )
        .await;
        match found {
            Ok(Ok(found)) if record.points_at(&found.content) => return DnsReading::PointsHere,
            Ok(Ok(found)) => elsewhere.push(format!(
                "{} {} -> {}",
                record.name, record.record_type, found.content
            )),
            Ok(Err(Failure::Fatal(e) | Failure::Transient { error: e, .. })) => {
                return DnsReading::Unreadable(format!(
                    "{} {}: {e:#}",
                    record.name, record.record_type
                ));
            }
            Err(_) => {
                return DnsReading::Unreadable(format!(
                    "{} {}: no answer within {}",
                    record.name,
                    record.record_type,
                    humantime::format_duration(within)
                ));
            }
        }
    }
    if elsewhere.is_empty() {
        DnsReading::NotRead
    } else {
        DnsReading::Elsewhere(elsewhere.join(", "))
    }
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

//! A host's role in its pair, read from its own database. Pure.
//!
//! - `primary`: writable, and not replicating (no replication connection, or one whose
//!   threads are both stopped).
//! - `standby`: read-only, and its replication connection points at the peer (threads
//!   running or not: a standby whose primary died still is one).
//! - `unknown`: anything else (its database does not answer; read-only but replicating
//!   from elsewhere or from nothing; writable while replicating).
//!
//! Without `[peer]` the source cannot be compared: a read-only host replicating from
//! anywhere is a standby.

use serde::{Deserialize, Serialize};

use crate::config::PeerConfig;
use crate::replica::ReplicaStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Standby,
    Unknown,
}

impl Role {
    /// The name `status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database's role from its `read_only` flag and its replication connection.
pub fn derive(read_only: bool, replica: Option<&ReplicaStatus>, peer: Option<&PeerConfig>) -> Role {
    let replicating = replica.is_some_and(|r| r.io_running != "No" || r.sql_running != "No");
    match (read_only, replica) {
        (false, _) if !replicating => Role::Primary,
        (true, Some(r)) => match peer {
            Some(peer) if peer.is_source(&r.source_host, r.source_port) => Role::Standby,
            Some(_) => Role::Unknown,
            None => Role::Standby,
        },
        _ => Role::Unknown,
    }
}

/// Whether a replica of the peer has applied everything it received and runs: the
/// test for "a healthy standby again".
pub fn caught_up(replica: &ReplicaStatus) -> bool {
    replica.replicating() && replica.seconds_behind == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn peer() -> PeerConfig {
        PeerConfig {
            name: "b".into(),
            host: "10.0.0.2".into(),
            port: 3306,
            user: "w".into(),
            password: Secret::inline("p"),
            replication_user: "repl".into(),
            replication_password: Secret::inline("r"),
            catch_up_timeout: std::time::Duration::from_secs(1),
            switchover_timeout: std::time::Duration::from_secs(1),
            write_drain_timeout: std::time::Duration::from_secs(1),
            tls: crate::config::TlsConfig::DISABLED,
        }
    }

    fn replica(host: &str, io: &str, sql: &str) -> ReplicaStatus {
        ReplicaStatus::from_columns(|column| {
            Some(
                match column {
                    "Master_Host" => host,
                    "Master_Port" => "3306",
                    "Slave_IO_Running" => io,
                    "Slave_SQL_Running" => sql,
                    "Seconds_Behind_Master" => "0",
                    _ => return None,
                }
                .to_string(),
            )
        })
    }

    #[test]
    fn roles_come_from_read_only_and_the_replication_source() {
        let peer = peer();
        let from_peer = replica("10.0.0.2", "Yes", "Yes");
        let broken = replica("10.0.0.2", "Connecting", "Yes");
        let stopped = replica("10.0.0.2", "No", "No");
        let elsewhere = replica("10.0.0.9", "Yes", "Yes");
        let cases = [
            (false, None, Role::Primary),
            (false, Some(&stopped), Role::Primary),
            (false, Some(&from_peer), Role::Unknown),
            (true, Some(&from_peer), Role::Standby),
            (true, Some(&broken), Role::Standby),
            (true, Some(&stopped), Role::Standby),
            (true, Some(&elsewhere), Role::Unknown),
            (true, None, Role::Unknown),
        ];
        for (read_only, replica, want) in cases {
            assert_eq!(
                derive(read_only, replica, Some(&peer)),
                want,
                "read_only {read_only}, {replica:?}"
            );
        }
        assert_eq!(derive(true, Some(&elsewhere), None), Role::Standby);
    }

    #[test]
    fn caught_up_needs_both_threads_and_no_lag() {
        assert!(caught_up(&replica("h", "Yes", "Yes")));
        assert!(!caught_up(&replica("h", "Connecting", "Yes")));
        assert!(!caught_up(&replica("h", "Yes", "No")));
    }
}

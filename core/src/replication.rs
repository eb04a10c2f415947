//! A replication connection's state as its server reports it: the row of `SHOW ALL
//! SLAVES STATUS` read once, by column name (their order varies between MariaDB
//! versions), into a typed [`ReplicaStatus`] that every reader uses; no other code reads
//! a column. The reading itself is the MariaDB edge's, in the binary crate.

use std::time::Duration;

use crate::gtid::GtidPosition;

/// One replication connection's state, from its row of `SHOW ALL SLAVES STATUS`, read
/// once by [`ReplicaStatus::from_columns`]. Text columns are "" when NULL or absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Master_Host`.
    pub source_host: String,
    /// `Master_Port`.
    pub source_port: Option<u16>,
    /// `Slave_IO_Running` as the server says it: "Yes", "Connecting" or "No".
    pub io_running: String,
    /// `Slave_SQL_Running`: "Yes" or "No".
    pub sql_running: String,
    /// The IO thread's last error; `None` when its errno is 0 or empty.
    pub io_error: Option<ThreadError>,
    /// The SQL thread's last error (it stopped on it); `None` when its errno is 0 or empty.
    pub sql_error: Option<ThreadError>,
    /// `Seconds_Behind_Master`; `None` when NULL (a thread not running) or not a number.
    pub seconds_behind: Option<u64>,
    /// `Using_Gtid`: "No", "Slave_Pos" or "Current_Pos".
    pub using_gtid: String,
    /// `Gtid_IO_Pos`: everything received from the primary.
    pub gtid_io_pos: GtidPosition,
    /// `Slave_received_heartbeats`; 0 when absent or not a number.
    pub received_heartbeats: u64,
    /// `Slave_heartbeat_period`; `None` when 0 (heartbeats off), absent or not a number.
    pub heartbeat_period: Option<Duration>,
    /// The channel's settings, as the server reports them (compared with `[replication]`).
    pub channel: ChannelSettings,
}

/// A channel's settings as a replica reports them: each `None` when the server does not
/// report it (an older or newer MariaDB, a column that does not parse).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSettings {
    /// `Slave_heartbeat_period`, 0 included (heartbeats off).
    pub heartbeat_period: Option<Duration>,
    /// `Connect_Retry`, in seconds.
    pub connect_retry: Option<u64>,
    /// `Master_Retry_Count` (not every MariaDB reports it).
    pub retry_count: Option<u64>,
    /// `Master_SSL_Allowed`.
    pub ssl_allowed: Option<bool>,
    /// `Master_SSL_CA_File`.
    pub ssl_ca_file: Option<String>,
    /// `Master_SSL_Cert`.
    pub ssl_cert: Option<String>,
    /// `Master_SSL_Key`.
    pub ssl_key: Option<String>,
    /// `Master_SSL_Verify_Server_Cert`.
    pub ssl_verify_server_cert: Option<bool>,
}

/// IO thread errors its retries cannot mend: access denied (1045), the binary log asked
/// for is gone or unreadable on the primary (1236), both servers have one server id
/// (1593), the account is locked (4151).
pub const FATAL_IO_ERRNOS: [&str; 4] = ["1045", "1236", "1593", "4151"];

/// The IO thread error of a primary that purged the binary logs a replica needs.
pub const BINLOG_PURGED_ERRNO: &str = "1236";

/// A replication thread's last error (`Last_IO_Errno`/`Last_IO_Error`, or the SQL's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadError {
    /// "IO" or "SQL".
    pub thread: &'static str,
    /// As the server shows it: never empty nor "0" (a number that does not parse is
    /// still an error, not hidden).
    pub errno: String,
    pub message: String,
}

impl std::fmt::Display for ThreadError {
    /// "SQL thread error 1062: Duplicate entry ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} thread error {}: {}",
            self.thread, self.errno, self.message
        )
    }
}

impl ReplicaStatus {
    /// Reads the row's columns by name (`get` is `None` for NULL or absent); their order
    /// varies between MariaDB versions. A column that is missing or does not parse gives
    /// the field's "unknown", never a panic; only a `Gtid_IO_Pos` that is not a GTID
    /// position is an error (naming it): every decision about lost data rests on it.
    pub fn from_columns(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let text = |column: &str| {
            get(column)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let number = |column: &str| text(column).parse::<u64>().ok();
        let thread_error = |thread: &'static str| {
            let errno = text(&format!("Last_{thread}_Errno"));
            (!errno.is_empty() && errno != "0").then(|| ThreadError {
                thread,
                errno,
                message: text(&format!("Last_{thread}_Error")),
            })
        };
        let present = |column: &str| get(column).map(|v| v.trim().to_string());
        let yes_no = |column: &str| match present(column)?.as_str() {
            "Yes" => Some(true),
            "No" => Some(false),
            _ => None,
        };
        let channel = ChannelSettings {
            heartbeat_period: present("Slave_heartbeat_period")
                .and_then(|s| s.parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            connect_retry: present("Connect_Retry").and_then(|s| s.parse().ok()),
            retry_count: present("Master_Retry_Count").and_then(|s| s.parse().ok()),
            ssl_allowed: yes_no("Master_SSL_Allowed"),
            ssl_ca_file: present("Master_SSL_CA_File"),
            ssl_cert: present("Master_SSL_Cert"),
            ssl_key: present("Master_SSL_Key"),
            ssl_verify_server_cert: yes_no("Master_SSL_Verify_Server_Cert"),
        };
        let gtid_io_pos = GtidPosition::parse(&text("Gtid_IO_Pos"))
            .map_err(|e| format!("the replica's Gtid_IO_Pos: {e}"))?;
        Ok(Self {
            source_host: text("Master_Host"),
            source_port: text("Master_Port").parse().ok(),
            io_running: text("Slave_IO_Running"),
            sql_running: text("Slave_SQL_Running"),
            io_error: thread_error("IO"),
            sql_error: thread_error("SQL"),
            seconds_behind: number("Seconds_Behind_Master"),
            using_gtid: text("Using_Gtid"),
            gtid_io_pos,
            received_heartbeats: number("Slave_received_heartbeats").unwrap_or(0),
            heartbeat_period: text("Slave_heartbeat_period")
                .parse::<f64>()
                .ok()
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                .filter(|period| !period.is_zero()),
            channel,
        })
    }

    /// The IO thread is connected to the primary.
    pub fn io_connected(&self) -> bool {
        self.io_running == "Yes"
    }

    /// Both threads running and no SQL thread error: the replica follows the primary.
    pub fn replicating(&self) -> bool {
        self.io_connected() && self.sql_running == "Yes" && self.sql_error.is_none()
    }

    /// A thread's error that waiting cannot mend: the SQL thread stopped on it (a
    /// conflicting row), the IO thread gave up (`No`), or it retries in vain
    /// ([`FATAL_IO_ERRNOS`]). A network error while the IO thread is still connecting
    /// is not one: it may connect on its next try.
    pub fn fatal_error(&self) -> Option<&ThreadError> {
        if let Some(error) = &self.sql_error {
            return Some(error);
        }
        let error = self.io_error.as_ref()?;
        let given_up = self.io_running == "No";
        (given_up || FATAL_IO_ERRNOS.contains(&error.errno.as_str())).then_some(error)
    }

    /// A one-line summary for logs and the dry run.
    pub fn summary(&self) -> String {
        format!(
            "source {}:{}, IO thread {}, SQL thread {}, received {}, {} s behind",
            self.source_host,
            self.source_port
                .map_or(String::new(), |port| port.to_string()),
            self.io_running,
            self.sql_running,
            self.gtid_io_pos,
            self.seconds_behind
                .map_or("?".to_string(), |seconds| seconds.to_string())
        )
    }
}

/// A server's semi-synchronous replication sides, as it reports them: each `None` when
/// it does not (a server without the semi-sync variables, a reading that failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SemiSync {
    /// `rpl_semi_sync_master_enabled`.
    pub master_enabled: Option<bool>,
    /// `rpl_semi_sync_slave_enabled`.
    pub slave_enabled: Option<bool>,
    /// `Rpl_semi_sync_master_status`: the master side runs semi-synchronous now (OFF
    /// while enabled: it fell back to asynchronous, no replica acknowledging).
    pub master_active: Option<bool>,
}

impl SemiSync {
    /// A primary whose master side is on but runs asynchronous.
    pub fn fell_back(&self) -> bool {
        self.master_enabled == Some(true) && self.master_active == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A healthy replica's row as MariaDB 10.11 shows it (the columns we read, and some
    /// we do not, under their 10.11 names; text protocol, so every value is text).
    fn healthy() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("Connection_name", "primary"),
            ("Slave_IO_State", "Waiting for master to send event"),
            ("Master_Host", "primary.example"),
            ("Master_User", "repl"),
            ("Master_Port", "3306"),
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Last_Errno", "0"),
            ("Last_Error", ""),
            ("Seconds_Behind_Master", "0"),
            ("Last_IO_Errno", "0"),
            ("Last_IO_Error", ""),
            ("Last_SQL_Errno", "0"),
            ("Last_SQL_Error", ""),
            ("Using_Gtid", "Slave_Pos"),
            ("Gtid_IO_Pos", "0-1-42"),
            ("Slave_received_heartbeats", "17"),
            ("Slave_heartbeat_period", "5.000"),
            ("Gtid_Slave_Pos", "0-1-42"),
        ])
    }

    /// The row with `changes`; a `None` value is a NULL.
    fn row_with(changes: &[(&str, Option<&str>)]) -> ReplicaStatus {
        let mut row: HashMap<&str, Option<&str>> =
            healthy().into_iter().map(|(k, v)| (k, Some(v))).collect();
        row.extend(changes.iter().copied());
        ReplicaStatus::from_columns(|column| row.get(column).copied().flatten().map(String::from))
            .unwrap()
    }

    #[test]
    fn a_healthy_row_reads_into_every_field() {
        let status = row_with(&[]);
        assert_eq!(
            status,
            ReplicaStatus {
                source_host: "primary.example".into(),
                source_port: Some(3306),
                io_running: "Yes".into(),
                sql_running: "Yes".into(),
                io_error: None,
                sql_error: None,
                seconds_behind: Some(0),
                using_gtid: "Slave_Pos".into(),
                gtid_io_pos: GtidPosition::parse("0-1-42").unwrap(),
                received_heartbeats: 17,
                heartbeat_period: Some(Duration::from_secs(5)),
                channel: ChannelSettings {
                    heartbeat_period: Some(Duration::from_secs(5)),
                    ..ChannelSettings::default()
                },
            }
        );
        assert!(status.io_connected() && status.replicating());
        assert_eq!(
            status.summary(),
            "source primary.example:3306, IO thread Yes, SQL thread Yes, received 0-1-42, 0 s behind"
        );
    }

    #[test]
    fn thread_errors_are_read_with_their_number_and_text() {
        let status = row_with(&[
            ("Slave_IO_Running", Some("Connecting")),
            ("Last_IO_Errno", Some("2003")),
            ("Last_IO_Error", Some("error reconnecting to master")),
            ("Slave_SQL_Running", Some("No")),
            ("Last_SQL_Errno", Some("1062")),
            ("Last_SQL_Error", Some("Duplicate entry '1'")),
        ]);
        let io = status.io_error.as_ref().unwrap();
        assert_eq!(io.message, "error reconnecting to master");
        assert_eq!(
            io.to_string(),
            "IO thread error 2003: error reconnecting to master"
        );
        assert_eq!(
            status.sql_error.as_ref().unwrap().to_string(),
            "SQL thread error 1062: Duplicate entry '1'"
        );
        assert!(!status.io_connected() && !status.replicating());
        // The SQL thread's error alone stops it from replicating.
        let stopped_on_error = row_with(&[("Last_SQL_Errno", Some("1062"))]);
        assert!(stopped_on_error.io_connected() && !stopped_on_error.replicating());
    }

    #[test]
    fn nulls_and_numbers_that_do_not_parse_are_unknown_not_zero_and_never_panic() {
        let status = row_with(&[
            ("Master_Port", Some("port")),
            ("Seconds_Behind_Master", None),
            ("Slave_received_heartbeats", Some("many")),
            ("Slave_heartbeat_period", Some("-1")),
            ("Last_SQL_Errno", Some("x")),
            ("Last_SQL_Error", None),
        ]);
        assert_eq!(status.source_port, None);
        assert_eq!(status.seconds_behind, None);
        assert_eq!(status.received_heartbeats, 0);
        assert_eq!(status.heartbeat_period, None);
        // An errno we cannot read is still an error, not hidden.
        assert_eq!(
            status.sql_error.as_ref().unwrap().to_string(),
            "SQL thread error x: "
        );
        assert!(status.summary().ends_with("received 0-1-42, ? s behind"));
        for period in ["0.000", "", "NaN", "inf", "soon"] {
            let status = row_with(&[("Slave_heartbeat_period", Some(period))]);
            assert_eq!(status.heartbeat_period, None, "{period:?}");
        }
        let status = row_with(&[("Slave_heartbeat_period", Some("0.500"))]);
        assert_eq!(status.heartbeat_period, Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_row_without_our_columns_reads_as_nothing_known() {
        let status = ReplicaStatus::from_columns(|_| None).unwrap();
        assert_eq!(status, ReplicaStatus::default());
        assert!(!status.io_connected() && !status.replicating());
        assert_eq!(
            status.summary(),
            "source :, IO thread , SQL thread , received (empty), ? s behind"
        );
    }

    #[test]
    fn a_gtid_io_pos_that_is_not_a_position_is_an_error_naming_it() {
        let mut row: HashMap<&str, &str> = healthy();
        row.insert("Gtid_IO_Pos", "0-1-forty");
        let error = ReplicaStatus::from_columns(|column| row.get(column).map(|v| v.to_string()))
            .unwrap_err();
        assert!(error.contains("Gtid_IO_Pos"), "{error}");
        assert!(error.contains("0-1-forty"), "{error}");
    }

    #[test]
    fn only_errors_that_waiting_cannot_mend_are_fatal() {
        let error = |thread: &'static str, errno: &str| {
            Some(ThreadError {
                thread,
                errno: errno.into(),
                message: "m".into(),
            })
        };
        let running = ReplicaStatus {
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            ..ReplicaStatus::default()
        };
        assert!(running.fatal_error().is_none());
        let connecting = ReplicaStatus {
            io_running: "Connecting".into(),
            io_error: error("IO", "2003"),
            ..running.clone()
        };
        assert!(
            connecting.fatal_error().is_none(),
            "it may connect next time"
        );
        let denied = ReplicaStatus {
            io_error: error("IO", "1045"),
            ..connecting.clone()
        };
        assert_eq!(denied.fatal_error().unwrap().errno, "1045");
        let given_up = ReplicaStatus {
            io_running: "No".into(),
            ..connecting.clone()
        };
        assert!(given_up.fatal_error().is_some());
        let conflict = ReplicaStatus {
            sql_running: "No".into(),
            sql_error: error("SQL", "1062"),
            ..running
        };
        assert_eq!(conflict.fatal_error().unwrap().thread, "SQL");
    }
}

//! The replication channel as configuration: its settings (`[replication]`: heartbeat
//! period, connect retry, retry count, TLS), declared once; the one builder of the
//! `CHANGE MASTER` statement that applies them, which every `CHANGE MASTER` this
//! program sends goes through (`rejoin`'s `replicate`, the switchover's
//! `rejoin_peer`); and the pure comparison of the settings with what a replica reports
//! ([`drift`]).
//!
//! A promotion's `RESET SLAVE ALL` erases a channel's settings, so a `CHANGE MASTER`
//! that named only the source would leave the next channel on MariaDB's defaults (a
//! 30 s heartbeat, plain text): every statement built here sets every setting.
//!
//! Pure: no I/O. The statement is sent, and the observed values read, in `pair.rs` and
//! `replica.rs`.

use std::time::Duration;

use serde::Serialize;

use super::connect::Quoting;
use crate::config::tls::ChannelConfig;
use crate::secret::Secret;

/// The first MariaDB that takes `MASTER_RETRY_COUNT` in `CHANGE MASTER`; before it the
/// count is the server's start option `--master-retry-count`, for every channel.
pub const RETRY_COUNT_SINCE: (u16, u16) = (12, 0);

/// Where a replica replicates from, and as whom.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a Secret,
}

/// `CHANGE MASTER ['name'] TO …` for `source` with every setting of `channel`, its
/// literals written for a session that quotes as `quoting` says, for a server of
/// `version` (major, minor). MariaDB takes no placeholders in this statement, so every
/// value is a literal. The text holds the password: never log it, and never let a
/// server's error about it through (see [`super::connect::secret_statement_error`]).
pub fn change_master(
    connection_name: &str,
    source: &Source<'_>,
    channel: &ChannelConfig,
    quoting: Quoting,
    version: (u16, u16),
) -> String {
    let q = |text: &str| quoting.literal(text);
    let connection = if connection_name.is_empty() {
        String::new()
    } else {
        format!("{} ", q(connection_name))
    };
    let tls = &channel.tls;
    let retry_count = match channel.retry_count {
        Some(count) if version >= RETRY_COUNT_SINCE => format!(", MASTER_RETRY_COUNT = {count}"),
        _ => String::new(),
    };
    format!(
        "CHANGE MASTER {connection}TO MASTER_HOST = {host}, MASTER_PORT = {port}, MASTER_USER = {user}, \
         MASTER_PASSWORD = {password}, MASTER_USE_GTID = slave_pos, \
         MASTER_CONNECT_RETRY = {retry}, MASTER_HEARTBEAT_PERIOD = {heartbeat}{retry_count}, \
         MASTER_SSL = {ssl}, MASTER_SSL_CA = {ca}, MASTER_SSL_CERT = {cert}, MASTER_SSL_KEY = {key}, \
         MASTER_SSL_VERIFY_SERVER_CERT = {verify}",
        host = q(source.host),
        port = source.port,
        user = q(source.user),
        password = q(source.password.expose()),
        retry = channel.connect_retry.as_secs(),
        heartbeat = heartbeat_literal(channel.heartbeat_period),
        ssl = u8::from(tls.ssl()),
        ca = q(tls.ca()),
        cert = q(tls.cert()),
        key = q(tls.key()),
        verify = u8::from(tls.verify_server_cert()),
    )
}

/// What `change_master` could not apply on a server of `version`, in words; `None`
/// when it applies everything.
pub fn not_applied(channel: &ChannelConfig, version: (u16, u16)) -> Option<String> {
    let count = channel.retry_count?;
    (version < RETRY_COUNT_SINCE).then(|| {
        format!(
            "replication.retry_count ({count}) not applied: MariaDB {}.{} takes no MASTER_RETRY_COUNT (from {}.{} on); set master-retry-count in its my.cnf",
            version.0, version.1, RETRY_COUNT_SINCE.0, RETRY_COUNT_SINCE.1
        )
    })
}

/// A heartbeat period as MariaDB takes it: seconds, to the millisecond.
fn heartbeat_literal(period: Duration) -> String {
    let millis = period.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{}.{:03}", millis / 1000, millis % 1000)
    }
}

/// A channel's settings as a replica reports them (read by the core's `ReplicaStatus`).
pub use crate::replication::ChannelSettings as ObservedChannel;

/// One setting of a channel that is not what the config declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The config key, e.g. `replication.heartbeat_period`.
    pub setting: &'static str,
    /// What the config declares, as MariaDB shows it.
    pub configured: String,
    /// What the replica reports.
    pub observed: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the channel has {}, the config says {}",
            self.setting, self.observed, self.configured
        )
    }
}

/// Every setting of `channel` that `observed` contradicts, in the config's order. A
/// setting the replica does not report is not compared; the retry count only when the
/// config sets one.
pub fn drift(channel: &ChannelConfig, observed: &ObservedChannel) -> Vec<Drift> {
    let tls = &channel.tls;
    let yes_no = |b: bool| if b { "Yes" } else { "No" }.to_string();
    let path = |p: &str| {
        if p.is_empty() {
            "none".to_string()
        } else {
            p.to_string()
        }
    };
    let mut found = Vec::new();
    let mut compare = |setting, configured: String, observed: Option<String>| {
        if let Some(observed) = observed
            && observed != configured
        {
            found.push(Drift {
                setting,
                configured,
                observed,
            });
        }
    };
    // MariaDB keeps the period to the millisecond, and shows it with three decimals.
    let seconds = |d: Duration| format!("{:.3} s", d.as_millis() as f64 / 1000.0);
    compare(
        "replication.heartbeat_period",
        seconds(channel.heartbeat_period),
        observed.heartbeat_period.map(seconds),
    );
    compare(
        "replication.connect_retry",
        format!("{} s", channel.connect_retry.as_secs()),
        observed.connect_retry.map(|s| format!("{s} s")),
    );
    if let Some(count) = channel.retry_count {
        compare(
            "replication.retry_count",
            count.to_string(),
            observed.retry_count.map(|c| c.to_string()),
        );
    }
    compare(
        "replication.tls (MASTER_SSL)",
        yes_no(tls.ssl()),
        observed.ssl_allowed.map(yes_no),
    );
    compare(
        "replication.tls (MASTER_SSL_VERIFY_SERVER_CERT)",
        yes_no(tls.verify_server_cert()),
        observed.ssl_verify_server_cert.map(yes_no),
    );
    compare(
        "replication.tls_ca_file",
        path(tls.ca()),
        observed.ssl_ca_file.as_deref().map(path),
    );
    compare(
        "replication.tls_cert_file",
        path(tls.cert()),
        observed.ssl_cert.as_deref().map(path),
    );
    compare(
        "replication.tls_key_file",
        path(tls.key()),
        observed.ssl_key.as_deref().map(path),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::{ChannelTls, TlsMode};

    fn channel(mode: TlsMode) -> ChannelConfig {
        ChannelConfig {
            heartbeat_period: Duration::from_secs(5),
            connect_retry: Duration::from_secs(1),
            retry_count: None,
            semi_sync: false,
            tls: ChannelTls {
                mode,
                ca_file: Some("/etc/mysql/ssl/ca.pem".to_string()),
                cert_file: None,
                key_file: None,
            },
        }
    }

    fn source(password: &Secret) -> Source<'_> {
        Source {
            host: "db.example",
            port: 3307,
            user: "repl",
            password,
        }
    }

    #[test]
    fn the_statement_sets_every_setting_of_the_channel() {
        let password = Secret::inline("pw");
        let sql = change_master(
            "",
            &source(&password),
            &channel(TlsMode::VerifyIdentity),
            Quoting::BackslashEscapes,
            (10, 11),
        );
        assert_eq!(
            sql,
            "CHANGE MASTER TO MASTER_HOST = 'db.example', MASTER_PORT = 3307, MASTER_USER = 'repl', \
             MASTER_PASSWORD = 'pw', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, \
             MASTER_HEARTBEAT_PERIOD = 5, MASTER_SSL = 1, MASTER_SSL_CA = '/etc/mysql/ssl/ca.pem', \
             MASTER_SSL_CERT = '', MASTER_SSL_KEY = '', MASTER_SSL_VERIFY_SERVER_CERT = 1"
        );
        let named = change_master(
            "east",
            &source(&password),
            &channel(TlsMode::Disabled),
            Quoting::BackslashEscapes,
            (10, 11),
        );
        assert!(named.starts_with("CHANGE MASTER 'east' TO"), "{named}");
    }

    #[test]
    fn each_tls_mode_maps_to_mariadbs_switches() {
        let password = Secret::inline("pw");
        let sql = |mode| {
            change_master(
                "",
                &source(&password),
                &channel(mode),
                Quoting::BackslashEscapes,
                (10, 11),
            )
        };
        let tail = |mode| sql(mode).split_once("MASTER_SSL =").unwrap().1.to_string();
        assert_eq!(
            tail(TlsMode::Disabled),
            " 0, MASTER_SSL_CA = '', MASTER_SSL_CERT = '', MASTER_SSL_KEY = '', MASTER_SSL_VERIFY_SERVER_CERT = 0"
        );
        assert_eq!(
            tail(TlsMode::Required),
            " 1, MASTER_SSL_CA = '', MASTER_SSL_CERT = '', MASTER_SSL_KEY = '', MASTER_SSL_VERIFY_SERVER_CERT = 0"
        );
        assert_eq!(
            tail(TlsMode::VerifyCa),
            " 1, MASTER_SSL_CA = '/etc/mysql/ssl/ca.pem', MASTER_SSL_CERT = '', MASTER_SSL_KEY = '', MASTER_SSL_VERIFY_SERVER_CERT = 0"
        );
    }

    #[test]
    fn a_password_with_quotes_and_backslashes_is_quoted_for_the_session() {
        let password = Secret::inline(r"it's\x");
        let c = channel(TlsMode::Disabled);
        let escapes = change_master(
            "",
            &source(&password),
            &c,
            Quoting::BackslashEscapes,
            (10, 11),
        );
        assert!(
            escapes.contains(r"MASTER_PASSWORD = 'it''s\\x'"),
            "{escapes}"
        );
        let plain = change_master(
            "",
            &source(&password),
            &c,
            Quoting::NoBackslashEscapes,
            (10, 11),
        );
        assert!(plain.contains(r"MASTER_PASSWORD = 'it''s\x'"), "{plain}");
    }

    #[test]
    fn the_retry_count_goes_only_to_a_server_that_takes_it() {
        let password = Secret::inline("pw");
        let mut c = channel(TlsMode::Disabled);
        c.retry_count = Some(86400);
        let old = change_master(
            "",
            &source(&password),
            &c,
            Quoting::BackslashEscapes,
            (10, 11),
        );
        assert!(!old.contains("MASTER_RETRY_COUNT"), "{old}");
        assert!(
            not_applied(&c, (10, 11))
                .unwrap()
                .contains("master-retry-count")
        );
        let new = change_master(
            "",
            &source(&password),
            &c,
            Quoting::BackslashEscapes,
            (12, 0),
        );
        assert!(new.contains("MASTER_RETRY_COUNT = 86400"), "{new}");
        assert_eq!(not_applied(&c, (12, 0)), None);
        c.retry_count = None;
        assert_eq!(not_applied(&c, (10, 11)), None);
    }

    #[test]
    fn a_heartbeat_keeps_its_milliseconds() {
        assert_eq!(heartbeat_literal(Duration::from_secs(5)), "5");
        assert_eq!(heartbeat_literal(Duration::from_millis(1500)), "1.500");
        assert_eq!(heartbeat_literal(Duration::from_millis(250)), "0.250");
    }

    /// What a replica set up by [`change_master`] reports.
    fn as_applied(c: &ChannelConfig) -> ObservedChannel {
        ObservedChannel {
            heartbeat_period: Some(c.heartbeat_period),
            connect_retry: Some(c.connect_retry.as_secs()),
            retry_count: None,
            ssl_allowed: Some(c.tls.ssl()),
            ssl_ca_file: Some(c.tls.ca().to_string()),
            ssl_cert: Some(String::new()),
            ssl_key: Some(String::new()),
            ssl_verify_server_cert: Some(c.tls.verify_server_cert()),
        }
    }

    #[test]
    fn a_channel_as_applied_has_no_drift() {
        for mode in [
            TlsMode::Disabled,
            TlsMode::Required,
            TlsMode::VerifyCa,
            TlsMode::VerifyIdentity,
        ] {
            let c = channel(mode);
            assert_eq!(drift(&c, &as_applied(&c)), vec![], "{mode:?}");
        }
        let c = channel(TlsMode::VerifyIdentity);
        assert_eq!(
            drift(&c, &ObservedChannel::default()),
            vec![],
            "nothing reported"
        );
    }

    /// The way a round trip used to leave it: MariaDB's 30 s heartbeat, 60 s retry,
    /// plain text.
    #[test]
    fn a_channel_on_mariadbs_defaults_drifts_in_every_setting_it_lost() {
        let c = channel(TlsMode::VerifyIdentity);
        let observed = ObservedChannel {
            heartbeat_period: Some(Duration::from_secs(30)),
            connect_retry: Some(60),
            retry_count: Some(100000),
            ssl_allowed: Some(false),
            ssl_ca_file: Some(String::new()),
            ssl_cert: Some(String::new()),
            ssl_key: Some(String::new()),
            ssl_verify_server_cert: Some(false),
        };
        let found = drift(&c, &observed);
        let settings: Vec<&str> = found.iter().map(|d| d.setting).collect();
        assert_eq!(
            settings,
            [
                "replication.heartbeat_period",
                "replication.connect_retry",
                "replication.tls (MASTER_SSL)",
                "replication.tls (MASTER_SSL_VERIFY_SERVER_CERT)",
                "replication.tls_ca_file",
            ]
        );
        assert_eq!(
            found[0].to_string(),
            "replication.heartbeat_period: the channel has 30.000 s, the config says 5.000 s"
        );
        assert_eq!(found[4].observed, "none");
    }

    #[test]
    fn the_retry_count_is_compared_only_when_configured() {
        let mut c = channel(TlsMode::Disabled);
        let mut observed = as_applied(&c);
        observed.retry_count = Some(100000);
        assert_eq!(drift(&c, &observed), vec![]);
        c.retry_count = Some(10);
        assert_eq!(drift(&c, &observed)[0].setting, "replication.retry_count");
    }
}

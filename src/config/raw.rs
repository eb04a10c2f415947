//! The raw layer: the TOML file as written, before validation. Every key the file may
//! leave out is an `Option` (or an empty list), so a default is applied in one place,
//! by the converters; `deny_unknown_fields` makes a typo an error, not an ignored key.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub node: Node,
    pub probe: Probe,
    pub replica: Replica,
    #[serde(default)]
    pub apps: Apps,
    pub dns: Dns,
    pub telegram: Option<Telegram>,
    #[serde(default)]
    pub alerts: Alerts,
    #[serde(default)]
    pub promotion: Promotion,
    #[serde(default)]
    pub smoke: Smoke,
    /// `[peer]`: the other host of the pair; absent on a standby-only setup.
    pub peer: Option<Peer>,
    /// `[replication]`: the replication channel; every key has a default.
    #[serde(default)]
    pub replication: Replication,
    pub metrics: Option<Metrics>,
}

/// The TLS keys of a table that names a MariaDB server (`tls`, `tls_ca_file`,
/// `tls_cert_file`, `tls_key_file`), as the converters read them. serde cannot flatten
/// them into a table that denies unknown keys, so each table spells them out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tls<'a> {
    pub mode: Option<&'a str>,
    pub ca_file: Option<&'a str>,
    pub cert_file: Option<&'a str>,
    pub key_file: Option<&'a str>,
}

/// The TLS keys of each table that has them.
macro_rules! tls_keys {
    ($($table:ty),*) => {$(
        impl $table {
            pub fn tls_keys(&self) -> Tls<'_> {
                Tls {
                    mode: self.tls.as_deref(),
                    ca_file: self.tls_ca_file.as_deref(),
                    cert_file: self.tls_cert_file.as_deref(),
                    key_file: self.tls_key_file.as_deref(),
                }
            }
        }
    )*};
}
tls_keys!(Replica, Peer, Replication);

/// `[replication]`: the replication channel every `CHANGE MASTER` of this program sets up.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    pub heartbeat_period: Option<String>,
    pub connect_retry: Option<String>,
    pub retry_count: Option<i64>,
    pub semi_sync: Option<bool>,
    pub tls: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: Option<String>,
    pub host: String,
    pub port: Option<i64>,
    pub user: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub replication_user: String,
    pub replication_password: Option<String>,
    pub replication_password_file: Option<String>,
    pub catch_up_timeout: Option<String>,
    pub switchover_timeout: Option<String>,
    pub write_drain_timeout: Option<String>,
    pub fence_when_not_serving: Option<bool>,
    pub tls: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    pub fence_command: Option<String>,
    pub fence_timeout: Option<String>,
    pub require_fence: Option<bool>,
    pub pre_promote: Option<String>,
    pub post_promote: Option<String>,
    pub on_failure: Option<String>,
    pub hook_timeout: Option<String>,
    pub split_brain_alert_every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: Option<String>,
    pub state_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub interval: Option<String>,
    pub suspect_interval: Option<String>,
    pub failures_before_promotion: Option<i64>,
    pub timeout: Option<String>,
    pub fail_when: Option<failover_watchdog_core::report::FailWhen>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub self_checks: Vec<Check>,
    pub confirm_with_replication: Option<bool>,
    pub replication_silence: Option<String>,
    #[serde(default)]
    pub witnesses: Vec<Witness>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    pub name: Option<String>,
    pub url: String,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    Http {
        url: String,
        expect_status: Option<i64>,
        expect_body: Option<String>,
    },
    Tcp {
        address: String,
    },
    Mysql {
        host: String,
        port: Option<i64>,
        user: String,
        password: Option<String>,
        password_file: Option<String>,
        tls: Option<String>,
        tls_ca_file: Option<String>,
        tls_cert_file: Option<String>,
        tls_key_file: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub user: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub connection_name: Option<String>,
    pub apply_timeout: Option<String>,
    pub reset_replica: Option<bool>,
    pub max_lag: Option<String>,
    pub connect_address: Option<String>,
    pub tls: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apps {
    #[serde(default)]
    pub units: Vec<String>,
    pub start_timeout: Option<String>,
    pub stop_when_demoted: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    pub provider: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<String>,
    pub api_base: Option<String>,
    pub zone_id: Option<String>,
    pub update_timeout: Option<String>,
    #[serde(default)]
    pub records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: Option<String>,
    pub content: String,
    pub zone_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telegram {
    pub bot_token: Option<String>,
    pub bot_token_file: Option<String>,
    pub chat_id: ChatId,
    pub api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    pub check_timeout: Option<String>,
    pub max_lag: Option<String>,
    #[serde(default)]
    pub sync_units: Vec<String>,
    #[serde(default)]
    pub build_paths: Vec<String>,
    pub build_max_age: Option<String>,
    pub trial_boot: Option<Vec<String>>,
    pub trial_boot_timeout: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// `[alerts]`: the alert channels beside Telegram.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// One `[[alerts.webhooks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: Option<String>,
    pub format: String,
    pub token_file: Option<String>,
    pub name: Option<String>,
    pub timeout: Option<String>,
}

/// Telegram chat ids are numbers, but people write them both ways.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Number(i64),
    Text(String),
}

/// `[metrics]` (the standby's and the witness's): present only to serve metrics, so
/// `listen` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub listen: String,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub max_connections_per_client: Option<i64>,
    pub write_timeout: Option<String>,
}

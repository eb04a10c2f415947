//! The configuration: read in two stages, the way the SPEC describes it.
//!
//! 1. [`raw`]: serde structs that mirror the TOML file exactly, with
//!    `deny_unknown_fields`, so a typo is an error and not a silently ignored key.
//! 2. [`Config::parse`]: validation into the types the program uses (durations parsed,
//!    URLs parsed, secrets read from their files), with an error that names the file,
//!    the key and the problem.
//!
//! This file holds the validated types and [`Config::parse`], which hands each table to
//! its converter in `tables.rs`; the checks of single values (durations, ports,
//! secrets) are the `Validator`'s in `validate.rs`, and every default value is in
//! `defaults.rs`. Reading the file is split from parsing it ([`Config::load`] vs
//! [`Config::parse`], `file.rs`) so parsing is unit-tested on strings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::secret::Secret;
pub use error::ConfigError;
use file::{parse_raw, read_config_file, world_readable_warning};
use ser::ser_duration;
pub use tls::{
    ChannelConfig, ChannelTls, ClientCertificate, PemFile, TlsConfig, TlsMode, is_loopback,
};
use validate::Validator;
pub use validate::{Address, TlsFiles};

mod error;
pub mod raw;
pub mod witness;

pub(crate) mod defaults;
mod file;
mod ser;
mod tables;
pub mod tls;
mod validate;

#[cfg(test)]
mod tests;

/// Where the config lives when neither `--config` nor `$FAILOVER_WATCHDOG_CONFIG` say.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/failover-watchdog/config.toml";

/// The validated configuration the program runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this was read from (named in errors and `check-config`).
    pub path: PathBuf,
    pub node: NodeConfig,
    pub probe: ProbeConfig,
    pub replica: ReplicaConfig,
    pub apps: AppsConfig,
    pub dns: DnsConfig,
    /// `None` when there is no `[telegram]` table: alerts then only go to the log.
    pub telegram: Option<TelegramConfig>,
    /// `[[alerts.webhooks]]`: alert channels beside Telegram; empty when none.
    pub webhooks: Vec<WebhookConfig>,
    pub promotion: PromotionConfig,
    /// `[smoke]`: the readiness checks of `smoke-test`; every key is optional.
    pub smoke: SmokeConfig,
    /// `[peer]`: the other host of the pair, for roles, `rejoin` and `switchover`;
    /// `None` on a standby-only setup (today's behaviour, no roles acted on).
    pub peer: Option<PeerConfig>,
    /// `[replication]`: the replication channel's settings, applied by every `CHANGE
    /// MASTER` this program sends; every key has a default.
    pub replication: ChannelConfig,
    /// `[metrics]`: the Prometheus endpoint; `None` (no table) serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// Things that are allowed but unwise (inline secrets, a world-readable file).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeConfig {
    /// Shown in every alert.
    pub name: String,
    /// Holds the promotion journal, the lock and the live state.
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeConfig {
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// The cadence of rounds while the primary is in doubt (at most `interval`; equal to
    /// it, the cadence never changes).
    #[serde(serialize_with = "ser_duration")]
    pub suspect_interval: Duration,
    pub failures_before_promotion: u32,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub fail_when: FailWhen,
    pub checks: Vec<CheckConfig>,
    /// Targets that are not the primary: when one fails, the round is inconclusive.
    pub self_checks: Vec<CheckConfig>,
    /// A failed round counts only when the replica no longer hears from the primary.
    pub confirm_with_replication: bool,
    /// How long without a transaction or heartbeat means the replica hears nothing.
    /// `None` (the default): derived each round from the replica's own heartbeat period
    /// ([`crate::verdict::silence_window`]).
    #[serde(serialize_with = "ser_silence")]
    pub replication_silence: Option<Duration>,
    /// `[[probe.witnesses]]`: other hosts asked, on a failed round, whether they reach
    /// the primary; automatic promotion needs a majority of observers.
    pub witnesses: Vec<WitnessRef>,
}

impl ProbeConfig {
    /// What the heartbeat rule (the daemon's warning, the smoke test's check) needs.
    pub fn heartbeat_rule(&self) -> crate::verdict::HeartbeatRule {
        crate::verdict::HeartbeatRule {
            configured: self.replication_silence,
            // The rounds that reach the threshold run at the suspect cadence.
            interval: self.suspect_interval,
            failures_before_promotion: self.failures_before_promotion,
        }
    }
}

/// One `[[probe.witnesses]]`: a `failover-watchdog witness` on another host.
#[derive(Debug, Clone, Serialize)]
pub struct WitnessRef {
    /// Shown in `status`, logs and alerts (default: the URL's host and port).
    pub name: String,
    /// The witness's base URL; the request goes to `<url>/v1/primary`.
    pub url: Url,
    /// Sent as `Authorization: Bearer`.
    pub token: Secret,
    /// How long one request may take, retries included.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

pub use failover_watchdog_core::report::FailWhen;

/// One check of the primary.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckConfig {
    Http {
        url: Url,
        /// `None`: any 2xx.
        expect_status: Option<u16>,
        /// When set, the body must contain this text.
        expect_body: Option<String>,
    },
    Tcp {
        address: String,
    },
    Mysql {
        host: String,
        port: u16,
        user: String,
        password: Secret,
        /// How the check (and the fence, for the first `mysql` check) reaches it.
        #[serde(flatten)]
        tls: TlsConfig,
    },
}

impl CheckConfig {
    /// The check's type as the config and `status` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckConfig::Http { .. } => "http",
            CheckConfig::Tcp { .. } => "tcp",
            CheckConfig::Mysql { .. } => "mysql",
        }
    }

    /// What the check talks to, for logs and alerts (never a secret).
    pub fn target(&self) -> String {
        match self {
            CheckConfig::Http { url, .. } => url.to_string(),
            CheckConfig::Tcp { address } => address.clone(),
            CheckConfig::Mysql {
                host, port, user, ..
            } => format!("{user}@{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub connection_name: String,
    #[serde(serialize_with = "ser_duration")]
    pub apply_timeout: Duration,
    pub reset_replica: bool,
    /// The lag guard: an automatic promotion is held when the replica was further behind
    /// than this (or not replicating) when last seen with a healthy primary.
    #[serde(serialize_with = "ser_duration")]
    pub max_lag: Duration,
    /// This host's database as the peer reaches it (`connect_address`, default
    /// `host:port`): where `switchover` points the old primary's replication.
    pub connect_address: Address,
    /// How this host reaches its own database (loopback: `disabled` by default).
    #[serde(flatten)]
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppsConfig {
    pub units: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub start_timeout: Duration,
    /// With `[peer]`: a host that finds itself a standby while its units run (it was
    /// just demoted) stops them.
    pub stop_when_demoted: bool,
}

/// `[peer]`: the other host of a pair. Both hosts run the same binary with mirrored
/// configs, each naming the other here, so after a switchover nothing is edited.
#[derive(Debug, Clone, Serialize)]
pub struct PeerConfig {
    /// Shown in alerts and `status` (default: `host:port`).
    pub name: String,
    /// The peer's MariaDB, as this host reaches it and as this host's replication names
    /// it (`CHANGE MASTER TO MASTER_HOST`, `MASTER_PORT`): a host replicates "from the
    /// peer" when its replication source is exactly this host and port.
    pub host: String,
    pub port: u16,
    /// An account on the peer's database that reads its role and replication and, for
    /// `switchover`, fences it and points its replication here.
    pub user: String,
    pub password: Secret,
    /// The account this host's replication uses on the peer (`MASTER_USER`).
    pub replication_user: String,
    pub replication_password: Secret,
    /// `rejoin`: the longest wait for this host to catch up once it replicates.
    #[serde(serialize_with = "ser_duration")]
    pub catch_up_timeout: Duration,
    /// `switchover`: the longest wait for this host to apply the fenced primary's final
    /// position; past it the fence is undone and nothing else changed.
    #[serde(serialize_with = "ser_duration")]
    pub switchover_timeout: Duration,
    /// `switchover`: how long the fenced primary's running writes may finish before
    /// its remaining client connections are ended.
    #[serde(serialize_with = "ser_duration")]
    pub write_drain_timeout: Duration,
    /// A host whose database is writable while every DNS record points elsewhere (an
    /// old primary back after a failover) makes itself read-only and stops its units.
    pub fence_when_not_serving: bool,
    /// How this host reaches the peer's database.
    #[serde(flatten)]
    pub tls: TlsConfig,
}

impl PeerConfig {
    /// Whether a replication source (`Master_Host`, `Master_Port`) is this peer.
    pub fn is_source(&self, host: &str, port: Option<u16>) -> bool {
        self.source().is(host, port)
    }

    /// Where this host's replication points while it is the peer's standby.
    pub fn source(&self) -> crate::role::Source<'_> {
        crate::role::Source {
            host: &self.host,
            port: self.port,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsConfig {
    pub provider: String,
    pub api_token: Secret,
    pub api_base: Url,
    /// Longest time the `update_dns` step may take, retries included.
    #[serde(serialize_with = "ser_duration")]
    pub update_timeout: Duration,
    pub records: Vec<DnsRecordConfig>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DnsRecordConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    /// The address the record must point to after promotion.
    pub content: String,
    /// The zone, the record's own override or `[dns] zone_id`.
    pub zone_id: String,
}

impl DnsRecordConfig {
    /// Whether `content`, as Cloudflare shows it, is what this record must point to:
    /// addresses compare as addresses (`2001:db8::1` is `2001:0db8:0:0::1`), host names
    /// without case or a trailing dot. A record already right is not written again, and
    /// one read back in another spelling is not a failed step.
    pub fn points_at(&self, content: &str) -> bool {
        match self.record_type.as_str() {
            "A" | "AAAA" => match (
                self.content.parse::<std::net::IpAddr>(),
                content.parse::<std::net::IpAddr>(),
            ) {
                (Ok(want), Ok(have)) => want == have,
                _ => self.content == content,
            },
            "CNAME" => {
                let bare = |name: &str| name.trim_end_matches('.').to_ascii_lowercase();
                bare(&self.content) == bare(content)
            }
            _ => self.content == content,
        }
    }
}

/// `[promotion]`: fencing the old primary, hooks, the split-brain watch.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionConfig {
    /// Run (with `sh -c`) before `make_writable`, e.g. a provider API call that powers
    /// the old primary off. Must be safe to run twice.
    pub fence_command: Option<String>,
    #[serde(serialize_with = "ser_duration")]
    pub fence_timeout: Duration,
    /// Halt the promotion when fencing fails (default: alert and go on).
    pub require_fence: bool,
    /// Run before a new promotion's first step; a non-zero exit stops the promotion.
    pub pre_promote: Option<String>,
    /// Run once a promotion has finished.
    pub post_promote: Option<String>,
    /// Run when a promotion halts.
    pub on_failure: Option<String>,
    #[serde(serialize_with = "ser_duration")]
    pub hook_timeout: Duration,
    /// After promotion, how often to repeat the alert while the old primary answers.
    #[serde(serialize_with = "ser_duration")]
    pub split_brain_alert_every: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct TelegramConfig {
    pub bot_token: Secret,
    pub chat_id: String,
    pub api_url: Url,
}

/// One `[[alerts.webhooks]]` entry: an alert channel beside Telegram. Shown (by
/// `check-config`) without what may be a credential: a Slack webhook's path is its
/// secret, and a query may hold a token.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Names the channel in logs, errors and delivery counts; unique. Defaults to the
    /// URL's host.
    pub name: String,
    pub url: Url,
    pub format: WebhookFormat,
    /// `token_file`: sent as `Authorization: Bearer`, except for `pagerduty`, where it
    /// is the routing key in the body (and required).
    pub token: Option<Secret>,
    /// One attempt's time limit.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// The URL as it may be shown: a Slack webhook's path and any query redacted.
    pub fn shown_url(&self) -> String {
        let mut url = self.url.clone();
        if url.query().is_some() {
            url.set_query(Some("[redacted]"));
        }
        if self.format == WebhookFormat::Slack {
            url.set_path("/[redacted]");
        }
        let _ = url.set_password(None);
        url.to_string()
    }
}

impl Serialize for WebhookConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            name: &'a str,
            url: String,
            format: WebhookFormat,
            #[serde(skip_serializing_if = "Option::is_none")]
            token: Option<&'a Secret>,
            #[serde(serialize_with = "ser_duration")]
            timeout: Duration,
        }
        Shown {
            name: &self.name,
            url: self.shown_url(),
            format: self.format,
            token: self.token.as_ref(),
            timeout: self.timeout,
        }
        .serialize(serializer)
    }
}

/// The body a webhook is sent: see `alert::webhook` for each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Json,
    Slack,
    Alertmanager,
    Pagerduty,
}

/// `[metrics]` (the standby's and the witness's): where `GET /metrics` is served for
/// Prometheus. Opt-in: without the table there is no listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsConfig {
    /// An IP address and port; port 0 lets the kernel pick one (logged at start).
    pub listen: std::net::SocketAddr,
    /// `token`/`token_file`: when set, a scrape must send it as `Authorization: Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// `tls_cert_file` and `tls_key_file`: HTTPS instead of HTTP.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Connections one client (an IP address, an IPv6 /64) may hold before its stalest
    /// is dropped for a new one.
    pub max_connections_per_client: u32,
    /// How long a client may take to read an answer before its connection is dropped.
    #[serde(serialize_with = "ser_duration")]
    pub write_timeout: Duration,
}

/// `[smoke]`: the standby's readiness checks (`smoke-test`). Every key is optional; a
/// check with nothing configured is skipped, never passed.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeConfig {
    /// Each check's time limit, except the trial boot's.
    #[serde(serialize_with = "ser_duration")]
    pub check_timeout: Duration,
    /// The replication check fails when the replica is further behind than this.
    #[serde(serialize_with = "ser_duration")]
    pub max_lag: Duration,
    /// Units that keep the standby's files in sync (lsyncd); each must be active.
    pub sync_units: Vec<String>,
    /// The application's build on the standby; each must exist.
    pub build_paths: Vec<PathBuf>,
    /// When set, each build path's newest file must be younger than this.
    #[serde(
        serialize_with = "ser_optional_days",
        skip_serializing_if = "Option::is_none"
    )]
    pub build_max_age: Option<Duration>,
    /// A command (program and arguments, no shell) that boots the application in a
    /// check mode and exits; it must exit 0 within `trial_boot_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_boot: Option<Vec<String>>,
    #[serde(serialize_with = "ser_duration")]
    pub trial_boot_timeout: Duration,
    /// Each must answer with a 2xx or 3xx status (redirects are not followed).
    pub urls: Vec<Url>,
}

fn ser_silence<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_str(defaults::REPLICATION_SILENCE_DERIVED),
    }
}

fn ser_optional_days<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_days(*d)),
        None => s.serialize_none(),
    }
}

pub use failover_watchdog_core::report::format_days;

impl Config {
    /// What the decision core needs of the config.
    pub fn decider_settings(&self) -> crate::decide::Settings {
        crate::decide::Settings {
            failures_before_promotion: self.probe.failures_before_promotion,
            interval: self.probe.interval,
            suspect_interval: self.probe.suspect_interval,
            timeout: self.probe.timeout,
            witness_timeout: self
                .probe
                .witnesses
                .iter()
                .map(|w| w.timeout)
                .max()
                .unwrap_or_default(),
            max_lag: self.replica.max_lag,
            split_brain_alert_every: self.promotion.split_brain_alert_every,
            confirm_with_replication: self.probe.confirm_with_replication,
            replication_silence: self.probe.replication_silence,
            witnesses: !self.probe.witnesses.is_empty(),
            stop_when_demoted: self.apps.stop_when_demoted,
            units: self.apps.units.clone(),
            peer_name: self.peer.as_ref().map(|p| p.name.clone()),
            fence_when_not_serving: self.peer.as_ref().is_some_and(|p| p.fence_when_not_serving),
        }
    }
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_file(path)?;
        let mut config = Config::parse(&text, path)?;
        if let Some(warning) = world_readable_warning(path, &config.secrets()) {
            config.warnings.push(warning);
        }
        Ok(config)
    }

    /// Parses and validates `text`, read from `file` (named in errors; secret files with a
    /// relative path are looked up beside it). One converter per table, in the file's
    /// order; a table that depends on another is given what it needs.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: raw::File = parse_raw(text, file)?;
        let mut v = Validator::new(file);
        let node = v.node(&raw.node)?;
        let probe = v.probe(&raw.probe)?;
        let replica = v.replica(&raw.replica)?;
        let apps = v.apps(&raw.apps)?;
        let dns = v.dns(&raw.dns)?;
        let telegram = v.telegram(raw.telegram.as_ref())?;
        let webhooks = v.webhooks(&raw.alerts, telegram.is_some())?;
        let smoke = v.smoke(&raw.smoke, replica.max_lag)?;
        let promotion = v.promotion(&raw.promotion, &probe.checks)?;
        let peer = v.peer(raw.peer.as_ref(), &replica)?;
        let replication = v.replication(&raw.replication, peer.as_ref(), &probe)?;
        let metrics = v.metrics(raw.metrics.as_ref())?;
        Ok(Config {
            path: file.to_path_buf(),
            node,
            probe,
            replica,
            apps,
            dns,
            telegram,
            webhooks,
            promotion,
            smoke,
            peer,
            replication,
            metrics,
            warnings: v.into_warnings(),
        })
    }

    /// Where the state files live.
    pub fn state_dir(&self) -> &Path {
        &self.node.state_dir
    }

    /// Every secret in the config.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = vec![&self.replica.password, &self.dns.api_token];
        secrets.extend(self.telegram.iter().map(|t| &t.bot_token));
        secrets.extend(self.webhooks.iter().filter_map(|w| w.token.as_ref()));
        secrets.extend(self.probe.witnesses.iter().map(|w| &w.token));
        secrets.extend(check_passwords(&self.probe.checks));
        if let Some(peer) = &self.peer {
            secrets.extend([&peer.password, &peer.replication_password]);
        }
        secrets.extend(self.metrics.iter().filter_map(|m| m.token.as_ref()));
        secrets
    }

    /// The first `mysql` check: the account that reads the primary, and fences it, and
    /// how it reaches it.
    pub fn primary_database(&self) -> Option<(&str, u16, &str, &Secret, &TlsConfig)> {
        self.probe.checks.iter().find_map(|check| match check {
            CheckConfig::Mysql {
                host,
                port,
                user,
                password,
                tls,
            } => Some((host.as_str(), *port, user.as_str(), password, tls)),
            _ => None,
        })
    }
}

/// The passwords of the `mysql` checks among `checks`.
fn check_passwords(checks: &[CheckConfig]) -> impl Iterator<Item = &Secret> {
    checks.iter().filter_map(|check| match check {
        CheckConfig::Mysql { password, .. } => Some(password),
        _ => None,
    })
}

//! The configuration: read in two stages, the way the SPEC describes it.
//!
//! 1. [`raw`]: serde structs that mirror the TOML file exactly, with
//!    `deny_unknown_fields`, so a typo is an error and not a silently ignored key.
//! 2. [`Config::parse`]: validation into the types the program uses (durations parsed,
//!    URLs parsed, secrets read from their files), with an error that names the file,
//!    the key and the problem.
//!
//! Reading the file is split from parsing it ([`Config::load`] vs [`Config::parse`]) so
//! parsing is unit-tested on strings.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::secret::Secret;

/// Where the config lives when neither `--config` nor `$FAILOVER_WATCHDOG_CONFIG` say.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/failover-watchdog/config.toml";

/// A configuration error: names the file, the key (or line and column) and the problem.
/// The binary maps it to exit code 78 (EX_CONFIG).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {location}{problem}", file = file.display(), location = location_prefix(key, line_col))]
pub struct ConfigError {
    /// The config file (or secret file) at fault.
    pub file: PathBuf,
    /// The dotted key, such as `probe.checks[1].url`, when known.
    pub key: Option<String>,
    /// Line and column (1-based) in the file, when known.
    pub line_col: Option<(usize, usize)>,
    /// What is wrong.
    pub problem: String,
}

fn location_prefix(key: &Option<String>, line_col: &Option<(usize, usize)>) -> String {
    let mut out = String::new();
    if let Some((line, col)) = line_col {
        out.push_str(&format!("line {line}, column {col}: "));
    }
    if let Some(key) = key {
        out.push_str(&format!("{key}: "));
    }
    out
}

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
    pub promotion: PromotionConfig,
    /// `[smoke]`: the readiness checks of `smoke-test`; every key is optional.
    pub smoke: SmokeConfig,
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
    /// `None` (the default): three of the replica's own heartbeat periods, as read each
    /// round ([`crate::verdict::silence_window`]).
    #[serde(serialize_with = "ser_silence")]
    pub replication_silence: Option<Duration>,
    /// `[[probe.witnesses]]`: other hosts asked, on a failed round, whether they reach
    /// the primary; automatic promotion needs a majority of observers.
    pub witnesses: Vec<WitnessRef>,
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

/// When a probe round counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailWhen {
    /// A round fails when any check fails.
    Any,
    /// A round fails only when every check fails.
    All,
}

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
}

#[derive(Debug, Clone, Serialize)]
pub struct AppsConfig {
    pub units: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub start_timeout: Duration,
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

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_silence<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_str("3 heartbeat periods of the replica (derived)"),
    }
}

fn ser_optional_days<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_days(*d)),
        None => s.serialize_none(),
    }
}

/// A long duration for people, in days from one day up: humantime's months (30.44
/// days) turn "35d" into "1month 4days 13h 26m 24s".
pub fn format_days(d: Duration) -> String {
    const DAY: u64 = 86400;
    let (days, rest) = (
        d.as_secs() / DAY,
        d - Duration::from_secs(d.as_secs() / DAY * DAY),
    );
    match (days, rest.is_zero()) {
        (0, _) => humantime::format_duration(d).to_string(),
        (1, true) => "1day".to_string(),
        (days, true) => format!("{days}days"),
        (days, false) => format!("{days}days {}", humantime::format_duration(rest)),
    }
}

/// The raw layer: the TOML file as written, with defaults, before validation.
pub mod raw {
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
        pub promotion: Promotion,
        #[serde(default)]
        pub smoke: Smoke,
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
        pub failures_before_promotion: Option<i64>,
        pub timeout: Option<String>,
        pub fail_when: Option<super::FailWhen>,
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
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Apps {
        #[serde(default)]
        pub units: Vec<String>,
        pub start_timeout: Option<String>,
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

    /// Telegram chat ids are numbers, but people write them both ways.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum ChatId {
        Number(i64),
        Text(String),
    }
}

/// Validation in progress: remembers the file, collects warnings.
struct Validator<'a> {
    file: &'a Path,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: Some(key.to_string()),
            line_col: None,
            problem: problem.into(),
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let text = value.unwrap_or(default);
        let parsed = humantime::parse_duration(text).map_err(|e| {
            self.error(
                key,
                format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"5m\""),
            )
        })?;
        if parsed.is_zero() {
            return Err(self.error(key, "must be longer than zero"));
        }
        Ok(parsed)
    }

    fn port(&self, key: &str, value: Option<i64>, default: u16) -> Result<u16, ConfigError> {
        match value {
            None => Ok(default),
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| self.error(key, format!("{p} is not a TCP port (1-65535)"))),
        }
    }

    fn url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text)
            .map_err(|e| self.error(key, format!("{text:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.error(key, format!("{text:?} must be an http:// or https:// URL")));
        }
        Ok(url)
    }

    fn non_empty(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        Ok(trimmed.to_string())
    }

    /// A systemd unit name, as `systemctl` takes it (never an option).
    fn unit_name(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let unit = self.non_empty(key, text)?;
        if unit.starts_with('-') || unit.contains(char::is_whitespace) {
            return Err(self.error(key, format!("{unit:?} is not a unit name")));
        }
        Ok(unit)
    }

    /// A secret given as `key` (inline) or `key_file`; exactly one of them.
    fn secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
    ) -> Result<Secret, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(self.error(key, format!("give either {key} or {key}_file, not both")))
            }
            (None, None) => Err(self.error(
                key,
                format!("missing: give {key}_file (a file holding it) or {key}"),
            )),
            (Some(value), None) => {
                if value.is_empty() {
                    return Err(self.error(key, "must not be empty"));
                }
                self.warnings.push(format!(
                    "{}: {key} is written inline; prefer {key}_file with a file only the service can read",
                    self.file.display()
                ));
                Ok(Secret::inline(value))
            }
            (None, Some(path)) => {
                let file_key = format!("{key}_file");
                let path = self.resolve(path);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.error(
                        &file_key,
                        format!("cannot read secret file {}: {e}", path.display()),
                    )
                })?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(self.error(
                        &file_key,
                        format!("secret file {} is empty", path.display()),
                    ));
                }
                Ok(Secret::from_file(value, path))
            }
        }
    }

    /// One `[[probe.checks]]` (or self-check) table, its keys named under `prefix`.
    fn check(&mut self, prefix: &str, check: &raw::Check) -> Result<CheckConfig, ConfigError> {
        let key = |field: &str| format!("{prefix}.{field}");
        Ok(match check {
            raw::Check::Http {
                url,
                expect_status,
                expect_body,
            } => CheckConfig::Http {
                url: self.url(&key("url"), url)?,
                expect_status: match expect_status {
                    None => None,
                    Some(s) if (100..=599).contains(s) => Some(*s as u16),
                    Some(s) => {
                        return Err(
                            self.error(&key("expect_status"), format!("{s} is not an HTTP status"))
                        );
                    }
                },
                expect_body: expect_body.clone(),
            },
            raw::Check::Tcp { address } => {
                let address = self.non_empty(&key("address"), address)?;
                if !has_port(&address) {
                    return Err(
                        self.error(&key("address"), format!("{address:?} must be host:port"))
                    );
                }
                CheckConfig::Tcp { address }
            }
            raw::Check::Mysql {
                host,
                port,
                user,
                password,
                password_file,
            } => CheckConfig::Mysql {
                host: self.non_empty(&key("host"), host)?,
                port: self.port(&key("port"), *port, 3306)?,
                user: self.non_empty(&key("user"), user)?,
                password: self.secret(
                    &key("password"),
                    password.as_deref(),
                    password_file.as_deref(),
                )?,
            },
        })
    }

    /// A wait that must end before the next round is due.
    fn shorter_than_interval(
        &self,
        key: &str,
        value: Duration,
        interval: Duration,
    ) -> Result<(), ConfigError> {
        if value >= interval {
            return Err(self.error(
                key,
                format!(
                    "{} must be shorter than probe.interval ({})",
                    humantime::format_duration(value),
                    humantime::format_duration(interval)
                ),
            ));
        }
        Ok(())
    }

    /// `[[probe.checks]]`: at least one.
    fn primary_checks(&mut self, raw: &[raw::Check]) -> Result<Vec<CheckConfig>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error("probe.checks", "at least one [[probe.checks]] is needed"));
        }
        let mut checks = Vec::new();
        for (i, check) in raw.iter().enumerate() {
            checks.push(self.check(&format!("probe.checks[{i}]"), check)?);
        }
        Ok(checks)
    }

    /// `node.name`, the host name when left out.
    fn node_name(&self, name: Option<&str>) -> Result<String, ConfigError> {
        match name {
            Some(name) => self.non_empty("node.name", name),
            None => Ok(host_name()),
        }
    }

    /// Relative paths are taken from the config file's directory, so a config and its
    /// secrets can move together.
    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(path)
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
    /// relative path are looked up beside it).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: raw::File = parse_raw(text, file)?;
        let mut v = Validator {
            file,
            warnings: Vec::new(),
        };

        let node = NodeConfig {
            name: v.node_name(raw.node.name.as_deref())?,
            state_dir: v.resolve(
                raw.node
                    .state_dir
                    .as_deref()
                    .unwrap_or("/var/lib/failover-watchdog"),
            ),
        };

        let interval = v.duration("probe.interval", raw.probe.interval.as_deref(), "60s")?;
        let timeout = v.duration("probe.timeout", raw.probe.timeout.as_deref(), "10s")?;
        v.shorter_than_interval("probe.timeout", timeout, interval)?;
        let failures_before_promotion = match raw.probe.failures_before_promotion {
            None => 5,
            Some(n) if n >= 1 && n <= u32::MAX as i64 => n as u32,
            Some(n) => {
                return Err(v.error(
                    "probe.failures_before_promotion",
                    format!("{n} must be at least 1"),
                ));
            }
        };
        let checks = v.primary_checks(&raw.probe.checks)?;
        let mut self_checks = Vec::new();
        for (i, check) in raw.probe.self_checks.iter().enumerate() {
            let prefix = format!("probe.self_checks[{i}]");
            if matches!(check, raw::Check::Mysql { .. }) {
                return Err(v.error(
                    &prefix,
                    "self-checks are tcp or http targets that are not the primary",
                ));
            }
            self_checks.push(v.check(&prefix, check)?);
        }
        let replication_silence = match raw.probe.replication_silence.as_deref() {
            Some(text) => Some(v.duration("probe.replication_silence", Some(text), "")?),
            None => None,
        };
        let witnesses = witness_refs(&mut v, &raw.probe.witnesses, interval, timeout)?;
        let probe = ProbeConfig {
            interval,
            failures_before_promotion,
            timeout,
            fail_when: raw.probe.fail_when.unwrap_or(FailWhen::Any),
            checks,
            self_checks,
            confirm_with_replication: raw.probe.confirm_with_replication.unwrap_or(true),
            replication_silence,
            witnesses,
        };

        let r = &raw.replica;
        let replica = ReplicaConfig {
            host: v.non_empty("replica.host", r.host.as_deref().unwrap_or("127.0.0.1"))?,
            port: v.port("replica.port", r.port, 3306)?,
            user: v.non_empty("replica.user", &r.user)?,
            password: v.secret(
                "replica.password",
                r.password.as_deref(),
                r.password_file.as_deref(),
            )?,
            connection_name: r.connection_name.clone().unwrap_or_default(),
            apply_timeout: v.duration(
                "replica.apply_timeout",
                r.apply_timeout.as_deref(),
                "120s",
            )?,
            reset_replica: r.reset_replica.unwrap_or(true),
            max_lag: v.duration("replica.max_lag", r.max_lag.as_deref(), "30s")?,
        };
        if replica.connection_name.contains(['\'', '\\', '`']) {
            return Err(v.error(
                "replica.connection_name",
                "must not contain quotes or backslashes",
            ));
        }

        let mut units = Vec::new();
        for (i, unit) in raw.apps.units.iter().enumerate() {
            units.push(v.unit_name(&format!("apps.units[{i}]"), unit)?);
        }
        let apps = AppsConfig {
            units,
            start_timeout: v.duration(
                "apps.start_timeout",
                raw.apps.start_timeout.as_deref(),
                "90s",
            )?,
        };

        let d = &raw.dns;
        let provider = d.provider.clone().unwrap_or_else(|| "cloudflare".into());
        if provider != "cloudflare" {
            return Err(v.error(
                "dns.provider",
                format!("{provider:?} is not supported; the only provider is \"cloudflare\""),
            ));
        }
        let default_zone = d
            .zone_id
            .as_deref()
            .map(|z| v.non_empty("dns.zone_id", z))
            .transpose()?;
        if d.records.is_empty() {
            return Err(v.error("dns.records", "at least one [[dns.records]] is needed"));
        }
        let mut records = Vec::new();
        for (i, rec) in d.records.iter().enumerate() {
            let key = |field: &str| format!("dns.records[{i}].{field}");
            let name = v
                .non_empty(&key("name"), &rec.name)?
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let record_type = rec
                .record_type
                .as_deref()
                .unwrap_or("A")
                .to_ascii_uppercase();
            let content = v.non_empty(&key("content"), &rec.content)?;
            match record_type.as_str() {
                "A" if content.parse::<Ipv4Addr>().is_err() => {
                    return Err(v.error(
                        &key("content"),
                        format!("{content:?} is not an IPv4 address (type A)"),
                    ));
                }
                "AAAA" if content.parse::<Ipv6Addr>().is_err() => {
                    return Err(v.error(
                        &key("content"),
                        format!("{content:?} is not an IPv6 address (type AAAA)"),
                    ));
                }
                "A" | "AAAA" | "CNAME" => {}
                other => {
                    return Err(v.error(
                        &key("type"),
                        format!("{other:?} is not supported; use A, AAAA or CNAME"),
                    ));
                }
            }
            let zone_id = match (&rec.zone_id, &default_zone) {
                (Some(z), _) => v.non_empty(&key("zone_id"), z)?,
                (None, Some(z)) => z.clone(),
                (None, None) => {
                    return Err(v.error(
                        &key("zone_id"),
                        "no zone: set dns.zone_id or this record's zone_id",
                    ));
                }
            };
            let record = DnsRecordConfig {
                name,
                record_type,
                content,
                zone_id,
            };
            if records.iter().any(|r: &DnsRecordConfig| {
                r.name == record.name
                    && r.record_type == record.record_type
                    && r.zone_id == record.zone_id
            }) {
                return Err(v.error(
                    &key("name"),
                    format!("{} {} is listed twice", record.name, record.record_type),
                ));
            }
            records.push(record);
        }
        let dns = DnsConfig {
            provider,
            api_token: v.secret(
                "dns.api_token",
                d.api_token.as_deref(),
                d.api_token_file.as_deref(),
            )?,
            api_base: v.url(
                "dns.api_base",
                d.api_base
                    .as_deref()
                    .unwrap_or("https://api.cloudflare.com/client/v4"),
            )?,
            update_timeout: v.duration(
                "dns.update_timeout",
                d.update_timeout.as_deref(),
                "120s",
            )?,
            records,
        };

        let telegram = match &raw.telegram {
            None => None,
            Some(t) => Some(TelegramConfig {
                bot_token: v.secret(
                    "telegram.bot_token",
                    t.bot_token.as_deref(),
                    t.bot_token_file.as_deref(),
                )?,
                chat_id: match &t.chat_id {
                    raw::ChatId::Number(n) => n.to_string(),
                    raw::ChatId::Text(s) => {
                        let s = v.non_empty("telegram.chat_id", s)?;
                        if s.parse::<i64>().is_err() && !s.starts_with('@') {
                            return Err(v.error(
                                "telegram.chat_id",
                                format!("{s:?} is neither a numeric chat id nor an @channel name"),
                            ));
                        }
                        s
                    }
                },
                api_url: v.url(
                    "telegram.api_url",
                    t.api_url.as_deref().unwrap_or("https://api.telegram.org"),
                )?,
            }),
        };
        let smoke = smoke_config(&v, &raw.smoke, replica.max_lag)?;
        if telegram.is_none() {
            v.warnings.push(format!(
                "{}: no [telegram] table: alerts go to the log only",
                file.display()
            ));
        }

        let p = &raw.promotion;
        let command = |key: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
            value.as_deref().map(|c| v.non_empty(key, c)).transpose()
        };
        let promotion = PromotionConfig {
            fence_command: command("promotion.fence_command", &p.fence_command)?,
            fence_timeout: v.duration(
                "promotion.fence_timeout",
                p.fence_timeout.as_deref(),
                "30s",
            )?,
            require_fence: p.require_fence.unwrap_or(false),
            pre_promote: command("promotion.pre_promote", &p.pre_promote)?,
            post_promote: command("promotion.post_promote", &p.post_promote)?,
            on_failure: command("promotion.on_failure", &p.on_failure)?,
            hook_timeout: v.duration("promotion.hook_timeout", p.hook_timeout.as_deref(), "60s")?,
            split_brain_alert_every: v.duration(
                "promotion.split_brain_alert_every",
                p.split_brain_alert_every.as_deref(),
                "15m",
            )?,
        };
        if promotion.require_fence
            && promotion.fence_command.is_none()
            && !probe
                .checks
                .iter()
                .any(|c| matches!(c, CheckConfig::Mysql { .. }))
        {
            return Err(v.error(
                "promotion.require_fence",
                "needs a fence_command or a mysql check (its account fences the old primary's database)",
            ));
        }

        Ok(Config {
            path: file.to_path_buf(),
            node,
            probe,
            replica,
            apps,
            dns,
            telegram,
            promotion,
            smoke,
            warnings: v.warnings,
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
        secrets.extend(self.probe.witnesses.iter().map(|w| &w.token));
        secrets.extend(check_passwords(&self.probe.checks));
        secrets
    }

    /// Every secret's value, to scrub from text we did not write (command output).
    pub fn secret_values(&self) -> Vec<&str> {
        self.secrets().into_iter().map(Secret::expose).collect()
    }

    /// The first `mysql` check: the account that reads the primary, and fences it.
    pub fn primary_database(&self) -> Option<(&str, u16, &str, &Secret)> {
        self.probe.checks.iter().find_map(|check| match check {
            CheckConfig::Mysql {
                host,
                port,
                user,
                password,
            } => Some((host.as_str(), *port, user.as_str(), password)),
            _ => None,
        })
    }
}

/// Validates `[[probe.witnesses]]`. A request's default time limit is twice the probe
/// timeout (the witness runs its own checks first), at most half the interval; either
/// way it must be shorter than the interval, so a round ends before the next is due.
fn witness_refs(
    v: &mut Validator,
    raw: &[raw::Witness],
    interval: Duration,
    probe_timeout: Duration,
) -> Result<Vec<WitnessRef>, ConfigError> {
    let mut witnesses: Vec<WitnessRef> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let key = |field: &str| format!("probe.witnesses[{i}].{field}");
        let url = v.url(&key("url"), &w.url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(v.error(
                &key("url"),
                format!("{:?} must be the witness's base URL, without ? or #", w.url),
            ));
        }
        let name = match w.name.as_deref() {
            Some(name) => v.non_empty(&key("name"), name)?,
            None => match (url.host_str(), url.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                _ => w.url.clone(),
            },
        };
        if witnesses.iter().any(|other| other.name == name) {
            return Err(v.error(
                &key("name"),
                format!("{name:?} names two witnesses; give each its own name"),
            ));
        }
        let timeout = match w.timeout.as_deref() {
            Some(text) => v.duration(&key("timeout"), Some(text), "")?,
            None => (probe_timeout * 2).min(interval / 2),
        };
        v.shorter_than_interval(&key("timeout"), timeout, interval)?;
        let token = v.secret(&key("token"), w.token.as_deref(), w.token_file.as_deref())?;
        witnesses.push(WitnessRef {
            name,
            url,
            token,
            timeout,
        });
    }
    Ok(witnesses)
}

/// Validates `[smoke]`. Nothing in it is required: a check left unconfigured is skipped.
/// `[smoke]`; its lag limit defaults to the lag guard's, so a passing smoke test means
/// an automatic promotion would not be held for lag.
fn smoke_config(
    v: &Validator,
    raw: &raw::Smoke,
    replica_max_lag: Duration,
) -> Result<SmokeConfig, ConfigError> {
    let mut sync_units = Vec::new();
    for (i, unit) in raw.sync_units.iter().enumerate() {
        sync_units.push(v.unit_name(&format!("smoke.sync_units[{i}]"), unit)?);
    }
    let mut build_paths = Vec::new();
    for (i, path) in raw.build_paths.iter().enumerate() {
        let path = v.non_empty(&format!("smoke.build_paths[{i}]"), path)?;
        build_paths.push(v.resolve(&path));
    }
    let trial_boot = match &raw.trial_boot {
        None => None,
        Some(argv) if argv.first().is_none_or(|program| program.trim().is_empty()) => {
            return Err(v.error(
                "smoke.trial_boot",
                "must name a program and its arguments, e.g. [\"/usr/bin/php\", \"artisan\", \"about\"]",
            ));
        }
        Some(argv) => Some(argv.clone()),
    };
    let mut urls = Vec::new();
    for (i, url) in raw.urls.iter().enumerate() {
        urls.push(v.url(&format!("smoke.urls[{i}]"), url)?);
    }
    Ok(SmokeConfig {
        check_timeout: v.duration("smoke.check_timeout", raw.check_timeout.as_deref(), "30s")?,
        max_lag: match raw.max_lag.as_deref() {
            Some(lag) => v.duration("smoke.max_lag", Some(lag), "")?,
            None => replica_max_lag,
        },
        sync_units,
        build_paths,
        build_max_age: raw
            .build_max_age
            .as_deref()
            .map(|age| v.duration("smoke.build_max_age", Some(age), ""))
            .transpose()?,
        trial_boot,
        trial_boot_timeout: v.duration(
            "smoke.trial_boot_timeout",
            raw.trial_boot_timeout.as_deref(),
            "2m",
        )?,
        urls,
    })
}

/// TOML -> raw structs, with the failing key path and line/column in the error.
fn parse_raw<T: serde::de::DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let located = |e: &toml::de::Error, key: Option<String>| ConfigError {
        file: file.to_path_buf(),
        key,
        line_col: e.span().map(|span| line_col(text, span.start)),
        problem: e.message().trim().to_string(),
    };
    let de = toml::de::Deserializer::parse(text).map_err(|e| located(&e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        located(e.inner(), key)
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn has_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "standby".to_string())
}

/// The passwords of the `mysql` checks among `checks`.
fn check_passwords(checks: &[CheckConfig]) -> impl Iterator<Item = &Secret> {
    checks.iter().filter_map(|check| match check {
        CheckConfig::Mysql { password, .. } => Some(password),
        _ => None,
    })
}

fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        key: None,
        line_col: None,
        problem: format!("cannot read the config file: {e}"),
    })
}

/// A file that holds secrets inline should be readable by the service alone.
fn world_readable_warning(path: &Path, secrets: &[&Secret]) -> Option<String> {
    use crate::secret::SecretSource::Inline;
    (secrets.iter().any(|s| *s.source() == Inline) && is_world_readable(path)).then(|| {
        format!(
            "{}: the file holds secrets and is readable by every user; chmod 600 it",
            path.display()
        )
    })
}

fn is_world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

pub mod witness;

#[cfg(test)]
mod tests;

//! The witness's own config: a small file on a third host, for `failover-watchdog
//! witness`. It holds the primary's checks (the same `[[probe.checks]]` tables as the
//! standby's, so they can be copied across) and the token the standby must present.
//!
//! ```toml
//! [node]
//! name = "witness-ams1"            # default: the host name
//!
//! [witness]
//! token_file = "witness.token"     # or token = "..."
//! header_timeout = "5s"            # what one client may cost the witness:
//! write_timeout = "10s"            # see `WitnessLimits`
//! max_connections = 256
//! max_connections_per_client = 16
//! requests_per_second = 2
//! request_burst = 10
//! # tls_cert_file = "witness.crt"  # optional: HTTPS, with its key
//! # tls_key_file = "witness.key"
//!
//! [metrics]                        # opt-in: Prometheus at GET /metrics
//! listen = "127.0.0.1:9188"        # (with its own token, TLS and limits: see config.rs)
//!
//! [probe]
//! timeout = "10s"
//! fail_when = "any"
//!
//! [[probe.checks]]
//! type = "tcp"
//! address = "198.51.100.10:3306"
//! ```
//!
//! Parsed in the same two stages as the standby's config, with the same errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::file::{parse_raw, read_config_file, world_readable_warning};
use super::validate::Validator;
use super::{
    CheckConfig, ConfigError, FailWhen, MetricsConfig, TlsFiles, check_passwords, defaults,
    ser_duration,
};
use crate::secret::Secret;

/// The validated witness config.
#[derive(Debug, Clone, Serialize)]
pub struct WitnessConfig {
    /// The file this was read from.
    pub path: PathBuf,
    /// Named in every answer, so the standby's alerts say who saw what.
    pub name: String,
    /// The standby's requests must carry it as `Authorization: Bearer`.
    pub token: Secret,
    /// Per check, as the standby's `probe.timeout`.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub fail_when: FailWhen,
    pub checks: Vec<CheckConfig>,
    /// What one client may cost the witness.
    pub limits: WitnessLimits,
    /// `witness.tls_cert_file` and `tls_key_file`: HTTPS instead of HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// `[metrics]`: the witness's Prometheus endpoint; `None` serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// What one client may cost the witness (`[witness]`), so that clients without the
/// token cannot exhaust it: its descriptors, its token check, its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WitnessLimits {
    /// A client that has not sent its whole request head within this is dropped; so is
    /// a kept-alive connection idle this long.
    #[serde(serialize_with = "ser_duration")]
    pub header_timeout: Duration,
    /// How long a client may take to read an answer before its connection is dropped.
    #[serde(serialize_with = "ser_duration")]
    pub write_timeout: Duration,
    /// Connections open at once (lowered to what the open-file limit allows). When the
    /// last is taken, the connection that has sent the least of its request for the
    /// longest is dropped to make room.
    pub max_connections: u32,
    /// Connections one client (IP address; an IPv6 /64) may hold; beyond, its own
    /// stalest is dropped for the new one.
    pub max_connections_per_client: u32,
    /// Requests each client (IP address; an IPv6 /64) may keep up per second; beyond
    /// it and its burst, 429 with `Retry-After`.
    pub requests_per_second: u32,
    /// Requests a client may send at once before the rate applies.
    pub request_burst: u32,
}

impl Default for WitnessLimits {
    fn default() -> Self {
        Self {
            header_timeout: defaults::WITNESS_HEADER_TIMEOUT,
            write_timeout: defaults::WRITE_TIMEOUT,
            max_connections: defaults::WITNESS_MAX_CONNECTIONS,
            max_connections_per_client: defaults::WITNESS_MAX_CONNECTIONS_PER_CLIENT,
            requests_per_second: defaults::WITNESS_REQUESTS_PER_SECOND,
            request_burst: defaults::WITNESS_REQUEST_BURST,
        }
    }
}

/// The witness's TOML file as written.
mod raw {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub node: Node,
        pub witness: Witness,
        pub probe: Probe,
        pub metrics: Option<super::super::raw::Metrics>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Node {
        pub name: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Witness {
        pub token: Option<String>,
        pub token_file: Option<String>,
        pub header_timeout: Option<String>,
        pub write_timeout: Option<String>,
        pub max_connections: Option<i64>,
        pub max_connections_per_client: Option<i64>,
        pub requests_per_second: Option<i64>,
        pub request_burst: Option<i64>,
        pub tls_cert_file: Option<String>,
        pub tls_key_file: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Probe {
        pub timeout: Option<String>,
        pub fail_when: Option<super::FailWhen>,
        #[serde(default)]
        pub checks: Vec<super::super::raw::Check>,
    }
}

impl WitnessConfig {
    /// Reads and validates the witness config at `path`.
    pub fn load(path: &Path) -> Result<WitnessConfig, ConfigError> {
        let text = read_config_file(path)?;
        let mut config = WitnessConfig::parse(&text, path)?;
        if let Some(warning) = world_readable_warning(path, &config.secrets()) {
            config.warnings.push(warning);
        }
        Ok(config)
    }

    /// Parses and validates `text`, read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<WitnessConfig, ConfigError> {
        let raw: raw::File = parse_raw(text, file)?;
        let mut v = Validator::new(file);
        let name = v.node_name(raw.node.name.as_deref())?;
        let token = v.secret(
            "witness.token",
            raw.witness.token.as_deref(),
            raw.witness.token_file.as_deref(),
        )?;
        if token.expose().len() < 16 {
            return Err(v.error(
                "witness.token",
                "is shorter than 16 characters; make one with: openssl rand -hex 32",
            ));
        }
        let timeout = v.duration_or(
            "probe.timeout",
            raw.probe.timeout.as_deref(),
            defaults::PROBE_TIMEOUT,
        )?;
        let checks = v.primary_checks(&raw.probe.checks)?;
        let limits = limits(&v, &raw.witness)?;
        let tls = v.tls_files(
            "witness",
            raw.witness.tls_cert_file.as_deref(),
            raw.witness.tls_key_file.as_deref(),
        )?;
        let metrics = v.metrics(raw.metrics.as_ref())?;
        Ok(WitnessConfig {
            path: file.to_path_buf(),
            name,
            token,
            timeout,
            fail_when: raw.probe.fail_when.unwrap_or(defaults::FAIL_WHEN),
            checks,
            limits,
            tls,
            metrics,
            warnings: v.into_warnings(),
        })
    }

    /// Every secret in the witness config: the token and any check's password.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = vec![&self.token];
        secrets.extend(check_passwords(&self.checks));
        secrets.extend(self.metrics.iter().filter_map(|m| m.token.as_ref()));
        secrets
    }
}

/// `[witness]`'s limits, each its default when left out.
fn limits(v: &Validator, raw: &raw::Witness) -> Result<WitnessLimits, ConfigError> {
    Ok(WitnessLimits {
        header_timeout: v.duration_or(
            "witness.header_timeout",
            raw.header_timeout.as_deref(),
            defaults::WITNESS_HEADER_TIMEOUT,
        )?,
        write_timeout: v.duration_or(
            "witness.write_timeout",
            raw.write_timeout.as_deref(),
            defaults::WRITE_TIMEOUT,
        )?,
        max_connections: v.count(
            "witness.max_connections",
            raw.max_connections,
            defaults::WITNESS_MAX_CONNECTIONS,
        )?,
        max_connections_per_client: v.count(
            "witness.max_connections_per_client",
            raw.max_connections_per_client,
            defaults::WITNESS_MAX_CONNECTIONS_PER_CLIENT,
        )?,
        requests_per_second: v.count(
            "witness.requests_per_second",
            raw.requests_per_second,
            defaults::WITNESS_REQUESTS_PER_SECOND,
        )?,
        request_burst: v.count(
            "witness.request_burst",
            raw.request_burst,
            defaults::WITNESS_REQUEST_BURST,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
name = "witness-ams1"

[witness]
token_file = "witness.token"

[probe]
timeout = "5s"

[[probe.checks]]
type = "tcp"
address = "198.51.100.10:3306"

[[probe.checks]]
type = "mysql"
host = "198.51.100.10"
user = "watchdog"
password_file = "primary-db.password"
"#;

    fn parse(text: &str) -> Result<WitnessConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("witness.token"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("short.token"), "abc\n").unwrap();
        std::fs::write(dir.path().join("primary-db.password"), "probe-pw\n").unwrap();
        WitnessConfig::parse(text, &dir.path().join("witness.toml"))
    }

    #[test]
    fn a_witness_config_reads_its_token_and_the_primarys_checks() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.name, "witness-ams1");
        assert_eq!(config.token.expose(), "0123456789abcdef0123456789abcdef");
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.fail_when, FailWhen::Any);
        assert_eq!(config.checks.len(), 2);
        assert_eq!(config.limits, WitnessLimits::default());
        assert_eq!(config.secrets().len(), 2);
        let shown = toml::to_string(&config).unwrap();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("probe-pw"), "{shown}");
    }

    #[test]
    fn a_witness_config_reads_its_limits() {
        let limits = "token_file = \"witness.token\"\nheader_timeout = \"2s\"\nmax_connections = 64\nrequests_per_second = 1\nrequest_burst = 3\n";
        let config = parse(&GOOD.replacen("token_file = \"witness.token\"\n", limits, 1)).unwrap();
        assert_eq!(
            config.limits,
            WitnessLimits {
                header_timeout: Duration::from_secs(2),
                max_connections: 64,
                requests_per_second: 1,
                request_burst: 3,
                ..WitnessLimits::default()
            }
        );
        let shown = toml::to_string(&config).unwrap();
        assert!(shown.contains("header_timeout = \"2s\""), "{shown}");
    }

    /// Each case: (what to replace in GOOD, with what, the key named, a part of the problem).
    const BAD: &[(&str, &str, &str, &str)] = &[
        (
            "token_file = \"witness.token\"",
            "",
            "witness.token",
            "missing",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"short.token\"",
            "witness.token",
            "shorter than 16",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"nowhere.token\"",
            "witness.token_file",
            "cannot read secret file",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nheader_timeout = \"0s\"",
            "witness.header_timeout",
            "longer than zero",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nmax_connections = 0",
            "witness.max_connections",
            "at least 1",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nrequests_per_second = -1",
            "witness.requests_per_second",
            "at least 1",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nrequest_burst = 0",
            "witness.request_burst",
            "at least 1",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nmax_connections_per_client = 0",
            "witness.max_connections_per_client",
            "at least 1",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nwrite_timeout = \"soon\"",
            "witness.write_timeout",
            "not a duration",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\ntls_key_file = \"witness.key\"",
            "witness.tls_cert_file",
            "missing",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\ntls_cert_file = \"witness.token\"\ntls_key_file = \"witness.token\"",
            "witness.tls_cert_file",
            "holds no certificate",
        ),
        (
            "token_file = \"witness.token\"",
            "token_file = \"witness.token\"\nrate_limit = 5",
            "witness",
            "unknown field `rate_limit`",
        ),
        (
            "timeout = \"5s\"",
            "timeout = \"soon\"",
            "probe.timeout",
            "not a duration",
        ),
        // A standby's key copied across is named, not ignored.
        (
            "timeout = \"5s\"",
            "interval = \"60s\"",
            "probe",
            "unknown field `interval`",
        ),
        (
            "address = \"198.51.100.10:3306\"",
            "address = \"198.51.100.10\"",
            "probe.checks[0].address",
            "host:port",
        ),
        (
            "[probe]",
            "[metrics]\nlisten = \"9187\"\n\n[probe]",
            "metrics.listen",
            "not an IP address with a port",
        ),
    ];

    #[test]
    fn a_bad_witness_config_names_the_key_and_the_problem() {
        for (from, to, key, problem) in BAD {
            assert!(GOOD.contains(from), "{from}");
            let err = parse(&GOOD.replacen(from, to, 1)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("witness.toml"), "{text}");
            assert!(text.contains(key), "{key}: {text}");
            assert!(text.contains(problem), "{problem}: {text}");
        }
    }

    /// `[metrics]` is the standby's table: opt-in, an IP address and a port.
    #[test]
    fn a_witness_serves_metrics_only_when_its_config_says_where() {
        assert_eq!(parse(GOOD).unwrap().metrics, None);
        let config = parse(&GOOD.replacen(
            "[probe]",
            "[metrics]\nlisten = \"127.0.0.1:9188\"\n\n[probe]",
            1,
        ))
        .unwrap();
        assert_eq!(
            config.metrics.as_ref().map(|m| m.listen),
            Some("127.0.0.1:9188".parse().unwrap())
        );
        let shown = toml::to_string_pretty(&config).unwrap();
        assert!(
            shown.contains("[metrics]\nlisten = \"127.0.0.1:9188\""),
            "{shown}"
        );
    }

    /// `tls_cert_file` and `tls_key_file`: read relative to the config, checked, shown.
    #[test]
    fn a_witness_config_reads_its_tls_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("witness.token"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("primary-db.password"), "probe-pw\n").unwrap();
        let (cert, key, _) = crate::serve::testing::self_signed(dir.path());
        let text = GOOD.replacen(
            "token_file = \"witness.token\"\n",
            "token_file = \"witness.token\"\ntls_cert_file = \"server.crt\"\ntls_key_file = \"server.key\"\n",
            1,
        );
        let config = WitnessConfig::parse(&text, &dir.path().join("witness.toml")).unwrap();
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert_file: cert,
                key_file: key
            })
        );
        assert_eq!(parse(GOOD).unwrap().tls, None);
    }

    #[test]
    fn the_shipped_witness_example_is_valid() {
        let text = include_str!("../../config/witness.toml")
            .replace("/etc/failover-watchdog/witness.token", "witness.token");
        let config = parse(&text).unwrap();
        assert_eq!(config.name, "witness-ams1");
        assert_eq!(config.checks.len(), 2);
        assert_eq!(
            config.metrics.map(|m| m.listen),
            Some("127.0.0.1:9188".parse().unwrap())
        );
    }

    /// The witness reads its config and token the careful way too: a FIFO for either
    /// is refused at once, naming the file (and for the token, its key).
    #[test]
    fn a_fifo_witness_config_or_token_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("witness.toml");
        crate::careful_read::make_fifo(&config);
        let load = config.clone();
        let err =
            crate::careful_read::returns_at_once(move || WitnessConfig::load(&load)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("the config file is a FIFO, not a regular file"),
            "{err}"
        );

        std::fs::remove_file(&config).unwrap();
        std::fs::write(&config, GOOD).unwrap();
        crate::careful_read::make_fifo(&dir.path().join("witness.token"));
        let err =
            crate::careful_read::returns_at_once(move || WitnessConfig::load(&config)).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("witness.token_file"));
        assert!(
            err.problem.ends_with("is a FIFO, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_witness_needs_a_check() {
        let text = "[witness]\ntoken_file = \"witness.token\"\n[probe]\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("probe.checks"), "{err}");
    }
}

//! Config validation, data-driven: each bad config names the key and the problem.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use super::*;

/// A valid config; secret files are written beside it by [`Fixture`].
const GOOD: &str = r#"
[node]
name = "standby-fra1"
state_dir = "state"

[probe]
interval = "60s"
failures_before_promotion = 5
timeout = "10s"
fail_when = "any"

[[probe.checks]]
type = "http"
url = "https://primary.example.com/health"
expect_status = 200

[[probe.checks]]
type = "tcp"
address = "198.51.100.10:3306"

[[probe.checks]]
type = "mysql"
host = "198.51.100.10"
port = 3306
user = "watchdog"
password_file = "primary-db.password"
tls = "verify_identity"
tls_ca_file = "mariadb-ca.pem"

[[probe.self_checks]]
type = "tcp"
address = "1.1.1.1:53"

[replica]
host = "127.0.0.1"
port = 3306
user = "failover"
password_file = "replica-db.password"
connection_name = ""
apply_timeout = "120s"
reset_replica = true

[apps]
units = ["php-fpm.service", "app.service"]
start_timeout = "90s"

[dns]
provider = "cloudflare"
api_token_file = "cloudflare.token"
api_base = "https://api.cloudflare.com/client/v4"
zone_id = "023e105f4ecef8ad9ca31a8372d0c353"

[[dns.records]]
name = "app.example.com"
type = "A"
content = "203.0.113.20"

[telegram]
bot_token_file = "telegram.token"
chat_id = "-1001234567890"
api_url = "https://api.telegram.org"

[replication]
heartbeat_period = "5s"
tls = "verify_identity"
tls_ca_file = "/etc/mysql/ssl/ca.pem"
"#;

/// A CA certificate (self-signed, EC P-256), for the TLS keys' files.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUT35LT8k9fpS3Dr+CkWomBq6ErAowCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZZmFpbG92ZXItd2F0Y2hkb2cgdGVzdCBDQTAgFw0yNjEyMDUw
ODU1MjNaGA8yMTI2MTExMTA4NTUyM1owJDEiMCAGA1UEAwwZZmFpbG92ZXItd2F0
Y2hkb2cgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABC48NHaa5fBZ
ZYS841IL7tpH1wTXr36JRvmVZQ++FqbD/at29HcF0Yc5gBiCzfyyV5ZJJZhV2GsK
ZE9F26HQkWWjUzBRMB0GA1UdDgQWBBSoTyAyfWgb32DnfohI5MiWYxHgrTAfBgNV
HSMEGDAWgBSoTyAyfWgb32DnfohI5MiWYxHgrTAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIQCl9pPSE3Oelj8pmd1dJ7QYHTKzsdJwFEf+tvWoozvJ
KgIgAgOArYGOUUQS5TsH30S1spz56r1yNtwF+I7BXDucJxk=
-----END CERTIFICATE-----
";

/// A client's RSA key, PKCS#8 as OpenSSL 3 writes it.
const TEST_RSA_KEY: &str = failover_watchdog_rig::mariadb::CLIENT_RSA_KEY;

/// The key of [`TEST_CA`]'s certificate: EC, which the MariaDB client does not present.
pub(super) const TEST_EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVAjYMmwSn69hNxZF
N1JJZGxQIlQ8agpsSyowW4t6g6KhRANCAAQuPDR2muXwWWWEvONSC+7aR9cE169+
iUb5lWUPvhamw/2rdvR3BdGHOYAYgs38sleWSSWYVdhrCmRPRduh0JFl
-----END PRIVATE KEY-----
";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in [
            ("primary-db.password", "probe-pw\n"),
            ("replica-db.password", "replica-pw\n"),
            ("cloudflare.token", "cf-token\n"),
            ("telegram.token", "123:tg-token\n"),
            ("mariadb-ca.pem", TEST_CA),
            ("client.pem", TEST_CA),
            ("client.key", TEST_RSA_KEY),
            ("ec.key", TEST_EC_KEY),
        ] {
            write_secret(&dir.path().join(name), value);
        }
        Self { dir }
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &self.dir.path().join("config.toml"))
    }
}

/// A secret file as an operator should leave it: readable by its owner alone.
fn write_secret(path: &std::path::Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, value).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A world-readable secret file drew no warning, though a world-readable config that
/// holds secrets does. It draws the same one now, naming the file and the key, once
/// however many keys name it.
#[test]
fn a_world_readable_secret_file_draws_the_warning_a_config_does() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let token = fx.dir.path().join("cloudflare.token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = fx.parse(GOOD).unwrap();
    assert_eq!(
        config.warnings,
        [format!(
            "{}: the file holds a secret (dns.api_token_file) and is readable by every user; chmod 600 it",
            token.display()
        )]
    );
    let both = GOOD.replace("replica-db.password", "cloudflare.token");
    assert_eq!(fx.parse(&both).unwrap().warnings.len(), 1);
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(fx.parse(GOOD).unwrap().warnings.is_empty());
}

#[test]
fn the_documented_example_is_valid_and_secrets_are_read_from_files() {
    let fx = Fixture::new();
    let config = fx.parse(GOOD).unwrap();
    assert_eq!(config.node.name, "standby-fra1");
    assert_eq!(
        config.node.state_dir,
        fx.dir.path().join("state"),
        "relative to the config file"
    );
    assert_eq!(config.probe.interval, Duration::from_secs(60));
    assert_eq!(config.probe.failures_before_promotion, 5);
    assert_eq!(config.probe.checks.len(), 3);
    assert_eq!(config.replica.password.expose(), "replica-pw");
    assert_eq!(config.dns.api_token.expose(), "cf-token");
    assert_eq!(
        config.dns.records[0].zone_id,
        "023e105f4ecef8ad9ca31a8372d0c353"
    );
    assert_eq!(
        config.telegram.as_ref().unwrap().bot_token.expose(),
        "123:tg-token"
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_shipped_example_config_is_valid() {
    let text = include_str!("../../config/example.toml");
    let fx = Fixture::new();
    // The example points at absolute secret paths; swap them for the fixture's files.
    let text = text.replace("/etc/failover-watchdog/", "");
    for token in [
        "witness-ams1.token",
        "witness-nyc1.token",
        "alertmanager.token",
        "peer-db.password",
        "replication.password",
    ] {
        std::fs::write(fx.dir.path().join(token), "w-token\n").unwrap();
    }
    let config = fx.parse(&text).unwrap();
    assert!(!config.dns.records.is_empty());
    assert_eq!(config.probe.witnesses.len(), 2);
    assert_eq!(config.webhooks.len(), 1);
    assert_eq!(config.peer.as_ref().unwrap().name, "primary-nyc1");
    assert_eq!(
        config.metrics.map(|m| m.listen),
        Some("127.0.0.1:9187".parse().unwrap())
    );
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let fx = Fixture::new();
    let text = r#"
[probe]
[[probe.checks]]
type = "tcp"
address = "10.0.0.1:3306"
[replica]
user = "failover"
password_file = "replica-db.password"
[dns]
api_token_file = "cloudflare.token"
zone_id = "z"
[[dns.records]]
name = "App.Example.com."
content = "203.0.113.20"
"#;
    let config = fx.parse(text).unwrap();
    assert_eq!(config.probe.interval, Duration::from_secs(60));
    assert_eq!(config.probe.suspect_interval, Duration::from_secs(5));
    assert_eq!(config.probe.timeout, Duration::from_secs(10));
    assert_eq!(config.probe.failures_before_promotion, 5);
    assert_eq!(config.probe.fail_when, FailWhen::Any);
    assert_eq!(config.replica.host, "127.0.0.1");
    assert_eq!(config.replica.port, 3306);
    assert_eq!(config.replica.apply_timeout, Duration::from_secs(120));
    assert!(config.replica.reset_replica);
    assert_eq!(config.apps.start_timeout, Duration::from_secs(90));
    assert_eq!(
        config.node.state_dir,
        PathBuf::from("/var/lib/failover-watchdog")
    );
    assert_eq!(config.dns.records[0].name, "app.example.com");
    assert_eq!(config.dns.records[0].record_type, "A");
    assert!(config.telegram.is_none());
    assert!(config.warnings.iter().any(|w| w.contains("[telegram]")));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("would promote itself")),
        "no self-checks, no witnesses: {:?}",
        config.warnings
    );
}

#[test]
fn a_heartbeat_too_slow_for_the_suspect_cadence_is_warned() {
    let fx = Fixture::new();
    // 3 x 10 s is longer than 5 rounds 5 s apart.
    let slow = GOOD.replace("heartbeat_period = \"5s\"", "heartbeat_period = \"10s\"");
    let config = fx.parse(&slow).unwrap();
    assert!(
        config.warnings.iter().any(|w| w.contains(
            "3 heartbeats of 10s take longer than failures_before_promotion × suspect_interval (25s)"
        )),
        "{:?}",
        config.warnings
    );
    assert!(fx.parse(GOOD).unwrap().warnings.is_empty());
}

#[test]
fn the_suspect_interval_defaults_to_five_seconds_at_most_the_interval() {
    let fx = Fixture::new();
    let short = GOOD.replace("interval = \"60s\"", "interval = \"2s\"");
    let short = short.replace("timeout = \"10s\"", "timeout = \"1s\"");
    assert_eq!(
        fx.parse(&short).unwrap().probe.suspect_interval,
        Duration::from_secs(2)
    );
    let set = GOOD.replace(
        "interval = \"60s\"",
        "interval = \"60s\"\nsuspect_interval = \"60s\"",
    );
    let config = fx.parse(&set).unwrap();
    assert_eq!(config.probe.suspect_interval, Duration::from_secs(60));
    assert_eq!(config.decider_settings().cadence().watch_every(), None);
}

#[test]
fn inline_secrets_work_but_draw_a_warning() {
    let fx = Fixture::new();
    let text = GOOD.replace(
        r#"password_file = "replica-db.password""#,
        r#"password = "inline-pw""#,
    );
    let config = fx.parse(&text).unwrap();
    assert_eq!(config.replica.password.expose(), "inline-pw");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("replica.password") && w.contains("inline")),
        "{:?}",
        config.warnings
    );
}

/// Each case: (what to replace in GOOD, with what, the key the error must name, a part of
/// the problem).
const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "failures_before_promotion = 5",
        "failures_before_promotion = 0",
        "probe.failures_before_promotion",
        "at least 1",
    ),
    (
        "timeout = \"10s\"",
        "timeout = \"60s\"",
        "probe.timeout",
        "shorter than probe.interval",
    ),
    (
        "timeout = \"10s\"",
        "timeout = \"ten seconds\"",
        "probe.timeout",
        "not a duration",
    ),
    (
        "interval = \"60s\"",
        "interval = \"0s\"",
        "probe.interval",
        "longer than zero",
    ),
    (
        "interval = \"60s\"",
        "interval = \"60s\"\nsuspect_interval = \"90s\"",
        "probe.suspect_interval",
        "must not be longer than probe.interval (1m)",
    ),
    (
        "interval = \"60s\"",
        "interval = \"60s\"\nsuspect_interval = \"0s\"",
        "probe.suspect_interval",
        "longer than zero",
    ),
    (
        "url = \"https://primary.example.com/health\"",
        "url = \"not a url\"",
        "probe.checks[0].url",
        "not a URL",
    ),
    (
        "url = \"https://primary.example.com/health\"",
        "url = \"ftp://x/y\"",
        "probe.checks[0].url",
        "http",
    ),
    (
        "expect_status = 200",
        "expect_status = 99",
        "probe.checks[0].expect_status",
        "not an HTTP status",
    ),
    (
        "address = \"198.51.100.10:3306\"",
        "address = \"198.51.100.10\"",
        "probe.checks[1].address",
        "host:port",
    ),
    (
        "port = 3306\nuser = \"watchdog\"",
        "port = 70000\nuser = \"watchdog\"",
        "probe.checks[2].port",
        "not a TCP port",
    ),
    (
        "password_file = \"primary-db.password\"",
        "password_file = \"missing.password\"",
        "probe.checks[2].password_file",
        "cannot read secret file",
    ),
    (
        "password_file = \"primary-db.password\"",
        "password_file = \"empty.password\"",
        "probe.checks[2].password_file",
        "is empty",
    ),
    (
        "password_file = \"replica-db.password\"",
        "",
        "replica.password",
        "missing",
    ),
    (
        "password_file = \"replica-db.password\"",
        "password_file = \"replica-db.password\"\npassword = \"x\"",
        "replica.password",
        "not both",
    ),
    (
        "apply_timeout = \"120s\"",
        "apply_timeout = \"soon\"",
        "replica.apply_timeout",
        "not a duration",
    ),
    (
        "start_timeout = \"90s\"",
        "start_timeout = 90",
        "apps.start_timeout",
        "invalid type",
    ),
    (
        "provider = \"cloudflare\"",
        "provider = \"route53\"",
        "dns.provider",
        "not supported",
    ),
    (
        "api_base = \"https://api.cloudflare.com/client/v4\"",
        "api_base = \"::\"",
        "dns.api_base",
        "not a URL",
    ),
    (
        "content = \"203.0.113.20\"",
        "content = \"not-an-ip\"",
        "dns.records[0].content",
        "not an IPv4 address",
    ),
    (
        "type = \"A\"\ncontent",
        "type = \"MX\"\ncontent",
        "dns.records[0].type",
        "not supported",
    ),
    (
        "zone_id = \"023e105f4ecef8ad9ca31a8372d0c353\"",
        "",
        "dns.records[0].zone_id",
        "no zone",
    ),
    (
        "chat_id = \"-1001234567890\"",
        "chat_id = \"team\"",
        "telegram.chat_id",
        "numeric chat id",
    ),
    (
        "fail_when = \"any\"",
        "fail_when = \"most\"",
        "probe.fail_when",
        "unknown variant",
    ),
    (
        "reset_replica = true",
        "reset_replica = true\nreset_slave = true",
        "replica",
        "unknown field `reset_slave`",
    ),
    (
        "api_url = \"https://api.telegram.org\"",
        "api_url = \"https://api.telegram.org\"\ntoken = \"x\"",
        "telegram",
        "unknown field `token`",
    ),
];

#[test]
fn each_bad_config_names_the_key_and_the_problem() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("empty.password"), "  \n").unwrap();
    for (from, to, key, problem) in BAD {
        assert!(GOOD.contains(from), "fixture lacks {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let err = match fx.parse(&text) {
            Ok(_) => panic!("accepted a bad config: {from:?} -> {to:?}"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(message.contains("config.toml"), "no file in {message:?}");
        assert!(
            message.contains(key),
            "case {to:?}: expected key {key:?} in {message:?}"
        );
        assert!(
            message.contains(problem),
            "case {to:?}: expected {problem:?} in {message:?}"
        );
    }
}

#[test]
fn unknown_top_level_table_is_an_error_with_line_and_column() {
    let fx = Fixture::new();
    let text = format!("{GOOD}\n[extra]\nx = 1\n");
    let err = fx.parse(&text).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    let (line, _) = err.line_col.expect("line and column");
    assert!(line > 50, "line {line}");
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let fx = Fixture::new();
    let err = fx.parse("[probe\ninterval = 1").unwrap_err();
    assert_eq!(err.line_col.map(|(l, _)| l), Some(1), "{err}");
}

#[test]
fn missing_checks_and_records_are_errors() {
    let fx = Fixture::new();
    let no_checks = GOOD.split("[[probe.checks]]").next().unwrap().to_string()
        + &GOOD[GOOD.find("[replica]").unwrap()..];
    let err = fx.parse(&no_checks).unwrap_err();
    assert!(err.to_string().contains("probe.checks"), "{err}");

    let no_records = GOOD.replace(
        "[[dns.records]]\nname = \"app.example.com\"\ntype = \"A\"\ncontent = \"203.0.113.20\"\n",
        "",
    );
    let err = fx.parse(&no_records).unwrap_err();
    assert!(err.to_string().contains("dns.records"), "{err}");
}

#[test]
fn secrets_never_appear_in_the_effective_config() {
    let fx = Fixture::new();
    let config = fx.parse(GOOD).unwrap();
    let shown = toml::to_string(&config).unwrap() + &format!("{config:?}");
    for secret in ["probe-pw", "replica-pw", "cf-token", "tg-token"] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
}

/// A `[smoke]` table with every key, appended to GOOD.
const SMOKE: &str = r#"
[smoke]
check_timeout = "20s"
max_lag = "30s"
sync_units = ["lsyncd.service"]
build_paths = ["/var/www/app/current", "shared/build"]
build_max_age = "35d"
trial_boot = ["/usr/bin/php", "/var/www/app/current/artisan", "about"]
trial_boot_timeout = "90s"
urls = ["https://standby.example.com/health", "https://panel.example.com:8443/"]
"#;

#[test]
fn without_a_smoke_table_the_defaults_apply_and_nothing_is_configured() {
    let fx = Fixture::new();
    let config = fx.parse(GOOD).unwrap();
    let smoke = config.smoke;
    assert_eq!(smoke.check_timeout, Duration::from_secs(30));
    assert_eq!(
        smoke.max_lag, config.replica.max_lag,
        "the lag guard's limit"
    );
    assert_eq!(smoke.trial_boot_timeout, Duration::from_secs(120));
    assert!(smoke.sync_units.is_empty() && smoke.build_paths.is_empty());
    assert!(smoke.urls.is_empty());
    assert_eq!((smoke.build_max_age, smoke.trial_boot), (None, None));
}

#[test]
fn a_full_smoke_table_is_read_with_relative_paths_beside_the_config() {
    let fx = Fixture::new();
    let config = fx.parse(&format!("{GOOD}{SMOKE}")).unwrap();
    let smoke = &config.smoke;
    assert_eq!(smoke.check_timeout, Duration::from_secs(20));
    assert_eq!(smoke.max_lag, Duration::from_secs(30));
    assert_eq!(smoke.sync_units, ["lsyncd.service"]);
    assert_eq!(
        smoke.build_paths,
        [
            PathBuf::from("/var/www/app/current"),
            fx.dir.path().join("shared/build")
        ]
    );
    assert_eq!(smoke.build_max_age, Some(Duration::from_secs(35 * 86400)));
    assert_eq!(smoke.trial_boot.as_ref().unwrap()[2], "about");
    assert_eq!(smoke.trial_boot_timeout, Duration::from_secs(90));
    assert_eq!(smoke.urls[1].as_str(), "https://panel.example.com:8443/");
    let shown = toml::to_string(&config).unwrap();
    assert!(shown.contains("build_max_age = \"35days\""), "{shown}");
}

#[test]
fn long_durations_are_shown_in_days() {
    let days = |d: f64| format_days(Duration::from_secs_f64(d * 86400.0));
    assert_eq!(days(35.0), "35days");
    assert_eq!(days(1.0), "1day");
    assert_eq!(days(2.5), "2days 12h");
    assert_eq!(days(0.5), "12h");
}

#[test]
fn each_bad_smoke_key_names_the_key_and_the_problem() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "check_timeout = \"20s\"",
            "check_timeout = \"0s\"",
            "smoke.check_timeout",
            "longer than zero",
        ),
        (
            "max_lag = \"30s\"",
            "max_lag = \"half a minute\"",
            "smoke.max_lag",
            "not a duration",
        ),
        (
            "[\"lsyncd.service\"]",
            "[\"lsyncd.service\", \"--now\"]",
            "smoke.sync_units[1]",
            "not a unit name",
        ),
        (
            "\"shared/build\"]",
            "\" \"]",
            "smoke.build_paths[1]",
            "must not be empty",
        ),
        (
            "build_max_age = \"35d\"",
            "build_max_age = \"a month\"",
            "smoke.build_max_age",
            "not a duration",
        ),
        (
            "trial_boot = [\"/usr/bin/php\", \"/var/www/app/current/artisan\", \"about\"]",
            "trial_boot = []",
            "smoke.trial_boot",
            "must name a program",
        ),
        (
            "trial_boot = [\"/usr/bin/php\", \"/var/www/app/current/artisan\", \"about\"]",
            "trial_boot = \"php artisan about\"",
            "smoke.trial_boot",
            "invalid type",
        ),
        (
            "\"https://standby.example.com/health\"",
            "\"standby.example.com/health\"",
            "smoke.urls[0]",
            "not a URL",
        ),
        (
            "trial_boot_timeout = \"90s\"",
            "trial_boot_timeout = \"90s\"\ntimeout = \"5s\"",
            "smoke",
            "unknown field `timeout`",
        ),
    ];
    let fx = Fixture::new();
    let good = format!("{GOOD}{SMOKE}");
    for (from, to, key, problem) in cases {
        assert!(good.contains(from), "fixture lacks {from:?}");
        let message = match fx.parse(&good.replacen(from, to, 1)) {
            Ok(_) => panic!("accepted a bad [smoke]: {from:?} -> {to:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("config.toml"), "no file in {message:?}");
        assert!(message.contains(key), "expected {key:?} in {message:?}");
        assert!(
            message.contains(problem),
            "expected {problem:?} in {message:?}"
        );
    }
}

/// Two `[[probe.witnesses]]`, appended to GOOD; `witness.token` is written beside it.
const WITNESSES: &str = r#"
[[probe.witnesses]]
name = "ams1"
url = "https://proxy.example.com/witness"
token_file = "witness.token"
timeout = "15s"

[[probe.witnesses]]
url = "http://10.8.0.3:7979"
token_file = "witness.token"
"#;

#[test]
fn witnesses_are_read_with_their_tokens_and_defaults() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("witness.token"), "w-token\n").unwrap();
    let config = fx.parse(&format!("{GOOD}{WITNESSES}")).unwrap();
    let witnesses = &config.probe.witnesses;
    assert_eq!(witnesses.len(), 2);
    assert_eq!(witnesses[0].name, "ams1");
    assert_eq!(witnesses[0].timeout, Duration::from_secs(15));
    assert_eq!(witnesses[0].token.expose(), "w-token");
    assert_eq!(witnesses[1].name, "10.8.0.3:7979", "named after its URL");
    assert_eq!(
        witnesses[1].timeout,
        Duration::from_secs(20),
        "twice the probe timeout"
    );
    let shown = toml::to_string(&config).unwrap() + &format!("{config:?}");
    assert!(!shown.contains("w-token"), "the token leaked: {shown}");
    assert!(config.secrets().iter().any(|s| s.expose() == "w-token"));
}

#[test]
fn a_bad_witness_names_its_key() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("witness.token"), "w-token\n").unwrap();
    let cases = [
        (
            "timeout = \"15s\"",
            "timeout = \"60s\"",
            "probe.witnesses[0].timeout",
            "shorter than probe.interval",
        ),
        (
            "url = \"https://proxy.example.com/witness\"",
            "url = \"witness:7979\"",
            "probe.witnesses[0].url",
            "http",
        ),
        (
            "url = \"https://proxy.example.com/witness\"",
            "url = \"https://proxy.example.com/witness?x=1\"",
            "probe.witnesses[0].url",
            "base URL",
        ),
        (
            "name = \"ams1\"",
            "name = \"10.8.0.3:7979\"",
            "probe.witnesses[1].name",
            "names two witnesses",
        ),
        (
            "token_file = \"witness.token\"\ntimeout",
            "timeout",
            "probe.witnesses[0].token",
            "missing",
        ),
        (
            "timeout = \"15s\"",
            "timeout = \"15s\"\nquorum = 2",
            "probe.witnesses[0]",
            "unknown field `quorum`",
        ),
    ];
    for (from, to, key, problem) in cases {
        let text = format!("{GOOD}{WITNESSES}");
        assert!(text.contains(from), "fixture lacks {from:?}");
        let message = fx
            .parse(&text.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(message.contains(key), "{key}: {message}");
        assert!(message.contains(problem), "{problem}: {message}");
    }
}

/// Regression: `failures_before_promotion = 1099511627776` was refused with
/// "1099511627776 must be at least 1".
#[test]
fn an_over_large_count_said_it_must_be_at_least_1() {
    let fx = Fixture::new();
    let count = |n: &str| {
        GOOD.replacen(
            "failures_before_promotion = 5",
            &format!("failures_before_promotion = {n}"),
            1,
        )
    };
    let err = fx.parse(&count("1099511627776")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: probe.failures_before_promotion: 1099511627776 is too large; the maximum is 4294967295",
            fx.dir.path().join("config.toml").display()
        )
    );
    let config = fx.parse(&count("4294967295")).unwrap();
    assert_eq!(config.probe.failures_before_promotion, u32::MAX);
    let err = fx.parse(&count("-1")).unwrap_err();
    assert_eq!(err.problem, "-1 must be at least 1");
}

/// Regression: a config that is a FIFO without a writer hung every command. Refused at
/// once, naming the file.
#[test]
fn a_fifo_config_is_refused_at_once() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("config.toml");
    crate::careful_read::make_fifo(&path);
    let read = path.clone();
    let err = crate::careful_read::returns_at_once(move || Config::load(&read)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the config file is a FIFO, not a regular file",
            path.display()
        )
    );
}

/// A config of millions of tiny tables took 11 s and 4.8 GB before it was refused.
#[test]
fn an_oversized_config_is_refused_before_it_is_parsed() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("config.toml");
    std::fs::write(&path, "[a]\n".repeat(300_000)).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(err.key.is_none());
    assert_eq!(
        err.problem,
        "the config file is 1.2 MiB, more than the 1 MiB a config file may be"
    );
}

/// Regression: `dns.api_token_file` naming a FIFO without a writer hung `check-config`;
/// a 200 MiB token file was accepted. Each is refused at once, naming the config file,
/// the key that named the secret file, and the problem.
#[test]
fn a_fifo_or_oversized_secret_file_is_refused_naming_its_key() {
    let fx = Fixture::new();
    let config = fx.dir.path().join("config.toml");
    let token = fx.dir.path().join("cloudflare.token");
    std::fs::remove_file(&token).unwrap();
    crate::careful_read::make_fifo(&token);
    std::fs::write(&config, GOOD).unwrap();
    let load = config.clone();
    let err = crate::careful_read::returns_at_once(move || Config::load(&load)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: dns.api_token_file: secret file {} is a FIFO, not a regular file",
            config.display(),
            token.display()
        )
    );

    std::fs::remove_file(&token).unwrap();
    let big = std::fs::File::create(&token).unwrap();
    big.set_len(200 * 1024 * 1024).unwrap();
    let err = Config::load(&config).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("dns.api_token_file"));
    assert_eq!(
        err.problem,
        format!(
            "secret file {} is 200 MiB, more than the 64 KiB a secret may be",
            token.display()
        )
    );
}

/// Regression: `type = "CNAME"`, `content = "203.0.113.20"` passed `check-config`.
/// A CNAME's content is a host name; each bad one names the key and the problem.
#[test]
fn a_cname_pointing_at_an_ip_address_is_refused() {
    let fx = Fixture::new();
    let cname = |content: &str| {
        GOOD.replacen(
            "type = \"A\"\ncontent = \"203.0.113.20\"",
            &format!("type = \"CNAME\"\ncontent = \"{content}\""),
            1,
        )
    };
    for (content, problem) in [
        (
            "203.0.113.20",
            "\"203.0.113.20\" is an IP address, not a host name",
        ),
        (
            "2001:db8::20",
            "\"2001:db8::20\" is an IP address, not a host name",
        ),
        ("203.0.113", "ends in an all-digit label"),
        ("standby..example.com", "has an empty label"),
        ("standby example.com", "has the label \"standby example\""),
        ("-standby.example.com", "neither starts nor ends with '-'"),
        (
            "http://standby.example.com",
            "has the label \"http://standby\"",
        ),
        ("app.example.com.", "is the record's own name"),
    ] {
        let text = cname(content);
        assert!(text.contains("CNAME"), "fixture lacks the A record");
        let err = match fx.parse(&text) {
            Ok(_) => panic!("accepted CNAME content {content:?}"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(message.contains("config.toml"), "{message}");
        assert_eq!(
            err.key.as_deref(),
            Some("dns.records[0].content"),
            "{message}"
        );
        assert!(message.contains(problem), "{content}: {message}");
    }
    for content in [
        "standby.example.com",
        "standby.example.com.",
        "_edge.standby-1.example.net",
    ] {
        let config = fx.parse(&cname(content)).unwrap();
        assert_eq!(config.dns.records[0].content, content);
    }
    let long_label = format!("{}.example.com", "a".repeat(64));
    let err = fx.parse(&cname(&long_label)).unwrap_err();
    assert!(err.problem.contains("at most 63"), "{err}");
    let long_name = vec!["abcdefghi"; 26].join(".");
    let err = fx.parse(&cname(&long_name)).unwrap_err();
    assert!(err.problem.contains("at most 253"), "{err}");
}

#[test]
fn a_record_already_right_in_another_spelling_points_at_the_standby() {
    let record = |kind: &str, content: &str| DnsRecordConfig {
        name: "app.example.com".into(),
        record_type: kind.into(),
        content: content.into(),
        zone_id: "z".into(),
    };
    assert!(record("AAAA", "2001:0db8:0:0::1").points_at("2001:db8::1"));
    assert!(record("A", "203.0.113.20").points_at("203.0.113.20"));
    assert!(!record("A", "203.0.113.20").points_at("203.0.113.21"));
    assert!(record("CNAME", "Standby.Example.com.").points_at("standby.example.com"));
    assert!(!record("CNAME", "standby.example.com").points_at("primary.example.com"));
}

/// Three webhooks, appended to GOOD.
const WEBHOOKS: &str = r#"
[[alerts.webhooks]]
url = "https://hooks.example.com/services/T1/B2/C3"
format = "slack"

[[alerts.webhooks]]
format = "pagerduty"
token_file = "pd.key"
name = "pager"
timeout = "2s"

[[alerts.webhooks]]
url = "https://am.example.com/api/v2/alerts"
format = "alertmanager"
token_file = "am.token"
"#;

#[test]
fn webhooks_are_read_with_their_defaults_and_their_tokens_redacted() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("pd.key"), "pd-routing-key\n").unwrap();
    std::fs::write(fx.dir.path().join("am.token"), "am-bearer\n").unwrap();
    let config = fx.parse(&format!("{GOOD}{WEBHOOKS}")).unwrap();
    let [slack, pager, am] = &config.webhooks[..] else {
        panic!("{:?}", config.webhooks)
    };
    assert_eq!(slack.name, "hooks.example.com", "the URL's host by default");
    assert_eq!(slack.format, WebhookFormat::Slack);
    assert!(slack.token.is_none());
    assert_eq!(slack.timeout, defaults::WEBHOOK_TIMEOUT);
    assert_eq!(pager.name, "pager");
    assert_eq!(pager.url.as_str(), defaults::PAGERDUTY_EVENTS_URL);
    assert_eq!(pager.token.as_ref().unwrap().expose(), "pd-routing-key");
    assert_eq!(pager.timeout, Duration::from_secs(2));
    assert_eq!(am.format, WebhookFormat::Alertmanager);
    let shown = toml::to_string(&config).unwrap() + &format!("{config:?}");
    assert!(
        !toml::to_string(&config).unwrap().contains("T1/B2/C3"),
        "a Slack webhook's path is its secret"
    );
    assert_eq!(slack.shown_url(), "https://hooks.example.com/[redacted]");
    assert_eq!(am.shown_url(), "https://am.example.com/api/v2/alerts");
    for secret in ["pd-routing-key", "am-bearer"] {
        assert!(!shown.contains(secret), "{secret} leaked");
        assert!(
            config.secrets().iter().any(|s| s.expose() == secret),
            "{secret} is not scrubbed"
        );
    }
    assert!(
        !config.warnings.iter().any(|w| w.contains("log only")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn webhooks_without_telegram_do_not_draw_the_log_only_warning() {
    let fx = Fixture::new();
    let start = GOOD.find("[telegram]").unwrap();
    let end = start + GOOD[start..].find("api_url").unwrap();
    let end = end + GOOD[end..].find('\n').unwrap();
    let without = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let config = fx.parse(&without).unwrap();
    assert!(config.warnings.iter().any(|w| w.contains("log only")));
    let hook = "[[alerts.webhooks]]\nurl = \"https://h.example.com/\"\nformat = \"json\"\n";
    let config = fx.parse(&format!("{without}{hook}")).unwrap();
    assert!(config.telegram.is_none());
    assert!(!config.warnings.iter().any(|w| w.contains("log only")));
}

#[test]
fn a_bad_webhook_names_its_key_and_the_problem() {
    let fx = Fixture::new();
    let hook = |body: &str| format!("{GOOD}\n[[alerts.webhooks]]\n{body}\n");
    let cases = [
        (
            "url = \"https://h.example.com/\"\nformat = \"teams\"",
            "alerts.webhooks[0].format",
            "not a format",
        ),
        ("format = \"json\"", "alerts.webhooks[0].url", "missing"),
        (
            "url = \"ftp://h.example.com/\"\nformat = \"json\"",
            "alerts.webhooks[0].url",
            "http",
        ),
        (
            "format = \"pagerduty\"",
            "alerts.webhooks[0].token_file",
            "routing key",
        ),
        (
            "url = \"https://h.example.com/\"\nformat = \"json\"\ntoken_file = \"nope.token\"",
            "alerts.webhooks[0].token_file",
            "cannot read",
        ),
        (
            "url = \"https://h.example.com/\"\nformat = \"json\"\nname = \"telegram\"",
            "alerts.webhooks[0].name",
            "built-in",
        ),
        (
            "url = \"https://h.example.com/\"\nformat = \"json\"\ntimeout = \"soon\"",
            "alerts.webhooks[0].timeout",
            "not a duration",
        ),
        (
            "url = \"https://h.example.com/\"\nformat = \"json\"\nretries = 3",
            "alerts.webhooks",
            "unknown field `retries`",
        ),
        (
            "url = \"https://h.example.com/a\"\nformat = \"json\"\n[[alerts.webhooks]]\nurl = \"https://h.example.com/b\"\nformat = \"slack\"",
            "alerts.webhooks[1].name",
            "unique",
        ),
    ];
    for (body, key, problem) in cases {
        let message = match fx.parse(&hook(body)) {
            Ok(_) => panic!("accepted {body:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("config.toml"), "no file in {message:?}");
        assert!(
            message.contains(key),
            "{body:?}: expected {key:?} in {message:?}"
        );
        assert!(
            message.contains(problem),
            "{body:?}: expected {problem:?} in {message:?}"
        );
    }
}

/// `[metrics]` is opt-in: without the table no listener; with it, an IP address and a
/// port, shown by `check-config`.
#[test]
fn metrics_are_served_only_when_the_table_names_an_address() {
    let fx = Fixture::new();
    let config = fx.parse(GOOD).unwrap();
    assert_eq!(config.metrics, None);
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(!shown.contains("[metrics]"), "{shown}");

    for (listen, address) in [
        ("127.0.0.1:9187", "127.0.0.1:9187"),
        ("[::1]:9187", "[::1]:9187"),
        (" 0.0.0.0:9187 ", "0.0.0.0:9187"),
    ] {
        let config = fx
            .parse(&format!("{GOOD}\n[metrics]\nlisten = \"{listen}\"\n"))
            .unwrap();
        assert_eq!(
            config.metrics.as_ref().map(|m| m.listen),
            Some(address.parse().unwrap())
        );
        let shown = toml::to_string_pretty(&config).unwrap();
        assert!(
            shown.contains(&format!("[metrics]\nlisten = \"{address}\"")),
            "{shown}"
        );
    }
}

#[test]
fn a_bad_metrics_address_names_its_key_and_the_problem() {
    let fx = Fixture::new();
    for (table, key, problem) in [
        (
            "listen = \"127.0.0.1\"",
            "metrics.listen",
            "not an IP address with a port",
        ),
        (
            "listen = \"localhost:9187\"",
            "metrics.listen",
            "not an IP address with a port",
        ),
        (
            "listen = \"127.0.0.1:99999\"",
            "metrics.listen",
            "not an IP address with a port",
        ),
        ("listen = \"\"", "metrics.listen", "must not be empty"),
        ("", "metrics", "missing field `listen`"),
        (
            "listen = \"127.0.0.1:9187\"\npath = \"/m\"",
            "metrics",
            "unknown field `path`",
        ),
    ] {
        let message = match fx.parse(&format!("{GOOD}\n[metrics]\n{table}\n")) {
            Ok(_) => panic!("accepted {table:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("config.toml"), "no file in {message:?}");
        assert!(
            message.contains(key),
            "{table:?}: expected {key:?} in {message:?}"
        );
        assert!(
            message.contains(problem),
            "{table:?}: expected {problem:?} in {message:?}"
        );
    }
}

/// `[metrics]` takes a token, TLS files and its limits: read, shown redacted by
/// `check-config`, and the token is a secret like any other.
#[test]
fn the_metrics_token_tls_files_and_limits_are_read() {
    let fx = Fixture::new();
    let (cert, key, _) = crate::serve::testing::self_signed(fx.dir.path());
    std::fs::write(fx.dir.path().join("metrics.token"), "scrape-token-0123\n").unwrap();
    let table = format!(
        "[metrics]\nlisten = \"127.0.0.1:9187\"\ntoken_file = \"metrics.token\"\ntls_cert_file = {cert:?}\ntls_key_file = \"server.key\"\nwrite_timeout = \"3s\"\nmax_connections_per_client = 2\n"
    );
    let config = fx.parse(&format!("{GOOD}\n{table}")).unwrap();
    let metrics = config.metrics.as_ref().unwrap();
    assert_eq!(
        metrics.token.as_ref().unwrap().expose(),
        "scrape-token-0123"
    );
    let tls = metrics.tls.as_ref().unwrap();
    assert_eq!((&tls.cert_file, &tls.key_file), (&cert, &key));
    assert_eq!(metrics.write_timeout, std::time::Duration::from_secs(3));
    assert_eq!(metrics.max_connections_per_client, 2);
    assert!(
        config
            .secrets()
            .iter()
            .any(|s| s.expose() == "scrape-token-0123")
    );
    let shown = toml::to_string_pretty(&config).unwrap();
    assert!(!shown.contains("scrape-token-0123"), "{shown}");
    assert!(shown.contains("tls_key_file"), "{shown}");
    // Left out: no token, no TLS, the defaults.
    let config = fx
        .parse(&format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9187\"\n"))
        .unwrap();
    let metrics = config.metrics.unwrap();
    assert_eq!((metrics.token, metrics.tls), (None, None));
    assert_eq!(metrics.max_connections_per_client, 4);
    assert_eq!(metrics.write_timeout, std::time::Duration::from_secs(10));
}

#[test]
fn bad_metrics_tls_token_or_limits_name_their_key() {
    let fx = Fixture::new();
    let (_, _, _) = crate::serve::testing::self_signed(fx.dir.path());
    let other = fx.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    crate::serve::testing::self_signed(&other);
    std::fs::write(fx.dir.path().join("not.pem"), "hello\n").unwrap();
    for (keys, key, problem) in [
        (
            "tls_cert_file = \"server.crt\"",
            "metrics.tls_key_file",
            "missing",
        ),
        (
            "tls_key_file = \"server.key\"",
            "metrics.tls_cert_file",
            "missing",
        ),
        (
            "tls_cert_file = \"nowhere.crt\"\ntls_key_file = \"server.key\"",
            "metrics.tls_cert_file",
            "nowhere.crt",
        ),
        (
            "tls_cert_file = \"not.pem\"\ntls_key_file = \"server.key\"",
            "metrics.tls_cert_file",
            "holds no certificate",
        ),
        (
            "tls_cert_file = \"server.crt\"\ntls_key_file = \"not.pem\"",
            "metrics.tls_key_file",
            "no PEM private key",
        ),
        (
            "tls_cert_file = \"server.crt\"\ntls_key_file = \"other/server.key\"",
            "metrics.tls_key_file",
            "does not go with the certificate",
        ),
        (
            "token_file = \"nowhere.token\"",
            "metrics.token_file",
            "cannot read secret file",
        ),
        (
            "token = \"a\"\ntoken_file = \"metrics.token\"",
            "metrics.token",
            "not both",
        ),
        (
            "write_timeout = \"0s\"",
            "metrics.write_timeout",
            "longer than zero",
        ),
        (
            "max_connections_per_client = 0",
            "metrics.max_connections_per_client",
            "at least 1",
        ),
    ] {
        let text = format!("{GOOD}\n[metrics]\nlisten = \"127.0.0.1:9187\"\n{keys}\n");
        let message = match fx.parse(&text) {
            Ok(_) => panic!("accepted {keys:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("config.toml"), "{message}");
        assert!(
            message.contains(&format!("{key}: ")) && message.contains(problem),
            "{keys:?}: expected {key:?} and {problem:?} in {message:?}"
        );
    }
}

/// A `[peer]` table for [`GOOD`]: the primary's database, seen from the standby.
const PEER: &str = r#"
[peer]
name = "primary-nyc1"
host = "198.51.100.10"
user = "watchdog"
password_file = "primary-db.password"
replication_user = "repl"
replication_password_file = "replication.password"
switchover_timeout = "20s"
"#;

#[test]
fn a_peer_is_read_with_its_defaults_and_secrets() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("replication.password"), "repl-pw\n").unwrap();
    let config = fx.parse(&format!("{GOOD}{PEER}")).unwrap();
    let peer = config.peer.as_ref().unwrap();
    assert_eq!(peer.name, "primary-nyc1");
    assert_eq!((peer.host.as_str(), peer.port), ("198.51.100.10", 3306));
    assert_eq!(peer.replication_password.expose(), "repl-pw");
    assert_eq!(peer.switchover_timeout, Duration::from_secs(20));
    assert_eq!(peer.catch_up_timeout, defaults::PEER_CATCH_UP_TIMEOUT);
    assert_eq!(peer.write_drain_timeout, defaults::PEER_WRITE_DRAIN_TIMEOUT);
    assert!(peer.is_source("198.51.100.10", Some(3306)));
    assert!(!peer.is_source("198.51.100.10", Some(3307)));
    assert!(!peer.is_source("198.51.100.11", Some(3306)));
    assert!(config.apps.stop_when_demoted);
    assert!(
        config.secrets().iter().any(|s| s.expose() == "repl-pw"),
        "the replication password is scrubbed like every secret"
    );
    let shown = serde_json::to_string(&config).unwrap();
    assert!(!shown.contains("repl-pw"), "{shown}");
    assert!(fx.parse(GOOD).unwrap().peer.is_none());
}

#[test]
fn a_bad_peer_names_its_key() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("replication.password"), "repl-pw\n").unwrap();
    for (from, to, key, problem) in [
        (
            "host = \"198.51.100.10\"\nuser",
            "host = \"127.0.0.1\"\nuser",
            "peer.host",
            "this host's own database",
        ),
        // Issue 18, item 6: `localhost` and the replica's own port passed check-config.
        (
            "host = \"198.51.100.10\"\nuser",
            "host = \"localhost\"\nuser",
            "peer.host",
            "this host's own database",
        ),
        (
            "replication_user = \"repl\"",
            "replication_user = \"re'pl\"",
            "peer.replication_user",
            "quotes",
        ),
        (
            "switchover_timeout = \"20s\"",
            "switchover_timeout = \"soon\"",
            "peer.switchover_timeout",
            "not a duration",
        ),
        (
            "replication_password_file = \"replication.password\"",
            "replication_password_file = \"missing.password\"",
            "peer.replication_password",
            "missing.password",
        ),
        (
            "replication_user = \"repl\"\n",
            "",
            "replication_user",
            "missing",
        ),
    ] {
        let text = format!("{GOOD}{}", PEER.replace(from, to));
        assert_ne!(text, format!("{GOOD}{PEER}"), "{from} not found");
        let error = fx.parse(&text).unwrap_err().to_string();
        assert!(
            error.contains(key) && error.contains(problem),
            "{from} -> {to}: {error}"
        );
    }
}

#[test]
fn the_shipped_pair_mirrors_itself() {
    let fx = Fixture::new();
    for name in [
        "peer-db.password",
        "local-db.password",
        "replication.password",
    ] {
        write_secret(&fx.dir.path().join(name), "pw\n");
    }
    let parse = |text: &str| {
        fx.parse(&text.replace("/etc/failover-watchdog/", ""))
            .unwrap()
    };
    let a = parse(include_str!("../../config/pair/nyc1.toml"));
    let b = parse(include_str!("../../config/pair/fra1.toml"));
    for (this, other) in [(&a, &b), (&b, &a)] {
        let peer = this.peer.as_ref().unwrap();
        assert_eq!(peer.name, other.node.name);
        assert_eq!(
            peer.host, other.dns.records[0].content,
            "{}'s peer is the other host's address",
            this.node.name
        );
        assert_eq!(
            this.primary_database().unwrap().0,
            peer.host,
            "the checks probe the peer"
        );
        assert_eq!(this.replica.host, "127.0.0.1");
        assert_eq!(
            other.peer.as_ref().unwrap().host,
            this.replica.connect_address.host,
            "the peer reaches {} where it says",
            this.node.name
        );
        assert!(this.apps.stop_when_demoted);
        assert!(this.warnings.is_empty(), "{:?}", this.warnings);
    }
}

#[test]
fn connect_address_defaults_to_the_replica_and_a_loopback_one_is_warned_with_a_remote_peer() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("replication.password"), "repl-pw\n").unwrap();
    let alone = fx.parse(GOOD).unwrap();
    assert_eq!(alone.replica.connect_address.to_string(), "127.0.0.1:3306");
    assert!(
        !alone.warnings.iter().any(|w| w.contains("connect_address")),
        "{:?}",
        alone.warnings
    );

    let paired = fx.parse(&format!("{GOOD}{PEER}")).unwrap();
    let warning = paired
        .warnings
        .iter()
        .find(|w| w.contains("replica.connect_address"))
        .expect("a loopback connect_address with a remote peer is warned");
    assert!(
        warning.contains("127.0.0.1:3306 is loopback") && warning.contains("198.51.100.10"),
        "{warning}"
    );

    let set = GOOD.replace(
        "reset_replica = true",
        "reset_replica = true\nconnect_address = \"203.0.113.20:3307\"",
    );
    let config = fx.parse(&format!("{set}{PEER}")).unwrap();
    assert_eq!(
        config.replica.connect_address,
        crate::config::Address {
            host: "203.0.113.20".into(),
            port: 3307
        }
    );
    assert!(
        !config
            .warnings
            .iter()
            .any(|w| w.contains("connect_address"))
    );
    let shown = serde_json::to_value(&config).unwrap();
    assert_eq!(shown["replica"]["connect_address"], "203.0.113.20:3307");

    for bad in ["db.example", "db.example:0", ":3306", "db.example:port"] {
        let text = GOOD.replace(
            "reset_replica = true",
            &format!("reset_replica = true\nconnect_address = \"{bad}\""),
        );
        let error = fx.parse(&text).unwrap_err().to_string();
        assert!(error.contains("replica.connect_address"), "{bad}: {error}");
    }
}

/// A config of the keys every table needs, with `checks` and `rest` in it.
fn minimal(checks: &str, rest: &str) -> String {
    format!(
        r#"
[probe]
{checks}
[[probe.self_checks]]
type = "tcp"
address = "1.1.1.1:53"
[replica]
user = "failover"
password_file = "replica-db.password"
[dns]
api_token_file = "cloudflare.token"
zone_id = "z"
[[dns.records]]
name = "app.example.com"
content = "203.0.113.20"
[telegram]
bot_token_file = "telegram.token"
chat_id = "1"
{rest}"#
    )
}

const REMOTE_CHECK: &str = r#"
[[probe.checks]]
type = "mysql"
host = "198.51.100.10"
user = "watchdog"
password_file = "primary-db.password"
"#;

#[test]
fn tls_defaults_by_address_and_an_upgraded_config_is_told_what_changed() {
    let fx = Fixture::new();
    let config = fx.parse(&minimal(REMOTE_CHECK, "")).unwrap();
    let CheckConfig::Mysql { tls, .. } = &config.probe.checks[0] else {
        panic!("a mysql check");
    };
    assert_eq!(tls.mode, TlsMode::VerifyIdentity, "not on this host");
    assert_eq!(tls.ca, None);
    assert_eq!(config.replica.tls, TlsConfig::DISABLED, "loopback");
    assert_eq!(config.replication.tls.mode, TlsMode::VerifyIdentity);
    assert_eq!(config.replication.heartbeat_period, Duration::from_secs(5));
    assert_eq!(config.replication.connect_retry, Duration::from_secs(1));
    assert_eq!(config.replication.retry_count, None);
    for key in ["probe.checks[0].tls: not set", "replication.tls: not set"] {
        assert!(
            config.warnings.iter().any(|w| w.contains(key)
                && w.contains("198.51.100.10")
                && w.contains("tls_ca_file")),
            "{key}: {:?}",
            config.warnings
        );
    }

    let local = REMOTE_CHECK.replace("198.51.100.10", "localhost");
    let config = fx.parse(&minimal(&local, "")).unwrap();
    let CheckConfig::Mysql { tls, .. } = &config.probe.checks[0] else {
        panic!("a mysql check");
    };
    assert_eq!(tls.mode, TlsMode::Disabled);
    assert_eq!(config.replication.tls.mode, TlsMode::Disabled);
    assert!(
        !config.warnings.iter().any(|w| w.contains(".tls")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn the_tls_files_are_read_once_and_shown_by_path_only() {
    let fx = Fixture::new();
    let text = GOOD.replace(
        "tls_ca_file = \"mariadb-ca.pem\"",
        "tls_ca_file = \"mariadb-ca.pem\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"",
    );
    let config = fx.parse(&text).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let (_, _, _, _, tls) = config.primary_database().unwrap();
    let ca = tls.ca.as_ref().unwrap();
    assert_eq!(ca.path, fx.dir.path().join("mariadb-ca.pem"));
    assert_eq!(&*ca.pem, TEST_CA.as_bytes());
    let client = tls.client.as_ref().unwrap();
    assert!(
        client.key.pem.starts_with(&[0x30, 0x82]),
        "the RSA key, unwrapped to PKCS#1 DER for the MariaDB client"
    );
    let shown = toml::to_string(&config).unwrap() + &format!("{config:?}");
    assert!(shown.contains("tls = \"verify_identity\""), "{shown}");
    assert!(shown.contains("client.key"), "{shown}");
    for content in ["BEGIN CERTIFICATE", "BEGIN PRIVATE KEY", "MIIEvgIBADAN"] {
        assert!(!shown.contains(content), "{content} shown:\n{shown}");
    }
    assert!(
        shown.contains("tls_ca_file = \"/etc/mysql/ssl/ca.pem\""),
        "{shown}"
    );
}

#[test]
fn a_server_elsewhere_reached_without_verification_draws_a_warning() {
    let fx = Fixture::new();
    for (mode, says) in [
        ("disabled", "plain text"),
        ("required", "man in the middle"),
    ] {
        let text = GOOD.replace(
            "tls = \"verify_identity\"\ntls_ca_file = \"mariadb-ca.pem\"",
            &format!("tls = \"{mode}\""),
        );
        let config = fx.parse(&text).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("probe.checks[2].tls")
                    && w.contains("198.51.100.10")
                    && w.contains(says)),
            "{mode}: {:?}",
            config.warnings
        );
    }
    // A verifying mode chosen without a CA file: the public CAs, as asked.
    let text = GOOD.replace("\ntls_ca_file = \"mariadb-ca.pem\"", "");
    assert!(fx.parse(&text).unwrap().warnings.is_empty());
    // This host's own database in plain TCP is no risk.
    let text = GOOD.replace(
        "reset_replica = true",
        "reset_replica = true\ntls = \"disabled\"",
    );
    assert!(fx.parse(&text).unwrap().warnings.is_empty());
}

#[test]
fn each_bad_tls_or_channel_key_names_the_key_and_the_problem() {
    let fx = Fixture::new();
    let ca = "tls_ca_file = \"mariadb-ca.pem\"";
    let channel_ca = "tls_ca_file = \"/etc/mysql/ssl/ca.pem\"";
    for (from, to, key, problem) in [
        (
            "tls = \"verify_identity\"",
            "tls = \"verify_full\"",
            "probe.checks[2].tls",
            "not a TLS mode",
        ),
        (
            ca,
            "tls_ca_file = \"missing.pem\"",
            "probe.checks[2].tls_ca_file",
            "cannot read",
        ),
        (
            ca,
            "tls_ca_file = \"telegram.token\"",
            "probe.checks[2].tls_ca_file",
            "holds no PEM certificate",
        ),
        (
            ca,
            "tls_ca_file = \"/dev/null/x\"",
            "probe.checks[2].tls_ca_file",
            "cannot read",
        ),
        (
            "tls = \"verify_identity\"\ntls_ca",
            "tls = \"required\"\ntls_ca",
            "probe.checks[2].tls_ca_file",
            "only verify_ca and verify_identity",
        ),
        (
            ca,
            "tls_cert_file = \"client.pem\"",
            "probe.checks[2].tls_key_file",
            "missing",
        ),
        (
            ca,
            "tls_key_file = \"client.key\"",
            "probe.checks[2].tls_cert_file",
            "missing",
        ),
        (
            ca,
            "tls_cert_file = \"client.pem\"\ntls_key_file = \"mariadb-ca.pem\"",
            "probe.checks[2].tls_key_file",
            "holds no PEM private key",
        ),
        (
            "heartbeat_period = \"5s\"",
            "heartbeat_period = \"1500us\"",
            "replication.heartbeat_period",
            "whole milliseconds",
        ),
        (
            "heartbeat_period = \"5s\"",
            "heartbeat_period = \"0s\"",
            "replication.heartbeat_period",
            "longer than zero",
        ),
        (
            "heartbeat_period = \"5s\"",
            "connect_retry = \"1500ms\"",
            "replication.connect_retry",
            "whole seconds",
        ),
        (
            "heartbeat_period = \"5s\"",
            "retry_count = 0",
            "replication.retry_count",
            "at least 1",
        ),
        (
            channel_ca,
            "tls_ca_file = \"ssl/ca.pem\"",
            "replication.tls_ca_file",
            "absolute path",
        ),
        (
            "tls = \"verify_identity\"\ntls_ca_file = \"/etc",
            "tls = \"disabled\"\ntls_ca_file = \"/etc",
            "replication.tls_ca_file",
            "only verify_ca",
        ),
        (
            channel_ca,
            "tls_cert_file = \"/etc/mysql/ssl/replica.pem\"",
            "replication.tls_key_file",
            "missing",
        ),
    ] {
        assert!(GOOD.contains(from), "fixture lacks {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let message = match fx.parse(&text) {
            Ok(_) => panic!("accepted: {from:?} -> {to:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains("config.toml") && message.contains(key) && message.contains(problem),
            "{to:?}: expected {key:?} and {problem:?} in {message:?}"
        );
    }
    // verify_ca checks against a CA: the channel's needs its path.
    let text = GOOD.replace(
        "tls = \"verify_identity\"\ntls_ca_file = \"/etc/mysql/ssl/ca.pem\"",
        "tls = \"verify_ca\"",
    );
    let message = fx.parse(&text).unwrap_err().to_string();
    assert!(
        message.contains("replication.tls_ca_file: missing"),
        "{message}"
    );
}

#[test]
fn the_channel_is_read_with_every_key_and_defaults_by_the_peers_address() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("replication.password"), "repl-pw\n").unwrap();
    let text = GOOD.replace(
        "heartbeat_period = \"5s\"",
        "heartbeat_period = \"1500ms\"\nconnect_retry = \"10s\"\nretry_count = 86400\ntls_cert_file = \"/etc/mysql/ssl/replica.pem\"\ntls_key_file = \"/etc/mysql/ssl/replica.key\"",
    );
    let channel = fx.parse(&text).unwrap().replication;
    assert_eq!(channel.heartbeat_period, Duration::from_millis(1500));
    assert_eq!(channel.connect_retry, Duration::from_secs(10));
    assert_eq!(channel.retry_count, Some(86400));
    assert_eq!(channel.tls.ca(), "/etc/mysql/ssl/ca.pem");
    assert_eq!(channel.tls.cert(), "/etc/mysql/ssl/replica.pem");
    assert_eq!(channel.tls.key(), "/etc/mysql/ssl/replica.key");

    // Without a [replication] table, the peer's address decides, as for the peer.
    let bare = GOOD.split("[replication]").next().unwrap();
    let local_peer = PEER.replace("198.51.100.10", "127.0.0.2");
    let config = fx.parse(&format!("{bare}{local_peer}")).unwrap();
    assert_eq!(config.replication.tls.mode, TlsMode::Disabled);
    let config = fx.parse(&format!("{bare}{PEER}")).unwrap();
    assert_eq!(config.replication.tls.mode, TlsMode::VerifyIdentity);
    assert_eq!(
        config.peer.as_ref().unwrap().tls.mode,
        TlsMode::VerifyIdentity
    );
}

#[test]
fn a_heartbeat_too_slow_for_the_detection_window_is_warned() {
    let fx = Fixture::new();
    let text = GOOD.replace("heartbeat_period = \"5s\"", "heartbeat_period = \"2m\"");
    let config = fx.parse(&text).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("replication.heartbeat_period") && w.contains("confirmed late")),
        "{:?}",
        config.warnings
    );
}

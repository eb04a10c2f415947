//! Every default value of every config key, in one place: what a key is when the file
//! leaves it out. The converters in `tables.rs` (and the witness config) take them from
//! here and nowhere else. `config/example.toml` and `config/witness.toml` name the
//! same values in their comments: change them together.
//!
//! A default that follows from other keys (the replication silence from the interval, a
//! witness's time limit from the probe's) is a function of those keys, here too.

use std::time::Duration;

use url::Url;

use failover_watchdog_core::report::FailWhen;

use super::{TlsMode, is_loopback};

/// `node.name` when the host name cannot be read.
pub const NODE_NAME_WITHOUT_HOST_NAME: &str = "standby";

/// `node.state_dir`: the directory the shipped systemd unit provides (`StateDirectory=`).
pub const STATE_DIR: &str = "/var/lib/failover-watchdog";

/// `probe.interval`: how often a round of checks runs.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// `probe.suspect_interval`, unset: rounds this often while the primary is in doubt,
/// or every `interval` when that is shorter. Five seconds make the shipped defaults (5
/// failures, a 10 s timeout, a 5 s heartbeat) decide a dead primary within 21 s and a
/// silent one within 52 s (`cadence::CadenceSettings::window`).
pub const SUSPECT_INTERVAL: Duration = Duration::from_secs(5);

/// `probe.suspect_interval`, unset: [`SUSPECT_INTERVAL`], at most `interval`.
pub fn suspect_interval(interval: Duration) -> Duration {
    SUSPECT_INTERVAL.min(interval)
}

/// `probe.timeout` (the standby's and the witness's): the longest one check may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// `probe.failures_before_promotion`: failed rounds in a row before a promotion.
pub const FAILURES_BEFORE_PROMOTION: u32 = 5;

/// `probe.fail_when` (the standby's and the witness's): a round fails when any check fails.
pub const FAIL_WHEN: FailWhen = FailWhen::Any;

/// `witness.header_timeout`: how long a client may take to send its whole request head
/// (and how long a kept-alive connection may sit idle) before the witness drops it. The
/// standby sends its request at once; only a stalled or hostile client needs longer.
pub const WITNESS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// `witness.max_connections`: connections the witness serves at once; more wait in the
/// kernel's listen backlog. Far below the usual 1024 descriptors a service may open.
pub const WITNESS_MAX_CONNECTIONS: u32 = 256;

/// `witness.max_connections_per_client`: connections one client (an IP address, an IPv6
/// /64) may hold before its stalest is dropped for a new one. A standby holds one or two;
/// a flood from one address keeps no more than this, whatever `max_connections` is.
pub const WITNESS_MAX_CONNECTIONS_PER_CLIENT: u32 = 16;

/// `witness.write_timeout` and `metrics.write_timeout`: how long a client may take to
/// read an answer (a few hundred bytes from the witness, a few KiB of metrics) before
/// its connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `metrics.max_connections_per_client`: a Prometheus server scrapes over one
/// connection; an operator's curl adds one.
pub const METRICS_MAX_CONNECTIONS_PER_CLIENT: u32 = 4;

/// `witness.requests_per_second`: the rate each client (IP address, an IPv6 /64) may
/// keep up. A standby asks once per failing round, its retries at least 200 ms apart.
pub const WITNESS_REQUESTS_PER_SECOND: u32 = 2;

/// `witness.request_burst`: the requests a client may send at once before the rate
/// applies: a standby's retries and a smoke test at the same time fit in it.
pub const WITNESS_REQUEST_BURST: u32 = 10;

/// `probe.confirm_with_replication`: a failed round counts only when the replica no
/// longer hears from the primary.
pub const CONFIRM_WITH_REPLICATION: bool = true;

/// `port` of a `mysql` check, and `replica.port`: MariaDB's own port.
pub const MYSQL_PORT: u16 = 3306;

/// `replica.host`: the standby's own MariaDB, on this host.
pub const REPLICA_HOST: &str = "127.0.0.1";

/// `replica.connection_name`: the default (unnamed) replication connection.
pub const REPLICA_CONNECTION_NAME: &str = "";

/// `replica.apply_timeout`: the longest wait for the relay log to be applied.
pub const REPLICA_APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// `replica.reset_replica`: `RESET SLAVE ALL` once stopped, so it never reconnects.
pub const RESET_REPLICA: bool = true;

/// `replica.max_lag`: the lag guard's limit.
pub const REPLICA_MAX_LAG: Duration = Duration::from_secs(30);

/// `tls` of a MariaDB server this program reaches at `host` (a `mysql` check's,
/// `[replica]`, `[peer]`), and of the replication channel from it: a server on this
/// machine is reached in plain TCP (nothing crosses a network), any other verified in
/// full, name included, as a link across regions must be.
pub fn tls_mode(host: &str) -> TlsMode {
    if is_loopback(host) {
        TlsMode::Disabled
    } else {
        TlsMode::VerifyIdentity
    }
}

/// `replication.heartbeat_period`: how often a silent primary sends its replica a
/// heartbeat. Three missed heartbeats confirm a silent primary
/// ([`HEARTBEATS_OF_SILENCE`]), so a hung primary is confirmed within 15 s; MariaDB's
/// own default (half of `slave_net_timeout`, 30 s) would take 90 s.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(5);

/// `replication.connect_retry`: how long a replica waits before it reconnects to its
/// source. Short, so that a network blip does not look like a silent primary
/// (MariaDB's own default is 60 s).
pub const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// `replication.semi_sync`: this program leaves semi-sync as `my.cnf` set it (and only
/// turns a former semi-sync primary's master side off when it becomes a replica).
pub const SEMI_SYNC: bool = false;

/// `peer.fence_when_not_serving`: a host whose database is writable while every DNS
/// record points elsewhere makes itself read-only and stops its units.
pub const FENCE_WHEN_NOT_SERVING: bool = true;

/// `apps.start_timeout`: per unit, `systemctl start` plus its confirmation.
pub const APPS_START_TIMEOUT: Duration = Duration::from_secs(90);

/// `apps.stop_when_demoted`: a host that finds itself a standby again (read-only,
/// replicating from its peer) stops its application units, so traffic drains to the
/// primary.
pub const STOP_APPS_WHEN_DEMOTED: bool = true;

/// `peer.catch_up_timeout`: the longest `rejoin` waits for this host to catch up with
/// the peer once it replicates from it.
pub const PEER_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// `peer.switchover_timeout`: the longest `switchover` waits for this host to apply the
/// fenced primary's final position before it undoes the fence.
pub const PEER_SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// `peer.write_drain_timeout`: how long `switchover` lets the fenced primary's running
/// write transactions finish before it ends the remaining client connections.
pub const PEER_WRITE_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// `dns.provider`: the only one there is.
pub const DNS_PROVIDER: &str = "cloudflare";

/// `dns.api_base`: Cloudflare's v4 API.
pub const DNS_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// `dns.update_timeout`: the longest the `update_dns` step may take, retries included.
pub const DNS_UPDATE_TIMEOUT: Duration = Duration::from_secs(120);

/// `type` of a `[[dns.records]]`.
pub const DNS_RECORD_TYPE: &str = "A";

/// `telegram.api_url`: the Bot API.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// `promotion.fence_timeout`: the longest the fence command may run.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// `promotion.require_fence`: a failed fence is alerted and the promotion goes on.
pub const REQUIRE_FENCE: bool = false;

/// `promotion.hook_timeout`: the longest each hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// `promotion.split_brain_alert_every`: how often the alert repeats while the old
/// primary answers after a promotion.
pub const SPLIT_BRAIN_ALERT_EVERY: Duration = Duration::from_secs(15 * 60);

/// `smoke.check_timeout`: each readiness check's time limit, except the trial boot's.
pub const SMOKE_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// `smoke.trial_boot_timeout`: the longest the trial boot may run.
pub const SMOKE_TRIAL_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

// The defaults must pass the rules the converters apply to written values.
const _: () = assert!(PROBE_TIMEOUT.as_nanos() < PROBE_INTERVAL.as_nanos());
const _: () = assert!(FAILURES_BEFORE_PROMOTION >= 1 && MYSQL_PORT != 0);

/// `node.name` (the standby's and the witness's): the host name, or
/// [`NODE_NAME_WITHOUT_HOST_NAME`] when it cannot be read.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| NODE_NAME_WITHOUT_HOST_NAME.to_string())
}

// `probe.replication_silence`, unset: a few of the replica's own heartbeat periods, or
// without heartbeats two intervals. The rule is the verdict's, so it lives with it
// (`verdict::HEARTBEATS_OF_SILENCE`, `verdict::replication_silence_without_heartbeats`).

/// How `check-config` shows an unset `probe.replication_silence`.
pub const REPLICATION_SILENCE_DERIVED: &str = "3 heartbeat periods of the replica (derived)";

/// `probe.witnesses[].name`: the URL's host and port, or the URL as written when it
/// has neither.
pub fn witness_name(url: &Url, written: &str) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => written.to_string(),
    }
}

/// `probe.witnesses[].timeout`: twice the probe timeout (the witness runs its own checks
/// first), at most half the interval, so a round ends before the next is due.
pub fn witness_timeout(probe_timeout: Duration, interval: Duration) -> Duration {
    (probe_timeout * 2).min(interval / 2)
}

/// `smoke.max_lag`: the lag guard's limit (`replica.max_lag`), so a passing smoke test
/// means an automatic promotion would not be held for lag.
pub fn smoke_max_lag(replica_max_lag: Duration) -> Duration {
    replica_max_lag
}

/// `alerts.webhooks[].url` for `format = "pagerduty"`: the Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `alerts.webhooks[].timeout`: one attempt's limit. A webhook answers in well under a
/// second; the delivery budget retries a slow one.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

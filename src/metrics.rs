//! Prometheus metrics (`[metrics]`, opt-in): a sink of plain values. The daemon and the
//! witness push what they saw (names, counts, durations, timestamps) into registries
//! of their own; this module knows nothing of promotions, journals or rounds beyond the
//! values it is given, and imports none of the modules that produce them. The daemon's
//! values come through `daemon/feed.rs`, the witness's from `witness/server.rs`.
//!
//! **The loop never waits for a scrape.** Every update is an atomic store (or, for a
//! label set seen for the first time, an insert under a family's lock); the server, on
//! its own tasks, only encodes, and holds a family's lock only while that family is
//! written out, never across an await. Alert deliveries are not copied at all: they are
//! read through the function given to [`DaemonMetrics::new`] at scrape time.
//!
//! **The encoding is prometheus-client's.** Prometheus itself asks for OpenMetrics
//! (`Accept: application/openmetrics-text`) and gets the crate's output as it is. Any
//! other client (curl, `promtool check metrics`, an older scraper) gets the Prometheus
//! text format 0.0.4, which differs from it only in three marks: a counter's `# HELP`
//! and `# TYPE` name its samples' `_total` name, and there is no `# UNIT` or `# EOF`
//! line ([`to_text_format`]).
//!
//! **The server costs little and tells little.** It is served by [`crate::serve`], with
//! the witness's limits: a client has [`HEADER_TIMEOUT`] to send its request head and
//! `write_timeout` to read its answer, at most [`MAX_CONNECTIONS`] are open at once
//! (fewer when the open-file limit is low), and a client over its share
//! (`max_connections_per_client`) or a full listener drops the connection that has sent
//! the least of its request for the longest. With `token`, every request must carry it
//! as `Authorization: Bearer` (compared in constant time) before its path is looked
//! at; with `tls_cert_file` and `tls_key_file` it speaks HTTPS. It answers
//! `GET /metrics`, 405 to another method there, 404 to every other path. Check targets
//! are shown without a URL's password.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::shutdown::{Shutdown, Trigger};
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::config::MetricsConfig;
use crate::secret::Secret;
use crate::serve::{self, Handler, Limits};

/// Every metric's name starts with it (and an underscore).
pub const PREFIX: &str = "failover_watchdog";

/// How long a client may take to send its request head; also how long a kept-alive
/// connection may sit idle. A scraper sends its request at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections open at once: one or two Prometheus servers and an operator's curl.
pub const MAX_CONNECTIONS: u32 = 16;

/// The content type of OpenMetrics, as prometheus-client encodes it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A gauge of seconds (or a timestamp in seconds).
type Seconds = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaceLabels {
    pace: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    fault: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    r#type: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabels {
    witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessSaidLabels {
    witness: String,
    said: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PromotionLabels {
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

/// What a registry holds, shared with the server that encodes it.
pub type SharedRegistry = Arc<Registry>;

/// One check of the primary, as a round ran it.
#[derive(Debug, Clone, Copy)]
pub struct CheckSample<'a> {
    /// `http`, `tcp`, `mysql`.
    pub kind: &'a str,
    /// What it reached; a URL's password is left out of the label.
    pub target: &'a str,
    pub ok: bool,
    pub took: Duration,
}

/// The replica's replication as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationSample {
    /// `Seconds_Behind_Master`; `None` when it reported none.
    pub lag_seconds: Option<u64>,
    pub io_running: bool,
    pub sql_running: bool,
}

/// The cadence of rounds in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CadenceSample {
    /// `calm` or `suspect`.
    pub pace: &'static str,
    /// Seconds between rounds now.
    pub every: Duration,
    /// The detection window for a primary that dies, and one that falls silent (`None`:
    /// unknown).
    pub dead_within: Duration,
    pub silent_within: Option<Duration>,
}

/// One alert channel's deliveries since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDeliveries {
    /// `telegram`, a webhook's `name`, or `log`.
    pub channel: String,
    pub sent: u64,
    pub failed: u64,
}

/// `failover_watchdog_build_info{version,commit} 1`, in `registry`.
fn register_build_info(registry: &mut Registry) {
    let build_info = Family::<BuildLabels, Gauge>::default();
    build_info
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("FAILOVER_WATCHDOG_COMMIT"),
        })
        .set(1);
    registry.register(
        "build_info",
        "The version and git commit this binary was built from; always 1",
        build_info,
    );
}

/// The checks of the primary as last run: whether each passed, and how long it took.
#[derive(Clone, Default)]
struct Checks {
    up: Family<CheckLabels, Gauge>,
    duration: Family<CheckLabels, Seconds>,
    last_round: Seconds,
}

impl Checks {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "check_up",
            "Whether the check of the primary passed in the last round (1) or failed (0)",
            self.up.clone(),
        );
        registry.register(
            "check_duration_seconds",
            "How long the check of the primary took in the last round",
            self.duration.clone(),
        );
        registry.register(
            "last_round_timestamp_seconds",
            "When the last round of checks of the primary started, in seconds since the Unix epoch (0: none yet)",
            self.last_round.clone(),
        );
    }

    fn round(&self, at: jiff::Timestamp, checks: &[CheckSample<'_>]) {
        for check in checks {
            let labels = CheckLabels {
                r#type: check.kind.to_string(),
                target: without_password(check.target),
            };
            self.up.get_or_create(&labels).set(i64::from(check.ok));
            self.duration
                .get_or_create(&labels)
                .set(check.took.as_secs_f64());
        }
        self.last_round.set(unix_seconds(at));
    }
}

/// 1 for `current`, 0 for each other of `all`.
fn one_hot<L>(
    family: &Family<L, Gauge>,
    labels: impl Fn(&'static str) -> L,
    all: &[&'static str],
    current: Option<&str>,
) where
    L: Clone + std::hash::Hash + Eq,
{
    for &name in all {
        family
            .get_or_create(&labels(name))
            .set(i64::from(current == Some(name)));
    }
}

/// The daemon's metrics. Cheap to update: every update is an atomic store (or, for a
/// label set seen for the first time, an insert).
#[derive(Default)]
pub struct DaemonMetrics {
    registry: SharedRegistry,
    state: Family<StateLabels, Gauge>,
    role: Family<RoleLabels, Gauge>,
    consecutive_failures: Gauge,
    failures_before_promotion: Gauge,
    pace: Family<PaceLabels, Gauge>,
    round_interval: Seconds,
    detection_window: Family<FaultLabels, Seconds>,
    checks: Checks,
    replication_lag: Seconds,
    replication_io_running: Gauge,
    replication_sql_running: Gauge,
    replication_read: Seconds,
    witness_said: Family<WitnessSaidLabels, Gauge>,
    witness_asked: Family<WitnessLabels, Seconds>,
    promotions: Family<PromotionLabels, Counter>,
    step_duration: Family<StepLabels, Seconds>,
}

impl DaemonMetrics {
    /// The daemon's registry; alert deliveries are read from `deliveries` at each
    /// scrape.
    pub fn new(deliveries: impl Fn() -> Vec<ChannelDeliveries> + Send + Sync + 'static) -> Self {
        let mut metrics = DaemonMetrics::default();
        // Unknown until the replica is read (and whenever it reports no lag).
        metrics.replication_lag.set(f64::NAN);
        let mut registry = Registry::with_prefix(PREFIX);
        register_build_info(&mut registry);
        metrics.register_state(&mut registry);
        metrics.register_cadence(&mut registry);
        metrics.checks.register(&mut registry);
        metrics.register_replication(&mut registry);
        metrics.register_witnesses(&mut registry);
        metrics.register_promotions(&mut registry);
        registry.register_collector(Box::new(AlertDeliveries(Box::new(deliveries))));
        metrics.registry = Arc::new(registry);
        metrics
    }

    fn register_state(&self, registry: &mut Registry) {
        registry.register(
            "state",
            "The daemon's state: 1 for the current one, 0 for the others",
            self.state.clone(),
        );
        registry.register(
            "role",
            "This host's role in its pair, read from its own database: 1 for the current one (all 0 without [peer] or before a round)",
            self.role.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Failed rounds in a row that count towards a promotion",
            self.consecutive_failures.clone(),
        );
        registry.register(
            "failures_before_promotion",
            "Failed rounds in a row that start a promotion (probe.failures_before_promotion)",
            self.failures_before_promotion.clone(),
        );
    }

    fn register_cadence(&self, registry: &mut Registry) {
        registry.register(
            "pace",
            "The cadence of rounds: 1 for the current pace (calm: every probe.interval; suspect: every probe.suspect_interval while the primary is in doubt), 0 for the other",
            self.pace.clone(),
        );
        registry.register(
            "round_interval_seconds",
            "Seconds between rounds of checks now (the pace in force)",
            self.round_interval.clone(),
        );
        registry.register(
            "detection_window_seconds",
            "The longest from a fault of the primary to the decision at the cadence in force: fault=dead (connections refused, its replica's connection reset) or silent (packets dropped; NaN while the replica's heartbeat is unknown)",
            self.detection_window.clone(),
        );
    }

    fn register_replication(&self, registry: &mut Registry) {
        registry.register(
            "replication_lag_seconds",
            "The replica's Seconds_Behind_Master as last read; NaN when it reported none or could not be read",
            self.replication_lag.clone(),
        );
        registry.register(
            "replication_io_running",
            "Whether the replica's IO thread was running (Slave_IO_Running = Yes) when last read",
            self.replication_io_running.clone(),
        );
        registry.register(
            "replication_sql_running",
            "Whether the replica's SQL thread was running (Slave_SQL_Running = Yes) when last read",
            self.replication_sql_running.clone(),
        );
        registry.register(
            "replication_last_read_timestamp_seconds",
            "When the replica's replication was last read, in seconds since the Unix epoch (0: never)",
            self.replication_read.clone(),
        );
    }

    fn register_witnesses(&self, registry: &mut Registry) {
        registry.register(
            "witness_said",
            "What each witness said when last asked: 1 for its answer (down, up, no_answer), 0 for the others",
            self.witness_said.clone(),
        );
        registry.register(
            "witness_last_asked_timestamp_seconds",
            "When each witness was last asked (witnesses are asked on rounds that would fail), in seconds since the Unix epoch",
            self.witness_asked.clone(),
        );
    }

    fn register_promotions(&self, registry: &mut Registry) {
        registry.register(
            "promotions",
            "Promotions this daemon ran, by trigger and outcome (promoted, halted, interrupted, held_by_pre_promote, journal_failed, refused)",
            self.promotions.clone(),
        );
        registry.register(
            "promotion_step_duration_seconds",
            "How long each step of the last promotion took",
            self.step_duration.clone(),
        );
    }

    /// What the server encodes.
    pub fn registry(&self) -> SharedRegistry {
        self.registry.clone()
    }

    /// The daemon's state: 1 for `current`, 0 for each other of `all`.
    pub fn state(&self, current: &str, all: &[&'static str]) {
        one_hot(
            &self.state,
            |state| StateLabels { state },
            all,
            Some(current),
        );
    }

    /// This host's role: 1 for `current`, 0 for each other of `all` (all 0 for `None`).
    pub fn role(&self, current: Option<&str>, all: &[&'static str]) {
        one_hot(&self.role, |role| RoleLabels { role }, all, current);
    }

    /// Failed rounds in a row, and the threshold that starts a promotion.
    pub fn failures(&self, consecutive: u32, before_promotion: u32) {
        self.consecutive_failures.set(i64::from(consecutive));
        self.failures_before_promotion
            .set(i64::from(before_promotion));
    }

    /// A round of checks of the primary that started `at`.
    pub fn round(&self, at: jiff::Timestamp, checks: &[CheckSample<'_>]) {
        self.checks.round(at, checks);
    }

    /// The cadence in force: 1 for its pace, 0 for each other of `paces`.
    pub fn cadence(&self, cadence: CadenceSample, paces: &[&'static str]) {
        one_hot(
            &self.pace,
            |pace| PaceLabels { pace },
            paces,
            Some(cadence.pace),
        );
        self.round_interval.set(cadence.every.as_secs_f64());
        self.detection_window
            .get_or_create(&FaultLabels { fault: "dead" })
            .set(cadence.dead_within.as_secs_f64());
        self.detection_window
            .get_or_create(&FaultLabels { fault: "silent" })
            .set(cadence.silent_within.map_or(f64::NAN, |s| s.as_secs_f64()));
    }

    /// What `witness` said when asked `at`: 1 for `said`, 0 for each other of `answers`.
    pub fn witness_said(
        &self,
        witness: &str,
        said: &str,
        answers: &[&'static str],
        at: jiff::Timestamp,
    ) {
        let labels = |said| WitnessSaidLabels {
            witness: witness.to_string(),
            said,
        };
        one_hot(&self.witness_said, labels, answers, Some(said));
        self.witness_asked
            .get_or_create(&WitnessLabels {
                witness: witness.to_string(),
            })
            .set(unix_seconds(at));
    }

    /// The replica's replication as just read; `None` when it could not be read (no
    /// such connection, an error, no answer in time).
    pub fn replication(&self, read: Option<ReplicationSample>) {
        let read = read.unwrap_or(ReplicationSample {
            lag_seconds: None,
            io_running: false,
            sql_running: false,
        });
        self.replication_lag
            .set(read.lag_seconds.map_or(f64::NAN, |lag| lag as f64));
        self.replication_io_running.set(i64::from(read.io_running));
        self.replication_sql_running
            .set(i64::from(read.sql_running));
        self.replication_read
            .set(unix_seconds(jiff::Timestamp::now()));
    }

    /// `trigger` with each of `outcomes` shown at 0 before any promotion, so that a
    /// rule's `increase()` sees the first one.
    pub fn promotions_from_zero(&self, trigger: &'static str, outcomes: &[&'static str]) {
        for &outcome in outcomes {
            self.promotions
                .get_or_create(&PromotionLabels { trigger, outcome })
                .inc_by(0);
        }
    }

    /// A promotion ended (or was not started): counted by `trigger` and `outcome`.
    /// `steps`, when it ran, replace the last promotion's step durations.
    pub fn promotion(
        &self,
        trigger: &'static str,
        outcome: &'static str,
        steps: Option<&[(&'static str, Duration)]>,
    ) {
        self.promotions
            .get_or_create(&PromotionLabels { trigger, outcome })
            .inc();
        if let Some(steps) = steps {
            self.step_duration.clear();
            for &(step, took) in steps {
                self.step_duration
                    .get_or_create(&StepLabels { step })
                    .set(took.as_secs_f64());
            }
        }
    }
}

/// Reads each channel's deliveries, at scrape time.
type ReadDeliveries = Box<dyn Fn() -> Vec<ChannelDeliveries> + Send + Sync>;

/// `failover_watchdog_alerts_sent_total{channel}` and `..._alerts_failed_total`, read
/// from the alerter's own per-channel counts at each scrape.
struct AlertDeliveries(ReadDeliveries);

impl std::fmt::Debug for AlertDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertDeliveries")
    }
}

impl Collector for AlertDeliveries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let deliveries = (self.0)();
        for (name, help, count) in [
            (
                "alerts_sent",
                "Alerts delivered, per channel, since the daemon started.",
                (|c: &ChannelDeliveries| c.sent) as fn(&_) -> u64,
            ),
            (
                "alerts_failed",
                "Alerts a channel gave up on after its retries, per channel, since the daemon started.",
                |c: &ChannelDeliveries| c.failed,
            ),
        ] {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for channel in &deliveries {
                let labels = [("channel", channel.channel.as_str())];
                ConstCounter::new(count(channel)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The witness's metrics: its build, its answers by HTTP status, its checks.
pub struct WitnessMetrics {
    registry: SharedRegistry,
    requests: Family<CodeLabels, Counter>,
    checks: Checks,
}

impl Default for WitnessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WitnessMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        register_build_info(&mut registry);
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "witness_requests",
            "Requests the witness answered, by HTTP status code (200 an answer, 401 no token, 429 rate-limited, ...)",
            requests.clone(),
        );
        let checks = Checks::default();
        checks.register(&mut registry);
        WitnessMetrics {
            registry: Arc::new(registry),
            requests,
            checks,
        }
    }

    /// What the server encodes.
    pub fn registry(&self) -> SharedRegistry {
        self.registry.clone()
    }

    /// A request was answered with `status`.
    pub fn answered(&self, status: StatusCode) {
        self.requests
            .get_or_create(&CodeLabels {
                code: status.as_u16(),
            })
            .inc();
    }

    /// A round of the witness's checks of the primary, started `at`, ended.
    pub fn round(&self, at: jiff::Timestamp, checks: &[CheckSample<'_>]) {
        self.checks.round(at, checks);
    }
}

/// A check's target as a label: an `http` check's URL without a password in it.
fn without_password(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => target.to_string(),
    }
}

fn unix_seconds(at: jiff::Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// The registry as OpenMetrics, as prometheus-client encodes it.
pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail; a collector that did would leave a short page.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    text
}

/// prometheus-client's OpenMetrics as the Prometheus text format 0.0.4: a counter's
/// `# HELP` and `# TYPE` take its samples' `_total` name; `# UNIT` and `# EOF` go.
/// Everything else (samples, label escaping, `NaN`) reads the same in both.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|mark| Some((mark, line.strip_prefix(mark)?)));
        match descriptor {
            Some((mark, rest)) => {
                let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(mark);
                text.push_str(name);
                if counters.contains(&name) {
                    text.push_str("_total");
                }
                text.push(' ');
                text.push_str(after);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// `GET /metrics` of one registry, behind the token when there is one.
struct Endpoint {
    registry: SharedRegistry,
    token: Option<Secret>,
}

impl Handler for Endpoint {
    async fn respond(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(token) = &self.token
            && !serve::bearer_matches(request.headers(), token)
        {
            tracing::debug!("metrics: refused a request from {peer} without the token");
            let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        respond(&self.registry, &request)
    }
}

/// Serves `GET /metrics` from `registry` on `listener` as `config` says, until
/// `shutdown` resolves; then stops accepting and closes every connection (a scrape has
/// nothing to finish).
pub async fn serve(
    listener: TcpListener,
    registry: SharedRegistry,
    config: &MetricsConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = config
        .tls
        .as_ref()
        .map(|files| serve::tls::acceptor("metrics", &files.cert_file, &files.key_file))
        .transpose()?;
    let options = serve::Options {
        what: "metrics",
        limits: limits(config),
        tls,
        descriptors_elsewhere: 0,
        grace: Duration::ZERO,
    };
    let endpoint = Endpoint {
        registry,
        token: config.token.clone(),
    };
    serve::serve(listener, endpoint, options, shutdown).await;
    Ok(())
}

/// What `[metrics]` allows each client.
pub fn limits(config: &MetricsConfig) -> Limits {
    Limits {
        max_connections: MAX_CONNECTIONS,
        per_client: config.max_connections_per_client,
        header_timeout: HEADER_TIMEOUT,
        write_timeout: config.write_timeout,
    }
}

/// The metrics server, on a task of its own: it stops when this is dropped (it serves
/// until the daemon has finished, a promotion step in flight at SIGTERM included).
pub struct MetricsServer {
    address: SocketAddr,
    /// Fired when the server is dropped: its task stops.
    stop: Trigger,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

impl MetricsServer {
    /// Serves `registry` when `[metrics]` says where (`None`: nothing listens). A
    /// listener that cannot bind, or TLS files that cannot be loaded, are errors naming
    /// the key.
    pub async fn start_configured(
        config: Option<&MetricsConfig>,
        registry: SharedRegistry,
    ) -> anyhow::Result<Option<MetricsServer>> {
        match config {
            Some(config) => Ok(Some(Self::start_with(config, registry).await?)),
            None => Ok(None),
        }
    }

    /// Binds `address` and serves `registry` there, with no token, no TLS and the
    /// default limits, until dropped.
    pub async fn start(address: SocketAddr, registry: SharedRegistry) -> anyhow::Result<Self> {
        let config = MetricsConfig {
            listen: address,
            token: None,
            tls: None,
            max_connections_per_client: crate::config::defaults::METRICS_MAX_CONNECTIONS_PER_CLIENT,
            write_timeout: crate::config::defaults::WRITE_TIMEOUT,
        };
        Self::start_with(&config, registry).await
    }

    /// Binds `config.listen` and serves `registry` there as `config` says, until dropped.
    pub async fn start_with(
        config: &MetricsConfig,
        registry: SharedRegistry,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let address = config.listen;
        // Loaded before binding: a bad file stops the start, naming its key.
        if let Some(files) = &config.tls {
            serve::tls::acceptor("metrics", &files.cert_file, &files.key_file)?;
        }
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("metrics.listen: cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("serving metrics on {scheme}://{bound}/metrics");
        let (stopped, stop) = Shutdown::new();
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(listener, registry, &config, stopped.wait()).await {
                tracing::error!("metrics: {e:#}");
            }
        });
        Ok(MetricsServer {
            address: bound,
            stop,
        })
    }

    /// Where it listens (the kernel's choice for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// One request: `GET /metrics` in the format the client asked for, 405 for another
/// method there, 404 elsewhere.
fn respond(registry: &Registry, request: &Request<Incoming>) -> Response<Body> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let wants_openmetrics = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    let openmetrics = encode_openmetrics(registry);
    let (body, content_type) = if wants_openmetrics {
        (openmetrics, OPENMETRICS_CONTENT_TYPE)
    } else {
        (to_text_format(&openmetrics), TEXT_CONTENT_TYPE)
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests;

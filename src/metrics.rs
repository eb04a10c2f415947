//! Prometheus metrics (`[metrics] listen`, opt-in): the registry of the daemon's and the
//! witness's metrics, and the small HTTP server that serves them at `GET /metrics`.
//!
//! **The loop never waits for a scrape.** The daemon updates its metrics from the loop
//! with atomic stores ([`DaemonMetrics::live`] when it saves its live state,
//! [`DaemonMetrics::replication`] when it reads the replica,
//! [`DaemonMetrics::promotion_ended`] after a promotion); the server, on its own tasks,
//! only encodes. A label set seen for the first time takes a family's lock for an
//! insert; encoding holds it only while that family is written out, never across an
//! await. Alert deliveries are not copied at all: they are read from
//! [`Alerter::deliveries`] at scrape time.
//!
//! **The encoding is prometheus-client's.** Prometheus itself asks for OpenMetrics
//! (`Accept: application/openmetrics-text`) and gets the crate's output as it is. Any
//! other client (curl, `promtool check metrics`, an older scraper) gets the Prometheus
//! text format 0.0.4, which differs from it only in three marks: a counter's `# HELP`
//! and `# TYPE` name its samples' `_total` name, and there is no `# UNIT` or `# EOF`
//! line ([`to_text_format`]).
//!
//! **The server costs little and tells little.** It speaks HTTP/1.1 through hyper with
//! the witness's care: a client has [`HEADER_TIMEOUT`] to send its request head (which
//! also ends an idle kept-alive connection), a head is read into at most
//! [`MAX_HEAD`] bytes, at most [`MAX_CONNECTIONS`] are served at once (a slot is taken
//! before `accept`, so more wait in the kernel's backlog). It answers `GET /metrics`,
//! 405 to another method there, 404 to every other path. No token is asked: listen on
//! loopback or a private network. Check targets are shown without a URL's password.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::alert::Alerter;
use crate::config::MetricsConfig;
use crate::journal::{Journal, StepName, Trigger};
use crate::probe::{CheckReport, RoundReport};
use crate::replication::ReplicaStatus;
use crate::role::Role;
use crate::state::State;
use crate::status::LiveState;
use crate::witness::Said;

/// Every metric's name starts with it (and an underscore).
pub const PREFIX: &str = "failover_watchdog";

/// How long a client may take to send its request head; also how long a kept-alive
/// connection may sit idle. A scraper sends its request at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The buffer a request head is read into (hyper's smallest); a longer head gets 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Connections served at once: one or two Prometheus servers and an operator's curl.
pub const MAX_CONNECTIONS: usize = 16;

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

    fn round(&self, round: &RoundReport) {
        for check in &round.checks {
            let labels = check_labels(check);
            self.up.get_or_create(&labels).set(i64::from(check.ok));
            self.duration
                .get_or_create(&labels)
                .set(check.duration_ms as f64 / 1000.0);
        }
        self.last_round.set(unix_seconds(round.at));
    }
}

/// The daemon's metrics. Cheap to update: every update is an atomic store (or, for a
/// label set seen for the first time, an insert).
pub struct DaemonMetrics {
    registry: SharedRegistry,
    state: Family<StateLabels, Gauge>,
    role: Family<RoleLabels, Gauge>,
    consecutive_failures: Gauge,
    failures_before_promotion: Gauge,
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
    /// The daemon's registry, its values taken from `live` (what the decision core
    /// knows at start); alert deliveries are read from `alerter` at each scrape.
    pub fn new(alerter: Alerter, live: &LiveState) -> Self {
        let mut metrics = DaemonMetrics {
            // Replaced below, once every metric is registered.
            registry: Arc::default(),
            state: Family::default(),
            role: Family::default(),
            consecutive_failures: Gauge::default(),
            failures_before_promotion: Gauge::default(),
            checks: Checks::default(),
            replication_lag: Seconds::default(),
            replication_io_running: Gauge::default(),
            replication_sql_running: Gauge::default(),
            replication_read: Seconds::default(),
            witness_said: Family::default(),
            witness_asked: Family::default(),
            promotions: Family::default(),
            step_duration: Family::default(),
        };
        let mut registry = Registry::with_prefix(PREFIX);
        register_build_info(&mut registry);
        registry.register(
            "state",
            "The daemon's state: 1 for the current one, 0 for the others",
            metrics.state.clone(),
        );
        registry.register(
            "role",
            "This host's role in its pair, read from its own database: 1 for the current one (all 0 without [peer] or before a round)",
            metrics.role.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Failed rounds in a row that count towards a promotion",
            metrics.consecutive_failures.clone(),
        );
        registry.register(
            "failures_before_promotion",
            "Failed rounds in a row that start a promotion (probe.failures_before_promotion)",
            metrics.failures_before_promotion.clone(),
        );
        metrics.checks.register(&mut registry);
        // Unknown until the replica is read (and whenever it reports no lag).
        metrics.replication_lag.set(f64::NAN);
        registry.register(
            "replication_lag_seconds",
            "The replica's Seconds_Behind_Master as last read; NaN when it reported none or could not be read",
            metrics.replication_lag.clone(),
        );
        registry.register(
            "replication_io_running",
            "Whether the replica's IO thread was running (Slave_IO_Running = Yes) when last read",
            metrics.replication_io_running.clone(),
        );
        registry.register(
            "replication_sql_running",
            "Whether the replica's SQL thread was running (Slave_SQL_Running = Yes) when last read",
            metrics.replication_sql_running.clone(),
        );
        registry.register(
            "replication_last_read_timestamp_seconds",
            "When the replica's replication was last read, in seconds since the Unix epoch (0: never)",
            metrics.replication_read.clone(),
        );
        registry.register(
            "witness_said",
            "What each witness said when last asked: 1 for its answer (down, up, no_answer), 0 for the others",
            metrics.witness_said.clone(),
        );
        registry.register(
            "witness_last_asked_timestamp_seconds",
            "When each witness was last asked (witnesses are asked on rounds that would fail), in seconds since the Unix epoch",
            metrics.witness_asked.clone(),
        );
        // The outcomes an automatic promotion usually ends in start at 0, so that a
        // rule's increase() sees the first one.
        for outcome in ["promoted", "halted"] {
            metrics
                .promotions
                .get_or_create(&PromotionLabels {
                    trigger: Trigger::Automatic.as_str(),
                    outcome,
                })
                .inc_by(0);
        }
        registry.register(
            "promotions",
            "Promotions this daemon ran, by trigger and outcome (promoted, halted, interrupted, held_by_pre_promote, journal_failed, refused)",
            metrics.promotions.clone(),
        );
        registry.register(
            "promotion_step_duration_seconds",
            "How long each step of the last promotion took",
            metrics.step_duration.clone(),
        );
        registry.register_collector(Box::new(AlertDeliveries(alerter)));
        metrics.registry = Arc::new(registry);
        metrics.live(live);
        metrics
    }

    /// What the server encodes.
    pub fn registry(&self) -> SharedRegistry {
        self.registry.clone()
    }

    /// The decision core's view, each time the daemon saves it: the state, the count,
    /// the last round's checks and, when they were asked, the witnesses' answers.
    pub fn live(&self, live: &LiveState) {
        for state in State::ALL {
            self.state
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(i64::from(state == live.state));
        }
        for role in [Role::Primary, Role::Standby, Role::Unknown] {
            self.role
                .get_or_create(&RoleLabels {
                    role: role.as_str(),
                })
                .set(i64::from(live.role == Some(role)));
        }
        self.consecutive_failures
            .set(i64::from(live.consecutive_failures));
        self.failures_before_promotion
            .set(i64::from(live.failures_before_promotion));
        let Some(round) = &live.last_probe else {
            return;
        };
        self.checks.round(round);
        for report in &round.witnesses {
            for said in [Said::Down, Said::Up, Said::NoAnswer] {
                self.witness_said
                    .get_or_create(&WitnessSaidLabels {
                        witness: report.name.clone(),
                        said: said_name(said),
                    })
                    .set(i64::from(said == report.said));
            }
            self.witness_asked
                .get_or_create(&WitnessLabels {
                    witness: report.name.clone(),
                })
                .set(unix_seconds(round.at));
        }
    }

    /// The replica's replication as just read; `None` when it could not be read (no
    /// such connection, an error, no answer in time).
    pub fn replication(&self, status: Option<&ReplicaStatus>) {
        let (lag, io, sql) = match status {
            Some(status) => (
                status.seconds_behind.map_or(f64::NAN, |lag| lag as f64),
                status.io_running == "Yes",
                status.sql_running == "Yes",
            ),
            None => (f64::NAN, false, false),
        };
        self.replication_lag.set(lag);
        self.replication_io_running.set(i64::from(io));
        self.replication_sql_running.set(i64::from(sql));
        self.replication_read
            .set(unix_seconds(jiff::Timestamp::now()));
    }

    /// A promotion the daemon ran has ended (or was not started): counted by trigger
    /// and outcome; the journal's step durations replace the last promotion's.
    pub fn promotion_ended(
        &self,
        trigger: &'static str,
        outcome: &'static str,
        journal: Option<&Journal>,
    ) {
        self.promotions
            .get_or_create(&PromotionLabels { trigger, outcome })
            .inc();
        if let Some(journal) = journal {
            self.step_duration.clear();
            for &step in StepName::for_trigger(journal.record.trigger) {
                if let Some(took) = journal.step_duration(step) {
                    self.step_duration
                        .get_or_create(&StepLabels {
                            step: step.as_str(),
                        })
                        .set(took.as_secs_f64());
                }
            }
        }
    }
}

/// `failover_watchdog_alerts_sent_total{channel}` and `..._alerts_failed_total`, read
/// from the alerter's own per-channel counts at each scrape.
struct AlertDeliveries(Alerter);

impl std::fmt::Debug for AlertDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertDeliveries")
    }
}

impl Collector for AlertDeliveries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let deliveries = self.0.deliveries();
        for (name, help, count) in [
            (
                "alerts_sent",
                "Alerts delivered, per channel, since the daemon started.",
                (|c: &crate::alert::ChannelCount| c.sent) as fn(&_) -> u64,
            ),
            (
                "alerts_failed",
                "Alerts a channel gave up on after its retries, per channel, since the daemon started.",
                |c: &crate::alert::ChannelCount| c.failed,
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

    /// A round of the witness's checks of the primary ended.
    pub fn round(&self, round: &RoundReport) {
        self.checks.round(round);
    }
}

fn check_labels(check: &CheckReport) -> CheckLabels {
    CheckLabels {
        r#type: check.kind.clone(),
        target: without_password(&check.target),
    }
}

/// A check's target as a label: an `http` check's URL without a password in it (the
/// endpoint asks for no token).
fn without_password(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => target.to_string(),
    }
}

fn said_name(said: Said) -> &'static str {
    match said {
        Said::Down => "down",
        Said::Up => "up",
        Said::NoAnswer => "no_answer",
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

/// Serves `GET /metrics` from `registry` on `listener` until `shutdown` resolves; then
/// stops accepting and closes every connection (a scrape has nothing to finish).
pub async fn serve(
    listener: TcpListener,
    registry: SharedRegistry,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let http = Arc::new(http);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Some((slot, accepted)) =
            crate::witness::server::next_connection(&listener, &slots, shutdown.as_mut()).await
        else {
            break;
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: pause rather than spin; it passes with time.
                tracing::debug!("metrics: cannot accept a connection: {e}");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let registry = registry.clone();
        let http = http.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&registry, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("metrics: connection from {peer} ended: {e}");
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// The metrics server, on a task of its own: it stops when this is dropped.
pub struct MetricsServer {
    address: SocketAddr,
    /// Dropped with the server: its task sees the channel close and stops.
    _stop: oneshot::Sender<()>,
}

impl MetricsServer {
    /// Serves `registry` when `[metrics]` says where (`None`: nothing listens). A
    /// listener that cannot bind is an error naming the key.
    pub async fn start_configured(
        config: Option<&MetricsConfig>,
        registry: SharedRegistry,
    ) -> anyhow::Result<Option<MetricsServer>> {
        match config {
            Some(config) => Ok(Some(Self::start(config.listen, registry).await?)),
            None => Ok(None),
        }
    }

    /// Binds `address` and serves `registry` there until dropped.
    pub async fn start(address: SocketAddr, registry: SharedRegistry) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("metrics.listen: cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        tracing::info!("serving metrics on http://{bound}/metrics");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, registry, async {
            let _ = stopped.await;
        }));
        Ok(MetricsServer {
            address: bound,
            _stop: stop,
        })
    }

    /// Where it listens (the kernel's choice for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// One request: `GET /metrics` in the format the client asked for, 405 for another
/// method there, 404 elsewhere.
fn respond(registry: &Registry, request: &Request<Incoming>) -> Response<Body> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    };
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
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::witness::WitnessReport;

    fn check(kind: &str, target: &str, ok: bool, duration_ms: u64) -> CheckReport {
        CheckReport {
            kind: kind.into(),
            target: target.into(),
            ok,
            detail: String::new(),
            duration_ms,
            gtid_binlog_pos: None,
            read_only: None,
        }
    }

    fn live(state: State, consecutive_failures: u32) -> LiveState {
        LiveState {
            state,
            consecutive_failures,
            failures_before_promotion: 5,
            last_probe: Some(RoundReport {
                at: "2026-11-23T21:00:00Z".parse().unwrap(),
                ok: false,
                checks: vec![
                    check("tcp", "198.51.100.10:3306", false, 1500),
                    check(
                        "http",
                        "https://probe:pw-secret@primary.example.com/health",
                        true,
                        20,
                    ),
                ],
                self_checks: Vec::new(),
                witnesses: Vec::new(),
            }),
            updated_at: "2026-11-23T21:00:02Z".parse().unwrap(),
            role: Some(Role::Standby),
            pid: 42,
            primary_last_seen: None,
            replication_seen: None,
            held: None,
            verdict: None,
        }
    }

    fn log_only() -> Alerter {
        Alerter::start(
            "db2",
            crate::alert::Channels::default(),
            crate::secret::Scrubber::none(),
        )
        .unwrap()
    }

    /// The value of the sample `name{labels}` (exactly as written) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse().unwrap())
        })
    }

    fn scrape(metrics: &DaemonMetrics) -> String {
        to_text_format(&encode_openmetrics(&metrics.registry()))
    }

    #[tokio::test]
    async fn the_live_state_sets_the_state_the_count_and_the_checks() {
        let metrics = DaemonMetrics::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_state{state="monitoring"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"failover_watchdog_state{state="suspect"}"#),
            Some(0.0)
        );

        metrics.live(&live(State::Suspect, 2));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_role{role="standby"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"failover_watchdog_role{role="primary"}"#),
            Some(0.0)
        );
        for state in State::ALL {
            let series = format!("failover_watchdog_state{{state=\"{state}\"}}");
            let want = if state == State::Suspect { 1.0 } else { 0.0 };
            assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
        }
        assert_eq!(
            sample(&text, "failover_watchdog_consecutive_failures"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_failures_before_promotion"),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_up{type="tcp",target="198.51.100.10:3306"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_duration_seconds{type="tcp",target="198.51.100.10:3306"}"#
            ),
            Some(1.5)
        );
        // The endpoint asks for no token: a URL's password is not shown.
        assert!(!text.contains("pw-secret"), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_up{type="http",target="https://probe@primary.example.com/health"}"#
            ),
            Some(1.0)
        );
        let at: jiff::Timestamp = "2026-11-23T21:00:00Z".parse().unwrap();
        assert_eq!(
            sample(&text, "failover_watchdog_last_round_timestamp_seconds"),
            Some(at.as_second() as f64)
        );
        assert!(
            text.contains(&format!(
                "failover_watchdog_build_info{{version=\"{}\",commit=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                env!("FAILOVER_WATCHDOG_COMMIT")
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_witness_answer_stays_until_it_is_asked_again() {
        let metrics = DaemonMetrics::new(log_only(), &live(State::Monitoring, 0));
        let mut asked = live(State::Suspect, 1);
        asked.last_probe.as_mut().unwrap().witnesses = vec![WitnessReport {
            name: "ams1".into(),
            said: Said::Down,
            detail: "tcp failed".into(),
            duration_ms: 12,
        }];
        metrics.live(&asked);
        // The next round asks nobody: what ams1 said last still shows.
        metrics.live(&live(State::Suspect, 2));
        let text = scrape(&metrics);
        for (said, want) in [("down", 1.0), ("up", 0.0), ("no_answer", 0.0)] {
            let series =
                format!("failover_watchdog_witness_said{{witness=\"ams1\",said=\"{said}\"}}");
            assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
        }
        assert!(
            sample(
                &text,
                r#"failover_watchdog_witness_last_asked_timestamp_seconds{witness="ams1"}"#
            )
            .is_some()
        );
    }

    #[tokio::test]
    async fn replication_shows_as_last_read_and_unknown_when_unreadable() {
        let metrics = DaemonMetrics::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert!(
            sample(&text, "failover_watchdog_replication_lag_seconds")
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            sample(
                &text,
                "failover_watchdog_replication_last_read_timestamp_seconds"
            ),
            Some(0.0)
        );

        let status = ReplicaStatus {
            io_running: "Yes".into(),
            sql_running: "No".into(),
            seconds_behind: Some(7),
            ..ReplicaStatus::default()
        };
        metrics.replication(Some(&status));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, "failover_watchdog_replication_lag_seconds"),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_io_running"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_sql_running"),
            Some(0.0)
        );
        assert!(
            sample(
                &text,
                "failover_watchdog_replication_last_read_timestamp_seconds"
            )
            .unwrap()
                > 0.0
        );

        metrics.replication(None);
        let text = scrape(&metrics);
        assert!(
            sample(&text, "failover_watchdog_replication_lag_seconds")
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_io_running"),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn promotions_count_by_trigger_and_outcome_with_each_steps_duration() {
        let metrics = DaemonMetrics::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        let promoted =
            r#"failover_watchdog_promotions_total{trigger="automatic",outcome="promoted"}"#;
        assert_eq!(sample(&text, promoted), Some(0.0), "{text}");

        let start: jiff::Timestamp = "2026-11-23T21:00:00Z".parse().unwrap();
        let mut journal = Journal::new("db2", Trigger::Automatic, "test", start);
        for (i, step) in StepName::PROMOTION.into_iter().enumerate() {
            let began = start + jiff::SignedDuration::from_secs(i as i64 * 10);
            journal.begin(step, began);
            journal.finish(
                step,
                "done".into(),
                began + jiff::SignedDuration::from_millis(2500),
            );
        }
        metrics.promotion_ended("automatic", "promoted", Some(&journal));
        metrics.promotion_ended("automatic", "refused", None);
        let text = scrape(&metrics);
        assert_eq!(sample(&text, promoted), Some(1.0), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_promotions_total{trigger="automatic",outcome="refused"}"#
            ),
            Some(1.0)
        );
        for step in StepName::PROMOTION {
            let series =
                format!("failover_watchdog_promotion_step_duration_seconds{{step=\"{step}\"}}");
            assert_eq!(sample(&text, &series), Some(2.5), "{series} in\n{text}");
        }
    }

    /// Deliveries are the alerter's own counts, read at the scrape.
    #[tokio::test]
    async fn alert_deliveries_are_read_from_the_alerter_at_each_scrape() {
        let alerter = log_only();
        let metrics = DaemonMetrics::new(alerter.clone(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_sent_total{channel="log"}"#
            ),
            Some(0.0)
        );
        alerter
            .send_and_confirm(&Alert::Rearmed, Duration::from_secs(5))
            .await
            .unwrap();
        let text = scrape(&metrics);
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_sent_total{channel="log"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_failed_total{channel="log"}"#
            ),
            Some(0.0)
        );
    }

    #[test]
    fn the_witness_counts_its_answers_by_code_and_shows_its_checks() {
        let metrics = WitnessMetrics::new();
        metrics.answered(StatusCode::OK);
        metrics.answered(StatusCode::UNAUTHORIZED);
        metrics.answered(StatusCode::UNAUTHORIZED);
        metrics.round(live(State::Monitoring, 0).last_probe.as_ref().unwrap());
        let text = to_text_format(&encode_openmetrics(&metrics.registry()));
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_witness_requests_total{code="200"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_witness_requests_total{code="401"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_up{type="tcp",target="198.51.100.10:3306"}"#
            ),
            Some(0.0)
        );
        assert!(text.contains("failover_watchdog_build_info{"), "{text}");
        assert!(!text.contains("failover_watchdog_state"), "{text}");
    }

    /// OpenMetrics names a counter's family without `_total` and ends with `# EOF`; the
    /// text format names it as its samples are named and has no `# UNIT` or `# EOF`.
    #[test]
    fn the_text_format_names_counters_by_their_samples_and_drops_openmetrics_marks() {
        let openmetrics = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{code=\"200\"} 3\n# HELP x_lag_seconds Lag.\n# TYPE x_lag_seconds gauge\n# UNIT x_lag_seconds seconds\nx_lag_seconds NaN\n# EOF\n";
        assert_eq!(
            to_text_format(openmetrics),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{code=\"200\"} 3\n# HELP x_lag_seconds Lag.\n# TYPE x_lag_seconds gauge\nx_lag_seconds NaN\n"
        );
    }

    async fn get(
        address: SocketAddr,
        method: &str,
        path: &str,
        accept: Option<&str>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("http://{address}{path}"));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        request.send().await.unwrap()
    }

    #[tokio::test]
    async fn the_server_answers_get_metrics_in_the_format_asked_and_nothing_else() {
        let metrics = WitnessMetrics::new();
        metrics.answered(StatusCode::OK);
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.registry())
            .await
            .unwrap();
        let address = server.address();

        let plain = get(address, "GET", "/metrics", None).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(plain.headers()[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
        let text = plain.text().await.unwrap();
        assert!(
            text.contains("# TYPE failover_watchdog_witness_requests_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");

        let asked = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        let open = get(address, "GET", "/metrics", Some(asked)).await;
        assert_eq!(
            open.headers()[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        let text = open.text().await.unwrap();
        assert!(
            text.contains("# TYPE failover_watchdog_witness_requests counter"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        assert_eq!(get(address, "GET", "/", None).await.status(), 404);
        assert_eq!(get(address, "GET", "/metrics/x", None).await.status(), 404);
        let post = get(address, "POST", "/metrics", None).await;
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[header::ALLOW], "GET");

        // Dropped: nothing listens any more.
        drop(server);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(address).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still listening");
            tokio::task::yield_now().await;
        }
    }

    /// A port already taken stops the start, naming the key.
    #[tokio::test]
    async fn an_address_that_cannot_be_bound_is_an_error_naming_the_key() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap();
        let error = match MetricsServer::start(address, WitnessMetrics::new().registry()).await {
            Ok(_) => panic!("bound {address} twice"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.starts_with(&format!("metrics.listen: cannot listen on {address}")),
            "{error}"
        );
    }

    /// A client that never finishes its request head is dropped at the header timeout
    /// and costs nothing after.
    #[tokio::test(start_paused = true)]
    async fn a_half_sent_request_is_dropped_after_the_header_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let metrics = WitnessMetrics::new();
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.registry())
            .await
            .unwrap();
        let address = server.address();
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(HEADER_TIMEOUT * 2, stream.read_to_end(&mut buffer)).await;
        assert!(
            read.is_ok(),
            "the connection was not closed within twice the header timeout"
        );
    }
}

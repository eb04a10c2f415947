//! The witness's HTTP server: one endpoint, behind a bearer token.
//!
//! Every request (within the rate limit below) is checked for the token first, whatever
//! its path, method or body, so a caller without it learns nothing (not even which
//! paths exist). An authorised `GET /v1/primary` runs the witness's checks of the
//! primary and answers with an [`Observation`]. Requests that arrive while a round runs
//! wait for the next round rather than starting their own: the primary is never probed
//! twice at once.
//!
//! **What a client may cost.** Anyone who reaches the port is a client, token or not,
//! so each is held to the config's [`WitnessLimits`]. The connection-level limits (the
//! header and write timeouts, the head cap, the connection cap fitted to the open-file
//! limit, a client's share of it, the stalest connection dropped to make room, paused
//! retries of a failed `accept`, TLS) are [`crate::serve`]'s, shared with the metrics
//! endpoint. Here, per request:
//! - once authorised, a request whose body may be longer than [`MAX_BODY`] is refused
//!   (413): requests have no body, and it is never read;
//! - each client (an IP address; an IPv6 /64) may send `requests_per_second` after a
//!   burst of `request_burst`; beyond that it gets 429 with `Retry-After` before its
//!   token is looked at, so a flood costs neither the token check nor a log line per
//!   request. An authorised client loses nothing by it: requests that arrive together
//!   share a round anyway.
//!
//! **Shutdown.** When `shutdown` resolves the witness stops accepting. A connection with
//! no request in flight (idle, or still sending its head) is closed at once; a request in
//! flight has [`SHUTDOWN_GRACE`] to be answered, then its connection is closed too.
//!
//! **Metrics.** [`serve_observed`] counts every answer by its status (429 and 401
//! included) and records each round's checks in a [`WitnessMetrics`], which `[metrics]`
//! serves on a listener of its own (`crate::metrics`), never on this one.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::ServiceExt;

use super::{CheckSeen, ENDPOINT, Observation};
use crate::config::witness::{WitnessConfig, WitnessLimits};
use crate::metrics::{CheckSample, WitnessMetrics};
use crate::probe::Prober;
use crate::secret::Secret;
use crate::serve::table::Client;
use crate::serve::{self, Handler};

/// How long requests in flight at shutdown have to be answered before their
/// connections are closed: a round of checks that is nearly done may finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The longest request body accepted, unread: requests have none.
pub const MAX_BODY: u64 = 1024;

/// Clients the rate limit tracks at most. Beyond, new clients share one bucket, so a
/// flood from many addresses cannot grow the witness's memory.
const MAX_CLIENTS: usize = 10_000;

/// The witness: its checks, its token and the last round.
struct Witness {
    name: String,
    token: Secret,
    prober: Prober,
    /// The last round and when it started. A tokio mutex because it is held across the
    /// round: one round at a time, and a request reuses a round that started after it
    /// arrived.
    last: Mutex<Option<(Instant, Observation)>>,
    /// Each round's checks, for `[metrics]`.
    metrics: Arc<WitnessMetrics>,
}

/// What every connection shares.
struct Server {
    /// The token check and the endpoint.
    router: axum::Router,
    rate_limit: RateLimit,
    limits: WitnessLimits,
    /// Every answer by its status, for `[metrics]`.
    metrics: Arc<WitnessMetrics>,
}

/// Serves witness requests on `listener` until `shutdown` resolves, within the config's
/// limits; requests in flight then have [`SHUTDOWN_GRACE`].
pub async fn serve(
    config: &WitnessConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_observed(config, listener, Arc::default(), shutdown).await
}

/// [`serve`], recording every answer and round in `metrics` (which `[metrics]`
/// serves on its own listener).
pub async fn serve_observed(
    config: &WitnessConfig,
    listener: TcpListener,
    metrics: Arc<WitnessMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_grace(config, listener, metrics, shutdown, SHUTDOWN_GRACE).await
}

async fn serve_with_grace(
    config: &WitnessConfig,
    listener: TcpListener,
    metrics: Arc<WitnessMetrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let witness = Arc::new(Witness {
        name: config.name.clone(),
        token: config.token.clone(),
        prober: Prober::for_checks(&config.checks, config.timeout, config.fail_when)?,
        last: Mutex::new(None),
        metrics: metrics.clone(),
    });
    let limits = config.limits;
    let server = Server {
        router: axum::Router::new().fallback(answer).with_state(witness),
        rate_limit: RateLimit::new(limits.requests_per_second, limits.request_burst),
        limits,
        metrics,
    };
    let tls = config
        .tls
        .as_ref()
        .map(|files| serve::tls::acceptor("witness", &files.cert_file, &files.key_file))
        .transpose()?;
    let options = serve::Options {
        what: "witness",
        limits: serve_limits(&limits),
        tls,
        descriptors_elsewhere: descriptors_elsewhere(config),
        grace,
    };
    serve::serve(listener, server, options, shutdown).await;
    Ok(())
}

/// What `[witness]` allows each connection and client.
pub fn serve_limits(limits: &WitnessLimits) -> serve::Limits {
    serve::Limits {
        max_connections: limits.max_connections,
        per_client: limits.max_connections_per_client,
        header_timeout: limits.header_timeout,
        write_timeout: limits.write_timeout,
    }
}

/// The descriptors the witness's own metrics endpoint may hold, kept out of the
/// witness's cap.
pub fn descriptors_elsewhere(config: &WitnessConfig) -> u64 {
    match config.metrics {
        Some(_) => u64::from(crate::metrics::MAX_CONNECTIONS),
        None => 0,
    }
}

impl Handler for Server {
    /// Answers `request`, and counts the answer by its status.
    async fn respond(&self, request: Request<Incoming>, peer: SocketAddr) -> Response {
        let response = self.answer(request, peer).await;
        self.metrics.answered(response.status());
        response
    }
}

impl Server {
    /// The rate limit, then the router (the token first).
    async fn answer(&self, mut request: Request<Incoming>, peer: SocketAddr) -> Response {
        if let Admission::Refused { retry_after, first } =
            self.rate_limit.admit(peer.ip(), Instant::now())
        {
            if first {
                tracing::warn!(
                    "rate-limiting {}: more than {} requests a second (burst {}); it gets 429 until it slows down",
                    peer.ip(),
                    self.limits.requests_per_second,
                    self.limits.request_burst
                );
            }
            return refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests",
                Some((header::RETRY_AFTER, retry_after.as_secs().into())),
            );
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// A refusal: a fixed body, and the connection closed after it, as a client refused has
/// no reason to keep it.
fn refusal(
    status: StatusCode,
    error: &'static str,
    extra: Option<(header::HeaderName, HeaderValue)>,
) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some((name, value)) = extra {
        headers.insert(name, value);
    }
    response
}

/// Whether a request may go on to the token check.
#[derive(Debug, PartialEq)]
enum Admission {
    Allowed,
    /// Over the limit: `retry_after` until the next request would be allowed; `first`
    /// when this client was within the limit until now (logged once, not per request).
    Refused {
        retry_after: Duration,
        first: bool,
    },
}

/// A token bucket per client: it holds up to `burst` requests and refills at
/// `per_second`; a request takes one.
struct RateLimit {
    per_second: f64,
    burst: f64,
    /// A std mutex: held for a lookup, never across an await.
    buckets: std::sync::Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    clients: HashMap<Client, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refused: bool,
}

impl RateLimit {
    fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: std::sync::Mutex::new(Buckets::default()),
        }
    }

    /// Takes a request from `ip`'s bucket at `now`, if it holds one.
    fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let mut client = Client::of(ip);
        if buckets.clients.len() >= MAX_CLIENTS && !buckets.clients.contains_key(&client) {
            self.sweep(&mut buckets, now);
            if buckets.clients.len() >= MAX_CLIENTS {
                client = Client::Crowd;
            }
        }
        let bucket = buckets.clients.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            refused: false,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.refused = false;
            return Admission::Allowed;
        }
        let first = !bucket.refused;
        bucket.refused = true;
        let wait = ((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0);
        Admission::Refused {
            retry_after: Duration::from_secs(wait as u64),
            first,
        }
    }

    /// What `bucket` holds at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Forgets the clients whose buckets are full again: they are as good as new. At
    /// most once a second, so a flood of new clients does not walk the map per request.
    fn sweep(&self, buckets: &mut Buckets, now: Instant) {
        if buckets
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        buckets.last_sweep = Some(now);
        buckets
            .clients
            .retain(|_, bucket| self.refilled(bucket, now) < self.burst);
    }
}

async fn answer(
    State(witness): State<Arc<Witness>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !witness.authorized(&headers) {
        tracing::warn!("refused a request from {peer} without the witness token");
        return refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
        );
    }
    // A chunked body has no upper bound until it is read: refused as well.
    if body
        .size_hint()
        .upper()
        .is_none_or(|upper| upper > MAX_BODY)
    {
        return refusal(StatusCode::PAYLOAD_TOO_LARGE, "requests have no body", None);
    }
    if uri.path().trim_end_matches('/') != format!("/{ENDPOINT}") {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "not found" })),
        )
            .into_response();
    }
    if method != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET")],
            Json(serde_json::json!({ "error": "method not allowed" })),
        )
            .into_response();
    }
    let observation = witness.observe().await;
    tracing::info!(
        "asked by {peer}: the primary is {} ({})",
        if observation.primary_down {
            "DOWN"
        } else {
            "up"
        },
        observation.summary()
    );
    Json(observation).into_response()
}

impl Witness {
    /// `Authorization: Bearer <token>`, compared in constant time.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        serve::bearer_matches(headers, &self.token)
    }

    /// A round that started after the request arrived: the one running now if it did,
    /// else a new one.
    async fn observe(&self) -> Observation {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, observation)) = last.as_ref()
            && *started >= asked
        {
            return observation.clone();
        }
        let started = Instant::now();
        let round = self.prober.run_round().await;
        let checks: Vec<CheckSample<'_>> = round
            .checks
            .iter()
            .map(|c| CheckSample {
                kind: &c.kind,
                target: &c.target,
                ok: c.ok,
                took: Duration::from_millis(c.duration_ms),
            })
            .collect();
        self.metrics.round(round.at, &checks);
        let observation = Observation {
            witness: self.name.clone(),
            primary_down: !round.ok,
            at: round.at,
            checks: round
                .checks
                .iter()
                .map(|c| CheckSeen {
                    kind: c.kind.clone(),
                    ok: c.ok,
                })
                .collect(),
        };
        *last = Some((started, observation.clone()));
        observation
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, NAME, TOKEN};
    use super::*;

    async fn get(url: &str, token: Option<&str>) -> (u16, HeaderMap, String) {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// Every answer is counted by its status, a refusal as much as an observation, and
    /// the round's checks are recorded.
    #[tokio::test]
    async fn every_answer_is_counted_by_its_status_and_each_round_recorded() {
        let primary = testing::closed_address();
        let config = WitnessConfig {
            path: "witness.toml".into(),
            name: NAME.into(),
            token: Secret::inline(TOKEN),
            timeout: Duration::from_secs(2),
            fail_when: crate::config::FailWhen::Any,
            checks: vec![crate::config::CheckConfig::Tcp {
                address: primary.clone(),
            }],
            limits: Default::default(),
            tls: None,
            metrics: None,
            warnings: Vec::new(),
        };
        let metrics = Arc::new(WitnessMetrics::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let observed = metrics.clone();
        tokio::spawn(async move {
            serve_observed(&config, listener, observed, std::future::pending())
                .await
                .unwrap();
        });
        assert_eq!(get(&format!("{base}/v1/primary"), Some(TOKEN)).await.0, 200);
        assert_eq!(get(&format!("{base}/v1/primary"), None).await.0, 401);
        assert_eq!(
            get(&format!("{base}/v1/primary"), Some("wrong")).await.0,
            401
        );
        assert_eq!(get(&format!("{base}/nowhere"), Some(TOKEN)).await.0, 404);
        let text = crate::metrics::encode_openmetrics(&metrics.registry());
        for (code, count) in [(200, 1), (401, 2), (404, 1)] {
            let line =
                format!("failover_watchdog_witness_requests_total{{code=\"{code}\"}} {count}\n");
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
        let check = format!("failover_watchdog_check_up{{type=\"tcp\",target=\"{primary}\"}} 0\n");
        assert!(text.contains(&check), "{check:?} in\n{text}");
    }

    /// Without the token, every path gets the same bare 401: nothing of the config, not
    /// even which paths exist.
    #[tokio::test]
    async fn a_request_without_the_token_is_refused_and_learns_nothing() {
        let primary = testing::closed_address();
        let base = testing::start(&primary).await;
        for (path, token) in [
            ("v1/primary", None),
            ("v1/primary", Some("wrong-token")),
            ("v1/primary", Some(&TOKEN[..TOKEN.len() - 1])),
            ("config", None),
            ("", Some("")),
        ] {
            let (status, headers, body) = get(base.join(path).unwrap().as_str(), token).await;
            assert_eq!(status, 401, "{path} {token:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
            assert_eq!(body, r#"{"error":"unauthorized"}"#);
        }
        // A token in another scheme is no token.
        let response = reqwest::Client::new()
            .get(base.join("v1/primary").unwrap())
            .basic_auth("x", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }

    #[tokio::test]
    async fn with_the_token_it_answers_whether_it_reaches_the_primary() {
        let primary = testing::closed_address();
        let base = testing::start(&primary).await;
        let (status, _, body) = get(base.join("v1/primary").unwrap().as_str(), Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        let observation: Observation = serde_json::from_str(&body).unwrap();
        assert_eq!(observation.witness, NAME);
        assert!(observation.primary_down);
        assert_eq!(
            observation.checks,
            vec![CheckSeen {
                kind: "tcp".into(),
                ok: false
            }]
        );
        // The check's target stays with the witness.
        assert!(!body.contains(&primary), "{body}");

        let alive = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = testing::start(&alive.local_addr().unwrap().to_string()).await;
        let (_, _, body) = get(base.join("v1/primary").unwrap().as_str(), Some(TOKEN)).await;
        let observation: Observation = serde_json::from_str(&body).unwrap();
        assert!(!observation.primary_down, "{body}");
        assert_eq!(observation.summary(), "its check passed");
    }

    #[tokio::test]
    async fn other_paths_and_methods_are_refused_once_authorised() {
        let base = testing::start(&testing::closed_address()).await;
        let (status, _, _) = get(base.join("v2/primary").unwrap().as_str(), Some(TOKEN)).await;
        assert_eq!(status, 404);
        let response = reqwest::Client::new()
            .post(base.join("v1/primary").unwrap())
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers()[header::ALLOW], "GET");
    }

    // What a hostile client may cost: each test is named after the bug it guards.

    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    use crate::config::{CheckConfig, FailWhen};

    /// A witness serving with `limits`, stopped through `stop`.
    struct Running {
        address: SocketAddr,
        base: url::Url,
        stop: oneshot::Sender<()>,
        stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    async fn start_with(limits: WitnessLimits, check: CheckConfig, grace: Duration) -> Running {
        let config = WitnessConfig {
            path: "witness.toml".into(),
            name: NAME.into(),
            token: Secret::inline(TOKEN),
            timeout: Duration::from_secs(60),
            fail_when: FailWhen::Any,
            checks: vec![check],
            limits,
            tls: None,
            metrics: None,
            warnings: Vec::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stop_asked) = oneshot::channel::<()>();
        let stopped = tokio::spawn(async move {
            let shutdown = async {
                let _ = stop_asked.await;
            };
            serve_with_grace(&config, listener, Arc::default(), shutdown, grace).await
        });
        Running {
            address,
            base: format!("http://{address}").parse().unwrap(),
            stop,
            stopped,
        }
    }

    fn closed_port_check() -> CheckConfig {
        CheckConfig::Tcp {
            address: testing::closed_address(),
        }
    }

    fn limits(header_timeout: Duration, max_connections: u32) -> WitnessLimits {
        WitnessLimits {
            header_timeout,
            max_connections,
            ..WitnessLimits::default()
        }
    }

    /// A connection that has sent the first line of a request and no more.
    async fn half_sent(address: SocketAddr) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /v1/primary HTTP/1.1\r\n")
            .await
            .unwrap();
        stream
    }

    /// Reads until the witness closes the connection (whatever it says first).
    async fn until_closed(stream: &mut tokio::net::TcpStream) {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut buf).await {}
    }

    #[tokio::test]
    async fn a_half_sent_request_is_dropped_after_the_header_timeout() {
        let header_timeout = Duration::from_millis(300);
        let witness = start_with(
            limits(header_timeout, 8),
            closed_port_check(),
            SHUTDOWN_GRACE,
        )
        .await;
        let opened = Instant::now();
        let mut half = half_sent(witness.address).await;
        // A connection that sends nothing at all is no better.
        let mut silent = tokio::net::TcpStream::connect(witness.address)
            .await
            .unwrap();
        for stream in [&mut half, &mut silent] {
            tokio::time::timeout(Duration::from_secs(20), until_closed(stream))
                .await
                .expect("the witness keeps a half-sent request open");
        }
        assert!(opened.elapsed() >= header_timeout, "{:?}", opened.elapsed());
    }

    /// The issue's flood, in small: more half-sent requests than the witness has
    /// connections. They wait their turn or time out; the standby's request is answered.
    #[tokio::test]
    async fn many_half_sent_connections_do_not_stop_an_authorised_request() {
        let witness = start_with(
            limits(Duration::from_millis(300), 4),
            closed_port_check(),
            SHUTDOWN_GRACE,
        )
        .await;
        let mut flood = Vec::new();
        for _ in 0..24 {
            flood.push(half_sent(witness.address).await);
        }
        let response = reqwest::Client::new()
            .get(witness.base.join("v1/primary").unwrap())
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the authorised request is answered");
        assert_eq!(response.status().as_u16(), 200);
        let observation: Observation = response.json().await.unwrap();
        assert_eq!(observation.witness, NAME);
        // Every one of the flood was dropped for its silence.
        for stream in &mut flood {
            tokio::time::timeout(Duration::from_secs(20), until_closed(stream))
                .await
                .unwrap();
        }
    }

    /// Stopping with idle and half-sent clients open does not wait for them: not for the
    /// header timeout, not for the grace (both a minute here).
    #[tokio::test]
    async fn stopping_does_not_wait_for_idle_or_half_sent_clients() {
        let minute = Duration::from_secs(60);
        let witness = start_with(limits(minute, 8), closed_port_check(), minute).await;
        let mut half = half_sent(witness.address).await;
        let mut idle = tokio::net::TcpStream::connect(witness.address)
            .await
            .unwrap();
        // A kept-alive connection after a full answer.
        let mut kept = tokio::net::TcpStream::connect(witness.address)
            .await
            .unwrap();
        kept.write_all(
            format!("GET /v1/primary HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = [0u8; 12];
        kept.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");

        witness.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), witness.stopped)
            .await
            .expect("stopping waited for a client")
            .unwrap()
            .unwrap();
        for stream in [&mut half, &mut idle, &mut kept] {
            tokio::time::timeout(Duration::from_secs(5), until_closed(stream))
                .await
                .unwrap();
        }
    }

    /// A request whose round hangs (the primary accepts and never answers) is given the
    /// grace at shutdown, then closed: stopping is bounded whatever the checks do.
    #[tokio::test]
    async fn stopping_gives_a_request_in_flight_a_bounded_grace() {
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let check = CheckConfig::Http {
            url: format!("http://{}/health", hung.local_addr().unwrap())
                .parse()
                .unwrap(),
            expect_status: None,
            expect_body: None,
        };
        let grace = Duration::from_millis(300);
        let witness = start_with(limits(Duration::from_secs(60), 8), check, grace).await;
        let asking = tokio::spawn(
            reqwest::Client::new()
                .get(witness.base.join("v1/primary").unwrap())
                .bearer_auth(TOKEN)
                .send(),
        );
        // The round is running once its check has reached the hung primary.
        let (_held, _) = tokio::time::timeout(Duration::from_secs(20), hung.accept())
            .await
            .unwrap()
            .unwrap();

        let stopping = Instant::now();
        witness.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), witness.stopped)
            .await
            .expect("stopping waited for the round")
            .unwrap()
            .unwrap();
        assert!(stopping.elapsed() >= grace, "{:?}", stopping.elapsed());
        let asked = asking.await.unwrap();
        assert!(
            asked.is_err(),
            "no answer, the connection closed: {asked:?}"
        );
    }

    #[tokio::test]
    async fn the_rate_limit_answers_429_with_retry_after_and_lets_a_well_behaved_client_through() {
        let witness = start_with(
            WitnessLimits {
                requests_per_second: 1,
                request_burst: 3,
                ..WitnessLimits::default()
            },
            closed_port_check(),
            SHUTDOWN_GRACE,
        )
        .await;
        let endpoint = witness.base.join("v1/primary").unwrap();
        let flooder = reqwest::Client::new();
        // Its burst: answered (401: it has no token).
        for _ in 0..3 {
            let response = flooder.get(endpoint.clone()).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401);
        }
        // Beyond: 429 before the token is looked at, with or without one.
        for token in [None, Some(TOKEN)] {
            let mut request = flooder.get(endpoint.clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 429, "{token:?}");
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            assert_eq!(
                response.text().await.unwrap(),
                r#"{"error":"too many requests"}"#
            );
        }
        // Another client is not held for it.
        let standby = reqwest::Client::builder()
            .local_address(IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let response = standby
            .get(endpoint.clone())
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        // And the flooder, once it waits as told (`Retry-After: 1`), is heard again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let response = flooder
            .get(endpoint.clone())
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn a_request_with_a_body_is_refused_once_authorised() {
        let witness = start_with(
            WitnessLimits::default(),
            closed_port_check(),
            SHUTDOWN_GRACE,
        )
        .await;
        let endpoint = witness.base.join("v1/primary").unwrap();
        let http = reqwest::Client::new();
        let big = vec![b'x'; 2 * MAX_BODY as usize];
        let response = http
            .get(endpoint.clone())
            .bearer_auth(TOKEN)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 413);
        // Without the token the answer is the same 401 as ever.
        let response = http.get(endpoint.clone()).body(big).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        // A small body is let be.
        let response = http
            .get(endpoint)
            .bearer_auth(TOKEN)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    #[test]
    fn a_client_over_its_burst_waits_for_the_rate() {
        let limit = RateLimit::new(2, 3);
        let t0 = Instant::now();
        let flooder = IpAddr::from([203, 0, 113, 7]);
        for _ in 0..3 {
            assert_eq!(limit.admit(flooder, t0), Admission::Allowed);
        }
        assert_eq!(
            limit.admit(flooder, t0),
            Admission::Refused {
                retry_after: Duration::from_secs(1),
                first: true
            }
        );
        // Told once, not per request.
        assert!(matches!(
            limit.admit(flooder, t0),
            Admission::Refused { first: false, .. }
        ));
        // Half a second refills one request at 2 a second.
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limit.admit(flooder, later), Admission::Allowed);
        assert!(matches!(
            limit.admit(flooder, later),
            Admission::Refused { first: true, .. }
        ));
        // Others have their own buckets.
        assert_eq!(
            limit.admit(IpAddr::from([203, 0, 113, 8]), t0),
            Admission::Allowed
        );
    }

    /// A flood from many addresses cannot grow the map: clients whose buckets refilled
    /// are forgotten, and beyond the bound the newcomers share one bucket.
    #[test]
    fn the_rate_limit_tracks_a_bounded_number_of_clients() {
        let limit = RateLimit::new(1, 2);
        let t0 = Instant::now();
        let client = |n: usize| IpAddr::from(Ipv4Addr::from(0x0a00_0000 + n as u32));
        for n in 0..MAX_CLIENTS {
            assert_eq!(limit.admit(client(n), t0), Admission::Allowed);
        }
        let tracked = || limit.buckets.lock().unwrap().clients.len();
        assert_eq!(tracked(), MAX_CLIENTS);
        // All still busy: the newcomers share one bucket of two.
        let newcomer = client(MAX_CLIENTS);
        assert_eq!(limit.admit(newcomer, t0), Admission::Allowed);
        assert_eq!(limit.admit(client(MAX_CLIENTS + 1), t0), Admission::Allowed);
        assert!(matches!(
            limit.admit(client(MAX_CLIENTS + 2), t0),
            Admission::Refused { .. }
        ));
        assert_eq!(tracked(), MAX_CLIENTS + 1);
        // Once their buckets have refilled, they are forgotten.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limit.admit(newcomer, later), Admission::Allowed);
        assert_eq!(tracked(), 1);
    }
}

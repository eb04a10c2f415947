//! The metrics sink and its server: the witness's registry, the text format, and what
//! `GET /metrics` answers, with and without a token, over TLS, to clients that stall.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use super::*;
use crate::serve::testing::{https_client, self_signed};

fn at() -> jiff::Timestamp {
    "2026-11-23T21:00:00Z".parse().unwrap()
}

fn checks() -> Vec<CheckSample<'static>> {
    vec![
        CheckSample {
            kind: "tcp",
            target: "198.51.100.10:3306",
            ok: false,
            took: Duration::from_millis(1500),
        },
        CheckSample {
            kind: "http",
            target: "https://probe:pw-secret@primary.example.com/health",
            ok: true,
            took: Duration::from_millis(20),
        },
    ]
}

/// The value of the sample `name{labels}` (exactly as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

#[test]
fn the_witness_counts_its_answers_by_code_and_shows_its_checks() {
    let metrics = WitnessMetrics::new();
    metrics.answered(StatusCode::OK);
    metrics.answered(StatusCode::UNAUTHORIZED);
    metrics.answered(StatusCode::UNAUTHORIZED);
    metrics.round(at(), &checks());
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
    let mut request =
        reqwest::Client::new().request(method.parse().unwrap(), format!("http://{address}{path}"));
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

fn configured(token: Option<&str>, tls: Option<crate::config::TlsFiles>) -> MetricsConfig {
    MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: token.map(Secret::inline),
        tls,
        max_connections_per_client: crate::config::defaults::METRICS_MAX_CONNECTIONS_PER_CLIENT,
        write_timeout: crate::config::defaults::WRITE_TIMEOUT,
    }
}

/// With `token`, a scrape without it (or with another) is refused on every path before
/// the path is looked at; with it, the page is served as ever.
#[tokio::test]
async fn with_a_token_a_scrape_without_it_is_refused_on_every_path() {
    let metrics = WitnessMetrics::new();
    let config = configured(Some("scrape-token-0123456789"), None);
    let server = MetricsServer::start_with(&config, metrics.registry())
        .await
        .unwrap();
    let base = format!("http://{}", server.address());
    let http = reqwest::Client::new();
    for (path, token) in [
        ("/metrics", None),
        ("/metrics", Some("scrape-token-012345678")),
        ("/nowhere", None),
    ] {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{path} {token:?}");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
    let scrape = |path: &str| {
        http.get(format!("{base}{path}"))
            .bearer_auth("scrape-token-0123456789")
            .send()
    };
    let page = scrape("/metrics").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("failover_watchdog_build_info{")
    );
    assert_eq!(scrape("/nowhere").await.unwrap().status(), 404);
}

/// With `tls_cert_file` and `tls_key_file` the page is served over HTTPS, to a client
/// that trusts the certificate; a plain HTTP request gets no page.
#[tokio::test]
async fn with_tls_the_page_is_served_over_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file, cert) = self_signed(dir.path());
    let config = configured(
        Some("scrape-token-0123456789"),
        Some(crate::config::TlsFiles {
            cert_file,
            key_file,
        }),
    );
    let server = MetricsServer::start_with(&config, WitnessMetrics::new().registry())
        .await
        .unwrap();
    let port = server.address().port();
    let response = https_client(&cert)
        .get(format!("https://localhost:{port}/metrics"))
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("failover_watchdog_build_info{")
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .bearer_auth("scrape-token-0123456789")
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "a plain request was answered: {plain:?}");
}

/// TLS files that do not go together stop the start, naming the key.
#[tokio::test]
async fn a_key_that_is_not_the_certificates_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, _, _) = self_signed(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, key_file, _) = self_signed(&other);
    let config = configured(
        None,
        Some(crate::config::TlsFiles {
            cert_file,
            key_file,
        }),
    );
    let error = match MetricsServer::start_with(&config, WitnessMetrics::new().registry()).await {
        Ok(_) => panic!("started with a key of another certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.starts_with("metrics.tls_key_file: ") && error.contains("does not go with"),
        "{error}"
    );
}

/// The bug: 16 clients that pipeline requests to /metrics and never read their answers
/// kept the endpoint unreachable (every slot held, each blocked writing). Now a fresh
/// scrape is served at once, and every one of them is dropped within the write timeout.
#[tokio::test(flavor = "multi_thread")]
async fn sixteen_clients_that_pipeline_and_never_read_do_not_keep_a_fresh_scrape_out() {
    use crate::serve::testing::{assert_dropped, connect_from, pipeliner};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = configured(None, None);
    config.write_timeout = Duration::from_millis(500);
    let metrics = DaemonMetrics::new(Vec::new);
    let server = MetricsServer::start_with(&config, metrics.registry())
        .await
        .unwrap();
    let address = server.address();
    let started = std::time::Instant::now();
    let mut stalled = Vec::new();
    for n in 0..MAX_CONNECTIONS as u8 {
        let from = std::net::IpAddr::from([127, 0, 1, n + 1]);
        stalled.push(pipeliner(from, address, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n").await);
    }

    let asked = std::time::Instant::now();
    let mut scrape = connect_from([127, 0, 0, 2].into(), address).await;
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), scrape.read_to_end(&mut answer))
        .await
        .expect("the fresh scrape was kept out")
        .unwrap();
    let took = asked.elapsed();
    println!("a fresh scrape beside 16 stalled pipeliners was answered in {took:?}");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(took < config.write_timeout, "{took:?}");

    // Each stalled client is dropped: the one that made room, and the rest at their
    // write timeout. Without it they would be held for as long as they keep still.
    for client in stalled {
        assert_dropped(client).await;
    }
    assert!(started.elapsed() >= config.write_timeout);
}

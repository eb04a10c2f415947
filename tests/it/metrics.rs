//! Prometheus metrics (`[metrics] listen`): the daemon and the witness serve
//! `GET /metrics`, with values that follow what they do, in a form `promtool check
//! metrics` accepts. promtool must be installed (scripts/install-deps.sh): without it
//! these tests fail, never skip.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::support::*;

const METRICS_TABLE: &str = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// The address the metrics are served on, from the start-up line in the log at `log`
/// (the port is the kernel's choice).
async fn metrics_url(what: &str, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text
            .split("serving metrics on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            return url.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not serve metrics within 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the series `name{labels}`, written exactly as the server writes it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

/// Scrapes until `done` holds for the page (bounded), and returns that page.
async fn scrape_until(url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(url).await;
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within 60 s; last page:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `promtool check metrics` on `page`: it must find nothing to say.
async fn promtool_accepts(page: &str) {
    let mut promtool = match tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}); install it with scripts/install-deps.sh (Debian package prometheus)"
        ),
    };
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(page.as_bytes()).await.unwrap();
    drop(stdin);
    let output = promtool.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused the page: {}{}\n{page}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `promtool check <what> <path>` must pass.
async fn promtool_check_file(what: &str, path: &std::path::Path) {
    let output = match tokio::process::Command::new("promtool")
        .args(["check", what])
        .arg(path)
        .output()
        .await
    {
        Ok(output) => output,
        Err(e) => panic!("cannot run promtool ({e}); install it with scripts/install-deps.sh"),
    };
    assert!(
        output.status.success(),
        "promtool check {what} refused {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The daemon's page follows its rounds, the replica and a promotion, and passes
/// promtool before and after.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_its_state_checks_replication_and_promotions() {
    let mut rig = stage().await;
    rig.write_config(&format!("{}{METRICS_TABLE}", rig.config()));
    let daemon = rig.spawn_daemon();
    let url = metrics_url("the daemon", daemon.log_path()).await;
    let primary = &rig.db.primary;
    let tcp = format!(
        r#"failover_watchdog_check_up{{type="tcp",target="{}:{}"}}"#,
        primary.host(),
        primary.port()
    );

    let healthy = scrape_until(&url, "a healthy round", |page| {
        value(page, &tcp) == Some(1.0)
            && value(page, "failover_watchdog_replication_io_running") == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&healthy, r#"failover_watchdog_state{state="monitoring"}"#),
        Some(1.0),
        "{healthy}"
    );
    assert_eq!(
        value(&healthy, r#"failover_watchdog_state{state="promoted"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&healthy, "failover_watchdog_failures_before_promotion"),
        Some(3.0)
    );
    assert_eq!(
        value(&healthy, "failover_watchdog_consecutive_failures"),
        Some(0.0)
    );
    assert_eq!(
        value(&healthy, "failover_watchdog_replication_sql_running"),
        Some(1.0)
    );
    assert_eq!(
        value(&healthy, "failover_watchdog_replication_lag_seconds"),
        Some(0.0)
    );
    let last_round = value(&healthy, "failover_watchdog_last_round_timestamp_seconds").unwrap();
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        (now - 60.0..=now + 1.0).contains(&last_round),
        "last round at {last_round}, now {now}"
    );
    assert!(
        healthy.contains("failover_watchdog_build_info{version=\""),
        "{healthy}"
    );
    promtool_accepts(&healthy).await;

    // Prometheus asks for OpenMetrics, and gets prometheus-client's own encoding.
    let open = reqwest::Client::new()
        .get(&url)
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));
    assert_eq!(
        reqwest::get(url.replace("/metrics", "/"))
            .await
            .unwrap()
            .status(),
        404
    );

    // The primary dies: the count, the promotion, its steps and the alerts show.
    rig.db.primary.kill9();
    let promoted = scrape_until(&url, "the promotion", |page| {
        value(
            page,
            r#"failover_watchdog_promotions_total{trigger="automatic",outcome="promoted"}"#,
        ) == Some(1.0)
            && value(page, r#"failover_watchdog_state{state="promoted"}"#) == Some(1.0)
    })
    .await;
    assert_eq!(value(&promoted, &tcp), Some(0.0), "{promoted}");
    for step in [
        "stop_replica",
        "make_writable",
        "start_apps",
        "update_dns",
        "notify",
    ] {
        let series =
            format!(r#"failover_watchdog_promotion_step_duration_seconds{{step="{step}"}}"#);
        assert!(value(&promoted, &series).is_some(), "{series}:\n{promoted}");
    }
    assert!(
        value(
            &promoted,
            r#"failover_watchdog_alerts_sent_total{channel="telegram"}"#
        )
        .is_some_and(|sent| sent >= 1.0),
        "{promoted}"
    );
    assert_eq!(
        value(
            &promoted,
            r#"failover_watchdog_alerts_failed_total{channel="telegram"}"#
        ),
        Some(0.0)
    );
    promtool_accepts(&promoted).await;
    daemon.stop().await;
}

/// The witness's page: its build, its answers by status code, its checks.
#[tokio::test(flavor = "multi_thread")]
async fn the_witness_serves_its_answers_by_code_and_its_checks() {
    let rig = stage().await;
    let config = rig.dir.path().join("witness-metrics.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"ams1\"\n\n[witness]\ntoken_file = \"witness.token\"\n\n[probe]\ntimeout = \"500ms\"\n{}{METRICS_TABLE}",
            rig.primary_checks()
        ),
    )
    .unwrap();
    let log = rig.dir.path().join("witness-metrics.log");
    let file = std::fs::File::create(&log).unwrap();
    let _witness = tokio::process::Command::new(BIN)
        .args(["witness", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = metrics_url("the witness", &log).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let base = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(address) = text
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            break format!("http://{}", address.trim_end_matches(':'));
        }
        assert!(
            Instant::now() < deadline,
            "the witness did not listen:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let client = reqwest::Client::new();
    let ask = |token: Option<&'static str>| {
        let mut request = client.get(format!("{base}/v1/primary"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(ask(Some(WITNESS_TOKEN)).await.unwrap().status(), 200);
    assert_eq!(ask(None).await.unwrap().status(), 401);
    assert_eq!(ask(Some("not-the-token")).await.unwrap().status(), 401);

    let page = scrape(&url).await;
    assert_eq!(
        value(
            &page,
            r#"failover_watchdog_witness_requests_total{code="200"}"#
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            r#"failover_watchdog_witness_requests_total{code="401"}"#
        ),
        Some(2.0),
        "{page}"
    );
    let primary = &rig.db.primary;
    assert_eq!(
        value(
            &page,
            &format!(
                r#"failover_watchdog_check_up{{type="tcp",target="{}:{}"}}"#,
                primary.host(),
                primary.port()
            )
        ),
        Some(1.0),
        "{page}"
    );
    assert!(page.contains("failover_watchdog_build_info{"), "{page}");
    assert!(!page.contains("failover_watchdog_state"), "{page}");
    promtool_accepts(&page).await;
}

/// The README's example alerting rules are valid rules, by promtool.
#[tokio::test]
async fn the_readmes_alerting_rules_pass_promtool() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```yaml\ngroups:")
        .expect("the README's Metrics section has its rules");
    let rules = &readme[start + "```yaml\n".len()..];
    let rules = &rules[..rules.find("```").unwrap()];
    assert!(rules.contains("FailoverWatchdogDown") && rules.contains("FailoverStandbyNotReady"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).unwrap();
    promtool_check_file("rules", &path).await;
}

/// Issue 21, on the daemon's endpoint: 300 half-sent requests from one address, under
/// a 256-descriptor limit. That address keeps its share (4) and the rest make room, so
/// a scrape from that address or another is answered within 100 ms.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_half_sent_requests_gives_way_to_a_scrape_at_once() {
    let rig = stage().await;
    rig.write_config(&format!("{}{METRICS_TABLE}", rig.config()));
    let log = rig.dir.path().join("flooded-daemon.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut command = rig.command(&["run"]);
    command
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true);
    crate::flood::with_open_file_limit(command.as_std_mut(), 256);
    let mut daemon = command.spawn().unwrap();
    let url = metrics_url("the daemon", &log).await;
    let address: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let started = std::fs::read_to_string(&log).unwrap();
    assert!(
        started.contains(
            "metrics: at most 16 connections at once, 4 per client (open-file limit: 256)"
        ),
        "{started}"
    );

    let mut flood = crate::flood::half_sent(address, b"GET /metrics HTTP/1.1\r\n", 300);
    // Every one of them has been taken in (and the room made) before the clock starts.
    let gone = crate::flood::until_closed(&mut flood, 296).await;
    assert_eq!(gone.iter().filter(|g| **g).count(), 296, "{gone:?}");
    assert!(
        gone[..292].iter().all(|g| *g),
        "the oldest half-sent requests made room first: {gone:?}"
    );
    for from in [[127, 0, 0, 1], [127, 0, 0, 2]] {
        let (took, status) = crate::flood::timed(
            from.into(),
            address,
            "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n",
        )
        .await;
        println!("a scrape from {from:?} beside the flood answered in {took:?}");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(took < Duration::from_millis(100), "from {from:?}: {took:?}");
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("making room: 127.0.0.1 holds more than its share of 4"),
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

/// The README's scrape job for a standby with a token and TLS is a valid Prometheus
/// config, by promtool (its files made here).
#[tokio::test]
async fn the_readmes_scrape_config_passes_promtool() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```yaml\nscrape_configs:")
        .expect("the README's Metrics section has its scrape job");
    let job = &readme[start + "```yaml\n".len()..];
    let job = &job[..job.find("```").unwrap()];
    assert!(job.contains("credentials_file") && job.contains("scheme: https"));
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("failover-watchdog.token"), "t0k3n\n").unwrap();
    std::fs::write(dir.path().join("failover-watchdog-ca.pem"), made.cert.pem()).unwrap();
    let job = job.replace("/etc/prometheus/", &format!("{}/", dir.path().display()));
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, job).unwrap();
    promtool_check_file("config", &path).await;
}

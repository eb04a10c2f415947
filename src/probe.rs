//! Probing the primary: one round runs every configured check concurrently, each bounded
//! by `[probe] timeout`, and gives a verdict by `fail_when`.
//!
//! The timeout wraps the whole check (connect, handshake, query, body), so a primary that
//! accepts TCP connections and then hangs (SIGSTOP, a wedged kernel) fails the round on
//! time instead of stalling the daemon.

use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{CheckConfig, FailWhen, ProbeConfig};
use crate::witness::WitnessReport;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: u64,
    /// The primary's `@@gtid_binlog_pos`, read by a `mysql` check that answered: what the
    /// primary had committed at that moment (for the data-loss accounting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_binlog_pos: Option<String>,
    /// The primary's `@@global.read_only`, read by a `mysql` check that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// What a check that passed learned.
#[derive(Default)]
struct Answer {
    detail: String,
    gtid_binlog_pos: Option<String>,
    read_only: Option<bool>,
}

impl From<String> for Answer {
    fn from(detail: String) -> Self {
        Answer {
            detail,
            ..Answer::default()
        }
    }
}

/// One round's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundReport {
    pub at: Timestamp,
    /// The primary's checks passed (by `fail_when`).
    pub ok: bool,
    pub checks: Vec<CheckReport>,
    /// The standby's own `self_checks`, run in the same round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_checks: Vec<CheckReport>,
    /// What the witnesses said, when they were asked (a failed round, with witnesses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessReport>,
}

impl RoundReport {
    /// The failed self-checks in one line; `None` when none failed.
    pub fn self_check_failures(&self) -> Option<String> {
        let failed: Vec<String> = self
            .self_checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}: {}", c.kind, c.target, c.detail))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    /// Whether the primary's database takes writes, if a `mysql` check read it.
    pub fn primary_writable(&self) -> Option<bool> {
        self.checks.iter().find_map(|c| c.read_only.map(|r| !r))
    }

    /// The checks that passed, in one line.
    pub fn answers(&self) -> String {
        let answered: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.ok)
            .map(|c| format!("{} {}", c.kind, c.target))
            .collect();
        answered.join(", ")
    }

    /// The primary's GTID position, if a `mysql` check read it this round.
    pub fn primary_gtid(&self) -> Option<&str> {
        self.checks
            .iter()
            .find_map(|c| c.gtid_binlog_pos.as_deref())
    }

    /// The failed checks in one line, for logs and the opening alert.
    pub fn failures(&self) -> String {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}: {}", c.kind, c.target, c.detail))
            .collect();
        if failed.is_empty() {
            "no check failed".to_string()
        } else {
            failed.join("; ")
        }
    }
}

/// Runs probe rounds against the primary.
#[derive(Debug, Clone)]
pub struct Prober {
    checks: Vec<CheckConfig>,
    self_checks: Vec<CheckConfig>,
    timeout: Duration,
    fail_when: FailWhen,
    /// No connection pooling: every round opens a fresh connection, as a client of a
    /// restarted or hung primary would.
    http: reqwest::Client,
}

impl Prober {
    /// The standby's prober: the primary's checks and the self-checks.
    pub fn new(config: &ProbeConfig) -> anyhow::Result<Self> {
        let mut prober = Self::for_checks(&config.checks, config.timeout, config.fail_when)?;
        prober.self_checks = config.self_checks.clone();
        Ok(prober)
    }

    /// A prober of the primary's `checks` alone (a witness's).
    pub fn for_checks(
        checks: &[CheckConfig],
        timeout: Duration,
        fail_when: FailWhen,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(timeout)
            .user_agent(concat!("failover-watchdog/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            checks: checks.to_vec(),
            self_checks: Vec::new(),
            timeout,
            fail_when,
            http,
        })
    }

    /// Runs every check concurrently and returns the round's verdict.
    pub async fn run_round(&self) -> RoundReport {
        let at = Timestamp::now();
        let (checks, self_checks) = tokio::join!(
            join_all(self.checks.iter().map(|check| self.run_check(check))),
            join_all(self.self_checks.iter().map(|check| self.run_check(check))),
        );
        let ok = round_ok(self.fail_when, checks.iter().map(|c| c.ok));
        RoundReport {
            at,
            ok,
            checks,
            self_checks,
            witnesses: Vec::new(),
        }
    }

    async fn run_check(&self, check: &CheckConfig) -> CheckReport {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.check_once(check)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )),
        };
        let (ok, answer) = match result {
            Ok(answer) => (true, answer),
            Err(detail) => (false, Answer::from(detail)),
        };
        CheckReport {
            kind: check.kind().to_string(),
            target: check.target(),
            ok,
            detail: answer.detail,
            duration_ms: started.elapsed().as_millis() as u64,
            gtid_binlog_pos: answer.gtid_binlog_pos,
            read_only: answer.read_only,
        }
    }

    async fn check_once(&self, check: &CheckConfig) -> Result<Answer, String> {
        match check {
            CheckConfig::Http {
                url,
                expect_status,
                expect_body,
            } => {
                let response = self
                    .http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| error_chain(&e))?;
                let status = response.status();
                let status_ok = match expect_status {
                    Some(expected) => status.as_u16() == *expected,
                    None => status.is_success(),
                };
                if !status_ok {
                    let wanted = expect_status.map_or("2xx".to_string(), |s| s.to_string());
                    return Err(format!("HTTP {} (expected {wanted})", status.as_u16()));
                }
                if let Some(needle) = expect_body {
                    let body = response.text().await.map_err(|e| error_chain(&e))?;
                    if !body.contains(needle.as_str()) {
                        return Err(format!("HTTP {}, body lacks {needle:?}", status.as_u16()));
                    }
                }
                Ok(format!("HTTP {}", status.as_u16()).into())
            }
            CheckConfig::Tcp { address } => {
                tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok("connected".to_string().into())
            }
            CheckConfig::Mysql {
                host,
                port,
                user,
                password,
                tls,
            } => {
                use mysql_async::prelude::Queryable;
                let mut conn = match crate::mysql::connect(host, *port, user, password, tls).await {
                    Ok(conn) => conn,
                    // It answered: a TLS problem is no dead primary (see mysql.rs).
                    Err(e) => {
                        return e
                            .alive_despite_tls()
                            .map(Answer::from)
                            .ok_or_else(|| e.to_string());
                    }
                };
                // SELECT 1, what the primary has committed and whether it takes writes
                // (no privilege needed for either variable).
                let row: Option<(i64, Option<String>, Option<i64>)> = conn
                    .query_first("SELECT 1, @@global.gtid_binlog_pos, @@global.read_only")
                    .await
                    .map_err(|e| error_chain(&e))?;
                let _ = conn.disconnect().await;
                match row {
                    Some((1, gtid, read_only)) => Ok(Answer {
                        detail: "SELECT 1 answered".to_string(),
                        gtid_binlog_pos: gtid,
                        read_only: read_only.map(|r| r != 0),
                    }),
                    other => Err(format!("SELECT 1 returned {other:?}")),
                }
            }
        }
    }
}

/// The round's verdict from its checks' results.
pub fn round_ok(fail_when: FailWhen, checks: impl IntoIterator<Item = bool>) -> bool {
    let results: Vec<bool> = checks.into_iter().collect();
    match fail_when {
        FailWhen::Any => results.iter().all(|ok| *ok),
        FailWhen::All => results.iter().any(|ok| *ok),
    }
}

/// An error with its causes, on one line (reqwest's top-level message alone says
/// little), without the repetitions some crates put in their own messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        for part in cause.to_string().split(": ") {
            if parts.last().is_none_or(|last| last != part)
                && !parts.iter().any(|p| p.contains(part))
            {
                parts.push(part.to_string());
            }
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// A duration for people: "8 ms", "1.2 s".
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn error_chains_drop_repeated_parts() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let wrapped =
            std::io::Error::other(format!("Input/output error: Input/output error: {io}"));
        assert_eq!(
            error_chain(&wrapped),
            "Input/output error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(8)), "8 ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.2 s");
    }

    #[test]
    fn fail_when_any_and_all() {
        assert!(round_ok(FailWhen::Any, [true, true]));
        assert!(!round_ok(FailWhen::Any, [true, false]));
        assert!(round_ok(FailWhen::All, [true, false]));
        assert!(!round_ok(FailWhen::All, [false, false]));
    }

    fn prober(checks: Vec<CheckConfig>, timeout: Duration) -> Prober {
        Prober::new(&ProbeConfig {
            interval: timeout * 6,
            failures_before_promotion: 3,
            timeout,
            fail_when: FailWhen::Any,
            checks,
            self_checks: Vec::new(),
            confirm_with_replication: false,
            replication_silence: Some(timeout * 12),
            witnesses: Vec::new(),
        })
        .unwrap()
    }

    /// A primary that accepts TCP and then says nothing (SIGSTOP) must fail the round
    /// after `timeout`, not hang it. Paused time: the ten seconds pass instantly.
    #[tokio::test(start_paused = true)]
    async fn a_hung_primary_fails_the_round_on_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and hold connections open without a byte of handshake.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let prober = prober(
            vec![
                CheckConfig::Mysql {
                    host: "127.0.0.1".into(),
                    port,
                    user: "watchdog".into(),
                    password: Secret::inline("pw"),
                    tls: crate::config::TlsConfig::DISABLED,
                },
                CheckConfig::Tcp {
                    address: format!("127.0.0.1:{port}"),
                },
            ],
            Duration::from_secs(10),
        );
        let started = Instant::now();
        let round = prober.run_round().await;
        let took = started.elapsed();
        assert!(!round.ok);
        assert!(!round.checks[0].ok, "{:?}", round.checks[0]);
        assert!(
            round.checks[0].detail.contains("no answer within 10s"),
            "{:?}",
            round.checks[0]
        );
        assert!(
            round.checks[1].ok,
            "tcp connect alone succeeds against a hung server"
        );
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_secs(11),
            "{took:?}"
        );
    }

    /// A one-connection-at-a-time HTTP server that answers every request with `status`
    /// and `body`; returns its URL.
    async fn http_server(status: &'static str, body: &'static str) -> url::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        url.parse().unwrap()
    }

    fn http_check(
        url: url::Url,
        expect_status: Option<u16>,
        expect_body: Option<&str>,
    ) -> CheckConfig {
        CheckConfig::Http {
            url,
            expect_status,
            expect_body: expect_body.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn http_checks_match_status_and_body() {
        let healthy = http_server("200 OK", "status: ok").await;
        let failing = http_server("503 Service Unavailable", "maintenance").await;
        let cases = [
            (http_check(healthy.clone(), None, None), true, "HTTP 200"),
            (
                http_check(healthy.clone(), Some(200), Some("ok")),
                true,
                "HTTP 200",
            ),
            (
                http_check(healthy.clone(), None, Some("database up")),
                false,
                "body lacks",
            ),
            (http_check(healthy, Some(204), None), false, "expected 204"),
            (
                http_check(failing.clone(), None, None),
                false,
                "HTTP 503 (expected 2xx)",
            ),
            (http_check(failing, Some(503), None), true, "HTTP 503"),
        ];
        for (check, ok, detail) in cases {
            let round = prober(vec![check.clone()], Duration::from_secs(2))
                .run_round()
                .await;
            assert_eq!(round.ok, ok, "{check:?}: {:?}", round.checks[0]);
            assert!(
                round.checks[0].detail.contains(detail),
                "{check:?}: {:?}",
                round.checks[0]
            );
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_a_tcp_check() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let round = prober(vec![CheckConfig::Tcp { address }], Duration::from_secs(2))
            .run_round()
            .await;
        assert!(!round.ok);
        assert!(
            round.failures().contains("tcp 127.0.0.1:"),
            "{}",
            round.failures()
        );
    }
}

//! Probing the primary: one round runs every configured check concurrently, each bounded
//! by `[probe] timeout` (or by the shorter bound a suspect round fits its cadence with:
//! [`Prober::run_round_within`]), and gives a verdict by `fail_when`.
//!
//! The timeout wraps the whole check (connect, handshake, query, body), so a primary that
//! accepts TCP connections and then hangs (SIGSTOP, a wedged kernel) fails the round on
//! time instead of stalling the daemon. The `http` check's client is
//! [`crate::http_client`]'s: it follows no redirect (a 3xx fails the check, naming its
//! target, unless `expect_status` names it) and reads a body for `expect_body` up to
//! the cap, failing beyond it.

use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::config::{CheckConfig, FailWhen, ProbeConfig};
use crate::gtid::GtidPosition;
use crate::mariadb::{Server, Unreachable};
pub use failover_watchdog_core::report::{
    CheckReport, RoundReport, error_chain, human_duration, round_ok,
};

/// What a check that passed learned.
#[derive(Default)]
struct Answer {
    detail: String,
    gtid_binlog_pos: Option<GtidPosition>,
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
        let http = crate::http_client::builder(timeout)
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Self {
            checks: checks.to_vec(),
            self_checks: Vec::new(),
            timeout,
            fail_when,
            http,
        })
    }

    /// Runs every check concurrently, each within the probe timeout, and returns the
    /// round's verdict.
    pub async fn run_round(&self) -> RoundReport {
        self.run_round_within(self.timeout).await
    }

    /// As [`Prober::run_round`], each check within `within` (the probe timeout at most):
    /// a suspect round's checks fit its cadence, so one that gets no answer cannot hold
    /// the round past it.
    pub async fn run_round_within(&self, within: Duration) -> RoundReport {
        let within = within.min(self.timeout);
        let at = Timestamp::now();
        let (checks, self_checks) = tokio::join!(
            join_all(
                self.checks
                    .iter()
                    .map(|check| self.run_check(check, within))
            ),
            join_all(
                self.self_checks
                    .iter()
                    .map(|check| self.run_check(check, within))
            ),
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

    async fn run_check(&self, check: &CheckConfig, within: Duration) -> CheckReport {
        let started = Instant::now();
        let result = match tokio::time::timeout(within, self.check_once(check, within)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {}",
                humantime::format_duration(within)
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

    async fn check_once(&self, check: &CheckConfig, within: Duration) -> Result<Answer, String> {
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
                    // Not followed: the check is of the primary, not of where it points.
                    let redirect = crate::http_client::redirect(&response)
                        .map_or(String::new(), |r| {
                            format!(": a redirect to {}, not followed", r.target)
                        });
                    return Err(format!(
                        "HTTP {} (expected {wanted}){redirect}",
                        status.as_u16()
                    ));
                }
                if let Some(needle) = expect_body {
                    let body = crate::http_client::read_text(response)
                        .await
                        .map_err(|e| format!("HTTP {}: {e}", status.as_u16()))?;
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
                // SELECT 1, what the primary has committed and whether it takes writes.
                let server = Server::checked(host, *port, user, password, tls, within);
                match server.ping().await {
                    Ok(ping) => Ok(Answer {
                        detail: "SELECT 1 answered".to_string(),
                        gtid_binlog_pos: Some(ping.gtid_binlog_pos),
                        read_only: Some(ping.read_only),
                    }),
                    Err(e) => mysql_failure(&e),
                }
            }
        }
    }
}

/// A `mysql` check that got no answer to `SELECT 1`: failed, in the server's words;
/// but a server that answered and then failed TLS is alive, loudly (a TLS problem is
/// no dead primary: `mariadb::connect`'s doc).
fn mysql_failure(error: &anyhow::Error) -> Result<Answer, String> {
    match error.downcast_ref::<Unreachable>() {
        Some(Unreachable::Refused { error, .. }) => error
            .alive_despite_tls()
            .map(Answer::from)
            .ok_or_else(|| error.to_string()),
        Some(Unreachable::Timeout { within, .. }) => Err(format!(
            "no answer within {}",
            humantime::format_duration(*within)
        )),
        None => Err(format!("{error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn prober(checks: Vec<CheckConfig>, timeout: Duration) -> Prober {
        Prober::new(&ProbeConfig {
            interval: timeout * 6,
            suspect_interval: timeout * 6,
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
    /// after `timeout` (or a suspect round's shorter bound), not hang it. Paused time:
    /// the seconds pass instantly.
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

        // A suspect round's bound (5 s) cuts the same check at 5 s, not the timeout; a
        // longer bound than the timeout is the timeout.
        let started = Instant::now();
        let round = prober.run_round_within(Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(!round.checks[0].ok);
        assert!(
            round.checks[0].detail.contains("no answer within 5s"),
            "{:?}",
            round.checks[0]
        );
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
        let round = prober.run_round_within(Duration::from_secs(60)).await;
        assert!(round.checks[0].detail.contains("no answer within 10s"));
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

    /// An endless body at the health URL is read up to the cap, and fails the check
    /// naming it; a redirect is not followed, and fails the check naming its target,
    /// unless `expect_status` names it.
    #[tokio::test]
    async fn an_endless_body_or_a_redirect_fails_the_http_check_naming_why() {
        use failover_watchdog_rig::health::ScriptedHealth;
        use failover_watchdog_rig::hostile::{Answer, Trap};
        let health = ScriptedHealth::start(&[], 200).await.unwrap();
        let url: url::Url = health.url().parse().unwrap();
        health.set_hostile(Some(Answer::EndlessBody));
        let round = prober(
            vec![http_check(url.clone(), None, Some("ok"))],
            Duration::from_secs(5),
        )
        .run_round()
        .await;
        assert!(!round.ok);
        assert_eq!(
            round.checks[0].detail,
            "HTTP 200: the answer's body is over the 1 MiB cap; not read further"
        );
        assert!(round.checks[0].duration_ms < 5000, "{:?}", round.checks[0]);

        let trap = Trap::start().await.unwrap();
        health.set_hostile(Some(Answer::RedirectTo(trap.addr())));
        let round = prober(
            vec![http_check(url.clone(), None, None)],
            Duration::from_secs(5),
        )
        .run_round()
        .await;
        assert!(!round.ok);
        assert_eq!(
            round.checks[0].detail,
            format!(
                "HTTP 307 (expected 2xx): a redirect to http://{}/health, not followed",
                trap.addr()
            )
        );
        let round = prober(
            vec![http_check(url, Some(307), None)],
            Duration::from_secs(5),
        )
        .run_round()
        .await;
        assert!(round.ok, "{:?}", round.checks[0]);
        assert_eq!(trap.arrivals(), 0);
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

//! The standby asks its witnesses: every `[[probe.witnesses]]` at once, each within its
//! own `timeout` (or a suspect round's shorter bound; retries included, through
//! [`crate::retry`]). Every outcome becomes a
//! [`WitnessReport`]; a witness that cannot be asked is [`Said::NoAnswer`], which the
//! vote counts as not agreeing. A report's detail is scrubbed of every configured
//! secret: it holds what a witness (or whatever answers at its address) said. The
//! client is [`http_client`]'s: a redirect is not followed with the token (it fails,
//! naming its target), and an answer over the body cap is not read.

use std::time::Duration;

use anyhow::anyhow;
use futures::future::join_all;
use reqwest::StatusCode;
use tokio::time::Instant;
use url::Url;

use super::{ENDPOINT, Observation, Said, WitnessReport};
use crate::config::WitnessRef;
use crate::http_client;
use crate::retry::{Backoff, Failure, retry_until};
use crate::secret::Scrubber;

/// Backoff between attempts inside one request's timeout: short, as the round waits.
const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(2),
};

/// The standby's witnesses.
#[derive(Debug, Clone)]
pub struct Witnesses {
    witnesses: Vec<(WitnessRef, Url)>,
    http: reqwest::Client,
    scrubber: Scrubber,
}

impl Witnesses {
    /// `None` when no witness is configured. `scrubber` cleans every report's detail.
    pub fn new(witnesses: &[WitnessRef], scrubber: Scrubber) -> anyhow::Result<Option<Self>> {
        if witnesses.is_empty() {
            return Ok(None);
        }
        // Each request is bounded by its witness's own timeout; the client by the longest.
        let longest = witnesses
            .iter()
            .map(|w| w.timeout)
            .max()
            .unwrap_or_default();
        let http = http_client::builder(longest)
            .pool_max_idle_per_host(0)
            .build()?;
        let witnesses = witnesses
            .iter()
            .map(|w| (w.clone(), endpoint(&w.url)))
            .collect();
        Ok(Some(Self {
            witnesses,
            http,
            scrubber,
        }))
    }

    /// Asks every witness at once; one report each, in config order.
    pub async fn ask_all(&self) -> Vec<WitnessReport> {
        self.ask_all_within(None).await
    }

    /// As [`Witnesses::ask_all`], each witness within `within` when that is shorter than
    /// its own timeout (a suspect round fits its cadence).
    pub async fn ask_all_within(&self, within: Option<Duration>) -> Vec<WitnessReport> {
        join_all(self.witnesses.iter().map(|(w, url)| {
            let timeout = within.map_or(w.timeout, |within| within.min(w.timeout));
            self.ask(w, url, timeout)
        }))
        .await
    }

    async fn ask(&self, witness: &WitnessRef, url: &Url, timeout: Duration) -> WitnessReport {
        let started = Instant::now();
        let what = format!("asking witness {}", witness.name);
        let answer = retry_until(&what, started + timeout, BACKOFF, || {
            self.attempt(witness, url, timeout)
        })
        .await;
        let (said, detail) = match answer {
            Ok(observation) if observation.primary_down => (Said::Down, observation.summary()),
            Ok(observation) => (Said::Up, observation.summary()),
            Err(e) => (Said::NoAnswer, format!("{e:#}")),
        };
        WitnessReport {
            name: witness.name.clone(),
            said,
            detail: self.scrubber.scrub(&detail),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// One request, its failure classified for the retry loop.
    async fn attempt(
        &self,
        witness: &WitnessRef,
        url: &Url,
        timeout: Duration,
    ) -> Result<Observation, Failure> {
        let Some(authorization) = witness.token.bearer() else {
            return Err(Failure::fatal(anyhow!(
                "our token for this witness contains characters that cannot be sent in a header (a line break?)"
            )));
        };
        let request = self
            .http
            .get(url.clone())
            .header(reqwest::header::AUTHORIZATION, authorization)
            .timeout(timeout);
        // Never follows a redirect with the token: it fails naming its target.
        let response = http_client::send(request)
            .await
            .map_err(|e| Failure::of(e.is_transient(), e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Failure::fatal(anyhow!(
                "the witness refused our token (HTTP {}): compare this witness's token with its witness.token",
                status.as_u16()
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Transient {
                error: anyhow!("HTTP 429: the witness limits our rate"),
                retry_after: crate::retry::retry_after(response.headers()),
            });
        }
        if status.is_server_error() {
            return Err(Failure::transient(anyhow!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(Failure::fatal(anyhow!(
                "HTTP {} from {url}: is this a failover-watchdog witness?",
                status.as_u16()
            )));
        }
        let body = http_client::read_body(response)
            .await
            .map_err(|e| Failure::of(e.is_transient(), e))?;
        serde_json::from_slice(&body)
            .map_err(|e| Failure::fatal(anyhow!("not a witness's answer ({e})")))
    }
}

/// `<url>/v1/primary`, keeping any path the witness sits under (a reverse proxy's).
fn endpoint(base: &Url) -> Url {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(ENDPOINT)
        .expect("a relative path joins any http URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_a_proxys_path() {
        for (base, want) in [
            (
                "http://203.0.113.30:7979",
                "http://203.0.113.30:7979/v1/primary",
            ),
            (
                "https://proxy.example.com/witness",
                "https://proxy.example.com/witness/v1/primary",
            ),
            (
                "https://proxy.example.com/witness/",
                "https://proxy.example.com/witness/v1/primary",
            ),
        ] {
            assert_eq!(endpoint(&base.parse().unwrap()).as_str(), want);
        }
    }
}

#[cfg(test)]
mod asking {
    use super::super::testing::{self, TOKEN};
    use super::*;
    use crate::secret::Secret;

    fn witness(name: &str, url: Url, token: &str) -> WitnessRef {
        WitnessRef {
            name: name.into(),
            url,
            token: Secret::inline(token),
            timeout: Duration::from_secs(3),
        }
    }

    #[tokio::test]
    async fn each_witness_becomes_a_report() {
        let alive = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sees_down = testing::start(&testing::closed_address()).await;
        let sees_up = testing::start(&alive.local_addr().unwrap().to_string()).await;
        let nobody = format!("http://{}", testing::closed_address())
            .parse()
            .unwrap();
        let configured = [
            witness("down", sees_down.clone(), TOKEN),
            witness("up", sees_up, TOKEN),
            witness("wrong-token", sees_down, "not-the-token"),
            witness("unreachable", nobody, TOKEN),
        ];
        let witnesses = Witnesses::new(&configured, scrubber(&configured))
            .unwrap()
            .unwrap();
        let reports = witnesses.ask_all().await;
        let said: Vec<(&str, Said)> = reports.iter().map(|r| (r.name.as_str(), r.said)).collect();
        assert_eq!(
            said,
            [
                ("down", Said::Down),
                ("up", Said::Up),
                ("wrong-token", Said::NoAnswer),
                ("unreachable", Said::NoAnswer),
            ]
        );
        assert_eq!(reports[0].detail, "tcp failed");
        assert!(
            reports[2].detail.contains("refused our token (HTTP 401)"),
            "{}",
            reports[2].detail
        );
        assert!(
            reports[3].detail.contains("Connection refused"),
            "{}",
            reports[3].detail
        );
        // The token never shows in what the standby keeps.
        assert!(!format!("{reports:?}").contains(TOKEN));
    }

    fn scrubber(witnesses: &[WitnessRef]) -> Scrubber {
        Scrubber::new(witnesses.iter().map(|w| &w.token))
    }

    #[test]
    fn no_witnesses_no_client() {
        assert!(Witnesses::new(&[], scrubber(&[])).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_token_with_a_line_break_is_not_retried_until_the_timeout() {
        let nobody: Url = format!("http://{}", testing::closed_address())
            .parse()
            .unwrap();
        let configured = [WitnessRef {
            timeout: Duration::from_secs(30),
            ..witness("broken", nobody, "abc\ndef")
        }];
        let witnesses = Witnesses::new(&configured, scrubber(&configured))
            .unwrap()
            .unwrap();
        let started = Instant::now();
        let reports = witnesses.ask_all().await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "retried: {reports:?}"
        );
        assert_eq!(reports[0].said, Said::NoAnswer);
        assert!(
            reports[0].detail.contains("cannot be sent in a header"),
            "{}",
            reports[0].detail
        );
    }

    /// A witness answering an endless body drove `smoke-test` to 3.6 GB in 4 s: the
    /// answer was read whole. It is cut at the cap now, and not retried.
    #[tokio::test]
    async fn an_endless_answer_is_no_answer_named_by_the_cap() {
        use failover_watchdog_rig::hostile::{Answer, HostileServer};
        let endless = HostileServer::start(Answer::EndlessBody).await.unwrap();
        let configured = [witness("endless", endless.url("/").parse().unwrap(), TOKEN)];
        let witnesses = Witnesses::new(&configured, scrubber(&configured))
            .unwrap()
            .unwrap();
        let reports = witnesses.ask_all().await;
        assert_eq!(reports[0].said, Said::NoAnswer);
        assert!(
            reports[0]
                .detail
                .contains("the answer's body is over the 1 MiB cap; not read further"),
            "{}",
            reports[0].detail
        );
        assert_eq!(endless.requests(), 1, "not retried");
    }

    /// The token goes with the request: a redirect's target gets nothing.
    #[tokio::test]
    async fn a_redirect_is_no_answer_naming_its_target_and_the_token_goes_nowhere() {
        use failover_watchdog_rig::hostile::{Answer, HostileServer, Trap};
        let trap = Trap::start().await.unwrap();
        let redirecting = HostileServer::start(Answer::RedirectTo(trap.addr()))
            .await
            .unwrap();
        let configured = [witness(
            "redirecting",
            redirecting.url("/").parse().unwrap(),
            TOKEN,
        )];
        let witnesses = Witnesses::new(&configured, scrubber(&configured))
            .unwrap()
            .unwrap();
        let reports = witnesses.ask_all().await;
        assert_eq!(reports[0].said, Said::NoAnswer);
        let target = format!("http://{}/v1/primary", trap.addr());
        assert!(
            reports[0]
                .detail
                .contains(&format!("HTTP 307 redirect to {target}, not followed")),
            "{}",
            reports[0].detail
        );
        assert_eq!(trap.arrivals(), 0, "{}", trap.received());
    }

    /// Whatever answers at a witness's address may send our token back.
    #[tokio::test]
    async fn an_answer_that_echoes_the_token_is_scrubbed() {
        use axum::http::HeaderMap;
        let echo = axum::Router::new().fallback(|headers: HeaderMap| async move {
            let sent = headers["authorization"].to_str().unwrap().to_string();
            (
                axum::http::StatusCode::OK,
                format!("{{\"primary_down\": \"{sent}\"}}"),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, echo).await });
        let configured = [witness("echo", url, TOKEN)];
        let witnesses = Witnesses::new(&configured, scrubber(&configured))
            .unwrap()
            .unwrap();
        let reports = witnesses.ask_all().await;
        assert_eq!(reports[0].said, Said::NoAnswer);
        assert!(
            reports[0].detail.contains("[redacted]"),
            "{}",
            reports[0].detail
        );
        assert!(!reports[0].detail.contains(TOKEN), "{}", reports[0].detail);
    }
}

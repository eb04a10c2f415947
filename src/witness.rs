//! Witnesses: the same binary on a third host, asked by the standby whether *it* can
//! reach the primary. A standby whose own link to the primary is cut sees a dead
//! primary; a witness elsewhere does not, and that keeps the standby from promoting
//! itself into a split brain.
//!
//! - [`server`]: `failover-watchdog witness --listen ADDR`. On an authorised request it
//!   runs its checks of the primary and answers with an [`Observation`]; without the
//!   token it answers 401 and nothing else.
//! - [`client`]: the standby's side, asking every `[[probe.witnesses]]` at once, within
//!   each one's timeout, with retries; every outcome becomes a [`WitnessReport`].
//!
//! The vote itself (a majority of observers, a witness that reaches the primary keeps it
//! alive) is pure: [`crate::verdict::confirm_with_witnesses`].
//!
//! The wire: `GET <url>/v1/primary` with `Authorization: Bearer <token>`; `200` with an
//! [`Observation`] as JSON; `401` (with `WWW-Authenticate: Bearer`) without the token;
//! `404` and `405` for other paths and methods once authorised.

pub mod client;
pub mod server;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a witness answers, below its base URL.
pub const ENDPOINT: &str = "v1/primary";

/// A witness's answer: whether it can reach the primary, from its own checks.
///
/// It names each check's type and result only: no targets, no details, so an answer
/// tells nothing of the witness's config beyond what the standby already knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The witness's `node.name`.
    pub witness: String,
    /// The witness's checks failed (by its `fail_when`): it cannot reach the primary.
    pub primary_down: bool,
    /// When the checks started.
    pub at: Timestamp,
    pub checks: Vec<CheckSeen>,
}

/// One of the witness's checks, without its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSeen {
    #[serde(rename = "type")]
    pub kind: String,
    pub ok: bool,
}

impl Observation {
    /// The checks in a few words: "tcp, mysql failed" or "all 2 checks passed".
    pub fn summary(&self) -> String {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.kind.as_str())
            .collect();
        match (failed.len(), self.checks.len()) {
            (0, 1) => "its check passed".to_string(),
            (0, n) => format!("all {n} checks passed"),
            (f, n) if f == n => format!("{} failed", failed.join(", ")),
            (_, n) => format!("{} failed of {n} checks", failed.join(", ")),
        }
    }
}

/// What a witness said, as the standby records it in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Said {
    /// It cannot reach the primary either.
    Down,
    /// It reaches the primary.
    Up,
    /// It did not answer, refused our token, or answered something else: it does not
    /// agree that the primary is down.
    NoAnswer,
}

/// One witness's part in a round, for the verdict, `status` and the alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReport {
    /// The name from `[[probe.witnesses]]`.
    pub name: String,
    pub said: Said,
    /// The witness's checks in a few words, or why there was no answer.
    pub detail: String,
    pub duration_ms: u64,
}

impl WitnessReport {
    /// "ams1 saw it down (tcp failed)", for reasons and alerts.
    pub fn describe(&self) -> String {
        let what = match self.said {
            Said::Down => "saw it down",
            Said::Up => "reaches it",
            Said::NoAnswer => "did not answer",
        };
        format!("{} {what} ({})", self.name, self.detail)
    }
}

/// An in-process witness for the unit tests of [`server`] and [`client`].
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Duration;

    use crate::config::witness::WitnessConfig;
    use crate::config::{CheckConfig, FailWhen};
    use crate::secret::Secret;

    pub const TOKEN: &str = "witness-token-0123456789abcdef";
    pub const NAME: &str = "witness-ams1";

    /// A witness whose one tcp check targets `address`; returns its base URL. It stops
    /// when the test's runtime ends.
    pub async fn start(address: &str) -> url::Url {
        let config = WitnessConfig {
            path: "witness.toml".into(),
            name: NAME.into(),
            token: Secret::inline(TOKEN),
            timeout: Duration::from_secs(2),
            fail_when: FailWhen::Any,
            checks: vec![CheckConfig::Tcp {
                address: address.into(),
            }],
            limits: Default::default(),
            tls: None,
            metrics: None,
            warnings: Vec::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            super::server::serve(&config, listener, std::future::pending())
                .await
                .unwrap();
        });
        url.parse().unwrap()
    }

    /// A loopback address nothing listens on.
    pub fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }
}

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

pub use failover_watchdog_core::witness::*;

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

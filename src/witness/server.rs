//! The witness's HTTP server: one endpoint, behind a bearer token.
//!
//! Every request is checked for the token first, whatever its path or method, so a
//! caller without it learns nothing (not even which paths exist). An authorised
//! `GET /v1/primary` runs the witness's checks of the primary and answers with an
//! [`Observation`]. Requests that arrive while a round runs wait for the next round
//! rather than starting their own: the primary is never probed twice at once.
//!
//! The server speaks plain HTTP: run it behind a TLS reverse proxy or on a private
//! network (the README shows both).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{CheckSeen, ENDPOINT, Observation};
use crate::config::witness::WitnessConfig;
use crate::probe::Prober;
use crate::secret::Secret;

/// The witness: its checks, its token and the last round.
struct Witness {
    name: String,
    token: Secret,
    prober: Prober,
    /// The last round and when it started. A tokio mutex because it is held across the
    /// round: one round at a time, and a request reuses a round that started after it
    /// arrived.
    last: Mutex<Option<(Instant, Observation)>>,
}

/// Serves witness requests on `listener` until `shutdown` resolves.
pub async fn serve(
    config: &WitnessConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let witness = Arc::new(Witness {
        name: config.name.clone(),
        token: config.token.clone(),
        prober: Prober::for_checks(&config.checks, config.timeout, config.fail_when)?,
        last: Mutex::new(None),
    });
    let app = axum::Router::new().fallback(answer).with_state(witness);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

async fn answer(
    State(witness): State<Arc<Witness>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !witness.authorized(&headers) {
        tracing::warn!("refused a request from {peer} without the witness token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "unauthorized" })),
        )
            .into_response();
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
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(
                token
                    .trim()
                    .as_bytes()
                    .ct_eq(self.token.expose().as_bytes()),
            )
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
}

//! A stand-in for the standby's own web endpoints (the application's health page, its
//! control panel), for the smoke test's endpoint check: a local HTTP server on
//! `127.0.0.1` that answers by path.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /health` | 200 `ok` |
//! | `GET /login` | 302 to `/health` (a panel sending you to its login page is up) |
//! | `GET /maintenance` | 503 `down for maintenance` |
//! | `GET /endless` | 200 with a body that never ends ([`crate::hostile::endless_body`]) |
//! | anything else | 404 |

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running panel stand-in; dropping it stops the server.
pub struct PanelStandIn {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl PanelStandIn {
    /// Starts the stand-in on a free loopback port. Must be called inside a tokio
    /// runtime.
    pub async fn start() -> anyhow::Result<PanelStandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the panel stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/login",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/health")]) }),
            )
            .route(
                "/maintenance",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
            )
            .route(
                "/endless",
                get(|| async { crate::hostile::endless_body(None) }),
            );
        let server = tokio::spawn(crate::http::serve(listener, app));
        Ok(PanelStandIn { addr, server })
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for PanelStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_by_path_without_following_for_you() {
        let panel = PanelStandIn::start().await.unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for (path, status) in [
            ("/health", 200),
            ("/login", 302),
            ("/maintenance", 503),
            ("/endless", 200),
            ("/nothing", 404),
        ] {
            let response = client.get(panel.url(path)).send().await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
        }
        let login = client.get(panel.url("/login")).send().await.unwrap();
        assert_eq!(login.headers()["location"], "/health");
    }
}

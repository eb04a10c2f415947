//! A stand-in for an alert webhook receiver (a generic JSON hook, Slack, Alertmanager,
//! PagerDuty's Events API): it takes any `POST` with a JSON body, records the path, the
//! `Authorization` header and the body, and answers `202 Accepted` with `{"status":
//! "success"}` (what PagerDuty answers; the others ignore the body). A body that is not
//! JSON gets `400`. `GET /api/v2/status` answers Alertmanager's status (`{"cluster":
//! {"status":"ready"}}`), and `HEAD` or `GET` of any other path `200`, for reachability
//! checks that must not page anyone.
//!
//! [`Mode`] makes it fail (an HTTP status; 429 with `Retry-After`
//! [`DOWN_RETRY_AFTER_SECS`]), slow down, hang, answer an endless body or redirect to
//! another port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The `Retry-After` (seconds) the stand-in announces when in `Mode::Down(429)`.
pub const DOWN_RETRY_AFTER_SECS: u64 = 1;

/// A request the stand-in accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    pub body: Value,
}

/// How the stand-in answers a `POST` (and, with [`WebhookStandIn::set_down_for_everything`],
/// every other request too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Answer with this status and record nothing.
    Down(u16),
    /// Record the request at once, answer after the delay.
    Slow(Duration),
    /// Never answer; record nothing.
    Hang,
    /// Answer every request, reachability checks included, `200` with a body that never
    /// ends ([`crate::hostile::endless_body`]); record nothing.
    EndlessBody,
    /// Answer every request, reachability checks included, `307` to the same path at
    /// this address ([`crate::hostile::redirect_to`]); record nothing.
    RedirectTo(SocketAddr),
}

/// A running webhook receiver; dropping it stops the server and closes its connections.
pub struct WebhookStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    /// Never held across an `.await`.
    state: Mutex<Inner>,
    received: Notify,
}

struct Inner {
    mode: Mode,
    /// Answer every request, not only `POST`s, with this status.
    all_down: Option<u16>,
    received: Vec<Received>,
    attempts: usize,
}

impl WebhookStandIn {
    /// Starts the stand-in on a free loopback port. Must be called inside a tokio runtime.
    pub async fn start() -> anyhow::Result<WebhookStandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the webhook stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner {
                mode: Mode::Up,
                all_down: None,
                received: Vec::new(),
                attempts: 0,
            }),
            received: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(crate::http::serve(listener, app));
        Ok(WebhookStandIn {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// Answers every request, reachability checks included, with `status`; records
    /// nothing.
    pub fn set_down_for_everything(&self, status: u16) {
        let mut state = self.shared.lock();
        state.mode = Mode::Down(status);
        state.all_down = Some(status);
    }

    /// The requests accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// How many `POST`s arrived, failed and unanswered ones included.
    pub fn attempts(&self) -> usize {
        self.shared.lock().attempts
    }

    /// Waits until at least `n` requests were accepted or `timeout` passed; returns what
    /// was accepted by then.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        crate::http::wait_for_count(&self.shared.received, n, timeout, || self.received()).await
    }
}

impl Drop for WebhookStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(status) = shared.lock().all_down {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "down").into_response();
    }
    let hostile = {
        let mut state = shared.lock();
        if method == Method::POST {
            state.attempts += 1;
        }
        match state.mode {
            Mode::EndlessBody => Some(crate::hostile::endless_body(None)),
            Mode::RedirectTo(target) => Some(crate::hostile::redirect_to(target, &uri)),
            _ => None,
        }
    };
    if let Some(answer) = hostile {
        return answer;
    }
    if method != Method::POST {
        if uri.path() == "/api/v2/status" {
            return Json(json!({"cluster": {"status": "ready"}})).into_response();
        }
        return StatusCode::OK.into_response();
    }
    let delay = {
        let mut state = shared.lock();
        match state.mode {
            Mode::Hang => None,
            Mode::Down(status) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = (status, "down").into_response();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        DOWN_RETRY_AFTER_SECS.to_string().parse().unwrap(),
                    );
                }
                return response;
            }
            Mode::Up | Mode::Slow(_) | Mode::EndlessBody | Mode::RedirectTo(_) => {
                let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                    return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
                };
                state.received.push(Received {
                    path: uri.path().to_string(),
                    authorization: headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    body,
                });
                shared.received.notify_waiters();
                Some(match state.mode {
                    Mode::Slow(delay) => delay,
                    _ => Duration::ZERO,
                })
            }
        }
    };
    match delay {
        Some(delay) => {
            tokio::time::sleep(delay).await;
            (
                StatusCode::ACCEPTED,
                Json(json!({"status": "success", "message": "Event processed"})),
            )
                .into_response()
        }
        None => std::future::pending().await,
    }
}

//! Every HTTP client this program uses is built here, and every answer's body is read
//! here: Telegram, Cloudflare, the witnesses, the webhooks, the primary's `http` check
//! and the smoke test's requests. Each is bounded the same way:
//!
//! - **No redirect is followed.** Most requests carry a secret (a bearer token, a
//!   routing key in the body, the bot token in the URL) that a redirect would hand to
//!   whoever it points at. A client built here never sends a second request; [`send`]
//!   turns a redirect into an error naming its target (the `Location` header).
//! - **Time.** A connect timeout (at most [`CONNECT_TIMEOUT`]) and a timeout on the
//!   whole request, its body included.
//! - **Size.** [`read_body`] reads at most [`BODY_CAP`] and fails naming the cap: a
//!   server answering an endless body costs the cap in memory, and no more. An answer's
//!   head is bounded by hyper's own buffer limit (about 400 KiB).
//! - A user agent naming the program and its version.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::{RequestBuilder, Response, StatusCode, header};

use crate::report::error_chain;

/// The most of an answer's body any client reads: far more than any answer we expect
/// (Telegram's, Cloudflare's and a witness's are a few KiB), far less than hurts.
pub const BODY_CAP: usize = 1024 * 1024;
/// [`BODY_CAP`] as errors and the README say it.
pub const BODY_CAP_TEXT: &str = "1 MiB";

/// The longest wait for a connection; a client's whole-request timeout cuts it shorter.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub const USER_AGENT: &str = concat!("failover-watchdog/", env!("CARGO_PKG_VERSION"));

/// The longest `Location` an error repeats.
const LOCATION_CHARS: usize = 200;

/// A client whose every request ends within `timeout` (connect, answer and body), that
/// follows no redirect.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    builder(timeout).build().context("making an HTTP client")
}

/// [`client`]'s settings, for a caller that changes one more (no pooling, its own user
/// agent). Never change the redirect policy.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .timeout(timeout)
        .user_agent(USER_AGENT)
}

/// A request that failed before a usable answer came.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer: the connection, the time limit, or a request that cannot be built.
    /// Never carries the URL (it may hold the secret: the bot token, a Slack path).
    #[error("{}", error_chain(.0))]
    Request(reqwest::Error),
    /// The server answered with a redirect, which was not followed.
    #[error(transparent)]
    Redirected(#[from] Redirect),
}

impl SendError {
    /// Worth another try: the network, a timeout. A request that cannot be built or an
    /// answer that redirects will be the same next time.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Request(e) => !e.is_builder(),
            SendError::Redirected(_) => false,
        }
    }
}

/// A redirect answer, named by its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "HTTP {} redirect to {target}, not followed (no request is sent where a redirect points: configure the URL it names)",
    status.as_u16()
)]
pub struct Redirect {
    pub status: StatusCode,
    /// The `Location` header as sent, control characters removed, cut to 200 chars.
    pub target: String,
}

/// The redirect `response` is, if it is one: a 3xx with a `Location`.
pub fn redirect(response: &Response) -> Option<Redirect> {
    let status = response.status();
    if !status.is_redirection() {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?;
    let target: String = String::from_utf8_lossy(location.as_bytes())
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut shown: String = target.chars().take(LOCATION_CHARS).collect();
    if shown.len() < target.len() {
        shown.push('…');
    }
    Some(Redirect {
        status,
        target: shown,
    })
}

/// Sends `request`: the answer, unless it is a redirect (an error naming the target;
/// nothing is sent there) or none came (an error without the URL).
pub async fn send(request: RequestBuilder) -> Result<Response, SendError> {
    let response = request
        .send()
        .await
        .map_err(|e| SendError::Request(e.without_url()))?;
    match redirect(&response) {
        Some(redirect) => Err(redirect.into()),
        None => Ok(response),
    }
}

/// An answer's body that could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer's body is over the {BODY_CAP_TEXT} cap; not read further")]
    TooLarge,
    #[error("reading the answer: {}", error_chain(.0))]
    Read(reqwest::Error),
}

impl BodyError {
    /// A read cut short may go better next time; a body over the cap will not.
    pub fn is_transient(&self) -> bool {
        matches!(self, BodyError::Read(_))
    }
}

/// The whole body of `response`, at most [`BODY_CAP`] bytes: a body announced or found
/// larger is an error, and what was read of it is dropped with the connection.
pub async fn read_body(response: Response) -> Result<Vec<u8>, BodyError> {
    read_body_within(response, BODY_CAP).await
}

/// [`read_body`] as text (invalid UTF-8 replaced).
pub async fn read_text(response: Response) -> Result<String, BodyError> {
    let body = read_body(response).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn read_body_within(mut response: Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use failover_watchdog_rig::hostile::{Answer, HostileServer, Trap};

    use super::*;

    fn client() -> reqwest::Client {
        super::client(Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_cap() {
        let server = HostileServer::start(Answer::EndlessBody).await.unwrap();
        let response = send(client().get(server.url("/"))).await.unwrap();
        assert_eq!(response.status(), 200);
        let error = read_body(response).await.unwrap_err();
        assert!(matches!(error, BodyError::TooLarge), "{error:?}");
        assert_eq!(
            error.to_string(),
            "the answer's body is over the 1 MiB cap; not read further"
        );
        assert!(!error.is_transient());
        // The server wrote more than the cap before the client hung up; no more than
        // the cap was kept.
        assert!(server.bytes_sent() > BODY_CAP as u64);
    }

    #[tokio::test]
    async fn a_body_announced_over_the_cap_is_not_read() {
        let server = HostileServer::start(Answer::Announced(BODY_CAP as u64 + 1))
            .await
            .unwrap();
        let response = send(client().get(server.url("/"))).await.unwrap();
        let error = read_body(response).await.unwrap_err();
        assert!(matches!(error, BodyError::TooLarge), "{error:?}");
    }

    #[tokio::test]
    async fn a_body_at_the_cap_is_read_whole() {
        let server = HostileServer::start(Answer::Announced(BODY_CAP as u64))
            .await
            .unwrap();
        let response = send(client().get(server.url("/"))).await.unwrap();
        assert_eq!(read_body(response).await.unwrap().len(), BODY_CAP);
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_naming_its_target_and_nothing_reaches_it() {
        let trap = Trap::start().await.unwrap();
        let server = HostileServer::start(Answer::RedirectTo(trap.addr()))
            .await
            .unwrap();
        let request = client()
            .post(server.url("/hook"))
            .bearer_auth("a-secret")
            .body("routing key");
        let error = send(request).await.unwrap_err();
        let target = format!("http://{}/hook", trap.addr());
        assert_eq!(
            error.to_string(),
            format!(
                "HTTP 307 redirect to {target}, not followed (no request is sent where a redirect points: configure the URL it names)"
            )
        );
        assert!(!error.is_transient());
        assert_eq!(server.requests(), 1);
        assert_eq!(
            trap.arrivals(),
            0,
            "something reached the redirect's target"
        );
    }

    #[tokio::test]
    async fn a_request_error_does_not_show_the_url() {
        let trap = Trap::start().await.unwrap();
        let closed = trap.addr();
        drop(trap);
        let error = send(client().get(format!("http://{closed}/bot123:secret/getMe")))
            .await
            .unwrap_err();
        assert!(error.is_transient());
        let text = error.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("onnect"), "{text}");
    }
}

//! Cloudflare's v4 API, the DNS edge: find a record, change its content, read it back;
//! verify the token (for the smoke test).
//!
//! One HTTP attempt per call; every failure is classified for [`crate::retry`] (which owns
//! retries): timeouts, connection errors, 5xx and 429 (with its `Retry-After`) are
//! transient, any other error is fatal and carries Cloudflare's own error messages.
//! Every reply is the v4 envelope `{success, errors[{code, message}], messages, result}`.
//! The API token goes only into the `Authorization: Bearer` header; a token that cannot
//! go into a header is a fatal failure, never retried. Every failure's text is scrubbed
//! of every configured secret before it leaves this module: Cloudflare (or a proxy in
//! front of it) may echo the header it was sent. The client is [`http_client`]'s: a
//! redirect is a fatal failure naming its target (the token is never sent there), and
//! an answer over the body cap is a fatal failure naming the cap.

use std::time::Duration;

use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::http_client;
use crate::retry::Failure;
use crate::secret::{Scrubber, Secret};

/// Longest a single request may take, its answer read; the step's deadline bounds the
/// retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A DNS record as Cloudflare returns it (the fields we use). `ttl` is in seconds, 1
/// meaning "automatic" (300 s); `proxied` records are answered with Cloudflare's own
/// addresses, so a change of `content` reaches users at once, whatever the TTL.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DnsRecord {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub content: String,
    pub ttl: u32,
    #[serde(default)]
    pub proxied: bool,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    code: i64,
    message: String,
}

/// The Cloudflare client.
#[derive(Debug, Clone)]
pub struct Cloudflare {
    http: reqwest::Client,
    api_base: Url,
    token: Secret,
    scrubber: Scrubber,
}

impl Cloudflare {
    /// `scrubber` cuts the secrets out of every failure's text.
    pub fn new(api_base: Url, token: Secret, scrubber: Scrubber) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client::client(REQUEST_TIMEOUT)?,
            api_base,
            token,
            scrubber,
        })
    }

    /// The one record named `name` of type `record_type` in `zone_id`. None or several
    /// is a fatal error: we never guess which record to move.
    pub async fn find_record(
        &self,
        zone_id: &str,
        name: &str,
        record_type: &str,
    ) -> Result<DnsRecord, Failure> {
        let mut url = self.endpoint(&["zones", zone_id, "dns_records"]);
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("type", record_type)
            .append_pair("per_page", "100");
        let found: Vec<DnsRecord> = self.call(Method::GET, url, None).await?;
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Failure::fatal(anyhow!(
                "no {record_type} record named {name} in zone {zone_id}"
            ))),
            many => Err(self.scrubber.failure(Failure::fatal(anyhow!(
                "{} {record_type} records named {name} in zone {zone_id} (ids {}); expected exactly one",
                many.len(),
                many.iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))),
        }
    }

    /// Reads one record by id.
    pub async fn get_record(&self, zone_id: &str, record_id: &str) -> Result<DnsRecord, Failure> {
        let url = self.endpoint(&["zones", zone_id, "dns_records", record_id]);
        self.call(Method::GET, url, None).await
    }

    /// Changes only the record's `content` (PATCH), so its ttl, proxied flag and
    /// comment stay as they are.
    pub async fn set_content(
        &self,
        zone_id: &str,
        record_id: &str,
        content: &str,
    ) -> Result<DnsRecord, Failure> {
        let url = self.endpoint(&["zones", zone_id, "dns_records", record_id]);
        let body = serde_json::json!({ "content": content });
        self.call(Method::PATCH, url, Some(body)).await
    }

    /// `GET /user/tokens/verify`: the token's status, "active" when it can be used.
    /// Changes nothing; for the smoke test.
    pub async fn verify_token(&self) -> Result<String, Failure> {
        #[derive(Deserialize)]
        struct TokenStatus {
            status: String,
        }
        let url = self.endpoint(&["user", "tokens", "verify"]);
        let token: TokenStatus = self.call(Method::GET, url, None).await?;
        Ok(token.status)
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .expect("api_base is an http(s) URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// One request, its failure classified and scrubbed.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        self.attempt(method, url, body)
            .await
            .map_err(|failure| self.scrubber.failure(failure))
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let what = format!("{method} {}", url.path());
        let Some(authorization) = self.token.bearer() else {
            return Err(Failure::fatal(anyhow!(
                "{what}: the API token contains characters that cannot be sent in a header (a line break?): check dns.api_token"
            )));
        };
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, authorization);
        if let Some(body) = body {
            request = request.json(&body);
        }
        // A request that cannot be built, or a redirect, fails the same way every time.
        let response = http_client::send(request)
            .await
            .map_err(|e| Failure::of(e.is_transient(), anyhow!("{what}: {e}")))?;
        let status = response.status();
        let retry_after = crate::retry::retry_after(response.headers());
        let text = http_client::read_text(response).await.map_err(|e| {
            Failure::of(
                e.is_transient(),
                anyhow!("{what}: HTTP {}: {e}", status.as_u16()),
            )
        })?;
        let envelope: Option<Envelope<T>> = serde_json::from_str(&text).ok();
        let errors = envelope
            .as_ref()
            .map(|e| {
                e.errors
                    .iter()
                    .map(|m| format!("{} (code {})", m.message, m.code))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| snippet(&text));
        let error = anyhow!("{what}: HTTP {}: {errors}", status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Transient { error, retry_after });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(Failure::transient(error));
        }
        match envelope {
            Some(Envelope {
                success: true,
                result: Some(result),
                ..
            }) if status.is_success() => Ok(result),
            // A 2xx that is not a v4 envelope: a proxy in the way, most likely passing.
            None if status.is_success() => Err(Failure::transient(anyhow!(
                "{what}: HTTP {} with a reply that is not Cloudflare's JSON envelope: {}",
                status.as_u16(),
                snippet(&text)
            ))),
            _ => Err(Failure::fatal(error)),
        }
    }
}

/// The start of a reply body, for an error message.
fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    if s.trim().is_empty() {
        "(empty body)".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloudflare(api_base: &str, token: &str, secrets: &[Secret]) -> Cloudflare {
        Cloudflare::new(
            api_base.parse().unwrap(),
            Secret::inline(token),
            Scrubber::new(secrets),
        )
        .unwrap()
    }

    fn fatal(failure: Failure) -> String {
        match failure {
            Failure::Fatal(error) => format!("{error:#}"),
            transient => panic!("not fatal: {transient:?}"),
        }
    }

    /// The token is in the header: a redirect's target gets nothing, and the failure
    /// names it.
    #[tokio::test]
    async fn a_redirect_is_fatal_naming_its_target_and_the_token_goes_nowhere() {
        use failover_watchdog_rig::cloudflare::{CloudflareStandIn, Fault};
        use failover_watchdog_rig::hostile::Trap;
        let token = "cf-redirected-token-0123";
        let stand_in = CloudflareStandIn::start(token).await.unwrap();
        let trap = Trap::start().await.unwrap();
        stand_in.inject([Fault::RedirectTo(trap.addr())]);
        let edge = cloudflare(&stand_in.api_base(), token, &[Secret::inline(token)]);
        let text = fatal(edge.verify_token().await.unwrap_err());
        assert!(
            text.contains(&format!(
                "GET /client/v4/user/tokens/verify: HTTP 307 redirect to http://{}/client/v4/user/tokens/verify, not followed",
                trap.addr()
            )),
            "{text}"
        );
        assert_eq!(trap.arrivals(), 0, "{}", trap.received());
    }

    #[tokio::test]
    async fn an_endless_answer_is_fatal_at_the_cap() {
        use failover_watchdog_rig::cloudflare::{CloudflareStandIn, Fault};
        let token = "cf-token-0123";
        let stand_in = CloudflareStandIn::start(token).await.unwrap();
        stand_in.inject([Fault::EndlessBody]);
        let edge = cloudflare(&stand_in.api_base(), token, &[]);
        let text = fatal(
            edge.find_record("zone", "app.example.com", "A")
                .await
                .unwrap_err(),
        );
        assert!(
            text.ends_with("HTTP 200: the answer's body is over the 1 MiB cap; not read further"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_token_with_a_line_break_is_a_fatal_failure_not_retried() {
        // Nothing listens there: the failure comes before any request is sent.
        let edge = cloudflare("http://127.0.0.1:9/client/v4", "abc\ndef", &[]);
        let failure = edge.verify_token().await.unwrap_err();
        let Failure::Fatal(error) = failure else {
            panic!("not fatal: {failure:?}");
        };
        assert!(
            error
                .to_string()
                .contains("the API token contains characters that cannot be sent in a header"),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn an_error_that_echoes_the_token_is_scrubbed() {
        use failover_watchdog_rig::cloudflare::{CloudflareStandIn, Fault};
        let token = "cf-echoed-token-0123";
        let stand_in = CloudflareStandIn::start(token).await.unwrap();
        stand_in.inject([Fault::EchoAuthorization]);
        let other = Secret::inline("another-secret");
        let edge = cloudflare(&stand_in.api_base(), token, &[Secret::inline(token), other]);
        let failure = edge.verify_token().await.unwrap_err();
        let Failure::Fatal(error) = failure else {
            panic!("a 400 is fatal: {failure:?}");
        };
        let text = format!("{error:#}");
        assert!(
            text.contains("HTTP 400") && text.contains("Bearer [redacted]"),
            "{text}"
        );
        assert!(!text.contains(token), "{text}");
    }
}

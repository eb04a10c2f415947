//! Telegram's Bot API, the two methods we use: `sendMessage` (an alert) and `getMe`
//! (the smoke test's proof that the token works). The only module that speaks to
//! Telegram.
//!
//! Requests go through [`crate::http_client`] (no redirect followed, the answer's body
//! read up to its cap): teloxide, which we used before, reads a whole answer into
//! memory whatever its size, and its client cannot be given a cap. The requests and
//! the errors are the ones teloxide made: `POST <api_url>/bot<token>/<method>` with a
//! JSON body, Telegram's `description` in the error (`Unauthorized` and `Not Found`
//! read as an invalid bot token), `parameters.retry_after` honoured.
//!
//! One attempt per call, cut short after [`ATTEMPT_TIMEOUT`]; each failure is
//! classified for [`retry_until`]: the network, a timeout, 5xx, 429 and an answer that
//! is not Telegram's JSON are transient, any other refusal is fatal. The bot token is
//! in every request's URL: no error names the URL, and every error text is scrubbed
//! of every configured secret as well.

use std::time::Duration;

use anyhow::anyhow;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use crate::config::TelegramConfig;
use crate::http_client::{self, BodyError, SendError};
use crate::retry::{Backoff, Failure, retry_until};
use crate::secret::{Scrubber, Secret};

/// Longest a single attempt may take: Telegram answers in well under a second; the
/// backoff decides when to try again, so a one-shot command's 10 s still sees a few
/// tries.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest part of an answer that is not JSON an error repeats.
const RAW_CHARS: usize = 200;

/// Telegram's answer: `{"ok": true, "result": …}` or `{"ok": false, "description": …,
/// "parameters": {…}}`.
#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

/// The bot, as `getMe` describes it (the fields we show).
#[derive(Debug, Deserialize)]
pub(super) struct Bot {
    pub first_name: String,
    pub username: Option<String>,
}

pub(super) struct TelegramSender {
    http: reqwest::Client,
    api_url: Url,
    token: Secret,
    /// The `chat_id` as Telegram takes it: a number, or a `@channelusername`.
    chat: Value,
    /// Knows the bot token (and every other secret).
    scrubber: Scrubber,
}

impl TelegramSender {
    pub(super) fn new(config: &TelegramConfig, scrubber: Scrubber) -> anyhow::Result<Self> {
        let chat = match config.chat_id.parse::<i64>() {
            Ok(id) => json!(id),
            Err(_) => json!(config.chat_id),
        };
        Ok(Self {
            http: http_client::client(ATTEMPT_TIMEOUT)?,
            api_url: config.api_url.clone(),
            token: config.bot_token.clone(),
            chat,
            scrubber,
        })
    }

    /// Sends `text` to the chat, retrying transient failures for `budget` (the
    /// alerter's delivery budget).
    pub(super) async fn send(&self, text: &str, budget: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + budget;
        let params = json!({ "chat_id": self.chat, "text": text });
        retry_until(
            "sending the Telegram alert",
            deadline,
            Backoff::API,
            || async {
                self.call::<IgnoredAny>("SendMessage", &params)
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// `getMe`: who the bot is. One attempt.
    pub(super) async fn get_me(&self) -> Result<Bot, Failure> {
        self.call("GetMe", &json!({})).await
    }

    /// One request to Telegram, cut short after [`ATTEMPT_TIMEOUT`], its failure
    /// classified and scrubbed for [`retry_until`].
    async fn call<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<T, Failure> {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, self.attempt(method, params));
        let failure = match attempt.await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::transient(no_reply()),
        };
        Err(self.scrubber.failure(failure))
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<T, Failure> {
        let request = self.http.post(self.method_url(method)).json(params);
        let response = http_client::send(request).await.map_err(|e| match e {
            SendError::Request(e) if e.is_timeout() => Failure::transient(no_reply()),
            e if e.is_transient() => Failure::transient(anyhow!("A network error: {e}")),
            SendError::Redirected(redirect) => {
                Failure::fatal(anyhow!("Telegram's API answered {redirect}"))
            }
            e => Failure::fatal(anyhow!("A network error: {e}")),
        })?;
        let status = response.status();
        let body = http_client::read_body(response)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => Failure::fatal(anyhow!("Telegram's answer: {e}")),
                BodyError::Read(_) => Failure::transient(anyhow!("A network error: {e}")),
            })?;
        let answer: Answer<T> = serde_json::from_slice(&body).map_err(|e| {
            // A proxy's error page, most likely passing (teloxide retried it too).
            Failure::transient(anyhow!(
                "An error while parsing JSON: {e} (raw: {:?})",
                raw(&body)
            ))
        })?;
        match answer {
            Answer {
                ok: true,
                result: Some(result),
                ..
            } => Ok(result),
            refused => Err(refusal(status, refused)),
        }
    }

    /// `<api_url>/bot<token>/<method>`, as the Bot API takes it.
    fn method_url(&self, method: &str) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push(&format!("bot{}", self.token.expose()))
                .push(method);
        }
        url
    }
}

/// Telegram's refusal, in teloxide's words, classified.
fn refusal<T>(status: reqwest::StatusCode, answer: Answer<T>) -> Failure {
    let parameters = answer.parameters.unwrap_or(Parameters {
        retry_after: None,
        migrate_to_chat_id: None,
    });
    if let Some(after) = parameters.retry_after {
        return Failure::Transient {
            error: anyhow!("Retry after {after}s"),
            retry_after: Some(Duration::from_secs(after)),
        };
    }
    if let Some(chat) = parameters.migrate_to_chat_id {
        return Failure::fatal(anyhow!(
            "The group has been migrated to a supergroup with ID #{chat}"
        ));
    }
    let description = answer
        .description
        .unwrap_or_else(|| format!("HTTP {} without a description", status.as_u16()));
    let said = match description.as_str() {
        "Unauthorized" | "Not Found" => "Invalid bot token".to_string(),
        _ => description,
    };
    let error = anyhow!("A Telegram's error: {said}");
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Failure::transient(error)
    } else {
        Failure::fatal(error)
    }
}

fn no_reply() -> anyhow::Error {
    anyhow!(
        "no reply from Telegram within {}",
        humantime::format_duration(ATTEMPT_TIMEOUT)
    )
}

/// The start of an answer that is not JSON, for an error.
fn raw(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(RAW_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use failover_watchdog_rig::hostile::Trap;
    use failover_watchdog_rig::telegram::{Mode, TelegramStandIn};

    use super::*;

    const TOKEN: &str = "4242:telegram-bot-token-secret";

    fn sender(stand_in: &TelegramStandIn, token: &str, chat_id: &str) -> TelegramSender {
        let config = TelegramConfig {
            bot_token: Secret::inline(token),
            chat_id: chat_id.to_string(),
            api_url: stand_in.api_url().parse().unwrap(),
        };
        TelegramSender::new(&config, Scrubber::new([&config.bot_token])).unwrap()
    }

    fn fatal_text(failure: Failure) -> String {
        match failure {
            Failure::Fatal(error) => format!("{error:#}"),
            transient => panic!("not fatal: {transient:?}"),
        }
    }

    #[tokio::test]
    async fn a_message_arrives_as_teloxide_sent_it() {
        let stand_in = TelegramStandIn::start(TOKEN).await.unwrap();
        for chat_id in ["-1001234567890", "@ops_channel"] {
            sender(&stand_in, TOKEN, chat_id)
                .send("[db2] hello", crate::alert::DELIVERY_BUDGET)
                .await
                .unwrap();
        }
        let sent = stand_in.messages();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0].chat_id, "-1001234567890");
        assert_eq!(sent[1].chat_id, "@ops_channel");
        assert_eq!(sent[0].text, "[db2] hello");
        assert_eq!(sent[0].parse_mode, None);
    }

    #[tokio::test]
    async fn get_me_names_the_bot_and_a_wrong_token_is_fatal() {
        let stand_in = TelegramStandIn::start(TOKEN).await.unwrap();
        let bot = sender(&stand_in, TOKEN, "1").get_me().await.unwrap();
        assert_eq!(bot.username.as_deref(), Some("watchdog_bot"));
        assert_eq!(bot.first_name, "watchdog");
        let wrong = sender(&stand_in, "4242:not-the-token", "1");
        let text = fatal_text(wrong.get_me().await.unwrap_err());
        assert_eq!(text, "A Telegram's error: Invalid bot token");
    }

    #[tokio::test]
    async fn a_refusal_is_fatal_and_a_server_error_or_rate_limit_transient() {
        let stand_in = TelegramStandIn::start(TOKEN).await.unwrap();
        let text = fatal_text(
            sender(&stand_in, TOKEN, "not-a-chat")
                .call::<IgnoredAny>("SendMessage", &json!({"chat_id": "x", "text": "hi"}))
                .await
                .unwrap_err(),
        );
        assert_eq!(text, "A Telegram's error: Bad Request: chat not found");
        stand_in.set_mode(Mode::Down(502));
        let failure = sender(&stand_in, TOKEN, "1").get_me().await.unwrap_err();
        assert!(
            matches!(&failure, Failure::Transient { error, retry_after: None }
                if error.to_string() == "A Telegram's error: Bad Gateway"),
            "{failure:?}"
        );
        stand_in.set_mode(Mode::Down(429));
        let failure = sender(&stand_in, TOKEN, "1").get_me().await.unwrap_err();
        assert!(
            matches!(&failure, Failure::Transient { error, retry_after: Some(after) }
                if error.to_string() == "Retry after 1s" && *after == Duration::from_secs(1)),
            "{failure:?}"
        );
    }

    /// A Telegram (or whatever answers at `api_url`) sending an endless body drove
    /// `pause` to 4.2 GB: teloxide read it all.
    #[tokio::test]
    async fn an_endless_answer_is_refused_at_the_cap() {
        let stand_in = TelegramStandIn::start(TOKEN).await.unwrap();
        stand_in.set_mode(Mode::EndlessBody);
        let started = Instant::now();
        let text = fatal_text(sender(&stand_in, TOKEN, "1").get_me().await.unwrap_err());
        assert_eq!(
            text,
            "Telegram's answer: the answer's body is over the 1 MiB cap; not read further"
        );
        assert!(
            started.elapsed() < ATTEMPT_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    /// The redirect's target would get the bot token in the URL and the alert: it gets
    /// nothing, and the error names it without the token.
    #[tokio::test]
    async fn a_redirect_is_not_followed_and_its_target_named_without_the_token() {
        let stand_in = TelegramStandIn::start(TOKEN).await.unwrap();
        let trap = Trap::start().await.unwrap();
        stand_in.set_mode(Mode::RedirectTo(trap.addr()));
        let error = sender(&stand_in, TOKEN, "1")
            .send("[db2] hello", crate::alert::DELIVERY_BUDGET)
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains(&format!(
                "Telegram's API answered HTTP 307 redirect to http://{}/bot[redacted]/SendMessage, not followed",
                trap.addr()
            )),
            "{text}"
        );
        assert!(text.contains("attempt 1, not retried"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        assert_eq!(stand_in.attempts(), 1);
        assert_eq!(trap.arrivals(), 0, "{}", trap.received());
    }
}

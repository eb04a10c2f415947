//! A stand-in for the Telegram Bot API, the part the daemon uses: `sendMessage` and
//! `getMe`.
//!
//! [`TelegramStandIn`] owns a local HTTP server on `127.0.0.1`, the messages it accepted,
//! a count of `sendMessage` attempts and a [`Mode`] that can make it fail, slow down,
//! hang, answer an endless body or redirect elsewhere. Point a client at
//! `stand_in.api_url()` (a `teloxide::Bot` with `Bot::new(token).set_api_url(…)`).
//!
//! Requests follow the Bot API's "making requests" rules: `GET` or `POST` to
//! `/bot<token>/<method>`, the method name matched case-insensitively (teloxide sends
//! `/bot<token>/SendMessage`), parameters in the query string and in an
//! `application/json` or `application/x-www-form-urlencoded` body (multipart bodies, which
//! only file uploads need, are not modelled). Answers are
//! `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":"…"}` with the
//! same HTTP status, in the shapes teloxide-core 0.13 parses:
//!
//! | case | status | description |
//! | --- | --- | --- |
//! | path not `/bot<token>/<method>` | 404 | `Not Found` |
//! | wrong token | 401 | `Unauthorized` |
//! | unknown method | 404 | `Not Found` |
//! | no `chat_id` | 400 | `Bad Request: chat_id is empty` |
//! | `chat_id` neither an integer nor `@username` | 400 | `Bad Request: chat not found` |
//! | no or blank `text` | 400 | `Bad Request: message text is empty` |
//! | `text` over 4096 characters | 400 | `Bad Request: message is too long` |
//! | unknown `parse_mode` | 400 | `Bad Request: unsupported parse_mode` |
//! | MarkdownV2 text with an unescaped `.`, `-`, `=`, `+`, `#`, `{` or `}` outside code and link targets | 400 | `Bad Request: can't parse entities: Character 'X' is reserved and must be escaped with the preceding '\'` |
//!
//! teloxide maps `Unauthorized` and `Not Found` to `ApiError::InvalidToken`, and a body
//! with `parameters.retry_after` to `RequestError::RetryAfter`. Note that teloxide-core
//! sleeps 10 seconds before returning the error of any 5xx answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The `retry_after` (seconds) the stand-in announces when in `Mode::Down(429)`.
pub const DOWN_RETRY_AFTER_SECS: u64 = 1;

/// The bot's `first_name` in `getMe` and in the `from` of sent messages.
pub const BOT_FIRST_NAME: &str = "watchdog";

/// The bot's `username` in `getMe` and in the `from` of sent messages.
pub const BOT_USERNAME: &str = "watchdog_bot";

/// Telegram's limit on a message's text, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// A message the stand-in accepted through `sendMessage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The `chat_id` parameter as sent: an integer in decimal, or `@channelusername`.
    pub chat_id: String,
    /// The `text` parameter, exactly as sent (markup not parsed).
    pub text: String,
    /// The `parse_mode` parameter, if any (`MarkdownV2`, `HTML`, `Markdown`).
    pub parse_mode: Option<String>,
}

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Normal service.
    Up,
    /// Answer every request with this HTTP status and Telegram's error JSON for it
    /// (`{"ok":false,"error_code":502,"description":"Bad Gateway"}`; for 429,
    /// `Too Many Requests: retry after N` with `parameters.retry_after` =
    /// [`DOWN_RETRY_AFTER_SECS`]). Nothing is delivered.
    Down(u16),
    /// Serve normally but answer only after this delay. A message is delivered (and shows in
    /// [`TelegramStandIn::messages`]) when the request arrives, as a slow Telegram would
    /// still deliver it, so a client that times out and retries sends it twice.
    Slow(Duration),
    /// Never answer; nothing is delivered. Dropping the stand-in closes such connections
    /// without a response.
    Hang,
    /// Answer `200` with a body that never ends ([`crate::hostile::endless_body`]);
    /// nothing is delivered.
    EndlessBody,
    /// Answer `307` to the same path (bot token included) at this address
    /// ([`crate::hostile::redirect_to`]); nothing is delivered.
    RedirectTo(SocketAddr),
}

/// A running Telegram Bot API stand-in; dropping it stops the server and closes every
/// connection it still holds.
pub struct TelegramStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    /// A `std::sync::Mutex` is enough: it guards short synchronous sections only and is
    /// never held across an `.await` (a request is decided under the lock, then any delay
    /// or hang happens after the guard is dropped).
    state: Mutex<Inner>,
    /// Woken on every delivered message, for [`TelegramStandIn::wait_for_messages`].
    delivered: Notify,
}

struct Inner {
    token: String,
    bot_id: i64,
    mode: Mode,
    messages: Vec<SentMessage>,
    attempts: usize,
    next_message_id: i64,
}

/// What to do with one request, decided under the lock.
enum Reply {
    Now(Response),
    After(Duration, Response),
    Hang,
}

impl TelegramStandIn {
    /// Starts the stand-in on a free loopback port for the bot with this token. The bot's
    /// id (in `getMe` and in `from`) is the token's part before `:` if that is a number.
    /// Must be called inside a tokio runtime.
    pub async fn start(token: &str) -> anyhow::Result<TelegramStandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Telegram stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let bot_id = token
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .unwrap_or(123_456_789);
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner {
                token: token.to_owned(),
                bot_id,
                mode: Mode::Up,
                messages: Vec::new(),
                attempts: 0,
                next_message_id: 1,
            }),
            delivered: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(crate::http::serve(listener, app));
        tracing::debug!(%addr, "Telegram stand-in listening");
        Ok(TelegramStandIn {
            addr,
            shared,
            server,
        })
    }

    /// The API URL to give the bot: `http://127.0.0.1:PORT` (teloxide appends
    /// `/bot<token>/<Method>`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes how the stand-in answers from the next request on.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// The messages delivered so far, in order.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.lock().messages.clone()
    }

    /// How many `sendMessage` requests arrived, failed and unanswered ones included.
    pub fn attempts(&self) -> usize {
        self.shared.lock().attempts
    }

    /// Waits until at least `n` messages have been delivered or `timeout` has passed, and
    /// returns the messages delivered by then (possibly fewer than `n`).
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        crate::http::wait_for_count(&self.shared.delivered, n, timeout, || self.messages()).await
    }
}

impl Drop for TelegramStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave `Inner` half-updated in a way that matters to a test.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (reply, delivered) = shared.lock().reply(&uri, &headers, &body);
    if delivered {
        shared.delivered.notify_waiters();
    }
    match reply {
        Reply::Now(response) => response,
        Reply::After(delay, response) => {
            tokio::time::sleep(delay).await;
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}

impl Inner {
    /// Decides the answer; the flag says whether a message was delivered.
    fn reply(&mut self, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> (Reply, bool) {
        tracing::debug!(path = uri.path(), "Telegram stand-in request");
        let Some((token, method)) = parse_path(uri.path()) else {
            return (
                Reply::Now(failure(StatusCode::NOT_FOUND, "Not Found")),
                false,
            );
        };
        let send_message = method.eq_ignore_ascii_case("sendMessage");
        if send_message {
            self.attempts += 1;
        }

        let delay = match self.mode {
            Mode::Up => None,
            Mode::Slow(delay) => Some(delay),
            Mode::Hang => return (Reply::Hang, false),
            Mode::Down(code) => return (Reply::Now(down(code)), false),
            Mode::EndlessBody => return (Reply::Now(crate::hostile::endless_body(None)), false),
            Mode::RedirectTo(target) => {
                return (Reply::Now(crate::hostile::redirect_to(target, uri)), false);
            }
        };
        let reply = |response| match delay {
            Some(delay) => Reply::After(delay, response),
            None => Reply::Now(response),
        };

        if token != self.token {
            return (
                reply(failure(StatusCode::UNAUTHORIZED, "Unauthorized")),
                false,
            );
        }
        if method.eq_ignore_ascii_case("getMe") {
            let mut me = self.bot_user();
            let fields = me.as_object_mut().expect("bot_user is an object");
            fields.insert("can_join_groups".into(), json!(true));
            fields.insert("can_read_all_group_messages".into(), json!(false));
            fields.insert("supports_inline_queries".into(), json!(false));
            fields.insert("can_connect_to_business".into(), json!(false));
            fields.insert("has_main_web_app".into(), json!(false));
            return (reply(success(me)), false);
        }
        if !send_message {
            return (reply(failure(StatusCode::NOT_FOUND, "Not Found")), false);
        }

        let params = parameters(uri, headers, body);
        match self.send_message(&params) {
            Ok(message) => (reply(success(message)), true),
            Err(description) => (reply(failure(StatusCode::BAD_REQUEST, &description)), false),
        }
    }

    fn send_message(&mut self, params: &Map<String, Value>) -> Result<Value, String> {
        let chat_id = param(params, "chat_id").unwrap_or_default();
        if chat_id.is_empty() {
            return Err("Bad Request: chat_id is empty".into());
        }
        let chat = chat(&chat_id).ok_or("Bad Request: chat not found")?;
        let text = param(params, "text").unwrap_or_default();
        if text.trim().is_empty() {
            return Err("Bad Request: message text is empty".into());
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err("Bad Request: message is too long".into());
        }
        let parse_mode = param(params, "parse_mode").filter(|m| !m.is_empty());
        match parse_mode
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("markdown") | Some("html") => {}
            Some("markdownv2") => {
                if let Some(c) = unescaped_reserved_markdown_v2(&text) {
                    return Err(format!(
                        "Bad Request: can't parse entities: Character '{c}' is reserved and \
                         must be escaped with the preceding '\\'"
                    ));
                }
            }
            Some(_) => return Err("Bad Request: unsupported parse_mode".into()),
        }

        let message_id = self.next_message_id;
        self.next_message_id += 1;
        self.messages.push(SentMessage {
            chat_id,
            text: text.clone(),
            parse_mode,
        });
        let date = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(json!({
            "message_id": message_id,
            "from": self.bot_user(),
            "chat": chat,
            "date": date,
            "text": text,
        }))
    }

    /// The bot as a Telegram `User`.
    fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
        })
    }
}

/// `/bot<token>/<method>` → `(token, method)`, percent-decoded.
fn parse_path(path: &str) -> Option<(String, String)> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let bot = segments.next()?;
    let method = segments.next()?;
    if segments.next().is_some() || method.is_empty() {
        return None;
    }
    let token = percent_decode(bot.strip_prefix("bot")?);
    Some((token, percent_decode(method)))
}

fn percent_decode(s: &str) -> String {
    // form_urlencoded also turns '+' into ' '; tokens and method names contain neither.
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The request's parameters: the query string, overridden by a JSON or form body.
fn parameters(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let mut params = Map::new();
    let mut add_form = |bytes: &[u8]| {
        for (key, value) in form_urlencoded::parse(bytes) {
            params.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    };
    add_form(uri.query().unwrap_or("").as_bytes());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        add_form(body);
    } else if content_type.starts_with("application/json")
        && let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body)
    {
        params.extend(fields);
    }
    params
}

/// A parameter as Telegram reads it: strings as they are, numbers and booleans in decimal.
fn param(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The `Chat` a `chat_id` names: `@name` is a channel, `-100…` a supergroup, other negative
/// ids a group, positive ids a private chat. `None` if it is none of these.
fn chat(chat_id: &str) -> Option<Value> {
    if let Some(username) = chat_id.strip_prefix('@') {
        if username.is_empty() {
            return None;
        }
        return Some(json!({
            "id": -1_001_000_000_000_i64,
            "type": "channel",
            "title": "ops",
            "username": username,
        }));
    }
    let id: i64 = chat_id.parse().ok()?;
    Some(if chat_id.starts_with("-100") {
        json!({"id": id, "type": "supergroup", "title": "ops"})
    } else if id < 0 {
        json!({"id": id, "type": "group", "title": "ops"})
    } else {
        json!({"id": id, "type": "private", "first_name": "Operator"})
    })
}

/// The first character MarkdownV2 requires escaped but `text` leaves bare, among those that
/// never start markup (`. - = + # { }`), outside inline code, pre blocks and link targets.
fn unescaped_reserved_markdown_v2(text: &str) -> Option<char> {
    let mut chars = text.chars().peekable();
    let mut previous = '\0';
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
                previous = '\0';
                continue;
            }
            '`' => {
                // Inline code or a ``` pre block: skip to the closing backticks.
                let fence = if chars.peek() == Some(&'`') {
                    chars.next();
                    if chars.peek() == Some(&'`') {
                        chars.next();
                        3
                    } else {
                        // "``" is an empty inline code span.
                        previous = '`';
                        continue;
                    }
                } else {
                    1
                };
                let mut run = 0;
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                            run = 0;
                        }
                        '`' => {
                            run += 1;
                            if run == fence {
                                break;
                            }
                        }
                        _ => run = 0,
                    }
                }
            }
            '(' if previous == ']' => {
                // A link or custom emoji target: only ')' and '\' are special inside.
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                        }
                        ')' => break,
                        _ => {}
                    }
                }
            }
            '.' | '-' | '=' | '+' | '#' | '{' | '}' => return Some(c),
            _ => {}
        }
        previous = c;
    }
    None
}

fn success(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn failure(status: StatusCode, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "ok": false,
            "error_code": status.as_u16(),
            "description": description,
        })),
    )
        .into_response()
}

/// The answer of [`Mode::Down`].
fn down(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (
            status,
            axum::Json(json!({
                "ok": false,
                "error_code": 429,
                "description": format!("Too Many Requests: retry after {DOWN_RETRY_AFTER_SECS}"),
                "parameters": {"retry_after": DOWN_RETRY_AFTER_SECS},
            })),
        )
            .into_response();
    }
    failure(status, status.canonical_reason().unwrap_or("Error"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::prelude::*;
    use teloxide::types::{ChatId, ParseMode};
    use teloxide::{ApiError, RequestError};

    const TOKEN: &str = "535362388:AAF7-g0gYncWnm5IyfZlpPRqRRv6kNAGlao";

    fn bot(tg: &TelegramStandIn, token: &str) -> Bot {
        Bot::new(token).set_api_url(reqwest::Url::parse(&tg.api_url()).unwrap())
    }

    #[tokio::test]
    async fn teloxide_sends_and_parses() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        let bot = bot(&tg, TOKEN);

        let message = bot.send_message(ChatId(-100123), "hi").await.unwrap();
        assert_eq!(message.chat.id, ChatId(-100123));
        assert!(message.chat.is_supergroup());
        assert_eq!(message.text(), Some("hi"));
        assert_eq!(message.id.0, 1);
        let from = message.from.unwrap();
        assert_eq!(from.id.0, 535_362_388);
        assert!(from.is_bot);

        let message = bot
            .send_message(ChatId(42), "*failover* done\\.")
            .parse_mode(ParseMode::MarkdownV2)
            .await
            .unwrap();
        assert!(message.chat.is_private());
        assert_eq!(message.id.0, 2);

        let group = bot.send_message(ChatId(-4567), "group").await.unwrap();
        assert!(group.chat.is_group());

        assert_eq!(
            tg.messages(),
            vec![
                SentMessage {
                    chat_id: "-100123".into(),
                    text: "hi".into(),
                    parse_mode: None,
                },
                SentMessage {
                    chat_id: "42".into(),
                    text: "*failover* done\\.".into(),
                    parse_mode: Some("MarkdownV2".into()),
                },
                SentMessage {
                    chat_id: "-4567".into(),
                    text: "group".into(),
                    parse_mode: None,
                },
            ]
        );
        assert_eq!(tg.attempts(), 3);
    }

    #[tokio::test]
    async fn teloxide_get_me() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        let me = bot(&tg, TOKEN).get_me().await.unwrap();
        assert_eq!(me.username(), BOT_USERNAME);
        assert_eq!(me.first_name, BOT_FIRST_NAME);
        assert_eq!(me.id.0, 535_362_388);
        assert!(me.is_bot);
        assert_eq!(tg.attempts(), 0);
    }

    #[tokio::test]
    async fn teloxide_sees_api_errors() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();

        let err = bot(&tg, "535362388:wrong")
            .send_message(ChatId(1), "hi")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RequestError::Api(ApiError::InvalidToken)),
            "{err:?}"
        );

        let bot = bot(&tg, TOKEN);
        let err = bot.send_message(ChatId(1), " ").await.unwrap_err();
        assert!(
            matches!(err, RequestError::Api(ApiError::MessageTextIsEmpty)),
            "{err:?}"
        );

        let err = bot
            .send_message(ChatId(1), "db-1 is down.")
            .parse_mode(ParseMode::MarkdownV2)
            .await
            .unwrap_err();
        match err {
            RequestError::Api(ApiError::CantParseEntities(description)) => assert_eq!(
                description,
                "Bad Request: can't parse entities: Character '-' is reserved and must be \
                 escaped with the preceding '\\'"
            ),
            other => panic!("{other:?}"),
        }

        let err = bot
            .send_message(ChatId(1), "x".repeat(MAX_TEXT_CHARS + 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RequestError::Api(ApiError::MessageIsTooLong)),
            "{err:?}"
        );

        tg.set_mode(Mode::Down(429));
        let err = bot.send_message(ChatId(1), "hi").await.unwrap_err();
        assert!(
            matches!(err, RequestError::RetryAfter(s) if s.seconds() == DOWN_RETRY_AFTER_SECS as u32),
            "{err:?}"
        );

        assert!(tg.messages().is_empty());
        assert_eq!(tg.attempts(), 5);
    }

    #[tokio::test]
    async fn teloxide_times_out_on_hang() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        tg.set_mode(Mode::Hang);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let bot = Bot::with_client(TOKEN, client)
            .set_api_url(reqwest::Url::parse(&tg.api_url()).unwrap());
        let err = bot.send_message(ChatId(1), "hi").await.unwrap_err();
        assert!(
            matches!(&err, RequestError::Network(e) if e.is_timeout()),
            "{err:?}"
        );
        assert_eq!(tg.attempts(), 1);
        assert!(tg.messages().is_empty());

        tg.set_mode(Mode::Up);
        bot.send_message(ChatId(1), "hi").await.unwrap();
        assert_eq!(tg.messages().len(), 1);
    }

    #[tokio::test]
    async fn slow_delivers_at_once_and_answers_late() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        tg.set_mode(Mode::Slow(Duration::from_millis(400)));
        let bot = bot(&tg, TOKEN);
        let started = std::time::Instant::now();
        let send = tokio::spawn(async move { bot.send_message(ChatId(7), "late").await });

        let delivered = tg.wait_for_messages(1, Duration::from_secs(5)).await;
        assert_eq!(delivered.len(), 1);
        assert!(started.elapsed() < Duration::from_millis(400));
        assert!(!send.is_finished());

        send.await.unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn wait_for_messages_gives_up_at_the_timeout() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        let started = std::time::Instant::now();
        let got = tg.wait_for_messages(1, Duration::from_millis(200)).await;
        assert!(got.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    /// The request shapes teloxide does not use but Telegram accepts, and the raw error
    /// bodies.
    #[tokio::test]
    async fn raw_requests() {
        let tg = TelegramStandIn::start(TOKEN).await.unwrap();
        let client = reqwest::Client::new();
        let base = format!("{}/bot{TOKEN}", tg.api_url());
        let answer = |response: reqwest::Response| async move {
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        };

        let (status, body) = answer(
            client
                .post(format!("{base}/sendmessage"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("chat_id=%40ops_channel&text=db+failed+over&parse_mode=HTML")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["chat"]["type"], "channel");

        let (status, _) = answer(
            client
                .get(format!("{base}/SENDMESSAGE?chat_id=5&text=query"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);

        let (status, body) = answer(
            client
                .post(format!("{base}/sendMessage"))
                .json(&json!({"text": "x"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat_id is empty"})
        );

        let (status, body) = answer(
            client
                .post(format!("{base}/sendMessage"))
                .json(&json!({"chat_id": 5}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["description"], "Bad Request: message text is empty");

        let (status, body) = answer(
            client
                .post(format!("{base}/sendMessage"))
                .json(&json!({"chat_id": "ops", "text": "x"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &body["description"]),
            (400, &json!("Bad Request: chat not found"))
        );

        let (status, body) = answer(
            client
                .post(format!("{base}/frobnicate"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 404, "description": "Not Found"})
        );

        let (status, body) = answer(
            client
                .post(format!("{}/botnope/getMe", tg.api_url()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        );

        tg.set_mode(Mode::Down(502));
        let (status, body) =
            answer(client.post(format!("{base}/getMe")).send().await.unwrap()).await;
        assert_eq!(status, 502);
        assert_eq!(
            body,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
        );

        tg.set_mode(Mode::Down(429));
        let (status, body) =
            answer(client.post(format!("{base}/getMe")).send().await.unwrap()).await;
        assert_eq!(status, 429);
        assert_eq!(
            body,
            json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            })
        );

        assert_eq!(tg.attempts(), 5);
        assert_eq!(
            tg.messages(),
            vec![
                SentMessage {
                    chat_id: "@ops_channel".into(),
                    text: "db failed over".into(),
                    parse_mode: Some("HTML".into()),
                },
                SentMessage {
                    chat_id: "5".into(),
                    text: "query".into(),
                    parse_mode: None,
                },
            ]
        );
    }

    #[test]
    fn markdown_v2_reserved_characters() {
        let bare = unescaped_reserved_markdown_v2;
        assert_eq!(bare("plain text"), None);
        assert_eq!(bare("a.b"), Some('.'));
        assert_eq!(bare("a\\.b \\- c"), None);
        assert_eq!(bare("`db-1.example` and ```\npre.block-x\n```"), None);
        assert_eq!(bare("[link](https://a.example/x-y) ok"), None);
        assert_eq!(bare("(a.b)"), Some('.'));
        assert_eq!(bare("*bold* x=1"), Some('='));
    }

    /// Pins down what teloxide puts on the wire, which the stand-in relies on: a `POST` to
    /// `/bot<token>/SendMessage` (capitalised method name) with a JSON body whose `chat_id`
    /// is a number.
    #[tokio::test]
    async fn teloxide_request_shape() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = tokio::spawn(async move {
            let bot = Bot::new(TOKEN).set_api_url(reqwest::Url::parse(&url).unwrap());
            bot.send_message(ChatId(-100123), "hi")
                .parse_mode(ParseMode::MarkdownV2)
                .await
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0; 4096];
        let (head, body) = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "connection closed mid-request");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break (head.to_owned(), body.to_owned());
                }
            }
        };
        let reply = r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        stream
            .write_all(
                format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert!(
            matches!(err, RequestError::Api(ApiError::ChatNotFound)),
            "{err:?}"
        );

        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some(format!("POST /bot{TOKEN}/SendMessage HTTP/1.1").as_str())
        );
        assert!(
            lines.any(|l| l.eq_ignore_ascii_case("content-type: application/json")),
            "{head}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"chat_id": -100123, "text": "hi", "parse_mode": "MarkdownV2"})
        );
    }
}

//! Alerts to the team on Telegram. The only module that knows teloxide.
//!
//! Alerts never sit on a promotion's critical path: [`Alerter::send`] queues a message
//! and returns at once; a background worker delivers the queue in order, retrying
//! transient failures (network errors, 5xx, 429 with its `retry_after`) with backoff for
//! a bounded time per message, and logs what it could not deliver. Only the closing
//! alert (the `notify` step) waits for its delivery, with a deadline, to record whether it
//! arrived. What each alert says is [`message`]'s: every alert is an [`Alert`] value,
//! rendered there with the node's name in its headline.
//!
//! A one-shot command (`--promote-now`, `pause`) gives the alerter a wait budget
//! ([`Alerter::with_wait_budget`]): all its waits for delivery together stay within it,
//! so a dead Telegram cannot hold an operator's terminal for a minute.
//!
//! [`verify_bot`] asks Telegram who the bot is (`getMe`): the smoke test's proof that the
//! token works, without a message.
//!
//! Every alert's text is scrubbed of every configured secret when it is queued, so no
//! secret that reached an alert (an error text a service echoed) leaves through Telegram
//! or the log. teloxide puts the bot token in the request URL, so every error text is
//! scrubbed too, with the same [`Scrubber`], before it reaches a log line.

pub mod message;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::anyhow;
use teloxide::requests::Requester;
use teloxide::types::{ChatId, Recipient};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::TelegramConfig;
use crate::retry::{Backoff, Failure, retry_until};
use crate::secret::Scrubber;

pub use message::Alert;

/// How long the worker keeps trying to deliver one message.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(20);
/// Longest a single attempt may take. Telegram answers in well under a second, but
/// teloxide sleeps 10 s before it reads a 5xx reply: we cut the attempt short and let the
/// backoff decide when to try again, so a one-shot command's 10 s still sees a few tries.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

enum Job {
    Message {
        text: String,
        delivered: Option<oneshot::Sender<Result<(), String>>>,
    },
    Flush(oneshot::Sender<()>),
}

/// The alert queue. Cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    /// The channel the worker delivers to (for [`Self::deliveries`]).
    channel: &'static str,
    node: String,
    /// Every alert's text goes through it before it is logged or sent.
    scrubber: Scrubber,
    queue: mpsc::UnboundedSender<Job>,
    counts: Arc<Counts>,
    /// For one-shot commands: the total time all waits for delivery may take.
    wait_budget: Option<Arc<WaitBudget>>,
}

/// Alerts queued and not yet handled, and alerts given up on.
#[derive(Default)]
struct Counts {
    queued: AtomicUsize,
    /// Given up on, since start (the channel's `failed`).
    failed: AtomicUsize,
    /// Delivered, since start.
    sent: AtomicUsize,
}

/// Alerts delivered and given up on by one channel since start (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCount {
    /// `telegram`, or `log` when no channel is configured.
    pub channel: &'static str,
    pub sent: u64,
    pub failed: u64,
}

/// A total wait, counted from the first wait.
struct WaitBudget {
    total: Duration,
    deadline: OnceLock<Instant>,
}

/// What [`Alerter::flush`] found: alerts still queued when it gave up waiting, and
/// alerts the worker gave up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub queued: usize,
    pub failed: usize,
}

impl Undelivered {
    /// Every alert so far was delivered.
    pub fn none(&self) -> bool {
        self.queued == 0 && self.failed == 0
    }
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} alert(s) not delivered, {} still queued (their text is in the log)",
            self.failed, self.queued
        )
    }
}

impl Alerter {
    /// Starts the delivery worker. With no `[telegram]` config, alerts go to the log only.
    /// `scrubber` (every secret of the config) cleans every alert and every error text.
    pub fn start(
        node: &str,
        telegram: Option<&TelegramConfig>,
        scrubber: Scrubber,
    ) -> anyhow::Result<Alerter> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let sender = match telegram {
            Some(config) => Some(TelegramSender::new(config, scrubber.clone())?),
            None => None,
        };
        let counts = Arc::new(Counts::default());
        let channel = if sender.is_some() { "telegram" } else { "log" };
        tokio::spawn(deliver(jobs, sender, counts.clone()));
        Ok(Alerter {
            channel,
            node: node.to_string(),
            scrubber,
            queue,
            counts,
            wait_budget: None,
        })
    }

    /// Bounds every later wait for delivery ([`Self::send_and_confirm`], [`Self::flush`])
    /// so that together they take at most `total`, counted from the first of them.
    pub fn with_wait_budget(mut self, total: Duration) -> Alerter {
        self.wait_budget = Some(Arc::new(WaitBudget {
            total,
            deadline: OnceLock::new(),
        }));
        self
    }

    /// The node's name, as alerts show it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Alerts delivered and given up on, per channel, since start.
    pub fn deliveries(&self) -> Vec<ChannelCount> {
        vec![ChannelCount {
            channel: self.channel,
            sent: self.counts.sent.load(Ordering::Relaxed) as u64,
            failed: self.counts.failed.load(Ordering::Relaxed) as u64,
        }]
    }

    /// Queues an alert; returns at once.
    pub fn send(&self, alert: &Alert) {
        let text = self.render(alert);
        tracing::info!(alert = alert.kind(), "alert queued: {text}");
        self.enqueue(text, None);
    }

    /// Queues an alert and waits up to `within` (and the wait budget) for it to be
    /// delivered.
    pub async fn send_and_confirm(&self, alert: &Alert, within: Duration) -> Result<(), String> {
        let text = self.render(alert);
        tracing::info!(alert = alert.kind(), "alert queued: {text}");
        let within = self.bounded(within);
        let (tx, rx) = oneshot::channel();
        if !self.enqueue(text, Some(tx)) {
            return Err("the alert worker has stopped".to_string());
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the alert worker has stopped".to_string()),
            Err(_) => Err(format!(
                "not delivered within {}",
                humantime::format_duration(within)
            )),
        }
    }

    /// Waits up to `within` (and the wait budget) for every queued alert to be delivered
    /// or given up on, so a short-lived command does not exit with alerts unsent; says
    /// what was not delivered.
    pub async fn flush(&self, within: Duration) -> Undelivered {
        let within = self.bounded(within);
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Job::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
        Undelivered {
            queued: self.counts.queued.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }

    /// The alert's text as it is logged and sent: rendered, then scrubbed.
    pub fn render(&self, alert: &Alert) -> String {
        self.scrubber.scrub(&alert.render(&self.node))
    }

    fn enqueue(
        &self,
        text: String,
        delivered: Option<oneshot::Sender<Result<(), String>>>,
    ) -> bool {
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self.queue.send(Job::Message { text, delivered }).is_ok();
        if !sent {
            self.counts.queued.fetch_sub(1, Ordering::Relaxed);
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// `within`, cut to what is left of the wait budget.
    fn bounded(&self, within: Duration) -> Duration {
        let Some(budget) = &self.wait_budget else {
            return within;
        };
        let deadline = *budget
            .deadline
            .get_or_init(|| Instant::now() + budget.total);
        within.min(deadline.saturating_duration_since(Instant::now()))
    }
}

async fn deliver(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    sender: Option<TelegramSender>,
    counts: Arc<Counts>,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Message { text, delivered } => {
                let result = match &sender {
                    None => {
                        tracing::info!(alert = %text, "alert (no [telegram] configured)");
                        Ok(())
                    }
                    Some(sender) => sender.send(&text).await.map_err(|e| format!("{e:#}")),
                };
                match &result {
                    Ok(()) => {
                        counts.sent.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("alert delivered")
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!("alert not delivered: {e}; text was: {text}")
                    }
                }
                counts.queued.fetch_sub(1, Ordering::Relaxed);
                if let Some(delivered) = delivered {
                    let _ = delivered.send(result);
                }
            }
        }
    }
}

/// Asks Telegram who the bot is (`getMe`), which proves the bot token works without
/// sending anything; for the smoke test. Returns the bot's `@username`. Transient
/// failures are retried until `deadline`. Errors are scrubbed with `scrubber`.
pub async fn verify_bot(
    config: &TelegramConfig,
    scrubber: Scrubber,
    deadline: Instant,
) -> anyhow::Result<String> {
    let sender = TelegramSender::new(config, scrubber)?;
    let me = retry_until(
        "asking Telegram who the bot is (getMe)",
        deadline,
        Backoff::API,
        || sender.attempt(sender.bot.get_me()),
    )
    .await?;
    Ok(match &me.user.username {
        Some(username) => format!("@{username}"),
        None => me.user.first_name.clone(),
    })
}

struct TelegramSender {
    bot: Bot,
    chat: Recipient,
    /// Knows the bot token (and every other secret): teloxide's errors carry the URL.
    scrubber: Scrubber,
}

impl TelegramSender {
    fn new(config: &TelegramConfig, scrubber: Scrubber) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(ATTEMPT_TIMEOUT)
            .build()?;
        let bot =
            Bot::with_client(config.bot_token.expose(), client).set_api_url(config.api_url.clone());
        let chat = match config.chat_id.parse::<i64>() {
            Ok(id) => Recipient::Id(ChatId(id)),
            Err(_) => Recipient::ChannelUsername(config.chat_id.clone()),
        };
        Ok(Self {
            bot,
            chat,
            scrubber,
        })
    }

    async fn send(&self, text: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + DELIVERY_BUDGET;
        retry_until(
            "sending the Telegram alert",
            deadline,
            Backoff::API,
            || async {
                self.attempt(self.bot.send_message(self.chat.clone(), text))
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// One request to Telegram, cut short after [`ATTEMPT_TIMEOUT`], its failure
    /// classified (and scrubbed of the token) for [`retry_until`].
    async fn attempt<T>(
        &self,
        request: impl std::future::IntoFuture<Output = Result<T, RequestError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(Failure::transient(anyhow!(
                "no reply from Telegram within {}",
                humantime::format_duration(ATTEMPT_TIMEOUT)
            ))),
        }
    }

    fn classify(&self, error: RequestError) -> Failure {
        let text = self.scrubber.scrub(&crate::probe::error_chain(&error));
        match error {
            RequestError::RetryAfter(after) => Failure::Transient {
                error: anyhow!(text),
                retry_after: Some(after.duration()),
            },
            RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
                Failure::transient(anyhow!(text))
            }
            // Telegram's 5xx replies arrive as unknown API errors.
            RequestError::Api(ApiError::Unknown(_)) => Failure::transient(anyhow!(text)),
            RequestError::Api(_) | RequestError::MigrateToChatId(_) => {
                Failure::fatal(anyhow!(text))
            }
        }
    }
}

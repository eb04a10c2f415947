//! Alerts to the team: on Telegram ([`telegram`]) and on every configured webhook
//! ([`webhook`]).
//!
//! Alerts never sit on a promotion's critical path: [`Alerter::send`] queues a message
//! and returns at once. Every channel (Telegram, each `[[alerts.webhooks]]` entry, or the
//! log when none is configured) has its own queue and background worker, so a slow or
//! dead channel never delays another: each delivers its queue in order, retrying
//! transient failures (network errors, 5xx, 429 with its retry-after) with backoff for
//! a bounded time per message ([`DELIVERY_BUDGET`]), and logs what it could not deliver
//! with the alert's text; [`Alerter::deliveries`] counts both per channel. Only the
//! closing alert (the `notify` step) waits for its delivery, with a deadline, to record
//! whether it arrived: it counts as delivered as soon as any channel took it
//! ([`Alerter::send_and_confirm`]); the others keep trying on their own. What each alert
//! says is the core's (`failover_watchdog_core::alert`): every alert is an [`Alert`] value, rendered there with the
//! node's name in its headline; [`webhook`] shapes it for each webhook format. The smoke
//! test's monthly report goes to the chat channels only, never to an incident tool
//! (`alertmanager`, `pagerduty`): it must not page anyone.
//!
//! A one-shot command (`--promote-now`, `pause`) gives the alerter a wait budget
//! ([`Alerter::with_wait_budget`]): all its waits for delivery together stay within it,
//! so a dead Telegram cannot hold an operator's terminal for a minute.
//!
//! [`verify_bot`] asks Telegram who the bot is (`getMe`): the smoke test's proof that the
//! token works, without a message.
//!
//! Every alert's text is scrubbed of every configured secret when it is queued, so no
//! secret that reached an alert (an error text a service echoed) leaves through a
//! channel or the log. The bot token is in Telegram's request URL, so every error text
//! is scrubbed too, with the same [`Scrubber`], before it reaches a log line. Every
//! channel's client is [`crate::http_client`]'s: no redirect followed, answers capped.

mod telegram;
pub mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, TelegramConfig, WebhookConfig, WebhookFormat};
use crate::retry::{Backoff, retry_until};
use crate::secret::Scrubber;
use telegram::TelegramSender;
use webhook::{Event, WebhookSender};

pub use failover_watchdog_core::alert::Alert;

/// How long a channel's worker keeps trying to deliver one message.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(20);

/// The channels to start: Telegram and the webhooks, as configured.
#[derive(Clone, Copy, Default)]
pub struct Channels<'a> {
    pub telegram: Option<&'a TelegramConfig>,
    pub webhooks: &'a [WebhookConfig],
}

impl<'a> From<&'a Config> for Channels<'a> {
    fn from(config: &'a Config) -> Self {
        Channels {
            telegram: config.telegram.as_ref(),
            webhooks: &config.webhooks,
        }
    }
}

impl<'a> From<Option<&'a TelegramConfig>> for Channels<'a> {
    fn from(telegram: Option<&'a TelegramConfig>) -> Self {
        Channels {
            telegram,
            webhooks: &[],
        }
    }
}

enum Job {
    Message {
        /// The alert, rendered and scrubbed.
        event: Arc<Event>,
        delivered: Option<oneshot::Sender<Result<(), String>>>,
    },
    Flush(oneshot::Sender<()>),
}

/// The alert queues, one per channel. Cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    node: String,
    /// Every alert's text goes through it before it is logged or sent.
    scrubber: Scrubber,
    channels: Arc<[Channel]>,
    /// For one-shot commands: the total time all waits for delivery may take.
    wait_budget: Option<Arc<WaitBudget>>,
}

/// One channel's queue, as the [`Alerter`] sees it.
struct Channel {
    /// `telegram`, a webhook's `name`, or `log`.
    name: String,
    /// An incident tool (`alertmanager`, `pagerduty`): it pages someone, so it is not
    /// sent the smoke test's monthly report, which is for the team's chat.
    pages: bool,
    queue: mpsc::UnboundedSender<Job>,
    counts: Arc<Counts>,
}

/// Alerts queued and not yet handled, and alerts given up on, by one channel.
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
    /// `telegram`, a webhook's `name`, or `log` when no channel is configured.
    pub channel: String,
    pub sent: u64,
    pub failed: u64,
}

/// A total wait, counted from the first wait.
struct WaitBudget {
    total: Duration,
    deadline: OnceLock<Instant>,
}

/// What [`Alerter::flush`] found, summed over the channels (an alert two channels did
/// not deliver counts twice): deliveries still queued when it gave up waiting, and
/// deliveries the workers gave up on.
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

/// Where one worker delivers.
enum Sink {
    /// No channel configured: the log is the channel.
    Log,
    Telegram(TelegramSender),
    Webhook(WebhookSender),
}

impl Alerter {
    /// Starts one delivery worker per channel: Telegram and each webhook; with none
    /// configured, alerts go to the log only. `scrubber` (every secret of the config)
    /// cleans every alert and every error text.
    pub fn start<'a>(
        node: &str,
        channels: impl Into<Channels<'a>>,
        scrubber: Scrubber,
    ) -> anyhow::Result<Alerter> {
        let channels = channels.into();
        let mut sinks: Vec<(String, bool, Sink)> = Vec::new();
        if let Some(config) = channels.telegram {
            let sender = TelegramSender::new(config, scrubber.clone())?;
            sinks.push(("telegram".to_string(), false, Sink::Telegram(sender)));
        }
        for config in channels.webhooks {
            let pages = matches!(
                config.format,
                WebhookFormat::Alertmanager | WebhookFormat::Pagerduty
            );
            let sender = WebhookSender::new(config)?;
            sinks.push((config.name.clone(), pages, Sink::Webhook(sender)));
        }
        if sinks.is_empty() {
            sinks.push(("log".to_string(), false, Sink::Log));
        }
        let channels = sinks
            .into_iter()
            .map(|(name, pages, sink)| {
                let (queue, jobs) = mpsc::unbounded_channel();
                let counts = Arc::new(Counts::default());
                tokio::spawn(deliver(
                    name.clone(),
                    jobs,
                    sink,
                    counts.clone(),
                    scrubber.clone(),
                ));
                Channel {
                    name,
                    pages,
                    queue,
                    counts,
                }
            })
            .collect();
        Ok(Alerter {
            node: node.to_string(),
            scrubber,
            channels,
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
        self.channels
            .iter()
            .map(|c| ChannelCount {
                channel: c.name.clone(),
                sent: c.counts.sent.load(Ordering::Relaxed) as u64,
                failed: c.counts.failed.load(Ordering::Relaxed) as u64,
            })
            .collect()
    }

    /// Queues an alert on every channel; returns at once.
    pub fn send(&self, alert: &Alert) {
        let event = self.event(alert);
        for channel in self.channels_for(alert) {
            channel.enqueue(event.clone(), None);
        }
    }

    /// Queues an alert on every channel and waits up to `within` (and the wait budget)
    /// for it to be delivered. `Ok` as soon as any channel delivered it (the others go
    /// on trying, and log a failure); otherwise the error names every channel and why.
    pub async fn send_and_confirm(&self, alert: &Alert, within: Duration) -> Result<(), String> {
        let event = self.event(alert);
        let within = self.bounded(within);
        let mut waiting = FuturesUnordered::new();
        let mut problems: Vec<String> = Vec::new();
        for channel in self.channels_for(alert) {
            let (tx, rx) = oneshot::channel();
            if channel.enqueue(event.clone(), Some(tx)) {
                let name = channel.name.as_str();
                waiting.push(async move { (name, rx.await) });
            } else {
                problems.push(format!("{}: its worker has stopped", channel.name));
            }
        }
        let mut pending: Vec<&str> = self.channels_for(alert).map(|c| c.name.as_str()).collect();
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, waiting.next()).await {
                Ok(Some((_, Ok(Ok(()))))) => return Ok(()),
                Ok(Some((name, answer))) => {
                    pending.retain(|n| *n != name);
                    let why = match answer {
                        Ok(Err(e)) => e,
                        _ => "its worker has stopped".to_string(),
                    };
                    problems.push(format!("{name}: {why}"));
                }
                Ok(None) => break,
                Err(_) => {
                    let not_yet = pending.iter().map(|name| {
                        format!(
                            "{name}: not delivered within {}",
                            humantime::format_duration(within)
                        )
                    });
                    problems.extend(not_yet);
                    break;
                }
            }
        }
        if problems.is_empty() {
            // Only incident tools are configured and this alert is not for them.
            return Ok(());
        }
        Err(problems.join("; "))
    }

    /// Waits up to `within` (and the wait budget) for every queued alert to be delivered
    /// or given up on by every channel, so a short-lived command does not exit with
    /// alerts unsent; says what was not delivered.
    pub async fn flush(&self, within: Duration) -> Undelivered {
        let within = self.bounded(within);
        let waits: Vec<_> = self
            .channels
            .iter()
            .filter_map(|channel| {
                let (tx, rx) = oneshot::channel();
                channel.queue.send(Job::Flush(tx)).ok().map(|_| rx)
            })
            .collect();
        let _ = tokio::time::timeout(within, futures::future::join_all(waits)).await;
        let sum = |count: fn(&Counts) -> &AtomicUsize| {
            self.channels
                .iter()
                .map(|c| count(&c.counts).load(Ordering::Relaxed))
                .sum()
        };
        Undelivered {
            queued: sum(|c| &c.queued),
            failed: sum(|c| &c.failed),
        }
    }

    /// The alert's text as it is logged and sent: rendered, then scrubbed.
    pub fn render(&self, alert: &Alert) -> String {
        self.scrubber.scrub(&alert.render(&self.node))
    }

    /// The channels `alert` goes to: every one, except that the smoke test's report does
    /// not page anyone.
    fn channels_for<'s>(&'s self, alert: &'s Alert) -> impl Iterator<Item = &'s Channel> {
        let report = matches!(alert, Alert::SmokeReport { .. });
        self.channels.iter().filter(move |c| !(report && c.pages))
    }

    /// The alert, rendered and scrubbed once for every channel, and logged.
    fn event(&self, alert: &Alert) -> Arc<Event> {
        let text = self.render(alert);
        tracing::info!(alert = alert.kind(), "alert queued: {text}");
        Arc::new(Event::new(&self.node, alert, &text, jiff::Timestamp::now()))
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

impl Channel {
    fn enqueue(
        &self,
        event: Arc<Event>,
        delivered: Option<oneshot::Sender<Result<(), String>>>,
    ) -> bool {
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self.queue.send(Job::Message { event, delivered }).is_ok();
        if !sent {
            self.counts.queued.fetch_sub(1, Ordering::Relaxed);
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

/// One channel's worker: delivers its queue in order, each alert within
/// [`DELIVERY_BUDGET`].
async fn deliver(
    channel: String,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    sink: Sink,
    counts: Arc<Counts>,
    scrubber: Scrubber,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Message { event, delivered } => {
                let text = &event.text;
                let result = match &sink {
                    Sink::Log => {
                        tracing::info!(alert = %text, "alert (no alert channel configured)");
                        Ok(())
                    }
                    Sink::Telegram(sender) => sender.send(text, DELIVERY_BUDGET).await,
                    Sink::Webhook(sender) => sender.send(&event, DELIVERY_BUDGET).await,
                }
                .map_err(|e| scrubber.scrub(&format!("{e:#}")));
                match &result {
                    Ok(()) => {
                        counts.sent.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(channel, "alert delivered")
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            channel,
                            "alert not delivered to {channel}: {e}; text was: {text}"
                        )
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
        || sender.get_me(),
    )
    .await?;
    Ok(match me.username {
        Some(username) => format!("@{username}"),
        None => me.first_name,
    })
}

#[cfg(test)]
mod tests {
    use failover_watchdog_rig::webhook::{Mode, WebhookStandIn};

    use super::*;

    fn hook(name: &str, stand_in: &WebhookStandIn) -> WebhookConfig {
        WebhookConfig {
            name: name.to_string(),
            url: url::Url::parse(&stand_in.url("/hook")).unwrap(),
            format: WebhookFormat::Json,
            token: None,
            timeout: Duration::from_secs(1),
        }
    }

    fn start(hooks: &[WebhookConfig]) -> Alerter {
        let channels = Channels {
            telegram: None,
            webhooks: hooks,
        };
        Alerter::start("db2", channels, Scrubber::none()).unwrap()
    }

    /// A hanging channel holds neither the other channel's deliveries nor the closing
    /// alert's confirmation, which the live channel gives.
    #[tokio::test]
    async fn a_hanging_channel_delays_no_other_and_any_delivery_confirms() {
        let live = WebhookStandIn::start().await.unwrap();
        let dead = WebhookStandIn::start().await.unwrap();
        dead.set_mode(Mode::Hang);
        let alerter = start(&[hook("dead", &dead), hook("live", &live)]);
        alerter.send(&Alert::Rearmed);
        alerter.send(&Alert::Resumed);
        let confirmed = alerter
            .send_and_confirm(&Alert::PauseRanOut, Duration::from_secs(5))
            .await;
        assert_eq!(confirmed, Ok(()));
        let kinds: Vec<_> = live
            .received()
            .iter()
            .map(|r| r.body["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["rearmed", "resumed", "pause_ran_out"]);
        assert!(dead.received().is_empty());
        let counts = alerter.deliveries();
        assert_eq!(
            counts,
            [
                ChannelCount {
                    channel: "dead".into(),
                    sent: 0,
                    failed: 0
                },
                ChannelCount {
                    channel: "live".into(),
                    sent: 3,
                    failed: 0
                },
            ]
        );
        let left = alerter.flush(Duration::from_millis(200)).await;
        assert_eq!(left.queued, 3, "the dead channel's alerts are still queued");
    }

    /// When no channel takes the closing alert, the error names each one and why; a
    /// refusal (4xx) is not retried, and is counted per channel.
    #[tokio::test]
    async fn an_alert_no_channel_took_names_every_channel() {
        let a = WebhookStandIn::start().await.unwrap();
        let b = WebhookStandIn::start().await.unwrap();
        a.set_mode(Mode::Down(400));
        b.set_mode(Mode::Down(403));
        let alerter = start(&[hook("a", &a), hook("b", &b)]);
        let error = alerter
            .send_and_confirm(&Alert::Rearmed, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.contains("a: ") && error.contains("400"), "{error}");
        assert!(error.contains("b: ") && error.contains("403"), "{error}");
        assert_eq!((a.attempts(), b.attempts()), (1, 1));
        assert!(alerter.deliveries().iter().all(|c| c.failed == 1));
        let left = alerter.flush(Duration::from_secs(1)).await;
        assert_eq!(
            left,
            Undelivered {
                queued: 0,
                failed: 2
            }
        );
    }

    /// The smoke test's monthly report goes to the chat channels, never to an incident
    /// tool: it would page someone.
    #[tokio::test]
    async fn the_smoke_report_pages_no_one() {
        let chat = WebhookStandIn::start().await.unwrap();
        let pager = WebhookStandIn::start().await.unwrap();
        let mut pd = hook("pd", &pager);
        pd.format = WebhookFormat::Pagerduty;
        pd.token = Some(crate::secret::Secret::inline("rk"));
        let alerter = start(&[hook("chat", &chat), pd]);
        let report = Alert::SmokeReport {
            summary: "all pass".into(),
        };
        assert_eq!(
            alerter
                .send_and_confirm(&report, Duration::from_secs(5))
                .await,
            Ok(())
        );
        alerter.send(&Alert::Rearmed);
        assert!(alerter.flush(Duration::from_secs(5)).await.none());
        assert_eq!(chat.received().len(), 2);
        let paged = pager.received();
        assert_eq!(paged.len(), 1, "{paged:?}");
        assert_eq!(paged[0].body["event_action"], "trigger");
        assert_eq!(paged[0].body["payload"]["severity"], "info");
    }

    /// A webhook that answers 429 with `Retry-After` is tried again after it, within
    /// the delivery budget.
    #[tokio::test]
    async fn a_rate_limited_webhook_is_retried_after_its_retry_after() {
        let hook_stand_in = WebhookStandIn::start().await.unwrap();
        hook_stand_in.set_mode(Mode::Down(429));
        let alerter = start(&[hook("h", &hook_stand_in)]);
        alerter.send(&Alert::Rearmed);
        let tries = async {
            while hook_stand_in.attempts() < 1 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), tries)
            .await
            .unwrap();
        hook_stand_in.set_mode(Mode::Up);
        let got = hook_stand_in.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "delivered on a later try");
        assert!(hook_stand_in.attempts() >= 2);
        assert!(alerter.flush(Duration::from_secs(5)).await.none());
        assert_eq!(alerter.deliveries()[0].sent, 1);
    }
}

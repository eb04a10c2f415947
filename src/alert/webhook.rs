//! Alerts to webhooks (`[[alerts.webhooks]]`): each format's body, an alert's severity,
//! and one webhook's delivery with bounded retries.
//!
//! The bodies follow each receiver's documented shape ([`body`]):
//! - `json`: `{"node","kind","severity","headline","text","at"}`, `at` in RFC 3339;
//! - `slack`: an incoming webhook's `{"text": ...}`, the headline in bold (mrkdwn);
//! - `alertmanager`: a JSON array of one alert, as `POST /api/v2/alerts` takes it;
//! - `pagerduty`: an Events API v2 `trigger` event, the routing key from `token_file`.
//!
//! A token is sent as `Authorization: Bearer`, except to PagerDuty, where it is the
//! routing key in the body. Errors never carry the URL (a Slack webhook's URL is its
//! secret): the channel is named by its `name` instead. The client is
//! [`crate::http_client`]'s: a redirect is not followed (it would take the token or the
//! routing key elsewhere) but fails the delivery, naming its target; the answer's body
//! is never read.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{WebhookConfig, WebhookFormat};
use crate::http_client::{self, SendError};
use crate::retry::{Backoff, Failure, retry_after, retry_until};
use failover_watchdog_core::alert::Alert;

/// PagerDuty cuts a summary longer than this.
const PAGERDUTY_SUMMARY_CHARS: usize = 1024;

/// How urgent an alert is, in PagerDuty's words (Alertmanager's `severity` label too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// An alert's severity. Critical: a promotion happens or happened, halted, or risks
/// split brain (someone must act now). Error: a promotion is held back or a hook failed.
/// Warning: the primary looks unwell, or automatic promotion is paused. Info: things
/// back to normal, and the smoke report.
pub fn severity(alert: &Alert) -> Severity {
    match alert {
        Alert::Promoting { .. }
        | Alert::PromotionNotStarted { .. }
        | Alert::Resuming { .. }
        | Alert::RetryingHalted { .. }
        | Alert::Halted { .. }
        | Alert::FenceFailed { .. }
        | Alert::Promoted(_)
        | Alert::OldPrimaryBack { .. }
        | Alert::TwoPrimaries { .. }
        | Alert::NotServing { fenced: false, .. }
        | Alert::JournalUnreadable { .. } => Severity::Critical,
        // The primary may be left read-only: someone must look now.
        Alert::SwitchoverAbandoned { left, .. } if !left.is_empty() => Severity::Critical,
        Alert::HeldByLagGuard { .. }
        | Alert::HeldByPrePromote { .. }
        | Alert::StandbyNotReplicating { .. }
        | Alert::HookFailed { .. }
        | Alert::RejoinRefused { .. }
        | Alert::RejoinFailed { .. }
        | Alert::NotServing { fenced: true, .. }
        | Alert::SemiSyncFellBack { fell_back: true }
        | Alert::RejoinNeedsRebuild { .. }
        | Alert::SwitchoverAbandoned { .. }
        | Alert::PromotionAbandoned { .. } => Severity::Error,
        Alert::Degraded { .. }
        | Alert::NotAMajority { .. }
        | Alert::LastLookAnswered { .. }
        | Alert::Paused { .. }
        | Alert::StandbyLagging { .. }
        | Alert::Demoted { .. }
        | Alert::OldPrimaryWaiting { .. }
        | Alert::ReplicationDrift { .. }
        | Alert::PauseRanOut => Severity::Warning,
        Alert::Reconnected
        | Alert::Rearmed
        | Alert::Resumed
        | Alert::StandbyHealthy { .. }
        | Alert::RearmedAsStandby { .. }
        | Alert::SemiSyncFellBack { fell_back: false }
        | Alert::SmokeReport { .. }
        | Alert::Rejoined(_) => Severity::Info,
    }
}

/// One alert as the webhooks see it: rendered and scrubbed once, when queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub node: String,
    /// [`Alert::kind`].
    pub kind: &'static str,
    pub severity: Severity,
    /// The text's first line.
    pub headline: String,
    /// The whole scrubbed text, as Telegram gets it.
    pub text: String,
    /// When it was queued.
    pub at: jiff::Timestamp,
}

impl Event {
    pub fn new(node: &str, alert: &Alert, text: &str, at: jiff::Timestamp) -> Event {
        Event {
            node: node.to_string(),
            kind: alert.kind(),
            severity: severity(alert),
            headline: text.lines().next().unwrap_or_default().to_string(),
            text: text.to_string(),
            at,
        }
    }
}

/// The body `format` sends for `event`. `token` is PagerDuty's routing key.
pub fn body(format: WebhookFormat, event: &Event, token: Option<&str>) -> Value {
    let at = event.at.to_string();
    match format {
        WebhookFormat::Json => json!({
            "node": event.node,
            "kind": event.kind,
            "severity": event.severity.as_str(),
            "headline": event.headline,
            "text": event.text,
            "at": at,
        }),
        WebhookFormat::Slack => {
            let rest: Vec<&str> = event.text.lines().skip(1).collect();
            let mut text = format!("*{}*", slack_escape(&event.headline));
            for line in rest {
                text.push('\n');
                text.push_str(&slack_escape(line));
            }
            json!({ "text": text })
        }
        WebhookFormat::Alertmanager => json!([{
            "labels": {
                "alertname": format!("failover_watchdog_{}", event.kind),
                "node": event.node,
                "severity": event.severity.as_str(),
            },
            "annotations": {
                "summary": event.headline,
                "description": event.text,
            },
            "startsAt": at,
        }]),
        WebhookFormat::Pagerduty => json!({
            "routing_key": token.unwrap_or_default(),
            "event_action": "trigger",
            // One incident per node and kind: a repeated alert (the old primary still
            // answering) adds to the open incident instead of paging again.
            "dedup_key": format!("failover-watchdog/{}/{}", event.node, event.kind),
            "payload": {
                "summary": failover_watchdog_core::alert::shorten(&event.headline, PAGERDUTY_SUMMARY_CHARS),
                "source": event.node,
                "severity": event.severity.as_str(),
                "timestamp": at,
                "custom_details": { "text": event.text },
            },
        }),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters; its docs ask for
/// these three escapes and no others.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Delivers to one webhook.
pub(super) struct WebhookSender {
    config: WebhookConfig,
    client: reqwest::Client,
}

impl WebhookSender {
    pub(super) fn new(config: &WebhookConfig) -> anyhow::Result<Self> {
        Ok(Self {
            config: config.clone(),
            client: http_client::client(config.timeout)?,
        })
    }

    /// Posts the event, retrying transient failures (network errors, timeouts, 5xx, 429
    /// with its `Retry-After`) until `budget` runs out.
    pub(super) async fn send(&self, event: &Event, budget: Duration) -> anyhow::Result<()> {
        let token = self.config.token.as_ref().map(|t| t.expose());
        let body = body(self.config.format, event, token);
        let what = format!("posting the alert to webhook {}", self.config.name);
        retry_until(&what, Instant::now() + budget, Backoff::API, || {
            self.attempt(&body)
        })
        .await
    }

    /// One POST. The answer's body is never read: its status says all we need.
    async fn attempt(&self, body: &Value) -> Result<(), Failure> {
        let mut request = self.client.post(self.config.url.clone()).json(body);
        if let Some(token) = &self.config.token
            && self.config.format != WebhookFormat::Pagerduty
        {
            request = request.bearer_auth(token.expose());
        }
        // Without the URL (it may be the secret: Slack's); a redirect is not followed,
        // so the token or routing key goes nowhere else.
        let response = http_client::send(request).await.map_err(classify)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(response.headers());
        let error = anyhow!("HTTP {status}");
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(Failure::Transient {
                error,
                retry_after: after,
            })
        } else {
            Err(Failure::fatal(error))
        }
    }
}

/// A request that got no usable answer, for the retry loop.
fn classify(error: SendError) -> Failure {
    Failure::of(error.is_transient(), error)
}

/// Whether the webhook's receiver answers, without posting anything (no one is paged):
/// for the smoke test. `alertmanager`: `GET <base>/api/v2/status` (with the bearer
/// token), which must answer 2xx; the others (a POST-only endpoint, whose answer to
/// anything else varies: Slack says 400, PagerDuty 404): `HEAD <url>`, where any answer
/// but a 5xx or a redirect proves the host, TLS and path's server are there. A redirect
/// fails the check, naming its target: the alerts' POST would not follow it either.
/// Network errors and 5xx are retried until `deadline`.
pub async fn check_reachable(config: &WebhookConfig, deadline: Instant) -> anyhow::Result<String> {
    let client = http_client::client(config.timeout)?;
    let (method, url) = match config.format {
        WebhookFormat::Alertmanager => (reqwest::Method::GET, alertmanager_status_url(&config.url)),
        _ => (reqwest::Method::HEAD, config.url.clone()),
    };
    let what = format!("reaching webhook {} ({method})", config.name);
    let status = retry_until(&what, deadline, Backoff::API, || async {
        let mut request = client.request(method.clone(), url.clone());
        if let Some(token) = &config.token
            && config.format == WebhookFormat::Alertmanager
        {
            request = request.bearer_auth(token.expose());
        }
        match http_client::send(request).await {
            Err(e) => Err(classify(e)),
            Ok(r) if r.status().is_server_error() => Err(Failure::Transient {
                error: anyhow!("HTTP {}", r.status()),
                retry_after: retry_after(r.headers()),
            }),
            Ok(r) => Ok(r.status()),
        }
    })
    .await?;
    match config.format {
        WebhookFormat::Alertmanager if !status.is_success() => {
            Err(anyhow!("Alertmanager's status answered HTTP {status}"))
        }
        WebhookFormat::Alertmanager => Ok("Alertmanager ready".to_string()),
        _ => Ok(format!("reachable (HTTP {} to HEAD)", status.as_u16())),
    }
}

/// `<base>/api/v2/status` for an Alertmanager `<base>/api/v2/alerts` URL.
fn alertmanager_status_url(alerts: &url::Url) -> url::Url {
    let mut url = alerts.clone();
    let path = alerts.path().trim_end_matches('/');
    let base = path.strip_suffix("/api/v2/alerts").unwrap_or(path);
    url.set_path(&format!("{base}/api/v2/status"));
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use failover_watchdog_rig::hostile::Trap;
    use failover_watchdog_rig::webhook::{Mode, WebhookStandIn};

    use super::*;
    use crate::secret::Secret;

    const ROUTING_KEY: &str = "pd-routing-key-0123456789";

    fn pagerduty(stand_in: &WebhookStandIn) -> WebhookConfig {
        WebhookConfig {
            name: "pd".to_string(),
            url: stand_in.url("/v2/enqueue").parse().unwrap(),
            format: WebhookFormat::Pagerduty,
            token: Some(Secret::inline(ROUTING_KEY)),
            timeout: Duration::from_secs(2),
        }
    }

    /// A pagerduty-format webhook answering 307 to another port got the body, routing
    /// key included, POSTed there: webhooks followed redirects.
    #[tokio::test]
    async fn a_pagerduty_webhook_answering_307_posts_the_routing_key_nowhere() {
        let stand_in = WebhookStandIn::start().await.unwrap();
        let trap = Trap::start().await.unwrap();
        stand_in.set_mode(Mode::RedirectTo(trap.addr()));
        let config = pagerduty(&stand_in);
        let sender = WebhookSender::new(&config).unwrap();
        let error = sender
            .send(
                &event(&Alert::Rearmed, "[db2] rearmed"),
                Duration::from_secs(10),
            )
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains(&format!(
                "HTTP 307 redirect to http://{}/v2/enqueue, not followed",
                trap.addr()
            )),
            "{text}"
        );
        assert!(text.contains("attempt 1, not retried"), "{text}");
        assert_eq!(stand_in.attempts(), 1);
        assert_eq!(trap.arrivals(), 0, "{}", trap.received());

        // The smoke test's check says so too, and sends nothing there either.
        let error = check_reachable(&config, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("HTTP 307 redirect to http://"), "{text}");
        assert_eq!(trap.arrivals(), 0, "{}", trap.received());
    }

    /// The answer's body is never read: an endless one costs nothing.
    #[tokio::test]
    async fn an_endless_answer_to_a_post_is_not_read() {
        let stand_in = WebhookStandIn::start().await.unwrap();
        stand_in.set_mode(Mode::EndlessBody);
        let sender = WebhookSender::new(&pagerduty(&stand_in)).unwrap();
        let started = Instant::now();
        sender
            .send(
                &event(&Alert::Rearmed, "[db2] rearmed"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    fn event(alert: &Alert, text: &str) -> Event {
        Event::new("db2", alert, text, "2026-11-23T20:00:00Z".parse().unwrap())
    }

    #[test]
    fn alertmanagers_status_is_beside_its_alerts() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            alertmanager_status_url(&url("https://am.example.com/api/v2/alerts")).as_str(),
            "https://am.example.com/api/v2/status"
        );
        assert_eq!(
            alertmanager_status_url(&url("http://h:9093/am/api/v2/alerts/?x=1")).as_str(),
            "http://h:9093/am/api/v2/status"
        );
    }

    #[test]
    fn severity_follows_the_alert_kind() {
        assert_eq!(
            severity(&Alert::Promoted(Box::new(crate::journal::Journal::new(
                "n",
                crate::journal::Trigger::Automatic,
                "why",
                jiff::Timestamp::UNIX_EPOCH,
            )))),
            Severity::Critical
        );
        assert_eq!(
            severity(&Alert::OldPrimaryBack {
                writable: None,
                answers: String::new()
            }),
            Severity::Critical
        );
        assert_eq!(
            severity(&Alert::HeldByPrePromote {
                error: String::new()
            }),
            Severity::Error
        );
        assert_eq!(
            severity(&Alert::Degraded { why: String::new() }),
            Severity::Warning
        );
        assert_eq!(severity(&Alert::Rearmed), Severity::Info);
        assert_eq!(Severity::Critical.as_str(), "critical");
    }

    #[test]
    fn the_json_format_is_a_plain_event() {
        let alert = Alert::Degraded { why: "x".into() };
        let body = body(
            WebhookFormat::Json,
            &event(&alert, "[db2] primary degraded\nwhy: x"),
            None,
        );
        assert_eq!(
            body,
            json!({
                "node": "db2",
                "kind": "degraded",
                "severity": "warning",
                "headline": "[db2] primary degraded",
                "text": "[db2] primary degraded\nwhy: x",
                "at": "2026-11-23T20:00:00Z",
            })
        );
    }

    #[test]
    fn the_slack_format_is_bold_headline_and_escaped_text() {
        let alert = Alert::Degraded { why: "x".into() };
        let body = body(
            WebhookFormat::Slack,
            &event(&alert, "[db2] a <b> & c\nline 2 > 1"),
            None,
        );
        assert_eq!(
            body,
            json!({ "text": "*[db2] a &lt;b&gt; &amp; c*\nline 2 &gt; 1" })
        );
    }

    #[test]
    fn the_alertmanager_format_is_an_array_of_one_alert() {
        let body = body(
            WebhookFormat::Alertmanager,
            &event(&Alert::Rearmed, "[db2] rearmed\nmore"),
            None,
        );
        assert_eq!(
            body,
            json!([{
                "labels": {
                    "alertname": "failover_watchdog_rearmed",
                    "node": "db2",
                    "severity": "info",
                },
                "annotations": {
                    "summary": "[db2] rearmed",
                    "description": "[db2] rearmed\nmore",
                },
                "startsAt": "2026-11-23T20:00:00Z",
            }])
        );
    }

    #[test]
    fn the_pagerduty_format_is_an_events_v2_trigger_with_a_short_summary() {
        let long = format!("[db2] {}", "h".repeat(2000));
        let body = body(
            WebhookFormat::Pagerduty,
            &event(&Alert::PauseRanOut, &format!("{long}\ndetail")),
            Some("rk-123"),
        );
        assert_eq!(body["routing_key"], "rk-123");
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "failover-watchdog/db2/pause_ran_out");
        assert_eq!(body["payload"]["source"], "db2");
        assert_eq!(body["payload"]["severity"], "warning");
        assert_eq!(body["payload"]["timestamp"], "2026-11-23T20:00:00Z");
        assert_eq!(
            body["payload"]["custom_details"]["text"],
            format!("{long}\ndetail")
        );
        let summary = body["payload"]["summary"].as_str().unwrap();
        assert!(summary.chars().count() <= PAGERDUTY_SUMMARY_CHARS);
        assert!(summary.starts_with("[db2] hhh"));
    }
}

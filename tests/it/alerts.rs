//! Alerts by more than one road: every alert reaches Telegram and each webhook, in each
//! format's documented shape, and a dead webhook delays neither Telegram nor the
//! promotion.

use std::time::Duration;

use failover_watchdog_rig::webhook::{Mode, WebhookStandIn};

use crate::support::*;

const HOOK_TOKEN: &str = "hook-bearer-token-0123";
const PD_KEY: &str = "pd-routing-key-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn every_alert_reaches_telegram_and_each_webhook_and_a_dead_one_delays_nothing() {
    let rig = stage().await;
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let json = WebhookStandIn::start().await.unwrap();
    let slack = WebhookStandIn::start().await.unwrap();
    let am = WebhookStandIn::start().await.unwrap();
    let pd = WebhookStandIn::start().await.unwrap();
    let dead = WebhookStandIn::start().await.unwrap();
    dead.set_mode(Mode::Hang);
    std::fs::write(rig.dir.path().join("hook.token"), HOOK_TOKEN).unwrap();
    std::fs::write(rig.dir.path().join("pd.key"), PD_KEY).unwrap();
    let hooks = format!(
        r#"
[[alerts.webhooks]]
url = "{json}"
format = "json"
name = "plain"
token_file = "hook.token"

[[alerts.webhooks]]
url = "{slack}"
format = "slack"
name = "slack"

[[alerts.webhooks]]
url = "{am}"
format = "alertmanager"
name = "am"

[[alerts.webhooks]]
url = "{pd}"
format = "pagerduty"
name = "pd"
token_file = "pd.key"

[[alerts.webhooks]]
url = "{dead}"
format = "json"
name = "dead"
timeout = "1s"
"#,
        json = json.url("/hook"),
        slack = slack.url("/services/T1/B2/C3"),
        am = am.url("/api/v2/alerts"),
        pd = pd.url("/v2/enqueue"),
        dead = dead.url("/hook"),
    );
    rig.write_config(&format!("{}{hooks}", rig.config()));

    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted");
    // The closing alert counts as delivered: Telegram (and most hooks) took it, the dead
    // hook's hang did not hold it.
    assert_eq!(steps(&status), all_steps("done"), "{status:#}");
    let messages = rig.telegram.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");

    // Opening, the failed fence, closing: on every live hook, in order.
    let kinds = ["promoting", "fence_failed", "promoted"];
    let got = json.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    for ((r, kind), message) in got.iter().zip(kinds).zip(&messages) {
        assert_eq!(r.path, "/hook");
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {HOOK_TOKEN}").as_str())
        );
        assert_eq!(r.body["node"], NODE);
        assert_eq!(r.body["kind"], kind);
        assert_eq!(r.body["text"], message.text.as_str());
        assert_eq!(
            r.body["headline"],
            message.text.lines().next().unwrap(),
            "{r:?}"
        );
        assert!(r.body["severity"].is_string());
        assert!(
            r.body["at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        assert_eq!(r.body.as_object().unwrap().len(), 6, "{:#}", r.body);
    }

    let got = slack.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[2].authorization.is_none());
    let text = got[2].body["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("*[{NODE}]")), "{text}");
    assert!(text.contains("PROMOTED"), "{text}");
    assert_eq!(got[2].body.as_object().unwrap().len(), 1);

    let got = am.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].path, "/api/v2/alerts");
    let alert = &got[2].body.as_array().unwrap()[0];
    assert_eq!(alert["labels"]["alertname"], "failover_watchdog_promoted");
    assert_eq!(alert["labels"]["node"], NODE);
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["description"],
        messages[2].text.as_str()
    );
    assert!(
        alert["startsAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );

    let got = pd.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let event = &got[2].body;
    assert!(
        got[2].authorization.is_none(),
        "the key is in the body only"
    );
    assert_eq!(event["routing_key"], PD_KEY);
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["payload"]["source"], NODE);
    assert_eq!(event["payload"]["severity"], "critical");
    assert_eq!(
        event["payload"]["custom_details"]["text"],
        messages[2].text.as_str()
    );

    assert!(dead.attempts() >= 1, "the dead hook was tried");
    assert!(dead.received().is_empty());
    // The one-shot command's wait budget ran out on the dead hook alone: it says so
    // (the texts are in the log) instead of holding the terminal.
    assert!(
        run.stderr.contains("3 still queued"),
        "the undelivered alerts are said: {}",
        run.stderr
    );
    for secret in [HOOK_TOKEN, PD_KEY] {
        assert!(!run.stderr.contains(secret), "{secret} leaked into the log");
    }
}

/// The smoke test's `api_tokens` check reaches every webhook without posting to any (no
/// one is paged): Alertmanager's status for an `alertmanager` hook, `HEAD` for the
/// others; a hook that answers 5xx fails the check, named.
#[tokio::test(flavor = "multi_thread")]
async fn the_smoke_test_reaches_every_webhook_without_paging_anyone() {
    let rig = stage().await;
    let am = WebhookStandIn::start().await.unwrap();
    let broken = WebhookStandIn::start().await.unwrap();
    let hooks = format!(
        r#"
[[alerts.webhooks]]
url = "{am}"
format = "alertmanager"
name = "am"

[[alerts.webhooks]]
url = "{broken}"
format = "slack"
name = "broken"
"#,
        am = am.url("/api/v2/alerts"),
        broken = broken.url("/services/T1/B2/C3"),
    );
    rig.write_config(&format!("{}{hooks}", rig.config()));
    let healthy = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    let report: serde_json::Value = serde_json::from_str(&healthy.stdout).unwrap();
    let tokens = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api_tokens")
        .unwrap()
        .clone();
    assert_eq!(tokens["result"], "pass", "{tokens:#}");

    broken.set_down_for_everything(500);
    let run = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let tokens = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api_tokens")
        .unwrap();
    assert_eq!(tokens["result"], "fail", "{tokens:#}");
    let detail = tokens["detail"].as_str().unwrap();
    assert!(
        detail.contains("webhook broken") && detail.contains("500"),
        "{detail}"
    );
    assert!(
        !detail.contains("webhook am"),
        "only the failing part: {detail}"
    );

    assert_eq!(am.attempts(), 0, "nothing was posted");
    assert!(am.received().is_empty() && broken.received().is_empty());
    assert!(rig.telegram.messages().is_empty(), "--no-notify");
}

/// `pause` with a webhook answering 500 made one attempt, no retry, and said nothing,
/// though the README promises "warning: N alert(s) not delivered": Telegram took the
/// alert and the command returned. It delivers like every other one-shot command now:
/// every channel retries within the command's wait, and what is left is said.
#[tokio::test(flavor = "multi_thread")]
async fn pause_with_a_webhook_answering_500_retries_and_says_what_was_not_delivered() {
    let rig = stage().await;
    let hook = WebhookStandIn::start().await.unwrap();
    hook.set_mode(Mode::Down(500));
    let table = format!(
        "\n[[alerts.webhooks]]\nurl = \"{}\"\nformat = \"json\"\nname = \"plain\"\n",
        hook.url("/hook")
    );
    rig.write_config(&format!("{}{table}", rig.config()));

    let paused = rig.run(&["pause", "--reason", "maintenance"]).await;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    assert!(
        hook.attempts() >= 3,
        "retried: {} attempt(s)",
        hook.attempts()
    );
    assert!(
        paused
            .stderr
            .contains("warning: 0 alert(s) not delivered, 1 still queued"),
        "{}",
        paused.stderr
    );
    let messages = rig.telegram.messages();
    assert_eq!(messages.len(), 1, "Telegram took it: {messages:?}");

    // A refusal is not retried, and is said as not delivered.
    hook.set_mode(Mode::Down(400));
    let before = hook.attempts();
    let resumed = rig.run(&["resume"]).await;
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert_eq!(hook.attempts(), before + 1);
    assert!(
        resumed
            .stderr
            .contains("warning: 1 alert(s) not delivered, 0 still queued"),
        "{}",
        resumed.stderr
    );
    assert_eq!(rig.telegram.messages().len(), 2);
}

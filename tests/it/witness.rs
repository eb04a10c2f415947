//! Witnesses: a third host's view of the primary. A standby whose own link to the
//! primary is cut must not promote while a witness still reaches the primary; once
//! every observer sees it down, it does. A witness answers nobody without its token.
//!
//! The partition is real at the TCP level: the standby's checks and its replica's
//! replication run through a [`Link`] to the primary, and so do one witness's checks;
//! cutting the links refuses new connections and silences the open ones (the replica
//! then hears no heartbeat), while the other witness reaches the primary directly.

use std::net::SocketAddr;
use std::time::Duration;

use failover_watchdog_rig::link::Link;

use crate::support::*;

fn verdict_reason(status: &serde_json::Value) -> &str {
    status["verdict"]["reason"].as_str().unwrap_or("")
}

fn primary_address(rig: &Stage) -> SocketAddr {
    format!("{}:{}", rig.db.primary.host(), rig.db.primary.port())
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_that_reaches_the_primary_holds_promotion_until_every_observer_sees_it_down() {
    let mut rig = stage().await;
    let standby_link = Link::start(primary_address(&rig)).await.unwrap();
    let ams_link = Link::start(primary_address(&rig)).await.unwrap();
    // The standby's replica replicates through the standby's link too.
    rig.db
        .replica
        .replicate_from_port(standby_link.port())
        .await
        .unwrap();
    rig.db
        .wait_replica_running(Duration::from_secs(20))
        .await
        .unwrap();
    let ams = rig
        .spawn_witness("ams1", &rig.primary_checks_at(ams_link.port()))
        .await;
    let nyc = rig.spawn_witness("nyc1", &rig.primary_checks()).await;
    rig.write_config(&format!(
        "{}{}",
        rig.config_with_checks(&rig.primary_checks_at(standby_link.port())),
        Stage::witnesses_config(&[&ams, &nyc], "witness.token")
    ));
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;

    // The standby and ams1 lose the primary; nyc1 still reaches it.
    standby_link.cut();
    ams_link.cut();
    let disputed = rig
        .wait_for_status("nyc1 disputing the failure", Duration::from_secs(30), |s| {
            verdict_reason(s).contains("witness nyc1 still reaches it")
        })
        .await;
    assert_eq!(disputed["state"], "degraded", "{disputed:#}");
    let reason = verdict_reason(&disputed);
    assert!(
        reason.contains("replication confirms") && reason.contains("ams1 saw it down"),
        "the standby's own evidence and both witnesses are in the reason: {reason}"
    );
    let witnesses = disputed["last_probe"]["witnesses"].as_array().unwrap();
    let said: Vec<(&str, &str)> = witnesses
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["said"].as_str().unwrap()))
        .collect();
    assert_eq!(said, [("ams1", "down"), ("nyc1", "up")], "{disputed:#}");
    let text = rig.run(&["status"]).await.stdout;
    assert!(
        text.contains("witness nyc1") && text.contains("UP"),
        "status shows the witnesses: {text}"
    );

    // Five more rounds, more than the threshold: nothing counts, nothing moves.
    let later = five_more_rounds(&rig, &disputed).await;
    assert_eq!(later["state"], "degraded", "{later:#}");
    assert_eq!(later["consecutive_failures"], 0, "{later:#}");
    assert!(later["promotion"].is_null(), "{later:#}");
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(!rig.dns_points_at_standby());

    // Now the primary dies for nyc1 too: all three observers agree.
    rig.db.primary.kill9();
    let status = rig
        .wait_for_status("the promotion", Duration::from_secs(30), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(steps(&status), all_steps("done"));
    assert!(rig.dns_points_at_standby());
    let why = status["promotion"]["reason"].as_str().unwrap();
    assert!(
        why.contains("witnesses confirm: 3 of 3 observers saw the primary down")
            && why.contains("nyc1 saw it down"),
        "{why}"
    );
    let messages = rig
        .telegram
        .wait_for_messages(3, Duration::from_secs(10))
        .await;
    assert!(
        messages
            .iter()
            .any(|m| m.text.contains("promoting") && m.text.contains("witnesses confirm")),
        "the opening alert says what the witnesses said: {messages:?}"
    );
    let disputes = messages
        .iter()
        .filter(|m| m.text.contains("degraded") && m.text.contains("nyc1 still reaches it"))
        .count();
    assert_eq!(disputes, 1, "one alert for the dispute: {messages:?}");
    for m in &messages {
        assert!(!m.text.contains(WITNESS_TOKEN), "token in an alert: {m:?}");
    }
    let (_, log) = daemon.stop().await;
    assert!(!log.contains(WITNESS_TOKEN), "token in the log");
    assert!(
        nyc.log().contains("the primary is up") && nyc.log().contains("the primary is DOWN"),
        "{}",
        nyc.log()
    );
}

/// Without the token a witness answers 401 and nothing more; with it, whether it
/// reaches the primary. A standby whose token is refused gets no vote from it, so it
/// cannot reach a majority and never promotes: it says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_witness_refuses_requests_without_its_token() {
    let mut rig = stage().await;
    let ams = rig.spawn_witness("ams1", &rig.primary_checks()).await;
    let endpoint = format!("{}/v1/primary", ams.url);
    let http = reqwest::Client::new();
    for token in [None, Some("not-the-token")] {
        let mut request = http.get(&endpoint);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
        let body = response.text().await.unwrap();
        assert_eq!(body, r#"{"error":"unauthorized"}"#);
    }
    let answer: serde_json::Value = http
        .get(&endpoint)
        .bearer_auth(WITNESS_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["witness"], "ams1");
    assert_eq!(answer["primary_down"], false, "{answer}");
    let shown = answer.to_string();
    assert!(
        !shown.contains(&rig.db.primary.port().to_string()),
        "the answer names no target: {shown}"
    );

    // The standby is given the wrong token.
    std::fs::write(
        rig.dir.path().join("wrong-witness.token"),
        "not-the-token\n",
    )
    .unwrap();
    rig.write_config(&format!(
        "{}{}",
        rig.config(),
        Stage::witnesses_config(&[&ams], "wrong-witness.token")
    ));
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    assert!(
        daemon
            .log()
            .contains("witness ams1 did not answer at start")
            && daemon.log().contains("refused our token"),
        "a refused token is told at start: {}",
        daemon.log()
    );

    rig.db.primary.kill9();
    let isolated = rig
        .wait_for_status("no majority", Duration::from_secs(30), |s| {
            verdict_reason(s).contains("not a majority")
        })
        .await;
    assert_eq!(isolated["state"], "isolated", "{isolated:#}");
    assert!(
        verdict_reason(&isolated).contains("only 1 of 2 observers")
            && verdict_reason(&isolated).contains("refused our token"),
        "{isolated:#}"
    );
    let later = five_more_rounds(&rig, &isolated).await;
    assert_eq!(later["state"], "isolated", "{later:#}");
    assert!(later["promotion"].is_null(), "{later:#}");
    assert_eq!(rig.replica_read_only().await, "1");
    let alerts: Vec<String> = rig
        .telegram
        .messages()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.contains("NOT promoting") && a.contains("refused our token"))
            .count(),
        1,
        "one alert: the primary looks down and the witness is not answering: {alerts:?}"
    );
    assert!(
        ams.log().contains("refused a request from 127.0.0.1"),
        "{}",
        ams.log()
    );
    daemon.stop().await;
}

/// A witness with a bad config exits 78 and names the file, the key and the problem.
#[test]
fn a_witness_with_a_bad_config_exits_78_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("witness.toml");
    std::fs::write(
        &config,
        "[witness]\n[probe]\n[[probe.checks]]\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["witness", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("witness.toml") && stderr.contains("witness.token: missing"),
        "{stderr}"
    );
}

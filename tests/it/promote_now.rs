//! The operator's story: `--promote-now`, its dry run, its refusals, and promotions
//! that finish although Cloudflare or Telegram misbehave.

use std::time::Duration;

use failover_watchdog_rig::cloudflare::Fault;
use failover_watchdog_rig::telegram::Mode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let rig = stage().await;
    let run = rig.run(&["--promote-now", "--dry-run"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = &run.stdout;
    for expected in [
        "stop_replica",
        &format!("127.0.0.1:{}", rig.db.replica.port()),
        "IO thread Yes",
        "make_writable",
        "read_only = ON",
        "start_apps",
        "php-fpm.service, app.service",
        "update_dns",
        &format!("app.example.com A in zone {ZONE} -> {STANDBY_ADDRESS}"),
        &format!("www.example.com A in zone {ZONE} -> {STANDBY_ADDRESS}"),
        OLD_PRIMARY_ADDRESS,
        "notify",
        "All read-only checks passed",
    ] {
        assert!(plan.contains(expected), "plan lacks {expected:?}:\n{plan}");
    }
    assert!(!plan.contains(CF_TOKEN) && !plan.contains(TG_TOKEN));
    // Nothing changed.
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(rig.db.replica.slave_status().await.unwrap().is_some());
    assert_eq!(rig.cloudflare.patch_count(), 0);
    assert!(rig.systemctl.started().is_empty());
    assert!(rig.telegram.messages().is_empty());
    assert!(!rig.state_dir().join("promotion.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_now_needs_yes_without_a_terminal() {
    let rig = stage().await;
    let run = rig.run(&["--promote-now"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(rig.replica_read_only().await, "1");
}

/// `--promote-now --yes` against a live primary (the operator's call): every step runs,
/// and a second promotion afterwards is refused with exit 3.
#[tokio::test(flavor = "multi_thread")]
async fn promote_now_promotes_once_and_refuses_a_second_time() {
    let rig = stage().await;
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("state: promoted"), "{}", run.stdout);

    let status = rig.status().await;
    assert_eq!(status["state"], "promoted");
    assert_eq!(status["promotion"]["trigger"], "manual");
    assert_eq!(steps(&status), all_steps("done"));
    assert_eq!(rig.replica_read_only().await, "0");
    assert_eq!(rig.dns(&rig.records.app), STANDBY_ADDRESS);
    assert_eq!(rig.dns(&rig.records.www), STANDBY_ADDRESS);
    assert_eq!(rig.systemctl.started(), UNITS);
    // Opening, the failed fence (the primary answers, its probe account may not fence
    // it), closing.
    let messages = rig.telegram.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0].text.contains("requested by an operator"),
        "{:?}",
        messages[0]
    );
    assert!(messages[1].text.contains("fencing the old primary failed"));
    assert!(messages[2].text.contains("PROMOTED"));

    let again = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(again.code, Some(3), "{again:?}");
    assert!(
        again.stderr.contains("already promoted"),
        "{}",
        again.stderr
    );
    let dry = rig.run(&["--promote-now", "--dry-run"]).await;
    assert_eq!(dry.code, Some(3), "{dry:?}");
    assert_eq!(rig.systemctl.started(), UNITS, "no step ran twice");
    assert_eq!(rig.cloudflare.patch_count(), 2);
}

/// Cloudflare answers 500 twice and 429 once (with Retry-After) before it works: the
/// step retries inside its deadline and the promotion completes.
#[tokio::test(flavor = "multi_thread")]
async fn cloudflare_errors_are_retried_until_the_update_lands() {
    let rig = stage().await;
    // One record already points at the standby: that counts as done, with no PATCH.
    rig.cloudflare
        .add_record(ZONE, "api.example.com", "A", STANDBY_ADDRESS, 60, false);
    let mut config = rig.config();
    config.push_str(&format!(
        "\n[[dns.records]]\nname = \"api.example.com\"\ncontent = \"{STANDBY_ADDRESS}\"\n"
    ));
    rig.write_config(&config);
    rig.cloudflare.inject([
        Fault::Status(500),
        Fault::Status(502),
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    ]);
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(rig.dns(&rig.records.app), STANDBY_ADDRESS);
    assert_eq!(rig.dns(&rig.records.www), STANDBY_ADDRESS);
    assert_eq!(
        rig.cloudflare.patch_count(),
        2,
        "the record already at the standby was not patched"
    );
    assert!(
        run.stderr.contains("HTTP 500") && run.stderr.contains("HTTP 429"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(CF_TOKEN));
}

/// A Cloudflare token without permission is not retried: the step fails, the promotion
/// halts with the error named, and an alert says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_cloudflare_token_halts_the_promotion_at_update_dns() {
    let rig = stage().await;
    std::fs::write(rig.dir.path().join("cloudflare.token"), "wrong-token\n").unwrap();
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    let steps = steps(&status);
    assert_eq!(
        steps[3],
        ("update_dns".to_string(), "failed".to_string()),
        "{status:#}"
    );
    assert_eq!(steps[4], ("notify".to_string(), "pending".to_string()));
    let error = status["promotion"]["steps"][3]["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 403") || error.contains("HTTP 401"),
        "{error}"
    );
    let messages = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    assert!(
        messages
            .iter()
            .any(|m| m.text.contains("HALTED at step update_dns")),
        "{messages:?}"
    );
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);

    // Fixed by the operator, a retry runs only update_dns and notify.
    std::fs::write(
        rig.dir.path().join("cloudflare.token"),
        format!("{CF_TOKEN}\n"),
    )
    .unwrap();
    let retry = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(retry.code, Some(0), "{retry:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted");
    assert_eq!(status["promotion"]["steps"][0]["attempts"], 1);
    assert_eq!(status["promotion"]["steps"][3]["attempts"], 2);
    assert_eq!(rig.systemctl.started(), UNITS, "units were started once");
}

/// Telegram is down the whole time: the promotion completes anyway, the alert attempts
/// are retried and the failure is recorded on the `notify` step.
#[tokio::test(flavor = "multi_thread")]
async fn telegram_down_does_not_stop_the_promotion() {
    let rig = stage().await;
    rig.telegram.set_mode(Mode::Down(502));
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted", "{status:#}");
    let steps = steps(&status);
    assert!(steps[..4].iter().all(|(_, s)| s == "done"), "{steps:?}");
    assert_eq!(steps[4], ("notify".to_string(), "failed".to_string()));
    assert_eq!(rig.dns(&rig.records.app), STANDBY_ADDRESS);
    assert!(rig.telegram.attempts() > 2, "alerts were retried");
    assert!(rig.telegram.messages().is_empty());
    assert!(
        !run.stderr.contains(TG_TOKEN),
        "the bot token leaked into the log"
    );
}

/// A step that fails (a unit that does not start) halts the promotion before DNS moves.
#[tokio::test(flavor = "multi_thread")]
async fn a_unit_that_fails_to_start_halts_before_dns_moves() {
    let rig = stage().await;
    rig.systemctl.fail_start(UNITS[1]);
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    let error = status["promotion"]["steps"][2]["error"].as_str().unwrap();
    assert!(error.contains(UNITS[1]), "{error}");
    assert_eq!(rig.dns(&rig.records.app), OLD_PRIMARY_ADDRESS);
    assert_eq!(rig.cloudflare.patch_count(), 0);
}

/// The replica's SQL thread stopped on an error (a row written on the standby by hand
/// collides with one from the primary): the promotion halts in `stop_replica`, and the
/// standby is not made writable.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_sql_error_halts_before_anything_is_writable() {
    use mysql_async::prelude::Queryable;
    let rig = stage().await;
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    replica
        .query_drop("INSERT INTO app.writes (id, payload) VALUES (4242, 'standby only')")
        .await
        .unwrap();
    rig.db
        .primary
        .execute("INSERT INTO app.writes (id, payload) VALUES (4242, 'from the primary')")
        .await
        .unwrap();
    // The collision stops the replica's SQL thread (gtid_strict_mode reports it first).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let errno = loop {
        let errno = rig.db.replica_status().await.unwrap()["Last_SQL_Errno"].clone();
        if errno != "0" {
            break errno;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SQL thread never failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    let error = status["promotion"]["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("SQL thread error {errno}")),
        "{error}"
    );
    assert!(error.contains("nothing was made writable"), "{error}");
    assert_eq!(
        steps(&status)[1],
        ("make_writable".to_string(), "pending".to_string())
    );
    assert_eq!(rig.replica_read_only().await, "1");
    assert_eq!(rig.cloudflare.patch_count(), 0);
}

/// Issue 18, item 5: `--promote-now --yes` on the primary of a pair exited 0, fenced
/// its standby and recorded a promotion. It is refused (exit 3) like `switchover` is,
/// naming the primary, and changes nothing; its dry run says so.
#[tokio::test(flavor = "multi_thread")]
async fn promote_now_on_the_primary_of_a_pair_is_refused_and_changes_nothing() {
    let rig = stage().await;
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let host = rig.primary_host();

    let run = host.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.contains("is the primary of its pair")
            && run.stderr.contains("Nothing was changed")
            && run.stderr.contains("switchover"),
        "{}",
        run.stderr
    );
    assert!(!host.state_dir().join("promotion.json").exists());
    assert!(host.systemctl.started().is_empty());
    assert_eq!(rig.db.primary.global_var("read_only").await.unwrap(), "0");
    let replica = rig.db.replica_status().await.unwrap();
    assert_eq!(replica["Slave_IO_Running"], "Yes", "{replica:?}");
    assert!(rig.telegram.messages().is_empty(), "no PROMOTING alert");

    let dry = host.run(&["--promote-now", "--dry-run"]).await;
    assert_eq!(dry.code, Some(1), "{dry:?}");
    assert!(
        dry.stdout.contains("CHECK FAILED: this host")
            && dry.stdout.contains("is the primary of its pair")
            && dry.stderr.contains("would likely halt"),
        "{dry:?}"
    );
}

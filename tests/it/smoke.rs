//! The monthly smoke test: on a healthy standby every configured check passes and
//! nothing changes; each regression fails the check that should catch it, and the team
//! hears which.

use std::time::Duration;

use failover_watchdog_rig::panel::PanelStandIn;
use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::support::*;

const CHECKS: [&str; 9] = [
    "replication",
    "sync_daemons",
    "build_present",
    "trial_boot",
    "endpoints",
    "api_tokens",
    "promotion_plan",
    "watchdog_alive",
    "witnesses",
];

/// Configures every smoke check against the rig: a running lsyncd, a fresh build, a
/// trial boot that works, a panel that answers and a witness that reaches the primary
/// (returned: they serve while they live).
async fn configure_every_check(rig: &Stage) -> (PanelStandIn, Witness) {
    let panel = PanelStandIn::start().await.unwrap();
    let witness = rig.spawn_witness("ams1", &rig.primary_checks()).await;
    rig.systemctl.add_unit("lsyncd.service");
    rig.systemctl.set_active("lsyncd.service", true);
    let build = rig.dir.path().join("build/current");
    std::fs::create_dir_all(build.join("public")).unwrap();
    std::fs::write(build.join("public/app.js"), "built").unwrap();
    let config = format!(
        r#"{}
[smoke]
check_timeout = "20s"
max_lag = "30s"
sync_units = ["lsyncd.service"]
build_paths = ["build/current"]
build_max_age = "1d"
trial_boot = ["/bin/sh", "-c", "echo booting in check mode; echo app ok"]
trial_boot_timeout = "20s"
urls = ["{}", "{}"]
"#,
        rig.config() + &Stage::witnesses_config(&[&witness], "witness.token"),
        panel.url("/health"),
        panel.url("/login")
    );
    rig.write_config(&config);
    (panel, witness)
}

/// Starts the daemon and waits for a healthy round.
async fn running_daemon(rig: &Stage) -> Daemon {
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true && s["state"] == "monitoring"
    })
    .await;
    daemon
}

/// `smoke-test --json` plus `args`: the exit code, the report and the whole run.
async fn smoke_json(rig: &Stage, args: &[&str]) -> (Option<i32>, Value, Run) {
    let run = rig.run(&[&["smoke-test", "--json"], args].concat()).await;
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("smoke-test --json is not JSON ({e}): {run:?}"));
    (run.code, report, run)
}

/// The check named `name` in a `--json` report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn results(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn every(result: &str) -> Vec<(String, String)> {
    CHECKS
        .iter()
        .map(|c| (c.to_string(), result.to_string()))
        .collect()
}

/// The rows of the table: (check, result) in order.
fn table_rows(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip_while(|line| !line.starts_with("CHECK"))
        .skip(1)
        .take_while(|line| CHECKS.iter().any(|c| line.starts_with(c)))
        .map(|line| {
            let mut columns = line.split_whitespace();
            (
                columns.next().unwrap().to_string(),
                columns.next().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_no_secret(text: &str) {
    for secret in [
        CF_TOKEN,
        TG_TOKEN,
        WITNESS_TOKEN,
        failover_watchdog_rig::mariadb::FAILOVER_PASSWORD,
    ] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

/// What the smoke test must never do: promote, start, stop or repoint anything.
async fn assert_nothing_changed(rig: &Stage) {
    assert_eq!(rig.replica_read_only().await, "1");
    assert_eq!(rig.cloudflare.patch_count(), 0);
    assert!(
        rig.cloudflare
            .requests()
            .iter()
            .all(|r| r.starts_with("GET ")),
        "{:?}",
        rig.cloudflare.requests()
    );
    assert!(rig.systemctl.started().is_empty());
    assert!(
        rig.systemctl
            .calls()
            .iter()
            .all(|c| c.starts_with("is-active ") || c.starts_with("show ")),
        "{:?}",
        rig.systemctl.calls()
    );
    assert!(!rig.state_dir().join("promotion.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(rig.state_dir())
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.contains("smoke"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_standby_passes_every_configured_check_and_nothing_changes() {
    let rig = stage().await;
    let _serving = configure_every_check(&rig).await;
    let daemon = running_daemon(&rig).await;

    let run = rig.run(&["smoke-test"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(table_rows(&run.stdout), every("pass"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("9 passed, 0 failed, 0 skipped (not configured): this standby is ready"),
        "{}",
        run.stdout
    );
    for expected in [
        "IO and SQL threads running",
        "GTID Slave_Pos",
        "heartbeat 1.000 s",
        "lsyncd.service active",
        "newest file public/app.js",
        "output: booting in check mode | app ok",
        "/health HTTP 200",
        "/login HTTP 302",
        "Cloudflare API token active",
        "app.example.com A found (198.51.100.10)",
        "Telegram bot @watchdog_bot",
        "php-fpm.service known",
        "failover holds the promotion's privileges",
        "writable",
        "no promotion in the journal",
        &format!("pid {}, state monitoring", daemon.pid().unwrap()),
        "ams1 answers and reaches the primary",
    ] {
        assert!(
            run.stdout.contains(expected),
            "lacks {expected:?}:\n{}",
            run.stdout
        );
    }
    let messages = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0]
            .text
            .starts_with(&format!("[{NODE}] ✅ smoke test passed: 9 of 9")),
        "{:?}",
        messages[0]
    );

    // The same report as one JSON object, matching the table; no summary this time.
    let (code, report, json_run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(0), "{json_run:?}");
    assert_eq!(results(&report), table_rows(&run.stdout));
    assert_eq!(report["node"], NODE);
    assert_eq!(report["ok"], true);
    assert_eq!(
        (&report["passed"], &report["failed"], &report["skipped"]),
        (&Value::from(9), &Value::from(0), &Value::from(0))
    );
    for check in report["checks"].as_array().unwrap() {
        assert!(check["duration_ms"].is_u64() && check["detail"].is_string());
    }
    assert_eq!(rig.telegram.messages().len(), 1, "--no-notify sent nothing");

    assert_no_secret(&(run.stdout + &run.stderr + &json_run.stdout + &json_run.stderr));
    assert_nothing_changed(&rig).await;
    assert!(rig.db.replica.slave_status().await.unwrap().is_some());
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_with_nothing_configured_skip_and_do_not_fail_the_run() {
    let rig = stage().await;
    let daemon = running_daemon(&rig).await;
    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(0), "{run:?}");
    for name in ["sync_daemons", "build_present", "trial_boot", "endpoints"] {
        assert_eq!(check(&report, name)["result"], "skip", "{report:#}");
        assert!(
            check(&report, name)["detail"]
                .as_str()
                .unwrap()
                .contains("no [smoke]"),
            "{report:#}"
        );
    }
    assert_eq!(check(&report, "witnesses")["result"], "skip");
    assert_eq!(
        check(&report, "witnesses")["detail"],
        "no [[probe.witnesses]]"
    );
    for name in [
        "replication",
        "api_tokens",
        "promotion_plan",
        "watchdog_alive",
    ] {
        assert_eq!(check(&report, name)["result"], "pass", "{report:#}");
    }
    assert_eq!(
        (&report["passed"], &report["skipped"]),
        (&4.into(), &5.into())
    );
    assert!(rig.telegram.messages().is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_stopped_on_the_replica_fails_the_replication_check() {
    let rig = stage().await;
    // As the service's StateDirectory= leaves it, though no daemon ever ran here.
    std::fs::create_dir(rig.state_dir()).unwrap();
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    replica.query_drop("STOP SLAVE").await.unwrap();

    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1), "{run:?}");
    let replication = check(&report, "replication");
    assert_eq!(replication["result"], "fail");
    let detail = replication["detail"].as_str().unwrap();
    assert!(
        detail.contains("IO thread No") && detail.contains("SQL thread No"),
        "{detail}"
    );
    // The rest of the plan holds, read from the real server's grants.
    let plan = check(&report, "promotion_plan");
    assert_eq!(plan["result"], "pass", "{plan:#}");
    assert_eq!(check(&report, "api_tokens")["result"], "pass");
    // No daemon ever ran here.
    let watchdog = check(&report, "watchdog_alive");
    assert_eq!(watchdog["result"], "fail");
    assert!(watchdog["detail"].as_str().unwrap().contains("never ran"));
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed"], 2);

    // Read-only: the replica was left stopped, as found.
    let status = rig.db.replica_status().await.unwrap();
    assert_eq!(status["Slave_SQL_Running"], "No");
    assert!(rig.telegram.messages().is_empty(), "--no-notify");
    assert_nothing_changed(&rig).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_cloudflare_token_fails_the_api_tokens_check() {
    let rig = stage().await;
    let daemon = running_daemon(&rig).await;
    std::fs::write(rig.dir.path().join("cloudflare.token"), "wrong-token-abc\n").unwrap();
    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1), "{run:?}");
    let tokens = check(&report, "api_tokens");
    assert_eq!(tokens["result"], "fail");
    let detail = tokens["detail"].as_str().unwrap();
    assert!(
        detail.contains("HTTP 401") && detail.contains("Invalid API Token"),
        "{detail}"
    );
    assert!(
        !detail.contains("Telegram"),
        "only the failing part: {detail}"
    );
    assert_eq!(report["failed"], 1, "{report:#}");
    assert!(!run.stdout.contains("wrong-token-abc") && !run.stderr.contains("wrong-token-abc"));
    // Not retried, and no record lookups with a token already known bad.
    assert_eq!(
        rig.cloudflare.requests(),
        ["GET /client/v4/user/tokens/verify"]
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unit_unknown_to_systemd_fails_the_promotion_plan_check() {
    let rig = stage().await;
    let daemon = running_daemon(&rig).await;
    rig.write_config(&rig.config().replace(
        "units = [\"php-fpm.service\", \"app.service\"]",
        "units = [\"php-fpm.service\", \"app.service\", \"queue-worker.service\"]",
    ));
    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1), "{run:?}");
    let plan = check(&report, "promotion_plan");
    assert_eq!(plan["result"], "fail");
    assert_eq!(
        plan["detail"],
        "queue-worker.service is not known to systemd (LoadState not-found)"
    );
    assert_eq!(report["failed"], 1, "{report:#}");
    assert_nothing_changed(&rig).await;
    daemon.stop().await;
}

/// The grants are read from the real server: an account without READ_ONLY ADMIN could
/// stop the replica but never make it writable.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_user_without_read_only_admin_fails_the_promotion_plan_check() {
    let rig = stage().await;
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    for sql in [
        // Kept out of the binary log: the standby's GTID history stays the primary's.
        "SET SESSION sql_log_bin = 0",
        "CREATE USER 'halfway'@'%' IDENTIFIED BY 'halfway-pw'",
        "GRANT SLAVE MONITOR, REPLICATION SLAVE ADMIN, RELOAD ON *.* TO 'halfway'@'%'",
    ] {
        replica.query_drop(sql).await.unwrap();
    }
    std::fs::write(rig.dir.path().join("halfway.password"), "halfway-pw\n").unwrap();
    rig.write_config(
        &rig.config()
            .replace(
                &format!(
                    "user = \"{}\"",
                    failover_watchdog_rig::mariadb::FAILOVER_USER
                ),
                "user = \"halfway\"",
            )
            .replace("\"replica.password\"", "\"halfway.password\""),
    );
    std::fs::create_dir(rig.state_dir()).unwrap();
    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1), "{run:?}");
    let plan = check(&report, "promotion_plan");
    assert_eq!(plan["result"], "fail", "{plan:#}");
    assert_eq!(
        plan["detail"],
        "halfway lacks READ_ONLY ADMIN for SET GLOBAL read_only in make_writable (GRANT READ_ONLY ADMIN ON *.* TO ...)"
    );
    assert_eq!(check(&report, "replication")["result"], "pass");
    assert!(!run.stdout.contains("halfway-pw") && !run.stdout.contains("PASSWORD"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_or_stopped_watchdog_fails_the_watchdog_check() {
    let rig = stage().await;
    let daemon = running_daemon(&rig).await;
    let pid = daemon.pid().unwrap();
    assert_eq!(
        rig.run(&["pause", "--reason", "maintenance"]).await.code,
        Some(0)
    );
    let (code, report, _) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1));
    let watchdog = check(&report, "watchdog_alive");
    assert_eq!(watchdog["result"], "fail");
    assert!(
        watchdog["detail"].as_str().unwrap().contains("paused"),
        "{watchdog:#}"
    );

    assert_eq!(rig.run(&["resume"]).await.code, Some(0));
    daemon.stop().await;
    let (code, report, _) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1));
    let detail = check(&report, "watchdog_alive")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains(&format!("the daemon (pid {pid}) is not running")),
        "{detail}"
    );
}

/// A witness that refuses the standby's token would never vote; one that cannot reach
/// a healthy primary would not stop a false failover. Both fail the witnesses check.
#[tokio::test(flavor = "multi_thread")]
async fn a_witness_that_refuses_our_token_or_misses_the_primary_fails_the_witnesses_check() {
    let rig = stage().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap().port();
    drop(closed);
    let blind = rig
        .spawn_witness("blind", &rig.primary_checks_at(nowhere))
        .await;
    let locked = rig.spawn_witness("locked", &rig.primary_checks()).await;
    std::fs::write(rig.dir.path().join("wrong.token"), "not-the-token\n").unwrap();
    rig.write_config(&format!(
        "{}{}{}",
        rig.config(),
        Stage::witnesses_config(&[&blind], "witness.token"),
        Stage::witnesses_config(&[&locked], "wrong.token")
    ));
    let daemon = running_daemon(&rig).await;
    let (code, report, run) = smoke_json(&rig, &["--no-notify"]).await;
    assert_eq!(code, Some(1), "{run:?}");
    let witnesses = check(&report, "witnesses");
    assert_eq!(witnesses["result"], "fail", "{report:#}");
    let detail = witnesses["detail"].as_str().unwrap();
    assert!(
        detail.contains("blind answers but cannot reach the primary (tcp, mysql failed)")
            && detail.contains("locked did not answer")
            && detail.contains("refused our token"),
        "{detail}"
    );
    assert_no_secret(&(run.stdout + &run.stderr));
    daemon.stop().await;
}

/// Several regressions at once: the summary leads with the failures, each named with
/// its detail, before the checks that passed.
#[tokio::test(flavor = "multi_thread")]
async fn the_telegram_summary_names_each_failed_check_first() {
    let rig = stage().await;
    let mut replica = rig.db.replica.root_conn().await.unwrap();
    replica.query_drop("STOP SLAVE").await.unwrap();
    std::fs::write(rig.dir.path().join("cloudflare.token"), "wrong-token\n").unwrap();
    rig.write_config(
        &rig.config()
            .replace("\"app.service\"]", "\"gone.service\"]"),
    );

    let run = rig.run(&["smoke-test"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let failed = [
        "replication",
        "api_tokens",
        "promotion_plan",
        "watchdog_alive",
    ];
    let rows = table_rows(&run.stdout);
    for (name, result) in &rows {
        let expected = if failed.contains(&name.as_str()) {
            "fail"
        } else {
            "skip"
        };
        assert_eq!(result, expected, "{name}: {}", run.stdout);
    }

    let messages = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let summary = &messages[0].text;
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "[{NODE}] 🔴 smoke test FAILED: 4 of 9 checks failed; a takeover now would likely not work."
        )
    );
    for (line, name) in lines[1..5].iter().zip(failed) {
        assert!(line.starts_with(&format!("❌ {name}: ")), "{summary}");
    }
    assert!(lines[2].contains("HTTP 401"), "{summary}");
    assert!(
        lines[3].contains("gone.service is not known to systemd"),
        "{summary}"
    );
    assert_eq!(
        lines[5],
        "⏭ skipped (not configured): sync_daemons, build_present, trial_boot, endpoints, witnesses"
    );
    assert_no_secret(summary);
}

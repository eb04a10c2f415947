//! Found by an adversarial pass, each test named after its bug: a Cloudflare that echoes
//! the token in its error, a token file with a line break, `status` after the daemon
//! died, and a DNS record whose TTL keeps users on the old primary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use failover_watchdog_rig::cloudflare::Fault;

use crate::support::*;

/// Every secret the stage configures.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        CF_TOKEN,
        TG_TOKEN,
        WITNESS_TOKEN,
        failover_watchdog_rig::mariadb::FAILOVER_PASSWORD,
        failover_watchdog_rig::mariadb::WATCHDOG_PASSWORD,
    ] {
        assert!(
            !text.contains(secret),
            "a secret leaked into {what}: {text}"
        );
    }
}

/// The token Cloudflare echoed was replaced, not just missing: the error did get here.
fn assert_scrubbed(what: &str, text: &str) {
    assert!(
        text.contains("bad header Bearer [redacted]"),
        "{what} lacks the scrubbed error: {text}"
    );
    assert_no_secret(what, text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudflare_error_that_echoes_the_token_leaks_it_nowhere() {
    let rig = stage().await;
    rig.db
        .wait_replica_caught_up(Duration::from_secs(20))
        .await
        .unwrap();

    // The dry run looks each of the two records up.
    rig.cloudflare.inject(vec![Fault::EchoAuthorization; 2]);
    let dry = rig.run(&["--promote-now", "--dry-run"]).await;
    assert_eq!(dry.code, Some(1), "{dry:?}");
    assert_scrubbed("the dry run", &(dry.stdout + &dry.stderr));

    // The promotion looks both up at once in update_dns: a 400 halts it there.
    rig.cloudflare.inject(vec![Fault::EchoAuthorization; 2]);
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_scrubbed("--promote-now stdout", &run.stdout);
    assert_scrubbed("--promote-now stderr", &run.stderr);
    assert_eq!(rig.cloudflare.patch_count(), 0);

    let status = rig.status().await;
    assert_eq!(status["state"], "halted");
    assert_scrubbed("status --json", &status.to_string());
    let text = rig.run(&["status"]).await;
    assert_scrubbed("status", &text.stdout);
    let journal = std::fs::read_to_string(rig.state_dir().join("promotion.json")).unwrap();
    assert_scrubbed("the journal", &journal);

    // Opening, the failed fence, HALTED.
    let messages = rig
        .telegram
        .wait_for_messages(3, Duration::from_secs(10))
        .await;
    let halted = messages
        .iter()
        .find(|m| m.text.contains("HALTED"))
        .unwrap_or_else(|| panic!("no HALTED alert in {messages:?}"));
    assert_scrubbed("the HALTED alert", &halted.text);

    // The smoke test verifies the token first; that one request is enough.
    rig.cloudflare.inject([Fault::EchoAuthorization]);
    let (code, smoke) = smoke_json(&rig).await;
    assert_eq!(code, Some(1));
    assert_scrubbed("smoke-test --json", &smoke);
    rig.cloudflare.inject([Fault::EchoAuthorization]);
    let smoke = rig.run(&["smoke-test"]).await;
    assert_scrubbed("the smoke test's table", &(smoke.stdout + &smoke.stderr));
    let messages = rig
        .telegram
        .wait_for_messages(messages.len() + 1, Duration::from_secs(10))
        .await;
    let summary = messages.last().unwrap();
    assert!(summary.text.contains("smoke test FAILED"), "{summary:?}");
    assert_scrubbed("the smoke test's summary", &summary.text);
    for message in &messages {
        assert_no_secret("a Telegram message", &message.text);
    }
}

/// `smoke-test --json --no-notify`: the exit code and stdout + stderr.
async fn smoke_json(rig: &Stage) -> (Option<i32>, String) {
    let run = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    (run.code, run.stdout + &run.stderr)
}

/// A standby's config with nothing but a probe, a replica login and DNS: the files it
/// names are the test's to write.
const HOSTILE_CONFIG: &str = r#"
[node]
name = "standby-hostile"
state_dir = "state"
[[probe.checks]]
type = "tcp"
address = "127.0.0.1:9"
[replica]
user = "failover"
password_file = "replica.password"
[dns]
api_token_file = "cf.token"
zone_id = "zone"
[[dns.records]]
name = "app.example.com"
content = "203.0.113.20"
"#;

const TELEGRAM: &str = r#"[telegram]
bot_token_file = "tg.token"
chat_id = -100123
"#;

fn check_config(config: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .unwrap()
}

/// A secret file of two lines ("abc\ndef") used to be read as one secret with a line
/// break in it, which reqwest cannot put in a header: every request failed, classified
/// transient, retried until the deadline. The config refuses it now, naming the key.
#[test]
fn a_token_file_with_a_line_break_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("{HOSTILE_CONFIG}{TELEGRAM}")).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("replica.password", "replica-secret\n");
    write("cf.token", "cf-token\n");
    write("tg.token", "42:tg-token\n");
    let check = |config: &Path| {
        let output = check_config(config);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(check(&config).0, Some(0), "the fixture is valid");

    for (file, key) in [
        ("cf.token", "dns.api_token_file"),
        ("tg.token", "telegram.bot_token_file"),
        ("replica.password", "replica.password_file"),
    ] {
        let good = std::fs::read_to_string(dir.path().join(file)).unwrap();
        write(file, &format!("abc\ndef-{good}"));
        let (code, stderr) = check(&config);
        assert_eq!(code, Some(78), "{file}: {stderr}");
        assert!(stderr.contains(key), "{file}: expected {key} in {stderr}");
        assert!(stderr.contains("line break"), "{file}: {stderr}");
        assert!(!stderr.contains("def-"), "the value is not shown: {stderr}");
        write(file, &good);
    }
    assert!(!dir.path().join("state").exists(), "nothing was touched");
}

/// A world-readable secret file drew no warning, though a world-readable config that
/// holds secrets does. `check-config` (and every command's log) says so now, naming the
/// file and the key.
#[test]
fn a_world_readable_secret_file_draws_the_warning_a_config_does() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, HOSTILE_CONFIG).unwrap();
    for (name, mode) in [("replica.password", 0o600), ("cf.token", 0o644)] {
        let path = dir.path().join(name);
        std::fs::write(&path, "secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let output = check_config(&config);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let warning = format!(
        "# warning: {}: the file holds a secret (dns.api_token_file) and is readable by every user; chmod 600 it",
        dir.path().join("cf.token").display()
    );
    assert!(stdout.lines().any(|l| l == warning), "{stdout}");
    assert!(!stdout.contains("replica.password:"), "{stdout}");
}

/// `status` went on saying `monitoring` after the daemon was killed: the live state it
/// reads is the dead daemon's last.
#[tokio::test(flavor = "multi_thread")]
async fn status_with_a_dead_pid_says_the_daemon_is_not_running() {
    let rig = stage().await;
    let mut daemon = rig.spawn_daemon();
    let pid = daemon.pid().unwrap();
    let running = rig
        .wait_for_status("a healthy round", Duration::from_secs(20), |s| {
            s["last_probe"]["ok"] == true && s["state"] == "monitoring"
        })
        .await;
    assert_eq!(running["daemon_running"], true, "{running:#}");
    assert_eq!(running["daemon_stale"], false, "{running:#}");

    daemon.kill9().await;
    let status = rig.status().await;
    assert_eq!(status["daemon_pid"], pid);
    assert_eq!(status["daemon_running"], false, "{status:#}");
    // The state list is fixed: the state stays what the daemon last said.
    assert_eq!(status["state"], "monitoring");
    let text = rig.run(&["status"]).await.stdout;
    assert!(
        text.contains(&format!(
            "daemon: NOT RUNNING (pid {pid} exited; last wrote its state at "
        )),
        "{text}"
    );
}

/// The smoke test passed a DNS-only record with a long TTL without a word, though users
/// would keep reaching the old primary for that long after the switch.
#[tokio::test(flavor = "multi_thread")]
async fn the_smoke_test_warns_of_a_long_ttl_on_a_record_that_is_not_proxied() {
    // The stage's www record is not proxied, TTL 120 s; app is proxied.
    let rig = stage().await;
    let run = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
    let tokens = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api_tokens")
        .unwrap();
    assert_eq!(tokens["result"], "pass", "{tokens:#}");
    // 3 failed rounds of 1 s to detect, then the TTL.
    let warning = "www.example.com A is not proxied and its TTL is 120 s: resolvers may send users to the old primary for up to 120 s after DNS moves; recovery time for users up to 123 s (3 s to detect: 3 × 1s, + 120 s TTL)";
    let warnings = tokens["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "only the DNS-only record: {tokens:#}");
    assert!(
        warnings[0].as_str().unwrap().starts_with(warning),
        "{tokens:#}"
    );
    assert!(
        tokens["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("; warning: {warning}")),
        "{tokens:#}"
    );

    // The table's last lines and the Telegram summary repeat it.
    let run = rig.run(&["smoke-test"]).await;
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(&format!("warning: api_tokens: {warning}"))),
        "{}",
        run.stdout
    );
    let messages = rig
        .telegram
        .wait_for_messages(1, Duration::from_secs(10))
        .await;
    assert!(
        messages[0]
            .text
            .lines()
            .any(|l| l.starts_with(&format!("⚠️ api_tokens: {warning}"))),
        "{messages:?}"
    );
}

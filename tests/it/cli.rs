//! The command line without the rig: configuration errors exit 78 and name the file,
//! key and problem; `check-config` redacts secrets; usage errors exit 2.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::BIN;

const VALID: &str = r#"
[node]
name = "standby-cli"
state_dir = "state"
[probe]
interval = "5s"
timeout = "1s"
[[probe.checks]]
type = "tcp"
address = "127.0.0.1:9"
[replica]
user = "failover"
password = "inline-replica-secret"
[dns]
api_token_file = "cf.token"
zone_id = "zone"
[[dns.records]]
name = "app.example.com"
content = "203.0.113.20"
[telegram]
bot_token_file = "tg.token"
chat_id = -100123
"#;

fn run(dir: &Path, config: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cf.token"), "cf-file-secret\n").unwrap();
    std::fs::write(dir.path().join("tg.token"), "42:tg-file-secret\n").unwrap();
    dir
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = fixture();
    let (code, stdout, stderr) = run(dir.path(), VALID, &["check-config"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        stdout.contains("failures_before_promotion = 5"),
        "defaults shown: {stdout}"
    );
    assert!(stdout.contains("[redacted]"), "{stdout}");
    for secret in ["inline-replica-secret", "cf-file-secret", "tg-file-secret"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(
        stderr.contains("replica.password is written inline"),
        "{stderr}"
    );
}

/// Each bad config, through the real binary and every command: exit 78, and the
/// message names the file, the key and the problem.
#[test]
fn each_bad_config_exits_78_naming_file_key_and_problem() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "timeout = \"1s\"",
            "timeout = \"5s\"",
            "probe.timeout",
            "shorter than probe.interval",
        ),
        (
            "[probe]",
            "[probe]\nfailures_before_promotion = 0",
            "probe.failures_before_promotion",
            "at least 1",
        ),
        (
            "api_token_file = \"cf.token\"",
            "api_token_file = \"nope.token\"",
            "dns.api_token_file",
            "cannot read secret file",
        ),
        (
            "zone_id = \"zone\"",
            "zone_id = \"zone\"\nzone = \"x\"",
            "dns",
            "unknown field `zone`",
        ),
        (
            "content = \"203.0.113.20\"",
            "content = \"example\"",
            "dns.records[0].content",
            "not an IPv4 address",
        ),
        (
            "[[probe.checks]]\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"",
            "",
            "probe.checks",
            "at least one",
        ),
        ("[node]", "[node\n", "line 2, column 6", "unclosed table"),
        (
            "[telegram]",
            "[smoke]\nbuild_max_age = \"a month\"\n[telegram]",
            "smoke.build_max_age",
            "not a duration",
        ),
        (
            "content = \"203.0.113.20\"",
            "type = \"CNAME\"\ncontent = \"203.0.113.20\"",
            "dns.records[0].content",
            "is an IP address, not a host name",
        ),
    ];
    let dir = fixture();
    for (from, to, key, problem) in cases {
        assert!(VALID.contains(from), "fixture lacks {from:?}");
        let config = VALID.replacen(from, to, 1);
        for args in [
            &["check-config"][..],
            &["status"],
            &["--promote-now", "--dry-run"],
            &["run"],
            &["smoke-test"],
        ] {
            let (code, stdout, stderr) = run(dir.path(), &config, args);
            assert_eq!(code, Some(78), "{args:?} with {to:?}: {stdout}{stderr}");
            assert!(stderr.contains("config.toml"), "{stderr}");
            assert!(stderr.contains(key), "expected {key:?} in {stderr}");
            assert!(stderr.contains(problem), "expected {problem:?} in {stderr}");
        }
    }
    assert!(
        !dir.path().join("state").exists(),
        "a bad config changed nothing"
    );
}

#[test]
fn a_missing_config_file_exits_78() {
    let output = Command::new(BIN)
        .args([
            "--config",
            "/nonexistent/failover-watchdog.toml",
            "check-config",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/nonexistent/failover-watchdog.toml")
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["--no-such-flag"][..], &["--yes"], &["status", "--bogus"]] {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn status_before_the_daemon_ever_ran_says_so() {
    let dir = fixture();
    let (code, stdout, _) = run(dir.path(), VALID, &["status", "--json"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["state"], "monitoring");
    assert_eq!(status["consecutive_failures"], 0);
    assert!(status["promotion"].is_null() && status["last_probe"].is_null());
    let (_, text, _) = run(dir.path(), VALID, &["status"]);
    assert!(text.contains("no live state yet"), "{text}");
}

#[test]
fn pause_and_resume_show_in_status() {
    let dir = fixture();
    // No [telegram]: the pause's alert goes to the log, not to the real Telegram.
    let config = VALID.split("[telegram]").next().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        VALID,
        &["pause", "--for", "2h", "--reason", "maintenance"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (_, stdout, _) = run(dir.path(), config, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["state"], "paused");
    assert_eq!(status["paused"]["reason"], "maintenance");
    assert!(status["paused"]["until"].is_string());
    run(dir.path(), config, &["resume"]);
    let (_, stdout, _) = run(dir.path(), config, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["state"], "monitoring");
}

/// Runs the binary with `args` and waits at most `limit` for it: a command that hangs
/// is killed and the test fails, instead of hanging the suite.
fn output_within(args: &[&std::ffi::OsStr], limit: Duration) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child we spawned and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{args:?} did not return within {limit:?}");
        }
    }
}

fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// Regression: `dns.api_token_file` naming a FIFO without a writer hung every command,
/// and so did `--config` naming one. Both exit 78 at once, naming the file (and key).
#[test]
fn check_config_with_a_fifo_token_file_exits_78_at_once() {
    let dir = fixture();
    let fifo = dir.path().join("fifo");
    make_fifo(&fifo);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        VALID.replacen(
            "api_token_file = \"cf.token\"",
            "api_token_file = \"fifo\"",
            1,
        ),
    )
    .unwrap();
    let limit = Duration::from_secs(10);
    let output = output_within(
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "check-config".as_ref(),
        ],
        limit,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("config.toml"), "{stderr}");
    assert!(stderr.contains("dns.api_token_file"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "secret file {} is a FIFO, not a regular file",
            fifo.display()
        )),
        "{stderr}"
    );

    let output = output_within(
        &[
            "--config".as_ref(),
            fifo.as_os_str(),
            "check-config".as_ref(),
        ],
        limit,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: the config file is a FIFO, not a regular file",
            fifo.display()
        )),
        "{stderr}"
    );
}

/// `--version` names the version and the commit the binary was built from.
#[tokio::test]
async fn version_names_the_version_and_the_commit() {
    let output = tokio::process::Command::new(BIN)
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.trim();
    let commit = line
        .strip_prefix(concat!(
            "failover-watchdog ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
}

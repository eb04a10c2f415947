//! Operator commands: the fence command and the hooks, run with `sh -c`, bounded by a
//! timeout, given the promotion's facts as `FAILOVER_*` environment variables. Their
//! output goes to the log line by line, with every configured secret scrubbed out (they
//! are given none of ours, but may print their own).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The last lines of its output, for alerts and the journal.
    pub tail: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit 0" / "exit 3" / "killed by a signal".
    pub fn describe(&self) -> String {
        match self.code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// Runs `command` as `what` (named in the log); an error when it cannot start or does
/// not finish within `timeout` (it is killed then).
pub async fn run(
    what: &str,
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
    secrets: &[&str],
) -> anyhow::Result<Finished> {
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        child.env(name, value);
    }
    tracing::info!("{what}: running `{command}`");
    let child = child
        .spawn()
        .with_context(|| format!("{what}: cannot start `{command}`"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{what}: `{command}` did not finish within {} and was killed",
                humantime::format_duration(timeout)
            )
        })?
        .with_context(|| format!("{what}: `{command}`"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    for line in text.lines() {
        tracing::info!("{what}: {line}");
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    let finished = Finished {
        code: output.status.code(),
        tail,
    };
    tracing::info!("{what}: {}", finished.describe());
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_env_and_exit_code_are_reported_and_secrets_scrubbed() {
        let env = [("FAILOVER_NODE", "standby-1".to_string())];
        let done = run(
            "hook",
            "echo node=$FAILOVER_NODE token=s3cret; exit 4",
            &env,
            Duration::from_secs(5),
            &["s3cret"],
        )
        .await
        .unwrap();
        assert_eq!(done.code, Some(4));
        assert!(!done.success());
        assert_eq!(done.tail, "node=standby-1 token=[redacted]");
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_timeout() {
        let err = run("fence", "sleep 30", &[], Duration::from_millis(200), &[])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("did not finish within 200ms"),
            "{err}"
        );
    }
}

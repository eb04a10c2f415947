//! systemd, through `systemctl` from `PATH`: start the application's units and confirm
//! they are active; read a unit's state for the dry run and the smoke test. The only
//! module that runs `systemctl`. And what the service manager is told about ourselves
//! ([`Notifier`]: `READY=1`, `STATUS=`, the watchdog).
//!
//! Each unit gets `start_timeout` for `systemctl start` plus the `is-active` confirmation;
//! a `systemctl` that hangs is killed when its time is up.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::time::Instant;

/// How often `is-active` is asked while a unit is still `activating`.
const ACTIVE_POLL: Duration = Duration::from_millis(200);

/// The result of one `systemctl` run.
struct Output {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    /// `Err` naming the command, its exit code and what it said, when it failed.
    fn succeeded(&self, command: &str) -> anyhow::Result<()> {
        if self.success {
            return Ok(());
        }
        bail!(
            "`{command}` exited with {}: {}",
            self.code.map_or("a signal".to_string(), |c| c.to_string()),
            if self.stderr.is_empty() {
                &self.stdout
            } else {
                &self.stderr
            }
        )
    }
}

async fn systemctl(args: &[&str], within: Duration) -> anyhow::Result<Output> {
    let child = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run systemctl (is it on PATH?)")?;
    let output = tokio::time::timeout(within, child.wait_with_output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "`systemctl {}` did not finish within {}",
                args.join(" "),
                humantime::format_duration(within)
            )
        })?
        .context("systemctl")?;
    Ok(Output {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// `systemctl is-active UNIT`: "active", "inactive", "activating", "failed", ...
pub async fn active_state(unit: &str, within: Duration) -> anyhow::Result<String> {
    let output = systemctl(&["is-active", unit], within).await?;
    Ok(if output.stdout.is_empty() {
        "unknown".to_string()
    } else {
        output.stdout
    })
}

/// `systemctl show -p LoadState --value UNIT`: "loaded" when systemd knows the unit,
/// "not-found" when it has no unit file, "masked", "bad-setting", ... Read-only.
pub async fn load_state(unit: &str, within: Duration) -> anyhow::Result<String> {
    let output = systemctl(&["show", "-p", "LoadState", "--value", unit], within).await?;
    if !output.success || output.stdout.is_empty() {
        bail!(
            "`systemctl show -p LoadState {unit}` exited with {}: {}",
            output
                .code
                .map_or("a signal".to_string(), |c| c.to_string()),
            output.stderr
        );
    }
    Ok(output.stdout)
}

/// Starts `unit` and waits until it is active, all within `timeout`. Idempotent:
/// starting an active unit changes nothing.
pub async fn start_unit(unit: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let output = systemctl(&["start", unit], timeout).await?;
    output.succeeded(&format!("systemctl start {unit}"))?;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let state = active_state(unit, remaining.max(Duration::from_secs(1))).await?;
        match state.as_str() {
            "active" => return Ok(()),
            "failed" | "inactive" => bail!("{unit} is {state} after `systemctl start`"),
            _ if Instant::now() + ACTIVE_POLL >= deadline => bail!(
                "{unit} is still {state} after {}",
                humantime::format_duration(timeout)
            ),
            _ => tokio::time::sleep(ACTIVE_POLL).await,
        }
    }
}

/// Stops `unit` (`systemctl stop` waits until it is stopped), within `timeout`.
/// Idempotent: stopping an inactive unit changes nothing.
pub async fn stop_unit(unit: &str, timeout: Duration) -> anyhow::Result<()> {
    let output = systemctl(&["stop", unit], timeout).await?;
    output.succeeded(&format!("systemctl stop {unit}"))?;
    Ok(())
}

/// What systemd is told about this service through `sd_notify`: `READY=1`, a `STATUS=`
/// line, and the watchdog (`WATCHDOG=1`, `WATCHDOG_USEC=`). Outside systemd (no
/// `NOTIFY_SOCKET`) every call does nothing.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The unit's `WatchdogSec=`, when systemd watches this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads the watchdog from the environment systemd gives the service:
    /// `WATCHDOG_USEC`, for this process (`WATCHDOG_PID` is ours, or unset).
    pub fn from_env() -> Notifier {
        let usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|usec| *usec > 0);
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.parse::<u32>().ok() == Some(std::process::id()));
        Notifier {
            watchdog: usec.filter(|_| ours).map(Duration::from_micros),
        }
    }

    /// The unit's watchdog timeout, when systemd watches this process.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`.
    pub fn ready(&self) {
        self.send(&[sd_notify::NotifyState::Ready]);
    }

    /// The loop completed a round: `WATCHDOG=1` (when watched) and `STATUS=`.
    pub fn alive(&self, status: &str) {
        if self.watchdog.is_some() {
            self.send(&[
                sd_notify::NotifyState::Watchdog,
                sd_notify::NotifyState::Status(status),
            ]);
        } else {
            self.send(&[sd_notify::NotifyState::Status(status)]);
        }
    }

    /// Sets the watchdog timeout to `timeout` from now on (and feeds it): longer while
    /// a promotion runs, back afterwards. Nothing when not watched.
    pub fn set_watchdog(&self, timeout: Duration) {
        if self.watchdog.is_none() {
            return;
        }
        let usec = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX);
        self.send(&[
            sd_notify::NotifyState::WatchdogUsec(usec),
            sd_notify::NotifyState::Watchdog,
        ]);
    }

    fn send(&self, states: &[sd_notify::NotifyState]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}

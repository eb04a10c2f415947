//! `pause [--for DURATION] [--reason TEXT]` and `resume`: a marker in `state_dir` that
//! the daemon reads each round before it would promote on its own. Both tell the team;
//! the daemon says when a timed pause runs out.

use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;

use crate::alert::Alert;
use crate::config::Config;
use crate::edges::Edges;
use crate::shutdown::Shutdown;
use crate::status::Pause;
use crate::store::StateDir;

pub async fn pause(
    config: &Config,
    duration: Option<Duration>,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    let until = duration
        .map(|d| jiff::SignedDuration::try_from(d).and_then(|d| now.checked_add(d)))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--for is too long: {e}"))?;
    let pause = Pause {
        since: now,
        until,
        reason: reason.clone(),
    };
    StateDir::new(config.state_dir()).save_pause(&pause)?;
    let until_text = until.map_or("`failover-watchdog resume`".to_string(), |u| u.to_string());
    println!("automatic promotion paused until {until_text}");
    tell(
        config,
        &Alert::Paused {
            until: until_text,
            reason,
        },
    )
    .await;
    Ok(ExitCode::SUCCESS)
}

pub async fn resume(config: &Config) -> anyhow::Result<ExitCode> {
    StateDir::new(config.state_dir()).remove_pause()?;
    println!("automatic promotion resumed");
    tell(config, &Alert::Resumed).await;
    Ok(ExitCode::SUCCESS)
}

/// The alert, delivered like every other command's: queued on every channel, each
/// retrying on its own, and waited for within the command's budget in all. What was not
/// delivered is a warning, not a failed command: the pause itself is in place.
async fn tell(config: &Config, alert: &Alert) {
    let edges = match Edges::command(config, Shutdown::never()) {
        Ok(edges) => edges,
        Err(e) => {
            eprintln!("warning: the alert was not delivered: {e:#}");
            return;
        }
    };
    edges.alerter.send(alert);
    edges.flush_alerts().await;
}

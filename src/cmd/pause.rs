//! `pause [--for DURATION] [--reason TEXT]` and `resume`: a marker in `state_dir` that
//! the daemon reads each round before it would promote on its own.

use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::Config;
use crate::status::Pause;
use crate::store::StateDir;

pub fn pause(
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
        reason,
    };
    StateDir::new(config.state_dir()).save_pause(&pause)?;
    match until {
        Some(until) => println!("automatic promotion paused until {until}"),
        None => println!("automatic promotion paused until `failover-watchdog resume`"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resume(config: &Config) -> anyhow::Result<ExitCode> {
    StateDir::new(config.state_dir()).remove_pause()?;
    println!("automatic promotion resumed");
    Ok(ExitCode::SUCCESS)
}

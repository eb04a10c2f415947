//! `status`: what it shows is derived in the core ([`StatusReport::derive`], re-exported
//! here with the live-state and pause types); this module reads what it derives from:
//! the files in `state_dir` and whether the daemon's pid is a running process.

use jiff::Timestamp;

use crate::config::ProbeConfig;
use crate::store::StateDir;
pub use failover_watchdog_core::status::*;

/// Reads `state_dir` and asks whether the daemon's pid runs, then [`StatusReport::derive`].
pub fn gather(
    store: &StateDir,
    probe: &ProbeConfig,
    now: Timestamp,
) -> anyhow::Result<StatusReport> {
    let live: Option<LiveState> = store.load_live()?;
    let observed = Observed {
        pid_running: live.as_ref().is_some_and(|l| process_exists(l.pid)),
        live,
        journal: store.load_journal()?,
        pause: store.load_pause()?,
    };
    let mut report = StatusReport::derive(
        observed,
        probe.failures_before_promotion,
        stale_after(probe.interval, probe.timeout),
        now,
    );
    report.rejoin = store.last_rejoin()?;
    Ok(report)
}

/// Whether a process with this id exists: `kill(pid, 0)`, where EPERM (another user's
/// process) counts as existing.
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 is not sent; kill only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_exists_and_a_reaped_child_does_not() {
        assert!(process_exists(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_exists(pid));
        assert!(!process_exists(0), "0 means our own process group");
    }
}

//! A test seam for crash safety: `FAILOVER_WATCHDOG_TEST_CRASH_AT=<point>` makes the
//! process kill itself with SIGKILL when it reaches `<point>`, exactly as `kill -9` at
//! that moment would. Unset (always, outside tests) it does nothing.
//!
//! The promotion driver marks two points per step: `before:<step>` (the journal says the
//! step is running, nothing is done yet) and `after:<step>` (the step's work is done, the
//! journal does not say so yet). Together they prove that a resumed promotion neither
//! skips nor repeats a finished step, and that every step is safe to run again.

/// The environment variable naming the crash point.
pub const ENV: &str = "FAILOVER_WATCHDOG_TEST_CRASH_AT";

/// Dies here if the environment says so.
pub fn reached(point: &str) {
    if std::env::var_os(ENV).is_some_and(|wanted| wanted == point) {
        eprintln!("crash point {point} reached: killing this process with SIGKILL");
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

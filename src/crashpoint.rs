//! A test seam for crash safety: `FAILOVER_WATCHDOG_TEST_CRASH_AT=<point>` makes the
//! process kill itself with SIGKILL when it reaches `<point>`, exactly as `kill -9` at
//! that moment would.
//!
//! Only in builds made for tests: the seam is compiled in by the `test-seams` cargo
//! feature, which the package's dev-dependency on itself turns on for `cargo test` (so
//! the binary `tests/it` runs has it). A normal or release build (`cargo build`,
//! `cargo install`) has no such feature: [`reached`] is empty there and the variable is
//! ignored, so nothing in the environment can make a production promotion kill itself.
//!
//! The promotion driver marks two points per step: `before:<step>` (the journal says the
//! step is running, nothing is done yet) and `after:<step>` (the step's work is done, the
//! journal does not say so yet). Together they prove that a resumed promotion neither
//! skips nor repeats a finished step, and that every step is safe to run again.

/// The environment variable naming the crash point (read only with `test-seams`).
pub const ENV: &str = "FAILOVER_WATCHDOG_TEST_CRASH_AT";

/// Dies here if the environment says so, in a build with the `test-seams` feature;
/// does nothing otherwise.
#[cfg(feature = "test-seams")]
pub fn reached(point: &str) {
    if std::env::var_os(ENV).is_some_and(|wanted| wanted == point) {
        eprintln!("crash point {point} reached: killing this process with SIGKILL");
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Dies here if the environment says so, in a build with the `test-seams` feature;
/// does nothing otherwise.
#[cfg(not(feature = "test-seams"))]
#[inline(always)]
pub fn reached(_point: &str) {}

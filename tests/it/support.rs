//! The stage (rig/src/stage.rs) for this build's binary.

pub use failover_watchdog_rig::stage::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_failover-watchdog");

/// A fresh stage: a MariaDB pair, the stand-ins, the shim and a config for [`BIN`].
pub async fn stage() -> Stage {
    Stage::start(std::path::Path::new(BIN)).await
}

//! The stage (rig/src/stage.rs) for this build's binary.

pub use failover_watchdog_rig::stage::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_failover-watchdog");

/// A fresh stage: a MariaDB pair, the stand-ins, the shim and a config for [`BIN`].
pub async fn stage() -> Stage {
    Stage::start(std::path::Path::new(BIN)).await
}

/// Waits until the daemon has probed five more times (1 s interval) after `status`:
/// more rounds than the threshold of 3.
pub async fn five_more_rounds(rig: &Stage, status: &serde_json::Value) -> serde_json::Value {
    let round_at = |s: &serde_json::Value| -> jiff::Timestamp {
        s["last_probe"]["at"].as_str().unwrap().parse().unwrap()
    };
    let since = round_at(status);
    rig.wait_for_status(
        "five more rounds",
        std::time::Duration::from_secs(30),
        |s| round_at(s).duration_since(since).as_secs() >= 5,
    )
    .await
}
